//! The driver of one neighbor: runs its [`Session`] against real sockets and feeds its
//! Adj-RIB-Out from the desired routes.
//!
//! One task per neighbor, a `select!` over: the session's next timer, the connection's events,
//! inbound connections handed over by the listener, the outcome of an outbound connect, changes
//! of the desired routes, and stop. Actions from the session are executed in order.
//! UPDATEs come from the session's update group ([`UpdateGroups`]): encoded once per group,
//! pulled as shared `Bytes` only while the connection has less than [`conn::HIGH_WATER`]
//! octets queued, so a slow peer is never buffered without bound (its group splits it off) and
//! never delays other peers. The driver joins a group at Established and leaves at session end.
//! Graceful restart helper (RFC 4724 §4.2, RFC 8538): when an Established session with a peer
//! that advertised the capability ends gracefully ([`graceful::down_is_graceful`]), its
//! Adj-RIB-In is kept, marked stale, until its End-of-RIB on the next session or the restart
//! timer ([`graceful::Helper`]). A restarted speaker advertises the R bit until its first
//! session with each peer is up.
//! Each driver runs on a thread of its own (see `super::spawn_driver`). Received frames come in
//! batches ([`ConnEvent::Frames`]); the driver handles at most [`EVENTS_PER_WAKE`] of them and
//! then yields to its connection's tasks. When that many were waiting, among them a full batch
//! of frames, the peer is flooding: the driver lowers its thread to `SCHED_IDLE`
//! ([`Priority`]) until the backlog is gone, so the API and the other peers' drivers preempt
//! it whenever they have work (measured by `cargo bench --bench ingest`, flood isolation).
//! Never does: decide attributes (the speaker's export does) or parse bodies itself.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};

use super::collision::{self, Contender, Verdict};
use super::conn::{self, Conn, ConnEvent};
use super::priority::Priority;
use super::state::{lock, read, Desired, PeerShared, Shared};
use crate::api::Event as ApiEvent;
use crate::session::{Action, Event, Session};
use crate::speaker::export::PeerExport;
use crate::speaker::graceful::{self, Helper};
use crate::speaker::update_group::MemberId;
use crate::speaker::RibInRefusal;
use crate::wire::Message;

/// How long a closing connection may take to flush its last messages (e.g. a NOTIFICATION).
pub const FLUSH_ON_CLOSE: Duration = Duration::from_secs(2);
/// Connection events already queued that are handled before a due timer fires.
const EVENTS_BEFORE_TIMERS: usize = 1024;
/// Octets of UPDATEs produced per pump step.
const PUMP_BUDGET: usize = 64 * 1024;
/// Connection events (each up to [`conn::FRAMES_PER_EVENT`] frames) handled per wake-up of
/// the driver before it yields its worker.
const EVENTS_PER_WAKE: usize = 4;

/// A batch of as many frames as one event carries: the reader had more than that in one
/// read. Only these say the peer floods (`Written` events pile up while we send).
fn is_full_batch(ev: &ConnEvent) -> bool {
    matches!(ev, ConnEvent::Frames(f) if f.len() == conn::FRAMES_PER_EVENT)
}

/// Inputs a driver receives from outside its own connection.
pub enum PeerInput {
    Inbound(TcpStream),
    Stop {
        message: Option<String>,
        done: tokio::sync::oneshot::Sender<()>,
    },
    /// End the session with Cease/Administrative Reset, or with `hard` Cease/Hard Reset
    /// (RFC 8538 §3) so that the peer drops our routes at once; it restarts after ConnectRetry.
    Reset {
        hard: bool,
    },
    /// The neighbor's BFD session went from Up to Down (`diag` says why): the path is dead, so
    /// the BGP session ends now as on a connection failure (RFC 5882 §4.3, §10.2) and restarts
    /// after ConnectRetry.
    BfdDown {
        diag: String,
    },
    /// The operator took the neighbor down (`ferry neighbor disable`): close the session with
    /// Cease/Administrative Shutdown and `message` as its shutdown communication (RFC 4486 §4,
    /// RFC 9003 §2), then stay Idle, refusing inbound connections, until [`PeerInput::Enable`].
    Disable {
        message: Option<String>,
    },
    /// Start the session again after a [`PeerInput::Disable`] (a ManualStart, RFC 4271 §8.1.2).
    Enable,
}

/// Shutdown communication of an operator reset.
const RESET_MESSAGE: &str = "ferry: session reset by operator";

pub struct Driver {
    session: Session,
    peer: Arc<PeerShared>,
    shared: Arc<Shared>,
    local_asn: u32,
    conn: Option<Conn>,
    next_conn_id: u64,
    /// Id of the outbound attempt whose result still counts.
    attempt: u64,
    /// Membership in an update group while Established.
    member: Option<MemberId>,
    /// Signalled by the group when messages wait for this member.
    wake: Arc<tokio::sync::Notify>,
    /// The group said more is ready: pull again once the socket has room.
    more: bool,
    desired: watch::Receiver<Desired>,
    helper: Helper,
    /// The current connection reached Established.
    established: bool,
    /// The current connection was opened by us (matters for collisions, RFC 4271 §6.8).
    outbound: bool,
    /// A second, inbound connection waiting for collision resolution.
    contender: Option<Contender>,
    /// This driver's thread's class: lowered while the peer floods.
    priority: Priority,
    /// Taken down by the operator: Idle, no connections, until enabled.
    disabled: bool,
}

impl Driver {
    pub fn new(
        session: Session,
        peer: Arc<PeerShared>,
        shared: Arc<Shared>,
        local_asn: u32,
        disabled: bool,
    ) -> Self {
        let desired = shared.desired.subscribe();
        Self {
            session,
            peer,
            shared,
            local_asn,
            conn: None,
            next_conn_id: 1,
            attempt: 0,
            member: None,
            wake: Arc::new(tokio::sync::Notify::new()),
            more: false,
            desired,
            helper: Helper::default(),
            established: false,
            outbound: false,
            contender: None,
            priority: Priority::default(),
            disabled,
        }
    }

    fn address(&self) -> IpAddr {
        self.peer.config.address
    }

    pub async fn run(mut self, mut inputs: mpsc::Receiver<PeerInput>) {
        // Frames come up to FRAMES_PER_EVENT an event: 64 events hold as much as 256 did.
        let (conn_tx, mut conn_rx) = mpsc::channel::<(u64, ConnEvent)>(64);
        let (connect_tx, mut connect_rx) = mpsc::channel::<(u64, std::io::Result<TcpStream>)>(4);
        self.publish_gr();
        if self.disabled {
            tracing::info!(peer = %self.address(), "neighbor disabled by the operator: staying Idle until enabled");
        } else {
            let actions = self.session.handle(Instant::now(), Event::ManualStart);
            self.execute(actions, &conn_tx, &connect_tx);
        }
        loop {
            let deadline = [
                self.session.poll_timeout(),
                self.contender
                    .as_ref()
                    .and_then(|c| c.session.poll_timeout()),
            ]
            .into_iter()
            .flatten()
            .min();
            let can_pump = self.more
                && self.member.is_some()
                && self
                    .conn
                    .as_ref()
                    .is_some_and(|c| c.queued() < conn::HIGH_WATER);
            tokio::select! {
                _ = sleep_until(deadline) => {
                    self.priority.restore();
                    // Messages that arrived while this task was busy count before the timers:
                    // a KEEPALIVE waiting in the channel restarts the HoldTimer instead of
                    // losing to it (the HoldTimer measures the peer's silence, not ours).
                    for _ in 0..EVENTS_BEFORE_TIMERS {
                        match conn_rx.try_recv() {
                            Ok((id, ev)) => self.on_conn_event(id, ev, &conn_tx, &connect_tx),
                            Err(_) => break,
                        }
                    }
                    let now = Instant::now();
                    let actions = self.session.handle_timeout(now);
                    self.execute(actions, &conn_tx, &connect_tx);
                    let peer = self.address();
                    if let Some(c) = self.contender.as_mut() {
                        let actions = c.session.handle_timeout(now);
                        c.apply(actions, peer);
                    }
                    self.resolve_collision(&conn_tx, &connect_tx);
                }
                _ = sleep_until(self.helper.deadline) => {
                    self.priority.restore();
                    self.sweep_stale("restart timer expired");
                }
                Some((id, ev)) = conn_rx.recv() => {
                    let mut full_batches = usize::from(is_full_batch(&ev));
                    self.on_conn_event(id, ev, &conn_tx, &connect_tx);
                    let mut budget_used = true;
                    for _ in 1..EVENTS_PER_WAKE {
                        match conn_rx.try_recv() {
                            Ok((id, ev)) => {
                                full_batches += usize::from(is_full_batch(&ev));
                                self.on_conn_event(id, ev, &conn_tx, &connect_tx);
                            }
                            Err(_) => {
                                budget_used = false;
                                break;
                            }
                        }
                    }
                    if full_batches > 0 && !conn_rx.is_empty() {
                        // Frames faster than they are taken in: the peer is flooding. Every
                        // other thread goes first (see `priority`) until the backlog is gone.
                        self.priority.lower();
                    } else {
                        self.priority.restore();
                    }
                    if budget_used {
                        // More is waiting: this connection's reader and writer run first.
                        tokio::task::yield_now().await;
                    }
                }
                Some((attempt, result)) = connect_rx.recv() => {
                    self.priority.restore();
                    if attempt != self.attempt {
                        continue; // superseded attempt
                    }
                    self.attempt = 0;
                    match result {
                        Ok(stream) => self.adopt(stream, Event::TcpConnectionAcknowledged, &conn_tx, &connect_tx),
                        Err(e) => {
                            tracing::debug!(peer = %self.address(), error = %e, "connect failed");
                            let actions = self.session.handle(Instant::now(), Event::TcpConnectionFails);
                            self.execute(actions, &conn_tx, &connect_tx);
                        }
                    }
                }
                input = inputs.recv() => {
                    self.priority.restore();
                    match input {
                        Some(PeerInput::Inbound(stream)) => self.on_inbound(stream, &conn_tx, &connect_tx),
                        Some(PeerInput::Stop { message, done }) => {
                            let actions = self.session.handle(Instant::now(), Event::ManualStop { message });
                            self.execute(actions, &conn_tx, &connect_tx);
                            self.leave_group();
                            let _ = done.send(());
                            return;
                        }
                        Some(PeerInput::Reset { .. }) if self.disabled => {
                            tracing::info!(peer = %self.address(), "reset ignored: the neighbor is disabled");
                        }
                        Some(PeerInput::Disable { message }) => self.disable(message, &conn_tx, &connect_tx),
                        Some(PeerInput::Enable) => self.enable(&conn_tx, &connect_tx),
                        Some(PeerInput::Reset { hard }) => {
                            let n = if hard {
                                graceful::hard_reset(RESET_MESSAGE)
                            } else {
                                crate::wire::Notification::cease_with_message(
                                    crate::wire::notification::cease::ADMINISTRATIVE_RESET,
                                    RESET_MESSAGE,
                                )
                            };
                            tracing::warn!(peer = %self.address(), hard, "session reset by operator");
                            let actions = self.session.handle(Instant::now(), Event::Reset(n));
                            self.execute(actions, &conn_tx, &connect_tx);
                        }
                        Some(PeerInput::BfdDown { diag }) => {
                            use crate::session::State as S;
                            if matches!(self.session.state(), S::OpenSent | S::OpenConfirm | S::Established) {
                                tracing::warn!(peer = %self.address(), %diag, "BFD session down: dropping the BGP session");
                                let actions = self.session.handle(Instant::now(), Event::TcpConnectionFails);
                                self.execute(actions, &conn_tx, &connect_tx);
                                lock(&self.peer.status).last_error = Some(format!("BFD session down: {diag}"));
                            }
                        }
                        None => return,
                    }
                }
                Ok(()) = self.desired.changed() => {
                    // The group applies the change (whichever member pulls first).
                    self.more = true;
                    self.pump();
                }
                _ = self.wake.notified(), if self.member.is_some() => {
                    self.more = true;
                    self.pump();
                }
                // Yield first: tasks woken meanwhile (this connection's writer) run before the
                // next part is produced.
                _ = tokio::task::yield_now(), if can_pump => self.pump(),
            }
        }
    }

    /// `ferry neighbor disable`: ManualStop (Cease/Administrative Shutdown with the message
    /// once an OPEN was sent, RFC 4271 §8.1.2, RFC 9003 §2), a contender dropped, and no
    /// restart: ManualStop leaves the session Idle with no timer.
    fn disable(
        &mut self,
        message: Option<String>,
        conn_tx: &mpsc::Sender<(u64, ConnEvent)>,
        connect_tx: &mpsc::Sender<(u64, std::io::Result<TcpStream>)>,
    ) {
        self.disabled = true;
        self.contender = None;
        self.attempt = 0; // an outbound connect still in flight no longer counts
        tracing::warn!(peer = %self.address(), message = message.as_deref().unwrap_or(""), state = %self.session.state(), "neighbor disabled by the operator: closing the session with Cease/Administrative Shutdown");
        let actions = self
            .session
            .handle(Instant::now(), Event::ManualStop { message });
        self.execute(actions, conn_tx, connect_tx);
        self.leave_group();
        lock(&self.peer.status).last_error = Some("disabled by the operator".into());
    }

    /// `ferry neighbor enable`: a ManualStart, as at the speaker's start.
    fn enable(
        &mut self,
        conn_tx: &mpsc::Sender<(u64, ConnEvent)>,
        connect_tx: &mpsc::Sender<(u64, std::io::Result<TcpStream>)>,
    ) {
        if !std::mem::take(&mut self.disabled) {
            return;
        }
        tracing::info!(peer = %self.address(), "neighbor enabled by the operator: starting the session");
        lock(&self.peer.status).last_error = None;
        let actions = self.session.handle(Instant::now(), Event::ManualStart);
        self.execute(actions, conn_tx, connect_tx);
    }

    fn on_inbound(
        &mut self,
        stream: TcpStream,
        conn_tx: &mpsc::Sender<(u64, ConnEvent)>,
        connect_tx: &mpsc::Sender<(u64, std::io::Result<TcpStream>)>,
    ) {
        if self.disabled {
            // Debug: a peer that keeps connecting would fill the log once a second.
            tracing::debug!(peer = %self.address(), "refusing inbound connection: the neighbor is disabled");
            return;
        }
        // Accepted on the listener's runtime: registered with this driver's own instead, so
        // that its readiness is polled on this thread, at this thread's priority.
        let stream = match stream.into_std().and_then(TcpStream::from_std) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(peer = %self.address(), error = %e, "cannot take over an inbound connection");
                return;
            }
        };
        if self.conn.is_some()
            && self.contender.is_none()
            && collision::can_contend(&self.session, self.outbound)
        {
            // RFC 4271 §6.8: run the new connection until the peer's identifier decides.
            let id = self.next_conn_id;
            self.next_conn_id += 1;
            if let Ok(conn) = Conn::start(id, stream, conn_tx.clone()) {
                tracing::info!(peer = %self.address(), state = %self.session.state(), "connection collision: running the inbound connection until resolved");
                let config = self.session.config().clone();
                self.contender = Contender::start(config, conn, Instant::now(), self.address());
                self.resolve_collision(conn_tx, connect_tx);
            }
            return;
        }
        if self.conn.is_some() || !self.session.accepts_connection() {
            // RFC 4271 §6.8: with a session past Connect/Active on another connection, the
            // simplest resolution that keeps the existing one is to refuse the new connection.
            tracing::info!(peer = %self.address(), state = %self.session.state(), "refusing inbound connection: a connection is already in use");
            drop(stream);
            return;
        }
        self.attempt = 0; // abandon an outbound attempt still in flight
        self.adopt(stream, Event::TcpConnectionConfirmed, conn_tx, connect_tx);
    }

    fn adopt(
        &mut self,
        stream: TcpStream,
        event: Event,
        conn_tx: &mpsc::Sender<(u64, ConnEvent)>,
        connect_tx: &mpsc::Sender<(u64, std::io::Result<TcpStream>)>,
    ) {
        let id = self.next_conn_id;
        self.next_conn_id += 1;
        match Conn::start(id, stream, conn_tx.clone()) {
            Ok(c) => {
                tracing::info!(peer = %self.address(), local = %c.local, remote = %c.remote, "TCP connection up");
                self.conn = Some(c);
                self.outbound = matches!(event, Event::TcpConnectionAcknowledged);
                let actions = self.session.handle(Instant::now(), event);
                self.execute(actions, conn_tx, connect_tx);
            }
            Err(e) => {
                tracing::warn!(peer = %self.address(), error = %e, "cannot use connection");
                let actions = self
                    .session
                    .handle(Instant::now(), Event::TcpConnectionFails);
                self.execute(actions, conn_tx, connect_tx);
            }
        }
    }

    fn on_conn_event(
        &mut self,
        id: u64,
        ev: ConnEvent,
        conn_tx: &mpsc::Sender<(u64, ConnEvent)>,
        connect_tx: &mpsc::Sender<(u64, std::io::Result<TcpStream>)>,
    ) {
        if let ConnEvent::Frames(frames) = ev {
            // One at a time: a frame may end the connection it came on, or promote it.
            for frame in frames {
                self.on_conn_event(id, ConnEvent::Frame(Ok(frame)), conn_tx, connect_tx);
            }
            return;
        }
        if self.contender.as_ref().is_some_and(|c| c.conn.id == id) {
            self.on_contender_event(ev, conn_tx, connect_tx);
            return;
        }
        if self.conn.as_ref().map(|c| c.id) != Some(id) {
            return; // from a connection already closed
        }
        let now = Instant::now();
        let actions = match ev {
            ConnEvent::Frame(Ok(frame)) => self.on_frame(&frame, now),
            ConnEvent::Frame(Err(e)) => self.session.handle(now, Event::DecodeError(e)),
            ConnEvent::Frames(_) => Vec::new(), // split above
            ConnEvent::Written { queued } => self.session.handle(
                now,
                Event::SendProgress {
                    pending: queued > 0,
                },
            ),
            ConnEvent::Closed { error } => {
                tracing::info!(peer = %self.address(), error = error.as_deref().unwrap_or("closed by peer"), "TCP connection down");
                self.session.handle(now, Event::TcpConnectionFails)
            }
        };
        self.execute(actions, conn_tx, connect_tx);
        self.resolve_collision(conn_tx, connect_tx);
    }

    fn on_contender_event(
        &mut self,
        ev: ConnEvent,
        conn_tx: &mpsc::Sender<(u64, ConnEvent)>,
        connect_tx: &mpsc::Sender<(u64, std::io::Result<TcpStream>)>,
    ) {
        let peer = self.address();
        let Some(c) = self.contender.as_mut() else {
            return;
        };
        let now = Instant::now();
        let event = match ev {
            ConnEvent::Frame(Ok(frame)) => collision::decode(&frame, &c.session),
            ConnEvent::Frame(Err(e)) => Event::DecodeError(e),
            ConnEvent::Frames(_) => return, // split in on_conn_event
            ConnEvent::Written { queued } => Event::SendProgress {
                pending: queued > 0,
            },
            ConnEvent::Closed { .. } => Event::TcpConnectionFails,
        };
        c.handle(now, event, peer);
        self.resolve_collision(conn_tx, connect_tx);
    }

    /// RFC 4271 §6.8: once the peer's BGP Identifier is known, keep one connection.
    fn resolve_collision(
        &mut self,
        conn_tx: &mpsc::Sender<(u64, ConnEvent)>,
        connect_tx: &mpsc::Sender<(u64, std::io::Result<TcpStream>)>,
    ) {
        let Some(c) = &self.contender else { return };
        let now = Instant::now();
        if c.is_closed() {
            if let Some(c) = self.contender.take() {
                c.conn.close(Duration::from_secs(1));
            }
            return;
        }
        let verdict = if self.conn.is_none() {
            // The current connection is gone: the contender simply takes over.
            Verdict::PromoteContender
        } else {
            c.verdict(
                &self.session,
                self.session.config().router_id,
                self.local_asn,
            )
        };
        match verdict {
            Verdict::Undecided => {}
            Verdict::KeepCurrent => {
                tracing::info!(peer = %self.address(), "connection collision: keeping our connection, closing the peer's (Cease 6/7)");
                if let Some(c) = self.contender.take() {
                    c.dump(now, self.address());
                }
            }
            Verdict::PromoteContender => {
                let Some(c) = self.contender.take() else {
                    return;
                };
                if self.conn.is_some() {
                    tracing::info!(peer = %self.address(), "connection collision: keeping the peer's connection, closing ours (Cease 6/7)");
                    let actions = self.session.handle(now, Event::CollisionDump);
                    self.execute(actions, conn_tx, connect_tx);
                }
                self.session = c.session;
                self.conn = Some(c.conn);
                self.outbound = false;
                self.attempt = 0;
                lock(&self.peer.status).state = self.session.state();
            }
        }
    }

    fn on_frame(&mut self, frame: &BytesMut, now: Instant) -> Vec<Action> {
        let ctx = self.session.receive_context();
        match Message::decode(frame, &ctx) {
            Ok(msg) => {
                if matches!(msg, Message::Update(_)) {
                    self.peer.updates_received.fetch_add(1, Ordering::Relaxed);
                }
                self.session.handle(now, Event::Message(msg))
            }
            Err(e) => {
                tracing::warn!(peer = %self.address(), error = %e, "malformed message");
                self.session.handle(now, Event::DecodeError(e))
            }
        }
    }

    fn execute(
        &mut self,
        actions: Vec<Action>,
        _conn_tx: &mpsc::Sender<(u64, ConnEvent)>,
        connect_tx: &mpsc::Sender<(u64, std::io::Result<TcpStream>)>,
    ) {
        let mut queue: std::collections::VecDeque<Action> = actions.into();
        while let Some(action) = queue.pop_front() {
            match action {
                Action::Connect => self.connect(connect_tx),
                Action::SendMessage(msg) => self.send(&msg),
                Action::CloseConnection => {
                    self.attempt = 0;
                    if let Some(c) = self.conn.take() {
                        c.close(FLUSH_ON_CLOSE);
                    }
                }
                Action::RefuseConnection => {
                    // The connection just offered was refused: it is the current one.
                    if let Some(c) = self.conn.take() {
                        c.close(Duration::ZERO);
                    }
                }
                Action::StateChanged { from, to } => {
                    tracing::info!(peer = %self.address(), %from, %to, "session state");
                    lock(&self.peer.status).state = to;
                    self.shared.emit(ApiEvent::PeerState {
                        peer: self.address(),
                        from,
                        to,
                        reason: None,
                    });
                }
                Action::Established { negotiated } => {
                    {
                        let mut s = lock(&self.peer.status);
                        s.established_at = Some(Instant::now());
                        s.last_error = None;
                    }
                    tracing::info!(peer = %self.address(), hold = negotiated.hold_time, families = ?negotiated.families, extended_messages = negotiated.extended_message, "session established");
                    self.gr_established(&negotiated);
                    self.join_group();
                    self.pump();
                }
                Action::SessionDown {
                    reason,
                    sent,
                    received,
                } => {
                    let detail = match (&sent, &received) {
                        (Some(n), _) => {
                            format!("{reason}; sent NOTIFICATION {}/{}", n.code, n.subcode)
                        }
                        (_, Some(n)) => match n.shutdown_message() {
                            Some(m) => format!("{reason}: {}/{} \"{m}\"", n.code, n.subcode),
                            None => format!("{reason}: {}/{}", n.code, n.subcode),
                        },
                        _ => reason.to_string(),
                    };
                    tracing::warn!(peer = %self.address(), reason = %detail, "session down");
                    {
                        let mut s = lock(&self.peer.status);
                        s.established_at = None;
                        s.prefixes_sent = 0;
                        s.last_error = Some(detail);
                    }
                    self.gr_down(&reason, sent.as_ref(), received.as_ref());
                    self.leave_group();
                }
                Action::DeliverUpdate(update) => {
                    let result = lock(&self.peer.rib_in)
                        .apply(&update, self.session.context().four_octet_as);
                    if let Err(refusal) = result {
                        match &refusal {
                            RibInRefusal::MaxPrefix(e) => {
                                tracing::warn!(peer = %self.address(), exceeded = %e, "max-prefix exceeded");
                            }
                            RibInRefusal::AttributeBudget(e) => {
                                tracing::warn!(
                                    peer = %self.address(),
                                    budget = e.budget,
                                    usage = e.usage,
                                    "attribute budget exceeded: peer {} would hold {} octets of path attributes, over max_attribute_bytes = {}; closing with Cease/Out of Resources",
                                    self.address(),
                                    e.usage,
                                    e.budget
                                );
                            }
                        }
                        let n = refusal.notification();
                        let more = self.session.handle(Instant::now(), Event::Reset(n));
                        queue.extend(more);
                    } else if self.helper.deadline.is_some()
                        && lock(&self.peer.rib_in).stale_count() == 0
                    {
                        tracing::info!(peer = %self.address(), "graceful restart: End-of-RIB received, no stale routes left");
                        self.helper.done();
                        self.publish_gr();
                    }
                }
                Action::DeliverRouteRefresh(rr) => {
                    // The group lock is shared with the other drivers: not held at low priority.
                    self.priority.restore();
                    // RFC 2918 §4: re-advertise the Adj-RIB-Out of the AFI/SAFI asked for (the
                    // session only delivers refreshes of negotiated families).
                    if let (Some(family), Some(member)) = (
                        crate::wire::Family::from_afi_safi(rr.afi, rr.safi),
                        self.member,
                    ) {
                        lock(&self.shared.groups).refresh(member, family);
                        self.more = true;
                    }
                    self.pump();
                }
            }
        }
    }

    /// Graceful restart at Established: remember the peer's capability, drop stale routes of
    /// families it no longer preserves, and stop advertising the R bit.
    fn gr_established(&mut self, negotiated: &crate::session::Negotiated) {
        self.established = true;
        let ours = self.session.config().graceful_restart.clone();
        let peer = negotiated
            .peer_graceful_restart
            .clone()
            .filter(|_| ours.is_some());
        let n_bit = ours.as_ref().is_some_and(|g| g.notification())
            && peer.as_ref().is_some_and(|g| g.notification());
        let families = [
            crate::wire::Family::Ipv4Unicast,
            crate::wire::Family::Ipv6Unicast,
        ];
        let drop = self
            .helper
            .established(Instant::now(), peer, n_bit, &families);
        {
            let mut rib = lock(&self.peer.rib_in);
            for f in drop {
                let gone = rib.sweep_stale(Some(f));
                if !gone.is_empty() {
                    tracing::info!(peer = %self.address(), family = %f, routes = gone.len(), "graceful restart: family not preserved by the peer, stale routes removed");
                }
            }
            if rib.stale_count() == 0 {
                self.helper.done();
            }
        }
        if let Some(mut gr) = ours.filter(|g| g.restart_state()) {
            gr.flags &= !crate::wire::capability::GracefulRestart::RESTART_STATE;
            self.session.set_graceful_restart(Some(gr));
        }
        self.publish_gr();
    }

    /// Graceful restart at session end: keep the routes as stale, or clear them.
    fn gr_down(
        &mut self,
        reason: &crate::session::DownReason,
        sent: Option<&crate::wire::Notification>,
        received: Option<&crate::wire::Notification>,
    ) {
        if !std::mem::take(&mut self.established) {
            // Nothing was received on this connection; stale routes of an earlier session
            // stay under their timer.
            return;
        }
        let graceful = graceful::down_is_graceful(reason, sent, received, self.helper.n_bit);
        let kept = self.helper.down(Instant::now(), graceful);
        let mut rib = lock(&self.peer.rib_in);
        if kept.is_empty() {
            rib.clear();
        } else {
            rib.mark_stale();
            for f in [
                crate::wire::Family::Ipv4Unicast,
                crate::wire::Family::Ipv6Unicast,
            ] {
                if !kept.contains(&f) {
                    rib.sweep_stale(Some(f));
                }
            }
            let secs = self
                .helper
                .deadline
                .map_or(0, |d| d.saturating_duration_since(Instant::now()).as_secs());
            tracing::info!(peer = %self.address(), stale = rib.stale_count(), restart_time = secs, "graceful restart: peer restarting, keeping its routes as stale");
        }
        drop(rib);
        self.publish_gr();
    }

    fn sweep_stale(&mut self, why: &str) {
        let gone = lock(&self.peer.rib_in).sweep_stale(None);
        tracing::warn!(peer = %self.address(), routes = gone.len(), "graceful restart: {why}, stale routes removed");
        self.helper.done();
        self.publish_gr();
    }

    fn publish_gr(&self) {
        let mut s = lock(&self.peer.status);
        s.gr.local = self.session.config().graceful_restart.is_some();
        s.gr.peer = self.helper.peer.is_some();
        s.gr.notification = self.helper.n_bit;
        s.gr.stale_until = self.helper.deadline;
    }

    fn export(&self) -> Option<PeerExport> {
        let c = self.conn.as_ref()?;
        let negotiated = self.session.negotiated()?;
        let (local_v4, local_v6) = match c.local.ip() {
            IpAddr::V4(a) => (Some(a), None),
            IpAddr::V6(a) => (a.to_ipv4_mapped(), Some(a)),
        };
        Some(PeerExport {
            local_asn: self.local_asn,
            peer_asn: negotiated.peer_asn,
            local_v4,
            local_v6: local_v6.or_else(|| super::addresses::global_v6_for(c.local)),
            local_v6_link_local: super::addresses::link_local_v6_for(c.local),
            families: negotiated.families.clone(),
        })
    }

    /// Established: join the update group of sessions with the same export and encoding.
    fn join_group(&mut self) {
        self.priority.restore();
        self.leave_group();
        let Some(export) = self.export() else { return };
        let ctx = self.session.context();
        let member = self.shared.next_member.fetch_add(1, Ordering::Relaxed);
        let wake = self.wake.clone();
        let waker: crate::speaker::update_group::Waker = Arc::new(move || wake.notify_one());
        let skipped = {
            let desired = read(&self.shared.desired_log);
            self.desired.mark_unchanged();
            lock(&self.shared.groups).join(member, &export, &ctx, waker, &desired)
        };
        self.log_skipped(&skipped);
        self.member = Some(member);
        self.more = true;
    }

    fn leave_group(&mut self) {
        if let Some(member) = self.member.take() {
            lock(&self.shared.groups).leave(member);
        }
        self.more = false;
    }

    fn log_skipped(&self, skipped: &[(ipnet::IpNet, crate::speaker::ExportError)]) {
        for (prefix, error) in skipped {
            tracing::warn!(peer = %self.address(), %prefix, %error, "route not sent to this peer");
        }
    }

    /// Take the group's next messages if the connection has room; they count as UPDATEs the
    /// session sent (End-of-RIB, RFC 4724 §2, comes from the group after the initial sync).
    fn pump(&mut self) {
        // The desired log and the groups are shared with the API and the other drivers: their
        // locks are never held at low priority (see `priority`); a flood goes on lowered after.
        let lowered = self.priority.is_lowered();
        self.priority.restore();
        self.pump_now();
        if lowered {
            self.priority.lower();
        }
    }

    fn pump_now(&mut self) {
        let Some(member) = self.member else {
            self.more = false;
            return;
        };
        let listening = self.shared.events.receiver_count() > 0;
        // One pull per call: `run` yields to the runtime between calls, so the connection's
        // writer puts this part of a large change on the wire while the next is produced
        // (a loop here kept the writer waiting behind this task until the whole change was
        // encoded).
        if self.more
            && self
                .conn
                .as_ref()
                .is_some_and(|c| c.queued() < conn::HIGH_WATER)
        {
            let pull = {
                let desired = read(&self.shared.desired_log);
                self.desired.mark_unchanged();
                lock(&self.shared.groups).pull(member, PUMP_BUDGET, &desired)
            };
            self.log_skipped(&pull.skipped);
            self.more = pull.more;
            let Some(last) = pull.msgs.last() else {
                return;
            };
            if !self.session.updates_written(Instant::now()) {
                self.more = false;
                return;
            }
            lock(&self.peer.status).prefixes_sent = last.told as u64;
            let Some(c) = &self.conn else { return };
            for out in &pull.msgs {
                c.send(out.bytes.clone());
            }
            self.peer
                .updates_sent
                .fetch_add(pull.msgs.len() as u64, Ordering::Relaxed);
            // The prefix lists exist only for the events stream: skip them when nobody listens.
            if listening {
                for out in &pull.msgs {
                    if !out.announced.is_empty() || !out.withdrawn.is_empty() {
                        self.shared.emit(ApiEvent::RoutesSent {
                            peer: self.address(),
                            announced: out.announced.to_vec(),
                            withdrawn: out.withdrawn.to_vec(),
                        });
                    }
                }
            }
        }
    }

    fn send(&mut self, msg: &Message) {
        let Some(c) = &self.conn else { return };
        let ctx = self.session.context();
        c.send(msg.to_bytes(&ctx).freeze());
        if matches!(msg, Message::Update(_)) {
            self.peer.updates_sent.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn connect(&mut self, connect_tx: &mpsc::Sender<(u64, std::io::Result<TcpStream>)>) {
        self.next_conn_id += 1;
        let attempt = self.next_conn_id;
        self.attempt = attempt;
        let remote = SocketAddr::new(self.peer.config.address, self.peer.config.port);
        let local = self.peer.config.local_address;
        let timeout = self.peer.config.connect_retry.duration();
        let tx = connect_tx.clone();
        // MD5 key and GTSM TTLs go on the socket before the SYN leaves (RFC 2385, RFC 5082).
        let socket = match super::security::outbound_socket(&self.peer.config, remote) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(peer = %self.address(), error = %e, "cannot open a protected connection; not connecting without the configured options");
                let _ = tx.try_send((attempt, Err(e)));
                return;
            }
        };
        tokio::spawn(async move {
            let result = match tokio::time::timeout(timeout, connect(socket, remote, local)).await {
                Ok(r) => r,
                Err(_) => Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("connect to {remote} timed out"),
                )),
            };
            let _ = tx.send((attempt, result)).await;
        });
    }
}

async fn connect(
    socket: TcpSocket,
    remote: SocketAddr,
    local: Option<IpAddr>,
) -> std::io::Result<TcpStream> {
    if let Some(ip) = local {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    socket.connect(remote).await
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}
