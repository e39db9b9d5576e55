//! Which site a route that the verification's observer received comes from, told by what
//! survives the path to an observer one or more eBGP hops away: the origin AS (the last AS of
//! the AS_PATH, RFC 4271 §5.1.2: each eBGP speaker prepends its own AS, so the originator's
//! stays last) and the site's `verify_community` (RFC 1997 communities and RFC 8092 large
//! communities are passed on unchanged unless a router's policy strips them). The next hop is
//! compared only when the plan says `[verify] match_next_hop = true`: routers rewrite it on
//! eBGP (next-hop-self), so by default it proves nothing.
//!
//! Contract:
//! - A route is a site's when every mark the plan gives that site matches; a site with no mark
//!   matches nothing (the plan's check refuses such a plan when it has an observer).
//! - [`seen`] says what the observer holds for a prefix (each path: AS path, next hop,
//!   communities), for error messages that let the operator see what the network did.
//! - [`cannot_tell_apart`] is the warning of `ferry plan check` when a route of one site
//!   would pass for the other's.
//!
//! Never does: contact a speaker, or decide what a step does with the answer
//! ([`super::step`]).

use std::net::IpAddr;

use ipnet::IpNet;

use super::plan::{Plan, Site};
use crate::api::ReceivedRoute;
use crate::wire::community::{Community, LargeCommunity};

/// A site's `verify_community`: standard ("ASN:VALUE") or large ("A:B:C").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    Standard(Community),
    Large(LargeCommunity),
}

impl Tag {
    /// Two colons make a large community (RFC 8092 §3's text form), one a standard one.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.matches(':').count() == 2 {
            s.parse().map(Tag::Large).map_err(|e| e.to_string())
        } else {
            s.parse().map(Tag::Standard).map_err(|e| e.to_string())
        }
    }

    fn on(&self, r: &ReceivedRoute) -> bool {
        match self {
            Tag::Standard(c) => r.attrs.communities.contains(c),
            Tag::Large(c) => r.attrs.large_communities.contains(c),
        }
    }
}

/// The last AS of `as_path` as the API prints it ("65003 65002 65102"); `None` for an empty
/// path (a route from an iBGP peer that originated it) or one ending in an AS_SET or a
/// confederation segment (an aggregate: no single originator).
pub fn origin_as(as_path: &str) -> Option<u32> {
    as_path.split_whitespace().last()?.parse().ok()
}

/// What the observer looks for in a route of `site` for `prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marks {
    pub origin_as: Option<u32>,
    pub tag: Option<Tag>,
    /// Only when the plan asks for it (`match_next_hop`) and the site sets a next hop.
    pub next_hop: Option<IpAddr>,
}

impl Marks {
    /// `site`'s marks for `prefix` under `plan`'s `[verify]`.
    pub fn of(plan: &Plan, site: &Site, prefix: IpNet) -> Result<Self, String> {
        let by_next_hop = plan.verify.as_ref().is_some_and(|v| v.match_next_hop);
        Ok(Self {
            origin_as: site.origin_as,
            tag: site
                .verify_community
                .as_deref()
                .map(Tag::parse)
                .transpose()
                .map_err(|e| format!("site {:?} verify_community: {e}", site.name))?,
            next_hop: if by_next_hop {
                site.route(prefix)?.next_hop
            } else {
                None
            },
        })
    }

    /// How many marks are given.
    pub fn count(&self) -> usize {
        usize::from(self.origin_as.is_some())
            + usize::from(self.tag.is_some())
            + usize::from(self.next_hop.is_some())
    }

    pub fn is_empty(&self) -> bool {
        self.origin_as.is_none() && self.tag.is_none() && self.next_hop.is_none()
    }

    /// Whether `r` carries every mark; nothing matches empty marks.
    pub fn matches(&self, r: &ReceivedRoute) -> bool {
        !self.is_empty()
            && self
                .origin_as
                .is_none_or(|a| origin_as(&r.as_path) == Some(a))
            && self.tag.is_none_or(|t| t.on(r))
            && self.next_hop.is_none_or(|n| r.next_hop == Some(n))
    }
}

impl Marks {
    /// Whether `r` is this site's route rather than the `other` site's: it carries these
    /// marks and not more of the other's. A route carrying as many of both (the plan's marks
    /// cannot tell the sites apart; `ferry plan check` warns) counts as this site's when
    /// `ties`.
    pub fn holds(&self, other: &Marks, r: &ReceivedRoute, ties: bool) -> bool {
        self.matches(r)
            && !(other.matches(r)
                && (other.count() > self.count() || (!ties && other.count() == self.count())))
    }
}

impl std::fmt::Display for Marks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if let Some(a) = self.origin_as {
            parts.push(format!("origin AS {a}"));
        }
        match self.tag {
            Some(Tag::Standard(c)) => parts.push(format!("community {c}")),
            Some(Tag::Large(c)) => parts.push(format!("large community {c}")),
            None => {}
        }
        if let Some(n) = self.next_hop {
            parts.push(format!("next hop {n}"));
        }
        if parts.is_empty() {
            f.write_str("nothing to recognise it by")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// The observer's paths for `prefix`, for a message: "none" or
/// "[as path 65003 65001 65101, next hop 192.0.2.25, communities 65101:7]; [...]".
pub fn seen(routes: &[ReceivedRoute], prefix: IpNet) -> String {
    let paths: Vec<String> = routes
        .iter()
        .filter(|r| r.prefix == prefix)
        .map(|r| {
            let mut p = vec![
                format!(
                    "as path {}",
                    if r.as_path.is_empty() {
                        "(empty)"
                    } else {
                        &r.as_path
                    }
                ),
                format!(
                    "next hop {}",
                    r.next_hop.map_or("(none)".into(), |n| n.to_string())
                ),
                format!("from peer {}", r.peer),
            ];
            let c: Vec<String> = r.attrs.communities.iter().map(|c| c.to_string()).collect();
            if !c.is_empty() {
                p.push(format!("communities {}", c.join(" ")));
            }
            let l: Vec<String> = r
                .attrs
                .large_communities
                .iter()
                .map(|c| c.to_string())
                .collect();
            if !l.is_empty() {
                p.push(format!("large communities {}", l.join(" ")));
            }
            format!("[{}]", p.join(", "))
        })
        .collect();
    if paths.is_empty() {
        "no path".into()
    } else {
        paths.join("; ")
    }
}

/// When the plan has an observer and a route of the primary would pass for the recovery's (or
/// the other way round) for some subnet: why, for `ferry plan check` to warn. Two sites are
/// told apart when some mark is given at both and differs.
pub fn cannot_tell_apart(plan: &Plan) -> Option<String> {
    let obs = plan.verify.as_ref()?.observer.as_ref()?.get_ref();
    let (a, b) = (plan.primary(), plan.recovery());
    plan.all_prefixes().into_iter().find_map(|p| {
        // Bad values are the plan check's to report.
        let (x, y) = (Marks::of(plan, a, p).ok()?, Marks::of(plan, b, p).ok()?);
        let apart = differ(x.origin_as, y.origin_as)
            || differ(x.tag, y.tag)
            || differ(x.next_hop, y.next_hop);
        (!apart).then(|| {
            format!(
                "verify: observer {obs} cannot tell {} ({x}) from {} ({y}) for {p}: a route still arriving from one counts as the other's; give each site its own verify_community (or origin_as, when their speakers' ASes differ)",
                a.name, b.name
            )
        })
    })
}

fn differ<T: PartialEq>(x: Option<T>, y: Option<T>) -> bool {
    x.is_some() && y.is_some() && x != y
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::speaker::Attributes;

    /// A path for 198.51.100.0/24 as an observer behind r3 (192.0.2.25) receives it.
    pub fn route(as_path: &str, nh: &str, communities: &[&str]) -> ReceivedRoute {
        let attrs = Attributes {
            communities: communities.iter().map(|c| c.parse().unwrap()).collect(),
            ..Attributes::default()
        };
        ReceivedRoute {
            peer: "192.0.2.25".parse().unwrap(),
            prefix: "198.51.100.0/24".parse().unwrap(),
            next_hop: Some(nh.parse().unwrap()),
            as_path: as_path.into(),
            attrs,
            stale: false,
        }
    }

    #[test]
    fn the_origin_as_is_the_last_of_the_path_and_none_for_aggregates() {
        assert_eq!(origin_as("65003 65002 65102"), Some(65102));
        assert_eq!(origin_as("65003 65102 65102 65102"), Some(65102));
        assert_eq!(origin_as("65003 4200000001"), Some(4_200_000_001));
        assert_eq!(origin_as(""), None);
        assert_eq!(origin_as("65003 {65101,65102}"), None);
        assert_eq!(origin_as("65003 (65010 65011)"), None);
    }

    #[test]
    fn marks_match_only_when_all_given_match() {
        let m = Marks {
            origin_as: Some(65102),
            tag: Some(Tag::parse("65102:7").unwrap()),
            next_hop: None,
        };
        assert!(m.matches(&route("65003 65002 65102", "192.0.2.25", &["65102:7"])));
        // A router rewrote the next hop and prepended: still the site's.
        assert!(m.matches(&route(
            "65003 65003 65002 65102",
            "203.0.113.1",
            &["65102:7", "65535:0"]
        )));
        assert!(!m.matches(&route("65003 65002 65102", "192.0.2.25", &[])));
        assert!(!m.matches(&route("65003", "192.0.2.25", &["65102:7"])));
        let nothing = Marks {
            origin_as: None,
            tag: None,
            next_hop: None,
        };
        assert!(!nothing.matches(&route("65003 65002 65102", "192.0.2.25", &[])));
        let large = Tag::parse("65102:1:2").unwrap();
        assert!(matches!(large, Tag::Large(_)));
        assert!(Tag::parse("65102:x").unwrap_err().contains("65102:x"));
        assert!(Tag::parse("1:2:x").unwrap_err().contains("1:2:x"));
    }

    #[test]
    fn a_route_with_both_sites_marks_is_the_site_with_more_of_them() {
        let by_as = Marks {
            origin_as: Some(65101),
            tag: None,
            next_hop: None,
        };
        let by_as_and_tag = Marks {
            tag: Some(Tag::parse("65101:2").unwrap()),
            ..by_as.clone()
        };
        let tagged = route("65003 65001 65101", "192.0.2.25", &["65101:2"]);
        assert!(by_as_and_tag.holds(&by_as, &tagged, false));
        assert!(!by_as.holds(&by_as_and_tag, &tagged, true));
        let plain = route("65003 65001 65101", "192.0.2.25", &[]);
        assert!(by_as.holds(&by_as_and_tag, &plain, false));
        // The same marks at both: the route is either's only when ties count.
        assert!(by_as.holds(&by_as, &plain, true));
        assert!(!by_as.holds(&by_as, &plain, false));
    }

    #[test]
    fn seen_lists_every_path_of_the_prefix() {
        let routes = [
            route("65003 65001 65101", "192.0.2.25", &["65101:7"]),
            route("65003", "192.0.2.25", &[]),
        ];
        let s = seen(&routes, "198.51.100.0/24".parse().unwrap());
        assert_eq!(
            s,
            "[as path 65003 65001 65101, next hop 192.0.2.25, from peer 192.0.2.25, communities 65101:7]; [as path 65003, next hop 192.0.2.25, from peer 192.0.2.25]"
        );
        assert_eq!(seen(&routes, "203.0.113.0/24".parse().unwrap()), "no path");
    }
}

#[cfg(test)]
pub(crate) mod plan_tests {
    use super::*;

    /// dc1 -> dc2 with an observer, the sites told apart by origin AS.
    pub const PLAN: &str = r#"name = "web"
primary = "dc1"
recovery = "dc2"
order = "break-before-make"
[[site]]
name = "dc1"
api = "/x/dc1.sock"
next_hop = "198.51.100.10"
origin_as = 65101
[[site]]
name = "dc2"
api = "/x/dc2.sock"
next_hop = "198.51.100.10"
origin_as = 65102
[[site]]
name = "obs"
api = "/x/obs.sock"
[[group]]
name = "web"
subnets = ["198.51.100.0/24"]
[verify]
observer = "obs"
timeout_ms = 1000
interval_ms = 100
"#;

    #[test]
    fn an_observer_needs_a_mark_for_each_moving_site() {
        assert!(Plan::parse(PLAN).is_ok());
        let e = Plan::parse(&PLAN.replace("origin_as = 65102\n", "")).unwrap_err();
        assert!(
            e.contains("site \"dc2\" gives it nothing to recognise its routes by")
                && e.contains("origin_as")
                && e.contains("[verify] at line 20"),
            "{e}"
        );
        // The next hop only counts when the plan asks for it, and then it must be set.
        let e = Plan::parse(
            &PLAN
                .replace(
                    "observer = \"obs\"",
                    "observer = \"obs\"\nmatch_next_hop = true",
                )
                .replace(
                    "next_hop = \"198.51.100.10\"\norigin_as = 65102",
                    "origin_as = 65102",
                ),
        )
        .unwrap_err();
        assert!(
            e.contains("match_next_hop = true, but site \"dc2\" sets no next hop"),
            "{e}"
        );
        let e = Plan::parse(&PLAN.replace("observer = \"obs\"", "observer = \"dc2\"")).unwrap_err();
        assert!(e.contains("is the recovery site"), "{e}");
        let e = Plan::parse(&PLAN.replace("origin_as = 65102", "verify_community = \"65102:x\""))
            .unwrap_err();
        assert!(e.contains("dc2") && e.contains("65102:x"), "{e}");
        let e = Plan::parse(&PLAN.replace("origin_as = 65102", "origin_as = 0")).unwrap_err();
        assert!(e.contains("site \"dc2\" origin_as = 0"), "{e}");
        let e = Plan::parse(&PLAN.replace("timeout_ms = 1000", "timeout_ms = 0")).unwrap_err();
        assert!(
            e.contains("timeout_ms and interval_ms must be above 0"),
            "{e}"
        );
    }

    #[test]
    fn a_verify_community_is_announced_with_the_sites_routes() {
        let p = Plan::parse(&PLAN.replace(
            "origin_as = 65102",
            "origin_as = 65102\ncommunities = [\"65102:100\"]\nverify_community = \"65102:7\"",
        ))
        .unwrap();
        let r = p.recovery().route(p.all_prefixes()[0]).unwrap();
        let c: Vec<String> = r.attrs.communities.iter().map(|c| c.to_string()).collect();
        assert_eq!(c, ["65102:100", "65102:7"]);
        let p = Plan::parse(&PLAN.replace("origin_as = 65102", "verify_community = \"65102:7:1\""))
            .unwrap();
        let r = p.recovery().route(p.all_prefixes()[0]).unwrap();
        assert_eq!(r.attrs.large_communities[0].to_string(), "65102:7:1");
    }

    #[test]
    fn plan_check_warns_when_the_observer_cannot_tell_the_sites_apart() {
        assert_eq!(cannot_tell_apart(&Plan::parse(PLAN).unwrap()), None);
        let same = PLAN.replace("origin_as = 65102", "origin_as = 65101");
        let w = cannot_tell_apart(&Plan::parse(&same).unwrap()).unwrap();
        assert!(
            w.contains("observer obs cannot tell dc1 (origin AS 65101) from dc2 (origin AS 65101)")
                && w.contains("verify_community"),
            "{w}"
        );
        let tagged = same
            .replace(
                "origin_as = 65101\n[[site]]\nname = \"dc2\"",
                "origin_as = 65101\nverify_community = \"65101:1\"\n[[site]]\nname = \"dc2\"",
            )
            .replace(
                "api = \"/x/dc2.sock\"",
                "api = \"/x/dc2.sock\"\nverify_community = \"65101:2\"",
            );
        assert_eq!(cannot_tell_apart(&Plan::parse(&tagged).unwrap()), None);
        // The same next hop at both sites tells nothing even when asked for.
        let nh = same.replace(
            "observer = \"obs\"",
            "observer = \"obs\"\nmatch_next_hop = true",
        );
        assert!(cannot_tell_apart(&Plan::parse(&nh).unwrap()).is_some());
        let nh = nh.replacen("198.51.100.10", "192.0.2.10", 1);
        assert_eq!(cannot_tell_apart(&Plan::parse(&nh).unwrap()), None);
    }
}
