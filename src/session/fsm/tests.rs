//! FSM tests: every state against each event class, driven by an explicit `now`.

use std::net::Ipv4Addr;

use bytes::Bytes;

use super::*;
use crate::session::collision::{connection_to_close, Direction, Speaker};
use crate::wire::capability::Role;
use crate::wire::{Afi, Capability, ErrorKind, Safi};

const S: Duration = Duration::from_secs(1);
const LOCAL_ID: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const PEER_ID: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

fn cfg() -> SessionConfig {
    SessionConfig {
        hold_time: 9,
        connect_retry: 5 * S,
        ..SessionConfig::new(65100, LOCAL_ID, 65001)
    }
}

fn peer_open_with(asn: u32, hold: u16, extra: Vec<Capability>) -> Open {
    let mut caps = vec![
        Capability::Multiprotocol {
            afi: Afi::Ipv4,
            safi: Safi::Unicast,
        },
        Capability::RouteRefresh,
        Capability::FourOctetAs(asn),
    ];
    caps.extend(extra);
    Open::new(asn, hold, PEER_ID, caps)
}

fn peer_open() -> Message {
    Message::Open(peer_open_with(65001, 90, vec![]))
}

/// A session plus a clock the test advances by hand.
struct Harness {
    s: Session,
    now: Instant,
}

impl Harness {
    fn new(config: SessionConfig) -> Self {
        Self {
            s: Session::new(config).unwrap(),
            now: Instant::now(),
        }
    }

    fn ev(&mut self, e: Event) -> Vec<Action> {
        self.s.handle(self.now, e)
    }

    fn msg(&mut self, m: Message) -> Vec<Action> {
        self.ev(Event::Message(m))
    }

    fn advance(&mut self, d: Duration) -> Vec<Action> {
        self.now += d;
        self.s.handle_timeout(self.now)
    }

    /// Report the send queue drained (so the SendHoldTimer stops).
    fn flushed(&mut self) {
        assert_eq!(self.ev(Event::SendProgress { pending: false }), vec![]);
    }

    fn to_open_sent(config: SessionConfig) -> Self {
        let mut h = Self::new(config);
        h.ev(Event::ManualStart);
        h.ev(Event::TcpConnectionAcknowledged);
        assert_eq!(h.s.state(), State::OpenSent);
        h.flushed();
        h
    }

    fn to_open_confirm(config: SessionConfig) -> Self {
        let mut h = Self::to_open_sent(config);
        h.msg(peer_open());
        assert_eq!(h.s.state(), State::OpenConfirm);
        h.flushed();
        h
    }

    fn established(config: SessionConfig) -> Self {
        let mut h = Self::to_open_confirm(config);
        h.msg(Message::Keepalive);
        assert_eq!(h.s.state(), State::Established);
        h
    }

    fn deadline(&self, t: Timer) -> Option<Duration> {
        self.s.timers().deadline(t).map(|d| d - self.now)
    }
}

fn sent(actions: &[Action]) -> Vec<Message> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::SendMessage(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

fn transitions(actions: &[Action]) -> Vec<(State, State)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::StateChanged { from, to } => Some((*from, *to)),
            _ => None,
        })
        .collect()
}

fn down(actions: &[Action]) -> Option<(DownReason, Option<Notification>, Option<Notification>)> {
    actions.iter().find_map(|a| match a {
        Action::SessionDown {
            reason,
            sent,
            received,
        } => Some((reason.clone(), sent.clone(), received.clone())),
        _ => None,
    })
}

/// The NOTIFICATION sent, as the octets on the wire.
fn notification_wire(actions: &[Action]) -> Vec<u8> {
    let msgs = sent(actions);
    let n: Vec<_> = msgs
        .iter()
        .filter(|m| matches!(m, Message::Notification(_)))
        .collect();
    assert_eq!(n.len(), 1, "exactly one NOTIFICATION in {actions:?}");
    n[0].to_bytes(&Context::default()).to_vec()
}

/// Expected NOTIFICATION octets: marker, length, type 3, code, subcode, data.
fn wire(code: u8, subcode: u8, data: &[u8]) -> Vec<u8> {
    let mut v = vec![0xff; 16];
    v.extend_from_slice(&(21 + data.len() as u16).to_be_bytes());
    v.extend_from_slice(&[3, code, subcode]);
    v.extend_from_slice(data);
    v
}

fn closes(actions: &[Action]) -> bool {
    actions.contains(&Action::CloseConnection)
}

fn update() -> Update {
    Update {
        nlri: vec!["192.0.2.0/24".parse().unwrap()],
        ..Update::default()
    }
}

// ---- construction and names ------------------------------------------------------------

#[test]
fn states_print_rfc_names() {
    let names: Vec<_> = [
        State::Idle,
        State::Connect,
        State::Active,
        State::OpenSent,
        State::OpenConfirm,
        State::Established,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(
        names,
        [
            "Idle",
            "Connect",
            "Active",
            "OpenSent",
            "OpenConfirm",
            "Established"
        ]
    );
}

#[test]
fn construction_rejects_hold_time_one_or_two() {
    let e = Session::new(SessionConfig {
        hold_time: 2,
        ..cfg()
    })
    .unwrap_err();
    assert_eq!(e, ConfigError::HoldTime(2));
    let s = Session::new(cfg()).unwrap();
    assert_eq!(s.state(), State::Idle);
    assert_eq!((s.poll_timeout(), s.state_since()), (None, None));
}

// ---- Idle ----------------------------------------------------------------------------------

#[test]
fn idle_manual_start_connects_and_arms_connect_retry() {
    let mut h = Harness::new(cfg());
    let a = h.ev(Event::ManualStart);
    assert_eq!(
        a,
        vec![
            Action::StateChanged {
                from: State::Idle,
                to: State::Connect
            },
            Action::Connect
        ]
    );
    assert_eq!(h.deadline(Timer::ConnectRetry), Some(5 * S));
    assert_eq!(h.s.poll_timeout(), Some(h.now + 5 * S));
    assert_eq!(h.s.state_since(), Some(h.now));
    assert!(h.s.accepts_connection());
}

#[test]
fn idle_passive_start_goes_active_without_connecting() {
    let mut h = Harness::new(SessionConfig {
        passive: true,
        ..cfg()
    });
    let a = h.ev(Event::ManualStart);
    assert_eq!(
        a,
        vec![Action::StateChanged {
            from: State::Idle,
            to: State::Active
        }]
    );
    assert_eq!(h.s.poll_timeout(), None);
    // Nothing ever connects out, however long we wait.
    assert_eq!(h.advance(3600 * S), vec![]);
    assert!(h.s.accepts_connection());
}

#[test]
fn idle_ignores_everything_but_start_and_refuses_connections() {
    let mut h = Harness::new(cfg());
    assert_eq!(h.msg(Message::Keepalive), vec![]);
    assert_eq!(h.msg(peer_open()), vec![]);
    assert_eq!(h.ev(Event::TcpConnectionFails), vec![]);
    assert_eq!(h.ev(Event::Timer(Timer::Hold)), vec![]);
    assert_eq!(h.ev(Event::CollisionDump), vec![]);
    assert_eq!(h.ev(Event::SendUpdate(update())), vec![]);
    assert_eq!(h.ev(Event::ManualStop { message: None }), vec![]);
    let e = DecodeError::new(ErrorKind::BadMessageType, "type", 18, "x");
    assert_eq!(h.ev(Event::DecodeError(e)), vec![]);
    assert!(!h.s.accepts_connection());
    assert_eq!(
        h.ev(Event::TcpConnectionConfirmed),
        vec![Action::RefuseConnection]
    );
    assert_eq!(h.s.state(), State::Idle);
}

#[test]
fn start_events_are_ignored_outside_idle() {
    let mut h = Harness::new(cfg());
    h.ev(Event::ManualStart);
    assert_eq!(h.ev(Event::ManualStart), vec![]);
    assert_eq!(h.ev(Event::AutomaticStart), vec![]);
    let mut h = Harness::established(cfg());
    assert_eq!(h.ev(Event::ManualStart), vec![]);
    assert_eq!(h.ev(Event::AutomaticStart), vec![]);
    assert_eq!(h.s.state(), State::Established);
}

// ---- Connect / Active ----------------------------------------------------------------------

#[test]
fn connect_outbound_success_sends_open_with_large_hold_timer() {
    let mut h = Harness::new(cfg());
    h.ev(Event::ManualStart);
    let a = h.ev(Event::TcpConnectionAcknowledged);
    assert_eq!(sent(&a), vec![Message::Open(h.s.local_open().clone())]);
    assert_eq!(transitions(&a), vec![(State::Connect, State::OpenSent)]);
    assert_eq!(h.deadline(Timer::Hold), Some(LARGE_HOLD_TIME));
    assert!(!h.s.timers().is_running(Timer::ConnectRetry));
    assert!(!h.s.accepts_connection());
}

#[test]
fn connect_retry_expiry_abandons_attempt_and_retries() {
    let mut h = Harness::new(cfg());
    h.ev(Event::ManualStart);
    assert_eq!(h.advance(4 * S), vec![]);
    let a = h.advance(S);
    assert_eq!(a, vec![Action::CloseConnection, Action::Connect]);
    assert_eq!(h.s.state(), State::Connect);
    assert_eq!(h.deadline(Timer::ConnectRetry), Some(5 * S));
}

#[test]
fn connect_failure_waits_in_active_then_retries() {
    let mut h = Harness::new(cfg());
    h.ev(Event::ManualStart);
    h.advance(S);
    let a = h.ev(Event::TcpConnectionFails);
    assert_eq!(transitions(&a), vec![(State::Connect, State::Active)]);
    assert!(closes(&a));
    assert_eq!(down(&a), None, "no session existed yet");
    assert_eq!(h.s.connect_retry_counter(), 1);
    assert!(h.s.accepts_connection(), "Active keeps listening");
    let a = h.advance(5 * S);
    assert_eq!(
        a,
        vec![
            Action::StateChanged {
                from: State::Active,
                to: State::Connect
            },
            Action::Connect
        ]
    );
}

#[test]
fn active_accepts_inbound_connection() {
    let mut h = Harness::new(SessionConfig {
        passive: true,
        ..cfg()
    });
    h.ev(Event::ManualStart);
    let a = h.ev(Event::TcpConnectionConfirmed);
    assert_eq!(transitions(&a), vec![(State::Active, State::OpenSent)]);
    assert!(matches!(sent(&a)[..], [Message::Open(_)]));
    // A second connection is refused; the first stays.
    assert_eq!(
        h.ev(Event::TcpConnectionConfirmed),
        vec![Action::RefuseConnection]
    );
    assert_eq!(h.s.state(), State::OpenSent);
}

#[test]
fn connect_accepts_inbound_connection_too() {
    let mut h = Harness::new(cfg());
    h.ev(Event::ManualStart);
    let a = h.ev(Event::TcpConnectionConfirmed);
    assert_eq!(transitions(&a), vec![(State::Connect, State::OpenSent)]);
    // The outbound attempt finishing late is refused.
    assert_eq!(
        h.ev(Event::TcpConnectionAcknowledged),
        vec![Action::RefuseConnection]
    );
}

#[test]
fn manual_stop_in_connect_and_active_drops_without_notification() {
    let mut h = Harness::new(cfg());
    h.ev(Event::ManualStart);
    let a = h.ev(Event::ManualStop {
        message: Some("bye".into()),
    });
    assert_eq!(sent(&a), vec![]);
    assert!(closes(&a), "abandons the outbound attempt");
    assert_eq!(transitions(&a), vec![(State::Connect, State::Idle)]);
    assert_eq!(down(&a).unwrap().0, DownReason::ManualStop);
    assert_eq!(h.s.poll_timeout(), None, "no automatic restart");

    let mut h = Harness::new(SessionConfig {
        passive: true,
        ..cfg()
    });
    h.ev(Event::ManualStart);
    let a = h.ev(Event::ManualStop { message: None });
    assert!(!closes(&a), "no connection to close in Active");
    assert_eq!(h.s.state(), State::Idle);
}

#[test]
fn messages_without_connection_in_connect_are_ignored() {
    let mut h = Harness::new(cfg());
    h.ev(Event::ManualStart);
    assert_eq!(h.msg(Message::Keepalive), vec![]);
    assert_eq!(h.ev(Event::CollisionDump), vec![]);
    assert_eq!(h.s.state(), State::Connect);
}

// ---- DelayOpen ------------------------------------------------------------------------------

fn delay_cfg() -> SessionConfig {
    SessionConfig {
        delay_open: Some(2 * S),
        ..cfg()
    }
}

#[test]
fn delay_open_waits_then_sends_open_on_expiry() {
    let mut h = Harness::new(delay_cfg());
    h.ev(Event::ManualStart);
    let a = h.ev(Event::TcpConnectionAcknowledged);
    assert_eq!(a, vec![], "no OPEN yet");
    assert_eq!(h.deadline(Timer::DelayOpen), Some(2 * S));
    assert!(!h.s.timers().is_running(Timer::ConnectRetry));
    assert_eq!(h.advance(S), vec![]);
    let a = h.advance(S);
    assert!(matches!(sent(&a)[..], [Message::Open(_)]));
    assert_eq!(transitions(&a), vec![(State::Connect, State::OpenSent)]);
    assert_eq!(h.deadline(Timer::Hold), Some(LARGE_HOLD_TIME));
}

#[test]
fn delay_open_peer_open_first_sends_open_and_keepalive() {
    let mut h = Harness::new(delay_cfg());
    h.ev(Event::ManualStart);
    h.ev(Event::TcpConnectionAcknowledged);
    let a = h.msg(peer_open());
    assert_eq!(
        sent(&a),
        vec![Message::Open(h.s.local_open().clone()), Message::Keepalive]
    );
    assert_eq!(transitions(&a), vec![(State::Connect, State::OpenConfirm)]);
    assert!(!h.s.timers().is_running(Timer::DelayOpen));
    assert_eq!(h.deadline(Timer::Hold), Some(9 * S));
    assert_eq!(h.deadline(Timer::Keepalive), Some(3 * S));
}

#[test]
fn delay_open_bad_peer_open_gets_notification_without_our_open() {
    let mut h = Harness::new(SessionConfig {
        passive: true,
        ..delay_cfg()
    });
    h.ev(Event::ManualStart);
    h.ev(Event::TcpConnectionConfirmed);
    let a = h.msg(Message::Open(peer_open_with(65002, 90, vec![])));
    assert_eq!(notification_wire(&a), wire(2, 2, &[0, 0, 0xfd, 0xea]));
    assert_eq!(sent(&a).len(), 1, "no OPEN before the NOTIFICATION");
    assert_eq!(transitions(&a), vec![(State::Active, State::Idle)]);
}

#[test]
fn delay_open_connection_failure_goes_active() {
    let mut h = Harness::new(delay_cfg());
    h.ev(Event::ManualStart);
    h.ev(Event::TcpConnectionAcknowledged);
    let a = h.ev(Event::TcpConnectionFails);
    assert!(closes(&a));
    assert_eq!(h.s.state(), State::Active);
    assert!(!h.s.timers().is_running(Timer::DelayOpen));
    assert_eq!(h.deadline(Timer::ConnectRetry), Some(5 * S));
}

#[test]
fn delay_open_other_message_drops_connection_without_notification() {
    let mut h = Harness::new(delay_cfg());
    h.ev(Event::ManualStart);
    h.ev(Event::TcpConnectionAcknowledged);
    let a = h.msg(Message::Keepalive);
    assert_eq!(sent(&a), vec![]);
    assert!(closes(&a));
    assert_eq!(h.s.state(), State::Idle);
    assert!(matches!(
        down(&a).unwrap().0,
        DownReason::UnexpectedMessage {
            state: State::Connect,
            kind: MessageType::Keepalive
        }
    ));
    assert_eq!(
        h.deadline(Timer::ConnectRetry),
        Some(5 * S),
        "restart scheduled"
    );
}

#[test]
fn delay_open_notification_from_peer_goes_idle() {
    let mut h = Harness::new(delay_cfg());
    h.ev(Event::ManualStart);
    h.ev(Event::TcpConnectionAcknowledged);
    let n = notification(cease::CODE, cease::CONNECTION_REJECTED);
    let a = h.msg(Message::Notification(n.clone()));
    assert_eq!(sent(&a), vec![]);
    assert_eq!(down(&a).unwrap().2, Some(n));
}

#[test]
fn delay_open_connect_retry_does_not_run_while_waiting() {
    // ConnectRetry is stopped when the connection comes up; only DelayOpen is pending.
    let mut h = Harness::new(delay_cfg());
    h.ev(Event::ManualStart);
    h.ev(Event::TcpConnectionAcknowledged);
    assert_eq!(h.s.poll_timeout(), Some(h.now + 2 * S));
}

// ---- OpenSent -------------------------------------------------------------------------------

#[test]
fn open_sent_valid_open_sends_keepalive_and_negotiates_timers() {
    let mut h = Harness::to_open_sent(cfg());
    let a = h.msg(peer_open());
    assert_eq!(sent(&a), vec![Message::Keepalive]);
    assert_eq!(transitions(&a), vec![(State::OpenSent, State::OpenConfirm)]);
    // min(9, 90) = 9, keepalive 9/3 = 3.
    assert_eq!(h.deadline(Timer::Hold), Some(9 * S));
    assert_eq!(h.deadline(Timer::Keepalive), Some(3 * S));
    let n = h.s.negotiated().unwrap();
    assert_eq!(
        (n.hold_time, n.peer_asn, n.peer_router_id),
        (9, 65001, PEER_ID)
    );
    assert_eq!(h.s.peer_open().unwrap().router_id, PEER_ID);
    assert_eq!(h.s.context(), n.context());
}

#[test]
fn open_sent_peer_hold_zero_runs_no_hold_or_keepalive_timers() {
    let mut h = Harness::to_open_sent(cfg());
    let a = h.msg(Message::Open(peer_open_with(65001, 0, vec![])));
    assert_eq!(sent(&a), vec![Message::Keepalive]);
    h.flushed();
    assert_eq!(h.s.poll_timeout(), None);
    h.msg(Message::Keepalive);
    assert_eq!(h.s.state(), State::Established);
    h.flushed();
    assert_eq!(
        h.advance(86400 * S),
        vec![],
        "silence is fine with hold time 0"
    );
    // Sending an UPDATE does not start a keepalive timer either.
    h.ev(Event::SendUpdate(update()));
    h.flushed();
    assert_eq!(h.s.poll_timeout(), None);
}

#[test]
fn open_sent_unexpected_messages_are_fsm_error_5_1() {
    for m in [
        Message::Keepalive,
        Message::Update(update()),
        Message::RouteRefresh(RouteRefresh::new(
            Afi::Ipv4,
            Safi::Unicast,
            RefreshSubtype::Normal,
        )),
    ] {
        let kind = m.kind();
        let mut h = Harness::to_open_sent(cfg());
        let a = h.msg(m);
        assert_eq!(notification_wire(&a), wire(5, 1, &[]));
        assert!(closes(&a));
        assert_eq!(transitions(&a), vec![(State::OpenSent, State::Idle)]);
        assert_eq!(
            down(&a).unwrap().0,
            DownReason::UnexpectedMessage {
                state: State::OpenSent,
                kind
            }
        );
        assert_eq!(h.deadline(Timer::ConnectRetry), Some(5 * S));
    }
}

#[test]
fn open_sent_hold_timer_expiry_after_four_minutes_sends_4_0() {
    let mut h = Harness::to_open_sent(cfg());
    assert_eq!(h.advance(239 * S), vec![]);
    let a = h.advance(S);
    assert_eq!(notification_wire(&a), wire(4, 0, &[]));
    assert_eq!(down(&a).unwrap().0, DownReason::HoldTimerExpired);
    assert_eq!(h.s.state(), State::Idle);
}

#[test]
fn open_sent_connection_failure_goes_active_and_reports() {
    let mut h = Harness::to_open_sent(cfg());
    let a = h.ev(Event::TcpConnectionFails);
    assert_eq!(transitions(&a), vec![(State::OpenSent, State::Active)]);
    assert_eq!(down(&a).unwrap().0, DownReason::ConnectionFailed);
    assert_eq!(h.deadline(Timer::ConnectRetry), Some(5 * S));
    assert!(h.s.accepts_connection());
}

#[test]
fn open_sent_notification_received_goes_down_without_reply() {
    let mut h = Harness::to_open_sent(cfg());
    let n = Notification::cease_with_message(cease::ADMINISTRATIVE_SHUTDOWN, "maintenance");
    let a = h.msg(Message::Notification(n.clone()));
    assert_eq!(sent(&a), vec![]);
    assert!(closes(&a));
    let (reason, s, r) = down(&a).unwrap();
    assert_eq!((reason, s), (DownReason::NotificationReceived, None));
    assert_eq!(
        r.unwrap().shutdown_message().as_deref(),
        Some("maintenance")
    );
    assert_eq!(h.s.state(), State::Idle);
}

#[test]
fn open_sent_decode_error_sends_its_notification() {
    let mut h = Harness::to_open_sent(cfg());
    let e = DecodeError::new(ErrorKind::UnsupportedVersionNumber, "version", 19, "v3")
        .with_data(vec![0, 4]);
    let a = h.ev(Event::DecodeError(e));
    assert_eq!(notification_wire(&a), wire(2, 1, &[0, 4]));
    assert!(matches!(
        down(&a).unwrap().0,
        DownReason::MalformedMessage { .. }
    ));
}

#[test]
fn open_sent_malformed_update_is_still_an_unexpected_message() {
    let mut h = Harness::to_open_sent(cfg());
    let e = DecodeError::new(ErrorKind::MalformedAttributeList, "attrs", 23, "x");
    let a = h.ev(Event::DecodeError(e));
    assert_eq!(notification_wire(&a), wire(5, 1, &[]));
}

#[test]
fn open_sent_manual_stop_sends_rfc9003_shutdown_message() {
    let mut h = Harness::to_open_sent(cfg());
    let a = h.ev(Event::ManualStop {
        message: Some("failover to site B".into()),
    });
    let mut data = vec![18];
    data.extend_from_slice(b"failover to site B");
    assert_eq!(notification_wire(&a), wire(6, 2, &data));
    assert!(closes(&a));
    assert_eq!(
        h.s.poll_timeout(),
        None,
        "no automatic restart after a stop"
    );
    assert_eq!(h.s.connect_retry_counter(), 0);
}

#[test]
fn open_sent_refuses_further_connections() {
    let mut h = Harness::to_open_sent(cfg());
    assert_eq!(
        h.ev(Event::TcpConnectionConfirmed),
        vec![Action::RefuseConnection]
    );
    assert_eq!(h.s.state(), State::OpenSent);
}

#[test]
fn open_sent_send_requests_are_dropped() {
    let mut h = Harness::to_open_sent(cfg());
    assert_eq!(h.ev(Event::SendUpdate(update())), vec![]);
    let rr = RouteRefresh::new(Afi::Ipv4, Safi::Unicast, RefreshSubtype::Normal);
    assert_eq!(h.ev(Event::SendRouteRefresh(rr)), vec![]);
}

// ---- OPEN errors: exact NOTIFICATION octets ------------------------------------------------

fn open_error(config: SessionConfig, open: Open) -> Vec<u8> {
    let mut h = Harness::to_open_sent(config);
    let a = h.msg(Message::Open(open));
    assert_eq!(h.s.state(), State::Idle);
    assert!(closes(&a));
    assert!(matches!(
        down(&a).unwrap().0,
        DownReason::OpenRejected { .. }
    ));
    assert_eq!(h.deadline(Timer::ConnectRetry), Some(5 * S));
    notification_wire(&a)
}

#[test]
fn open_bad_peer_as_2_2_with_as_field() {
    assert_eq!(
        open_error(cfg(), Open::new(65002, 90, PEER_ID, vec![])),
        wire(2, 2, &[0xfd, 0xea])
    );
    assert_eq!(
        open_error(cfg(), peer_open_with(4_200_000_000, 90, vec![])),
        wire(2, 2, &4_200_000_000u32.to_be_bytes())
    );
}

#[test]
fn open_as_trans_inconsistency_is_2_2() {
    let c = SessionConfig {
        peer_asn: 4_200_000_000,
        ..cfg()
    };
    let mut o = peer_open_with(4_200_000_000, 90, vec![]);
    o.my_as = 65001;
    assert_eq!(open_error(c, o), wire(2, 2, &[0xfd, 0xe9]));
}

#[test]
fn open_same_router_id_on_ibgp_is_2_3() {
    let c = SessionConfig {
        peer_asn: 65100,
        ..cfg()
    };
    let mut o = peer_open_with(65100, 90, vec![]);
    o.router_id = LOCAL_ID;
    assert_eq!(open_error(c, o), wire(2, 3, &[192, 0, 2, 1]));
}

#[test]
fn open_unacceptable_hold_time_is_2_6() {
    let c = SessionConfig {
        min_hold_time: 30,
        ..cfg()
    };
    assert_eq!(
        open_error(c, peer_open_with(65001, 10, vec![])),
        wire(2, 6, &[])
    );
}

#[test]
fn open_missing_required_capability_is_2_7_with_it() {
    let c = SessionConfig {
        required_capabilities: vec![Capability::ExtendedMessage],
        ..cfg()
    };
    assert_eq!(
        open_error(c, peer_open_with(65001, 90, vec![])),
        wire(2, 7, &[6, 0])
    );
}

#[test]
fn open_role_mismatch_is_2_11_and_strict_needs_a_role() {
    let c = SessionConfig {
        role: Some(Role::Provider),
        ..cfg()
    };
    assert_eq!(
        open_error(
            c.clone(),
            peer_open_with(65001, 90, vec![Capability::Role(Role::Provider)])
        ),
        wire(2, 11, &[])
    );
    let strict = SessionConfig {
        strict_role: true,
        ..c
    };
    assert_eq!(
        open_error(strict.clone(), peer_open_with(65001, 90, vec![])),
        wire(2, 11, &[])
    );
    let mut h = Harness::to_open_sent(strict);
    h.msg(Message::Open(peer_open_with(
        65001,
        90,
        vec![Capability::Role(Role::Customer)],
    )));
    assert_eq!(h.s.state(), State::OpenConfirm);
}

#[test]
fn four_octet_and_ibgp_peers_establish() {
    let c = SessionConfig {
        local_asn: 4_200_000_000,
        peer_asn: 4_200_000_000,
        ..cfg()
    };
    let mut h = Harness::to_open_sent(c);
    h.msg(Message::Open(peer_open_with(4_200_000_000, 90, vec![])));
    let a = h.msg(Message::Keepalive);
    let Some(Action::Established { negotiated }) = a.last() else {
        panic!("{a:?}")
    };
    assert_eq!(negotiated.peer_asn, 4_200_000_000);
    assert!(negotiated.four_octet_as);
}

// ---- OpenConfirm ---------------------------------------------------------------------------

#[test]
fn open_confirm_keepalive_establishes_and_reports_negotiated() {
    let mut h = Harness::to_open_confirm(cfg());
    h.advance(2 * S);
    let a = h.msg(Message::Keepalive);
    let negotiated = h.s.negotiated().unwrap().clone();
    assert_eq!(
        a,
        vec![
            Action::StateChanged {
                from: State::OpenConfirm,
                to: State::Established
            },
            Action::Established { negotiated }
        ]
    );
    assert_eq!(h.deadline(Timer::Hold), Some(9 * S), "hold timer restarted");
}

#[test]
fn open_confirm_sends_keepalives_until_hold_expires() {
    let mut h = Harness::to_open_confirm(cfg());
    assert_eq!(sent(&h.advance(3 * S)), vec![Message::Keepalive]);
    h.flushed();
    assert_eq!(sent(&h.advance(3 * S)), vec![Message::Keepalive]);
    h.flushed();
    // The third keepalive and the hold expiry are both due at 9 s; the hold timer comes
    // first in the table and ends the session, so no pointless KEEPALIVE goes out.
    let a = h.advance(3 * S);
    assert_eq!(
        sent(&a),
        vec![Message::Notification(notification(
            hold_timer_expired::CODE,
            UNSPECIFIC
        ))]
    );
    assert_eq!(h.s.state(), State::Idle);
}

#[test]
fn open_confirm_unexpected_messages_are_5_2() {
    for m in [peer_open(), Message::Update(update())] {
        let mut h = Harness::to_open_confirm(cfg());
        let a = h.msg(m);
        assert_eq!(notification_wire(&a), wire(5, 2, &[]));
        assert_eq!(transitions(&a), vec![(State::OpenConfirm, State::Idle)]);
    }
}

#[test]
fn open_confirm_notification_connection_loss_and_stop() {
    let mut h = Harness::to_open_confirm(cfg());
    let a = h.msg(Message::Notification(notification(
        cease::CODE,
        cease::ADMINISTRATIVE_RESET,
    )));
    assert_eq!((sent(&a), h.s.state()), (vec![], State::Idle));

    let mut h = Harness::to_open_confirm(cfg());
    let a = h.ev(Event::TcpConnectionFails);
    assert_eq!(down(&a).unwrap().0, DownReason::ConnectionFailed);
    assert_eq!(transitions(&a), vec![(State::OpenConfirm, State::Idle)]);
    assert_eq!(h.deadline(Timer::ConnectRetry), Some(5 * S));

    let mut h = Harness::to_open_confirm(cfg());
    let a = h.ev(Event::ManualStop { message: None });
    assert_eq!(notification_wire(&a), wire(6, 2, &[]));
    assert_eq!(h.s.poll_timeout(), None);
}

#[test]
fn open_confirm_decode_error_of_update_is_5_2() {
    let mut h = Harness::to_open_confirm(cfg());
    let e = DecodeError::new(ErrorKind::RouteRefreshInvalidLength, "len", 16, "x");
    assert_eq!(
        notification_wire(&h.ev(Event::DecodeError(e))),
        wire(5, 2, &[])
    );
}

#[test]
fn open_confirm_collision_dump_sends_cease_6_7_and_stays_idle() {
    let mut h = Harness::to_open_confirm(cfg());
    let a = h.ev(Event::CollisionDump);
    assert_eq!(notification_wire(&a), wire(6, 7, &[]));
    assert_eq!(down(&a).unwrap().0, DownReason::CollisionLost);
    assert_eq!(h.s.state(), State::Idle);
    assert_eq!(h.s.poll_timeout(), None, "the driver discards the loser");
}

#[test]
fn collision_between_two_sessions_closes_the_one_the_rule_picks() {
    // Outbound session in OpenConfirm, inbound session just got the peer's OPEN.
    let mut outbound = Harness::to_open_confirm(cfg());
    let mut inbound = Harness::new(cfg());
    inbound.now = outbound.now;
    inbound.ev(Event::ManualStart);
    inbound.ev(Event::TcpConnectionConfirmed);
    inbound.msg(peer_open());
    let remote_id = inbound.s.peer_open().unwrap().router_id;
    let local = Speaker {
        router_id: LOCAL_ID,
        asn: 65100,
    };
    let remote = Speaker {
        router_id: remote_id,
        asn: 65001,
    };
    // 192.0.2.1 < 192.0.2.2: the peer's connection (inbound) wins.
    assert_eq!(
        connection_to_close(local, remote),
        Some(Direction::Outbound)
    );
    let a = outbound.ev(Event::CollisionDump);
    assert_eq!(notification_wire(&a), wire(6, 7, &[]));
    inbound.msg(Message::Keepalive);
    assert_eq!(inbound.s.state(), State::Established);
}

// ---- Established ---------------------------------------------------------------------------

#[test]
fn established_keepalive_restarts_hold_timer() {
    let mut h = Harness::established(cfg());
    h.flushed();
    for _ in 0..5 {
        // Our keepalives go out every 3 s; the peer's arrive every 8 s, inside the 9 s hold.
        let mut sent_keepalives = 0;
        for _ in 0..8 {
            sent_keepalives += sent(&h.advance(S)).len();
            h.flushed();
        }
        assert!(sent_keepalives >= 2, "{sent_keepalives}");
        assert_eq!(h.msg(Message::Keepalive), vec![]);
        assert_eq!(h.deadline(Timer::Hold), Some(9 * S));
    }
    assert_eq!(h.s.state(), State::Established);
    // Then silence: exactly 9 s later the hold timer fires.
    h.advance(8 * S);
    h.flushed();
    assert_eq!(h.s.state(), State::Established);
    let a = h.advance(S);
    assert!(sent(&a).contains(&Message::Notification(notification(
        hold_timer_expired::CODE,
        UNSPECIFIC
    ))));
    assert_eq!(notification_wire(&a), wire(4, 0, &[]));
    assert_eq!(transitions(&a), vec![(State::Established, State::Idle)]);
}

#[test]
fn established_update_is_delivered_and_restarts_hold() {
    let mut h = Harness::established(cfg());
    h.advance(5 * S);
    let a = h.msg(Message::Update(update()));
    assert_eq!(a, vec![Action::DeliverUpdate(update())]);
    assert_eq!(h.deadline(Timer::Hold), Some(9 * S));
}

#[test]
fn established_sent_update_restarts_keepalive_timer() {
    let mut h = Harness::established(cfg());
    h.advance(2 * S);
    let a = h.ev(Event::SendUpdate(update()));
    assert_eq!(a, vec![Action::SendMessage(Message::Update(update()))]);
    assert_eq!(h.deadline(Timer::Keepalive), Some(3 * S));
    h.flushed();
    assert_eq!(h.advance(2 * S), vec![], "keepalive deferred by the UPDATE");
    assert_eq!(sent(&h.advance(S)), vec![Message::Keepalive]);
}

#[test]
fn updates_written_by_the_driver_count_as_sent_only_when_established() {
    let mut h = Harness::to_open_confirm(cfg());
    assert!(!h.s.updates_written(h.now), "not before Established");
    let mut h = Harness::established(cfg());
    h.advance(2 * S);
    assert!(h.s.updates_written(h.now));
    assert_eq!(h.deadline(Timer::Keepalive), Some(3 * S));
    h.flushed();
    assert_eq!(
        h.advance(2 * S),
        vec![],
        "keepalive deferred by the UPDATEs"
    );
    assert_eq!(sent(&h.advance(S)), vec![Message::Keepalive]);
}

#[test]
fn established_open_is_5_3() {
    let mut h = Harness::established(cfg());
    let a = h.msg(peer_open());
    assert_eq!(notification_wire(&a), wire(5, 3, &[]));
    assert_eq!(
        down(&a).unwrap().0,
        DownReason::UnexpectedMessage {
            state: State::Established,
            kind: MessageType::Open
        }
    );
}

#[test]
fn established_decode_error_sends_its_notification_with_data() {
    let mut h = Harness::established(cfg());
    let e = DecodeError::new(ErrorKind::AttributeFlagsError, "flags", 23, "x")
        .with_data(Bytes::from_static(&[0x40, 1, 1, 0]));
    let a = h.ev(Event::DecodeError(e));
    assert_eq!(notification_wire(&a), wire(3, 4, &[0x40, 1, 1, 0]));
    assert_eq!(h.deadline(Timer::ConnectRetry), Some(5 * S));
}

#[test]
fn established_notification_received_is_reported_without_reply() {
    let mut h = Harness::established(cfg());
    let n = notification(cease::CODE, cease::ADMINISTRATIVE_SHUTDOWN);
    let a = h.msg(Message::Notification(n.clone()));
    assert_eq!(sent(&a), vec![]);
    assert_eq!(
        down(&a),
        Some((DownReason::NotificationReceived, None, Some(n)))
    );
}

#[test]
fn established_manual_stop_with_and_without_message() {
    let mut h = Harness::established(cfg());
    let a = h.ev(Event::ManualStop {
        message: Some("bye".into()),
    });
    assert_eq!(notification_wire(&a), wire(6, 2, &[3, b'b', b'y', b'e']));
    let (reason, s, _) = down(&a).unwrap();
    assert_eq!(reason, DownReason::ManualStop);
    assert_eq!(s.unwrap().shutdown_message().as_deref(), Some("bye"));
    assert_eq!(h.s.poll_timeout(), None);
    // A manual start brings it back.
    let a = h.ev(Event::ManualStart);
    assert_eq!(a.last(), Some(&Action::Connect));
}

#[test]
fn established_route_refresh_rules() {
    let c = SessionConfig {
        families: vec![Family::Ipv4Unicast, Family::Ipv6Unicast],
        ..cfg()
    };
    let mut h = Harness::established(c);
    let v4 = RouteRefresh::new(Afi::Ipv4, Safi::Unicast, RefreshSubtype::Normal);
    let v6 = RouteRefresh::new(Afi::Ipv6, Safi::Unicast, RefreshSubtype::Normal);
    let borr = RouteRefresh::new(Afi::Ipv4, Safi::Unicast, RefreshSubtype::Borr);
    // Received: delivered for a negotiated family, ignored otherwise (RFC 2918 §4), BoRR
    // ignored without enhanced route refresh negotiated (the peer did not advertise it).
    assert_eq!(
        h.msg(Message::RouteRefresh(v4.clone())),
        vec![Action::DeliverRouteRefresh(v4.clone())]
    );
    assert_eq!(h.msg(Message::RouteRefresh(v6.clone())), vec![]);
    assert_eq!(h.msg(Message::RouteRefresh(borr.clone())), vec![]);
    // Sent: same rules.
    assert_eq!(
        h.ev(Event::SendRouteRefresh(v4.clone())),
        vec![Action::SendMessage(Message::RouteRefresh(v4))]
    );
    assert_eq!(h.ev(Event::SendRouteRefresh(v6)), vec![]);
    assert_eq!(h.ev(Event::SendRouteRefresh(borr)), vec![]);
    assert_eq!(h.s.state(), State::Established);
}

#[test]
fn established_connection_loss_restarts_automatically_after_connect_retry() {
    let mut h = Harness::established(cfg());
    let a = h.ev(Event::TcpConnectionFails);
    assert_eq!(down(&a).unwrap().0, DownReason::ConnectionFailed);
    assert_eq!(h.s.state(), State::Idle);
    assert_eq!(h.s.negotiated(), None);
    assert_eq!(h.s.context(), Context::default());
    assert_eq!(h.s.connect_retry_counter(), 1);
    assert_eq!(h.advance(4 * S), vec![]);
    let a = h.advance(S);
    assert_eq!(
        a,
        vec![
            Action::StateChanged {
                from: State::Idle,
                to: State::Connect
            },
            Action::Connect
        ]
    );
    assert_eq!(
        h.s.connect_retry_counter(),
        1,
        "automatic start keeps the count"
    );
}

#[test]
fn manual_stop_in_idle_cancels_the_automatic_restart() {
    let mut h = Harness::established(cfg());
    h.ev(Event::TcpConnectionFails);
    assert!(h.s.poll_timeout().is_some());
    assert_eq!(h.ev(Event::ManualStop { message: None }), vec![]);
    assert_eq!(h.s.poll_timeout(), None);
    assert_eq!(h.advance(60 * S), vec![]);
}

#[test]
fn established_refuses_new_connections() {
    let mut h = Harness::established(cfg());
    assert!(!h.s.accepts_connection());
    assert_eq!(
        h.ev(Event::TcpConnectionConfirmed),
        vec![Action::RefuseConnection]
    );
    assert_eq!(h.s.state(), State::Established);
}

#[test]
fn timer_event_fires_only_running_timers() {
    let mut h = Harness::established(cfg());
    assert_eq!(h.ev(Event::Timer(Timer::DelayOpen)), vec![]);
    assert_eq!(h.ev(Event::Timer(Timer::ConnectRetry)), vec![]);
    assert_eq!(
        sent(&h.ev(Event::Timer(Timer::Keepalive))),
        vec![Message::Keepalive]
    );
    let a = h.ev(Event::Timer(Timer::Hold));
    assert_eq!(notification_wire(&a), wire(4, 0, &[]));
}

#[test]
fn jumping_far_ahead_handles_each_due_timer_in_order() {
    let mut h = Harness::established(cfg());
    h.flushed();
    let a = h.advance(100 * S);
    // The keepalive due at 3 s, then the hold expiry at 9 s; nothing after the session ends
    // except the scheduled restart.
    assert_eq!(
        sent(&a),
        vec![
            Message::Keepalive,
            Message::Notification(notification(hold_timer_expired::CODE, UNSPECIFIC))
        ]
    );
    assert_eq!(h.s.state(), State::Idle);
    assert_eq!(h.deadline(Timer::ConnectRetry), Some(5 * S));
}

// ---- SendHoldTimer (RFC 9687) --------------------------------------------------------------

#[test]
fn send_hold_expires_when_queued_data_makes_no_progress() {
    let mut h = Harness::established(SessionConfig {
        send_hold: Some(20 * S),
        ..cfg()
    });
    // The KEEPALIVE sent on entering OpenConfirm was flushed; the next one queues data.
    h.advance(3 * S);
    assert_eq!(h.deadline(Timer::SendHold), Some(20 * S));
    // Progress keeps it alive even while data stays queued.
    for _ in 0..5 {
        h.msg(Message::Keepalive);
        h.advance(S);
        h.ev(Event::SendProgress { pending: true });
        assert_eq!(h.deadline(Timer::SendHold), Some(20 * S));
    }
    // Then the peer stops reading (but keeps sending keepalives).
    let mut a = Vec::new();
    for _ in 0..20 {
        h.msg(Message::Keepalive);
        a = h.advance(S);
    }
    assert_eq!(notification_wire(&a), wire(8, 0, &[]));
    assert_eq!(down(&a).unwrap().0, DownReason::SendHoldTimerExpired);
    assert_eq!(h.s.state(), State::Idle);
}

#[test]
fn send_hold_is_at_least_twice_the_hold_time_and_stops_when_drained() {
    let mut h = Harness::to_open_sent(SessionConfig {
        hold_time: 90,
        send_hold: Some(20 * S),
        ..cfg()
    });
    assert!(!h.s.timers().is_running(Timer::SendHold), "flushed");
    h.msg(peer_open());
    assert_eq!(h.deadline(Timer::SendHold), Some(180 * S));
    h.flushed();
    assert!(!h.s.timers().is_running(Timer::SendHold));
}

#[test]
fn send_hold_disabled_never_runs() {
    let mut h = Harness::new(SessionConfig {
        send_hold: None,
        ..cfg()
    });
    h.ev(Event::ManualStart);
    h.ev(Event::TcpConnectionAcknowledged);
    h.msg(peer_open());
    assert!(!h.s.timers().is_running(Timer::SendHold));
    h.ev(Event::SendProgress { pending: true });
    assert!(!h.s.timers().is_running(Timer::SendHold));
}

// ---- invariants ----------------------------------------------------------------------------

#[test]
fn state_changes_form_a_chain_matching_state() {
    let mut h = Harness::new(delay_cfg());
    let mut all = Vec::new();
    type Step = Box<dyn Fn(&mut Harness) -> Vec<Action>>;
    let script: Vec<Step> = vec![
        Box::new(|h| h.ev(Event::ManualStart)),
        Box::new(|h| h.ev(Event::TcpConnectionFails)),
        Box::new(|h| h.advance(5 * S)),
        Box::new(|h| h.ev(Event::TcpConnectionAcknowledged)),
        Box::new(|h| h.advance(2 * S)),
        Box::new(|h| h.msg(peer_open())),
        Box::new(|h| h.msg(Message::Keepalive)),
        Box::new(|h| h.advance(60 * S)),
        Box::new(|h| h.advance(5 * S)),
        Box::new(|h| h.ev(Event::TcpConnectionConfirmed)),
        Box::new(|h| h.ev(Event::ManualStop { message: None })),
    ];
    for step in script {
        let a = step(&mut h);
        all.extend(transitions(&a));
    }
    let mut at = State::Idle;
    for (from, to) in &all {
        assert_eq!(*from, at, "{all:?}");
        assert_ne!(from, to);
        at = *to;
    }
    assert_eq!(at, h.s.state());
    assert_eq!(
        all.iter().map(|(_, to)| *to).collect::<Vec<_>>(),
        [
            State::Connect,
            State::Active,
            State::Connect,
            State::OpenSent,
            State::OpenConfirm,
            State::Established,
            State::Idle,
            State::Connect,
            State::Idle
        ]
    );
}

#[test]
fn down_reasons_explain_themselves() {
    let r = DownReason::UnexpectedMessage {
        state: State::OpenSent,
        kind: MessageType::Update,
    };
    assert_eq!(r.to_string(), "unexpected UPDATE in OpenSent");
    assert!(DownReason::HoldTimerExpired.to_string().contains("silent"));
}

#[test]
fn speaker_reset_sends_its_notification_and_restarts_after_connect_retry() {
    let mut h = Harness::established(cfg());
    let n = Notification {
        code: cease::CODE,
        subcode: cease::MAX_PREFIXES_REACHED,
        data: bytes::Bytes::from_static(&[0, 1, 1, 0, 0, 0, 10]),
    };
    let actions = h.ev(Event::Reset(n.clone()));
    assert_eq!(
        notification_wire(&actions),
        wire(6, 1, &[0, 1, 1, 0, 0, 0, 10])
    );
    assert!(closes(&actions));
    let (reason, sent, _) = down(&actions).expect("session down");
    assert_eq!((reason, sent), (DownReason::LocalReset, Some(n)));
    assert_eq!(h.s.state(), State::Idle);
    assert!(
        h.deadline(Timer::ConnectRetry).is_some(),
        "automatic restart scheduled"
    );
}

#[test]
fn the_notification_that_ends_a_session_is_encoded_with_the_negotiated_size() {
    let mut h = Harness::to_open_sent(SessionConfig {
        extended_message: true,
        ..cfg()
    });
    h.msg(Message::Open(peer_open_with(
        65001,
        90,
        vec![Capability::ExtendedMessage],
    )));
    h.msg(Message::Keepalive);
    assert_eq!(h.s.state(), State::Established);
    let e = DecodeError::new(ErrorKind::RouteRefreshInvalidLength, "length", 16, "x")
        .with_data(vec![0xab; 65535]);
    let a = h.ev(Event::DecodeError(e));
    // The driver encodes the NOTIFICATION after `handle` returned, with `context()`: the
    // session is Idle by then, yet the peer still takes 65535-octet messages (RFC 8654 §4).
    let n = sent(&a).pop().unwrap();
    assert_eq!(n.to_bytes(&h.s.context()).len(), 65535);
    // A new connection starts from the default again until its OPENs are exchanged.
    h.advance(5 * S);
    h.ev(Event::TcpConnectionAcknowledged);
    assert_eq!(h.s.context(), Context::default());
}

#[test]
fn open_sent_open_from_as_0_is_bad_peer_as_rfc7607() {
    let mut h = Harness::to_open_sent(cfg());
    // The peer's OPEN as it arrives: the codec refuses My AS 0 and the session sends 2/2.
    let mut bytes = Message::Open(peer_open_with(65001, 90, vec![]))
        .to_bytes(&Context::default())
        .to_vec();
    bytes[20..22].copy_from_slice(&[0, 0]);
    let e = Message::decode(&bytes, &Context::default()).unwrap_err();
    let a = h.ev(Event::DecodeError(e));
    assert_eq!(notification_wire(&a), wire(2, 2, &[0, 0]));
    assert_eq!(h.s.state(), State::Idle);
}
