//! Ferry moves a subnet between data-center sites by BGP.
//!
//! Layers, each depending only on those above it:
//! - [`wire`]: the BGP message codec; pure, no I/O, never panics on input.
//! - [`session`]: the RFC 4271 FSM per peer connection; sans I/O, driven by events and `now`.
//! - [`speaker`]: desired routes (persisted), per-peer Adj-RIB-Out with UPDATE packing and
//!   Adj-RIB-In; pure logic, no sockets.
//! - [`inspect`]: `ferry decode`: reads hex, raw or pcap input and renders messages as JSON.
//! - [`cli`]: argument parsing and output; no business logic.
//!
//! The session driver, API, controller and lab are described in DESIGN.md and not yet built.

pub mod cli;
pub mod inspect;
pub mod session;
pub mod speaker;
pub mod wire;
