//! The RFC 4271 §8 finite state machine for one BGP connection, sans I/O.
//!
//! [`Session::handle`] takes an [`Event`] and the current time and returns the [`Action`]s
//! the driver must perform, in order. [`Session::poll_timeout`] is when to call
//! [`Session::handle_timeout`] next. No clock, socket or task lives here, so every test
//! drives it with a hand-made `Instant`.
//!
//! Implemented (RFC 4271 §8.2.2 unless noted):
//! - Idle: ManualStart/AutomaticStart go to Connect (and emit [`Action::Connect`]) or, when
//!   passive, to Active. After an error the session sits in Idle with the ConnectRetryTimer
//!   running; its expiry is the AutomaticStart. ManualStop cancels it.
//! - Connect/Active: a TCP connection sends OPEN and goes to OpenSent, or with DelayOpen
//!   (§8.1.1) waits for the peer's OPEN. A failed outbound connect goes to Active and
//!   retries after ConnectRetry (FRR and BIRD do this; the RFC's Idle would refuse inbound
//!   connections meanwhile).
//! - OpenSent: HoldTimer at 4 minutes; the peer's OPEN is checked
//!   ([`super::negotiate::check_open`]), answered by KEEPALIVE, OpenConfirm.
//! - OpenConfirm: KEEPALIVE goes to Established.
//! - Established: KEEPALIVE, UPDATE (and ROUTE-REFRESH) restart the HoldTimer; UPDATEs are
//!   delivered; our KEEPALIVE every hold/3 and the KeepaliveTimer restarts on every KEEPALIVE
//!   or UPDATE sent (§4.4). Hold time 0 runs neither timer.
//! - Errors: HoldTimer expiry sends 4/0 (§6.5); an unexpected message sends Finite State
//!   Machine Error 5/1, 5/2 or 5/3 (RFC 6608 §3); a malformed message sends its
//!   NOTIFICATION (§6); a received NOTIFICATION closes without reply (§6.4). Each goes to
//!   Idle with the AutomaticStart scheduled.
//! - ManualStop sends Cease/Administrative Shutdown with the RFC 9003 shutdown communication.
//! - RFC 9687 SendHoldTimer: runs while data we queued makes no progress; expiry sends 8/0.
//! - Collision (§6.8): [`Event::CollisionDump`] sends Cease 6/7 (see [`super::collision`]).
//!
//! Every state change goes through one function and emits [`Action::StateChanged`].
//! Never does: I/O, reading clocks, choosing routes.

use std::fmt;
use std::time::{Duration, Instant};

use super::collision::collision_notification;
use super::config::{ConfigError, SessionConfig};
use super::negotiate::{check_open, Negotiated};
use super::timers::{Timer, TimerTable};
use crate::wire::notification::{
    cease, fsm_error, hold_timer_expired, route_refresh_message_error, send_hold_timer_expired,
    update_message_error, UNSPECIFIC,
};
use crate::wire::{
    Context, DecodeError, Family, Message, MessageType, Notification, Open, RefreshSubtype,
    RouteRefresh, Update,
};

/// RFC 4271 §8.2.2: "sets the HoldTimer to a large value"; 4 minutes is suggested.
pub const LARGE_HOLD_TIME: Duration = Duration::from_secs(240);

/// The six states of RFC 4271 §8.2.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum State {
    #[default]
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            Self::Idle => "Idle",
            Self::Connect => "Connect",
            Self::Active => "Active",
            Self::OpenSent => "OpenSent",
            Self::OpenConfirm => "OpenConfirm",
            Self::Established => "Established",
        }
    }

    /// RFC 6608 §3 subcode for an unexpected message in this state (Unspecific elsewhere).
    fn fsm_error_subcode(self) -> u8 {
        match self {
            Self::OpenSent => fsm_error::UNEXPECTED_MESSAGE_IN_OPEN_SENT,
            Self::OpenConfirm => fsm_error::UNEXPECTED_MESSAGE_IN_OPEN_CONFIRM,
            Self::Established => fsm_error::UNEXPECTED_MESSAGE_IN_ESTABLISHED,
            _ => UNSPECIFIC,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Inputs to the FSM, with their RFC 4271 §8.1 event numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// RFC event 1, 4: Operator start; resets the ConnectRetryCounter.
    ManualStart,
    /// RFC event 2: Operator stop; sends Cease 6/2 with the RFC 9003 message once OPEN was sent.
    ManualStop { message: Option<String> },
    /// RFC event 3, 5: Restart without operator; also what the Idle ConnectRetryTimer does.
    AutomaticStart,
    /// RFC event 17: An inbound connection the driver accepted for this peer.
    TcpConnectionConfirmed,
    /// RFC event 16: Our outbound connection completed.
    TcpConnectionAcknowledged,
    /// RFC event 18: The connection (or the outbound attempt) failed or was closed by the peer.
    TcpConnectionFails,
    /// RFC event 19, 24-28: A message decoded with [`Session::context`].
    Message(Message),
    /// RFC event 21, 22, 28: A message that failed to decode.
    DecodeError(DecodeError),
    /// RFC event 9-12: A timer fired. Ignored unless that timer is running; drivers normally use
    /// [`Session::handle_timeout`] instead.
    Timer(Timer),
    /// RFC event 23: OpenCollisionDump: this connection lost collision resolution.
    CollisionDump,
    /// The speaker wants this UPDATE sent; dropped unless Established.
    SendUpdate(Update),
    /// The speaker wants this ROUTE-REFRESH sent; dropped unless Established and the peer
    /// negotiated route refresh for the family (RFC 2918 §4, RFC 7313 §4).
    SendRouteRefresh(RouteRefresh),
    /// RFC 9687: the driver wrote to the socket; `pending` says whether data is still queued.
    SendProgress { pending: bool },
    /// The speaker ends the session with this NOTIFICATION (e.g. Cease/Maximum Number of
    /// Prefixes Reached, RFC 4486) and restarts it after ConnectRetry, like any error.
    Reset(Notification),
}

/// Why a session attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownReason {
    ManualStop,
    HoldTimerExpired,
    SendHoldTimerExpired,
    ConnectionFailed,
    NotificationReceived,
    MalformedMessage {
        detail: String,
    },
    OpenRejected {
        detail: String,
    },
    UnexpectedMessage {
        state: State,
        kind: MessageType,
    },
    CollisionLost,
    /// The speaker reset the session ([`Event::Reset`]).
    LocalReset,
}

impl fmt::Display for DownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ManualStop => f.write_str("stopped by operator"),
            Self::HoldTimerExpired => f.write_str("hold timer expired: peer went silent"),
            Self::SendHoldTimerExpired => {
                f.write_str("send hold timer expired: peer stopped reading")
            }
            Self::ConnectionFailed => f.write_str("TCP connection failed or closed"),
            Self::NotificationReceived => f.write_str("peer sent a NOTIFICATION"),
            Self::MalformedMessage { detail } => write!(f, "malformed message: {detail}"),
            Self::OpenRejected { detail } => write!(f, "peer OPEN rejected: {detail}"),
            Self::UnexpectedMessage { state, kind } => {
                write!(f, "unexpected {} in {state}", kind.name())
            }
            Self::CollisionLost => f.write_str("connection collision: this connection closed"),
            Self::LocalReset => f.write_str("reset by the speaker"),
        }
    }
}

/// What the driver must do, in order. A [`Action::SendMessage`] followed by
/// [`Action::CloseConnection`] means: flush (best effort, without waiting on a peer that
/// does not read), then close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open a TCP connection to the peer; report TcpConnectionAcknowledged or -Fails.
    Connect,
    SendMessage(Message),
    /// Close this session's connection, or abandon its outbound attempt.
    CloseConnection,
    /// Close the connection just offered by TcpConnectionConfirmed/-Acknowledged; the
    /// session's own connection, if any, stays.
    RefuseConnection,
    StateChanged {
        from: State,
        to: State,
    },
    Established {
        negotiated: Negotiated,
    },
    /// The connection attempt or session ended; at most one of `sent`/`received` is set.
    SessionDown {
        reason: DownReason,
        sent: Option<Notification>,
        received: Option<Notification>,
    },
    DeliverUpdate(Update),
    DeliverRouteRefresh(RouteRefresh),
}

/// One BGP connection's FSM.
#[derive(Debug, Clone)]
pub struct Session {
    config: SessionConfig,
    local_open: Open,
    state: State,
    state_since: Option<Instant>,
    timers: TimerTable,
    /// A TCP connection is attached (not merely being attempted).
    connected: bool,
    connect_retry_counter: u32,
    peer_open: Option<Open>,
    negotiated: Option<Negotiated>,
    /// The codec context of the current connection's outgoing messages. It outlives
    /// `negotiated` until the next connection: the NOTIFICATION that takes a session down is
    /// encoded by the driver after `handle` returned, and must still be sized for what the
    /// peer negotiated (RFC 8654 §4).
    send_context: Context,
    out: Vec<Action>,
}

impl Session {
    /// A session in Idle; nothing happens until [`Event::ManualStart`].
    pub fn new(config: SessionConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            local_open: config.local_open(),
            config,
            state: State::Idle,
            state_since: None,
            timers: TimerTable::new(),
            connected: false,
            connect_retry_counter: 0,
            peer_open: None,
            negotiated: None,
            send_context: Context::default(),
            out: Vec::new(),
        })
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// When the current state was entered (`None` before the first transition).
    pub fn state_since(&self) -> Option<Instant> {
        self.state_since
    }

    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    pub fn local_open(&self) -> &Open {
        &self.local_open
    }

    /// Change the Graceful Restart capability of the OPENs sent from now on (e.g. clear the
    /// Restart State bit once a restarted speaker is back, RFC 4724 §3). Call it between
    /// connections: an OPEN already sent is checked against what it carried.
    pub fn set_graceful_restart(&mut self, gr: Option<crate::wire::capability::GracefulRestart>) {
        self.config.graceful_restart = gr;
        self.local_open = self.config.local_open();
    }

    /// The peer's OPEN once accepted (OpenConfirm, Established).
    pub fn peer_open(&self) -> Option<&Open> {
        self.peer_open.as_ref()
    }

    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// The codec context to encode with: the negotiated one once the peer's OPEN is accepted
    /// (and, after the session went down, until the next connection), else the default (OPEN
    /// and KEEPALIVE do not depend on it).
    pub fn context(&self) -> Context {
        self.send_context
    }

    /// The codec context to decode received messages with ([`Negotiated::receive_context`]).
    pub fn receive_context(&self) -> Context {
        self.negotiated
            .as_ref()
            .map(Negotiated::receive_context)
            .unwrap_or_default()
    }

    /// The driver is about to write UPDATEs it did not get through [`Event::SendUpdate`]
    /// (encoded once for an update group). Returns whether they may be sent (Established);
    /// if so the timers run as for a sent UPDATE: KeepaliveTimer restarted (RFC 4271 §4.4),
    /// SendHoldTimer armed until the driver reports the data drained (RFC 9687).
    pub fn updates_written(&mut self, now: Instant) -> bool {
        if self.state != State::Established {
            return false;
        }
        if let Some(k) = self.negotiated.as_ref().and_then(Negotiated::keepalive) {
            self.timers.start(Timer::Keepalive, now, k);
        }
        if !self.timers.is_running(Timer::SendHold) {
            self.start_send_hold(now);
        }
        true
    }

    pub fn connect_retry_counter(&self) -> u32 {
        self.connect_retry_counter
    }

    pub fn timers(&self) -> &TimerTable {
        &self.timers
    }

    /// Whether an offered connection would be taken (Connect or Active with no connection
    /// yet). In OpenSent/OpenConfirm the driver runs a second session for an inbound
    /// connection and resolves the collision; otherwise it refuses the connection.
    pub fn accepts_connection(&self) -> bool {
        matches!(self.state, State::Connect | State::Active) && !self.connected
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    /// Handle every timer due at `now`, earliest first.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Action> {
        while let Some(timer) = self.timers.expired(now) {
            self.timers.stop(timer);
            self.on_timer(now, timer);
        }
        std::mem::take(&mut self.out)
    }

    pub fn handle(&mut self, now: Instant, event: Event) -> Vec<Action> {
        match event {
            Event::ManualStart => self.on_start(now, true),
            Event::AutomaticStart => self.on_start(now, false),
            Event::ManualStop { message } => self.on_manual_stop(now, message),
            Event::TcpConnectionConfirmed | Event::TcpConnectionAcknowledged => {
                self.on_connected(now)
            }
            Event::TcpConnectionFails => self.on_connection_fails(now),
            Event::Message(msg) => self.on_message(now, msg),
            Event::DecodeError(err) => self.on_decode_error(now, err),
            Event::Timer(timer) => {
                if self.timers.is_running(timer) {
                    self.timers.stop(timer);
                    self.on_timer(now, timer);
                }
            }
            Event::Reset(n) => {
                if self.connected {
                    self.go_down(now, DownReason::LocalReset, Some(n), None, true);
                }
            }
            Event::CollisionDump => {
                if self.connected {
                    let n = collision_notification();
                    self.go_down(now, DownReason::CollisionLost, Some(n), None, false);
                }
            }
            Event::SendUpdate(update) => {
                if self.state == State::Established {
                    self.send(now, Message::Update(update));
                }
            }
            Event::SendRouteRefresh(rr) => {
                if self.state == State::Established && self.may_send_refresh(&rr) {
                    self.send(now, Message::RouteRefresh(rr));
                }
            }
            Event::SendProgress { pending } => {
                if self.connected && pending {
                    self.start_send_hold(now);
                } else {
                    self.timers.stop(Timer::SendHold);
                }
            }
        }
        std::mem::take(&mut self.out)
    }

    /// The one place the state changes.
    fn transition(&mut self, now: Instant, to: State) {
        let from = self.state;
        if from == to {
            return;
        }
        self.state = to;
        self.state_since = Some(now);
        self.out.push(Action::StateChanged { from, to });
    }

    fn on_start(&mut self, now: Instant, manual: bool) {
        if self.state != State::Idle {
            return; // §8.2.2: ignored outside Idle.
        }
        if manual {
            self.connect_retry_counter = 0;
        }
        self.timers.stop_all();
        if self.config.passive {
            self.transition(now, State::Active);
        } else {
            self.timers
                .start(Timer::ConnectRetry, now, self.config.connect_retry);
            self.transition(now, State::Connect);
            self.out.push(Action::Connect);
        }
    }

    fn on_manual_stop(&mut self, now: Instant, message: Option<String>) {
        self.connect_retry_counter = 0;
        match self.state {
            // Cancels a scheduled AutomaticStart.
            State::Idle => self.timers.stop_all(),
            // No OPEN sent yet: just drop the connection (§8.2.2 Connect, Active).
            State::Connect | State::Active => {
                self.go_down(now, DownReason::ManualStop, None, None, false)
            }
            State::OpenSent | State::OpenConfirm | State::Established => {
                // RFC 9003 §2 / RFC 4486 §4: Administrative Shutdown.
                let n = match message {
                    Some(text) => {
                        Notification::cease_with_message(cease::ADMINISTRATIVE_SHUTDOWN, &text)
                    }
                    None => notification(cease::CODE, cease::ADMINISTRATIVE_SHUTDOWN),
                };
                self.go_down(now, DownReason::ManualStop, Some(n), None, false);
            }
        }
    }

    fn on_connected(&mut self, now: Instant) {
        if !self.accepts_connection() {
            self.out.push(Action::RefuseConnection);
            return;
        }
        self.connected = true;
        self.send_context = Context::default();
        self.timers.stop(Timer::ConnectRetry);
        match self.config.delay_open {
            Some(delay) => self.timers.start(Timer::DelayOpen, now, delay),
            None => self.send_open(now),
        }
    }

    fn send_open(&mut self, now: Instant) {
        self.timers.stop(Timer::DelayOpen);
        self.send(now, Message::Open(self.local_open.clone()));
        self.timers.start(Timer::Hold, now, LARGE_HOLD_TIME);
        self.transition(now, State::OpenSent);
    }

    fn on_connection_fails(&mut self, now: Instant) {
        match self.state {
            State::Idle => {}
            State::Active if !self.connected => {}
            State::Connect | State::Active => {
                // Before any OPEN: keep listening in Active, retry outbound later.
                if self.connected || self.state == State::Connect {
                    self.out.push(Action::CloseConnection);
                }
                self.connected = false;
                self.connect_retry_counter += 1;
                self.timers.stop_all();
                self.arm_connect_retry(now);
                self.transition(now, State::Active);
            }
            State::OpenSent => {
                // §8.2.2 OpenSent, event 18: back to Active.
                self.go_down_to(now, State::Active, DownReason::ConnectionFailed, None, None);
                self.arm_connect_retry(now);
            }
            State::OpenConfirm | State::Established => {
                self.go_down(now, DownReason::ConnectionFailed, None, None, true)
            }
        }
    }

    fn arm_connect_retry(&mut self, now: Instant) {
        if !self.config.passive {
            self.timers
                .start(Timer::ConnectRetry, now, self.config.connect_retry);
        }
    }

    fn on_timer(&mut self, now: Instant, timer: Timer) {
        match (timer, self.state) {
            (Timer::ConnectRetry, State::Idle) => self.on_start(now, false),
            (Timer::ConnectRetry, State::Connect) => {
                // Drop whatever we have and try again (§8.2.2 Connect, event 9).
                self.out.push(Action::CloseConnection);
                self.connected = false;
                self.timers.stop(Timer::DelayOpen);
                self.timers
                    .start(Timer::ConnectRetry, now, self.config.connect_retry);
                self.out.push(Action::Connect);
            }
            (Timer::ConnectRetry, State::Active) if !self.config.passive && !self.connected => {
                self.timers
                    .start(Timer::ConnectRetry, now, self.config.connect_retry);
                self.transition(now, State::Connect);
                self.out.push(Action::Connect);
            }
            (Timer::DelayOpen, State::Connect | State::Active) if self.connected => {
                self.send_open(now)
            }
            (Timer::Hold, State::OpenSent | State::OpenConfirm | State::Established) => {
                // §6.5: Hold Timer Expired, no subcode.
                let n = notification(hold_timer_expired::CODE, UNSPECIFIC);
                self.go_down(now, DownReason::HoldTimerExpired, Some(n), None, true);
            }
            (Timer::Keepalive, State::OpenConfirm | State::Established) => {
                self.send(now, Message::Keepalive)
            }
            (Timer::SendHold, _) if self.connected => {
                // RFC 9687 §4: Send Hold Timer Expired.
                let n = notification(send_hold_timer_expired::CODE, UNSPECIFIC);
                self.go_down(now, DownReason::SendHoldTimerExpired, Some(n), None, true);
            }
            _ => {}
        }
    }

    fn on_message(&mut self, now: Instant, msg: Message) {
        if !self.connected {
            return; // Idle, or a stray message with no connection.
        }
        if let Message::Notification(n) = msg {
            // §6.4 and §8.2.2: close without replying.
            self.go_down(now, DownReason::NotificationReceived, None, Some(n), true);
            return;
        }
        match (self.state, msg) {
            (State::Connect | State::Active, Message::Open(open))
                if self.timers.is_running(Timer::DelayOpen) =>
            {
                self.on_open(now, open)
            }
            // §8.2.2 Connect/Active "any other event": drop without NOTIFICATION.
            (State::Connect | State::Active, other) => {
                let reason = DownReason::UnexpectedMessage {
                    state: self.state,
                    kind: other.kind(),
                };
                self.go_down(now, reason, None, None, true);
            }
            (State::OpenSent, Message::Open(open)) => self.on_open(now, open),
            (State::OpenConfirm, Message::Keepalive) => {
                self.restart_hold(now);
                let negotiated = self.negotiated.clone();
                self.transition(now, State::Established);
                if let Some(negotiated) = negotiated {
                    self.out.push(Action::Established { negotiated });
                }
            }
            (State::Established, Message::Keepalive) => self.restart_hold(now),
            (State::Established, Message::Update(update)) => {
                self.restart_hold(now);
                self.out.push(Action::DeliverUpdate(update));
            }
            (State::Established, Message::RouteRefresh(rr)) => {
                self.restart_hold(now);
                if self.may_receive_refresh(&rr) {
                    self.out.push(Action::DeliverRouteRefresh(rr));
                }
            }
            (state, other) => self.unexpected(now, state, other.kind()),
        }
    }

    /// RFC 6608 §3: Finite State Machine Error with the state's subcode.
    fn unexpected(&mut self, now: Instant, state: State, kind: MessageType) {
        let n = notification(fsm_error::CODE, state.fsm_error_subcode());
        let reason = DownReason::UnexpectedMessage { state, kind };
        self.go_down(now, reason, Some(n), None, true);
    }

    /// The peer's OPEN in OpenSent, or in Connect/Active while DelayOpen runs.
    fn on_open(&mut self, now: Instant, open: Open) {
        let delayed = self.state != State::OpenSent;
        self.timers.stop(Timer::DelayOpen);
        self.timers.stop(Timer::ConnectRetry);
        let negotiated = match check_open(&self.config, &self.local_open, &open) {
            Ok(n) => n,
            Err(rejection) => {
                // With DelayOpen our OPEN was never sent: the NOTIFICATION goes alone
                // (SendNOTIFICATIONwithoutOPEN, §8.1.1).
                let reason = DownReason::OpenRejected {
                    detail: rejection.detail,
                };
                self.go_down(now, reason, Some(rejection.notification), None, true);
                return;
            }
        };
        self.peer_open = Some(open);
        self.send_context = negotiated.context();
        self.negotiated = Some(negotiated);
        if delayed {
            self.send(now, Message::Open(self.local_open.clone()));
        }
        self.timers.stop(Timer::Keepalive);
        self.restart_hold(now);
        // Starts the KeepaliveTimer when the hold time is not 0.
        self.send(now, Message::Keepalive);
        self.transition(now, State::OpenConfirm);
    }

    fn on_decode_error(&mut self, now: Instant, err: DecodeError) {
        if !self.connected {
            return;
        }
        let (code, _) = err.kind.code_subcode();
        let body_of = match code {
            update_message_error::CODE => Some(MessageType::Update),
            route_refresh_message_error::CODE => Some(MessageType::RouteRefresh),
            _ => None,
        };
        match (self.state, body_of) {
            // The type itself is unexpected before Established (RFC 6608 §3).
            (State::OpenSent | State::OpenConfirm, Some(kind)) => {
                self.unexpected(now, self.state, kind)
            }
            _ => {
                let reason = DownReason::MalformedMessage {
                    detail: err.to_string(),
                };
                self.go_down(now, reason, Some(err.notification()), None, true);
            }
        }
    }

    fn restart_hold(&mut self, now: Instant) {
        match self.negotiated.as_ref().and_then(Negotiated::hold) {
            Some(hold) => self.timers.start(Timer::Hold, now, hold),
            None => self.timers.stop(Timer::Hold),
        }
    }

    /// Queue a message; KEEPALIVE and UPDATE restart the KeepaliveTimer (§4.4) and any
    /// queued data arms the SendHoldTimer until the driver reports it drained.
    fn send(&mut self, now: Instant, msg: Message) {
        if matches!(msg, Message::Keepalive | Message::Update(_)) {
            if let Some(k) = self.negotiated.as_ref().and_then(Negotiated::keepalive) {
                self.timers.start(Timer::Keepalive, now, k);
            }
        }
        if !self.timers.is_running(Timer::SendHold) {
            self.start_send_hold(now);
        }
        self.out.push(Action::SendMessage(msg));
    }

    /// RFC 9687 §3: the configured time, but never less than twice the hold time.
    fn start_send_hold(&mut self, now: Instant) {
        if let Some(min) = self.config.send_hold {
            let hold = self
                .negotiated
                .as_ref()
                .map_or(self.config.hold_time, |n| n.hold_time);
            let d = min.max(Duration::from_secs(2 * u64::from(hold)));
            self.timers.start(Timer::SendHold, now, d);
        }
    }

    fn refresh_allowed(&self, rr: &RouteRefresh, sending: bool) -> bool {
        let Some(n) = &self.negotiated else {
            return false;
        };
        let family_ok = Family::from_afi_safi(rr.afi, rr.safi).is_some_and(|f| n.has_family(f));
        let subtype_ok = match rr.subtype {
            RefreshSubtype::Normal => !sending || n.route_refresh || n.enhanced_route_refresh,
            RefreshSubtype::Borr | RefreshSubtype::Eorr => n.enhanced_route_refresh,
            // RFC 7313 §5: ignore unknown subtypes.
            RefreshSubtype::Unknown(_) => false,
        };
        family_ok && subtype_ok
    }

    fn may_send_refresh(&self, rr: &RouteRefresh) -> bool {
        self.refresh_allowed(rr, true)
    }

    /// RFC 2918 §4: ignore a request for a family we did not negotiate.
    fn may_receive_refresh(&self, rr: &RouteRefresh) -> bool {
        self.refresh_allowed(rr, false)
    }

    fn go_down(
        &mut self,
        now: Instant,
        reason: DownReason,
        sent: Option<Notification>,
        received: Option<Notification>,
        restart: bool,
    ) {
        self.go_down_to(now, State::Idle, reason, sent, received);
        if restart {
            // Idle with the ConnectRetryTimer running = AutomaticStart scheduled.
            self.connect_retry_counter += 1;
            self.timers
                .start(Timer::ConnectRetry, now, self.config.connect_retry);
        }
    }

    /// Send the NOTIFICATION if any, close, forget the peer, change state, report.
    fn go_down_to(
        &mut self,
        now: Instant,
        to: State,
        reason: DownReason,
        sent: Option<Notification>,
        received: Option<Notification>,
    ) {
        if let Some(n) = &sent {
            self.out
                .push(Action::SendMessage(Message::Notification(n.clone())));
        }
        if self.connected || self.state == State::Connect {
            self.out.push(Action::CloseConnection);
        }
        self.connected = false;
        self.timers.stop_all();
        self.peer_open = None;
        self.negotiated = None;
        self.transition(now, to);
        self.out.push(Action::SessionDown {
            reason,
            sent,
            received,
        });
    }
}

fn notification(code: u8, subcode: u8) -> Notification {
    Notification {
        code,
        subcode,
        data: Default::default(),
    }
}

#[cfg(test)]
mod tests;
