//! FRR routers: zebra, bgpd and staticd per router, daemonized, started the test kit's way
//! (`testkit::daemons::frr_daemon`: explicit paths under the router's runtime directory) with
//! an empty config and `--log file:`, then the router's integrated `frr.conf` loaded with
//! `vtysh --vty_socket DIR -f`, and vtysh queries.
//!
//! Never does: use /etc/frr or /var/run/frr, or the packaged frr service.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use testkit::daemons::frr_daemon;

use super::proc::{self, run};
use super::runtime::Runtime;
use super::{LabError, Result};

pub const DAEMONS: [&str; 3] = ["zebra", "bgpd", "staticd"];
/// bgpd's configured log file (microsecond timestamps) in the router's runtime directory.
pub const UPDATES_LOG: &str = "bgpd-updates.log";

/// FRR's binaries are where Debian's `frr` package puts them.
pub fn check_installed() -> Result<()> {
    frr_daemon::check_installed(&DAEMONS).map_err(LabError::FrrMissing)
}

/// One router's FRR: its namespace and runtime directory.
#[derive(Debug, Clone)]
pub struct Frr {
    pub name: String,
    pub ns: String,
    pub dir: PathBuf,
    /// bgpd's `-M` modules (the topology's `bgpd_modules`).
    pub bgpd_modules: Vec<String>,
    /// Where its daemons and vtysh run (the host's FRR, or the container image's).
    pub rt: std::sync::Arc<dyn Runtime>,
}

impl Frr {
    pub fn pid_file(&self, daemon: &str) -> PathBuf {
        frr_daemon::pid_file(&self.dir, daemon)
    }

    /// Write the config, start the daemons, load the config. Waits up to 10 s per daemon.
    pub fn start(&self, config: &str) -> Result<()> {
        let step = |what: &str| format!("router {}: {what}", self.name);
        std::fs::create_dir_all(&self.dir)
            .and_then(|()| std::fs::write(self.dir.join("frr.conf"), config))
            .and_then(|()| std::fs::write(self.dir.join("empty.conf"), ""))
            .map_err(|e| LabError::step(step("writing its runtime directory"), e))?;
        // The daemons drop to user frr and must write their pid files, sockets and logs here
        // (the node's user frr: an image's uid need not be the host's).
        run(
            self.rt
                .command(&self.ns, "chown")
                .args(["-R", "frr:frr"])
                .arg(&self.dir),
            Duration::from_secs(10),
        )?;
        for d in DAEMONS {
            self.start_daemon(d)?;
        }
        self.load_config()
    }

    pub fn start_daemon(&self, daemon: &str) -> Result<()> {
        let dir = self.dir.display().to_string();
        let mut cmd = self
            .rt
            .command(&self.ns, &frr_daemon::binary(daemon).display().to_string());
        cmd.arg("-d");
        if daemon == "bgpd" {
            for m in &self.bgpd_modules {
                cmd.args(["-M", m]);
            }
        }
        frr_daemon::args(&mut cmd, &self.dir, daemon, &self.dir.join("empty.conf"))
            .args(["--log-level", "debug"])
            .arg(format!("--log=file:{dir}/{daemon}.log"));
        run(&mut cmd, Duration::from_secs(10))?;
        let vty = self.dir.join(format!("{daemon}.vty"));
        let ready = proc::poll(Duration::from_secs(10), Duration::from_millis(20), || {
            vty.exists() && proc::read_pid(&self.pid_file(daemon)).is_some_and(proc::alive)
        });
        if !ready {
            return Err(LabError::step(
                format!("router {}: starting {daemon}", self.name),
                format!("no pid file or vty socket after 10 s; see {dir}/{daemon}.log"),
            ));
        }
        Ok(())
    }

    pub fn load_config(&self) -> Result<()> {
        let dir = self.dir.display().to_string();
        run(
            self.rt
                .command(&self.ns, "vtysh")
                .args(["--vty_socket", &dir, "-f"])
                .arg(self.dir.join("frr.conf")),
            Duration::from_secs(15),
        )
        .map_err(|e| LabError::step(format!("router {}: loading frr.conf", self.name), e))?;
        // `log timestamp precision` does not reach the `--log=file:` target of the command
        // line (FRR 8.4): bgpd also logs to a configured file, with microseconds, which the
        // lab reads for when each router's BGP table changed.
        let updates_log = self.updates_log().display().to_string();
        run(
            self.rt
                .command(&self.ns, "vtysh")
                .args(["--vty_socket", &dir, "-d", "bgpd"])
                .args(["-c", "configure terminal"])
                .args(["-c", &format!("log file {updates_log} debugging")])
                .args(["-c", "log timestamp precision 6"]),
            Duration::from_secs(15),
        )
        .map_err(|e| LabError::step(format!("router {}: bgpd log file", self.name), e))?;
        Ok(())
    }

    /// bgpd's log with microsecond timestamps (the received UPDATEs).
    pub fn updates_log(&self) -> PathBuf {
        self.dir.join(UPDATES_LOG)
    }

    /// Run vtysh commands; returns their output.
    pub fn vtysh(&self, commands: &[&str]) -> Result<String> {
        run(
            frr_daemon::vtysh_args(&mut self.rt.command(&self.ns, "vtysh"), &self.dir, commands),
            Duration::from_secs(10),
        )
    }

    /// (neighbor, state) of every IPv4 unicast session.
    pub fn sessions(&self) -> Result<Vec<(String, String)>> {
        let out = self.vtysh(&["show bgp ipv4 unicast summary json"])?;
        let v: Value = serde_json::from_str(&out)
            .map_err(|e| LabError::step(format!("router {}: bgp summary", self.name), e))?;
        Ok(v["peers"]
            .as_object()
            .map(|peers| {
                peers
                    .iter()
                    .map(|(k, p)| (k.clone(), p["state"].as_str().unwrap_or("?").to_owned()))
                    .collect()
            })
            .unwrap_or_default())
    }

    pub fn daemon_pid(&self, daemon: &str) -> Option<u32> {
        proc::read_pid(&self.pid_file(daemon)).filter(|p| proc::alive(*p))
    }

    pub fn stop(&self) {
        for d in DAEMONS.iter().rev() {
            if let Some(pid) = self.daemon_pid(d) {
                proc::stop(pid, Duration::from_secs(3));
            }
        }
    }
}
