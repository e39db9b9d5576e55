//! The BFD Control packet (RFC 5880 §4.1): decoder and encoder side by side.
//!
//! Contract: [`ControlPacket::decode`] takes the UDP payload as received and either returns a
//! packet that passed every check of RFC 5880 §6.8.6 that needs no session state, or a
//! [`PacketError`] naming the field and its value. It never panics on any input. Ferry
//! configures no authentication, so a packet with the A bit is refused (§6.8.6: "If the A bit
//! is set and no authentication is in use (bfd.AuthType is zero), the packet MUST be
//! discarded"). [`ControlPacket::encode`] writes the 24 octets of a packet without
//! authentication; it cannot fail.
//! Never does: I/O, clocks, session decisions (that is [`super::session`]).

use std::fmt;

/// Octets of a Control packet without the Authentication Section (§4.1 "Length").
pub const LEN: usize = 24;

/// RFC 5880 §4.1 "Diag" (IANA "BFD Diagnostic Codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Diag {
    None,
    ControlDetectionTimeExpired,
    EchoFunctionFailed,
    NeighborSignaledSessionDown,
    ForwardingPlaneReset,
    PathDown,
    ConcatenatedPathDown,
    AdministrativelyDown,
    ReverseConcatenatedPathDown,
    /// 9-31: reserved for future use; kept so it re-encodes.
    Unknown(u8),
}

impl Diag {
    pub fn from_code(code: u8) -> Self {
        match code & 0x1f {
            0 => Self::None,
            1 => Self::ControlDetectionTimeExpired,
            2 => Self::EchoFunctionFailed,
            3 => Self::NeighborSignaledSessionDown,
            4 => Self::ForwardingPlaneReset,
            5 => Self::PathDown,
            6 => Self::ConcatenatedPathDown,
            7 => Self::AdministrativelyDown,
            8 => Self::ReverseConcatenatedPathDown,
            c => Self::Unknown(c),
        }
    }

    pub fn code(self) -> u8 {
        match self {
            Self::None => 0,
            Self::ControlDetectionTimeExpired => 1,
            Self::EchoFunctionFailed => 2,
            Self::NeighborSignaledSessionDown => 3,
            Self::ForwardingPlaneReset => 4,
            Self::PathDown => 5,
            Self::ConcatenatedPathDown => 6,
            Self::AdministrativelyDown => 7,
            Self::ReverseConcatenatedPathDown => 8,
            Self::Unknown(c) => c & 0x1f,
        }
    }

    /// The RFC's wording, as operators read it in FRR too.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "no diagnostic",
            Self::ControlDetectionTimeExpired => "control detection time expired",
            Self::EchoFunctionFailed => "echo function failed",
            Self::NeighborSignaledSessionDown => "neighbor signaled session down",
            Self::ForwardingPlaneReset => "forwarding plane reset",
            Self::PathDown => "path down",
            Self::ConcatenatedPathDown => "concatenated path down",
            Self::AdministrativelyDown => "administratively down",
            Self::ReverseConcatenatedPathDown => "reverse concatenated path down",
            Self::Unknown(_) => "reserved diagnostic",
        }
    }
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unknown(c) => write!(f, "reserved diagnostic {c}"),
            d => f.write_str(d.name()),
        }
    }
}

/// RFC 5880 §4.1 "Sta" and §6.2 session states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    AdminDown,
    Down,
    Init,
    Up,
}

impl State {
    pub fn from_code(code: u8) -> Self {
        match code & 3 {
            0 => Self::AdminDown,
            1 => Self::Down,
            2 => Self::Init,
            _ => Self::Up,
        }
    }

    pub fn code(self) -> u8 {
        match self {
            Self::AdminDown => 0,
            Self::Down => 1,
            Self::Init => 2,
            Self::Up => 3,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::AdminDown => "AdminDown",
            Self::Down => "Down",
            Self::Init => "Init",
            Self::Up => "Up",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One Control packet without authentication.
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |Vers |  Diag   |Sta|P|F|C|A|D|M|  Detect Mult  |    Length     |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                       My Discriminator                        |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                      Your Discriminator                       |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                    Desired Min TX Interval                    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                   Required Min RX Interval                    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                 Required Min Echo RX Interval                 |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
/// Intervals are in microseconds. Version is always 1; A and M are always clear (a decoded
/// packet with either set is refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlPacket {
    pub diag: Diag,
    pub state: State,
    pub poll: bool,
    pub final_: bool,
    /// C: the sender's BFD does not share fate with its control plane.
    pub control_plane_independent: bool,
    pub demand: bool,
    pub detect_mult: u8,
    pub my_discriminator: u32,
    pub your_discriminator: u32,
    pub desired_min_tx_us: u32,
    pub required_min_rx_us: u32,
    pub required_min_echo_rx_us: u32,
}

/// Why a received packet was discarded (RFC 5880 §6.8.6), naming the field and its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("BFD packet of {0} octets is shorter than the 24 of a Control packet")]
    Short(usize),
    #[error("BFD Version {0} is not 1")]
    Version(u8),
    #[error("BFD Length {length} is below {min} or above the {received} octets received")]
    Length {
        length: u8,
        min: u8,
        received: usize,
    },
    #[error("BFD Detect Mult is 0")]
    DetectMultZero,
    #[error("BFD Multipoint (M) bit is set")]
    Multipoint,
    #[error("BFD My Discriminator is 0")]
    MyDiscriminatorZero,
    #[error("BFD Your Discriminator is 0 in state {0} (allowed only in Down and AdminDown)")]
    YourDiscriminatorZero(State),
    #[error("BFD Authentication Present (A) bit is set, but no authentication is configured")]
    AuthenticationPresent,
}

const POLL: u8 = 0x20;
const FINAL: u8 = 0x10;
const CPI: u8 = 0x08;
const AUTH: u8 = 0x04;
const DEMAND: u8 = 0x02;
const MULTIPOINT: u8 = 0x01;

impl ControlPacket {
    /// Check and decode a received UDP payload (RFC 5880 §6.8.6, the checks before a session
    /// is selected).
    pub fn decode(buf: &[u8]) -> Result<Self, PacketError> {
        let Some(b) = buf.get(..LEN) else {
            return Err(PacketError::Short(buf.len()));
        };
        let version = b[0] >> 5;
        if version != 1 {
            return Err(PacketError::Version(version));
        }
        let flags = b[1];
        let length = b[3];
        let auth = flags & AUTH != 0;
        let min = if auth { 26 } else { LEN as u8 };
        if length < min || usize::from(length) > buf.len() {
            return Err(PacketError::Length {
                length,
                min,
                received: buf.len(),
            });
        }
        if auth {
            return Err(PacketError::AuthenticationPresent);
        }
        let detect_mult = b[2];
        if detect_mult == 0 {
            return Err(PacketError::DetectMultZero);
        }
        if flags & MULTIPOINT != 0 {
            return Err(PacketError::Multipoint);
        }
        let word = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let state = State::from_code(flags >> 6);
        let p = ControlPacket {
            diag: Diag::from_code(b[0]),
            state,
            poll: flags & POLL != 0,
            final_: flags & FINAL != 0,
            control_plane_independent: flags & CPI != 0,
            demand: flags & DEMAND != 0,
            detect_mult,
            my_discriminator: word(4),
            your_discriminator: word(8),
            desired_min_tx_us: word(12),
            required_min_rx_us: word(16),
            required_min_echo_rx_us: word(20),
        };
        if p.my_discriminator == 0 {
            return Err(PacketError::MyDiscriminatorZero);
        }
        if p.your_discriminator == 0 && !matches!(state, State::Down | State::AdminDown) {
            return Err(PacketError::YourDiscriminatorZero(state));
        }
        Ok(p)
    }

    /// The 24 octets on the wire (Version 1, no authentication, M clear).
    pub fn encode(&self) -> [u8; LEN] {
        let mut b = [0u8; LEN];
        b[0] = (1 << 5) | self.diag.code();
        let mut flags = self.state.code() << 6;
        for (set, bit) in [
            (self.poll, POLL),
            (self.final_, FINAL),
            (self.control_plane_independent, CPI),
            (self.demand, DEMAND),
        ] {
            if set {
                flags |= bit;
            }
        }
        b[1] = flags;
        b[2] = self.detect_mult;
        b[3] = LEN as u8;
        for (i, w) in [
            self.my_discriminator,
            self.your_discriminator,
            self.desired_min_tx_us,
            self.required_min_rx_us,
            self.required_min_echo_rx_us,
        ]
        .into_iter()
        .enumerate()
        {
            b[4 + 4 * i..8 + 4 * i].copy_from_slice(&w.to_be_bytes());
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A packet as FRR 8.4 bfdd sends it while Down at its slow rate (1 s), before it knows
    /// our discriminator.
    const FRR_DOWN: [u8; 24] = [
        0x20, 0x40, 0x03, 0x18, 0x5a, 0x3b, 0x10, 0x01, 0, 0, 0, 0, 0x00, 0x0f, 0x42, 0x40, 0x00,
        0x01, 0x86, 0xa0, 0x00, 0x00, 0xc3, 0x50,
    ];

    fn up() -> ControlPacket {
        ControlPacket {
            diag: Diag::None,
            state: State::Up,
            poll: false,
            final_: false,
            control_plane_independent: false,
            demand: false,
            detect_mult: 3,
            my_discriminator: 7,
            your_discriminator: 9,
            desired_min_tx_us: 100_000,
            required_min_rx_us: 100_000,
            required_min_echo_rx_us: 0,
        }
    }

    #[test]
    fn decodes_a_down_packet_field_by_field() {
        let p = ControlPacket::decode(&FRR_DOWN).unwrap();
        assert_eq!(p.state, State::Down);
        assert_eq!(p.diag, Diag::None);
        assert_eq!(p.detect_mult, 3);
        assert_eq!(p.my_discriminator, 0x5a3b_1001);
        assert_eq!(p.your_discriminator, 0);
        assert_eq!(p.desired_min_tx_us, 1_000_000);
        assert_eq!(p.required_min_rx_us, 100_000);
        assert_eq!(p.required_min_echo_rx_us, 50_000);
        assert!(!p.poll && !p.final_ && !p.demand && !p.control_plane_independent);
        assert_eq!(p.encode(), FRR_DOWN);
    }

    #[test]
    fn encodes_flags_and_diag() {
        let mut p = up();
        p.poll = true;
        p.diag = Diag::ControlDetectionTimeExpired;
        let b = p.encode();
        assert_eq!(b[0], 0x21);
        assert_eq!(b[1], 0xc0 | 0x20);
        assert_eq!(b[3], 24);
        p.poll = false;
        p.final_ = true;
        p.demand = true;
        p.control_plane_independent = true;
        assert_eq!(p.encode()[1], 0xc0 | 0x10 | 0x08 | 0x02);
    }

    /// RFC 5880 §6.8.6: each check, with the error naming the field and the value.
    #[test]
    fn refuses_what_section_6_8_6_discards() {
        let good = up().encode();
        let with = |f: &dyn Fn(&mut [u8; 24])| {
            let mut b = good;
            f(&mut b);
            ControlPacket::decode(&b).unwrap_err()
        };
        assert_eq!(
            ControlPacket::decode(&good[..23]).unwrap_err(),
            PacketError::Short(23)
        );
        assert_eq!(with(&|b| b[0] = 0x40), PacketError::Version(2));
        assert_eq!(with(&|b| b[0] = 0x00), PacketError::Version(0));
        assert_eq!(
            with(&|b| b[3] = 23),
            PacketError::Length {
                length: 23,
                min: 24,
                received: 24
            }
        );
        assert_eq!(
            with(&|b| b[3] = 25),
            PacketError::Length {
                length: 25,
                min: 24,
                received: 24
            }
        );
        assert_eq!(with(&|b| b[2] = 0), PacketError::DetectMultZero);
        assert_eq!(with(&|b| b[1] |= MULTIPOINT), PacketError::Multipoint);
        assert_eq!(with(&|b| b[4..8].fill(0)), PacketError::MyDiscriminatorZero);
        assert_eq!(
            with(&|b| b[8..12].fill(0)),
            PacketError::YourDiscriminatorZero(State::Up)
        );
        let mut init = up();
        init.state = State::Init;
        init.your_discriminator = 0;
        assert_eq!(
            ControlPacket::decode(&init.encode()).unwrap_err(),
            PacketError::YourDiscriminatorZero(State::Init)
        );
        // Authentication: a 24-octet packet with A is too short for any auth section; a long
        // enough one is refused since we configure none.
        assert_eq!(
            with(&|b| b[1] |= AUTH),
            PacketError::Length {
                length: 24,
                min: 26,
                received: 24
            }
        );
        let mut long = [0u8; 28];
        long[..24].copy_from_slice(&good);
        long[1] |= AUTH;
        long[3] = 28;
        assert_eq!(
            ControlPacket::decode(&long).unwrap_err(),
            PacketError::AuthenticationPresent
        );
        // A zero Your Discriminator is fine while Down or AdminDown.
        for s in [State::Down, State::AdminDown] {
            let mut p = up();
            p.state = s;
            p.your_discriminator = 0;
            assert_eq!(ControlPacket::decode(&p.encode()).unwrap(), p);
        }
    }

    #[test]
    fn errors_name_field_and_value() {
        assert_eq!(
            PacketError::Version(2).to_string(),
            "BFD Version 2 is not 1"
        );
        assert!(PacketError::YourDiscriminatorZero(State::Up)
            .to_string()
            .contains("state Up"));
    }

    #[test]
    fn diag_codes_round_trip() {
        for c in 0..32u8 {
            assert_eq!(Diag::from_code(c).code(), c);
        }
        assert_eq!(Diag::from_code(1), Diag::ControlDetectionTimeExpired);
        assert_eq!(Diag::from_code(9), Diag::Unknown(9));
    }

    fn arb_state() -> impl Strategy<Value = State> {
        (0u8..4).prop_map(State::from_code)
    }

    prop_compose! {
        fn arb_packet()(
            diag in 0u8..32, state in arb_state(), poll: bool, final_: bool, cpi: bool,
            demand: bool, detect_mult in 1u8.., my in 1u32.., your: u32, tx: u32, rx: u32,
            echo: u32,
        ) -> ControlPacket {
            let your = if matches!(state, State::Down | State::AdminDown) || your != 0 {
                your
            } else {
                1
            };
            ControlPacket {
                diag: Diag::from_code(diag), state, poll, final_,
                control_plane_independent: cpi, demand, detect_mult,
                my_discriminator: my, your_discriminator: your,
                desired_min_tx_us: tx, required_min_rx_us: rx, required_min_echo_rx_us: echo,
            }
        }
    }

    proptest! {
        #[test]
        fn round_trips(p in arb_packet()) {
            let b = p.encode();
            prop_assert_eq!(ControlPacket::decode(&b).unwrap(), p);
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(p) = ControlPacket::decode(&bytes) {
                // What decodes re-encodes to the same 24 octets, apart from a longer Length.
                let b = p.encode();
                prop_assert_eq!(&b[..3], &bytes[..3]);
                prop_assert_eq!(&b[4..], &bytes[4..24]);
            }
        }
    }
}
