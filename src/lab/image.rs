//! The Docker runtime's node image (`ferry lab image build`) and the check of an FRR image a
//! user brings (`--frr-image`).
//!
//! The image is built without a registry: `debootstrap --variant=minbase` of the host's own
//! Debian release (so the `ferry` binary bind-mounted into every container finds the glibc
//! it was linked against) with FRR, iproute2 and ping from the host's apt mirror, then
//! `tar | docker import`. Its tag is a hash of the recipe (release, packages, steps): a second
//! build with the same recipe finds the tag and does nothing.
//!
//! Never does: pull an image, download anything but Debian packages, or touch an image whose
//! name it did not compute or was not given.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::docker::docker;
use super::proc::run;
use super::runtime::usage;
use super::{LabError, Result};

/// The image's repository name; the tag is [`content_tag`].
pub const REPO: &str = "ferry-lab-frr";
/// Debian packages installed on top of minbase: FRR for routers, its RPKI module for a lab
/// with `[rpki]` (bgpd `-M rpki`; stayrtr runs from the host in the node's namespace), iproute2
/// and ping for people who `docker exec` into a node (the lab itself runs the host's `ip`).
pub const PACKAGES: [&str; 4] = ["frr", "frr-rpki-rtrlib", "iproute2", "iputils-ping"];
/// The recipe's steps, hashed into the tag: change them and the tag changes.
const RECIPE: &str = "debootstrap --variant=minbase --include=PACKAGES SUITE; \
    rm -rf var/cache/apt/archives/*.deb var/lib/apt/lists/*; \
    tar -C ROOT -c . | docker import --change 'CMD [\"sleep\",\"infinity\"]' -";
/// The FRR programs the lab runs, which an `--frr-image` must have.
pub const FRR_PROGRAMS: [&str; 4] = [
    "/usr/lib/frr/zebra",
    "/usr/lib/frr/bgpd",
    "/usr/lib/frr/bfdd",
    "/usr/bin/vtysh",
];
/// debootstrap fetches and unpacks a few hundred packages.
const BUILD_TIMEOUT: Duration = Duration::from_secs(1800);

/// The host's Debian release codename (`VERSION_CODENAME` in /etc/os-release).
pub fn host_suite() -> Result<String> {
    let text = std::fs::read_to_string("/etc/os-release")
        .map_err(|e| LabError::step("reading /etc/os-release", e))?;
    parse_os_release(&text).ok_or_else(|| {
        usage("/etc/os-release has no VERSION_CODENAME: the image is built for a Debian host")
    })
}

fn parse_os_release(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|v| v.trim().trim_matches('"').to_owned())
        .filter(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// The first Debian mirror in the host's apt sources (one-line or deb822 format).
pub fn host_mirror() -> Result<String> {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
        more.sort();
        files.extend(more);
    }
    for f in files {
        if let Some(m) = std::fs::read_to_string(&f)
            .ok()
            .and_then(|t| parse_mirror(&t))
        {
            return Ok(m);
        }
    }
    Err(usage(
        "no Debian mirror in /etc/apt/sources.list{,.d}: give one with --mirror URL",
    ))
}

/// A mirror URL of the main archive (not the security one) from sources text.
fn parse_mirror(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let url = if let Some(rest) = l.strip_prefix("URIs:") {
                rest.split_whitespace().next()
            } else if let Some(rest) = l.strip_prefix("deb ") {
                rest.split_whitespace().find(|w| w.contains("://"))
            } else {
                None
            }?;
            (url.starts_with("http") && !url.contains("security")).then(|| url.to_owned())
        })
}

/// The hash of the recipe for `suite`: 12 hex digits of SHA-256.
pub fn content_tag(suite: &str) -> String {
    let recipe = format!("{suite}\n{}\n{RECIPE}", PACKAGES.join(","));
    let digest = ring::digest::digest(&ring::digest::SHA256, recipe.as_bytes());
    hex::encode(&digest.as_ref()[..6])
}

/// `ferry-lab-frr:<tag>` for this host's release.
pub fn default_image() -> Result<String> {
    Ok(format!("{REPO}:{}", content_tag(&host_suite()?)))
}

/// Whether the engine has image `name` (never pulls).
pub fn exists(name: &str) -> Result<bool> {
    match docker(&["image", "inspect", "--format", "{{.Id}}", name]) {
        Ok(_) => Ok(true),
        Err(LabError::Step { detail, .. }) if detail.contains("No such image") => Ok(false),
        Err(e) => Err(e),
    }
}

/// What a build did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Built {
    pub image: String,
    /// False: the tag was there already and nothing was done.
    pub built: bool,
    pub seconds: f64,
}

/// Build the node image unless its tag exists. `say` gets progress lines.
pub fn build(mirror: Option<String>, say: &dyn Fn(&str)) -> Result<Built> {
    if !super::is_root() {
        return Err(LabError::NotRoot);
    }
    let started = Instant::now();
    let suite = host_suite()?;
    let image = format!("{REPO}:{}", content_tag(&suite));
    super::docker::check_engine()?;
    // Two builds at once (parallel tests, two shells) would both debootstrap: the second
    // waits for the first and then finds the tag.
    let _lock = build_lock(say)?;
    if exists(&image)? {
        say(&format!("{image} is there already: nothing to build"));
        return Ok(Built {
            image,
            built: false,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    if !Path::new("/usr/sbin/debootstrap").exists() {
        return Err(usage(
            "/usr/sbin/debootstrap not found: run `apt-get install debootstrap`",
        ));
    }
    let mirror = match mirror {
        Some(m) => m,
        None => host_mirror()?,
    };
    let root = std::env::temp_dir().join(format!("ferry-lab-image-{}", std::process::id()));
    let result = build_in(&root, &suite, &mirror, &image, say);
    remove_root(&root)?;
    result?;
    Ok(Built {
        image,
        built: true,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The lock that serialises builds on this host, waited for up to [`BUILD_TIMEOUT`].
fn build_lock(say: &dyn Fn(&str)) -> Result<crate::filelock::FileLock> {
    let path = Path::new(super::RUN_ROOT).join("image-build.lock");
    std::fs::create_dir_all(super::RUN_ROOT)
        .map_err(|e| LabError::step(format!("creating {}", super::RUN_ROOT), e))?;
    let started = Instant::now();
    let mut said = false;
    loop {
        match crate::filelock::FileLock::try_acquire(&path) {
            Ok(mut l) => {
                let _ = l.describe(&format!(
                    "ferry lab image build, pid {}",
                    std::process::id()
                ));
                return Ok(l);
            }
            Err(crate::filelock::LockError::Held { holder, .. }) => {
                if started.elapsed() > BUILD_TIMEOUT {
                    return Err(LabError::step(
                        "ferry lab image build",
                        format!(
                            "another build ({holder}) held {} for {BUILD_TIMEOUT:?}",
                            path.display()
                        ),
                    ));
                }
                if !said {
                    say(&format!("waiting for another build ({holder})"));
                    said = true;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => return Err(LabError::step("ferry lab image build", e)),
        }
    }
}

/// Remove the build's root filesystem. debootstrap mounts /proc and /sys (and in some
/// settings binds /dev) inside it and unmounts them when it finishes; after a failed or
/// timed-out run they may still be there, and removing through them would reach the host's
/// own files. So: unmount whatever is mounted under the root (deepest first), and leave the
/// directory in place, named, if anything stays mounted.
fn remove_root(root: &Path) -> Result<()> {
    if !root.exists() {
        return Ok(());
    }
    let mounted = || -> Vec<String> {
        let prefix = format!("{}/", root.display());
        let mut m: Vec<String> = std::fs::read_to_string("/proc/self/mounts")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|p| p.starts_with(&prefix))
            .map(str::to_owned)
            .collect();
        m.sort_by_key(|p| std::cmp::Reverse(p.len()));
        m
    };
    for m in mounted() {
        let _ = run(
            Command::new("umount").args(["-l", &m]),
            Duration::from_secs(30),
        );
    }
    let left = mounted();
    if !left.is_empty() {
        return Err(LabError::step(
            format!("removing {}", root.display()),
            format!(
                "still mounted: {} (unmount them, then remove the directory)",
                left.join(", ")
            ),
        ));
    }
    std::fs::remove_dir_all(root)
        .map_err(|e| LabError::step(format!("removing {}", root.display()), e))
}

fn build_in(root: &Path, suite: &str, mirror: &str, image: &str, say: &dyn Fn(&str)) -> Result<()> {
    say(&format!(
        "debootstrap {suite} from {mirror} with {} into {}",
        PACKAGES.join(","),
        root.display()
    ));
    run(
        Command::new("/usr/sbin/debootstrap")
            .args([
                "--variant=minbase",
                &format!("--include={}", PACKAGES.join(",")),
            ])
            .arg(suite)
            .arg(root)
            .arg(mirror),
        BUILD_TIMEOUT,
    )?;
    for junk in ["var/cache/apt/archives", "var/lib/apt/lists"] {
        let d = root.join(junk);
        if let Ok(entries) = std::fs::read_dir(&d) {
            for e in entries.flatten() {
                if e.path().is_file() {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
    say(&format!("importing the root filesystem as {image}"));
    // One pipeline, so that a failed tar fails the import (pipefail) and both share the
    // timeout; the paths are ours (a temp dir and the computed name: no quoting needed).
    let script = format!(
        "set -o pipefail; tar -C {} --numeric-owner -c . | docker import \
         --change 'CMD [\"sleep\",\"infinity\"]' --change 'LABEL ferry.lab.image={image}' - {image}",
        root.display()
    );
    run(Command::new("bash").args(["-c", &script]), BUILD_TIMEOUT)?;
    Ok(())
}

/// `image` exists locally and has every program of [`FRR_PROGRAMS`]; the error names the
/// image and what is missing.
pub fn check_frr_image(image: &str) -> Result<()> {
    if !exists(image)? {
        return Err(usage(format!(
            "image {image} not found (this machine pulls nothing from a registry): build it \
             with `ferry lab image build`, or give an image that `docker images` lists"
        )));
    }
    let script = FRR_PROGRAMS
        .iter()
        .map(|p| format!("test -x {p} || echo {p};"))
        .collect::<String>();
    let out = docker(&[
        "run",
        "--rm",
        "--pull",
        "never",
        "--network",
        "none",
        "--entrypoint",
        "/bin/sh",
        image,
        "-c",
        &script,
    ])
    .map_err(|e| usage(format!("image {image}: cannot look inside it ({e})")))?;
    let missing: Vec<&str> = out.split_whitespace().collect();
    if !missing.is_empty() {
        return Err(usage(format!(
            "image {image} lacks {}: the lab's routers need zebra, bgpd, bfdd and vtysh",
            missing.join(", ")
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_and_sources_are_read() {
        let os = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_CODENAME=bookworm\n";
        assert_eq!(parse_os_release(os).as_deref(), Some("bookworm"));
        assert_eq!(parse_os_release("ID=debian\n"), None);
        let deb822 = "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm\n\n\
                      Types: deb\nURIs: http://deb.debian.org/debian-security\n";
        assert_eq!(
            parse_mirror(deb822).as_deref(),
            Some("http://deb.debian.org/debian")
        );
        let one_line =
            "# deb http://x/y\ndeb [arch=amd64] http://ftp.example/debian bookworm main\n";
        assert_eq!(
            parse_mirror(one_line).as_deref(),
            Some("http://ftp.example/debian")
        );
    }

    /// A tree with a file system still mounted inside (as a failed debootstrap leaves /proc)
    /// is unmounted first and then removed; the mounted file system's files are never
    /// reached by the removal. Root only (it mounts a tmpfs).
    #[test]
    fn a_root_with_a_mount_left_inside_is_unmounted_before_removal() {
        if !crate::lab::is_root() {
            eprintln!("skipped: needs root to mount");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let inner = root.join("proc");
        std::fs::create_dir_all(&inner).unwrap();
        std::fs::write(root.join("etc-file"), "x").unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "ferry-test", inner.to_str().unwrap()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "mount tmpfs");
        let mounted = || {
            std::fs::read_to_string("/proc/self/mounts")
                .unwrap()
                .contains(inner.to_str().unwrap())
        };
        assert!(mounted());
        let r = remove_root(&root);
        if mounted() {
            let _ = Command::new("umount")
                .args(["-l", inner.to_str().unwrap()])
                .status();
        }
        r.unwrap();
        assert!(!root.exists());
    }

    #[test]
    fn the_tag_follows_the_recipe() {
        let a = content_tag("bookworm");
        assert_eq!(a.len(), 12);
        assert_eq!(a, content_tag("bookworm"));
        assert_ne!(a, content_tag("trixie"));
    }
}
