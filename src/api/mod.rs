//! The speaker's control API: HTTP/JSON over a Unix socket (default) or TCP with a bearer token.
//!
//! [`types`] are the bodies, [`server`] serves them from a [`server::Control`] implementation,
//! [`listen`] accepts connections within limits ([`body_deadline`] times request bodies), [`unix_socket`] binds the socket safely,
//! [`client`] is what the CLI and the controller use, [`error`] maps errors to HTTP statuses in
//! one place. Never holds state of its own.

pub mod body_deadline;
pub mod client;
pub mod error;
pub mod listen;
pub mod server;
pub mod types;
pub mod unix_socket;

pub use client::{Client, ClientError, Endpoint};
pub use error::ApiError;
pub use server::Control;
pub use types::*;
