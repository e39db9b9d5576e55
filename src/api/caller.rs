//! Who made a change: the identity of an API connection, for the audit log and the route
//! journal.
//!
//! Contract:
//! - On the Unix socket the kernel's word (`SO_PEERCRED`, unix(7)): the peer's uid and pid as
//!   of its `connect`, and the command name of that pid (`/proc/PID/comm`) read when the
//!   connection is accepted. A client cannot forge these.
//! - On TCP the remote address, and that the bearer token was used (the speaker has one token;
//!   a request without it never reaches a handler).
//! - Changes the speaker makes on its own (lease expiry, the drain at shutdown) name
//!   [`Caller::Speaker`] with the reason.
//! - A call that carries a fencing token ([`super::fence`]) is [`Caller::Fenced`]: whoever made
//!   it, with the fence and token, which the audit line and the journal then record too.
//! - The text form ([`std::fmt::Display`]) is what the log and the journal record; it is one
//!   line (a command name's control characters are replaced).
//!
//! Never does: authorise anything (the socket's mode and the token do that).

use std::fmt;
use std::net::SocketAddr;

/// The identity of whoever asked for a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A process on the Unix socket.
    Unix {
        uid: u32,
        gid: u32,
        pid: Option<i32>,
        /// `/proc/PID/comm` when it could be read.
        command: Option<String>,
    },
    /// A client on the TCP listener that gave the bearer token.
    Tcp { remote: SocketAddr },
    /// The speaker itself, for this reason.
    Speaker(&'static str),
    /// A connection whose peer could not be identified (`SO_PEERCRED` failed).
    Unknown,
    /// `by`, offering a fencing token (checked before the change is made).
    Fenced {
        by: Box<Caller>,
        fence: super::Fence,
    },
}

impl Caller {
    /// This caller offering `fence` on its call.
    pub fn fenced(self, fence: super::Fence) -> Self {
        match self {
            // One fence per call: a new one replaces the old.
            Caller::Fenced { by, .. } => Caller::Fenced { by, fence },
            by => Caller::Fenced {
                by: Box::new(by),
                fence,
            },
        }
    }

    /// The fence offered with the call, if any.
    pub fn fence(&self) -> Option<&super::Fence> {
        match self {
            Caller::Fenced { fence, .. } => Some(fence),
            _ => None,
        }
    }

    /// The Unix socket's peer, from the kernel's credentials of `stream`.
    pub fn of_unix(stream: &tokio::net::UnixStream) -> Self {
        match stream.peer_cred() {
            Ok(cred) => {
                let pid = cred.pid();
                Caller::Unix {
                    uid: cred.uid(),
                    gid: cred.gid(),
                    pid,
                    command: pid.and_then(command_of),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the API client's credentials (SO_PEERCRED)");
                Caller::Unknown
            }
        }
    }
}

/// The command name of `pid` (`/proc/PID/comm`, at most 15 octets), one printable line.
fn command_of(pid: i32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    let name: String = text
        .trim_end_matches('\n')
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    (!name.is_empty()).then_some(name)
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Caller::Unix {
                uid,
                gid,
                pid,
                command,
            } => {
                write!(f, "uid {uid} gid {gid}")?;
                if let Some(pid) = pid {
                    write!(f, " pid {pid}")?;
                }
                if let Some(c) = command {
                    write!(f, " ({c})")?;
                }
                Ok(())
            }
            Caller::Tcp { remote } => write!(f, "tcp {remote} with the API token"),
            Caller::Speaker(why) => write!(f, "speaker: {why}"),
            Caller::Unknown => f.write_str("unknown (no peer credentials)"),
            Caller::Fenced { by, fence } => write!(f, "{by} with {fence}"),
        }
    }
}

/// At most `max` items of a list for a log line, then how many more there were.
pub fn shortlist<T: fmt::Display>(items: impl ExactSizeIterator<Item = T>, max: usize) -> String {
    let total = items.len();
    let mut s = items
        .take(max)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if total > max {
        s.push_str(&format!(" and {} more", total - max));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms() {
        let c = Caller::Unix {
            uid: 1000,
            gid: 100,
            pid: Some(42),
            command: Some("ferry".into()),
        };
        assert_eq!(c.to_string(), "uid 1000 gid 100 pid 42 (ferry)");
        let t = Caller::Tcp {
            remote: "192.0.2.7:4711".parse().unwrap(),
        };
        assert_eq!(t.to_string(), "tcp 192.0.2.7:4711 with the API token");
        assert_eq!(
            Caller::Speaker("lease expired").to_string(),
            "speaker: lease expired"
        );
        let fenced = t
            .clone()
            .fenced(crate::api::Fence::new("plan-a", 7).unwrap());
        assert_eq!(
            fenced.to_string(),
            "tcp 192.0.2.7:4711 with the API token with fence plan-a token 7"
        );
        let again = fenced.fenced(crate::api::Fence::new("plan-a", 8).unwrap());
        assert_eq!(again.fence().map(|f| f.token), Some(8));
        assert_eq!(
            again.to_string(),
            "tcp 192.0.2.7:4711 with the API token with fence plan-a token 8"
        );
        assert_eq!(shortlist([1, 2, 3].iter(), 2), "1, 2 and 1 more");
        assert_eq!(shortlist([1, 2].iter(), 2), "1, 2");
    }

    #[tokio::test]
    async fn a_unix_peer_is_this_process() {
        let (a, _b) = tokio::net::UnixStream::pair().unwrap();
        match Caller::of_unix(&a) {
            Caller::Unix {
                uid, pid, command, ..
            } => {
                use std::os::unix::fs::MetadataExt as _;
                assert_eq!(uid, std::fs::metadata("/proc/self").unwrap().uid());
                assert_eq!(pid, Some(std::process::id() as i32));
                assert!(command.is_some());
            }
            other => panic!("{other:?}"),
        }
    }
}
