//! An etcd cluster (Debian `etcd-server`, 3.4) for tests: one member per site namespace, the
//! sites joined by a bridge in a hub namespace, each member on its documentation address
//! (`192.0.2.<n>`, client port 2379, peer port 2380), data under the lab's temp directory.
//!
//! Every member and namespace is the [`Lab`]'s: removed when it drops, also on a panic.
//! [`EtcdCluster::cut`] and [`EtcdCluster::heal`] take a site off the bridge and back (its
//! member, and whatever else runs in that namespace, loses the others).
//!
//! Names: the cluster token is the lab prefix, so two tests' clusters never join.

use std::path::PathBuf;
use std::time::Duration;

use crate::netns::{Lab, Netns};
use crate::poll::poll;

/// Client port of every member (each on its own address).
pub const CLIENT_PORT: u16 = 2379;

pub struct Member {
    pub name: String,
    pub ns: Netns,
    /// `192.0.2.<n>`
    pub ip: String,
    pub pid: u32,
    pub dir: PathBuf,
    /// The hub's end of this site's link.
    hub_if: String,
}

pub struct EtcdCluster<'a> {
    lab: &'a Lab,
    pub hub: Netns,
    pub members: Vec<Member>,
}

impl<'a> EtcdCluster<'a> {
    /// `sites` namespaces `s1..sN` on one bridge, a member in each; waits until every member
    /// reports healthy.
    pub fn start(lab: &'a Lab, sites: usize) -> EtcdCluster<'a> {
        let hub = lab.netns("hub");
        hub.ip(&["link", "add", "br0", "type", "bridge"]);
        hub.ip(&["link", "set", "br0", "up"]);
        let mut pending = Vec::new();
        for i in 1..=sites {
            let ns = lab.netns(&format!("s{i}"));
            let ip = format!("192.0.2.{i}");
            let v = lab.veth(&ns, &[&format!("{ip}/24")], &hub, &[]);
            hub.ip(&["link", "set", &v.b.ifname, "master", "br0"]);
            v.wait_up(Duration::from_secs(5));
            pending.push((format!("m{i}"), ns, ip, v.b.ifname.clone()));
        }
        let initial: Vec<String> = pending
            .iter()
            .map(|(n, _, ip, _)| format!("{n}=http://{ip}:2380"))
            .collect();
        let initial = initial.join(",");
        let mut members = Vec::new();
        for (name, ns, ip, hub_if) in pending {
            let dir = lab.daemon_dir("etcd", &ns);
            let mut cmd = ns.command("etcd");
            cmd.args([
                "--name",
                &name,
                "--data-dir",
                &dir.join("data").display().to_string(),
                "--listen-client-urls",
                &format!("http://{ip}:{CLIENT_PORT}"),
                "--advertise-client-urls",
                &format!("http://{ip}:{CLIENT_PORT}"),
                "--listen-peer-urls",
                &format!("http://{ip}:2380"),
                "--initial-advertise-peer-urls",
                &format!("http://{ip}:2380"),
                "--initial-cluster",
                &initial,
                "--initial-cluster-state",
                "new",
                "--initial-cluster-token",
                lab.prefix(),
                "--heartbeat-interval",
                "100",
                "--election-timeout",
                "1000",
            ]);
            let pid = lab.spawn(&format!("etcd {name}"), cmd, &dir.join("etcd.log"));
            members.push(Member {
                name,
                ns,
                ip,
                pid,
                dir,
                hub_if,
            });
        }
        let c = EtcdCluster { lab, hub, members };
        c.wait_healthy(Duration::from_secs(30));
        c
    }

    /// `host:port,...` of every member (the `etcd://` form without the scheme).
    pub fn hosts(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("{}:{CLIENT_PORT}", m.ip))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `etcd://` URL of every member.
    pub fn url(&self) -> String {
        format!("etcd://{}", self.hosts())
    }

    /// `etcdctl ARGS` against every member, run inside member `i`'s namespace.
    pub fn etcdctl(&self, i: usize, args: &[&str]) -> Result<String, String> {
        let m = &self.members[i];
        let endpoints = format!("--endpoints=http://{}:{CLIENT_PORT}", m.ip);
        let mut all = vec![endpoints.as_str(), "--command-timeout=2s"];
        all.extend_from_slice(args);
        m.ns.exec("etcdctl", &all)
    }

    /// Waits until every member answers `endpoint health` (exit 0); panics with the logs'
    /// tails otherwise.
    pub fn wait_healthy(&self, timeout: Duration) {
        for (i, m) in self.members.iter().enumerate() {
            let ok = poll(timeout, || {
                // Its verdict goes to stderr; the exit status says it (a quorum read).
                self.etcdctl(i, &["endpoint", "health"]).ok()
            });
            if ok.is_none() {
                let log = std::fs::read_to_string(m.dir.join("etcd.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                panic!(
                    "etcd {} never became healthy; its log ends:\n{}",
                    m.name,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
        }
    }

    /// Takes site `i` off the bridge: its member (and all else in its namespace) loses the
    /// others.
    pub fn cut(&self, i: usize) {
        self.hub
            .ip(&["link", "set", &self.members[i].hub_if, "nomaster"]);
    }

    /// Puts site `i` back on the bridge.
    pub fn heal(&self, i: usize) {
        self.hub
            .ip(&["link", "set", &self.members[i].hub_if, "master", "br0"]);
    }

    /// The lab the cluster lives in.
    pub fn lab(&self) -> &Lab {
        self.lab
    }
}
