//! Fencing tokens on the command line: `--fence NAME --fence-token N` for `ferry announce`,
//! `ferry withdraw` and `ferry lease renew` (scripts that run their own leader election), and
//! `ferry fences [--json]`, the tokens a speaker holds.
//!
//! Never does: pick a token (the caller's election does) or remember one.

use clap::Args;

use super::{report, table, ApiArgs, EXIT_OK, EXIT_USAGE};
use crate::api::{blocking, Fence};

/// The fence a state-changing command carries: both flags or neither.
#[derive(Debug, Args, Default)]
pub struct FenceArgs {
    /// Fence name (e.g. the plan whose leader you are); the speaker refuses a token lower than
    /// the highest it has seen for this name. Needs --fence-token.
    #[arg(long, value_name = "NAME", requires = "fence_token")]
    pub fence: Option<String>,
    /// Fencing token (a decimal number, e.g. the revision at which leadership was won).
    /// Needs --fence.
    #[arg(long, value_name = "N", requires = "fence")]
    pub fence_token: Option<u64>,
}

impl FenceArgs {
    /// `client` carrying the fence if one was given; a bad name is a usage error (printed).
    pub fn apply(
        &self,
        command: &str,
        client: blocking::Speaker,
    ) -> Result<blocking::Speaker, i32> {
        match (&self.fence, self.fence_token) {
            (Some(name), Some(token)) => match Fence::new(name.as_str(), token) {
                Ok(f) => Ok(client.with_fence(f)),
                Err(e) => {
                    eprintln!("ferry {command}: --fence: {e}");
                    Err(EXIT_USAGE)
                }
            },
            // clap's `requires` makes these two impossible; refuse rather than send unfenced.
            (Some(_), None) | (None, Some(_)) => {
                eprintln!("ferry {command}: --fence and --fence-token go together");
                Err(EXIT_USAGE)
            }
            (None, None) => Ok(client),
        }
    }
}

#[derive(Debug, Args)]
pub struct FencesArgs {
    /// Print the held fences as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `ferry fences [--json]`.
pub fn run(args: FencesArgs) -> i32 {
    let client = match args.api.client_for("fences") {
        Ok(c) => c,
        Err(code) => return code,
    };
    match client.fences() {
        Ok(held) if args.json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&held).unwrap_or_default()
            );
            EXIT_OK
        }
        Ok(held) => {
            let rows: Vec<Vec<String>> = held
                .iter()
                .map(|f| vec![f.fence.clone(), f.token.to_string(), f.refused.to_string()])
                .collect();
            println!("{}", table::render(&["FENCE", "TOKEN", "REFUSED"], &rows));
            EXIT_OK
        }
        Err(e) => report("fences", &e),
    }
}
