//! Observation: every node, PgBouncer and the local files read in
//! parallel, in one round trip per server. A node that does not answer is
//! recorded with the reason, never turned into an error; the planner and
//! the health checks decide what that means.

use super::pgbouncer::{self, BouncerView};
use super::server::{self, DataDir, NodePaths};
use super::sql::{self, Lsn, Row, RowExt, NODE_TIMEOUT};
use super::switchover::Journal;
use super::PostgresEngine;
use crate::engine::Ctx;
use crate::provider::local::{self, ProcState};
use crate::provider::ProviderKind;
use crate::topology::postgres::PgNode;
use std::collections::HashMap;
use std::time::Duration;
use tokio_postgres::{Client, SimpleQueryMessage};

/// What the local provider knows of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Process {
    /// Not managed by datatier (provider existing).
    External,
    Running(u32),
    Stopped,
}

/// A row of `pg_stat_replication` on the primary.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicationRow {
    pub pid: u32,
    pub application_name: String,
    pub client_addr: String,
    pub state: String,
    pub sent_lsn: Option<Lsn>,
    pub flush_lsn: Option<Lsn>,
    pub replay_lsn: Option<Lsn>,
    /// `replay_lag` in seconds (NULL once an idle standby has caught up).
    pub replay_lag: Option<f64>,
    pub sync_state: String,
}

/// A row of `pg_replication_slots`.
#[derive(Debug, Clone, PartialEq)]
pub struct SlotRow {
    pub name: String,
    pub physical: bool,
    pub active: bool,
    pub active_pid: Option<u32>,
    pub restart_lsn: Option<Lsn>,
}

/// `pg_stat_wal_receiver` on a replica.
#[derive(Debug, Clone, PartialEq)]
pub struct WalReceiver {
    pub status: String,
    pub received_tli: Option<u32>,
    pub sender_host: String,
    pub sender_port: Option<u16>,
    pub slot_name: Option<String>,
}

/// A role as `pg_authid` has it.
#[derive(Debug, Clone, PartialEq)]
pub struct RoleRow {
    pub login: bool,
    pub replication: bool,
    pub superuser: bool,
    /// The stored secret (`SCRAM-SHA-256$...`), if any.
    pub secret: Option<String>,
}

/// One node as it describes itself.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NodeView {
    pub version_num: u32,
    pub in_recovery: bool,
    pub system_identifier: String,
    /// Primary: current WAL insert position; replica: last replayed.
    pub lsn: Option<Lsn>,
    pub receive_lsn: Option<Lsn>,
    /// Primary: from its current WAL file; replica: the WAL receiver's, or
    /// its last restartpoint's.
    pub timeline: Option<u32>,
    pub connections: u64,
    pub max_connections: u64,
    pub reserved_connections: u64,
    pub cluster_name: String,
    pub primary_conninfo: String,
    pub primary_slot_name: String,
    /// name -> (value, pending_restart)
    pub settings: HashMap<String, (String, bool)>,
    pub replication: Vec<ReplicationRow>,
    pub slots: Vec<SlotRow>,
    pub wal_receiver: Option<WalReceiver>,
    pub roles: HashMap<String, RoleRow>,
    /// datname -> owner, for the declared database.
    pub databases: HashMap<String, String>,
}

impl NodeView {
    pub fn setting(&self, k: &str) -> Option<&str> {
        self.settings.get(k).map(|(v, _)| v.as_str())
    }
    pub fn pending_restart(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .settings
            .iter()
            .filter(|(_, (_, p))| *p)
            .map(|(k, _)| k.clone())
            .collect();
        v.sort();
        v
    }
    /// The node this replica's primary_conninfo names (`host:port`).
    pub fn upstream(&self) -> Option<String> {
        let c = sql::parse_conninfo(&self.primary_conninfo);
        let host = c.get("host").or_else(|| c.get("hostaddr"))?;
        let port = c.get("port").map(String::as_str).unwrap_or("5432");
        Some(
            PgNode {
                host: host.clone(),
                port: port.parse().ok()?,
            }
            .addr(),
        )
    }
    pub fn slot(&self, name: &str) -> Option<&SlotRow> {
        self.slots.iter().find(|s| s.name == name)
    }
}

/// Files of a local node.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LocalFiles {
    pub conf: Option<String>,
    pub hba: Option<String>,
    pub pgpass: Option<String>,
}

/// One declared node.
#[derive(Debug, Clone)]
pub struct NodeObs {
    pub node: PgNode,
    pub addr: String,
    pub process: Process,
    /// Local provider only; `None` for existing nodes.
    pub data: Option<DataDir>,
    pub files: LocalFiles,
    pub view: Result<NodeView, String>,
}

impl NodeObs {
    pub fn view(&self) -> Option<&NodeView> {
        self.view.as_ref().ok()
    }
    pub fn is_primary(&self) -> bool {
        self.view().is_some_and(|v| !v.in_recovery)
    }
}

/// PgBouncer as observed.
#[derive(Debug, Clone)]
pub struct BouncerObs {
    pub addr: String,
    pub process: Process,
    /// The ini and auth file datatier manages (local, or existing with
    /// `config_file`); `None` when there is no such file yet.
    pub ini: Option<String>,
    pub userlist: Option<String>,
    /// Socket routes present: (directory, symlink target).
    pub links: Vec<(std::path::PathBuf, std::path::PathBuf)>,
    pub view: Result<BouncerView, String>,
}

/// Everything observed.
#[derive(Debug, Clone)]
pub struct Observed {
    pub nodes: Vec<NodeObs>,
    pub bouncer: Option<BouncerObs>,
    /// The node recorded as primary in the state dir (after a switchover).
    pub recorded_primary: Option<String>,
    /// An unfinished or finished switchover, from the state dir.
    pub journal: Option<Journal>,
}

impl Observed {
    pub fn node(&self, addr: &str) -> Option<&NodeObs> {
        self.nodes.iter().find(|n| n.addr == addr)
    }
    /// Nodes that answer and are not in recovery.
    pub fn primaries(&self) -> Vec<&NodeObs> {
        self.nodes.iter().filter(|n| n.is_primary()).collect()
    }
}

/// The queries of one observation, as one simple-query batch.
fn node_sql(roles: &[&str], database: &str, settings: &[String]) -> String {
    let list = |v: &[&str]| {
        if v.is_empty() {
            return "NULL".to_string();
        }
        v.iter()
            .map(|s| sql::literal(s))
            .collect::<Vec<_>>()
            .join(",")
    };
    let settings: Vec<&str> = settings.iter().map(String::as_str).collect();
    format!(
        "SELECT pg_is_in_recovery() AS in_recovery,
                current_setting('server_version_num') AS version_num,
                (SELECT system_identifier FROM pg_control_system())::text AS sysid,
                CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END AS lsn,
                pg_last_wal_receive_lsn() AS receive_lsn,
                CASE WHEN pg_is_in_recovery() THEN (SELECT timeline_id FROM pg_control_checkpoint())
                     ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END AS timeline,
                (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend') AS connections,
                current_setting('max_connections') AS max_connections,
                current_setting('superuser_reserved_connections') AS reserved,
                current_setting('cluster_name') AS cluster_name,
                current_setting('primary_conninfo') AS primary_conninfo,
                current_setting('primary_slot_name') AS primary_slot_name;
         SELECT name, setting, pending_restart FROM pg_settings WHERE name IN ({});
         SELECT pid, application_name, coalesce(host(client_addr), 'local') AS client_addr, state,
                sent_lsn, flush_lsn, replay_lsn, extract(epoch FROM replay_lag) AS replay_lag, sync_state
           FROM pg_stat_replication;
         SELECT slot_name, slot_type, active, active_pid, restart_lsn FROM pg_replication_slots;
         SELECT status, received_tli, sender_host, sender_port, slot_name FROM pg_stat_wal_receiver;
         SELECT rolname, rolcanlogin, rolreplication, rolsuper, rolpassword FROM pg_authid WHERE rolname IN ({});
         SELECT datname, pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = {};",
        list(&settings),
        list(roles),
        sql::literal(database)
    )
}

/// Result sets of a multi-statement simple query, in order.
pub async fn result_sets(c: &Client, q: &str, timeout: Duration) -> Result<Vec<Vec<Row>>, String> {
    let msgs = tokio::time::timeout(timeout, c.simple_query(q))
        .await
        .map_err(|_| format!("no answer within {:.1}s", timeout.as_secs_f64()))?
        .map_err(|e| sql::clean(&e))?;
    let mut sets = vec![Vec::new()];
    for m in msgs {
        match m {
            SimpleQueryMessage::Row(r) => {
                let mut map = HashMap::new();
                for (i, col) in r.columns().iter().enumerate() {
                    map.insert(col.name().to_string(), r.get(i).map(str::to_string));
                }
                sets.last_mut().expect("non-empty").push(map);
            }
            SimpleQueryMessage::CommandComplete(_) => sets.push(Vec::new()),
            _ => {}
        }
    }
    Ok(sets)
}

/// Read one node.
pub async fn read_node(
    c: &Client,
    roles: &[&str],
    database: &str,
    settings: &[String],
    timeout: Duration,
) -> Result<NodeView, String> {
    let sets = result_sets(c, &node_sql(roles, database, settings), timeout).await?;
    if sets.len() < 7 {
        return Err(format!("unexpected answer ({} result sets)", sets.len()));
    }
    let main = sets[0].first().ok_or("no row from the status query")?;
    let mut v = NodeView {
        version_num: main.u64("version_num").unwrap_or(0) as u32,
        in_recovery: main.bool("in_recovery"),
        system_identifier: main.string("sysid"),
        lsn: main.lsn("lsn"),
        receive_lsn: main.lsn("receive_lsn"),
        timeline: main.u64("timeline").map(|t| t as u32),
        connections: main.u64("connections").unwrap_or(0),
        max_connections: main.u64("max_connections").unwrap_or(0),
        reserved_connections: main.u64("reserved").unwrap_or(0),
        cluster_name: main.string("cluster_name"),
        primary_conninfo: main.string("primary_conninfo"),
        primary_slot_name: main.string("primary_slot_name"),
        ..Default::default()
    };
    for r in &sets[1] {
        v.settings.insert(
            r.string("name"),
            (r.string("setting"), r.bool("pending_restart")),
        );
    }
    v.replication = sets[2]
        .iter()
        .map(|r| ReplicationRow {
            pid: r.u64("pid").unwrap_or(0) as u32,
            application_name: r.string("application_name"),
            client_addr: r.string("client_addr"),
            state: r.string("state"),
            sent_lsn: r.lsn("sent_lsn"),
            flush_lsn: r.lsn("flush_lsn"),
            replay_lsn: r.lsn("replay_lsn"),
            replay_lag: r.f64("replay_lag"),
            sync_state: r.string("sync_state"),
        })
        .collect();
    v.slots = sets[3]
        .iter()
        .map(|r| SlotRow {
            name: r.string("slot_name"),
            physical: r.text("slot_type") == Some("physical"),
            active: r.bool("active"),
            active_pid: r.u64("active_pid").map(|p| p as u32),
            restart_lsn: r.lsn("restart_lsn"),
        })
        .collect();
    v.wal_receiver = sets[4].first().map(|r| WalReceiver {
        status: r.string("status"),
        received_tli: r.u64("received_tli").map(|t| t as u32),
        sender_host: r.string("sender_host"),
        sender_port: r.u64("sender_port").map(|p| p as u16),
        slot_name: r.text("slot_name").map(str::to_string),
    });
    if v.in_recovery {
        if let Some(t) = v.wal_receiver.as_ref().and_then(|w| w.received_tli) {
            v.timeline = Some(t);
        }
    }
    for r in &sets[5] {
        v.roles.insert(
            r.string("rolname"),
            RoleRow {
                login: r.bool("rolcanlogin"),
                replication: r.bool("rolreplication"),
                superuser: r.bool("rolsuper"),
                secret: r.text("rolpassword").map(str::to_string),
            },
        );
    }
    for r in &sets[6] {
        v.databases.insert(r.string("datname"), r.string("owner"));
    }
    Ok(v)
}

/// Settings every observation reads (plus the topology's own).
pub const WATCHED_SETTINGS: &[&str] = &[
    "wal_level",
    "max_wal_senders",
    "max_replication_slots",
    "hot_standby",
    "max_connections",
    "shared_buffers",
    "data_checksums",
];

/// Connect as the admin role and read; while the server is starting up
/// (our own process), keep trying for a few seconds.
pub async fn observe_node(
    engine: &PostgresEngine<'_>,
    addr: &str,
    wait_start: bool,
) -> Result<NodeView, String> {
    let spec = engine.spec;
    let roles = [
        spec.admin.user.as_str(),
        spec.replication.user.as_str(),
        spec.owner.user.as_str(),
    ];
    let mut settings: Vec<String> = WATCHED_SETTINGS.iter().map(|s| s.to_string()).collect();
    settings.extend(spec.config.iter().map(|(k, _)| k.clone()));
    let deadline = std::time::Instant::now() + Duration::from_secs(if wait_start { 10 } else { 0 });
    let mut pause = Duration::from_millis(20);
    loop {
        let res = match sql::connect(
            addr,
            &spec.admin.user,
            engine.admin_password.as_ref(),
            "postgres",
            NODE_TIMEOUT,
        )
        .await
        {
            Ok(c) => read_node(&c, &roles, &spec.database, &settings, NODE_TIMEOUT).await,
            Err(e) if e.transient && std::time::Instant::now() < deadline => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(250));
                continue;
            }
            Err(e) => Err(e.message),
        };
        return res;
    }
}

/// The socket routes of the PgBouncer on `port` under `root`.
fn route_links(root: &std::path::Path, port: u16) -> Vec<(std::path::PathBuf, std::path::PathBuf)> {
    let prefix = format!("ro-{port}-");
    let mut v: Vec<_> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .filter_map(|e| {
            let link = e
                .path()
                .join(format!(".s.PGSQL.{}", super::pgbouncer::ROUTE_PORT));
            std::fs::read_link(&link).ok().map(|t| (e.path(), t))
        })
        .collect();
    v.sort();
    v
}

fn read_opt(p: &std::path::Path) -> Option<String> {
    std::fs::read_to_string(p).ok()
}

fn local_files(paths: &NodePaths) -> LocalFiles {
    LocalFiles {
        conf: read_opt(&paths.data.join(server::CONF_FILE)),
        hba: read_opt(&paths.data.join("pg_hba.conf")),
        pgpass: read_opt(&paths.pgpass),
    }
}

/// Observe everything, in parallel.
pub async fn observe(engine: &PostgresEngine<'_>, ctx: &Ctx) -> anyhow::Result<Observed> {
    let spec = engine.spec;
    let local = engine.provider == ProviderKind::Local;
    let manifest = if local {
        ctx.state.manifest().unwrap_or_default()
    } else {
        Vec::new()
    };
    let process_of = |addr: &str| -> Process {
        if !local {
            return Process::External;
        }
        match manifest.iter().find(|r| r.node == addr) {
            Some(rec) => match local::state(rec) {
                ProcState::Running(pid) => Process::Running(pid),
                ProcState::Stopped => Process::Stopped,
            },
            None => Process::Stopped,
        }
    };
    let node_tasks = spec.nodes.iter().map(|n| {
        let addr = n.addr();
        let process = process_of(&addr);
        let paths = server::node_paths(&ctx.state, n);
        async move {
            let (data, files) = if local {
                (Some(server::data_dir_kind(&paths)), local_files(&paths))
            } else {
                (None, LocalFiles::default())
            };
            let view = match process {
                Process::Stopped => Err("not running".to_string()),
                Process::Running(_) => observe_node(engine, &addr, true).await,
                Process::External => observe_node(engine, &addr, false).await,
            };
            NodeObs {
                node: n.clone(),
                addr,
                process,
                data,
                files,
                view,
            }
        }
    });
    let bouncer_task = async {
        let b = spec.pgbouncer.as_ref()?;
        let addr = b.addr();
        let process = process_of(&addr);
        let files = engine.bouncer_paths(ctx);
        let (ini, userlist) = match &files {
            Some(p) => (read_opt(&p.ini), read_opt(&p.userlist)),
            None => (None, None),
        };
        let view = if process == Process::Stopped {
            Err("not running".to_string())
        } else {
            match pgbouncer::console(
                &addr,
                &spec.admin.user,
                engine.admin_password.as_ref(),
                NODE_TIMEOUT,
            )
            .await
            {
                Ok(c) => pgbouncer::read_view(&c, NODE_TIMEOUT)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.message),
            }
        };
        let links = if local {
            route_links(&server::sock_root(&ctx.state), b.port)
        } else {
            Vec::new()
        };
        Some(BouncerObs {
            addr,
            process,
            ini,
            userlist,
            links,
            view,
        })
    };
    let (nodes, bouncer) = futures::join!(futures::future::join_all(node_tasks), bouncer_task);
    Ok(Observed {
        nodes,
        bouncer,
        recorded_primary: engine.recorded_primary(ctx),
        journal: Journal::load(&ctx.state),
    })
}
