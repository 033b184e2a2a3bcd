//! The pure planner: `(engine settings, observed) -> Plan<Action>`.
//!
//! Order of a full bootstrap (local provider):
//!
//! 1. the primary: initdb (data checksums, SCRAM, datatier.conf,
//!    pg_hba.conf), start;
//! 2. on the primary: the replication role, the database owner and the
//!    database, one physical replication slot per replica;
//! 3. every replica at once: `pg_basebackup -X stream -R -S <slot>
//!    --checkpoint=fast`, start;
//! 4. wait until every replica streams (polling `pg_stat_replication`);
//! 5. PgBouncer: ini + auth file, start (or RELOAD);
//!
//! Before all that, the plan records which node is primary in the state
//! dir.
//!
//! Which node is primary is decided from what runs, not from the file: the
//! one node that is not in recovery; with none running, the one data dir
//! without standby.signal; for a fresh layout, the recorded primary (after
//! a switchover) or the declared one. So `init` after a switchover keeps
//! the new primary. Partial states produce only the missing steps; two
//! primaries, unreachable nodes or foreign data are refused and the
//! refusal changes nothing.

use super::observe::{NodeObs, NodeView, Observed, Process, RoleRow};
use super::pgbouncer::{self, ResolvedRoute};
use super::server::{self, DataDir};
use super::PostgresEngine;
use crate::plan::Plan;
use crate::provider::local::StateDir;
use crate::topology::postgres::{PgNode, SLOT_PREFIX};
use anyhow::{bail, Result};
use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// initdb, datatier.conf, pg_hba.conf (the node becomes the primary).
    InitDb,
    StartPrimary,
    StartReplica,
    /// `pg_basebackup` from the primary into an empty data dir.
    BaseBackup {
        from: String,
    },
    /// A former primary: pg_rewind onto the primary, then standby.
    Rewind {
        from: String,
    },
    /// `--force`: stop, delete the data dir, base backup again.
    Rebuild {
        from: String,
        why: String,
    },
    /// Rewrite datatier's files in the data dir (and reload if running).
    WriteFiles {
        files: Vec<&'static str>,
        reload: bool,
    },
    /// Settings that only take effect on restart.
    Restart {
        settings: Vec<String>,
    },
    /// After starting nodes whose state cannot be known before.
    ObserveAgain,
    CreateRole {
        user: String,
        replication: bool,
        password: String,
    },
    AlterRole {
        user: String,
        attrs: String,
    },
    SetPassword {
        user: String,
        password: String,
    },
    CreateDatabase {
        name: String,
        owner: String,
    },
    SetDatabaseOwner {
        name: String,
        owner: String,
    },
    CreateSlot {
        slot: String,
        replica: String,
    },
    DropSlot {
        slot: String,
        why: String,
    },
    /// Point a replica at the current primary (primary_conninfo + slot).
    Follow {
        primary: String,
    },
    WaitStreaming {
        primary: String,
        replicas: Vec<String>,
    },
    /// ini + auth file (+ socket routes).
    WriteBouncer {
        primary: String,
        routes: Vec<(String, Vec<String>)>,
    },
    StartBouncer,
    ReloadBouncer,
    ResumeBouncer {
        databases: Vec<String>,
    },
    RecordPrimary {
        node: String,
    },
}

impl Action {
    /// Steps that may run at the same time as their neighbours on other
    /// nodes (base backups, replica starts, rewinds).
    pub fn parallel(&self) -> bool {
        matches!(
            self,
            Action::BaseBackup { .. }
                | Action::StartReplica
                | Action::Rewind { .. }
                | Action::Rebuild { .. }
                | Action::Follow { .. }
                | Action::Restart { .. }
        )
    }
    /// Starts a process (its port must be free first).
    pub fn starts_process(&self) -> bool {
        matches!(
            self,
            Action::InitDb | Action::StartPrimary | Action::StartReplica | Action::StartBouncer
        )
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::InitDb => write!(
                f,
                "initdb (data checksums, SCRAM) + datatier.conf + pg_hba.conf"
            ),
            Action::StartPrimary => write!(f, "start postgres (primary)"),
            Action::StartReplica => write!(f, "start postgres (replica)"),
            Action::BaseBackup { from } => write!(
                f,
                "pg_basebackup -X stream -R -S <slot> --checkpoint=fast from {from}"
            ),
            Action::Rewind { from } => write!(
                f,
                "pg_rewind onto {from} (a former primary), start as its replica (a fresh base backup if that fails)"
            ),
            Action::Rebuild { from, why } => write!(
                f,
                "--force: DELETE its data dir ({why}) and pg_basebackup again from {from}"
            ),
            Action::WriteFiles { files, reload } => write!(
                f,
                "write {}{}",
                files.join(" + "),
                if *reload { " and reload" } else { "" }
            ),
            Action::Restart { settings } => write!(
                f,
                "restart postgres (pending restart: {})",
                settings.join(", ")
            ),
            Action::ObserveAgain => write!(
                f,
                "observe again once the started nodes answer, then plan the rest"
            ),
            Action::CreateRole {
                user,
                replication,
                password,
            } => write!(
                f,
                "CREATE ROLE {user} LOGIN{} (SCRAM password from {password})",
                if *replication { " REPLICATION" } else { "" }
            ),
            Action::AlterRole { user, attrs } => write!(f, "ALTER ROLE {user} {attrs}"),
            Action::SetPassword { user, password } => {
                write!(f, "ALTER ROLE {user} PASSWORD <SCRAM secret of {password}>")
            }
            Action::CreateDatabase { name, owner } => {
                write!(f, "CREATE DATABASE {name} OWNER {owner}")
            }
            Action::SetDatabaseOwner { name, owner } => {
                write!(f, "ALTER DATABASE {name} OWNER TO {owner}")
            }
            Action::CreateSlot { slot, replica } => {
                write!(f, "create physical replication slot {slot} (for {replica})")
            }
            Action::DropSlot { slot, why } => write!(f, "drop replication slot {slot} ({why})"),
            Action::Follow { primary } => write!(
                f,
                "follow {primary}: ALTER SYSTEM SET primary_conninfo, primary_slot_name + reload"
            ),
            Action::WaitStreaming { primary, replicas } => write!(
                f,
                "wait until {} replica(s) stream from {primary} (pg_stat_replication)",
                replicas.len()
            ),
            Action::WriteBouncer { routes, .. } => {
                let r: Vec<String> = routes
                    .iter()
                    .map(|(n, m)| format!("{n} -> {}", m.join(",")))
                    .collect();
                write!(f, "write pgbouncer.ini + userlist.txt ({})", r.join("; "))
            }
            Action::StartBouncer => write!(f, "start pgbouncer"),
            Action::ReloadBouncer => write!(f, "RELOAD (pgbouncer admin console)"),
            Action::ResumeBouncer { databases } => write!(
                f,
                "RESUME {} (paused by an interrupted switchover)",
                databases.join(", ")
            ),
            Action::RecordPrimary { node } => {
                write!(f, "record {node} as the current primary (state dir)")
            }
        }
    }
}

/// What a fresh initdb holds: only the admin role.
pub fn fresh_view(e: &PostgresEngine<'_>) -> NodeView {
    let mut v = NodeView {
        version_num: 150000,
        ..Default::default()
    };
    v.roles.insert(
        e.spec.admin.user.clone(),
        RoleRow {
            login: true,
            replication: true,
            superuser: true,
            secret: None,
        },
    );
    v
}

/// The datatier files a local node should hold: (name, content).
pub fn desired_files(e: &PostgresEngine<'_>) -> [(&'static str, String); 3] {
    [
        (server::CONF_FILE, server::render_conf(e.spec)),
        ("pg_hba.conf", server::render_hba(e.spec)),
        (
            "pgpass",
            server::pgpass_line(&e.spec.replication.user, &e.replication_password.value),
        ),
    ]
}

fn drifted(e: &PostgresEngine<'_>, n: &NodeObs) -> Vec<&'static str> {
    let want = desired_files(e);
    let have = [&n.files.conf, &n.files.hba, &n.files.pgpass];
    want.iter()
        .zip(have)
        .filter(|((_, w), h)| h.as_deref() != Some(w.as_str()))
        .map(|((name, _), _)| *name)
        .collect()
}

/// Is replica `r` streaming from the primary `pv`? Matched by its slot's
/// active walsender, or by application_name (datatier sets it to the slot
/// name), or by the replica's cluster_name.
pub fn streaming_row<'a>(
    pv: &'a NodeView,
    r: &PgNode,
    rv: Option<&NodeView>,
) -> Option<&'a super::observe::ReplicationRow> {
    let slot = rv
        .map(|v| v.primary_slot_name.clone())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| r.slot_name());
    let by_slot = pv
        .slot(&slot)
        .and_then(|s| s.active_pid)
        .and_then(|pid| pv.replication.iter().find(|row| row.pid == pid));
    by_slot.or_else(|| {
        pv.replication.iter().find(|row| {
            row.application_name == r.slot_name()
                || rv.is_some_and(|v| {
                    !v.cluster_name.is_empty() && row.application_name == v.cluster_name
                })
        })
    })
}

/// The resolved PgBouncer routes with `primary` leading and `replicas`
/// serving reads.
pub fn bouncer_routes(
    e: &PostgresEngine<'_>,
    state: &StateDir,
    primary: &PgNode,
    replicas: &[&PgNode],
) -> Vec<ResolvedRoute> {
    let Some(b) = &e.spec.pgbouncer else {
        return Vec::new();
    };
    let root = server::sock_root(state);
    let sockdir = |n: &PgNode| server::node_paths(state, n).sockdir;
    pgbouncer::resolve_routes(e.spec, b, e.is_local(), &root, &sockdir, primary, replicas)
}

/// The auth file for the secrets a primary holds (`None` if a role has
/// no SCRAM secret yet).
pub fn desired_userlist(e: &PostgresEngine<'_>, pv: &NodeView) -> Option<String> {
    let mut v = Vec::new();
    for user in [&e.spec.owner.user, &e.spec.admin.user] {
        let secret = pv.roles.get(user)?.secret.clone()?;
        if !secret.starts_with("SCRAM-SHA-256$") {
            return None;
        }
        v.push((user.clone(), secret));
    }
    Some(pgbouncer::render_userlist(&v))
}

/// Decide which node is the primary now.
pub fn current_primary(obs: &Observed) -> Result<&NodeObs> {
    let primaries = obs.primaries();
    if primaries.len() > 1 {
        let names: Vec<&str> = primaries.iter().map(|n| n.addr.as_str()).collect();
        bail!(
            "split brain: {} all run as primary (not in recovery); nothing was changed\nhint: stop the one(s) that must not lead, then `datatier init` rejoins them as replicas (with --force, which rewinds them)",
            names.join(" and ")
        );
    }
    if let [one] = primaries[..] {
        return Ok(one);
    }
    let recorded = obs.recorded_primary.as_deref().and_then(|a| obs.node(a));
    let with_primary_data: Vec<&NodeObs> = obs
        .nodes
        .iter()
        .filter(|n| n.data == Some(DataDir::Primary))
        .collect();
    match (with_primary_data.len(), recorded) {
        (0, r) => Ok(r.unwrap_or(&obs.nodes[0])),
        (1, _) => Ok(with_primary_data[0]),
        (_, Some(r)) if with_primary_data.iter().any(|n| n.addr == r.addr) => Ok(r),
        _ => {
            let names: Vec<&str> = with_primary_data.iter().map(|n| n.addr.as_str()).collect();
            bail!(
                "{} all hold a primary's data dir (no standby.signal) and none runs; cannot tell which one leads; nothing was changed\nhint: start the right one (it becomes the primary), then run init again",
                names.join(" and ")
            )
        }
    }
}

/// Compute the plan.
pub fn plan(
    e: &PostgresEngine<'_>,
    state: &StateDir,
    obs: &Observed,
    force: bool,
) -> Result<Plan<Action>> {
    let spec = e.spec;
    let local = e.is_local();

    // Nodes we cannot talk to, other than our own stopped ones.
    let unreachable: Vec<String> = obs
        .nodes
        .iter()
        .filter(|n| n.process != Process::Stopped)
        .filter_map(|n| {
            n.view
                .as_ref()
                .err()
                .map(|err| format!("{} is unreachable ({err})", n.addr))
        })
        .collect();
    if !unreachable.is_empty() {
        bail!(
            "cannot plan: {}; nothing was changed\nhint: check that the nodes run and that the address and the admin password ({}) are right",
            unreachable.join("; "),
            e.admin_password_origin()
        );
    }
    let current = current_primary(obs)?;
    let primary_addr = current.addr.clone();

    let mut prov_primary: Plan<Action> = Plan::new();
    let mut sql: Plan<Action> = Plan::new();
    let mut prov_replicas: Plan<Action> = Plan::new();
    let mut follow: Plan<Action> = Plan::new();
    let mut tail: Plan<Action> = Plan::new();
    let mut unpredictable = false;
    let mut refusals: Vec<String> = Vec::new();

    // 1. The primary.
    let pv: NodeView = match (&current.view, current.process, current.data) {
        (Ok(v), _, _) => {
            if local && current.data.is_some() {
                let files = drifted(e, current);
                if !files.is_empty() {
                    prov_primary.push(&primary_addr, Action::WriteFiles { files, reload: true });
                }
            }
            v.clone()
        }
        (Err(_), Process::Stopped, Some(DataDir::Missing)) => {
            let others: Vec<&str> = obs
                .nodes
                .iter()
                .filter(|n| n.addr != primary_addr && n.data.is_some_and(|d| d != DataDir::Missing))
                .map(|n| n.addr.as_str())
                .collect();
            if !others.is_empty() {
                bail!(
                    "{primary_addr} is to be the primary but has no data dir, while {} hold data; nothing was changed\nhint: restore its data dir, or make one of them primary (start it without standby.signal) and run init again",
                    others.join(", ")
                );
            }
            prov_primary.push(&primary_addr, Action::InitDb);
            prov_primary.push(&primary_addr, Action::StartPrimary);
            fresh_view(e)
        }
        (Err(_), Process::Stopped, Some(DataDir::Primary)) => {
            let files = drifted(e, current);
            if !files.is_empty() {
                prov_primary.push(&primary_addr, Action::WriteFiles { files, reload: false });
            }
            prov_primary.push(&primary_addr, Action::StartPrimary);
            unpredictable = true;
            NodeView::default()
        }
        (Err(_), Process::Stopped, Some(DataDir::Standby)) => bail!(
            "{primary_addr} is recorded as the primary but its data dir is a standby's (standby.signal) and no node runs as primary; nothing was changed\nhint: start the nodes (`datatier init` does once one of them is a primary), or remove standby.signal from the node that should lead"
        ),
        (Err(err), _, _) => bail!("{primary_addr} is unreachable ({err}); nothing was changed"),
    };
    let fresh = prov_primary
        .steps
        .iter()
        .any(|s| s.action == Action::InitDb);

    // 2. Replicas: processes and data.
    let replicas: Vec<&NodeObs> = obs
        .nodes
        .iter()
        .filter(|n| n.addr != primary_addr)
        .collect();
    let mut started: Vec<String> = Vec::new();
    for r in &replicas {
        match (&r.view, r.process, r.data) {
            (Ok(v), _, _) => {
                if !pv.system_identifier.is_empty() && v.system_identifier != pv.system_identifier {
                    let why = format!(
                        "system identifier {} differs from the primary's {}: it is a copy of another cluster",
                        v.system_identifier, pv.system_identifier
                    );
                    if local && force {
                        prov_replicas.push(
                            &r.addr,
                            Action::Rebuild {
                                from: primary_addr.clone(),
                                why,
                            },
                        );
                        prov_replicas.push(&r.addr, Action::StartReplica);
                        started.push(r.addr.clone());
                    } else {
                        refusals.push(format!("{} {why}", r.addr));
                    }
                }
            }
            (Err(_), Process::Stopped, Some(DataDir::Missing)) => {
                prov_replicas.push(
                    &r.addr,
                    Action::BaseBackup {
                        from: primary_addr.clone(),
                    },
                );
                prov_replicas.push(&r.addr, Action::StartReplica);
                started.push(r.addr.clone());
            }
            (Err(_), Process::Stopped, Some(DataDir::Standby)) => {
                let files = drifted(e, r);
                if !files.is_empty() {
                    prov_replicas.push(
                        &r.addr,
                        Action::WriteFiles {
                            files,
                            reload: false,
                        },
                    );
                }
                prov_replicas.push(&r.addr, Action::StartReplica);
                started.push(r.addr.clone());
                unpredictable = true;
            }
            (Err(_), Process::Stopped, Some(DataDir::Primary)) => {
                let demoted = obs.journal.as_ref().is_some_and(|j| j.demoted(&r.addr));
                if demoted || force {
                    prov_replicas.push(
                        &r.addr,
                        Action::Rewind {
                            from: primary_addr.clone(),
                        },
                    );
                    started.push(r.addr.clone());
                    unpredictable = true;
                } else {
                    refusals.push(format!(
                        "{} holds a primary's data dir (no standby.signal) while {primary_addr} is the primary; rejoining it as a replica (pg_rewind) discards whatever it has that {primary_addr} lacks",
                        r.addr
                    ));
                }
            }
            (Err(err), _, _) => refusals.push(format!("{} is unreachable ({err})", r.addr)),
        }
    }
    if !refusals.is_empty() {
        bail!(
            "refusing: {}; nothing was changed\nhint: --force rewinds or rebuilds these nodes from {primary_addr} (their own changes are lost)",
            refusals.join("; ")
        );
    }
    let record: Option<Action> = (obs.recorded_primary.as_deref() != Some(primary_addr.as_str()))
        .then(|| Action::RecordPrimary {
            node: primary_addr.clone(),
        });
    if unpredictable {
        let mut p = Plan::new();
        if let Some(r) = record {
            p.push("state", r);
        }
        p.steps.extend(prov_primary.steps);
        p.steps.extend(prov_replicas.steps);
        p.push("cluster", Action::ObserveAgain);
        return Ok(p);
    }

    // 3. Requirements a node someone else configured must meet.
    if !local && !fresh {
        let mut bad = Vec::new();
        if let Some(w) = pv.setting("wal_level") {
            if w != "replica" && w != "logical" {
                bad.push(format!(
                    "{primary_addr} has wal_level={w} (needs replica or logical, and a restart)"
                ));
            }
        }
        if let Some(s) = pv
            .setting("max_wal_senders")
            .and_then(|s| s.parse::<usize>().ok())
        {
            if s < spec.replicas() {
                bad.push(format!(
                    "{primary_addr} has max_wal_senders={s}, fewer than the {} replicas",
                    spec.replicas()
                ));
            }
        }
        if !bad.is_empty() {
            bail!("{}; nothing was changed", bad.join("; "));
        }
    }

    // 4. Roles, database and slots on the primary.
    let mut roles_changed: Vec<&str> = Vec::new();
    for (role, replication, password) in [
        (&spec.replication, true, &e.replication_password),
        (&spec.owner, false, &e.owner_password),
    ] {
        match pv.roles.get(&role.user) {
            None => {
                sql.push(
                    &primary_addr,
                    Action::CreateRole {
                        user: role.user.clone(),
                        replication,
                        password: password.describe(),
                    },
                );
                roles_changed.push(&role.user);
            }
            Some(have) => {
                let mut attrs = Vec::new();
                if !have.login {
                    attrs.push("LOGIN");
                }
                if replication && !have.replication {
                    attrs.push("REPLICATION");
                }
                if !attrs.is_empty() {
                    sql.push(
                        &primary_addr,
                        Action::AlterRole {
                            user: role.user.clone(),
                            attrs: attrs.join(" "),
                        },
                    );
                }
                let ok = have
                    .secret
                    .as_deref()
                    .is_some_and(|s| super::scram::verifies(s, password.value.expose()));
                if !ok && password.authoritative(local) {
                    sql.push(
                        &primary_addr,
                        Action::SetPassword {
                            user: role.user.clone(),
                            password: password.describe(),
                        },
                    );
                    roles_changed.push(&role.user);
                }
            }
        }
    }
    match pv.databases.get(&spec.database) {
        None => sql.push(
            &primary_addr,
            Action::CreateDatabase {
                name: spec.database.clone(),
                owner: spec.owner.user.clone(),
            },
        ),
        Some(o) if *o != spec.owner.user => sql.push(
            &primary_addr,
            Action::SetDatabaseOwner {
                name: spec.database.clone(),
                owner: spec.owner.user.clone(),
            },
        ),
        Some(_) => {}
    }
    for r in &replicas {
        let slot = r.node.slot_name();
        if pv.slot(&slot).is_none() {
            sql.push(
                &primary_addr,
                Action::CreateSlot {
                    slot,
                    replica: r.addr.clone(),
                },
            );
        }
    }

    // 5. Running replicas: files, restarts, following the primary.
    for r in &replicas {
        let Ok(v) = &r.view else { continue };
        if started.contains(&r.addr) {
            continue;
        }
        if local && r.data.is_some() {
            let files = drifted(e, r);
            if !files.is_empty() {
                follow.push(
                    &r.addr,
                    Action::WriteFiles {
                        files,
                        reload: true,
                    },
                );
            }
        }
        let want_slot = r.node.slot_name();
        let upstream_ok = v.upstream().as_deref() == Some(primary_addr.as_str());
        let slot_ok =
            v.primary_slot_name == want_slot || (!local && !v.primary_slot_name.is_empty());
        if !upstream_ok || !slot_ok {
            follow.push(
                &r.addr,
                Action::Follow {
                    primary: primary_addr.clone(),
                },
            );
        }
        let pending = v.pending_restart();
        if !pending.is_empty() {
            follow.push(&r.addr, Action::Restart { settings: pending });
        }
    }
    let pending = pv.pending_restart();
    if !pending.is_empty() {
        follow.push(&primary_addr, Action::Restart { settings: pending });
    }

    // 6. Streaming.
    let not_streaming = replicas.iter().any(|r| {
        streaming_row(&pv, &r.node, r.view.as_ref().ok()).is_none_or(|row| row.state != "streaming")
    });
    if !replicas.is_empty() && (!started.is_empty() || !follow.is_empty() || not_streaming) {
        tail.push(
            "replication",
            Action::WaitStreaming {
                primary: primary_addr.clone(),
                replicas: replicas.iter().map(|r| r.addr.clone()).collect(),
            },
        );
    }

    // 7. Slots datatier made that nobody uses any more: on the primary for
    // nodes that are not its replicas (its own, after a switchover), and
    // on replicas (a demoted primary keeps its old slots, which would hold
    // WAL there forever).
    let wanted: Vec<String> = replicas.iter().map(|r| r.node.slot_name()).collect();
    for s in &pv.slots {
        if s.name.starts_with(SLOT_PREFIX) && !wanted.contains(&s.name) && !s.active {
            tail.push(
                &primary_addr,
                Action::DropSlot {
                    slot: s.name.clone(),
                    why: "no declared replica uses it; it holds WAL".into(),
                },
            );
        }
    }
    for r in &replicas {
        if let Ok(v) = &r.view {
            for s in &v.slots {
                if s.name.starts_with(SLOT_PREFIX) && !s.active {
                    tail.push(
                        &r.addr,
                        Action::DropSlot {
                            slot: s.name.clone(),
                            why: "left from when it was primary".into(),
                        },
                    );
                }
            }
        }
    }

    // 8. PgBouncer.
    if let (Some(b), Some(bo)) = (&spec.pgbouncer, &obs.bouncer) {
        let managed = local || b.config_file.is_some();
        let reps: Vec<&PgNode> = replicas.iter().map(|r| &r.node).collect();
        let routes = bouncer_routes(e, state, &current.node, &reps);
        if managed {
            let files = e.bouncer_paths_for(state);
            let ini = files
                .as_ref()
                .map(|f| pgbouncer::render_ini(spec, b, &routes, &f.userlist));
            let userlist = if roles_changed
                .iter()
                .any(|u| *u == spec.owner.user || *u == spec.admin.user)
            {
                None
            } else {
                desired_userlist(e, &pv)
            };
            let files_ok = ini.is_some()
                && bo.ini == ini
                && userlist.is_some()
                && bo.userlist == userlist
                && routes
                    .iter()
                    .all(|r| r.links.iter().all(|l| bo.links.contains(l)));
            if !files_ok {
                tail.push(
                    &bo.addr,
                    Action::WriteBouncer {
                        primary: primary_addr.clone(),
                        routes: routes
                            .iter()
                            .map(|r| (r.name.clone(), r.members.clone()))
                            .collect(),
                    },
                );
            }
            match (&bo.view, bo.process) {
                (_, Process::Stopped) => tail.push(&bo.addr, Action::StartBouncer),
                (Ok(view), _) => {
                    if !files_ok || !pgbouncer::routes_match(view, &routes).is_empty() {
                        tail.push(&bo.addr, Action::ReloadBouncer);
                    }
                    let paused: Vec<String> = view
                        .databases
                        .iter()
                        .filter(|d| d.paused)
                        .map(|d| d.name.clone())
                        .collect();
                    let ours = obs.journal.as_ref().is_some_and(|j| !j.finished());
                    if !paused.is_empty() && ours {
                        tail.push(&bo.addr, Action::ResumeBouncer { databases: paused });
                    }
                }
                (Err(err), _) => bail!(
                    "PgBouncer {} is unreachable ({err}); nothing was changed\nhint: it must run with the ini datatier writes ({})",
                    bo.addr,
                    b.config_file.as_ref().map(|p| p.display().to_string()).unwrap_or_default()
                ),
            }
        }
    }

    // Recorded first: the decision of this plan holds even if a later step
    // fails (a rebuild needs to know whom to copy).
    let mut p = Plan::new();
    if let Some(r) = record {
        p.push("state", r);
    }
    p.steps.extend(prov_primary.steps);
    for part in [sql, prov_replicas, follow, tail] {
        p.steps.extend(part.steps);
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{self, fresh, healthy, stop};
    use super::super::switchover::{Journal, Phase};
    use super::*;
    use crate::provider::ProviderKind;

    fn actions(p: &Plan<Action>) -> Vec<String> {
        p.steps
            .iter()
            .map(|s| format!("{} {}", s.target, s.action))
            .collect()
    }

    #[test]
    fn fresh_layout_is_bootstrapped_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let spec = fixture::spec(None);
        let ctx = fixture::ctx(dir.path(), ProviderKind::Local);
        let e = PostgresEngine::new(&spec, &ctx).unwrap();
        let p = plan(&e, &ctx.state, &fresh(&e), false).unwrap();
        let a = actions(&p);
        let pos = |needle: &str| {
            a.iter()
                .position(|s| s.contains(needle))
                .unwrap_or_else(|| panic!("no {needle} in {a:#?}"))
        };
        assert!(a[0].contains("record 127.0.0.1:15432"), "{a:#?}");
        assert!(pos("15432 initdb") < pos("15432 start postgres (primary)"));
        assert!(pos("start postgres (primary)") < pos("CREATE ROLE replicator LOGIN REPLICATION"));
        assert!(pos("CREATE ROLE replicator") < pos("replica_127_0_0_1_15433 (for"));
        assert!(pos("replica_127_0_0_1_15434 (for") < pos("15434 pg_basebackup"));
        assert!(pos("15433 pg_basebackup") < pos("15433 start postgres (replica)"));
        assert!(pos("15434 start postgres (replica)") < pos("wait until 2 replica(s)"));
        assert!(pos("wait until 2 replica(s)") < pos("16432 write pgbouncer.ini"));
        assert!(pos("write pgbouncer.ini") < pos("16432 start pgbouncer"));
        assert!(a
            .iter()
            .any(|s| s.contains("CREATE DATABASE app OWNER app")));
        // Passwords are named by where they live, never shown.
        let text = p.render("postgres");
        assert!(!text.contains(e.owner_password.value.expose()));
        assert!(text.contains("owner.pass"), "{text}");
    }

    #[test]
    fn a_healthy_layout_plans_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let spec = fixture::spec(None);
        let ctx = fixture::ctx(dir.path(), ProviderKind::Local);
        let e = PostgresEngine::new(&spec, &ctx).unwrap();
        let p = plan(&e, &ctx.state, &healthy(&e, 0), false).unwrap();
        assert!(p.is_empty(), "{:#?}", actions(&p));
    }

    #[test]
    fn after_a_switchover_the_new_primary_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let spec = fixture::spec(None);
        let ctx = fixture::ctx(dir.path(), ProviderKind::Local);
        let e = PostgresEngine::new(&spec, &ctx).unwrap();
        let obs = healthy(&e, 2);
        assert!(plan(&e, &ctx.state, &obs, false).unwrap().is_empty());
        // Even with nothing recorded: what runs decides.
        let mut obs = obs;
        obs.recorded_primary = None;
        let p = plan(&e, &ctx.state, &obs, false).unwrap();
        assert_eq!(
            actions(&p),
            ["state record 127.0.0.1:15434 as the current primary (state dir)"]
        );
    }

    #[test]
    fn a_stopped_replica_is_started_then_planned_again() {
        let dir = tempfile::tempdir().unwrap();
        let spec = fixture::spec(None);
        let ctx = fixture::ctx(dir.path(), ProviderKind::Local);
        let e = PostgresEngine::new(&spec, &ctx).unwrap();
        let mut obs = healthy(&e, 0);
        stop(&mut obs, 2);
        let p = plan(&e, &ctx.state, &obs, false).unwrap();
        assert_eq!(
            actions(&p),
            [
                "127.0.0.1:15434 start postgres (replica)",
                "cluster observe again once the started nodes answer, then plan the rest"
            ]
        );
        // Its data gone: a fresh base backup from the primary.
        obs.nodes[2].data = Some(DataDir::Missing);
        let a = actions(&plan(&e, &ctx.state, &obs, false).unwrap());
        assert!(a.contains(&"127.0.0.1:15434 pg_basebackup -X stream -R -S <slot> --checkpoint=fast from 127.0.0.1:15432".to_string()), "{a:#?}");
    }

    #[test]
    fn refusals_change_nothing_and_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let spec = fixture::spec(None);
        let ctx = fixture::ctx(dir.path(), ProviderKind::Local);
        let e = PostgresEngine::new(&spec, &ctx).unwrap();
        // Two primaries.
        let mut obs = healthy(&e, 0);
        if let Ok(v) = &mut obs.nodes[1].view {
            v.in_recovery = false;
        }
        let err = plan(&e, &ctx.state, &obs, false).unwrap_err().to_string();
        assert!(
            err.contains("split brain: 127.0.0.1:15432 and 127.0.0.1:15433"),
            "{err}"
        );
        // A former primary, stopped, not demoted by a switchover.
        let mut obs = healthy(&e, 0);
        stop(&mut obs, 1);
        obs.nodes[1].data = Some(DataDir::Primary);
        let err = plan(&e, &ctx.state, &obs, false).unwrap_err().to_string();
        assert!(
            err.contains("127.0.0.1:15433 holds a primary's data dir")
                && err.contains("nothing was changed"),
            "{err}"
        );
        assert!(err.contains("--force"), "{err}");
        // With --force, or after a switchover demoted it: rewound and rejoined.
        let a = actions(&plan(&e, &ctx.state, &obs, true).unwrap());
        assert!(
            a[0].starts_with("127.0.0.1:15433 pg_rewind onto 127.0.0.1:15432"),
            "{a:#?}"
        );
        obs.journal = Some(Journal {
            from: "127.0.0.1:15433".into(),
            to: "127.0.0.1:15432".into(),
            phase: Phase::Resumed,
        });
        assert!(plan(&e, &ctx.state, &obs, false).is_ok());
        // The primary's data missing while replicas hold data.
        let mut obs = healthy(&e, 0);
        stop(&mut obs, 0);
        obs.nodes[0].data = Some(DataDir::Missing);
        for i in 1..3 {
            stop(&mut obs, i);
        }
        let err = plan(&e, &ctx.state, &obs, false).unwrap_err().to_string();
        assert!(
            err.contains("127.0.0.1:15432 is to be the primary but has no data dir"),
            "{err}"
        );
        // A replica of another cluster.
        let mut obs = healthy(&e, 0);
        if let Ok(v) = &mut obs.nodes[2].view {
            v.system_identifier = "999".into();
        }
        let err = plan(&e, &ctx.state, &obs, false).unwrap_err().to_string();
        assert!(
            err.contains("127.0.0.1:15434 system identifier 999 differs"),
            "{err}"
        );
    }

    #[test]
    fn drift_is_repaired_step_by_step() {
        let dir = tempfile::tempdir().unwrap();
        let spec = fixture::spec(None);
        let ctx = fixture::ctx(dir.path(), ProviderKind::Local);
        let e = PostgresEngine::new(&spec, &ctx).unwrap();
        let mut obs = healthy(&e, 0);
        // A replica follows a node that is no longer primary, a slot is
        // missing, PgBouncer routes writes to a replica, a stale slot holds WAL.
        if let Ok(v) = &mut obs.nodes[1].view {
            v.primary_conninfo = "host=127.0.0.1 port=15434 user=replicator".into();
        }
        if let Ok(v) = &mut obs.nodes[0].view {
            v.slots.retain(|s| s.name != "replica_127_0_0_1_15434");
            v.slots.push(super::super::observe::SlotRow {
                name: "replica_127_0_0_1_15432".into(),
                physical: true,
                active: false,
                active_pid: None,
                restart_lsn: None,
            });
        }
        if let Some(Ok(v)) = obs.bouncer.as_mut().map(|b| b.view.as_mut()) {
            v.databases[0].port = 15433;
        }
        let a = actions(&plan(&e, &ctx.state, &obs, false).unwrap());
        for want in [
            "127.0.0.1:15432 create physical replication slot replica_127_0_0_1_15434 (for 127.0.0.1:15434)",
            "127.0.0.1:15433 follow 127.0.0.1:15432: ALTER SYSTEM SET primary_conninfo, primary_slot_name + reload",
            "replication wait until 2 replica(s) stream from 127.0.0.1:15432 (pg_stat_replication)",
            "127.0.0.1:15432 drop replication slot replica_127_0_0_1_15432 (no declared replica uses it; it holds WAL)",
            "127.0.0.1:16432 RELOAD (pgbouncer admin console)",
        ] {
            assert!(a.contains(&want.to_string()), "missing {want}\nin {a:#?}");
        }
    }

    #[test]
    fn existing_nodes_are_configured_not_started() {
        let dir = tempfile::tempdir().unwrap();
        std::env::set_var("DATATIER_TEST_PGADMIN", "s3cret-admin");
        let spec = fixture::spec(Some(
            "name='postgres'\nkind='postgres'\nprovider='existing'\n[postgres]\nnodes=['10.0.0.1:5432','10.0.0.2:5432']\n[admin]\npassword_env='DATATIER_TEST_PGADMIN'\n",
        ));
        let ctx = fixture::ctx(dir.path(), ProviderKind::Existing);
        let e = PostgresEngine::new(&spec, &ctx).unwrap();
        let mut obs = healthy(&e, 0);
        for n in &mut obs.nodes {
            n.process = Process::External;
            n.data = None;
        }
        // Their replica role exists with a password datatier does not know:
        // it is left alone (only a configured password is enforced).
        if let Ok(v) = &mut obs.nodes[0].view {
            v.roles.get_mut("replicator").unwrap().secret =
                Some(super::super::scram::ScramSecret::generate("theirs").to_string());
        }
        assert!(plan(&e, &ctx.state, &obs, false).unwrap().is_empty());
        // An unreachable node is refused, naming it.
        obs.nodes[1].view = Err("connection refused".into());
        let err = plan(&e, &ctx.state, &obs, false).unwrap_err().to_string();
        assert!(
            err.contains("10.0.0.2:5432 is unreachable (connection refused)")
                && err.contains("nothing was changed"),
            "{err}"
        );
    }
}
