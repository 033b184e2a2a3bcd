//! The journal of a guided run: one JSON file, rewritten atomically (write a
//! temporary file, fsync, rename, fsync the directory) each time a step
//! finishes.
//!
//! The contract that makes `--resume` safe after a `kill -9` at any point:
//! a step is recorded as done only *after* its effect is durable on the
//! target (committed), so the journal may under-report but never
//! over-reports. Each step is therefore written to be redone: a resumed run
//! redoes every step the journal does not list as done, and steps undo their
//! own partial effects first (e.g. a table that was half copied is emptied
//! before it is copied again).
//!
//! The journal also keeps the resolved plan the user confirmed and a
//! fingerprint of source and target, so a resumed run does the same thing
//! to the same data, and refuses when the source changed in between.
//! It never holds secrets (connection strings are stored redacted) and is
//! written with mode 0600 anyway.

use anyhow::{bail, Context, Result};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where a run stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "message")]
pub enum RunStatus {
    /// Started and not finished: interrupted if no process is running it.
    Running,
    /// Every step done and verified.
    Done,
    /// Stopped on an error (kept for `--resume` after the cause is fixed).
    Failed(String),
}

/// One finished step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Unix time (seconds) it finished.
    pub at: u64,
    pub elapsed_ms: u64,
    /// Step-specific facts (rows copied, rows rejected, ...).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub detail: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Data {
    kind: String,
    version: u32,
    status: RunStatus,
    started_at: u64,
    updated_at: u64,
    /// What was migrated where; a resumed run must match it.
    fingerprint: serde_json::Value,
    /// The plan the user confirmed, in the migration's own shape.
    plan: serde_json::Value,
    steps: BTreeMap<String, StepRecord>,
}

const VERSION: u32 = 1;

/// A run's journal, shared by the tasks of the run (interior mutability;
/// every change is persisted before the call returns).
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    data: Mutex<Data>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Journal {
    /// Start a new journal at `path` (replacing any previous one).
    pub fn create<P: Serialize>(
        path: &Path,
        kind: &str,
        fingerprint: serde_json::Value,
        plan: &P,
    ) -> Result<Journal> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let j = Journal {
            path: path.to_path_buf(),
            data: Mutex::new(Data {
                kind: kind.to_string(),
                version: VERSION,
                status: RunStatus::Running,
                started_at: now(),
                updated_at: now(),
                fingerprint,
                plan: serde_json::to_value(plan)?,
                steps: BTreeMap::new(),
            }),
        };
        j.persist()?;
        Ok(j)
    }

    /// Open the journal at `path`, or `None` when there is none.
    pub fn open(path: &Path, kind: &str) -> Result<Option<Journal>> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let data: Data = serde_json::from_str(&text).with_context(|| {
            format!(
                "journal {} is corrupt; remove it to start over",
                path.display()
            )
        })?;
        if data.kind != kind {
            bail!(
                "journal {} belongs to a `{}` run, not `{kind}`",
                path.display(),
                data.kind
            );
        }
        if data.version != VERSION {
            bail!(
                "journal {} has version {} (this datatier writes {VERSION}); finish it with the datatier that started it, or remove it",
                path.display(),
                data.version
            );
        }
        Ok(Some(Journal {
            path: path.to_path_buf(),
            data: Mutex::new(data),
        }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn status(&self) -> RunStatus {
        self.lock().status.clone()
    }

    pub fn started_at(&self) -> u64 {
        self.lock().started_at
    }

    pub fn fingerprint(&self) -> serde_json::Value {
        self.lock().fingerprint.clone()
    }

    /// The confirmed plan, in the migration's own type.
    pub fn plan<P: DeserializeOwned>(&self) -> Result<P> {
        serde_json::from_value(self.lock().plan.clone())
            .with_context(|| format!("journal {} holds an unreadable plan", self.path.display()))
    }

    /// Replace the plan (a resumed run that changed what is still to do).
    pub fn set_plan<P: Serialize>(&self, plan: &P) -> Result<()> {
        self.lock().plan = serde_json::to_value(plan)?;
        self.persist()
    }

    pub fn is_done(&self, step: &str) -> bool {
        self.lock().steps.contains_key(step)
    }

    pub fn step(&self, step: &str) -> Option<StepRecord> {
        self.lock().steps.get(step).cloned()
    }

    /// Every finished step, by name.
    pub fn steps(&self) -> BTreeMap<String, StepRecord> {
        self.lock().steps.clone()
    }

    /// Record `step` as done. Call only once its effect is durable.
    pub fn done(&self, step: &str, elapsed: Duration, detail: serde_json::Value) -> Result<()> {
        self.lock().steps.insert(
            step.to_string(),
            StepRecord {
                at: now(),
                elapsed_ms: elapsed.as_millis() as u64,
                detail,
            },
        );
        self.persist()
    }

    /// Forget a step (it will be redone).
    pub fn forget(&self, step: &str) -> Result<()> {
        let removed = self.lock().steps.remove(step).is_some();
        if removed {
            self.persist()?;
        }
        Ok(())
    }

    pub fn set_status(&self, status: RunStatus) -> Result<()> {
        self.lock().status = status;
        self.persist()
    }

    /// Write the journal atomically; a crash leaves the old or the new
    /// version, never a torn file.
    fn persist(&self) -> Result<()> {
        // Under the lock: concurrent steps must not interleave their writes.
        let mut d = self.lock();
        d.updated_at = now();
        let bytes = serde_json::to_vec_pretty(&*d)?;
        let tmp = self.path.with_extension("json.tmp");
        crate::secret::write_private(&tmp, &bytes)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.path)
            .with_context(|| format!("cannot replace {}", self.path.display()))?;
        if let Some(dir) = self.path.parent() {
            if let Ok(f) = std::fs::File::open(dir) {
                let _ = f.sync_all();
            }
        }
        drop(d);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn steps_survive_reopening_and_the_file_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("run/journal.json");
        let j = Journal::create(
            &p,
            "sqlite-to-postgres",
            serde_json::json!({"source": "a.db"}),
            &vec!["t1", "t2"],
        )
        .unwrap();
        j.done(
            "load:t1",
            Duration::from_millis(1500),
            serde_json::json!({"rows": 3}),
        )
        .unwrap();
        assert!(j.is_done("load:t1") && !j.is_done("load:t2"));
        drop(j);
        let j = Journal::open(&p, "sqlite-to-postgres").unwrap().unwrap();
        assert_eq!(j.status(), RunStatus::Running);
        assert_eq!(j.step("load:t1").unwrap().detail["rows"], 3);
        assert_eq!(j.step("load:t1").unwrap().elapsed_ms, 1500);
        assert_eq!(j.plan::<Vec<String>>().unwrap(), vec!["t1", "t2"]);
        assert_eq!(j.fingerprint()["source"], "a.db");
        j.forget("load:t1").unwrap();
        j.set_status(RunStatus::Failed("boom".into())).unwrap();
        let j = Journal::open(&p, "sqlite-to-postgres").unwrap().unwrap();
        assert!(!j.is_done("load:t1"));
        assert_eq!(j.status(), RunStatus::Failed("boom".into()));
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(Journal::open(&p, "mongo-to-sharded")
            .unwrap_err()
            .to_string()
            .contains("belongs to a `sqlite-to-postgres` run"));
        assert!(Journal::open(&dir.path().join("none.json"), "x")
            .unwrap()
            .is_none());
    }
}
