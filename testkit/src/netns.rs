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
//!
//! The free functions ([`create`], [`veth`], [`address`], [`destroy`], ...) work on namespaces
//! by name for callers whose namespaces outlive the process (`ferry lab up` / `down`); they
//! return errors instead of panicking. Never does: add a link, address or route to the root
//! namespace.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cmd::{run, run_ok, run_timeout, Failed};
use crate::poll::poll_every;
use crate::signal::{signal, stop_child};

/// Whether namespace `ns` exists.
pub fn exists(ns: &str) -> bool {
    Path::new("/run/netns").join(ns).exists()
}

/// `ip ARGS...` with a 10 s timeout.
pub fn ip(args: &[&str]) -> Result<String, Failed> {
    run_timeout(Command::new("ip").args(args), Duration::from_secs(10))
}

/// The namespaces whose names start with `prefix` that exist now.
pub fn list(prefix: &str) -> Result<Vec<String>, Failed> {
    Ok(ip(&["netns", "list"])?
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(str::to_owned)
        .collect())
}

/// Creates namespace `ns` unless it exists, and sets its `lo` up.
pub fn create(ns: &str) -> Result<(), Failed> {
    if !exists(ns) {
        ip(&["netns", "add", ns])?;
    }
    ip(&["-n", ns, "link", "set", "lo", "up"])?;
    Ok(())
}

/// A veth pair created directly inside its two namespaces (never in the root namespace).
pub fn veth(ns_a: &str, if_a: &str, ns_b: &str, if_b: &str) -> Result<(), Failed> {
    ip(&[
        "link", "add", if_a, "netns", ns_a, "type", "veth", "peer", "name", if_b, "netns", ns_b,
    ])?;
    Ok(())
}

/// Adds `addr` (`ADDR/LEN`) to `ifname`; an IPv6 address gets `nodad`, usable at once.
pub fn address(ns: &str, ifname: &str, addr: &str) -> Result<(), Failed> {
    let mut args = vec!["-n", ns, "addr", "add", addr, "dev", ifname];
    if addr.contains(':') {
        args.push("nodad");
    }
    ip(&args)?;
    Ok(())
}

/// Sets `ifname` in `ns` up.
pub fn up(ns: &str, ifname: &str) -> Result<(), Failed> {
    ip(&["-n", ns, "link", "set", ifname, "up"])?;
    Ok(())
}

/// Replaces the default route of `via`'s family in `ns`.
pub fn default_route(ns: &str, via: &std::net::IpAddr) -> Result<(), Failed> {
    let v = via.to_string();
    let family = if via.is_ipv6() { "-6" } else { "-4" };
    ip(&["-n", ns, family, "route", "replace", "default", "via", &v])?;
    Ok(())
}

/// Pids of every process in namespace `ns`.
pub fn pids(ns: &str) -> Vec<u32> {
    ip(&["netns", "pids", ns])
        .map(|out| {
            out.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Stops every process in `ns` (SIGTERM, SIGKILL after 3 s; they are the caller's: the
/// namespace is), then deletes it. A namespace that does not exist is fine.
pub fn destroy(ns: &str) -> Result<(), Failed> {
    if !exists(ns) {
        return Ok(());
    }
    for pid in pids(ns) {
        signal(pid, "TERM");
    }
    let every = Duration::from_millis(20);
    if !poll_every(Duration::from_secs(3), every, || pids(ns).is_empty()) {
        for pid in pids(ns) {
            signal(pid, "KILL");
        }
        poll_every(Duration::from_secs(2), every, || pids(ns).is_empty());
    }
    ip(&["netns", "del", ns])?;
    Ok(())
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

    /// A TCP listener bound to `addr` inside this namespace, owned by the calling test (a
    /// socket stays in the namespace it was created in): a thread enters the namespace
    /// (setns), binds and ends. Drop the listener to make the address refuse connections.
    pub fn tcp_listener(
        &self,
        addr: std::net::SocketAddr,
    ) -> Result<std::net::TcpListener, String> {
        let path = Path::new("/run/netns").join(&self.name);
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("setns {}: {e}", path.display()))?;
            std::net::TcpListener::bind(addr).map_err(|e| format!("bind {addr}: {e}"))
        })
        .join()
        .map_err(|_| "the setns thread panicked".to_string())?
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
        pids(&self.name)
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

/// How long a spawned process has between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(3);

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
        let must = |r: Result<(), Failed>| r.unwrap_or_else(|e| panic!("{e}"));
        must(veth(a.name(), &a_if, b.name(), &b_if));
        for (ns, ifn, addrs) in [(a, &a_if, a_addrs), (b, &b_if, b_addrs)] {
            for addr in addrs {
                must(address(ns.name(), ifn, addr));
            }
            must(up(ns.name(), ifn));
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

    /// A fresh directory for daemon `kind` in `ns`: `<prefix>-<kind>-<ns short name>`.
    pub fn daemon_dir(&self, kind: &str, ns: &Netns) -> PathBuf {
        let tag = ns.name().rsplit('-').next().unwrap_or("x");
        self.tempdir(&format!("{kind}-{tag}"))
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
            stop_child(&s.what, &mut s.child, STOP_GRACE);
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
            stop_child(&s.what, &mut s.child, STOP_GRACE);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_removes_its_namespaces_on_drop_also_while_a_test_panics() {
        if !crate::root::can_run("kit_lab_drop") {
            return;
        }
        let names = {
            let lab = Lab::new("kitdrop");
            let (a, b, v) = lab.pair();
            assert!(exists(a.name()) && exists(b.name()));
            assert!(a.link_up(&v.a.ifname));
            lab.namespaces()
        };
        assert!(names.iter().all(|n| !exists(n)), "{names:?} left behind");

        let created = std::sync::Mutex::new(Vec::new());
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let lab = Lab::new("kitpanic");
            let ns = lab.netns("a");
            created.lock().unwrap().push(ns.name().to_string());
            panic!("a failing test");
        }));
        assert!(r.is_err());
        let created = created.into_inner().unwrap();
        assert_eq!(created.len(), 1);
        assert!(!exists(&created[0]), "{} left behind", created[0]);
    }
}
