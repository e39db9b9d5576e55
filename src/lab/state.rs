//! The lab's state file, `/run/ferry-lab/<instance>/state.json`: what `up` created, written
//! before each resource is created so `down` can remove it even after a failed `up` or a
//! crash (written with [`crate::durable::replace()`]; the file is 0666 less the umask).
//! Never does: decide anything; [`super::instance`] reads and writes it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::runtime::RuntimeKind;
use super::topology::Site;
use super::{LabError, Result, RUN_ROOT};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LabState {
    pub instance: String,
    pub topology: String,
    /// A topology directory given with --topology (absent: the built-in one).
    pub topology_dir: Option<PathBuf>,
    /// Where the nodes run (absent in files written before runtimes existed: netns).
    #[serde(default)]
    pub runtime: RuntimeKind,
    /// The Docker runtime's router image when the user gave one (`--frr-image`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frr_image: Option<String>,
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

    /// Write atomically and durably ([`crate::durable::replace()`]: temp file, fsync,
    /// rename, fsync the directory), so that `down` after a crash finds every resource.
    pub fn save(&self) -> Result<()> {
        let p = path(&self.instance);
        let text = serde_json::to_string_pretty(self).map_err(|e| LabError::step("state", e))?;
        let writing = |e| LabError::step(format!("writing {}", p.display()), e);
        std::fs::create_dir_all(dir(&self.instance)).map_err(writing)?;
        crate::durable::replace(&p, text.as_bytes(), 0o666).map_err(|e| writing(e.source))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `save` replaces the whole file (no temporary file left) and `load` reads it back; a
    /// missing file is `None`. Needs write access to the run root (root), skipped without.
    #[test]
    fn save_replaces_the_state_and_load_reads_it_back() {
        let instance = format!("unit-state-{}", std::process::id());
        let mut st = LabState {
            instance: instance.clone(),
            ..LabState::default()
        };
        if st.save().is_err() {
            eprintln!("skipped: cannot write {}", dir(&instance).display());
            return;
        }
        st.add_process("frr-a", "ns-a", 42).unwrap();
        st.add_process("frr-a", "ns-a", 43).unwrap();
        let back = LabState::load(&instance).unwrap().unwrap();
        assert_eq!(back.process("frr-a").map(|p| p.pid), Some(43));
        assert_eq!(back.processes.len(), 1);
        let tmp = crate::durable::temp_path(&path(&instance));
        assert!(!tmp.exists(), "{} left", tmp.display());
        std::fs::remove_dir_all(dir(&instance)).unwrap();
        assert!(LabState::load(&instance).unwrap().is_none());
    }
}
