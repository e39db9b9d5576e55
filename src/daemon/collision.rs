//! Connection collision (RFC 4271 §6.8): a second connection for the same peer, accepted while
//! the first is in OpenSent or OpenConfirm, runs its own [`Session`] as a [`Contender`] until
//! the peer's BGP Identifier is known; then [`connection_to_close`] picks the loser, which is
//! sent Cease / Connection Collision Resolution (6/7) and closed.
//!
//! A collision with an Established session closes the new connection (§6.8, no
//! CollisionDetectEstablishedState). Never does: touch the Adj-RIBs; no contender reaches
//! Established before it is resolved.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use super::conn::Conn;
use crate::session::{
    connection_to_close, Action, Direction, Event, Session, SessionConfig, Speaker, State,
};
use crate::wire::Message;

/// The inbound connection competing with the driver's current one.
pub struct Contender {
    pub session: Session,
    pub conn: Conn,
    closed: bool,
}

/// What resolution decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not yet: neither connection knows the peer's BGP Identifier.
    Undecided,
    /// Keep the current (outbound) connection; the contender was closed.
    KeepCurrent,
    /// The current connection loses: dump it and promote the contender.
    PromoteContender,
}

impl Contender {
    /// Start a session for `conn` with the same configuration as the current one. The session
    /// starts as if actively connecting, so that after a promotion it reconnects by itself; the
    /// inbound connection is what it gets first.
    pub fn start(config: SessionConfig, conn: Conn, now: Instant, peer: IpAddr) -> Option<Self> {
        let mut session = Session::new(config).ok()?;
        // ManualStart asks for an outbound connection; this contender already has one.
        let _ = session.handle(now, Event::ManualStart);
        let mut c = Self {
            session,
            conn,
            closed: false,
        };
        let actions = c.session.handle(now, Event::TcpConnectionConfirmed);
        c.apply(actions, peer);
        (!c.closed).then_some(c)
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Execute the contender's actions on its own connection.
    pub fn apply(&mut self, actions: Vec<Action>, peer: IpAddr) {
        for action in actions {
            match action {
                Action::SendMessage(msg) => self
                    .conn
                    .send(msg.to_bytes(&self.session.context()).freeze()),
                Action::CloseConnection | Action::RefuseConnection | Action::SessionDown { .. } => {
                    self.closed = true;
                }
                Action::StateChanged { from, to } => {
                    tracing::info!(%peer, %from, %to, "collision contender state");
                }
                // Resolution happens at OpenConfirm at the latest, before Established, so
                // nothing else can come up; Connect is ignored (see `start`).
                _ => {}
            }
        }
    }

    /// Feed a decoded message or other event to the contender.
    pub fn handle(&mut self, now: Instant, event: Event, peer: IpAddr) {
        let actions = self.session.handle(now, event);
        self.apply(actions, peer);
    }

    /// Close the contender with Cease 6/7.
    pub fn dump(mut self, now: Instant, peer: IpAddr) {
        let actions = self.session.handle(now, Event::CollisionDump);
        self.apply(actions, peer);
        self.conn.close(std::time::Duration::from_secs(1));
    }

    /// Decide once the peer's BGP Identifier is known on either connection (§6.8). The current
    /// connection is the outbound one; the contender is inbound.
    pub fn verdict(&self, current: &Session, local_id: Ipv4Addr, local_asn: u32) -> Verdict {
        let known = [current, &self.session]
            .into_iter()
            .filter(|s| matches!(s.state(), State::OpenConfirm))
            .find_map(|s| s.peer_open().map(|o| (o.router_id, o.asn())));
        let Some((remote_id, remote_asn)) = known else {
            return Verdict::Undecided;
        };
        let local = Speaker {
            router_id: local_id,
            asn: local_asn,
        };
        let remote = Speaker {
            router_id: remote_id,
            asn: remote_asn,
        };
        match connection_to_close(local, remote) {
            Some(Direction::Outbound) => Verdict::PromoteContender,
            // Inbound loses, or identical identities (which OPEN checks reject anyway).
            Some(Direction::Inbound) | None => Verdict::KeepCurrent,
        }
    }
}

/// Whether an inbound connection can contend with the current session: only while the current
/// one, opened by us, waits in OpenSent or OpenConfirm.
pub fn can_contend(current: &Session, current_outbound: bool) -> bool {
    current_outbound && matches!(current.state(), State::OpenSent | State::OpenConfirm)
}

/// Decode a frame for the contender with its own context.
pub fn decode(frame: &[u8], session: &Session) -> Event {
    match Message::decode(frame, &session.receive_context()) {
        Ok(m) => Event::Message(m),
        Err(e) => Event::DecodeError(e),
    }
}
