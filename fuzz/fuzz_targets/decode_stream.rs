//! `ferry decode` input paths on arbitrary bytes: a raw stream of back-to-back messages
//! (`Decoder::decode_stream`, with and without `--as2`) and a pcap capture
//! (`pcap::bgp_streams`, then every reassembled stream decoded as `decode_pcap` does).
//! Property: never panics, never hangs.
#![no_main]

use ferry::inspect::{pcap, Decoder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for force_as2 in [false, true] {
        let _ = Decoder::new(force_as2).decode_stream(data, |_, _| {});
    }
    if let Ok(streams) = pcap::bgp_streams(data) {
        let mut decoder = Decoder::new(false);
        for (dir, stream) in &streams {
            let _ = dir.to_string();
            let _ = decoder.decode_stream(&stream.bytes, |offset, _| {
                let _ = stream.packet_at(offset);
            });
        }
    }
    let _ = ferry::inspect::decode_pcap(data, false);
});
