//! The real `ferry` binary in a [`Lab`] namespace: `ferry speaker --config DIR/ferry.toml` with
//! its API socket, state_dir and log (`DIR/speaker.log`) in a lab temp dir, and the CLI
//! (`ferry announce|withdraw|status|routes`) run inside the same namespace with `FERRY_API`.
//!
//! [`Ferry`] implements [`BgpDaemon`] so that the interop tests can use the same `wait_*`
//! helpers on it; its RIB is `ferry routes --received --json` (what Ferry received from its
//! peers), its session state comes from `ferry status --json`.
//!
//! The binary: `FERRY_BIN` if set; otherwise `<target dir>/debug/ferry`, where the target dir is
//! `CARGO_TARGET_DIR` or the workspace's `target/`. Integration tests of another package cannot
//! use `CARGO_BIN_EXE_ferry`, and `cargo nextest run -p proto-tests` builds only Ferry's library,
//! so [`ferry_bin`] runs `cargo build --bin ferry` once per test process: a no-op (~0.2 s) when
//! the binary is up to date (as after `cargo nextest run --workspace`), a rebuild when it is
//! missing or older than the sources. Parallel test processes are serialised by cargo's own lock
//! on the target directory, so they never race on the file.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use ferry::config::{
    Asn, Config, FamilyName, HoldTime, NeighborConfig, RouterId, Seconds, SpeakerConfig,
};
use serde_json::Value;
use testkit::speaker;

use testkit::cmd::run;
use testkit::daemons::{dump_commands, dump_exited, BgpDaemon, Family, Peer, Rib, RibRoute, Route};
use testkit::netns::{Lab, Netns};
use testkit::poll::poll;

/// The `ferry` binary to run (see the module docs). Panics with what to do if there is none.
pub fn ferry_bin() -> PathBuf {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(locate_or_build)
        .clone()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("proto-tests lives inside the workspace")
        .to_path_buf()
}

fn locate_or_build() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("FERRY_BIN") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("FERRY_BIN={} is not a file", p.display()))
        };
    }
    let root = workspace_root();
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) if Path::new(&t).is_absolute() => PathBuf::from(t),
        Some(t) => root.join(t),
        None => root.join("target"),
    };
    let bin = target.join("debug").join("ferry");
    let cargo = std::env::var("CARGO")
        .ok()
        .or_else(|| option_env!("CARGO").map(str::to_string))
        .unwrap_or_else(|| "cargo".to_string());
    let out = Command::new(&cargo)
        .args(["build", "--package", "ferry", "--bin", "ferry"])
        .current_dir(&root)
        .env("CARGO_TARGET_DIR", &target)
        .output();
    match out {
        Ok(o) if o.status.success() && bin.is_file() => Ok(bin),
        Ok(o) => Err(format!(
            "`{cargo} build --bin ferry` in {} failed ({}), and the interop tests need the \
             ferry binary at {} (or set FERRY_BIN):\n{}",
            root.display(),
            o.status,
            bin.display(),
            String::from_utf8_lossy(&o.stderr)
        )),
        // no cargo at run time (e.g. an archived test run): use what is there
        Err(_) if bin.is_file() => Ok(bin),
        Err(e) => Err(format!(
            "the ferry binary {} is missing and `{cargo} build --bin ferry` cannot run ({e}); \
             build it first or set FERRY_BIN",
            bin.display()
        )),
    }
}

/// A Ferry speaker configuration (one `[speaker]`, one `[[neighbor]]` per peer).
#[derive(Clone, Debug)]
pub struct FerryConfig {
    pub asn: u32,
    pub router_id: String,
    /// `speaker.listen`, e.g. `192.0.2.1:179` (needed for passive peers).
    pub listen: Option<String>,
    /// Neighbors: address, remote AS, passive, hold time, local address, families, port.
    pub neighbors: Vec<Peer>,
    /// `connect_retry` of every neighbor (seconds).
    pub connect_retry: u32,
    /// `key = value` lines set on the typed neighbor with that address, for keys the
    /// daemon-neutral [`Peer`] has no field for (e.g. `md5_password`, `ttl_security`).
    pub neighbor_extra: Vec<(String, String)>,
    /// `[[health_check]]` entries, as written.
    pub health_checks: Vec<ferry::config::HealthCheckConfig>,
}

impl FerryConfig {
    pub fn new(asn: u32, router_id: &str) -> FerryConfig {
        FerryConfig {
            asn,
            router_id: router_id.to_string(),
            listen: None,
            neighbors: Vec::new(),
            connect_retry: 1,
            neighbor_extra: Vec::new(),
            health_checks: Vec::new(),
        }
    }
    /// Add a `[[health_check]]`.
    pub fn health_check(mut self, c: ferry::config::HealthCheckConfig) -> FerryConfig {
        self.health_checks.push(c);
        self
    }
    /// Set the key of `line` (`key = value`) on the neighbor `address`.
    pub fn neighbor_line(mut self, address: &str, line: &str) -> FerryConfig {
        self.neighbor_extra
            .push((address.to_string(), line.to_string()));
        self
    }
    pub fn listen(mut self, addr: &str) -> FerryConfig {
        self.listen = Some(addr.to_string());
        self
    }
    pub fn neighbor(mut self, p: Peer) -> FerryConfig {
        self.neighbors.push(p);
        self
    }

    /// The typed config; the API socket and state_dir are in `dir`.
    pub fn config(&self, dir: &Path) -> Config {
        let router_id: std::net::Ipv4Addr = self.router_id.parse().expect("router_id is IPv4");
        let mut speaker = SpeakerConfig::new(
            Asn(self.asn),
            RouterId(router_id),
            dir.join("api.sock"),
            dir.join("state"),
        );
        speaker.listen = self
            .listen
            .as_ref()
            .map(|l| l.parse().expect("listen is ADDR:PORT"));
        let neighbors = self
            .neighbors
            .iter()
            .map(|n| {
                let address = n.address.parse().expect("neighbor address");
                let mut c = NeighborConfig::new(address, Asn(n.remote_as));
                c.hold_time = HoldTime(n.hold_time);
                c.connect_retry = Seconds(self.connect_retry);
                c.passive = n.passive;
                c.local_address = n
                    .local_address
                    .as_ref()
                    .map(|l| l.parse().expect("local address"));
                if let Some(p) = n.port {
                    c.port = p;
                }
                c.families = n
                    .families
                    .iter()
                    .map(|f| match f {
                        Family::Ipv4 => FamilyName::Ipv4,
                        Family::Ipv6 => FamilyName::Ipv6,
                    })
                    .collect();
                let extra: String = self
                    .neighbor_extra
                    .iter()
                    .filter(|(a, _)| *a == n.address)
                    .map(|(_, l)| format!("{l}\n"))
                    .collect();
                speaker::with_keys(&c, &extra).unwrap_or_else(|e| panic!("neighbor extra: {e}"))
            })
            .collect();
        Config {
            speaker,
            neighbors,
            health_checks: self.health_checks.clone(),
        }
    }
}

/// Writes `config` as DIR/ferry.toml, owner-only; returns its path.
pub fn write_config(dir: &Path, config: &Config) -> Result<PathBuf, String> {
    let path = dir.join("ferry.toml");
    speaker::write_config(&path, config)?;
    Ok(path)
}

/// A running `ferry speaker`.
pub struct Ferry<'l> {
    lab: &'l Lab,
    ns: Netns,
    dir: PathBuf,
    log: PathBuf,
    bin: PathBuf,
    pid: u32,
}

impl<'l> Ferry<'l> {
    /// Starts `ferry speaker` in `ns` (files in the lab temp dir `ferry-<ns suffix>`) and waits
    /// (10 s) until its API socket accepts connections.
    pub fn start(lab: &'l Lab, ns: &Netns, config: &FerryConfig) -> Ferry<'l> {
        let bin = ferry_bin();
        let dir = lab.daemon_dir("ferry", ns);
        let log = dir.join("speaker.log");
        let conf = dir.join("ferry.toml");
        // Owner-only: the speaker refuses a config with md5_password that others can read.
        let text =
            speaker::write_config(&conf, &config.config(&dir)).unwrap_or_else(|e| panic!("{e}"));
        let mut c = ns.command(&bin.display().to_string());
        c.arg("speaker").arg("--config").arg(&conf);
        c.env("FERRY_LOG", "info").env_remove("FERRY_API");
        let pid = lab.spawn("ferry speaker", c, &log);
        let f = Ferry {
            lab,
            ns: ns.clone(),
            dir,
            log,
            bin,
            pid,
        };
        if !f.api_comes_up() {
            f.fail(&format!(
                "ferry speaker did not come up (API socket {})\n{}",
                f.api().display(),
                text
            ));
        }
        f
    }

    /// Whether the API socket answers within 10 s (false at once if the speaker exited).
    fn api_comes_up(&self) -> bool {
        let api = self.api();
        let ok = poll(Duration::from_secs(10), || {
            if !self.lab.is_running(self.pid) {
                return Some(false);
            }
            speaker::api_ready(&api).then_some(true)
        });
        ok == Some(true)
    }

    pub fn netns(&self) -> &Netns {
        &self.ns
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn pid(&self) -> u32 {
        self.pid
    }
    /// The API socket (`FERRY_API`).
    pub fn api(&self) -> PathBuf {
        self.dir.join("api.sock")
    }

    /// `ferry ARGS...` inside the namespace with `FERRY_API` set; Ok(stdout) on exit 0.
    pub fn cli(&self, args: &[&str]) -> Result<String, String> {
        let mut c = self.ns.command(&self.bin.display().to_string());
        c.args(args)
            .env("FERRY_API", self.api())
            .env_remove("FERRY_API_TOKEN_FILE");
        run(&mut c)
    }

    /// Like [`Ferry::cli`], failing the test (with Ferry's state and log) on error.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        self.cli(args).unwrap_or_else(|e| self.fail(&e))
    }

    /// `ferry ARGS... --json`, parsed.
    pub fn cli_json(&self, args: &[&str]) -> Result<Value, String> {
        let mut a = args.to_vec();
        a.push("--json");
        let out = self.cli(&a)?;
        serde_json::from_str(&out).map_err(|e| format!("ferry {a:?}: bad JSON ({e}): {out}"))
    }

    /// `ferry status --json`: one object per neighbor.
    pub fn status(&self) -> Vec<Value> {
        // The listing, whether or not every session is up (that is exit 3 otherwise).
        self.cli_json(&["status", "--exit-zero"])
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    }

    /// The `ferry status --json` entry of `peer`.
    pub fn peer_status(&self, peer: &str) -> Option<Value> {
        self.status()
            .into_iter()
            .find(|p| p.get("address").and_then(Value::as_str) == Some(peer))
    }

    /// `ferry routes --received --json`, as returned.
    pub fn received_json(&self) -> Vec<Value> {
        self.cli_json(&["routes", "--received"])
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    }

    /// Rewrites `DIR/ferry.toml` with `config` (the speaker reads it on a reload).
    pub fn write_config(&self, config: &FerryConfig) {
        write_config(&self.dir, &config.config(&self.dir)).unwrap_or_else(|e| self.fail(&e));
    }

    /// SIGHUP: the speaker reloads `DIR/ferry.toml`.
    pub fn sighup(&self) {
        testkit::signal::signal(self.pid, "HUP");
    }

    /// Whether the speaker's log contains `text`.
    pub fn log_contains(&self, text: &str) -> bool {
        std::fs::read_to_string(&self.log).is_ok_and(|l| l.contains(text))
    }

    /// SIGTERM, then the speaker started again on the same config and state_dir; waits (10 s)
    /// until its API socket answers.
    pub fn restart(&mut self) {
        let status = self.terminate();
        eprintln!("ferry speaker stopped for a restart: {status}");
        let mut c = self.ns.command(&self.bin.display().to_string());
        c.arg("speaker")
            .arg("--config")
            .arg(self.dir.join("ferry.toml"));
        c.env("FERRY_LOG", "info").env_remove("FERRY_API");
        self.pid = self.lab.spawn("ferry speaker", c, &self.log);
        if !self.api_comes_up() {
            self.fail("ferry speaker did not come back after a restart");
        }
    }

    /// Stops the speaker with SIGTERM (it closes every session with Cease/Administrative
    /// Shutdown and the message "ferry speaker shutting down") and waits (10 s) for it to
    /// exit; returns the exit status ("exit status: 0").
    pub fn terminate(&self) -> String {
        testkit::signal::signal(self.pid, "TERM");
        poll(Duration::from_secs(10), || self.lab.exit_status(self.pid))
            .unwrap_or_else(|| self.fail("ferry speaker still running 10 s after SIGTERM"))
    }
}

/// Ferry's `as_path` text ("65002 65002 {1,2}") -> flat list of ASNs.
fn parse_as_path(s: &str) -> Vec<u32> {
    s.split(|c: char| !c.is_ascii_digit())
        .filter_map(|a| a.parse().ok())
        .collect()
}

/// Parses `ferry routes --received --json` (one entry per peer and prefix; the first wins).
pub fn parse_received(v: &[Value], family: Family) -> Rib {
    let mut rib = Rib::new();
    for r in v {
        let Some(prefix) = r.get("prefix").and_then(Value::as_str) else {
            continue;
        };
        if Family::of(prefix) != family || rib.contains_key(prefix) {
            continue;
        }
        let strings = |k: &str| -> Vec<String> {
            r.get(k)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(testkit::daemons::normalize_community)
                .collect()
        };
        let num = |k: &str| r.get(k).and_then(Value::as_u64).map(|n| n as u32);
        let text = |k: &str| r.get(k).and_then(Value::as_str).map(str::to_string);
        rib.insert(
            prefix.to_string(),
            RibRoute {
                prefix: prefix.to_string(),
                as_path: parse_as_path(r.get("as_path").and_then(Value::as_str).unwrap_or("")),
                communities: strings("communities"),
                large_communities: strings("large_communities"),
                med: num("med"),
                local_pref: num("local_pref"),
                next_hop: text("next_hop"),
                peer: text("peer"),
            },
        );
    }
    rib
}

impl BgpDaemon for Ferry<'_> {
    fn kind(&self) -> &'static str {
        "ferry"
    }

    fn state_dump(&self) -> String {
        let mut s = String::new();
        dump_exited(&mut s, self.lab, self.pid, "ferry speaker");
        let cmds: [&[&str]; 3] = [
            &["status", "--json"],
            &["routes", "--json"],
            &["routes", "--received", "--json"],
        ];
        dump_commands(&mut s, "ferry", &cmds, 80, |a| self.cli(a));
        s
    }

    fn log_path(&self) -> &Path {
        &self.log
    }

    fn is_established(&self, peer: &str) -> bool {
        self.peer_status(peer)
            .is_some_and(|p| p.get("state").and_then(Value::as_str) == Some("Established"))
    }

    fn rib(&self, family: Family) -> Rib {
        parse_received(&self.received_json(), family)
    }

    /// Ferry logs `session down ... reason=...: 6/2 "message"` for a NOTIFICATION received.
    fn notification_received(&self, text: &str) -> bool {
        std::fs::read_to_string(&self.log).is_ok_and(|s| {
            s.lines().any(|l| {
                l.contains("session down") && !l.contains("sent NOTIFICATION") && l.contains(text)
            })
        })
    }

    fn route_refresh(&self, _peer: &str, _family: Family) -> Result<(), String> {
        Err("ferry has no command that sends a ROUTE-REFRESH".into())
    }

    /// `ferry announce` with the route's attributes; `prepend` must repeat Ferry's own AS.
    fn announce(&self, route: &Route) -> Result<(), String> {
        let mut args: Vec<String> = vec!["announce".into(), route.prefix.clone()];
        if let Some(nh) = &route.next_hop {
            args.extend(["--next-hop".into(), nh.clone()]);
        }
        for c in &route.communities {
            args.extend(["--community".into(), c.clone()]);
        }
        for c in &route.large_communities {
            args.extend(["--large-community".into(), c.clone()]);
        }
        if let Some(m) = route.med {
            args.extend(["--med".into(), m.to_string()]);
        }
        if !route.prepend.is_empty() {
            args.extend(["--prepend".into(), route.prepend.len().to_string()]);
        }
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        self.cli(&a).map(|_| ())
    }

    fn withdraw(&self, prefix: &str) -> Result<(), String> {
        self.cli(&["withdraw", prefix]).map(|_| ())
    }

    fn shutdown_peer(&self, _peer: &str, _message: &str) -> Result<(), String> {
        Err("ferry shuts sessions down only when the speaker stops (SIGTERM)".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry::config::TtlHops;

    #[test]
    fn renders_config() {
        let c = FerryConfig::new(65100, "192.0.2.1")
            .listen("192.0.2.1:179")
            .neighbor(
                Peer::new("192.0.2.2", 65002)
                    .passive()
                    .families(&[Family::Ipv4, Family::Ipv6]),
            )
            .neighbor_line("192.0.2.2", "ttl_security = 1")
            .config(Path::new("/tmp/x"));
        let c = toml::to_string(&c).unwrap();
        let parsed = ferry::config::Config::parse(&c).unwrap_or_else(|e| panic!("{e}\n{c}"));
        assert_eq!(parsed.neighbors[0].ttl_security, Some(TtlHops(1)));
        assert_eq!(parsed.neighbors.len(), 1);
        assert!(parsed.neighbors[0].passive);
        assert_eq!(parsed.neighbors[0].connect_retry.0, 1);
        assert_eq!(parsed.speaker.api, Path::new("/tmp/x/api.sock"));
    }

    #[test]
    fn parses_received_routes() {
        let v: Value = serde_json::from_str(
            r#"[{"peer":"192.0.2.2","prefix":"203.0.113.0/24","next_hop":"192.0.2.2",
                 "as_path":"65002 65002","origin":"igp","med":50,"local_pref":null,
                 "communities":["64512:100","no-export"],"large_communities":["65002:1:2"]},
                {"peer":"192.0.2.2","prefix":"2001:db8:1::/48","next_hop":"2001:db8::2",
                 "as_path":"65002","origin":"igp","med":null,"local_pref":null,
                 "communities":[],"large_communities":[]}]"#,
        )
        .unwrap();
        let v = v.as_array().unwrap();
        let rib = parse_received(v, Family::Ipv4);
        assert_eq!(rib.len(), 1);
        let r = &rib["203.0.113.0/24"];
        assert_eq!(r.as_path, vec![65002, 65002]);
        assert_eq!(r.communities, vec!["64512:100", "65535:65281"]);
        assert_eq!(r.large_communities, vec!["65002:1:2"]);
        assert_eq!(r.med, Some(50));
        assert_eq!(r.next_hop.as_deref(), Some("192.0.2.2"));
        assert_eq!(r.peer.as_deref(), Some("192.0.2.2"));
        assert_eq!(parse_received(v, Family::Ipv6).len(), 1);
    }
}
