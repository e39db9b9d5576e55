//! Commands the controller runs (hooks, command probes), and the processes a dead controller
//! left behind.
//!
//! Contract:
//! - [`run_command`] starts `argv` in a process group of its own (its pid is the group id),
//!   with `PR_SET_PDEATHSIG` = SIGKILL, so the command dies with the controller even on
//!   `kill -9`; it reports the process ([`HookProcess`]) to the caller before it waits, and
//!   kills the whole group when the timeout passes.
//! - The death signal reaches the command only, not what it started: a script's background
//!   work stays in the command's group. The caller journals the [`HookProcess`]; after a
//!   crash, [`end_group`] finds the group's live members (same boot, started no earlier than
//!   the command, so a reused group id is not mistaken for ours) and ends them: SIGTERM, a
//!   grace, SIGKILL. So a resumed step never runs beside its own orphan.
//! - Zombies do not count as live: a container's init may never reap them.
//!
//! Never does: decide whether to run or end anything (that is [`super::executor`]); retry.
//! Linux only (`/proc`, prctl).

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

/// A started command as the journal keeps it: enough to find its group after a crash and to
/// tell it from an unrelated group that reuses the number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookProcess {
    pub pid: u32,
    /// The process group, the pid itself (the command leads a group of its own).
    pub pgid: u32,
    /// `/proc/sys/kernel/random/boot_id` when it started: after a reboot the numbers mean
    /// other processes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    /// Its start time in clock ticks since boot (`/proc/PID/stat` field 22); members of its
    /// group started no earlier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ticks: Option<u64>,
}

/// What [`run_command`] calls once the command runs; an error there kills the command's group
/// and fails the command (a hook the journal does not know of must not run on).
pub type OnSpawn<'a> = &'a dyn Fn(&HookProcess) -> Result<(), String>;

/// How long [`end_group`] waits after SIGTERM before SIGKILL.
pub const ORPHAN_GRACE: Duration = Duration::from_secs(2);

/// Set the death signal in the child, between fork and exec.
///
/// The signal fires when the *thread* that forked the child ends (prctl(2)): [`run_command`]
/// forks on the caller's thread, which waits for the command, so that thread outlives it.
#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt as _;
    let parent = nix::unistd::getpid();
    // SAFETY: the closure runs in the forked child before exec; it makes two system calls
    // (prctl, getppid), allocates nothing and takes no lock, as `pre_exec` requires.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
            // The parent may have died before prctl: then the signal will never come.
            if nix::unistd::getppid() != parent {
                return Err(nix::errno::Errno::ESRCH.into());
            }
            Ok(())
        });
    }
}

/// Run `argv` in its own process group (dying with the controller); kill the group after
/// `timeout`. The error carries the exit status and the end of stderr.
pub fn run_command(
    argv: &[String],
    env: &[(String, String)],
    timeout: Duration,
    on_spawn: OnSpawn<'_>,
) -> Result<(), String> {
    use std::os::unix::process::CommandExt as _;
    let (prog, args) = argv.split_first().ok_or("empty command")?;
    let shown = argv.join(" ");
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    die_with_parent(&mut cmd);
    let mut child = cmd.spawn().map_err(|e| format!("{shown}: {e}"))?;
    let pid = child.id();
    let kill_group = || {
        let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
    };
    let started = HookProcess {
        pid,
        pgid: pid,
        boot_id: boot_id(),
        start_ticks: stat(pid).map(|s| s.start_ticks),
    };
    if let Err(e) = on_spawn(&started) {
        kill_group();
        let _ = child.wait();
        return Err(format!("{shown}: not run: {e}"));
    }
    // stderr is read on the side: a hook that leaves a daemon behind holding it must not make
    // the hook look hung; the hook is done when its process exits.
    let mut err = child.stderr.take();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(s) = err.as_mut() {
            let _ = s.take(64 * 1024).read_to_string(&mut text);
        }
        let _ = tx.send(text);
    });
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(child.wait());
    });
    let status = match done_rx.recv_timeout(timeout) {
        Ok(Ok(st)) => st,
        Ok(Err(e)) => return Err(format!("{shown}: {e}")),
        Err(_) => {
            // The whole group: a shell's children too.
            kill_group();
            return Err(format!(
                "{shown}: did not finish within {} ms",
                timeout.as_millis()
            ));
        }
    };
    if status.success() {
        return Ok(());
    }
    let stderr = rx
        .recv_timeout(Duration::from_millis(100))
        .unwrap_or_default();
    let tail: String = {
        let t = stderr.trim();
        let skip = t.chars().count().saturating_sub(300);
        t.chars().skip(skip).collect()
    };
    if tail.is_empty() {
        Err(format!("{shown}: {status}"))
    } else {
        Err(format!("{shown}: {status}: {tail}"))
    }
}

/// The fields of `/proc/PID/stat` used here.
#[derive(Debug, Clone, Copy)]
struct Stat {
    state: char,
    pgrp: u32,
    start_ticks: u64,
}

fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_owned())
}

fn stat(pid: u32) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// `pid (comm) state ppid pgrp ... starttime(22) ...`; comm may hold spaces and parentheses,
/// so the fields are counted from the last `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(Stat {
        state: f.first()?.chars().next()?,
        pgrp: f.get(2)?.parse().ok()?,
        start_ticks: f.get(19)?.parse().ok()?,
    })
}

/// The live (not zombie) processes of `p`'s group that can be its members.
pub fn live_members(p: &HookProcess) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            stat(*pid).is_some_and(|s| {
                s.pgrp == p.pgid
                    && !matches!(s.state, 'Z' | 'X' | 'x')
                    && p.start_ticks.is_none_or(|t| s.start_ticks >= t)
            })
        })
        .collect()
}

/// End what is left of a hook's process group after its controller died: SIGTERM, up to
/// `grace`, then SIGKILL. `Ok(None)`: nothing of it was alive. `Ok(Some(text))`: what was
/// ended, for the log. An error: processes survived SIGKILL (the step must not run again).
pub fn end_group(p: &HookProcess, grace: Duration) -> Result<Option<String>, String> {
    if p.boot_id.is_some() && p.boot_id != boot_id() {
        return Ok(None);
    }
    let first = live_members(p);
    if first.is_empty() {
        return Ok(None);
    }
    let group = Pid::from_raw(p.pgid as i32);
    let t0 = Instant::now();
    let wait_gone = |until: Duration| loop {
        if live_members(p).is_empty() {
            return true;
        }
        if t0.elapsed() >= until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = killpg(group, Signal::SIGTERM);
    let how = if wait_gone(grace) {
        "SIGTERM"
    } else {
        let _ = killpg(group, Signal::SIGKILL);
        if !wait_gone(grace + Duration::from_secs(1)) {
            return Err(format!(
                "process group {} of a hook started by a dead controller still has live processes ({:?}) after SIGKILL; end them, then resume",
                p.pgid,
                live_members(p)
            ));
        }
        "SIGKILL"
    };
    Ok(Some(format!(
        "ended process group {} (pids {first:?}) of a hook the dead controller had started: {how}, gone after {} ms",
        p.pgid,
        t0.elapsed().as_millis()
    )))
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    fn argv(s: &str) -> Vec<String> {
        vec!["sh".into(), "-c".into(), s.into()]
    }

    fn run(s: &str, env: &[(String, String)], t: Duration) -> Result<(), String> {
        run_command(&argv(s), env, t, &|_| Ok(()))
    }

    #[test]
    fn commands_report_status_and_stderr_and_time_out_as_a_group() {
        let t = Duration::from_secs(5);
        assert!(run("exit 0", &[], t).is_ok());
        let e = run("echo no VM here >&2; exit 3", &[], t).unwrap_err();
        assert!(
            e.contains("exit status: 3") && e.contains("no VM here"),
            "{e}"
        );
        let env = [("FERRY_TO".to_string(), "dc2".to_string())];
        assert!(run("test \"$FERRY_TO\" = dc2", &env, t).is_ok());
        let start = Instant::now();
        let e = run("sleep 10; true", &[], Duration::from_millis(200)).unwrap_err();
        assert!(e.contains("did not finish within 200 ms"), "{e}");
        assert!(start.elapsed() < Duration::from_secs(2));
        // A daemon left behind holding stderr does not make the hook hang.
        let start = Instant::now();
        run("sleep 3 & exit 0", &[], t).unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn the_spawned_process_is_reported_and_a_refusal_kills_it() {
        let seen = RefCell::new(None);
        run_command(&argv("exit 0"), &[], Duration::from_secs(5), &|p| {
            *seen.borrow_mut() = Some(p.clone());
            Ok(())
        })
        .unwrap();
        let p = seen.into_inner().unwrap();
        assert_eq!(p.pid, p.pgid);
        assert!(p.boot_id.is_some() && p.start_ticks.is_some(), "{p:?}");

        let dir = tempfile::tempdir().unwrap();
        let mark = dir.path().join("ran");
        let script = format!("sleep 0.3; touch {}", mark.display());
        let e = run_command(&argv(&script), &[], Duration::from_secs(5), &|_| {
            Err("journal full".into())
        })
        .unwrap_err();
        assert!(e.contains("not run: journal full"), "{e}");
        std::thread::sleep(Duration::from_millis(600));
        assert!(!mark.exists(), "the refused command ran on");
    }

    #[test]
    fn an_orphaned_group_is_ended_with_sigterm_then_sigkill() {
        // A shell that ignores SIGTERM, with a background child of its own, in a group of
        // its own, as a hook is.
        let spawn = |script: &str| {
            use std::os::unix::process::CommandExt as _;
            let c = Command::new("sh")
                .args(["-c", script])
                .process_group(0)
                .spawn()
                .unwrap();
            let pid = c.id();
            let p = HookProcess {
                pid,
                pgid: pid,
                boot_id: boot_id(),
                start_ticks: stat(pid).map(|s| s.start_ticks),
            };
            (c, p)
        };
        let both_run = |p: &HookProcess| {
            let t = Instant::now();
            while live_members(p).len() < 2 {
                assert!(
                    t.elapsed() < Duration::from_secs(5),
                    "sh and sleep never ran"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        };
        let (mut c, p) = spawn("sleep 30 & wait");
        both_run(&p);
        let note = end_group(&p, Duration::from_secs(2)).unwrap().unwrap();
        assert!(note.contains("SIGTERM"), "{note}");
        let _ = c.wait();
        assert!(live_members(&p).is_empty());
        assert_eq!(end_group(&p, ORPHAN_GRACE).unwrap(), None);

        let (mut c, p) = spawn("trap '' TERM; sleep 30 & wait; sleep 30");
        both_run(&p);
        let t = Instant::now();
        let note = end_group(&p, Duration::from_millis(300)).unwrap().unwrap();
        let _ = c.wait();
        assert!(note.contains("SIGKILL"), "{note}");
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());

        // Another boot: the numbers mean other processes; nothing is touched.
        let (mut c, mut p) = spawn("sleep 30");
        p.boot_id = Some("another-boot".into());
        assert_eq!(end_group(&p, ORPHAN_GRACE).unwrap(), None);
        // Processes older than the hook are not its group's.
        p.boot_id = boot_id();
        p.start_ticks = p.start_ticks.map(|t| t + 1_000_000);
        assert!(live_members(&p).is_empty());
        let _ = c.kill();
        let _ = c.wait();
    }

    #[test]
    fn stat_lines_with_odd_names_parse() {
        let s =
            parse_stat("42 (a) b (c)) S 1 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 12345 0 0")
                .unwrap();
        assert_eq!((s.state, s.pgrp, s.start_ticks), ('S', 42, 12345));
        assert!(parse_stat("garbage").is_none());
    }
}
