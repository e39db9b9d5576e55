//! `ferry lab --runtime docker` end to end, on the real Docker engine with the image
//! `ferry lab image build` makes from Debian packages: the lab comes up as containers named
//! `<instance>-<node>` with the instance's label, FRR runs from the image (its own mount
//! namespace), `docker exec <instance>-r1 vtysh` reaches the router, `status --json` lists the
//! containers, sessions and route, a planned-failover scenario passes, and `down` removes every
//! container with the label. Bad input (an image that does not exist, an image without bfdd,
//! Docker not running) is exit 2 with the image or the engine named and nothing left behind.
//!
//! Each test uses its own instance name and takes it down in a Drop guard. Skipped (with a
//! message) when not root, FRR is missing, or no Docker engine answers, unless
//! FIT_REQUIRE_DOCKER=1 (set by scripts/test.sh where the engine runs).

use std::path::Path;
use std::process::{Command, Output};

mod support;

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

fn ferry(args: &[&str]) -> Output {
    Command::new(FERRY).args(args).output().expect("run ferry")
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("run docker")
}

/// Root, FRR and a Docker engine; the node image built (idempotent: a no-op once built).
fn docker_lab_can_run() -> bool {
    let required = std::env::var("FIT_REQUIRE_DOCKER").is_ok_and(|v| v == "1");
    if !support::lab_can_run() {
        return false;
    }
    let engine = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !engine {
        assert!(
            !required,
            "FIT_REQUIRE_DOCKER=1 but no Docker engine answers"
        );
        eprintln!("skipped: no Docker engine answers (the docker runtime needs one)");
        return false;
    }
    let b = ferry(&["lab", "image", "build", "--json"]);
    assert!(b.status.success(), "{}", text(&b));
    true
}

fn instance(tag: &str) -> String {
    format!("{tag}{}", std::process::id() % 100_000)
}

/// Containers carrying the instance's label, by name.
fn containers(inst: &str) -> Vec<String> {
    let o = docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=ferry.lab.instance={inst}"),
        "--format",
        "{{.Names}}",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn namespaces(inst: &str) -> Vec<String> {
    let o = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&format!("fl-{inst}-")))
        .map(str::to_owned)
        .collect()
}

fn assert_left_nothing(inst: &str) {
    assert_eq!(containers(inst), Vec::<String>::new(), "containers left");
    assert_eq!(namespaces(inst), Vec::<String>::new(), "namespaces left");
    assert!(!Path::new("/run/ferry-lab").join(inst).exists(), "dir left");
}

struct Down(String);
impl Drop for Down {
    fn drop(&mut self) {
        let _ = ferry(&["lab", "down", "--instance", &self.0]);
    }
}

#[test]
fn image_build_is_idempotent_and_names_its_content_tag() {
    if !docker_lab_can_run() {
        return;
    }
    // docker_lab_can_run built it: this one finds the tag.
    let o = ferry(&["lab", "image", "build", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("image build --json");
    assert_eq!(v["built"], false, "{v}");
    let image = v["image"].as_str().unwrap();
    assert!(image.starts_with("ferry-lab-frr:"), "{v}");
    assert!(v["seconds"].as_f64().unwrap() < 30.0, "{v}");
    let name = ferry(&["lab", "image", "name"]);
    assert_eq!(String::from_utf8_lossy(&name.stdout).trim(), image);
    // What the routers run is in it.
    let o = docker(&[
        "run",
        "--rm",
        "--pull",
        "never",
        "--network",
        "none",
        image,
        "/usr/lib/frr/bgpd",
        "--version",
    ]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("bgpd version"),
        "{}",
        text(&o)
    );
}

#[test]
fn docker_lab_comes_up_as_labelled_containers_and_down_removes_them() {
    if !docker_lab_can_run() {
        return;
    }
    let inst = instance("dk");
    let _down = Down(inst.clone());
    let o = ferry(&["lab", "up", "--runtime", "docker", "--instance", &inst]);
    assert!(o.status.success(), "{}", text(&o));
    let mut names = containers(&inst);
    names.sort();
    let want: Vec<String> = ["client", "r1", "r2", "r3", "sp1", "sp2", "vm1", "vm2"]
        .iter()
        .map(|n| format!("{inst}-{n}"))
        .collect();
    assert_eq!(names, want);

    // status --json: the runtime, every node's container id, the sessions, the route.
    let o = ferry(&["lab", "status", "--instance", &inst, "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let st: serde_json::Value = serde_json::from_slice(&o.stdout).expect("status --json");
    assert_eq!(st["runtime"], "docker", "{st}");
    let nodes = st["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 8, "{st}");
    for n in nodes {
        let id = n["runtime_id"].as_str().unwrap_or_default();
        let node = n["node"].as_str().unwrap();
        let o = docker(&["inspect", "--format", "{{.Name}}", id]);
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim(),
            format!("/{inst}-{node}"),
            "{st}"
        );
    }
    let sessions = st["sessions"].as_array().unwrap();
    assert!(sessions.len() >= 5, "{st}");
    assert!(sessions.iter().all(|s| s["state"] == "Established"), "{st}");
    assert!(
        st["third_site_route"]
            .as_str()
            .is_some_and(|r| r.contains("via 192.0.2.1 ")),
        "{st}"
    );

    // bgpd is the image's: it runs in the container's mount namespace, not the host's.
    let pid = std::fs::read_to_string(format!("/run/ferry-lab/{inst}/r1/bgpd.pid")).unwrap();
    let theirs = std::fs::read_link(format!("/proc/{}/ns/mnt", pid.trim())).unwrap();
    let init = docker(&[
        "inspect",
        "--format",
        "{{.State.Pid}}",
        &format!("{inst}-r1"),
    ]);
    let init = String::from_utf8_lossy(&init.stdout).trim().to_owned();
    assert_eq!(
        theirs,
        std::fs::read_link(format!("/proc/{init}/ns/mnt")).unwrap()
    );
    assert_ne!(theirs, std::fs::read_link("/proc/self/ns/mnt").unwrap());
    // A person's way in: `docker exec -it <instance>-r1 vtysh`.
    let o = docker(&[
        "exec",
        &format!("{inst}-r1"),
        "vtysh",
        "-c",
        "show bgp ipv4 unicast 198.51.100.0/24",
    ]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("65101"),
        "{}",
        text(&o)
    );

    let o = ferry(&["lab", "down", "--instance", &inst, "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let removed: Vec<&str> = v["removed"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r.as_str())
        .collect();
    assert!(
        removed.contains(&format!("container {inst}-r1").as_str()),
        "{v}"
    );
    assert_left_nothing(&inst);
}

#[test]
fn planned_failover_scenarios_pass_under_docker() {
    if !docker_lab_can_run() {
        return;
    }
    let inst = instance("dt");
    let _down = Down(inst.clone());
    let out = tempfile::tempdir().unwrap();
    let o = ferry(&[
        "lab",
        "test",
        "--runtime",
        "docker",
        "--only",
        "planned",
        "--instance",
        &inst,
        "--out",
        out.path().to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}", text(&o));
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("report.json")).unwrap()).unwrap();
    assert!(report["summary"]["loss_ms"]["median"].as_f64().unwrap() > 0.0);
    assert!(out.path().join("timeline.svg").exists());
    assert_left_nothing(&inst);
}

#[test]
fn a_missing_image_is_named_with_exit_2_and_nothing_left() {
    if !docker_lab_can_run() {
        return;
    }
    let inst = instance("dm");
    let _down = Down(inst.clone());
    let image = format!("ferry-no-such-image:{inst}");
    let o = ferry(&[
        "lab",
        "up",
        "--runtime",
        "docker",
        "--frr-image",
        &image,
        "--instance",
        &inst,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("image {image} not found")), "{err}");
    assert_left_nothing(&inst);
}

#[test]
fn an_image_without_bfdd_is_refused_by_name() {
    if !docker_lab_can_run() {
        return;
    }
    let inst = instance("db");
    let _down = Down(inst.clone());
    let base = String::from_utf8_lossy(&ferry(&["lab", "image", "name"]).stdout)
        .trim()
        .to_owned();
    let image = format!("ferry-test-nobfdd:{inst}");
    let tmp = format!("ferry-test-nobfdd-{inst}");
    let o = docker(&[
        "run",
        "--name",
        &tmp,
        "--pull",
        "never",
        "--network",
        "none",
        &base,
        "rm",
        "/usr/lib/frr/bfdd",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let c = docker(&["commit", &tmp, &image]);
    let _ = docker(&["rm", "-f", &tmp]);
    assert!(c.status.success(), "{}", text(&c));
    let o = ferry(&[
        "lab",
        "up",
        "--runtime",
        "docker",
        "--frr-image",
        &image,
        "--instance",
        &inst,
    ]);
    let _ = docker(&["image", "rm", &image]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("image {image} lacks /usr/lib/frr/bfdd")),
        "{err}"
    );
    assert_left_nothing(&inst);
}

#[test]
fn docker_not_running_is_named_with_exit_2_and_nothing_left() {
    if !docker_lab_can_run() {
        return;
    }
    let inst = instance("dn");
    let _down = Down(inst.clone());
    let dead = format!("unix:///tmp/ferry-no-docker-{inst}.sock");
    let o = Command::new(FERRY)
        .env("DOCKER_HOST", &dead)
        .args(["lab", "up", "--runtime", "docker", "--instance", &inst])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!(
            "Docker is not running (no engine answers at {dead})"
        )),
        "{err}"
    );
    assert_left_nothing(&inst);
}
