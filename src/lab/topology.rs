//! The topology file (`lab/topologies/<name>/topology.toml`) and the router configs next to it.
//!
//! Contract: a [`Topology`] that exists is consistent: node names are unique and short enough
//! for namespace and interface names, every link end names a node, there is exactly one router
//! per site among primary/recovery/third, one speaker and one VM per VM site, at most one
//! speaker at the third site (an observer for the controller's verification), one client, and
//! every router has its FRR config text loaded. Unknown keys are rejected by name.
//! Never does: touch the system.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{LabError, Result};

/// The three-site topology built into the binary, so `ferry lab up` works from any directory.
const BUILTIN_TOPOLOGY: &str = include_str!("../../lab/topologies/three-site/topology.toml");
const BUILTIN_CONFIGS: [(&str, &str); 3] = [
    (
        "r1/frr.conf",
        include_str!("../../lab/topologies/three-site/r1/frr.conf"),
    ),
    (
        "r2/frr.conf",
        include_str!("../../lab/topologies/three-site/r2/frr.conf"),
    ),
    (
        "r3/frr.conf",
        include_str!("../../lab/topologies/three-site/r3/frr.conf"),
    ),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Site {
    Primary,
    Recovery,
    Third,
}

impl Site {
    pub fn name(self) -> &'static str {
        match self {
            Self::Primary => "primary",
            Self::Recovery => "recovery",
            Self::Third => "third",
        }
    }
    pub fn other(self) -> Self {
        match self {
            Self::Primary => Self::Recovery,
            _ => Self::Primary,
        }
    }
}

impl std::fmt::Display for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    pub name: String,
    pub prefix: IpNet,
    pub prefix6: IpNet,
    pub vm_address: Ipv4Addr,
    pub probe_port: u16,
    #[serde(rename = "router")]
    pub routers: Vec<Router>,
    #[serde(rename = "speaker")]
    pub speakers: Vec<Speaker>,
    #[serde(rename = "host")]
    pub hosts: Vec<Host>,
    #[serde(rename = "link")]
    pub links: Vec<Link>,
    /// Optional RPKI validation at one router ([`super::rpki`]).
    #[serde(default)]
    pub rpki: Option<super::rpki::Rpki>,
    /// Router name -> its frr.conf text (filled by the loader).
    #[serde(skip)]
    pub configs: BTreeMap<String, String>,
    /// Node name -> its image and binds (from a containerlab file; the Docker runtime's).
    #[serde(skip)]
    pub containers: BTreeMap<String, super::clab::NodeContainer>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Router {
    pub name: String,
    /// The site it serves; none for a transit router (e.g. between r3 and the client).
    #[serde(default)]
    pub site: Option<Site>,
    pub asn: u32,
    /// Path of the frr.conf, relative to the topology directory.
    pub config: String,
    /// bgpd modules to load (`-M NAME`): `rpki` at the `[rpki]` router (set by the loader).
    #[serde(skip)]
    pub bgpd_modules: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Speaker {
    pub name: String,
    pub site: Site,
    pub asn: u32,
    pub router_id: Ipv4Addr,
    pub peer: IpAddr,
    pub peer_as: u32,
    pub next_hop: IpAddr,
    pub next_hop6: IpAddr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Vm,
    Client,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Host {
    pub name: String,
    pub role: Role,
    pub site: Site,
    pub gateway: Ipv4Addr,
    pub gateway6: IpAddr,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    pub a: End,
    pub b: End,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct End {
    pub node: String,
    pub ifname: String,
    pub addrs: Vec<IpNet>,
}

impl Topology {
    /// The three-site topology built into the binary.
    pub fn builtin() -> Result<Self> {
        let configs = BUILTIN_CONFIGS
            .iter()
            .map(|(p, t)| (p.to_string(), t.to_string()))
            .collect();
        Self::parse(BUILTIN_TOPOLOGY, configs)
    }

    /// A topology directory (`topology.toml` and the router configs it names), or a
    /// containerlab file (`*.clab.yml`, [`super::clab`]).
    pub fn load(dir: &Path) -> Result<Self> {
        if super::clab::is_clab(dir) {
            return super::clab::load(dir);
        }
        let path = dir.join("topology.toml");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| LabError::Topology(format!("{}: {e}", path.display())))?;
        let mut files = BTreeMap::new();
        let probe: Topology = toml::from_str(&text)
            .map_err(|e| LabError::Topology(format!("{}: {e}", path.display())))?;
        for r in &probe.routers {
            let p = dir.join(&r.config);
            let t = std::fs::read_to_string(&p)
                .map_err(|e| LabError::Topology(format!("{}: {e}", p.display())))?;
            files.insert(r.config.clone(), t);
        }
        Self::parse(&text, files)
    }

    fn parse(text: &str, files: BTreeMap<String, String>) -> Result<Self> {
        let mut t: Topology =
            toml::from_str(text).map_err(|e| LabError::Topology(e.to_string()))?;
        for r in &t.routers {
            let conf = files.get(&r.config).ok_or_else(|| {
                LabError::Topology(format!("router {}: config {} missing", r.name, r.config))
            })?;
            t.configs.insert(r.name.clone(), conf.clone());
        }
        t.check().map_err(LabError::Topology)?;
        t.add_rpki();
        Ok(t)
    }

    /// Add `rpki` to a topology without an `[rpki]` table (`ferry lab up --rpki`).
    pub fn set_rpki(&mut self, rpki: super::rpki::Rpki) -> Result<()> {
        if self.rpki.is_some() {
            return Err(LabError::Topology(
                "--rpki: the topology has an [rpki] table already".into(),
            ));
        }
        self.rpki = Some(rpki);
        if let Err(e) = self.check() {
            self.rpki = None;
            return Err(LabError::Topology(e));
        }
        self.add_rpki();
        Ok(())
    }

    /// The `[rpki]` router loads bgpd's rpki module and gets its FRR text after its own.
    fn add_rpki(&mut self) {
        let Some(rpki) = self.rpki.clone() else {
            return;
        };
        let Some(router) = self.routers.iter_mut().find(|r| r.name == rpki.router) else {
            return;
        };
        router.bgpd_modules.push("rpki".into());
        let (name, asn) = (router.name.clone(), router.asn);
        let conf = self.configs.get(&name).cloned().unwrap_or_default();
        let neighbors: Vec<IpAddr> = self
            .node_names()
            .iter()
            .filter(|n| self.hosts.iter().all(|h| &h.name != *n))
            .filter_map(|n| self.addr_towards(n, &name))
            .map(IpAddr::V4)
            .filter(|a| conf.contains(&format!("neighbor {a} remote-as")))
            .collect();
        let text = format!("{conf}\n{}", rpki.frr_config(asn, &neighbors));
        self.configs.insert(name, text);
    }

    pub(super) fn check(&self) -> Result<(), String> {
        let names = self.node_names();
        for (i, n) in names.iter().enumerate() {
            if names[..i].contains(n) {
                return Err(format!("node {n} appears twice"));
            }
            if n.is_empty() || n.len() > 8 || !n.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(format!("node name {n:?}: use 1-8 letters or digits"));
            }
        }
        if let Some(rpki) = &self.rpki {
            rpki.check(self.routers.iter().map(|r| {
                let conf = self.configs.get(&r.name).map_or("", String::as_str);
                (r.name.as_str(), conf)
            }))?;
        }
        let mut ends: Vec<(&str, &str)> = Vec::new();
        for l in &self.links {
            for e in [&l.a, &l.b] {
                if ends.contains(&(e.node.as_str(), e.ifname.as_str())) {
                    return Err(format!(
                        "interface {}:{} is the end of two links",
                        e.node, e.ifname
                    ));
                }
                ends.push((&e.node, &e.ifname));
                if !names.contains(&e.node) {
                    return Err(format!("link end {}:{}: no such node", e.node, e.ifname));
                }
                if e.ifname.is_empty() || e.ifname.len() > 15 {
                    return Err(format!("interface name {:?}: 1-15 characters", e.ifname));
                }
            }
        }
        for site in [Site::Primary, Site::Recovery, Site::Third] {
            if self.routers.iter().filter(|r| r.site == Some(site)).count() != 1 {
                return Err(format!("exactly one router must be at the {site} site"));
            }
        }
        for site in [Site::Primary, Site::Recovery] {
            if self.speakers.iter().filter(|s| s.site == site).count() != 1 {
                return Err(format!("exactly one speaker must be at the {site} site"));
            }
            if self.vm(site).is_none() {
                return Err(format!("a host with role vm must be at the {site} site"));
            }
        }
        if self
            .speakers
            .iter()
            .filter(|s| s.site == Site::Third)
            .count()
            > 1
        {
            return Err("at most one speaker (an observer) may be at the third site".into());
        }
        if self.client().is_none() {
            return Err("a host with role client is needed".into());
        }
        Ok(())
    }

    pub fn node_names(&self) -> Vec<String> {
        self.routers
            .iter()
            .map(|r| r.name.clone())
            .chain(self.speakers.iter().map(|s| s.name.clone()))
            .chain(self.hosts.iter().map(|h| h.name.clone()))
            .collect()
    }

    pub fn router(&self, site: Site) -> &Router {
        self.routers
            .iter()
            .find(|r| r.site == Some(site))
            .expect("checked: one router per site")
    }

    pub fn speaker(&self, site: Site) -> &Speaker {
        self.speakers
            .iter()
            .find(|s| s.site == site)
            .expect("checked: one speaker per VM site")
    }

    /// The sites that have a speaker: both VM sites, and the third when it has an observer.
    pub fn speaker_sites(&self) -> Vec<Site> {
        [Site::Primary, Site::Recovery, Site::Third]
            .into_iter()
            .filter(|site| self.speakers.iter().any(|s| s.site == *site))
            .collect()
    }

    pub fn vm(&self, site: Site) -> Option<&Host> {
        self.hosts
            .iter()
            .find(|h| h.site == site && h.role == Role::Vm)
    }

    pub fn client(&self) -> Option<&Host> {
        self.hosts.iter().find(|h| h.role == Role::Client)
    }

    /// The IPv4 address of `from` on its link to `to` (what `to` sees as next hop).
    pub fn addr_towards(&self, from: &str, to: &str) -> Option<Ipv4Addr> {
        self.links.iter().find_map(|l| {
            let (mine, theirs) = if l.a.node == from {
                (&l.a, &l.b)
            } else if l.b.node == from {
                (&l.b, &l.a)
            } else {
                return None;
            };
            if theirs.node != to {
                return None;
            }
            mine.addrs.iter().find_map(|a| match a.addr() {
                IpAddr::V4(v4) => Some(v4),
                IpAddr::V6(_) => None,
            })
        })
    }

    /// Which VM site r3 reaches through `next_hop`.
    pub fn site_of_next_hop(&self, next_hop: Ipv4Addr) -> Option<Site> {
        let third = &self.router(Site::Third).name;
        [Site::Primary, Site::Recovery]
            .into_iter()
            .find(|s| self.addr_towards(&self.router(*s).name, third) == Some(next_hop))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_topology_is_consistent() {
        let t = Topology::builtin().unwrap();
        assert_eq!(t.router(Site::Primary).asn, 65001);
        assert_eq!(t.speaker(Site::Recovery).asn, 65102);
        assert_eq!(
            t.addr_towards("r1", "r3"),
            Some("192.0.2.1".parse().unwrap())
        );
        assert_eq!(
            t.site_of_next_hop("192.0.2.5".parse().unwrap()),
            Some(Site::Recovery)
        );
        assert!(t.configs["r3"].contains("router bgp 65003"));
    }

    #[test]
    fn unknown_keys_and_bad_links_are_refused() {
        let bad = BUILTIN_TOPOLOGY.replace("probe_port", "probe_prot");
        let e = Topology::parse(&bad, BTreeMap::new()).unwrap_err();
        assert!(e.to_string().contains("probe_prot"), "{e}");
        let configs: BTreeMap<_, _> = BUILTIN_CONFIGS
            .iter()
            .map(|(p, t)| (p.to_string(), t.to_string()))
            .collect();
        let bad = BUILTIN_TOPOLOGY.replace("node = \"vm2\"", "node = \"vm9\"");
        let e = Topology::parse(&bad, configs.clone()).unwrap_err();
        assert!(e.to_string().contains("vm9"), "{e}");
        let dup = BUILTIN_TOPOLOGY.replace(
            "ifname = \"eth-r2\", addrs = [\"192.0.2.9/30\"",
            "ifname = \"eth-r3\", addrs = [\"192.0.2.9/30\"",
        );
        let e = Topology::parse(&dup, configs).unwrap_err();
        assert!(
            e.to_string()
                .contains("interface r1:eth-r3 is the end of two links"),
            "{e}"
        );
    }

    #[test]
    fn one_observer_speaker_may_sit_at_the_third_site() {
        let configs: BTreeMap<_, _> = BUILTIN_CONFIGS
            .iter()
            .map(|(p, t)| (p.to_string(), t.to_string()))
            .collect();
        let t = Topology::parse(BUILTIN_TOPOLOGY, configs.clone()).unwrap();
        assert_eq!(t.speaker_sites(), [Site::Primary, Site::Recovery]);
        let observer = |name: &str| {
            format!(
                "\n[[speaker]]\nname = \"{name}\"\nsite = \"third\"\nasn = 65103\nrouter_id = \"192.0.2.26\"\npeer = \"192.0.2.25\"\npeer_as = 65003\nnext_hop = \"192.0.2.26\"\nnext_hop6 = \"2001:db8:0:13::2\"\n"
            )
        };
        let one = format!("{BUILTIN_TOPOLOGY}{}", observer("sp3"));
        let t = Topology::parse(&one, configs.clone()).unwrap();
        assert_eq!(
            t.speaker_sites(),
            [Site::Primary, Site::Recovery, Site::Third]
        );
        assert_eq!(t.speaker(Site::Third).name, "sp3");
        let two = format!("{one}{}", observer("sp4"));
        let e = Topology::parse(&two, configs).unwrap_err();
        assert!(e.to_string().contains("at most one speaker"), "{e}");
    }
}
