//! `ferry plan check`, `ferry failover`, `ferry failback` and `ferry failover
//! status|resume|abort|repair|history`: argument parsing, confirmation, progress and summaries. The
//! work is done by [`crate::controller`].
//!
//! Exit codes: 0 completed (or nothing to do; for `abort`, rolled back; for `repair`, the
//! damaged runs closed), 1 the run failed, rolled back, stopped for the operator, or another
//! controller holds the plan; 2 bad usage, a bad plan, or a `repair --active` that is not a
//! site of the plan.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};

use super::{table, EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::controller::claim::{self, Claim, TakeOver, TakeOverRefused};
use crate::controller::journal::now_ms;
use crate::controller::lock::{self as plan_lock, Holder};
use crate::controller::repair;
use crate::controller::rpki;
use crate::controller::sites::{ApiSites, SystemProbes};
use crate::controller::step::{self, Ctx};
use crate::controller::{keeper, runs, Direction, End, ExecError, Executor, Mode, Plan, Progress};

const DEFAULT_STATE_DIR: &str = "/var/lib/ferry/controller";

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(subcommand)]
    pub command: PlanCommand,
}

#[derive(Debug, Subcommand)]
pub enum PlanCommand {
    /// Validate a plan; unless --offline, also check the speakers: sessions Established, the
    /// primary announces every subnet and the recovery site none. With host routes and a
    /// [verify] observer, each host route is announced at the primary for the check (the site
    /// that already attracts its traffic) until the observer sees it, then withdrawn: a router
    /// that filters host routes fails the check.
    Check {
        /// The plan file (TOML).
        plan: PathBuf,
        /// Check the file only (syntax, fields, values, that every name it uses is defined);
        /// reach no speaker.
        #[arg(long)]
        offline: bool,
        /// One JSON object: the plan's figures and the speakers' readiness (`"speakers":
        /// "ready"`, `"not checked"` with --offline, or the error).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        rpki: RpkiArgs,
    },
}

#[derive(Debug, Args, Clone, Copy)]
pub struct RpkiArgs {
    /// With `[rpki]` in the plan: report RPKI Invalid routes of the site gaining the subnets,
    /// and validators that do not answer, as warnings instead of failing (routers that drop
    /// Invalid routes will still drop them).
    #[arg(long)]
    pub ignore_rpki: bool,
}

#[derive(Debug, Args, Clone)]
pub struct StateArgs {
    /// Where runs' journals and locks are kept.
    #[arg(long, env = "FERRY_STATE_DIR", default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Keep journals, the plan lock and run history in etcd instead of --state-dir, shared by
    /// a controller at each site: etcd://HOST:PORT[,HOST:PORT...] (docs/ha.md). Without it, a
    /// command given a plan file uses the plan's [store] table, if any.
    #[arg(long, env = "FERRY_STORE", value_name = "etcd://HOST:PORT,...")]
    pub store: Option<String>,
    #[command(flatten)]
    pub etcd: Box<EtcdArgs>,
}

/// How to reach etcd when --store names it.
#[derive(Debug, Args, Clone)]
pub struct EtcdArgs {
    /// etcd: the CA certificate (PEM) of the members' TLS; the endpoints are then https.
    #[arg(long, value_name = "FILE")]
    pub etcd_ca: Option<PathBuf>,
    /// etcd: this controller's client certificate (PEM), with --etcd-key.
    #[arg(long, value_name = "FILE")]
    pub etcd_cert: Option<PathBuf>,
    /// etcd: the client certificate's private key (PEM).
    #[arg(long, value_name = "FILE")]
    pub etcd_key: Option<PathBuf>,
    /// etcd: the user to authenticate as, with --etcd-password-file.
    #[arg(long, value_name = "NAME")]
    pub etcd_user: Option<String>,
    /// etcd: a file holding the user's password (one line).
    #[arg(long, value_name = "FILE")]
    pub etcd_password_file: Option<PathBuf>,
    /// etcd: the TTL of the plan lock's and the leadership's lease, in seconds: how long a
    /// dead controller holds them (docs/ha.md, "lease arithmetic"); default 5.
    #[arg(long, value_name = "SECS")]
    pub etcd_ttl_secs: Option<u64>,
}

impl StateArgs {
    /// These options, completed from `plan`'s `[store]` table: without --store (or
    /// FERRY_STORE), the table's etcd; each --etcd-* flag given wins over its field.
    pub fn with_plan(&self, plan: &crate::controller::Plan) -> Self {
        let mut s = self.clone();
        let Some(t) = plan.store.as_ref().filter(|_| self.store.is_none()) else {
            return s;
        };
        s.store = Some(t.url());
        let e = &mut s.etcd;
        e.etcd_ca = e.etcd_ca.take().or_else(|| t.ca.clone());
        e.etcd_cert = e.etcd_cert.take().or_else(|| t.cert.clone());
        e.etcd_key = e.etcd_key.take().or_else(|| t.key.clone());
        e.etcd_user = e.etcd_user.take().or_else(|| t.user.clone());
        e.etcd_password_file = e
            .etcd_password_file
            .take()
            .or_else(|| t.password_file.clone());
        e.etcd_ttl_secs = e.etcd_ttl_secs.or(t.ttl_secs);
        s
    }

    /// The store these options name, checked.
    pub fn spec(&self) -> Result<crate::controller::store::StoreSpec, String> {
        crate::controller::store::StoreSpec::parse(
            self.store.as_deref(),
            &self.state_dir,
            crate::controller::store::EtcdAuth {
                ca: self.etcd.etcd_ca.clone(),
                cert: self.etcd.etcd_cert.clone(),
                key: self.etcd.etcd_key.clone(),
                user: self.etcd.etcd_user.clone(),
                password_file: self.etcd.etcd_password_file.clone(),
            },
            self.etcd
                .etcd_ttl_secs
                .unwrap_or(crate::controller::store::DEFAULT_TTL_SECS),
        )
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The plan file (TOML).
    #[arg(long)]
    pub plan: Option<PathBuf>,
    /// Print the steps and run the preflight checks; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
    /// The site losing the subnets may be down: its steps are best effort, with short timeouts.
    #[arg(long)]
    pub unplanned: bool,
    /// A test failover: announce to the plan's test_site (the isolated test network) instead
    /// of the recovery site, keep the primary announcing, run only hooks and checks with
    /// `test = true`. Undo with `ferry failover cleanup-test`.
    #[arg(long, conflicts_with = "unplanned")]
    pub test: bool,
    /// JSON lines instead of text: the plan, each step's start and end, the run's outcome
    /// (with the run as `failover status --json` shows it). Prompts go to stderr.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub rpki: RpkiArgs,
    #[command(flatten)]
    pub state: StateArgs,
}

/// `resume` and `abort`: which run, and how to print.
#[derive(Debug, Args)]
pub struct TakeOverArgs {
    #[command(flatten)]
    pub select: SelectArgs,
    /// JSON lines instead of text, as `ferry failover --json` prints them.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct FailoverArgs {
    #[command(subcommand)]
    pub action: Option<FailoverAction>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum FailoverAction {
    /// The latest run of each plan: state, active site, when.
    Status {
        #[command(flatten)]
        select: SelectArgs,
        /// One JSON object per plan (an array).
        #[arg(long)]
        json: bool,
    },
    /// Finish an interrupted or stopped run (after a crash, or when the operator fixed the cause).
    Resume(TakeOverArgs),
    /// Roll back an unfinished run.
    Abort(TakeOverArgs),
    /// Keep the leases of the plan's subnets renewed at the site that holds them (fencing):
    /// every third of the shortest `lease_secs`, until stopped. When this process, its host or
    /// its path to a site is gone, that site's speaker withdraws the subnets by itself.
    Keep {
        /// The plan file (TOML); its sites need `lease_secs`.
        #[arg(long)]
        plan: PathBuf,
        /// Renew once and exit: 0 when every renewal succeeded, 1 otherwise.
        #[arg(long)]
        once: bool,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Lower the TTL of the plan's [[dns]] records to their failover_ttl, at whichever address
    /// they hold now; run it at least `ttl` seconds before a planned failover, so resolvers
    /// hold the short TTL by then. --restore sets `ttl` again.
    Prestage {
        /// The plan file (TOML) with [[dns]] entries.
        #[arg(long)]
        plan: PathBuf,
        /// Set the records' normal `ttl` again (after the move has settled).
        #[arg(long)]
        restore: bool,
    },
    /// Close the runs of a plan whose journals are damaged or cannot be read, once you have
    /// checked which site announces the subnets (`ferry status` at each site). Each damaged
    /// journal is kept as `<run>.jsonl.damaged`; a fresh journal takes its place: its legal
    /// records, then one saying that --active announces the subnets. Status, new runs and
    /// `failover keep` go by that site from then on.
    Repair {
        /// The plan whose runs to close (its `name`).
        #[arg(long = "plan-name")]
        plan_name: String,
        /// The site that announces the plan's subnets now, as you checked it.
        #[arg(long)]
        active: String,
        /// The repaired journals as JSON (an array).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        state: StateArgs,
    },
    /// End a test failover: withdraw the plan's routes at its test_site, then run the `undo`
    /// of each `test = true` hook (the last first). Safe to run again.
    CleanupTest {
        /// The plan file (TOML).
        #[arg(long)]
        plan: PathBuf,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        /// JSON lines instead of text, as `ferry failover --json` prints them.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Every run: who, when, plan, outcome; with --run, each step and its timing.
    History {
        /// One run's id (as `history` lists it): show each of its steps and their timing.
        #[arg(long)]
        run: Option<String>,
        /// The runs (or the one run) as JSON, with every step.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        state: StateArgs,
    },
}

#[derive(Debug, Args)]
pub struct SelectArgs {
    /// Only runs of this plan (its `name`).
    #[arg(long = "plan-name")]
    pub plan_name: Option<String>,
    #[command(flatten)]
    pub state: StateArgs,
}

pub fn plan(args: PlanArgs) -> i32 {
    let PlanCommand::Check {
        plan,
        offline,
        json,
        rpki,
    } = args.command;
    let p = match Plan::load(&plan) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("ferry plan check: {e}");
            return EXIT_USAGE;
        }
    };
    let steps = step::build(&p, Direction::Failover, Mode::Planned);
    // The RPKI preflight of a failover (the recovery site gains the subnets).
    let rov = (!offline).then(|| rpki::preflight(&p, p.recovery(), rpki.ignore_rpki));
    if json {
        let rov_json = match &rov {
            None if p.rpki.is_some() => "not checked".into(),
            None | Some(None) => serde_json::Value::Null,
            Some(Some(outcome)) => outcome.to_json(),
        };
        let speakers = if offline {
            Ok("not checked".to_owned())
        } else {
            check_speakers_printing(&p, Direction::Failover, Mode::Planned, false)
                .and_then(|()| probe_hosts(&p))
                .map(|note| note.map_or("ready".to_owned(), |n| format!("ready; {n}")))
        };
        let mut v = serde_json::json!({
            "plan": p.name,
            "primary": p.primary().name,
            "recovery": p.recovery().name,
            "groups": p.groups.len(),
            "subnets": p.all_prefixes().len(),
            "steps": steps.len(),
            "valid": true,
            "rpki": rov_json,
        });
        let code = match speakers {
            Ok(s) => {
                v["speakers"] = s.into();
                EXIT_OK
            }
            Err(e) => {
                v["speakers"] = e.to_string().into();
                EXIT_FAILED
            }
        };
        println!("{v}");
        return if matches!(&rov, Some(Some(o)) if o.failed.is_some()) {
            EXIT_FAILED
        } else {
            code
        };
    }
    println!(
        "plan {}: {} -> {}, {} groups, {} subnets, {} steps: valid",
        p.name,
        p.primary().name,
        p.recovery().name,
        p.groups.len(),
        p.all_prefixes().len(),
        steps.len()
    );
    if let Some(w) = crate::controller::observe::cannot_tell_apart(&p) {
        eprintln!("ferry plan check: warning: {w}");
    }
    if offline {
        if p.rpki.is_some() {
            println!("rpki: not checked (--offline)");
        }
        return EXIT_OK;
    }
    for w in super::dns::prestage_warnings(&p) {
        eprintln!("ferry plan check: warning: {w}");
    }
    let rov_ok = match rov.flatten() {
        Some(outcome) => say_rpki("plan check", &outcome),
        None => true,
    };
    let code = match check_speakers(&p, Direction::Failover, Mode::Planned)
        .and_then(|()| probe_hosts(&p))
    {
        Ok(note) => {
            println!("speakers: ready for failover");
            if let Some(n) = note {
                println!("host routes: {n}");
            }
            EXIT_OK
        }
        Err(e) => {
            eprintln!("ferry plan check: {e}");
            EXIT_FAILED
        }
    };
    if rov_ok {
        code
    } else {
        EXIT_FAILED
    }
}

/// Prints the RPKI preflight's outcome (each route's state on stdout, warnings and the
/// failure on stderr); whether it passed.
fn say_rpki(cmd: &str, outcome: &rpki::Outcome) -> bool {
    if let Some(s) = &outcome.source {
        println!(
            "rpki: {} VRPs from {} (RTR version {})",
            s.vrps, s.validator, s.version
        );
    }
    for f in &outcome.findings {
        println!(
            "rpki: {} {} from AS{}: {}",
            f.site, f.prefix, f.origin_as, f.verdict.state
        );
    }
    for w in &outcome.warnings {
        eprintln!("ferry {cmd}: warning: {w}");
    }
    match &outcome.failed {
        None => true,
        Some(e) => {
            eprintln!("ferry {cmd}: rpki preflight failed: {e}");
            false
        }
    }
}

/// `ferry failover keep`: [`keeper::run`], its news on stderr.
fn keep(plan_path: &Path, once: bool, state: &StateArgs) -> i32 {
    let p = match Plan::load(plan_path) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("ferry failover keep: {e}");
            return EXIT_USAGE;
        }
    };
    let say = &mut |line: String| eprintln!("ferry failover keep: {line}");
    match keeper::run(&p, &state.state_dir, once, say) {
        Ok(true) => EXIT_OK,
        Ok(false) => EXIT_FAILED,
        Err(e) => {
            eprintln!("ferry failover keep: {e}");
            EXIT_USAGE
        }
    }
}

fn sites_for(p: &Plan, mode: Mode) -> Result<ApiSites, String> {
    let timeout = match mode {
        Mode::Planned | Mode::Test => Duration::from_secs(10),
        Mode::Unplanned => Duration::from_secs(3),
    };
    ApiSites::new(p, timeout)
}

/// [`step::host_probe`] against the plan's speakers.
fn probe_hosts(p: &Plan) -> Result<Option<String>, String> {
    let sites = sites_for(p, Mode::Planned)?;
    step::host_probe(&Ctx {
        plan: p,
        direction: Direction::Failover,
        mode: Mode::Planned,
        sites: &sites,
        probes: &SystemProbes,
        dns: &crate::controller::dns::SystemDns,
        spawned: &|_| Ok(()),
    })
}

fn check_speakers(p: &Plan, direction: Direction, mode: Mode) -> Result<(), String> {
    check_speakers_printing(p, direction, mode, true)
}

/// [`check_speakers`]; `table`: print the sites' table first.
fn check_speakers_printing(
    p: &Plan,
    direction: Direction,
    mode: Mode,
    table: bool,
) -> Result<(), String> {
    let sites = sites_for(p, mode)?;
    let cx = Ctx {
        plan: p,
        direction,
        mode,
        sites: &sites,
        probes: &SystemProbes,
        dns: &crate::controller::dns::SystemDns,
        spawned: &|_| Ok(()),
    };
    if table {
        print_sites(p, &sites);
    }
    step::dry_run(&cx).map(|_| ())
}

/// One line per site: its role, sessions up, and how many of the plan's subnets it announces.
fn print_sites(p: &Plan, sites: &ApiSites) {
    use crate::controller::sites::Sites as _;
    let prefixes = p.all_prefixes();
    let rows: Vec<Vec<String>> = p
        .sites
        .iter()
        .map(|site| {
            let role = if site.name == *p.primary.get_ref() {
                "primary"
            } else if site.name == *p.recovery.get_ref() {
                "recovery"
            } else {
                "observer"
            };
            let (sessions, announces) = match (sites.peers(&site.name), sites.announced(&site.name))
            {
                (Ok(peers), Ok(routes)) => (
                    format!(
                        "{}/{} Established",
                        peers
                            .iter()
                            .filter(|x| x.state == crate::api::SessionState::Established)
                            .count(),
                        peers.len()
                    ),
                    format!(
                        "{}/{}",
                        prefixes
                            .iter()
                            .filter(|x| routes.iter().any(|r| r.prefix == **x))
                            .count(),
                        prefixes.len()
                    ),
                ),
                _ => ("unreachable".into(), "-".into()),
            };
            vec![
                site.name.clone(),
                role.into(),
                site.api.clone(),
                sessions,
                announces,
            ]
        })
        .collect();
    println!(
        "{}",
        table::render(&["SITE", "ROLE", "API", "SESSIONS", "ANNOUNCES"], &rows)
    );
}

pub fn failover(args: FailoverArgs) -> i32 {
    match args.action {
        None => run(args.run, Direction::Failover, "failover"),
        Some(FailoverAction::Status { select, json }) => status(&select, json),
        Some(FailoverAction::Resume(t)) if t.select.state.store.is_some() => {
            super::controller::take_over(&t.select, false)
        }
        Some(FailoverAction::Abort(t)) if t.select.state.store.is_some() => {
            super::controller::take_over(&t.select, true)
        }
        Some(FailoverAction::Keep { state, .. } | FailoverAction::Repair { state, .. })
            if state.store.is_some() =>
        {
            eprintln!("ferry failover: keep and repair work on --state-dir only; with --store, `ferry controller run` keeps the leases (docs/ha.md)");
            EXIT_USAGE
        }
        Some(FailoverAction::Resume(t)) => take_over(&t.select, false, Out(t.json)),
        Some(FailoverAction::Keep { plan, once, state }) => keep(&plan, once, &state),
        Some(FailoverAction::Prestage { plan, restore }) => super::dns::prestage(&plan, restore),
        Some(FailoverAction::Abort(t)) => take_over(&t.select, true, Out(t.json)),
        Some(FailoverAction::Repair {
            plan_name,
            active,
            json,
            state,
        }) => repair(&plan_name, &active, &state.state_dir, Out(json)),
        Some(FailoverAction::CleanupTest {
            plan,
            yes,
            json,
            state,
        }) => run(
            RunArgs {
                plan: Some(plan),
                dry_run: false,
                yes,
                unplanned: false,
                test: true,
                json,
                rpki: RpkiArgs { ignore_rpki: false },
                state,
            },
            Direction::Failback,
            "failover cleanup-test",
        ),
        Some(FailoverAction::History { run, json, state }) => history(&state, run.as_deref(), json),
    }
}

pub fn failback(args: RunArgs) -> i32 {
    if args.test {
        eprintln!("ferry failback: --test is for `ferry failover`; a test failover ends with `ferry failover cleanup-test --plan PLAN`");
        return EXIT_USAGE;
    }
    run(args, Direction::Failback, "failback")
}

/// How a run command prints: text for people, or JSON lines (`--json`) for programs. Errors
/// and warnings go to stderr as text either way.
#[derive(Debug, Clone, Copy)]
struct Out(bool);

impl Out {
    /// A line for people: printed unless `--json`.
    fn text(self, line: std::fmt::Arguments<'_>) {
        if !self.0 {
            println!("{line}");
        }
    }

    /// One JSON line: printed with `--json`.
    fn event(self, v: serde_json::Value) {
        if self.0 {
            println!("{v}");
            let _ = std::io::stdout().flush();
        }
    }
}

fn run(args: RunArgs, direction: Direction, cmd: &str) -> i32 {
    let out = Out(args.json);
    let Some(path) = &args.plan else {
        eprintln!("ferry {cmd}: --plan PLAN is required");
        return EXIT_USAGE;
    };
    let p = match Plan::load(path) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("ferry {cmd}: {e}");
            return EXIT_USAGE;
        }
    };
    let mode = if args.test {
        Mode::Test
    } else if args.unplanned {
        Mode::Unplanned
    } else {
        Mode::Planned
    };
    if let Err(e) = step::check_test(&p, mode) {
        eprintln!("ferry {cmd}: {e}");
        return EXIT_USAGE;
    }
    let steps = step::build(&p, direction, mode);
    let (from, to) = step::ends(&p, direction, mode);
    let to_name = to.name.clone();
    let order = match p.order {
        crate::controller::plan::Order::BreakBeforeMake => "break-before-make",
        crate::controller::plan::Order::MakeBeforeBreak => "make-before-break",
    };
    out.text(format_args!(
        "{cmd} of plan {}{}: {} -> {} ({order}), {} steps:",
        p.name,
        match mode {
            Mode::Unplanned => " (unplanned)",
            Mode::Test if direction == Direction::Failover => {
                " (test: the primary keeps announcing; the test network only)"
            }
            Mode::Test => " (ends the test)",
            Mode::Planned => "",
        },
        from.name,
        to.name,
        steps.len()
    ));
    for (i, s) in steps.iter().enumerate() {
        out.text(format_args!("  {:>2}. {}", i + 1, s.name));
    }
    out.event(serde_json::json!({
        "event": "plan",
        "command": cmd,
        "plan": p.name,
        "unplanned": args.unplanned,
        "test": args.test,
        "from": from.name,
        "to": to.name,
        "order": order,
        "steps": steps.iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
    }));
    // A test run announces only into the isolated test network, which no validator judges.
    let preflight = (!args.test)
        .then(|| rpki::preflight(&p, to, args.rpki.ignore_rpki))
        .flatten();
    if let Some(outcome) = preflight {
        let passed = if out.0 {
            for w in &outcome.warnings {
                eprintln!("ferry {cmd}: warning: {w}");
            }
            if let Some(e) = &outcome.failed {
                eprintln!("ferry {cmd}: rpki preflight failed: {e}");
            }
            let verdict = if outcome.failed.is_none() {
                "passed"
            } else {
                "failed"
            };
            out.event(serde_json::json!({"event": "rpki", "preflight": verdict, "rpki": outcome.to_json()}));
            outcome.failed.is_none()
        } else {
            say_rpki(cmd, &outcome)
        };
        if !passed {
            return EXIT_FAILED;
        }
    }
    if args.dry_run {
        return match check_speakers_printing(&p, direction, mode, !out.0) {
            Ok(()) => {
                out.text(format_args!("dry run: preflight passed; nothing changed"));
                out.event(serde_json::json!({"event": "dry_run", "preflight": "passed"}));
                EXIT_OK
            }
            Err(e) => {
                eprintln!("ferry {cmd}: dry run: preflight failed: {e}");
                out.event(
                    serde_json::json!({"event": "dry_run", "preflight": "failed", "error": e}),
                );
                EXIT_FAILED
            }
        };
    }
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            eprintln!("ferry {cmd}: not a terminal: confirm with --yes");
            return EXIT_USAGE;
        }
        // With --json, stdout is for the JSON lines: the question goes to stderr.
        let question = format!("proceed with the {cmd}? [y/N] ");
        if out.0 {
            eprint!("{question}");
        } else {
            print!("{question}");
            let _ = std::io::stdout().flush();
        }
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            out.text(format_args!("not confirmed; nothing changed"));
            out.event(serde_json::json!({"event": "end", "outcome": "not_confirmed"}));
            return EXIT_OK;
        }
    }
    let state_dir = &args.state.state_dir;
    let me = Holder::me(&format!("{cmd} {}", p.name));
    let state = args.state.with_plan(&p);
    if state.store.is_some() {
        return super::controller::run_in_store(&state, p, direction, mode, me, cmd, out.0);
    }
    let cleanup = mode == Mode::Test && direction == Direction::Failback;
    let _claim = match claimed(claim::new_run(state_dir, &p.name, &me, cleanup), cmd) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let sites = match sites_for(&p, mode) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ferry {cmd}: {e}");
            return EXIT_USAGE;
        }
    };
    let n = steps.len();
    let started = now_ms();
    let ex = Executor::start(
        state_dir,
        p,
        direction,
        mode,
        me.clone(),
        &sites,
        &SystemProbes,
        printer(n, out),
    );
    let mut ex = match ex {
        Ok(ex) => ex,
        Err(e) => {
            eprintln!("ferry {cmd}: {e}");
            return EXIT_FAILED;
        }
    };
    out.text(format_args!(
        "run {} ({})",
        ex.run_id,
        ex.journal.path().display()
    ));
    out.event(serde_json::json!({
        "event": "run",
        "run_id": ex.run_id,
        "journal": ex.journal.path(),
    }));
    let end = ex.drive();
    let test_up = mode == Mode::Test
        && direction == Direction::Failover
        && matches!(end, Ok(End::Completed { .. }));
    let code = finish(cmd, false, end, state_dir, &ex.run_id, started, out);
    if test_up {
        out.text(format_args!(
            "test: {} announces the subnets to the test network only; end the test with `ferry failover cleanup-test --plan {}`",
            to_name,
            path.display()
        ));
    }
    code
}

/// Say a claim's warnings; the claim, or the refusal said and the exit code.
fn claimed(c: Result<Claim, claim::Refused>, cmd: &str) -> Result<Claim, i32> {
    match c {
        Ok(c) => {
            say_warnings(cmd, &c.warnings);
            Ok(c)
        }
        Err(r) => Err(refused(cmd, r)),
    }
}

/// Say a refusal (its warnings first); the exit code.
fn refused(cmd: &str, r: claim::Refused) -> i32 {
    say_warnings(cmd, &r.warnings);
    eprintln!("ferry {cmd}: {}", r.error);
    EXIT_FAILED
}

fn say_warnings(cmd: &str, warnings: &[String]) {
    for w in warnings {
        eprintln!("ferry {cmd}: warning: {w}");
    }
}

/// Live progress: one line per step, with its elapsed time and result; with `--json`, one
/// JSON line per event.
pub(super) fn printer_for(n: usize, json: bool) -> Box<dyn FnMut(Progress)> {
    printer(n, Out(json))
}

fn printer(n: usize, out: Out) -> Box<dyn FnMut(Progress)> {
    Box::new(move |p| {
        if out.0 {
            out.event(progress_json(n, p));
            return;
        }
        match p {
            Progress::Started { step, name, undo } => {
                let verb = if undo { "undo " } else { "" };
                print!("[{:>2}/{n}] {verb}{name} ... ", step + 1);
            }
            Progress::Finished {
                elapsed, result, ..
            } => {
                let ms = elapsed.as_secs_f64() * 1000.0;
                match result {
                    Ok(None) => println!("ok ({ms:.1} ms)"),
                    Ok(Some(note)) => println!("ok ({ms:.1} ms): {note}"),
                    Err(e) => println!("FAILED ({ms:.1} ms): {e}"),
                }
            }
            Progress::RollingBack { reason } => println!("rolling back: {reason}"),
            Progress::Note(text) => println!("{text}"),
        }
        let _ = std::io::stdout().flush();
    })
}

/// A progress event as one JSON object (`--json`); `step` counts from 1, as the text does.
fn progress_json(n: usize, p: Progress) -> serde_json::Value {
    match p {
        Progress::Started { step, name, undo } => serde_json::json!({
            "event": "step_started", "step": step + 1, "of": n, "name": name, "undo": undo,
        }),
        Progress::Finished {
            step,
            name,
            undo,
            elapsed,
            result,
        } => {
            let (ok, note, error) = match result {
                Ok(note) => (true, note, None),
                Err(e) => (false, None, Some(e)),
            };
            serde_json::json!({
                "event": "step_finished", "step": step + 1, "of": n, "name": name, "undo": undo,
                "elapsed_ms": elapsed.as_secs_f64() * 1000.0, "ok": ok, "note": note, "error": error,
            })
        }
        Progress::RollingBack { reason } => {
            serde_json::json!({"event": "rolling_back", "reason": reason})
        }
        Progress::Note(text) => serde_json::json!({"event": "note", "text": text}),
    }
}

/// `abort`: a rollback is what was asked for, so it exits 0.
fn finish(
    cmd: &str,
    abort: bool,
    end: Result<End, ExecError>,
    state_dir: &Path,
    run_id: &str,
    started: u64,
    out: Out,
) -> i32 {
    let total = now_ms().saturating_sub(started);
    let (code, outcome, active, reason) = match &end {
        Ok(End::Completed { active }) => {
            out.text(format_args!(
                "{cmd} completed in {total} ms: {active} announces the subnets"
            ));
            (EXIT_OK, "completed", Some(active.clone()), None)
        }
        Ok(End::RolledBack { active, reason }) => {
            out.text(format_args!(
                "{cmd} rolled back in {total} ms: {active} announces the subnets; {reason}"
            ));
            let code = if abort { EXIT_OK } else { EXIT_FAILED };
            (
                code,
                "rolled_back",
                Some(active.clone()),
                Some(reason.clone()),
            )
        }
        Ok(End::Stopped { reason }) => {
            out.text(format_args!("{cmd} stopped for the operator: {reason}; `ferry failover resume` retries, `ferry failover abort` rolls back"));
            (EXIT_FAILED, "stopped", None, Some(reason.clone()))
        }
        Err(e) => {
            eprintln!("ferry {cmd}: {e}; the journal says where it stopped: `ferry failover resume` or `abort`");
            (EXIT_FAILED, "error", None, Some(e.to_string()))
        }
    };
    let run = runs::list(state_dir)
        .ok()
        .and_then(|all| all.runs.into_iter().find(|r| r.run_id == run_id));
    if out.0 {
        out.event(serde_json::json!({
            "event": "end",
            "outcome": outcome,
            "active": active,
            "reason": reason,
            "total_ms": total,
            "exit_code": code,
            "run": run.as_ref().map(|r| r.to_json()),
        }));
    } else if let Some(r) = &run {
        print_steps(r);
    }
    code
}

fn print_steps(r: &runs::RunSummary) {
    let rows: Vec<Vec<String>> = r
        .steps
        .iter()
        .map(|s| {
            vec![
                format!("{}", s.step + 1),
                format!("{}{}", if s.undo { "undo " } else { "" }, s.name),
                s.ms.map_or("-".into(), |m| m.to_string()),
                s.result.clone(),
            ]
        })
        .collect();
    println!("{}", table::render(&["#", "STEP", "MS", "RESULT"], &rows));
}

/// Prints what a listing could not read or found damaged; whether there was any.
fn warn(cmd: &str, l: &runs::Listing) -> bool {
    let w = l.warnings();
    for text in &w {
        eprintln!("ferry {cmd}: warning: {text}");
    }
    !w.is_empty()
}

/// The run's state, or "running (pid N)" while a controller holds its plan's lock.
fn live_state(state_dir: &Path, r: &runs::RunSummary) -> (String, Option<u32>) {
    match plan_lock::running(state_dir, &r.plan) {
        Some(pid) if !r.finished() => (format!("running (pid {pid})"), Some(pid)),
        _ => (r.state(), None),
    }
}

fn status(s: &SelectArgs, json: bool) -> i32 {
    let state_dir = &s.state.state_dir;
    let listing = match &s.plan_name {
        _ if s.state.store.is_some() => {
            super::controller::listing(&s.state, s.plan_name.as_deref())
        }
        Some(p) => runs::of_plan(state_dir, p),
        None => runs::list(state_dir),
    };
    let listing = match listing {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ferry failover status: {e}");
            return EXIT_FAILED;
        }
    };
    let warned = warn("failover status", &listing);
    let all = &listing.runs;
    let mut latest: Vec<&runs::RunSummary> = Vec::new();
    for r in all.iter().rev() {
        if s.plan_name.as_ref().is_none_or(|p| &r.plan == p)
            && !latest.iter().any(|l| l.plan == r.plan)
        {
            latest.push(r);
        }
    }
    let code = if warned || latest.iter().any(|r| !r.finished()) {
        EXIT_FAILED
    } else {
        EXIT_OK
    };
    if json {
        let v: Vec<_> = latest
            .iter()
            .map(|r| {
                let mut v = r.to_json();
                let (state, pid) = live_state(state_dir, r);
                v["state"] = state.into();
                v["running_pid"] = pid.into();
                v
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return code;
    }
    if latest.is_empty() {
        println!("no runs in {}", state_dir.display());
        return code;
    }
    let rows: Vec<Vec<String>> = latest
        .iter()
        .map(|r| {
            vec![
                r.plan.clone(),
                r.kind().to_owned(),
                live_state(state_dir, r).0,
                r.active.clone().unwrap_or_else(|| "-".into()),
                r.run_id.clone(),
            ]
        })
        .collect();
    println!(
        "{}",
        table::render(&["PLAN", "LAST RUN", "STATE", "ACTIVE", "RUN"], &rows)
    );
    for r in &latest {
        if let Some(w) = r.unfenced() {
            println!("warning: plan {}: {w}", r.plan);
        }
    }
    code
}

fn take_over(s: &SelectArgs, abort: bool, out: Out) -> i32 {
    let cmd = if abort { "abort" } else { "resume" };
    let state_dir = &s.state.state_dir;
    let (claim, r) = match claim::unfinished_run(state_dir, s.plan_name.as_deref(), cmd) {
        Ok(TakeOver::NoRun) => {
            out.text(format_args!(
                "nothing to {cmd}: no unfinished run in {}",
                state_dir.display()
            ));
            out.event(serde_json::json!({"event": "end", "outcome": "nothing_to_do", "exit_code": EXIT_OK}));
            return EXIT_OK;
        }
        Ok(TakeOver::FinishedMeanwhile { run_id, warnings }) => {
            say_warnings(&format!("failover {cmd}"), &warnings);
            out.text(format_args!(
                "nothing to {cmd}: run {run_id} finished meanwhile"
            ));
            out.event(serde_json::json!({"event": "end", "outcome": "nothing_to_do", "run_id": run_id, "exit_code": EXIT_OK}));
            return EXIT_OK;
        }
        Ok(TakeOver::Run { claim, run }) => (claim, run),
        Err(TakeOverRefused::SeveralPlans(plans)) => {
            eprintln!(
                "ferry failover {cmd}: unfinished runs of several plans ({}); choose with --plan-name",
                plans.join(", ")
            );
            return EXIT_USAGE;
        }
        Err(TakeOverRefused::Refused(r)) => return refused(&format!("failover {cmd}"), r),
    };
    say_warnings(&format!("failover {cmd}"), &claim.warnings);
    let me = claim.holder.clone();
    let sites = match Plan::parse(&r.plan_text).and_then(|p| sites_for(&p, r.mode)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ferry failover {cmd}: {e}");
            return EXIT_FAILED;
        }
    };
    let started = now_ms();
    let mut ex = match Executor::open(&r.path, &sites, &SystemProbes, printer(r.step_count, out)) {
        Ok(ex) => ex,
        Err(e) => {
            eprintln!("ferry failover {cmd}: {e}");
            return EXIT_FAILED;
        }
    };
    out.text(format_args!(
        "{cmd} run {} ({}): {}",
        ex.run_id,
        r.plan,
        r.state()
    ));
    out.event(serde_json::json!({
        "event": "run", "command": format!("failover {cmd}"), "run_id": ex.run_id,
        "plan": r.plan, "state": r.state(),
    }));
    let end = if abort { ex.abort(me) } else { ex.resume(me) };
    finish(
        &format!("failover {cmd}"),
        abort,
        end,
        state_dir,
        &r.run_id,
        started,
        out,
    )
}

/// `ferry failover repair`: under the plan's lock, close its damaged runs with `active`.
fn repair(plan: &str, active: &str, state_dir: &Path, out: Out) -> i32 {
    let cmd = "failover repair";
    let me = Holder::me(&format!("repair {plan}"));
    let claim = match claimed(claim::plan(state_dir, plan, &me), cmd) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match repair::repair(state_dir, plan, active, &me, &claim.lock) {
        Ok(done) if out.0 => {
            let v: Vec<_> = done
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "journal": r.journal, "kept": r.kept, "evidence": r.evidence,
                        "damage": r.damage.to_string(), "active": active,
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            EXIT_OK
        }
        Ok(done) if done.is_empty() => {
            println!("nothing to repair: plan {plan} has no damaged run journal");
            EXIT_OK
        }
        Ok(done) => {
            for r in done {
                println!(
                    "repaired {}: {} legal records kept, closed with {active} announcing the subnets; the damaged journal is kept as {} ({})",
                    r.journal.display(),
                    r.kept,
                    r.evidence.display(),
                    r.damage
                );
            }
            EXIT_OK
        }
        Err(e @ repair::RepairError::UnknownSite { .. }) => {
            eprintln!("ferry {cmd}: {e}");
            EXIT_USAGE
        }
        Err(e) => {
            eprintln!("ferry {cmd}: {e}");
            EXIT_FAILED
        }
    }
}

fn history(state: &StateArgs, run: Option<&str>, json: bool) -> i32 {
    let state_dir = &state.state_dir;
    let listing = if state.store.is_some() {
        super::controller::listing(state, None)
    } else {
        runs::list(state_dir)
    };
    let listing = match listing {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ferry failover history: {e}");
            return EXIT_FAILED;
        }
    };
    warn("failover history", &listing);
    let all = listing.runs;
    if let Some(id) = run {
        let Some(r) = all.iter().find(|r| r.run_id == id) else {
            eprintln!(
                "ferry failover history: no run {id} in {}",
                state_dir.display()
            );
            return EXIT_USAGE;
        };
        if json {
            println!(
                "{}",
                serde_json::to_string_pretty(&r.to_json()).unwrap_or_default()
            );
            return EXIT_OK;
        }
        println!(
            "run {} plan {} {:?} {:?} started {} by {}: {}",
            r.run_id,
            r.plan,
            r.direction,
            r.mode,
            runs::utc(r.started_ms),
            r.by,
            r.state()
        );
        for t in &r.takeovers {
            println!("  taken over by {t}");
        }
        print_steps(r);
        return EXIT_OK;
    }
    if json {
        let v: Vec<_> = all.iter().map(|r| r.to_json()).collect();
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return EXIT_OK;
    }
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|r| {
            vec![
                r.run_id.clone(),
                runs::utc(r.started_ms),
                r.plan.clone(),
                r.kind().to_owned(),
                format!("{}@{}", r.by.user, r.by.host),
                r.state(),
                r.active.clone().unwrap_or_else(|| "-".into()),
                r.last_ms.saturating_sub(r.started_ms).to_string(),
            ]
        })
        .collect();
    println!(
        "{}",
        table::render(
            &[
                "RUN",
                "STARTED",
                "PLAN",
                "DIRECTION",
                "BY",
                "STATE",
                "ACTIVE",
                "MS"
            ],
            &rows
        )
    );
    EXIT_OK
}
