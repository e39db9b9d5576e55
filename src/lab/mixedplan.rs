//! The mixed plan `ferry lab dns` runs: group `web` moves the lab's subnet by BGP (hooks stop
//! and start the VM responders of the three-site lab), group `app` comes up at the other site
//! with a new address (a hook moves its responder from one app VM to the other) and its
//! `[[dns]]` entry updates `web.example.test` at the lab's primary server, verifying it at the
//! secondary too. Hooks choose the VM by `FERRY_FROM`/`FERRY_TO`, so failback runs the same
//! plan.
//!
//! Never does: run the plan ([`super::dnsrun`]).

use std::path::{Path, PathBuf};

use super::dns::{self, DnsLab};
use super::dnsrun::{FAILOVER_TTL, OLD_TTL};
use super::instance::LabInstance;
use super::topology::Site;
use super::{LabError, Result};

/// The plan of the mixed move, written to `out/dns-plan.toml`.
pub fn write_plan(lab: &LabInstance, d: &DnsLab, out: &Path) -> Result<PathBuf> {
    let t = &lab.topo;
    let vm = |site: Site| {
        t.vm(site)
            .map(|h| lab.ns(&h.name))
            .ok_or_else(|| LabError::Topology(format!("no VM at {site}")))
    };
    let (vm1, vm2) = (vm(Site::Primary)?, vm(Site::Recovery)?);
    let (app1, app2) = (d.app_ns(Site::Primary), d.app_ns(Site::Recovery));
    let (p, r) = (Site::Primary.name(), Site::Recovery.name());
    let pick =
        |var: &str, a: &str, b: &str| format!("case ${var} in {p}) v={a};; *) v={b};; esac;");
    let kill = |var: &str, a: &str, b: &str| {
        format!("{} ip netns pids $v | xargs -r kill -9", pick(var, a, b))
    };
    let start = |var: &str, a: &str, b: &str| {
        format!(
            "{} TAG=${var}; {}",
            pick(var, a, b),
            dns::start_app_command("$v", t.probe_port)
        )
    };
    let socket = |site: Site| lab.speaker_socket(site).display().to_string();
    let sp = |site: Site| t.speaker(site);
    let text = format!(
        r#"name = "mixed"
primary = "{p}"
recovery = "{r}"
order = "break-before-make"

[[site]]
name = "{p}"
api = "{api1}"
next_hop = "{nh1}"
next_hop6 = "{nh1_6}"

[[site]]
name = "{r}"
api = "{api2}"
next_hop = "{nh2}"
next_hop6 = "{nh2_6}"

# Moves by BGP: the VM keeps its address.
[[group]]
name = "web"
subnets = ["{prefix}", "{prefix6}"]

# Comes up with a new address: DNS follows.
[[group]]
name = "app"
subnets = []

[[hook]]
name = "stop-web-vm"
stage = "stop-primary"
group = "web"
command = ["sh", "-c", {stop_web:?}]
undo = ["sh", "-c", {start_web_from:?}]
timeout_ms = 5000

[[hook]]
name = "start-web-vm"
stage = "cutover"
group = "web"
command = ["sh", "-c", {start_web:?}]
undo = ["sh", "-c", {kill_web_to:?}]
timeout_ms = 5000

[[hook]]
name = "move-app-vm"
stage = "cutover"
group = "app"
command = ["sh", "-c", {move_app:?}]
undo = ["sh", "-c", {unmove_app:?}]
timeout_ms = 5000

[[dns]]
name = "app"
server = "{auth}:53"
servers = ["{secondary}"]
zone = "{zone}"
tsig_key_file = "{key}"
records = [ {{ name = "{name}", primary = "{a1}", recovery = "{a2}" }} ]
ttl = {OLD_TTL}
failover_ttl = {FAILOVER_TTL}
group = "app"
timeout_ms = 5000
"#,
        api1 = socket(Site::Primary),
        api2 = socket(Site::Recovery),
        nh1 = sp(Site::Primary).next_hop,
        nh1_6 = sp(Site::Primary).next_hop6,
        nh2 = sp(Site::Recovery).next_hop,
        nh2_6 = sp(Site::Recovery).next_hop6,
        prefix = t.prefix,
        prefix6 = t.prefix6,
        stop_web = kill("FERRY_FROM", &vm1, &vm2),
        start_web_from = start("FERRY_FROM", &vm1, &vm2),
        start_web = start("FERRY_TO", &vm1, &vm2),
        kill_web_to = kill("FERRY_TO", &vm1, &vm2),
        move_app = format!(
            "{}; {}",
            kill("FERRY_FROM", &app1, &app2),
            start("FERRY_TO", &app1, &app2)
        ),
        unmove_app = format!(
            "{}; {}",
            kill("FERRY_TO", &app1, &app2),
            start("FERRY_FROM", &app1, &app2)
        ),
        auth = dns::AUTH,
        secondary = dns::SECONDARY,
        zone = dns::ZONE,
        key = d.key_file().display(),
        name = dns::NAME,
        a1 = dns::app_address(Site::Primary),
        a2 = dns::app_address(Site::Recovery),
    );
    let plan = out.join("dns-plan.toml");
    std::fs::write(&plan, text)
        .map_err(|e| LabError::step(format!("writing {}", plan.display()), e))?;
    Ok(plan)
}
