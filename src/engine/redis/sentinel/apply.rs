//! Executing a sentinel plan. Steps run in phases (starts, replication,
//! settings, sentinels, waits); inside a phase every node is handled at
//! once. Each step is idempotent, so a run that fails half-way is completed
//! by running `init` again. Every wait polls a real condition and, on its
//! deadline, names what is still missing.

use super::converge::{self, current_master};
use super::observe::{entry_addr, Observed, NODE_TIMEOUT};
use super::plan::Action;
use super::{SentinelEngine, DATA_CONF, SENTINEL_CONF};
use crate::engine::redis::{self, clean_error, connect, quote_conf, split_addr};
use crate::engine::{Applied, Ctx, Engine};
use crate::plan::{Plan, Step};
use crate::provider::local;
use crate::secret::Secret;
use crate::wait::{self, Poll};
use ::redis::aio::MultiplexedConnection;
use anyhow::{anyhow, bail, Context, Result};
use std::collections::HashMap;
use std::time::{Duration, Instant};

fn steps(plan: &Plan<Action>, pred: impl Fn(&Action) -> bool) -> Vec<&Step<Action>> {
    plan.steps.iter().filter(|s| pred(&s.action)).collect()
}

pub async fn apply(engine: &SentinelEngine<'_>, ctx: &Ctx, plan: Plan<Action>) -> Result<Applied> {
    let started = Instant::now();
    let phase = |name: &str| {
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "phase {name}"
        )
    };

    // Every port that will be needed, before anything starts: all or nothing.
    let starts = steps(&plan, Action::is_start);
    for s in &starts {
        local::check_port_free(&s.target)
            .with_context(|| format!("cannot start node {}; nothing was started", s.target))?;
    }
    let data_bin = if starts
        .iter()
        .any(|s| matches!(s.action, Action::StartData { .. }))
    {
        Some(redis::redis_server_bin(
            engine.spec.redis_server_bin.as_deref(),
        )?)
    } else {
        None
    };
    let sentinel_bin = if starts
        .iter()
        .any(|s| matches!(s.action, Action::StartSentinel { .. }))
    {
        Some(redis::redis_sentinel_bin(
            engine.spec.redis_sentinel_bin.as_deref(),
        )?)
    } else {
        None
    };
    if !starts.is_empty() {
        ctx.state.create()?;
    }

    // Phase 1: data nodes at once, then sentinels at once (so the manifest
    // lists sentinels last, and `down` stops them before the data nodes:
    // no failover is ever started by a shutdown).
    phase("start");
    let (data_starts, sentinel_starts): (Vec<&Step<Action>>, Vec<&Step<Action>>) = starts
        .iter()
        .partition(|s| matches!(s.action, Action::StartData { .. }));
    for wave in [&data_starts, &sentinel_starts] {
        futures::future::try_join_all(wave.iter().map(|s| async {
            match &s.action {
                Action::StartData { restart, replicaof } => {
                    start_data(
                        engine,
                        ctx,
                        &s.target,
                        data_bin.as_deref().expect("found above"),
                        *restart,
                        replicaof.as_deref(),
                    )
                    .await
                }
                Action::StartSentinel { restart } => {
                    start_sentinel(
                        engine,
                        ctx,
                        &s.target,
                        sentinel_bin.as_deref().expect("found above"),
                        *restart,
                    )
                    .await
                }
                _ => unreachable!(),
            }
        }))
        .await?;
    }
    // A restarted node listens before it has loaded its data (it answers
    // LOADING until then): wait until every started node serves commands.
    let started_nodes: Vec<(&str, Option<&Secret>)> = starts
        .iter()
        .map(|s| match s.action {
            Action::StartData { .. } => (s.target.as_str(), engine.password.as_ref()),
            _ => (s.target.as_str(), engine.sentinel_password.as_ref()),
        })
        .collect();
    if !started_nodes.is_empty() {
        wait_ready(&started_nodes, ctx.timeout).await?;
    }
    if plan
        .steps
        .iter()
        .any(|s| matches!(s.action, Action::ObserveAgain))
    {
        return Ok(Applied::Replan);
    }

    if let Some(s) = steps(&plan, |a| matches!(a, Action::WaitFailover { .. })).first() {
        phase("wait for failover");
        let new = wait_failover(engine, ctx, &s.target).await?;
        tracing::info!(
            "{}: the sentinels promoted {new} in place of {}",
            engine.spec.meta.name,
            s.target
        );
        return Ok(Applied::Replan);
    }

    // Phase 2: replication.
    let data_addrs = engine.spec.data_nodes();
    let touched_data: Vec<&str> = plan
        .steps
        .iter()
        .filter(|s| {
            matches!(
                s.action,
                Action::BootstrapSettings
                    | Action::ReplicaOf { .. }
                    | Action::RestoreSettings(_)
                    | Action::ConfigSet(_)
            )
        })
        .map(|s| s.target.as_str())
        .collect();
    let conns = open(&data_addrs, engine.password.as_ref()).await?;
    let conn = |a: &str| -> MultiplexedConnection {
        conns
            .get(a)
            .cloned()
            .expect("a connection to every data node")
    };
    for s in steps(&plan, |a| matches!(a, Action::BootstrapSettings)) {
        phase("bootstrap settings");
        config_set(
            conn(&s.target),
            &s.target,
            &[("repl-diskless-sync-delay".into(), "0".into())],
            false,
        )
        .await?;
    }
    let reps = steps(&plan, |a| matches!(a, Action::ReplicaOf { .. }));
    if !reps.is_empty() {
        phase("replicaof");
        futures::future::try_join_all(reps.iter().map(|s| {
            let Action::ReplicaOf { master, .. } = &s.action else {
                unreachable!()
            };
            replicaof(conn(&s.target), &s.target, master)
        }))
        .await?;
    }
    if !steps(&plan, |a| matches!(a, Action::WaitSynced { .. })).is_empty() {
        phase("replica sync");
        wait_converged(engine, ctx, "the replicas to sync", false).await?;
        tracing::info!(
            "{}: replicas in sync after {:.2}s",
            engine.spec.meta.name,
            started.elapsed().as_secs_f64()
        );
    }
    for s in steps(&plan, |a| {
        matches!(a, Action::RestoreSettings(_) | Action::ConfigSet(_))
    }) {
        let (Action::RestoreSettings(kv) | Action::ConfigSet(kv)) = &s.action else {
            unreachable!()
        };
        config_set(conn(&s.target), &s.target, kv, true).await?;
    }
    if engine.provider == crate::provider::ProviderKind::Local {
        for a in touched_data {
            redis::protect_config(&ctx.state, a);
        }
    }

    // Phase 3: sentinels.
    let mut by_sentinel: Vec<(&str, Vec<&Action>)> = Vec::new();
    for s in steps(&plan, |a| {
        matches!(
            a,
            Action::RemoveMonitor { .. } | Action::Monitor { .. } | Action::SentinelSet(_)
        )
    }) {
        match by_sentinel.iter_mut().find(|(n, _)| *n == s.target) {
            Some((_, v)) => v.push(&s.action),
            None => by_sentinel.push((&s.target, vec![&s.action])),
        }
    }
    if !by_sentinel.is_empty() {
        phase("monitor");
        futures::future::try_join_all(
            by_sentinel
                .into_iter()
                .map(|(node, actions)| configure_sentinel(engine, node, actions)),
        )
        .await?;
    }
    for s in steps(&plan, |a| matches!(a, Action::Reset { .. })) {
        phase("reset");
        let mut c = connect(&s.target, engine.sentinel_password.as_ref(), NODE_TIMEOUT).await?;
        ::redis::cmd("SENTINEL")
            .arg("RESET")
            .arg(&engine.spec.master_name)
            .query_async::<i64>(&mut c)
            .await
            .map_err(|e| anyhow!("{}: SENTINEL RESET failed: {}", s.target, clean_error(&e)))?;
        share_hellos(engine, ctx).await?;
        // One at a time: this one must see everything again before the next.
        wait_converged(
            engine,
            ctx,
            &format!("sentinel {} to re-discover the set", s.target),
            true,
        )
        .await?;
    }
    if !steps(&plan, |a| matches!(a, Action::Introduce)).is_empty() {
        phase("introduce");
        share_hellos(engine, ctx).await?;
    }
    if !steps(&plan, |a| matches!(a, Action::WaitSentinels { .. })).is_empty() {
        phase("sentinels converge");
        wait_converged(engine, ctx, "the sentinels to agree", true).await?;
        tracing::info!(
            "{}: sentinels agree after {:.2}s",
            engine.spec.meta.name,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(Applied::Done)
}

/// Wait until every node answers PING (not LOADING, not refused).
async fn wait_ready(nodes: &[(&str, Option<&Secret>)], timeout: Duration) -> Result<()> {
    wait::until(
        "the started nodes to load their data",
        timeout,
        Duration::from_millis(5),
        Duration::from_millis(100),
        || async {
            let results = futures::future::join_all(nodes.iter().map(|(a, pw)| async move {
                let mut c = connect(a, *pw, NODE_TIMEOUT)
                    .await
                    .map_err(|e| format!("{a}: {e}"))?;
                ::redis::cmd("PING")
                    .query_async::<String>(&mut c)
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("{a}: {}", clean_error(&e)))
            }))
            .await;
            let pending: Vec<String> = results.into_iter().filter_map(|r| r.err()).collect();
            if pending.is_empty() {
                Poll::Ready(())
            } else {
                Poll::Pending(pending.join("; "))
            }
        },
    )
    .await
}

/// One connection per data node, kept across the phases.
async fn open(
    addrs: &[String],
    password: Option<&Secret>,
) -> Result<HashMap<String, MultiplexedConnection>> {
    let tasks = addrs.iter().map(|a| async move {
        connect(a, password, NODE_TIMEOUT)
            .await
            .map(|c| (a.clone(), c))
            .map_err(|e| anyhow!("{a}: {e}; nothing further was changed"))
    });
    Ok(futures::future::try_join_all(tasks)
        .await?
        .into_iter()
        .collect())
}

async fn run(ctx: &Ctx, rec: local::ProcessRecord, what: &str) -> Result<()> {
    match local::start(&ctx.state, &rec, None, ctx.timeout).await? {
        local::Started::Spawned(pid) => tracing::info!("{}: started {what} (pid {pid})", rec.node),
        local::Started::Reused(pid) => tracing::info!("{}: already running (pid {pid})", rec.node),
    }
    Ok(())
}

/// Start a data node: a fresh one with a config written from the topology,
/// a restarted one with its own config, `replicaof` set first when it must
/// come back as a replica.
async fn start_data(
    engine: &SentinelEngine<'_>,
    ctx: &Ctx,
    addr: &str,
    bin: &std::path::Path,
    restart: bool,
    replicaof: Option<&str>,
) -> Result<()> {
    let conf = ctx.state.node_dir(addr).join(DATA_CONF);
    let rec = if restart && conf.is_file() {
        let text = std::fs::read_to_string(&conf)
            .with_context(|| format!("cannot read {}", conf.display()))?;
        let value = match replicaof {
            Some(m) => {
                let (h, p) = split_addr(m)?;
                Some(format!("{} {p}", quote_conf(h)))
            }
            None => None,
        };
        let text = redis::set_conf_directive(&text, "replicaof", &["slaveof"], value.as_deref());
        crate::secret::write_private(&conf, text.as_bytes())?;
        redis::node_record(&ctx.state, addr, bin, DATA_CONF)?
    } else {
        let mut settings = engine.spec.config.clone();
        // Redis 7 connects to its master from whatever source address the
        // kernel picks (127.0.0.1 for every 127.0.0.x): announce the
        // declared one, or the master and the sentinels would list this
        // replica where it does not listen.
        if !settings.iter().any(|(k, _)| k == "replica-announce-ip") {
            let ip = super::observe::resolve(addr).await;
            let (ip, _) = split_addr(&ip)?;
            settings.push(("replica-announce-ip".into(), ip.to_string()));
        }
        redis::server_process(&ctx.state, addr, bin, &settings, engine.password.as_ref())?
    };
    run(ctx, rec, "redis-server").await
}

/// A random sentinel id: 40 hex characters, like the ones Redis draws.
fn new_sentinel_id() -> String {
    use rand::Rng;
    let bytes: [u8; 20] = rand::rng().random();
    hex::encode(bytes)
}

/// The config of a sentinel that has never run: where it listens, its own
/// id (drawn here, so no two sentinels ever share one, as happens when one
/// config is copied to all), and its password. It monitors nothing until
/// `SENTINEL MONITOR`; from then on the sentinel rewrites this file itself.
pub fn sentinel_conf(
    addr: &str,
    ip: &str,
    dir: &std::path::Path,
    myid: &str,
    requirepass: Option<&Secret>,
) -> Result<String> {
    let (host, port) = split_addr(addr)?;
    let mut c = String::new();
    c.push_str("# written by datatier at first start; the sentinel keeps its state here\n");
    c.push_str(&format!(
        "port {port}\nbind {host}\ndaemonize no\ndir {}\nlogfile \"\"\n",
        quote_conf(&dir.display().to_string())
    ));
    c.push_str(&format!("sentinel myid {myid}\n"));
    // Hellos carry this address; without it a sentinel on 127.0.0.2 would
    // announce the source address of its connections (127.0.0.1).
    c.push_str(&format!("sentinel announce-ip {ip}\n"));
    if let Some(p) = requirepass {
        c.push_str(&format!("requirepass {}\n", quote_conf(p.expose())));
    }
    Ok(c)
}

async fn start_sentinel(
    engine: &SentinelEngine<'_>,
    ctx: &Ctx,
    addr: &str,
    bin: &std::path::Path,
    restart: bool,
) -> Result<()> {
    let dir = ctx.state.node_dir(addr);
    let conf = dir.join(SENTINEL_CONF);
    if !(restart && conf.is_file()) {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        }
        let dir_abs = std::fs::canonicalize(&dir)?;
        let ip = super::observe::resolve(addr).await;
        let (ip, _) = split_addr(&ip)?;
        let text = sentinel_conf(
            addr,
            ip,
            &dir_abs,
            &new_sentinel_id(),
            engine.sentinel_password.as_ref(),
        )?;
        crate::secret::write_private(&conf, text.as_bytes())?;
    }
    let rec = redis::node_record(&ctx.state, addr, bin, SENTINEL_CONF)?;
    run(ctx, rec, "redis-sentinel").await
}

/// Hand sentinels each other's hello messages: to every sentinel that does
/// not know another yet (introductions), or that has an older configuration
/// than another (propagation after a failover). The message is exactly what
/// that other sentinel publishes itself every 2 s (`ip,port,id,epoch,master
/// name,master ip,master port,config epoch`), built from its own answers,
/// so the receiver learns only what it would learn on the next hello round.
pub async fn share_hellos(engine: &SentinelEngine<'_>, ctx: &Ctx) -> Result<usize> {
    let obs = engine.observe(ctx).await?;
    let name = &engine.spec.master_name;
    let mut sends = Vec::new();
    for b in &obs.sentinels {
        let Some(bv) = b.view().filter(|v| v.monitors()) else {
            continue;
        };
        for a in &obs.sentinels {
            if a.addr == b.addr {
                continue;
            }
            let Some(av) = a.view().filter(|v| v.monitors()) else {
                continue;
            };
            let (Some(id), Some(m)) = (av.myid.as_deref(), av.master_addr.as_deref()) else {
                continue;
            };
            let known = bv
                .sentinels
                .iter()
                .any(|e| entry_addr(e) == a.ip && e.get("runid").map(String::as_str) == Some(id));
            let same_master = bv.master_addr.as_deref() == Some(m);
            let newer = av.config_epoch() > bv.config_epoch();
            if !(newer || (same_master && !known)) {
                continue;
            }
            let (ip, port) = split_addr(&a.ip)?;
            let (mip, mport) = split_addr(m)?;
            let epoch = av.config_epoch();
            let hello = format!("{ip},{port},{id},{epoch},{name},{mip},{mport},{epoch}");
            sends.push((b.addr.clone(), hello));
        }
    }
    let n = sends.len();
    futures::future::try_join_all(sends.into_iter().map(|(b, hello)| async move {
        let mut c = connect(&b, engine.sentinel_password.as_ref(), NODE_TIMEOUT).await?;
        ::redis::cmd("PUBLISH")
            .arg("__sentinel__:hello")
            .arg(&hello)
            .query_async::<i64>(&mut c)
            .await
            .map_err(|e| anyhow!("{b}: PUBLISH hello failed: {}", clean_error(&e)))?;
        Ok::<_, anyhow::Error>(())
    }))
    .await?;
    Ok(n)
}

async fn configure_sentinel(
    engine: &SentinelEngine<'_>,
    node: &str,
    actions: Vec<&Action>,
) -> Result<()> {
    let name = &engine.spec.master_name;
    let mut c = connect(node, engine.sentinel_password.as_ref(), NODE_TIMEOUT).await?;
    for a in actions {
        match a {
            Action::RemoveMonitor { .. } => {
                match ::redis::cmd("SENTINEL")
                    .arg("REMOVE")
                    .arg(name)
                    .query_async::<()>(&mut c)
                    .await
                {
                    Ok(()) => {}
                    Err(e) if e.to_string().contains("No such master") => {}
                    Err(e) => bail!("{node}: SENTINEL REMOVE failed: {}", clean_error(&e)),
                }
            }
            Action::Monitor { master, quorum } => {
                let (h, p) = split_addr(master)?;
                match ::redis::cmd("SENTINEL")
                    .arg("MONITOR")
                    .arg(name)
                    .arg(h)
                    .arg(p)
                    .arg(*quorum)
                    .query_async::<()>(&mut c)
                    .await
                {
                    Ok(()) => {}
                    // A re-run after a partial apply: settings follow below.
                    Err(e) if e.to_string().contains("Duplicated master name") => {}
                    Err(e) => bail!(
                        "{node}: SENTINEL MONITOR {name} {master} failed: {}",
                        clean_error(&e)
                    ),
                }
                let mut kv = engine.spec.sentinel_settings();
                if let Some(p) = &engine.password {
                    kv.push(("auth-pass".into(), p.expose().to_string()));
                }
                sentinel_set(&mut c, node, name, &kv).await?;
            }
            Action::SentinelSet(kv) => sentinel_set(&mut c, node, name, kv).await?,
            _ => unreachable!(),
        }
    }
    Ok(())
}

async fn sentinel_set(
    c: &mut MultiplexedConnection,
    node: &str,
    name: &str,
    kv: &[(String, String)],
) -> Result<()> {
    let mut cmd = ::redis::cmd("SENTINEL");
    cmd.arg("SET").arg(name);
    for (k, v) in kv {
        cmd.arg(k).arg(v);
    }
    cmd.query_async::<()>(c).await.map_err(|e| {
        // Never echo the values: one of them may be the auth-pass.
        let keys: Vec<&str> = kv.iter().map(|(k, _)| k.as_str()).collect();
        anyhow!(
            "{node}: SENTINEL SET {name} {} failed: {}",
            keys.join(" "),
            clean_error(&e)
        )
    })
}

async fn replicaof(mut c: MultiplexedConnection, node: &str, master: &str) -> Result<()> {
    let (h, p) = split_addr(master)?;
    ::redis::cmd("REPLICAOF")
        .arg(h)
        .arg(p)
        .query_async::<()>(&mut c)
        .await
        .map_err(|e| anyhow!("{node}: REPLICAOF {h} {p} failed: {}", clean_error(&e)))?;
    rewrite(&mut c, node).await
}

/// Persist live settings to the node's config, so a restart keeps them.
async fn rewrite(c: &mut MultiplexedConnection, node: &str) -> Result<()> {
    match ::redis::cmd("CONFIG")
        .arg("REWRITE")
        .query_async::<()>(c)
        .await
    {
        Ok(()) => Ok(()),
        Err(e) if e.to_string().contains("without a config file") => {
            tracing::warn!(
                node,
                "runs without a config file: the change is live but will not survive a restart"
            );
            Ok(())
        }
        Err(e) => bail!("{node}: CONFIG REWRITE failed: {}", clean_error(&e)),
    }
}

async fn config_set(
    mut c: MultiplexedConnection,
    node: &str,
    kv: &[(String, String)],
    persist: bool,
) -> Result<()> {
    let mut cmd = ::redis::cmd("CONFIG");
    cmd.arg("SET");
    for (k, v) in kv {
        cmd.arg(k).arg(v);
    }
    cmd.query_async::<()>(&mut c)
        .await
        .map_err(|e| anyhow!("{node}: CONFIG SET failed: {}", clean_error(&e)))?;
    if persist {
        rewrite(&mut c, node).await?;
    }
    Ok(())
}

/// Poll full observations until the data nodes (and, with `sentinels`,
/// the sentinels too) have no gaps left.
pub async fn wait_converged(
    engine: &SentinelEngine<'_>,
    ctx: &Ctx,
    what: &str,
    sentinels: bool,
) -> Result<Observed> {
    wait::until(
        what,
        ctx.timeout,
        Duration::from_millis(10),
        Duration::from_millis(100),
        || async {
            let obs = match engine.observe(ctx).await {
                Ok(o) => o,
                Err(e) => return Poll::Pending(format!("{e:#}")),
            };
            let gaps = gaps(engine, &obs, sentinels);
            if gaps.is_empty() {
                Poll::Ready(obs)
            } else {
                Poll::Pending(summarize(&gaps))
            }
        },
    )
    .await
}

/// The gaps of one observation (data nodes, optionally sentinels).
pub fn gaps(engine: &SentinelEngine<'_>, obs: &Observed, sentinels: bool) -> Vec<String> {
    let cm = current_master(engine.spec, obs);
    let Some(m) = cm.index else {
        return vec![format!(
            "the master {} is not a declared data node",
            cm.addr
        )];
    };
    let mut g = converge::data_gaps(obs, m);
    if sentinels {
        g.extend(converge::all_sentinel_gaps(obs, m));
    }
    g
}

pub fn summarize(gaps: &[String]) -> String {
    let n = gaps.len();
    let shown: Vec<&str> = gaps.iter().take(5).map(String::as_str).collect();
    format!(
        "{n} gap(s): {}{}",
        shown.join("; "),
        if n > 5 { "; ..." } else { "" }
    )
}

/// Wait until the sentinels name a master other than `old` that answers.
async fn wait_failover(engine: &SentinelEngine<'_>, ctx: &Ctx, old: &str) -> Result<String> {
    let spec = engine.spec;
    // The sentinels need down-after-milliseconds to agree the master is
    // down, then an election and a promotion.
    let budget = ctx.timeout.max(
        Duration::from_millis(spec.down_after_ms + spec.failover_timeout_ms)
            + Duration::from_secs(10),
    );
    wait::until(
        &format!("the sentinels to fail over from {old}"),
        budget,
        Duration::from_millis(50),
        Duration::from_millis(200),
        || async {
            let obs = match engine.observe(ctx).await {
                Ok(o) => o,
                Err(e) => return Poll::Pending(format!("{e:#}")),
            };
            let cm = current_master(spec, &obs);
            match cm.index {
                Some(i)
                    if obs.data[i].addr != old
                        && obs.data[i].view().is_some_and(|v| v.is_master()) =>
                {
                    Poll::Ready(obs.data[i].addr.clone())
                }
                _ => Poll::Pending(format!(
                    "{} still name {} ({} of {} sentinels answering)",
                    cm.source,
                    obs.name_of(&cm.addr),
                    cm.answered,
                    obs.sentinels.len()
                )),
            }
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_sentinel_config_has_its_own_id() {
        let id = new_sentinel_id();
        assert_eq!(id.len(), 40);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(id, new_sentinel_id());
        let c = sentinel_conf(
            "127.0.0.1:26380",
            "127.0.0.1",
            std::path::Path::new("/tmp/x y"),
            &id,
            Some(&Secret::new("pw")),
        )
        .unwrap();
        for want in [
            "port 26380\nbind 127.0.0.1\n",
            "dir \"/tmp/x y\"\n",
            &format!("sentinel myid {id}\n"),
            "requirepass pw\n",
            "sentinel announce-ip 127.0.0.1\n",
        ] {
            assert!(c.contains(want), "missing {want:?} in:\n{c}");
        }
        assert!(!c.contains("monitor"));
    }
}
