//! The RPKI preflight of a plan: the route origin validation state (RFC 6811 §2) of every
//! route each site would originate, from the site's `origin_as`, against the VRPs of the
//! plan's `[rpki] rtr` validators, and what that means for a move.
//!
//! Contract:
//! - [`originated`] is the one list of (prefix, origin AS) a site would announce; every check
//!   goes through it.
//! - Invalid at the site gaining the subnets fails the preflight, naming the site, prefix,
//!   origin AS and the covering ROAs: networks that drop Invalid routes would not carry the
//!   subnet from there. With `ignore` (`--ignore-rpki`) it is a warning instead, and so is a
//!   validator that cannot be reached.
//! - NotFound anywhere, and Invalid at the site losing the subnets, are warnings.
//! - No validator answering fails the preflight (unless `ignore`), naming each validator.
//!
//! Never does: change anything at a site, or run without `[rpki]` in the plan.

use std::time::Duration;

use ipnet::IpNet;

use super::plan::{Plan, Site};
use crate::rpki::rov::{self, State, Verdict, Vrp};
use crate::rpki::rtr;

/// Every route `site` would originate and its origin AS: the plan's subnets, from the site's
/// `origin_as` (required by the plan's check when `[rpki]` is there), and at the recovery site
/// the groups' host routes (`hosts`), which only the recovery site announces: a /32 under a ROA
/// whose maxLength is 24 is Invalid even from an authorised AS.
pub fn originated(plan: &Plan, site: &Site) -> Vec<(IpNet, u32)> {
    let Some(asn) = site.origin_as else {
        return Vec::new();
    };
    let mut routes = plan.all_prefixes();
    if site.name == plan.recovery().name {
        routes.extend(plan.all_hosts());
    }
    routes.into_iter().map(|p| (p, asn)).collect()
}

/// One route's state at one site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub site: String,
    pub prefix: IpNet,
    pub origin_as: u32,
    pub verdict: Verdict,
}

impl Finding {
    fn covering(&self) -> String {
        let v: Vec<String> = self.verdict.covering.iter().map(Vrp::to_string).collect();
        v.join(", ")
    }

    /// For people: "site dc2 would originate 198.51.100.0/24 from AS65102: RPKI Invalid ...".
    pub fn describe(&self) -> String {
        let head = format!(
            "site {} would originate {} from AS{}: RPKI {}",
            self.site, self.prefix, self.origin_as, self.verdict.state
        );
        match self.verdict.state {
            State::Valid => format!("{head} (ROA {})", self.covering()),
            State::NotFound => format!(
                "{head}: no ROA covers it (networks that drop only Invalid routes still carry it)"
            ),
            State::Invalid => format!(
                "{head}: covering ROAs {} and none authorises AS{} at /{}; networks that drop Invalid routes will not carry it (publish a ROA for AS{} with maxLength {} or more)",
                self.covering(),
                self.origin_as,
                self.prefix.prefix_len(),
                self.origin_as,
                self.prefix.prefix_len()
            ),
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "site": self.site,
            "prefix": self.prefix.to_string(),
            "origin_as": self.origin_as,
            "state": self.verdict.state.to_string(),
            "covering": self.verdict.covering.iter().map(Vrp::to_string).collect::<Vec<_>>(),
        })
    }
}

/// The state of every route of the plan's primary and recovery sites under `vrps`.
pub fn evaluate(plan: &Plan, vrps: &[Vrp]) -> Vec<Finding> {
    [plan.primary(), plan.recovery()]
        .into_iter()
        .flat_map(|site| {
            originated(plan, site)
                .into_iter()
                .map(|(prefix, origin_as)| Finding {
                    site: site.name.clone(),
                    prefix,
                    origin_as,
                    verdict: rov::validate(vrps, prefix, origin_as),
                })
        })
        .collect()
}

/// The validator whose VRPs were used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub validator: String,
    /// The RTR version it answered in (1: RFC 8210, 0: RFC 6810).
    pub version: u8,
    pub vrps: usize,
}

/// The preflight's outcome.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The validator used; `None` when none answered.
    pub source: Option<Source>,
    pub findings: Vec<Finding>,
    pub warnings: Vec<String>,
    /// Why the move must not go ahead: Invalid routes at the gaining site, or no validator.
    pub failed: Option<String>,
}

impl Outcome {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "validator": self.source.as_ref().map(|s| s.validator.clone()),
            "rtr_version": self.source.as_ref().map(|s| s.version),
            "vrps": self.source.as_ref().map(|s| s.vrps),
            "routes": self.findings.iter().map(Finding::to_json).collect::<Vec<_>>(),
            "warnings": self.warnings,
            "error": self.failed,
        })
    }
}

/// What the findings mean for a move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    /// NotFound routes, Invalid ones at the losing site, and forced ones; kept when it fails.
    pub warnings: Vec<String>,
    /// The Invalid routes at the gaining site, one clause each (unless ignored).
    pub failed: Option<String>,
}

/// What the findings mean for a move to `gaining`: failed (the Invalid routes there) unless
/// `ignore`; the warnings either way.
pub fn judge(findings: &[Finding], gaining: &str, ignore: bool) -> Judgement {
    let mut warnings = Vec::new();
    let mut errors = Vec::new();
    for f in findings {
        match f.verdict.state {
            State::Valid => {}
            State::Invalid if f.site == gaining && !ignore => errors.push(f.describe()),
            State::Invalid if f.site == gaining => {
                warnings.push(format!("{} (ignored: --ignore-rpki)", f.describe()))
            }
            State::Invalid | State::NotFound => warnings.push(f.describe()),
        }
    }
    let failed = (!errors.is_empty()).then(|| {
        format!(
            "{}; to move anyway, run with --ignore-rpki",
            errors.join("; ")
        )
    });
    Judgement { warnings, failed }
}

/// Asks the plan's validators and judges a move to `gaining`; `None`: the plan has no
/// `[rpki]`.
pub fn preflight(plan: &Plan, gaining: &Site, ignore: bool) -> Option<Outcome> {
    let r = plan.rpki.as_ref()?;
    let fetched = match rtr::fetch_first(&r.rtr, Duration::from_millis(r.timeout_ms)) {
        Ok(f) => f,
        Err(e) => {
            let (warnings, failed) = if ignore {
                (
                    vec![format!("{e}; routes not validated (--ignore-rpki)")],
                    None,
                )
            } else {
                (
                    Vec::new(),
                    Some(format!(
                        "{e}; to move without RPKI validation, run with --ignore-rpki"
                    )),
                )
            };
            return Some(Outcome {
                source: None,
                findings: Vec::new(),
                warnings,
                failed,
            });
        }
    };
    let findings = evaluate(plan, &fetched.vrps);
    let mut warnings: Vec<String> = fetched.skipped.iter().map(|e| e.to_string()).collect();
    let judged = judge(&findings, &gaining.name, ignore);
    warnings.extend(judged.warnings);
    let failed = judged.failed;
    Some(Outcome {
        source: Some(Source {
            validator: fetched.validator,
            version: fetched.version,
            vrps: fetched.vrps.len(),
        }),
        findings,
        warnings,
        failed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::plan::tests::PLAN;

    fn plan() -> Plan {
        let text = PLAN
            .replace(
                "next_hop = \"192.0.2.10\"",
                "next_hop = \"192.0.2.10\"\norigin_as = 65101",
            )
            .replace(
                "next_hop = \"192.0.2.20\"",
                "next_hop = \"192.0.2.20\"\norigin_as = 65102",
            );
        Plan::parse(&format!("{text}\n[rpki]\nrtr = \"192.0.2.30:3323\"\n")).unwrap()
    }

    fn vrp(p: &str, max_len: u8, asn: u32) -> Vrp {
        Vrp::new(p.parse().unwrap(), max_len, asn).unwrap()
    }

    /// The warnings of a judgement that must not fail.
    fn passed(j: Judgement) -> Vec<String> {
        assert_eq!(j.failed, None, "{j:?}");
        j.warnings
    }

    #[test]
    fn a_host_route_under_a_shorter_maxlength_is_invalid_at_the_recovery_site_only() {
        let p = Plan::parse(&plan().text.replace(
            "subnets = [\"198.51.100.0/24\"]",
            "hosts = [\"198.51.100.10/32\"]",
        ))
        .unwrap();
        let host: IpNet = "198.51.100.10/32".parse().unwrap();
        assert!(originated(&p, p.primary()).iter().all(|(q, _)| *q != host));
        assert!(originated(&p, p.recovery()).contains(&(host, 65102)));
        let roas = [
            vrp("198.51.100.0/24", 24, 65101),
            vrp("198.51.100.0/24", 24, 65102),
        ];
        let j = judge(&evaluate(&p, &roas), "dc2", false);
        assert!(
            j.failed
                .is_some_and(|e| e.contains("198.51.100.10/32 from AS65102")),
            "the /32 is longer than the ROA's maxLength"
        );
    }

    #[test]
    fn warnings_are_kept_when_the_preflight_fails() {
        let p = plan();
        let mut f = evaluate(&p, &[vrp("198.51.100.0/24", 24, 65101)]);
        f.push(Finding {
            site: "dc2".into(),
            prefix: "2001:db8:100::/64".parse().unwrap(),
            origin_as: 65102,
            verdict: rov::validate(&[], "2001:db8:100::/64".parse().unwrap(), 65102),
        });
        let j = judge(&f, "dc2", false);
        assert!(j
            .failed
            .is_some_and(|e| e.contains("198.51.100.0/24 from AS65102")));
        assert!(
            j.warnings.len() == 1
                && j.warnings[0].contains("2001:db8:100::/64 from AS65102: RPKI NotFound"),
            "{:?}",
            j.warnings
        );
    }

    #[test]
    fn the_plan_takes_one_validator_or_several_and_needs_origin_as() {
        let p = plan();
        assert_eq!(p.rpki.as_ref().unwrap().rtr, ["192.0.2.30:3323"]);
        let many = p.text.replace(
            "rtr = \"192.0.2.30:3323\"",
            "rtr = [\"192.0.2.30:3323\", \"[2001:db8::30]:8282\"]\ntimeout_ms = 900",
        );
        let p2 = Plan::parse(&many).unwrap();
        assert_eq!(p2.rpki.as_ref().unwrap().rtr.len(), 2);
        assert_eq!(p2.rpki.as_ref().unwrap().timeout_ms, 900);
        let e = Plan::parse(&p.text.replace("192.0.2.30:3323", "192.0.2.30")).unwrap_err();
        assert!(
            e.contains("rpki.rtr \"192.0.2.30\"") && e.contains("[rpki] at line"),
            "{e}"
        );
        let e = Plan::parse(&p.text.replace("rtr = \"192.0.2.30:3323\"", "rtr = []")).unwrap_err();
        assert!(e.contains("rpki.rtr is empty"), "{e}");
        let e =
            Plan::parse(&p.text.replace("rtr = \"192.0.2.30:3323\"", "rtr = 3323")).unwrap_err();
        assert!(e.contains("host:port"), "{e}");
        let e = Plan::parse(&p.text.replace("origin_as = 65102", "")).unwrap_err();
        assert!(e.contains("[rpki] needs site \"dc2\" origin_as"), "{e}");
        let e = Plan::parse(&p.text.replace("origin_as = 65102", "origin_as = 0")).unwrap_err();
        assert!(e.contains("RFC 7607"), "{e}");
    }

    #[test]
    fn every_route_of_both_sites_is_validated_from_its_origin_as() {
        let p = plan();
        let f = evaluate(&p, &[vrp("198.51.100.0/24", 24, 65101)]);
        let got: Vec<(&str, u32, State)> = f
            .iter()
            .map(|f| (f.site.as_str(), f.origin_as, f.verdict.state))
            .collect();
        assert_eq!(
            got,
            [("dc1", 65101, State::Valid), ("dc2", 65102, State::Invalid)]
        );
    }

    #[test]
    fn invalid_at_the_gaining_site_fails_naming_prefix_as_and_roas() {
        let p = plan();
        let f = evaluate(&p, &[vrp("198.51.100.0/24", 24, 65101)]);
        let e = judge(&f, "dc2", false).failed.unwrap();
        for want in [
            "198.51.100.0/24",
            "AS65102",
            "198.51.100.0/24-24 AS65101",
            "--ignore-rpki",
        ] {
            assert!(e.contains(want), "{want}: {e}");
        }
        // Forced: a warning that says it was ignored.
        let w = passed(judge(&f, "dc2", true));
        assert!(
            w.len() == 1 && w[0].contains("Invalid") && w[0].contains("ignored"),
            "{w:?}"
        );
        // Failback: dc1 gains, its route is Valid; dc2's Invalid is only a warning.
        let w = passed(judge(&f, "dc1", false));
        assert!(w.len() == 1 && w[0].contains("site dc2"), "{w:?}");
    }

    #[test]
    fn not_found_is_a_warning_and_valid_is_quiet() {
        let p = plan();
        let f = evaluate(&p, &[vrp("203.0.113.0/24", 24, 65102)]);
        let w = passed(judge(&f, "dc2", false));
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w.iter().all(|w| w.contains("NotFound")), "{w:?}");
        let both = [
            vrp("198.51.100.0/24", 24, 65101),
            vrp("198.51.100.0/24", 24, 65102),
        ];
        assert!(passed(judge(&evaluate(&p, &both), "dc2", false)).is_empty());
    }

    #[test]
    fn no_validator_answering_fails_unless_ignored() {
        // A port just freed: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let p = Plan::parse(
            &plan()
                .text
                .replace("192.0.2.30:3323", &format!("127.0.0.1:{port}")),
        )
        .unwrap();
        let e = preflight(&p, p.recovery(), false).unwrap().failed.unwrap();
        assert!(
            e.contains(&format!("127.0.0.1:{port}")) && e.contains("cannot connect"),
            "{e}"
        );
        let forced = preflight(&p, p.recovery(), true).unwrap();
        assert!(forced.failed.is_none() && forced.source.is_none());
        assert!(forced.warnings[0].contains("not validated"), "{forced:?}");
        let none = Plan::parse(PLAN).unwrap();
        assert!(preflight(&none, none.recovery(), false).is_none());
    }
}
