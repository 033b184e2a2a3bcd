//! PgBouncer: the ini and auth file datatier writes, where each database
//! routes to, and the admin console (SHOW, RELOAD, PAUSE, RESUME).
//!
//! Routing. A database routed to the primary is one `host=.. port=..`. A
//! database routed to the replicas lists them all and PgBouncer picks one
//! per new server connection, round robin. PgBouncer 1.18 takes a list of
//! hosts but a single port, so when the replicas listen on different ports
//! of one machine (the local default: 15433, 15434) datatier routes through
//! unix sockets instead: for each replica a short directory holding a
//! symlink `.s.PGSQL.5432` to that replica's own socket, and the host list
//! names those directories. Replicas on one port (separate hosts, the
//! usual production layout) are plain TCP.
//!
//! Authentication. The auth file holds each role's SCRAM secret exactly as
//! Postgres stores it. A client proves its password to PgBouncer, and
//! PgBouncer reuses that proof to log in to Postgres (SCRAM pass-through),
//! so no plain password is kept anywhere by PgBouncer.

use super::server::{node_key, NodePaths};
use super::sql::{self, Row, RowExt};
use crate::secret::Secret;
use crate::topology::postgres::{PgBouncerSpec, PgNode, PostgresSpec, RouteTarget};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_postgres::Client;

/// The port name used in the socket-route symlinks (`.s.PGSQL.5432`).
pub const ROUTE_PORT: u16 = 5432;

/// Where one PgBouncer database sends its server connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedRoute {
    pub name: String,
    pub target: RouteTarget,
    /// `host=` value (one host, a list, or socket directories).
    pub host: String,
    pub port: u16,
    pub dbname: String,
    /// The nodes behind it, as `host:port`.
    pub members: Vec<String>,
    /// Socket routes to create: (directory, symlink target).
    pub links: Vec<(PathBuf, PathBuf)>,
}

/// Compute every route. `replicas` are the nodes to read from (the running
/// replicas); with none, a replicas route falls back to the primary so
/// readers keep working (status says so).
pub fn resolve_routes(
    spec: &PostgresSpec,
    b: &PgBouncerSpec,
    local: bool,
    sock_root: &Path,
    node_sockdir: &dyn Fn(&PgNode) -> PathBuf,
    primary: &PgNode,
    replicas: &[&PgNode],
) -> Vec<ResolvedRoute> {
    b.routes
        .iter()
        .map(|r| {
            let single = |n: &PgNode| ResolvedRoute {
                name: r.name.clone(),
                target: r.target,
                host: n.host.clone(),
                port: n.port,
                dbname: spec.database.clone(),
                members: vec![n.addr()],
                links: Vec::new(),
            };
            match r.target {
                RouteTarget::Primary => single(primary),
                RouteTarget::Replicas => match replicas {
                    [] => single(primary),
                    [one] => single(one),
                    many if many.iter().all(|n| n.port == many[0].port) => ResolvedRoute {
                        name: r.name.clone(),
                        target: r.target,
                        host: many
                            .iter()
                            .map(|n| n.host.as_str())
                            .collect::<Vec<_>>()
                            .join(","),
                        port: many[0].port,
                        dbname: spec.database.clone(),
                        members: many.iter().map(|n| n.addr()).collect(),
                        links: Vec::new(),
                    },
                    many if local => {
                        let links: Vec<(PathBuf, PathBuf)> = many
                            .iter()
                            .map(|n| {
                                (
                                    sock_root.join(format!(
                                        "ro-{}-{}",
                                        b.port,
                                        node_key(&n.addr())
                                    )),
                                    node_sockdir(n).join(format!(".s.PGSQL.{}", n.port)),
                                )
                            })
                            .collect();
                        ResolvedRoute {
                            name: r.name.clone(),
                            target: r.target,
                            host: links
                                .iter()
                                .map(|(d, _)| d.display().to_string())
                                .collect::<Vec<_>>()
                                .join(","),
                            port: ROUTE_PORT,
                            dbname: spec.database.clone(),
                            members: many.iter().map(|n| n.addr()).collect(),
                            links,
                        }
                    }
                    // Different ports on remote hosts: PgBouncer 1.18
                    // cannot list them; use the first (status notes it).
                    many => single(many[0]),
                },
            }
        })
        .collect()
}

/// The ini file.
pub fn render_ini(
    spec: &PostgresSpec,
    b: &PgBouncerSpec,
    routes: &[ResolvedRoute],
    auth_file: &Path,
) -> String {
    let mut s = format!(
        ";; written by datatier for topology `{}`; edit the topology file instead\n[databases]\n",
        spec.meta.name
    );
    for r in routes {
        s.push_str(&format!(
            "{} = host={} port={} dbname={}\n",
            r.name, r.host, r.port, r.dbname
        ));
    }
    s.push_str("\n[pgbouncer]\n");
    let mut set = |k: &str, v: &str| s.push_str(&format!("{k} = {v}\n"));
    set("listen_addr", &b.host);
    set("listen_port", &b.port.to_string());
    set("unix_socket_dir", "");
    set("auth_type", "scram-sha-256");
    set("auth_file", &auth_file.display().to_string());
    set("admin_users", &spec.admin.user);
    set("stats_users", &spec.admin.user);
    set("pool_mode", b.pool_mode.as_str());
    set("max_client_conn", &b.max_client_conn.to_string());
    set("default_pool_size", &b.default_pool_size.to_string());
    set("min_pool_size", &b.min_pool_size.to_string());
    set("reserve_pool_size", &b.reserve_pool_size.to_string());
    // After a failed server login (a node shutting down or restarting, as
    // in a switchover) PgBouncer opens no new server connection to that
    // database for this long; its default of 15 s turned a 70 ms switchover
    // pause into a 15 s client stall in our tests.
    if !b.config.iter().any(|(k, _)| k == "server_login_retry") {
        set("server_login_retry", "0.25");
    }
    // JDBC and others send it; harmless to accept.
    if !b
        .config
        .iter()
        .any(|(k, _)| k == "ignore_startup_parameters")
    {
        set("ignore_startup_parameters", "extra_float_digits");
    }
    for (k, v) in &b.config {
        set(k, v);
    }
    s
}

/// The auth file: `"role" "SCRAM-SHA-256$..."` lines, sorted by role.
pub fn render_userlist(secrets: &[(String, String)]) -> String {
    let mut v: Vec<&(String, String)> = secrets.iter().collect();
    v.sort();
    v.iter()
        .map(|(user, secret)| {
            format!(
                "\"{}\" \"{}\"\n",
                user.replace('"', "\"\""),
                secret.replace('"', "\"\"")
            )
        })
        .collect()
}

/// Files of a PgBouncer the local provider runs.
#[derive(Debug, Clone)]
pub struct BouncerPaths {
    pub dir: PathBuf,
    pub ini: PathBuf,
    pub userlist: PathBuf,
}

pub fn bouncer_paths(node: &NodePaths) -> BouncerPaths {
    BouncerPaths {
        ini: node.dir.join("pgbouncer.ini"),
        userlist: node.dir.join("userlist.txt"),
        dir: node.dir.clone(),
    }
}

/// The files for provider `existing` with `config_file` set.
pub fn existing_paths(config_file: &Path) -> BouncerPaths {
    let dir = config_file.parent().unwrap_or(Path::new("/")).to_path_buf();
    BouncerPaths {
        userlist: dir.join("userlist.txt"),
        ini: config_file.to_path_buf(),
        dir,
    }
}

/// Create the socket-route symlinks of `routes` (replacing stale ones).
pub fn write_links(
    routes: &[ResolvedRoute],
    who: Option<&crate::provider::local::RunAs>,
) -> Result<()> {
    for r in routes {
        for (dir, target) in &r.links {
            super::server::ensure_dir(dir, who)?;
            let link = dir.join(format!(".s.PGSQL.{ROUTE_PORT}"));
            match std::fs::read_link(&link) {
                Ok(t) if &t == target => continue,
                Ok(_) => std::fs::remove_file(&link)?,
                Err(_) => {}
            }
            std::os::unix::fs::symlink(target, &link)
                .with_context(|| format!("cannot create socket route {}", link.display()))?;
        }
    }
    Ok(())
}

/// One row of `SHOW DATABASES`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BouncerDb {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub database: String,
    pub paused: bool,
    pub disabled: bool,
    pub current_connections: u64,
}

/// One row of `SHOW POOLS`.
#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    pub database: String,
    pub user: String,
    pub cl_active: u64,
    pub cl_waiting: u64,
    pub sv_active: u64,
    pub sv_idle: u64,
    pub maxwait_seconds: f64,
}

/// What the admin console says.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BouncerView {
    pub version: String,
    pub databases: Vec<BouncerDb>,
    pub pools: Vec<Pool>,
    /// `SHOW CONFIG`: key -> value.
    pub config: std::collections::HashMap<String, String>,
}

impl BouncerView {
    pub fn db(&self, name: &str) -> Option<&BouncerDb> {
        self.databases.iter().find(|d| d.name == name)
    }
}

pub async fn console(
    addr: &str,
    user: &str,
    password: Option<&Secret>,
    timeout: Duration,
) -> Result<Client, sql::ConnError> {
    sql::connect(addr, user, password, "pgbouncer", timeout).await
}

fn parse_db(r: &Row) -> BouncerDb {
    BouncerDb {
        name: r.string("name"),
        host: r.string("host"),
        port: r.u64("port").unwrap_or(0) as u16,
        database: r.string("database"),
        paused: r.u64("paused").unwrap_or(0) != 0,
        disabled: r.u64("disabled").unwrap_or(0) != 0,
        current_connections: r.u64("current_connections").unwrap_or(0),
    }
}

fn parse_pool(r: &Row) -> Pool {
    let maxwait = r.f64("maxwait").unwrap_or(0.0) + r.f64("maxwait_us").unwrap_or(0.0) / 1e6;
    Pool {
        database: r.string("database"),
        user: r.string("user"),
        cl_active: r.u64("cl_active").unwrap_or(0),
        cl_waiting: r.u64("cl_waiting").unwrap_or(0),
        sv_active: r.u64("sv_active").unwrap_or(0),
        sv_idle: r.u64("sv_idle").unwrap_or(0),
        maxwait_seconds: maxwait,
    }
}

/// Read SHOW VERSION / DATABASES / POOLS / CONFIG.
pub async fn read_view(c: &Client, timeout: Duration) -> Result<BouncerView> {
    let version = sql::rows(c, "SHOW VERSION", timeout)
        .await?
        .first()
        .and_then(|r| r.values().flatten().next().cloned())
        .unwrap_or_default();
    let databases = sql::rows(c, "SHOW DATABASES", timeout)
        .await?
        .iter()
        .map(parse_db)
        .filter(|d| d.name != "pgbouncer")
        .collect();
    let pools = sql::rows(c, "SHOW POOLS", timeout)
        .await?
        .iter()
        .map(parse_pool)
        .filter(|p| p.database != "pgbouncer")
        .collect();
    let config = sql::rows(c, "SHOW CONFIG", timeout)
        .await?
        .iter()
        .map(|r| (r.string("key"), r.string("value")))
        .collect();
    Ok(BouncerView {
        version,
        databases,
        pools,
        config,
    })
}

/// An admin command (`RELOAD`, `PAUSE app`, `RESUME app`).
pub async fn admin(c: &Client, cmd: &str, timeout: Duration) -> Result<()> {
    match sql::exec(c, cmd, timeout).await {
        Ok(()) => Ok(()),
        // RESUME of a database that is not paused, PAUSE of a paused one.
        Err(e)
            if e.to_string().contains("not paused") || e.to_string().contains("already paused") =>
        {
            Ok(())
        }
        Err(e) => bail!("{cmd}: {e}"),
    }
}

/// The nodes a live `[databases]` entry sends clients to: `host:port` for
/// TCP hosts; for datatier's socket routes (`.../ro-<port>-<node>`), the
/// node the route links to; other socket directories as they are.
pub fn live_members(db: &BouncerDb, nodes: &[PgNode]) -> Vec<String> {
    db.host
        .split(',')
        .filter(|h| !h.is_empty())
        .map(|h| {
            if h.starts_with('/') {
                let name = Path::new(h)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                nodes
                    .iter()
                    .find(|n| {
                        name.starts_with("ro-")
                            && name.ends_with(&format!("-{}", node_key(&n.addr())))
                    })
                    .map(|n| n.addr())
                    .unwrap_or_else(|| format!("unix:{h}"))
            } else {
                PgNode {
                    host: h.to_string(),
                    port: db.port,
                }
                .addr()
            }
        })
        .collect()
}

/// Do the live databases match the resolved routes?
pub fn routes_match(view: &BouncerView, routes: &[ResolvedRoute]) -> Vec<String> {
    let mut gaps = Vec::new();
    for r in routes {
        match view.db(&r.name) {
            None => gaps.push(format!("database {} is not configured", r.name)),
            Some(d) if d.host != r.host || d.port != r.port || d.database != r.dbname => {
                gaps.push(format!(
                    "{} routes to {}:{} (should be {})",
                    r.name,
                    d.host,
                    d.port,
                    r.members.join(", ")
                ))
            }
            Some(_) => {}
        }
    }
    gaps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> PostgresSpec {
        match crate::topology::builtin("postgres").unwrap() {
            crate::topology::Topology::Postgres(s) => s,
            _ => unreachable!(),
        }
    }

    #[test]
    fn default_routes_use_socket_links_for_replicas_on_different_ports() {
        let s = spec();
        let b = s.pgbouncer.clone().unwrap();
        let sock = |n: &PgNode| PathBuf::from(format!("/r/{}", n.port));
        let reps: Vec<&PgNode> = s.nodes[1..].iter().collect();
        let routes = resolve_routes(&s, &b, true, Path::new("/r"), &sock, &s.nodes[0], &reps);
        assert_eq!(routes[0].host, "127.0.0.1");
        assert_eq!(routes[0].port, 15432);
        assert_eq!(
            routes[1].host,
            "/r/ro-16432-127.0.0.1-15433,/r/ro-16432-127.0.0.1-15434"
        );
        assert_eq!(routes[1].port, ROUTE_PORT);
        assert_eq!(
            routes[1].links[0].1,
            PathBuf::from("/r/15433/.s.PGSQL.15433")
        );
        let ini = render_ini(&s, &b, &routes, Path::new("/s/userlist.txt"));
        assert!(
            ini.contains("app = host=127.0.0.1 port=15432 dbname=app\n"),
            "{ini}"
        );
        assert!(ini.contains("pool_mode = transaction\n"));
        assert!(ini.contains("server_login_retry = 0.25\n"));
        assert!(ini.contains("max_client_conn = 1000\n"));
        assert!(ini.contains("default_pool_size = 20\n"));
        assert!(ini.contains("min_pool_size = 5\n"));
        assert!(ini.contains("auth_type = scram-sha-256\n"));
        assert!(ini.contains("admin_users = postgres\n"));
        // One replica left: plain TCP; none: readers go to the primary.
        let one = resolve_routes(
            &s,
            &b,
            true,
            Path::new("/r"),
            &sock,
            &s.nodes[0],
            &reps[..1],
        );
        assert_eq!((one[1].host.as_str(), one[1].port), ("127.0.0.1", 15433));
        let none = resolve_routes(&s, &b, true, Path::new("/r"), &sock, &s.nodes[0], &[]);
        assert_eq!(none[1].members, ["127.0.0.1:15432"]);
    }

    #[test]
    fn replicas_on_one_port_are_a_tcp_host_list() {
        let s = spec();
        let b = s.pgbouncer.clone().unwrap();
        let a = PgNode {
            host: "10.0.0.2".into(),
            port: 5432,
        };
        let c = PgNode {
            host: "10.0.0.3".into(),
            port: 5432,
        };
        let r = resolve_routes(
            &s,
            &b,
            false,
            Path::new("/r"),
            &|_| PathBuf::new(),
            &s.nodes[0],
            &[&a, &c],
        );
        assert_eq!((r[1].host.as_str(), r[1].port), ("10.0.0.2,10.0.0.3", 5432));
    }

    #[test]
    fn userlist_is_sorted_and_quoted() {
        let u = render_userlist(&[
            ("b".into(), "SCRAM-SHA-256$x".into()),
            ("a".into(), "s".into()),
        ]);
        assert_eq!(u, "\"a\" \"s\"\n\"b\" \"SCRAM-SHA-256$x\"\n");
    }
}
