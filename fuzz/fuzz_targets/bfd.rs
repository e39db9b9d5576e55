//! BFD: the Control packet decoder never panics, what decodes re-encodes to the same 24
//! octets, and a session fed any sequence of decoded packets and timer expiries never panics
//! and only sends packets that decode again, never with both Poll and Final.
//!
//! Input: a sequence of records `[delay_ms, len, bytes...]`; each advances the fake clock by
//! `delay_ms`, runs due timers, then hands `bytes` (up to `len` octets) to the decoder and, if
//! it decodes, to the session.
#![no_main]

use std::time::{Duration, Instant};

use ferry::bfd::{Action, ControlPacket, Session, SessionConfig};
use libfuzzer_sys::fuzz_target;

fn check_sent(actions: &[Action]) {
    for a in actions {
        if let Action::Send(p) = a {
            assert!(!(p.poll && p.final_), "P and F together: {p:?}");
            assert_eq!(
                ControlPacket::decode(&p.encode()),
                Ok(*p),
                "sent packet decodes"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let t0 = Instant::now();
    let config = SessionConfig {
        desired_min_tx: Duration::from_millis(100),
        required_min_rx: Duration::from_millis(100),
        detect_mult: 3,
    };
    let mut s = Session::new(config, 0x1234_5678, 7, t0);
    let mut now = t0;
    let mut rest = data;
    while rest.len() >= 2 {
        now += Duration::from_millis(u64::from(rest[0]) * 4);
        let len = usize::from(rest[1]).min(rest.len() - 2);
        let bytes = &rest[2..2 + len];
        rest = &rest[2 + len..];
        while let Some(t) = s.poll_timeout().filter(|t| *t <= now) {
            let a = s.handle_timeout(t);
            check_sent(&a);
        }
        if let Ok(p) = ControlPacket::decode(bytes) {
            let b = p.encode();
            assert_eq!(&b[..3], &bytes[..3]);
            assert_eq!(&b[4..], &bytes[4..24]);
            let a = s.handle(now, &p);
            check_sent(&a);
        }
        let snap = s.snapshot();
        assert_eq!(snap.local_discriminator, 0x1234_5678);
    }
});
