//! Signals and stops by pid: only processes the caller started or was given the pid of (a pid
//! file it wrote, a child it spawned); never by name. Long-lived processes may be spawned in a
//! process group of their own, so a Ctrl-C at the terminal reaches the caller, which stops
//! them, and not the processes directly.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::poll::poll_every;

/// Sends `sig` ("TERM", "KILL", ...) to `pid` with kill(1); a process already gone is fine.
pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
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

/// Whether `pid` is gone within `timeout`.
pub fn wait_gone(pid: u32, timeout: Duration) -> bool {
    poll_every(timeout, Duration::from_millis(10), || !alive(pid))
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

/// Stops a child of ours: SIGTERM, SIGKILL after `grace`, reaped either way. Says on stderr
/// when `what` ignored SIGTERM.
pub fn stop_child(what: &str, child: &mut Child, grace: Duration) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    signal(child.id(), "TERM");
    if poll_every(grace, Duration::from_millis(50), || {
        matches!(child.try_wait(), Ok(Some(_)))
    }) {
        return;
    }
    eprintln!("lab: {what} (pid {}) ignored SIGTERM; killing", child.id());
    let _ = child.kill();
    let _ = child.wait();
}

/// Spawns a long-lived process in a process group of its own.
pub fn spawn_own_group(cmd: &mut Command) -> std::io::Result<Child> {
    use std::os::unix::process::CommandExt as _;
    cmd.process_group(0).spawn()
}

/// Reads a pid file (FRR writes them once daemonized).
pub fn read_pid(path: &std::path::Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_a_child_of_ours() {
        let mut child = Command::new("sleep").arg("30").spawn().expect("sleep");
        let pid = child.id();
        assert!(alive(pid));
        stop_child("sleep", &mut child, Duration::from_secs(3));
        assert!(!alive(pid));
    }
}
