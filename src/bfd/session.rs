//! One BFD session (RFC 5880 asynchronous mode) as a sans-I/O state machine.
//!
//! Contract:
//! - [`Session::handle`]`(now, packet)` for every Control packet the driver selected for this
//!   session (RFC 5880 §6.8.6: by Your Discriminator, else by source address), and
//!   [`Session::handle_timeout`]`(now)` when [`Session::poll_timeout`] is due, are the only ways
//!   a session changes. Both return [`Action`]s to execute in order. Nothing here reads a
//!   clock or touches a socket; randomness (jitter) comes from a seed the caller passes.
//! - States and transitions are those of RFC 5880 §6.2 and the reception rules of §6.8.6;
//!   every change emits [`Action::StateChanged`] with the local diagnostic (§4.1 Diag).
//! - Transmission (§6.8.7): periodic packets every max(bfd.DesiredMinTxInterval,
//!   bfd.RemoteMinRxInterval), reduced by a random 0-25 % (10-25 % with Detect Mult 1); none
//!   while the remote asks for none (Required Min RX 0) or runs demand mode with both sides
//!   Up. A packet with Poll set is answered at once with Final set, outside the periodic
//!   schedule.
//! - While not Up, bfd.DesiredMinTxInterval is at least one second (§6.8.3); going Up it
//!   becomes the configured value and a Poll Sequence (§6.5) announces the change.
//! - Detection time (§6.8.4): remote Detect Mult x max(bfd.RequiredMinRxInterval, the
//!   remote's last Desired Min TX). When it passes without a packet, bfd.RemoteDiscr is
//!   cleared (§6.8.1) and an Init or Up session goes Down with diagnostic 1 (Control Detection
//!   Time Expired).
//!
//! Never does: authentication (none is configured; the codec refuses packets with the A
//! bit), demand mode of its own, the echo function.

use std::time::{Duration, Instant};

use super::packet::{ControlPacket, Diag, State};

/// RFC 5880 §6.8.3: the slowest-start transmit interval while the session is not Up.
pub const SLOW_TX: Duration = Duration::from_secs(1);

/// The local timers of one session (RFC 5880 §6.8.1 bfd.DesiredMinTxInterval,
/// bfd.RequiredMinRxInterval, bfd.DetectMult).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    pub desired_min_tx: Duration,
    pub required_min_rx: Duration,
    pub detect_mult: u8,
}

impl From<&crate::config::BfdConfig> for SessionConfig {
    fn from(c: &crate::config::BfdConfig) -> Self {
        Self {
            desired_min_tx: Duration::from_millis(u64::from(c.min_tx_ms.0)),
            required_min_rx: Duration::from_millis(u64::from(c.min_rx_ms.0)),
            detect_mult: c.multiplier.0,
        }
    }
}

/// What the driver must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send this packet to the peer now.
    Send(ControlPacket),
    StateChanged {
        from: State,
        to: State,
        diag: Diag,
    },
}

/// What `ferry status` shows of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub state: State,
    pub remote_state: State,
    pub local_discriminator: u32,
    pub remote_discriminator: u32,
    pub local_diag: Diag,
    pub remote_diag: Diag,
    /// The transmit interval in use before jitter (max of ours and the remote's Required Min RX).
    pub tx_interval: Duration,
    /// How long without a packet before the session goes Down; absent before the first packet.
    pub detection_time: Option<Duration>,
    /// State changes since the session was created.
    pub transitions: u64,
}

/// One session's state machine.
#[derive(Debug, Clone)]
pub struct Session {
    config: SessionConfig,
    state: State,
    remote_state: State,
    local_discr: u32,
    remote_discr: u32,
    local_diag: Diag,
    remote_diag: Diag,
    /// bfd.DesiredMinTxInterval as advertised now (at least [`SLOW_TX`] until Up).
    desired_min_tx: Duration,
    /// bfd.RemoteMinRxInterval (initialised to 1 µs, §6.8.1).
    remote_min_rx: Duration,
    /// The remote's Desired Min TX of its last packet.
    remote_desired_min_tx: Duration,
    remote_detect_mult: u8,
    remote_demand: bool,
    /// A Poll Sequence is in progress: periodic packets carry P until a Final arrives.
    polling: bool,
    last_tx: Option<Instant>,
    next_tx: Option<Instant>,
    detect_at: Option<Instant>,
    rng: u64,
    transitions: u64,
    out: Vec<Action>,
}

impl Session {
    /// A session in Down that sends its first packet at `now`. `local_discr` must be nonzero
    /// and unique among the speaker's sessions (§6.8.1); `seed` drives the jitter.
    pub fn new(config: SessionConfig, local_discr: u32, seed: u64, now: Instant) -> Self {
        debug_assert!(local_discr != 0, "bfd.LocalDiscr must be nonzero");
        let desired = config.desired_min_tx.max(SLOW_TX);
        Self {
            config,
            state: State::Down,
            remote_state: State::Down,
            local_discr,
            remote_discr: 0,
            local_diag: Diag::None,
            remote_diag: Diag::None,
            desired_min_tx: desired,
            remote_min_rx: Duration::from_micros(1),
            remote_desired_min_tx: Duration::ZERO,
            remote_detect_mult: 0,
            remote_demand: false,
            polling: false,
            last_tx: None,
            next_tx: Some(now),
            detect_at: None,
            // xorshift must not start at zero.
            rng: seed | 1,
            transitions: 0,
            out: Vec::new(),
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn local_discriminator(&self) -> u32 {
        self.local_discr
    }

    pub fn remote_discriminator(&self) -> u32 {
        self.remote_discr
    }

    pub fn polling(&self) -> bool {
        self.polling
    }

    /// The interval between periodic packets before jitter (§6.8.7).
    pub fn tx_interval(&self) -> Duration {
        self.desired_min_tx.max(self.remote_min_rx)
    }

    /// §6.8.4, asynchronous mode.
    pub fn detection_time(&self) -> Option<Duration> {
        (self.remote_detect_mult > 0).then(|| {
            self.config.required_min_rx.max(self.remote_desired_min_tx)
                * u32::from(self.remote_detect_mult)
        })
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            state: self.state,
            remote_state: self.remote_state,
            local_discriminator: self.local_discr,
            remote_discriminator: self.remote_discr,
            local_diag: self.local_diag,
            remote_diag: self.remote_diag,
            tx_interval: self.tx_interval(),
            detection_time: self.detection_time(),
            transitions: self.transitions,
        }
    }

    /// When [`Session::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.next_tx, self.detect_at].into_iter().flatten().min()
    }

    /// A Control packet selected for this session (RFC 5880 §6.8.6, after the checks of
    /// [`ControlPacket::decode`]).
    pub fn handle(&mut self, now: Instant, p: &ControlPacket) -> Vec<Action> {
        if p.your_discriminator != 0 && p.your_discriminator != self.local_discr {
            // "If the Your Discriminator field is nonzero, it MUST be used to select the
            // session ... If no session is found, the packet MUST be discarded."
            return Vec::new();
        }
        self.remote_discr = p.my_discriminator;
        self.remote_state = p.state;
        self.remote_diag = p.diag;
        self.remote_demand = p.demand;
        let old_interval = self.tx_interval();
        self.remote_min_rx = Duration::from_micros(u64::from(p.required_min_rx_us));
        self.remote_desired_min_tx = Duration::from_micros(u64::from(p.desired_min_tx_us));
        self.remote_detect_mult = p.detect_mult;
        if p.final_ && self.polling {
            // §6.5: the Final ends the Poll Sequence.
            self.polling = false;
        }
        self.reschedule_tx(old_interval);
        if self.state == State::AdminDown {
            return std::mem::take(&mut self.out);
        }
        if p.state == State::AdminDown {
            if self.state != State::Down {
                self.local_diag = Diag::NeighborSignaledSessionDown;
                self.transition(State::Down);
            }
        } else {
            match (self.state, p.state) {
                (State::Down, State::Down) => self.transition(State::Init),
                (State::Down, State::Init) => self.transition(State::Up),
                (State::Init, State::Init | State::Up) => self.transition(State::Up),
                (State::Up, State::Down) => {
                    self.local_diag = Diag::NeighborSignaledSessionDown;
                    self.transition(State::Down);
                }
                _ => {}
            }
        }
        if p.poll {
            // §6.8.6: "transmit a BFD Control packet with the Final (F) bit set as soon as
            // practicable, without respect to the transmission timer". Never P and F together.
            let mut reply = self.packet();
            reply.poll = false;
            reply.final_ = true;
            self.out.push(Action::Send(reply));
        }
        self.detect_at = self.detection_time().map(|d| now + d);
        std::mem::take(&mut self.out)
    }

    /// Timers due at `now`: detection time, periodic transmission.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Action> {
        if self.detect_at.is_some_and(|t| t <= now) {
            self.detect_at = None;
            // §6.8.1: bfd.RemoteDiscr is zeroed when a Detection Time passes in silence.
            self.remote_discr = 0;
            self.remote_state = State::Down;
            if matches!(self.state, State::Init | State::Up) {
                self.local_diag = Diag::ControlDetectionTimeExpired;
                self.transition(State::Down);
            }
        }
        if self.next_tx.is_some_and(|t| t <= now) {
            self.next_tx = None;
            if self.may_send_periodic() {
                let p = self.packet();
                self.out.push(Action::Send(p));
                self.last_tx = Some(now);
            }
            self.next_tx = Some(now + self.jittered(self.tx_interval()));
        }
        std::mem::take(&mut self.out)
    }

    /// Take the session administratively down (§6.8.16): state AdminDown, diagnostic 7; the
    /// peer is told with the next packets and must not treat it as a failure (RFC 5882 §3.2).
    pub fn admin_down(&mut self, now: Instant) -> Vec<Action> {
        if self.state != State::AdminDown {
            self.local_diag = Diag::AdministrativelyDown;
            self.transition(State::AdminDown);
            self.next_tx = Some(now);
        }
        std::mem::take(&mut self.out)
    }

    /// Leave AdminDown (§6.8.16: to Down).
    pub fn enable(&mut self) -> Vec<Action> {
        if self.state == State::AdminDown {
            self.local_diag = Diag::None;
            self.transition(State::Down);
        }
        std::mem::take(&mut self.out)
    }

    /// §6.8.7: periodic packets stop while the remote wants none or runs demand mode with
    /// both sides Up (unless a Poll Sequence is running).
    fn may_send_periodic(&self) -> bool {
        if self.remote_min_rx.is_zero() {
            return false;
        }
        !(self.remote_demand
            && self.state == State::Up
            && self.remote_state == State::Up
            && !self.polling)
    }

    /// The packet we would send now (§6.8.7 contents).
    fn packet(&self) -> ControlPacket {
        ControlPacket {
            diag: self.local_diag,
            state: self.state,
            poll: self.polling,
            final_: false,
            control_plane_independent: false,
            demand: false,
            detect_mult: self.config.detect_mult,
            my_discriminator: self.local_discr,
            your_discriminator: self.remote_discr,
            desired_min_tx_us: micros(self.desired_min_tx),
            required_min_rx_us: micros(self.config.required_min_rx),
            required_min_echo_rx_us: 0,
        }
    }

    /// Every state change goes through here.
    fn transition(&mut self, to: State) {
        let from = self.state;
        if from == to {
            return;
        }
        self.state = to;
        self.transitions += 1;
        if to == State::Up {
            self.local_diag = Diag::None;
        }
        let old_interval = self.tx_interval();
        // §6.8.3: at least one second while not Up; the configured value once Up, announced
        // with a Poll Sequence (§6.5: timer changes while Up). Going Up this can only lower the
        // interval, which may apply at once; the increase that must wait for the Poll
        // Sequence's end (§6.8.3) cannot happen, since the value while not Up is never lower.
        let desired = if to == State::Up {
            self.config.desired_min_tx
        } else {
            self.config.desired_min_tx.max(SLOW_TX)
        };
        if desired != self.desired_min_tx {
            self.desired_min_tx = desired;
            self.polling = to == State::Up;
        }
        if to != State::Up {
            self.polling = false;
        }
        self.reschedule_tx(old_interval);
        self.out.push(Action::StateChanged {
            from,
            to,
            diag: self.local_diag,
        });
    }

    /// A changed transmit interval applies from the last packet sent: a shorter one does not
    /// wait for the packet already scheduled at the old rate, and a longer one (the peer's
    /// Required Min RX grew) postpones it, since §6.8.7 forbids sending faster than that.
    fn reschedule_tx(&mut self, old_interval: Duration) {
        let new = self.tx_interval();
        if new == old_interval {
            return;
        }
        if let (Some(last), Some(next)) = (self.last_tx, self.next_tx) {
            let at = last + self.jittered(new);
            if (new < old_interval && at < next) || (new > old_interval && at > next) {
                self.next_tx = Some(at);
            }
        }
    }

    /// §6.8.7 jitter: reduce by a random 0-25 %, or 10-25 % when bfd.DetectMult is 1.
    fn jittered(&mut self, interval: Duration) -> Duration {
        let us = interval.as_micros().min(u128::from(u64::MAX)) as u64;
        let min_cut = if self.config.detect_mult == 1 {
            us / 10
        } else {
            0
        };
        let max_cut = us / 4;
        let span = max_cut - min_cut + 1;
        let cut = min_cut + self.next_random() % span;
        Duration::from_micros(us - cut)
    }

    /// xorshift64*: enough for jitter, not for secrets.
    fn next_random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn micros(d: Duration) -> u32 {
    d.as_micros().min(u128::from(u32::MAX)) as u32
}

#[cfg(test)]
mod tests;
