//! The MongoDB sharded cluster engine: config server replica set, shard
//! replica sets, mongos routers, sharded collections, chunk size and the
//! balancer — bootstrapped by MongoDB's own admin commands and checked
//! end to end.
//!
//! - [`conn`]: direct connections, `run_command`, errors with the server's
//!   code and name, deadlines on every call.
//! - [`observe`]: every mongod / mongos read in parallel, then the catalog
//!   through one mongos.
//! - [`plan`]: the pure planner and its [`plan::Action`]s.
//! - [`apply`]: phases of idempotent steps; waits poll with deadlines.
//! - [`health`]: findings, metrics and the node table for `status`.
//! - [`process`]: mongod / mongos command lines for the local provider.

pub mod apply;
pub mod conn;
pub mod health;
pub mod observe;
pub mod plan;
pub mod process;

use crate::engine::{Applied, Ctx, Engine};
use crate::provider::compose::{ComposeFile, Service};
use crate::provider::ProviderKind;
use crate::topology::mongo::MongoShardedSpec;
use anyhow::Result;

pub struct MongoEngine<'a> {
    pub spec: &'a MongoShardedSpec,
    pub provider: ProviderKind,
    /// Credentials from `[auth]` (none: nodes without access control).
    pub auth: conn::Auth,
    /// Which stages `plan` covers (everything for `init`).
    pub scope: plan::Scope,
}

impl<'a> MongoEngine<'a> {
    pub fn new(spec: &'a MongoShardedSpec, ctx: &Ctx) -> Result<Self> {
        let auth = match &spec.auth {
            None => conn::Auth::none(),
            Some(_) if ctx.provider == ProviderKind::Local => anyhow::bail!(
                "{}: [auth] needs provider \"existing\": the local provider does not start mongod with access control (a keyFile and users) yet; start the nodes with --keyFile, create the user, and use --provider existing",
                spec.meta.name
            ),
            Some(a) => {
                let secret = a
                    .password
                    .resolve(&spec.meta.source.base)?
                    .ok_or_else(|| anyhow::anyhow!("{}: [auth] has no password source", spec.meta.name))?;
                conn::Auth::scram(&a.username, &secret, &a.source)
            }
        };
        Ok(MongoEngine {
            spec,
            provider: ctx.provider,
            auth,
            scope: plan::Scope::ALL,
        })
    }

    /// Connection settings for applications: the mongos routers.
    pub fn env(&self) -> Vec<(String, String)> {
        let routers = self.spec.mongos_addrs().join(",");
        let db = self.spec.databases().into_iter().next();
        let mut v = vec![
            (
                "MONGODB_URI".to_string(),
                format!("mongodb://{routers}/{}", db.clone().unwrap_or_default()),
            ),
            ("MONGODB_MONGOS".to_string(), routers),
        ];
        if let Some(db) = db {
            v.push(("MONGODB_DATABASE".to_string(), db));
        }
        if let Some(a) = &self.spec.auth {
            v.push(("MONGODB_USERNAME".to_string(), a.username.clone()));
            v.push(("MONGODB_AUTH_SOURCE".to_string(), a.source.clone()));
            if let Some(e) = &a.password.password_env {
                v.push(("MONGODB_PASSWORD_FROM".into(), format!("env:{e}")));
            } else if let Some(p) = &a.password.password_file {
                v.push((
                    "MONGODB_PASSWORD_FROM".into(),
                    format!("file:{}", p.display()),
                ));
            }
        }
        v
    }
}

impl Engine for MongoEngine<'_> {
    type Observed = observe::Observed;
    type Action = plan::Action;

    fn name(&self) -> &str {
        &self.spec.meta.name
    }

    async fn observe(&self, ctx: &Ctx) -> Result<observe::Observed> {
        let state = ctx.state.clone();
        let provider = self.provider;
        let processes = move |addr: &str| match provider {
            ProviderKind::Local => observe::local_process(&state, addr),
            ProviderKind::Existing => observe::Process::External,
        };
        Ok(observe::observe(self.spec, &processes, &self.auth).await)
    }

    fn plan(
        &self,
        ctx: &Ctx,
        observed: &observe::Observed,
    ) -> Result<crate::plan::Plan<plan::Action>> {
        plan::plan_scoped(self.spec, observed, ctx.force, self.scope)
    }

    async fn apply(&self, ctx: &Ctx, plan: crate::plan::Plan<plan::Action>) -> Result<Applied> {
        apply::apply(self, ctx, plan).await
    }

    fn report(&self, _ctx: &Ctx, observed: &observe::Observed) -> crate::report::StatusReport {
        health::report(self.spec, observed)
    }
}

/// A compose file with one `mongo:7.0` service per mongod and mongos (host
/// networking, so addresses stay as declared). Then
/// `datatier init --provider existing` initiates the sets and shards.
pub fn compose(spec: &MongoShardedSpec) -> ComposeFile {
    let mut f = ComposeFile::default();
    let image = "mongo:7.0";
    for set in spec.sets() {
        for m in &set.members {
            let name = format!("mongod-{}-{}", m.host.replace(['.', ':'], "-"), m.port);
            let vol = format!("{name}-data");
            let mut cmd = vec!["mongod".to_string()];
            cmd.extend(process::mongod_args(
                spec,
                set,
                m,
                std::path::Path::new("/data/db"),
            ));
            f.services.push(Service {
                name: name.clone(),
                image: image.into(),
                command: cmd,
                volumes: vec![format!("{vol}:/data/db")],
                healthcheck: Some(vec![
                    "mongosh".into(),
                    "--quiet".into(),
                    "--host".into(),
                    m.host.clone(),
                    "--port".into(),
                    m.port.to_string(),
                    "--eval".into(),
                    "db.adminCommand('ping').ok".into(),
                ]),
                ..Default::default()
            });
            f.volumes.push(vol);
        }
    }
    for r in &spec.mongos {
        let name = format!("mongos-{}-{}", r.host.replace(['.', ':'], "-"), r.port);
        let mut cmd = vec!["mongos".to_string()];
        cmd.extend(process::mongos_args(spec, r));
        f.services.push(Service {
            name,
            image: image.into(),
            command: cmd,
            healthcheck: Some(vec![
                "mongosh".into(),
                "--quiet".into(),
                "--host".into(),
                r.host.clone(),
                "--port".into(),
                r.port.to_string(),
                "--eval".into(),
                "db.adminCommand('ping').ok".into(),
            ]),
            ..Default::default()
        });
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_points_applications_at_the_routers() {
        let crate::topology::Topology::MongoSharded(s) =
            crate::topology::builtin("mongo-sharded").unwrap()
        else {
            unreachable!()
        };
        let ctx = Ctx {
            state_root: ".datatier".into(),
            state: crate::provider::local::StateDir::new(std::path::Path::new(".datatier"), "x"),
            provider: ProviderKind::Local,
            force: false,
            timeout: std::time::Duration::from_secs(1),
        };
        let e = MongoEngine::new(&s, &ctx).unwrap().env();
        assert_eq!(
            e[0],
            (
                "MONGODB_URI".into(),
                "mongodb://127.0.0.1:27017/credibility_prod".into()
            )
        );
        let c = compose(&s).render("x");
        assert!(
            c.contains("\"mongod\", \"--replSet\", \"cfg\", \"--configsvr\""),
            "{c}"
        );
        assert!(c.contains("\"mongos\", \"--configdb\", \"cfg/127.0.0.1:27101,127.0.0.1:27102,127.0.0.1:27103\""), "{c}");
        assert_eq!(c.matches("image: \"mongo:7.0\"").count(), 10);
    }
}
