//! Ferry's one test kit: everything the interop tests, the integration tests, the benches and
//! `ferry lab` need to start network namespaces, BGP daemons and ferry speakers.
//!
//! Contract:
//! - Never depends on the `ferry` crate (`ferry lab` itself uses the kit), so it speaks to a
//!   speaker only through files it writes and the process it starts, never through its API.
//! - Everything it creates is named from a caller-given prefix and removed by the guard that
//!   created it, also while a failing test unwinds; it signals only processes it started or
//!   was given the pid of.
//! - Every wait has a deadline, and a wait that runs out names what it awaited.
//!
//! Modules: [`root`] (can this process run the lab: root, `ip`, FRR; `FIT_REQUIRE`), [`cmd`]
//! (commands to completion, with or without a timeout), [`poll`] (waiting for a condition),
//! [`signal`] (signals and stops by pid), [`rng`] (the one small seeded generator), [`netns`]
//! (namespaces, veth pairs and the [`Lab`] guard), [`daemons`] (FRR, BIRD 2, GoBGP, ExaBGP with
//! explicit paths), [`speaker`] (a `ferry speaker` started from a typed config).

pub mod cmd;
pub mod daemons;
pub mod netns;
pub mod poll;
pub mod rng;
pub mod root;
pub mod signal;
pub mod speaker;

pub use netns::Lab;
