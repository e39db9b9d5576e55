//! Inputs that crashed `ferry decode` or the wire codec under `cargo fuzz` (fuzz/README.md),
//! minimised, each kept as a hex literal with the property it broke.

use ferry::inspect::{decode_pcap, parse_hex, pcap, Decoder};

fn h(text: &str) -> Vec<u8> {
    parse_hex(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

/// fuzz target `decode_stream`: a raw-IP pcap (link type 101) whose only packet is 17 octets
/// of IPv4 with protocol 6 (TCP) and IHL 5 panicked reading the destination address past the
/// end (pcap.rs `tcp_segment`). RFC 791 §3.1: the fixed header is 20 octets; such a packet
/// is skipped.
#[test]
fn pcap_ipv4_packet_shorter_than_its_fixed_header_is_skipped() {
    let file = h(concat!(
        // pcap header: little-endian magic, v2.4, snaplen 65535, link type 101 (raw IP)
        "d4c3b2a1 0200 0400 00000000 00000000 ffff0000 65000000",
        // record: ts 0.0, caplen 17, len 17
        "00000000 00000000 11000000 11000000",
        // IPv4, IHL 5, total length 17, protocol 6, source 192.0.2.1, destination cut after 1 octet
        "45000011 00000000 4006 0000 c0000201 c0",
    ));
    let streams = pcap::bgp_streams(&file).expect("a well-formed pcap");
    assert!(streams.is_empty(), "{streams:?}");
    let decoded = decode_pcap(&file, false).expect("a pcap without BGP decodes to nothing");
    assert!(decoded.lines.is_empty() && !decoded.failed);
}

/// Found while writing the `decode_stream` target: a Cease / Hard Reset (RFC 8538 §3) whose data
/// is another Hard Reset, and so on for the whole of a 65535-octet extended message, was rendered
/// one nested JSON object per 2 octets (32758 levels) and overflowed the main thread's stack.
/// Only the NOTIFICATION a Hard Reset wraps is decoded (one level); its data stays hex.
#[test]
fn hard_reset_nested_in_hard_resets_renders_one_level() {
    // OPEN, AS 65001, hold 90, id 1.1.1.1, capabilities 4-octet AS 65001 and extended message.
    let open = h(
        "ffffffffffffffffffffffffffffffff 0027 01 04 fde9 005a 01010101 0a 0208 4104 0000fde9 0600",
    );
    let mut stream = open.clone();
    stream.extend_from_slice(&h("ffffffffffffffffffffffffffffffff ffff 03"));
    stream.extend(std::iter::repeat_n([6u8, 9], (65535 - 19) / 2).flatten());
    assert_eq!(stream.len(), open.len() + 65535);
    // The size of a main thread's stack, where `ferry decode` runs.
    let lines = std::thread::Builder::new()
        .stack_size(8 << 20)
        .spawn(move || {
            let decoded = Decoder::new(false)
                .decode_stream(&stream, |_, _| {})
                .expect("two whole messages");
            assert!(!decoded.failed, "{:?}", decoded.lines.last());
            decoded.lines
        })
        .expect("spawn")
        .join()
        .expect("decoding a nested Hard Reset returns");
    assert_eq!(lines.len(), 2);
    let n = &lines[1];
    assert_eq!(
        (n["code"].as_u64(), n["subcode"].as_u64()),
        (Some(6), Some(9))
    );
    let inner = &n["hard_reset"];
    assert_eq!(
        (inner["code"].as_u64(), inner["subcode"].as_u64()),
        (Some(6), Some(9))
    );
    assert_eq!(
        inner["data"].as_str().map(str::len),
        Some(2 * (65535 - 19 - 4))
    );
    assert!(
        inner.get("hard_reset").is_none(),
        "rendered more than one level"
    );
}
