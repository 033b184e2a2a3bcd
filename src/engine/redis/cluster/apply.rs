//! Executing a cluster plan. Steps are grouped into phases that run one
//! after another; inside a phase every node is handled at once. Each step
//! is idempotent, so a run that fails half-way is completed by running
//! `init` again.

use super::converge;
use super::nodes;
use super::observe::{Conns, NodeView};
use super::plan::{bootstrap_settings, Action};
use super::ClusterEngine;
use crate::engine::redis::{clean_error, parse_info};
use crate::engine::{Applied, Ctx};
use crate::plan::{Plan, Step};
use crate::provider::local;
use crate::wait::{self, Poll};
use anyhow::{anyhow, bail, Context, Result};
use redis::aio::MultiplexedConnection;
use std::time::{Duration, Instant};

/// Run `f` on every step concurrently; the first error wins (the others
/// still finish, since each is idempotent and cheap).
async fn each<'a, F, Fut>(steps: &'a [&'a Step<Action>], f: F) -> Result<()>
where
    F: Fn(&'a Step<Action>) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let results = futures::future::join_all(steps.iter().map(|s| f(s))).await;
    results.into_iter().collect()
}

fn is(step: &Step<Action>, pred: fn(&Action) -> bool) -> bool {
    pred(&step.action)
}

pub async fn apply(engine: &ClusterEngine<'_>, ctx: &Ctx, plan: Plan<Action>) -> Result<Applied> {
    let spec = engine.spec;
    let steps: Vec<&Step<Action>> = plan.steps.iter().collect();

    // Provisioning first; the rest is planned again from what the nodes say.
    let prov: Vec<&Step<Action>> = steps
        .iter()
        .copied()
        .filter(|s| s.action.is_provisioning())
        .collect();
    if !prov.is_empty() {
        provision(engine, ctx, &prov).await?;
        return Ok(Applied::Replan);
    }

    let addrs = engine.addrs();
    let conns = Conns::open(&addrs, engine.password.as_ref()).await?;
    let started = Instant::now();
    let phase = |name: &str| {
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "phase {name}"
        )
    };

    // Phase 1: bootstrap settings, config epochs, slots.
    for s in steps
        .iter()
        .filter(|s| is(s, |a| matches!(a, Action::BootstrapSettings { .. })))
    {
        let Action::BootstrapSettings { nodes } = &s.action else {
            unreachable!()
        };
        let kv = bootstrap_settings();
        futures::future::try_join_all(nodes.iter().map(|a| {
            let mut c = conns.get(a);
            let kv = &kv;
            async move {
                let mut cmd = redis::cmd("CONFIG");
                cmd.arg("SET");
                for (k, v) in kv {
                    cmd.arg(k).arg(v);
                }
                cmd.query_async::<()>(&mut c).await.map_err(|e| {
                    anyhow!(
                        "{a}: CONFIG SET (bootstrap settings) failed: {}",
                        clean_error(&e)
                    )
                })
            }
        }))
        .await?;
    }
    phase("epochs+slots");
    let p1: Vec<&Step<Action>> = steps
        .iter()
        .copied()
        .filter(|s| {
            matches!(
                s.action,
                Action::Forget(_) | Action::SetConfigEpoch(_) | Action::AddSlots(_)
            )
        })
        .collect();
    // Epochs before slots on the same node: run per node in plan order.
    let mut by_node: Vec<(&str, Vec<&Step<Action>>)> = Vec::new();
    for s in p1 {
        match by_node.iter_mut().find(|(n, _)| *n == s.target) {
            Some((_, v)) => v.push(s),
            None => by_node.push((&s.target, vec![s])),
        }
    }
    futures::future::try_join_all(by_node.into_iter().map(|(node, steps)| {
        let mut c = conns.get(node);
        async move {
            for s in steps {
                match &s.action {
                    Action::Forget(ids) => forget(&mut c, node, ids).await?,
                    Action::SetConfigEpoch(e) => set_config_epoch(&mut c, node, *e).await?,
                    Action::AddSlots(r) => add_slots(&mut c, node, r).await?,
                    _ => unreachable!(),
                }
            }
            Ok::<_, anyhow::Error>(())
        }
    }))
    .await?;

    phase("meet");
    let meets: Vec<&Step<Action>> = steps
        .iter()
        .copied()
        .filter(|s| matches!(s.action, Action::Meet(_)))
        .collect();
    each(&meets, |s| {
        let mut c = conns.get(&s.target);
        async move {
            let Action::Meet(targets) = &s.action else {
                unreachable!()
            };
            let mut pipe = redis::pipe();
            for t in targets {
                let (ip, port) = resolve(t).await?;
                pipe.cmd("CLUSTER").arg("MEET").arg(ip).arg(port).ignore();
            }
            pipe.query_async::<()>(&mut c)
                .await
                .map_err(|e| anyhow!("{}: CLUSTER MEET failed: {}", s.target, clean_error(&e)))
        }
    })
    .await?;

    phase("replicate");
    let reps: Vec<&Step<Action>> = steps
        .iter()
        .copied()
        .filter(|s| matches!(s.action, Action::Replicate { .. }))
        .collect();
    each(&reps, |s| {
        let mut c = conns.get(&s.target);
        let mut mc = match &s.action {
            Action::Replicate { master } => conns.get(master),
            _ => unreachable!(),
        };
        let timeout = ctx.timeout;
        async move {
            let Action::Replicate { master } = &s.action else {
                unreachable!()
            };
            let master_id: String = redis::cmd("CLUSTER")
                .arg("MYID")
                .query_async(&mut mc)
                .await
                .map_err(|e| anyhow!("{master}: CLUSTER MYID failed: {}", clean_error(&e)))?;
            replicate(&mut c, &s.target, master, &master_id, timeout).await
        }
    })
    .await?;

    if steps
        .iter()
        .any(|s| matches!(s.action, Action::WaitConverged { .. }))
    {
        phase("converge");
        wait_converged(engine, &conns, ctx.timeout).await?;
        tracing::info!(
            "{}: converged in {:.2}s",
            engine.name_str(),
            started.elapsed().as_secs_f64()
        );
    }

    if steps
        .iter()
        .any(|s| matches!(s.action, Action::WaitReplicasSynced { .. }))
    {
        phase("replica sync");
        wait_synced(engine, &conns, ctx.timeout).await?;
        tracing::info!(
            "{}: replicas in sync after {:.2}s",
            engine.name_str(),
            started.elapsed().as_secs_f64()
        );
    }

    phase("restore settings");
    let last: Vec<&Step<Action>> = steps
        .iter()
        .copied()
        .filter(|s| {
            matches!(
                s.action,
                Action::RestoreSettings { .. } | Action::ConfigSet(_)
            )
        })
        .collect();
    for s in last {
        match &s.action {
            Action::RestoreSettings { nodes } => {
                futures::future::try_join_all(
                    nodes.iter().map(|(a, kv)| config_set(conns.get(a), a, kv)),
                )
                .await?;
            }
            Action::ConfigSet(kv) => config_set(conns.get(&s.target), &s.target, kv).await?,
            _ => unreachable!(),
        }
    }
    if engine.provider == crate::provider::ProviderKind::Local {
        for a in &addrs {
            crate::engine::redis::protect_config(&ctx.state, a);
        }
    }
    let _ = spec;
    Ok(Applied::Done)
}

async fn provision(engine: &ClusterEngine<'_>, ctx: &Ctx, steps: &[&Step<Action>]) -> Result<()> {
    let starts: Vec<&str> = steps
        .iter()
        .filter(|s| matches!(s.action, Action::Start { .. }))
        .map(|s| s.target.as_str())
        .collect();
    if !starts.is_empty() {
        // Check every port before starting anything: all or nothing.
        for a in &starts {
            local::check_port_free(a)
                .with_context(|| format!("cannot start node {a}; nothing was started"))?;
            local::check_port_free(&bus_addr(a)?).with_context(|| {
                format!("cannot start node {a} (cluster bus port); nothing was started")
            })?;
        }
        let bin = crate::engine::redis::redis_server_bin(engine.spec.redis_server_bin.as_deref())?;
        ctx.state.create()?;
        let mut settings = vec![
            ("cluster-enabled".to_string(), "yes".to_string()),
            ("cluster-config-file".to_string(), "nodes.conf".to_string()),
            (
                "cluster-node-timeout".to_string(),
                engine.spec.node_timeout_ms.to_string(),
            ),
        ];
        settings.extend(engine.spec.config.iter().cloned());
        let recs = starts
            .iter()
            .map(|a| {
                let mut rec = crate::engine::redis::server_process(
                    &ctx.state,
                    a,
                    &bin,
                    &settings,
                    engine.password.as_ref(),
                )?;
                rec.listen = vec![a.to_string()];
                Ok(rec)
            })
            .collect::<Result<Vec<_>>>()?;
        let t = ctx.timeout;
        let state = &ctx.state;
        futures::future::try_join_all(recs.iter().map(|rec| async move {
            let r = local::start(state, rec, None, t).await?;
            match r {
                local::Started::Spawned(pid) => {
                    tracing::info!("{}: started redis-server (pid {pid})", rec.node)
                }
                local::Started::Reused(pid) => {
                    tracing::info!("{}: already running (pid {pid})", rec.node)
                }
            }
            Ok::<_, anyhow::Error>(())
        }))
        .await?;
    }
    let conns_needed: Vec<&Step<Action>> = steps
        .iter()
        .copied()
        .filter(|s| matches!(s.action, Action::Reset { .. }))
        .collect();
    for s in conns_needed {
        let mut c = crate::engine::redis::connect(
            &s.target,
            engine.password.as_ref(),
            super::observe::NODE_TIMEOUT,
        )
        .await?;
        let role: String = redis::cmd("ROLE")
            .query_async::<Vec<redis::Value>>(&mut c)
            .await
            .ok()
            .and_then(|v| v.into_iter().next())
            .and_then(|v| redis::from_redis_value::<String>(v).ok())
            .unwrap_or_default();
        if role == "master" {
            redis::cmd("FLUSHALL")
                .query_async::<()>(&mut c)
                .await
                .map_err(|e| anyhow!("{}: FLUSHALL failed: {}", s.target, clean_error(&e)))?;
        }
        redis::cmd("CLUSTER")
            .arg("RESET")
            .arg("HARD")
            .query_async::<()>(&mut c)
            .await
            .map_err(|e| {
                anyhow!(
                    "{}: CLUSTER RESET HARD failed: {}",
                    s.target,
                    clean_error(&e)
                )
            })?;
        tracing::warn!(node = %s.target, "reset (--force): its data was deleted");
    }
    Ok(())
}

fn bus_addr(a: &str) -> Result<String> {
    let (h, p) = crate::engine::redis::split_addr(a)?;
    Ok(format!("{h}:{}", p as u32 + 10000))
}

/// `CLUSTER MEET` takes an IP address, not a host name.
async fn resolve(addr: &str) -> Result<(String, u16)> {
    let mut it = tokio::net::lookup_host(addr)
        .await
        .with_context(|| format!("cannot resolve {addr}"))?;
    let sa = it
        .next()
        .ok_or_else(|| anyhow!("{addr} resolves to no address"))?;
    Ok((sa.ip().to_string(), sa.port()))
}

async fn set_config_epoch(c: &mut MultiplexedConnection, node: &str, epoch: u64) -> Result<()> {
    match redis::cmd("CLUSTER")
        .arg("SET-CONFIG-EPOCH")
        .arg(epoch)
        .query_async::<()>(c)
        .await
    {
        Ok(()) => Ok(()),
        Err(e) => {
            // Already set (a re-run after a partial bootstrap): fine. Met a
            // peer since we observed it (someone else's MEET raced us): the
            // epoch is then Redis's to assign (its collision handling gives
            // every master a distinct one), which only costs time.
            let me = my_line(c, node).await?;
            if me.config_epoch != 0 {
                Ok(())
            } else if e.to_string().contains("does not know any other node") {
                tracing::debug!(
                    node,
                    "met a peer before SET-CONFIG-EPOCH; Redis assigns the epoch"
                );
                Ok(())
            } else {
                bail!(
                    "{node}: CLUSTER SET-CONFIG-EPOCH {epoch} failed: {}",
                    clean_error(&e)
                )
            }
        }
    }
}

async fn add_slots(
    c: &mut MultiplexedConnection,
    node: &str,
    ranges: &[crate::topology::redis_cluster::SlotRange],
) -> Result<()> {
    let mut cmd = redis::cmd("CLUSTER");
    cmd.arg("ADDSLOTSRANGE");
    for r in ranges {
        cmd.arg(r.start).arg(r.end);
    }
    match cmd.query_async::<()>(c).await {
        Ok(()) => Ok(()),
        Err(e) => {
            // Idempotent: fine if this node already owns exactly these.
            let me = my_line(c, node).await?;
            let owned = |s: u16| me.slots.iter().any(|r| r.start <= s && s <= r.end);
            if ranges.iter().all(|r| (r.start..=r.end).all(owned)) {
                Ok(())
            } else {
                bail!(
                    "{node}: CLUSTER ADDSLOTSRANGE failed: {}; nothing else was changed on it",
                    clean_error(&e)
                )
            }
        }
    }
}

async fn my_line(c: &mut MultiplexedConnection, node: &str) -> Result<nodes::NodeLine> {
    let text: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(c)
        .await
        .map_err(|e| anyhow!("{node}: CLUSTER NODES failed: {}", clean_error(&e)))?;
    nodes::parse(&text)?
        .into_iter()
        .find(|n| n.is_myself())
        .ok_or_else(|| anyhow!("{node}: CLUSTER NODES has no `myself` line"))
}

async fn replicate(
    c: &mut MultiplexedConnection,
    node: &str,
    master: &str,
    master_id: &str,
    timeout: Duration,
) -> Result<()> {
    // The replica must know its master (handshake done) before REPLICATE.
    wait::until(
        &format!("{node} to learn about its master {master}"),
        timeout,
        Duration::from_millis(5),
        Duration::from_millis(50),
        || {
            let mut c = c.clone();
            async move {
                match redis::cmd("CLUSTER")
                    .arg("NODES")
                    .query_async::<String>(&mut c)
                    .await
                {
                    Ok(t) => match nodes::parse(&t) {
                        Ok(n) if n.iter().any(|l| l.id == master_id && !l.is_transient()) => {
                            Poll::Ready(())
                        }
                        _ => Poll::Pending("master not known yet".into()),
                    },
                    Err(e) => Poll::Pending(clean_error(&e)),
                }
            }
        },
    )
    .await?;
    redis::cmd("CLUSTER")
        .arg("REPLICATE")
        .arg(master_id)
        .query_async::<()>(c)
        .await
        .map_err(|e| {
            anyhow!(
                "{node}: CLUSTER REPLICATE {master} failed: {}",
                clean_error(&e)
            )
        })
}

async fn light_view(mut c: MultiplexedConnection) -> Option<NodeView> {
    let (n, i): (String, String) = redis::pipe()
        .cmd("CLUSTER")
        .arg("NODES")
        .cmd("CLUSTER")
        .arg("INFO")
        .query_async(&mut c)
        .await
        .ok()?;
    Some(NodeView {
        nodes: nodes::parse(&n).ok()?,
        cluster: parse_info(&i),
        info: Default::default(),
        keys: 0,
        config: Default::default(),
    })
}

async fn wait_converged(
    engine: &ClusterEngine<'_>,
    conns: &Conns,
    timeout: Duration,
) -> Result<()> {
    let addrs = engine.addrs();
    wait::until(
        "the cluster to converge",
        timeout,
        Duration::from_millis(10),
        Duration::from_millis(50),
        || {
            let views = futures::future::join_all(addrs.iter().map(|a| light_view(conns.get(a))));
            let addrs = &addrs;
            async move {
                let views = views.await;
                let refs: Vec<Option<&NodeView>> = views.iter().map(|v| v.as_ref()).collect();
                let gaps = converge::gaps(engine.spec, addrs, &refs);
                if gaps.is_empty() {
                    Poll::Ready(())
                } else {
                    let n = gaps.len();
                    let shown: Vec<&str> = gaps.iter().take(5).map(String::as_str).collect();
                    Poll::Pending(format!(
                        "{n} gap(s): {}{}",
                        shown.join("; "),
                        if n > 5 { "; ..." } else { "" }
                    ))
                }
            }
        },
    )
    .await
}

async fn config_set(
    mut c: MultiplexedConnection,
    node: &str,
    kv: &[(String, String)],
) -> Result<()> {
    let mut cmd = redis::cmd("CONFIG");
    cmd.arg("SET");
    for (k, v) in kv {
        cmd.arg(k).arg(v);
    }
    cmd.query_async::<()>(&mut c)
        .await
        .map_err(|e| anyhow!("{node}: CONFIG SET failed: {}", clean_error(&e)))?;
    match redis::cmd("CONFIG")
        .arg("REWRITE")
        .query_async::<()>(&mut c)
        .await
    {
        Ok(()) => Ok(()),
        Err(e) if e.to_string().contains("without a config file") => {
            tracing::warn!(
                node,
                "runs without a config file: the setting is live but will not survive a restart"
            );
            Ok(())
        }
        Err(e) => bail!("{node}: CONFIG REWRITE failed: {}", clean_error(&e)),
    }
}

/// Every node that is a replica (by its own account) has its link up.
async fn wait_synced(engine: &ClusterEngine<'_>, conns: &Conns, timeout: Duration) -> Result<()> {
    let addrs = engine.addrs();
    wait::until(
        "the replicas' initial sync",
        timeout,
        Duration::from_millis(10),
        Duration::from_millis(100),
        || {
            let reads = futures::future::join_all(addrs.iter().map(|a| {
                let mut c = conns.get(a);
                async move {
                    redis::cmd("INFO")
                        .arg("replication")
                        .query_async::<String>(&mut c)
                        .await
                        .map(|t| parse_info(&t))
                        .map_err(|e| clean_error(&e))
                }
            }));
            let addrs = &addrs;
            async move {
                let mut missing = Vec::new();
                for (a, r) in addrs.iter().zip(reads.await) {
                    match r {
                        Ok(info) if info.get("role").map(String::as_str) == Some("slave") => {
                            if info.get("master_link_status").map(String::as_str) != Some("up") {
                                missing.push(format!(
                                    "{a} master_link_status:{}",
                                    info.get("master_link_status")
                                        .map(String::as_str)
                                        .unwrap_or("?")
                                ));
                            }
                        }
                        Ok(_) => {}
                        Err(e) => missing.push(format!("{a}: {e}")),
                    }
                }
                if missing.is_empty() {
                    Poll::Ready(())
                } else {
                    Poll::Pending(missing.join("; "))
                }
            }
        },
    )
    .await
}

async fn forget(c: &mut MultiplexedConnection, node: &str, ids: &[String]) -> Result<()> {
    for id in ids {
        match redis::cmd("CLUSTER")
            .arg("FORGET")
            .arg(id)
            .query_async::<()>(c)
            .await
        {
            Ok(()) => {}
            // Already forgotten (a re-run): fine.
            Err(e) if e.to_string().contains("Unknown node") => {}
            Err(e) => bail!("{node}: CLUSTER FORGET {id} failed: {}", clean_error(&e)),
        }
    }
    Ok(())
}
