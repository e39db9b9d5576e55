//! Reads a classic pcap capture and returns the TCP payload of port-179 connections, each
//! direction reassembled in sequence order, as byte streams with the time each chunk arrived.
//!
//! Link types: Ethernet (1), raw IP (101), Linux cooked v1 (113) and v2 (276), BSD loopback (0).
//! IPv4 and IPv6 (no extension headers other than none). Retransmitted and overlapping segments
//! are trimmed; a gap that is never filled ends that direction's stream there.
//! Never does: write files, follow pcapng (it says so instead).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PcapError {
    #[error("not a pcap file: magic number {0:#010x} (pcapng is not supported; convert with `tshark -F pcap`)")]
    BadMagic(u32),
    #[error("pcap file truncated at offset {0}")]
    Truncated(usize),
    #[error("pcap link type {0} is not supported (Ethernet, raw IP, Linux cooked, loopback are)")]
    LinkType(u32),
}

/// One direction of one TCP connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Direction {
    pub src: (IpAddr, u16),
    pub dst: (IpAddr, u16),
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ep = |(a, p): (IpAddr, u16)| match a {
            IpAddr::V4(a) => format!("{a}:{p}"),
            IpAddr::V6(a) => format!("[{a}]:{p}"),
        };
        write!(f, "{} -> {}", ep(self.src), ep(self.dst))
    }
}

/// The payload of one direction: the reassembled bytes and, for each in-order chunk, the
/// offset where it starts and the packet's index in the capture.
#[derive(Debug, Default)]
pub struct Stream {
    pub bytes: Vec<u8>,
    pub chunks: Vec<(usize, usize)>,
    next_seq: Option<u32>,
    pending: BTreeMap<u32, (usize, Vec<u8>)>,
}

impl Stream {
    fn push(&mut self, seq: u32, syn: bool, payload: &[u8], packet: usize) {
        let seq = if syn { seq.wrapping_add(1) } else { seq };
        let next = *self.next_seq.get_or_insert(seq);
        if payload.is_empty() {
            return;
        }
        let ahead = seq.wrapping_sub(next);
        if ahead as i32 > 0 {
            self.pending.insert(seq, (packet, payload.to_vec()));
            return;
        }
        self.append(seq, payload, packet);
        while let Some((&s, _)) = self.pending.iter().next() {
            let n = self.next_seq.unwrap_or(s);
            if (s.wrapping_sub(n) as i32) > 0 {
                break;
            }
            if let Some((p, data)) = self.pending.remove(&s) {
                self.append(s, &data, p);
            }
        }
    }

    /// Append the part of `payload` at or after the next expected sequence number.
    fn append(&mut self, seq: u32, payload: &[u8], packet: usize) {
        let next = self.next_seq.unwrap_or(seq);
        let skip = next.wrapping_sub(seq) as usize;
        if skip >= payload.len() {
            return;
        }
        self.chunks.push((self.bytes.len(), packet));
        self.bytes.extend_from_slice(&payload[skip..]);
        self.next_seq = Some(next.wrapping_add((payload.len() - skip) as u32));
    }

    /// The capture packet index in which the byte at `offset` arrived.
    pub fn packet_at(&self, offset: usize) -> usize {
        match self.chunks.binary_search_by(|(o, _)| o.cmp(&offset)) {
            Ok(i) => self.chunks[i].1,
            Err(0) => 0,
            Err(i) => self.chunks[i - 1].1,
        }
    }
}

fn rd16(b: &[u8], le: bool) -> u16 {
    if le {
        u16::from_le_bytes([b[0], b[1]])
    } else {
        u16::from_be_bytes([b[0], b[1]])
    }
}

fn rd32(b: &[u8], le: bool) -> u32 {
    if le {
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    } else {
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }
}

/// Streams of every TCP connection with port 179 on either side, in order of first packet.
pub fn bgp_streams(file: &[u8]) -> Result<Vec<(Direction, Stream)>, PcapError> {
    let head = file.get(..24).ok_or(PcapError::Truncated(file.len()))?;
    let magic = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    let le = match magic {
        0xa1b2_c3d4 | 0xa1b2_3c4d => true,
        0xd4c3_b2a1 | 0x4d3c_b2a1 => false,
        other => return Err(PcapError::BadMagic(other)),
    };
    let linktype = rd32(&head[20..], le) & 0x0fff_ffff;
    if !matches!(linktype, 0 | 1 | 101 | 113 | 276) {
        return Err(PcapError::LinkType(linktype));
    }
    let mut streams: Vec<(Direction, Stream)> = Vec::new();
    let mut at = 24;
    let mut packet = 0;
    while at < file.len() {
        let rec = file.get(at..at + 16).ok_or(PcapError::Truncated(at))?;
        let caplen = rd32(&rec[8..], le) as usize;
        let data = file
            .get(at + 16..at + 16 + caplen)
            .ok_or(PcapError::Truncated(at))?;
        at += 16 + caplen;
        packet += 1;
        let Some(ip) = strip_link(data, linktype) else {
            continue;
        };
        let Some((dir, seq, syn, payload)) = tcp_segment(ip) else {
            continue;
        };
        if dir.src.1 != 179 && dir.dst.1 != 179 {
            continue;
        }
        let i = match streams.iter().position(|(d, _)| *d == dir) {
            Some(i) => i,
            None => {
                streams.push((dir, Stream::default()));
                streams.len() - 1
            }
        };
        streams[i].1.push(seq, syn, payload, packet);
    }
    Ok(streams)
}

fn strip_link(data: &[u8], linktype: u32) -> Option<&[u8]> {
    match linktype {
        0 => data.get(4..),
        1 => {
            let mut off = 12;
            let mut ethertype = rd16(data.get(off..off + 2)?, false);
            while ethertype == 0x8100 || ethertype == 0x88a8 {
                off += 4;
                ethertype = rd16(data.get(off..off + 2)?, false);
            }
            data.get(off + 2..)
        }
        101 => Some(data),
        113 => data.get(16..),
        276 => data.get(20..),
        _ => None,
    }
}

/// Parse IPv4/IPv6 + TCP; returns direction, sequence number, SYN flag and payload.
fn tcp_segment(ip: &[u8]) -> Option<(Direction, u32, bool, &[u8])> {
    let version = ip.first()? >> 4;
    let (src, dst, tcp) = match version {
        4 => {
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            let total = usize::from(rd16(ip.get(2..4)?, false));
            // RFC 791 §3.1: the fixed header is 20 octets; a shorter capture has no addresses.
            if *ip.get(9)? != 6 || ihl < 20 || ip.len() < 20 {
                return None;
            }
            let src = IpAddr::V4(Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]));
            let dst = IpAddr::V4(Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]));
            (src, dst, ip.get(ihl..total.min(ip.len()))?)
        }
        6 => {
            let plen = usize::from(rd16(ip.get(4..6)?, false));
            if *ip.get(6)? != 6 {
                return None;
            }
            let mut s = [0u8; 16];
            let mut d = [0u8; 16];
            s.copy_from_slice(ip.get(8..24)?);
            d.copy_from_slice(ip.get(24..40)?);
            (
                IpAddr::V6(Ipv6Addr::from(s)),
                IpAddr::V6(Ipv6Addr::from(d)),
                ip.get(40..(40 + plen).min(ip.len()))?,
            )
        }
        _ => return None,
    };
    let sport = rd16(tcp.get(0..2)?, false);
    let dport = rd16(tcp.get(2..4)?, false);
    let seq = rd32(tcp.get(4..8)?, false);
    let data_off = usize::from(tcp.get(12)? >> 4) * 4;
    let syn = tcp.get(13)? & 0x02 != 0;
    let payload = tcp.get(data_off..)?;
    Some((
        Direction {
            src: (src, sport),
            dst: (dst, dport),
        },
        seq,
        syn,
        payload,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_order_and_retransmitted_segments_reassemble() {
        let mut s = Stream::default();
        s.push(100, true, &[], 1);
        s.push(105, false, b"efgh", 3);
        s.push(101, false, b"abcd", 2);
        s.push(101, false, b"abcd", 4); // retransmission
        s.push(107, false, b"ghij", 5); // overlap
        assert_eq!(s.bytes, b"abcdefghij".to_vec());
        assert_eq!(s.packet_at(0), 2);
        assert_eq!(s.packet_at(5), 3);
    }

    #[test]
    fn pcapng_is_refused_with_a_hint() {
        let mut f = vec![0x0a, 0x0d, 0x0d, 0x0a];
        f.resize(24, 0);
        assert!(matches!(bgp_streams(&f), Err(PcapError::BadMagic(_))));
    }
}
