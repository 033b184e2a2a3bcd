//! `datatier failover`: a switchover through the sentinels that loses no
//! acknowledged write, and leaves no second master behind.
//!
//! `SENTINEL FAILOVER` alone promotes a replica at once, without waiting for
//! it to have everything the master acknowledged, and then leaves the old
//! master running as a master for about ten more seconds (until the
//! sentinels' next look at it), where it still accepts writes that are
//! thrown away when it is finally turned into a replica. So, when the
//! master is up:
//!
//! 1. (`--to NODE`) every other replica gets `replica-priority 0` for the
//!    duration, and datatier waits until a sentinel has *seen* the new
//!    priorities (sentinels re-read a replica's INFO every 10 s; the first
//!    sentinel that has is the one asked to fail over);
//! 2. writes are paused on the master (`CLIENT PAUSE WRITE`, bounded by the
//!    failover timeout), and datatier waits until the replicas hold every
//!    byte the master has;
//! 3. `SENTINEL FAILOVER`; wait until every sentinel names the new master;
//! 4. the old master is made a replica of the new one right away
//!    (`REPLICAOF` + `CONFIG REWRITE`) and unpaused: clients held by the
//!    pause get `READONLY` and reconnect through the sentinels;
//! 5. wait until every data node follows the new master with its link up.
//!
//! Priorities and the pause are restored on every path, failures included.
//! When the master is down, steps 2 and 4 are skipped (there is nothing to
//! pause) and the sentinels are asked to fail over at once.

use super::apply::{gaps, share_hellos, summarize};
use super::converge::current_master;
use super::observe::{entry_addr, Observed, NODE_TIMEOUT};
use super::SentinelEngine;
use crate::engine::redis::{clean_error, connect, split_addr};
use crate::engine::{Ctx, Engine, FailoverOutcome};
use crate::wait::{self, Poll};
use anyhow::{anyhow, bail, Result};
use redis::aio::MultiplexedConnection;
use std::time::{Duration, Instant};

pub async fn failover(
    engine: &SentinelEngine<'_>,
    ctx: &Ctx,
    to: Option<&str>,
) -> Result<FailoverOutcome> {
    let started = Instant::now();
    let spec = engine.spec;
    let obs = engine.observe(ctx).await?;
    let cm = current_master(spec, &obs);
    let Some(m) = cm.index else {
        bail!(
            "{} name {} as the master, which is not a data node of this topology; nothing was changed",
            cm.source,
            cm.addr
        );
    };
    let old = obs.data[m].clone();
    let monitoring: Vec<usize> = (0..obs.sentinels.len())
        .filter(|j| obs.sentinels[*j].view().is_some_and(|v| v.monitors()))
        .collect();
    if monitoring.len() < spec.majority() {
        bail!(
            "only {} of {} sentinels answer and monitor `{}`; a majority ({}) is needed to authorize a failover; nothing was changed\nhint: `datatier init` starts and configures the sentinels",
            monitoring.len(),
            obs.sentinels.len(),
            spec.master_name,
            spec.majority()
        );
    }
    let target = match to {
        None => None,
        Some(t) => {
            let i = obs
                .data
                .iter()
                .position(|d| d.addr == t || d.ip == t)
                .ok_or_else(|| {
                    anyhow!(
                        "{t} is not a data node of this topology (data nodes: {})",
                        spec.data_nodes().join(", ")
                    )
                })?;
            if i == m {
                bail!("{t} is already the master; nothing was changed");
            }
            let d = &obs.data[i];
            let ok = d.view().is_some_and(|v| {
                v.link_up()
                    && v.master_addr()
                        .is_some_and(|a| a == old.ip || a == old.addr)
            });
            if !ok {
                bail!(
                    "{t} is not a replica of the master {} with its link up; nothing was changed\nhint: `datatier status` shows why",
                    old.addr
                );
            }
            Some(i)
        }
    };
    let master_up = old.view().is_some_and(|v| v.is_master());

    // Priorities: remember, then favour the target.
    let mut saved: Vec<(String, String)> = Vec::new();
    if let Some(t) = target {
        for (i, d) in obs.data.iter().enumerate() {
            if i == m {
                continue;
            }
            let Some(v) = d.view() else { continue };
            let have = v
                .config
                .get("replica-priority")
                .cloned()
                .unwrap_or_else(|| "100".into());
            let want = if i == t {
                if have == "0" {
                    "100".to_string()
                } else {
                    have.clone()
                }
            } else {
                "0".to_string()
            };
            if want != have {
                saved.push((d.addr.clone(), have));
                set_priority(engine, &d.addr, &want).await?;
            }
        }
    }

    let mut paused = Duration::ZERO;
    let res = run(engine, ctx, &obs, m, target, master_up, &mut paused).await;

    // Restore on every path.
    let mut restore_errors = Vec::new();
    for (a, p) in &saved {
        if let Err(e) = set_priority(engine, a, p).await {
            restore_errors.push(format!("{a}: replica-priority back to {p} failed: {e:#}"));
        }
    }
    let new = match res {
        Ok(n) => n,
        Err(e) => {
            for r in restore_errors {
                tracing::error!("{r}");
            }
            return Err(e);
        }
    };
    if !restore_errors.is_empty() {
        bail!(
            "the failover to {new} succeeded, but: {}",
            restore_errors.join("; ")
        );
    }
    let obs = engine.observe(ctx).await?;
    Ok(FailoverOutcome {
        old_master: old.addr.clone(),
        new_master: new,
        elapsed: started.elapsed(),
        writes_paused: paused,
        report: engine.report(ctx, &obs),
    })
}

async fn data_conn(engine: &SentinelEngine<'_>, addr: &str) -> Result<MultiplexedConnection> {
    connect(addr, engine.password.as_ref(), NODE_TIMEOUT).await
}

async fn set_priority(engine: &SentinelEngine<'_>, addr: &str, p: &str) -> Result<()> {
    let mut c = data_conn(engine, addr).await?;
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("replica-priority")
        .arg(p)
        .query_async::<()>(&mut c)
        .await
        .map_err(|e| {
            anyhow!(
                "{addr}: CONFIG SET replica-priority failed: {}",
                clean_error(&e)
            )
        })
}

/// The failover proper; returns the new master. Unpauses the old master on
/// every path once it paused it.
async fn run(
    engine: &SentinelEngine<'_>,
    ctx: &Ctx,
    obs: &Observed,
    m: usize,
    target: Option<usize>,
    master_up: bool,
    paused_for: &mut Duration,
) -> Result<String> {
    let spec = engine.spec;
    let old = &obs.data[m];
    let name = &spec.master_name;

    // Which sentinel to ask: with a target, the first that sees the
    // priorities as set now (it picks the replica from what it saw).
    let sentinel = match target {
        None => obs
            .sentinels
            .iter()
            .find(|s| s.view().is_some_and(|v| v.monitors()))
            .map(|s| s.addr.clone())
            .expect("a majority monitors (checked)"),
        Some(t) => {
            let want: Vec<(String, bool)> = obs
                .data
                .iter()
                .enumerate()
                .filter(|(i, d)| *i != m && d.view().is_some())
                .map(|(i, d)| (d.ip.clone(), i == t))
                .collect();
            let addrs: Vec<String> = obs.sentinels.iter().map(|s| s.addr.clone()).collect();
            wait::until(
                "a sentinel to see the new replica priorities (sentinels re-read each replica's INFO every 10 s)",
                ctx.timeout,
                Duration::from_millis(50),
                Duration::from_millis(200),
                || async {
                    for a in &addrs {
                        if sees_priorities(engine, a, &want).await {
                            return Poll::Ready(a.clone());
                        }
                    }
                    Poll::Pending("no sentinel has re-read them yet".into())
                },
            )
            .await?
        }
    };

    let mut old_conn = None;
    let pause_started = Instant::now();
    if master_up {
        let mut c = data_conn(engine, &old.addr).await?;
        let ms = spec.failover_timeout_ms.clamp(2_000, 30_000);
        redis::cmd("CLIENT")
            .arg("PAUSE")
            .arg(ms)
            .arg("WRITE")
            .query_async::<()>(&mut c)
            .await
            .map_err(|e| anyhow!("{}: CLIENT PAUSE failed: {}", old.addr, clean_error(&e)))?;
        old_conn = Some(c);
    }
    let res = async {
        if let Some(c) = &old_conn {
            wait_caught_up(engine, ctx, obs, m, c.clone()).await?;
        }
        let mut sc = connect(&sentinel, engine.sentinel_password.as_ref(), NODE_TIMEOUT).await?;
        redis::cmd("SENTINEL")
            .arg("FAILOVER")
            .arg(name)
            .query_async::<()>(&mut sc)
            .await
            .map_err(|e| {
                let msg = clean_error(&e);
                let hint = if msg.contains("NOGOODSLAVE") {
                    "\nhint: no replica qualifies (down, disconnected too long, or replica-priority 0); `datatier status` shows which"
                } else {
                    ""
                };
                anyhow!("{sentinel}: SENTINEL FAILOVER {name} failed: {msg}{hint}")
            })?;
        tracing::info!("{sentinel}: SENTINEL FAILOVER {name} accepted");
        let new = wait_promoted(engine, ctx, &sentinel, &old.addr).await?;
        // The other sentinels learn the new configuration from the leader's
        // next hello (every 2 s); hand it to them now.
        share_hellos(engine, ctx).await?;
        if let Some(c) = &old_conn {
            // Help the sentinels: they would leave the old master a master
            // until their next INFO of it (~10 s).
            let new_ip = obs
                .data
                .iter()
                .find(|d| d.addr == new)
                .map(|d| d.ip.clone())
                .unwrap_or_else(|| new.clone());
            let (h, p) = split_addr(&new_ip)?;
            let mut c = c.clone();
            redis::cmd("REPLICAOF")
                .arg(h)
                .arg(p)
                .query_async::<()>(&mut c)
                .await
                .map_err(|e| anyhow!("{}: REPLICAOF {new} failed: {}", old.addr, clean_error(&e)))?;
            let _ = redis::cmd("CONFIG")
                .arg("REWRITE")
                .query_async::<()>(&mut c)
                .await;
        }
        Ok::<_, anyhow::Error>(new)
    }
    .await;
    if let Some(mut c) = old_conn {
        let _ = redis::cmd("CLIENT")
            .arg("UNPAUSE")
            .query_async::<()>(&mut c)
            .await;
        *paused_for = pause_started.elapsed();
    }
    let new = res?;
    if let Some(t) = target {
        if obs.data[t].addr != new {
            bail!(
                "the sentinels promoted {new}, not {}; run `datatier failover --to {}` again",
                obs.data[t].addr,
                obs.data[t].addr
            );
        }
    }
    // Every data node follows the new master and every sentinel agrees
    // (nodes that were down before the failover are not waited for).
    let down: Vec<&str> = obs
        .data
        .iter()
        .filter(|d| d.view.is_err())
        .map(|d| d.addr.as_str())
        .chain(
            obs.sentinels
                .iter()
                .filter(|s| s.view.is_err())
                .map(|s| s.addr.as_str()),
        )
        .collect();
    wait::until(
        &format!("every data node and sentinel to follow {new}"),
        ctx.timeout,
        Duration::from_millis(10),
        Duration::from_millis(100),
        || async {
            let obs = match engine.observe(ctx).await {
                Ok(o) => o,
                Err(e) => return Poll::Pending(format!("{e:#}")),
            };
            let g: Vec<String> = gaps(engine, &obs, true)
                .into_iter()
                .filter(|g| !down.iter().any(|d| g.contains(d)))
                .collect();
            if g.is_empty() {
                Poll::Ready(())
            } else {
                Poll::Pending(summarize(&g))
            }
        },
    )
    .await?;
    Ok(new)
}

/// Does sentinel `a` see replica-priority 0 on every replica but the target?
async fn sees_priorities(engine: &SentinelEngine<'_>, a: &str, want: &[(String, bool)]) -> bool {
    let Ok(mut c) = connect(a, engine.sentinel_password.as_ref(), NODE_TIMEOUT).await else {
        return false;
    };
    let Ok(v) = redis::cmd("SENTINEL")
        .arg("REPLICAS")
        .arg(&engine.spec.master_name)
        .query_async::<redis::Value>(&mut c)
        .await
    else {
        return false;
    };
    let entries: Vec<_> = match &v {
        redis::Value::Array(items) => items.iter().filter_map(super::observe::to_map).collect(),
        _ => return false,
    };
    want.iter().all(|(ip, is_target)| {
        entries.iter().any(|e| {
            entry_addr(e) == *ip
                && match e.get("slave-priority").map(String::as_str) {
                    Some("0") => !is_target,
                    Some(_) => *is_target,
                    None => false,
                }
        })
    })
}

/// With writes paused: wait until every linked replica has the master's
/// offset, so whichever the sentinels promote holds every acknowledged write.
async fn wait_caught_up(
    engine: &SentinelEngine<'_>,
    ctx: &Ctx,
    obs: &Observed,
    m: usize,
    master: MultiplexedConnection,
) -> Result<()> {
    let replicas: Vec<String> = obs
        .data
        .iter()
        .enumerate()
        .filter(|(i, d)| *i != m && d.view().is_some_and(|v| v.link_up()))
        .map(|(_, d)| d.addr.clone())
        .collect();
    let mut conns = Vec::new();
    for a in &replicas {
        conns.push((a.clone(), data_conn(engine, a).await?));
    }
    let offset = |mut c: MultiplexedConnection, key: &'static str| async move {
        let t: String = redis::cmd("INFO")
            .arg("replication")
            .query_async(&mut c)
            .await
            .ok()?;
        crate::engine::redis::parse_info(&t)
            .get(key)?
            .parse::<u64>()
            .ok()
    };
    wait::until(
        "the replicas to catch up with the paused master",
        ctx.timeout.min(Duration::from_millis(
            engine.spec.failover_timeout_ms.clamp(2_000, 30_000),
        )),
        Duration::from_millis(2),
        Duration::from_millis(20),
        || {
            let master = master.clone();
            let conns = conns.clone();
            async move {
                let Some(mo) = offset(master, "master_repl_offset").await else {
                    return Poll::Pending("the master does not answer INFO".into());
                };
                let mut behind = Vec::new();
                for (a, c) in conns {
                    match offset(c, "slave_repl_offset").await {
                        Some(o) if o >= mo => {}
                        Some(o) => behind.push(format!("{a} {} byte(s) behind", mo - o)),
                        None => behind.push(format!("{a} does not answer")),
                    }
                }
                if behind.is_empty() {
                    Poll::Ready(())
                } else {
                    Poll::Pending(behind.join("; "))
                }
            }
        },
    )
    .await
}

/// Wait until sentinel `sentinel` names a master other than `old`, and
/// that node serves as a master.
async fn wait_promoted(
    engine: &SentinelEngine<'_>,
    ctx: &Ctx,
    sentinel: &str,
    old: &str,
) -> Result<String> {
    let spec = engine.spec;
    wait::until(
        &format!("{sentinel} to promote a replica in place of {old}"),
        ctx.timeout
            .max(Duration::from_millis(spec.failover_timeout_ms)),
        Duration::from_millis(10),
        Duration::from_millis(50),
        || async {
            let obs = match engine.observe(ctx).await {
                Ok(o) => o,
                Err(e) => return Poll::Pending(format!("{e:#}")),
            };
            let Some(v) = obs
                .sentinels
                .iter()
                .find(|s| s.addr == sentinel)
                .and_then(|s| s.view())
            else {
                return Poll::Pending(format!("{sentinel} does not answer"));
            };
            let named = obs.name_of(v.master_addr.as_deref().unwrap_or(""));
            match obs.data_index(&named) {
                Some(i) if named != old => {
                    if obs.data[i].view().is_some_and(|d| d.is_master()) {
                        Poll::Ready(named)
                    } else {
                        Poll::Pending(format!("{named} is not a master yet"))
                    }
                }
                _ => Poll::Pending(format!(
                    "{sentinel} still names {named} ({})",
                    v.master_flags().join(",")
                )),
            }
        },
    )
    .await
}
