//! Namespaces, veth pairs, addresses and host routes, all through `ip`.
//!
//! Contract: every namespace is `fl-<instance>-<node>`; a veth pair is created directly inside
//! its two namespaces (`ip link add A netns X type veth peer name B netns Y`), so no interface
//! or route ever appears in the root namespace. Deleting a namespace removes its veths.

use std::time::Duration;

use ipnet::IpNet;

use super::proc::{self, ip};
use super::Result;

pub fn name(instance: &str, node: &str) -> String {
    format!("fl-{instance}-{node}")
}

/// The namespaces of an instance that exist now.
pub fn list(instance: &str) -> Result<Vec<String>> {
    let prefix = format!("fl-{instance}-");
    Ok(ip(&["netns", "list"])?
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&prefix))
        .map(str::to_owned)
        .collect())
}

pub fn exists(ns: &str) -> bool {
    std::path::Path::new("/run/netns").join(ns).exists()
}

pub fn create(ns: &str) -> Result<()> {
    if !exists(ns) {
        ip(&["netns", "add", ns])?;
    }
    ip(&["-n", ns, "link", "set", "lo", "up"])?;
    Ok(())
}

pub fn veth(ns_a: &str, if_a: &str, ns_b: &str, if_b: &str) -> Result<()> {
    ip(&[
        "link", "add", if_a, "netns", ns_a, "type", "veth", "peer", "name", if_b, "netns", ns_b,
    ])?;
    Ok(())
}

pub fn address(ns: &str, ifname: &str, addr: &IpNet) -> Result<()> {
    let a = addr.to_string();
    let mut args = vec!["-n", ns, "addr", "add", &a, "dev", ifname];
    if matches!(addr, IpNet::V6(_)) {
        // No duplicate address detection: the address is usable at once.
        args.push("nodad");
    }
    ip(&args)?;
    Ok(())
}

pub fn up(ns: &str, ifname: &str) -> Result<()> {
    ip(&["-n", ns, "link", "set", ifname, "up"])?;
    Ok(())
}

pub fn default_route(ns: &str, via: &std::net::IpAddr) -> Result<()> {
    let v = via.to_string();
    let family = if via.is_ipv6() { "-6" } else { "-4" };
    ip(&["-n", ns, family, "route", "replace", "default", "via", &v])?;
    Ok(())
}

/// Pids of every process in the namespace.
pub fn pids(ns: &str) -> Vec<u32> {
    ip(&["netns", "pids", ns])
        .map(|out| out.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// Stop every process in the namespace (they are the lab's: the namespace is), then delete it.
pub fn destroy(ns: &str) -> Result<()> {
    if !exists(ns) {
        return Ok(());
    }
    for pid in pids(ns) {
        proc::signal(pid, "TERM");
    }
    let gone = proc::poll(Duration::from_secs(3), Duration::from_millis(20), || {
        pids(ns).is_empty()
    });
    if !gone {
        for pid in pids(ns) {
            proc::signal(pid, "KILL");
        }
        proc::poll(Duration::from_secs(2), Duration::from_millis(20), || {
            pids(ns).is_empty()
        });
    }
    ip(&["netns", "del", ns])?;
    Ok(())
}
