//! Waiting until a condition holds: every wait has a deadline, and the panicking form names
//! what it awaited.
//!
//! Never does: sleep past the deadline, or call the condition after it held.

use std::time::{Duration, Instant};

/// Calls `f` until it returns Some (first at once, then every 100-500 ms) or `timeout` passes.
pub fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    let mut delay = Duration::from_millis(100);
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        std::thread::sleep(delay.min(deadline - now));
        delay = (delay * 3 / 2).min(Duration::from_millis(500));
    }
}

/// Calls `f` every `every` until it holds (true) or `timeout` passes (false).
pub fn poll_every(timeout: Duration, every: Duration, mut f: impl FnMut() -> bool) -> bool {
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

/// Like [`poll`], panicking after `timeout` with "timed out after T waiting for `what`".
pub fn wait_for<T>(what: &str, timeout: Duration, f: impl FnMut() -> Option<T>) -> T {
    poll(timeout, f).unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_first_value_and_gives_up_at_the_deadline() {
        let mut n = 0;
        assert_eq!(
            poll(Duration::from_secs(5), || {
                n += 1;
                (n == 2).then_some(n)
            }),
            Some(2)
        );
        assert_eq!(poll(Duration::from_millis(30), || None::<()>), None);
        assert!(!poll_every(
            Duration::from_millis(30),
            Duration::from_millis(5),
            || false
        ));
    }

    #[test]
    #[should_panic(expected = "waiting for the moon")]
    fn wait_for_names_what_it_awaited() {
        wait_for("the moon", Duration::from_millis(10), || None::<()>);
    }
}
