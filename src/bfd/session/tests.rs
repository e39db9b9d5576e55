//! FSM tests with a fake clock: `now` is an `Instant` advanced by hand.

use super::*;

const MS: Duration = Duration::from_millis(1);

fn config(tx_ms: u32, rx_ms: u32, mult: u8) -> SessionConfig {
    SessionConfig {
        desired_min_tx: tx_ms * MS,
        required_min_rx: rx_ms * MS,
        detect_mult: mult,
    }
}

fn sent(actions: &[Action]) -> Vec<ControlPacket> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(p) => Some(*p),
            _ => None,
        })
        .collect()
}

fn changes(actions: &[Action]) -> Vec<(State, State, Diag)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::StateChanged { from, to, diag } => Some((*from, *to, *diag)),
            _ => None,
        })
        .collect()
}

/// What the peer (discriminator 77, 100 ms, x3) would send in `state`.
fn remote(state: State, your: u32) -> ControlPacket {
    ControlPacket {
        diag: Diag::None,
        state,
        poll: false,
        final_: false,
        control_plane_independent: false,
        demand: false,
        detect_mult: 3,
        my_discriminator: 77,
        your_discriminator: your,
        desired_min_tx_us: 100_000,
        required_min_rx_us: 100_000,
        required_min_echo_rx_us: 0,
    }
}

/// A session brought Up by the three-way handshake (Down, Init, Up), with its Poll answered.
fn up_session(t0: Instant) -> Session {
    let mut s = Session::new(config(100, 100, 3), 5, 42, t0);
    s.handle_timeout(t0);
    s.handle(t0, &remote(State::Down, 0));
    s.handle(t0, &remote(State::Up, 5));
    assert_eq!(s.state(), State::Up);
    let mut f = remote(State::Up, 5);
    f.final_ = true;
    s.handle(t0, &f);
    assert!(!s.polling());
    s
}

#[test]
fn first_packet_is_down_at_the_slow_rate_without_your_discriminator() {
    let t0 = Instant::now();
    let mut s = Session::new(config(100, 50, 3), 5, 1, t0);
    assert_eq!(s.poll_timeout(), Some(t0));
    let a = s.handle_timeout(t0);
    let p = sent(&a);
    assert_eq!(p.len(), 1);
    let p = p[0];
    assert_eq!(p.state, State::Down);
    assert_eq!(p.your_discriminator, 0);
    assert_eq!(p.my_discriminator, 5);
    // §6.8.3: at least one second while not Up; Required Min RX as configured.
    assert_eq!(p.desired_min_tx_us, 1_000_000);
    assert_eq!(p.required_min_rx_us, 50_000);
    assert_eq!(p.detect_mult, 3);
    assert!(!p.poll && !p.final_);
    // The decoder accepts what we send.
    assert_eq!(ControlPacket::decode(&p.encode()).unwrap(), p);
}

#[test]
fn three_way_handshake_down_init_up() {
    let t0 = Instant::now();
    let mut s = Session::new(config(100, 100, 3), 5, 1, t0);
    let a = s.handle(t0, &remote(State::Down, 0));
    assert_eq!(changes(&a), vec![(State::Down, State::Init, Diag::None)]);
    assert_eq!(s.remote_discriminator(), 77);
    let a = s.handle(t0 + MS, &remote(State::Init, 5));
    assert_eq!(changes(&a), vec![(State::Init, State::Up, Diag::None)]);
    assert_eq!(s.snapshot().transitions, 2);
}

#[test]
fn down_goes_straight_up_on_init() {
    let t0 = Instant::now();
    let mut s = Session::new(config(100, 100, 3), 5, 1, t0);
    let a = s.handle(t0, &remote(State::Init, 5));
    assert_eq!(changes(&a), vec![(State::Down, State::Up, Diag::None)]);
}

#[test]
fn init_ignores_down_and_up_ignores_init() {
    let t0 = Instant::now();
    let mut s = Session::new(config(100, 100, 3), 5, 1, t0);
    s.handle(t0, &remote(State::Down, 0));
    assert!(changes(&s.handle(t0, &remote(State::Down, 0))).is_empty());
    assert_eq!(s.state(), State::Init);
    let mut s = up_session(t0);
    assert!(changes(&s.handle(t0, &remote(State::Init, 5))).is_empty());
    assert_eq!(s.state(), State::Up);
}

#[test]
fn going_up_starts_a_poll_sequence_and_the_fast_rate() {
    let t0 = Instant::now();
    let mut s = Session::new(config(100, 100, 3), 5, 1, t0);
    s.handle_timeout(t0);
    s.handle(t0 + 10 * MS, &remote(State::Init, 5));
    assert!(s.polling());
    // The next packet comes at the fast rate counted from the last one (t0), not 1 s later.
    let next = s.poll_timeout().unwrap();
    assert!(
        next <= t0 + 100 * MS && next >= t0 + 75 * MS,
        "{:?}",
        next - t0
    );
    let p = sent(&s.handle_timeout(next));
    assert_eq!(p.len(), 1);
    assert!(
        p[0].poll,
        "periodic packets carry P during the Poll Sequence"
    );
    assert_eq!(p[0].state, State::Up);
    assert_eq!(p[0].desired_min_tx_us, 100_000);
    assert_eq!(p[0].your_discriminator, 77);
    let mut f = remote(State::Up, 5);
    f.final_ = true;
    s.handle(next + MS, &f);
    assert!(!s.polling(), "Final ends the Poll Sequence");
    let next = s.poll_timeout().unwrap();
    let p = sent(&s.handle_timeout(next));
    assert!(!p[0].poll);
}

#[test]
fn poll_is_answered_at_once_with_final_and_never_both_bits() {
    let t0 = Instant::now();
    let mut s = Session::new(config(100, 100, 3), 5, 1, t0);
    s.handle(t0, &remote(State::Init, 5));
    assert!(s.polling());
    let mut p = remote(State::Up, 5);
    p.poll = true;
    p.desired_min_tx_us = 50_000;
    let out = sent(&s.handle(t0 + MS, &p));
    assert_eq!(out.len(), 1);
    assert!(out[0].final_);
    assert!(!out[0].poll, "P and F are never set together (§6.5)");
    assert!(s.polling(), "our own Poll Sequence goes on");
}

#[test]
fn detection_time_is_remote_mult_times_the_slower_of_our_rx_and_their_tx() {
    let t0 = Instant::now();
    let mut s = Session::new(config(100, 200, 3), 5, 1, t0);
    assert_eq!(s.detection_time(), None);
    let mut p = remote(State::Down, 0);
    p.detect_mult = 4;
    p.desired_min_tx_us = 150_000;
    s.handle(t0, &p);
    // 4 x max(200 ms, 150 ms)
    assert_eq!(s.detection_time(), Some(800 * MS));
    p.desired_min_tx_us = 300_000;
    s.handle(t0, &p);
    assert_eq!(s.detection_time(), Some(1200 * MS));
}

#[test]
fn silence_for_the_detection_time_takes_an_up_session_down() {
    let t0 = Instant::now();
    let mut s = up_session(t0);
    assert_eq!(s.detection_time(), Some(300 * MS));
    let last = t0 + 50 * MS;
    s.handle(last, &remote(State::Up, 5));
    // Periodic packets go on while waiting; just before the deadline still Up.
    let mut now = last;
    loop {
        let t = s.poll_timeout().unwrap();
        if t >= last + 300 * MS {
            break;
        }
        now = t;
        assert!(changes(&s.handle_timeout(now)).is_empty());
    }
    assert!(now < last + 300 * MS);
    assert_eq!(s.state(), State::Up);
    let a = s.handle_timeout(last + 300 * MS);
    assert_eq!(
        changes(&a),
        vec![(State::Up, State::Down, Diag::ControlDetectionTimeExpired)]
    );
    assert_eq!(s.remote_discriminator(), 0, "§6.8.1: RemoteDiscr zeroed");
    let snap = s.snapshot();
    assert_eq!(snap.local_diag, Diag::ControlDetectionTimeExpired);
    assert_eq!(snap.transitions, 3);
    // Back to the slow rate, diag and Your Discriminator 0 in what we send.
    let next = s.poll_timeout().unwrap();
    let p = sent(&s.handle_timeout(next));
    let p = p.last().unwrap();
    assert_eq!(p.state, State::Down);
    assert_eq!(p.diag, Diag::ControlDetectionTimeExpired);
    assert_eq!(p.your_discriminator, 0);
    assert_eq!(p.desired_min_tx_us, 1_000_000);
    assert!(!p.poll);
}

#[test]
fn silence_in_down_only_clears_the_remote_discriminator() {
    let t0 = Instant::now();
    let mut s = Session::new(config(100, 100, 3), 5, 1, t0);
    let mut p = remote(State::AdminDown, 0);
    p.desired_min_tx_us = 1_000_000;
    s.handle(t0, &p);
    assert_eq!(s.state(), State::Down);
    assert_eq!(s.remote_discriminator(), 77);
    let a = s.handle_timeout(t0 + 3 * SLOW_TX);
    assert!(changes(&a).is_empty());
    assert_eq!(s.remote_discriminator(), 0);
}

#[test]
fn remote_down_or_admin_down_takes_us_down_with_diag_3() {
    for st in [State::Down, State::AdminDown] {
        let t0 = Instant::now();
        let mut s = up_session(t0);
        let a = s.handle(t0 + MS, &remote(st, 5));
        assert_eq!(
            changes(&a),
            vec![(State::Up, State::Down, Diag::NeighborSignaledSessionDown)],
            "remote {st}"
        );
    }
    // AdminDown while Init too.
    let t0 = Instant::now();
    let mut s = Session::new(config(100, 100, 3), 5, 1, t0);
    s.handle(t0, &remote(State::Down, 0));
    let a = s.handle(t0, &remote(State::AdminDown, 0));
    assert_eq!(
        changes(&a),
        vec![(State::Init, State::Down, Diag::NeighborSignaledSessionDown)]
    );
}

#[test]
fn a_packet_for_another_discriminator_is_ignored() {
    let t0 = Instant::now();
    let mut s = up_session(t0);
    let a = s.handle(t0, &remote(State::Down, 6));
    assert!(a.is_empty());
    assert_eq!(s.state(), State::Up);
}

#[test]
fn admin_down_is_sent_with_diag_7_and_ignores_the_peer() {
    let t0 = Instant::now();
    let mut s = up_session(t0);
    let a = s.admin_down(t0 + MS);
    assert_eq!(
        changes(&a),
        vec![(State::Up, State::AdminDown, Diag::AdministrativelyDown)]
    );
    let p = sent(&s.handle_timeout(t0 + MS));
    assert_eq!(p[0].state, State::AdminDown);
    assert_eq!(p[0].diag, Diag::AdministrativelyDown);
    assert!(changes(&s.handle(t0 + 2 * MS, &remote(State::Down, 5))).is_empty());
    assert_eq!(s.state(), State::AdminDown);
    let a = s.enable();
    assert_eq!(
        changes(&a),
        vec![(State::AdminDown, State::Down, Diag::None)]
    );
}

#[test]
fn no_periodic_packets_when_the_remote_wants_none_or_runs_demand_mode() {
    let t0 = Instant::now();
    let mut s = Session::new(config(100, 100, 3), 5, 1, t0);
    let mut p = remote(State::Down, 0);
    p.required_min_rx_us = 0;
    s.handle(t0, &p);
    assert!(sent(&s.handle_timeout(t0)).is_empty());
    // Demand mode with both Up (and no Poll Sequence running): silence.
    let mut s = up_session(t0);
    let mut p = remote(State::Up, 5);
    p.demand = true;
    s.handle(t0, &p);
    let next = s.poll_timeout().unwrap();
    assert!(sent(&s.handle_timeout(next)).is_empty());
}

fn periodic_gaps(s: &mut Session, from: Instant, n: usize) -> Vec<Duration> {
    let mut last = None;
    let mut gaps = Vec::new();
    let mut now = from;
    while gaps.len() < n {
        let t = s.poll_timeout().unwrap();
        assert!(t >= now);
        now = t;
        if !sent(&s.handle_timeout(now)).is_empty() {
            if let Some(l) = last {
                gaps.push(now - l);
            }
            last = Some(now);
        }
        // Keep the session alive.
        s.handle(now, &remote(s.state_for_peer(), s.local_discriminator()));
    }
    gaps
}

impl Session {
    /// What a healthy peer would answer in: Up once we are Init or Up.
    fn state_for_peer(&self) -> State {
        match self.state {
            State::Down => State::Down,
            _ => State::Up,
        }
    }
}

#[test]
fn periodic_interval_is_jittered_between_75_and_100_percent() {
    let t0 = Instant::now();
    let mut s = up_session(t0);
    let gaps = periodic_gaps(&mut s, t0, 400);
    let min = gaps.iter().min().unwrap();
    let max = gaps.iter().max().unwrap();
    assert!(*min >= 75 * MS && *max <= 100 * MS, "{min:?}..{max:?}");
    // The jitter really varies (not a constant cut).
    assert!(*max - *min > 15 * MS, "{min:?}..{max:?}");
}

#[test]
fn with_detect_mult_1_the_interval_is_at_most_90_percent() {
    let t0 = Instant::now();
    let mut s = Session::new(config(100, 100, 1), 5, 9, t0);
    s.handle(t0, &remote(State::Init, 5));
    let gaps = periodic_gaps(&mut s, t0, 300);
    let min = gaps.iter().min().unwrap();
    let max = gaps.iter().max().unwrap();
    assert!(*min >= 75 * MS && *max <= 90 * MS, "{min:?}..{max:?}");
}

#[test]
fn not_up_means_the_slow_rate_even_when_both_want_fast() {
    let t0 = Instant::now();
    let mut s = Session::new(config(100, 100, 3), 5, 3, t0);
    let mut last = None;
    let mut now = t0;
    for _ in 0..20 {
        now = s.poll_timeout().unwrap().max(now);
        let p = sent(&s.handle_timeout(now));
        if let Some(l) = last {
            assert!(now - l >= 750 * MS, "{:?}", now - l);
        }
        if !p.is_empty() {
            last = Some(now);
        }
    }
}

#[test]
fn a_configured_rate_slower_than_a_second_applies_from_the_start_without_poll() {
    // Configured 2 s: already the Desired Min TX while Down, so going Up changes nothing and
    // needs no Poll Sequence.
    let t0 = Instant::now();
    let mut s = Session::new(config(2000, 100, 3), 5, 3, t0);
    let p = sent(&s.handle_timeout(t0));
    assert_eq!(p[0].desired_min_tx_us, 2_000_000);
    s.handle(t0, &remote(State::Init, 5));
    assert_eq!(s.state(), State::Up);
    assert!(!s.polling());
    assert_eq!(s.tx_interval(), 2000 * MS);
}

#[test]
fn remote_min_rx_slower_than_ours_sets_the_interval() {
    let t0 = Instant::now();
    let mut s = up_session(t0);
    let last = s.poll_timeout().unwrap();
    assert!(!sent(&s.handle_timeout(last)).is_empty());
    let mut p = remote(State::Up, 5);
    p.required_min_rx_us = 500_000;
    s.handle(last + MS, &p);
    assert_eq!(s.tx_interval(), 500 * MS);
    assert_eq!(s.snapshot().tx_interval, 500 * MS);
    // The packet already scheduled at the 100 ms rate is postponed (§6.8.7).
    let next = s.next_tx.unwrap();
    assert!(next >= last + 375 * MS, "{:?}", next - last);
}

/// Two sessions joined by a simulated link with 1 ms delay: they come Up by themselves, stay
/// Up for a minute, and both detect a cut within their detection time.
#[test]
fn two_sessions_come_up_stay_up_and_detect_a_cut() {
    let t0 = Instant::now();
    let mut a = Session::new(config(100, 100, 3), 1, 11, t0);
    let mut b = Session::new(config(50, 200, 4), 2, 22, t0);
    let mut in_flight: Vec<(Instant, bool, ControlPacket)> = Vec::new(); // (arrival, to_b, p)
    let mut link_up = true;
    let mut now = t0;
    let mut down_at: [Option<Instant>; 2] = [None, None];
    let cut_at = t0 + Duration::from_secs(60);
    while now < t0 + Duration::from_secs(62) {
        let next = [a.poll_timeout(), b.poll_timeout()]
            .into_iter()
            .flatten()
            .chain(in_flight.iter().map(|f| f.0))
            .min()
            .unwrap();
        now = next;
        if link_up && now >= cut_at {
            link_up = false;
            in_flight.clear();
        }
        let mut outputs = Vec::new();
        let arrived: Vec<_> = in_flight.iter().filter(|f| f.0 <= now).copied().collect();
        in_flight.retain(|f| f.0 > now);
        for (_, to_b, p) in arrived {
            if to_b {
                outputs.push((false, b.handle(now, &p)));
            } else {
                outputs.push((true, a.handle(now, &p)));
            }
        }
        outputs.push((true, a.handle_timeout(now)));
        outputs.push((false, b.handle_timeout(now)));
        for (from_a, actions) in outputs {
            for act in actions {
                match act {
                    Action::Send(p) if link_up => in_flight.push((now + MS, from_a, p)),
                    Action::Send(_) => {}
                    Action::StateChanged {
                        to: State::Down, ..
                    } => {
                        assert!(now >= cut_at, "went Down before the cut at {:?}", now - t0);
                        down_at[usize::from(!from_a)].get_or_insert(now);
                    }
                    Action::StateChanged { .. } => {}
                }
            }
        }
        if now > t0 + Duration::from_secs(10) && now < cut_at {
            assert_eq!((a.state(), b.state()), (State::Up, State::Up));
        }
    }
    // a: detection = b's mult 4 x max(a's rx 100, b's tx 50) = 400 ms.
    // b: detection = a's mult 3 x max(b's rx 200, a's tx 100) = 600 ms.
    assert_eq!(a.detection_time(), Some(400 * MS));
    assert_eq!(b.detection_time(), Some(600 * MS));
    let da = down_at[0].expect("a went down") - cut_at;
    let db = down_at[1].expect("b went down") - cut_at;
    assert!(da <= 400 * MS && da >= 300 * MS, "a after {da:?}");
    assert!(db <= 600 * MS && db >= 450 * MS, "b after {db:?}");
    // Each side's transmit interval: max(own tx, other's rx).
    assert_eq!(a.snapshot().transitions, 3);
}
