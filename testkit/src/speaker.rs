//! A `ferry speaker` for tests and benches: its config written as TOML from a typed value (the
//! ferry crate's `Config`, or anything that serializes to the same file) into the caller's
//! directory, owner-only; the process started with `speaker --config PATH`; ready once its API
//! socket accepts a connection; SIGKILLed and reaped on drop.
//!
//! Never does: build the config's text by hand, talk to the speaker's API beyond connecting to
//! its socket, or signal any process but its own child.

use std::io::Write as _;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Writes a file only its owner may read (mode 0600), as the speaker requires of files that
/// hold secrets (token files, configs with `md5_password`).
pub fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| format!("write {}: {e}", path.display()))
}

/// Writes `config` as TOML to `path`, owner-only; returns the text written.
pub fn write_config(path: &Path, config: &impl Serialize) -> Result<String, String> {
    let text = toml::to_string(config).map_err(|e| format!("{}: {e}", path.display()))?;
    write_private(path, &text)?;
    Ok(text)
}

/// `value` with the keys of the TOML text `keys` set on it (an added key, or a replaced one),
/// checked by deserializing the result: for the few settings a test gives as `key = value`
/// lines next to a typed config.
pub fn with_keys<T: Serialize + DeserializeOwned>(value: &T, keys: &str) -> Result<T, String> {
    let mut table = toml::Table::try_from(value).map_err(|e| e.to_string())?;
    let more: toml::Table = keys.parse().map_err(|e| format!("{keys:?}: {e}"))?;
    table.extend(more);
    toml::Value::Table(table)
        .try_into()
        .map_err(|e| format!("{keys:?}: {e}"))
}

/// Whether a Unix socket at `api` accepts connections.
pub fn api_ready(api: &Path) -> bool {
    UnixStream::connect(api).is_ok()
}

/// A running `ferry speaker`, our child; SIGKILLed and reaped on drop.
pub struct SpeakerProcess {
    child: Option<Child>,
    /// How the child ended, once it has (after `try_wait` saw it).
    exited: Option<ExitStatus>,
    api: PathBuf,
    log: Option<PathBuf>,
}

impl SpeakerProcess {
    /// Runs `cmd` (the ferry binary, maybe behind a wrapper or `ip netns exec`) with `speaker
    /// --config CONFIG`, `FERRY_LOG=info` unless `cmd` sets it, stdout discarded and stderr
    /// appended to `log` (with None: this process's stderr); waits up to `timeout` for the API
    /// socket `api`. Err(why, with the log) if the speaker exits or the socket does not answer
    /// in time.
    pub fn start(
        mut cmd: Command,
        config: &Path,
        api: &Path,
        log: Option<&Path>,
        timeout: Duration,
    ) -> Result<SpeakerProcess, String> {
        let _ = std::fs::remove_file(api);
        let err = match log {
            Some(log) => std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .map_err(|e| format!("{}: {e}", log.display()))?
                .into(),
            None => Stdio::inherit(),
        };
        if !cmd.get_envs().any(|(k, _)| k == "FERRY_LOG") {
            cmd.env("FERRY_LOG", "info");
        }
        let child = cmd
            .arg("speaker")
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .map_err(|e| format!("spawn ferry speaker ({cmd:?}): {e}"))?;
        let mut s = SpeakerProcess {
            child: Some(child),
            exited: None,
            api: api.to_owned(),
            log: log.map(Path::to_owned),
        };
        let deadline = Instant::now() + timeout;
        loop {
            if api_ready(api) {
                return Ok(s);
            }
            if let Some(status) = s.try_wait() {
                return Err(format!(
                    "ferry speaker exited with {status} at start:\n{}",
                    s.log()
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "API socket {} did not appear within {timeout:?}:\n{}",
                    api.display(),
                    s.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn api(&self) -> &Path {
        &self.api
    }

    /// What the speaker logged so far (nothing when its stderr is ours).
    pub fn log(&self) -> String {
        self.log
            .as_ref()
            .and_then(|l| std::fs::read_to_string(l).ok())
            .unwrap_or_default()
    }

    /// The exit status once the speaker has exited (then it is no longer ours to signal).
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if let Some(status) = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
        {
            self.child = None;
            self.exited = Some(status);
        }
        self.exited
    }

    /// SIGTERM; the speaker keeps running until it has closed its sessions.
    pub fn sigterm(&self) {
        if let Some(pid) = self.pid() {
            crate::signal::signal(pid, "TERM");
        }
    }

    /// Waits up to `timeout` for the speaker to exit (after a signal); None if it still runs.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        crate::poll::poll_every(timeout, Duration::from_millis(10), || {
            self.try_wait().is_some()
        });
        self.exited
    }

    /// SIGKILL (no NOTIFICATION, no clean-up), and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            self.exited = c.wait().ok();
        }
    }
}

impl Drop for SpeakerProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Deserialize, serde::Serialize)]
    struct Neighbor {
        address: String,
        hold_time: u16,
        #[serde(default)]
        passive: bool,
    }

    #[test]
    fn keys_are_set_on_a_typed_value_and_checked() {
        let n = Neighbor {
            address: "192.0.2.2".into(),
            hold_time: 9,
            passive: false,
        };
        let m = with_keys(&n, "passive = true\nhold_time = 3\n").unwrap();
        assert_eq!((m.passive, m.hold_time), (true, 3));
        assert_eq!(with_keys(&n, "").unwrap(), n);
        assert!(with_keys(&n, "hold_time = \"x\"").is_err());
    }

    #[test]
    fn config_is_written_owner_only() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("kit-speaker-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ferry.toml");
        let n = Neighbor {
            address: "192.0.2.2".into(),
            hold_time: 9,
            passive: true,
        };
        let text = write_config(&path, &n).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        assert!(text.contains("hold_time = 9"), "{text}");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
