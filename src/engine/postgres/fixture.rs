//! Observations built by hand, for unit tests of the pure planner and the
//! health checks: a healthy topology, then the tests break one thing.

use super::observe::*;
use super::pgbouncer::{self, BouncerDb, BouncerView, Pool};
use super::plan;
use super::scram::ScramSecret;
use super::server::DataDir;
use super::sql::Lsn;
use super::PostgresEngine;
use crate::engine::Ctx;
use crate::provider::local::StateDir;
use crate::provider::ProviderKind;
use crate::topology::postgres::PostgresSpec;
use std::time::Duration;

pub fn spec(text: Option<&str>) -> PostgresSpec {
    let t = match text {
        None => crate::topology::builtin("postgres").unwrap(),
        Some(t) => {
            crate::topology::parse(crate::topology::Source::from_text("t.toml", t, ".".into()))
                .unwrap()
        }
    };
    match t {
        crate::topology::Topology::Postgres(s) => s,
        _ => unreachable!(),
    }
}

pub fn ctx(dir: &std::path::Path, provider: ProviderKind) -> Ctx {
    Ctx {
        state_root: dir.to_path_buf(),
        state: StateDir::new(dir, "postgres"),
        provider,
        force: false,
        timeout: Duration::from_secs(5),
    }
}

/// A healthy observation of `e`'s topology with `primary` leading.
pub fn healthy(e: &PostgresEngine<'_>, primary: usize) -> Observed {
    let spec = e.spec;
    let pnode = &spec.nodes[primary];
    let lsn = Lsn(0x3000060);
    let mut roles = std::collections::HashMap::new();
    for (user, pw, repl) in [
        (&spec.admin.user, &e.admin.value, true),
        (&spec.replication.user, &e.replication_password.value, true),
        (&spec.owner.user, &e.owner_password.value, false),
    ] {
        roles.insert(
            user.clone(),
            RoleRow {
                login: true,
                replication: repl,
                superuser: *user == spec.admin.user,
                secret: Some(
                    ScramSecret::compute(pw.expose(), b"0123456789abcdef", 4096).to_string(),
                ),
            },
        );
    }
    let files = {
        let [conf, hba, pgpass] = plan::desired_files(e);
        LocalFiles {
            conf: Some(conf.1),
            hba: Some(hba.1),
            pgpass: Some(pgpass.1),
        }
    };
    let mut pv = NodeView {
        version_num: 150000,
        in_recovery: false,
        system_identifier: "7306".into(),
        lsn: Some(lsn),
        timeline: Some(1),
        connections: 3,
        max_connections: 100,
        roles: roles.clone(),
        databases: [(spec.database.clone(), spec.owner.user.clone())]
            .into_iter()
            .collect(),
        ..Default::default()
    };
    let mut nodes = Vec::new();
    for (i, n) in spec.nodes.iter().enumerate() {
        if i == primary {
            continue;
        }
        let pid = 1000 + i as u32;
        pv.replication.push(ReplicationRow {
            pid,
            application_name: n.slot_name(),
            client_addr: "127.0.0.1".into(),
            state: "streaming".into(),
            sent_lsn: Some(lsn),
            flush_lsn: Some(lsn),
            replay_lsn: Some(lsn),
            replay_lag: None,
            sync_state: "async".into(),
        });
        pv.slots.push(SlotRow {
            name: n.slot_name(),
            physical: true,
            active: true,
            active_pid: Some(pid),
            restart_lsn: Some(lsn),
        });
    }
    for (i, n) in spec.nodes.iter().enumerate() {
        let view = if i == primary {
            pv.clone()
        } else {
            NodeView {
                version_num: 150000,
                in_recovery: true,
                system_identifier: "7306".into(),
                lsn: Some(lsn),
                receive_lsn: Some(lsn),
                timeline: Some(1),
                connections: 1,
                max_connections: 100,
                primary_conninfo: format!(
                    "host={} port={} user=replicator",
                    pnode.host, pnode.port
                ),
                primary_slot_name: n.slot_name(),
                wal_receiver: Some(WalReceiver {
                    status: "streaming".into(),
                    received_tli: Some(1),
                    sender_host: pnode.host.clone(),
                    sender_port: Some(pnode.port),
                    slot_name: Some(n.slot_name()),
                }),
                roles: roles.clone(),
                databases: pv.databases.clone(),
                ..Default::default()
            }
        };
        nodes.push(NodeObs {
            node: n.clone(),
            addr: n.addr(),
            process: Process::Running(2000 + i as u32),
            data: Some(if i == primary {
                DataDir::Primary
            } else {
                DataDir::Standby
            }),
            files: files.clone(),
            view: Ok(view),
        });
    }
    let bouncer = spec.pgbouncer.as_ref().map(|b| {
        let reps: Vec<_> = spec.nodes.iter().filter(|n| *n != pnode).collect();
        let routes = plan::bouncer_routes(e, &e.state, pnode, &reps);
        let paths = e.bouncer_paths_for(&e.state).unwrap();
        BouncerObs {
            addr: b.addr(),
            process: Process::Running(3000),
            ini: Some(pgbouncer::render_ini(spec, b, &routes, &paths.userlist)),
            userlist: plan::desired_userlist(e, &pv),
            links: routes.iter().flat_map(|r| r.links.clone()).collect(),
            view: Ok(BouncerView {
                version: "PgBouncer 1.18.0".into(),
                databases: routes
                    .iter()
                    .map(|r| BouncerDb {
                        name: r.name.clone(),
                        host: r.host.clone(),
                        port: r.port,
                        database: r.dbname.clone(),
                        paused: false,
                        disabled: false,
                        current_connections: 1,
                    })
                    .collect(),
                pools: vec![Pool {
                    database: spec.database.clone(),
                    user: spec.owner.user.clone(),
                    cl_active: 2,
                    cl_waiting: 0,
                    sv_active: 1,
                    sv_idle: 4,
                    maxwait_seconds: 0.0,
                }],
                config: [
                    ("pool_mode".to_string(), b.pool_mode.as_str().to_string()),
                    ("max_client_conn".to_string(), b.max_client_conn.to_string()),
                    (
                        "default_pool_size".to_string(),
                        b.default_pool_size.to_string(),
                    ),
                    ("min_pool_size".to_string(), b.min_pool_size.to_string()),
                ]
                .into_iter()
                .collect(),
            }),
        }
    });
    Observed {
        nodes,
        bouncer,
        recorded_primary: Some(pnode.addr()),
        journal: None,
    }
}

/// Nothing exists yet.
pub fn fresh(e: &PostgresEngine<'_>) -> Observed {
    Observed {
        nodes: e
            .spec
            .nodes
            .iter()
            .map(|n| NodeObs {
                node: n.clone(),
                addr: n.addr(),
                process: Process::Stopped,
                data: Some(DataDir::Missing),
                files: LocalFiles::default(),
                view: Err("not running".into()),
            })
            .collect(),
        bouncer: e.spec.pgbouncer.as_ref().map(|b| BouncerObs {
            addr: b.addr(),
            process: Process::Stopped,
            ini: None,
            userlist: None,
            links: Vec::new(),
            view: Err("not running".into()),
        }),
        recorded_primary: None,
        journal: None,
    }
}

/// Take node `i` down (our own process, stopped).
pub fn stop(obs: &mut Observed, i: usize) {
    obs.nodes[i].process = Process::Stopped;
    obs.nodes[i].view = Err("not running".into());
}
