//! Switchover: make a replica the primary with no acknowledged write lost,
//! and the old primary a replica of it.
//!
//! ```text
//! before the pause   slots on the target for every other node, CHECKPOINT
//!                    on the primary (so its shutdown checkpoint is short),
//!                    connections opened, PgBouncer's new ini rendered
//! pause              PgBouncer PAUSE <read-write databases>: new queries
//!                    wait, running transactions finish
//! stop writes        fast shutdown of the old primary; its shutdown
//!                    checkpoint is the last WAL record it will ever write,
//!                    and its WAL senders hand every byte to the replicas
//!                    before they exit
//! catch up           pg_controldata gives that checkpoint's LSN; wait until
//!                    the target has replayed past it
//! promote            pg_promote on the target, poll until it leaves recovery
//! re-route           PgBouncer's ini now names the new primary; RELOAD
//! resume             RESUME: the queued queries run on the new primary
//! after the pause    the other replicas follow the new primary (reload of
//!                    primary_conninfo); the old primary is pg_rewind'ed (a
//!                    no-op after a clean shutdown) or rebuilt, started as a
//!                    replica; PgBouncer's read-only routes include it again
//! ```
//!
//! Until the promotion nothing is lost by giving up: the old primary is
//! started again and PgBouncer resumed. After it, a failure leaves a
//! consistent new primary, and the journal in the state dir lets `init`
//! finish the rest (resume, rewind the old primary).

use super::apply::{self, Runtime};
use super::observe::{NodeObs, Observed};
use super::pgbouncer;
use super::plan;
use super::server;
use super::sql::{self, RowExt, NODE_TIMEOUT};
use super::PostgresEngine;
use crate::engine::Ctx;
use crate::provider::local::{self, StateDir};
use crate::topology::postgres::{PgNode, RouteTarget};
use crate::wait::{self, Poll};
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

const JOURNAL: &str = "switchover.json";

/// How far a switchover got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Started,
    Paused,
    OldStopped,
    Promoted,
    Rerouted,
    Resumed,
    Rejoined,
    Done,
}

/// The switchover journal in the state dir.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Journal {
    pub from: String,
    pub to: String,
    pub phase: Phase,
}

impl Journal {
    pub fn load(state: &StateDir) -> Option<Journal> {
        let text = std::fs::read_to_string(state.dir.join(JOURNAL)).ok()?;
        serde_json::from_str(&text).ok()
    }
    pub fn save(&self, state: &StateDir) -> Result<()> {
        let tmp = state.dir.join(format!("{JOURNAL}.tmp"));
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(&tmp, state.dir.join(JOURNAL))?;
        Ok(())
    }
    /// Was `addr` shut down cleanly by a switchover after its last write
    /// reached the new primary (so rewinding it loses nothing)?
    pub fn demoted(&self, addr: &str) -> bool {
        self.from == addr && self.phase >= Phase::Promoted
    }
    /// PgBouncer was resumed (or never paused by a live switchover).
    pub fn finished(&self) -> bool {
        self.phase >= Phase::Resumed
    }
}

/// What happened, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub topology: String,
    pub from: String,
    pub to: String,
    /// From PAUSE sent to RESUME done: the longest a client's write waited.
    pub write_pause_seconds: f64,
    pub total_seconds: f64,
    /// (phase, seconds) in order.
    pub phases: Vec<(String, f64)>,
    /// The final LSN of the old primary (its shutdown checkpoint).
    pub final_lsn: String,
}

/// Parse `--to`: `host:port`, `:port` or `port`.
pub fn resolve_target<'a>(obs: &'a Observed, to: &str) -> Result<&'a NodeObs> {
    let found: Vec<&NodeObs> = obs
        .nodes
        .iter()
        .filter(|n| {
            n.addr == to
                || to.trim_start_matches(':') == n.node.port.to_string() && !to.contains('.')
        })
        .collect();
    match found[..] {
        [one] => Ok(one),
        [] => bail!(
            "--to {to}: no such node; nodes: {}",
            obs.nodes
                .iter()
                .map(|n| n.addr.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => bail!("--to {to} matches several nodes; give host:port"),
    }
}

/// What a switchover would do, checked against the live topology.
#[derive(Debug, Clone)]
pub struct Intent {
    pub from: PgNode,
    pub to: PgNode,
    pub others: Vec<PgNode>,
    /// PgBouncer databases routed to the primary (paused during the switch).
    pub paused_dbs: Vec<String>,
}

/// Check the preconditions and pick the target.
pub fn intent(e: &PostgresEngine<'_>, obs: &Observed, to: Option<&str>) -> Result<Intent> {
    let spec = e.spec;
    if !e.is_local() {
        bail!(
            "switchover needs the local provider: it shuts the old primary down and rewinds it, which datatier cannot do to servers it does not run\nhint: for nodes someone else runs use their tooling (patronictl switchover, pg_ctl promote), then `datatier init --provider existing` re-points PgBouncer and the replicas"
        );
    }
    if spec.replicas() == 0 {
        bail!("{} has no replica to switch over to", spec.meta.name);
    }
    let current = plan::current_primary(obs)?;
    let pv = current.view().ok_or_else(|| {
        anyhow!(
            "the primary {} is not running; nothing was changed\nhint: `datatier init` starts it",
            current.addr
        )
    })?;
    let streaming = |n: &NodeObs| -> Option<u64> {
        let v = n.view()?;
        let row = plan::streaming_row(pv, &n.node, Some(v))?;
        if row.state != "streaming" || v.timeline != pv.timeline {
            return None;
        }
        Some(match (pv.lsn, row.replay_lsn) {
            (Some(p), Some(r)) => r.bytes_to(p),
            _ => u64::MAX,
        })
    };
    let target: &NodeObs = match to {
        Some(t) => {
            let n = resolve_target(obs, t)?;
            if n.addr == current.addr {
                bail!("{} is already the primary; nothing was changed", n.addr);
            }
            if streaming(n).is_none() {
                bail!(
                    "{} is not a streaming replica of {} right now (see `datatier status`); nothing was changed\nhint: `datatier init` brings it back first",
                    n.addr,
                    current.addr
                );
            }
            n
        }
        None => obs
            .nodes
            .iter()
            .filter(|n| n.addr != current.addr)
            .filter_map(|n| streaming(n).map(|lag| (lag, n)))
            .min_by_key(|(lag, _)| *lag)
            .map(|(_, n)| n)
            .ok_or_else(|| anyhow!("no replica streams from {} right now; nothing was changed\nhint: `datatier status` says why; `datatier init` repairs", current.addr))?,
    };
    if let (Some(_), Some(bo)) = (&spec.pgbouncer, &obs.bouncer) {
        if let Err(err) = &bo.view {
            bail!(
                "PgBouncer {} is unreachable ({err}): clients could not be paused; nothing was changed\nhint: `datatier init` starts it",
                bo.addr
            );
        }
    }
    let paused_dbs = spec
        .pgbouncer
        .as_ref()
        .map(|b| {
            b.routes
                .iter()
                .filter(|r| r.target == RouteTarget::Primary)
                .map(|r| r.name.clone())
                .collect()
        })
        .unwrap_or_default();
    Ok(Intent {
        from: current.node.clone(),
        to: target.node.clone(),
        others: obs
            .nodes
            .iter()
            .filter(|n| n.addr != current.addr && n.addr != target.addr && n.view.is_ok())
            .map(|n| n.node.clone())
            .collect(),
        paused_dbs,
    })
}

/// Human description of the steps (for `--dry-run`).
pub fn describe(i: &Intent, has_bouncer: bool) -> String {
    let mut s = format!("switchover {} -> {}\n", i.from, i.to);
    let mut n = 0;
    let mut step = |t: String| {
        n += 1;
        s.push_str(&format!("{n:>3}. {t}\n"));
    };
    step(format!(
        "create replication slots on {} for the other nodes; CHECKPOINT on {}",
        i.to, i.from
    ));
    if has_bouncer {
        step(format!("PgBouncer: PAUSE {}", i.paused_dbs.join(", ")));
    }
    step(format!(
        "fast shutdown of {} (its last WAL reaches the replicas)",
        i.from
    ));
    step(format!(
        "wait until {} has replayed the final LSN of {}",
        i.to, i.from
    ));
    step(format!("pg_promote on {}", i.to));
    if has_bouncer {
        step(format!(
            "PgBouncer: route to {} (ini + RELOAD), RESUME",
            i.to
        ));
    }
    for o in &i.others {
        step(format!("{o}: follow {} (primary_conninfo + reload)", i.to));
    }
    step(format!(
        "{}: pg_rewind onto {} (or a fresh base backup), start as a replica",
        i.from, i.to
    ));
    step(
        "wait until every replica streams; PgBouncer read-only routes include every replica again"
            .into(),
    );
    s
}

/// Stop the old primary with SIGINT (fast shutdown), polling its pid
/// closely: every millisecond of it is a millisecond of paused writes.
async fn fast_stop(rec: &local::ProcessRecord, timeout: Duration) -> Result<()> {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let local::ProcState::Running(pid) = local::state(rec) else {
        return Ok(());
    };
    let p = Pid::from_raw(pid as i32);
    kill(p, Signal::SIGINT).with_context(|| format!("cannot signal {} (pid {pid})", rec.node))?;
    wait::until(
        &format!("{} to shut down", rec.node),
        timeout,
        Duration::from_millis(1),
        Duration::from_millis(5),
        || {
            let _ = nix::sys::wait::waitpid(p, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
            let alive = local::pid_runs(pid, &rec.program);
            async move {
                if alive {
                    Poll::Pending("still running".into())
                } else {
                    Poll::Ready(())
                }
            }
        },
    )
    .await?;
    let _ = std::fs::remove_file(&rec.pidfile);
    Ok(())
}

/// Give up before the promotion: the old primary leads again, clients resume.
async fn undo(
    rt: &Runtime<'_>,
    i: &Intent,
    bouncer: Option<&tokio_postgres::Client>,
    why: anyhow::Error,
) -> anyhow::Error {
    let from = i.from.addr();
    tracing::warn!("switchover failed before the promotion: {why:#}; restarting {from} as primary");
    let restarted = apply::start_node(rt, &i.from).await;
    if let Some(c) = bouncer {
        for d in &i.paused_dbs {
            let _ = pgbouncer::admin(c, &format!("RESUME {d}"), NODE_TIMEOUT).await;
        }
    }
    let _ = std::fs::remove_file(rt.ctx.state.dir.join(JOURNAL));
    match restarted {
        Ok(()) => anyhow!(
            "{why:#}; {from} is primary again and clients were resumed: nothing was changed"
        ),
        Err(e2) => anyhow!("{why:#}; restarting {from} failed too ({e2:#}): run `datatier init`"),
    }
}

/// Run the switchover.
pub async fn run(
    e: &PostgresEngine<'_>,
    ctx: &Ctx,
    i: &Intent,
    pause_timeout: Duration,
) -> Result<Outcome> {
    let spec = e.spec;
    let rt = Runtime::new(e, ctx)?;
    let started = Instant::now();
    let mut phases: Vec<(String, f64)> = Vec::new();
    let mut mark = {
        let mut last = Instant::now();
        move |name: &str, phases: &mut Vec<(String, f64)>| {
            let now = Instant::now();
            phases.push((name.to_string(), (now - last).as_secs_f64()));
            tracing::info!("{name}: {:.1} ms", (now - last).as_secs_f64() * 1000.0);
            last = now;
        }
    };
    let (from, to) = (i.from.addr(), i.to.addr());
    let mut journal = Journal {
        from: from.clone(),
        to: to.clone(),
        phase: Phase::Started,
    };
    journal.save(&ctx.state)?;

    // Before the pause: everything that can be done while clients run.
    let tc = rt.admin(&to).await?;
    for n in std::iter::once(&i.from).chain(&i.others) {
        apply::create_slot(&tc, &to, &n.slot_name()).await?;
    }
    let old_rec = rt.record(&i.from)?;
    let bins = rt.bins()?.clone();
    let old_paths = rt.paths(&i.from);
    let bouncer = match &spec.pgbouncer {
        Some(_) => Some(apply::bouncer_console(&rt).await?),
        None => None,
    };
    // PgBouncer's next ini: the target leads, the other replicas serve
    // reads (the old primary joins them once it streams again).
    let readers: Vec<&PgNode> = i.others.iter().collect();
    let next_bouncer = apply::render_bouncer(&rt, &i.to, Some(&readers)).await?;
    // Last before the pause, so the shutdown checkpoint inside the pause
    // only writes what clients dirtied since.
    let pc = rt.admin(&from).await?;
    sql::exec(&pc, "CHECKPOINT", ctx.timeout)
        .await
        .context("CHECKPOINT on the old primary")?;
    drop(pc);
    mark("prepare", &mut phases);

    // Pause.
    let pause_start = Instant::now();
    if let Some(c) = &bouncer {
        for d in &i.paused_dbs {
            if let Err(err) = pgbouncer::admin(c, &format!("PAUSE {d}"), pause_timeout).await {
                // Whatever did pause must resume; use a fresh connection in
                // case this one is stuck in the PAUSE.
                if let Ok(c2) = apply::bouncer_console(&rt).await {
                    for d in &i.paused_dbs {
                        let _ = pgbouncer::admin(&c2, &format!("RESUME {d}"), NODE_TIMEOUT).await;
                    }
                }
                let _ = std::fs::remove_file(ctx.state.dir.join(JOURNAL));
                bail!(
                    "PAUSE {d} did not finish within {:.0}s ({err:#}): a client keeps a transaction open; clients were resumed and nothing was changed\nhint: retry later, or raise --pause-timeout",
                    pause_timeout.as_secs_f64()
                );
            }
        }
        journal.phase = Phase::Paused;
        journal.save(&ctx.state)?;
    }
    mark("pause", &mut phases);

    // From here until the promotion, a failure puts everything back.
    let undo = |why: anyhow::Error| undo(&rt, i, bouncer.as_ref(), why);

    // Stop writes: fast shutdown of the old primary.
    if let Err(err) = fast_stop(&old_rec, ctx.timeout).await {
        return Err(undo(err).await);
    }
    journal.phase = Phase::OldStopped;
    journal.save(&ctx.state)?;
    mark("stop_old_primary", &mut phases);

    // The final LSN: the shutdown checkpoint.
    let cd = match server::controldata(&bins, &old_paths.data, rt.who()).await {
        Ok(cd) if cd.state == "shut down" => cd,
        Ok(cd) => {
            return Err(undo(anyhow!(
                "{from} did not shut down cleanly (state: {})",
                cd.state
            ))
            .await)
        }
        Err(err) => return Err(undo(err).await),
    };
    let final_lsn = cd.checkpoint;
    let caught_up = wait::until(
        &format!("{to} to replay up to {final_lsn}"),
        ctx.timeout,
        Duration::from_millis(1),
        Duration::from_millis(5),
        || {
            let tc = &tc;
            async move {
                match sql::one(tc, "SELECT pg_last_wal_replay_lsn() AS r", NODE_TIMEOUT).await {
                    Ok(row) => match row.lsn("r") {
                        // Past the start of the checkpoint record: replayed.
                        Some(r) if r > final_lsn => Poll::Ready(r),
                        Some(r) => Poll::Pending(format!("replayed up to {r}")),
                        None => Poll::Pending("no replay position".into()),
                    },
                    Err(e) => Poll::Pending(e.to_string()),
                }
            }
        },
    )
    .await;
    if let Err(err) = caught_up {
        return Err(undo(err).await);
    }
    mark("catch_up", &mut phases);

    // Promote.
    if let Err(err) = sql::exec(&tc, "SELECT pg_promote(false)", NODE_TIMEOUT).await {
        return Err(undo(err.context(format!("pg_promote on {to}"))).await);
    }
    wait::until(
        &format!("{to} to leave recovery"),
        ctx.timeout,
        Duration::from_millis(1),
        Duration::from_millis(5),
        || {
            let tc = &tc;
            async move {
                match sql::one(tc, "SELECT pg_is_in_recovery() AS r", NODE_TIMEOUT).await {
                    Ok(row) if !row.bool("r") => Poll::Ready(()),
                    Ok(_) => Poll::Pending("still in recovery".into()),
                    Err(e) => Poll::Pending(e.to_string()),
                }
            }
        },
    )
    .await
    .with_context(|| {
        format!("{to} was asked to promote; run `datatier status` and `datatier init` to finish")
    })?;
    journal.phase = Phase::Promoted;
    journal.save(&ctx.state)?;
    e.record_primary(&to)?;
    mark("promote", &mut phases);

    // Re-route and resume.
    if let Some(c) = &bouncer {
        if let Some(files) = &next_bouncer {
            apply::install_bouncer(&rt, files)?;
        }
        pgbouncer::admin(c, "RELOAD", NODE_TIMEOUT).await?;
        journal.phase = Phase::Rerouted;
        journal.save(&ctx.state)?;
        mark("reroute", &mut phases);
        for d in &i.paused_dbs {
            pgbouncer::admin(c, &format!("RESUME {d}"), NODE_TIMEOUT).await?;
        }
        mark("resume", &mut phases);
    }
    let write_pause = pause_start.elapsed();
    journal.phase = Phase::Resumed;
    journal.save(&ctx.state)?;
    tracing::info!(
        "{to} is the primary; writes were paused {:.1} ms",
        write_pause.as_secs_f64() * 1000.0
    );

    // After the pause: the rest of the layout follows.
    futures::future::try_join_all(i.others.iter().map(|o| apply::follow(&rt, o, &i.to))).await?;
    mark("replicas_follow", &mut phases);
    apply::rejoin(&rt, &i.to, &i.from).await?;
    journal.phase = Phase::Rejoined;
    journal.save(&ctx.state)?;
    mark("old_primary_rejoins", &mut phases);
    let replicas: Vec<String> = std::iter::once(&i.from)
        .chain(&i.others)
        .map(|n| n.addr())
        .collect();
    apply::wait_streaming(&rt, &to, &replicas, ctx.timeout).await?;
    // Slots the old primary kept from its time as primary.
    let oc = rt.admin(&from).await?;
    sql::exec(
        &oc,
        &format!(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE NOT active AND slot_name LIKE {}",
            sql::literal(&format!("{}%", crate::topology::postgres::SLOT_PREFIX))
        ),
        NODE_TIMEOUT,
    )
    .await?;
    if let Some(c) = &bouncer {
        apply::write_bouncer(&rt, &i.to, None).await?;
        pgbouncer::admin(c, "RELOAD", NODE_TIMEOUT).await?;
    }
    mark("streaming", &mut phases);
    journal.phase = Phase::Done;
    journal.save(&ctx.state)?;

    Ok(Outcome {
        topology: spec.meta.name.clone(),
        from,
        to,
        write_pause_seconds: write_pause.as_secs_f64(),
        total_seconds: started.elapsed().as_secs_f64(),
        phases,
        final_lsn: final_lsn.to_string(),
    })
}
