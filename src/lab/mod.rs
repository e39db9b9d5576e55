//! `ferry lab`: the three-site topology (docs/design.md, "The lab") built from network
//! namespaces on one Linux host, with real FRR routers, real `ferry speaker`s, a prober and
//! per-move convergence reports.
//!
//! Contract:
//! - Every namespace is `fl-<instance>-<node>`; links are veth pairs created directly inside
//!   their two namespaces. Nothing is added to the root namespace (no route, no link, no
//!   address). Only documentation prefixes and private ASNs appear.
//! - Runtime files live under `/run/ferry-lab/<instance>/` (FRR pid files, sockets, logs, the
//!   speakers' configs and state, the lab's [`state`] file). The system's /etc/frr and
//!   /var/run/frr are never used.
//! - `up` and `down` are idempotent; `down` finds everything from the state file and from the
//!   namespace prefix, so it also cleans up after a failed or interrupted `up`.
//! - Every wait (a session, a route, a process, a command) has a timeout.
//! - Lines for people (progress, summaries) go through [`human`]: to stdout, or to stderr once
//!   [`human_to_stderr`] was called (`--json`, where stdout carries only JSON).
//!
//! Modules: [`runtime`] (where nodes run: namespaces, or [`docker`] containers from the
//! [`image`] `ferry lab image build` makes), [`topology`] (the TOML file; [`clab`] reads
//! and writes containerlab files), [`proc`] (commands with timeouts, processes in
//! namespaces), [`netns`] (namespaces, veths, addresses), [`frr`] (daemons and vtysh),
//! [`state`] (what `down` must remove), [`instance`] (up/down/status), [`probe`] (prober and
//! responder), [`watch`] (route monitor and speaker event streams), [`moves`] (a failover and
//! its timing analysis), [`report`] (JSON and SVG), [`scenarios`] (`ferry lab test`), [`gshut`] (graceful
//! shutdown against a plain withdraw), [`chaos`] (`ferry lab chaos`: moves under random faults,
//! [`chaos_ctl`] its moves through the controller, [`statedisk`] the controller's fillable state
//! disk, [`testnet`] the recovery site's isolated test network for drills, [`rpki`] stayrtr and
//! FRR's RPKI module at a router,
//! invariants checked after each step), [`dns`] (an authoritative BIND and a caching resolver for
//! changed-IP groups), [`nameprobe`] (a client probing by name), [`dnsrun`] (`ferry lab dns`),
//! [`mixedplan`] (its plan), [`planfile`] (what the plans the lab writes share: head, sites, VM
//! pick), [`journalwatch`] (a controller run's step times on the lab's clock).

pub mod chaos;
pub mod chaos_ctl;
pub mod clab;
pub mod dns;
pub mod dnsrun;
pub mod docker;
pub mod frr;
pub mod gshut;
pub mod image;
pub mod instance;
pub mod journalwatch;
pub mod mixedplan;
pub mod moves;
pub mod nameprobe;
pub mod netns;
pub mod planfile;
pub mod probe;
pub mod proc;
pub mod report;
pub mod rpki;
pub mod runtime;
pub mod scenarios;
pub mod state;
pub mod statedisk;
pub mod testnet;
pub mod topology;
pub mod watch;

pub use instance::LabInstance;

/// Whether [`human`] writes to stderr (set once, by `--json`, before any lab work starts).
static HUMAN_TO_STDERR: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// From now on, lines for people go to stderr: stdout is for the command's JSON.
pub fn human_to_stderr() {
    HUMAN_TO_STDERR.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// A line for people: progress, a summary, a scenario's result.
pub fn human(line: std::fmt::Arguments<'_>) {
    if HUMAN_TO_STDERR.load(std::sync::atomic::Ordering::Relaxed) {
        eprintln!("{line}");
    } else {
        println!("{line}");
    }
}

/// Where every instance keeps its runtime files.
pub const RUN_ROOT: &str = "/run/ferry-lab";

/// Why a lab operation failed; the message says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(
        "ferry lab needs root (it creates network namespaces and starts FRR): run it with sudo"
    )]
    NotRoot,
    #[error("{0} not found: FRR is not installed; run `apt-get install frr`")]
    FrrMissing(String),
    #[error("{0} not found: run `apt-get install iproute2`")]
    IpMissing(String),
    #[error("topology: {0}")]
    Topology(String),
    /// The runtime cannot be used as asked (Docker not running, an image missing or lacking
    /// FRR): the user's to fix.
    #[error("{0}")]
    Runtime(String),
    #[error("{step}: {detail}")]
    Step { step: String, detail: String },
}

impl LabError {
    pub fn step(step: impl Into<String>, detail: impl std::fmt::Display) -> Self {
        Self::Step {
            step: step.into(),
            detail: detail.to_string(),
        }
    }

    /// A command that failed is a failed step named by its command line.
    pub fn command(f: testkit::cmd::Failed) -> Self {
        Self::Step {
            step: f.command,
            detail: f.detail,
        }
    }

    /// Bad usage (not root, bad topology) is exit 2; the rest is a failed operation.
    pub fn is_usage(&self) -> bool {
        matches!(self, Self::NotRoot | Self::Topology(_) | Self::Runtime(_))
    }
}

pub type Result<T, E = LabError> = std::result::Result<T, E>;

/// Microseconds since the Unix epoch: every timestamp of a run (probes, events, route changes,
/// FRR logs) is on this one clock so they can be compared.
/// The running `ferry` binary, for starting speakers, responders and the prober in namespaces.
///
/// `/proc/<pid>/exe` names the binary this process was started from even after a rebuild has
/// replaced the file at its path (a lab run during `cargo build` would otherwise exec a new,
/// possibly half-written binary, or fail with "(deleted)").
pub fn ferry_exe() -> String {
    format!("/proc/{}/exe", std::process::id())
}

pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// The effective user is root.
pub use testkit::root::is_root;
