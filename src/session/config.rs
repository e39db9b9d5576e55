//! What one BGP session is configured with, validated once at construction, and the OPEN it
//! sends.
//!
//! [`SessionConfig::validate`] rejects what RFC 4271 forbids (a hold time of 1 or 2 seconds,
//! §4.2) and what cannot work (AS 0 per RFC 7607, router id 0.0.0.0 per RFC 6286 §2.2, no
//! address family, a role on an iBGP session per RFC 9234 §4), with messages that say what to
//! change. [`SessionConfig::local_open`] builds the OPEN: 4-octet AS always (RFC 6793), one
//! multiprotocol capability per configured family (RFC 4760), then the optional ones.
//!
//! Never does: read files (the speaker maps its TOML onto this).

use std::net::Ipv4Addr;
use std::time::Duration;

use thiserror::Error;

use crate::wire::capability::{GracefulRestart, Role};
use crate::wire::{Capability, Family, Open};

/// RFC 4271 §10 suggested ConnectRetryTime.
pub const DEFAULT_CONNECT_RETRY: Duration = Duration::from_secs(120);
/// RFC 4271 §10 suggested HoldTime.
pub const DEFAULT_HOLD_TIME: u16 = 90;
/// RFC 9687 §3: at least 8 minutes (and at least twice the hold time, see fsm).
pub const DEFAULT_SEND_HOLD: Duration = Duration::from_secs(480);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    pub local_asn: u32,
    pub router_id: Ipv4Addr,
    /// Equal to `local_asn` for iBGP.
    pub peer_asn: u32,
    /// Seconds proposed in our OPEN: 0 (no keepalives) or at least 3.
    pub hold_time: u16,
    /// Smallest peer hold time accepted; 0 accepts anything valid, including 0. Above 0, a
    /// peer offering less (or 0) gets Unacceptable Hold Time (RFC 4271 §6.2 allows this).
    pub min_hold_time: u16,
    pub connect_retry: Duration,
    /// PassiveTcpEstablishment (RFC 4271 §8.1.1): never connect out, wait in Active.
    pub passive: bool,
    /// DelayOpen (RFC 4271 §8.1.1): after TCP comes up, wait this long for the peer's OPEN.
    pub delay_open: Option<Duration>,
    /// Families advertised as multiprotocol capabilities, in this order.
    pub families: Vec<Family>,
    pub route_refresh: bool,
    pub enhanced_route_refresh: bool,
    /// RFC 8654.
    pub extended_message: bool,
    /// RFC 4724 capability to advertise, as sent.
    pub graceful_restart: Option<GracefulRestart>,
    /// RFC 9234 local role (eBGP only).
    pub role: Option<Role>,
    /// RFC 9234 §4.2 strict mode: the peer must advertise a matching role.
    pub strict_role: bool,
    /// Capabilities the peer must advertise (RFC 5492 §5); missing ones are listed in an
    /// Unsupported Capability NOTIFICATION. Multiprotocol entries match exactly, others by code.
    pub required_capabilities: Vec<Capability>,
    /// RFC 9687 SendHoldTimer; `None` disables it.
    pub send_hold: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    #[error("hold time {0} s is not allowed: use 0 (no keepalives) or at least 3 seconds (RFC 4271 §4.2)")]
    HoldTime(u16),
    #[error("minimum hold time {0} s cannot be 1 or 2: use 0 (accept any) or at least 3")]
    MinHoldTime(u16),
    #[error("{which} AS 0 is reserved (RFC 7607): configure the real AS number")]
    AsZero { which: &'static str },
    #[error("router id 0.0.0.0 is not allowed (RFC 6286 §2.2): set a unique non-zero router id")]
    RouterIdZero,
    #[error("no address family configured: enable ipv4 or ipv6 unicast")]
    NoFamilies,
    #[error("connect retry time is zero: use a positive time such as 120 s (RFC 4271 §10)")]
    ConnectRetryZero,
    #[error("delay open time is zero: omit it to disable DelayOpen")]
    DelayOpenZero,
    #[error("send hold time is zero: omit it to disable the SendHoldTimer")]
    SendHoldZero,
    #[error("a BGP role is for eBGP sessions only (RFC 9234 §4): remove the role from this iBGP neighbor")]
    RoleOnIbgp,
    #[error("strict role mode needs a local role: set one or turn strict mode off")]
    StrictRoleWithoutRole,
    #[error("graceful restart time {0} s exceeds 4095 (12 bits, RFC 4724 §3)")]
    RestartTime(u16),
}

impl SessionConfig {
    /// Defaults: hold 90 s, connect retry 120 s, IPv4 unicast, route refresh and enhanced
    /// route refresh, SendHoldTimer 8 minutes, active (connects out).
    pub fn new(local_asn: u32, router_id: Ipv4Addr, peer_asn: u32) -> Self {
        Self {
            local_asn,
            router_id,
            peer_asn,
            hold_time: DEFAULT_HOLD_TIME,
            min_hold_time: 0,
            connect_retry: DEFAULT_CONNECT_RETRY,
            passive: false,
            delay_open: None,
            families: vec![Family::Ipv4Unicast],
            route_refresh: true,
            enhanced_route_refresh: true,
            extended_message: false,
            graceful_restart: None,
            role: None,
            strict_role: false,
            required_capabilities: Vec::new(),
            send_hold: Some(DEFAULT_SEND_HOLD),
        }
    }

    pub fn is_ibgp(&self) -> bool {
        self.local_asn == self.peer_asn
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if matches!(self.hold_time, 1 | 2) {
            return Err(ConfigError::HoldTime(self.hold_time));
        }
        if matches!(self.min_hold_time, 1 | 2) {
            return Err(ConfigError::MinHoldTime(self.min_hold_time));
        }
        if self.local_asn == 0 {
            return Err(ConfigError::AsZero { which: "local" });
        }
        if self.peer_asn == 0 {
            return Err(ConfigError::AsZero { which: "peer" });
        }
        if self.router_id.is_unspecified() {
            return Err(ConfigError::RouterIdZero);
        }
        if self.families.is_empty() {
            return Err(ConfigError::NoFamilies);
        }
        if self.connect_retry.is_zero() {
            return Err(ConfigError::ConnectRetryZero);
        }
        if self.delay_open.is_some_and(|d| d.is_zero()) {
            return Err(ConfigError::DelayOpenZero);
        }
        if self.send_hold.is_some_and(|d| d.is_zero()) {
            return Err(ConfigError::SendHoldZero);
        }
        if self.role.is_some() && self.is_ibgp() {
            return Err(ConfigError::RoleOnIbgp);
        }
        if self.strict_role && self.role.is_none() {
            return Err(ConfigError::StrictRoleWithoutRole);
        }
        if let Some(gr) = &self.graceful_restart {
            if gr.restart_time > 0x0fff {
                return Err(ConfigError::RestartTime(gr.restart_time));
            }
        }
        Ok(())
    }

    /// Our multiprotocol capabilities, one per family.
    pub fn multiprotocol_capabilities(&self) -> Vec<Capability> {
        let mut seen = Vec::new();
        for f in &self.families {
            if !seen.contains(f) {
                seen.push(*f);
            }
        }
        seen.into_iter()
            .map(|f| Capability::Multiprotocol {
                afi: f.afi(),
                safi: f.safi(),
            })
            .collect()
    }

    /// The OPEN we send: My AS is AS_TRANS when our AS does not fit 2 octets (RFC 6793 §4.1).
    pub fn local_open(&self) -> Open {
        let mut caps = self.multiprotocol_capabilities();
        if self.route_refresh {
            caps.push(Capability::RouteRefresh);
        }
        if self.enhanced_route_refresh {
            caps.push(Capability::EnhancedRouteRefresh);
        }
        caps.push(Capability::FourOctetAs(self.local_asn));
        if self.extended_message {
            caps.push(Capability::ExtendedMessage);
        }
        if let Some(gr) = &self.graceful_restart {
            caps.push(Capability::GracefulRestart(gr.clone()));
        }
        if let Some(role) = self.role {
            caps.push(Capability::Role(role));
        }
        Open::new(self.local_asn, self.hold_time, self.router_id, caps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::iana::AS_TRANS;
    use crate::wire::{Context, Message};

    fn cfg() -> SessionConfig {
        SessionConfig::new(65100, Ipv4Addr::new(192, 0, 2, 1), 65001)
    }

    #[test]
    fn defaults_validate() {
        assert_eq!(cfg().validate(), Ok(()));
    }

    #[test]
    fn hold_time_one_or_two_is_rejected_zero_and_three_are_fine() {
        for h in [1, 2] {
            let c = SessionConfig {
                hold_time: h,
                ..cfg()
            };
            let e = c.validate().unwrap_err();
            assert_eq!(e, ConfigError::HoldTime(h));
            assert!(e.to_string().contains("at least 3"), "{e}");
        }
        for h in [0, 3, 65535] {
            assert_eq!(
                SessionConfig {
                    hold_time: h,
                    ..cfg()
                }
                .validate(),
                Ok(())
            );
        }
        let c = SessionConfig {
            min_hold_time: 2,
            ..cfg()
        };
        assert_eq!(c.validate(), Err(ConfigError::MinHoldTime(2)));
    }

    #[test]
    fn each_invalid_field_has_its_error() {
        let bad = [
            (
                SessionConfig {
                    local_asn: 0,
                    ..cfg()
                },
                ConfigError::AsZero { which: "local" },
            ),
            (
                SessionConfig {
                    peer_asn: 0,
                    ..cfg()
                },
                ConfigError::AsZero { which: "peer" },
            ),
            (
                SessionConfig {
                    router_id: Ipv4Addr::UNSPECIFIED,
                    ..cfg()
                },
                ConfigError::RouterIdZero,
            ),
            (
                SessionConfig {
                    families: vec![],
                    ..cfg()
                },
                ConfigError::NoFamilies,
            ),
            (
                SessionConfig {
                    connect_retry: Duration::ZERO,
                    ..cfg()
                },
                ConfigError::ConnectRetryZero,
            ),
            (
                SessionConfig {
                    delay_open: Some(Duration::ZERO),
                    ..cfg()
                },
                ConfigError::DelayOpenZero,
            ),
            (
                SessionConfig {
                    send_hold: Some(Duration::ZERO),
                    ..cfg()
                },
                ConfigError::SendHoldZero,
            ),
            (
                SessionConfig {
                    peer_asn: 65100,
                    role: Some(Role::Peer),
                    ..cfg()
                },
                ConfigError::RoleOnIbgp,
            ),
            (
                SessionConfig {
                    strict_role: true,
                    ..cfg()
                },
                ConfigError::StrictRoleWithoutRole,
            ),
            (
                SessionConfig {
                    graceful_restart: Some(GracefulRestart {
                        flags: 0,
                        restart_time: 4096,
                        families: vec![],
                    }),
                    ..cfg()
                },
                ConfigError::RestartTime(4096),
            ),
        ];
        for (c, want) in bad {
            assert_eq!(c.validate(), Err(want));
        }
    }

    #[test]
    fn local_open_carries_configured_capabilities_in_order() {
        let c = SessionConfig {
            families: vec![
                Family::Ipv4Unicast,
                Family::Ipv6Unicast,
                Family::Ipv4Unicast,
            ],
            extended_message: true,
            role: Some(Role::Customer),
            ..cfg()
        };
        let open = c.local_open();
        let names: Vec<_> = open.capabilities().map(Capability::name).collect();
        assert_eq!(
            names,
            [
                "multiprotocol",
                "multiprotocol",
                "route-refresh",
                "enhanced-route-refresh",
                "four-octet-as",
                "extended-message",
                "role"
            ]
        );
        assert_eq!((open.my_as, open.hold_time, open.asn()), (65100, 90, 65100));
    }

    #[test]
    fn four_octet_local_as_uses_as_trans_and_encodes() {
        let c = SessionConfig {
            local_asn: 4_200_000_000,
            ..cfg()
        };
        let open = c.local_open();
        assert_eq!(open.my_as, AS_TRANS);
        assert_eq!(open.asn(), 4_200_000_000);
        let bytes = Message::Open(open.clone()).to_bytes(&Context::default());
        assert_eq!(
            Message::decode(&bytes, &Context::default()),
            Ok(Message::Open(open))
        );
    }
}
