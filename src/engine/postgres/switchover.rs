//! The switchover journal: how far a switchover got, kept in the state
//! dir so `init` can finish one that was interrupted.

use crate::provider::local::StateDir;
use anyhow::Result;
use serde::{Deserialize, Serialize};

const JOURNAL: &str = "switchover.json";

/// How far a switchover got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Started,
    Paused,
    OldStopped,
    Promoted,
    Rerouted,
    Resumed,
    Rejoined,
    Done,
}

/// The switchover journal in the state dir.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Journal {
    pub from: String,
    pub to: String,
    pub phase: Phase,
}

impl Journal {
    pub fn load(state: &StateDir) -> Option<Journal> {
        let text = std::fs::read_to_string(state.dir.join(JOURNAL)).ok()?;
        serde_json::from_str(&text).ok()
    }
    pub fn save(&self, state: &StateDir) -> Result<()> {
        let tmp = state.dir.join(format!("{JOURNAL}.tmp"));
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(&tmp, state.dir.join(JOURNAL))?;
        Ok(())
    }
    /// Was `addr` shut down cleanly by a switchover after its last write
    /// reached the new primary (so rewinding it loses nothing)?
    pub fn demoted(&self, addr: &str) -> bool {
        self.from == addr && self.phase >= Phase::Promoted
    }
    /// PgBouncer was resumed (or never paused by a live switchover).
    pub fn finished(&self) -> bool {
        self.phase >= Phase::Resumed
    }
}
