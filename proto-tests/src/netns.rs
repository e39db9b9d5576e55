//! Network namespaces, veth pairs and a [`Lab`] guard that removes everything it created.
//!
//! Everything a test creates is named from one per-process prefix, `fit-<test>-<pid>`, so that
//! tests running in parallel processes (nextest) never collide:
//!
//! * namespaces: `<prefix>-<name>` (e.g. `fit-frrbird-4242-a`);
//! * interfaces are created directly inside their namespaces (never in the root namespace), so
//!   their names only have to be unique per namespace; they are short (`v<n>-<peer>`, <= 15
//!   characters);
//! * temporary directories: `$TMPDIR/<prefix>-<name>`.
//!
//! [`Lab`]'s `Drop` (which also runs while a failing test unwinds) stops the processes it spawned
//! (by PID: SIGTERM, then SIGKILL), kills whatever is still running inside its own namespaces,
//! deletes the namespaces and removes the temporary directories (kept when `FIT_KEEP=1`).
//! Namespaces left behind by a test process that was killed (`fit-*-<pid>-*` where `<pid>` is
//! no longer running) are removed by the next [`Lab::new`].

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Whether this process can run namespace tests: root and `ip` present. Prints a clear
/// "skipped" line (to stderr, visible with `--nocapture` / nextest's output) and returns false
/// otherwise. Set `FIT_REQUIRE=1` to turn a skip into a panic (so CI cannot silently skip).
///
/// ```no_run
/// if !proto_tests::netns::can_run("frr_bird") { return; }
/// ```
pub fn can_run(test: &str) -> bool {
    let reason = if !is_root() {
        Some("not running as root".to_string())
    } else if !program_exists("ip") {
        Some("the `ip` command (iproute2) is missing".to_string())
    } else {
        None
    };
    match reason {
        None => true,
        Some(r) => {
            if std::env::var("FIT_REQUIRE").is_ok_and(|v| v == "1") {
                panic!("{test}: cannot run interop test: {r} (FIT_REQUIRE=1)");
            }
            eprintln!("SKIPPED {test}: {r}; interop tests need root and network namespaces");
            false
        }
    }
}

/// Like [`can_run`], and also requires each of `programs` (looked up in PATH or as a path).
pub fn can_run_with(test: &str, programs: &[&str]) -> bool {
    if !can_run(test) {
        return false;
    }
    for p in programs {
        if !program_exists(p) {
            if std::env::var("FIT_REQUIRE").is_ok_and(|v| v == "1") {
                panic!("{test}: `{p}` is missing (FIT_REQUIRE=1)");
            }
            eprintln!("SKIPPED {test}: `{p}` is not installed");
            return false;
        }
    }
    true
}

fn is_root() -> bool {
    // /proc/self/status: "Uid:\t<real>\t<effective>\t..."
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// Whether `program` is an executable path or found in PATH (plus the sbin directories).
pub fn program_exists(program: &str) -> bool {
    if program.contains('/') {
        return Path::new(program).is_file();
    }
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/lib/frr"])
        .any(|d| Path::new(d).join(program).is_file());
    found
}

/// Runs a command to completion; Ok(stdout) on exit status 0, Err(description with stderr).
pub fn run(cmd: &mut Command) -> Result<String, String> {
    let out: Output = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "{cmd:?}: {}\nstdout: {}\nstderr: {}",
            out.status,
            stdout.trim_end(),
            String::from_utf8_lossy(&out.stderr).trim_end()
        ))
    }
}

/// Like [`run`], panicking on failure.
pub fn run_ok(cmd: &mut Command) -> String {
    run(cmd).unwrap_or_else(|e| panic!("{e}"))
}

/// A network namespace (just its name; the [`Lab`] that created it deletes it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Refers to an existing namespace by its full name.
    pub fn from_name(name: &str) -> Self {
        Netns {
            name: name.to_string(),
        }
    }

    /// Full namespace name (`ip netns exec NAME ...`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command that runs `program` inside this namespace (`ip netns exec NAME program`). The
    /// process keeps the PID of the `ip` process (it execs).
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Runs `program args...` inside the namespace; Ok(stdout) or Err(description).
    pub fn exec(&self, program: &str, args: &[&str]) -> Result<String, String> {
        run(self.command(program).args(args))
    }

    /// Like [`Netns::exec`], panicking on failure.
    pub fn exec_ok(&self, program: &str, args: &[&str]) -> String {
        self.exec(program, args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `ip -n NAME args...` (panics on failure).
    pub fn ip(&self, args: &[&str]) -> String {
        run_ok(Command::new("ip").args(["-n", &self.name]).args(args))
    }

    /// PIDs of the processes running inside the namespace.
    pub fn pids(&self) -> Vec<u32> {
        run(Command::new("ip").args(["netns", "pids", &self.name]))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }

    /// Whether interface `ifname` is operationally up (`LOWER_UP`) inside this namespace.
    pub fn link_up(&self, ifname: &str) -> bool {
        run(Command::new("ip").args(["-n", &self.name, "link", "show", "dev", ifname]))
            .is_ok_and(|o| o.contains("LOWER_UP") && o.contains("state UP"))
    }
}

/// One end of a veth pair.
#[derive(Clone, Debug)]
pub struct VethEnd {
    /// Namespace of this end.
    pub netns: Netns,
    /// Interface name inside that namespace.
    pub ifname: String,
    /// Addresses with prefix length, as given (e.g. `192.0.2.1/24`, `2001:db8::1/64`).
    pub addrs: Vec<String>,
}

impl VethEnd {
    /// The addresses without prefix length.
    pub fn ips(&self) -> Vec<String> {
        self.addrs
            .iter()
            .map(|a| a.split('/').next().unwrap_or(a).to_string())
            .collect()
    }

    /// First IPv4 address without prefix length.
    pub fn ipv4(&self) -> Option<String> {
        self.ips().into_iter().find(|a| !a.contains(':'))
    }

    /// First IPv6 address without prefix length.
    pub fn ipv6(&self) -> Option<String> {
        self.ips().into_iter().find(|a| a.contains(':'))
    }
}

/// A veth pair between two namespaces, both ends up.
#[derive(Clone, Debug)]
pub struct Veth {
    pub a: VethEnd,
    pub b: VethEnd,
}

impl Veth {
    /// Waits until both ends are operationally up (panics after `timeout`).
    pub fn wait_up(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        for end in [&self.a, &self.b] {
            while !end.netns.link_up(&end.ifname) {
                assert!(
                    Instant::now() < deadline,
                    "{} {} not up:\n{}",
                    end.netns.name(),
                    end.ifname,
                    end.netns.ip(&["addr"])
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

struct Spawned {
    what: String,
    child: Child,
}

#[derive(Default)]
struct LabState {
    namespaces: Vec<Netns>,
    children: Vec<Spawned>,
    dirs: Vec<PathBuf>,
    veths: usize,
}

/// Owns namespaces, veth pairs, temporary directories and spawned processes; removes all of it
/// on drop (also while a panic unwinds). Methods take `&self` so that daemons can hold a
/// reference while the test keeps using the lab.
pub struct Lab {
    prefix: String,
    state: RefCell<LabState>,
}

impl Lab {
    /// A lab whose names start with `fit-<short test name>-<pid>`. `test` is shortened to at
    /// most 10 alphanumeric characters. Also removes namespaces left by dead test processes.
    pub fn new(test: &str) -> Lab {
        let short: String = test
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(10)
            .collect::<String>()
            .to_ascii_lowercase();
        let prefix = format!("fit-{short}-{}", std::process::id());
        reap_stale();
        Lab {
            prefix,
            state: RefCell::new(LabState::default()),
        }
    }

    /// The common name prefix (`fit-<test>-<pid>`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Creates namespace `<prefix>-<name>` with `lo` up and IPv6 DAD off.
    pub fn netns(&self, name: &str) -> Netns {
        let ns = Netns {
            name: format!("{}-{name}", self.prefix),
        };
        // a namespace of the same name can only be left by an earlier process with our PID
        let _ = run(Command::new("ip").args(["netns", "del", ns.name()]));
        run_ok(Command::new("ip").args(["netns", "add", ns.name()]));
        self.state.borrow_mut().namespaces.push(ns.clone());
        ns.ip(&["link", "set", "lo", "up"]);
        for key in [
            "net.ipv6.conf.all.accept_dad=0",
            "net.ipv6.conf.default.accept_dad=0",
        ] {
            let _ = ns.exec("sysctl", &["-qw", key]);
        }
        ns
    }

    /// A veth pair between `a` and `b` (created directly inside them), with the given addresses
    /// (`ADDR/LEN`; IPv6 ones get `nodad`), both ends up. Interface names are `v<n>-<other ns
    /// short name>`, cut to 15 characters.
    pub fn veth(&self, a: &Netns, a_addrs: &[&str], b: &Netns, b_addrs: &[&str]) -> Veth {
        let n = {
            let mut st = self.state.borrow_mut();
            st.veths += 1;
            st.veths
        };
        let short = |ns: &Netns| {
            ns.name()
                .strip_prefix(&format!("{}-", self.prefix))
                .unwrap_or(ns.name())
                .to_string()
        };
        let ifname = |other: &Netns| {
            let mut s = format!("v{n}-{}", short(other));
            s.truncate(15);
            s
        };
        let (a_if, b_if) = (ifname(b), ifname(a));
        run_ok(Command::new("ip").args([
            "link",
            "add",
            &a_if,
            "netns",
            a.name(),
            "type",
            "veth",
            "peer",
            "name",
            &b_if,
            "netns",
            b.name(),
        ]));
        for (ns, ifn, addrs) in [(a, &a_if, a_addrs), (b, &b_if, b_addrs)] {
            for addr in addrs {
                if addr.contains(':') {
                    ns.ip(&["addr", "add", addr, "dev", ifn, "nodad"]);
                } else {
                    ns.ip(&["addr", "add", addr, "dev", ifn]);
                }
            }
            ns.ip(&["link", "set", ifn, "up"]);
        }
        // (pair() and callers wait with Veth::wait_up)
        let end = |ns: &Netns, ifn: &str, addrs: &[&str]| VethEnd {
            netns: ns.clone(),
            ifname: ifn.to_string(),
            addrs: addrs.iter().map(|s| s.to_string()).collect(),
        };
        Veth {
            a: end(a, &a_if, a_addrs),
            b: end(b, &b_if, b_addrs),
        }
    }

    /// Two fresh namespaces `a` and `b` joined by a veth with 192.0.2.1/24 + 2001:db8::1/64 (a)
    /// and 192.0.2.2/24 + 2001:db8::2/64 (b); waits until both ends are up.
    pub fn pair(&self) -> (Netns, Netns, Veth) {
        let a = self.netns("a");
        let b = self.netns("b");
        let v = self.veth(
            &a,
            &["192.0.2.1/24", "2001:db8::1/64"],
            &b,
            &["192.0.2.2/24", "2001:db8::2/64"],
        );
        v.wait_up(Duration::from_secs(5));
        (a, b, v)
    }

    /// A fresh directory `$TMPDIR/<prefix>-<name>` (mode 0755), removed on drop.
    pub fn tempdir(&self, name: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("{}-{name}", self.prefix));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        self.state.borrow_mut().dirs.push(dir.clone());
        dir
    }

    /// Spawns `cmd` (usually from [`Netns::command`]) with stdin from /dev/null and stdout and
    /// stderr appended to `log`; the lab stops it on drop. Returns the PID.
    pub fn spawn(&self, what: &str, mut cmd: Command, log: &Path) -> u32 {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let err = out.try_clone().expect("dup log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("{what}: cannot start {cmd:?}: {e}"));
        let pid = child.id();
        self.state.borrow_mut().children.push(Spawned {
            what: what.to_string(),
            child,
        });
        pid
    }

    /// Whether the spawned process `pid` is still running (false once it exited).
    pub fn is_running(&self, pid: u32) -> bool {
        let mut st = self.state.borrow_mut();
        st.children
            .iter_mut()
            .find(|s| s.child.id() == pid)
            .is_some_and(|s| matches!(s.child.try_wait(), Ok(None)))
    }

    /// Exit status of spawned process `pid` if it has exited ("exit status: 1").
    pub fn exit_status(&self, pid: u32) -> Option<String> {
        let mut st = self.state.borrow_mut();
        st.children
            .iter_mut()
            .find(|s| s.child.id() == pid)
            .and_then(|s| s.child.try_wait().ok().flatten())
            .map(|s| s.to_string())
    }

    /// Stops spawned process `pid` now (SIGTERM, SIGKILL after 3 s) and reaps it.
    pub fn stop(&self, pid: u32) {
        let mut st = self.state.borrow_mut();
        if let Some(i) = st.children.iter().position(|s| s.child.id() == pid) {
            let mut s = st.children.remove(i);
            stop_child(&mut s);
        }
    }

    /// Names of the namespaces this lab created (and has not removed yet).
    pub fn namespaces(&self) -> Vec<String> {
        self.state
            .borrow()
            .namespaces
            .iter()
            .map(|n| n.name.clone())
            .collect()
    }

    /// PIDs of the processes this lab spawned that are still running.
    pub fn running_pids(&self) -> Vec<u32> {
        let mut st = self.state.borrow_mut();
        st.children
            .iter_mut()
            .filter_map(|s| matches!(s.child.try_wait(), Ok(None)).then(|| s.child.id()))
            .collect()
    }

    /// Removes everything now (what `Drop` does). Idempotent.
    pub fn teardown(&self) {
        let mut st = self.state.borrow_mut();
        // SIGTERM to all first, so the daemons shut down in parallel
        for s in st.children.iter_mut() {
            if matches!(s.child.try_wait(), Ok(None)) {
                signal(s.child.id(), "TERM");
            }
        }
        for s in st.children.iter_mut() {
            stop_child(s);
        }
        st.children.clear();
        // processes left inside our namespaces (daemon helpers, forks)
        for ns in &st.namespaces {
            let pids = ns.pids();
            for p in &pids {
                signal(*p, "KILL");
            }
        }
        for ns in st.namespaces.drain(..) {
            let mut ok = false;
            for _ in 0..20 {
                if run(Command::new("ip").args(["netns", "del", ns.name()])).is_ok() {
                    ok = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if !ok {
                eprintln!("lab teardown: could not delete namespace {}", ns.name());
            }
        }
        let keep = std::env::var("FIT_KEEP").is_ok_and(|v| v == "1");
        for d in st.dirs.drain(..) {
            if keep {
                eprintln!("lab teardown: keeping {}", d.display());
            } else {
                let _ = std::fs::remove_dir_all(&d);
            }
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.teardown();
    }
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn stop_child(s: &mut Spawned) {
    if matches!(s.child.try_wait(), Ok(Some(_))) {
        return;
    }
    signal(s.child.id(), "TERM");
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if matches!(s.child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "lab: {} (pid {}) ignored SIGTERM; killing",
        s.what,
        s.child.id()
    );
    let _ = s.child.kill();
    let _ = s.child.wait();
}

/// Deletes namespaces `fit-<x>-<pid>-<name>` whose test process `<pid>` is gone.
fn reap_stale() {
    let Ok(list) = run(Command::new("ip").args(["netns", "list"])) else {
        return;
    };
    for line in list.lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let parts: Vec<&str> = name.split('-').collect();
        if parts.len() < 4 || parts[0] != "fit" {
            continue;
        }
        let Ok(pid) = parts[2].parse::<u32>() else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let ns = Netns::from_name(name);
        for p in ns.pids() {
            signal(p, "KILL");
        }
        let _ = run(Command::new("ip").args(["netns", "del", name]));
        eprintln!("lab: removed stale namespace {name}");
    }
}
