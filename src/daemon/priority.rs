//! The scheduling class of a driver's thread while its peer floods it.
//!
//! Contract: [`Priority::lower`] moves the calling thread to `SCHED_IDLE` (sched(7)): any
//! other thread of the host that wakes up preempts it at once instead of waiting for its time
//! slice, so a peer sending a full table takes only CPU that the API, the other peers' drivers
//! and the rest of the host leave unused. [`Priority::restore`] moves it back to
//! `SCHED_OTHER`. Both change the class only when it is not already the wanted one (one
//! system call per change), and a refusal (a seccomp filter, a kernel without the class) is
//! logged once and otherwise ignored: the thread then runs at its normal priority.
//! Besides [`crate::sockopt`], the only module with `unsafe`: `sched_setscheduler` and
//! `sched_getscheduler` on the calling thread, with a `sched_param` that lives across the call.
//! Never does: change the nice value, or any thread but the caller's.
#![allow(unsafe_code)]

use nix::libc;

/// The class of the thread that owns this value (a driver's own thread).
#[derive(Debug, Default)]
pub struct Priority {
    lowered: bool,
    refused: bool,
}

impl Priority {
    pub fn lower(&mut self) {
        if !self.lowered {
            self.lowered = self.set(libc::SCHED_IDLE);
        }
    }

    pub fn restore(&mut self) {
        if self.lowered {
            self.lowered = !self.set(libc::SCHED_OTHER);
        }
    }

    #[cfg(test)]
    fn is_lowered(&self) -> bool {
        self.lowered
    }

    /// Set the calling thread's policy; true if it took.
    fn set(&mut self, policy: libc::c_int) -> bool {
        if self.refused {
            return false;
        }
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `param` is a valid sched_param for the call's duration; pid 0 is the
        // calling thread.
        let rc = unsafe { libc::sched_setscheduler(0, policy, &param) };
        if rc == 0 {
            return true;
        }
        self.refused = true;
        tracing::warn!(
            error = %std::io::Error::last_os_error(),
            "cannot change the scheduling class of a peer's thread; it keeps its priority"
        );
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy_of_this_thread() -> libc::c_int {
        // SAFETY: no arguments besides pid 0, the calling thread.
        unsafe { libc::sched_getscheduler(0) }
    }

    #[test]
    fn lower_and_restore_change_the_calling_threads_class() {
        std::thread::spawn(|| {
            let mut p = Priority::default();
            assert_eq!(policy_of_this_thread(), libc::SCHED_OTHER);
            p.lower();
            assert!(p.is_lowered());
            assert_eq!(policy_of_this_thread(), libc::SCHED_IDLE);
            p.lower();
            assert_eq!(policy_of_this_thread(), libc::SCHED_IDLE);
            p.restore();
            assert!(!p.is_lowered());
            assert_eq!(policy_of_this_thread(), libc::SCHED_OTHER);
        })
        .join()
        .expect("test thread");
    }
}
