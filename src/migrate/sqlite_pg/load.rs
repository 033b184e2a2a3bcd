//! The loader: rusqlite readers feeding binary COPY over bounded channels,
//! tables in parallel, big tables split into rowid ranges, and each table's
//! keys and indexes built as soon as its data is in — while other tables
//! are still loading — then foreign keys, views and statistics.
//!
//! ```text
//!   reader thread (SQLite, read-only)          async task (one PG session)
//!   SELECT ... WHERE rowid BETWEEN a AND b
//!   convert + encode rows into ~512 kB  --mpsc(4)-->  COPY t FROM STDIN (BINARY)
//!   batches                                             commit = chunk durable
//! ```
//!
//! Memory is bounded by `jobs x (channel depth + 2) x batch size` (plus one
//! row, when a single row is larger than a batch), whatever the database
//! size. Each COPY is one statement, so a chunk is either committed or not
//! there at all; a table is journaled as loaded only after all its chunks
//! committed, and a resumed run empties every table not journaled before
//! loading it again — nothing is duplicated or lost.

use super::copy;
use super::plan::{Obj, ObjKind, Plan, TablePlan};
use super::scan::{key_select, RowKey};
use super::sql::quote_ident;
use super::target::{self, Outcome, Target};
use super::types::convert;
use super::verify::{self, Expected, RowHasher, Sums, TableCheck, TargetTypes};
use crate::migrate::{Journal, Progress, Task};
use anyhow::{anyhow, bail, Context, Result};
use bytes::{Bytes, BytesMut};
use futures::SinkExt;
use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::Notify;

/// What to do with a row holding a value that does not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Stop the run and name the table, column, row and value.
    #[default]
    Abort,
    /// Leave the row out and record it in the rejects file.
    Skip,
}

/// Rows per chunk above which a table is split into rowid ranges.
const SPLIT_ROWS: u64 = 200_000;
/// Bytes per COPY message batch.
const BATCH: usize = 512 * 1024;
/// Batches in flight between a reader and its COPY.
const DEPTH: usize = 4;

/// Everything the loader needs.
pub struct Loader {
    pub source: PathBuf,
    pub target: Target,
    pub plan: Arc<Plan>,
    pub journal: Arc<Journal>,
    pub progress: Progress,
    pub jobs: usize,
    pub on_error: OnError,
    /// Per-chunk reject files live here until merged into `rejects`.
    pub run_dir: PathBuf,
    pub rejects: PathBuf,
    pub maintenance_work_mem: String,
    /// Tables may hold rows from an interrupted run: empty them first.
    pub resume: bool,
    pub verify: VerifyMode,
}

/// The journal step of a table's load.
pub fn load_step(table: &str) -> String {
    format!("load:{table}")
}

/// Rowid ranges (inclusive) for a table; `None` = the whole table at once.
pub fn chunks(t: &TablePlan, jobs: usize) -> Vec<Option<(i64, i64)>> {
    match t.rowid_range {
        Some((lo, hi)) if t.key.is_empty() && t.rows > SPLIT_ROWS => {
            let n = t.rows.div_ceil(SPLIT_ROWS).min((jobs * 4) as u64).max(2) as i128;
            let span = hi as i128 - lo as i128 + 1;
            let step = (span + n - 1) / n;
            (0..n)
                .map(|i| {
                    let a = lo as i128 + i * step;
                    let b = (a + step - 1).min(hi as i128);
                    Some((a as i64, b as i64))
                })
                .filter(|r| r.is_some_and(|(a, b)| a <= b))
                .collect()
        }
        _ => vec![None],
    }
}

/// A misfit that stopped the run.
#[derive(Debug)]
pub struct MisfitAbort {
    pub table: String,
    pub column: String,
    pub row: String,
    pub problem: String,
}

impl std::fmt::Display for MisfitAbort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "table {}, column {}, {}: {} (stopped: --on-error abort); pick a type with --cast {}.{}=TYPE or leave such rows out with --on-error skip, then re-run with --resume",
            self.table, self.column, self.row, self.problem, self.table, self.column
        )
    }
}

impl std::error::Error for MisfitAbort {}

#[derive(Debug, Default, Clone)]
struct ChunkResult {
    rejected: u64,
    /// The rows as read from SQLite and sent, hashed for verification.
    sums: Sums,
}

/// How the run verifies what it loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum VerifyMode {
    /// Hash the source rows while reading them for the load (plus SQLite's
    /// own row count); read every table back from Postgres.
    #[default]
    Fast,
    /// Also read the source again, independently of the load.
    Full,
    /// No verification (run `datatier migrate verify` later).
    None,
}

enum Work {
    Chunk {
        table: usize,
        index: usize,
        range: Option<(i64, i64)>,
    },
    /// Stage 1 of a loaded table: an index build (of an index, or the
    /// unique index under a primary key or unique constraint).
    Build(usize, Obj),
    /// Stage 2 of a loaded table (a constraint on its index, a check, the
    /// identity restart), or (table None) a foreign key.
    Object(Option<usize>, Obj),
    /// Stage 1 too: compare the table in Postgres with the source.
    Verify(usize),
}

struct TableState {
    remaining: AtomicUsize,
    /// Work of the current stage (1: index builds and verification,
    /// 2: constraints, checks, identity) not yet finished.
    stage_left: AtomicUsize,
    stage: AtomicUsize,
    /// Data, keys and constraints all in: foreign keys may use it.
    ready: AtomicBool,
    rejected: AtomicU64,
    sums: Mutex<Sums>,
    started: Mutex<Option<Instant>>,
    task: Arc<Task>,
}

/// A foreign key waits for the keys of the tables it joins.
struct FkWait {
    obj: Obj,
    tables: Vec<usize>,
    queued: AtomicBool,
}

struct Queue {
    items: Mutex<(VecDeque<Work>, usize)>, // (queued, outstanding incl. running)
    notify: Notify,
    failed: AtomicBool,
    error: Mutex<Option<anyhow::Error>>,
}

impl Queue {
    fn push_front(&self, w: Work) {
        let mut g = self.items.lock().unwrap_or_else(|e| e.into_inner());
        g.0.push_front(w);
        g.1 += 1;
        drop(g);
        self.notify.notify_waiters();
    }

    async fn next(&self) -> Option<Work> {
        loop {
            let notified = self.notify.notified();
            {
                let mut g = self.items.lock().unwrap_or_else(|e| e.into_inner());
                if self.failed.load(Ordering::Relaxed) {
                    return None;
                }
                if let Some(w) = g.0.pop_front() {
                    return Some(w);
                }
                if g.1 == 0 {
                    return None;
                }
            }
            notified.await;
        }
    }

    fn finished_one(&self) {
        let mut g = self.items.lock().unwrap_or_else(|e| e.into_inner());
        g.1 -= 1;
        drop(g);
        self.notify.notify_waiters();
    }

    fn fail(&self, e: anyhow::Error) {
        let mut err = self.error.lock().unwrap_or_else(|e| e.into_inner());
        if err.is_none() {
            *err = Some(e);
        }
        self.failed.store(true, Ordering::Relaxed);
        self.notify.notify_waiters();
    }
}

/// What the load did, per table (target name): rows copied, rows
/// rejected; objects created NOT VALID; and the tables' verification.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct LoadReport {
    pub tables: Vec<(String, u64, u64)>,
    pub not_valid: Vec<(String, String)>,
    pub rejects_file: Option<PathBuf>,
    pub seconds: f64,
    #[serde(skip)]
    pub checks: Vec<TableCheck>,
}

/// Everything the workers share.
struct Shared {
    queue: Queue,
    states: Vec<TableState>,
    fks: Vec<FkWait>,
    not_valid: Mutex<Vec<(String, String)>>,
    checks: Mutex<Vec<TableCheck>>,
    /// Column types as Postgres reports them, read once the schema exists.
    types: TargetTypes,
}

impl Loader {
    fn rejects_dir(&self) -> PathBuf {
        self.run_dir.join("rejects.d")
    }

    /// Load every table, build every object, and verify every table, doing
    /// what the journal does not list as done. Each table's keys and
    /// indexes start as soon as it is loaded, a foreign key as soon as both
    /// its tables have their keys, and a table's verification as soon as
    /// its keys and indexes are built, all while other tables still load.
    pub async fn run(self: Arc<Self>) -> Result<LoadReport> {
        let started = Instant::now();
        let plan = self.plan.clone();
        std::fs::create_dir_all(self.rejects_dir())?;
        let mut items = Vec::new();
        let mut states = Vec::new();
        let mut loaded = Vec::new();
        let admin = self.target.connect().await?;
        for (ti, t) in plan.tables.iter().enumerate() {
            let done = self.journal.is_done(&load_step(&t.target));
            let task = self.progress.task(&t.target, Some(t.rows), "rows");
            let ch = if done {
                Vec::new()
            } else {
                chunks(t, self.jobs)
            };
            let mut sums = Sums::new(t.columns.len());
            let mut rejected = 0;
            if !done {
                if self.resume {
                    target::truncate(&admin, &plan.schema, &t.target).await?;
                }
                self.clear_rejects(&t.source)?;
            } else {
                let d = self
                    .journal
                    .step(&load_step(&t.target))
                    .map(|s| s.detail)
                    .unwrap_or_default();
                task.inc(d["rows"].as_u64().unwrap_or(0));
                task.finish("loaded before (journal)");
                rejected = d["rejected"].as_u64().unwrap_or(0);
                sums = Sums::from_json(&d["sums"]).unwrap_or_default();
            }
            if done {
                loaded.push(ti);
            }
            for (i, r) in ch.iter().enumerate() {
                items.push((
                    t.rows / ch.len() as u64,
                    Work::Chunk {
                        table: ti,
                        index: i,
                        range: *r,
                    },
                ));
            }
            states.push(TableState {
                remaining: AtomicUsize::new(ch.len()),
                stage_left: AtomicUsize::new(0),
                stage: AtomicUsize::new(0),
                ready: AtomicBool::new(false),
                rejected: AtomicU64::new(rejected),
                sums: Mutex::new(sums),
                started: Mutex::new(None),
                task,
            });
        }
        let types = verify::target_types(&admin, &plan.schema).await?;
        drop(admin);
        let fks: Vec<FkWait> = plan
            .foreign_keys
            .iter()
            .filter(|o| !self.journal.is_done(&o.step()))
            .map(|o| {
                let tables: Vec<usize> = plan
                    .tables
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| {
                        t.target == o.table || o.references.as_deref() == Some(t.target.as_str())
                    })
                    .map(|(i, _)| i)
                    .collect();
                FkWait {
                    obj: o.clone(),
                    tables,
                    queued: AtomicBool::new(false),
                }
            })
            .collect();
        // biggest chunks first; work on loaded tables before any
        items.sort_by_key(|(w, _)| std::cmp::Reverse(*w));
        let shared = Arc::new(Shared {
            queue: Queue {
                items: Mutex::new((VecDeque::new(), 0)),
                notify: Notify::new(),
                failed: AtomicBool::new(false),
                error: Mutex::new(None),
            },
            states,
            fks,
            not_valid: Mutex::new(Vec::new()),
            checks: Mutex::new(Vec::new()),
            types,
        });
        {
            let mut g = shared.queue.items.lock().unwrap_or_else(|e| e.into_inner());
            g.1 = items.len();
            g.0 = items.into_iter().map(|(_, w)| w).collect();
        }
        // tables loaded by an interrupted run go on from their indexes
        for ti in loaded {
            self.table_loaded(&shared, ti);
        }
        let mut workers = Vec::new();
        for _ in 0..self.jobs.max(1) {
            let me = self.clone();
            let shared = shared.clone();
            workers.push(tokio::spawn(async move {
                if let Err(e) = me.worker(&shared).await {
                    shared.queue.fail(e);
                }
            }));
        }
        for w in workers {
            w.await
                .map_err(|e| anyhow!("a load worker panicked: {e}"))?;
        }
        if let Some(e) = shared
            .queue
            .error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            for s in shared.states.iter() {
                s.task.abandon();
            }
            return Err(e);
        }
        // Views, in order (a view may use one defined before it).
        let client = self.target.connect().await?;
        for v in &plan.views {
            self.object(&client, v, &shared).await?;
        }
        // Planner statistics, cheap and what applications expect.
        let analyze: Vec<String> = plan
            .tables
            .iter()
            .map(|t| format!("ANALYZE {}", self.target.q(&t.target)))
            .collect();
        futures::future::try_join_all(
            analyze
                .chunks(analyze.len().div_ceil(self.jobs.max(1)).max(1))
                .map(|part| {
                    let part = part.to_vec();
                    let target = self.target.clone();
                    async move {
                        let c = target.connect().await?;
                        for s in part {
                            c.batch_execute(&s)
                                .await
                                .map_err(|e| anyhow!("{s}: {}", target::pg_error(&e)))?;
                        }
                        Ok::<_, anyhow::Error>(())
                    }
                }),
        )
        .await?;
        let rejects_file = self.merge_rejects()?;
        let mut report = LoadReport {
            not_valid: shared
                .not_valid
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            rejects_file,
            seconds: started.elapsed().as_secs_f64(),
            checks: std::mem::take(&mut *shared.checks.lock().unwrap_or_else(|e| e.into_inner())),
            ..Default::default()
        };
        let pos = |name: &str| plan.tables.iter().position(|t| t.source == name);
        report.checks.sort_by_key(|c| pos(&c.table));
        for t in &plan.tables {
            let d = self
                .journal
                .step(&load_step(&t.target))
                .map(|s| s.detail)
                .unwrap_or_default();
            report.tables.push((
                t.target.clone(),
                d["rows"].as_u64().unwrap_or(0),
                d["rejected"].as_u64().unwrap_or(0),
            ));
        }
        Ok(report)
    }

    async fn worker(&self, shared: &Shared) -> Result<()> {
        let client = self.target.connect().await?;
        target::tune_session(&client, &self.maintenance_work_mem).await?;
        while let Some(w) = shared.queue.next().await {
            let res = match w {
                Work::Chunk {
                    table,
                    index,
                    range,
                } => self.chunk(&client, shared, table, index, range).await,
                Work::Build(table, o) => self
                    .build(&client, &o)
                    .await
                    .map(|()| self.stage_done(shared, table)),
                Work::Object(table, o) => self.object(&client, &o, shared).await.map(|()| {
                    if let Some(ti) = table {
                        self.stage_done(shared, ti);
                    }
                }),
                Work::Verify(table) => self
                    .verify_table(shared, table)
                    .await
                    .map(|()| self.stage_done(shared, table)),
            };
            if let Err(e) = res {
                shared.queue.fail(e);
                shared.queue.finished_one();
                return Ok(());
            }
            shared.queue.finished_one();
        }
        Ok(())
    }

    /// A table's data is in: queue stage 1 (index builds, verification).
    fn table_loaded(&self, shared: &Shared, ti: usize) {
        let t = &self.plan.tables[ti];
        let mut work: Vec<Work> = t
            .objects
            .iter()
            .filter(|o| !self.journal.is_done(&o.step()))
            .filter(|o| o.staged.is_some() || o.kind == ObjKind::Index)
            .map(|o| Work::Build(ti, o.clone()))
            .collect();
        if self.verify != VerifyMode::None {
            work.push(Work::Verify(ti));
        }
        self.start_stage(shared, ti, 1, work);
    }

    /// Queue a stage's work (or go on to the next stage when it has none).
    fn start_stage(&self, shared: &Shared, ti: usize, stage: usize, work: Vec<Work>) {
        let st = &shared.states[ti];
        st.stage.store(stage, Ordering::Release);
        if work.is_empty() {
            return self.next_stage(shared, ti, stage);
        }
        st.stage_left.store(work.len(), Ordering::Release);
        for w in work.into_iter().rev() {
            shared.queue.push_front(w);
        }
    }

    fn stage_done(&self, shared: &Shared, ti: usize) {
        let st = &shared.states[ti];
        if st.stage_left.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.next_stage(shared, ti, st.stage.load(Ordering::Acquire));
        }
    }

    fn next_stage(&self, shared: &Shared, ti: usize, finished: usize) {
        let t = &self.plan.tables[ti];
        if finished == 1 {
            // stage 2: the brief statements that need the table to themselves
            let work: Vec<Work> = t
                .objects
                .iter()
                .filter(|o| !self.journal.is_done(&o.step()))
                .filter(|o| o.kind != ObjKind::Index)
                .map(|o| Work::Object(Some(ti), o.clone()))
                .collect();
            self.start_stage(shared, ti, 2, work);
        } else {
            shared.states[ti].ready.store(true, Ordering::Release);
            self.release_fks(shared);
        }
    }

    fn release_fks(&self, shared: &Shared) {
        for fk in &shared.fks {
            let ready = fk
                .tables
                .iter()
                .all(|&t| shared.states[t].ready.load(Ordering::Acquire));
            if ready && !fk.queued.swap(true, Ordering::AcqRel) {
                shared.queue.push_front(Work::Object(None, fk.obj.clone()));
            }
        }
    }

    /// Stage 1 of an object: a whole index, or the index under a constraint.
    async fn build(&self, client: &tokio_postgres::Client, o: &Obj) -> Result<()> {
        match &o.staged {
            Some((index, _)) => {
                if self.journal.is_done(&o.step())
                    || target::object_exists(client, &self.plan.schema, o).await?
                {
                    return Ok(());
                }
                let t0 = Instant::now();
                client.batch_execute(index).await.map_err(|e| {
                    anyhow!(
                        "{} {} on {}: {}\n  statement: {index}",
                        o.kind.label(),
                        o.name,
                        o.table,
                        target::pg_error(&e)
                    )
                })?;
                tracing::debug!(
                    "index of {} {} built in {:.2}s",
                    o.kind.label(),
                    o.name,
                    t0.elapsed().as_secs_f64()
                );
                Ok(())
            }
            None => self.object_done_or_do(client, o).await,
        }
    }

    async fn object_done_or_do(&self, client: &tokio_postgres::Client, o: &Obj) -> Result<()> {
        if self.journal.is_done(&o.step()) {
            return Ok(());
        }
        let t0 = Instant::now();
        target::apply_object(client, &self.plan.schema, o).await?;
        tracing::debug!(
            "{} {} ready in {:.2}s",
            o.kind.label(),
            o.name,
            t0.elapsed().as_secs_f64()
        );
        self.journal
            .done(&o.step(), t0.elapsed(), serde_json::Value::Null)
    }

    async fn verify_table(&self, shared: &Shared, ti: usize) -> Result<()> {
        let t = &self.plan.tables[ti];
        let st = &shared.states[ti];
        let rejected = st.rejected.load(Ordering::Relaxed);
        let expected = match self.verify {
            VerifyMode::Full => Expected::Reread {
                source: self.source.clone(),
                rejected: Some(self.chunk_rejects(&t.source)?),
            },
            _ => Expected::Loaded {
                sums: st.sums.lock().unwrap_or_else(|e| e.into_inner()).clone(),
                source_rows: t.rows,
                rejected,
            },
        };
        let check =
            verify::check_table(&self.target, t, shared.types.get(&t.target), expected).await?;
        shared
            .checks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(check);
        Ok(())
    }

    /// Rejected rows of a table from its per-chunk files (before they are merged).
    fn chunk_rejects(&self, table: &str) -> Result<std::collections::HashSet<String>> {
        let mut all = std::collections::HashSet::new();
        let prefix = format!("{}.", file_safe(table));
        if let Ok(rd) = std::fs::read_dir(self.rejects_dir()) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    if let Some(set) = super::verify::read_rejects(&e.path())?.remove(table) {
                        all.extend(set);
                    }
                }
            }
        }
        Ok(all)
    }

    async fn object(
        &self,
        client: &tokio_postgres::Client,
        o: &Obj,
        shared: &Shared,
    ) -> Result<()> {
        if self.journal.is_done(&o.step()) {
            return Ok(());
        }
        let t0 = Instant::now();
        let outcome = target::apply_object(client, &self.plan.schema, o).await?;
        let detail = match &outcome {
            Outcome::NotValid(why) => {
                let who = if o.table.is_empty() {
                    o.name.clone()
                } else {
                    format!("{}.{}", o.table, o.name)
                };
                tracing::warn!(
                    "{} {who} added NOT VALID: existing rows violate it: {why}",
                    o.kind.label()
                );
                shared
                    .not_valid
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((who, why.clone()));
                serde_json::json!({"not_valid": why})
            }
            Outcome::Existed => serde_json::json!({"existed": true}),
            Outcome::Created => serde_json::Value::Null,
        };
        tracing::debug!(
            "{} {} ready in {:.2}s",
            o.kind.label(),
            o.name,
            t0.elapsed().as_secs_f64()
        );
        self.journal.done(&o.step(), t0.elapsed(), detail)
    }

    async fn chunk(
        &self,
        client: &tokio_postgres::Client,
        shared: &Shared,
        ti: usize,
        index: usize,
        range: Option<(i64, i64)>,
    ) -> Result<()> {
        let queue = &shared.queue;
        let t = &self.plan.tables[ti];
        let st = &shared.states[ti];
        st.started
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_with(Instant::now);
        let cols: Vec<String> = t.columns.iter().map(|c| quote_ident(&c.target)).collect();
        let copy_sql = format!(
            "COPY {} ({}) FROM STDIN (FORMAT binary)",
            self.target.q(&t.target),
            cols.join(", ")
        );
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(DEPTH);
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let source = self.source.clone();
            let plan = self.plan.clone();
            let task = st.task.clone();
            let on_error = self.on_error;
            let rejects = self
                .rejects_dir()
                .join(format!("{}.{index}.jsonl", file_safe(&t.source)));
            let stop = stop.clone();
            tokio::task::spawn_blocking(move || {
                read_chunk(
                    &source,
                    &plan.tables[ti],
                    range,
                    tx,
                    on_error,
                    &rejects,
                    &task,
                    &stop,
                )
            })
        };
        let sink = client
            .copy_in::<_, Bytes>(copy_sql.as_str())
            .await
            .map_err(|e| anyhow!("COPY into {}: {}", t.target, target::pg_error(&e)))?;
        futures::pin_mut!(sink);
        let mut send_err = None;
        while let Some(b) = rx.recv().await {
            if queue.failed.load(Ordering::Relaxed) {
                stop.store(true, Ordering::Relaxed);
                break;
            }
            if let Err(e) = sink.send(b).await {
                send_err = Some(e);
                break;
            }
        }
        drop(rx);
        let read = handle
            .await
            .map_err(|e| anyhow!("reader of {} panicked: {e}", t.source))?;
        if let Some(e) = send_err {
            bail!("COPY into {} failed: {}", t.target, target::pg_error(&e));
        }
        let res = read?; // a reader error drops the sink: the COPY is aborted
        if queue.failed.load(Ordering::Relaxed) {
            bail!("stopped");
        }
        sink.as_mut()
            .finish()
            .await
            .map_err(|e| anyhow!("COPY into {} failed: {}", t.target, target::pg_error(&e)))?;
        st.rejected.fetch_add(res.rejected, Ordering::Relaxed);
        st.sums
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .merge(&res.sums);
        if st.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            let sums = st.sums.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let rows = sums.rows;
            let rejected = st.rejected.load(Ordering::Relaxed);
            let elapsed = st
                .started
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .map(|s| s.elapsed())
                .unwrap_or_default();
            self.journal.done(
                &load_step(&t.target),
                elapsed,
                serde_json::json!({"rows": rows, "rejected": rejected, "sums": sums.to_json()}),
            )?;
            let secs = elapsed.as_secs_f64().max(1e-3);
            st.task.finish(&format!(
                "{} rows in {secs:.1}s ({}/s){}",
                crate::migrate::thousands(rows),
                crate::migrate::thousands((rows as f64 / secs) as u64),
                if rejected > 0 {
                    format!(", {} rejected", crate::migrate::thousands(rejected))
                } else {
                    String::new()
                }
            ));
            self.table_loaded(shared, ti);
        }
        Ok(())
    }

    fn clear_rejects(&self, table: &str) -> Result<()> {
        let prefix = format!("{}.", file_safe(table));
        if let Ok(rd) = std::fs::read_dir(self.rejects_dir()) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.starts_with(&prefix) && n.ends_with(".jsonl") {
                    std::fs::remove_file(e.path())?;
                }
            }
        }
        Ok(())
    }

    /// Concatenate the per-chunk reject files, in table and chunk order,
    /// into the rejects file; `None` (and no file) when nothing was rejected.
    fn merge_rejects(&self) -> Result<Option<PathBuf>> {
        let mut parts: Vec<(usize, usize, PathBuf)> = Vec::new();
        if let Ok(rd) = std::fs::read_dir(self.rejects_dir()) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                let Some(stem) = n.strip_suffix(".jsonl") else {
                    continue;
                };
                let Some((table, idx)) = stem.rsplit_once('.') else {
                    continue;
                };
                let ti = self
                    .plan
                    .tables
                    .iter()
                    .position(|t| file_safe(&t.source) == table)
                    .unwrap_or(usize::MAX);
                parts.push((ti, idx.parse().unwrap_or(0), e.path()));
            }
        }
        parts.sort();
        let mut out = Vec::new();
        for (_, _, p) in &parts {
            out.extend(std::fs::read(p)?);
        }
        if out.is_empty() {
            let _ = std::fs::remove_file(&self.rejects);
            return Ok(None);
        }
        if let Some(d) = self.rejects.parent() {
            std::fs::create_dir_all(d)?;
        }
        let tmp = self.rejects.with_extension("jsonl.tmp");
        std::fs::write(&tmp, &out).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.rejects)?;
        Ok(Some(self.rejects.clone()))
    }
}

/// A table name as a file name part.
pub fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect::<String>()
        + &format!("-{:08x}", crc(name))
}

fn crc(s: &str) -> u32 {
    // FNV-1a: distinct files for names that differ only in odd characters
    s.bytes().fold(0x811c9dc5u32, |h, b| {
        (h ^ b as u32).wrapping_mul(0x01000193)
    })
}

/// Read one chunk, convert and encode its rows, and send the batches.
#[allow(clippy::too_many_arguments)]
fn read_chunk(
    source: &Path,
    t: &TablePlan,
    range: Option<(i64, i64)>,
    tx: tokio::sync::mpsc::Sender<Bytes>,
    on_error: OnError,
    rejects_path: &Path,
    task: &Task,
    stop: &AtomicBool,
) -> Result<ChunkResult> {
    let conn = super::source::open(source)?;
    let cols: Vec<String> = t.columns.iter().map(|c| quote_ident(&c.source)).collect();
    let mut q = format!(
        "SELECT {}, {} FROM main.{}",
        key_select(&t.key),
        cols.join(", "),
        quote_ident(&t.source)
    );
    if range.is_some() {
        q.push_str(" WHERE _rowid_ BETWEEN ?1 AND ?2");
    }
    let mut st = conn.prepare(&q)?;
    let mut rows = match range {
        Some((a, b)) => st.query([a, b])?,
        None => st.query([])?,
    };
    let nk = t.key.len().max(1);
    let ncols = t.columns.len();
    let mut buf = BytesMut::with_capacity(BATCH + BATCH / 4);
    copy::header(&mut buf);
    let mut res = ChunkResult {
        sums: Sums::new(ncols),
        ..Default::default()
    };
    let mut hash = RowHasher::new(ncols);
    let mut counted = 0u64;
    let mut rejects: Option<std::io::BufWriter<std::fs::File>> = None;
    let send = |buf: &mut BytesMut| -> Result<()> {
        tx.blocking_send(buf.split().freeze())
            .map_err(|_| anyhow!("the COPY of {} stopped", t.target))
    };
    while let Some(row) = rows.next()? {
        let mark = buf.len();
        copy::row_start(&mut buf, ncols);
        let mut bad = None;
        for (i, c) in t.columns.iter().enumerate() {
            let v = row.get_ref(nk + i)?;
            match convert(v, &c.ty, c.lenient) {
                Ok(val) => {
                    copy::field(&mut buf, &val, &c.ty);
                    hash.value(&val);
                }
                Err(problem) => {
                    bad = Some((i, problem));
                    break;
                }
            }
        }
        if let Some((i, problem)) = bad {
            buf.truncate(mark);
            hash.reset();
            let key = RowKey::read(row, &t.key)?;
            let column = &t.columns[i].source;
            match on_error {
                OnError::Abort => {
                    return Err(MisfitAbort {
                        table: t.source.clone(),
                        column: column.clone(),
                        row: key.to_string(),
                        problem,
                    }
                    .into())
                }
                OnError::Skip => {
                    let w = match &mut rejects {
                        Some(w) => w,
                        None => {
                            let f = std::fs::File::create(rejects_path).with_context(|| {
                                format!("cannot write {}", rejects_path.display())
                            })?;
                            rejects.insert(std::io::BufWriter::new(f))
                        }
                    };
                    let (k, v) = key.json();
                    let mut line = serde_json::Map::new();
                    line.insert("table".into(), t.source.clone().into());
                    line.insert(k.into(), v);
                    line.insert("column".into(), column.clone().into());
                    line.insert("reason".into(), problem.into());
                    serde_json::to_writer(&mut *w, &line)?;
                    w.write_all(b"\n")?;
                    res.rejected += 1;
                    continue;
                }
            }
        }
        hash.add_to(&mut res.sums);
        if buf.len() >= BATCH {
            task.inc(res.sums.rows - counted);
            counted = res.sums.rows;
            if stop.load(Ordering::Relaxed) {
                bail!("stopped");
            }
            send(&mut buf)?;
        }
    }
    copy::trailer(&mut buf);
    task.inc(res.sums.rows - counted);
    send(&mut buf)?;
    if let Some(mut w) = rejects {
        w.flush()?;
        w.into_inner()
            .map_err(|e| anyhow!("cannot write {}: {e}", rejects_path.display()))?
            .sync_all()?;
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(rows: u64, range: Option<(i64, i64)>, key: Vec<String>) -> TablePlan {
        TablePlan {
            source: "t".into(),
            target: "t".into(),
            rows,
            rowid_range: range,
            key,
            columns: Vec::new(),
            identity: None,
            objects: Vec::new(),
            reuse: false,
        }
    }

    #[test]
    fn big_tables_split_into_covering_rowid_ranges() {
        assert_eq!(chunks(&table(10, Some((1, 10)), vec![]), 2), vec![None]);
        let c = chunks(&table(1_000_000, Some((1, 1_000_000)), vec![]), 2);
        assert_eq!(c.len(), 5);
        assert_eq!(c[0], Some((1, 200_000)));
        assert_eq!(c[4], Some((800_001, 1_000_000)));
        // ranges are contiguous and cover [lo, hi] exactly once
        let c = chunks(&table(2_000_000, Some((-5, 7_777_777)), vec![]), 3);
        let mut next = -5;
        for r in &c {
            let (a, b) = r.unwrap();
            assert_eq!(a, next);
            next = b + 1;
        }
        assert_eq!(next, 7_777_778);
        // WITHOUT ROWID tables are read whole
        assert_eq!(
            chunks(&table(1_000_000, None, vec!["k".into()]), 2),
            vec![None]
        );
        // extreme rowids do not overflow
        let c = chunks(&table(500_000, Some((i64::MIN, i64::MAX)), vec![]), 1);
        assert_eq!(c.first().unwrap().unwrap().0, i64::MIN);
        assert_eq!(c.last().unwrap().unwrap().1, i64::MAX);
    }
}
