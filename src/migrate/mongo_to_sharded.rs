//! `datatier migrate mongo-to-sharded`: turn an existing replica set into a
//! shard of a new sharded cluster, following MongoDB's own procedure
//! ("Convert a Replica Set to a Sharded Cluster"), as a guided run:
//!
//! | step                | what                                                    |
//! |---------------------|---------------------------------------------------------|
//! | `preflight`         | versions, health, free disk, the target declares the set |
//! |                     | as a shard; document counts of every collection         |
//! | `backup`            | `mongodump --oplog` of the set (`--skip-backup`)        |
//! | `shardsvr`          | every member runs with `--shardsvr`: restarted where    |
//! |                     | datatier manages it, else the procedure is printed and  |
//! |                     | the run stops (it resumes here)                         |
//! | `deploy`            | config servers, new shards, mongos (the engine, deploy  |
//! |                     | stage only)                                             |
//! | `add-shards`        | `addShard` the replica set and the new shards           |
//! | `shard-collections` | supporting indexes, `shardCollection`, chunk size,      |
//! |                     | balancer window                                         |
//! | `verify`            | document counts through mongos equal the counts before; |
//! |                     | each declared collection sharded on its key             |
//!
//! A journal in the target's state dir records finished steps, so running
//! the same command again resumes where the last run stopped; the counts
//! "before" are the ones taken before anything changed. Every step that
//! changes something is confirmed unless `--yes` (without a terminal the
//! run refuses instead of hanging).
//!
//! The journal, confirmation and redaction helpers live here for now; they
//! will merge with the shared guided-run machinery of `crate::migrate`.

use crate::engine::mongo::conn::{self, int, Auth, CmdError, Node, NODE_TIMEOUT};
use crate::engine::mongo::observe::config_members;
use crate::engine::mongo::plan::Scope;
use crate::engine::mongo::MongoEngine;
use crate::engine::{self, Ctx};
use crate::provider::local::{self, StateDir};
use crate::provider::ProviderKind;
use crate::topology::mongo::{is_localhost, MongoShardedSpec};
use crate::topology::{Source, Topology};
use anyhow::{anyhow, bail, Context, Result};
use bson::{doc, Bson};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What the command line asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// `mongodb://...` of the replica set (may hold a password).
    pub from: String,
    /// Target topology argument (file, recorded name); `None`: the built-in
    /// layout with its first shard replaced by the source set.
    pub to: Option<String>,
    pub provider: Option<ProviderKind>,
    pub yes: bool,
    pub skip_backup: bool,
    pub backup_dir: Option<PathBuf>,
    /// Forget an unfinished run recorded in the journal.
    pub restart: bool,
    pub timeout: Duration,
    pub state_root: PathBuf,
}

/// The steps, in order, with what each one does.
pub const STEPS: &[(&str, &str)] = &[
    (
        "preflight",
        "check versions, health and free disk; count every collection's documents",
    ),
    ("backup", "mongodump --oplog of the replica set"),
    (
        "shardsvr",
        "every member of the replica set runs with --shardsvr",
    ),
    (
        "deploy",
        "config server replica set, new shards, mongos routers",
    ),
    ("add-shards", "addShard the replica set and the new shards"),
    (
        "shard-collections",
        "supporting indexes, shardCollection, chunk size, balancer window",
    ),
    (
        "verify",
        "document counts through mongos equal the counts before",
    ),
];

pub const JOURNAL_FILE: &str = "migrate-mongo-to-sharded.json";

/// The on-disk record of a run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Journal {
    /// The source, password masked.
    pub source: String,
    pub set: String,
    pub target: String,
    pub started: String,
    pub steps: Vec<StepRecord>,
    /// Documents per `db.collection` before anything changed.
    pub counts_before: BTreeMap<String, u64>,
    pub backup: Option<PathBuf>,
    pub finished: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepRecord {
    pub name: String,
    /// `done` or `skipped`.
    pub status: String,
    pub at: String,
    pub detail: String,
}

impl Journal {
    pub fn done(&self, step: &str) -> bool {
        self.steps.iter().any(|s| s.name == step)
    }
    fn record(&mut self, step: &str, status: &str, detail: impl Into<String>) {
        let rec = StepRecord {
            name: step.to_string(),
            status: status.to_string(),
            at: now_text(),
            detail: detail.into(),
        };
        match self.steps.iter_mut().find(|s| s.name == step) {
            Some(s) => *s = rec,
            None => self.steps.push(rec),
        }
    }
    pub fn load(path: &Path) -> Result<Option<Journal>> {
        match std::fs::read_to_string(path) {
            Ok(t) => Ok(Some(serde_json::from_str(&t).with_context(|| {
                format!(
                    "the journal {} is corrupt; remove it or pass --restart",
                    path.display()
                )
            })?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }
    /// Write atomically (a crash leaves the old or the new journal).
    pub fn save(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("json.tmp");
        crate::secret::write_private(&tmp, &serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }
}

fn now_text() -> String {
    bson::DateTime::now()
        .try_to_rfc3339_string()
        .unwrap_or_default()
}

/// Ask before a step that changes something, unless `yes` (see
/// [`super::ask`]): a refused or unanswered step leaves the journal where it
/// was, so the same command resumes there.
fn confirm(question: &str, yes: bool) -> Result<()> {
    super::ask(
        &format!("{question}?"),
        yes,
        "re-run with --yes to proceed (the run resumes where it stopped)",
        "stopped before this step (run again to resume)",
    )
}

/// What the replica set looks like.
#[derive(Debug, Clone)]
pub struct SourceSet {
    pub name: String,
    /// Credentials from the `--from` URI, for its members.
    pub auth: Auth,
    /// Members as the set's config lists them.
    pub members: Vec<String>,
    pub version: String,
}

/// Connect to the source with short, bounded timeouts.
async fn source_client(uri: &str) -> Result<(mongodb::Client, Auth)> {
    let mut o = mongodb::options::ClientOptions::parse(uri)
        .await
        .map_err(|e| anyhow!("--from {}: {}", super::redact_url(uri), CmdError::from(e)))?;
    let auth = Auth::from_credential(o.credential.clone());
    o.server_selection_timeout
        .get_or_insert(Duration::from_secs(10));
    o.connect_timeout.get_or_insert(NODE_TIMEOUT);
    o.app_name.get_or_insert_with(|| "datatier".to_string());
    let c = mongodb::Client::with_options(o)
        .map_err(|e| anyhow!("--from {}: {}", super::redact_url(uri), CmdError::from(e)))?;
    Ok((c, auth))
}

/// Documents per collection of every user database, through `node`.
pub async fn count_all(node: &Node) -> Result<BTreeMap<String, u64>, CmdError> {
    let dbs = node
        .admin(doc! {"listDatabases": 1, "nameOnly": true})
        .await?;
    let mut out = BTreeMap::new();
    let names: Vec<String> = dbs
        .get_array("databases")
        .map(|a| {
            a.iter()
                .filter_map(Bson::as_document)
                .filter_map(|d| d.get_str("name").ok())
                .filter(|n| !["admin", "local", "config"].contains(n))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    for db in names {
        let colls = node
            .client()
            .database(&db)
            .list_collection_names()
            .await
            .map_err(CmdError::from)?;
        for c in colls.into_iter().filter(|c| !c.starts_with("system.")) {
            let n = node.count_documents(&db, &c).await?;
            out.insert(format!("{db}.{c}"), n);
        }
    }
    Ok(out)
}

/// The target: `--to`, else the built-in layout with its first shard
/// replaced by the source set.
pub fn target_topology(opts: &Options, src: &SourceSet) -> Result<MongoShardedSpec> {
    let t = match &opts.to {
        Some(arg) => crate::topology::resolve(arg, &opts.state_root)?,
        None => {
            let text = crate::topology::BUILTINS
                .iter()
                .find(|(n, _)| *n == "mongo-sharded")
                .map(|(_, t)| *t)
                .expect("built in");
            let members: Vec<String> = src.members.iter().map(|m| format!("\"{m}\"")).collect();
            let replaced = text.replacen(
                "[[shards]]\nname = \"shard1\"\nmembers = [\"127.0.0.1:27201\", \"127.0.0.1:27202\", \"127.0.0.1:27203\"]",
                &format!("[[shards]]\nname = \"{}\"\nmembers = [{}]", src.name, members.join(", ")),
                1,
            );
            if replaced == text {
                bail!("internal: the built-in mongo-sharded layout changed shape");
            }
            crate::topology::parse(Source::from_text(
                "<built-in mongo-sharded, first shard replaced by the source set>",
                replaced,
                PathBuf::from("."),
            ))
            .map_err(|e| {
                anyhow!("{e}\nhint: the built-in layout runs on 127.0.0.1; for a replica set on other hosts give the target with --to FILE")
            })?
        }
    };
    let mut spec = match t {
        Topology::MongoSharded(s) => s,
        other => bail!(
            "the target {} is a {} topology; migrate mongo-to-sharded needs kind = \"mongo-sharded\"",
            other.meta().source.name,
            other.meta().kind.as_str()
        ),
    };
    if let Some(p) = opts.provider {
        spec.meta.provider = p;
    }
    let Some(shard) = spec.shards.iter().find(|s| s.name == src.name) else {
        bail!(
            "the target {} declares no shard named {} (the source replica set); add [[shards]] name = \"{}\" members = [{}]",
            spec.meta.source.name,
            src.name,
            src.name,
            src.members.iter().map(|m| format!("\"{m}\"")).collect::<Vec<_>>().join(", ")
        );
    };
    let mut declared = shard.addrs();
    declared.sort();
    let mut actual = src.members.clone();
    actual.sort();
    if declared != actual {
        bail!(
            "the target declares shard {} with members {}, but the replica set has {}; declare the members as the set lists them",
            src.name,
            declared.join(", "),
            actual.join(", ")
        );
    }
    Ok(spec)
}

/// Free bytes on the filesystem holding `path` (or its nearest existing
/// ancestor).
fn free_bytes(path: &Path) -> Option<u64> {
    let mut p = path.to_path_buf();
    while !p.exists() {
        p = p.parent()?.to_path_buf();
    }
    let s = nix::sys::statvfs::statvfs(&p).ok()?;
    Some(s.blocks_available() as u64 * s.fragment_size() as u64)
}

/// Sizes in binary units, as `df -h` shows free space.
fn human(b: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < units.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

/// The result of a run: the verification table.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub target: String,
    /// (collection, before, after).
    pub counts: Vec<(String, u64, Option<u64>)>,
    /// Chunks per shard of each declared collection.
    pub distribution: Vec<(String, BTreeMap<String, u64>)>,
    pub problems: Vec<String>,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "{}: document counts per collection (before -> after, through mongos)\n",
            self.target
        ));
        let w = self
            .counts
            .iter()
            .map(|(c, _, _)| c.len())
            .max()
            .unwrap_or(10)
            .max(10);
        for (c, before, after) in &self.counts {
            let (a, verdict) = match after {
                Some(a) if a == before => (a.to_string(), "OK"),
                Some(a) => (a.to_string(), "DIFFERS"),
                None => ("?".to_string(), "MISSING"),
            };
            out.push_str(&format!("  {c:<w$}  {before:>10} -> {a:>10}  {verdict}\n"));
        }
        for (ns, per) in &self.distribution {
            let parts: Vec<String> = per.iter().map(|(s, n)| format!("{s} {n}")).collect();
            out.push_str(&format!("  {ns}: chunks {}\n", parts.join(", ")));
        }
        if self.ok() {
            out.push_str("verified: every collection holds as many documents as before\n");
        } else {
            for p in &self.problems {
                out.push_str(&format!("PROBLEM: {p}\n"));
            }
        }
        out
    }
}

/// Run (or resume) the migration.
pub async fn run(opts: &Options) -> Result<Outcome> {
    let started = Instant::now();
    let (client, auth) = source_client(&opts.from).await?;
    let admin = client.database("admin");
    let hello = admin.run_command(doc! {"hello": 1}).await.map_err(|e| {
        anyhow!(
            "--from {}: {}",
            super::redact_url(&opts.from),
            CmdError::from(e)
        )
    })?;
    let set_name = hello.get_str("setName").map(str::to_string).map_err(|_| {
        anyhow!(
            "--from {} is not a replica set member (hello has no setName); a standalone mongod must first become a one-member replica set (--replSet, rs.initiate())",
            super::redact_url(&opts.from)
        )
    })?;
    if hello.get_str("msg").ok() == Some("isdbgrid") {
        bail!("--from points at a mongos: the source is already a sharded cluster");
    }
    let cfg = admin
        .run_command(doc! {"replSetGetConfig": 1})
        .await
        .map_err(|e| anyhow!("{set_name}: replSetGetConfig failed: {}", CmdError::from(e)))?;
    let members: Vec<String> = config_members(cfg.get_document("config").ok())
        .into_iter()
        .map(|m| m.host)
        .collect();
    let version = admin
        .run_command(doc! {"buildInfo": 1})
        .await
        .ok()
        .and_then(|b| b.get_str("version").ok().map(str::to_string))
        .unwrap_or_default();
    let src = SourceSet {
        name: set_name,
        auth,
        members,
        version,
    };
    let spec = target_topology(opts, &src)?;
    let state = StateDir::new(&opts.state_root, &spec.meta.name);
    let _lock = state.lock()?;
    let jpath = state.dir.join(JOURNAL_FILE);
    let redacted = super::redact_url(&opts.from);
    let mut journal = match Journal::load(&jpath)? {
        Some(_) if opts.restart => None,
        Some(j) if j.source != redacted || j.set != src.name => bail!(
            "{} records a migration of {} ({}) into {}; finish it, or pass --restart to forget it",
            jpath.display(),
            j.set,
            j.source,
            j.target
        ),
        other => other,
    };
    if let Some(j) = &journal {
        let done: Vec<&str> = j.steps.iter().map(|s| s.name.as_str()).collect();
        tracing::info!(
            "resuming the migration recorded in {} (done: {})",
            jpath.display(),
            done.join(", ")
        );
    }
    state.record_topology(&spec.meta.source.text)?;
    let ctx = Ctx {
        state_root: opts.state_root.clone(),
        state: state.clone(),
        provider: spec.meta.provider,
        force: false,
        timeout: opts.timeout,
    };
    let total = STEPS.len();
    let announce = |i: usize| {
        let (n, what) = STEPS[i];
        tracing::info!("step {}/{total} {n}: {what}", i + 1);
    };

    // 1. preflight (always re-run: it is read-only and proves the state).
    announce(0);
    let pre = preflight(opts, &src, &spec).await?;
    let j = journal.get_or_insert_with(|| Journal {
        source: redacted.clone(),
        set: src.name.clone(),
        target: spec.meta.name.clone(),
        started: now_text(),
        steps: Vec::new(),
        counts_before: BTreeMap::new(),
        backup: None,
        finished: None,
    });
    // Counts "before" are taken until the cluster starts changing.
    if !j.done("deploy") {
        j.counts_before = pre.counts.clone();
    }
    j.record("preflight", "done", pre.summary.clone());
    j.save(&jpath)?;
    eprintln!("{}", pre.summary);
    eprintln!("plan ({}):", spec.meta.name);
    for (i, (n, what)) in STEPS.iter().enumerate() {
        let mark = if j.done(n) && *n != "verify" {
            " (done earlier)"
        } else {
            ""
        };
        eprintln!("  {}. {n}: {what}{mark}", i + 1);
    }

    // 2. backup
    announce(1);
    if j.done("backup") {
        tracing::info!(
            "backup: done earlier ({})",
            j.backup
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "skipped".into())
        );
    } else if opts.skip_backup {
        j.record("backup", "skipped", "--skip-backup");
        j.save(&jpath)?;
        tracing::warn!("backup skipped (--skip-backup): make sure you have one");
    } else {
        let dir = opts
            .backup_dir
            .clone()
            .unwrap_or_else(|| state.dir.join("backup"))
            .join(format!(
                "{}-{}",
                src.name,
                bson::DateTime::now().timestamp_millis()
            ));
        if let Some(free) = free_bytes(&dir) {
            let need = pre.data_bytes + pre.data_bytes / 5;
            if free < need {
                bail!(
                    "backup: {} free at {}, the dump needs about {} (data {} + 20 %); free space or give --backup-dir",
                    human(free),
                    dir.display(),
                    human(need),
                    human(pre.data_bytes)
                );
            }
        }
        confirm(
            &format!(
                "step 2/{total} backup: mongodump --oplog of {} into {}",
                src.name,
                dir.display()
            ),
            opts.yes,
        )?;
        backup(
            &opts.from,
            &dir,
            &state,
            opts.timeout.max(Duration::from_secs(3600)),
        )
        .await?;
        j.backup = Some(dir.clone());
        j.record("backup", "done", dir.display().to_string());
        j.save(&jpath)?;
    }

    // 3. shardsvr
    announce(2);
    if !j.done("shardsvr") {
        shardsvr(opts, &src, &spec, &ctx, total).await?;
        j.record("shardsvr", "done", "every member runs with --shardsvr");
        j.save(&jpath)?;
    }

    // 4.-6. the engine, one stage at a time.
    let stages = [
        (
            "deploy",
            3usize,
            Scope {
                deploy: true,
                add_shards: false,
                shard_collections: false,
            },
        ),
        (
            "add-shards",
            4,
            Scope {
                deploy: false,
                add_shards: true,
                shard_collections: false,
            },
        ),
        (
            "shard-collections",
            5,
            Scope {
                deploy: false,
                add_shards: false,
                shard_collections: true,
            },
        ),
    ];
    for (name, i, scope) in stages {
        announce(i);
        if j.done(name) {
            tracing::info!("{name}: done earlier");
            continue;
        }
        let mut eng = MongoEngine::new(&spec, &ctx)?;
        eng.scope = scope;
        let p = engine::plan(&eng, &ctx).await?;
        if !p.is_empty() {
            if !opts.yes {
                // (with --yes, init logs the plan it applies)
                eprint!("{}", p.render(&spec.meta.name));
            }
            confirm(
                &format!(
                    "step {}/{total} {name}: apply these {} step(s)",
                    i + 1,
                    p.len()
                ),
                opts.yes,
            )?;
            let out = engine::init(&eng, &ctx).await?;
            tracing::info!(
                "{name}: {} step(s) in {:.2}s",
                out.executed.len(),
                out.elapsed.as_secs_f64()
            );
        }
        j.record(name, "done", format!("{} step(s)", p.len()));
        j.save(&jpath)?;
    }

    // 7. verify
    announce(6);
    let target_auth = MongoEngine::new(&spec, &ctx)?.auth;
    let outcome = verify(&spec, &j.counts_before, opts.timeout, &target_auth).await?;
    if outcome.ok() {
        j.record("verify", "done", "counts equal");
        j.finished.get_or_insert_with(now_text);
    } else {
        j.record("verify", "failed", outcome.problems.join("; "));
    }
    j.save(&jpath)?;
    tracing::info!(
        "migration {} in {:.1}s",
        if outcome.ok() {
            "verified"
        } else {
            "NOT verified"
        },
        started.elapsed().as_secs_f64()
    );
    Ok(outcome)
}

struct Preflight {
    counts: BTreeMap<String, u64>,
    data_bytes: u64,
    summary: String,
}

async fn preflight(opts: &Options, src: &SourceSet, spec: &MongoShardedSpec) -> Result<Preflight> {
    let mut problems = Vec::new();
    let mut lines = Vec::new();
    // Every member: reachable, same version, healthy; disk.
    let nodes = futures::future::join_all(
        src.members
            .iter()
            .map(|m| async move { (m.clone(), conn::connect(m, NODE_TIMEOUT, &src.auth).await) }),
    )
    .await;
    let mut versions: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut primary: Option<Node> = None;
    let mut data_bytes = 0u64;
    for (m, n) in &nodes {
        let n = match n {
            Ok(n) => n,
            Err(e) => {
                problems.push(format!("member {m} is unreachable ({e})"));
                continue;
            }
        };
        let (hello, build) =
            tokio::join!(n.admin(doc! {"hello": 1}), n.admin(doc! {"buildInfo": 1}));
        let hello = hello.map_err(|e| anyhow!("{m}: hello: {e}"))?;
        let v = build
            .ok()
            .and_then(|b| b.get_str("version").ok().map(str::to_string))
            .unwrap_or_else(|| "?".into());
        versions.entry(v).or_default().push(m.clone());
        if hello.get_bool("isWritablePrimary").unwrap_or(false) {
            primary = Some(n.clone());
        }
    }
    if versions.len() > 1 {
        problems.push(format!(
            "members run different versions ({}); finish the upgrade first",
            versions
                .iter()
                .map(|(v, m)| format!("{v} on {}", m.join(", ")))
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    if let Some(v) = versions.keys().next() {
        match conn::parse_version(v) {
            Some(t) if t < (4, 4, 0) => {
                problems.push(format!("MongoDB {v} is too old (4.4 or newer is needed)"))
            }
            _ => lines.push(format!(
                "  version {v} on all {} member(s)",
                src.members.len()
            )),
        }
    }
    let Some(primary) = primary else {
        problems.push(format!("replica set {} has no primary", src.name));
        bail!(
            "preflight failed: {}; nothing was changed",
            problems.join("; ")
        );
    };
    // Free disk per member (dbStats fs* fields) against its data.
    for (m, n) in nodes
        .iter()
        .filter_map(|(m, n)| n.as_ref().ok().map(|n| (m, n)))
    {
        let stats = n.admin(doc! {"dbStats": 1, "scale": 1}).await;
        let mut member_data = 0u64;
        if let Ok(dbs) = n.admin(doc! {"listDatabases": 1}).await {
            member_data = int(dbs.get("totalSize")).unwrap_or(0).max(0) as u64;
        }
        data_bytes = data_bytes.max(member_data);
        if let Ok(s) = stats {
            if let (Some(used), Some(total)) = (int(s.get("fsUsedSize")), int(s.get("fsTotalSize")))
            {
                let free = (total - used).max(0) as u64;
                // Index builds and chunk migrations need room: a fifth of
                // the data, and never less than 1 GiB.
                let need = (member_data / 5).max(1 << 30);
                if free < need {
                    problems.push(format!("{m}: {} free, needs at least {} for the supporting index builds and chunk migrations", human(free), human(need)));
                } else {
                    lines.push(format!("  {m}: {} free on its data disk", human(free)));
                }
            }
        }
    }
    // The collections to shard exist or not; everything is counted.
    let counts = count_all(&primary)
        .await
        .map_err(|e| anyhow!("{}: counting documents failed: {e}", primary.addr))?;
    let total: u64 = counts.values().sum();
    lines.push(format!(
        "  {} collection(s), {total} document(s), {} of data",
        counts.len(),
        human(data_bytes)
    ));
    for c in &spec.collections {
        let n = counts.get(&c.ns()).copied().unwrap_or(0);
        lines.push(format!(
            "  {} ({n} documents) will be sharded on {}",
            c.ns(),
            c.key
        ));
    }
    // The new nodes must not belong to anything yet (checked by the
    // engine's planner as well; here only a warning when local ports are taken).
    if spec.meta.provider == ProviderKind::Local {
        let mut busy = Vec::new();
        for set in spec.sets().filter(|s| s.name != src.name) {
            for m in &set.members {
                if is_localhost(&m.host)
                    && local::listening(&m.addr())
                    && !is_ours(&opts.state_root, spec, &m.addr())
                {
                    busy.push(m.addr());
                }
            }
        }
        if !busy.is_empty() {
            lines.push(format!(
                "  note: {} already answer; they are used as they are",
                busy.join(", ")
            ));
        }
    }
    if !problems.is_empty() {
        bail!(
            "preflight failed: {}; nothing was changed",
            problems.join("; ")
        );
    }
    let summary = format!(
        "preflight: replica set {} ({} members) -> sharded cluster {}\n{}",
        src.name,
        src.members.len(),
        spec.meta.name,
        lines.join("\n")
    );
    Ok(Preflight {
        counts,
        data_bytes,
        summary,
    })
}

fn is_ours(root: &Path, spec: &MongoShardedSpec, addr: &str) -> bool {
    StateDir::new(root, &spec.meta.name)
        .manifest()
        .unwrap_or_default()
        .iter()
        .any(|r| r.node == addr)
}

/// `mongodump --oplog` into `dir`; the URI goes in a 0600 config file, not
/// on the command line where `ps` shows it.
async fn backup(uri: &str, dir: &Path, state: &StateDir, timeout: Duration) -> Result<()> {
    let bin = local::find_binary("mongodump", None, "DATATIER_MONGODUMP_BIN", &[PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")])
        .map_err(|e| anyhow!("{e}\nhint: install the MongoDB Database Tools (package mongodb-database-tools), or pass --skip-backup when you have a backup"))?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let conf = state.dir.join("mongodump.yaml");
    crate::secret::write_private(
        &conf,
        format!("uri: \"{}\"\n", uri.replace('"', "\\\"")).as_bytes(),
    )?;
    let t = Instant::now();
    let mut child = tokio::process::Command::new(&bin)
        .arg("--config")
        .arg(&conf)
        .arg("--oplog")
        .arg("--out")
        .arg(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    let stderr = child.stderr.take().expect("piped");
    let pb = if std::io::stderr().is_terminal() {
        let pb = indicatif::ProgressBar::new_spinner();
        pb.enable_steady_tick(Duration::from_millis(120));
        Some(pb)
    } else {
        None
    };
    let reader = tokio::io::BufReader::new(stderr);
    use tokio::io::AsyncBufReadExt;
    let mut lines = reader.lines();
    let mut tail: Vec<String> = Vec::new();
    let status = tokio::time::timeout(timeout, async {
        while let Ok(Some(l)) = lines.next_line().await {
            match &pb {
                Some(pb) => pb.set_message(format!("mongodump: {}", l.trim())),
                None => tracing::info!("mongodump: {}", l.trim()),
            }
            tail.push(l);
            if tail.len() > 10 {
                tail.remove(0);
            }
        }
        child.wait().await
    })
    .await;
    let _ = std::fs::remove_file(&conf);
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    match status {
        Err(_) => bail!("mongodump did not finish within {}s", timeout.as_secs()),
        Ok(Err(e)) => bail!("mongodump failed to run: {e}"),
        Ok(Ok(s)) if !s.success() => bail!(
            "mongodump failed ({s}); nothing else was changed; its last lines:\n{}",
            tail.join("\n").replace(uri, &super::redact_url(uri))
        ),
        Ok(Ok(_)) => {
            tracing::info!(
                "backup written to {} in {:.1}s",
                dir.display(),
                t.elapsed().as_secs_f64()
            );
            Ok(())
        }
    }
}

/// Make every member run with `--shardsvr`: restart those datatier started
/// (secondaries first, then the primary after a step-down), or print
/// MongoDB's rolling-restart procedure and stop for the others.
async fn shardsvr(
    opts: &Options,
    src: &SourceSet,
    spec: &MongoShardedSpec,
    ctx: &Ctx,
    total: usize,
) -> Result<()> {
    let mut missing = Vec::new();
    for m in &src.members {
        let n = conn::connect(m, NODE_TIMEOUT, &src.auth)
            .await
            .map_err(|e| anyhow!("{m}: {e}"))?;
        let opts_doc = n
            .admin(doc! {"getCmdLineOpts": 1})
            .await
            .map_err(|e| anyhow!("{m}: getCmdLineOpts: {e}"))?;
        let role = opts_doc
            .get_document("parsed")
            .and_then(|p| p.get_document("sharding"))
            .and_then(|s| s.get_str("clusterRole"))
            .ok()
            .map(str::to_string);
        match role.as_deref() {
            Some("shardsvr") => {}
            Some("configsvr") => {
                bail!("{m} runs as a config server (--configsvr); it cannot become a shard")
            }
            _ => missing.push(m.clone()),
        }
    }
    if missing.is_empty() {
        tracing::info!("every member of {} already runs with --shardsvr", src.name);
        return Ok(());
    }
    let manifest = ctx.state.manifest().unwrap_or_default();
    let managed: Vec<local::ProcessRecord> = missing
        .iter()
        .filter_map(|m| manifest.iter().find(|r| &r.node == m).cloned())
        .collect();
    if spec.meta.provider != ProviderKind::Local || managed.len() != missing.len() {
        bail!(
            "the members of {} must run with --shardsvr before they can become a shard, and datatier did not start {} so it cannot restart them.\n\
             Restart them the way MongoDB's procedure says, then run this command again (it resumes here):\n\
             \x20 1. for each secondary, one at a time: stop it, start it with the same options plus --shardsvr\n\
             \x20    (or sharding.clusterRole: shardsvr in its config file), wait until rs.status() shows it SECONDARY;\n\
             \x20 2. on the primary: rs.stepDown(); then restart it the same way.\n\
             Not yet running with --shardsvr: {}",
            src.name,
            if managed.is_empty() { "them" } else { "all of them" },
            missing.join(", ")
        );
    }
    confirm(
        &format!(
            "step 3/{total} shardsvr: restart {} with --shardsvr (rolling: secondaries first)",
            missing.join(", ")
        ),
        opts.yes,
    )?;
    let set = spec.set(&src.name).expect("declared");
    let primary = crate::engine::mongo::apply::wait_primary(set, ctx.timeout, &src.auth).await?;
    let mut order: Vec<&local::ProcessRecord> =
        managed.iter().filter(|r| r.node != primary.addr).collect();
    if let Some(p) = managed.iter().find(|r| r.node == primary.addr) {
        order.push(p);
    }
    for rec in order {
        if rec.node == primary.addr {
            // Hand the primary role over before stopping it.
            let n = conn::connect(&rec.node, NODE_TIMEOUT, &src.auth)
                .await
                .map_err(|e| anyhow!("{}: {e}", rec.node))?;
            match n.admin(doc! {"replSetStepDown": 60}).await {
                Ok(_) => {}
                // The connection drops when it steps down.
                Err(e) if e.code.is_none() => {}
                Err(e) => bail!("{}: replSetStepDown failed: {e}", rec.node),
            }
        }
        local::stop(rec, Duration::from_secs(60)).await?;
        let mut r = rec.clone();
        if !r.args.iter().any(|a| a == "--shardsvr") {
            r.args.push("--shardsvr".into());
        }
        local::start(&ctx.state, &r, None, ctx.timeout).await?;
        crate::engine::mongo::apply::wait_primary(set, ctx.timeout, &src.auth).await?;
        tracing::info!("{}: restarted with --shardsvr", r.node);
    }
    Ok(())
}

/// Counts through mongos against the counts before; keys of the declared
/// collections; chunk distribution.
async fn verify(
    spec: &MongoShardedSpec,
    before: &BTreeMap<String, u64>,
    timeout: Duration,
    auth: &Auth,
) -> Result<Outcome> {
    let mut router = None;
    let mut why = Vec::new();
    for a in spec.mongos_addrs() {
        match conn::connect(&a, NODE_TIMEOUT, auth).await {
            Ok(n) => {
                router = Some(n.with_timeout(timeout));
                break;
            }
            Err(e) => why.push(format!("{a}: {e}")),
        }
    }
    let Some(r) = router else {
        bail!("verify: no mongos answers ({})", why.join("; "));
    };
    let mut counts = Vec::new();
    let mut problems = Vec::new();
    for (ns, b) in before {
        let (db, coll) = ns.split_once('.').expect("db.coll");
        match r.count_documents(db, coll).await {
            Ok(a) => {
                if a != *b {
                    problems.push(format!("{ns}: {b} documents before, {a} after (writes during the migration change counts: stop them for the maintenance window)"));
                }
                counts.push((ns.clone(), *b, Some(a)));
            }
            Err(e) => {
                problems.push(format!("{ns}: cannot count through mongos: {e}"));
                counts.push((ns.clone(), *b, None));
            }
        }
    }
    let mut distribution = Vec::new();
    for c in &spec.collections {
        let ns = c.ns();
        let found = r
            .find("config", "collections", doc! {"_id": &ns}, None)
            .await
            .map_err(|e| anyhow!("verify: reading config.collections: {e}"))?;
        match found
            .iter()
            .find(|d| !d.get_bool("dropped").unwrap_or(false))
        {
            None => problems.push(format!("{ns} is not sharded")),
            Some(d) => {
                let k = d.get_document("key").cloned().unwrap_or_default();
                if !c.key.matches(&k) {
                    problems.push(format!(
                        "{ns} is sharded on {}, declared {}",
                        crate::topology::mongo::key_doc_to_string(&k),
                        c.key
                    ));
                }
                let uuid = d.get("uuid").cloned().unwrap_or(Bson::Null);
                let chunks = r
                    .find(
                        "config",
                        "chunks",
                        doc! {"$or": [{"uuid": uuid}, {"ns": &ns}]},
                        Some(doc! {"shard": 1}),
                    )
                    .await
                    .unwrap_or_default();
                let mut per: BTreeMap<String, u64> =
                    spec.shards.iter().map(|s| (s.name.clone(), 0)).collect();
                for ch in chunks {
                    *per.entry(ch.get_str("shard").unwrap_or("?").to_string())
                        .or_default() += 1;
                }
                distribution.push((ns, per));
            }
        }
    }
    Ok(Outcome {
        target: spec.meta.name.clone(),
        counts,
        distribution,
        problems,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_are_redacted() {
        assert_eq!(
            crate::migrate::redact_url("mongodb://app:s3cret@h1:27017,h2:27017/db?replicaSet=rs0"),
            "mongodb://app:***@h1:27017,h2:27017/db?replicaSet=rs0"
        );
        assert_eq!(
            crate::migrate::redact_url("mongodb://h1/?replicaSet=rs0"),
            "mongodb://h1/?replicaSet=rs0"
        );
        assert_eq!(
            crate::migrate::redact_url("mongodb://user@h1"),
            "mongodb://user@h1"
        );
    }

    #[test]
    fn the_default_target_replaces_the_first_shard_with_the_source() {
        let opts = Options {
            from: "mongodb://127.0.0.1:27401".into(),
            to: None,
            provider: None,
            yes: true,
            skip_backup: true,
            backup_dir: None,
            restart: false,
            timeout: Duration::from_secs(1),
            state_root: PathBuf::from("/nonexistent"),
        };
        let src = SourceSet {
            name: "rs0".into(),
            auth: Auth::none(),
            members: vec![
                "127.0.0.1:27401".into(),
                "127.0.0.1:27402".into(),
                "127.0.0.1:27403".into(),
            ],
            version: "7.0.14".into(),
        };
        let s = target_topology(&opts, &src).unwrap();
        assert_eq!(s.shards[0].name, "rs0");
        assert_eq!(s.shards[0].addrs(), src.members);
        assert_eq!(s.shards[1].name, "shard2");
        // remote hosts cannot join the 127.0.0.1 default
        let remote = SourceSet {
            members: vec!["db1.example.com:27017".into()],
            ..src.clone()
        };
        let e = format!("{:#}", target_topology(&opts, &remote).unwrap_err());
        assert!(e.contains("mixes localhost"), "{e}");
        assert!(e.contains("--to FILE"), "{e}");
        // a target that does not declare the set
        let other = SourceSet {
            name: "main".into(),
            ..src.clone()
        };
        let mut o2 = opts.clone();
        o2.to = Some("mongo-sharded".into());
        let e = target_topology(&o2, &other).unwrap_err().to_string();
        assert!(e.contains("declares no shard named main"), "{e}");
    }

    #[test]
    fn journals_round_trip_and_record_steps_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(JOURNAL_FILE);
        assert_eq!(Journal::load(&p).unwrap(), None);
        let mut j = Journal {
            source: "mongodb://h".into(),
            set: "rs0".into(),
            target: "t".into(),
            started: now_text(),
            steps: vec![],
            counts_before: [("d.c".to_string(), 5u64)].into_iter().collect(),
            backup: None,
            finished: None,
        };
        j.record("preflight", "done", "x");
        j.record("preflight", "done", "y");
        j.save(&p).unwrap();
        let back = Journal::load(&p).unwrap().unwrap();
        assert_eq!(back, j);
        assert_eq!(back.steps.len(), 1);
        assert!(back.done("preflight") && !back.done("backup"));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
