//! BIND 9 (`named`) as an authoritative server for one zone, for the DNS failover tests and the
//! lab: `named -g -c DIR/named.conf`, every file under `DIR` (config, zone, its journal, pid,
//! log), listening on one address and port (`127.0.0.1` and a free port, or a namespace's
//! address on 53), updates allowed with a TSIG key made by `tsig-keygen` (`DIR/<key>.key`).
//! `dig` and `nsupdate` (bind9-dnsutils) read it and change it behind the controller's back.
//!
//! Never does: touch /etc/bind or a system named; signal any process but its own child.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::cmd::run;
use crate::poll::poll;
use crate::signal::{signal, stop_child};

/// The key every test zone accepts updates from.
pub const KEY_NAME: &str = "ferry-test";

/// What a zone holds at start: `(owner relative to the zone, type, value)`.
pub struct ZoneSpec {
    /// Absolute, e.g. `example.test.`.
    pub zone: String,
    pub ttl: u32,
    pub records: Vec<(String, String, String)>,
    /// Secondaries to NOTIFY of every change (RFC 1996) at once (`notify-delay 0`: BIND
    /// otherwise waits 5 s between sets), and allowed to transfer the zone.
    pub secondaries: Vec<std::net::SocketAddr>,
}

pub struct Bind {
    pub dir: PathBuf,
    pub addr: IpAddr,
    pub port: u16,
    pub zone: String,
    /// `ip netns exec NS` prefix, when it runs in a namespace.
    netns: Option<String>,
    child: Option<Child>,
}

impl Bind {
    /// Write the config, zone and key under `dir` and start `named`; waits until it answers
    /// the zone's SOA (panics with its log after 10 s).
    pub fn start(
        dir: &Path,
        netns: Option<&str>,
        addr: IpAddr,
        port: u16,
        spec: &ZoneSpec,
    ) -> Bind {
        Self::try_start(dir, netns, addr, port, spec).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Bind::start`] for callers that must not panic (the lab): the error says what failed
    /// and, when named did not answer, what its log ends with.
    pub fn try_start(
        dir: &Path,
        netns: Option<&str>,
        addr: IpAddr,
        port: u16,
        spec: &ZoneSpec,
    ) -> Result<Bind, String> {
        let io = |what: &str, e: std::io::Error| format!("named in {}: {what}: {e}", dir.display());
        std::fs::create_dir_all(dir).map_err(|e| io("creating the directory", e))?;
        let key = run(Command::new("tsig-keygen").arg(KEY_NAME))
            .map_err(|e| format!("tsig-keygen: {e}"))?;
        std::fs::write(dir.join(format!("{KEY_NAME}.key")), key)
            .map_err(|e| io("writing the key", e))?;
        let zone_origin = spec.zone.trim_end_matches('.');
        let mut z = String::new();
        let _ = writeln!(z, "$TTL {}", spec.ttl);
        let _ = writeln!(
            z,
            "@ IN SOA ns.{zone_origin}. hostmaster.{zone_origin}. 1 3600 600 86400 1"
        );
        let _ = writeln!(z, "@ IN NS ns.{zone_origin}.");
        let _ = writeln!(z, "ns IN A 192.0.2.53");
        for (owner, ty, value) in &spec.records {
            let _ = writeln!(z, "{owner} IN {ty} {value}");
        }
        std::fs::write(dir.join("zone.db"), z).map_err(|e| io("writing the zone", e))?;
        let d = dir.display();
        let (notify, transfer) = if spec.secondaries.is_empty() {
            ("notify no;".to_owned(), "none;".to_owned())
        } else {
            let to: Vec<String> = spec
                .secondaries
                .iter()
                .map(|s| format!("{} port {};", s.ip(), s.port()))
                .collect();
            let from: Vec<String> = spec
                .secondaries
                .iter()
                .map(|s| format!("{};", s.ip()))
                .collect();
            (
                format!(
                    "notify explicit;\n  notify-delay 0;\n  also-notify {{ {} }};",
                    to.join(" ")
                ),
                from.join(" "),
            )
        };
        let conf = format!(
            "options {{\n  directory \"{d}\";\n  pid-file \"{d}/named.pid\";\n  {listen}\n  recursion no;\n  dnssec-validation no;\n  {notify}\n  session-keyfile \"{d}/session.key\";\n  managed-keys-directory \"{d}\";\n}};\ncontrols {{ }};\ninclude \"{d}/{KEY_NAME}.key\";\nzone \"{zone_origin}\" {{ type primary; file \"{d}/zone.db\"; allow-update {{ key \"{KEY_NAME}\"; }}; allow-transfer {{ {transfer} }}; }};\n",
            listen = listen(addr, port),
        );
        std::fs::write(dir.join("named.conf"), conf).map_err(|e| io("writing named.conf", e))?;
        let mut b = Bind {
            dir: dir.to_owned(),
            addr,
            port,
            zone: spec.zone.clone(),
            netns: netns.map(str::to_owned),
            child: None,
        };
        b.try_spawn()?;
        Ok(b)
    }

    /// A secondary for `zone` (absolute) that transfers it from `primary` (RFC 5936) and
    /// refreshes on its NOTIFY; waits until it answers the zone's SOA. It takes no updates.
    pub fn start_secondary(
        dir: &Path,
        addr: IpAddr,
        port: u16,
        zone: &str,
        primary: std::net::SocketAddr,
    ) -> Bind {
        Self::try_start_secondary(dir, None, addr, port, zone, primary)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Bind::start_secondary`] in `netns` (or here), with errors instead of panics.
    pub fn try_start_secondary(
        dir: &Path,
        netns: Option<&str>,
        addr: IpAddr,
        port: u16,
        zone: &str,
        primary: std::net::SocketAddr,
    ) -> Result<Bind, String> {
        let io = |what: &str, e: std::io::Error| format!("named in {}: {what}: {e}", dir.display());
        std::fs::create_dir_all(dir).map_err(|e| io("creating the directory", e))?;
        let d = dir.display();
        let origin = zone.trim_end_matches('.');
        let conf = format!(
            "options {{\n  directory \"{d}\";\n  pid-file \"{d}/named.pid\";\n  {listen}\n  recursion no;\n  dnssec-validation no;\n  notify no;\n  session-keyfile \"{d}/session.key\";\n  managed-keys-directory \"{d}\";\n}};\ncontrols {{ }};\nzone \"{origin}\" {{ type secondary; file \"{d}/zone.db\"; primaries {{ {} port {}; }}; allow-notify {{ {}; }}; }};\n",
            primary.ip(),
            primary.port(),
            primary.ip(),
            listen = listen(addr, port),
        );
        std::fs::write(dir.join("named.conf"), conf).map_err(|e| io("writing named.conf", e))?;
        let mut b = Bind {
            dir: dir.to_owned(),
            addr,
            port,
            zone: zone.to_owned(),
            netns: netns.map(str::to_owned),
            child: None,
        };
        b.try_spawn()?;
        Ok(b)
    }

    fn command(&self, program: &str) -> Command {
        match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, program]);
                c
            }
            None => Command::new(program),
        }
    }

    /// (Re)start `named` with the same files (the zone's journal keeps applied updates).
    pub fn spawn(&mut self) {
        self.try_spawn().unwrap_or_else(|e| panic!("{e}"));
    }

    fn try_spawn(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("named.log"))
            .map_err(|e| format!("named.log in {}: {e}", self.dir.display()))?;
        let err = log.try_clone().map_err(|e| format!("named.log: {e}"))?;
        let child = self
            .command("named")
            .arg("-g")
            .arg("-c")
            .arg(self.dir.join("named.conf"))
            .stdin(Stdio::null())
            .stdout(err)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start named: {e}"))?;
        self.child = Some(child);
        let ready = poll(Duration::from_secs(10), || self.soa_serial().map(|_| ()));
        if ready.is_none() {
            return Err(format!(
                "named did not answer within 10 s; log:\n{}",
                self.log()
            ));
        }
        // named keeps running when it cannot listen: the answer came from another server.
        if self.log().contains("address in use") {
            return Err(format!(
                "named could not listen on {}#{}: another server answers there; log:\n{}",
                self.addr,
                self.port,
                self.log()
            ));
        }
        Ok(())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn key_file(&self) -> PathBuf {
        self.dir.join(format!("{KEY_NAME}.key"))
    }

    /// `IP:PORT` (`[IPv6]:PORT`), as a plan's `server`.
    pub fn server(&self) -> String {
        std::net::SocketAddr::new(self.addr, self.port).to_string()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("named.log")).unwrap_or_default()
    }

    /// Stop it (SIGTERM, reaped).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop_child("named", &mut c, Duration::from_secs(3));
        }
    }

    /// Freeze it (SIGSTOP): it takes connections into its backlog and answers nothing.
    pub fn freeze(&self) {
        if let Some(p) = self.pid() {
            signal(p, "STOP");
        }
    }

    pub fn thaw(&self) {
        if let Some(p) = self.pid() {
            signal(p, "CONT");
        }
    }

    fn dig(&self, name: &str, ty: &str) -> Result<String, String> {
        run(self.command("dig").args([
            "+norec",
            "+noall",
            "+answer",
            "+time=1",
            "+tries=1",
            "-p",
            &self.port.to_string(),
            &format!("@{}", self.addr),
            name,
            ty,
        ]))
    }

    /// `(ttl, value)` of each record of `name`'s `ty` RRset (empty when none).
    pub fn lookup(&self, name: &str, ty: &str) -> Vec<(u32, String)> {
        let out = self
            .dig(name, ty)
            .unwrap_or_else(|e| panic!("dig {name} {ty}: {e}\nnamed log:\n{}", self.log()));
        out.lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() >= 5 && f[3] == ty).then(|| (f[1].parse().unwrap_or(0), f[4].to_owned()))
            })
            .collect()
    }

    /// The zone's SOA serial, if it answers.
    pub fn soa_serial(&self) -> Option<u32> {
        let out = self.dig(&self.zone, "SOA").ok()?;
        out.lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 7 && f[3] == "SOA")
                .then(|| f[6].parse().ok())
                .flatten()
        })
    }

    /// Run `nsupdate` with the zone's key: `lines` between `server`/`zone` and `send`.
    pub fn nsupdate(&self, lines: &[&str]) {
        let mut script = format!("server {} {}\nzone {}\n", self.addr, self.port, self.zone);
        for l in lines {
            script.push_str(l);
            script.push('\n');
        }
        script.push_str("send\n");
        let path = self.dir.join("nsupdate.txt");
        std::fs::write(&path, script).expect("write nsupdate script");
        run(self
            .command("nsupdate")
            .arg("-k")
            .arg(self.key_file())
            .arg(&path))
        .unwrap_or_else(|e| panic!("nsupdate: {e}\nnamed log:\n{}", self.log()));
    }
}

fn listen(addr: IpAddr, port: u16) -> String {
    match addr {
        IpAddr::V4(_) => {
            format!("listen-on port {port} {{ {addr}; }};\n  listen-on-v6 {{ none; }};")
        }
        IpAddr::V6(_) => {
            format!("listen-on {{ none; }};\n  listen-on-v6 port {port} {{ {addr}; }};")
        }
    }
}

impl Drop for Bind {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // A frozen named would ignore SIGTERM until it runs again.
            if let Some(p) = self.pid() {
                signal(p, "CONT");
            }
            signal(c.id(), "KILL");
            let _ = c.wait();
        }
    }
}
