use super::{print_out, Global};
use crate::migrate::sqlite_pg::{
    self,
    load::{OnError, VerifyMode},
    plan::Cast,
    target::IfExists,
    types::TimestampType,
    Endpoints, Integrity, Output, ScanMode,
};
use crate::provider::ProviderKind;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Guided migration runs: preflight, plan, journal, verification.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub what: What,
}

#[derive(Debug, clap::Subcommand)]
pub enum What {
    SqliteToPostgres(SqliteToPostgres),
    Verify(Verify),
    MongoToSharded(MongoToSharded),
}

/// Turn a MongoDB replica set into a shard of a new sharded cluster,
/// following MongoDB's own procedure, step by step.
///
/// Steps: preflight (versions, health, free disk, document counts) ->
/// backup (mongodump --oplog) -> every member runs with --shardsvr
/// (restarted where datatier started it; otherwise the rolling-restart
/// procedure is printed and the run stops) -> deploy config servers, new
/// shards and mongos -> addShard -> shard the declared collections, set
/// chunk size and balancer window -> verify that every collection holds as
/// many documents through mongos as before.
///
/// Each step that changes something is confirmed unless --yes. A journal in
/// the target's state dir records finished steps: after an interruption run
/// the same command again and it resumes. Exit status: 0 verified, 1 any
/// failure or difference.
#[derive(Debug, clap::Args)]
pub struct MongoToSharded {
    /// The replica set: mongodb://HOST:PORT[,...]/?replicaSet=NAME. A
    /// password in it is never printed.
    #[arg(long, value_name = "URI")]
    pub from: String,
    /// Target topology (kind "mongo-sharded") that declares the replica set
    /// as one of its shards, with its members. Default: the built-in
    /// mongo-sharded layout with its first shard replaced by the set.
    #[arg(long, value_name = "FILE")]
    pub to: Option<String>,
    /// Override the target's provider (local: start the new nodes here;
    /// existing: they run elsewhere, only configure them).
    #[arg(long, value_enum)]
    pub provider: Option<ProviderKind>,
    /// Do not ask before each step (needed without a terminal).
    #[arg(short, long)]
    pub yes: bool,
    /// Skip the mongodump backup (only when you have your own).
    #[arg(long)]
    pub skip_backup: bool,
    /// Where mongodump writes (default: the target's state dir).
    #[arg(long, value_name = "DIR")]
    pub backup_dir: Option<PathBuf>,
    /// Forget an unfinished run recorded in the journal and start over.
    #[arg(long)]
    pub restart: bool,
    /// Deadline in seconds for each wait (elections, mongos, commands).
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
}

/// Source, target and naming: the same for a migration and its verification.
#[derive(Debug, Clone, clap::Args)]
pub struct Ends {
    /// The SQLite database (opened read-only).
    #[arg(long, value_name = "PATH.db")]
    pub from: PathBuf,
    /// The target: postgres://USER[:PASSWORD]@HOST[:PORT]/DB (or a libpq
    /// "host=... dbname=..." string). The password is never printed; prefer
    /// --password-file or PGPASSWORD over putting it in the URL.
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// Read the target password from this file (first line).
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Target schema (created if missing).
    #[arg(long, default_value = "public")]
    pub schema: String,
    /// Keep table and column names as they are instead of folding them to
    /// lower case (then applications must quote mixed-case names).
    #[arg(long)]
    pub keep_case: bool,
    /// Tables copied (and checksummed) in parallel.
    #[arg(short, long, default_value_t = default_jobs())]
    pub jobs: usize,
    /// Format of the plan and report on stdout.
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Output,
}

fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 8)
}

/// Migrate a SQLite database into Postgres: checked, planned, resumable,
/// verified.
///
/// Preflight reads the source (read-only, PRAGMA quick_check), scans the
/// values whose type needs it, checks the target (reachable, UTF8, schema
/// empty) and rehearses the DDL in a transaction that is rolled back. The
/// plan is printed before anything is written and must be confirmed
/// (--yes in scripts; without a terminal it is refused). Tables are copied
/// with binary COPY in parallel, keys and indexes are built after the
/// data, and the result is verified (row counts and a checksum of every
/// value on both sides; keys, indexes, foreign keys, views and identities
/// present). Exit status: 0 verified, 1 any failure or difference.
///
/// A run keeps a journal under the state dir; after an interruption (even
/// kill -9) run the same command with --resume.
#[derive(Debug, clap::Args)]
pub struct SqliteToPostgres {
    #[command(flatten)]
    pub ends: Ends,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub yes: bool,
    /// Print the plan (and values that do not fit) and stop.
    #[arg(long)]
    pub dry_run: bool,
    /// Continue an interrupted run of the same migration.
    #[arg(long)]
    pub resume: bool,
    /// What to do when the target schema is not empty.
    #[arg(long, value_enum, default_value = "fail")]
    pub if_exists: IfExists,
    /// Same as --if-exists truncate.
    #[arg(long, conflicts_with = "if_exists")]
    pub truncate: bool,
    /// Give a column another Postgres type, e.g. --cast users.prefs=text
    /// (repeatable). Types: text, varchar(N), bytea, boolean, smallint,
    /// integer, bigint, double precision, numeric, numeric(P,S), date, time,
    /// timestamp, timestamptz, json.
    #[arg(long, value_name = "TABLE.COLUMN=TYPE")]
    pub cast: Vec<Cast>,
    /// What to do with a row holding a value that does not fit its column:
    /// abort the run (nothing is written when preflight finds it), or skip
    /// the row and record it in the rejects file.
    #[arg(long, value_enum, default_value = "abort")]
    pub on_error: OnError,
    /// Where --on-error skip records rejected rows (JSON lines: table,
    /// rowid or key, column, reason). Default: in the run's state dir.
    #[arg(long, value_name = "FILE")]
    pub rejects: Option<PathBuf>,
    /// Type of DATETIME/TIMESTAMP columns.
    #[arg(long, value_enum, default_value = "timestamptz")]
    pub timestamp_type: TimestampType,
    /// Which values preflight checks before writing: auto (every value of
    /// tables up to 2 million values; in bigger ones the typeless and --cast
    /// columns), constrained (typeless, --cast and value-constraining types:
    /// boolean, dates, numeric(p,s), varchar(n), json) or full (every
    /// value). Whatever is not checked before is checked while loading, and
    /// a misfit then stops the run (resumable) or is rejected (--on-error).
    #[arg(long, value_enum, default_value = "auto")]
    pub scan: ScanMode,
    /// Source consistency check run by preflight.
    #[arg(long, value_enum, default_value = "quick")]
    pub integrity: Integrity,
    /// How the result is verified: fast hashes every source value while
    /// reading it for the load and compares with every value read back from
    /// Postgres (plus SQLite's own row counts); full also reads the source
    /// again, independently of the load; none skips it (run `datatier
    /// migrate verify` later).
    #[arg(long, value_enum, default_value = "fast")]
    pub verify: VerifyMode,
    /// maintenance_work_mem of the sessions that build indexes.
    #[arg(long, default_value = "256MB", value_name = "SIZE")]
    pub maintenance_work_mem: String,
}

/// Compare a SQLite database with its migrated copy in Postgres: row
/// counts, a checksum of every value, keys, indexes, foreign keys, views
/// and identities. Exit status: 0 identical, 1 differences.
///
/// Uses the plan recorded by the migration's journal when there is one
/// (names, rejected rows); otherwise expects what a migration with default
/// options creates.
#[derive(Debug, clap::Args)]
pub struct Verify {
    #[command(flatten)]
    pub ends: Ends,
    /// Rows left out on purpose (a rejects file of --on-error skip).
    #[arg(long, value_name = "FILE")]
    pub rejects: Option<PathBuf>,
}

fn endpoints(e: Ends, g: &Global) -> Endpoints {
    Endpoints {
        from: e.from,
        to: e.to,
        password_file: e.password_file,
        schema: e.schema,
        keep_case: e.keep_case,
        state_dir: g.state_dir.clone(),
        jobs: e.jobs.max(1),
        output: e.output,
        quiet: g.quiet,
    }
}

pub async fn exec(a: Args, g: &Global) -> anyhow::Result<ExitCode> {
    match a.what {
        What::MongoToSharded(m) => {
            let opts = crate::migrate::mongo_to_sharded::Options {
                from: m.from,
                to: m.to,
                provider: m.provider,
                yes: m.yes,
                skip_backup: m.skip_backup,
                backup_dir: m.backup_dir,
                restart: m.restart,
                timeout: Duration::from_secs(m.timeout),
                state_root: g.state_dir.clone(),
            };
            let out = crate::migrate::mongo_to_sharded::run(&opts).await?;
            print_out(&out.render());
            Ok(if out.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        What::SqliteToPostgres(m) => {
            let opts = sqlite_pg::Options {
                ends: endpoints(m.ends, g),
                yes: m.yes,
                dry_run: m.dry_run,
                resume: m.resume,
                if_exists: if m.truncate {
                    IfExists::Truncate
                } else {
                    m.if_exists
                },
                casts: m.cast,
                on_error: m.on_error,
                rejects: m.rejects,
                timestamp_type: m.timestamp_type,
                scan: m.scan,
                integrity: m.integrity,
                verify: m.verify,
                maintenance_work_mem: m.maintenance_work_mem,
            };
            sqlite_pg::migrate(opts).await
        }
        What::Verify(v) => sqlite_pg::verify_only(endpoints(v.ends, g), v.rejects).await,
    }
}
