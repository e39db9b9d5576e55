//! `ferry completions SHELL` and `ferry man [--dir DIR]`: the shell completions and man pages,
//! generated from the same clap definitions that parse the command line, for people who build
//! from source (the Debian package ships the same files, made by these commands).
//!
//! Contract: completions go to stdout only. `ferry man` prints the page of `ferry` itself to
//! stdout; with `--dir DIR` it writes one page per command and subcommand (`ferry.1`,
//! `ferry-failover.1`, `ferry-failover-status.1`, ...) into DIR, which must exist, and prints
//! nothing else. A write error is reported with the path and exits 1.

use std::io::Write as _;
use std::path::PathBuf;

use clap::{Args, CommandFactory};

use super::{Cli, EXIT_FAILED, EXIT_OK};

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for (bash, zsh, fish, elvish, powershell).
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write one page per command and subcommand into this existing directory (ferry.1,
    /// ferry-failover.1, ...) instead of printing the page of `ferry` to stdout.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

pub fn completions(args: CompletionsArgs) -> i32 {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "ferry", &mut out);
    write_stdout("completions", &out)
}

pub fn man(args: ManArgs) -> i32 {
    let cmd = Cli::command();
    match args.dir {
        Some(dir) => {
            if !dir.is_dir() {
                eprintln!(
                    "ferry man: --dir {}: not a directory (create it first)",
                    dir.display()
                );
                return super::EXIT_USAGE;
            }
            match clap_mangen::generate_to(cmd, &dir) {
                Ok(()) => EXIT_OK,
                Err(e) => {
                    eprintln!("ferry man: writing pages into {}: {e}", dir.display());
                    EXIT_FAILED
                }
            }
        }
        None => {
            let mut out = Vec::new();
            if let Err(e) = clap_mangen::Man::new(cmd).render(&mut out) {
                eprintln!("ferry man: {e}");
                return EXIT_FAILED;
            }
            write_stdout("man", &out)
        }
    }
}

fn write_stdout(command: &str, bytes: &[u8]) -> i32 {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => EXIT_OK,
        // A closed pipe (`ferry man | head`) is the reader's choice, not a failure.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => EXIT_OK,
        Err(e) => {
            eprintln!("ferry {command}: stdout: {e}");
            EXIT_FAILED
        }
    }
}
