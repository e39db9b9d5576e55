//! The recovery site's isolated **test network**, added to a running lab for DR drills
//! (`ferry lab testnet`; docs/drills.md): the router r4 (FRR, AS 65004), the test speaker sp2t
//! (`ferry speaker`, AS 65102 like the recovery site's speaker) peered with r4 only, and vm2t,
//! the test copy of the VM (198.51.100.10) on r4's LAN.
//!
//! ```text
//!   sp2t 192.0.2.30/30 ---- 192.0.2.29/30 r4 198.51.100.1/24 ---- 198.51.100.10/24 vm2t
//! ```
//!
//! Contract:
//! - r4 has no link to r1, r2, r3 or the client, and its only BGP neighbor is the test speaker:
//!   nothing announced at sp2t can reach the third site, and nothing of production reaches r4
//!   except through the test speaker.
//! - The namespaces are the lab's (`fl-<instance>-r4`, `-sp2t`, `-vm2t`) and are written to
//!   the lab's state file before they are created, the processes as they start, so
//!   `ferry lab down` removes them with the rest; a failed `add` removes what it created.
//! - Adding it twice does nothing the second time. The lab itself (its topology, r1-r3, sp1,
//!   sp2) is not touched.
//! - Every wait has a timeout.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use ipnet::IpNet;

use super::frr::{self, Frr};
use super::instance::LabInstance;
use super::netns;
use super::proc;
use super::runtime::NodeKind;
use super::{LabError, Result};
use crate::api::{blocking, SessionState};
use crate::config::{Asn, Config, HoldTime, NeighborConfig, RouterId, Seconds, SpeakerConfig};

/// r4's config (AS 65004, accepts the lab's subnet and its host routes from sp2t only).
const R4_CONFIG: &str = include_str!("../../lab/testnet/r4/frr.conf");
pub const ROUTER: &str = "r4";
pub const SPEAKER: &str = "sp2t";
pub const VM: &str = "vm2t";
pub const ROUTER_AS: u32 = 65004;
/// The test speaker's AS: the recovery site's, as a second speaker there would have.
pub const SPEAKER_AS: u32 = 65102;
const ROUTER_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 29);
const SPEAKER_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 30);
const SESSION_UP: Duration = Duration::from_secs(45);

/// The test network of a lab instance: where its parts are.
pub struct TestNetwork {
    /// The test speaker's API socket (the plan's `test_site` api).
    pub speaker_api: PathBuf,
    /// r4, for vtysh queries.
    pub router: Frr,
    /// The test copy's namespace (a drill's hook starts the VM's responder there).
    pub vm_ns: String,
}

/// Where the instance's test network is (whether or not it was added).
pub fn of(lab: &LabInstance) -> TestNetwork {
    TestNetwork {
        speaker_api: lab.dir.join(SPEAKER).join("ferry.sock"),
        router: lab.frr_named(ROUTER),
        vm_ns: lab.ns(VM),
    }
}

/// Add the test network to the running lab `lab` and wait until r4 and sp2t are Established.
pub fn add(lab: &mut LabInstance, say: &dyn Fn(&str)) -> Result<TestNetwork> {
    if !lab.state.complete {
        return Err(LabError::step(
            format!("lab {}", lab.instance),
            "is not up; run `ferry lab up` first",
        ));
    }
    let net = of(lab);
    let names = [ROUTER, SPEAKER, VM].map(|n| lab.ns(n));
    if names
        .iter()
        .all(|n| lab.state.namespaces.contains(n) && netns::exists(n))
        && lab
            .state
            .process(SPEAKER)
            .is_some_and(|p| proc::alive(p.pid))
    {
        say("the test network is already there");
        return Ok(net);
    }
    match build(lab, &net, &names, say) {
        Ok(()) => Ok(net),
        Err(e) => {
            say(&format!("test network failed ({e}); removing it"));
            for (n, node) in names.iter().zip([ROUTER, SPEAKER, VM]) {
                let _ = lab.rt.remove_node(n, node);
            }
            let _ = std::fs::remove_dir_all(lab.dir.join(ROUTER));
            let _ = std::fs::remove_dir_all(lab.dir.join(SPEAKER));
            Err(e)
        }
    }
}

fn build(
    lab: &mut LabInstance,
    net: &TestNetwork,
    names: &[String; 3],
    say: &dyn Fn(&str),
) -> Result<()> {
    let [r4, sp, vm] = names;
    for n in names {
        if !lab.state.namespaces.contains(n) {
            lab.state.namespaces.push(n.clone());
        }
    }
    lab.state.save()?;
    say(&format!("creating the test network: {r4}, {sp}, {vm}"));
    // Through the lab's runtime: namespaces, or containers like the rest of a Docker lab.
    for (n, node) in names.iter().zip([ROUTER, SPEAKER, VM]) {
        lab.rt.remove_node(n, node)?;
        let kind = if node == ROUTER {
            NodeKind::Router
        } else {
            NodeKind::Host
        };
        lab.rt.create_node(n, node, kind, None)?;
    }
    link(
        (sp, "eth0", "192.0.2.30/30"),
        (r4, "eth-sp", "192.0.2.29/30"),
    )?;
    link(
        (r4, "eth-vm", "198.51.100.1/24"),
        (vm, "eth0", "198.51.100.10/24"),
    )?;
    netns::default_route(vm, &IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)))?;

    say("starting FRR r4 (AS 65004, test network): zebra, bgpd, staticd");
    net.router.start(R4_CONFIG)?;
    for d in frr::DAEMONS {
        if let Some(pid) = net.router.daemon_pid(d) {
            lab.state.add_process(&format!("{ROUTER}-{d}"), r4, pid)?;
        }
    }
    start_speaker(lab, net, sp)?;
    say("waiting for r4 <-> sp2t to be Established");
    wait_session(net)
}

/// A veth pair between two namespaces, one address at each end, both up.
fn link(a: (&str, &str, &str), b: (&str, &str, &str)) -> Result<()> {
    netns::veth(a.0, a.1, b.0, b.1)?;
    for (ns, ifname, addr) in [a, b] {
        let addr: IpNet = addr
            .parse()
            .map_err(|e| LabError::step(format!("address {addr}"), e))?;
        netns::address(ns, ifname, &addr)?;
        netns::up(ns, ifname)?;
    }
    Ok(())
}

/// The test speaker: one neighbor, r4; its API socket where [`of`] says.
fn start_speaker(lab: &mut LabInstance, net: &TestNetwork, ns: &str) -> Result<()> {
    let dir = lab.dir.join(SPEAKER);
    let step = || format!("speaker {SPEAKER}");
    let mut speaker = SpeakerConfig::new(
        Asn(SPEAKER_AS),
        RouterId(SPEAKER_ADDR),
        net.speaker_api.clone(),
        dir.join("state"),
    );
    speaker.listen = Some(SocketAddr::new(IpAddr::V4(SPEAKER_ADDR), 179));
    let mut neighbor = NeighborConfig::new(IpAddr::V4(ROUTER_ADDR), Asn(ROUTER_AS));
    neighbor.hold_time = HoldTime(9);
    neighbor.connect_retry = Seconds(1);
    neighbor.description = Some(format!("{ROUTER} (test network)"));
    let config = Config {
        speaker,
        neighbors: vec![neighbor],
        health_checks: Vec::new(),
    };
    std::fs::create_dir_all(&dir).map_err(|e| LabError::step(step(), e))?;
    let conf = dir.join("ferry.toml");
    testkit::speaker::write_config(&conf, &config).map_err(|e| LabError::step(step(), e))?;
    let log =
        std::fs::File::create(dir.join("speaker.log")).map_err(|e| LabError::step(step(), e))?;
    let _ = std::fs::remove_file(&net.speaker_api);
    let mut cmd = lab.rt.command(ns, &lab.rt.ferry());
    cmd.args(["speaker", "--log-format", "json", "--config"])
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    let child = proc::spawn(&mut cmd)?;
    lab.state.add_process(SPEAKER, ns, child.id())?;
    if proc::poll(Duration::from_secs(10), Duration::from_millis(20), || {
        net.speaker_api.exists()
    }) {
        Ok(())
    } else {
        Err(LabError::step(
            step(),
            format!(
                "no API socket after 10 s; see {}/speaker.log",
                dir.display()
            ),
        ))
    }
}

/// r4's session to sp2t and sp2t's to r4 Established, within [`SESSION_UP`].
fn wait_session(net: &TestNetwork) -> Result<()> {
    let api = blocking::Speaker::unix(&net.speaker_api)
        .map_err(|e| LabError::step("test speaker API", e))?
        .with_timeout(Duration::from_secs(5));
    let mut last = String::new();
    let up = proc::poll(SESSION_UP, Duration::from_millis(250), || {
        let router = net.router.sessions().unwrap_or_default();
        let speaker = api
            .peers()
            .map(|p| p.iter().map(|p| p.state).collect::<Vec<_>>());
        last = format!("r4: {router:?}, sp2t: {speaker:?}");
        router.len() == 1
            && router[0].1 == "Established"
            && speaker.is_ok_and(|s| s == [SessionState::Established])
    });
    if up {
        Ok(())
    } else {
        Err(LabError::step(
            "test network BGP session",
            format!(
                "not Established after {} s (last seen: {last})",
                SESSION_UP.as_secs()
            ),
        ))
    }
}
