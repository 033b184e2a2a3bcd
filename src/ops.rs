//! Operations behind the commands, dispatched on the topology's kind. Adding
//! a kind means one arm per function here; everything else lives in the
//! kind's engine.

use crate::engine::mongo::MongoEngine;
use crate::engine::postgres::PostgresEngine;
use crate::engine::redis::cluster::ClusterEngine;
use crate::engine::redis::sentinel::SentinelEngine;
use crate::engine::{self, Ctx, FailoverOutcome, InitOutcome};
use crate::provider::compose::ComposeFile;
use crate::report::StatusReport;
use crate::topology::Topology;
use anyhow::Result;

/// `datatier init`.
pub async fn init(t: &Topology, ctx: &Ctx) -> Result<InitOutcome> {
    let _lock = ctx.state.lock()?;
    ctx.state.record_topology(&t.meta().source.text)?;
    match t {
        Topology::RedisCluster(s) => engine::init(&ClusterEngine::new(s, ctx)?, ctx).await,
        Topology::MongoSharded(s) => engine::init(&MongoEngine::new(s, ctx)?, ctx).await,
        Topology::RedisSentinel(s) => engine::init(&SentinelEngine::new(s, ctx)?, ctx).await,
        Topology::Postgres(s) => engine::init(&PostgresEngine::new(s, ctx)?, ctx).await,
    }
}

/// `datatier plan`: the human rendering and the JSON form.
pub async fn plan(t: &Topology, ctx: &Ctx) -> Result<(String, serde_json::Value)> {
    match t {
        Topology::RedisCluster(s) => {
            let p = engine::plan(&ClusterEngine::new(s, ctx)?, ctx).await?;
            Ok((p.render(t.name()), crate::plan::to_json(t.name(), &p)))
        }
        Topology::MongoSharded(s) => {
            let p = engine::plan(&MongoEngine::new(s, ctx)?, ctx).await?;
            Ok((p.render(t.name()), crate::plan::to_json(t.name(), &p)))
        }
        Topology::RedisSentinel(s) => {
            let p = engine::plan(&SentinelEngine::new(s, ctx)?, ctx).await?;
            Ok((p.render(t.name()), crate::plan::to_json(t.name(), &p)))
        }
        Topology::Postgres(s) => {
            let p = engine::plan(&PostgresEngine::new(s, ctx)?, ctx).await?;
            Ok((p.render(t.name()), crate::plan::to_json(t.name(), &p)))
        }
    }
}

/// `datatier status`.
pub async fn status(t: &Topology, ctx: &Ctx) -> Result<StatusReport> {
    match t {
        Topology::RedisCluster(s) => engine::status(&ClusterEngine::new(s, ctx)?, ctx).await,
        Topology::MongoSharded(s) => engine::status(&MongoEngine::new(s, ctx)?, ctx).await,
        Topology::RedisSentinel(s) => engine::status(&SentinelEngine::new(s, ctx)?, ctx).await,
        Topology::Postgres(s) => engine::status(&PostgresEngine::new(s, ctx)?, ctx).await,
    }
}

/// `datatier env`: connection settings for applications.
pub fn env(t: &Topology, ctx: &Ctx) -> Result<Vec<(String, String)>> {
    match t {
        Topology::RedisCluster(s) => Ok(ClusterEngine::new(s, ctx)?.env()),
        Topology::MongoSharded(s) => Ok(MongoEngine::new(s, ctx)?.env()),
        Topology::RedisSentinel(s) => Ok(SentinelEngine::new(s, ctx)?.env()),
        Topology::Postgres(s) => Ok(PostgresEngine::new(s, ctx)?.env(ctx)),
    }
}

/// `datatier render compose`.
pub fn compose(t: &Topology) -> ComposeFile {
    match t {
        Topology::RedisCluster(s) => crate::engine::redis::cluster::compose(s),
        Topology::MongoSharded(s) => crate::engine::mongo::compose(s),
        Topology::RedisSentinel(s) => crate::engine::redis::sentinel::compose(s),
        Topology::Postgres(s) => crate::engine::postgres::compose(s),
    }
}

/// `datatier failover`: promote a replica (`to`, or the sentinels' choice).
pub async fn failover(t: &Topology, ctx: &Ctx, to: Option<&str>) -> Result<FailoverOutcome> {
    match t {
        Topology::RedisSentinel(s) => {
            let engine = SentinelEngine::new(s, ctx)?;
            let _lock = ctx.state.lock()?;
            crate::engine::redis::sentinel::failover::failover(&engine, ctx, to).await
        }
        other => anyhow::bail!(
            "`datatier failover` does not support kind `{}` yet (supported: redis-sentinel)",
            other.meta().kind.as_str()
        ),
    }
}

/// `datatier switchover`: make a replica the primary (Postgres only).
/// With `dry_run` nothing changes and the steps are returned as text.
pub async fn switchover(
    t: &Topology,
    ctx: &Ctx,
    to: Option<&str>,
    pause_timeout: std::time::Duration,
    dry_run: bool,
) -> Result<Switchover> {
    use crate::engine::postgres::{observe, switchover};
    use crate::engine::Engine as _;
    let Topology::Postgres(s) = t else {
        anyhow::bail!(
            "switchover is for postgres topologies; `{}` is a {} topology",
            t.name(),
            t.meta().kind.as_str()
        );
    };
    if !ctx.state.exists() && ctx.provider == crate::provider::ProviderKind::Local {
        anyhow::bail!(
            "`{}` has no state in {}: it was never initialized from here\nhint: run `datatier init {}` first, or pass the --state-dir that init used",
            t.name(),
            ctx.state.dir.display(),
            t.name()
        );
    }
    let _lock = ctx.state.lock()?;
    let e = PostgresEngine::new(s, ctx)?;
    let obs = observe::observe(&e, ctx).await?;
    let intent = switchover::intent(&e, &obs, to)?;
    if dry_run {
        return Ok(Switchover::DryRun(switchover::describe(
            &intent,
            s.pgbouncer.is_some(),
        )));
    }
    let out = switchover::run(&e, ctx, &intent, pause_timeout).await?;
    let obs = e.observe(ctx).await?;
    Ok(Switchover::Done(Box::new((out, e.report(ctx, &obs)))))
}

/// What `switchover` did.
pub enum Switchover {
    DryRun(String),
    Done(Box<(crate::engine::postgres::switchover::Outcome, StatusReport)>),
}
