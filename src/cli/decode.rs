//! `ferry decode`: reads input, prints JSON lines, maps the outcome to an exit code.

use std::io::{Read, Write};
use std::path::PathBuf;

use clap::Args;

use crate::inspect::{decode_pcap, parse_hex, Decoded, Decoder, InputError};

#[derive(Debug, Args)]
pub struct DecodeArgs {
    /// Messages as hex; several arguments are joined. `-` or nothing reads hex from stdin.
    #[arg(conflicts_with_all = ["raw", "pcap"])]
    pub hex: Vec<String>,
    /// A file of raw message bytes, back to back (`-`: stdin).
    #[arg(long, value_name = "FILE", conflicts_with = "pcap")]
    pub raw: Option<PathBuf>,
    /// A pcap capture (`-`: stdin, e.g. from `tcpdump -w -`, decoded when it ends); every TCP
    /// connection on port 179 is reassembled and decoded.
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
    /// Decode AS_PATH and AGGREGATOR with 2-octet ASNs whatever the OPENs say.
    #[arg(long)]
    pub as2: bool,
}

/// The bytes of `path`, or of stdin for `-`.
fn read_file(path: &PathBuf) -> Result<Vec<u8>, String> {
    if path.as_os_str() == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| format!("cannot read stdin: {e}"))?;
        return Ok(bytes);
    }
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn decode(args: &DecodeArgs) -> Result<Decoded, String> {
    let bad = |e: InputError| e.to_string();
    if let Some(path) = &args.pcap {
        return decode_pcap(&read_file(path)?, args.as2).map_err(bad);
    }
    let bytes = if let Some(path) = &args.raw {
        read_file(path)?
    } else if args.hex.is_empty() || args.hex == ["-"] {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| format!("cannot read stdin: {e}"))?;
        parse_hex(&text).map_err(bad)?
    } else {
        parse_hex(&args.hex.join("")).map_err(bad)?
    };
    if bytes.is_empty() {
        return Err("no input: give hex, --raw FILE or --pcap FILE".into());
    }
    Decoder::new(args.as2)
        .decode_stream(&bytes, |_, _| {})
        .map_err(bad)
}

pub fn run(args: DecodeArgs) -> i32 {
    match decode(&args) {
        Ok(decoded) => {
            let mut out = std::io::stdout().lock();
            for line in &decoded.lines {
                // A closed stdout (e.g. `| head`) is not an error of the decode.
                if writeln!(out, "{line}").is_err() {
                    return 0;
                }
            }
            i32::from(decoded.failed)
        }
        Err(msg) => {
            eprintln!("ferry decode: {msg}");
            2
        }
    }
}
