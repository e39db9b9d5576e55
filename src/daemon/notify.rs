//! The systemd notification protocol (`sd_notify(3)`), spoken by the speaker itself.
//!
//! Contract:
//! - Only when the service manager asked for it: `NOTIFY_SOCKET` names a Unix datagram socket,
//!   a path (`/run/systemd/notify`) or, starting with `@`, a name in the abstract namespace.
//!   Without it every call here does nothing. The variable is read once, at start-up.
//! - Each message is one datagram of `KEY=VALUE` lines, sent without waiting: `READY=1` once the
//!   API listens and the desired routes are loaded, `STATUS=…` when the count of Established
//!   sessions changes, `STOPPING=1` when the speaker starts to drain or shut down,
//!   `WATCHDOG=1` every half of `WATCHDOG_USEC`.
//! - The watchdog runs only when `WATCHDOG_USEC` is a positive number and `WATCHDOG_PID` is
//!   absent or this process's pid (a child of a notifying process must not keep its parent's
//!   watchdog alive). A bad value is logged and the watchdog stays off.
//! - A send that fails is logged (once per kind of message) and never stops the speaker: the
//!   service manager is an observer, not a dependency.
//!
//! Never does: pass file descriptors, or read anything from the socket.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Where the messages go, read from `NOTIFY_SOCKET`.
#[derive(Debug)]
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    /// Set after the first failed send, so a gone manager is one log line, not one a second.
    failed: AtomicBool,
}

/// Why `NOTIFY_SOCKET` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("NOTIFY_SOCKET {value:?}: {reason}")]
    Address { value: String, reason: String },
    #[error("NOTIFY_SOCKET: cannot open a datagram socket: {0}")]
    Socket(io::Error),
}

impl Notifier {
    /// A notifier that sends nothing (no service manager).
    pub fn off() -> Self {
        Self {
            target: None,
            failed: AtomicBool::new(false),
        }
    }

    /// From the process environment; `NOTIFY_SOCKET` unset or empty is [`Notifier::off`].
    pub fn from_env() -> Result<Self, NotifyError> {
        match std::env::var_os("NOTIFY_SOCKET") {
            None => Ok(Self::off()),
            Some(v) if v.is_empty() => Ok(Self::off()),
            Some(v) => Self::to(&v.to_string_lossy()),
        }
    }

    /// Send to the socket named `value` (a path, or `@name` in the abstract namespace).
    pub fn to(value: &str) -> Result<Self, NotifyError> {
        let addr = parse_address(value)?;
        let sock = UnixDatagram::unbound().map_err(NotifyError::Socket)?;
        // A manager that stopped reading must never block the speaker.
        sock.set_nonblocking(true).map_err(NotifyError::Socket)?;
        Ok(Self {
            target: Some((sock, addr)),
            failed: AtomicBool::new(false),
        })
    }

    pub fn is_on(&self) -> bool {
        self.target.is_some()
    }

    /// Send one message (its lines joined by newlines); `Ok` when off.
    pub fn send(&self, lines: &[&str]) -> io::Result<()> {
        let Some((sock, addr)) = &self.target else {
            return Ok(());
        };
        let msg = lines.join("\n");
        sock.send_to_addr(msg.as_bytes(), addr).map(|_| ())
    }

    /// [`Notifier::send`], logging a failure instead of returning it.
    pub fn tell(&self, lines: &[&str]) {
        match self.send(lines) {
            Ok(()) => {
                tracing::debug!(message = lines.join(" "), "told the service manager");
            }
            Err(e) => {
                if !self.failed.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, message = lines.join(" "), "cannot notify the service manager (NOTIFY_SOCKET); the speaker carries on");
                }
            }
        }
    }

    /// `READY=1` with the first status line.
    pub fn ready(&self, status: &str) {
        self.tell(&["READY=1", &format!("STATUS={status}")]);
    }

    pub fn status(&self, status: &str) {
        self.tell(&[&format!("STATUS={status}")]);
    }

    pub fn stopping(&self, status: &str) {
        self.tell(&["STOPPING=1", &format!("STATUS={status}")]);
    }

    pub fn watchdog(&self) {
        self.tell(&["WATCHDOG=1"]);
    }
}

/// The address `NOTIFY_SOCKET` names: `@name` is abstract (Linux), anything else a path, which
/// systemd always gives absolute.
fn parse_address(value: &str) -> Result<SocketAddr, NotifyError> {
    let bad = |reason: &str| NotifyError::Address {
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    if let Some(name) = value.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt as _;
        if name.is_empty() {
            return Err(bad("an abstract socket needs a name after `@`"));
        }
        return SocketAddr::from_abstract_name(name.as_bytes())
            .map_err(|e| bad(&format!("not an abstract socket name: {e}")));
    }
    if !value.starts_with('/') {
        return Err(bad(
            "neither an absolute path nor `@name` (an abstract socket)",
        ));
    }
    SocketAddr::from_pathname(value).map_err(|e| bad(&format!("not a socket path: {e}")))
}

/// How often to send `WATCHDOG=1`: half of `WATCHDOG_USEC`, when the watchdog is meant for
/// this process (`WATCHDOG_PID` absent or `pid`). `Err` names a bad value (the watchdog then
/// stays off).
pub fn watchdog_interval(
    usec: Option<&str>,
    watchdog_pid: Option<&str>,
    pid: u32,
) -> Result<Option<Duration>, String> {
    let Some(usec) = usec.filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let usec: u64 = usec
        .trim()
        .parse()
        .map_err(|_| format!("WATCHDOG_USEC {usec:?} is not a whole number of microseconds"))?;
    if usec == 0 {
        return Ok(None);
    }
    if let Some(p) = watchdog_pid.filter(|s| !s.is_empty()) {
        let p: u32 = p
            .trim()
            .parse()
            .map_err(|_| format!("WATCHDOG_PID {p:?} is not a process id"))?;
        if p != pid {
            return Ok(None);
        }
    }
    Ok(Some(
        Duration::from_micros(usec / 2).max(Duration::from_millis(1)),
    ))
}

/// [`watchdog_interval`] from the process environment, logging a bad value.
pub fn watchdog_from_env() -> Option<Duration> {
    let var = |k: &str| std::env::var(k).ok();
    match watchdog_interval(
        var("WATCHDOG_USEC").as_deref(),
        var("WATCHDOG_PID").as_deref(),
        std::process::id(),
    ) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "systemd watchdog off");
            None
        }
    }
}

/// The `STATUS=` text for `up` of `total` sessions Established.
pub fn sessions_status(up: usize, total: usize) -> String {
    format!("{up}/{total} sessions established")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_interval_is_half_and_only_for_this_pid() {
        let half = Some(Duration::from_secs(5));
        assert_eq!(watchdog_interval(Some("10000000"), None, 7), Ok(half));
        assert_eq!(watchdog_interval(Some("10000000"), Some("7"), 7), Ok(half));
        assert_eq!(watchdog_interval(Some("10000000"), Some("8"), 7), Ok(None));
        assert_eq!(watchdog_interval(None, Some("7"), 7), Ok(None));
        assert_eq!(watchdog_interval(Some("0"), None, 7), Ok(None));
        let e = watchdog_interval(Some("ten"), None, 7).unwrap_err();
        assert!(e.contains("WATCHDOG_USEC \"ten\""), "{e}");
        let e = watchdog_interval(Some("100"), Some("x"), 7).unwrap_err();
        assert!(e.contains("WATCHDOG_PID \"x\""), "{e}");
    }

    #[test]
    fn bad_addresses_are_named() {
        for bad in ["@", "relative/sock"] {
            let e = Notifier::to(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn messages_arrive_in_order_on_a_path_and_an_abstract_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::to(path.to_str().unwrap()).unwrap();
        n.ready("0/1 sessions established");
        n.watchdog();
        n.stopping("stopping");
        let mut buf = [0u8; 512];
        let mut got = Vec::new();
        for _ in 0..3 {
            let len = rx.recv(&mut buf).unwrap();
            got.push(String::from_utf8_lossy(&buf[..len]).into_owned());
        }
        assert_eq!(
            got,
            [
                "READY=1\nSTATUS=0/1 sessions established",
                "WATCHDOG=1",
                "STOPPING=1\nSTATUS=stopping"
            ]
        );

        use std::os::linux::net::SocketAddrExt as _;
        let name = format!("ferry-notify-test-{}", std::process::id());
        let rx = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(&name).unwrap()).unwrap();
        let n = Notifier::to(&format!("@{name}")).unwrap();
        n.status("1/1 sessions established");
        let len = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"STATUS=1/1 sessions established");
    }

    #[test]
    fn off_sends_nothing_and_a_gone_manager_is_an_error_not_a_stop() {
        assert!(Notifier::off().send(&["READY=1"]).is_ok());
        let dir = tempfile::tempdir().unwrap();
        let n = Notifier::to(dir.path().join("nobody").to_str().unwrap()).unwrap();
        assert!(n.send(&["READY=1"]).is_err());
        n.tell(&["READY=1"]); // logged, not fatal
    }
}
