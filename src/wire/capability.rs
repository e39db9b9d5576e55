//! Capabilities advertised in OPEN (RFC 5492 §4), each decoded next to its encoder.
//!
//! ```text
//! +------------------------------+
//! | Capability Code (1 octet)    |
//! +------------------------------+
//! | Capability Length (1 octet)  |
//! +------------------------------+
//! | Capability Value (variable)  |
//! +------------------------------+
//! ```
//!
//! Known: multiprotocol (RFC 4760 §8), route refresh (RFC 2918), extended next hop (RFC 8950),
//! extended message (RFC 8654), BGP role (RFC 9234), graceful restart (RFC 4724 with the N bit of
//! RFC 8538), 4-octet AS (RFC 6793), ADD-PATH (RFC 7911, parsed only), enhanced route refresh
//! (RFC 7313), FQDN (draft-walton-bgp-hostname-capability). Any other code is kept as raw bytes.
//! A known capability of the wrong length is a malformed optional parameter: OPEN Message Error,
//! subcode 0 (RFC 4271 §6.2). A 4-octet AS capability carrying AS 0 is Bad Peer AS (RFC 7607
//! §2). Never does: decide what a capability means for the session.

use bytes::{BufMut, BytesMut};

use super::error::{DecodeError, ErrorKind};
use super::iana::{capability as code, Afi, Safi};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capability {
    Multiprotocol { afi: Afi, safi: Safi },
    RouteRefresh,
    ExtendedNextHop(Vec<ExtendedNextHopFamily>),
    ExtendedMessage,
    Role(Role),
    GracefulRestart(GracefulRestart),
    FourOctetAs(u32),
    AddPath(Vec<AddPathFamily>),
    EnhancedRouteRefresh,
    Fqdn { hostname: Vec<u8>, domain: Vec<u8> },
    Unknown { code: u8, data: Vec<u8> },
}

/// RFC 8950 §3: an NLRI family that may carry a next hop of another AFI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtendedNextHopFamily {
    pub afi: Afi,
    /// Two octets wide in this capability.
    pub safi: u16,
    pub next_hop_afi: Afi,
}

/// RFC 9234 §4.1 role values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Provider,
    RouteServer,
    RouteServerClient,
    Customer,
    Peer,
    Unknown(u8),
}

impl Role {
    pub fn from_code(v: u8) -> Self {
        match v {
            0 => Self::Provider,
            1 => Self::RouteServer,
            2 => Self::RouteServerClient,
            3 => Self::Customer,
            4 => Self::Peer,
            o => Self::Unknown(o),
        }
    }

    pub fn code(self) -> u8 {
        match self {
            Self::Provider => 0,
            Self::RouteServer => 1,
            Self::RouteServerClient => 2,
            Self::Customer => 3,
            Self::Peer => 4,
            Self::Unknown(v) => v,
        }
    }

    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::Provider => "provider",
            Self::RouteServer => "rs",
            Self::RouteServerClient => "rs-client",
            Self::Customer => "customer",
            Self::Peer => "peer",
            Self::Unknown(_) => return None,
        })
    }
}

/// RFC 4724 §3, with the N (notification) bit of RFC 8538 §2.
///
/// ```text
/// +--------------------------------------------------+
/// | Restart Flags (4 bits)                           |
/// +--------------------------------------------------+
/// | Restart Time in seconds (12 bits)                |
/// +--------------------------------------------------+
/// | AFI (16 bits) | SAFI (8 bits) | Flags for AFI (8 bits) | ...
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GracefulRestart {
    /// The four flag bits as sent (R = 0x8, N = 0x4).
    pub flags: u8,
    /// Seconds, at most 4095.
    pub restart_time: u16,
    pub families: Vec<GracefulRestartFamily>,
}

impl GracefulRestart {
    pub const RESTART_STATE: u8 = 0x8;
    pub const NOTIFICATION: u8 = 0x4;

    pub fn restart_state(&self) -> bool {
        self.flags & Self::RESTART_STATE != 0
    }

    pub fn notification(&self) -> bool {
        self.flags & Self::NOTIFICATION != 0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GracefulRestartFamily {
    pub afi: Afi,
    pub safi: Safi,
    /// Flags as sent; 0x80 is "forwarding state preserved".
    pub flags: u8,
}

impl GracefulRestartFamily {
    pub fn forwarding_state(&self) -> bool {
        self.flags & 0x80 != 0
    }
}

/// RFC 7911 §4: send/receive per family (1 receive, 2 send, 3 both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddPathFamily {
    pub afi: Afi,
    pub safi: Safi,
    pub send_receive: u8,
}

fn malformed(name: &str, at: usize, detail: String) -> DecodeError {
    DecodeError::new(
        ErrorKind::OpenUnspecific,
        "capability",
        at,
        format!("{name} capability: {detail}"),
    )
}

fn exact_len(name: &str, at: usize, value: &[u8], want: usize) -> Result<(), DecodeError> {
    if value.len() == want {
        Ok(())
    } else {
        Err(malformed(
            name,
            at,
            format!("length {} is not {want}", value.len()),
        ))
    }
}

fn multiple_of(name: &str, at: usize, value: &[u8], unit: usize) -> Result<(), DecodeError> {
    if value.len().is_multiple_of(unit) {
        Ok(())
    } else {
        Err(malformed(
            name,
            at,
            format!("length {} is not a multiple of {unit}", value.len()),
        ))
    }
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

impl Capability {
    /// Decode a capability value; `at` is the offset of its code octet in the message.
    pub fn decode_value(cap_code: u8, value: &[u8], at: usize) -> Result<Self, DecodeError> {
        Ok(match cap_code {
            code::MULTIPROTOCOL => {
                exact_len("multiprotocol", at, value, 4)?;
                Self::Multiprotocol {
                    afi: be16(value).into(),
                    safi: value[3].into(),
                }
            }
            code::ROUTE_REFRESH => {
                exact_len("route-refresh", at, value, 0)?;
                Self::RouteRefresh
            }
            code::EXTENDED_NEXT_HOP => {
                multiple_of("extended-next-hop", at, value, 6)?;
                Self::ExtendedNextHop(
                    value
                        .chunks_exact(6)
                        .map(|c| ExtendedNextHopFamily {
                            afi: be16(c).into(),
                            safi: be16(&c[2..]),
                            next_hop_afi: be16(&c[4..]).into(),
                        })
                        .collect(),
                )
            }
            code::EXTENDED_MESSAGE => {
                exact_len("extended-message", at, value, 0)?;
                Self::ExtendedMessage
            }
            code::ROLE => {
                exact_len("role", at, value, 1)?;
                Self::Role(Role::from_code(value[0]))
            }
            code::GRACEFUL_RESTART => {
                if value.len() < 2 || !(value.len() - 2).is_multiple_of(4) {
                    return Err(malformed(
                        "graceful-restart",
                        at,
                        format!("length {} is not 2 + 4n", value.len()),
                    ));
                }
                let head = be16(value);
                Self::GracefulRestart(GracefulRestart {
                    flags: (head >> 12) as u8,
                    restart_time: head & 0x0fff,
                    families: value[2..]
                        .chunks_exact(4)
                        .map(|c| GracefulRestartFamily {
                            afi: be16(c).into(),
                            safi: c[2].into(),
                            flags: c[3],
                        })
                        .collect(),
                })
            }
            code::FOUR_OCTET_AS => {
                exact_len("four-octet-as", at, value, 4)?;
                let asn = u32::from_be_bytes([value[0], value[1], value[2], value[3]]);
                // RFC 7607 §2: zero as the peer AS in an OPEN MUST be answered with Bad Peer
                // AS; the data is the field as received, as for My AS.
                if asn == 0 {
                    return Err(DecodeError::new(
                        ErrorKind::BadPeerAs,
                        "four_octet_as",
                        at + 2,
                        "4-octet AS capability carries AS 0, which is reserved (RFC 7607 §2)",
                    )
                    .with_data(value.to_vec()));
                }
                Self::FourOctetAs(asn)
            }
            code::ADD_PATH => {
                multiple_of("add-path", at, value, 4)?;
                Self::AddPath(
                    value
                        .chunks_exact(4)
                        .map(|c| AddPathFamily {
                            afi: be16(c).into(),
                            safi: c[2].into(),
                            send_receive: c[3],
                        })
                        .collect(),
                )
            }
            code::ENHANCED_ROUTE_REFRESH => {
                exact_len("enhanced-route-refresh", at, value, 0)?;
                Self::EnhancedRouteRefresh
            }
            code::FQDN => {
                let host_len = usize::from(
                    *value
                        .first()
                        .ok_or_else(|| malformed("fqdn", at, "empty".into()))?,
                );
                let hostname = value.get(1..1 + host_len).ok_or_else(|| {
                    malformed("fqdn", at, format!("hostname length {host_len} overruns"))
                })?;
                let rest = &value[1 + host_len..];
                let dom_len = usize::from(
                    *rest
                        .first()
                        .ok_or_else(|| malformed("fqdn", at, "no domain".into()))?,
                );
                let domain = rest
                    .get(1..1 + dom_len)
                    .filter(|d| d.len() == rest.len() - 1)
                    .ok_or_else(|| {
                        malformed(
                            "fqdn",
                            at,
                            format!("domain length {dom_len} does not fill the value"),
                        )
                    })?;
                Self::Fqdn {
                    hostname: hostname.to_vec(),
                    domain: domain.to_vec(),
                }
            }
            other => Self::Unknown {
                code: other,
                data: value.to_vec(),
            },
        })
    }

    pub fn code(&self) -> u8 {
        match self {
            Self::Multiprotocol { .. } => code::MULTIPROTOCOL,
            Self::RouteRefresh => code::ROUTE_REFRESH,
            Self::ExtendedNextHop(_) => code::EXTENDED_NEXT_HOP,
            Self::ExtendedMessage => code::EXTENDED_MESSAGE,
            Self::Role(_) => code::ROLE,
            Self::GracefulRestart(_) => code::GRACEFUL_RESTART,
            Self::FourOctetAs(_) => code::FOUR_OCTET_AS,
            Self::AddPath(_) => code::ADD_PATH,
            Self::EnhancedRouteRefresh => code::ENHANCED_ROUTE_REFRESH,
            Self::Fqdn { .. } => code::FQDN,
            Self::Unknown { code, .. } => *code,
        }
    }

    /// Length of the value alone.
    pub fn value_len(&self) -> usize {
        match self {
            Self::Multiprotocol { .. } | Self::FourOctetAs(_) => 4,
            Self::RouteRefresh | Self::ExtendedMessage | Self::EnhancedRouteRefresh => 0,
            Self::ExtendedNextHop(f) => 6 * f.len(),
            Self::Role(_) => 1,
            Self::GracefulRestart(gr) => 2 + 4 * gr.families.len(),
            Self::AddPath(f) => 4 * f.len(),
            Self::Fqdn { hostname, domain } => 2 + hostname.len() + domain.len(),
            Self::Unknown { data, .. } => data.len(),
        }
    }

    /// Code, length and value; the value must fit 255 octets (checked where built).
    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_u8(self.code());
        buf.put_u8(self.value_len() as u8);
        match self {
            Self::Multiprotocol { afi, safi } => {
                buf.put_u16((*afi).into());
                buf.put_u8(0);
                buf.put_u8((*safi).into());
            }
            Self::RouteRefresh | Self::ExtendedMessage | Self::EnhancedRouteRefresh => {}
            Self::ExtendedNextHop(families) => {
                for f in families {
                    buf.put_u16(f.afi.into());
                    buf.put_u16(f.safi);
                    buf.put_u16(f.next_hop_afi.into());
                }
            }
            Self::Role(role) => buf.put_u8(role.code()),
            Self::GracefulRestart(gr) => {
                buf.put_u16((u16::from(gr.flags) << 12) | (gr.restart_time & 0x0fff));
                for f in &gr.families {
                    buf.put_u16(f.afi.into());
                    buf.put_u8(f.safi.into());
                    buf.put_u8(f.flags);
                }
            }
            Self::FourOctetAs(asn) => buf.put_u32(*asn),
            Self::AddPath(families) => {
                for f in families {
                    buf.put_u16(f.afi.into());
                    buf.put_u8(f.safi.into());
                    buf.put_u8(f.send_receive);
                }
            }
            Self::Fqdn { hostname, domain } => {
                buf.put_u8(hostname.len() as u8);
                buf.put_slice(hostname);
                buf.put_u8(domain.len() as u8);
                buf.put_slice(domain);
            }
            Self::Unknown { data, .. } => buf.put_slice(data),
        }
    }

    /// The name used in `ferry decode` output.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Multiprotocol { .. } => "multiprotocol",
            Self::RouteRefresh => "route-refresh",
            Self::ExtendedNextHop(_) => "extended-next-hop",
            Self::ExtendedMessage => "extended-message",
            Self::Role(_) => "role",
            Self::GracefulRestart(_) => "graceful-restart",
            Self::FourOctetAs(_) => "four-octet-as",
            Self::AddPath(_) => "add-path",
            Self::EnhancedRouteRefresh => "enhanced-route-refresh",
            Self::Fqdn { .. } => "fqdn",
            Self::Unknown { .. } => "unknown",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::notification::{open_message_error, UNSPECIFIC};

    fn round_trip(wire: &[u8]) -> Capability {
        let cap = Capability::decode_value(wire[0], &wire[2..], 0).unwrap();
        let mut out = BytesMut::new();
        cap.encode(&mut out);
        assert_eq!(&out[..], wire);
        cap
    }

    #[test]
    fn graceful_restart_with_n_bit_and_family() {
        let cap = round_trip(&[64, 6, 0x40, 0x78, 0, 1, 1, 0x80]);
        let Capability::GracefulRestart(gr) = cap else {
            panic!("{cap:?}")
        };
        assert!(gr.notification() && !gr.restart_state());
        assert_eq!(gr.restart_time, 120);
        assert!(gr.families[0].forwarding_state());
    }

    #[test]
    fn fqdn_and_unknown_round_trip() {
        assert_eq!(
            round_trip(&[73, 5, 2, b'r', b'1', 1, b'x']),
            Capability::Fqdn {
                hostname: b"r1".to_vec(),
                domain: b"x".to_vec()
            }
        );
        assert_eq!(
            round_trip(&[71, 1, 9]),
            Capability::Unknown {
                code: 71,
                data: vec![9]
            }
        );
    }

    #[test]
    fn wrong_length_is_open_unspecific_naming_the_capability() {
        let e = Capability::decode_value(65, &[0, 0, 1], 40).unwrap_err();
        assert_eq!(
            e.kind.code_subcode(),
            (open_message_error::CODE, UNSPECIFIC)
        );
        assert_eq!(e.offset, 40);
        assert!(e.detail.contains("four-octet-as"), "{}", e.detail);
    }
}
