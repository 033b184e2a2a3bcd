//! Executing a Postgres plan. Steps run in plan order; neighbouring steps
//! that act on different replicas (base backups, starts, rewinds) run at
//! once. Every step is idempotent (a role that exists is not created
//! again, a slot is created only if missing, a data dir is made under
//! `data.partial`), so a run that fails half-way is completed by running
//! `init` again.

use super::observe::{self, NodeView};
use super::pgbouncer;
use super::plan::{self, Action};
use super::scram::ScramSecret;
use super::server::{self, NodePaths, PgBinaries};
use super::sql::{self, ident, literal, NODE_TIMEOUT};
use super::PostgresEngine;
use crate::engine::{Applied, Ctx};
use crate::plan::{Plan, Step};
use crate::provider::local::{self, ProcessRecord, RunAs, StopSignal};
use crate::topology::postgres::PgNode;
use crate::wait::{self, Poll};
use anyhow::{anyhow, bail, Context, Result};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_postgres::Client;

/// A libpq password file for the database owner, for applications
/// (`PGPASSFILE`), written when datatier keeps the password.
pub const APP_PGPASS: &str = "app.pgpass";

/// What every step needs.
pub struct Runtime<'a> {
    pub e: &'a PostgresEngine<'a>,
    pub ctx: &'a Ctx,
    pub who: Option<RunAs>,
    bins: std::sync::OnceLock<PgBinaries>,
    /// Admin connections, reused across steps (each SCRAM login costs).
    conns: std::sync::Mutex<std::collections::HashMap<String, Arc<Client>>>,
}

impl<'a> Runtime<'a> {
    pub fn new(e: &'a PostgresEngine<'a>, ctx: &'a Ctx) -> Result<Self> {
        let who = if e.is_local() {
            server::run_as()?
        } else {
            None
        };
        Ok(Runtime {
            e,
            ctx,
            who,
            bins: std::sync::OnceLock::new(),
            conns: Default::default(),
        })
    }

    pub fn bins(&self) -> Result<&PgBinaries> {
        if let Some(b) = self.bins.get() {
            return Ok(b);
        }
        let b = PgBinaries::find(self.e.spec.bin_dir.as_deref())?;
        Ok(self.bins.get_or_init(|| b))
    }

    pub fn who(&self) -> Option<&RunAs> {
        self.who.as_ref()
    }

    pub fn node(&self, addr: &str) -> Result<&PgNode> {
        self.e
            .spec
            .node(addr)
            .ok_or_else(|| anyhow!("{addr} is not a node of this topology"))
    }

    pub fn paths(&self, node: &PgNode) -> NodePaths {
        server::node_paths(&self.ctx.state, node)
    }

    /// An admin connection to a node (reused while it stays open).
    pub async fn admin(&self, addr: &str) -> Result<Arc<Client>> {
        if let Some(c) = self.conns.lock().expect("not poisoned").get(addr) {
            if !c.is_closed() {
                return Ok(c.clone());
            }
        }
        let c = sql::connect(
            addr,
            &self.e.spec.admin.user,
            self.e.admin_password.as_ref(),
            "postgres",
            NODE_TIMEOUT,
        )
        .await
        .map_err(|e| anyhow!("{addr}: cannot connect as {}: {e}", self.e.spec.admin.user))?;
        let c = Arc::new(c);
        self.conns
            .lock()
            .expect("not poisoned")
            .insert(addr.to_string(), c.clone());
        Ok(c)
    }

    /// The record that runs `node`, as the manifest has it (or as it
    /// would be written now).
    pub fn record(&self, node: &PgNode) -> Result<ProcessRecord> {
        if let Some(r) = self
            .ctx
            .state
            .manifest()?
            .into_iter()
            .find(|r| r.node == node.addr())
        {
            return Ok(r);
        }
        Ok(server::server_record(
            self.e.spec,
            self.bins()?,
            node,
            &self.paths(node),
            self.who(),
        ))
    }
}

pub async fn apply(e: &PostgresEngine<'_>, ctx: &Ctx, plan: Plan<Action>) -> Result<Applied> {
    let rt = Runtime::new(e, ctx)?;
    if e.is_local() {
        // All or nothing: every port a new process needs must be free.
        let manifest = ctx.state.manifest()?;
        for s in plan.steps.iter().filter(|s| s.action.starts_process()) {
            let rec = manifest.iter().find(|r| r.node == s.target);
            if rec.is_some_and(|r| matches!(local::state(r), local::ProcState::Running(_))) {
                continue;
            }
            local::check_port_free(&s.target)
                .with_context(|| format!("cannot start {}; nothing was started", s.target))?;
        }
        ctx.state.create()?;
        server::raise_nofile_limit();
    }
    for p in [&e.admin, &e.replication_password, &e.owner_password] {
        p.persist()?;
    }
    let started = Instant::now();
    let steps = &plan.steps;
    let mut i = 0;
    while i < steps.len() {
        if steps[i].action == Action::ObserveAgain {
            return Ok(Applied::Replan);
        }
        if !steps[i].action.parallel() {
            run_step(&rt, &steps[i]).await?;
            i += 1;
            continue;
        }
        let block: Vec<&Step<Action>> = steps[i..]
            .iter()
            .take_while(|s| s.action.parallel())
            .collect();
        i += block.len();
        let mut groups: Vec<(&str, Vec<&Step<Action>>)> = Vec::new();
        for s in block {
            match groups.iter_mut().find(|(t, _)| *t == s.target) {
                Some((_, v)) => v.push(s),
                None => groups.push((&s.target, vec![s])),
            }
        }
        let rt = &rt;
        let results = futures::future::join_all(groups.into_iter().map(|(_, steps)| async move {
            for s in steps {
                run_step(rt, s).await?;
            }
            Ok::<_, anyhow::Error>(())
        }))
        .await;
        results.into_iter().collect::<Result<Vec<_>>>()?;
    }
    if let super::Origin::Stored { .. } = e.owner_password.origin {
        crate::secret::write_private(
            &ctx.state.dir.join(APP_PGPASS),
            server::pgpass_line(&e.spec.owner.user, &e.owner_password.value).as_bytes(),
        )?;
    }
    tracing::debug!("applied in {:.2}s", started.elapsed().as_secs_f64());
    Ok(Applied::Done)
}

/// Run one step.
pub async fn run_step(rt: &Runtime<'_>, s: &Step<Action>) -> Result<()> {
    let t0 = Instant::now();
    let e = rt.e;
    let spec = e.spec;
    let timeout = rt.ctx.timeout;
    let target = s.target.as_str();
    match &s.action {
        Action::InitDb => {
            let node = rt.node(target)?;
            let paths = rt.paths(node);
            server::initdb(spec, rt.bins()?, &paths, &e.admin.value, rt.who(), timeout).await?;
            write_pgpass(rt, &paths)?;
        }
        Action::StartPrimary => start_node(rt, rt.node(target)?).await?,
        Action::StartReplica => {
            let node = rt.node(target)?;
            if let Err(err) = start_node(rt, node).await {
                // A replica whose data cannot recover: --force rebuilds it.
                let Some(primary) = rt.ctx.force.then(|| current_primary_of(rt)).flatten() else {
                    return Err(err.context(format!(
                        "{target} did not start as a replica; nothing else was changed on it\nhint: --force rebuilds it from the primary with a fresh base backup (its own data is deleted)"
                    )));
                };
                tracing::warn!(
                    "{target}: {err:#}; --force: rebuilding it from {}",
                    primary.addr()
                );
                local::stop(&rt.record(node)?, timeout).await?;
                rebuild(rt, &primary, node).await?;
                start_node(rt, node).await?;
            }
        }
        Action::BaseBackup { from } => {
            let node = rt.node(target)?;
            let paths = rt.paths(node);
            server::ensure_dir(&paths.dir, rt.who())?;
            write_pgpass(rt, &paths)?;
            server::basebackup(
                spec,
                rt.bins()?,
                rt.node(from)?,
                node,
                &paths,
                rt.who(),
                timeout,
            )
            .await?;
        }
        Action::Rewind { from } => {
            rejoin(rt, rt.node(from)?, rt.node(target)?).await?;
        }
        Action::Rebuild { from, .. } => {
            let node = rt.node(target)?;
            let rec = rt.record(node)?;
            local::stop(&rec, timeout).await?;
            rebuild(rt, rt.node(from)?, node).await?;
        }
        Action::WriteFiles { reload, .. } => {
            let node = rt.node(target)?;
            let paths = rt.paths(node);
            server::write_data_files(spec, &paths.data, rt.who())?;
            write_pgpass(rt, &paths)?;
            if *reload {
                let c = rt.admin(target).await?;
                sql::exec(&c, "SELECT pg_reload_conf()", NODE_TIMEOUT).await?;
            }
        }
        Action::Restart { .. } => {
            let node = rt.node(target)?;
            if e.is_local() {
                let rec = rt.record(node)?;
                local::stop(&rec, timeout).await?;
                start_node(rt, node).await?;
            } else {
                bail!("{target} needs a restart for some settings; datatier does not restart nodes it does not run");
            }
        }
        Action::ObserveAgain => {}
        Action::CreateRole {
            user, replication, ..
        } => {
            let password = if *replication {
                &e.replication_password
            } else {
                &e.owner_password
            };
            let secret = ScramSecret::generate(password.value.expose());
            let c = rt.admin(target).await?;
            let exists = !sql::rows(
                &c,
                &format!("SELECT 1 FROM pg_roles WHERE rolname = {}", literal(user)),
                NODE_TIMEOUT,
            )
            .await?
            .is_empty();
            let verb = if exists { "ALTER" } else { "CREATE" };
            sql::exec(
                &c,
                &format!(
                    "{verb} ROLE {} WITH LOGIN{} PASSWORD {}",
                    ident(user),
                    if *replication { " REPLICATION" } else { "" },
                    literal(&secret.to_string())
                ),
                NODE_TIMEOUT,
            )
            .await
            .with_context(|| format!("{target}: {verb} ROLE {user}"))?;
        }
        Action::AlterRole { user, attrs } => {
            let c = rt.admin(target).await?;
            sql::exec(
                &c,
                &format!("ALTER ROLE {} WITH {attrs}", ident(user)),
                NODE_TIMEOUT,
            )
            .await
            .with_context(|| format!("{target}: ALTER ROLE {user}"))?;
        }
        Action::SetPassword { user, .. } => {
            let password = if *user == spec.replication.user {
                &e.replication_password
            } else {
                &e.owner_password
            };
            let secret = ScramSecret::generate(password.value.expose());
            let c = rt.admin(target).await?;
            sql::exec(
                &c,
                &format!(
                    "ALTER ROLE {} PASSWORD {}",
                    ident(user),
                    literal(&secret.to_string())
                ),
                NODE_TIMEOUT,
            )
            .await
            .with_context(|| format!("{target}: ALTER ROLE {user} PASSWORD"))?;
        }
        Action::CreateDatabase { name, owner } => {
            let c = rt.admin(target).await?;
            let exists = !sql::rows(
                &c,
                &format!(
                    "SELECT 1 FROM pg_database WHERE datname = {}",
                    literal(name)
                ),
                NODE_TIMEOUT,
            )
            .await?
            .is_empty();
            if !exists {
                sql::exec(
                    &c,
                    &format!("CREATE DATABASE {} OWNER {}", ident(name), ident(owner)),
                    timeout,
                )
                .await
                .with_context(|| format!("{target}: CREATE DATABASE {name}"))?;
            }
        }
        Action::SetDatabaseOwner { name, owner } => {
            let c = rt.admin(target).await?;
            sql::exec(
                &c,
                &format!("ALTER DATABASE {} OWNER TO {}", ident(name), ident(owner)),
                NODE_TIMEOUT,
            )
            .await
            .with_context(|| format!("{target}: ALTER DATABASE {name} OWNER"))?;
        }
        Action::CreateSlot { slot, .. } => {
            let c = rt.admin(target).await?;
            create_slot(&c, target, slot).await?;
        }
        Action::DropSlot { slot, .. } => {
            let c = rt.admin(target).await?;
            sql::exec(
                &c,
                &format!(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = {} AND NOT active",
                    literal(slot)
                ),
                NODE_TIMEOUT,
            )
            .await
            .with_context(|| format!("{target}: drop slot {slot}"))?;
        }
        Action::Follow { primary } => {
            follow(rt, rt.node(target)?, rt.node(primary)?).await?;
        }
        Action::WaitStreaming { primary, replicas } => {
            wait_streaming(rt, primary, replicas, timeout).await?;
        }
        Action::WriteBouncer { primary, .. } => {
            write_bouncer(rt, rt.node(primary)?, None).await?;
        }
        Action::StartBouncer => start_bouncer(rt).await?,
        Action::ReloadBouncer => {
            let c = bouncer_console(rt).await?;
            pgbouncer::admin(&c, "RELOAD", NODE_TIMEOUT).await?;
        }
        Action::ResumeBouncer { databases } => {
            let c = bouncer_console(rt).await?;
            for d in databases {
                pgbouncer::admin(&c, &format!("RESUME {d}"), NODE_TIMEOUT).await?;
            }
            if let Some(mut j) = super::switchover::Journal::load(&rt.ctx.state) {
                j.phase = super::switchover::Phase::Resumed;
                j.save(&rt.ctx.state)?;
            }
        }
        Action::RecordPrimary { node } => e.record_primary(node)?,
    }
    tracing::info!(
        "{target}: {} ({:.2}s)",
        s.action,
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The primary recorded in the state dir (set before replicas are
/// provisioned).
fn current_primary_of(rt: &Runtime<'_>) -> Option<PgNode> {
    let text = std::fs::read_to_string(rt.ctx.state.dir.join(super::PRIMARY_FILE)).ok()?;
    rt.e.spec.node(text.trim()).cloned()
}

/// The replication role's password file in the node dir.
pub fn write_pgpass(rt: &Runtime<'_>, paths: &NodePaths) -> Result<()> {
    server::ensure_dir(&paths.dir, rt.who())?;
    server::write_owned(
        &paths.pgpass,
        server::pgpass_line(
            &rt.e.spec.replication.user,
            &rt.e.replication_password.value,
        )
        .as_bytes(),
        rt.who(),
    )
}

pub async fn create_slot(c: &Client, target: &str, slot: &str) -> Result<()> {
    sql::exec(
        c,
        &format!(
            "SELECT pg_create_physical_replication_slot({s}, true) WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = {s})",
            s = literal(slot)
        ),
        NODE_TIMEOUT,
    )
    .await
    .with_context(|| format!("{target}: create slot {slot}"))
}

/// Start a node's postgres and wait until it answers queries.
pub async fn start_node(rt: &Runtime<'_>, node: &PgNode) -> Result<()> {
    let paths = rt.paths(node);
    server::prepare_sockdir(&paths, rt.who())?;
    let rec = server::server_record(rt.e.spec, rt.bins()?, node, &paths, rt.who());
    let r = local::start(&rt.ctx.state, &rec, rt.who(), rt.ctx.timeout).await?;
    if let local::Started::Spawned(pid) = r {
        tracing::debug!("{}: postgres started (pid {pid})", node.addr());
    }
    wait_ready(rt, node, &rec).await
}

/// Poll until the node accepts queries (a replica: once consistent); fail
/// at once if the process exits.
pub async fn wait_ready(rt: &Runtime<'_>, node: &PgNode, rec: &ProcessRecord) -> Result<()> {
    let addr = node.addr();
    let local = rt.e.is_local();
    let res = wait::until(
        &format!("{addr} to accept queries"),
        rt.ctx.timeout,
        Duration::from_millis(5),
        Duration::from_millis(100),
        || {
            let addr = addr.clone();
            async move {
                if local && local::state(rec) == local::ProcState::Stopped {
                    return Poll::Ready(Err(anyhow!("{addr}: postgres exited during start")));
                }
                match rt.admin(&addr).await {
                    Ok(c) => match sql::exec(&c, "SELECT 1", NODE_TIMEOUT).await {
                        Ok(()) => Poll::Ready(Ok(())),
                        Err(e) => Poll::Pending(e.to_string()),
                    },
                    Err(e) => Poll::Pending(e.to_string()),
                }
            }
        },
    )
    .await;
    res.and_then(|r| r).map_err(|e| {
        anyhow!(
            "{e}\nlast lines of {}:\n{}",
            rec.log.display(),
            local::log_tail(&rec.log, 15)
        )
    })
}

/// Make a stopped former primary a running replica of `primary`: pg_rewind
/// (a no-op after a clean switchover), standby settings, start. If the
/// rewind or the start fails, take a fresh base backup instead and start
/// that (the plan only asks for this for a node a switchover demoted, or
/// with --force).
pub async fn rejoin(rt: &Runtime<'_>, primary: &PgNode, node: &PgNode) -> Result<()> {
    let paths = rt.paths(node);
    let spec = rt.e.spec;
    server::ensure_dir(&paths.dir, rt.who())?;
    write_pgpass(rt, &paths)?;
    // pg_rewind reads the source's timeline from its control file, which a
    // just-promoted server updates only at its next checkpoint.
    let pc = rt.admin(&primary.addr()).await?;
    sql::exec(&pc, "CHECKPOINT", rt.ctx.timeout)
        .await
        .with_context(|| format!("{}: CHECKPOINT before pg_rewind", primary.addr()))?;
    let rewound = server::rewind(
        spec,
        rt.bins()?,
        primary,
        &paths,
        &rt.e.admin.value,
        rt.who(),
        rt.ctx.timeout,
    )
    .await;
    let first = match rewound {
        Ok(out) => {
            tracing::debug!("{}: pg_rewind: {}", node.addr(), out.trim());
            // pg_rewind copied the primary's configuration; make this node
            // follow it with its own slot.
            server::write_data_files(spec, &paths.data, rt.who())?;
            let conninfo = server::primary_conninfo(spec, primary, node, &paths.pgpass);
            server::set_standby(&paths.data, &conninfo, &node.slot_name(), rt.who())?;
            start_node(rt, node).await
        }
        Err(err) => Err(err),
    };
    if let Err(err) = first {
        tracing::warn!(
            "{}: {err:#}; taking a fresh base backup instead",
            node.addr()
        );
        let rec = rt.record(node)?;
        local::stop(&rec, rt.ctx.timeout).await?;
        rebuild(rt, primary, node).await?;
        start_node(rt, node).await?;
    }
    Ok(())
}

/// Delete a (stopped) node's data dir and base-backup it again.
pub async fn rebuild(rt: &Runtime<'_>, primary: &PgNode, node: &PgNode) -> Result<()> {
    let paths = rt.paths(node);
    if paths.data.exists() {
        std::fs::remove_dir_all(&paths.data)
            .with_context(|| format!("cannot remove {}", paths.data.display()))?;
    }
    let c = rt.admin(&primary.addr()).await?;
    create_slot(&c, &primary.addr(), &node.slot_name()).await?;
    write_pgpass(rt, &paths)?;
    server::basebackup(
        rt.e.spec,
        rt.bins()?,
        primary,
        node,
        &paths,
        rt.who(),
        rt.ctx.timeout,
    )
    .await
}

/// Point a running replica at `primary`.
pub async fn follow(rt: &Runtime<'_>, node: &PgNode, primary: &PgNode) -> Result<()> {
    let addr = node.addr();
    let c = rt.admin(&addr).await?;
    let (conninfo, slot) = if rt.e.is_local() {
        let paths = rt.paths(node);
        write_pgpass(rt, &paths)?;
        (
            server::primary_conninfo(rt.e.spec, primary, node, &paths.pgpass),
            node.slot_name(),
        )
    } else {
        // Someone else's replica: keep its credentials, change the target.
        let row = sql::one(&c, "SELECT current_setting('primary_conninfo') AS c, current_setting('primary_slot_name') AS s", NODE_TIMEOUT).await?;
        let mut parts = sql::parse_conninfo(&sql::RowExt::string(&row, "c"));
        parts.insert("host".into(), primary.host.clone());
        parts.insert("port".into(), primary.port.to_string());
        parts.remove("hostaddr");
        let mut keys: Vec<&String> = parts.keys().collect();
        keys.sort();
        let conninfo = keys
            .iter()
            .map(|k| format!("{k}={}", sql::conninfo_value(&parts[*k])))
            .collect::<Vec<_>>()
            .join(" ");
        let slot = sql::RowExt::string(&row, "s");
        (
            conninfo,
            if slot.is_empty() {
                node.slot_name()
            } else {
                slot
            },
        )
    };
    for stmt in [
        format!("ALTER SYSTEM SET primary_conninfo = {}", literal(&conninfo)),
        format!("ALTER SYSTEM SET primary_slot_name = {}", literal(&slot)),
        "SELECT pg_reload_conf()".to_string(),
    ] {
        sql::exec(&c, &stmt, NODE_TIMEOUT)
            .await
            .with_context(|| format!("{addr}: follow {}", primary.addr()))?;
    }
    Ok(())
}

/// Which of `replicas` do not stream from `pv` yet, with a reason.
pub fn not_streaming(pv: &NodeView, replicas: &[(PgNode, Option<NodeView>)]) -> Vec<String> {
    replicas
        .iter()
        .filter_map(|(n, rv)| match plan::streaming_row(pv, n, rv.as_ref()) {
            Some(row) if row.state == "streaming" => None,
            Some(row) => Some(format!("{} is in state {}", n.addr(), row.state)),
            None => Some(format!("{} is not in pg_stat_replication", n.addr())),
        })
        .collect()
}

/// Poll the primary until every replica streams.
pub async fn wait_streaming(
    rt: &Runtime<'_>,
    primary: &str,
    replicas: &[String],
    timeout: Duration,
) -> Result<()> {
    let spec = rt.e.spec;
    let roles = [spec.admin.user.as_str()];
    let mut reps: Vec<(PgNode, Option<NodeView>)> = Vec::new();
    for r in replicas {
        let n = rt.node(r)?.clone();
        let rv = match rt.admin(r).await {
            Ok(c) => observe::read_node(&c, &roles, &spec.database, &[], NODE_TIMEOUT)
                .await
                .ok(),
            Err(_) => None,
        };
        reps.push((n, rv));
    }
    let c = rt.admin(primary).await?;
    let reps = &reps;
    let c = &c;
    let res = wait::until(
        &format!("{} replica(s) to stream from {primary}", replicas.len()),
        timeout,
        Duration::from_millis(5),
        Duration::from_millis(100),
        || async move {
            match observe::read_node(c, &roles, &spec.database, &[], NODE_TIMEOUT).await {
                Ok(pv) => {
                    let missing = not_streaming(&pv, reps);
                    if missing.is_empty() {
                        Poll::Ready(())
                    } else {
                        Poll::Pending(missing.join("; "))
                    }
                }
                Err(e) => Poll::Pending(format!("{primary}: {e}")),
            }
        },
    )
    .await;
    if let Err(err) = res {
        let mut msg = err.to_string();
        if rt.e.is_local() {
            for (n, _) in reps {
                if let Ok(rec) = rt.record(n) {
                    msg.push_str(&format!(
                        "\nlast lines of {}:\n{}",
                        rec.log.display(),
                        local::log_tail(&rec.log, 6)
                    ));
                }
            }
        }
        bail!(msg);
    }
    Ok(())
}

/// The admin console of the topology's PgBouncer.
pub async fn bouncer_console(rt: &Runtime<'_>) -> Result<Client> {
    let b =
        rt.e.spec
            .pgbouncer
            .as_ref()
            .ok_or_else(|| anyhow!("the topology has no [pgbouncer]"))?;
    pgbouncer::console(
        &b.addr(),
        &rt.e.spec.admin.user,
        rt.e.admin_password.as_ref(),
        NODE_TIMEOUT,
    )
    .await
    .map_err(|e| anyhow!("PgBouncer {}: {e}", b.addr()))
}

/// PgBouncer's files, rendered and ready to install.
pub struct BouncerFiles {
    pub paths: pgbouncer::BouncerPaths,
    pub ini: String,
    pub userlist: String,
    pub routes: Vec<pgbouncer::ResolvedRoute>,
}

/// Render PgBouncer's ini and auth file for `primary` leading and
/// `replicas` (default: every other declared node) serving reads. The auth
/// file takes the roles' SCRAM secrets from `primary`.
pub async fn render_bouncer(
    rt: &Runtime<'_>,
    primary: &PgNode,
    replicas: Option<&[&PgNode]>,
) -> Result<Option<BouncerFiles>> {
    let e = rt.e;
    let spec = e.spec;
    let (Some(b), Some(paths)) = (&spec.pgbouncer, e.bouncer_paths(rt.ctx)) else {
        return Ok(None);
    };
    let all: Vec<&PgNode> = spec.nodes.iter().filter(|n| *n != primary).collect();
    let reps = replicas.unwrap_or(&all);
    let routes = plan::bouncer_routes(e, &rt.ctx.state, primary, reps);
    let c = rt.admin(&primary.addr()).await?;
    let roles = [spec.owner.user.as_str(), spec.admin.user.as_str()];
    let pv = observe::read_node(&c, &roles, &spec.database, &[], NODE_TIMEOUT)
        .await
        .map_err(|err| anyhow!("{}: {err}", primary.addr()))?;
    let userlist = plan::desired_userlist(e, &pv).ok_or_else(|| {
        anyhow!(
            "{}: role {} or {} has no SCRAM password; PgBouncer cannot authenticate it",
            primary.addr(),
            spec.owner.user,
            spec.admin.user
        )
    })?;
    let ini = pgbouncer::render_ini(spec, b, &routes, &paths.userlist);
    Ok(Some(BouncerFiles {
        paths,
        ini,
        userlist,
        routes,
    }))
}

/// Write rendered PgBouncer files (and socket routes).
pub fn install_bouncer(rt: &Runtime<'_>, f: &BouncerFiles) -> Result<()> {
    server::ensure_dir(&f.paths.dir, rt.who())?;
    if rt.e.is_local() {
        pgbouncer::write_links(&f.routes, rt.who())?;
    }
    server::write_owned(&f.paths.userlist, f.userlist.as_bytes(), rt.who())?;
    server::write_owned(&f.paths.ini, f.ini.as_bytes(), rt.who())?;
    Ok(())
}

/// Render and write PgBouncer's files.
pub async fn write_bouncer(
    rt: &Runtime<'_>,
    primary: &PgNode,
    replicas: Option<&[&PgNode]>,
) -> Result<()> {
    if let Some(f) = render_bouncer(rt, primary, replicas).await? {
        install_bouncer(rt, &f)?;
    }
    Ok(())
}

/// Start PgBouncer (local provider) and wait for its console.
pub async fn start_bouncer(rt: &Runtime<'_>) -> Result<()> {
    let e = rt.e;
    let b = e
        .spec
        .pgbouncer
        .as_ref()
        .ok_or_else(|| anyhow!("no [pgbouncer]"))?;
    let files = e
        .bouncer_paths(rt.ctx)
        .ok_or_else(|| anyhow!("no PgBouncer files"))?;
    let bin = server::pgbouncer_bin(e.spec.pgbouncer_bin.as_deref())?;
    let mut rec = ProcessRecord::new(
        &b.addr(),
        bin,
        vec![files.ini.display().to_string()],
        files.dir.clone(),
    );
    rec.user = rt.who().map(|u| u.name.clone());
    rec.stop_signal = StopSignal::Term;
    local::start(&rt.ctx.state, &rec, rt.who(), rt.ctx.timeout).await?;
    wait::until(
        &format!("PgBouncer {} to answer", b.addr()),
        rt.ctx.timeout,
        Duration::from_millis(5),
        Duration::from_millis(100),
        || async {
            match bouncer_console(rt).await {
                Ok(_) => Poll::Ready(()),
                Err(e) => Poll::Pending(e.to_string()),
            }
        },
    )
    .await
}
