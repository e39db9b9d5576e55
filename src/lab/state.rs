//! The lab's state file, `/run/ferry-lab/<instance>/state.json`: what `up` created, written
//! before each resource is created so `down` can remove it even after a failed `up`.
//! Never does: decide anything; [`super::instance`] reads and writes it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::topology::Site;
use super::{LabError, Result, RUN_ROOT};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LabState {
    pub instance: String,
    pub topology: String,
    /// A topology directory given with --topology (absent: the built-in one).
    pub topology_dir: Option<PathBuf>,
    pub namespaces: Vec<String>,
    pub processes: Vec<Process>,
    /// `up` finished: sessions Established and the primary's route at the third site.
    pub complete: bool,
    /// The site whose speaker announces the subnet.
    pub active: Option<Site>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Process {
    pub name: String,
    pub namespace: String,
    pub pid: u32,
}

/// The instance's runtime directory.
pub fn dir(instance: &str) -> PathBuf {
    Path::new(RUN_ROOT).join(instance)
}

fn path(instance: &str) -> PathBuf {
    dir(instance).join("state.json")
}

impl LabState {
    pub fn load(instance: &str) -> Result<Option<Self>> {
        let p = path(instance);
        match std::fs::read_to_string(&p) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| LabError::step(format!("reading {}", p.display()), e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(LabError::step(format!("reading {}", p.display()), e)),
        }
    }

    /// Write atomically (temp file, rename).
    pub fn save(&self) -> Result<()> {
        let p = path(&self.instance);
        let tmp = p.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self).map_err(|e| LabError::step("state", e))?;
        std::fs::create_dir_all(dir(&self.instance))
            .and_then(|()| std::fs::write(&tmp, text))
            .and_then(|()| std::fs::rename(&tmp, &p))
            .map_err(|e| LabError::step(format!("writing {}", p.display()), e))
    }

    pub fn add_process(&mut self, name: &str, namespace: &str, pid: u32) -> Result<()> {
        self.processes.retain(|p| p.name != name);
        self.processes.push(Process {
            name: name.into(),
            namespace: namespace.into(),
            pid,
        });
        self.save()
    }

    pub fn process(&self, name: &str) -> Option<&Process> {
        self.processes.iter().find(|p| p.name == name)
    }
}
