//! Health of a Postgres topology, from one observation: one primary, each
//! replica in recovery, streaming, on the primary's timeline, with lag in
//! bytes and seconds under the thresholds and its slot active; connections
//! under a share of max_connections; PgBouncer reachable, routing to the
//! right nodes, its pools not queueing. Every node is judged; a missing or
//! lagging replica is named in its finding, and the table shows role,
//! state, timeline, LSN and lag of every node (like `patronictl list`).

use super::observe::{NodeObs, NodeView, Observed, Process};
use super::pgbouncer;
use super::plan::{self, bouncer_routes};
use super::PostgresEngine;
use crate::engine::Ctx;
use crate::health::{Finding, Severity};
use crate::report::{Metric, NodeStatus, StatusReport};
use crate::topology::postgres::{PgNode, RouteTarget, SLOT_PREFIX};

/// Bytes in a human unit.
pub fn human_bytes(b: u64) -> String {
    const U: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < U.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}

/// Lag of one replica as the primary sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReplicaLag {
    pub bytes: u64,
    pub seconds: f64,
}

fn grade(v: f64, warn: f64, crit: f64) -> Severity {
    if v >= crit {
        Severity::Critical
    } else if v >= warn {
        Severity::Warning
    } else {
        Severity::Ok
    }
}

pub fn report(e: &PostgresEngine<'_>, ctx: &Ctx, obs: &Observed) -> StatusReport {
    let spec = e.spec;
    let checks = &spec.checks;
    let mut f: Vec<Finding> = Vec::new();
    let mut metrics: Vec<Metric> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let node_of = |n: &NodeObs| Some(n.addr.clone());

    // Reachability.
    for n in &obs.nodes {
        match (&n.view, n.process) {
            (Ok(_), _) => f.push(Finding::ok("node_reachable", node_of(n), "answers")),
            (Err(_), Process::Stopped) => f.push(Finding::crit(
                "node_reachable",
                node_of(n),
                "not running (started by datatier; `datatier init` starts it again)",
            )),
            (Err(err), _) => f.push(Finding::crit(
                "node_reachable",
                node_of(n),
                format!("unreachable: {err}"),
            )),
        }
    }

    // The primary.
    let primaries = obs.primaries();
    let presumed = obs
        .recorded_primary
        .clone()
        .unwrap_or_else(|| spec.declared_primary().addr());
    let primary: Option<&NodeObs> = match primaries.len() {
        0 => {
            f.push(Finding::crit(
                "primary",
                Some(presumed.clone()),
                format!("no node answers as primary (expected {presumed}); writes fail"),
            ));
            None
        }
        1 => {
            let p = primaries[0];
            let v = p.view().expect("answered");
            f.push(Finding::ok(
                "primary",
                node_of(p),
                format!(
                    "primary, not in recovery, timeline {}",
                    v.timeline.map(|t| t.to_string()).unwrap_or("?".into())
                ),
            ));
            if p.addr != spec.declared_primary().addr() {
                notes.push(format!(
                    "{} leads (after a switchover); the topology lists {} first. `datatier switchover {} --to {}` moves the lead back",
                    p.addr,
                    spec.declared_primary().addr(),
                    spec.meta.name,
                    spec.declared_primary().addr()
                ));
            }
            Some(p)
        }
        _ => {
            let names: Vec<&str> = primaries.iter().map(|n| n.addr.as_str()).collect();
            for p in &primaries {
                f.push(Finding::crit(
                    "primary",
                    node_of(p),
                    format!("split brain: {} all accept writes", names.join(" and ")),
                ));
            }
            // Judge replicas against the expected one if it is among them.
            primaries
                .iter()
                .find(|p| p.addr == presumed)
                .copied()
                .or(Some(primaries[0]))
        }
    };
    let pv: Option<&NodeView> = primary.and_then(|p| p.view());
    let paddr = primary.map(|p| p.addr.clone()).unwrap_or(presumed.clone());

    // Same cluster everywhere.
    if let Some(pv) = pv {
        for n in &obs.nodes {
            if let Some(v) = n.view() {
                if v.system_identifier != pv.system_identifier {
                    f.push(Finding::crit(
                        "system_identifier",
                        node_of(n),
                        format!(
                            "system identifier {} differs from the primary's {}: not a copy of this cluster",
                            v.system_identifier, pv.system_identifier
                        ),
                    ));
                }
            }
        }
        // Roles and database on the primary.
        match pv.databases.get(&spec.database) {
            Some(o) if *o == spec.owner.user => f.push(Finding::ok(
                "database",
                Some(paddr.clone()),
                format!("{} owned by {o}", spec.database),
            )),
            Some(o) => f.push(Finding::warn(
                "database",
                Some(paddr.clone()),
                format!(
                    "{} is owned by {o}, declared {}",
                    spec.database, spec.owner.user
                ),
            )),
            None => f.push(Finding::crit(
                "database",
                Some(paddr.clone()),
                format!("database {} does not exist", spec.database),
            )),
        }
        match pv.roles.get(&spec.replication.user) {
            Some(r) if r.replication && r.login => {}
            Some(_) => f.push(Finding::crit(
                "replication_role",
                Some(paddr.clone()),
                format!("role {} lacks LOGIN or REPLICATION", spec.replication.user),
            )),
            None => {
                if spec.replicas() > 0 {
                    f.push(Finding::crit(
                        "replication_role",
                        Some(paddr.clone()),
                        format!("role {} does not exist", spec.replication.user),
                    ))
                }
            }
        }
        match pv.setting("wal_level") {
            Some("replica" | "logical") | None => {}
            Some(w) => f.push(Finding::crit(
                "settings",
                Some(paddr.clone()),
                format!("wal_level={w}: replicas cannot stream"),
            )),
        }
    }

    // Replicas.
    let replicas: Vec<&NodeObs> = obs.nodes.iter().filter(|n| n.addr != paddr).collect();
    let mut lag_of: std::collections::HashMap<String, ReplicaLag> = Default::default();
    for r in &replicas {
        let node = node_of(r);
        let rv = r.view();
        if let Some(v) = rv {
            if !v.in_recovery {
                // Reported as split brain above.
                continue;
            }
            f.push(Finding::ok(
                "replica_recovery",
                node.clone(),
                "in recovery (read-only)",
            ));
        }
        let Some(pv) = pv else {
            continue;
        };
        let row = plan::streaming_row(pv, &r.node, rv);
        match row {
            Some(row) if row.state == "streaming" => f.push(Finding::ok(
                "replica_streaming",
                node.clone(),
                format!("streaming from {paddr} ({})", row.sync_state),
            )),
            Some(row) => f.push(Finding::crit(
                "replica_streaming",
                node.clone(),
                format!(
                    "replica {} is in state {} on {paddr}, not streaming",
                    r.addr, row.state
                ),
            )),
            None => {
                let why = match (rv, &r.view) {
                    (Some(v), _) => match &v.wal_receiver {
                        Some(w) => format!(
                            "its WAL receiver is {} (upstream {})",
                            w.status,
                            v.upstream().unwrap_or("?".into())
                        ),
                        None => format!(
                            "it has no WAL receiver (upstream {})",
                            v.upstream().unwrap_or("none".into())
                        ),
                    },
                    (None, Err(err)) => err.clone(),
                    (None, Ok(_)) => unreachable!(),
                };
                f.push(Finding::crit(
                    "replica_streaming",
                    node.clone(),
                    format!(
                        "replica {} is missing from pg_stat_replication on {paddr}: {why}",
                        r.addr
                    ),
                ));
            }
        }
        // Timeline.
        if let (Some(v), Some(pt)) = (rv, pv.timeline) {
            match v.timeline {
                Some(t) if t == pt => {}
                Some(t) => f.push(Finding::crit(
                    "replica_timeline",
                    node.clone(),
                    format!("on timeline {t}, the primary is on {pt}"),
                )),
                None => {}
            }
        }
        // Lag.
        if let Some(row) = row {
            let bytes = match (pv.lsn, row.replay_lsn.or(rv.and_then(|v| v.lsn))) {
                (Some(p), Some(r)) => r.bytes_to(p),
                _ => 0,
            };
            let seconds = row.replay_lag.unwrap_or(0.0);
            let lag = ReplicaLag { bytes, seconds };
            lag_of.insert(r.addr.clone(), lag);
            let sev = grade(seconds, checks.lag_warn_seconds, checks.lag_crit_seconds).max(grade(
                bytes as f64,
                checks.lag_warn_bytes as f64,
                checks.lag_crit_bytes as f64,
            ));
            f.push(Finding::new(
                "replica_lag",
                node.clone(),
                sev,
                format!(
                    "{}lag {} / {seconds:.2}s (warn at {}s / {}, crit at {}s / {})",
                    if sev > Severity::Ok {
                        format!("replica {} lags: ", r.addr)
                    } else {
                        String::new()
                    },
                    human_bytes(bytes),
                    checks.lag_warn_seconds,
                    human_bytes(checks.lag_warn_bytes),
                    checks.lag_crit_seconds,
                    human_bytes(checks.lag_crit_bytes)
                ),
            ));
            metrics.push(Metric::new(
                "pg_replica_lag_bytes",
                "WAL bytes the replica has not replayed yet (primary's view).",
                &[("node", &r.addr)],
                bytes as f64,
            ));
            metrics.push(Metric::new(
                "pg_replica_lag_seconds",
                "replay_lag of the replica in pg_stat_replication.",
                &[("node", &r.addr)],
                seconds,
            ));
        }
        // Slot.
        let slot = rv
            .map(|v| v.primary_slot_name.clone())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| r.node.slot_name());
        match pv.slot(&slot) {
            Some(s) if s.active => f.push(Finding::ok("replication_slot", node.clone(), format!("slot {slot} active"))),
            Some(s) => f.push(Finding::warn(
                "replication_slot",
                node.clone(),
                format!(
                    "slot {slot} on {paddr} is inactive and holds {} of WAL",
                    human_bytes(retained(pv, s.restart_lsn))
                ),
            )),
            None => f.push(Finding::crit(
                "replication_slot",
                node.clone(),
                format!("no slot {slot} on {paddr}: the WAL this replica needs can be recycled (`datatier init` creates it)"),
            )),
        }
    }

    // Slots nobody declared.
    if let Some(pv) = pv {
        let wanted: Vec<String> = replicas.iter().map(|r| r.node.slot_name()).collect();
        for s in &pv.slots {
            if !wanted.contains(&s.name) && !s.active {
                let bytes = retained(pv, s.restart_lsn);
                f.push(Finding::warn(
                    "stray_slot",
                    Some(paddr.clone()),
                    format!(
                        "inactive slot {} holds {} of WAL{}",
                        s.name,
                        human_bytes(bytes),
                        if s.name.starts_with(SLOT_PREFIX) {
                            " (`datatier init` drops it)"
                        } else {
                            ""
                        }
                    ),
                ));
            }
        }
    }

    // Per-node connections, settings waiting for a restart.
    for n in &obs.nodes {
        let Some(v) = n.view() else { continue };
        if v.max_connections > 0 {
            let pct = v.connections as f64 / v.max_connections as f64 * 100.0;
            let sev = grade(
                pct,
                checks.connections_warn_pct,
                checks.connections_crit_pct,
            );
            f.push(Finding::new(
                "connections",
                node_of(n),
                sev,
                format!(
                    "{} of max_connections {} in use ({pct:.0}%; warn at {}%, crit at {}%)",
                    v.connections,
                    v.max_connections,
                    checks.connections_warn_pct,
                    checks.connections_crit_pct
                ),
            ));
            metrics.push(Metric::new(
                "pg_connections",
                "Client backends (pg_stat_activity).",
                &[("node", &n.addr)],
                v.connections as f64,
            ));
            metrics.push(Metric::new(
                "pg_max_connections",
                "max_connections.",
                &[("node", &n.addr)],
                v.max_connections as f64,
            ));
        }
        let pending = v.pending_restart();
        if !pending.is_empty() {
            f.push(Finding::warn(
                "pending_restart",
                node_of(n),
                format!(
                    "settings wait for a restart: {} (`datatier init` restarts it)",
                    pending.join(", ")
                ),
            ));
        }
        metrics.push(Metric::new(
            "pg_is_primary",
            "1 for a node not in recovery.",
            &[("node", &n.addr)],
            if v.in_recovery { 0.0 } else { 1.0 },
        ));
        if let Some(t) = v.timeline {
            metrics.push(Metric::new(
                "pg_timeline",
                "Timeline of the node.",
                &[("node", &n.addr)],
                t as f64,
            ));
        }
    }

    // PgBouncer.
    let mut bouncer_row: Option<NodeStatus> = None;
    if let (Some(b), Some(bo)) = (&spec.pgbouncer, &obs.bouncer) {
        let node = Some(bo.addr.clone());
        let reps: Vec<&PgNode> = replicas.iter().map(|r| &r.node).collect();
        let primary_node = spec
            .node(&paddr)
            .cloned()
            .unwrap_or_else(|| spec.declared_primary().clone());
        let routes = bouncer_routes(e, &ctx.state, &primary_node, &reps);
        let row = match &bo.view {
            Err(err) => {
                let (state, msg) = if bo.process == Process::Stopped {
                    (
                        "not running",
                        "not running (started by datatier; `datatier init` starts it again)"
                            .to_string(),
                    )
                } else {
                    ("unreachable", format!("unreachable: {err}"))
                };
                f.push(Finding::crit("pgbouncer_reachable", node.clone(), msg));
                let mut row = NodeStatus::new(&bo.addr, "pgbouncer", state);
                row.reachable = false;
                row
            }
            Ok(view) => {
                f.push(Finding::ok(
                    "pgbouncer_reachable",
                    node.clone(),
                    format!("admin console answers ({})", view.version),
                ));
                // Routing: where each database really sends clients.
                let managed = e.bouncer_paths(ctx).is_some();
                let mut route_text = Vec::new();
                for r in &routes {
                    let Some(live) = view.db(&r.name) else {
                        f.push(Finding::new(
                            "pgbouncer_routes",
                            node.clone(),
                            if r.target == RouteTarget::Primary {
                                Severity::Critical
                            } else {
                                Severity::Warning
                            },
                            format!(
                                "database {} is not configured (should go to the {})",
                                r.name, r.target
                            ),
                        ));
                        continue;
                    };
                    let members = pgbouncer::live_members(live, &spec.nodes);
                    route_text.push(format!(
                        "{}->{}",
                        r.name,
                        members
                            .iter()
                            .map(|m| m.rsplit_once(':').map(|x| x.1).unwrap_or(m).to_string())
                            .collect::<Vec<_>>()
                            .join(",")
                    ));
                    let shown = members.join(", ");
                    let replica_addrs: Vec<String> =
                        replicas.iter().map(|n| n.addr.clone()).collect();
                    let wrong = match r.target {
                        RouteTarget::Primary => (members != [paddr.clone()]).then(|| {
                            format!("{} routes to {shown}, not to the primary {paddr}: writes fail or go astray", r.name)
                        }),
                        RouteTarget::Replicas => {
                            let stray: Vec<&String> = members
                                .iter()
                                .filter(|m| {
                                    let ok = replica_addrs.contains(m)
                                        || (replica_addrs.is_empty() && **m == paddr);
                                    !ok
                                })
                                .collect();
                            (!stray.is_empty()).then(|| {
                                format!(
                                    "{} routes to {}, which {} not a replica",
                                    r.name,
                                    stray.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
                                    if stray.len() == 1 { "is" } else { "are" }
                                )
                            })
                        }
                    };
                    let drift = managed
                        && (live.host != r.host
                            || live.port != r.port
                            || live.database != r.dbname);
                    if let Some(msg) = wrong {
                        f.push(Finding::new(
                            "pgbouncer_routes",
                            node.clone(),
                            if r.target == RouteTarget::Primary {
                                Severity::Critical
                            } else {
                                Severity::Warning
                            },
                            format!("{msg}; `datatier init` rewrites the ini and reloads"),
                        ));
                    } else if drift {
                        f.push(Finding::warn(
                            "pgbouncer_routes",
                            node.clone(),
                            format!(
                                "{} routes to {shown}; datatier would route it to {} (`datatier init` rewrites and reloads)",
                                r.name,
                                r.members.join(", ")
                            ),
                        ));
                    } else {
                        let down: Vec<&String> = members
                            .iter()
                            .filter(|m| obs.node(m).is_some_and(|n| n.view.is_err()))
                            .collect();
                        if down.is_empty() {
                            f.push(Finding::ok(
                                "pgbouncer_routes",
                                node.clone(),
                                format!("{} -> {shown} ({})", r.name, r.target),
                            ));
                        } else {
                            f.push(Finding::warn(
                                "pgbouncer_routes",
                                node.clone(),
                                format!(
                                    "{} sends clients to {}, which is down: some connections fail",
                                    r.name,
                                    down.iter()
                                        .map(|s| s.as_str())
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                ),
                            ));
                        }
                    }
                    if r.target == RouteTarget::Replicas && members == [paddr.clone()] {
                        notes.push(format!(
                            "{} reads from the primary: no replica is available",
                            r.name
                        ));
                    }
                }
                for d in view.databases.iter().filter(|d| d.paused) {
                    f.push(Finding::warn(
                        "pgbouncer_paused",
                        node.clone(),
                        format!("{} is PAUSED: its clients wait (RESUME {} on the console, or `datatier init`)", d.name, d.name),
                    ));
                }
                // Pools.
                let mut clients = 0;
                let mut waiting = 0;
                for p in &view.pools {
                    clients += p.cl_active + p.cl_waiting;
                    waiting += p.cl_waiting;
                    let who = format!("{}/{}", p.database, p.user);
                    let sev = grade(
                        p.cl_waiting as f64,
                        checks.pool_waiting_warn as f64,
                        checks.pool_waiting_crit as f64,
                    )
                    .max(grade(
                        p.maxwait_seconds,
                        checks.pool_maxwait_warn_seconds,
                        checks.pool_maxwait_crit_seconds,
                    ));
                    f.push(Finding::new(
                        "pgbouncer_pool",
                        node.clone(),
                        sev,
                        format!(
                            "pool {who}: {} active, {} waiting clients, maxwait {:.2}s, {} server connections",
                            p.cl_active,
                            p.cl_waiting,
                            p.maxwait_seconds,
                            p.sv_active + p.sv_idle
                        ),
                    ));
                    let labels = [("database", p.database.as_str()), ("user", p.user.as_str())];
                    metrics.push(Metric::new(
                        "pgbouncer_clients_waiting",
                        "SHOW POOLS cl_waiting.",
                        &labels,
                        p.cl_waiting as f64,
                    ));
                    metrics.push(Metric::new(
                        "pgbouncer_clients_active",
                        "SHOW POOLS cl_active.",
                        &labels,
                        p.cl_active as f64,
                    ));
                    metrics.push(Metric::new(
                        "pgbouncer_maxwait_seconds",
                        "SHOW POOLS maxwait.",
                        &labels,
                        p.maxwait_seconds,
                    ));
                }
                // Settings as declared.
                let mut differ = Vec::new();
                for (k, want) in [
                    ("pool_mode", b.pool_mode.as_str().to_string()),
                    ("max_client_conn", b.max_client_conn.to_string()),
                    ("default_pool_size", b.default_pool_size.to_string()),
                    ("min_pool_size", b.min_pool_size.to_string()),
                ] {
                    if let Some(have) = view.config.get(k) {
                        if *have != want {
                            differ.push(format!("{k}={have} (declared {want})"));
                        }
                    }
                }
                if differ.is_empty() {
                    f.push(Finding::ok(
                        "pgbouncer_config",
                        node.clone(),
                        format!(
                            "pool_mode {}, max_client_conn {}, default_pool_size {}, min_pool_size {}",
                            b.pool_mode.as_str(),
                            b.max_client_conn,
                            b.default_pool_size,
                            b.min_pool_size
                        ),
                    ));
                } else {
                    f.push(Finding::warn(
                        "pgbouncer_config",
                        node.clone(),
                        differ.join(", "),
                    ));
                }
                let paused = view.databases.iter().any(|d| d.paused);
                NodeStatus::new(
                    &bo.addr,
                    "pgbouncer",
                    if paused { "paused" } else { "running" },
                )
                .detail("routes", route_text.join(" "))
                .detail("conns", format!("{clients} clients, {waiting} waiting"))
            }
        };
        bouncer_row = Some(row);
    }

    // The table.
    let mut nodes: Vec<NodeStatus> = obs
        .nodes
        .iter()
        .map(|n| {
            let v = n.view();
            let is_primary = n.is_primary() || (v.is_none() && n.addr == paddr);
            let role = if is_primary { "primary" } else { "replica" };
            let state = match (&n.view, n.process) {
                (Err(_), Process::Stopped) => "not running".to_string(),
                (Err(_), _) => "unreachable".to_string(),
                (Ok(v), _) if !v.in_recovery => "running".to_string(),
                (Ok(v), _) => match pv.and_then(|pv| plan::streaming_row(pv, &n.node, Some(v))) {
                    Some(row) => row.state.clone(),
                    None => v
                        .wal_receiver
                        .as_ref()
                        .map(|w| w.status.clone())
                        .unwrap_or_else(|| "not streaming".into()),
                },
            };
            let mut s = NodeStatus::new(&n.addr, role, state);
            s.reachable = v.is_some();
            if let Some(v) = v {
                s = s
                    .detail(
                        "timeline",
                        v.timeline.map(serde_json::Value::from).unwrap_or_default(),
                    )
                    .detail("lsn", v.lsn.map(|l| l.to_string()).unwrap_or_default())
                    .detail("conns", format!("{}/{}", v.connections, v.max_connections));
                if v.in_recovery {
                    s = s.detail("upstream", v.upstream().unwrap_or_default());
                }
            }
            if let Some(l) = lag_of.get(&n.addr) {
                s = s.detail(
                    "lag",
                    format!("{} / {:.2}s", human_bytes(l.bytes), l.seconds),
                );
            } else if !is_primary {
                s = s.detail("lag", "?");
            }
            s
        })
        .collect();
    // Primary first, as users look for it.
    nodes.sort_by_key(|s| s.role != "primary");
    if let Some(r) = bouncer_row {
        nodes.push(r);
    }
    let mut r = StatusReport::new(&spec.meta.name, "postgres", nodes, f);
    r.metrics = metrics;
    r.notes = notes;
    r
}

fn retained(pv: &NodeView, restart: Option<super::sql::Lsn>) -> u64 {
    match (restart, pv.lsn) {
        (Some(r), Some(p)) => r.bytes_to(p),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{self, healthy, stop};
    use super::*;
    use crate::provider::ProviderKind;

    #[test]
    fn bytes_read_well() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(2048), "2.0 kB");
        assert_eq!(human_bytes(16 << 20), "16.0 MB");
    }

    fn problems(r: &StatusReport) -> Vec<String> {
        r.findings
            .iter()
            .filter(|f| f.severity > Severity::Ok)
            .map(|f| {
                format!(
                    "{} {} {}: {}",
                    f.severity,
                    f.check,
                    f.node.clone().unwrap_or_default(),
                    f.message
                )
            })
            .collect()
    }

    #[test]
    fn healthy_is_ok_and_the_table_reads_like_patronictl() {
        let dir = tempfile::tempdir().unwrap();
        let spec = fixture::spec(None);
        let ctx = fixture::ctx(dir.path(), ProviderKind::Local);
        let e = PostgresEngine::new(&spec, &ctx).unwrap();
        let r = report(&e, &ctx, &healthy(&e, 0));
        assert_eq!(r.status, Severity::Ok, "{:#?}", problems(&r));
        let t = r.render(crate::report::OutputFormat::Table);
        assert!(t.contains("127.0.0.1:15432   primary     running"), "{t}");
        assert!(t.contains("127.0.0.1:15433   replica     streaming"), "{t}");
        assert!(t.contains("app->15432 app_ro->15433,15434"), "{t}");
        for check in [
            "primary",
            "replica_streaming (x2)",
            "replica_lag (x2)",
            "replication_slot (x2)",
            "connections (x3)",
            "pgbouncer_routes (x2)",
            "pgbouncer_pool",
        ] {
            assert!(t.contains(check), "{check} not verified:\n{t}");
        }
    }

    #[test]
    fn lag_connections_and_pools_have_thresholds() {
        let dir = tempfile::tempdir().unwrap();
        let spec = fixture::spec(None);
        let ctx = fixture::ctx(dir.path(), ProviderKind::Local);
        let e = PostgresEngine::new(&spec, &ctx).unwrap();
        let mut obs = healthy(&e, 0);
        if let Ok(v) = &mut obs.nodes[0].view {
            v.replication[0].replay_lag = Some(1.5);
            v.replication[1].replay_lag = Some(12.0);
            v.connections = 85;
        }
        if let Ok(v) = &mut obs.nodes[2].view {
            v.connections = 96;
        }
        if let Some(Ok(v)) = obs.bouncer.as_mut().map(|b| b.view.as_mut()) {
            v.pools[0].cl_waiting = 12;
            v.pools[0].maxwait_seconds = 6.0;
        }
        let r = report(&e, &ctx, &obs);
        let p = problems(&r);
        let has = |s: &str| p.iter().any(|x| x.contains(s));
        assert!(has("WARNING replica_lag 127.0.0.1:15433: replica 127.0.0.1:15433 lags: lag 0 B / 1.50s"), "{p:#?}");
        assert!(
            has("CRITICAL replica_lag 127.0.0.1:15434: replica 127.0.0.1:15434 lags"),
            "{p:#?}"
        );
        assert!(
            has("WARNING connections 127.0.0.1:15432: 85 of max_connections 100 in use (85%"),
            "{p:#?}"
        );
        assert!(
            has("CRITICAL connections 127.0.0.1:15434: 96 of max_connections 100"),
            "{p:#?}"
        );
        assert!(has("CRITICAL pgbouncer_pool 127.0.0.1:16432: pool app/app: 2 active, 12 waiting clients, maxwait 6.00s"), "{p:#?}");
        assert_eq!(r.status, Severity::Critical);
        // Bytes alone also count.
        let mut obs = healthy(&e, 0);
        if let Ok(v) = &mut obs.nodes[0].view {
            v.lsn = Some(super::super::sql::Lsn(0x3000060 + (20 << 20)));
        }
        let r = report(&e, &ctx, &obs);
        assert!(
            problems(&r).iter().any(|x| x.contains(
                "WARNING replica_lag 127.0.0.1:15433: replica 127.0.0.1:15433 lags: lag 20.0 MB"
            )),
            "{:#?}",
            problems(&r)
        );
    }

    #[test]
    fn a_missing_replica_and_a_misrouted_pgbouncer_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let spec = fixture::spec(None);
        let ctx = fixture::ctx(dir.path(), ProviderKind::Local);
        let e = PostgresEngine::new(&spec, &ctx).unwrap();
        let mut obs = healthy(&e, 0);
        stop(&mut obs, 2);
        if let Ok(v) = &mut obs.nodes[0].view {
            v.replication
                .retain(|r| r.application_name != "replica_127_0_0_1_15434");
            for s in &mut v.slots {
                if s.name == "replica_127_0_0_1_15434" {
                    s.active = false;
                    s.active_pid = None;
                }
            }
        }
        if let Some(Ok(v)) = obs.bouncer.as_mut().map(|b| b.view.as_mut()) {
            v.databases[0].port = 15433;
            v.databases[1].paused = true;
        }
        let r = report(&e, &ctx, &obs);
        let p = problems(&r);
        let has = |s: &str| p.iter().any(|x| x.contains(s));
        assert!(
            has("CRITICAL node_reachable 127.0.0.1:15434: not running"),
            "{p:#?}"
        );
        assert!(has("CRITICAL replica_streaming 127.0.0.1:15434: replica 127.0.0.1:15434 is missing from pg_stat_replication on 127.0.0.1:15432"), "{p:#?}");
        assert!(has("WARNING replication_slot 127.0.0.1:15434: slot replica_127_0_0_1_15434 on 127.0.0.1:15432 is inactive"), "{p:#?}");
        assert!(has("CRITICAL pgbouncer_routes 127.0.0.1:16432: app routes to 127.0.0.1:15433, not to the primary 127.0.0.1:15432"), "{p:#?}");
        assert!(has("WARNING pgbouncer_routes 127.0.0.1:16432: app_ro sends clients to 127.0.0.1:15434, which is down"), "{p:#?}");
        assert!(
            has("WARNING pgbouncer_paused 127.0.0.1:16432: app_ro is PAUSED"),
            "{p:#?}"
        );
        assert_eq!(r.status.exit_code(), 2);
        // Two primaries: both named.
        let mut obs = healthy(&e, 0);
        if let Ok(v) = &mut obs.nodes[1].view {
            v.in_recovery = false;
        }
        let p = problems(&report(&e, &ctx, &obs));
        assert!(p.iter().any(|x| x.contains("CRITICAL primary 127.0.0.1:15433: split brain: 127.0.0.1:15432 and 127.0.0.1:15433 all accept writes")), "{p:#?}");
    }
}
