//! The Redis Cluster engine: bootstrap by the cluster protocol, checks that
//! prove the cluster is whole.
//!
//! - [`observe`]: every node read in parallel (INFO, CLUSTER NODES/INFO).
//! - [`plan`]: the pure planner and its [`plan::Action`]s.
//! - [`apply`]: phases of concurrent, idempotent steps, waits by polling.
//! - [`converge`]: the one definition of "converged" used by both.
//! - [`health`]: findings and the node table for `status`.

pub mod apply;
pub mod converge;
pub mod health;
pub mod nodes;
pub mod observe;
pub mod plan;

use crate::engine::{Applied, Ctx, Engine};
use crate::provider::compose::{ComposeFile, Service};
use crate::provider::ProviderKind;
use crate::secret::Secret;
use crate::topology::redis_cluster::RedisClusterSpec;
use anyhow::Result;

pub struct ClusterEngine<'a> {
    pub spec: &'a RedisClusterSpec,
    pub password: Option<Secret>,
    pub provider: ProviderKind,
}

impl<'a> ClusterEngine<'a> {
    pub fn new(spec: &'a RedisClusterSpec, ctx: &Ctx) -> Result<Self> {
        Ok(ClusterEngine {
            spec,
            password: spec.auth.resolve(&spec.meta.source.base)?,
            provider: ctx.provider,
        })
    }

    pub fn addrs(&self) -> Vec<String> {
        self.spec.nodes.iter().map(|n| n.addr()).collect()
    }

    pub fn name_str(&self) -> &str {
        &self.spec.meta.name
    }

    /// Connection settings for applications.
    pub fn env(&self) -> Vec<(String, String)> {
        let addrs = self.addrs();
        let mut v = vec![
            ("REDIS_CLUSTER_NODES".to_string(), addrs.join(",")),
            ("REDIS_URL".to_string(), format!("redis://{}", addrs[0])),
        ];
        if let Some(e) = &self.spec.auth.password_env {
            v.push(("REDIS_PASSWORD_FROM".into(), format!("env:{e}")));
        } else if let Some(p) = &self.spec.auth.password_file {
            v.push((
                "REDIS_PASSWORD_FROM".into(),
                format!("file:{}", p.display()),
            ));
        }
        v
    }
}

impl Engine for ClusterEngine<'_> {
    type Observed = observe::Observed;
    type Action = plan::Action;

    fn name(&self) -> &str {
        &self.spec.meta.name
    }

    async fn observe(&self, ctx: &Ctx) -> Result<observe::Observed> {
        let addrs = self.addrs();
        let processes = match self.provider {
            ProviderKind::Local => observe::local_processes(&ctx.state, &addrs, None),
            ProviderKind::Existing => vec![observe::Process::External; addrs.len()],
        };
        let mut keys: Vec<String> = self.spec.config.iter().map(|(k, _)| k.clone()).collect();
        keys.push("repl-diskless-sync-delay".into());
        Ok(observe::observe(&addrs, processes, self.password.as_ref(), &keys).await)
    }

    fn plan(
        &self,
        ctx: &Ctx,
        observed: &observe::Observed,
    ) -> Result<crate::plan::Plan<plan::Action>> {
        plan::plan(self.spec, observed, ctx.force)
    }

    async fn apply(&self, ctx: &Ctx, plan: crate::plan::Plan<plan::Action>) -> Result<Applied> {
        apply::apply(self, ctx, plan).await
    }

    fn report(&self, _ctx: &Ctx, observed: &observe::Observed) -> crate::report::StatusReport {
        health::report(self.spec, observed)
    }
}

/// A compose file with one `redis:7` service per node (host networking).
/// Then `datatier init --provider existing` forms the cluster.
pub fn compose(spec: &RedisClusterSpec) -> ComposeFile {
    let mut f = ComposeFile::default();
    for n in &spec.nodes {
        let name = format!("redis-{}-{}", n.host.replace(['.', ':'], "-"), n.port);
        let mut cmd: Vec<String> = vec![
            "redis-server".into(),
            "--bind".into(),
            n.host.clone(),
            "--port".into(),
            n.port.to_string(),
            "--cluster-enabled".into(),
            "yes".into(),
            "--cluster-config-file".into(),
            "nodes.conf".into(),
            "--cluster-node-timeout".into(),
            spec.node_timeout_ms.to_string(),
        ];
        for (k, v) in &spec.config {
            cmd.push(format!("--{k}"));
            cmd.push(v.clone());
        }
        let mut env = Vec::new();
        if let Some(var) = &spec.auth.password_env {
            cmd.extend([
                "--requirepass".into(),
                format!("${{{var}:?set {var}}}"),
                "--masterauth".into(),
                format!("${{{var}}}"),
            ]);
            env.push(("REDISCLI_AUTH".to_string(), format!("${{{var}}}")));
        }
        let vol = format!("{name}-data");
        f.services.push(Service {
            name: name.clone(),
            image: "redis:7.0".into(),
            command: cmd,
            environment: env,
            volumes: vec![format!("{vol}:/data")],
            healthcheck: Some(vec![
                "redis-cli".into(),
                "-h".into(),
                n.host.clone(),
                "-p".into(),
                n.port.to_string(),
                "ping".into(),
            ]),
            ..Default::default()
        });
        f.volumes.push(vol);
    }
    f
}
