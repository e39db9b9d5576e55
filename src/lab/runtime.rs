//! Where the lab's nodes run: the [`Runtime`] trait and its `netns` implementation (bare
//! network namespaces, the default); [`super::docker`] is the other one.
//!
//! Contract: whatever the runtime, every node's network namespace is reachable by name as
//! `fl-<instance>-<node>` (`ip netns` lists it), so links, addresses, routes, `ip monitor`,
//! link cuts and the process census are one code path for both runtimes ([`super::netns`]).
//! What differs is where a node's *programs* run (FRR daemons, speakers, responders, the
//! prober): [`Runtime::command`] builds the command that runs one inside the node, and it
//! always execs, so the child's pid is the program's and a SIGKILL is a crash, as before.
//! Never does: create anything in the root namespace; remove what another instance made.

use std::process::Command;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

use super::clab::NodeContainer;
use super::topology::Topology;
use super::{netns, LabError, Result};

/// Which runtime an instance runs on (kept in its state file, so `status`, `down` and a
/// later `attach` use the one `up` used).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    /// Bare network namespaces, programs from the host's packages.
    #[default]
    Netns,
    /// A Docker container per node (`--network none`), its namespace attached by name.
    Docker,
}

impl RuntimeKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Netns => "netns",
            Self::Docker => "docker",
        }
    }
}

/// What a node is, for the runtime that picks its image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// An FRR router.
    Router,
    /// A speaker host, a VM or the client: runs `ferry` only.
    Host,
}

/// One way of running the lab's nodes.
pub trait Runtime: std::fmt::Debug + Send + Sync {
    fn kind(&self) -> RuntimeKind;

    /// What this runtime needs to run `topo` beyond root and `ip` (the host's FRR; or the
    /// engine and every image), checked before anything is created; the error names what
    /// is missing.
    fn preflight(&self, topo: &Topology) -> Result<()>;

    /// Create node `node` so that its network namespace is the named namespace `ns` (with
    /// `lo` up); `container` is its image and binds from a containerlab file (Docker only).
    /// Returns its runtime id (the namespace name, or the container id).
    fn create_node(
        &self,
        ns: &str,
        node: &str,
        kind: NodeKind,
        container: Option<&NodeContainer>,
    ) -> Result<String>;

    /// Remove node `node` (namespace `ns`) if it exists, with the processes in it; nothing if
    /// it does not.
    fn remove_node(&self, ns: &str, node: &str) -> Result<()>;

    /// A veth pair between two nodes, each end created straight inside its namespace (the
    /// same for every runtime: the namespaces have names).
    fn link(&self, ns_a: &str, if_a: &str, ns_b: &str, if_b: &str) -> Result<()> {
        netns::veth(ns_a, if_a, ns_b, if_b)
    }

    /// A command that runs `program` inside node `ns` (an `exec`: the child is the program).
    /// `TZ=UTC`: FRR and `ip -ts` print local time, which the lab parses as UTC.
    fn command(&self, ns: &str, program: &str) -> Command;

    /// The `ferry` binary as a node sees it.
    fn ferry(&self) -> String;

    /// Remove every node of `instance` this runtime made (processes in them are stopped
    /// first). Returns what was removed, one line each.
    fn remove_all(&self, instance: &str) -> Result<Vec<String>>;

    /// Runtime ids of the instance's nodes that exist now, by namespace name.
    fn node_ids(&self, instance: &str) -> Vec<(String, String)>;
}

/// Bare network namespaces: `ip netns add`, programs through `ip netns exec`.
#[derive(Debug, Default)]
pub struct NetnsRuntime;

impl Runtime for NetnsRuntime {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Netns
    }

    fn preflight(&self, _topo: &Topology) -> Result<()> {
        super::frr::check_installed()
    }

    fn create_node(
        &self,
        ns: &str,
        _node: &str,
        _kind: NodeKind,
        _container: Option<&NodeContainer>,
    ) -> Result<String> {
        netns::create(ns)?;
        Ok(ns.to_owned())
    }

    fn remove_node(&self, ns: &str, _node: &str) -> Result<()> {
        if netns::exists(ns) {
            netns::destroy(ns)?;
        }
        Ok(())
    }

    fn command(&self, ns: &str, program: &str) -> Command {
        super::proc::in_ns(ns, program)
    }

    fn ferry(&self) -> String {
        super::ferry_exe()
    }

    fn remove_all(&self, instance: &str) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        for ns in netns::list(instance)? {
            netns::destroy(&ns)?;
            removed.push(format!("namespace {ns}"));
        }
        Ok(removed)
    }

    fn node_ids(&self, instance: &str) -> Vec<(String, String)> {
        netns::list(instance)
            .unwrap_or_default()
            .into_iter()
            .map(|n| (n.clone(), n))
            .collect()
    }
}

/// What `ferry lab` was asked for on the command line, set once before any lab work (like
/// [`super::human_to_stderr`]): the runtime of instances this process creates, and the FRR
/// image for the Docker runtime's routers. Instances that exist keep the runtime their state
/// file names.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub kind: RuntimeKind,
    pub frr_image: Option<String>,
}

static SELECTION: OnceLock<Selection> = OnceLock::new();

/// Choose the runtime for instances this process creates (first call wins).
pub fn select(selection: Selection) {
    let _ = SELECTION.set(selection);
}

/// The selection, or the default (netns, no image).
pub fn selected() -> Selection {
    SELECTION.get().cloned().unwrap_or_default()
}

/// The runtime of kind `kind` for `instance`.
pub fn make(kind: RuntimeKind, instance: &str, frr_image: Option<&str>) -> Arc<dyn Runtime> {
    match kind {
        RuntimeKind::Netns => Arc::new(NetnsRuntime),
        RuntimeKind::Docker => Arc::new(super::docker::DockerRuntime::new(instance, frr_image)),
    }
}

/// A runtime error that is the user's to fix (bad image, Docker not running) is usage.
pub fn usage(detail: impl Into<String>) -> LabError {
    LabError::Runtime(detail.into())
}
