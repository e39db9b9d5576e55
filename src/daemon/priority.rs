//! The scheduling class of a driver's thread while its peer floods it.
//!
//! Contract: [`Priority::lower`] moves the calling thread to `SCHED_IDLE` (sched(7)): any
//! other thread of the host that wakes up preempts it at once instead of waiting for its time
//! slice, so a peer sending a full table takes only CPU that the API, the other peers' drivers
//! and the rest of the host leave unused. [`Priority::restore`] moves it back to
//! `SCHED_OTHER`. Both change the class only when it is not already the wanted one (one
//! system call per change).
//! A thread may always lower itself, but going back needs `CAP_SYS_NICE` or an `RLIMIT_NICE`
//! of 20 (sched(7)), which an unprivileged or capability-trimmed speaker lacks: so the first
//! [`Priority::lower`] of the process tries both on a throwaway thread ([`round_trip_works`])
//! and, if the way back is refused, no thread is ever lowered (logged once; the drivers then
//! keep their normal class, as they did before). A thread that does not run as `SCHED_OTHER`
//! (an operator's `chrt`) is left alone.
//! Besides [`crate::sockopt`], the only module with `unsafe`: `sched_setscheduler` and
//! `sched_getscheduler` on the calling thread, with a `sched_param` that lives across the call.
//! Never does: change the nice value, or any thread but the caller's.
#![allow(unsafe_code)]

use std::sync::OnceLock;

use nix::libc;

/// The class of the thread that owns this value (a driver's own thread).
#[derive(Debug, Default)]
pub struct Priority {
    lowered: bool,
}

impl Priority {
    pub fn lower(&mut self) {
        if self.lowered || !lowering_allowed() || current_policy() != libc::SCHED_OTHER {
            return;
        }
        self.lowered = set_policy(libc::SCHED_IDLE).is_ok();
    }

    pub fn restore(&mut self) {
        if !self.lowered {
            return;
        }
        match set_policy(libc::SCHED_OTHER) {
            Ok(()) => self.lowered = false,
            Err(e) => tracing::error!(error = %e, "cannot restore a peer thread's class"),
        }
    }

    pub fn is_lowered(&self) -> bool {
        self.lowered
    }
}

/// Whether this process may lower a thread and bring it back (tried once).
fn lowering_allowed() -> bool {
    static ALLOWED: OnceLock<bool> = OnceLock::new();
    *ALLOWED.get_or_init(|| match round_trip_works() {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(
                error = %e,
                "peer threads keep their priority while a peer floods (the way back from \
                 SCHED_IDLE needs CAP_SYS_NICE or RLIMIT_NICE 20)"
            );
            false
        }
    })
}

/// Lower a new thread to `SCHED_IDLE` and back to `SCHED_OTHER`.
fn round_trip_works() -> std::io::Result<()> {
    std::thread::spawn(|| {
        set_policy(libc::SCHED_IDLE)?;
        set_policy(libc::SCHED_OTHER)
    })
    .join()
    .map_err(|_| std::io::Error::other("the probe thread panicked"))?
}

fn current_policy() -> libc::c_int {
    // SAFETY: no pointer; pid 0 is the calling thread.
    unsafe { libc::sched_getscheduler(0) }
}

fn set_policy(policy: libc::c_int) -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid sched_param for the call's duration; pid 0 is the calling
    // thread.
    let rc = unsafe { libc::sched_setscheduler(0, policy, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_and_restore_change_the_calling_threads_class() {
        std::thread::spawn(|| {
            let mut p = Priority::default();
            assert_eq!(current_policy(), libc::SCHED_OTHER);
            p.lower();
            if !lowering_allowed() {
                // Not privileged: never lowered, nothing to restore.
                assert!(!p.is_lowered());
                assert_eq!(current_policy(), libc::SCHED_OTHER);
                return;
            }
            assert!(p.is_lowered());
            assert_eq!(current_policy(), libc::SCHED_IDLE);
            p.lower();
            assert_eq!(current_policy(), libc::SCHED_IDLE);
            p.restore();
            assert!(!p.is_lowered());
            assert_eq!(current_policy(), libc::SCHED_OTHER);
        })
        .join()
        .expect("test thread");
    }

    /// A thread another class was chosen for (here SCHED_BATCH, which needs no privilege) is
    /// left in it.
    #[test]
    fn a_thread_not_in_sched_other_is_left_alone() {
        std::thread::spawn(|| {
            set_policy(libc::SCHED_BATCH).expect("SCHED_BATCH");
            let mut p = Priority::default();
            p.lower();
            assert!(!p.is_lowered());
            assert_eq!(current_policy(), libc::SCHED_BATCH);
        })
        .join()
        .expect("test thread");
    }
}
