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
use super::planfile;
use super::topology::Site;
use super::Result;

/// The plan of the mixed move, written to `out/dns-plan.toml`.
pub fn write_plan(lab: &LabInstance, d: &DnsLab, out: &Path) -> Result<PathBuf> {
    let t = &lab.topo;
    let (vm1, vm2) = planfile::vm_namespaces(lab)?;
    let (app1, app2) = (d.app_ns(Site::Primary), d.app_ns(Site::Recovery));
    let kill = |var: &str, a: &str, b: &str| {
        format!(
            "{} ip netns pids $v | xargs -r kill -9",
            planfile::pick(var, a, b)
        )
    };
    let start = |var: &str, a: &str, b: &str| {
        format!(
            "{} TAG=${var}; {}",
            planfile::pick(var, a, b),
            dns::start_app_command("$v", t.probe_port)
        )
    };
    let rest = format!(
        r#"# Moves by BGP: the VM keeps its address.
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
    let head = planfile::two_sites(lab, "mixed");
    planfile::write(out, "dns-plan.toml", &format!("{head}{rest}"))
}
