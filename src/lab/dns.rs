//! The lab's DNS, added to a running three-site lab for the changed-IP scenarios (issue 22):
//!
//! ```text
//!   client 203.0.113.10 (resolver: named on 127.0.0.1:53, caching, static-stub to ns, ns2)
//!      |
//!     r3 .54 ---- 192.0.2.52/30 ---- .53 ns: primary authoritative named for example.test.
//!    /  \                                   (TSIG key; NOTIFY to ns2 at once)
//!  r1    r2 .57 ---- 192.0.2.56/30 ---- .58 ns2: secondary (zone transfer from ns)
//!   | 192.0.2.64/28            | 192.0.2.128/28   (each site's own LAN, announced by its router)
//!  app1 192.0.2.70           app2 192.0.2.130   (the "app" VM before and after the failover)
//! ```
//!
//! Contract:
//! - Nodes are namespaces `fl-<instance>-{ns,app1,app2}` with veths made inside them, so
//!   `ferry lab down` removes them (and every process in them) like the others; the servers'
//!   files live under the instance's runtime directory. Nothing touches the root namespace.
//! - The site routers announce their app LAN by BGP (`network`, added through vtysh), r3 and
//!   r2 the DNS servers' links, and `start` waits until the routes are there: the client
//!   reaches whichever address DNS gives, the servers reach each other.
//! - The primary authoritative server (`named`, Debian `bind9`) serves `example.test.` with
//!   `web.example.test.` at app1's address and TTL `ttl`, and takes RFC 2136 updates signed
//!   with its `tsig-keygen` key ([`DnsLab::key_file`]). A secondary at the recovery site
//!   transfers the zone (RFC 5936) when notified (RFC 1996).
//! - The resolver is another `named` in the client's namespace: recursion for the client
//!   only, `example.test.` as a static-stub zone pointing at both authoritative servers, no
//!   prefetch (BIND's default refetches an entry in its last 2 s, hiding the TTL the scenarios
//!   measure), answers cached for the TTL the authoritative server gave.
//! - Every wait has a timeout; errors name the step.
//!
//! Never does: write /etc/bind or /etc/resolv.conf, or start a system named.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use testkit::daemons::bind::{Bind, ZoneSpec};

use super::instance::LabInstance;
use super::proc::{self, in_ns};
use super::topology::Site;
use super::{netns, LabError, Result};

pub const ZONE: &str = "example.test.";
/// The name the client probes.
pub const NAME: &str = "web.example.test.";
/// The authoritative server, at the third site.
pub const AUTH: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 53);
const AUTH_GW: &str = "192.0.2.54/30";
const AUTH_ADDR: &str = "192.0.2.53/30";
/// The secondary authoritative server, at the recovery site.
pub const SECONDARY: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 58);
const SECONDARY_GW: &str = "192.0.2.57/30";
const SECONDARY_ADDR: &str = "192.0.2.58/30";
/// The client's resolver, inside its namespace.
pub const RESOLVER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 53);

/// Per VM site: (node, router-side address, VM address with its LAN, the LAN).
fn app_node(site: Site) -> (&'static str, &'static str, &'static str, &'static str) {
    match site {
        Site::Recovery => ("app2", "192.0.2.129/28", "192.0.2.130/28", "192.0.2.128/28"),
        _ => ("app1", "192.0.2.65/28", "192.0.2.70/28", "192.0.2.64/28"),
    }
}

/// The app VM's address at `site` (what DNS gives for [`NAME`] while the app runs there).
pub fn app_address(site: Site) -> IpAddr {
    match site {
        Site::Recovery => IpAddr::V4(Ipv4Addr::new(192, 0, 2, 130)),
        _ => IpAddr::V4(Ipv4Addr::new(192, 0, 2, 70)),
    }
}

/// BIND's programs are installed (checked before a lab is built for nothing).
pub fn preflight() -> Result<()> {
    for tool in ["named", "tsig-keygen", "dig"] {
        if !["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
            .iter()
            .any(|d| std::path::Path::new(d).join(tool).exists())
        {
            return Err(LabError::step(
                "lab DNS",
                format!("{tool} not found: run `apt-get install bind9 bind9-dnsutils`"),
            ));
        }
    }
    Ok(())
}

/// The DNS part of a lab: its servers (the resolver stopped on drop, the authoritative ones
/// by [`Bind`]'s drop; `down` removes their namespaces and anything left in them).
pub struct DnsLab {
    pub auth: Bind,
    pub secondary: Bind,
    resolver: Option<Child>,
    resolver_dir: PathBuf,
    client_ns: String,
    /// The namespace of the third site's DNS server; the controller runs there.
    pub ns: String,
    instance: String,
}

impl DnsLab {
    /// Add the nodes, links, routes and servers to `lab`; `ttl` is the record's TTL.
    pub fn start(lab: &mut LabInstance, ttl: u32) -> Result<Self> {
        preflight()?;
        let t = lab.topo.clone();
        let r3 = lab.ns(&t.router(Site::Third).name);
        let ns = lab.ns("ns");
        let mut created = vec![ns.clone()];
        netns::create(&ns)?;
        link(&r3, "eth-ns", AUTH_GW, &ns, AUTH_ADDR)?;
        netns::default_route(&ns, &IpAddr::V4(Ipv4Addr::new(192, 0, 2, 54)))?;
        let ns2 = lab.ns("ns2");
        netns::create(&ns2)?;
        created.push(ns2.clone());
        let r2 = lab.ns(&t.router(Site::Recovery).name);
        link(&r2, "eth-ns", SECONDARY_GW, &ns2, SECONDARY_ADDR)?;
        netns::default_route(&ns2, &IpAddr::V4(Ipv4Addr::new(192, 0, 2, 57)))?;
        // The servers' links, announced so that each reaches the other and the controller
        // (at the third site) reaches both.
        for (site, net) in [
            (Site::Third, "192.0.2.52/30"),
            (Site::Recovery, "192.0.2.56/30"),
        ] {
            lab.frr(site).vtysh(&[
                "configure terminal",
                &format!("router bgp {}", t.router(site).asn),
                "address-family ipv4 unicast",
                &format!("network {net}"),
            ])?;
        }
        for site in [Site::Primary, Site::Recovery] {
            let (node, gw, vm, lan) = app_node(site);
            let router = t.router(site);
            let vm_ns = lab.ns(node);
            netns::create(&vm_ns)?;
            created.push(vm_ns.clone());
            link(&lab.ns(&router.name), "eth-app", gw, &vm_ns, vm)?;
            let gw_ip: IpAddr = gw
                .split('/')
                .next()
                .and_then(|a| a.parse().ok())
                .ok_or_else(|| LabError::Topology(format!("app gateway {gw}")))?;
            netns::default_route(&vm_ns, &gw_ip)?;
            lab.frr(site).vtysh(&[
                "configure terminal",
                &format!("router bgp {}", router.asn),
                "address-family ipv4 unicast",
                &format!("network {lan}"),
            ])?;
        }
        lab.state.namespaces.extend(created);
        lab.state.save()?;
        let wanted = [
            (&r3, app_node(Site::Primary).3),
            (&r3, app_node(Site::Recovery).3),
            (&r3, "192.0.2.56/30"),
            (&r2, "192.0.2.52/30"),
        ];
        for (router, net) in wanted {
            let routed = proc::poll(Duration::from_secs(20), Duration::from_millis(50), || {
                proc::ip(&["-n", router, "-4", "route", "show", net])
                    .is_ok_and(|r| r.contains("via"))
            });
            if !routed {
                return Err(LabError::step(
                    "lab DNS",
                    format!("{router} has no route to {net} after 20 s"),
                ));
            }
        }
        let spec = ZoneSpec {
            zone: ZONE.into(),
            ttl,
            records: vec![(
                "web".into(),
                "A".into(),
                app_address(Site::Primary).to_string(),
            )],
            secondaries: vec![SocketAddr::new(IpAddr::V4(SECONDARY), 53)],
        };
        let auth = Bind::try_start(
            &lab.dir.join("dns-auth"),
            Some(&ns),
            IpAddr::V4(AUTH),
            53,
            &spec,
        )
        .map_err(|e| LabError::step("authoritative named", e))?;
        if let Some(pid) = auth.pid() {
            lab.state.add_process("named-auth", &ns, pid)?;
        }
        let secondary = Bind::try_start_secondary(
            &lab.dir.join("dns-secondary"),
            Some(&ns2),
            IpAddr::V4(SECONDARY),
            53,
            ZONE,
            SocketAddr::new(IpAddr::V4(AUTH), 53),
        )
        .map_err(|e| LabError::step("secondary named", e))?;
        if let Some(pid) = secondary.pid() {
            lab.state.add_process("named-secondary", &ns2, pid)?;
        }
        let client_ns = lab.ns(&t
            .client()
            .map(|c| c.name.clone())
            .ok_or_else(|| LabError::Topology("no client host".into()))?);
        let mut d = DnsLab {
            auth,
            secondary,
            resolver: None,
            resolver_dir: lab.dir.join("dns-resolver"),
            client_ns,
            ns,
            instance: lab.instance.clone(),
        };
        d.write_resolver_conf()?;
        d.restart_resolver()?;
        if let Some(pid) = d.resolver.as_ref().map(Child::id) {
            lab.state.add_process("named-resolver", &d.client_ns, pid)?;
        }
        Ok(d)
    }

    pub fn key_file(&self) -> PathBuf {
        self.auth.key_file()
    }

    /// The namespace of the app VM at `site`.
    pub fn app_ns(&self, site: Site) -> String {
        netns::name(&self.instance, app_node(site).0)
    }

    fn write_resolver_conf(&self) -> Result<()> {
        let d = self.resolver_dir.display();
        let zone = ZONE.trim_end_matches('.');
        let conf = format!(
            "options {{\n  directory \"{d}\";\n  pid-file \"{d}/named.pid\";\n  listen-on port {port} {{ {ip}; }};\n  listen-on-v6 {{ none; }};\n  recursion yes;\n  allow-query {{ {ip}; }};\n  allow-recursion {{ {ip}; }};\n  dnssec-validation no;\n  prefetch 0;\n  notify no;\n  session-keyfile \"{d}/session.key\";\n  managed-keys-directory \"{d}\";\n}};\ncontrols {{ }};\nzone \"{zone}\" {{ type static-stub; server-addresses {{ {AUTH}; {SECONDARY}; }}; }};\n",
            port = RESOLVER.port(),
            ip = RESOLVER.ip(),
        );
        std::fs::create_dir_all(&self.resolver_dir)
            .and_then(|()| std::fs::write(self.resolver_dir.join("named.conf"), conf))
            .map_err(|e| LabError::step(format!("writing {d}/named.conf"), e))
    }

    /// Start the resolver afresh (an empty cache) and wait until it resolves [`NAME`].
    pub fn restart_resolver(&mut self) -> Result<()> {
        if let Some(mut c) = self.resolver.take() {
            testkit::signal::stop_child("resolver named", &mut c, Duration::from_secs(3));
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.resolver_dir.join("named.log"))
            .map_err(|e| LabError::step("resolver log", e))?;
        let err = log
            .try_clone()
            .map_err(|e| LabError::step("resolver log", e))?;
        let mut cmd = in_ns(&self.client_ns, "named");
        cmd.arg("-g")
            .arg("-c")
            .arg(self.resolver_dir.join("named.conf"))
            .stdin(Stdio::null())
            .stdout(err)
            .stderr(log);
        self.resolver = Some(proc::spawn(&mut cmd)?);
        // Asked from inside the client's namespace, as the prober will.
        let ok = proc::poll(Duration::from_secs(10), Duration::from_millis(50), || {
            self.dig_resolver().is_ok_and(|a| !a.is_empty())
        });
        if !ok {
            let log =
                std::fs::read_to_string(self.resolver_dir.join("named.log")).unwrap_or_default();
            return Err(LabError::step(
                "resolver named",
                format!(
                    "does not resolve {NAME} after 10 s; its log ends:\n{}",
                    tail(&log, 10)
                ),
            ));
        }
        Ok(())
    }

    /// `dig` at the client's resolver: the address it gives for [`NAME`] now.
    pub fn dig_resolver(&self) -> Result<String> {
        let out = proc::run(
            in_ns(&self.client_ns, "dig").args([
                "+short",
                "+time=1",
                "+tries=1",
                &format!("@{}", RESOLVER.ip()),
                NAME,
                "A",
            ]),
            Duration::from_secs(5),
        )?;
        Ok(out.trim().to_owned())
    }

    /// Wait until both authoritative servers answer [`NAME`] with `ttl` (asked from the
    /// client's namespace, without recursion): a TTL change reaches the secondary by zone
    /// transfer, a moment after the primary.
    pub fn wait_ttl(&self, ttl: u32, timeout: Duration) -> Result<()> {
        let mut last = String::new();
        let ok = proc::poll(timeout, Duration::from_millis(20), || {
            [AUTH, SECONDARY].iter().all(|server| {
                let out = proc::run(
                    in_ns(&self.client_ns, "dig").args([
                        "+norec",
                        "+noall",
                        "+answer",
                        "+time=1",
                        "+tries=1",
                        &format!("@{server}"),
                        NAME,
                        "A",
                    ]),
                    Duration::from_secs(5),
                )
                .unwrap_or_default();
                last = format!("{server}: {}", out.trim());
                out.split_whitespace().nth(1) == Some(ttl.to_string().as_str())
            })
        });
        if ok {
            Ok(())
        } else {
            Err(LabError::step(
                "lab DNS",
                format!(
                    "the servers do not answer {NAME} with TTL {ttl} after {} s (last: {last})",
                    timeout.as_secs()
                ),
            ))
        }
    }

    /// Start the app VM's responder at `site` (tag: the site's name), detached, the way the
    /// plan's hooks start it.
    pub fn start_app(&self, site: Site, probe_port: u16) -> Result<()> {
        proc::run(
            std::process::Command::new("sh")
                .args(["-c", &start_app_command(&self.app_ns(site), probe_port)])
                .env("TAG", site.name()),
            Duration::from_secs(10),
        )
        .map(|_| ())
    }
}

/// A shell command that starts a responder tagged `$TAG` in `vm_ns`, detached (`setsid`: it
/// is the VM, not a child of whoever started it).
pub fn start_app_command(vm_ns: &str, port: u16) -> String {
    format!(
        "ip netns exec {vm_ns} setsid {} lab responder --tag $TAG --port {port} </dev/null >/dev/null 2>&1 &",
        super::ferry_exe()
    )
}

fn link(ns_a: &str, if_a: &str, addr_a: &str, ns_b: &str, addr_b: &str) -> Result<()> {
    netns::veth(ns_a, if_a, ns_b, "eth0")?;
    for (ns, ifname, a) in [(ns_a, if_a, addr_a), (ns_b, "eth0", addr_b)] {
        let net = a
            .parse()
            .map_err(|e| LabError::Topology(format!("address {a}: {e}")))?;
        netns::address(ns, ifname, &net)?;
        netns::up(ns, ifname)?;
    }
    Ok(())
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

impl Drop for DnsLab {
    fn drop(&mut self) {
        if let Some(mut c) = self.resolver.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
