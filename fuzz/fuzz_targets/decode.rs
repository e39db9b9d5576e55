//! Wire decoder: never panics, and decode -> encode -> decode is stable.
//!
//! The input is split into messages with `split_frame` (as a session reads a TCP stream) and
//! each message is decoded under all four contexts (4-octet AS on/off x extended messages
//! on/off). The whole input is also decoded as one message, which covers the length checks of
//! `Message::decode` itself. For every message that decodes:
//! - its encoding has `encoded_len` octets and decodes again;
//! - the second decode equals the first (an UPDATE's `issues` excepted when the first had any:
//!   RFC 7606 drops the malformed attributes, so the re-encoding no longer carries the fault;
//!   the attributes, withdrawn routes and NLRI must still be equal);
//! - re-encoding the second decode gives the same octets, and decoding those gives the second
//!   decode exactly (a fixed point).
//!
//! With `FERRY_FUZZ_EXACT=1` in the environment it also checks that a message without RFC 7606
//! issues re-encodes to the octets it was decoded from (the codec's byte-for-byte contract).
#![no_main]

use std::sync::OnceLock;

use bytes::BytesMut;
use ferry::wire::{split_frame, Context, Message};
use libfuzzer_sys::fuzz_target;

const CONTEXTS: [Context; 4] = [
    Context {
        four_octet_as: true,
        extended_message: false,
    },
    Context {
        four_octet_as: false,
        extended_message: false,
    },
    Context {
        four_octet_as: true,
        extended_message: true,
    },
    Context {
        four_octet_as: false,
        extended_message: true,
    },
];

fn exact() -> bool {
    static EXACT: OnceLock<bool> = OnceLock::new();
    *EXACT.get_or_init(|| std::env::var_os("FERRY_FUZZ_EXACT").is_some_and(|v| v == "1"))
}

fn without_issues(m: &Message) -> Message {
    let mut m = m.clone();
    if let Message::Update(u) = &mut m {
        u.issues.clear();
    }
    m
}

fn has_issues(m: &Message) -> bool {
    matches!(m, Message::Update(u) if !u.issues.is_empty())
}

fn round_trip(msg: &[u8], ctx: &Context) {
    let first = match Message::decode(msg, ctx) {
        Ok(m) => m,
        Err(e) => {
            // The NOTIFICATION for the error must be buildable and encodable too.
            let n = Message::Notification(e.notification());
            let _ = n.to_bytes(ctx);
            return;
        }
    };
    let bytes1 = first.to_bytes(ctx);
    assert_eq!(
        bytes1.len(),
        first.encoded_len(ctx),
        "encoded_len of {first:?}"
    );
    if exact() && !has_issues(&first) {
        assert_eq!(
            hex(&bytes1),
            hex(msg),
            "{ctx:?}: {first:?} does not re-encode byte for byte"
        );
    }
    let second = Message::decode(&bytes1, ctx).unwrap_or_else(|e| {
        panic!(
            "{ctx:?}: re-encoding {} of {first:?} does not decode: {e:?}",
            hex(&bytes1)
        )
    });
    if has_issues(&first) {
        assert_eq!(
            without_issues(&first),
            without_issues(&second),
            "{ctx:?}: decode -> encode -> decode changed the message (issues aside); \
             input {} re-encoded {}",
            hex(msg),
            hex(&bytes1)
        );
    } else {
        assert_eq!(
            first,
            second,
            "{ctx:?}: decode -> encode -> decode changed the message; input {} re-encoded {}",
            hex(msg),
            hex(&bytes1)
        );
    }
    let bytes2 = second.to_bytes(ctx);
    assert_eq!(
        hex(&bytes1),
        hex(&bytes2),
        "{ctx:?}: second encoding differs from the first; input {}",
        hex(msg)
    );
    let third = Message::decode(&bytes2, ctx).expect("second encoding decodes");
    assert_eq!(
        second,
        third,
        "{ctx:?}: not a fixed point; input {}",
        hex(msg)
    );
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|o| format!("{o:02x}")).collect()
}

fuzz_target!(|data: &[u8]| {
    for ctx in &CONTEXTS {
        let mut buf = BytesMut::from(data);
        while let Ok(Some(frame)) = split_frame(&mut buf, ctx.max_message_len()) {
            round_trip(&frame, ctx);
        }
        // The input as one message: covers the length checks of Message::decode.
        round_trip(data, ctx);
    }
});
