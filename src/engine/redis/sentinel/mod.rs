//! The Redis Sentinel engine: a master, its replicas, and the sentinels that
//! fail over when the master dies.
//!
//! - [`observe`]: every data node and sentinel read in parallel.
//! - [`converge`]: who the master is now (the sentinels decide), and the
//!   one definition of "converged" used by init, failover and status.
//! - [`plan`]: the pure planner and its [`plan::Action`]s.
//! - [`apply`]: phases of concurrent, idempotent steps, waits by polling.
//! - [`failover`]: `datatier failover`, a switchover that loses no write.
//! - [`health`]: findings and the node table for `status`.

pub mod apply;
pub mod converge;
pub mod failover;
pub mod health;
pub mod observe;
pub mod plan;

use crate::engine::{Applied, Ctx, Engine};
use crate::provider::compose::{ComposeFile, Service};
use crate::provider::ProviderKind;
use crate::secret::Secret;
use crate::topology::redis_sentinel::RedisSentinelSpec;
use anyhow::Result;
use observe::{Process, SavedSentinel};

pub struct SentinelEngine<'a> {
    pub spec: &'a RedisSentinelSpec,
    /// The data nodes' password (also the sentinels' auth-pass).
    pub password: Option<Secret>,
    /// The sentinels' own password.
    pub sentinel_password: Option<Secret>,
    pub provider: ProviderKind,
}

/// Config file names in a node's dir (local provider).
pub const DATA_CONF: &str = "redis.conf";
pub const SENTINEL_CONF: &str = "sentinel.conf";

impl<'a> SentinelEngine<'a> {
    pub fn new(spec: &'a RedisSentinelSpec, ctx: &Ctx) -> Result<Self> {
        let base = &spec.meta.source.base;
        Ok(SentinelEngine {
            spec,
            password: spec.auth.resolve(base)?,
            sentinel_password: spec.sentinel_auth.resolve(base)?,
            provider: ctx.provider,
        })
    }

    /// Connection settings for applications: sentinel-aware clients ask
    /// the sentinels for the master by name.
    pub fn env(&self) -> Vec<(String, String)> {
        let s = &self.spec;
        let mut v = vec![
            ("REDIS_SENTINELS".to_string(), s.sentinels.join(",")),
            ("REDIS_SENTINEL_MASTER".to_string(), s.master_name.clone()),
            (
                "REDIS_SENTINEL_URL".to_string(),
                format!(
                    "redis+sentinel://{}/{}",
                    s.sentinels.join(","),
                    s.master_name
                ),
            ),
        ];
        let from = |src: &crate::secret::SecretSource| {
            src.password_env
                .as_ref()
                .map(|e| format!("env:{e}"))
                .or_else(|| {
                    src.password_file
                        .as_ref()
                        .map(|p| format!("file:{}", p.display()))
                })
        };
        if let Some(f) = from(&s.auth) {
            v.push(("REDIS_PASSWORD_FROM".into(), f));
        }
        if let Some(f) = from(&s.sentinel_auth) {
            v.push(("REDIS_SENTINEL_PASSWORD_FROM".into(), f));
        }
        v
    }
}

impl Engine for SentinelEngine<'_> {
    type Observed = observe::Observed;
    type Action = plan::Action;

    fn name(&self) -> &str {
        &self.spec.meta.name
    }

    async fn observe(&self, ctx: &Ctx) -> Result<observe::Observed> {
        let data = self.spec.data_nodes();
        let sentinels = &self.spec.sentinels;
        let (dp, sp) = match self.provider {
            ProviderKind::Local => (
                observe::local_processes(&ctx.state, &data, DATA_CONF),
                observe::local_processes(&ctx.state, sentinels, SENTINEL_CONF),
            ),
            ProviderKind::Existing => (
                vec![Process::External; data.len()],
                vec![Process::External; sentinels.len()],
            ),
        };
        let saved: Vec<Option<SavedSentinel>> = sentinels
            .iter()
            .zip(&sp)
            .map(|(a, p)| match p {
                Process::Stopped { has_state: true } => {
                    std::fs::read_to_string(ctx.state.node_dir(a).join(SENTINEL_CONF))
                        .ok()
                        .map(|t| SavedSentinel::parse(&t, &self.spec.master_name))
                }
                _ => None,
            })
            .collect();
        let keys: Vec<String> = self.spec.config.iter().map(|(k, _)| k.clone()).collect();
        Ok(observe::observe(
            &data,
            dp,
            sentinels,
            sp,
            saved,
            &self.spec.master_name,
            self.password.as_ref(),
            self.sentinel_password.as_ref(),
            &keys,
        )
        .await)
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

/// A compose file: one `redis:7` service per data node and per sentinel
/// (host networking, so addresses stay as declared). Each sentinel writes
/// its own config into its volume on first start and draws its own id;
/// `datatier init --provider existing` then sets up replication and the
/// monitors.
pub fn compose(spec: &RedisSentinelSpec) -> ComposeFile {
    let mut f = ComposeFile::default();
    let service_name = |role: &str, a: &str| format!("{role}-{}", a.replace(['.', ':'], "-"));
    for a in spec.data_nodes() {
        let (host, port) = a.rsplit_once(':').unwrap_or((&a, "6379"));
        let name = service_name("redis", &a);
        // A config file in the volume, so the roles datatier and the
        // sentinels set (REPLICAOF + CONFIG REWRITE) survive a restart.
        let mut cmd: Vec<String> = vec![
            "sh".into(),
            "-c".into(),
            "umask 077; touch /data/redis.conf; exec redis-server /data/redis.conf \"$$@\"".into(),
            "redis-server".into(),
            "--bind".into(),
            host.into(),
            "--port".into(),
            port.into(),
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
                host.into(),
                "-p".into(),
                port.into(),
                "ping".into(),
            ]),
            ..Default::default()
        });
        f.volumes.push(vol);
    }
    for a in &spec.sentinels {
        let (host, port) = a.rsplit_once(':').unwrap_or((a, "26379"));
        let name = service_name("sentinel", a);
        let mut script = format!(
            "umask 077; [ -f /data/sentinel.conf ] || printf 'port {port}\\nbind {host}\\ndir /data\\n' > /data/sentinel.conf; exec redis-sentinel /data/sentinel.conf"
        );
        let mut env = Vec::new();
        if let Some(var) = &spec.sentinel_auth.password_env {
            script.push_str(" --requirepass \"$$SENTINEL_PASSWORD\"");
            env.push((
                "SENTINEL_PASSWORD".to_string(),
                format!("${{{var}:?set {var}}}"),
            ));
        }
        let vol = format!("{name}-data");
        f.services.push(Service {
            name: name.clone(),
            image: "redis:7.0".into(),
            command: vec!["sh".into(), "-c".into(), script],
            environment: env,
            volumes: vec![format!("{vol}:/data")],
            healthcheck: Some(vec![
                "redis-cli".into(),
                "-h".into(),
                host.into(),
                "-p".into(),
                port.into(),
                "ping".into(),
            ]),
            ..Default::default()
        });
        f.volumes.push(vol);
    }
    f
}
