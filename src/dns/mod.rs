//! DNS for the failover's changed-IP groups: TSIG keys from BIND key files ([`key`]) and a
//! blocking client for authoritative queries and signed RFC 2136 updates ([`client`]).
//!
//! Never does: hand-write DNS messages (Hickory builds, signs and parses them), or decide
//! what a step does with an answer ([`crate::controller::dns`]).

pub mod client;
pub mod key;

pub use client::{Answer, DnsError, Replace, UpdateOutcome};
pub use key::TsigKey;
