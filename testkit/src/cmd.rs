//! Running a command to completion: its stdout on success, and on failure an error naming the
//! command with its status and stderr. [`run_timeout`] kills a command that outlives its
//! deadline.
//!
//! Never does: pass stdin through (it is /dev/null), or leave a timed-out command running.

use std::io::Read as _;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A command that failed: which one, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    /// The command line, quotes removed.
    pub command: String,
    /// Exit status with stderr and stdout, or why it did not run.
    pub detail: String,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.command, self.detail)
    }
}

impl std::error::Error for Failed {}

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

/// Runs a command to completion within `timeout`; returns stdout. After the timeout the
/// command is killed (SIGKILL) and the error says so.
pub fn run_timeout(cmd: &mut Command, timeout: Duration) -> Result<String, Failed> {
    let command = format!("{cmd:?}").replace('"', "");
    let failed = |detail: String| Failed {
        command: command.clone(),
        detail,
    };
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed(e.to_string()))?;
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
        Ok((Ok(status), out, err)) => {
            Err(failed(format!("{status}: {}{}", err.trim(), out.trim())))
        }
        Ok((Err(e), _, _)) => Err(failed(e.to_string())),
        Err(_) => {
            crate::signal::signal(pid, "KILL");
            Err(failed(format!(
                "did not finish within {} s",
                timeout.as_secs_f32()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_failure_and_timeout() {
        assert_eq!(run(Command::new("echo").arg("hi")).as_deref(), Ok("hi\n"));
        assert!(run(&mut Command::new("false")).is_err());
        let t = Duration::from_secs(5);
        assert_eq!(
            run_timeout(Command::new("echo").arg("hi"), t).as_deref(),
            Ok("hi\n")
        );
        let e = run_timeout(Command::new("sleep").arg("5"), Duration::from_millis(50))
            .expect_err("timed out");
        assert!(e.detail.contains("did not finish"), "{e}");
        assert!(e.command.contains("sleep"), "{e}");
    }
}
