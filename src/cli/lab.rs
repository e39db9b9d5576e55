//! `ferry lab up|down|testnet|status|demo|test` and the hidden `probe` and `responder` the lab runs
//! inside its namespaces. Output and exit codes only; the lab itself is [`crate::lab`].

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::lab::moves::Order;
use crate::lab::runtime::RuntimeKind;
use crate::lab::{chaos, image, instance, runtime, scenarios, LabError, LabInstance};

#[derive(Debug, Args)]
pub struct LabArgs {
    #[command(subcommand)]
    pub command: LabCommand,
    /// Where new nodes run: bare network namespaces (netns) or one Docker container per node
    /// (docker; needs the engine and `ferry lab image build`). A running instance keeps the
    /// runtime it was brought up with.
    #[arg(long, global = true, value_enum, default_value_t = RuntimeKind::Netns)]
    pub runtime: RuntimeKind,
    /// (docker) Run the routers from this local image instead of the built one, e.g. your
    /// production FRR version; it must have zebra, bgpd, bfdd and vtysh.
    #[arg(long, global = true, value_name = "IMAGE")]
    pub frr_image: Option<String>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ExportFormat {
    /// containerlab's `.clab.yml` (roles as ferry.* labels, addresses as exec lines).
    Containerlab,
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Build the Docker runtime's node image (FRR, iproute2) from Debian packages with
    /// debootstrap and `docker import`; does nothing when its content tag exists.
    Build {
        /// Debian mirror for debootstrap (default: the first one in the host's apt sources).
        #[arg(long, value_name = "URL")]
        mirror: Option<String>,
        /// The image name, whether it was built and the seconds taken, as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Print the node image's name (`ferry-lab-frr:<content tag>`) and whether it exists.
    Name,
}

#[derive(Debug, Args)]
pub struct InstanceArg {
    /// Lab instance: its namespaces are fl-<INSTANCE>-<node>.
    #[arg(long, default_value = "lab")]
    pub instance: String,
}

/// What `lab test` and `lab chaos` share: a lab of their own for the run, its report, the bound.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Instance name (default: t<pid> for test, c<pid> for chaos: unique per run).
    #[arg(long)]
    pub instance: Option<String>,
    /// Directory for the report (report.json, timeline.svg, probes.csv; chaos.json and logs/).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Seconds a planned move may take to converge.
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub bound: u64,
    /// Print live progress too.
    #[arg(long)]
    pub verbose: bool,
    /// The outcome as one JSON object on stdout; the lines for people go to stderr.
    #[arg(long)]
    pub json: bool,
}

impl RunArgs {
    /// The instance name (given, or `prefix` and this process's pid) and the output directory.
    fn instance_and_out(&self, prefix: &str) -> (String, PathBuf) {
        let instance = self
            .instance
            .clone()
            .unwrap_or_else(|| format!("{prefix}{}", std::process::id()));
        let out = self.out.clone().unwrap_or_else(|| default_out(&instance));
        (instance, out)
    }
}

#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Build the three-site lab (namespaces, FRR routers, Ferry speakers); idempotent.
    Up {
        #[command(flatten)]
        instance: InstanceArg,
        /// A topology directory (topology.toml and the router configs) or a containerlab file
        /// (`*.clab.yml`) instead of the built-in one.
        #[arg(long, value_name = "PATH")]
        topology: Option<PathBuf>,
        /// RPKI at the third site's router: stayrtr serving one ROA, for the primary speaker's
        /// AS only, and FRR's RPKI module dropping Invalid routes (docs/rpki.md, "In the lab").
        #[arg(long)]
        rpki: bool,
        /// The speakers' API sockets as one JSON object; progress goes to stderr.
        #[arg(long)]
        json: bool,
    },
    /// Remove the lab: every namespace, process and runtime file; idempotent.
    Down {
        #[command(flatten)]
        instance: InstanceArg,
        /// What was removed, as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Add the recovery site's isolated test network to a running lab, for test failovers:
    /// router r4 (AS 65004) peered only with a test speaker sp2t, and a test copy of the VM.
    Testnet {
        #[command(flatten)]
        instance: InstanceArg,
        /// The test speaker's API socket and r4's namespace as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Show namespaces, processes, BGP sessions and the third site's route.
    Status {
        #[command(flatten)]
        instance: InstanceArg,
        /// The lab's state (nodes, processes, files) and the status lines as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Up, a planned failover and failback with live progress, the report, down.
    Demo {
        /// Lab instance: its namespaces are fl-<INSTANCE>-<node>.
        #[arg(long, default_value = "demo")]
        instance: String,
        /// A topology directory or containerlab file (`*.clab.yml`) instead of the built-in one.
        #[arg(long, value_name = "PATH")]
        topology: Option<PathBuf>,
        /// Directory for report.json, timeline.svg and probes.csv.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Number of moves (alternating failover and failback).
        #[arg(long, default_value_t = 2)]
        moves: usize,
        /// Withdraw at the old site before announcing at the new one.
        #[arg(long)]
        break_before_make: bool,
        /// The report as one JSON object on stdout; progress goes to stderr.
        #[arg(long)]
        json: bool,
    },
    /// Run the failover scenarios; prints `N passed, M failed`, exit 1 on any failure.
    Test {
        #[command(flatten)]
        run: RunArgs,
        /// Run one group of scenarios only.
        #[arg(long, value_name = "GROUP",
              value_parser = clap::builder::PossibleValuesParser::new(crate::lab::scenarios::GROUPS))]
        only: Option<String>,
    },
    /// Failovers and failbacks while random faults are injected (speaker or bgpd SIGKILL, link
    /// cut; with --controller also SIGKILL of the controller mid-move and a full state disk);
    /// checks after every step that the acknowledged routes are where the moves put them,
    /// the third site routes to the active site, the probes are answered, no process leaks.
    /// Prints the seed and the first violated invariant (exit 1); writes chaos.json.
    Chaos {
        /// Seed of the fault and move sequence: the same seed replays the same run.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Minutes to keep starting steps (fractions allowed, e.g. 0.5).
        #[arg(long, default_value_t = 5.0, value_parser = minutes)]
        minutes: f64,
        #[command(flatten)]
        run: RunArgs,
        /// Seconds the lab may take to recover from a healed fault (sessions back up).
        #[arg(long, value_name = "SECONDS", default_value_t = 60)]
        recover: u64,
        /// Make the moves with the failover controller (`ferry failover`, state on a tmpfs
        /// mounted on OUT/controller/, journals kept in OUT/journals/) and also draw
        /// `controller-kill` (SIGKILL of it mid-move, then `resume` or `abort`) and
        /// `disk-full` (its state disk filled before or during a move, then `resume`); the
        /// active site is then the one its journal names.
        #[arg(long)]
        controller: bool,
    },
    /// DNS failover (changed-IP group) in the lab: an authoritative BIND at the third site, a
    /// caching resolver at the client, a mixed plan (one subnet by BGP, one group by DNS) run
    /// with and without the TTL pre-stage; the client's loss window split into cutover, DNS
    /// update, authoritative answer and resolver cache. Writes OUT/dns-report.json.
    Dns {
        #[command(flatten)]
        run: RunArgs,
    },
    /// (internal) Probe a name: a lookup at the resolver before each UDP probe.
    #[command(hide = true)]
    NameProbe {
        /// The resolver (ADDR:PORT).
        #[arg(long)]
        resolver: std::net::SocketAddr,
        /// The name to resolve (A record).
        #[arg(long)]
        name: String,
        /// The responders' UDP port.
        #[arg(long, default_value_t = 7007)]
        port: u16,
        /// Milliseconds between probes.
        #[arg(long, default_value_t = 10)]
        interval_ms: u64,
        /// CSV file for each probe.
        #[arg(long)]
        out: PathBuf,
    },
    /// Write the built-in three-site topology in another tool's format: a containerlab
    /// `three-site.clab.yml` with each router's frr.conf beside it.
    Export {
        /// The format to write.
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// A topology directory or containerlab file to export instead of the built-in one.
        #[arg(long, value_name = "PATH")]
        topology: Option<PathBuf>,
        /// Directory to write into (created if needed).
        dir: PathBuf,
    },
    /// The Docker runtime's images.
    Image {
        #[command(subcommand)]
        command: ImageCommand,
    },
    /// (internal) Send sequenced UDP probes until stdin closes.
    #[command(hide = true)]
    Probe {
        /// The responder's address (the VM's, ADDR:PORT).
        #[arg(long)]
        target: std::net::SocketAddr,
        /// CSV file for each probe's send time and answer.
        #[arg(long)]
        out: PathBuf,
        /// Microseconds between probes.
        #[arg(long, default_value_t = 1000)]
        interval_us: u64,
    },
    /// (internal) Answer probes with a site tag.
    #[command(hide = true)]
    Responder {
        /// The site name written into every answer.
        #[arg(long)]
        tag: String,
        /// UDP port to answer on.
        #[arg(long, default_value_t = 7007)]
        port: u16,
    },
}

fn fail(e: &LabError) -> i32 {
    eprintln!("ferry lab: {e}");
    if e.is_usage() {
        EXIT_USAGE
    } else {
        EXIT_FAILED
    }
}

/// `--minutes`: a positive number of at most a week.
fn minutes(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(m) if m > 0.0 && m <= 7.0 * 24.0 * 60.0 => Ok(m),
        _ => Err(format!(
            "{text:?}: give minutes as a number above 0 and at most 10080"
        )),
    }
}

fn default_out(instance: &str) -> PathBuf {
    let secs = crate::lab::now_us() / 1_000_000;
    PathBuf::from(format!("/tmp/ferry-lab-{instance}-{secs}"))
}

/// On Ctrl-C or SIGTERM, take the instance down before exiting.
fn down_on_signal(instance: String) {
    down_and_unmount_on_signal(instance, None)
}

/// [`down_on_signal`], and also lazily unmount `mount` (chaos's controller state disk: the
/// process exits without running its drop).
fn down_and_unmount_on_signal(instance: String, mount: Option<PathBuf>) {
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            use tokio::signal::unix::{signal, SignalKind};
            let mut term = match signal(SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return,
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        });
        eprintln!("ferry lab: interrupted; taking lab {instance} down");
        let _ = instance::down(&instance);
        if let Some(m) = mount {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(m)
                .status();
        }
        std::process::exit(130);
    });
}

pub fn run(args: LabArgs) -> i32 {
    if args.frr_image.is_some() && args.runtime != RuntimeKind::Docker {
        return fail(&LabError::Runtime(
            "--frr-image is for --runtime docker (the netns runtime runs the host's FRR)".into(),
        ));
    }
    runtime::select(runtime::Selection {
        kind: args.runtime,
        frr_image: args.frr_image,
    });
    match args.command {
        LabCommand::Image { command } => run_image(command),
        LabCommand::Export {
            format: ExportFormat::Containerlab,
            topology,
            dir,
        } => {
            let topo = match topology {
                Some(p) => crate::lab::topology::Topology::load(&p),
                None => crate::lab::topology::Topology::builtin(),
            };
            let written = topo.and_then(|t| {
                let image = image::default_image()?;
                crate::lab::clab::write_export(&t, &image, &dir)
            });
            match written {
                Ok(file) => {
                    println!("{}", file.display());
                    EXIT_OK
                }
                Err(e) => fail(&e),
            }
        }
        LabCommand::Up {
            instance,
            topology,
            rpki,
            json,
        } => {
            if json {
                crate::lab::human_to_stderr();
            }
            let mut lab = match LabInstance::new(&instance.instance, topology) {
                Ok(l) => l,
                Err(e) => return fail(&e),
            };
            if rpki {
                let preset = crate::lab::rpki::Rpki::preset(&lab.topo);
                if let Err(e) = lab.topo.set_rpki(preset) {
                    return fail(&e);
                }
            }
            match lab.up(&|m| crate::lab::human(format_args!("{m}"))) {
                Ok(()) => {
                    let primary = lab.speaker_socket(crate::lab::topology::Site::Primary);
                    let recovery = lab.speaker_socket(crate::lab::topology::Site::Recovery);
                    // Where the validator is: plan checks with [rpki] run in its namespace.
                    let validator = lab.topo.rpki.as_ref().map(|r| {
                        (
                            format!("127.0.0.1:{}", r.port),
                            lab.ns(&r.router),
                            crate::lab::rpki::vrps_path(&instance.instance),
                        )
                    });
                    if json {
                        print_json(&serde_json::json!({
                            "instance": instance.instance,
                            "speaker_api": {"primary": primary, "recovery": recovery},
                            "rpki": validator.as_ref().map(|(rtr, ns, vrps)| {
                                serde_json::json!({"rtr": rtr, "namespace": ns, "vrps": vrps})
                            }),
                        }));
                    } else {
                        println!(
                            "speaker APIs: {} (primary), {} (recovery)",
                            primary.display(),
                            recovery.display()
                        );
                        if let Some((rtr, ns, vrps)) = &validator {
                            println!(
                                "rpki: stayrtr at {rtr} in namespace {ns} serves {}; plan checks run there: ip netns exec {ns} ferry plan check PLAN.toml",
                                vrps.display()
                            );
                        }
                    }
                    EXIT_OK
                }
                Err(e) => fail(&e),
            }
        }
        LabCommand::Down { instance, json } => {
            if let Err(e) = instance::check_instance(&instance.instance) {
                return fail(&e);
            }
            match instance::down(&instance.instance) {
                Ok(removed) if json => {
                    print_json(&serde_json::json!({
                        "instance": instance.instance,
                        "removed": removed,
                    }));
                    EXIT_OK
                }
                Ok(removed) if removed.is_empty() => {
                    println!("lab {} is not up: nothing to remove", instance.instance);
                    EXIT_OK
                }
                Ok(removed) => {
                    for r in removed {
                        println!("removed {r}");
                    }
                    EXIT_OK
                }
                Err(e) => fail(&e),
            }
        }
        LabCommand::Testnet { instance, json } => {
            if json {
                crate::lab::human_to_stderr();
            }
            let added = LabInstance::attach(&instance.instance).and_then(|mut lab| {
                crate::lab::testnet::add(&mut lab, &|m| crate::lab::human(format_args!("{m}")))
            });
            match added {
                Ok(net) if json => {
                    print_json(&serde_json::json!({
                        "instance": instance.instance,
                        "test_speaker_api": net.speaker_api,
                        "router_ns": net.router.ns,
                        "vm_ns": net.vm_ns,
                    }));
                    EXIT_OK
                }
                Ok(net) => {
                    println!(
                        "test speaker API: {} (use it as the plan's test_site); r4 in {}, the test VM in {}",
                        net.speaker_api.display(),
                        net.router.ns,
                        net.vm_ns
                    );
                    EXIT_OK
                }
                Err(e) => fail(&e),
            }
        }
        LabCommand::Status { instance, json } => {
            if !crate::lab::is_root() {
                return fail(&LabError::NotRoot);
            }
            match LabInstance::attach(&instance.instance) {
                Ok(lab) => {
                    if json {
                        let mut v = lab.status_json();
                        v["instance"] = serde_json::json!(instance.instance);
                        v["complete"] = serde_json::json!(lab.state.complete);
                        v["state"] = serde_json::json!(lab.state);
                        v["status"] = serde_json::json!(lab.status_lines());
                        print_json(&v);
                    } else {
                        for l in lab.status_lines() {
                            println!("{l}");
                        }
                    }
                    if lab.state.complete {
                        EXIT_OK
                    } else {
                        EXIT_FAILED
                    }
                }
                Err(e) => fail(&e),
            }
        }
        LabCommand::Demo {
            instance,
            topology,
            out,
            moves,
            break_before_make,
            json,
        } => {
            if json {
                crate::lab::human_to_stderr();
            }
            let out = out.unwrap_or_else(|| default_out(&instance));
            down_on_signal(instance.clone());
            let order = if break_before_make {
                Order::BreakBeforeMake
            } else {
                Order::MakeBeforeBreak
            };
            match scenarios::demo(&instance, topology, &out, moves.max(1), order) {
                Ok(rep) => {
                    scenarios::print_summary(&rep);
                    crate::lab::human(format_args!("report: {}/report.json", out.display()));
                    crate::lab::human(format_args!(
                        "timeline (open in a browser): {}/timeline.svg",
                        out.display()
                    ));
                    if json {
                        print_json(&serde_json::json!({
                            "report_dir": out,
                            "report": rep,
                        }));
                    }
                    if rep.summary.converged == rep.summary.moves {
                        EXIT_OK
                    } else {
                        EXIT_FAILED
                    }
                }
                Err(e) => fail(&e),
            }
        }
        LabCommand::Test { run, only } => {
            let (instance, out) = run.instance_and_out("t");
            let RunArgs {
                bound,
                verbose,
                json,
                ..
            } = run;
            if json {
                crate::lab::human_to_stderr();
            }
            down_on_signal(instance.clone());
            match scenarios::test(
                &instance,
                &out,
                Duration::from_secs(bound),
                verbose,
                only.as_deref(),
            ) {
                Ok((outcomes, rep)) => {
                    scenarios::print_summary(&rep);
                    let failed = outcomes.iter().filter(|o| !o.passed).count();
                    crate::lab::human(format_args!("report: {}", out.display()));
                    crate::lab::human(format_args!(
                        "{} passed, {failed} failed",
                        outcomes.len() - failed
                    ));
                    if json {
                        let each: Vec<_> = outcomes
                            .iter()
                            .map(|o| serde_json::json!({"name": o.name, "passed": o.passed, "detail": o.detail}))
                            .collect();
                        print_json(&serde_json::json!({
                            "passed": outcomes.len() - failed,
                            "failed": failed,
                            "scenarios": each,
                            "report_dir": out,
                        }));
                    }
                    if failed == 0 {
                        EXIT_OK
                    } else {
                        EXIT_FAILED
                    }
                }
                Err(e) => {
                    crate::lab::human(format_args!("0 passed, 1 failed"));
                    if json {
                        print_json(&serde_json::json!({
                            "passed": 0, "failed": 1, "error": e.to_string(), "report_dir": out,
                        }));
                    }
                    fail(&e)
                }
            }
        }
        LabCommand::Chaos {
            seed,
            minutes,
            run,
            recover,
            controller,
        } => {
            let (instance, out) = run.instance_and_out("c");
            let RunArgs {
                bound,
                verbose,
                json,
                ..
            } = run;
            if json {
                crate::lab::human_to_stderr();
            }
            let disk = controller.then(|| out.join("controller"));
            down_and_unmount_on_signal(instance.clone(), disk);
            let opts = chaos::ChaosOptions {
                seed,
                duration: Duration::from_secs_f64(minutes * 60.0),
                move_bound: Duration::from_secs(bound),
                recover_bound: Duration::from_secs(recover),
                out: out.clone(),
                verbose,
                controller,
            };
            crate::lab::human(format_args!(
                "chaos seed {seed}, {minutes} min, lab {instance}"
            ));
            match chaos::run(&instance, &opts) {
                Ok(rep) => {
                    if json {
                        print_json(&serde_json::json!({
                            "report_file": out.join("chaos.json"),
                            "report": rep,
                        }));
                    }
                    let faults: Vec<String> =
                        rep.faults.iter().map(|(k, v)| format!("{k} {v}")).collect();
                    crate::lab::human(format_args!(
                        "seed {}: {} steps, {} moves, faults: {}; {} checks held in {:.0} s",
                        rep.seed,
                        rep.steps,
                        rep.moves,
                        if faults.is_empty() {
                            "none".into()
                        } else {
                            faults.join(", ")
                        },
                        rep.checks_passed,
                        rep.seconds
                    ));
                    crate::lab::human(format_args!("report: {}", out.join("chaos.json").display()));
                    match rep.violation {
                        None => {
                            crate::lab::human(format_args!("violations: 0"));
                            EXIT_OK
                        }
                        Some(v) => {
                            crate::lab::human(format_args!(
                                "VIOLATED at step {} (seed {}; {}): {}: {}",
                                v.step, rep.seed, v.fault, v.invariant, v.detail
                            ));
                            crate::lab::human(format_args!("logs: {}", out.join("logs").display()));
                            EXIT_FAILED
                        }
                    }
                }
                Err(e) => fail(&e),
            }
        }
        LabCommand::Dns { run } => {
            let (instance, out) = run.instance_and_out("d");
            down_on_signal(instance.clone());
            super::labdns::dns(&instance, &out, run.verbose, run.json)
        }
        LabCommand::NameProbe {
            resolver,
            name,
            port,
            interval_ms,
            out,
        } => super::labdns::name_probe(resolver, &name, port, interval_ms, &out),
        LabCommand::Probe {
            target,
            out,
            interval_us,
        } => {
            match crate::lab::probe::run_prober(target, Duration::from_micros(interval_us), &out) {
                Ok(()) => EXIT_OK,
                Err(e) => {
                    eprintln!("ferry lab probe: {e}");
                    EXIT_FAILED
                }
            }
        }
        LabCommand::Responder { tag, port } => match crate::lab::probe::run_responder(port, &tag) {
            Ok(()) => EXIT_OK,
            Err(e) => {
                eprintln!("ferry lab responder: {e}");
                EXIT_FAILED
            }
        },
    }
}

fn run_image(command: ImageCommand) -> i32 {
    match command {
        ImageCommand::Build { mirror, json } => {
            if json {
                crate::lab::human_to_stderr();
            }
            match image::build(mirror, &|m| crate::lab::human(format_args!("{m}"))) {
                Ok(b) => {
                    if json {
                        print_json(&serde_json::json!(b));
                    } else if b.built {
                        println!("built {} in {:.0} s", b.image, b.seconds);
                    } else {
                        println!("{}", b.image);
                    }
                    EXIT_OK
                }
                Err(e) => fail(&e),
            }
        }
        ImageCommand::Name => match image::default_image() {
            Ok(name) => match image::exists(&name) {
                Ok(true) => {
                    println!("{name}");
                    EXIT_OK
                }
                Ok(false) => {
                    println!("{name} (not built: run `ferry lab image build`)");
                    EXIT_FAILED
                }
                Err(e) => fail(&e),
            },
            Err(e) => fail(&e),
        },
    }
}

/// One JSON object on stdout (`--json`).
fn print_json(v: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}
