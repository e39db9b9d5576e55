//! The speaker's control API: HTTP/JSON over a Unix socket (default) or TCP with a bearer token.
//!
//! [`types`] are the bodies, [`server`] serves them from a [`server::Control`] implementation,
//! [`listen`] accepts connections within limits ([`body_deadline`] times request bodies),
//! [`unix_socket`] binds the socket safely, [`metrics`] encodes `/metrics`, [`error`] maps errors to HTTP statuses in one place.
//! [`Speaker`] is the typed client everything else uses to talk to a speaker (over
//! [`client`]'s transport, bulk bodies written as they are sent by [`request_body`]), [`blocking::Speaker`] the same without async. Never holds state of
//! its own.

pub mod blocking;
pub mod body_deadline;
pub mod caller;
pub mod client;
pub mod error;
pub mod fence;
pub mod listen;
pub mod metrics;
pub mod neighbor_types;
pub mod request_body;
pub mod server;
pub mod speaker;
pub mod types;
pub mod unix_socket;

pub use caller::Caller;
pub use client::Endpoint;
pub use error::ApiError;
pub use fence::{Fence, HeldFence};
pub use neighbor_types::{
    AdminDown, AdminResponse, DisableRequest, ReloadResponse, ReloadedNeighbor,
};
pub use server::Control;
pub use speaker::{Events, SettingsError, Speaker, SpeakerError};
pub use types::*;
