//! The Docker runtime: one container per node, named `<instance>-<node>`, labelled
//! `ferry.lab.instance=<instance>` and `ferry.lab.node=<node>`, started with `--network none`.
//!
//! Links are the same veth pairs as the netns runtime's, created straight inside the
//! containers' network namespaces: after `docker run`, the container's namespace is attached
//! by name (`ip netns attach fl-<instance>-<node> <pid>`), so every link end gets exactly the
//! addresses of the topology file and nothing else (a Docker network would add its own
//! bridge, subnet, gateway and address per container).
//!
//! Programs run inside a node through `nsenter` into the container's mount, UTS, IPC and
//! network namespaces: FRR's daemons and vtysh are the image's, `ferry` is the host's binary
//! bind-mounted read-only at `/usr/local/bin/ferry`, and `nsenter` execs, so the lab holds each
//! program's pid as with `ip netns exec` (a SIGKILL of a speaker is a crash, not a
//! `docker exec` client going away). The instance's runtime directory is bind-mounted at the
//! same path, so sockets, pid files and logs are where the netns runtime has them; a router's
//! directory is also its `/var/run/frr`, so `docker exec -it <instance>-r1 vtysh` works.
//!
//! Never does: pull an image, create a Docker network, publish a port, or remove a container
//! without this instance's label.

use std::collections::HashMap;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use super::clab::NodeContainer;
use super::runtime::{usage, NodeKind, Runtime, RuntimeKind};
use super::topology::Topology;
use super::{netns, proc, LabError, Result};

/// The label every container of the lab carries, with the instance name as value.
pub const LABEL_INSTANCE: &str = "ferry.lab.instance";
pub const LABEL_NODE: &str = "ferry.lab.node";
/// Where the host's `ferry` appears in every container.
pub const FERRY_IN_NODE: &str = "/usr/local/bin/ferry";

/// `docker ARGS...` within 60 s; stdout. A daemon that does not answer is named as such.
pub fn docker(args: &[&str]) -> Result<String> {
    proc::run(Command::new("docker").args(args), Duration::from_secs(60)).map_err(|e| match e {
        LabError::Step { detail, .. } if not_running(&detail) => engine_down(),
        e => e,
    })
}

fn not_running(detail: &str) -> bool {
    detail.contains("Cannot connect to the Docker daemon")
        || detail.contains("Is the docker daemon running")
        || detail.contains("error during connect")
}

fn engine_down() -> LabError {
    let host =
        std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
    usage(format!(
        "Docker is not running (no engine answers at {host}): start it, or use --runtime netns"
    ))
}

/// The engine answers (and the `docker` client is installed).
pub fn check_engine() -> Result<()> {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("docker").exists()));
    if !found {
        return Err(usage(
            "docker not found: install the Docker engine (`apt-get install docker.io`), or use --runtime netns",
        ));
    }
    match docker(&["version", "--format", "{{.Server.Version}}"]) {
        Ok(v) if !v.trim().is_empty() => Ok(()),
        Ok(_) => Err(engine_down()),
        Err(LabError::Step { detail, .. }) if !detail.is_empty() => Err(engine_down()),
        Err(e) => Err(e),
    }
}

/// The container of node `node` of `instance`.
pub fn container_name(instance: &str, node: &str) -> String {
    format!("{instance}-{node}")
}

#[derive(Debug)]
pub struct DockerRuntime {
    instance: String,
    /// Routers' image when the user gave one; otherwise every node uses the built image.
    frr_image: Option<String>,
    /// Container init pid by namespace name (what `nsenter` targets).
    pids: Mutex<HashMap<String, u32>>,
}

impl DockerRuntime {
    pub fn new(instance: &str, frr_image: Option<&str>) -> Self {
        Self {
            instance: instance.to_owned(),
            frr_image: frr_image.map(str::to_owned),
            pids: Mutex::default(),
        }
    }

    /// A node's image: `--frr-image` for routers, else the containerlab file's, else the
    /// built one.
    fn image(&self, router: bool, container: Option<&NodeContainer>) -> Result<String> {
        if let (true, Some(img)) = (router, &self.frr_image) {
            return Ok(img.clone());
        }
        match container.and_then(|c| c.image.clone()) {
            Some(img) => Ok(img),
            None => super::image::default_image(),
        }
    }

    fn node_of<'a>(&self, ns: &'a str) -> &'a str {
        ns.strip_prefix(&format!("fl-{}-", self.instance))
            .unwrap_or(ns)
    }

    /// The container's init pid (cached; a container is never restarted by the lab).
    fn pid(&self, ns: &str) -> Option<u32> {
        if let Some(p) = self.pids.lock().ok().and_then(|m| m.get(ns).copied()) {
            return Some(p);
        }
        let name = container_name(&self.instance, self.node_of(ns));
        let pid: u32 = docker(&["inspect", "--format", "{{.State.Pid}}", &name])
            .ok()?
            .trim()
            .parse()
            .ok()
            .filter(|p| *p > 0)?;
        if let Ok(mut m) = self.pids.lock() {
            m.insert(ns.to_owned(), pid);
        }
        Some(pid)
    }

    /// Containers of this instance (by label), as (id, name).
    pub fn containers(instance: &str) -> Result<Vec<(String, String)>> {
        let out = docker(&[
            "ps",
            "-a",
            "--filter",
            &format!("label={LABEL_INSTANCE}={instance}"),
            "--format",
            "{{.ID}} {{.Names}}",
        ])?;
        Ok(out
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(id, n)| (id.to_owned(), n.to_owned()))
            .collect())
    }
}

impl Runtime for DockerRuntime {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Docker
    }

    fn preflight(&self, topo: &Topology) -> Result<()> {
        check_engine()?;
        if !["/usr/bin", "/bin"]
            .iter()
            .any(|d| std::path::Path::new(d).join("nsenter").exists())
        {
            return Err(usage("nsenter not found: run `apt-get install util-linux`"));
        }
        let mut checked: Vec<String> = Vec::new();
        for node in topo.node_names() {
            let router = topo.routers.iter().any(|r| r.name == node);
            let image = self.image(router, topo.containers.get(&node))?;
            if checked.contains(&image) {
                continue;
            }
            if router {
                super::image::check_frr_image(&image)
                    .map_err(|e| usage(format!("node {node}: {e}")))?;
            } else if !super::image::exists(&image)? {
                return Err(usage(format!(
                    "image {image} of node {node} not found: run `ferry lab image build`, or \
                     give an image that `docker images` lists"
                )));
            }
            checked.push(image);
        }
        Ok(())
    }

    fn create_node(
        &self,
        ns: &str,
        node: &str,
        kind: NodeKind,
        container: Option<&NodeContainer>,
    ) -> Result<String> {
        let image = self.image(kind == NodeKind::Router, container)?;
        let name = container_name(&self.instance, node);
        let dir = super::state::dir(&self.instance);
        let node_dir = dir.join(node);
        std::fs::create_dir_all(&node_dir)
            .map_err(|e| LabError::step(format!("creating {}", node_dir.display()), e))?;
        let exe = std::fs::read_link(super::ferry_exe())
            .map_err(|e| LabError::step("finding the ferry binary", e))?;
        let run_dir = format!("{0}:{0}", dir.display());
        let ferry = format!("{}:{FERRY_IN_NODE}:ro", exe.display());
        let frr_dir = format!("{}:/var/run/frr", node_dir.display());
        let mut args = vec![
            "run",
            "-d",
            "--pull",
            "never",
            "--name",
            &name,
            "--hostname",
            node,
            "--network",
            "none",
            "--label",
        ];
        let l_inst = format!("{LABEL_INSTANCE}={}", self.instance);
        let l_node = format!("{LABEL_NODE}={node}");
        args.extend([l_inst.as_str(), "--label", &l_node]);
        // The netns runtime's namespaces start with IPv6 on and forwarding off (FRR's
        // `ip forwarding` turns it on); /proc/sys is read-only inside a container, so
        // routers get forwarding here and zebra finds it on.
        args.extend([
            "--sysctl",
            "net.ipv6.conf.all.disable_ipv6=0",
            "--sysctl",
            "net.ipv6.conf.default.disable_ipv6=0",
        ]);
        if kind == NodeKind::Router {
            args.extend([
                "--sysctl",
                "net.ipv4.ip_forward=1",
                "--sysctl",
                "net.ipv6.conf.all.forwarding=1",
                "-v",
                &frr_dir,
            ]);
        }
        for b in container.map(|c| c.binds.as_slice()).unwrap_or_default() {
            args.extend(["-v", b.as_str()]);
        }
        args.extend([
            "-v",
            &run_dir,
            "-v",
            &ferry,
            "--entrypoint",
            "sleep",
            &image,
        ]);
        args.push("infinity");
        let id = docker(&args)
            .map_err(|e| LabError::step(format!("starting container {name}"), e))?
            .trim()
            .to_owned();
        let pid = self
            .pid(ns)
            .ok_or_else(|| LabError::step(format!("container {name}"), "no pid: not running"))?;
        proc::ip(&["netns", "attach", ns, &pid.to_string()])?;
        proc::ip(&["-n", ns, "link", "set", "lo", "up"])?;
        Ok(id.chars().take(12).collect())
    }

    fn remove_node(&self, ns: &str, node: &str) -> Result<()> {
        let name = container_name(&self.instance, node);
        // Only a container of this instance's node: selected by both labels, never by name.
        let found = docker(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label={LABEL_INSTANCE}={}", self.instance),
            "--filter",
            &format!("label={LABEL_NODE}={node}"),
        ])?;
        for id in found.split_whitespace() {
            docker(&["rm", "-f", id])
                .map_err(|e| LabError::step(format!("removing container {name}"), e))?;
        }
        if let Ok(mut m) = self.pids.lock() {
            m.remove(ns);
        }
        if netns::exists(ns) {
            netns::destroy(ns)?;
        }
        Ok(())
    }

    fn command(&self, ns: &str, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        // No pid: nsenter then fails with a message naming the target, never runs on the host.
        let target = self
            .pid(ns)
            .map_or_else(|| "0".to_owned(), |p| p.to_string());
        c.args([
            "--target", &target, "--mount", "--uts", "--ipc", "--net", "--",
        ])
        .arg(program);
        c.env("TZ", "UTC");
        c
    }

    fn ferry(&self) -> String {
        FERRY_IN_NODE.to_owned()
    }

    fn remove_all(&self, instance: &str) -> Result<Vec<String>> {
        let found = Self::containers(instance)?;
        if found.is_empty() {
            return Ok(Vec::new());
        }
        // All containers at once (their init, `sleep`, ignores SIGTERM as pid 1: no point
        // waiting for it), then the lab's programs in each namespace the lab's way (TERM,
        // then KILL), which also drops the namespace's name.
        let mut args = vec!["rm", "-f"];
        args.extend(found.iter().map(|(id, _)| id.as_str()));
        docker(&args)?;
        let mut removed = Vec::new();
        for (_, name) in found {
            if let Some(node) = name.strip_prefix(&format!("{instance}-")) {
                netns::destroy(&netns::name(instance, node))?;
            }
            removed.push(format!("container {name}"));
        }
        Ok(removed)
    }

    fn node_ids(&self, instance: &str) -> Vec<(String, String)> {
        Self::containers(instance)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(id, name)| {
                let node = name.strip_prefix(&format!("{instance}-"))?;
                Some((netns::name(instance, node), id))
            })
            .collect()
    }
}
