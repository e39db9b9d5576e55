//! The `ferry` binary: parse arguments, run the command, exit with its code.

fn main() {
    let cli = match ferry::cli::parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // clap exits 2 on usage errors, 0 for --help and --version.
            std::process::exit(if e.use_stderr() { 2 } else { 0 });
        }
    };
    std::process::exit(ferry::cli::run(cli));
}
