//! How any FRR daemon is started, for the tests' [`super::frr::Frr`] and `ferry lab`'s routers
//! alike: the binary from Debian's `frr` package, and every file it touches named explicitly
//! under the router's own directory (`-f CONFIG -i DIR/<daemon>.pid -z DIR/zserv.api
//! --vty_socket DIR -P 0`), which belongs to user `frr` because the daemons drop to it.
//!
//! Never does: use /etc/frr, /var/run/frr or the packaged frr service; open a vty TCP port.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::cmd::{run_timeout, Failed};

/// Where Debian's `frr` package puts the daemons.
pub const BIN_DIR: &str = "/usr/lib/frr";

/// The daemon's binary, e.g. `/usr/lib/frr/bgpd`.
pub fn binary(daemon: &str) -> PathBuf {
    Path::new(BIN_DIR).join(daemon)
}

/// Whether the daemons and vtysh are installed; Err(the first missing one).
pub fn check_installed(daemons: &[&str]) -> Result<(), String> {
    for d in daemons {
        let p = binary(d);
        if !p.exists() {
            return Err(p.display().to_string());
        }
    }
    if !["/usr/bin/vtysh", "/bin/vtysh"]
        .iter()
        .any(|p| Path::new(p).exists())
    {
        return Err("vtysh".into());
    }
    Ok(())
}

/// The pid file of `daemon` in `dir`.
pub fn pid_file(dir: &Path, daemon: &str) -> PathBuf {
    dir.join(format!("{daemon}.pid"))
}

/// Adds `daemon`'s explicit paths to `cmd` (a command running [`binary`], usually inside a
/// namespace): its config file, pid file, zebra socket and vty socket directory, and no vty
/// TCP port.
pub fn args<'c>(cmd: &'c mut Command, dir: &Path, daemon: &str, config: &Path) -> &'c mut Command {
    cmd.arg("-f")
        .arg(config)
        .arg("-i")
        .arg(pid_file(dir, daemon))
        .arg("-z")
        .arg(dir.join("zserv.api"))
        .arg("--vty_socket")
        .arg(dir)
        .args(["-P", "0"])
}

/// Gives `dir` and everything in it to user `frr`, which the daemons drop to and must write
/// their pid files, sockets and logs as.
pub fn chown(dir: &Path) -> Result<(), Failed> {
    run_timeout(
        Command::new("chown").args(["-R", "frr:frr"]).arg(dir),
        Duration::from_secs(5),
    )
    .map(|_| ())
}

/// `vtysh --vty_socket DIR` with `-c` per command, added to `cmd` (vtysh, maybe in a
/// namespace).
pub fn vtysh_args<'c>(cmd: &'c mut Command, dir: &Path, commands: &[&str]) -> &'c mut Command {
    cmd.arg("--vty_socket").arg(dir);
    for c in commands {
        cmd.args(["-c", c]);
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_is_under_the_routers_directory() {
        let dir = Path::new("/run/x/r1");
        let mut c = Command::new(binary("bgpd"));
        args(&mut c, dir, "bgpd", &dir.join("bgpd.conf"));
        let a: Vec<String> = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            a,
            [
                "-f",
                "/run/x/r1/bgpd.conf",
                "-i",
                "/run/x/r1/bgpd.pid",
                "-z",
                "/run/x/r1/zserv.api",
                "--vty_socket",
                "/run/x/r1",
                "-P",
                "0"
            ]
        );
    }
}
