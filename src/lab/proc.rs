//! Running commands and processes: every command has a timeout, every process started in a
//! namespace goes through `ip netns exec` (which execs, so the child's pid is the program's).
//! Never does: signal a process it was not given the pid of.

use std::io::Read as _;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{LabError, Result};

/// Run a command to completion within `timeout`; returns stdout. The error carries stderr.
pub fn run(cmd: &mut Command, timeout: Duration) -> Result<String> {
    let what = format!("{cmd:?}").replace('"', "");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| LabError::step(&what, e))?;
    let pid = child.id();
    let (mut out, mut err) = (child.stdout.take(), child.stderr.take());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut o = String::new();
        let mut e = String::new();
        let errs = std::thread::spawn(move || {
            if let Some(s) = err.as_mut() {
                let _ = s.read_to_string(&mut e);
            }
            e
        });
        if let Some(s) = out.as_mut() {
            let _ = s.read_to_string(&mut o);
        }
        let e = errs.join().unwrap_or_default();
        let status = child.wait();
        let _ = tx.send((status, o, e));
    });
    match rx.recv_timeout(timeout) {
        Ok((Ok(status), out, _)) if status.success() => Ok(out),
        Ok((Ok(status), out, err)) => Err(LabError::step(
            what,
            format!("{status}: {}{}", err.trim(), out.trim()),
        )),
        Ok((Err(e), _, _)) => Err(LabError::step(what, e)),
        Err(_) => {
            signal(pid, "KILL");
            Err(LabError::step(
                what,
                format!("did not finish within {} s", timeout.as_secs_f32()),
            ))
        }
    }
}

/// `ip` with arguments, 10 s timeout.
pub fn ip(args: &[&str]) -> Result<String> {
    run(Command::new("ip").args(args), Duration::from_secs(10))
}

/// A command that runs `program` inside namespace `ns`.
pub fn in_ns(ns: &str, program: &str) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns, program]);
    // FRR and `ip -ts` print local time; the lab parses their timestamps as UTC.
    c.env("TZ", "UTC");
    c
}

/// Spawn a long-lived process in its own process group (a Ctrl-C at the terminal reaches the
/// lab, which stops it, not the process directly).
pub fn spawn(cmd: &mut Command) -> Result<Child> {
    use std::os::unix::process::CommandExt as _;
    cmd.process_group(0)
        .spawn()
        .map_err(|e| LabError::step(format!("{cmd:?}").replace('"', ""), e))
}

/// The process exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
        Err(_) => false,
    }
}

pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// SIGTERM, wait up to `grace`, then SIGKILL; returns once the process is gone (or 2 s more).
pub fn stop(pid: u32, grace: Duration) {
    if !alive(pid) {
        return;
    }
    signal(pid, "TERM");
    if wait_gone(pid, grace) {
        return;
    }
    signal(pid, "KILL");
    wait_gone(pid, Duration::from_secs(2));
}

pub fn wait_gone(pid: u32, timeout: Duration) -> bool {
    poll(timeout, Duration::from_millis(10), || !alive(pid))
}

/// Poll `f` every `every` until it holds or `timeout` passes.
pub fn poll(timeout: Duration, every: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(every);
    }
}

/// Read a pid file (FRR writes them once daemonized).
pub fn read_pid(path: &std::path::Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}
