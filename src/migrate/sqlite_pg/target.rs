//! The Postgres side: connecting (password from the URL, a file or
//! `PGPASSWORD`, never printed), preflight facts, the DDL rehearsal, the
//! schema step, post-load objects, and catalog reads for verification.
//!
//! Every statement that creates something is written to be run again after
//! an interruption: objects are looked up by name first, and a table whose
//! load was not journaled is emptied before it is loaded again.

use super::plan::{qualified, Obj, ObjKind, Plan};
use super::sql::quote_ident;
use crate::migrate::redact_url;
use crate::secret::Secret;
use anyhow::{anyhow, bail, Context, Result};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio_postgres::{Client, Config, NoTls};

/// Where to connect, with the password resolved but never displayed.
#[derive(Clone)]
pub struct Target {
    config: Config,
    /// The URL as it may be shown (password redacted).
    pub display: String,
    pub schema: String,
    /// `application_name` of every session, naming the run, so sessions
    /// left behind by a killed run can be found and ended.
    pub app_name: String,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Target({}, schema {})", self.display, self.schema)
    }
}

/// What `ON CONFLICT`-like behaviour the user chose for existing objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum IfExists {
    /// Refuse when the target schema holds any table, view or sequence.
    #[default]
    Fail,
    /// Drop same-named tables and views (CASCADE) before creating them.
    Drop,
    /// Empty same-named tables (TRUNCATE) and load into them; their
    /// columns must match the plan.
    Truncate,
}

impl Target {
    /// `url` is a `postgres://` URL or a libpq key/value string. The
    /// password comes from `password` (a file), else the URL, else
    /// `PGPASSWORD`.
    pub fn new(url: &str, password: Option<Secret>, schema: &str) -> Result<Target> {
        let display = redact_url(url);
        let mut config: Config = url.parse().map_err(|e: tokio_postgres::Error| {
            // the parser's message never contains the value it rejects
            anyhow!("--to {display}: not a valid Postgres connection string: {e}")
        })?;
        if let Some(p) = password {
            config.password(p.expose());
        } else if config.get_password().is_none() {
            if let Ok(p) = std::env::var("PGPASSWORD") {
                config.password(p);
            }
        }
        if config.get_user().is_none() {
            let user = std::env::var("PGUSER")
                .or_else(|_| std::env::var("USER"))
                .unwrap_or_else(|_| "postgres".into());
            config.user(&user);
        }
        if config.get_dbname().is_none() {
            if let Ok(db) = std::env::var("PGDATABASE") {
                config.dbname(&db);
            }
        }
        if config.get_hosts().is_empty() {
            config.host("localhost");
        }
        config.application_name("datatier-migrate");
        config.connect_timeout(Duration::from_secs(10));
        Ok(Target {
            config,
            display,
            schema: schema.to_string(),
            app_name: "datatier-migrate".into(),
        })
    }

    /// Name this run's sessions (`datatier-migrate/<run>`).
    pub fn for_run(mut self, run: &str) -> Target {
        self.app_name = format!("datatier-migrate/{run}");
        self.config.application_name(&self.app_name);
        self
    }

    /// End the sessions a killed run of this migration left behind (a
    /// backend keeps building an index or waiting on a COPY after its
    /// client died), and wait until they are gone. Call only while holding
    /// the run's lock, so they cannot belong to a live run.
    pub async fn end_leftover_sessions(&self, client: &Client) -> Result<usize> {
        let ended = client
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE application_name = $1 AND pid <> pg_backend_pid()",
                &[&self.app_name],
            )
            .await
            .map_err(|e| {
                anyhow!(
                    "cannot end the sessions of the interrupted run: {}",
                    pg_error(&e)
                )
            })?
            .len();
        if ended > 0 {
            crate::wait::until_default(
                "the interrupted run's sessions to end",
                Duration::from_secs(60),
                || async {
                    match client
                        .query_one(
                            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()",
                            &[&self.app_name],
                        )
                        .await
                    {
                        Ok(r) if r.get::<_, i64>(0) == 0 => crate::wait::Poll::Ready(Ok(())),
                        Ok(r) => crate::wait::Poll::Pending(format!("{} still running", r.get::<_, i64>(0))),
                        Err(e) => crate::wait::Poll::Ready(Err(anyhow!("{}", pg_error(&e)))),
                    }
                },
            )
            .await??;
        }
        Ok(ended)
    }

    /// A new connection; its driver task runs on the runtime.
    pub async fn connect(&self) -> Result<Client> {
        let (client, conn) = self
            .config
            .connect(NoTls)
            .await
            .map_err(|e| anyhow!("cannot connect to {}: {}", self.display, pg_error(&e)))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("postgres connection ended: {e}");
            }
        });
        Ok(client)
    }

    /// `schema.name`.
    pub fn q(&self, name: &str) -> String {
        qualified(&self.schema, name)
    }
}

/// A Postgres error with its server message, detail and hint.
pub fn pg_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = db.message().to_string();
            if let Some(d) = db.detail() {
                s.push_str(&format!(" ({d})"));
            }
            if let Some(h) = db.hint() {
                s.push_str(&format!("; hint: {h}"));
            }
            s
        }
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(cause) = src {
                s.push_str(&format!(": {cause}"));
                src = cause.source();
            }
            s
        }
    }
}

/// What preflight learns about the target.
#[derive(Debug, Clone)]
pub struct TargetInfo {
    pub version: String,
    pub version_num: i32,
    pub encoding: String,
    pub schema_exists: bool,
    /// Relations already in the schema: (name, kind).
    pub relations: Vec<(String, String)>,
}

pub async fn inspect(client: &Client, schema: &str) -> Result<TargetInfo> {
    let row = client
        .query_one(
            "SELECT current_setting('server_version'), current_setting('server_version_num')::int, \
             current_setting('server_encoding'), \
             EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
            &[&schema],
        )
        .await
        .map_err(|e| anyhow!("{}", pg_error(&e)))?;
    let relations = client
        .query(
            "SELECT c.relname, CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'table' \
             WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'S' THEN 'sequence' \
             WHEN 'f' THEN 'foreign table' ELSE 'relation' END \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relkind IN ('r','p','v','m','S','f') ORDER BY 1",
            &[&schema],
        )
        .await
        .map_err(|e| anyhow!("{}", pg_error(&e)))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    Ok(TargetInfo {
        version: row.get(0),
        version_num: row.get(1),
        encoding: row.get(2),
        schema_exists: row.get(3),
        relations,
    })
}

/// Existing tables' columns: table -> [(column, format_type)].
pub async fn table_columns(
    client: &Client,
    schema: &str,
) -> Result<BTreeMap<String, Vec<(String, String)>>> {
    let rows = client
        .query(
            "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod) \
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relkind IN ('r','p') AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY c.relname, a.attnum",
            &[&schema],
        )
        .await
        .map_err(|e| anyhow!("{}", pg_error(&e)))?;
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for r in rows {
        out.entry(r.get(0)).or_default().push((r.get(1), r.get(2)));
    }
    Ok(out)
}

/// In `--if-exists truncate` mode: mark reused tables, and refuse tables
/// whose columns differ from the plan.
pub fn check_reuse(
    plan: &mut Plan,
    existing: &BTreeMap<String, Vec<(String, String)>>,
) -> Result<()> {
    let mut problems = Vec::new();
    for t in &mut plan.tables {
        let Some(cols) = existing.get(&t.target) else {
            continue;
        };
        t.reuse = true;
        let want: Vec<(String, String)> = t
            .columns
            .iter()
            .map(|c| (c.target.clone(), c.ty.to_string()))
            .collect();
        let norm = |ty: &str| {
            super::types::PgType::parse(ty)
                .map(|t| t.to_string())
                .unwrap_or_else(|| ty.to_string())
        };
        let have: Vec<(String, String)> =
            cols.iter().map(|(c, ty)| (c.clone(), norm(ty))).collect();
        if want != have {
            problems.push(format!(
                "table {} exists with columns ({}) but the plan needs ({}); use --cast to match its types, or --if-exists drop",
                t.target,
                have.iter().map(|(c, t)| format!("{c} {t}")).collect::<Vec<_>>().join(", "),
                want.iter().map(|(c, t)| format!("{c} {t}")).collect::<Vec<_>>().join(", ")
            ));
        }
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("\n"));
    }
    Ok(())
}

/// Statements that prepare the schema: create it, clear what `if_exists`
/// says to clear, create the tables. `only` limits it to some tables (a
/// resumed run recreating tables whose plan changed).
pub fn schema_statements(plan: &Plan, if_exists: IfExists, only: Option<&[String]>) -> Vec<String> {
    let schema = &plan.schema;
    let mut out = vec![format!(
        "CREATE SCHEMA IF NOT EXISTS {}",
        quote_ident(schema)
    )];
    let tables: Vec<_> = plan
        .tables
        .iter()
        .filter(|t| only.is_none_or(|o| o.contains(&t.target)))
        .collect();
    if if_exists == IfExists::Drop || only.is_some() {
        if only.is_none() {
            for v in &plan.views {
                out.push(format!(
                    "DROP VIEW IF EXISTS {} CASCADE",
                    qualified(schema, &v.name)
                ));
            }
        }
        for t in &tables {
            out.push(format!(
                "DROP TABLE IF EXISTS {} CASCADE",
                qualified(schema, &t.target)
            ));
        }
    }
    let reused: Vec<String> = tables
        .iter()
        .filter(|t| t.reuse && only.is_none())
        .map(|t| qualified(schema, &t.target))
        .collect();
    if !reused.is_empty() {
        out.push(format!("TRUNCATE {}", reused.join(", ")));
    }
    for t in &tables {
        if !(t.reuse && only.is_none()) {
            out.push(t.create_sql(schema));
        }
    }
    out
}

/// Create the schema's tables in one transaction: all or nothing.
pub async fn create_schema(client: &mut Client, stmts: &[String]) -> Result<()> {
    let tx = client.transaction().await?;
    for s in stmts {
        tx.batch_execute(s)
            .await
            .map_err(|e| anyhow!("{}\n  statement: {s}", pg_error(&e)))?;
    }
    tx.commit().await?;
    Ok(())
}

/// Run every statement of the plan against the (empty) schema inside a
/// transaction that is rolled back, and return the objects Postgres
/// rejected, by journal step, with its message. Tables that fail are an
/// error: nothing could be loaded into them.
pub async fn rehearse(
    client: &mut Client,
    plan: &Plan,
    if_exists: IfExists,
) -> Result<BTreeMap<String, String>> {
    let tx = client.transaction().await?;
    for s in schema_statements(plan, if_exists, None) {
        if let Err(e) = tx.batch_execute(&s).await {
            bail!(
                "Postgres rejects the schema (nothing was changed): {}\n  statement: {s}",
                pg_error(&e)
            );
        }
    }
    let mut failed = BTreeMap::new();
    for (i, o) in plan.objects().enumerate() {
        if plan.table(&o.table).is_some_and(|t| t.reuse) && o.kind != ObjKind::Identity {
            continue; // existing tables keep their own constraints; checked at run time
        }
        let sp = format!("sp{i}");
        tx.batch_execute(&format!("SAVEPOINT {sp}")).await?;
        match tx.batch_execute(&o.sql).await {
            Ok(()) => tx.batch_execute(&format!("RELEASE SAVEPOINT {sp}")).await?,
            Err(e) => {
                failed.insert(o.step(), pg_error(&e));
                tx.batch_execute(&format!("ROLLBACK TO SAVEPOINT {sp}"))
                    .await?;
            }
        }
    }
    tx.rollback().await?;
    Ok(failed)
}

/// Does the object of `o` already exist (a resumed run, or a reused table)?
pub async fn object_exists(client: &Client, schema: &str, o: &Obj) -> Result<bool> {
    let row = match o.kind {
        ObjKind::Identity => return Ok(false),
        ObjKind::Index | ObjKind::View => {
            let kind = if o.kind == ObjKind::Index { "i" } else { "v" };
            client
                .query_opt(
                    "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind::text = $3",
                    &[&schema, &o.name, &kind],
                )
                .await?
        }
        ObjKind::PrimaryKey => {
            // a table has one primary key, whatever its name
            client
                .query_opt(
                    "SELECT 1 FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid \
                     JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE n.nspname = $1 AND c.relname = $2 AND k.contype = 'p'",
                    &[&schema, &o.table],
                )
                .await?
        }
        _ => {
            client
                .query_opt(
                    "SELECT 1 FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid \
                     JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE n.nspname = $1 AND c.relname = $2 AND k.conname = $3",
                    &[&schema, &o.table, &o.name],
                )
                .await?
        }
    };
    Ok(row.is_some())
}

/// What creating an object came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Created,
    Existed,
    /// A CHECK or FOREIGN KEY the loaded rows violate: created NOT VALID
    /// (enforced for new rows), with the reason.
    NotValid(String),
}

/// Create `o` unless it exists. A CHECK or FOREIGN KEY that existing rows
/// violate (SQLite enforces foreign keys only when the application turns
/// them on) is added NOT VALID instead and reported, so nothing is lost
/// and the rule holds for new rows.
pub async fn apply_object(client: &Client, schema: &str, o: &Obj) -> Result<Outcome> {
    if object_exists(client, schema, o).await? {
        return Ok(Outcome::Existed);
    }
    let res = match &o.staged {
        // the index (if an earlier stage did not build it), then the constraint
        Some((index, attach)) => match client.batch_execute(index).await {
            Ok(()) => client.batch_execute(attach).await,
            Err(e) => Err(e),
        },
        None => client.batch_execute(&o.sql).await,
    };
    match res {
        Ok(()) => Ok(Outcome::Created),
        Err(e)
            if e.code().is_some_and(|c| {
                *c == tokio_postgres::error::SqlState::DUPLICATE_TABLE
                    || *c == tokio_postgres::error::SqlState::DUPLICATE_OBJECT
                    || *c == tokio_postgres::error::SqlState::UNIQUE_VIOLATION
            }) && object_exists(client, schema, o).await? =>
        {
            Ok(Outcome::Existed)
        }
        Err(e)
            if matches!(o.kind, ObjKind::Check | ObjKind::ForeignKey)
                && e.code().is_some_and(|c| {
                    *c == tokio_postgres::error::SqlState::CHECK_VIOLATION
                        || *c == tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION
                }) =>
        {
            let why = pg_error(&e);
            client
                .batch_execute(&format!("{} NOT VALID", o.sql))
                .await
                .map_err(|e| anyhow!("{} {}: {}", o.kind.label(), o.name, pg_error(&e)))?;
            Ok(Outcome::NotValid(why))
        }
        Err(e) => Err(anyhow!(
            "{} {} on {}: {}\n  statement: {}",
            o.kind.label(),
            o.name,
            if o.table.is_empty() { schema } else { &o.table },
            pg_error(&e),
            o.sql
        )),
    }
}

/// Settings for a loading or index-building session.
pub async fn tune_session(client: &Client, maintenance_work_mem: &str) -> Result<()> {
    client
        .batch_execute(&format!(
            "SET maintenance_work_mem = '{}'; SET synchronous_commit = on; SET client_min_messages = warning",
            maintenance_work_mem.replace('\'', "")
        ))
        .await
        .context("cannot set session parameters")
}

/// Empty a table (a load that is redone).
pub async fn truncate(client: &Client, schema: &str, table: &str) -> Result<()> {
    client
        .batch_execute(&format!("TRUNCATE {}", qualified(schema, table)))
        .await
        .map_err(|e| {
            anyhow!(
                "cannot empty {table} before loading it again: {}",
                pg_error(&e)
            )
        })
}
