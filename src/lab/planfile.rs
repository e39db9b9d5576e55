//! What the failover plans the lab writes for the controller have in common (`ferry lab chaos
//! --controller`: [`super::chaos_ctl`]; `ferry lab dns`: [`super::mixedplan`]), built from
//! the lab instance: the plan's head (its name, the primary and recovery sites,
//! break-before-make) with both sites' speakers (API socket, IPv4 and IPv6 next hop); the VMs'
//! namespaces and the shell that picks a site's by `FERRY_FROM`/`FERRY_TO`, so failback runs
//! the same hooks; and writing the plan into the run's output directory.
//!
//! Never does: groups, hooks, verification or DNS entries (each plan writes its own), or run a
//! plan.

use std::path::{Path, PathBuf};

use super::instance::LabInstance;
use super::topology::Site;
use super::{LabError, Result};

/// The head of a plan named `name` for `lab`: its sites are the primary's and the recovery's
/// speakers. Ends with a blank line, so the plan's own tables follow.
pub fn two_sites(lab: &LabInstance, name: &str) -> String {
    let (p, r) = (Site::Primary.name(), Site::Recovery.name());
    let socket = |site: Site| lab.speaker_socket(site).display().to_string();
    let sp = |site: Site| lab.topo.speaker(site);
    format!(
        r#"name = "{name}"
primary = "{p}"
recovery = "{r}"
order = "break-before-make"

[[site]]
name = "{p}"
api = "{api1}"
next_hop = "{nh1}"
next_hop6 = "{nh1_6}"

[[site]]
name = "{r}"
api = "{api2}"
next_hop = "{nh2}"
next_hop6 = "{nh2_6}"

"#,
        api1 = socket(Site::Primary),
        api2 = socket(Site::Recovery),
        nh1 = sp(Site::Primary).next_hop,
        nh1_6 = sp(Site::Primary).next_hop6,
        nh2 = sp(Site::Recovery).next_hop,
        nh2_6 = sp(Site::Recovery).next_hop6,
    )
}

/// The namespaces of the primary's and the recovery's VM.
pub fn vm_namespaces(lab: &LabInstance) -> Result<(String, String)> {
    let vm = |site: Site| {
        lab.topo
            .vm(site)
            .map(|h| lab.ns(&h.name))
            .ok_or_else(|| LabError::Topology(format!("no VM at {site}")))
    };
    Ok((vm(Site::Primary)?, vm(Site::Recovery)?))
}

/// Shell that sets `$v` to `primary` when the site named in `$var` (`FERRY_FROM` or
/// `FERRY_TO`) is the primary, else to `recovery`.
pub fn pick(var: &str, primary: &str, recovery: &str) -> String {
    let p = Site::Primary.name();
    format!("case ${var} in {p}) v={primary};; *) v={recovery};; esac;")
}

/// Write the plan `text` to `out/file`; returns its path.
pub fn write(out: &Path, file: &str, text: &str) -> Result<PathBuf> {
    let plan = out.join(file);
    std::fs::write(&plan, text)
        .map_err(|e| LabError::step(format!("writing {}", plan.display()), e))?;
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::plan::Plan;

    /// The head and one group are a plan the controller accepts, its sites the speakers'.
    #[test]
    fn the_head_is_a_plan_with_both_speakers_as_its_sites() {
        let lab = LabInstance::new("pf1", None).unwrap();
        let text = format!(
            "{}[[group]]\nname = \"vm\"\nsubnets = [\"{}\"]\n",
            two_sites(&lab, "head"),
            lab.topo.prefix
        );
        let plan = Plan::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        for (site, got) in [
            (Site::Primary, plan.primary()),
            (Site::Recovery, plan.recovery()),
        ] {
            let sp = lab.topo.speaker(site);
            assert_eq!(got.name, site.name());
            assert_eq!(got.api, lab.speaker_socket(site).display().to_string());
            assert_eq!(got.next_hop, Some(sp.next_hop.to_string()));
            assert_eq!(got.next_hop6, Some(sp.next_hop6.to_string()));
        }
        assert_ne!(plan.primary().api, plan.recovery().api);
    }

    #[test]
    fn pick_chooses_the_primarys_value_only_for_the_primary() {
        let shell = format!("{} echo $v", pick("SITE", "a", "b"));
        for (site, want) in [(Site::Primary, "a"), (Site::Recovery, "b")] {
            let out = std::process::Command::new("sh")
                .args(["-c", &shell])
                .env("SITE", site.name())
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), want, "{site}");
        }
    }
}
