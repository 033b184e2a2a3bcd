//! `datatier migrate sqlite-to-postgres`: a guided, verified, resumable
//! migration at binary-COPY speed.
//!
//! ```text
//! preflight (read only)
//!   source: opened read-only, schema read (source), PRAGMA quick_check
//!   types: declared types and --casts (plan::decide_types), values scanned
//!          where the type needs it (scan)
//!   target: reachable, UTF8, Postgres >= 13, schema empty (or --if-exists)
//!   plan: built (plan::build) and rehearsed on the target in a rolled-back
//!         transaction (target::rehearse): it lists exactly what Postgres takes
//! print the plan; stop on misfits unless --on-error skip; --dry-run stops here
//! confirm (unless --yes)
//! journal.json created                                   (migrate::journal)
//! schema: CREATE TABLEs in one transaction               -> "schema"
//! load: chunks in parallel, keys/indexes per table       -> "load:<t>", "<kind>:<t>:<name>"
//!       as soon as it is loaded, then foreign keys, views, ANALYZE (load)
//! verify: counts, checksums, objects, identities          (verify)
//! ```
//!
//! `--resume` reopens the journal, checks that source and target are the
//! ones it recorded, and does what is not journaled: tables not marked
//! loaded are emptied and loaded again, objects are created if missing.

pub mod copy;
pub mod load;
pub mod plan;
pub mod scan;
pub mod source;
pub mod sql;
pub mod target;
pub mod types;
pub mod verify;

use crate::migrate::{confirm, redact_url, run_dir, Journal, Progress, RunStatus};
use anyhow::{anyhow, bail, Context, Result};
use load::{load_step, Loader, OnError, VerifyMode};
use plan::{Cast, MisfitGroup, Plan, PlanOptions, TableFacts};
use scan::ScanKind;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;
use target::{IfExists, Target};
use types::{PgType, TimestampType};
use verify::TargetTypes;

/// The journal's `kind`.
pub const KIND: &str = "sqlite-to-postgres";

/// `--scan auto` checks every value of tables with at most this many.
pub const SCAN_ALL_VALUES: u64 = 2_000_000;

/// How much of the data to scan before writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum ScanMode {
    /// Every value of tables up to 2 million values; in bigger tables the
    /// columns without a usable declared type (their type depends on the
    /// values) and those given a --cast. The rest of a big table is checked
    /// as it is loaded.
    #[default]
    Auto,
    /// Every value of every column.
    Full,
    /// Typeless columns, --casts and types that constrain values (boolean,
    /// dates, numeric(p,s), varchar(n), json), whatever the table size.
    Constrained,
}

/// Which SQLite consistency check preflight runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Integrity {
    /// PRAGMA quick_check: every page and record (not index contents).
    #[default]
    Quick,
    /// PRAGMA integrity_check: also that indexes match their tables (slower).
    Full,
    /// No check.
    Off,
}

/// Output format of plans and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Output {
    #[default]
    Table,
    Json,
}

/// Where to connect and how to name things: shared by `sqlite-to-postgres`
/// and `verify`.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub from: PathBuf,
    /// The connection string as given (may hold a password; never printed).
    pub to: String,
    pub password_file: Option<PathBuf>,
    pub schema: String,
    pub keep_case: bool,
    pub state_dir: PathBuf,
    pub jobs: usize,
    pub output: Output,
    pub quiet: bool,
}

/// Options of `migrate sqlite-to-postgres`.
#[derive(Debug, Clone)]
pub struct Options {
    pub ends: Endpoints,
    pub yes: bool,
    pub dry_run: bool,
    pub resume: bool,
    pub if_exists: IfExists,
    pub casts: Vec<Cast>,
    pub on_error: OnError,
    pub rejects: Option<PathBuf>,
    pub timestamp_type: TimestampType,
    pub scan: ScanMode,
    pub integrity: Integrity,
    pub verify: VerifyMode,
    pub maintenance_work_mem: String,
}

impl Endpoints {
    fn target(&self) -> Result<Target> {
        let password = match &self.password_file {
            Some(p) => {
                let src = crate::secret::SecretSource {
                    password_env: None,
                    password_file: Some(p.clone()),
                };
                src.resolve(Path::new("."))?
            }
            None => None,
        };
        Target::new(&self.to, password, &self.schema)
    }

    fn source(&self) -> Result<PathBuf> {
        std::fs::canonicalize(&self.from)
            .with_context(|| format!("source {} does not exist", self.from.display()))
    }

    fn run_dir(&self, source: &Path, target: &Target) -> PathBuf {
        let label = source
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let root = std::path::absolute(&self.state_dir).unwrap_or_else(|_| self.state_dir.clone());
        run_dir(
            &root,
            KIND,
            &label,
            &[&source.to_string_lossy(), &target.display, &self.schema],
        )
    }
}

/// What identifies the source data: a resumed run must see the same.
fn fingerprint(
    source: &Path,
    conn: &rusqlite::Connection,
    target: &Target,
) -> Result<serde_json::Value> {
    use sha2::{Digest, Sha256};
    let md = std::fs::metadata(source)?;
    let mtime = md
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut h = Sha256::new();
    let mut st = conn.prepare("SELECT coalesce(sql, '') FROM sqlite_master ORDER BY rowid")?;
    for s in st.query_map([], |r| r.get::<_, String>(0))? {
        h.update(s?.as_bytes());
    }
    let data_version: i64 = conn.query_row("PRAGMA schema_version", [], |r| r.get(0))?;
    Ok(serde_json::json!({
        "source": source.to_string_lossy(),
        "size": md.len(),
        "mtime_ns": mtime,
        "schema_sha256": hex::encode(h.finalize()),
        "schema_version": data_version,
        "target": target.display,
        "schema": target.schema,
    }))
}

/// What shapes the plan besides the endpoints.
struct PlanInputs<'a> {
    casts: &'a [Cast],
    ts: TimestampType,
    scan_mode: ScanMode,
    /// Verification of an existing target: its column types are the truth
    /// and nothing is scanned.
    target_types: Option<&'a TargetTypes>,
}

/// Read the source, decide types (scanning where needed), build the plan.
async fn read_and_plan(
    source: &Path,
    ends: &Endpoints,
    target: &Target,
    inputs: PlanInputs<'_>,
    progress: &Progress,
) -> Result<(Plan, Vec<MisfitGroup>, serde_json::Value)> {
    let PlanInputs {
        casts,
        ts,
        scan_mode,
        target_types,
    } = inputs;
    let conn = source::open(source)?;
    let schema = source::read_schema(&conn)?;
    if schema.tables.is_empty() {
        bail!("{} has no tables to migrate", source.display());
    }
    let fp = fingerprint(source, &conn, target)?;
    let decisions = plan::decide_types(&schema, casts, ts)?;
    let mut facts = BTreeMap::new();
    for t in &schema.tables {
        let s = source::table_stats(&conn, t)?;
        facts.insert(
            t.name.clone(),
            TableFacts {
                rows: s.rows,
                rowid_range: s.rowid_range,
            },
        );
    }
    drop(conn);
    // What to scan, per table.
    let mut jobs: Vec<(String, Vec<(usize, ScanKind)>)> = Vec::new();
    for t in &schema.tables {
        let ds = &decisions[&t.name];
        let mut cols = Vec::new();
        for (i, d) in ds.iter().enumerate() {
            // verification of an existing target: its types are the truth
            if target_types.is_some() {
                continue;
            }
            match &d.ty {
                None => cols.push((i, ScanKind::Infer)),
                Some(ty) => {
                    let constrained = matches!(
                        ty,
                        PgType::Boolean
                            | PgType::Date
                            | PgType::Time
                            | PgType::Timestamp
                            | PgType::Timestamptz
                            | PgType::Varchar(_)
                            | PgType::Json
                            | PgType::SmallInt
                            | PgType::Integer
                            | PgType::Numeric {
                                precision: Some(_),
                                ..
                            }
                    ) || d.lenient;
                    let small = facts[&t.name].rows * t.columns.len() as u64 <= SCAN_ALL_VALUES;
                    let wanted = match scan_mode {
                        ScanMode::Full => true,
                        ScanMode::Auto => small || d.lenient,
                        ScanMode::Constrained => constrained,
                    };
                    if wanted {
                        cols.push((i, ScanKind::Check(ty.clone(), d.lenient)));
                    }
                }
            }
        }
        if !cols.is_empty() && facts[&t.name].rows > 0 {
            jobs.push((t.name.clone(), cols));
        }
    }
    let t0 = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(ends.jobs.max(1)));
    let schema_arc = Arc::new(schema.clone());
    let results = futures::future::join_all(jobs.iter().map(|(tname, cols)| {
        let sem = sem.clone();
        let schema = schema_arc.clone();
        let (tname, cols, source) = (tname.clone(), cols.clone(), source.to_path_buf());
        async move {
            let _p = sem.acquire().await;
            tokio::task::spawn_blocking(move || {
                let t = schema.table(&tname).expect("table from the schema");
                scan::scan_table(&source, t, &cols).map(|r| (tname, cols, r))
            })
            .await
            .map_err(|e| anyhow!("scan panicked: {e}"))?
        }
    }))
    .await;
    if !jobs.is_empty() {
        progress.println(&format!(
            "scanned {} column(s) of {} table(s) in {:.1}s",
            jobs.iter().map(|(_, c)| c.len()).sum::<usize>(),
            jobs.len(),
            t0.elapsed().as_secs_f64()
        ));
    }
    let mut types: BTreeMap<String, Vec<(PgType, bool, String)>> = BTreeMap::new();
    for t in &schema.tables {
        let ds = &decisions[&t.name];
        let have = target_types.and_then(|tt| tt.get(&fold(&t.name, ends.keep_case)));
        types.insert(
            t.name.clone(),
            t.columns
                .iter()
                .zip(ds)
                .map(|(c, d)| {
                    let from_target = have.and_then(|cols| {
                        cols.iter()
                            .find(|(n, _)| *n == fold(&c.name, ends.keep_case))
                            .and_then(|(_, ty)| ty.clone())
                    });
                    match (from_target, &d.ty) {
                        (Some(ty), _) => (ty, true, String::new()),
                        (None, Some(ty)) => (ty.clone(), d.lenient, d.why.clone()),
                        (None, None) => (PgType::Text, false, d.why.clone()),
                    }
                })
                .collect(),
        );
    }
    let mut misfits = Vec::new();
    for r in results {
        let (tname, cols, scans) = r?;
        let t = schema.table(&tname).expect("table from the schema");
        for ((i, kind), cs) in cols.iter().zip(scans) {
            let col = &t.columns[*i];
            let (ty, count, examples) = match kind {
                ScanKind::Infer => {
                    let (ty, why, n, ex) = scan::infer(&cs, &col.declared);
                    types.get_mut(&tname).expect("table")[*i] = (ty.clone(), false, why);
                    (ty, n, ex)
                }
                ScanKind::Check(ty, _) => (ty.clone(), cs.misfits, cs.misfit_samples),
            };
            if count > 0 {
                misfits.push(MisfitGroup {
                    table: t.name.clone(),
                    column: col.name.clone(),
                    count,
                    ty,
                    examples: examples
                        .into_iter()
                        .map(|(row, problem)| plan::Misfit {
                            table: t.name.clone(),
                            column: col.name.clone(),
                            row,
                            problem,
                        })
                        .collect(),
                });
            }
        }
    }
    let plan = plan::build(
        &schema,
        &types,
        &facts,
        &PlanOptions {
            source: source.to_string_lossy().into_owned(),
            target: target.display.clone(),
            schema: ends.schema.clone(),
            keep_case: ends.keep_case,
            timestamp_type: ts,
        },
    )?;
    Ok((plan, misfits, fp))
}

/// The run's short id: the hash at the end of its directory name.
fn run_id(dir: &Path) -> String {
    dir.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.rsplit('-').next())
        .unwrap_or("run")
        .to_string()
}

fn fold(name: &str, keep_case: bool) -> String {
    if keep_case {
        name.to_string()
    } else {
        name.to_ascii_lowercase()
    }
}

/// The final JSON document of a run.
#[derive(Serialize)]
struct RunJson<'a> {
    plan: &'a Plan,
    misfits: &'a [MisfitGroup],
    #[serde(skip_serializing_if = "Option::is_none")]
    load: Option<&'a load::LoadReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    verify: Option<&'a verify::VerifyReport>,
    journal: String,
}

fn print_out(s: &str) {
    crate::cli::print_out(s);
}

/// `datatier migrate sqlite-to-postgres`.
pub async fn migrate(o: Options) -> Result<ExitCode> {
    let started = Instant::now();
    let progress = Progress::new(o.ends.quiet);
    let target = o.ends.target()?;
    let source = o.ends.source()?;
    let dir = o.ends.run_dir(&source, &target);
    let target = target.for_run(&run_id(&dir));
    // One run of a migration at a time: the lock also makes any session
    // with this run's name a leftover of a killed run.
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let _lock = crate::provider::local::StateDir { dir: dir.clone() }.lock()?;
    let journal_path = dir.join("journal.json");
    let rejects_path = o
        .rejects
        .clone()
        .unwrap_or_else(|| dir.join("rejects.jsonl"));
    let previous = Journal::open(&journal_path, KIND)?;
    match (&previous, o.resume) {
        (None, true) => bail!(
            "--resume: no run of this migration is recorded (looked for {}); start it without --resume",
            journal_path.display()
        ),
        (Some(j), false) if j.status() != RunStatus::Done && o.if_exists != IfExists::Drop && !o.dry_run => bail!(
            "an interrupted run of this migration is recorded in {}: continue it with --resume, or start over with --if-exists drop (drops the tables it created)",
            journal_path.display()
        ),
        _ => {}
    }
    let resuming = o.resume.then_some(()).and(previous.as_ref());
    if let Some(j) = resuming {
        if j.status() == RunStatus::Done {
            progress.println("this migration already finished; verifying it again");
        }
    }

    // ---- preflight (nothing is written) ----
    progress.println(&format!(
        "preflight: {} -> {}",
        source.display(),
        target.display
    ));
    let integrity = match o.integrity {
        Integrity::Off => None,
        level => {
            let src = source.clone();
            Some(tokio::task::spawn_blocking(move || {
                source::open(&src).map(|c| source::check_integrity(&c, level == Integrity::Full))
            }))
        }
    };
    let mut client = target.connect().await?;
    let ended = target.end_leftover_sessions(&client).await?;
    if ended > 0 {
        progress.println(&format!(
            "ended {ended} session(s) left behind by the interrupted run"
        ));
    }
    let info = target::inspect(&client, &o.ends.schema).await?;
    if info.version_num < 130_000 {
        bail!(
            "{} runs Postgres {}; datatier needs 13 or newer",
            target.display,
            info.version
        );
    }
    if info.encoding != "UTF8" {
        bail!(
            "{} stores text as {}; SQLite text is UTF-8, so the target database must be UTF8 (createdb -E UTF8)",
            target.display,
            info.encoding
        );
    }
    let (mut plan, misfits, fp) = read_and_plan(
        &source,
        &o.ends,
        &target,
        PlanInputs {
            casts: &o.casts,
            ts: o.timestamp_type,
            scan_mode: o.scan,
            target_types: None,
        },
        &progress,
    )
    .await?;
    let mut recreate: Vec<String> = Vec::new();
    if let Some(j) = resuming {
        let before: Plan = j.plan()?;
        let old_fp = j.fingerprint();
        for k in ["size", "mtime_ns", "schema_sha256"] {
            if old_fp[k] != fp[k] {
                bail!(
                    "the source changed since the interrupted run ({k} differs); a resumed run would mix old and new data: start over with --if-exists drop"
                );
            }
        }
        // Objects Postgres rejected in the first rehearsal stay out.
        let known: BTreeSet<String> = before.objects().map(|o| o.step()).collect();
        let before_tables: BTreeMap<&str, &plan::TablePlan> = before
            .tables
            .iter()
            .map(|t| (t.target.as_str(), t))
            .collect();
        for t in &mut plan.tables {
            let old = before_tables.get(t.target.as_str());
            t.reuse = old.is_some_and(|o| o.reuse);
            if old.is_some_and(|o| o.columns == t.columns) {
                t.objects.retain(|o| known.contains(&o.step()));
            } else if j.is_done(&load_step(&t.target)) {
                bail!(
                    "table {} was already loaded with different column types; start over with --if-exists drop",
                    t.target
                );
            } else {
                recreate.push(t.target.clone());
            }
        }
        plan.foreign_keys.retain(|o| known.contains(&o.step()));
        plan.views.retain(|o| known.contains(&o.step()));
        plan.not_migrated = before.not_migrated.clone();
    } else {
        let ours: BTreeSet<String> = plan
            .tables
            .iter()
            .map(|t| t.target.clone())
            .chain(plan.views.iter().map(|v| v.name.clone()))
            .collect();
        match o.if_exists {
            IfExists::Fail if !info.relations.is_empty() => {
                let list: Vec<String> = info
                    .relations
                    .iter()
                    .take(10)
                    .map(|(n, k)| format!("{k} {n}"))
                    .collect();
                bail!(
                    "the target schema {} is not empty ({}{}); nothing was changed. Use an empty schema (--schema), or --if-exists drop|truncate",
                    o.ends.schema,
                    list.join(", "),
                    if info.relations.len() > 10 { ", ..." } else { "" }
                );
            }
            IfExists::Truncate => {
                let existing = target::table_columns(&client, &o.ends.schema).await?;
                target::check_reuse(&mut plan, &existing)?;
                let clash: Vec<String> = info
                    .relations
                    .iter()
                    .filter(|(n, k)| ours.contains(n) && k != "table")
                    .map(|(n, k)| format!("{k} {n}"))
                    .collect();
                if !clash.is_empty() {
                    bail!(
                        "these exist but are not tables: {}; use --if-exists drop",
                        clash.join(", ")
                    );
                }
            }
            _ => {}
        }
        let failed = target::rehearse(&mut client, &plan, o.if_exists).await?;
        plan.drop_failed(&failed);
    }
    if let Some(h) = integrity {
        let t0 = Instant::now();
        match h
            .await
            .map_err(|e| anyhow!("integrity check panicked: {e}"))??
        {
            Ok(()) => progress.println(&format!(
                "source integrity: ok ({:.1}s)",
                t0.elapsed().as_secs_f64()
            )),
            Err(lines) => bail!(
                "{} is damaged (PRAGMA {}): {}; repair it first (sqlite3 {} '.recover')",
                source.display(),
                if o.integrity == Integrity::Full {
                    "integrity_check"
                } else {
                    "quick_check"
                },
                lines.join("; "),
                source.display()
            ),
        }
    }

    // ---- the plan ----
    let skip = o.on_error == OnError::Skip;
    match o.ends.output {
        Output::Table => print_out(&plan::render(&plan, &misfits, skip)),
        Output::Json => {
            if o.dry_run || !o.ends.quiet {
                eprint!("{}", plan::render(&plan, &misfits, skip));
            }
        }
    }
    if o.dry_run {
        if o.ends.output == Output::Json {
            print_out(&format!(
                "{}\n",
                serde_json::to_string_pretty(&RunJson {
                    plan: &plan,
                    misfits: &misfits,
                    load: None,
                    verify: None,
                    journal: journal_path.display().to_string(),
                })?
            ));
        }
        return Ok(if misfits.is_empty() || skip {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    if !misfits.is_empty() && !skip {
        let first = &misfits[0];
        bail!(
            "{} column(s) hold values that do not fit their Postgres type (listed above; e.g. {}.{} {}: {}); nothing was changed. Choose a type with --cast TABLE.COLUMN=TYPE, or leave those rows out with --on-error skip",
            misfits.len(),
            first.table,
            first.column,
            first.examples.first().map(|m| m.row.as_str()).unwrap_or(""),
            first.examples.first().map(|m| m.problem.as_str()).unwrap_or("")
        );
    }
    if resuming.is_none() {
        confirm(
            &format!(
                "Create {} table(s) in {} schema {} and copy {} rows?",
                plan.tables.len(),
                target.display,
                plan.schema,
                crate::migrate::thousands(plan.rows())
            ),
            o.yes,
        )?;
    } else {
        confirm(
            &format!("Resume the migration into {}?", target.display),
            o.yes,
        )?;
    }

    // ---- execute ----
    let journal = Arc::new(match resuming {
        Some(_) => {
            let j = Journal::open(&journal_path, KIND)?.expect("opened above");
            j.set_plan(&plan)?;
            j.set_status(RunStatus::Running)?;
            j
        }
        None => Journal::create(&journal_path, KIND, fp, &plan)?,
    });
    tracing::debug!("journal: {}", journal.path().display());
    let result = execute(
        &o,
        &plan,
        &target,
        &mut client,
        &journal,
        &recreate,
        &progress,
        &dir,
        &rejects_path,
        resuming.is_some(),
    )
    .await;
    let (load, report) = match result {
        Ok(r) => r,
        Err(e) => {
            let msg = format!("{e:#}");
            let _ = journal.set_status(RunStatus::Failed(redact_url(&msg)));
            return Err(e.context(format!(
                "the run stopped; what finished is recorded in {} and `--resume` continues from there",
                journal.path().display()
            )));
        }
    };
    let ok = report.as_ref().is_none_or(|r| r.ok);
    journal.set_status(if ok {
        RunStatus::Done
    } else {
        RunStatus::Failed("verification found differences".into())
    })?;
    match o.ends.output {
        Output::Table => {
            if let Some(r) = &report {
                print_out(&format!("\n{}", r.render_table()));
            }
            let rows: u64 = load.tables.iter().map(|t| t.1).sum();
            let rejected: u64 = load.tables.iter().map(|t| t.2).sum();
            let mut summary = format!(
                "{} rows in {} tables migrated in {:.1}s",
                crate::migrate::thousands(rows),
                load.tables.len(),
                started.elapsed().as_secs_f64()
            );
            if rejected > 0 {
                summary.push_str(&format!(
                    "; {} rows rejected, listed in {}",
                    crate::migrate::thousands(rejected),
                    load.rejects_file
                        .as_deref()
                        .unwrap_or(&rejects_path)
                        .display()
                ));
            }
            for (who, why) in &load.not_valid {
                summary.push_str(&format!("\nNOT VALID {who}: {why}"));
            }
            print_out(&format!("{summary}\n"));
        }
        Output::Json => print_out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&RunJson {
                plan: &plan,
                misfits: &misfits,
                load: Some(&load),
                verify: report.as_ref(),
                journal: journal.path().display().to_string(),
            })?
        )),
    }
    if !ok {
        bail!("verification found differences (listed above)");
    }
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::too_many_arguments)]
async fn execute(
    o: &Options,
    plan: &Plan,
    target: &Target,
    client: &mut tokio_postgres::Client,
    journal: &Arc<Journal>,
    recreate: &[String],
    progress: &Progress,
    dir: &Path,
    rejects_path: &Path,
    resuming: bool,
) -> Result<(load::LoadReport, Option<verify::VerifyReport>)> {
    let t0 = Instant::now();
    if !journal.is_done("schema") {
        // A resumed run whose schema step did not commit starts it afresh;
        // the tables were never loaded (loads come after this step).
        let mode = if resuming {
            IfExists::Drop
        } else {
            o.if_exists
        };
        target::create_schema(client, &target::schema_statements(plan, mode, None)).await?;
        journal.done(
            "schema",
            t0.elapsed(),
            serde_json::json!({"tables": plan.tables.len()}),
        )?;
    } else if !recreate.is_empty() {
        target::create_schema(
            client,
            &target::schema_statements(plan, o.if_exists, Some(recreate)),
        )
        .await?;
    }
    progress.println(&format!(
        "schema ready; loading {} tables with {} parallel job(s)",
        plan.tables.len(),
        o.ends.jobs
    ));
    let loader = Arc::new(Loader {
        source: PathBuf::from(&plan.source),
        target: target.clone(),
        plan: Arc::new(plan.clone()),
        journal: journal.clone(),
        progress: progress.clone(),
        jobs: o.ends.jobs,
        on_error: o.on_error,
        run_dir: dir.to_path_buf(),
        rejects: rejects_path.to_path_buf(),
        maintenance_work_mem: o.maintenance_work_mem.clone(),
        resume: resuming,
        verify: o.verify,
    });
    let mut load = loader.run().await?;
    progress.println(&format!(
        "data, keys, indexes{} in {:.1}s",
        if o.verify == VerifyMode::None {
            ""
        } else {
            " and table checksums"
        },
        load.seconds
    ));
    if o.verify == VerifyMode::None {
        return Ok((load, None));
    }
    let started = Instant::now();
    let objects = verify::check_objects(client, plan).await?;
    let mut report =
        verify::VerifyReport::new(plan, std::mem::take(&mut load.checks), objects, started);
    report.seconds = load.seconds;
    journal.done(
        "verify",
        std::time::Duration::from_secs_f64(report.seconds),
        serde_json::json!({"ok": report.ok}),
    )?;
    progress.println(&format!(
        "verified: {}",
        if report.ok {
            "everything matches"
        } else {
            "DIFFERENCES (listed below)"
        }
    ));
    Ok((load, Some(report)))
}

/// `datatier migrate verify`.
pub async fn verify_only(ends: Endpoints, rejects: Option<PathBuf>) -> Result<ExitCode> {
    let progress = Progress::new(ends.quiet);
    let target = ends.target()?;
    let source = ends.source()?;
    let dir = ends.run_dir(&source, &target);
    let journal = Journal::open(&dir.join("journal.json"), KIND)?;
    let client = target.connect().await?;
    let plan = match &journal {
        Some(j) => {
            progress.println(&format!(
                "using the plan recorded in {}",
                j.path().display()
            ));
            j.plan::<Plan>()?
        }
        None => {
            // No journal: expect what a migration with default options makes,
            // reading values as the target's columns hold them.
            let cols = target::table_columns(&client, &ends.schema).await?;
            let tt: TargetTypes = cols
                .into_iter()
                .map(|(t, cs)| {
                    (
                        t,
                        cs.into_iter()
                            .map(|(c, ty)| {
                                let p = PgType::parse(&ty);
                                (c, p)
                            })
                            .collect(),
                    )
                })
                .collect();
            let (plan, _, _) = read_and_plan(
                &source,
                &ends,
                &target,
                PlanInputs {
                    casts: &[],
                    ts: TimestampType::default(),
                    scan_mode: ScanMode::Auto,
                    target_types: Some(&tt),
                },
                &progress,
            )
            .await?;
            plan
        }
    };
    let rejects = rejects.unwrap_or_else(|| dir.join("rejects.jsonl"));
    let rejected = verify::read_rejects(&rejects)?;
    let report = verify::verify(&source, &target, &plan, &rejected, ends.jobs).await?;
    match ends.output {
        Output::Table => print_out(&report.render_table()),
        Output::Json => print_out(&format!("{}\n", serde_json::to_string_pretty(&report)?)),
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
