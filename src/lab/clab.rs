//! containerlab topology files (`*.clab.yml`): read into a lab [`Topology`]
//! (`ferry lab up --topology FILE.clab.yml`) and written from one (`ferry lab export --format
//! containerlab DIR`), so a user with containerlab can deploy the same lab there.
//!
//! What is read (containerlab's own keys, the subset the lab needs):
//! - `name`; `topology.nodes.<name>` with `kind` (`linux` or `frr`), `image`, `binds`,
//!   `startup-config` (a router's frr.conf, relative to the file), `labels`, `exec`;
//!   `topology.links[].endpoints: ["r1:eth1", "r2:eth1"]`; `topology.defaults.labels`.
//! - A node's role in the lab is given by labels, which containerlab passes through as
//!   container labels: `ferry.role` (`router`, `speaker`, `vm`, `client`), `ferry.site`
//!   (`primary`, `recovery`, `third`; none for a transit router), `ferry.asn`, and for a
//!   speaker `ferry.router-id`, `ferry.peer`, `ferry.peer-as`, `ferry.next-hop`,
//!   `ferry.next-hop6`. Lab-wide values are `topology.defaults.labels`: `ferry.prefix`,
//!   `ferry.prefix6`, `ferry.vm-address`, `ferry.probe-port`.
//! - Addresses and a host's default routes are the node's `exec` lines, which containerlab
//!   runs in the container after start: `ip addr add ADDR dev IF`, `ip route add default
//!   via GW`, `ip -6 route add default via GW`.
//!
//! Unknown keys, unknown `ferry.*` labels and any other `exec` line are errors that name them.
//! Never does: touch the system (reading and writing the files only).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::topology::{End, Host, Link, Role, Router, Site, Speaker, Topology};
use super::{LabError, Result};

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClabFile {
    pub name: String,
    pub topology: ClabTopology,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClabTopology {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults: Option<ClabDefaults>,
    pub nodes: BTreeMap<String, ClabNode>,
    #[serde(default)]
    pub links: Vec<ClabLink>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClabDefaults {
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClabNode {
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub binds: Vec<String>,
    #[serde(
        default,
        rename = "startup-config",
        skip_serializing_if = "Option::is_none"
    )]
    pub startup_config: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exec: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClabLink {
    pub endpoints: Vec<String>,
}

/// Per-node container settings from a clab file, for the Docker runtime.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeContainer {
    pub image: Option<String>,
    /// `HOST:CONTAINER[:ro]`, HOST made absolute against the file's directory.
    pub binds: Vec<String>,
}

const NODE_LABELS: [&str; 9] = [
    "ferry.role",
    "ferry.site",
    "ferry.asn",
    "ferry.router-id",
    "ferry.peer",
    "ferry.peer-as",
    "ferry.next-hop",
    "ferry.next-hop6",
    "ferry.gateway",
];
const LAB_LABELS: [&str; 4] = [
    "ferry.prefix",
    "ferry.prefix6",
    "ferry.vm-address",
    "ferry.probe-port",
];

/// Whether `path` names a containerlab file rather than a topology directory.
pub fn is_clab(path: &Path) -> bool {
    let n = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    n.ends_with(".clab.yml") || n.ends_with(".clab.yaml")
}

fn err(file: &Path, what: impl std::fmt::Display) -> LabError {
    LabError::Topology(format!("{}: {what}", file.display()))
}

/// Read a clab file into a checked [`Topology`] and each node's container settings.
pub fn load(file: &Path) -> Result<Topology> {
    let text = std::fs::read_to_string(file).map_err(|e| err(file, e))?;
    let clab: ClabFile = serde_norway::from_str(&text).map_err(|e| err(file, e))?;
    let dir = file.parent().unwrap_or(Path::new("."));
    to_topology(&clab, dir, |p| std::fs::read_to_string(dir.join(p))).map_err(|e| err(file, e))
}

/// A label's value parsed, the error naming node, label and value.
fn label<T: std::str::FromStr>(
    labels: &BTreeMap<String, String>,
    owner: &str,
    key: &str,
) -> std::result::Result<T, String> {
    let v = labels
        .get(key)
        .ok_or_else(|| format!("{owner}: label {key} is missing"))?;
    v.parse()
        .map_err(|_| format!("{owner}: label {key}: {v:?} is not valid"))
}

fn site(v: &str, owner: &str) -> std::result::Result<Site, String> {
    match v {
        "primary" => Ok(Site::Primary),
        "recovery" => Ok(Site::Recovery),
        "third" => Ok(Site::Third),
        _ => Err(format!(
            "{owner}: label ferry.site: {v:?} is not primary, recovery or third"
        )),
    }
}

/// What a node's `exec` lines say: addresses per interface, default gateways.
#[derive(Default)]
struct Exec {
    addrs: BTreeMap<String, Vec<IpNet>>,
    gateway: Option<Ipv4Addr>,
    gateway6: Option<IpAddr>,
}

fn parse_exec(node: &str, lines: &[String]) -> std::result::Result<Exec, String> {
    let mut ex = Exec::default();
    for line in lines {
        let w: Vec<&str> = line.split_whitespace().collect();
        let bad = || {
            format!("node {node}: exec {line:?}: the lab reads only `ip addr add ADDR dev IF` and `ip [-6] route add default via GW`")
        };
        match w.as_slice() {
            ["ip", "addr" | "address", "add", addr, "dev", ifname]
            | ["ip", "-6", "addr" | "address", "add", addr, "dev", ifname] => {
                let a: IpNet = addr
                    .parse()
                    .map_err(|_| format!("node {node}: exec {line:?}: {addr:?} is not ADDR/LEN"))?;
                ex.addrs.entry((*ifname).to_owned()).or_default().push(a);
            }
            ["ip", "route", "add", "default", "via", gw] => {
                ex.gateway = Some(gw.parse().map_err(|_| bad())?);
            }
            ["ip", "-6", "route", "add", "default", "via", gw] => {
                ex.gateway6 = Some(gw.parse().map_err(|_| bad())?);
            }
            _ => return Err(bad()),
        }
    }
    Ok(ex)
}

fn to_topology(
    clab: &ClabFile,
    dir: &Path,
    read: impl Fn(&str) -> std::io::Result<String>,
) -> std::result::Result<Topology, String> {
    let lab_labels = clab
        .topology
        .defaults
        .as_ref()
        .map(|d| d.labels.clone())
        .unwrap_or_default();
    for k in lab_labels.keys() {
        if k.starts_with("ferry.") && !LAB_LABELS.contains(&k.as_str()) {
            return Err(format!(
                "topology.defaults: unknown label {k} (known: {})",
                LAB_LABELS.join(", ")
            ));
        }
    }
    let owner = "topology.defaults";
    let mut topo = Topology {
        name: clab.name.clone(),
        prefix: label(&lab_labels, owner, "ferry.prefix")?,
        prefix6: label(&lab_labels, owner, "ferry.prefix6")?,
        vm_address: label(&lab_labels, owner, "ferry.vm-address")?,
        probe_port: label(&lab_labels, owner, "ferry.probe-port")?,
        routers: Vec::new(),
        speakers: Vec::new(),
        hosts: Vec::new(),
        links: Vec::new(),
        // `ferry lab up --rpki` adds one to a containerlab topology as to a built-in one.
        rpki: None,
        configs: BTreeMap::new(),
        containers: BTreeMap::new(),
    };
    let mut execs = BTreeMap::new();
    for (name, n) in &clab.topology.nodes {
        let owner = format!("node {name}");
        if n.kind != "linux" && n.kind != "frr" {
            return Err(format!(
                "{owner}: kind {:?} is not supported (linux or frr)",
                n.kind
            ));
        }
        for k in n.labels.keys() {
            if k.starts_with("ferry.") && !NODE_LABELS.contains(&k.as_str()) {
                return Err(format!(
                    "{owner}: unknown label {k} (known: {})",
                    NODE_LABELS.join(", ")
                ));
            }
        }
        let ex = parse_exec(name, &n.exec)?;
        let role = n.labels.get("ferry.role").ok_or_else(|| {
            format!("{owner}: label ferry.role is missing (router, speaker, vm or client)")
        })?;
        let site_of = || -> std::result::Result<Site, String> {
            site(
                n.labels
                    .get("ferry.site")
                    .ok_or_else(|| format!("{owner}: label ferry.site is missing"))?,
                &owner,
            )
        };
        match role.as_str() {
            "router" => {
                let conf = n.startup_config.as_ref().ok_or_else(|| {
                    format!("{owner}: a router needs startup-config (its frr.conf)")
                })?;
                let text =
                    read(conf).map_err(|e| format!("{owner}: startup-config {conf}: {e}"))?;
                topo.configs.insert(name.clone(), text);
                topo.routers.push(Router {
                    name: name.clone(),
                    site: match n.labels.get("ferry.site") {
                        Some(s) => Some(site(s, &owner)?),
                        None => None,
                    },
                    asn: label(&n.labels, &owner, "ferry.asn")?,
                    config: conf.clone(),
                    bgpd_modules: Vec::new(),
                });
            }
            "speaker" => topo.speakers.push(Speaker {
                name: name.clone(),
                site: site_of()?,
                asn: label(&n.labels, &owner, "ferry.asn")?,
                router_id: label(&n.labels, &owner, "ferry.router-id")?,
                peer: label(&n.labels, &owner, "ferry.peer")?,
                peer_as: label(&n.labels, &owner, "ferry.peer-as")?,
                next_hop: label(&n.labels, &owner, "ferry.next-hop")?,
                next_hop6: label(&n.labels, &owner, "ferry.next-hop6")?,
            }),
            "vm" | "client" => topo.hosts.push(Host {
                name: name.clone(),
                role: if role == "vm" { Role::Vm } else { Role::Client },
                site: site_of()?,
                gateway: ex
                    .gateway
                    .ok_or_else(|| format!("{owner}: exec needs `ip route add default via GW`"))?,
                gateway6: ex.gateway6.ok_or_else(|| {
                    format!("{owner}: exec needs `ip -6 route add default via GW`")
                })?,
            }),
            other => {
                return Err(format!(
                    "{owner}: label ferry.role: {other:?} is not router, speaker, vm or client"
                ))
            }
        }
        if n.startup_config.is_some() && role != "router" {
            return Err(format!("{owner}: startup-config is for routers"));
        }
        let binds = n
            .binds
            .iter()
            .map(|b| {
                let (host, rest) = b
                    .split_once(':')
                    .ok_or_else(|| format!("{owner}: bind {b:?} is not HOST:CONTAINER[:ro]"))?;
                Ok(format!("{}:{rest}", dir.join(host).display()))
            })
            .collect::<std::result::Result<Vec<_>, String>>()?;
        topo.containers.insert(
            name.clone(),
            NodeContainer {
                image: n.image.clone(),
                binds,
            },
        );
        execs.insert(name.clone(), ex);
    }
    let mut used: Vec<(String, String)> = Vec::new();
    for (i, l) in clab.topology.links.iter().enumerate() {
        let ends = l
            .endpoints
            .iter()
            .map(|e| {
                let (node, ifname) = e
                    .split_once(':')
                    .ok_or_else(|| format!("links[{i}]: endpoint {e:?} is not NODE:INTERFACE"))?;
                if !clab.topology.nodes.contains_key(node) {
                    return Err(format!("links[{i}]: endpoint {e}: no node {node}"));
                }
                let addrs = execs
                    .get(node)
                    .and_then(|x| x.addrs.get(ifname))
                    .cloned()
                    .unwrap_or_default();
                used.push((node.to_owned(), ifname.to_owned()));
                Ok(End {
                    node: node.to_owned(),
                    ifname: ifname.to_owned(),
                    addrs,
                })
            })
            .collect::<std::result::Result<Vec<End>, String>>()?;
        let [a, b]: [End; 2] = ends
            .try_into()
            .map_err(|_| format!("links[{i}]: endpoints must name two interfaces"))?;
        topo.links.push(Link { a, b });
    }
    topo.check()?;
    for (node, ex) in &execs {
        for ifname in ex.addrs.keys() {
            if !used.contains(&(node.clone(), ifname.clone())) {
                return Err(format!(
                    "node {node}: exec adds an address to {ifname}, which no link ends at"
                ));
            }
        }
    }
    Ok(topo)
}

/// The clab file for `topo` with each router's `startup-config` at `<router>/frr.conf`, every
/// node on `image`.
pub fn export(topo: &Topology, image: &str) -> ClabFile {
    let mut lab = BTreeMap::new();
    lab.insert("ferry.prefix".into(), topo.prefix.to_string());
    lab.insert("ferry.prefix6".into(), topo.prefix6.to_string());
    lab.insert("ferry.vm-address".into(), topo.vm_address.to_string());
    lab.insert("ferry.probe-port".into(), topo.probe_port.to_string());
    let exec_of = |node: &str| -> Vec<String> {
        topo.links
            .iter()
            .flat_map(|l| [&l.a, &l.b])
            .filter(|e| e.node == node)
            .flat_map(|e| {
                e.addrs
                    .iter()
                    .map(move |a| format!("ip addr add {a} dev {}", e.ifname))
            })
            .collect()
    };
    let mut nodes = BTreeMap::new();
    let node = |kind: &str,
                labels: Vec<(&str, String)>,
                exec: Vec<String>,
                conf: Option<String>| ClabNode {
        kind: kind.into(),
        image: Some(image.to_owned()),
        binds: Vec::new(),
        startup_config: conf,
        labels: labels.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        exec,
    };
    for r in &topo.routers {
        let mut labels = vec![
            ("ferry.role", "router".into()),
            ("ferry.asn", r.asn.to_string()),
        ];
        if let Some(s) = r.site {
            labels.push(("ferry.site", s.name().into()));
        }
        nodes.insert(
            r.name.clone(),
            node(
                "frr",
                labels,
                exec_of(&r.name),
                Some(format!("{}/frr.conf", r.name)),
            ),
        );
    }
    for s in &topo.speakers {
        let labels = vec![
            ("ferry.role", "speaker".into()),
            ("ferry.site", s.site.name().into()),
            ("ferry.asn", s.asn.to_string()),
            ("ferry.router-id", s.router_id.to_string()),
            ("ferry.peer", s.peer.to_string()),
            ("ferry.peer-as", s.peer_as.to_string()),
            ("ferry.next-hop", s.next_hop.to_string()),
            ("ferry.next-hop6", s.next_hop6.to_string()),
        ];
        nodes.insert(
            s.name.clone(),
            node("linux", labels, exec_of(&s.name), None),
        );
    }
    for h in &topo.hosts {
        let role = match h.role {
            Role::Vm => "vm",
            Role::Client => "client",
        };
        let labels = vec![
            ("ferry.role", role.into()),
            ("ferry.site", h.site.name().into()),
        ];
        let mut exec = exec_of(&h.name);
        exec.push(format!("ip route add default via {}", h.gateway));
        exec.push(format!("ip -6 route add default via {}", h.gateway6));
        nodes.insert(h.name.clone(), node("linux", labels, exec, None));
    }
    let links = topo
        .links
        .iter()
        .map(|l| ClabLink {
            endpoints: vec![
                format!("{}:{}", l.a.node, l.a.ifname),
                format!("{}:{}", l.b.node, l.b.ifname),
            ],
        })
        .collect();
    ClabFile {
        name: topo.name.clone(),
        topology: ClabTopology {
            defaults: Some(ClabDefaults { labels: lab }),
            nodes,
            links,
        },
    }
}

/// Write `<dir>/<name>.clab.yml` and each router's `<dir>/<router>/frr.conf`; the file's path.
pub fn write_export(topo: &Topology, image: &str, dir: &Path) -> Result<std::path::PathBuf> {
    let clab = export(topo, image);
    let text =
        serde_norway::to_string(&clab).map_err(|e| LabError::step("containerlab export", e))?;
    let file = dir.join(format!("{}.clab.yml", topo.name));
    let write = |p: &Path, t: &str| {
        p.parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(p, t))
            .map_err(|e| LabError::step(format!("writing {}", p.display()), e))
    };
    let header = format!(
        "# The {} lab for containerlab, written by `ferry lab export --format containerlab`.\n\
         # Roles are the ferry.* labels; addresses and default routes are the exec lines.\n",
        topo.name
    );
    write(&file, &format!("{header}{text}"))?;
    for r in &topo.routers {
        write(&dir.join(&r.name).join("frr.conf"), &topo.configs[&r.name])?;
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builtin_clab() -> (ClabFile, BTreeMap<String, String>) {
        let t = Topology::builtin().unwrap();
        let files = t
            .routers
            .iter()
            .map(|r| (format!("{}/frr.conf", r.name), t.configs[&r.name].clone()))
            .collect();
        (export(&t, "img:1"), files)
    }

    fn read(files: &BTreeMap<String, String>) -> impl Fn(&str) -> std::io::Result<String> + '_ {
        |p| {
            files
                .get(p)
                .cloned()
                .ok_or_else(|| std::io::Error::other(format!("no {p}")))
        }
    }

    #[test]
    fn export_then_read_gives_the_same_lab() {
        let t = Topology::builtin().unwrap();
        let (clab, files) = builtin_clab();
        let text = serde_norway::to_string(&clab).unwrap();
        let back: ClabFile = serde_norway::from_str(&text).unwrap();
        let u = to_topology(&back, Path::new("/x"), read(&files)).unwrap();
        assert_eq!(u.node_names().len(), t.node_names().len());
        assert_eq!(u.addr_towards("r1", "r3"), t.addr_towards("r1", "r3"));
        assert_eq!(
            u.speaker(Site::Recovery).peer,
            t.speaker(Site::Recovery).peer
        );
        assert_eq!(u.client().unwrap().gateway, t.client().unwrap().gateway);
        assert_eq!(u.configs["r3"], t.configs["r3"]);
        assert_eq!(u.containers["r1"].image.as_deref(), Some("img:1"));
    }

    #[test]
    fn bad_files_are_refused_by_name() {
        let (_, files) = builtin_clab();
        let check = |edit: &dyn Fn(&mut ClabFile), want: &str| {
            let (mut c, _) = builtin_clab();
            edit(&mut c);
            let e = to_topology(&c, Path::new("/x"), read(&files)).unwrap_err();
            assert!(e.contains(want), "{e} lacks {want}");
        };
        check(
            &|c| c.topology.links[0].endpoints[1] = "r9:eth1".into(),
            "links[0]: endpoint r9:eth1: no node r9",
        );
        check(
            &|c| c.topology.links[1].endpoints[0] = c.topology.links[0].endpoints[0].clone(),
            "interface r1:eth-r3 is the end of two links",
        );
        check(
            &|c| c.topology.nodes.get_mut("r1").unwrap().kind = "ceos".into(),
            "node r1: kind \"ceos\" is not supported",
        );
        check(
            &|c| {
                c.topology
                    .nodes
                    .get_mut("vm1")
                    .unwrap()
                    .labels
                    .insert("ferry.colour".into(), "x".into());
            },
            "node vm1: unknown label ferry.colour",
        );
        check(
            &|c| {
                c.topology
                    .nodes
                    .get_mut("vm1")
                    .unwrap()
                    .exec
                    .push("sysctl -w x=1".into())
            },
            "node vm1: exec \"sysctl -w x=1\"",
        );
        let yaml = "name: x\ntopology:\n  nodes: {}\n  mgmt: {}\n";
        let e = serde_norway::from_str::<ClabFile>(yaml).unwrap_err();
        assert!(e.to_string().contains("unknown field `mgmt`"), "{e}");
    }
}
