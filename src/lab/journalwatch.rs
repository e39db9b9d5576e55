//! Times of a controller run's steps as seen from outside: a thread reads the run journals
//! under `STATE_DIR/runs/` every 2 ms and stamps each new line with the lab's clock, so the
//! lab can put the controller's steps on the same time line as its probes.
//!
//! Never does: write a journal, or parse more of it than the step records
//! ([`crate::controller::journal`] owns the format).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::now_us;

/// When each journal line of the runs under `state_dir/runs` appeared.
pub struct JournalWatch {
    stop: Arc<AtomicBool>,
    lines: Arc<Mutex<Vec<(i64, String)>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl JournalWatch {
    pub fn start(state_dir: &Path) -> Self {
        let runs = state_dir.join("runs");
        let before: Vec<PathBuf> = journals(&runs);
        let stop = Arc::new(AtomicBool::new(false));
        let lines: Arc<Mutex<Vec<(i64, String)>>> = Arc::default();
        let (s, l) = (stop.clone(), lines.clone());
        let thread = std::thread::spawn(move || {
            let mut read: BTreeMap<PathBuf, usize> = BTreeMap::new();
            while !s.load(Ordering::Relaxed) {
                for j in journals(&runs).into_iter().filter(|j| !before.contains(j)) {
                    let text = std::fs::read_to_string(&j).unwrap_or_default();
                    let at = read.entry(j).or_insert(0);
                    let new = &text[(*at).min(text.len())..];
                    let done = new.rfind('\n').map_or(0, |i| i + 1);
                    let t = now_us();
                    if let Ok(mut l) = l.lock() {
                        l.extend(new[..done].lines().map(|x| (t, x.to_owned())));
                    }
                    *at += done;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        Self {
            stop,
            lines,
            thread: Some(thread),
        }
    }

    /// (time, record) of every line seen, once the watch has stopped.
    pub fn finish(mut self) -> Vec<(i64, serde_json::Value)> {
        // One more pass after the run ended.
        std::thread::sleep(Duration::from_millis(10));
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.lines
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(t, line)| Some((t, serde_json::from_str(&line).ok()?)))
            .collect()
    }
}

fn journals(runs: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(runs)
        .map(|d| {
            d.filter_map(|e| Some(e.ok()?.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
                .collect()
        })
        .unwrap_or_default()
}

/// When the step `name` started and was done, from the watched journal lines.
pub fn step_times(lines: &[(i64, serde_json::Value)], name: &str) -> Option<(i64, i64)> {
    let steps = lines.iter().find(|(_, r)| r["record"] == "run_started")?.1["steps"]
        .as_array()?
        .clone();
    let i = steps.iter().position(|s| s == name)?;
    let started = lines
        .iter()
        .find(|(_, r)| r["record"] == "step_started" && r["step"] == i)?
        .0;
    let done = lines
        .iter()
        .find(|(_, r)| r["record"] == "step_done" && r["step"] == i)?
        .0;
    Some((started, done))
}
