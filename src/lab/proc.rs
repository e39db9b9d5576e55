//! Running commands and processes for the lab, on the test kit's helpers (`testkit::cmd`,
//! `testkit::signal`, `testkit::poll`) with the lab's error type: every command has a timeout,
//! every process started in a namespace goes through `ip netns exec` (which execs, so the
//! child's pid is the program's).
//! Never does: signal a process it was not given the pid of.

use std::process::{Child, Command};
use std::time::Duration;

pub use testkit::poll::poll_every as poll;
pub use testkit::signal::{alive, read_pid, signal, stop, wait_gone};

use super::{LabError, Result};

/// Run a command to completion within `timeout`; returns stdout. The error carries stderr.
pub fn run(cmd: &mut Command, timeout: Duration) -> Result<String> {
    testkit::cmd::run_timeout(cmd, timeout).map_err(LabError::command)
}

/// `ip` with arguments, 10 s timeout.
pub fn ip(args: &[&str]) -> Result<String> {
    testkit::netns::ip(args).map_err(LabError::command)
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
    testkit::signal::spawn_own_group(cmd)
        .map_err(|e| LabError::step(format!("{cmd:?}").replace('"', ""), e))
}
