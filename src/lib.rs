//! Ferry moves a subnet between data-center sites by BGP.
//!
//! Layers, each depending only on those above it:
//! - [`wire`]: the BGP message codec; pure, no I/O, never panics on input.
//! - [`session`]: the RFC 4271 FSM per peer connection; sans I/O, driven by events and `now`.
//! - [`speaker`]: desired routes (persisted), per-peer Adj-RIB-Out with UPDATE packing and
//!   Adj-RIB-In; pure logic, no sockets.
//! - [`inspect`]: `ferry decode`: reads hex, raw or pcap input and renders messages as JSON.
//! - [`cli`]: argument parsing and output; no business logic (that is in [`controller`],
//!   [`lab`] and [`api`], which never call back into it).
//!
//! - [`config`]: the speaker's TOML config, checked while read.
//! - [`dns`]: TSIG keys (BIND key files) and a blocking client for authoritative queries and
//!   TSIG-signed RFC 2136 updates, messages by Hickory; used by the plan's DNS steps.
//! - [`api`]: HTTP/JSON control API (server, types) and [`api::Speaker`], the one typed client
//!   (async, and [`api::blocking::Speaker`]) everything else talks to a speaker through; holds
//!   no state.
//! - [`bfd`]: BFD (RFC 5880 asynchronous mode, RFC 5881 single hop) per neighbor: codec,
//!   sans-I/O session, a UDP driver; a session going Down takes its BGP session down.
//! - [`durable`]: durable files, one way each: a line appended or cut back, a JSON-lines
//!   journal read with the torn-tail rule, a file replaced atomically (the speaker's routes
//!   and leases, the controller's run journals, the lab's state).
//! - [`private_fs`]: what "open to group or others" is, and 0700 directories (speaker and
//!   controller state).
//! - [`rpki`]: route origin validation (RFC 6811) and the VRPs from an RTR validator, for the
//!   failover's preflight.
//! - [`suggest`]: "did you mean `hold_time`?" for a misspelt key or value in a config or plan.
//! - [`filelock`]: exclusive, kernel-released locks on files (one speaker per state directory,
//!   one controller per plan).
//! - [`sockopt`]: socket options for TCP MD5, GTSM and BFD TTL checks (`unsafe`, as is only
//!   the daemon's thread priority besides).
//! - [`daemon`]: `ferry speaker`: per-neighbor drivers running sessions on sockets, the
//!   listener, the API, shutdown.
//!
//! - [`lab`]: `ferry lab`: the three-site FRR lab in network namespaces, failovers and their
//!   convergence reports; drives speakers through [`api::blocking::Speaker`] and, for chaos
//!   with the controller, runs `ferry failover` and reads its run listing.
//!
//! - [`controller`]: `ferry failover`: plans, journaled steps with compensation, resume and
//!   rollback, the plan's claim (lock, unfinished runs) and the lease keeper's loop; reaches
//!   the sites only through their speakers' API ([`api::blocking::Speaker`]).

pub mod api;
pub mod bfd;
pub mod cli;
pub mod config;
pub mod controller;
pub mod daemon;
pub mod dns;
pub mod durable;
pub mod filelock;
pub mod inspect;
pub mod lab;
pub mod private_fs;
pub mod rpki;
pub mod session;
pub mod sockopt;
pub mod speaker;
pub mod suggest;
#[cfg(test)]
pub(crate) mod test_fs;
pub mod wire;
