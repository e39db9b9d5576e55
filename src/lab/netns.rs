//! The lab's namespaces, veth pairs, addresses and host routes, on the test kit's
//! `testkit::netns` functions (all through `ip`).
//!
//! Contract: every namespace is `fl-<instance>-<node>`; a veth pair is created directly inside
//! its two namespaces (`ip link add A netns X type veth peer name B netns Y`), so no interface
//! or route ever appears in the root namespace. Deleting a namespace removes its veths.

use ipnet::IpNet;

pub use testkit::netns::{exists, pids};

use super::{LabError, Result};

pub fn name(instance: &str, node: &str) -> String {
    format!("fl-{instance}-{node}")
}

/// The namespaces of an instance that exist now.
pub fn list(instance: &str) -> Result<Vec<String>> {
    testkit::netns::list(&format!("fl-{instance}-")).map_err(LabError::command)
}

pub fn create(ns: &str) -> Result<()> {
    testkit::netns::create(ns).map_err(LabError::command)
}

pub fn veth(ns_a: &str, if_a: &str, ns_b: &str, if_b: &str) -> Result<()> {
    testkit::netns::veth(ns_a, if_a, ns_b, if_b).map_err(LabError::command)
}

/// IPv6 addresses get no duplicate address detection: they are usable at once.
pub fn address(ns: &str, ifname: &str, addr: &IpNet) -> Result<()> {
    testkit::netns::address(ns, ifname, &addr.to_string()).map_err(LabError::command)
}

pub fn up(ns: &str, ifname: &str) -> Result<()> {
    testkit::netns::up(ns, ifname).map_err(LabError::command)
}

pub fn default_route(ns: &str, via: &std::net::IpAddr) -> Result<()> {
    testkit::netns::default_route(ns, via).map_err(LabError::command)
}

/// Stop every process in the namespace (they are the lab's: the namespace is), then delete it.
pub fn destroy(ns: &str) -> Result<()> {
    testkit::netns::destroy(ns).map_err(LabError::command)
}
