//! The Postgres engine: a primary, streaming replicas and PgBouncer.
//!
//! - [`observe`]: every node, PgBouncer's console and the local files,
//!   read in parallel (one round trip per server).
//! - [`plan`]: the pure planner and its [`plan::Action`]s.
//! - [`apply`]: executes a plan; steps are idempotent, waits poll.
//! - [`health`]: findings and the node table for `status`.
//! - [`switchover`]: promote a replica with no acknowledged write lost.
//! - [`server`]: the local provider's side (initdb, pg_basebackup,
//!   pg_rewind, the files datatier writes into a data dir).
//! - [`pgbouncer`]: ini, auth file, routes and the admin console.
//! - [`scram`], [`sql`]: SCRAM secrets; connections and quoting.
//!
//! Passwords (the admin superuser, the replication role, the database
//! owner) come from the topology's `password_env` / `password_file`, or are
//! generated once and kept 0600 in the state dir. They travel only as
//! SCRAM secrets in statements and as 0600 files for the tools, never on a
//! command line, in a plan or in a log.

pub mod apply;
#[cfg(test)]
mod fixture;
pub mod health;
pub mod observe;
pub mod pgbouncer;
pub mod plan;
pub mod scram;
pub mod server;
pub mod sql;
pub mod switchover;

use crate::engine::{Applied, Ctx, Engine};
use crate::provider::compose::{ComposeFile, Service};
use crate::provider::local::StateDir;
use crate::provider::ProviderKind;
use crate::secret::{Secret, SecretSource};
use crate::topology::postgres::{PostgresSpec, RouteTarget};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// State-dir file naming the node that is primary now.
pub const PRIMARY_FILE: &str = "primary";

/// Where a password comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    Env(String),
    File(PathBuf),
    /// Kept by datatier in the state dir; `existed` is false until the
    /// first apply writes it.
    Stored {
        path: PathBuf,
        existed: bool,
    },
}

/// A role's password and where it came from.
#[derive(Debug, Clone)]
pub struct Password {
    pub value: Secret,
    pub origin: Origin,
}

impl Password {
    /// Resolve `source`, else load (or generate, unsaved) `<state>/<file>`.
    pub fn resolve(
        source: &SecretSource,
        base: &Path,
        state: &StateDir,
        file: &str,
    ) -> Result<Self> {
        if let Some(v) = source.resolve(base)? {
            let origin = match (&source.password_env, &source.password_file) {
                (Some(var), _) => Origin::Env(var.clone()),
                (None, Some(f)) => Origin::File(if f.is_absolute() {
                    f.clone()
                } else {
                    base.join(f)
                }),
                _ => unreachable!("resolved from a set source"),
            };
            return Ok(Password { value: v, origin });
        }
        let path = state.dir.join(file);
        match std::fs::read_to_string(&path) {
            Ok(s) if !s.trim().is_empty() => Ok(Password {
                value: Secret::new(s.trim()),
                origin: Origin::Stored {
                    path,
                    existed: true,
                },
            }),
            _ => Ok(Password {
                value: Secret::generate(32),
                origin: Origin::Stored {
                    path,
                    existed: false,
                },
            }),
        }
    }

    /// Write a generated password to the state dir (0600), once.
    pub fn persist(&self) -> Result<()> {
        if let Origin::Stored { path, .. } = &self.origin {
            if !path.is_file() {
                if let Some(d) = path.parent() {
                    std::fs::create_dir_all(d)?;
                }
                crate::secret::write_private(path, self.value.expose().as_bytes())
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
        }
        Ok(())
    }

    /// Whether datatier may (re)set the role's password to this one: always
    /// when the user configured it or datatier runs the servers; for
    /// servers someone else runs, a generated password is only used for
    /// roles datatier creates.
    pub fn authoritative(&self, local: bool) -> bool {
        local || !matches!(self.origin, Origin::Stored { .. })
    }

    /// Where the password is, for messages (never the value).
    pub fn describe(&self) -> String {
        match &self.origin {
            Origin::Env(v) => format!("env {v}"),
            Origin::File(p) => format!("file {}", p.display()),
            Origin::Stored { path, .. } => path.display().to_string(),
        }
    }
}

pub struct PostgresEngine<'a> {
    pub spec: &'a PostgresSpec,
    pub provider: ProviderKind,
    pub state: StateDir,
    pub admin_password: Option<Secret>,
    pub admin: Password,
    pub replication_password: Password,
    pub owner_password: Password,
}

impl<'a> PostgresEngine<'a> {
    pub fn new(spec: &'a PostgresSpec, ctx: &Ctx) -> Result<Self> {
        let base = &spec.meta.source.base;
        let admin = Password::resolve(&spec.admin.password, base, &ctx.state, "admin.pass")?;
        Ok(PostgresEngine {
            spec,
            provider: ctx.provider,
            state: ctx.state.clone(),
            admin_password: Some(admin.value.clone()),
            admin,
            replication_password: Password::resolve(
                &spec.replication.password,
                base,
                &ctx.state,
                "replication.pass",
            )?,
            owner_password: Password::resolve(
                &spec.owner.password,
                base,
                &ctx.state,
                "owner.pass",
            )?,
        })
    }

    pub fn is_local(&self) -> bool {
        self.provider == ProviderKind::Local
    }

    pub fn admin_password_origin(&self) -> String {
        self.admin.describe()
    }

    /// The PgBouncer files datatier manages, if any.
    pub fn bouncer_paths(&self, ctx: &Ctx) -> Option<pgbouncer::BouncerPaths> {
        self.bouncer_paths_for(&ctx.state)
    }

    pub fn bouncer_paths_for(&self, state: &StateDir) -> Option<pgbouncer::BouncerPaths> {
        let b = self.spec.pgbouncer.as_ref()?;
        match (self.provider, &b.config_file) {
            (ProviderKind::Local, _) => {
                let dir = server::absolute(&state.node_dir(&b.addr()));
                Some(pgbouncer::BouncerPaths {
                    ini: dir.join("pgbouncer.ini"),
                    userlist: dir.join("userlist.txt"),
                    dir,
                })
            }
            (ProviderKind::Existing, Some(f)) => Some(pgbouncer::existing_paths(f)),
            (ProviderKind::Existing, None) => None,
        }
    }

    /// The primary recorded in the state dir, if it is a declared node.
    pub fn recorded_primary(&self, ctx: &Ctx) -> Option<String> {
        let text = std::fs::read_to_string(ctx.state.dir.join(PRIMARY_FILE)).ok()?;
        let addr = text.trim();
        self.spec.node(addr).map(|n| n.addr())
    }

    pub fn record_primary(&self, addr: &str) -> Result<()> {
        self.state.create()?;
        let tmp = self.state.dir.join(format!("{PRIMARY_FILE}.tmp"));
        std::fs::write(&tmp, format!("{addr}\n"))?;
        std::fs::rename(&tmp, self.state.dir.join(PRIMARY_FILE))?;
        Ok(())
    }

    /// The node to present as primary without observing (env, messages):
    /// the recorded one, else the declared one.
    pub fn presumed_primary(&self, ctx: &Ctx) -> String {
        self.recorded_primary(ctx)
            .unwrap_or_else(|| self.spec.declared_primary().addr())
    }

    /// Connection settings for applications. Passwords are never printed:
    /// the variable or file holding them is named instead.
    pub fn env(&self, ctx: &Ctx) -> Vec<(String, String)> {
        let spec = self.spec;
        let user = &spec.owner.user;
        let url = |addr: &str, db: &str| format!("postgres://{user}@{addr}/{db}");
        let primary = self.presumed_primary(ctx);
        let mut v = Vec::new();
        match &spec.pgbouncer {
            Some(b) => {
                for r in &b.routes {
                    let key = match r.target {
                        RouteTarget::Primary if r.name == spec.database => {
                            "DATABASE_URL".to_string()
                        }
                        RouteTarget::Replicas if r.name == format!("{}_ro", spec.database) => {
                            "DATABASE_URL_RO".to_string()
                        }
                        _ => format!("DATABASE_URL_{}", r.name.to_ascii_uppercase()),
                    };
                    v.push((key, url(&b.addr(), &r.name)));
                }
                if !v.iter().any(|(k, _)| k == "DATABASE_URL") {
                    v.insert(0, ("DATABASE_URL".into(), url(&primary, &spec.database)));
                }
            }
            None => v.push(("DATABASE_URL".into(), url(&primary, &spec.database))),
        }
        v.push(("DATABASE_PRIMARY_URL".into(), url(&primary, &spec.database)));
        match &self.owner_password.origin {
            Origin::Env(var) => v.push(("DATABASE_PASSWORD_FROM".into(), format!("env:{var}"))),
            Origin::File(p) => v.push(("DATABASE_PASSWORD_FILE".into(), p.display().to_string())),
            Origin::Stored { path, .. } => {
                let abs = server::absolute(path);
                v.push(("DATABASE_PASSWORD_FILE".into(), abs.display().to_string()));
                v.push((
                    "PGPASSFILE".into(),
                    server::absolute(&ctx.state.dir.join(apply::APP_PGPASS))
                        .display()
                        .to_string(),
                ));
            }
        }
        v
    }
}

impl Engine for PostgresEngine<'_> {
    type Observed = observe::Observed;
    type Action = plan::Action;

    fn name(&self) -> &str {
        &self.spec.meta.name
    }

    async fn observe(&self, ctx: &Ctx) -> Result<observe::Observed> {
        observe::observe(self, ctx).await
    }

    fn plan(
        &self,
        ctx: &Ctx,
        observed: &observe::Observed,
    ) -> Result<crate::plan::Plan<plan::Action>> {
        plan::plan(self, &ctx.state, observed, ctx.force)
    }

    async fn apply(&self, ctx: &Ctx, plan: crate::plan::Plan<plan::Action>) -> Result<Applied> {
        apply::apply(self, ctx, plan).await
    }

    fn report(&self, ctx: &Ctx, observed: &observe::Observed) -> crate::report::StatusReport {
        health::report(self, ctx, observed)
    }
}

/// A compose file: the primary and replicas from the `postgres` image
/// (host networking, so addresses stay as declared; replicas clone the
/// primary with pg_basebackup at first start, as in seed 004) and PgBouncer.
/// Then `datatier init --provider existing` creates the roles, database
/// and slots and verifies replication.
pub fn compose(spec: &PostgresSpec) -> ComposeFile {
    let mut f = ComposeFile::default();
    let admin_var = spec
        .admin
        .password
        .password_env
        .clone()
        .unwrap_or_else(|| "PGADMIN_PASSWORD".into());
    let primary = spec.declared_primary();
    let pname = format!("postgres-{}", primary.port);
    let mut settings: Vec<String> = vec![
        "-c".into(),
        "wal_level=replica".into(),
        "-c".into(),
        "hot_standby=on".into(),
        "-c".into(),
        format!("max_wal_senders={}", (2 * spec.replicas() + 4).max(10)),
        "-c".into(),
        format!("max_connections={}", spec.max_connections),
    ];
    for (k, v) in &spec.config {
        settings.push("-c".into());
        settings.push(format!("{k}={v}"));
    }
    for (i, n) in spec.nodes.iter().enumerate() {
        let name = format!("postgres-{}", n.port);
        let vol = format!("{name}-data");
        let listen = vec![
            "-p".to_string(),
            n.port.to_string(),
            "-c".into(),
            format!("listen_addresses={}", n.host),
        ];
        let (command, depends_on) = if i == 0 {
            let mut c = vec!["postgres".to_string()];
            c.extend(listen);
            c.extend(settings.iter().cloned());
            (c, vec![])
        } else {
            let pg = format!("exec postgres {} {}", listen.join(" "), settings.join(" "));
            let script = format!(
                "if [ ! -s \"$PGDATA/PG_VERSION\" ]; then until PGPASSWORD=\"${admin}\" pg_basebackup -h {h} -p {p} -U {u} -D \"$PGDATA\" -X stream -R --checkpoint=fast; do echo waiting for the primary; sleep 1; done; chmod 0700 \"$PGDATA\"; fi; {pg}",
                admin = admin_var,
                h = primary.host,
                p = primary.port,
                u = spec.admin.user,
            );
            (
                vec![
                    "bash".into(),
                    "-c".into(),
                    format!(
                        "chown postgres \"$PGDATA\"; exec gosu postgres bash -c '{}'",
                        script.replace('\'', "'\\''")
                    ),
                ],
                vec![pname.clone()],
            )
        };
        f.services.push(Service {
            name: name.clone(),
            image: "postgres:15".into(),
            command,
            environment: vec![
                ("POSTGRES_USER".into(), spec.admin.user.clone()),
                (
                    "POSTGRES_PASSWORD".into(),
                    format!("${{{admin_var}:?set {admin_var}}}"),
                ),
                (admin_var.clone(), format!("${{{admin_var}}}")),
                ("PGDATA".into(), "/var/lib/postgresql/data/pgdata".into()),
            ],
            volumes: vec![format!("{vol}:/var/lib/postgresql/data")],
            depends_on,
            healthcheck: Some(vec![
                "pg_isready".into(),
                "-h".into(),
                n.host.clone(),
                "-p".into(),
                n.port.to_string(),
            ]),
            user: None,
        });
        f.volumes.push(vol);
    }
    if let Some(b) = &spec.pgbouncer {
        // The image takes one upstream; datatier (provider existing with
        // [pgbouncer] config_file) can take over its ini afterwards.
        f.services.push(Service {
            name: format!("pgbouncer-{}", b.port),
            image: "edoburu/pgbouncer:latest".into(),
            command: vec![],
            environment: vec![
                (
                    "DATABASE_URL".into(),
                    format!(
                        "postgres://{}:${{{admin_var}}}@{}:{}/{}",
                        spec.admin.user, primary.host, primary.port, spec.database
                    ),
                ),
                ("LISTEN_ADDR".into(), b.host.clone()),
                ("LISTEN_PORT".into(), b.port.to_string()),
                ("POOL_MODE".into(), b.pool_mode.as_str().into()),
                ("MAX_CLIENT_CONN".into(), b.max_client_conn.to_string()),
                ("DEFAULT_POOL_SIZE".into(), b.default_pool_size.to_string()),
                ("MIN_POOL_SIZE".into(), b.min_pool_size.to_string()),
                ("AUTH_TYPE".into(), "scram-sha-256".into()),
            ],
            depends_on: vec![pname.clone()],
            ..Default::default()
        });
    }
    f
}
