//! Operations behind the commands, dispatched on the topology's kind. Adding
//! a kind means one arm per function here; everything else lives in the
//! kind's engine.

use crate::engine::mongo::MongoEngine;
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
    }
}

/// `datatier status`.
pub async fn status(t: &Topology, ctx: &Ctx) -> Result<StatusReport> {
    match t {
        Topology::RedisCluster(s) => engine::status(&ClusterEngine::new(s, ctx)?, ctx).await,
        Topology::MongoSharded(s) => engine::status(&MongoEngine::new(s, ctx)?, ctx).await,
        Topology::RedisSentinel(s) => engine::status(&SentinelEngine::new(s, ctx)?, ctx).await,
    }
}

/// `datatier env`: connection settings for applications.
pub fn env(t: &Topology, ctx: &Ctx) -> Result<Vec<(String, String)>> {
    match t {
        Topology::RedisCluster(s) => Ok(ClusterEngine::new(s, ctx)?.env()),
        Topology::MongoSharded(s) => Ok(MongoEngine::new(s, ctx)?.env()),
        Topology::RedisSentinel(s) => Ok(SentinelEngine::new(s, ctx)?.env()),
    }
}

/// `datatier render compose`.
pub fn compose(t: &Topology) -> ComposeFile {
    match t {
        Topology::RedisCluster(s) => crate::engine::redis::cluster::compose(s),
        Topology::MongoSharded(s) => crate::engine::mongo::compose(s),
        Topology::RedisSentinel(s) => crate::engine::redis::sentinel::compose(s),
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
