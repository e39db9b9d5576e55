//! Every file in examples/ is one Ferry accepts, checked by the functions the commands use:
//! speaker configs by `Config::load` (what `ferry speaker` reads at start), plans by
//! `Plan::load` and `step::build` (what `ferry plan check --offline` does), the systemd
//! drop-in's `ExecStart=` by the CLI's parser. Also the examples written inside the docs: the
//! plan in the `//!` of src/controller/plan.rs and the speaker config in README.md.
//! A file in examples/ that no check here covers fails the test, so none goes stale unseen.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use clap::Parser;
use ferry::config::Config;
use ferry::controller::plan::{Plan, Stage};
use ferry::controller::step::{self, StepKind};
use ferry::controller::Mode;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// `Config::load` of a private copy: the examples with an MD5 password must be mode 0600 to
/// load, and git keeps no such mode.
fn load_config(path: &Path) -> Result<Config, String> {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join(path.file_name().unwrap());
    std::fs::copy(path, &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o600)).unwrap();
    Config::load(&copy).map_err(|e| e.to_string())
}

/// What `ferry plan check --offline` checks, and that each group's health checks run after
/// its VM cutover: a check of a recovered VM before the hook that recovers it cannot pass.
fn check_plan(plan: &Plan) -> Result<(), String> {
    let steps = step::build(plan, ferry::controller::Direction::Failover, Mode::Planned);
    if steps.is_empty() {
        return Err("no steps".into());
    }
    let position = |want: &dyn Fn(&StepKind) -> bool| steps.iter().position(|s| want(&s.kind));
    for (c, check) in plan.health_checks.iter().enumerate() {
        let at = position(&|k| matches!(k, StepKind::Health { check, .. } if *check == c))
            .ok_or_else(|| format!("health check {:?} makes no step", check.name))?;
        let group = check.group.as_ref().map(|g| g.get_ref().clone());
        for (h, hook) in plan.hooks.iter().enumerate() {
            let hook_group = hook.group.as_ref().map(|g| g.get_ref().clone());
            // A cutover that may recover this check's VMs: a plan-wide one, its own group's,
            // any group's for a plan-wide check.
            let other_group = hook_group.is_some() && group.is_some() && hook_group != group;
            if hook.stage != Stage::Cutover || other_group {
                continue;
            }
            let last = steps
                .iter()
                .rposition(|s| matches!(s.kind, StepKind::Hook { hook, .. } if hook == h));
            if last.is_some_and(|l| l > at) {
                return Err(format!(
                    "health check {:?} runs before cutover hook {:?}: give it the hook's group",
                    check.name, hook.name
                ));
            }
        }
    }
    Ok(())
}

#[test]
fn every_example_loads_with_the_commands_own_checks() {
    let dir = root().join("examples");
    let mut counts = [0usize; 3];
    for path in files(&dir) {
        let rel = path.strip_prefix(root()).unwrap().display().to_string();
        let kind = path
            .strip_prefix(&dir)
            .unwrap()
            .components()
            .next()
            .unwrap();
        let kind = kind.as_os_str().to_str().unwrap();
        match (kind, path.extension().and_then(|e| e.to_str())) {
            ("speaker", Some("toml")) => {
                let c = load_config(&path).unwrap_or_else(|e| panic!("{rel}: {e}"));
                assert!(!c.neighbors.is_empty(), "{rel}: no [[neighbor]]");
                counts[0] += 1;
            }
            ("plan", Some("toml")) => {
                let p = Plan::load(&path).unwrap_or_else(|e| panic!("{rel}: {e}"));
                check_plan(&p).unwrap_or_else(|e| panic!("{rel}: {e}"));
                counts[1] += 1;
            }
            ("systemd", Some("conf")) => {
                let text = std::fs::read_to_string(&path).unwrap();
                let commands: Vec<&str> = text
                    .lines()
                    .filter_map(|l| l.strip_prefix("ExecStart="))
                    .filter(|c| !c.is_empty())
                    .collect();
                assert!(!commands.is_empty(), "{rel}: no ExecStart=");
                for c in commands {
                    let args: Vec<&str> = c.split_whitespace().collect();
                    assert!(args[0].ends_with("/ferry"), "{rel}: {c}");
                    ferry::cli::Cli::try_parse_from(&args)
                        .unwrap_or_else(|e| panic!("{rel}: {c}: {e}"));
                }
                counts[2] += 1;
            }
            ("README.md", _) => {}
            _ => panic!("{rel}: no check covers this example: add one to tests/examples.rs"),
        }
    }
    assert!(
        counts[0] >= 3 && counts[1] >= 2 && counts[2] >= 1,
        "{counts:?}"
    );
}

/// The first ```toml block of the `//!` lines of `src`.
fn module_doc_toml(src: &str) -> String {
    let doc: Vec<&str> = src
        .lines()
        .map_while(|l| l.strip_prefix("//!"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .collect();
    let start = doc
        .iter()
        .position(|l| *l == "```toml")
        .expect("a ```toml block")
        + 1;
    let len = doc[start..]
        .iter()
        .position(|l| *l == "```")
        .expect("its end");
    doc[start..start + len].join("\n")
}

#[test]
fn the_plan_format_in_the_module_doc_is_a_valid_plan() {
    let src = std::fs::read_to_string(root().join("src/controller/plan.rs")).unwrap();
    let plan = Plan::parse(&module_doc_toml(&src)).unwrap_or_else(|e| panic!("{e}"));
    check_plan(&plan).unwrap();
}

#[test]
fn the_speaker_config_in_the_readme_is_valid() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let block = readme
        .split("```toml\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .find(|b| b.contains("[speaker]"))
        .expect("README shows a speaker config");
    let c = Config::parse(block).unwrap_or_else(|e| panic!("{e}"));
    assert!(!c.neighbors.is_empty());
}

#[test]
fn a_health_check_before_its_vms_cutover_is_caught() {
    // The check above can fail: a plan-wide check with a per-group cutover runs first.
    let text = std::fs::read_to_string(root().join("examples/plan/guide.toml")).unwrap();
    let broken = text.replace("group = \"web\"\nhttp = \"http", "http = \"http");
    assert_ne!(broken, text);
    let plan = Plan::parse(&broken).unwrap();
    let e = check_plan(&plan).unwrap_err();
    assert!(e.contains("\"web-http\" runs before cutover hook"), "{e}");
}

#[test]
fn the_neighbor_fragments_in_the_docs_are_valid() {
    // docs/*.md show [[neighbor]] tables on their own; each must parse under a [speaker].
    let speaker = "[speaker]\nasn = 65100\nrouter_id = \"192.0.2.1\"\napi = \"/run/ferry/ferry.sock\"\nstate_dir = \"/var/lib/ferry\"\n";
    let mut seen = 0;
    for e in std::fs::read_dir(root().join("docs")).unwrap() {
        let path = e.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for block in text.split("```toml\n").skip(1) {
            let block = block.split("```").next().unwrap();
            if !block.trim_start().starts_with("[[neighbor]]") {
                continue;
            }
            seen += 1;
            Config::parse(&format!("{speaker}{block}"))
                .unwrap_or_else(|e| panic!("{}: {e}\n{block}", path.display()));
        }
    }
    assert!(seen >= 3, "only {seen} [[neighbor]] fragments found");
}
