//! BGP sessions: the RFC 4271 §8 finite state machine as pure, sans-I/O code.
//!
//! Contract:
//! - [`Session::handle`]`(now, event) -> Vec<Action>` and [`Session::handle_timeout`]`(now)`
//!   are the only ways a session changes; [`Session::poll_timeout`] says when the next timer
//!   is due. Nothing here reads a clock, touches a socket or spawns a task, so tests drive
//!   every path with an explicit `Instant`.
//! - A [`Session`] owns at most one TCP connection. Actions are executed in order by a driver
//!   (one tokio task per peer) that owns the socket: [`Action::Connect`] opens one and reports
//!   [`Event::TcpConnectionAcknowledged`] or [`Event::TcpConnectionFails`];
//!   [`Action::SendMessage`] encodes with [`Session::context`]; the driver reports
//!   [`Event::SendProgress`] after writes (RFC 9687); received bytes are framed with
//!   [`crate::wire::split_frame`], decoded with [`Session::context`] and fed as
//!   [`Event::Message`] or [`Event::DecodeError`].
//! - Inbound connections: if [`Session::accepts_connection`], feed
//!   [`Event::TcpConnectionConfirmed`] (the driver abandons any outbound attempt still in
//!   flight). In OpenSent/OpenConfirm the driver may run a second `Session` for the new
//!   connection and, once the peer's BGP Identifier is known, close the loser chosen by
//!   [`collision::connection_to_close`] with [`Event::CollisionDump`] (RFC 4271 §6.8).
//!   Otherwise it refuses the connection.
//! - Every state change emits [`Action::StateChanged`]; reaching Established emits
//!   [`Action::Established`] with the [`Negotiated`] parameters; every end of a connection
//!   emits [`Action::SessionDown`] with the NOTIFICATION sent or received.
//! - After an error the session waits in Idle and restarts itself after the ConnectRetry
//!   time; after [`Event::ManualStop`] or [`Event::CollisionDump`] it stays in Idle.
//!
//! Never does: decide which routes to send (the speaker does, through [`Event::SendUpdate`]).
//!
//! Files: [`fsm`] (states, events, actions), [`timers`], [`negotiate`](mod@negotiate)
//! (OPEN checks of RFC 4271 §6.2 and negotiated parameters), [`collision`] (§6.8),
//! [`config`].

pub mod collision;
pub mod config;
pub mod fsm;
pub mod negotiate;
pub mod timers;

pub use collision::{connection_to_close, Direction, Speaker};
pub use config::{ConfigError, SessionConfig};
pub use fsm::{Action, DownReason, Event, Session, State};
pub use negotiate::{check_open, negotiate, Negotiated, OpenRejection};
pub use timers::{Timer, TimerTable};
