//! Shared helpers for the protocol tests (vectors, subset matching).
