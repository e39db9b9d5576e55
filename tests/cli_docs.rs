//! The CLI and its documentation agree: every argument and subcommand has help text, and every
//! `ferry ...` command in README.md and docs/*.md (in their `sh` blocks) is one the binary
//! accepts. The docs' notation is expanded before parsing: `[...]` optional (each with and
//! without), `a|b` alternatives, and placeholders (`PREFIX`, `SECONDS`, ...) replaced by a
//! value of their kind. Parsing only: nothing is run.

use std::path::Path;

use clap::{CommandFactory, Parser};
use ferry::cli::Cli;

#[test]
fn every_argument_and_subcommand_has_help_text() {
    fn walk(c: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for a in c.get_arguments() {
            let id = a.get_id().as_str();
            if matches!(id, "help" | "version") {
                continue;
            }
            if a.get_help().is_none() && a.get_long_help().is_none() {
                missing.push(format!("{path}: {id}"));
            }
        }
        for s in c.get_subcommands() {
            let sub = format!("{path} {}", s.get_name());
            if s.get_about().is_none() && s.get_long_about().is_none() {
                missing.push(format!("{sub}: (the command itself)"));
            }
            walk(s, &sub, missing);
        }
    }
    let mut missing = Vec::new();
    walk(&Cli::command(), "ferry", &mut missing);
    assert!(missing.is_empty(), "no help text:\n{}", missing.join("\n"));
}

/// A value for a placeholder of the docs, of the kind the flag expects.
fn placeholder(word: &str) -> Option<&'static str> {
    Some(match word.trim_end_matches("...") {
        "PREFIX" => "198.51.100.0/24",
        "IP" | "PEER" => "192.0.2.2",
        "SECONDS" | "N" | "M" => "3",
        "PLAN.toml" => "plan.toml",
        "PATH" | "FILE" | "DIR" => "/tmp/x",
        "NAME" => "web",
        "SITE" => "dc2",
        "SHELL" => "bash",
        "GROUP" => "planned",
        _ => return None,
    })
}

/// Split `text` into words, keeping `[...]` groups whole (they nest).
fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut depth = 0usize;
    for c in text.chars() {
        match c {
            '[' => {
                depth += 1;
                cur.push(c);
            }
            ']' => {
                depth = depth.saturating_sub(1);
                cur.push(c);
            }
            c if c.is_whitespace() && depth == 0 => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Every concrete argument list the notation stands for.
fn expand(ws: &[String]) -> Vec<Vec<String>> {
    let Some((first, rest)) = ws.split_first() else {
        return vec![vec![]];
    };
    let tails = expand(rest);
    let heads: Vec<Vec<String>> =
        if let Some(inner) = first.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            let mut h = expand(&words(inner));
            h.push(vec![]);
            h
        } else if first.contains('|') && !first.contains("://") {
            first.split('|').map(|w| vec![w.to_owned()]).collect()
        } else {
            vec![vec![placeholder(first).unwrap_or(first).to_owned()]]
        };
    heads
        .iter()
        .flat_map(|h| {
            tails.iter().map(move |t| {
                let mut v = h.clone();
                v.extend(t.iter().cloned());
                v
            })
        })
        .collect()
}

/// The `ferry ...` commands in the `sh` blocks of a Markdown text, with their line numbers:
/// each line's part before `#`, split at `;`, `&&` and `|` pipes (so `tcpdump ... | ferry
/// decode` yields the ferry part), each without its output redirection (`ferry completions
/// bash > FILE`: the `>` is the shell's, not an argument).
fn commands(markdown: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut in_sh = false;
    for (i, line) in markdown.lines().enumerate() {
        let t = line.trim();
        if let Some(lang) = t.strip_prefix("```") {
            in_sh = !in_sh && matches!(lang, "sh" | "bash" | "console" | "shell");
            continue;
        }
        if !in_sh {
            continue;
        }
        let code = t.split(" #").next().unwrap_or("").trim_start_matches("$ ");
        for part in code
            .split([';'])
            .flat_map(|p| p.split(" | "))
            .flat_map(|p| p.split(" && "))
        {
            let part = part.split(" > ").next().unwrap_or("").trim();
            if part.starts_with("ferry ") {
                out.push((i + 1, part.to_owned()));
            }
        }
    }
    out
}

#[test]
fn every_ferry_command_in_the_docs_parses() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    for e in std::fs::read_dir(root.join("docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            files.push(p);
        }
    }
    let (mut checked, mut bad) = (0, Vec::new());
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (line, cmd) in commands(&text) {
            for args in expand(&words(&cmd)) {
                checked += 1;
                if let Err(e) = Cli::try_parse_from(&args) {
                    let first = e.to_string().lines().next().unwrap_or("").to_owned();
                    bad.push(format!(
                        "{}:{line}: {} -> {first}",
                        file.strip_prefix(root).unwrap().display(),
                        args.join(" ")
                    ));
                }
            }
        }
    }
    assert!(
        checked > 50,
        "only {checked} commands found: is the extraction broken?"
    );
    assert!(
        bad.is_empty(),
        "commands the CLI refuses:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_notation_expands_as_the_docs_mean_it() {
    let got = expand(&words("ferry routes [--json] [--received [--peer IP]]"));
    let got: Vec<String> = got.iter().map(|v| v.join(" ")).collect();
    assert_eq!(
        got,
        [
            "ferry routes --json --received --peer 192.0.2.2",
            "ferry routes --json --received",
            "ferry routes --json",
            "ferry routes --received --peer 192.0.2.2",
            "ferry routes --received",
            "ferry routes",
        ]
    );
    let got: Vec<String> = expand(&words("ferry failover status|history --json"))
        .iter()
        .map(|v| v.join(" "))
        .collect();
    assert_eq!(
        got,
        [
            "ferry failover status --json",
            "ferry failover history --json"
        ]
    );
    let found = commands("```sh\ntcpdump -w - | ferry decode --pcap -   # c\nls\n```\nferry x\n");
    assert_eq!(found, [(2, "ferry decode --pcap -".to_owned())]);
}

/// The Markdown files a reader of the repository opens.
fn markdown_files(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![root.join("README.md")];
    for dir in ["docs", "examples", "lab/topologies/three-site"] {
        for e in std::fs::read_dir(root.join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "md") {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn every_relative_link_in_the_docs_resolves_inside_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut bad = Vec::new();
    let mut links = 0;
    for file in markdown_files(root) {
        let text = std::fs::read_to_string(&file).unwrap();
        for (_, rest) in text.match_indices("](").map(|(i, _)| ((), &text[i + 2..])) {
            let Some(end) = rest.find(')') else { continue };
            let target = rest[..end].split('#').next().unwrap_or("");
            if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            links += 1;
            let path = file.parent().unwrap().join(target);
            let inside = path
                .canonicalize()
                .is_ok_and(|p| p.starts_with(root.canonicalize().unwrap()));
            if !inside {
                bad.push(format!(
                    "{}: {target}",
                    file.strip_prefix(root).unwrap().display()
                ));
            }
        }
    }
    assert!(links > 10, "only {links} links found");
    assert!(
        bad.is_empty(),
        "links to nothing in the repository:\n{}",
        bad.join("\n")
    );
}

#[test]
fn nothing_cites_the_design_file_outside_the_repository() {
    // The founding design lived outside the repository (`../shared/DESIGN.md`); what the
    // code and docs cite is docs/design.md.
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p
                .extension()
                .is_some_and(|x| x == "rs" || x == "md" || x == "sh")
            {
                out.push(p);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = markdown_files(root);
    for dir in [
        "src",
        "tests",
        "testkit/src",
        "proto-tests",
        "scripts",
        "benches",
    ] {
        walk(&root.join(dir), &mut files);
    }
    let this = Path::new(file!()).file_name().unwrap();
    let bad: Vec<String> = files
        .iter()
        .filter(|f| f.file_name() != Some(this))
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            text.contains("DESIGN.md") || text.contains("shared/")
        })
        .map(|f| f.strip_prefix(root).unwrap().display().to_string())
        .collect();
    assert!(bad.is_empty(), "cite docs/design.md instead: {bad:?}");
}
