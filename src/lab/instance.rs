//! One lab instance: `up`, `down`, `status`, and the operations a move is made of (start and
//! stop a VM's responder, announce and withdraw at a site's speaker, wait for the third site's
//! route).
//!
//! Contract: `up` on a complete, healthy instance does nothing; on anything else it first
//! removes what is there. A failed `up` removes what it created before returning the error.
//! `down` works from the instance name alone (state file plus the `fl-<instance>-` namespace
//! prefix) and removes every namespace, process and runtime file; it is a no-op when nothing is
//! there.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::frr::{self, Frr};
use super::netns;
use super::proc;
use super::runtime::{self, NodeKind, Runtime};
use super::state::{self, LabState};
use super::topology::{Site, Topology};
use super::{now_us, LabError, Result};
use crate::api::{blocking, PeerStatus, SessionState, SpeakerError};
use crate::config::{Asn, Config, HoldTime, NeighborConfig, RouterId, Seconds, SpeakerConfig};
use crate::speaker::Route;

/// Bounds of the waits in `up`.
const SESSIONS_UP: Duration = Duration::from_secs(45);
const ROUTE_UP: Duration = Duration::from_secs(20);
const RPKI_UP: Duration = Duration::from_secs(20);

/// One running three-site lab (`fl-<instance>-*` namespaces, its routers and speakers), as
/// `up` built it or `attach` found it.
pub struct LabInstance {
    pub topo: Topology,
    pub instance: String,
    pub dir: PathBuf,
    pub state: LabState,
    /// Processes this `ferry` process started and can stop at once (responders), by name.
    children: HashMap<String, Child>,
    /// The API client of each site's speaker (by [`Site`] order), made on first use.
    speakers: [OnceLock<blocking::Speaker>; 3],
    /// Where the nodes run (the state file's runtime once the instance exists).
    pub rt: Arc<dyn Runtime>,
}

/// Instance names become part of namespace names: keep them short and plain.
pub fn check_instance(instance: &str) -> Result<()> {
    if instance.is_empty()
        || instance.len() > 12
        || !instance
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        return Err(LabError::Topology(format!(
            "instance name {instance:?}: use 1-12 lowercase letters or digits"
        )));
    }
    Ok(())
}

/// Root and `ip` are there, and what the runtime needs (the host's FRR, or Docker and images).
pub fn preflight(rt: &dyn Runtime, topo: &Topology) -> Result<()> {
    if !super::is_root() {
        return Err(LabError::NotRoot);
    }
    if !["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .iter()
        .any(|p| std::path::Path::new(p).exists())
    {
        return Err(LabError::IpMissing("ip".into()));
    }
    rt.preflight(topo)
}

impl LabInstance {
    pub fn new(instance: &str, topology_dir: Option<PathBuf>) -> Result<Self> {
        check_instance(instance)?;
        let topo = match &topology_dir {
            Some(d) => Topology::load(d)?,
            None => Topology::builtin()?,
        };
        let sel = runtime::selected();
        let state = LabState {
            instance: instance.into(),
            topology: topo.name.clone(),
            topology_dir,
            runtime: sel.kind,
            frr_image: sel.frr_image.clone(),
            ..Default::default()
        };
        Ok(Self {
            rt: runtime::make(sel.kind, instance, sel.frr_image.as_deref()),
            topo,
            instance: instance.into(),
            dir: state::dir(instance),
            state,
            children: HashMap::new(),
            speakers: Default::default(),
        })
    }

    /// The lab of a running instance, from its state file.
    pub fn attach(instance: &str) -> Result<Self> {
        check_instance(instance)?;
        let st = LabState::load(instance)?.ok_or_else(|| {
            LabError::step(
                format!("lab {instance}"),
                "is not up; run `ferry lab up` first",
            )
        })?;
        let mut lab = Self::new(instance, st.topology_dir.clone())?;
        lab.rt = runtime::make(st.runtime, instance, st.frr_image.as_deref());
        lab.state = st;
        Ok(lab)
    }

    pub fn ns(&self, node: &str) -> String {
        netns::name(&self.instance, node)
    }

    pub fn frr(&self, site: Site) -> Frr {
        self.frr_named(&self.topo.router(site).name)
    }

    /// The FRR of router `name` (a site's, a transit router, or one added to the running lab
    /// such as the test network's r4), with the bgpd modules its topology entry asks for.
    pub fn frr_named(&self, name: &str) -> Frr {
        let bgpd_modules = self
            .topo
            .routers
            .iter()
            .find(|r| r.name == name)
            .map(|r| r.bgpd_modules.clone())
            .unwrap_or_default();
        let name = name.to_owned();
        Frr {
            ns: self.ns(&name),
            dir: self.dir.join(&name),
            name,
            bgpd_modules,
            rt: self.rt.clone(),
        }
    }

    pub fn speaker_socket(&self, site: Site) -> PathBuf {
        self.dir
            .join(&self.topo.speaker(site).name)
            .join("ferry.sock")
    }

    /// The API client of `site`'s speaker (each call bounded by 5 s).
    pub fn speaker(&self, site: Site) -> Result<&blocking::Speaker> {
        let cell = &self.speakers[site as usize];
        if let Some(s) = cell.get() {
            return Ok(s);
        }
        let s = blocking::Speaker::unix(self.speaker_socket(site))
            .map_err(|e| LabError::step("speaker API", e))?
            .with_timeout(Duration::from_secs(5));
        Ok(cell.get_or_init(|| s))
    }

    /// Bring the lab up (idempotent). `say` gets progress lines.
    pub fn up(&mut self, say: &dyn Fn(&str)) -> Result<()> {
        preflight(self.rt.as_ref(), &self.topo)?;
        if let Some(st) = LabState::load(&self.instance)? {
            if st.complete && self.healthy(&st) {
                say(&format!(
                    "lab {} is already up ({} runtime)",
                    self.instance,
                    st.runtime.name()
                ));
                // A running instance keeps the runtime (and router image) it was built with,
                // whatever this command selected.
                self.rt = runtime::make(st.runtime, &self.instance, st.frr_image.as_deref());
                self.state = st;
                return Ok(());
            }
            say("removing what a previous, unfinished `up` left");
        }
        down(&self.instance)?;
        match self.build(say) {
            Ok(()) => Ok(()),
            Err(e) => {
                say(&format!("up failed ({e}); removing what it created"));
                let _ = down(&self.instance);
                Err(e)
            }
        }
    }

    fn healthy(&self, st: &LabState) -> bool {
        st.namespaces.iter().all(|n| netns::exists(n))
            && st
                .processes
                .iter()
                .filter(|p| !p.name.starts_with("responder"))
                .all(|p| proc::alive(p.pid))
    }

    fn build(&mut self, say: &dyn Fn(&str)) -> Result<()> {
        let t = self.topo.clone();
        self.state.namespaces = t.node_names().iter().map(|n| self.ns(n)).collect();
        self.state.save()?;
        say(&format!(
            "creating {} {} fl-{}-*",
            self.state.namespaces.len(),
            match self.rt.kind() {
                runtime::RuntimeKind::Netns => "namespaces".to_owned(),
                runtime::RuntimeKind::Docker =>
                    format!("containers {}-* with their namespaces", self.instance),
            },
            self.instance
        ));
        for node in t.node_names() {
            let kind = if t.routers.iter().any(|r| r.name == node) {
                NodeKind::Router
            } else {
                NodeKind::Host
            };
            self.rt
                .create_node(&self.ns(&node), &node, kind, t.containers.get(&node))?;
        }
        for l in &t.links {
            let (na, nb) = (self.ns(&l.a.node), self.ns(&l.b.node));
            self.rt.link(&na, &l.a.ifname, &nb, &l.b.ifname)?;
            for (ns, end) in [(&na, &l.a), (&nb, &l.b)] {
                for a in &end.addrs {
                    netns::address(ns, &end.ifname, a)?;
                }
                netns::up(ns, &end.ifname)?;
            }
        }
        for h in &t.hosts {
            let ns = self.ns(&h.name);
            netns::default_route(&ns, &IpAddr::V4(h.gateway))?;
            netns::default_route(&ns, &h.gateway6)?;
        }
        if let Some(rpki) = &t.rpki {
            super::rpki::check_installed()?;
            let ns = self.ns(&rpki.router);
            say(&format!(
                "starting stayrtr in {ns} with {} ROAs (127.0.0.1:{})",
                rpki.roas.len(),
                rpki.port
            ));
            let pid = rpki.start_validator(&self.instance, &ns)?;
            self.state.add_process("stayrtr", &ns, pid)?;
        }
        for r in &t.routers {
            say(&format!(
                "starting FRR {} (AS {}, {}): zebra, bgpd, staticd",
                r.name,
                r.asn,
                r.site
                    .map_or_else(|| "transit".to_owned(), |s| format!("{s} site"))
            ));
            let f = self.frr_named(&r.name);
            f.start(&t.configs[&r.name])?;
            for d in frr::DAEMONS {
                if let Some(pid) = f.daemon_pid(d) {
                    self.state
                        .add_process(&format!("{}-{d}", r.name), &f.ns, pid)?;
                }
            }
        }
        for site in self.topo.speaker_sites() {
            self.start_speaker(site)?;
        }
        say("waiting for every BGP session to be Established");
        self.wait_sessions(SESSIONS_UP)?;
        if let Some(rpki) = &t.rpki {
            let frr = self.frr_named(&rpki.router);
            say(&format!("waiting for {}'s RPKI table", frr.name));
            rpki.wait_loaded(&frr, RPKI_UP)?;
        }
        self.start_responder(Site::Primary)?;
        self.announce(Site::Primary)?;
        say("primary announces 198.51.100.0/24; waiting for the route at the third site");
        self.wait_route(Site::Primary, ROUTE_UP)?;
        self.state.active = Some(Site::Primary);
        self.state.complete = true;
        self.state.save()?;
        say(&format!("lab {} is up", self.instance));
        Ok(())
    }

    pub fn start_speaker(&mut self, site: Site) -> Result<()> {
        self.start_speaker_with(site, "")
    }

    /// Start the speaker at `site` with `neighbor_extra` (TOML `key = value` lines) set on its
    /// typed neighbor, e.g. `graceful_restart = true`.
    pub fn start_speaker_with(&mut self, site: Site, neighbor_extra: &str) -> Result<()> {
        let sp = self.topo.speaker(site).clone();
        let dir = self.dir.join(&sp.name);
        let mut speaker = SpeakerConfig::new(
            Asn(sp.asn),
            RouterId(sp.router_id),
            self.speaker_socket(site),
            dir.join("state"),
        );
        speaker.listen = Some(std::net::SocketAddr::new(IpAddr::V4(sp.router_id), 179));
        let mut neighbor = NeighborConfig::new(sp.peer, Asn(sp.peer_as));
        neighbor.hold_time = HoldTime(9);
        neighbor.connect_retry = Seconds(1);
        neighbor.description = Some(self.topo.router(site).name.clone());
        let step = || format!("speaker {}", sp.name);
        let neighbor = testkit::speaker::with_keys(&neighbor, neighbor_extra)
            .map_err(|e| LabError::step(step(), e))?;
        let config = Config {
            speaker,
            neighbors: vec![neighbor],
            health_checks: Vec::new(),
        };
        let conf = dir.join("ferry.toml");
        std::fs::create_dir_all(&dir).map_err(|e| LabError::step(step(), e))?;
        testkit::speaker::write_config(&conf, &config).map_err(|e| LabError::step(step(), e))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("speaker.log"))
            .map_err(|e| LabError::step(step(), e))?;
        let ns = self.ns(&sp.name);
        let mut cmd = self.rt.command(&ns, &self.rt.ferry());
        cmd.args(["speaker", "--log-format", "json", "--config"])
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        let sock = self.speaker_socket(site);
        // A speaker killed with SIGKILL leaves its socket: wait for the new one, not that.
        let _ = std::fs::remove_file(&sock);
        let child = proc::spawn(&mut cmd)?;
        self.state.add_process(&sp.name, &ns, child.id())?;
        if !proc::poll(Duration::from_secs(10), Duration::from_millis(20), || {
            sock.exists()
        }) {
            // The lab directory goes with the lab: say what the log ended with.
            let log = std::fs::read_to_string(dir.join("speaker.log")).unwrap_or_default();
            let last = log.lines().last().unwrap_or("(empty)");
            return Err(LabError::step(
                format!("speaker {}", sp.name),
                format!(
                    "no API socket after 10 s; see {}/speaker.log, which ends: {last}",
                    dir.display()
                ),
            ));
        }
        Ok(())
    }

    /// Every router session and every speaker session Established.
    pub fn wait_sessions(&self, timeout: Duration) -> Result<()> {
        let mut last = String::new();
        let ok = proc::poll(timeout, Duration::from_millis(250), || {
            for site in [Site::Primary, Site::Recovery, Site::Third] {
                match self.frr(site).sessions() {
                    Ok(s) if !s.is_empty() && s.iter().all(|(_, st)| st == "Established") => {}
                    Ok(s) => {
                        last = format!("{}: {s:?}", self.frr(site).name);
                        return false;
                    }
                    Err(e) => {
                        last = e.to_string();
                        return false;
                    }
                }
            }
            for site in self.topo.speaker_sites() {
                match self.peers(site) {
                    Ok(p) if p.iter().all(|p| p.state == SessionState::Established) => {}
                    Ok(p) => {
                        last = format!(
                            "speaker at {site}: {:?}",
                            p.iter().map(|p| &p.state).collect::<Vec<_>>()
                        );
                        return false;
                    }
                    Err(e) => {
                        last = e.to_string();
                        return false;
                    }
                }
            }
            true
        });
        if ok {
            Ok(())
        } else {
            Err(LabError::step(
                "BGP sessions",
                format!(
                    "not all Established after {} s (last seen: {last})",
                    timeout.as_secs()
                ),
            ))
        }
    }

    pub fn peers(&self, site: Site) -> Result<Vec<PeerStatus>> {
        self.speaker(site)?
            .peers()
            .map_err(|e| LabError::step("speaker API", e))
    }

    /// SIGKILL the speaker at `site` and wait (2 s at most) until it is gone: a crash, not a
    /// shutdown (no NOTIFICATION, its socket and state left as they are).
    pub fn kill_speaker(&self, site: Site) -> Result<()> {
        let name = &self.topo.speaker(site).name;
        let pid =
            self.state.process(name).map(|p| p.pid).ok_or_else(|| {
                LabError::step(format!("killing speaker {name}"), "no pid recorded")
            })?;
        proc::signal(pid, "KILL");
        proc::wait_gone(pid, Duration::from_secs(2));
        Ok(())
    }

    /// The routes `site`'s speaker holds (what it acknowledged), read through its API.
    pub fn routes(&self, site: Site) -> Result<Vec<Route>> {
        self.speaker(site)?
            .announced()
            .map_err(|e| LabError::step("speaker API", e))
    }

    /// Start the VM's responder at `site` and wait until it answers.
    pub fn start_responder(&mut self, site: Site) -> Result<()> {
        let name = format!("responder-{site}");
        if self.children.contains_key(&name) {
            return Ok(());
        }
        let vm = self
            .topo
            .vm(site)
            .ok_or_else(|| LabError::Topology(format!("no VM at {site}")))?;
        let ns = self.ns(&vm.name);
        let mut cmd = self.rt.command(&ns, &self.rt.ferry());
        cmd.args(["lab", "responder", "--tag", site.name(), "--port"])
            .arg(self.topo.probe_port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = proc::spawn(&mut cmd)?;
        let out = child.stdout.take();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            if let Some(o) = out {
                let _ = BufReader::new(o).read_line(&mut line);
            }
            let _ = tx.send(line);
        });
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(l) if l.trim() == "ready" => {}
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(LabError::step(name, "did not get ready within 5 s"));
            }
        }
        self.state.add_process(&name, &ns, child.id())?;
        self.children.insert(name, child);
        Ok(())
    }

    /// Stop the VM's responder at `site` at once (SIGKILL: the VM is gone).
    pub fn stop_responder(&mut self, site: Site) -> Result<()> {
        self.kill_responder(site);
        self.state.save()
    }

    /// [`Self::stop_responder`] without writing the state file: for a move, whose API call must
    /// follow the VM's stop at once (the file's fsync would count as cutover time). The caller
    /// saves the state after the call; a lab that dies in between lists a process that is gone,
    /// which `down` passes over.
    pub fn kill_responder(&mut self, site: Site) {
        let name = format!("responder-{site}");
        if let Some(mut c) = self.children.remove(&name) {
            let _ = c.kill();
            let _ = c.wait();
        } else if let Some(p) = self.state.process(&name) {
            let pid = p.pid;
            // Only a pid that is still in the VM's namespace is ours.
            if netns::pids(&p.namespace).contains(&pid) {
                proc::signal(pid, "KILL");
                proc::wait_gone(pid, Duration::from_secs(2));
            }
        }
        self.state.processes.retain(|p| p.name != name);
    }

    /// Announce the subnet (v4 and v6) at `site` with the VM as next hop. Returns the time of
    /// the call (just before the request is sent).
    pub fn announce(&self, site: Site) -> Result<i64> {
        let sp = self.topo.speaker(site);
        let routes = [
            (self.topo.prefix, sp.next_hop),
            (self.topo.prefix6, sp.next_hop6),
        ]
        .into_iter()
        .map(|(prefix, next_hop)| Route::new(prefix)?.with_next_hop(next_hop))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| LabError::Topology(format!("the {site} speaker's route: {e}")))?;
        self.change(site, "announce", |s| s.announce(routes))
    }

    pub fn withdraw(&self, site: Site) -> Result<i64> {
        let prefixes = vec![self.topo.prefix, self.topo.prefix6];
        self.change(site, "withdraw", |s| s.withdraw(prefixes))
    }

    /// Make a change at `site`'s speaker; the time just before the request went out.
    fn change<T>(
        &self,
        site: Site,
        what: &str,
        call: impl FnOnce(&blocking::Speaker) -> std::result::Result<T, SpeakerError>,
    ) -> Result<i64> {
        let speaker = self.speaker(site)?;
        let at = now_us();
        call(speaker).map_err(|e| LabError::step(format!("{what} at the {site} speaker"), e))?;
        Ok(at)
    }

    /// The third site's kernel route for the subnet goes via `site`'s router.
    pub fn route_via(&self, site: Site) -> bool {
        let third = self.topo.router(Site::Third).name.clone();
        let Some(nh) = self.topo.addr_towards(&self.topo.router(site).name, &third) else {
            return false;
        };
        let p = self.topo.prefix.to_string();
        proc::ip(&["-n", &self.ns(&third), "-4", "route", "show", &p])
            .is_ok_and(|out| out.contains(&format!("via {nh} ")))
    }

    pub fn wait_route(&self, site: Site, timeout: Duration) -> Result<()> {
        if proc::poll(timeout, Duration::from_millis(20), || self.route_via(site)) {
            Ok(())
        } else {
            Err(LabError::step(
                "third site's route",
                format!(
                    "{} not via the {site} site after {} s",
                    self.topo.prefix,
                    timeout.as_secs()
                ),
            ))
        }
    }

    /// The third site's kernel route for the subnet (`ip route show`), `None` if unreadable.
    pub fn third_route(&self) -> Option<String> {
        let third = self.ns(&self.topo.router(Site::Third).name);
        let p = self.topo.prefix.to_string();
        proc::ip(&["-n", &third, "-4", "route", "show", &p])
            .ok()
            .map(|r| r.trim().to_owned())
    }

    /// `status --json`'s structured part: the runtime, every node with its runtime id (the
    /// namespace, or the container id) and whether it exists, every router session, the
    /// third site's route.
    pub fn status_json(&self) -> serde_json::Value {
        let ids: HashMap<String, String> = self.rt.node_ids(&self.instance).into_iter().collect();
        let nodes: Vec<_> = self
            .topo
            .node_names()
            .iter()
            .map(|n| {
                let ns = self.ns(n);
                serde_json::json!({
                    "node": n,
                    "namespace": ns,
                    "runtime_id": ids.get(&ns),
                    "present": ids.contains_key(&ns) && netns::exists(&ns),
                })
            })
            .collect();
        let mut sessions = Vec::new();
        for site in [Site::Primary, Site::Recovery, Site::Third] {
            let f = self.frr(site);
            match f.sessions() {
                Ok(s) => sessions.extend(s.into_iter().map(|(peer, state)| {
                    serde_json::json!({"router": f.name, "peer": peer, "state": state})
                })),
                Err(e) => sessions.push(serde_json::json!({"router": f.name, "error": e.to_string()})),
            }
        }
        serde_json::json!({
            "runtime": self.rt.kind(),
            "nodes": nodes,
            "sessions": sessions,
            "third_site_route": self.third_route(),
        })
    }

    /// Human-readable status lines.
    pub fn status_lines(&self) -> Vec<String> {
        let mut out = vec![format!(
            "lab {} ({}, {} runtime): {}; active site: {}",
            self.instance,
            self.state.topology,
            self.rt.kind().name(),
            if self.state.complete {
                "up"
            } else {
                "incomplete"
            },
            self.state.active.map_or("none", |s| s.name())
        )];
        for ns in &self.state.namespaces {
            out.push(format!(
                "  namespace {ns}: {}",
                if netns::exists(ns) {
                    "present"
                } else {
                    "MISSING"
                }
            ));
        }
        for p in &self.state.processes {
            out.push(format!(
                "  process {} pid {}: {}",
                p.name,
                p.pid,
                if proc::alive(p.pid) {
                    "running"
                } else {
                    "NOT RUNNING"
                }
            ));
        }
        for site in [Site::Primary, Site::Recovery, Site::Third] {
            let f = self.frr(site);
            match f.sessions() {
                Ok(s) => {
                    for (peer, st) in s {
                        out.push(format!("  {} session {peer}: {st}", f.name));
                    }
                }
                Err(e) => out.push(format!("  {}: {e}", f.name)),
            }
        }
        if let Some(r) = self.third_route() {
            out.push(format!(
                "  third site's route: {}",
                if r.is_empty() { "none" } else { &r }
            ));
        }
        out
    }
}

/// Remove an instance: every namespace (with every process in it) and the runtime directory.
/// Returns what was removed.
pub fn down(instance: &str) -> Result<Vec<String>> {
    check_instance(instance)?;
    if !super::is_root() {
        return Err(LabError::NotRoot);
    }
    let mut removed = Vec::new();
    let st = LabState::load(instance).ok().flatten();
    // Containers first, selected by the instance's label (their namespaces go with them).
    // Where no engine answers, there is nothing of Docker's to remove, unless the state
    // says the instance runs on Docker: then say so instead of leaving it half removed.
    let on_docker = st
        .as_ref()
        .is_some_and(|s| s.runtime == runtime::RuntimeKind::Docker);
    match super::docker::check_engine() {
        Ok(()) => {
            removed.extend(super::docker::DockerRuntime::new(instance, None).remove_all(instance)?)
        }
        Err(e) if on_docker => return Err(e),
        Err(_) => {}
    }
    let mut namespaces = netns::list(instance)?;
    if let Some(st) = &st {
        for n in &st.namespaces {
            if !namespaces.contains(n) && netns::exists(n) {
                namespaces.push(n.clone());
            }
        }
        // A process the state knows that left its namespace is not ours to stop.
    }
    for ns in &namespaces {
        netns::destroy(ns)?;
        removed.push(format!("namespace {ns}"));
    }
    let dir = state::dir(instance);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .map_err(|e| LabError::step(format!("removing {}", dir.display()), e))?;
        removed.push(format!("directory {}", dir.display()));
    }
    Ok(removed)
}
