//! `ferry lab --runtime docker` end to end, on the real Docker engine with the image
//! `ferry lab image build` makes from Debian packages: the lab comes up as containers named
//! `<instance>-<node>` with the instance's label, FRR runs from the image (its own mount
//! namespace), `docker exec <instance>-r1 vtysh` reaches the router, `status --json` lists the
//! containers, sessions and route, the whole `ferry lab test` suite passes, a short `ferry lab
//! chaos` (SIGKILLs and link cuts) finds no violation, and `down` removes
//! every container with the instance's label and no other (decoys without it, or with another
//! instance's, stay). The containerlab files in the repo (the exported three-site one, and
//! four-router with r4 between r3 and the client) run through `ferry lab up --topology` and
//! `ferry lab demo`, the first with routers from a user's `--frr-image`. Bad input (a link to
//! an unknown node, a duplicate interface, an image that does not exist, an image without
//! bfdd, Docker not running) is exit 2 with the link, node, image or engine named and nothing
//! left behind.
//!
//! Each test uses its own instance name and takes it down in a Drop guard. Skipped (with a
//! message) when not root, FRR is missing, or no Docker engine answers, unless
//! FIT_REQUIRE_DOCKER=1 (set by scripts/test.sh where the engine runs).

use std::path::Path;
use std::process::{Command, Output};

mod support;

use support::lab::{assert_chaos_clean, assert_faults_drawn, assert_suite_passed, Down};

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

/// Containers a test made itself, removed (by name) when it ends.
struct Containers(Vec<String>);
impl Drop for Containers {
    fn drop(&mut self) {
        for c in &self.0 {
            let _ = docker(&["rm", "-f", c]);
        }
    }
}

/// An image tag a test made itself, removed when it ends.
struct Tag(String);
impl Drop for Tag {
    fn drop(&mut self) {
        let _ = docker(&["image", "rm", &self.0]);
    }
}

/// The node image `ferry lab image build` made.
fn built_image() -> String {
    String::from_utf8_lossy(&ferry(&["lab", "image", "name"]).stdout)
        .trim()
        .to_owned()
}

/// A lab directory of the repo, e.g. `lab/topologies/four-router`.
fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// `ferry lab up --runtime docker MORE --instance INST`.
fn docker_up(inst: &str, more: &[&str]) -> Output {
    let mut args = vec!["lab", "up", "--runtime", "docker"];
    args.extend(more);
    args.extend(["--instance", inst]);
    ferry(&args)
}

/// `o` is a refusal: exit 2, `want` in its error, nothing of the instance left.
fn assert_refused(o: &Output, inst: &str, want: &str) {
    assert_eq!(o.status.code(), Some(2), "{}", text(o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(want), "{want:?} not in: {err}");
    assert_left_nothing(inst);
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
    assert_eq!(built_image(), image);
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
    let o = docker_up(&inst, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let mut names = containers(&inst);
    names.sort();
    let want: Vec<String> = ["client", "r1", "r2", "r3", "sp1", "sp2", "vm1", "vm2"]
        .iter()
        .map(|n| format!("{inst}-{n}"))
        .collect();
    assert_eq!(names, want);

    // status --json: the runtime, the sessions, the route, every node's container id.
    let st = assert_up(&inst);
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

    // Decoys `down` must leave: a container named like the instance's nodes without the
    // label, and one labelled for another instance.
    let base = built_image();
    let unlabelled = format!("{inst}-r9");
    let other = format!("{inst}x-r1");
    let _decoys = Containers(vec![unlabelled.clone(), other.clone()]);
    for (name, label) in [
        (&unlabelled, "ferry.test=decoy".to_owned()),
        (&other, format!("ferry.lab.instance={inst}x")),
    ] {
        let o = docker(&[
            "run",
            "-d",
            "--pull",
            "never",
            "--network",
            "none",
            "--name",
            name,
            "--label",
            &label,
            "--entrypoint",
            "sleep",
            &base,
            "infinity",
        ]);
        assert!(o.status.success(), "{}", text(&o));
    }

    let o = ferry(&["lab", "down", "--instance", &inst, "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    for d in [&unlabelled, &other] {
        let o = docker(&["inspect", "--format", "{{.State.Running}}", d]);
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim(),
            "true",
            "decoy {d} removed"
        );
    }
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

/// The whole `ferry lab test` suite (the same scenarios tests/lab.rs runs on the netns
/// runtime: planned moves in both orders, VM loss, speaker SIGKILL, graceful restart, session
/// resets, bgpd SIGKILL, an unrenewed lease) on containers.
#[test]
fn the_scenario_suite_passes_under_docker() {
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
        "--instance",
        &inst,
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_suite_passed(&String::from_utf8_lossy(&o.stdout), out.path());
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
    let o = docker_up(&inst, &["--frr-image", &image]);
    assert_refused(&o, &inst, &format!("image {image} not found"));
}

#[test]
fn an_image_without_bfdd_is_refused_by_name() {
    if !docker_lab_can_run() {
        return;
    }
    let inst = instance("db");
    let _down = Down(inst.clone());
    let base = built_image();
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
    let o = docker_up(&inst, &["--frr-image", &image]);
    let _ = docker(&["image", "rm", &image]);
    assert_refused(&o, &inst, &format!("image {image} lacks /usr/lib/frr/bfdd"));
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
    assert_refused(
        &o,
        &inst,
        &format!("Docker is not running (no engine answers at {dead})"),
    );
}

/// The three-site file in the repo is what `ferry lab export` writes today (it cannot drift
/// from the built-in topology or from the image's content tag), and the four-router file
/// names the same image. Needs neither root nor Docker.
#[test]
fn the_repo_containerlab_files_match_the_export() {
    let out = tempfile::tempdir().unwrap();
    let o = ferry(&[
        "lab",
        "export",
        "--format",
        "containerlab",
        out.path().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let written = std::fs::read_to_string(out.path().join("three-site.clab.yml")).unwrap();
    let three = repo("lab/topologies/three-site");
    assert_eq!(
        written,
        std::fs::read_to_string(three.join("three-site.clab.yml")).unwrap(),
        "lab/topologies/three-site/three-site.clab.yml is stale: run `ferry lab export \
         --format containerlab lab/topologies/three-site`"
    );
    for r in ["r1", "r2", "r3"] {
        let conf = format!("{r}/frr.conf");
        assert_eq!(
            std::fs::read_to_string(out.path().join(&conf)).unwrap(),
            std::fs::read_to_string(three.join(&conf)).unwrap(),
            "{conf}"
        );
    }
    let image = |text: &str| -> Vec<String> {
        let mut v: Vec<String> = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("image: "))
            .map(str::to_owned)
            .collect();
        v.dedup();
        v
    };
    let four =
        std::fs::read_to_string(repo("lab/topologies/four-router/four-router.clab.yml")).unwrap();
    assert_eq!(image(&four), image(&written));
    assert_eq!(image(&written).len(), 1, "{written}");
}

/// `status --json` of a running instance: every session Established and the third site's
/// route via the primary (r1, 192.0.2.1).
fn assert_up(inst: &str) -> serde_json::Value {
    let o = ferry(&["lab", "status", "--instance", inst, "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let st: serde_json::Value = serde_json::from_slice(&o.stdout).expect("status --json");
    assert_eq!(st["runtime"], "docker", "{st}");
    let sessions = st["sessions"].as_array().unwrap();
    assert!(sessions.len() >= 5, "{st}");
    assert!(sessions.iter().all(|s| s["state"] == "Established"), "{st}");
    assert!(
        st["third_site_route"]
            .as_str()
            .is_some_and(|r| r.contains("via 192.0.2.1 ")),
        "{st}"
    );
    st
}

/// `ferry lab demo` of `moves` moves on an instance that is up: each converged (the client's
/// probes answered by the new site within the bound); the demo takes the instance down.
fn demo_converges(inst: &str, topology: &Path, extra: &[&str]) -> serde_json::Value {
    let out = tempfile::tempdir().unwrap();
    let mut args = vec![
        "lab",
        "demo",
        "--runtime",
        "docker",
        "--instance",
        inst,
        "--topology",
        topology.to_str().unwrap(),
        "--moves",
        "2",
        "--json",
        "--out",
        out.path().to_str().unwrap(),
    ];
    args.extend(extra);
    let o = ferry(&args);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("demo --json");
    let s = &v["report"]["summary"];
    assert_eq!(s["moves"], 2, "{v}");
    assert_eq!(s["converged"], 2, "{v}");
    assert!(s["loss_ms"]["median"].as_f64().unwrap() > 0.0, "{v}");
    assert_left_nothing(inst);
    v
}

/// The exported three-site file through `up --topology` and `demo`, its routers from an
/// image the user names with `--frr-image` (here the built image under another name): the
/// routers' containers run that image, the other nodes the file's.
#[test]
fn the_three_site_containerlab_file_runs_with_a_users_frr_image() {
    if !docker_lab_can_run() {
        return;
    }
    let inst = instance("dc");
    let _down = Down(inst.clone());
    let base = built_image();
    let theirs = format!("ferry-test-frr:{inst}");
    let o = docker(&["tag", &base, &theirs]);
    assert!(o.status.success(), "{}", text(&o));
    let _tag = Tag(theirs.clone());
    let file = repo("lab/topologies/three-site/three-site.clab.yml");
    let o = docker_up(
        &inst,
        &["--frr-image", &theirs, "--topology", file.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", text(&o));
    let image_of = |node: &str| {
        let o = docker(&[
            "inspect",
            "--format",
            "{{.Config.Image}}",
            &format!("{inst}-{node}"),
        ]);
        String::from_utf8_lossy(&o.stdout).trim().to_owned()
    };
    for r in ["r1", "r2", "r3"] {
        assert_eq!(image_of(r), theirs, "{r}");
    }
    assert_eq!(image_of("sp1"), base);
    assert_up(&inst);
    // The demo finds the instance up (and keeps its runtime and image), moves, takes it down.
    demo_converges(&inst, &file, &["--frr-image", &theirs]);
}

/// The four-router file: r4 (no BGP, static routes, its frr.conf also bound into the
/// container as `binds` says) sits between r3 and the client, so every answered probe of the
/// demo crossed it.
#[test]
fn the_four_router_containerlab_file_runs_up_and_demo_through_r4() {
    if !docker_lab_can_run() {
        return;
    }
    let inst = instance("d4");
    let _down = Down(inst.clone());
    let file = repo("lab/topologies/four-router/four-router.clab.yml");
    let o = docker_up(&inst, &["--topology", file.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(containers(&inst).len(), 9, "{:?}", containers(&inst));
    let st = assert_up(&inst);
    assert_eq!(st["nodes"].as_array().unwrap().len(), 9, "{st}");
    // The bind is there, read-only.
    let o = docker(&["exec", &format!("{inst}-r4"), "cat", "/etc/frr/frr.conf"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("r4: a transit router"),
        "{}",
        text(&o)
    );
    // r4's zebra installed its static default route towards r3.
    let o = Command::new("ip")
        .args(["-n", &format!("fl-{inst}-r4"), "route", "show", "default"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("via 192.0.2.29"),
        "{}",
        text(&o)
    );
    demo_converges(&inst, &file, &[]);
}

/// A copy of the three-site file (with the router configs beside it) edited by `edit`,
/// brought up under Docker: exit 2, the error contains `want`, nothing is left.
fn bad_file_is_refused(inst: &str, edit: &dyn Fn(String) -> String, want: &str) {
    let dir = tempfile::tempdir().unwrap();
    let three = repo("lab/topologies/three-site");
    for r in ["r1", "r2", "r3"] {
        std::fs::create_dir_all(dir.path().join(r)).unwrap();
        std::fs::copy(
            three.join(r).join("frr.conf"),
            dir.path().join(r).join("frr.conf"),
        )
        .unwrap();
    }
    let original = std::fs::read_to_string(three.join("three-site.clab.yml")).unwrap();
    let edited = edit(original.clone());
    assert_ne!(edited, original, "the edit for {want:?} changed nothing");
    let file = dir.path().join("bad.clab.yml");
    std::fs::write(&file, edited).unwrap();
    let o = docker_up(inst, &["--topology", file.to_str().unwrap()]);
    assert_refused(&o, inst, want);
}

#[test]
fn bad_containerlab_files_are_named_with_exit_2_and_nothing_left() {
    if !docker_lab_can_run() {
        return;
    }
    let inst = instance("dx");
    let _down = Down(inst.clone());
    bad_file_is_refused(
        &inst,
        &|t| t.replacen("    - r3:eth-r1\n", "    - r9:eth-r1\n", 1),
        "links[0]: endpoint r9:eth-r1: no node r9",
    );
    bad_file_is_refused(
        &inst,
        &|t| t.replacen("    - r2:eth-r1\n", "    - r2:eth-r3\n", 1),
        "interface r2:eth-r3 is the end of two links",
    );
    // containerlab keys the lab does not read are named, not ignored.
    bad_file_is_refused(
        &inst,
        &|t| {
            t.replacen(
                "      kind: linux\n",
                "      kind: linux\n      ports: [\"8080:80\"]\n",
                1,
            )
        },
        "unknown field `ports`",
    );
    bad_file_is_refused(
        &inst,
        &|t| t.replacen("topology:\n", "topology:\n  mgmt: {network: x}\n", 1),
        "unknown field `mgmt`",
    );
    let base = built_image();
    bad_file_is_refused(
        &inst,
        &|t| {
            // The client's image (the first node in the file) only.
            t.replacen(&format!("image: {base}"), "image: ferry-no-such-image:1", 1)
        },
        "image ferry-no-such-image:1 of node client not found",
    );
    bad_file_is_refused(
        &inst,
        &|t| {
            t.replacen(
                &format!("      image: {base}\n      startup-config: r1/"),
                "      image: ferry-no-such-image:2\n      startup-config: r1/",
                1,
            )
        },
        "node r1: image ferry-no-such-image:2 not found",
    );
}

/// `ferry lab chaos --seed 1` for 30 s on containers: SIGKILL of a speaker and of bgpd (the
/// lab holds their pids through nsenter, so the kill is a crash of the program inside the
/// container) and link cuts between moves; every invariant holds after every step, and
/// nothing of the instance is left.
#[test]
fn chaos_finds_no_violation_under_docker() {
    if !docker_lab_can_run() {
        return;
    }
    let inst = instance("dh");
    let _down = Down(inst.clone());
    let out = tempfile::tempdir().unwrap();
    let o = ferry(&[
        "lab",
        "chaos",
        "--runtime",
        "docker",
        "--seed",
        "1",
        "--minutes",
        "0.5",
        "--instance",
        &inst,
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let rep = assert_chaos_clean(&String::from_utf8_lossy(&o.stdout), out.path());
    assert_faults_drawn(&rep, &["speaker-kill", "bgpd-kill", "link-cut"]);
    assert_left_nothing(&inst);
}
