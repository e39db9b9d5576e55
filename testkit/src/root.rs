//! Whether this process can run namespace tests: effective root, `ip`, and the daemons a test
//! names. A test that cannot run prints one `SKIPPED` line and returns; with `FIT_REQUIRE=1`
//! (CI) it panics instead, so a skip is never silent there.
//!
//! Never does: change anything on the host; it only reads /proc and looks for files.

use std::path::Path;

/// Whether the effective user is root (`Uid:` of /proc/self/status: real, effective, ...).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// Whether `FIT_REQUIRE=1`: a test that cannot run must fail rather than skip.
pub fn required() -> bool {
    std::env::var("FIT_REQUIRE").is_ok_and(|v| v == "1")
}

/// Whether `program` is an executable path or found in PATH (plus the sbin directories and
/// FRR's /usr/lib/frr).
pub fn program_exists(program: &str) -> bool {
    if program.contains('/') {
        return Path::new(program).is_file();
    }
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/lib/frr"])
        .any(|d| Path::new(d).join(program).is_file());
    found
}

/// Whether this process can run namespace tests: root and `ip` present. Prints a clear
/// "skipped" line (to stderr, visible with `--nocapture` / nextest's output) and returns false
/// otherwise; panics instead under `FIT_REQUIRE=1`.
///
/// ```no_run
/// if !testkit::root::can_run("frr_bird") { return; }
/// ```
pub fn can_run(test: &str) -> bool {
    let reason = if !is_root() {
        Some("not running as root".to_string())
    } else if !program_exists("ip") {
        Some("the `ip` command (iproute2) is missing".to_string())
    } else {
        None
    };
    match reason {
        None => true,
        Some(r) => {
            if required() {
                panic!("{test}: cannot run interop test: {r} (FIT_REQUIRE=1)");
            }
            eprintln!("SKIPPED {test}: {r}; interop tests need root and network namespaces");
            false
        }
    }
}

/// Like [`can_run`], and also requires each of `programs` (looked up in PATH or as a path).
pub fn can_run_with(test: &str, programs: &[&str]) -> bool {
    if !can_run(test) {
        return false;
    }
    for p in programs {
        if !program_exists(p) {
            if required() {
                panic!("{test}: `{p}` is missing (FIT_REQUIRE=1)");
            }
            eprintln!("SKIPPED {test}: `{p}` is not installed");
            return false;
        }
    }
    true
}

/// Whether the FRR lab can run here: root and FRR's bgpd installed.
pub fn lab_can_run() -> bool {
    let ok = is_root() && Path::new("/usr/lib/frr/bgpd").exists();
    if !ok {
        if required() {
            panic!("cannot run the lab: needs root and FRR (FIT_REQUIRE=1)");
        }
        eprintln!("skipped: needs root and FRR (apt-get install frr)");
    }
    ok
}
