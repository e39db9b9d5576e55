//! RPKI route origin validation at one lab router (docs/rpki.md, "In the lab"): the topology's
//! optional `[rpki]` table makes `ferry lab up` write the lab's ROAs as a VRP JSON file (the
//! format rpki-client writes), serve it with Debian's `stayrtr` over RTR (RFC 8210) on
//! 127.0.0.1 in that router's namespace, load bgpd's `rpki` module there (Debian's
//! `frr-rpki-rtrlib`) pointed at it, and deny RPKI Invalid routes (RFC 6811 §2) first in the
//! router's import route-map. `ferry plan check` run in the same namespace asks the same
//! stayrtr, so the preflight and the router judge from the same VRPs.
//!
//! Contract:
//! - An `[rpki]` that exists is consistent: its router is in the topology, its route-map is
//!   defined in the router's frr.conf, every ROA is a valid VRP (maxLength within the prefix's
//!   length and the family's), the port is not 0. Errors name the key and the value.
//! - [`Rpki::frr_config`] is the only FRR text added; the topology's frr.conf files are not
//!   changed. It keeps what neighbors send (`soft-reconfiguration inbound`), so a dropped
//!   route is visible among the received routes. FRR 8.4 does not revalidate a route it
//!   dropped when a ROA for it arrives; `clear bgp ipv4 unicast NEIGHBOR soft in` does.
//! - The VRP file is replaced whole (temporary file and rename); stayrtr re-reads it every
//!   second and notifies the router (Serial Notify), so a test or a person can publish or
//!   withdraw a ROA while the lab runs by rewriting [`vrps_path`].
//! - [`Rpki::wait_loaded`] bounds its wait; `up` fails naming what the router last showed.
//!
//! Never does: contact anything outside the lab's namespaces, or run without `[rpki]`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use super::frr::Frr;
use super::proc::{self, in_ns};
use super::topology::{Site, Topology};
use super::{LabError, Result};
use crate::rpki::rov::Vrp;

/// Where FRR's RPKI module may be: Debian's frr-rpki-rtrlib puts it in the multiarch
/// directory, FRR's own packages in /usr/lib/frr.
fn module_paths() -> [PathBuf; 2] {
    [
        PathBuf::from(format!(
            "/usr/lib/{}-linux-gnu/frr/modules/bgpd_rpki.so",
            std::env::consts::ARCH
        )),
        PathBuf::from("/usr/lib/frr/modules/bgpd_rpki.so"),
    ]
}

/// The `[rpki]` table of a topology.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rpki {
    /// The router that validates; stayrtr runs in its namespace.
    pub router: String,
    /// stayrtr's RTR port on 127.0.0.1 in that namespace (its metrics: the next port).
    #[serde(default = "default_port")]
    pub port: u16,
    /// The router's import route-map (in its frr.conf) that gets a first clause denying
    /// `match rpki invalid`.
    pub import_route_map: String,
    /// The lab's ROAs (as VRPs): what stayrtr serves when the lab comes up.
    #[serde(default, rename = "roa")]
    pub roas: Vec<Roa>,
}

fn default_port() -> u16 {
    3323
}

/// One ROA of the lab: `prefix` may be originated by `asn` up to `max_length`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Roa {
    pub prefix: IpNet,
    pub max_length: u8,
    pub asn: u32,
}

impl Roa {
    pub fn vrp(&self) -> Result<Vrp, String> {
        Vrp::new(self.prefix, self.max_length, self.asn)
    }
}

/// Where the running lab `instance` keeps the VRP file stayrtr serves.
pub fn vrps_path(instance: &str) -> PathBuf {
    super::state::dir(instance).join("rtr").join("vrps.json")
}

/// Write `vrps` as a VRP JSON file (`{"roas": [{"prefix", "maxLength", "asn": "AS..."}]}`),
/// replacing `path` whole.
pub fn write_vrps(path: &Path, vrps: &[Vrp]) -> Result<()> {
    let roas: Vec<serde_json::Value> = vrps
        .iter()
        .map(|v| {
            serde_json::json!({
                "prefix": v.prefix.to_string(),
                "maxLength": v.max_len,
                "asn": format!("AS{}", v.asn),
            })
        })
        .collect();
    let doc =
        serde_json::json!({"metadata": {"generated": super::now_us() / 1_000_000}, "roas": roas});
    let step = || format!("writing {}", path.display());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| LabError::step(step(), e))?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, doc.to_string())
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| LabError::step(step(), e))
}

/// The programs `[rpki]` needs: stayrtr and FRR's rpki module.
pub fn check_installed() -> Result<()> {
    if !testkit::root::program_exists("stayrtr") {
        return Err(LabError::step(
            "[rpki]",
            "stayrtr not found: run `apt-get install stayrtr`",
        ));
    }
    if !module_paths().iter().any(|p| p.is_file()) {
        return Err(LabError::step(
            "[rpki]",
            "FRR's bgpd_rpki.so not found: run `apt-get install frr-rpki-rtrlib`",
        ));
    }
    Ok(())
}

impl Rpki {
    /// `ferry lab up --rpki`: the third site's router validates, dropping Invalid in its
    /// FROM-PEER import route-map (the built-in topology's), with one ROA: the lab's IPv4
    /// prefix, exactly its length, for the primary speaker's AS. The recovery speaker's
    /// origin is therefore Invalid until a ROA for it is written to [`vrps_path`].
    pub fn preset(topo: &Topology) -> Self {
        Rpki {
            router: topo.router(Site::Third).name.clone(),
            port: default_port(),
            import_route_map: "FROM-PEER".into(),
            roas: vec![Roa {
                prefix: topo.prefix,
                max_length: topo.prefix.prefix_len(),
                asn: topo.speaker(Site::Primary).asn,
            }],
        }
    }

    /// The table against the rest of the topology: `routers` (name, frr.conf text).
    pub fn check<'a>(
        &self,
        mut routers: impl Iterator<Item = (&'a str, &'a str)>,
    ) -> Result<(), String> {
        let Some((_, conf)) = routers.find(|(name, _)| *name == self.router) else {
            return Err(format!("rpki.router {:?}: no such router", self.router));
        };
        if self.port == 0 || self.port == u16::MAX {
            return Err(format!(
                "rpki.port {}: use 1..=65534 (stayrtr's metrics take the next port)",
                self.port
            ));
        }
        let map = &self.import_route_map;
        if map.is_empty()
            || !map
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "rpki.import_route_map {map:?}: a route-map name (letters, digits, - and _)"
            ));
        }
        if !conf
            .lines()
            .any(|l| l.trim_start().starts_with(&format!("route-map {map} ")))
        {
            return Err(format!(
                "rpki.import_route_map {map:?}: router {}'s frr.conf defines no such route-map",
                self.router
            ));
        }
        for r in &self.roas {
            r.vrp().map_err(|e| {
                format!(
                    "rpki.roa {} max_length {} AS{}: {e}",
                    r.prefix, r.max_length, r.asn
                )
            })?;
        }
        Ok(())
    }

    /// The ROAs as VRPs (checked when the topology was loaded).
    pub fn vrps(&self) -> Vec<Vrp> {
        self.roas.iter().filter_map(|r| r.vrp().ok()).collect()
    }

    /// FRR text appended to the router's frr.conf: the cache, the Invalid-dropping clause, and
    /// `soft-reconfiguration inbound` for each of `neighbors` (the router's BGP neighbors).
    pub fn frr_config(&self, asn: u32, neighbors: &[IpAddr]) -> String {
        let mut s = format!(
            "! [rpki] of the topology (ferry lab): stayrtr on this namespace's loopback.\n\
             rpki\n rpki polling_period 1\n rpki cache 127.0.0.1 {} preference 1\nexit\n!\n\
             ! RFC 6811 §2: Invalid = covered by a VRP and matched by none; drop it on import.\n\
             route-map {} deny 1\n match rpki invalid\nexit\n!\nrouter bgp {asn}\n",
            self.port, self.import_route_map
        );
        for af in ["ipv4", "ipv6"] {
            s.push_str(&format!(" address-family {af} unicast\n"));
            for n in neighbors {
                s.push_str(&format!("  neighbor {n} soft-reconfiguration inbound\n"));
            }
            s.push_str(" exit-address-family\n");
        }
        s.push_str("exit\n");
        s
    }

    /// Write the VRP file and start stayrtr in `ns`; its pid. The router reaches it once its
    /// bgpd is up ([`Rpki::wait_loaded`]).
    pub fn start_validator(&self, instance: &str, ns: &str) -> Result<u32> {
        let path = vrps_path(instance);
        write_vrps(&path, &self.vrps())?;
        let dir = path.parent().unwrap_or(Path::new("/"));
        let step = || "starting stayrtr".to_string();
        let log = std::fs::File::create(dir.join("stayrtr.log"))
            .map_err(|e| LabError::step(step(), e))?;
        let err = log.try_clone().map_err(|e| LabError::step(step(), e))?;
        let mut cmd = in_ns(ns, "stayrtr");
        cmd.args(["-bind", &format!("127.0.0.1:{}", self.port)])
            // Its Prometheus endpoint, on loopback too (the default is every address).
            .args([
                "-metrics.addr",
                &format!("127.0.0.1:{}", self.port.saturating_add(1)),
            ])
            .arg("-cache")
            .arg(&path)
            // A local file: no staleness check, re-read every second.
            .args(["-checktime=false", "-refresh", "1", "-rtr.refresh", "1"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err);
        let child = proc::spawn(&mut cmd)?;
        Ok(child.id())
    }

    /// Wait (`timeout`) until `frr`'s RPKI table holds exactly the lab's ROAs: its cache
    /// connection works and the router validates with them.
    pub fn wait_loaded(&self, frr: &Frr, timeout: Duration) -> Result<()> {
        let mut want = self.vrps();
        want.sort();
        let mut last = String::new();
        let ok = proc::poll(timeout, Duration::from_millis(200), || {
            match frr.vtysh(&["show rpki prefix-table json"]) {
                Ok(out) => {
                    let got = router_vrps(&out);
                    last = match &got {
                        Ok(v) => format!("{} ROAs", v.len()),
                        Err(e) => e.clone(),
                    };
                    got.is_ok_and(|v| v == want)
                }
                Err(e) => {
                    last = e.to_string();
                    false
                }
            }
        });
        if ok {
            return Ok(());
        }
        let conn = frr
            .vtysh(&["show rpki cache-connection"])
            .unwrap_or_default();
        Err(LabError::step(
            format!("router {}: RPKI", frr.name),
            format!(
                "not the topology's {} ROAs after {} s (last: {last}; {})",
                want.len(),
                timeout.as_secs(),
                conn.trim().replace('\n', "; ")
            ),
        ))
    }
}

/// FRR's `show rpki prefix-table json` as VRPs, sorted.
fn router_vrps(out: &str) -> Result<Vec<Vrp>, String> {
    let v: serde_json::Value =
        serde_json::from_str(out).map_err(|e| format!("prefix-table json: {e}"))?;
    let prefixes = v["prefixes"]
        .as_array()
        .ok_or("prefix-table json: no \"prefixes\"")?;
    let mut vrps = prefixes
        .iter()
        .map(|p| {
            let addr: IpAddr = p["prefix"]
                .as_str()
                .and_then(|a| a.parse().ok())
                .ok_or_else(|| format!("prefix-table json: prefix {}", p["prefix"]))?;
            let num = |k: &str| {
                p[k].as_u64()
                    .ok_or_else(|| format!("prefix-table json: {k} {}", p[k]))
            };
            let len = u8::try_from(num("prefixLenMin")?).map_err(|e| e.to_string())?;
            let max = u8::try_from(num("prefixLenMax")?).map_err(|e| e.to_string())?;
            let asn = u32::try_from(num("asn")?).map_err(|e| e.to_string())?;
            let prefix = IpNet::new(addr, len).map_err(|e| e.to_string())?;
            Vrp::new(prefix, max, asn)
        })
        .collect::<Result<Vec<_>, _>>()?;
    vrps.sort();
    Ok(vrps)
}

#[cfg(test)]
mod tests {
    use super::*;

    const R3: &str = "router bgp 65003\nroute-map FROM-PEER permit 10\nexit\n";

    fn rpki(extra: &str) -> Result<Rpki, String> {
        let text = format!(
            "router = \"r3\"\nimport_route_map = \"FROM-PEER\"\n[[roa]]\nprefix = \"198.51.100.0/24\"\nmax_length = 24\nasn = 65101\n{extra}"
        );
        let r: Rpki = toml::from_str(&text).map_err(|e| e.to_string())?;
        r.check([("r1", ""), ("r3", R3)].into_iter())?;
        Ok(r)
    }

    #[test]
    fn a_consistent_table_is_accepted_with_its_defaults() {
        let r = rpki("").unwrap();
        assert_eq!(r.port, 3323);
        assert_eq!(
            r.vrps(),
            [Vrp::new("198.51.100.0/24".parse().unwrap(), 24, 65101).unwrap()]
        );
    }

    #[test]
    fn bad_values_are_refused_by_name() {
        for (extra, want) in [
            (
                "[[roa]]\nprefix = \"198.51.100.0/24\"\nmax_length = 16\nasn = 1\n",
                "rpki.roa 198.51.100.0/24 max_length 16",
            ),
            (
                "[[roa]]\nprefix = \"198.51.100.0/24\"\nmax_length = 33\nasn = 1\n",
                "max_length 33",
            ),
            (
                "[[roa]]\nprefix = \"198.51.100.0/24\"\nmaxLength = 24\nasn = 1\n",
                "maxLength",
            ),
        ] {
            let e = rpki(extra).unwrap_err();
            assert!(e.contains(want), "{extra}: {e}");
        }
        let r: Rpki = toml::from_str("router = \"r9\"\nimport_route_map = \"FROM-PEER\"").unwrap();
        let e = r.check([("r3", R3)].into_iter()).unwrap_err();
        assert!(e.contains("rpki.router \"r9\""), "{e}");
        let r: Rpki = toml::from_str("router = \"r3\"\nimport_route_map = \"TO-PEER\"").unwrap();
        let e = r.check([("r3", R3)].into_iter()).unwrap_err();
        assert!(e.contains("defines no such route-map"), "{e}");
        let r: Rpki =
            toml::from_str("router = \"r3\"\nimport_route_map = \"A B\"\nport = 0").unwrap();
        let e = r.check([("r3", R3)].into_iter()).unwrap_err();
        assert!(e.contains("rpki.port 0"), "{e}");
        let r: Rpki =
            toml::from_str("router = \"r3\"\nimport_route_map = \"FROM-PEER\"\nport = 65535")
                .unwrap();
        let e = r.check([("r3", R3)].into_iter()).unwrap_err();
        assert!(e.contains("rpki.port 65535"), "{e}");
    }

    #[test]
    fn the_frr_text_points_at_stayrtr_and_drops_invalid_first() {
        let r = rpki("").unwrap();
        let text = r.frr_config(65003, &["192.0.2.1".parse().unwrap()]);
        assert!(
            text.contains(" rpki cache 127.0.0.1 3323 preference 1\n"),
            "{text}"
        );
        assert!(
            text.contains("route-map FROM-PEER deny 1\n match rpki invalid\n"),
            "{text}"
        );
        assert_eq!(
            text.matches("neighbor 192.0.2.1 soft-reconfiguration inbound")
                .count(),
            2,
            "{text}"
        );
    }

    #[test]
    fn the_vrp_file_is_what_stayrtr_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rtr").join("vrps.json");
        let vrps = [
            Vrp::new("198.51.100.0/24".parse().unwrap(), 24, 65101).unwrap(),
            Vrp::new("2001:db8:100::/48".parse().unwrap(), 64, 0).unwrap(),
        ];
        write_vrps(&path, &vrps).unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(
            v["roas"][0],
            serde_json::json!({"prefix": "198.51.100.0/24", "maxLength": 24, "asn": "AS65101"})
        );
        assert_eq!(v["roas"][1]["asn"], "AS0");
        assert!(!path.with_extension("json.tmp").exists());
    }

    #[test]
    fn the_routers_table_is_read_as_vrps() {
        // FRR 8.4's `show rpki prefix-table json`.
        let out = r#"{"prefixes":[{"prefix":"198.51.100.0","prefixLenMin":24,"prefixLenMax":24,"asn":65101},{"prefix":"2001:db8:100::","prefixLenMin":48,"prefixLenMax":64,"asn":0}],"ipv4PrefixCount":1,"ipv6PrefixCount":1}"#;
        let mut want = vec![
            Vrp::new("198.51.100.0/24".parse().unwrap(), 24, 65101).unwrap(),
            Vrp::new("2001:db8:100::/48".parse().unwrap(), 64, 0).unwrap(),
        ];
        want.sort();
        assert_eq!(router_vrps(out).unwrap(), want);
        assert!(router_vrps("% No connection to RPKI cache server.").is_err());
        let bad = out.replace("\"prefixLenMax\":24", "\"prefixLenMax\":12");
        assert!(router_vrps(&bad).unwrap_err().contains("maxLength 12"));
    }

    #[test]
    fn the_preset_is_the_primary_speakers_roa_at_r3() {
        let mut t = Topology::builtin().unwrap();
        t.set_rpki(Rpki::preset(&t)).unwrap();
        let r = t.rpki.clone().unwrap();
        assert_eq!(r.router, "r3");
        assert_eq!(
            r.vrps(),
            [Vrp::new("198.51.100.0/24".parse().unwrap(), 24, 65101).unwrap()]
        );
        assert_eq!(t.router(Site::Third).bgpd_modules, ["rpki"]);
        assert!(t.configs["r3"].contains("route-map FROM-PEER deny 1"));
        let e = t.set_rpki(Rpki::preset(&t)).unwrap_err();
        assert!(e.to_string().contains("already"), "{e}");
    }

    #[test]
    fn a_topology_with_rpki_loads_the_module_and_the_text_at_its_router_only() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("lab/topologies/three-site");
        let dir = tempfile::tempdir().unwrap();
        for f in ["topology.toml", "r1/frr.conf", "r2/frr.conf", "r3/frr.conf"] {
            let to = dir.path().join(f);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            let mut text = std::fs::read_to_string(src.join(f)).unwrap();
            if f == "topology.toml" {
                text.push_str("\n[rpki]\nrouter = \"r3\"\nimport_route_map = \"FROM-PEER\"\n");
            }
            std::fs::write(to, text).unwrap();
        }
        let t = Topology::load(dir.path()).unwrap();
        let modules: Vec<_> = t.routers.iter().map(|r| r.bgpd_modules.len()).collect();
        assert_eq!(modules, [0, 0, 1]);
        assert_eq!(t.routers[2].bgpd_modules, ["rpki"]);
        let r3 = &t.configs["r3"];
        for n in ["192.0.2.1", "192.0.2.5"] {
            let line = format!("neighbor {n} soft-reconfiguration inbound");
            assert_eq!(r3.matches(&line).count(), 2, "{r3}");
        }
        assert!(r3.contains("route-map FROM-PEER deny 1"), "{r3}");
        assert!(!t.configs["r1"].contains("rpki"));
    }
}
