//! HA controllers on etcd (issue 17), with a real three-member etcd cluster (Debian
//! `etcd-server`), one member per site namespace on documentation addresses, and real `ferry
//! speaker`s: dc1 and dc2 announce, an observer speaker (iBGP with both) stands for the third
//! site's router and is where every move is checked (its received routes, by next hop).
//! Controllers and operators run `ferry` inside the site namespaces (they reach etcd there);
//! the speakers' APIs are Unix sockets, reachable from every namespace.
//!
//! Proves:
//! - kill -9 of the process running a failover inside its cutover hook, and then of the
//!   leading controller that took the run over (again inside the hook): another controller
//!   takes over and finishes; the observer ends with the subnet from dc2 only; history shows
//!   both takeovers; the time from the second kill to the takeover's record is printed.
//! - a stale leader (SIGSTOP inside the hook, another controller takes over and finishes,
//!   SIGCONT): its journal writes are refused by etcd (the lock's revision changed), so it
//!   stops without changing anything; the observer still sees dc2 only.
//! - etcd quorum lost while idle (two sites cut off the bridge): a failover from the remaining
//!   site does not start and says why (the store); quorum back: the same command completes.
//! - two writers of one run's journal in etcd: for each seq exactly one append wins.
//! - fencing at the speaker: the leader's lease renewal is held on its way to dc1's speaker
//!   and the leader SIGSTOPped with it in flight; the other controller wins (a higher etcd
//!   revision) and renews; the late renewal then arrives and dc1 refuses it (409, its
//!   `/v1/fences` and audit line), keeping the newer token; the observer never changes.
//! - store loss: the leader's site cut off from etcd (and it alone reaching dc1): no renewal
//!   reaches dc1 after the etcd TTL plus one request timeout; dc1 withdraws by itself.
//! - failover by quorum (`[auto]`): the primary's site cut off; dc1 withdraws within its
//!   lease; the leader starts the unplanned run once dc2's and the witness's views agree,
//!   waits out dc1's lease, and dc2 appears at the observer; sampled every 20 ms, never both;
//!   the decision (who saw what, since when) in the journal and history.
//! - an ignored benchmark: journal cost per step, file against etcd.
//!
//! Failures injected: SIGKILL and SIGSTOP/SIGCONT of `ferry` processes, sites taken off the
//! bridge (`ip link set ... nomaster`), a message held in flight by a TCP relay the test owns
//! (`tc netem` is not in this kernel); the relay also puts dc1's API behind site 1's link.

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::*;
use testkit::daemons::etcd::EtcdCluster;
use testkit::netns::{Lab, Netns};
use testkit::poll::poll;
use testkit::signal::signal;

const NH1: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const NH2: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 20);
const SUBNET: &str = "198.51.100.0/24";

fn can_run(test: &str) -> bool {
    testkit::root::can_run_with(test, &["etcd", "etcdctl", "ip"])
}

/// Two site speakers (dc1 announcing the subnet) and the observer both peer with.
struct Sites {
    dc1: Speaker,
    dc2: Speaker,
    obs: Speaker,
}

fn source(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 42, last)
}

fn sites(base: u8) -> Sites {
    let ip = Ipv4Addr::new(127, 0, 41, base);
    let obs = Speaker::start(SpeakerSpec {
        listen: Some((ip, free_port(ip)).into()),
        neighbors: [base + 1, base + 2]
            .iter()
            .map(|l| NeighborSpec {
                remote_as: LOCAL_ASN,
                ..NeighborSpec::passive(source(*l))
            })
            .collect(),
        router_id: Some(Ipv4Addr::new(192, 0, 2, 99)),
        ..SpeakerSpec::default()
    });
    let site = |last: u8| {
        let s = Speaker::start(SpeakerSpec::with(vec![NeighborSpec {
            remote_as: LOCAL_ASN,
            local_address: source(last).into(),
            ..NeighborSpec::active(obs.spec.listen.unwrap())
        }]));
        obs.wait_state(source(last).into(), "Established");
        s
    };
    let dc1 = site(base + 1);
    let dc2 = site(base + 2);
    dc1.cli_ok(&["announce", SUBNET, "--next-hop", &NH1.to_string()]);
    let s = Sites { dc1, dc2, obs };
    s.wait_observed(NH1);
    s
}

impl Sites {
    /// The next hops of the subnet at the observer (one per site announcing it).
    fn observed(&self) -> Vec<IpAddr> {
        let out = self.obs.cli_ok(&["routes", "--received", "--json"]);
        let v: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).unwrap();
        v.iter()
            .filter(|r| r["prefix"] == SUBNET)
            .filter_map(|r| r["next_hop"].as_str()?.parse().ok())
            .collect()
    }

    /// Until the observer sees the subnet from the site with next hop `nh` or from no site
    /// (a break-before-make move between its withdraw and its announce).
    fn wait_observed_none_or(&self, nh: Ipv4Addr) {
        let ok = |v: Vec<IpAddr>| v.is_empty() || v == vec![IpAddr::V4(nh)];
        let got = poll(WAIT, || ok(self.observed()).then_some(()));
        assert!(got.is_some(), "observer: {:?}", self.observed());
    }

    /// Until the observer sees the subnet from the site with next hop `nh` only.
    fn wait_observed(&self, nh: Ipv4Addr) {
        let want = vec![IpAddr::V4(nh)];
        let got = poll(WAIT, || (self.observed() == want).then_some(()));
        assert!(
            got.is_some(),
            "observer: {:?}, want {want:?}",
            self.observed()
        );
    }

    fn plan(&self, dir: &Path, hook: &str) -> PathBuf {
        let dc1 = format!("api = \"{}\"", self.dc1.api().display());
        self.plan_with(dir, &dc1, hook)
    }

    /// The plan with `dc1` (its `api` and any other keys of its `[[site]]`) as given.
    fn plan_with(&self, dir: &Path, dc1: &str, hook: &str) -> PathBuf {
        let text = format!(
            r#"name = "web"
primary = "dc1"
recovery = "dc2"
order = "break-before-make"

[[site]]
name = "dc1"
{dc1}
next_hop = "{NH1}"

[[site]]
name = "dc2"
api = "{}"
next_hop = "{NH2}"

[[site]]
name = "obs"
api = "{}"

[[group]]
name = "web"
subnets = ["{SUBNET}"]

[verify]
observer = "obs"
match_next_hop = true
timeout_ms = 5000
interval_ms = 20
{hook}"#,
            self.dc2.api().display(),
            self.obs.api().display()
        );
        let path = dir.join("plan.toml");
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// `ferry ARGS` inside `ns`, waited for (killed by coreutils `timeout` after `timeout`).
fn ferry_in(ns: &Netns, args: &[&str], timeout: Duration) -> CliOut {
    let out = ns
        .command("timeout")
        .args(["-s", "KILL", &timeout.as_secs().to_string(), FERRY])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    CliOut {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A cutover hook that logs each start to `log` and, for its first `sleeps` starts, sleeps
/// (the test kills or stops its controller meanwhile); later starts pass at once.
fn hook(dir: &Path, sleeps: u32) -> String {
    let log = dir.join("cutover.log");
    format!(
        "\n[[hook]]\nname = \"cutover\"\nstage = \"cutover\"\ncommand = [\"sh\", \"-c\", \"echo $$ >> {log}; n=$(wc -l < {log}); [ $n -gt {sleeps} ] && exit 0; exec sleep 60\"]\n",
        log = log.display()
    )
}

fn hook_starts(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("cutover.log"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// Until the hook has started `n` times.
fn wait_hook(dir: &Path, n: usize, timeout: Duration) {
    let got = poll(timeout, || (hook_starts(dir) >= n).then_some(()));
    assert!(
        got.is_some(),
        "the cutover hook started {} times, want {n}",
        hook_starts(dir)
    );
}

/// The journal records of the plan's runs in etcd, in key order (seq order per run).
fn journal(c: &EtcdCluster, site: usize) -> Vec<serde_json::Value> {
    let out = c
        .etcdctl(
            site,
            &[
                "get",
                "--prefix",
                "ferry/plans/web/runs/",
                "--print-value-only",
            ],
        )
        .unwrap_or_else(|e| panic!("etcdctl get: {e}"));
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The run's journal once its last record is `run_finished` (the observer may see the move
/// before the controller has verified and recorded it), or as it is after `WAIT`.
fn finished_journal(c: &EtcdCluster, site: usize) -> Vec<serde_json::Value> {
    let done = |r: &Vec<serde_json::Value>| r.last().is_some_and(|l| l["record"] == "run_finished");
    poll(WAIT, || Some(journal(c, site)).filter(done)).unwrap_or_else(|| journal(c, site))
}

/// `ferry controller run` in site `i`'s namespace, its log in `dir`.
fn controller(lab: &Lab, c: &EtcdCluster, i: usize, plan: &Path, dir: &Path) -> (u32, PathBuf) {
    controller_with(lab, c, i, plan, dir, &[])
}

/// [`controller`] with `extra` arguments.
fn controller_with(
    lab: &Lab,
    c: &EtcdCluster,
    i: usize,
    plan: &Path,
    dir: &Path,
    extra: &[&str],
) -> (u32, PathBuf) {
    let url = c.url();
    let args: Vec<&str> = ["--store", url.as_str()]
        .into_iter()
        .chain(extra.iter().copied())
        .collect();
    controller_by_plan(lab, c, i, plan, dir, &args)
}

/// `ferry controller run --plan PLAN ARGS...`: the store from `args` or the plan's `[store]`.
fn controller_by_plan(
    lab: &Lab,
    c: &EtcdCluster,
    i: usize,
    plan: &Path,
    dir: &Path,
    args: &[&str],
) -> (u32, PathBuf) {
    let mut cmd = c.members[i].ns.command(FERRY);
    cmd.args(["controller", "run", "--plan"])
        .arg(plan)
        .args(args);
    let log = dir.join(format!("controller{}.log", i + 1));
    (lab.spawn(&format!("controller {}", i + 1), cmd, &log), log)
}

fn log_has(log: &Path, what: &str) -> bool {
    std::fs::read_to_string(log).is_ok_and(|t| t.contains(what))
}

fn wait_log(log: &Path, what: &str, timeout: Duration) {
    let got = poll(timeout, || log_has(log, what).then_some(()));
    assert!(
        got.is_some(),
        "{} never said {what:?}:\n{}",
        log.display(),
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// The operator's failover in site `i`'s namespace, in the background.
fn spawn_failover(lab: &Lab, c: &EtcdCluster, i: usize, plan: &Path, dir: &Path) -> u32 {
    let mut cmd = c.members[i].ns.command(FERRY);
    cmd.args(["failover", "--yes", "--plan"])
        .arg(plan)
        .args(["--store", &c.url()]);
    lab.spawn("operator failover", cmd, &dir.join("operator.log"))
}

#[test]
fn kill_9_of_the_runner_and_of_the_leader_mid_cutover_another_controller_finishes() {
    if !can_run("controller_ha") {
        return;
    }
    let lab = Lab::new("hakill");
    let c = EtcdCluster::start(&lab, 3);
    let s = sites(1);
    let dir = lab.tempdir("run");
    let plan = s.plan(&dir, &hook(&dir, 2));
    let (c1, log1) = controller(&lab, &c, 0, &plan, &dir);
    wait_log(&log1, "leading plan web", WAIT);
    let (_c2, log2) = controller(&lab, &c, 1, &plan, &dir);
    let (_c3, log3) = controller(&lab, &c, 2, &plan, &dir);
    wait_log(&log2, "following", WAIT);
    wait_log(&log3, "following", WAIT);

    // The operator's run, from site 3, killed inside its cutover hook.
    let op = spawn_failover(&lab, &c, 2, &plan, &dir);
    wait_hook(&dir, 1, WAIT);
    signal(op, "KILL");
    // The leader takes the run over once the dead operator's lock lease runs out, and runs
    // the hook again: killed there too.
    wait_hook(&dir, 2, Duration::from_secs(15));
    assert!(
        log_has(&log1, "taking over run"),
        "controller 1 did not take over"
    );
    s.wait_observed(NH1); // nothing moved yet: the hook runs before the announce
    let killed = now_ms();
    signal(c1, "KILL");
    wait_hook(&dir, 3, Duration::from_secs(15));
    s.wait_observed(NH2);
    assert!(s.dc1.cli_ok(&["routes", "--json"]).stdout.trim() == "[]");

    let records = journal(&c, 1);
    let last = records.last().unwrap();
    assert_eq!(last["record"], "run_finished", "{records:#?}");
    assert_eq!(last["active"], "dc2");
    let takeovers: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| r["record"] == "resumed")
        .collect();
    assert_eq!(takeovers.len(), 2, "{records:#?}");
    assert_ne!(takeovers[0]["by"]["pid"], takeovers[1]["by"]["pid"]);
    let took = takeovers[1]["at_ms"].as_u64().unwrap();
    let first_step = records
        .iter()
        .filter(|r| r["record"] == "step_started" && r["at_ms"].as_u64().unwrap() >= took)
        .map(|r| r["at_ms"].as_u64().unwrap())
        .next()
        .unwrap();
    eprintln!(
        "takeover after kill -9 of the leader: {} ms to the takeover record, {} ms to its first step (TTL {} s)",
        took.saturating_sub(killed),
        first_step.saturating_sub(killed),
        ferry::controller::store::DEFAULT_TTL_SECS
    );
    assert!(
        log_has(&log2, "taking over run") || log_has(&log3, "taking over run"),
        "no controller took over after the leader died"
    );

    // History (from any site) shows the run and both takeovers.
    let out = ferry_in(
        &c.members[0].ns,
        &["failover", "history", "--store", &c.url()],
        WAIT,
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("completed"), "{out:?}");
    let run_id = records[0]["run_id"].as_str().unwrap();
    let out = ferry_in(
        &c.members[0].ns,
        &["failover", "history", "--run", run_id, "--store", &c.url()],
        WAIT,
    );
    assert_eq!(out.stdout.matches("taken over by").count(), 2, "{out:?}");
}

#[test]
fn a_stopped_leader_that_comes_back_is_refused_by_the_store_and_changes_nothing() {
    if !can_run("controller_ha") {
        return;
    }
    let lab = Lab::new("hastale");
    let c = EtcdCluster::start(&lab, 3);
    let s = sites(11);
    let dir = lab.tempdir("run");
    let plan = s.plan(&dir, &hook(&dir, 2));
    let (c1, log1) = controller(&lab, &c, 0, &plan, &dir);
    wait_log(&log1, "leading plan web", WAIT);
    let (_c2, log2) = controller(&lab, &c, 1, &plan, &dir);
    wait_log(&log2, "following", WAIT);
    let op = spawn_failover(&lab, &c, 2, &plan, &dir);
    wait_hook(&dir, 1, WAIT);
    signal(op, "KILL");
    wait_hook(&dir, 2, Duration::from_secs(15));
    assert!(log_has(&log1, "taking over run"));

    // Controller 1 stops inside the hook; controller 2 leads, takes over, finishes.
    signal(c1, "STOP");
    wait_log(&log2, "taking over run", Duration::from_secs(15));
    s.wait_observed(NH2);
    let before = journal(&c, 1);
    assert_eq!(before.last().unwrap()["record"], "run_finished");

    // Back: its hook was ended by the new leader; its next record is refused by etcd.
    signal(c1, "CONT");
    wait_log(&log1, "no longer held at revision", Duration::from_secs(15));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        journal(&c, 1),
        before,
        "the stale leader wrote to the journal"
    );
    assert_eq!(s.observed(), vec![IpAddr::V4(NH2)]);
    assert!(s.dc1.cli_ok(&["routes", "--json"]).stdout.trim() == "[]");
}

#[test]
fn without_an_etcd_quorum_no_run_starts_and_with_it_back_the_run_completes() {
    if !can_run("controller_ha") {
        return;
    }
    let lab = Lab::new("haquorum");
    let c = EtcdCluster::start(&lab, 3);
    let s = sites(21);
    let dir = lab.tempdir("run");
    let plan = s.plan(&dir, "");
    let plan = plan.to_str().unwrap();
    let url = c.url();
    let ns = &c.members[0].ns;
    c.cut(1);
    c.cut(2);
    let started = Instant::now();
    let out = ferry_in(
        ns,
        &["failover", "--yes", "--plan", plan, "--store", &url],
        Duration::from_secs(30),
    );
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("etcd store") && out.stderr.contains("no run starts"),
        "{out:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    s.wait_observed(NH1);
    assert!(s.dc2.cli_ok(&["routes", "--json"]).stdout.trim() == "[]");

    c.heal(1);
    c.heal(2);
    c.wait_healthy(Duration::from_secs(30));
    let out = ferry_in(
        ns,
        &["failover", "--yes", "--plan", plan, "--store", &url],
        Duration::from_secs(60),
    );
    assert_eq!(out.code, 0, "{out:?}");
    s.wait_observed(NH2);
    let records = journal(&c, 2);
    assert_eq!(records.last().unwrap()["record"], "run_finished");
}

/// Runs `f` on a thread inside `ns` (its sockets, and the threads it starts, live there).
fn in_netns<T: Send>(ns: &Netns, f: impl FnOnce() -> T + Send) -> T {
    let path = Path::new("/run/netns").join(ns.name());
    std::thread::scope(|s| {
        s.spawn(move || {
            let file = std::fs::File::open(&path).unwrap();
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            f()
        })
        .join()
        .unwrap()
    })
}

#[test]
fn two_writers_of_one_journal_in_etcd_never_both_append_the_same_step() {
    use ferry::controller::journal::{Direction, JournalError, Mode, Record};
    use ferry::controller::lock::Holder;
    use ferry::controller::store::{EtcdAuth, StoreSpec};
    if !can_run("controller_ha") {
        return;
    }
    let lab = Lab::new("haappend");
    let c = EtcdCluster::start(&lab, 3);
    let spec = StoreSpec::parse(
        Some(&c.url()),
        Path::new("/nonexistent"),
        EtcdAuth::default(),
        5,
    )
    .unwrap();
    let (wins, conflicts) = in_netns(&c.members[0].ns, || {
        let store = spec.open().unwrap();
        let ferry::controller::store::Store::Etcd(e) = &store else {
            panic!("not etcd")
        };
        let mut first = e.journal("web", "1-web-failover", None).unwrap();
        first
            .append(Record::RunStarted {
                run_id: "1-web-failover".into(),
                plan: "web".into(),
                direction: Direction::Failover,
                mode: Mode::Planned,
                steps: vec!["s0".into()],
                by: Holder::me("test"),
                plan_text: String::new(),
            })
            .unwrap();
        let (mut wins, mut conflicts) = (0, 0);
        for _ in 0..20 {
            // Two controllers that both read the run as it is now.
            let mut a = e.journal("web", "1-web-failover", None).unwrap();
            let mut b = e.journal("web", "1-web-failover", None).unwrap();
            let results = std::thread::scope(|s| {
                let ta = s.spawn(|| {
                    a.append(Record::Resumed {
                        by: Holder::me("a"),
                    })
                    .map(|_| ())
                });
                let tb = s.spawn(|| {
                    b.append(Record::Resumed {
                        by: Holder::me("b"),
                    })
                    .map(|_| ())
                });
                [ta.join().unwrap(), tb.join().unwrap()]
            });
            for r in results {
                match r {
                    Ok(()) => wins += 1,
                    Err(JournalError::Conflict { .. }) => conflicts += 1,
                    Err(e) => panic!("{e}"),
                }
            }
        }
        (wins, conflicts)
    });
    assert_eq!((wins, conflicts), (20, 20));
    let records = journal(&c, 1);
    assert_eq!(records.len(), 21);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r["seq"], i as u64);
    }
}

/// A TCP front for a speaker's API socket, listening in the hub namespace where every site
/// reaches it: the switch between the controllers and the speaker. While `hold` names a
/// source address, what that host sends waits in the switch (a paused or slow link, as a
/// GC pause or a congested path delays a message in flight); [`HoldingLink::release`]
/// delivers it, late.
struct HoldingLink {
    addr: std::net::SocketAddr,
    hold: std::sync::Arc<std::sync::Mutex<Option<IpAddr>>>,
    /// Requests (chunks) held so far.
    held: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl HoldingLink {
    fn start(ns: &Netns, addr: std::net::SocketAddr, api: PathBuf) -> Self {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        use std::sync::{Arc, Mutex};
        let listener = ns.tcp_listener(addr).unwrap();
        listener.set_nonblocking(true).unwrap();
        let link = Self {
            addr,
            hold: Arc::new(Mutex::new(None)),
            held: Arc::new(AtomicUsize::new(0)),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (hold, held, stop) = (link.hold.clone(), link.held.clone(), link.stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let (down, peer) = match listener.accept() {
                    Ok(x) => x,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                };
                down.set_nonblocking(false).unwrap();
                let Ok(up) = std::os::unix::net::UnixStream::connect(&api) else {
                    continue;
                };
                let (mut d_read, mut u_write) =
                    (down.try_clone().unwrap(), up.try_clone().unwrap());
                let (hold, held) = (hold.clone(), held.clone());
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    loop {
                        let n = match std::io::Read::read(&mut d_read, &mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let mut counted = false;
                        while *hold.lock().unwrap() == Some(peer.ip()) {
                            if !counted {
                                held.fetch_add(1, Ordering::SeqCst);
                                counted = true;
                            }
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        if std::io::Write::write_all(&mut u_write, &buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = u_write.shutdown(std::net::Shutdown::Write);
                });
                let (mut u_read, mut d_write) = (up, down);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut u_read, &mut d_write);
                    let _ = d_write.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        link
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Hold what `from` sends from now on.
    fn hold(&self, from: IpAddr) {
        *self.hold.lock().unwrap() = Some(from);
    }

    fn release(&self) {
        *self.hold.lock().unwrap() = None;
    }

    fn held(&self) -> usize {
        self.held.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for HoldingLink {
    fn drop(&mut self) {
        self.release();
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The fence `web` as the speaker holds it: (token, refused so far).
fn fence_at(s: &Speaker) -> Option<(u64, u64)> {
    let out = s.cli_ok(&["fences", "--json"]);
    let v: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).unwrap();
    v.iter()
        .find(|f| f["fence"] == "web")
        .map(|f| (f["token"].as_u64().unwrap(), f["refused"].as_u64().unwrap()))
}

/// The token a controller's log says it leads with.
fn leader_token(log: &Path) -> u64 {
    let text = std::fs::read_to_string(log).unwrap();
    let at = text.find("leading plan web (token ").unwrap() + "leading plan web (token ".len();
    text[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn a_stale_leaders_announce_that_arrives_after_a_failback_is_refused_by_the_speaker() {
    if !can_run("controller_ha") {
        return;
    }
    let lab = Lab::new("hastaleann");
    let c = EtcdCluster::start(&lab, 3);
    let s = sites(71);
    // dc2's API is reached through a switch in the hub that can hold what one host sends.
    c.hub.ip(&["addr", "add", "192.0.2.100/24", "dev", "br0"]);
    let link = HoldingLink::start(&c.hub, "192.0.2.100:8080".parse().unwrap(), s.dc2.api());
    let dir = lab.tempdir("run");
    let plan = s.plan(&dir, &hook(&dir, 1));
    let text = std::fs::read_to_string(&plan).unwrap();
    let direct = format!("api = \"{}\"", s.dc2.api().display());
    assert!(text.contains(&direct), "{text}");
    std::fs::write(
        &plan,
        text.replace(&direct, &format!("api = \"{}\"", link.url())),
    )
    .unwrap();
    let ttl = ["--etcd-ttl-secs", "2"];
    let (c1, log1) = controller_with(&lab, &c, 0, &plan, &dir, &ttl);
    wait_log(&log1, "leading plan web", WAIT);
    let (_c2, log2) = controller_with(&lab, &c, 1, &plan, &dir, &ttl);
    wait_log(&log2, "following", WAIT);

    // The operator's failover dies in its cutover hook; controller 1 takes the run over.
    // What it sends to dc2 (its announce, after the hook) is held in the switch, and it is
    // paused with the announce in flight.
    link.hold(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)));
    let op = spawn_failover(&lab, &c, 2, &plan, &dir);
    wait_hook(&dir, 1, WAIT);
    signal(op, "KILL");
    wait_log(&log1, "taking over run", Duration::from_secs(15));
    let got = poll(Duration::from_secs(15), || (link.held() > 0).then_some(()));
    assert!(
        got.is_some(),
        "controller 1 sent nothing to dc2:\n{}",
        std::fs::read_to_string(&log1).unwrap_or_default()
    );
    signal(c1, "STOP");
    s.wait_observed_none_or(NH1);

    // Controller 2 leads, takes the run over and finishes it (its own announce at dc2);
    // then the operator fails back: dc2 withdraws, dc1 announces, each with a newer token.
    wait_log(&log2, "taking over run", Duration::from_secs(15));
    s.wait_observed(NH2);
    let out = ferry_in(
        &c.members[2].ns,
        &[
            "failback",
            "--yes",
            "--plan",
            plan.to_str().unwrap(),
            "--store",
            &c.url(),
        ],
        Duration::from_secs(60),
    );
    assert_eq!(out.code, 0, "{out:?}");
    s.wait_observed(NH1);
    let (held_by_dc2, _) = fence_at(&s.dc2).expect("dc2 holds no fence");

    // The stale announce arrives now: dc2 refuses it, keeps the failback's token, announces
    // nothing; controller 1, back, can record nothing more.
    link.release();
    let got = poll(WAIT, || fence_at(&s.dc2).filter(|f| f.1 >= 1));
    assert_eq!(
        got.map(|f| f.0),
        Some(held_by_dc2),
        "{:?}",
        fence_at(&s.dc2)
    );
    let refusal = format!("refused: fence web holds token {held_by_dc2}, offered ");
    let got = poll(WAIT, || s.dc2.log().contains(&refusal).then_some(()));
    assert!(got.is_some(), "no audit line {refusal:?}:\n{}", s.dc2.log());
    signal(c1, "CONT");
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        assert_eq!(s.observed(), vec![IpAddr::V4(NH1)]);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(s.dc2.cli_ok(&["routes", "--json"]).stdout.trim(), "[]");
    let records = finished_journal(&c, 1);
    assert_eq!(records.last().unwrap()["active"], "dc1", "{records:#?}");
}

#[test]
fn a_stale_leaders_renewal_that_arrives_late_is_refused_by_the_speaker_and_changes_nothing() {
    if !can_run("controller_ha") {
        return;
    }
    let lab = Lab::new("hafence");
    let c = EtcdCluster::start(&lab, 3);
    let s = sites(31);
    // dc1 holds the subnet on a lease the leader's keeper renews every 3 s.
    s.dc1.cli_ok(&[
        "announce",
        SUBNET,
        "--next-hop",
        &NH1.to_string(),
        "--lease",
        "9",
    ]);
    c.hub.ip(&["addr", "add", "192.0.2.100/24", "dev", "br0"]);
    let link = HoldingLink::start(&c.hub, "192.0.2.100:8080".parse().unwrap(), s.dc1.api());
    let dir = lab.tempdir("run");
    let dc1 = format!("api = \"{}\"\nlease_secs = 9", link.url());
    let plan = s.plan_with(&dir, &dc1, "");
    let ttl = ["--etcd-ttl-secs", "2"];
    let (c1, log1) = controller_with(&lab, &c, 0, &plan, &dir, &ttl);
    wait_log(&log1, "leading plan web", WAIT);
    let (_c2, log2) = controller_with(&lab, &c, 1, &plan, &dir, &ttl);
    wait_log(&log2, "following", WAIT);
    let t1 = leader_token(&log1);
    let got = poll(WAIT, || fence_at(&s.dc1).filter(|f| f.0 == t1));
    assert!(
        got.is_some(),
        "dc1 never took token {t1}: {:?}",
        fence_at(&s.dc1)
    );

    // Controller 1's next renewal is held on the way; it is paused with it in flight.
    link.hold(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)));
    let got = poll(WAIT, || (link.held() > 0).then_some(()));
    assert!(got.is_some(), "controller 1 sent no renewal");
    signal(c1, "STOP");
    // Controller 2 leads once controller 1's etcd lease ran out, and renews with its token.
    wait_log(&log2, "leading plan web", Duration::from_secs(10));
    let t2 = leader_token(&log2);
    assert!(t2 > t1, "tokens {t1} then {t2}");
    let got = poll(WAIT, || fence_at(&s.dc1).filter(|f| f.0 == t2));
    assert!(
        got.is_some(),
        "dc1 never took token {t2}: {:?}",
        fence_at(&s.dc1)
    );

    // The stale renewal arrives now: refused, and dc1 keeps token t2 and its route.
    link.release();
    let got = poll(WAIT, || fence_at(&s.dc1).filter(|f| f.1 >= 1));
    assert_eq!(got.map(|f| f.0), Some(t2), "{:?}", fence_at(&s.dc1));
    let refusal = format!("refused: fence web holds token {t2}, offered {t1}");
    let got = poll(WAIT, || s.dc1.log().contains(&refusal).then_some(()));
    assert!(got.is_some(), "no audit line {refusal:?}:\n{}", s.dc1.log());
    signal(c1, "CONT");
    wait_log(&log1, "no longer leading plan web", WAIT);
    // Nothing moved at the observer, sampled for two renewal intervals while both run.
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        assert_eq!(s.observed(), vec![IpAddr::V4(NH1)]);
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, refused) = fence_at(&s.dc1).unwrap();
    assert!(refused >= 1);
}

#[test]
fn a_leader_cut_off_from_etcd_stops_renewing_once_its_etcd_lease_ran_out_and_its_site_withdraws() {
    if !can_run("controller_ha") {
        return;
    }
    let lab = Lab::new("haloss");
    let c = EtcdCluster::start(&lab, 3);
    let s = sites(41);
    s.dc1.cli_ok(&[
        "announce",
        SUBNET,
        "--next-hop",
        &NH1.to_string(),
        "--lease",
        "3",
    ]);
    // dc1's API is reached through site 1's network: cut with it.
    let link = HoldingLink::start(
        &c.members[0].ns,
        "192.0.2.1:8080".parse().unwrap(),
        s.dc1.api(),
    );
    let dir = lab.tempdir("run");
    let dc1 = format!("api = \"{}\"\nlease_secs = 3", link.url());
    let plan = s.plan_with(&dir, &dc1, "");
    let ttl = ["--etcd-ttl-secs", "2"];
    let (_c1, log1) = controller_with(&lab, &c, 0, &plan, &dir, &ttl);
    wait_log(&log1, "leading plan web", WAIT);
    let (_c2, log2) = controller_with(&lab, &c, 1, &plan, &dir, &ttl);
    wait_log(&log2, "following", WAIT);
    let renewals = || s.dc1.log().matches("audit: lease renew by").count();
    let got = poll(WAIT, || (renewals() >= 2).then_some(()));
    assert!(got.is_some(), "the keeper does not renew at dc1");

    // Site 1 (etcd member, leader, the path to dc1's API) is cut off from the others.
    let cut = Instant::now();
    c.cut(0);
    // Its etcd lease is valid at most TTL (2 s) past the cut; a renewal started just before
    // that may take its 1 s timeout: none may reach dc1 after 3.2 s. Withdrawn by dc1
    // itself: the observer loses the subnet when the last lease runs out.
    let mut at_expiry = None;
    let mut gone = None;
    while cut.elapsed() < Duration::from_secs(10) && (gone.is_none() || at_expiry.is_none()) {
        if at_expiry.is_none() && cut.elapsed() >= Duration::from_millis(3200) {
            at_expiry = Some(renewals());
        }
        if gone.is_none() && s.observed().is_empty() {
            gone = Some(cut.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let gone = gone.unwrap_or_else(|| panic!("observer still sees {:?}", s.observed()));
    let at_expiry = at_expiry.unwrap();
    wait_log(&log1, "no longer leading plan web", Duration::from_secs(10));
    eprintln!(
        "etcd lost at the leader: dc1 withdrew {} ms after the cut (etcd TTL 2 s + lease 3 s); the leader said it stopped leading after {} ms",
        gone.as_millis(),
        cut.elapsed().as_millis()
    );
    // TTL, a renewal sent just before it ended landing within its 1 s timeout, the lease,
    // and 0.5 s for the speaker's expiry and the observer.
    assert!(
        gone < Duration::from_millis(2000 + 1000 + 3000 + 500),
        "{gone:?}"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        renewals(),
        at_expiry,
        "renewed at dc1 after its etcd lease ran out"
    );
    assert!(s.dc2.cli_ok(&["routes", "--json"]).stdout.trim() == "[]");
    // Controller 2 leads on the majority side, and cannot reach dc1: nothing comes back.
    wait_log(&log2, "leading plan web", WAIT);
    std::thread::sleep(Duration::from_secs(1));
    assert!(s.observed().is_empty(), "{:?}", s.observed());
    // Site 1 back: etcd has its quorum of three again; dc1 stays withdrawn (no renewal
    // brings back a route whose lease ran out: the operator fails over or announces).
    c.heal(0);
    c.wait_healthy(Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(2));
    assert!(s.observed().is_empty(), "{:?}", s.observed());
}

/// Per-step overhead of the etcd store against the state directory: the two journal
/// records of a step (started, done), appended as a run appends them (etcd: a transaction
/// guarded by the plan lock; file: write and fsync). Run once for docs/benchmarks.md:
/// `cargo nextest run --test controller_ha --run-ignored only --no-capture journal_append`.
#[test]
#[ignore]
fn journal_append_per_step_file_against_etcd() {
    use ferry::controller::journal::{Direction, Journal, Mode, Record};
    use ferry::controller::lock::Holder;
    use ferry::controller::store::{EtcdAuth, Store, StoreSpec};
    if !can_run("controller_ha") {
        return;
    }
    const STEPS: usize = 200;
    let lab = Lab::new("habench");
    let c = EtcdCluster::start(&lab, 3);
    let dir = lab.tempdir("file");
    let started = |run_id: &str| Record::RunStarted {
        run_id: run_id.into(),
        plan: "web".into(),
        direction: Direction::Failover,
        mode: Mode::Planned,
        steps: (0..STEPS).map(|i| format!("s{i}")).collect(),
        by: Holder::me("bench"),
        plan_text: String::new(),
    };
    let steps = |j: &mut Journal| -> Vec<Duration> {
        (0..STEPS)
            .map(|i| {
                let t = Instant::now();
                j.append(Record::StepStarted {
                    step: i,
                    name: format!("s{i}"),
                })
                .unwrap();
                j.append(Record::StepDone {
                    step: i,
                    ms: 0,
                    note: None,
                })
                .unwrap();
                t.elapsed()
            })
            .collect()
    };
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let mut file = Journal::create(&dir.join("1-web-failover.jsonl")).unwrap();
    file.append(started("1-web-failover")).unwrap();
    let file_ms = median(steps(&mut file));
    let spec = StoreSpec::parse(
        Some(&c.url()),
        Path::new("/nonexistent"),
        EtcdAuth::default(),
        5,
    )
    .unwrap();
    let etcd_ms = in_netns(&c.members[0].ns, || {
        let store = spec.open().unwrap();
        let Store::Etcd(_) = &store else {
            panic!("not etcd")
        };
        let lock = store.lock("web", &Holder::me("bench")).unwrap();
        let mut j = store
            .create_journal("web", "2-web-failover", &lock)
            .unwrap();
        j.append(started("2-web-failover")).unwrap();
        median(steps(&mut j))
    });
    eprintln!(
        "per step (2 records), median of {STEPS}: file {:.2} ms, etcd (3 members, lock-guarded txn) {:.2} ms, overhead {:.2} ms, ratio {:.1}",
        file_ms.as_secs_f64() * 1e3,
        etcd_ms.as_secs_f64() * 1e3,
        (etcd_ms.as_secs_f64() - file_ms.as_secs_f64()) * 1e3,
        etcd_ms.as_secs_f64() / file_ms.as_secs_f64()
    );
}

#[test]
fn auto_failover_by_quorum_when_the_primary_is_cut_off_never_shows_both_sites() {
    if !can_run("controller_ha") {
        return;
    }
    let lab = Lab::new("haauto");
    let c = EtcdCluster::start(&lab, 3);
    let s = sites(51);
    s.dc1.cli_ok(&[
        "announce",
        SUBNET,
        "--next-hop",
        &NH1.to_string(),
        "--lease",
        "3",
    ]);
    // dc1's API is reached through site 1's network: the cut takes it away with the site.
    let link = HoldingLink::start(
        &c.members[0].ns,
        "192.0.2.1:8080".parse().unwrap(),
        s.dc1.api(),
    );
    let dir = lab.tempdir("run");
    let dc1 = format!("api = \"{}\"\nlease_secs = 3", link.url());
    let auto = "\n[auto]\nafter_secs = 2\ninterval_ms = 200\nmargin_ms = 500\n";
    let plan = s.plan_with(&dir, &dc1, auto);
    // The default etcd TTL (5 s): with 2 s, the etcd election that the cut of a raft leader
    // starts can outlast the controller's lease, and a leader that leads anew knows nothing
    // of its earlier renewals, so it waits a whole lease from its new leadership.
    let at = |site: &'static str| ["--site", site];
    let (_c2, log2) = controller_with(&lab, &c, 1, &plan, &dir, &at("dc2"));
    wait_log(&log2, "leading plan web", WAIT);
    let (_c1, log1) = controller_with(&lab, &c, 0, &plan, &dir, &at("dc1"));
    let (_c3, log3) = controller_with(&lab, &c, 2, &plan, &dir, &at("obs"));
    wait_log(&log1, "following", WAIT);
    wait_log(&log2, "auto: dc1 is up", WAIT);
    wait_log(&log3, "auto: dc1 is up", WAIT);
    let renewed = poll(WAIT, || {
        s.dc1.log().contains("audit: lease renew by").then_some(())
    });
    assert!(renewed.is_some(), "the leader does not renew at dc1");
    // A leadership older than one renewal's timeout (1 s), as in production: the wait is
    // then bound by its own last renewal at dc1, not by what an older leader may have sent.
    std::thread::sleep(Duration::from_millis(1500));

    // The primary site (its etcd member, controller and the path to its speaker's API) is
    // cut off; its speaker keeps its BGP session with the observer.
    let cut = Instant::now();
    let cut_ms = now_ms();
    c.cut(0);
    let mut samples: Vec<(Duration, Vec<IpAddr>)> = Vec::new();
    let (v1, v2) = (IpAddr::V4(NH1), IpAddr::V4(NH2));
    while cut.elapsed() < Duration::from_secs(30) {
        let seen = s.observed();
        let done = seen == vec![v2];
        samples.push((cut.elapsed(), seen));
        if done {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let both: Vec<_> = samples
        .iter()
        .filter(|(_, s)| s.contains(&v1) && s.contains(&v2))
        .collect();
    assert!(both.is_empty(), "both sites at the observer: {both:?}");
    let gone = samples
        .iter()
        .find(|(_, s)| !s.contains(&v1))
        .map(|(t, _)| *t)
        .unwrap_or_else(|| {
            panic!(
                "dc1 never withdrew:\n{}",
                std::fs::read_to_string(&log2).unwrap()
            )
        });
    let recovered = samples
        .iter()
        .find(|(_, s)| s.contains(&v2))
        .map(|(t, _)| *t)
        .unwrap_or_else(|| {
            panic!(
                "dc2 never announced:\n{}",
                std::fs::read_to_string(&log2).unwrap()
            )
        });
    eprintln!(
        "auto failover by quorum: dc1 withdrew {} ms after the cut (lease 3 s), dc2 at the observer {} ms after the cut (target after_secs 2 + lease 3 + < 1 s), {} samples",
        gone.as_millis(),
        recovered.as_millis(),
        samples.len()
    );
    assert!(gone <= Duration::from_millis(3000 + 1000), "{gone:?}");
    assert!(recovered > gone);

    // The decision, with who saw what, is in the run's journal and in history.
    let records = finished_journal(&c, 1);
    let timeline: Vec<String> = records
        .iter()
        .map(|r| {
            format!(
                "{} {} +{} ms",
                r["record"].as_str().unwrap_or("?"),
                r["name"].as_str().unwrap_or(""),
                r["at_ms"].as_u64().unwrap_or(0).saturating_sub(cut_ms)
            )
        })
        .collect();
    eprintln!("the run, from the cut: {}", timeline.join(", "));
    if std::env::var_os("FERRY_HA_LOG").is_some() {
        eprintln!("{}", std::fs::read_to_string(&log2).unwrap_or_default());
    }
    // The announce waited for dc1's leases as the keeper's renewals bound them (the last one
    // that reached dc1, before the cut, plus the lease and margin), not a whole lease, a
    // renewal's timeout and the margin counted from the decision.
    let at = |record: &str, name: &str| {
        records
            .iter()
            .find(|r| r["record"] == record && r["name"].as_str().unwrap_or("") == name)
            .and_then(|r| r["at_ms"].as_u64())
            .unwrap_or_else(|| panic!("no {record} {name}: {timeline:?}"))
    };
    let conservative = at("run_started", "") + 3_000 + 1_000 + 500;
    assert!(
        at("step_started", "announce web") + 1_000 < conservative,
        "the announce waited the whole conservative wait: {timeline:?}\n{}",
        std::fs::read_to_string(&log2).unwrap_or_default()
    );
    let by = records[0]["by"]["doing"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        by.contains("auto failover web by quorum (2 of 2"),
        "{records:#?}"
    );
    assert!(by.contains("dc2 saw dc1 down since") && by.contains("obs saw dc1 down since"));
    assert_eq!(records[0]["mode"], "unplanned");
    let last = records.last().unwrap();
    assert_eq!(last["record"], "run_finished", "{records:#?}");
    assert_eq!(last["active"], "dc2");
    let run_id = records[0]["run_id"].as_str().unwrap();
    let out = ferry_in(
        &c.members[1].ns,
        &["failover", "history", "--run", run_id, "--store", &c.url()],
        WAIT,
    );
    assert!(
        out.stdout.contains("auto failover web by quorum"),
        "{out:?}"
    );
}

#[test]
fn auto_failover_by_quorum_when_the_primarys_vm_check_fails_withdraws_before_announcing() {
    if !can_run("controller_ha") {
        return;
    }
    let lab = Lab::new("haautovm");
    let c = EtcdCluster::start(&lab, 3);
    let s = sites(61);
    s.dc1.cli_ok(&[
        "announce",
        SUBNET,
        "--next-hop",
        &NH1.to_string(),
        "--lease",
        "3",
    ]);
    let dir = lab.tempdir("run");
    let vm = dir.join("vm-up");
    std::fs::write(&vm, "").unwrap();
    let dc1 = format!("api = \"{}\"\nlease_secs = 3", s.dc1.api().display());
    let auto = format!(
        "\n[auto]\nafter_secs = 1\ninterval_ms = 200\nmargin_ms = 300\n[[auto.check]]\nname = \"vm-dc1\"\ncommand = [\"test\", \"-e\", \"{}\"]\n",
        vm.display()
    );
    // The etcd members from the plan's [store] table: no --store on the controllers.
    let members: Vec<String> = c
        .url()
        .trim_start_matches("etcd://")
        .split(',')
        .map(|m| format!("{m:?}"))
        .collect();
    let store = format!("\n[store]\netcd = [{}]\nttl_secs = 2\n", members.join(", "));
    let plan = s.plan_with(&dir, &dc1, &format!("{auto}{store}"));
    let at = |site: &'static str| ["--site", site];
    let (_c2, log2) = controller_by_plan(&lab, &c, 1, &plan, &dir, &at("dc2"));
    wait_log(&log2, "leading plan web", WAIT);
    assert!(
        log_has(&log2, "etcd http://192.0.2."),
        "{}",
        std::fs::read_to_string(&log2).unwrap_or_default()
    );
    let (_c3, log3) = controller_by_plan(&lab, &c, 2, &plan, &dir, &at("obs"));
    wait_log(&log2, "auto: dc1 is up", WAIT);
    wait_log(&log3, "auto: dc1 is up", WAIT);

    // The primary's VM stops answering its check; its speaker is fine and reachable.
    let failed = Instant::now();
    std::fs::remove_file(&vm).unwrap();
    let (v1, v2) = (IpAddr::V4(NH1), IpAddr::V4(NH2));
    let mut samples: Vec<(Duration, Vec<IpAddr>)> = Vec::new();
    while failed.elapsed() < Duration::from_secs(25) {
        let seen = s.observed();
        let done = seen == vec![v2];
        samples.push((failed.elapsed(), seen));
        if done {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let both: Vec<_> = samples
        .iter()
        .filter(|(_, s)| s.contains(&v1) && s.contains(&v2))
        .collect();
    assert!(both.is_empty(), "both sites at the observer: {both:?}");
    let recovered = samples
        .iter()
        .find(|(_, s)| s.contains(&v2))
        .map(|(t, _)| *t);
    assert!(
        recovered.is_some(),
        "dc2 never announced:\n{}",
        std::fs::read_to_string(&log2).unwrap()
    );
    let records = finished_journal(&c, 1);
    let by = records[0]["by"]["doing"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(by.contains("check vm-dc1"), "{by}");
    assert_eq!(records.last().unwrap()["active"], "dc2", "{records:#?}");
    assert!(s.dc1.cli_ok(&["routes", "--json"]).stdout.trim() == "[]");
}
