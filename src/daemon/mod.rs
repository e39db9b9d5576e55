//! `ferry speaker`: the daemon that holds BGP sessions and announces the desired routes.
//!
//! Start-up: read the config, load the desired routes from `state_dir` (a restarted speaker
//! announces them again without operator action), start one driver task per neighbor
//! ([`peer`]), the listener for inbound sessions and the API. On SIGTERM or SIGINT every session
//! is closed with Cease/Administrative Shutdown and a shutdown message (RFC 8203/9003). SIGHUP
//! and `POST /v1/reload` re-read the config file and apply what changed to the running
//! neighbors ([`reload`] decides, [`running`] applies; a config that cannot be applied is
//! refused and the running one stays). Neighbors the operator disabled ([`admin`]) stay Idle,
//! also across restarts. Fencing tokens of announce, withdraw and lease renew calls are held
//! per fence in `state_dir` ([`fences`]): a lower one than held is refused.
//! Exactly one speaker runs on a `state_dir`: it holds `state_dir/lock` (an flock the kernel
//! releases when the process dies) from before it reads the directory until it exits; a second
//! one exits 1 naming the holder, having read and written nothing there.
//! Under systemd (`NOTIFY_SOCKET` set) it tells the service manager `READY=1` once the API
//! listens and the routes are loaded, the Established sessions as `STATUS=` when their count
//! changes, `WATCHDOG=1` when the unit has a watchdog, and `STOPPING=1` when a stop begins
//! ([`notify`]).
//! Never does: decide routes on its own; they come from the store, changed through the API.

mod addresses;
pub mod admin;
pub mod check;
mod collision;
mod conn;
pub mod fences;
pub mod health;
pub mod notify;
mod peer;
mod priority;
pub mod reload;
mod running;
mod security;
mod state;

pub use running::{log_filter, LogControl};

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::{broadcast, mpsc, watch};

use crate::api::server::{serve_metrics, serve_tcp, serve_unix};
use crate::api::unix_socket::bind_unix_for;
use crate::config::{Config, FamilyName};
use crate::filelock::{FileLock, LockError};
use crate::session::SessionConfig;
use crate::speaker::store::RouteStore;
use crate::wire::Family;

use peer::{Driver, PeerInput};
use running::Running;
use state::Shared;

/// The message peers see in the Cease when the speaker stops.
pub const SHUTDOWN_MESSAGE: &str = "ferry speaker shutting down";

/// `restarted`: the speaker came back with routes from `state_dir` (R bit, RFC 4724 §3).
fn session_config(
    config: &Config,
    n: &crate::config::NeighborConfig,
    restarted: bool,
) -> SessionConfig {
    let mut sc = SessionConfig::new(
        config.speaker.asn.0,
        config.speaker.router_id.0,
        n.remote_as.0,
    );
    sc.hold_time = n.hold_time.0;
    sc.connect_retry = n.connect_retry.duration();
    sc.passive = n.passive;
    sc.send_hold = n.send_hold_time.duration();
    sc.extended_message = n.extended_messages;
    sc.families = n
        .families
        .iter()
        .map(|f| match f {
            FamilyName::Ipv4 => Family::Ipv4Unicast,
            FamilyName::Ipv6 => Family::Ipv6Unicast,
        })
        .collect();
    sc.graceful_restart = n
        .restart_time()
        .map(|t| crate::speaker::graceful::local_capability(t, &sc.families, restarted));
    sc
}

/// Run until SIGTERM/SIGINT. Errors at start-up name what to fix. `path` is the file `config`
/// came from (a reload reads it again); `log` sets the log filter on a reload.
pub async fn serve(config: Config, path: PathBuf, log: LogControl) -> anyhow::Result<()> {
    // Before anything starts: a SIGTERM that comes while the speaker is starting must stop it
    // the same clean way (Cease to every peer), not kill it by the default action.
    let mut signals = Signals::install();
    // First: the API's connection budgets are shares of this limit, read when they start.
    raise_fd_limit();
    // Read once, before anything can fail: a NOTIFY_SOCKET that cannot be used is logged and
    // the speaker runs without the service manager's view of it.
    let notifier = notify::Notifier::from_env().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "systemd notification off");
        notify::Notifier::off()
    });
    // Held until `serve` returns (or the process dies): a second speaker on this directory
    // would compact away and rewrite the journal this one appends to.
    let _state_lock = lock_state_dir(&config)?;
    // Before any session starts: a token file the speaker refuses must not leave it half up.
    let api_token = match (config.speaker.api_tcp, &config.speaker.api_token_file) {
        (Some(_), Some(file)) => Some(read_api_token(file)?),
        _ => None,
    };
    // A routes file from an earlier run: this start is a restart (R bit for graceful restart).
    let restarted = config
        .speaker
        .state_dir
        .join(crate::speaker::store::ROUTES_FILE)
        .exists();
    let store = RouteStore::load(&config.speaker.state_dir).with_context(|| {
        format!(
            "loading desired routes from {}",
            config.speaker.state_dir.display()
        )
    })?;
    tracing::info!(routes = store.len(), generation = store.generation(), dir = %config.speaker.state_dir.display(), "desired routes loaded");
    let leases = crate::speaker::lease::Leases::load(&config.speaker.state_dir)
        .context("loading route leases")?;
    let admin = admin::AdminStates::load(&config.speaker.state_dir)
        .context("loading the neighbors' admin states")?;
    let fences = fences::FenceTable::load(&config.speaker.state_dir)
        .context("loading the held fencing tokens")?;
    // Every check starts at `init` (not up): the routes it governs wait for its first success.
    let gates: Vec<health::Gate> = config
        .health_checks
        .iter()
        .map(|c| health::Gate::new(c, std::time::Instant::now()))
        .collect();
    let desired_log = crate::speaker::DesiredLog::from_shared(
        store
            .routes()
            .values()
            .filter_map(|r| health::overlay_shared(&gates, r.clone())),
    );
    let (desired_tx, _) = watch::channel(desired_log.version());
    let (events, _) = broadcast::channel(4096);

    // TCP MD5 and GTSM (RFC 2385, RFC 5082): a neighbor whose options the kernel refuses
    // would never come up, or come up unprotected; neither is acceptable, so do not start.
    security::preflight(&config.neighbors).map_err(|e| anyhow::anyhow!("{e}; not starting"))?;
    for n in &config.neighbors {
        if n.md5_password.is_some() || n.ttl_security.is_some() {
            tracing::info!(peer = %n.address, md5 = n.md5_password.is_some(), ttl_security = n.ttl_security.map(|h| h.0), "session security");
        }
    }

    let bfd = crate::bfd::Bfd::new();
    let mut started = Vec::new();
    for n in &config.neighbors {
        started.push(running::start(&config, n, restarted, &bfd)?);
    }
    let (reloads_tx, mut reloads_rx) = mpsc::channel::<state::ReloadAsk>(4);
    let shared = Arc::new(Shared {
        store: Mutex::new(store),
        desired: desired_tx,
        desired_log: std::sync::RwLock::new(desired_log),
        groups: Mutex::new(crate::speaker::UpdateGroups::default()),
        next_member: Default::default(),
        events,
        peer_list: std::sync::RwLock::new(started.iter().map(|s| s.peer.clone()).collect()),
        draining: Default::default(),
        leases: Mutex::new(leases),
        lease_wake: tokio::sync::Notify::new(),
        compact_wake: tokio::sync::Notify::new(),
        lease_expiries: Default::default(),
        last_expiry: Mutex::new(None),
        admin: Mutex::new(admin),
        reloads: reloads_tx,
        allowed_prefixes: std::sync::RwLock::new(config.speaker.allowed_prefixes.clone()),
        health: Mutex::new(gates),
        fences: Mutex::new(fences),
        require_fence: config.speaker.require_fence.into(),
    });
    // Leases that ran out while the speaker was down go before any session starts.
    shared.expire_leases(true);
    tokio::spawn(expire_leases(shared.clone()));
    tokio::spawn(compact_later(shared.clone()));
    for (i, c) in config.health_checks.iter().enumerate() {
        tokio::spawn(health::run(shared.clone(), i, c.clone()));
    }

    for s in started {
        running::spawn(s, &shared, config.speaker.asn.0)?;
    }

    let mut bgp_listener = None;
    if let Some(addr) = config.speaker.listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("speaker.listen {addr}: cannot bind"))?;
        // Keys before the first accept: Linux checks the signature on the SYN (RFC 2385 §2).
        security::prepare_listener(&listener, addr, &config.neighbors)
            .map_err(|e| anyhow::anyhow!("speaker.listen {addr}: {e}; not starting"))?;
        tracing::info!(%addr, "listening for BGP sessions");
        let listener = Arc::new(listener);
        bgp_listener = Some((listener.clone(), addr));
        let shared = shared.clone();
        tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, remote)) => {
                        // An IPv4 peer may arrive on a dual-stack socket as ::ffff:a.b.c.d.
                        let ip = match remote.ip() {
                            IpAddr::V6(v6) => {
                                v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
                            }
                            v4 => v4,
                        };
                        // The neighbors as the last reload left them.
                        match shared.peer(ip) {
                            Some(peer) => {
                                // GTSM before the driver reads or writes a byte (RFC 5082 §3).
                                match security::secure_accepted(&stream, &peer.config) {
                                    Ok(()) => {}
                                    Err(e @ security::InboundError::TooFar { .. }) => {
                                        tracing::warn!(%remote, error = %e, "GTSM: inbound connection refused (RFC 5082)");
                                        continue;
                                    }
                                    Err(e) => {
                                        tracing::error!(%remote, error = %e, "inbound connection closed: its security options could not be set");
                                        continue;
                                    }
                                }
                                let _ = peer.input.send(PeerInput::Inbound(stream)).await;
                            }
                            None => {
                                tracing::warn!(%remote, "connection from an address that is not a neighbor: closed")
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let api_path = config.speaker.api.clone();
    let control: Arc<dyn crate::api::Control> = shared.clone();
    // One set for every listener: /metrics on any shows them all.
    let api_counters = Arc::new(crate::api::listen::ApiCounters::default());
    let metrics = Arc::new(state::metrics::registry(
        shared.clone(),
        api_counters.clone(),
    ));
    // The TCP listeners are bound before the Unix socket appears, so that a client (or a
    // test) that waits for the socket finds every API listener bound; a port that cannot be
    // bound stops the start before the socket exists.
    let tcp_api = match (config.speaker.api_tcp, api_token) {
        (Some(addr), Some(token)) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("speaker.api_tcp {addr}: cannot bind"))?;
            Some((addr, listener, token))
        }
        _ => None,
    };
    let metrics_api = match config.speaker.metrics_listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("speaker.metrics_listen {addr}: cannot bind"))?;
            Some((addr, listener))
        }
        None => None,
    };
    // `_api_socket` holds `<api>.lock` until the speaker ends; its drop removes our socket.
    let group = api_group(&config)?;
    let (listener, _api_socket) = bind_unix_for(&api_path, group)
        .with_context(|| format!("speaker.api {}: cannot bind", api_path.display()))?;
    let unix = tokio::spawn(serve_unix(
        listener,
        control.clone(),
        metrics.clone(),
        api_counters.clone(),
        stopped(stop_rx.clone()),
    ));
    tracing::info!(socket = %api_path.display(), "API listening");
    if let Some((addr, listener, token)) = tcp_api {
        tracing::info!(%addr, "API listening on TCP (bearer token required)");
        tokio::spawn(serve_tcp(
            listener,
            token,
            control.clone(),
            metrics.clone(),
            api_counters.clone(),
            stopped(stop_rx.clone()),
        ));
    }
    if let Some((addr, listener)) = metrics_api {
        tracing::info!(%addr, "metrics listening on TCP (GET /metrics only, no token)");
        tokio::spawn(serve_metrics(
            listener,
            metrics.clone(),
            api_counters.clone(),
            stopped(stop_rx.clone()),
        ));
    }

    // The API listens and the routes are loaded: ready (systemd `Type=notify`).
    // Subscribed before the count is read: a session that comes up in between is an event
    // the reporter sees.
    let notifier = Arc::new(notifier);
    let session_events = shared.events.subscribe();
    let up = shared.established();
    notifier.ready(&notify::sessions_status(up, shared.peers().len()));
    tokio::spawn(report_sessions(
        shared.clone(),
        notifier.clone(),
        session_events,
        up,
    ));
    if let Some(every) = notify::watchdog_from_env() {
        tracing::info!(every_ms = every.as_millis() as u64, "systemd watchdog on");
        tokio::spawn(watchdog(notifier.clone(), every));
    }

    let mut running = Running {
        config,
        path,
        shared: shared.clone(),
        bfd,
        listener: bgp_listener,
        log,
    };
    loop {
        tokio::select! {
            signal = signals.next() => match signal {
                Signal::Stop => break,
                Signal::Hangup => {
                    tracing::info!(config = %running.path.display(), "SIGHUP: reloading the configuration");
                    let sighup = crate::api::Caller::Speaker("SIGHUP");
                    match running.reload().await {
                        Ok(r) => state::audit(&sighup, "reload", format_args!("{} applied", r.config)),
                        Err(e) => {
                            tracing::error!(error = %e, "reload refused: the running configuration stays");
                            state::audit(&sighup, "reload", format_args!("refused: {e}"));
                        }
                    }
                }
            },
            Some(ask) = reloads_rx.recv() => {
                tracing::info!(config = %running.path.display(), "API: reloading the configuration");
                let result = running.reload().await;
                if let Err(e) = &result {
                    tracing::error!(error = %e, "reload refused: the running configuration stays");
                }
                let _ = ask.send(result);
            }
        }
    }
    // Reload requests from here on are answered "stopping".
    drop(reloads_rx);
    notifier.stopping("stopping: closing sessions");
    let config = running.config;
    if let Some(secs) = config.speaker.shutdown_graceful_secs {
        let n = shared.drain_all();
        if n > 0 {
            tracing::info!(
                routes = n,
                secs = secs.0,
                "stopping: graceful shutdown (RFC 8326), waiting before closing sessions"
            );
            tokio::time::sleep(secs.duration()).await;
        }
    }
    // RFC 5882 §3.2: AdminDown first, so peers do not read our leaving as a path failure.
    for p in &shared.peers() {
        if let Some(b) = &p.bfd {
            b.admin_down().await;
        }
    }
    tracing::info!("stopping: closing sessions with Cease/Administrative Shutdown");
    let all: Vec<_> = shared
        .peers()
        .into_iter()
        .map(|p| (p, SHUTDOWN_MESSAGE.to_string()))
        .collect();
    running::stop_all(&all).await;
    // Let the writers flush the NOTIFICATIONs.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(2), unix).await;
    Ok(())
}

/// Tell the service manager how many sessions are Established whenever that count changes
/// (`last`: the count it was told).
async fn report_sessions(
    shared: Arc<Shared>,
    notifier: Arc<notify::Notifier>,
    mut events: broadcast::Receiver<crate::api::Event>,
    mut last: usize,
) {
    if !notifier.is_on() {
        return;
    }
    loop {
        match events.recv().await {
            Ok(crate::api::Event::PeerState { .. })
            | Err(broadcast::error::RecvError::Lagged(_)) => {}
            Ok(_) => continue,
            Err(broadcast::error::RecvError::Closed) => return,
        }
        let up = shared.established();
        if up != last {
            last = up;
            notifier.status(&notify::sessions_status(up, shared.peers().len()));
        }
    }
}

/// `WATCHDOG=1` every `every` (half the manager's timeout), from the runtime the API and the
/// lease task run on: a runtime that stops running tasks stops the pings, and the manager
/// restarts the speaker.
async fn watchdog(notifier: Arc<notify::Notifier>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        notifier.watchdog();
    }
}

/// Raise the soft `RLIMIT_NOFILE` to the hard limit, as most daemons do: the soft default
/// (1024) is kept low for programs using `select(2)`, which the speaker does not, and its
/// sessions and API connection budgets (a share of the soft limit) need the room. The hard
/// limit is the operator's; an unlimited one is taken as the kernel's `fs.nr_open`. The
/// speaker starts no child processes, so none inherits the raised limit. Logged either way.
fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource, RLIM_INFINITY};
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the open-file limit (RLIMIT_NOFILE); keeping it");
            return;
        }
    };
    let target = if hard == RLIM_INFINITY {
        std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(soft)
    } else {
        hard
    };
    if soft == RLIM_INFINITY || soft >= target {
        tracing::info!(
            soft,
            hard,
            "open-file limit (RLIMIT_NOFILE) already at its hard limit"
        );
        return;
    }
    match setrlimit(Resource::RLIMIT_NOFILE, target, hard) {
        Ok(()) => tracing::info!(
            from = soft,
            to = target,
            hard,
            "raised the open-file limit (RLIMIT_NOFILE) to the hard limit"
        ),
        Err(e) => {
            tracing::warn!(soft, hard, error = %e, "cannot raise the open-file limit (RLIMIT_NOFILE); keeping it")
        }
    }
}

/// The lock file inside `state_dir` that one speaker holds for its life.
pub const STATE_LOCK_FILE: &str = "lock";

/// Create `state_dir` (0700: the desired routes are the site's routing intent) and take its
/// lock, before anything in it is read or written. A second speaker on the same directory
/// gets an error naming the holder and has touched nothing (the lock file is opened without
/// truncation and only the holder writes it).
fn lock_state_dir(config: &Config) -> anyhow::Result<FileLock> {
    let dir = &config.speaker.state_dir;
    crate::private_fs::create_dir(dir)
        .with_context(|| format!("speaker.state_dir {}: cannot create", dir.display()))?;
    let meta =
        std::fs::metadata(dir).with_context(|| format!("speaker.state_dir {}", dir.display()))?;
    if let Some(mode) = crate::private_fs::exposed_mode(&meta) {
        tracing::warn!(dir = %dir.display(), mode = format!("{mode:o}"), "state_dir is open to group or others; chmod 700 it");
    }
    let mut lock = match FileLock::try_acquire(&dir.join(STATE_LOCK_FILE)) {
        Ok(l) => l,
        Err(LockError::Held { path, holder }) => anyhow::bail!(
            "speaker.state_dir {}: another speaker is running on it ({holder}; lock {}); \
             stop that one first, or give this one a state_dir of its own; nothing was changed",
            dir.display(),
            path.display()
        ),
        Err(e) => return Err(e).context("speaker.state_dir: cannot take the lock"),
    };
    // The name is for the refusals of others; the lock holds without it (a full disk must
    // not keep the speaker from starting with the routes it acknowledged).
    if let Err(e) = lock.describe(&format!(
        "pid {}, started {}, api {}",
        std::process::id(),
        crate::controller::runs::utc(crate::speaker::lease::now_ms()),
        config.speaker.api.display()
    )) {
        tracing::warn!(error = %e, "cannot name this speaker in the state_dir lock; a second speaker is still refused, without the name");
    }
    Ok(lock)
}

/// The group `speaker.api_group` names, if set; a name the system does not know is an error.
fn api_group(config: &Config) -> anyhow::Result<Option<nix::unistd::Gid>> {
    let Some(name) = &config.speaker.api_group else {
        return Ok(None);
    };
    match nix::unistd::Group::from_name(name) {
        Ok(Some(g)) => {
            tracing::info!(group = %name, gid = g.gid.as_raw(), "API socket: mode 0660 for this group");
            Ok(Some(g.gid))
        }
        Ok(None) => anyhow::bail!(
            "speaker.api_group {name:?}: no such group (create it with `groupadd {name}`, or remove the key)"
        ),
        Err(e) => anyhow::bail!("speaker.api_group {name:?}: cannot look it up: {e}"),
    }
}

/// The TCP API's bearer token from `file`, which only its owner may read (anyone who can
/// read it can drive the speaker).
fn read_api_token(file: &std::path::Path) -> anyhow::Result<String> {
    let name = || format!("speaker.api_token_file {}", file.display());
    let meta = std::fs::metadata(file).with_context(name)?;
    if let Some(mode) = crate::private_fs::exposed_mode(&meta) {
        anyhow::bail!(
            "{} is open to group or others (mode {mode:04o}): run `chmod 600 {}`",
            name(),
            file.display()
        );
    }
    let token = std::fs::read_to_string(file)
        .with_context(name)?
        .trim()
        .to_owned();
    anyhow::ensure!(
        token.len() >= 16,
        "{}: token shorter than 16 characters",
        name()
    );
    Ok(token)
}

/// Run a neighbor's driver, with its connection's reader and writer, on a thread of its own:
/// while that peer floods, the driver lowers the thread's class ([`priority`]), and the kernel
/// then runs the API and the other peers' drivers first instead of sharing a worker pool with
/// the flood. The thread outlives the driver by the time its writer may need to flush a
/// closing NOTIFICATION ([`peer::FLUSH_ON_CLOSE`]).
fn spawn_driver(driver: Driver, inputs: mpsc::Receiver<PeerInput>) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("ferry-peer".into())
        .spawn(move || {
            runtime.block_on(async move {
                driver.run(inputs).await;
                tokio::time::sleep(peer::FLUSH_ON_CLOSE).await;
            });
        })?;
    Ok(())
}

/// Withdraw leased routes when their lease runs out: sleep until the next deadline, at most a
/// few seconds (the wall clock may move), or until an announce or renewal moves it.
async fn expire_leases(shared: Arc<Shared>) {
    loop {
        let next = shared.expire_leases(false);
        let wait = next.map_or(Duration::from_secs(5), |d| {
            Duration::from_millis(d.saturating_sub(crate::speaker::lease::now_ms()))
        });
        tokio::select! {
            _ = tokio::time::sleep(wait.clamp(Duration::from_millis(20), Duration::from_secs(5))) => {}
            _ = shared.lease_wake.notified() => {}
        }
    }
}

/// How long after a change made it due the route journal is compacted.
const COMPACT_DELAY: Duration = Duration::from_secs(1);

/// Compact the route journal [`COMPACT_DELAY`] after a change made it due: a snapshot of a
/// large table is milliseconds of CPU that the drivers and the peers need while that change is
/// being sent. Changes meanwhile only append to the journal (durable as before).
async fn compact_later(shared: Arc<Shared>) {
    loop {
        shared.compact_wake.notified().await;
        tokio::time::sleep(COMPACT_DELAY).await;
        let s = shared.clone();
        let _ = tokio::task::spawn_blocking(move || s.compact_journal()).await;
    }
}

/// What a signal asks of the speaker.
enum Signal {
    /// SIGTERM, SIGINT: close the sessions and exit.
    Stop,
    /// SIGHUP: reload the configuration (by default it would end the speaker, and every
    /// route with it, when a terminal closes).
    Hangup,
}

/// SIGTERM, SIGINT and SIGHUP, listened for from the start of [`serve`] (a signal that came
/// before [`Signals::next`] is called is not lost).
struct Signals {
    term: Option<tokio::signal::unix::Signal>,
    interrupt: Option<tokio::signal::unix::Signal>,
    hangup: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn install() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        Self {
            term: signal(SignalKind::terminate()).ok(),
            interrupt: signal(SignalKind::interrupt()).ok(),
            hangup: signal(SignalKind::hangup()).ok(),
        }
    }

    /// The next signal.
    async fn next(&mut self) -> Signal {
        async fn recv(s: Option<&mut tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            _ = recv(self.term.as_mut()) => Signal::Stop,
            _ = recv(self.interrupt.as_mut()) => Signal::Stop,
            _ = recv(self.hangup.as_mut()) => Signal::Hangup,
        }
    }
}

/// BFD to one neighbor (RFC 5881 single hop). When it goes from Up to Down, the neighbor's
/// driver drops the BGP session at once (RFC 5882 §4.3); a session that never came Up (the
/// peer runs no BFD) never touches BGP.
fn start_bfd(
    bfd: &crate::bfd::Bfd,
    n: &crate::config::NeighborConfig,
    c: &crate::config::BfdConfig,
    input: mpsc::Sender<PeerInput>,
) -> anyhow::Result<crate::bfd::Handle> {
    bfd.add(n.address, n.local_address, c.into(), move |e| {
        let input = input.clone();
        tokio::spawn(async move {
            let _ = input
                .send(PeerInput::BfdDown {
                    diag: e.diag.to_string(),
                })
                .await;
        });
    })
    .map_err(|e| anyhow::anyhow!("neighbor {}: {e}", n.address))
}
