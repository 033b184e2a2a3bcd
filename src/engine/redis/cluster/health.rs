//! Health checks for a Redis Cluster, from one observation. Every node is
//! judged; a node that does not answer is a CRITICAL finding, and the other
//! checks go on with what the remaining nodes say.

use super::converge;
use super::nodes::NodeLine;
use super::observe::{NodeView, Observed, Process};
use crate::health::Finding;
use crate::report::{Metric, NodeStatus, StatusReport};
use crate::topology::redis_cluster::{ranges_to_string, RedisClusterSpec, SLOTS};

/// The view used for cluster-wide facts: the reachable node with the
/// highest current epoch (the most up-to-date configuration).
fn reference(obs: &Observed) -> Option<&NodeView> {
    obs.nodes
        .iter()
        .filter_map(|n| n.view())
        .filter(|v| v.cluster_enabled())
        .max_by_key(|v| {
            v.cluster
                .get("cluster_current_epoch")
                .and_then(|e| e.parse::<u64>().ok())
                .unwrap_or(0)
        })
}

pub fn report(spec: &RedisClusterSpec, obs: &Observed) -> StatusReport {
    let mut f: Vec<Finding> = Vec::new();
    let mut notes = Vec::new();
    let mut metrics = Vec::new();
    let addrs: Vec<String> = obs.nodes.iter().map(|n| n.addr.clone()).collect();
    let reference = reference(obs);
    // Node lines by address, as the reference view sees them.
    let line_of = |addr: &str| -> Option<&NodeLine> {
        let own = obs
            .nodes
            .iter()
            .find(|n| n.addr == addr)
            .and_then(|n| n.view())
            .and_then(|v| v.myself());
        let id = own.map(|m| m.id.clone());
        reference.and_then(|r| match &id {
            Some(id) => r.by_id(id),
            None => r.nodes.iter().find(|n| n.addr == addr),
        })
    };
    let addr_of_id = |id: &str| -> String {
        obs.nodes
            .iter()
            .find(|n| n.id() == Some(id))
            .map(|n| n.addr.clone())
            .or_else(|| reference.and_then(|r| r.by_id(id)).map(|l| l.addr.clone()))
            .unwrap_or_else(|| id[..id.len().min(8)].to_string())
    };

    let unreachable: Vec<&str> = obs
        .nodes
        .iter()
        .filter(|n| n.view.is_err())
        .map(|n| n.addr.as_str())
        .collect();

    // Reachability and per-node state.
    for n in &obs.nodes {
        let node = Some(n.addr.clone());
        match (&n.view, n.process) {
            (Err(e), process) => {
                // Down and serving slots: the cluster lost part of its
                // keyspace (CRITICAL). Down after its slots moved to a
                // replica, or a replica: redundancy lost (WARNING).
                let serves = line_of(&n.addr).is_none_or(|l| !l.slots.is_empty());
                let what = match process {
                    Process::Stopped { .. } => {
                        "not running (started by datatier; `datatier init` starts it again)"
                            .to_string()
                    }
                    _ => format!("unreachable: {e}"),
                };
                if serves {
                    f.push(Finding::crit("node_reachable", node, what));
                } else {
                    f.push(Finding::warn(
                        "node_reachable",
                        node,
                        format!("{what}; its slots are served by other nodes"),
                    ));
                }
            }
            (Ok(v), _) if !v.cluster_enabled() => f.push(Finding::crit(
                "cluster_mode",
                node,
                "cluster support is disabled (cluster-enabled no)",
            )),
            (Ok(v), _) => {
                f.push(Finding::ok("node_reachable", node.clone(), "answers"));
                if v.state_ok() {
                    f.push(Finding::ok(
                        "cluster_state",
                        node.clone(),
                        "cluster_state:ok",
                    ));
                } else {
                    f.push(Finding::crit(
                        "cluster_state",
                        node.clone(),
                        format!(
                            "cluster_state:{}",
                            v.cluster
                                .get("cluster_state")
                                .map(String::as_str)
                                .unwrap_or("?")
                        ),
                    ));
                }
                if let Some(t) = v.node_timeout() {
                    if t != spec.node_timeout_ms {
                        f.push(Finding::warn(
                            "node_timeout",
                            node.clone(),
                            format!("cluster-node-timeout is {t} ms, declared {} ms (`datatier init` sets it)", spec.node_timeout_ms),
                        ));
                    }
                }
                memory(spec, v, &n.addr, &mut f);
                let open: Vec<String> = v
                    .myself()
                    .map(|m| {
                        m.migrating
                            .iter()
                            .map(|(s, to)| format!("{s} migrating to {}", addr_of_id(to)))
                            .chain(m.importing.iter().map(|(s, from)| {
                                format!("{s} importing from {}", addr_of_id(from))
                            }))
                            .collect()
                    })
                    .unwrap_or_default();
                if open.is_empty() {
                    f.push(Finding::ok(
                        "open_slots",
                        node.clone(),
                        "no migrating or importing slots",
                    ));
                } else {
                    f.push(Finding::warn(
                        "open_slots",
                        node.clone(),
                        format!("open slots: {} (an interrupted resharding; `redis-cli --cluster fix` or finish the migration)", open.join(", ")),
                    ));
                }
                if let Some(me) = v.myself() {
                    if me.is_replica() {
                        match v.info.get("master_link_status").map(String::as_str) {
                            Some("up") => f.push(Finding::ok(
                                "replica_link",
                                node.clone(),
                                "master_link_status:up",
                            )),
                            other => f.push(Finding::warn(
                                "replica_link",
                                node.clone(),
                                format!(
                                    "master_link_status:{}{}",
                                    other.unwrap_or("?"),
                                    if v.info.get("master_sync_in_progress").map(String::as_str)
                                        == Some("1")
                                    {
                                        " (initial sync in progress)"
                                    } else {
                                        ""
                                    }
                                ),
                            )),
                        }
                    }
                    let down: Vec<String> = v
                        .nodes
                        .iter()
                        .filter(|l| {
                            !l.is_myself()
                                && !l.connected
                                && !l.failed()
                                && !l.is_transient()
                                // A node we cannot reach either is reported once, as itself.
                                && !unreachable.contains(&l.addr.as_str())
                        })
                        .map(|l| l.addr.clone())
                        .collect();
                    if !down.is_empty() {
                        f.push(Finding::warn(
                            "links",
                            node.clone(),
                            format!("cluster bus link down to {}", down.join(", ")),
                        ));
                    }
                }
            }
        }
    }

    // Failure flags as the reachable nodes see them.
    for a in &addrs {
        let mut fail = 0;
        let mut pfail = 0;
        for v in obs.nodes.iter().filter_map(|n| n.view()) {
            if let Some(l) = v.nodes.iter().find(|l| !l.is_myself() && (l.addr == *a)) {
                if l.failed() {
                    fail += 1;
                } else if l.pfailed() {
                    pfail += 1;
                }
            }
        }
        let serves = line_of(a).is_none_or(|l| !l.slots.is_empty());
        if fail > 0 {
            let msg = format!("flagged fail by {fail} node(s)");
            f.push(if serves {
                Finding::crit("node_failure", Some(a.clone()), msg)
            } else {
                Finding::warn("node_failure", Some(a.clone()), msg)
            });
        } else if pfail > 0 {
            f.push(Finding::warn(
                "node_failure",
                Some(a.clone()),
                format!("flagged fail? (unreachable) by {pfail} node(s)"),
            ));
        }
    }

    // Slot coverage, from the most up-to-date view.
    match reference {
        None => f.push(Finding::crit(
            "slots_covered",
            None,
            "no node answered in cluster mode; coverage unknown",
        )),
        Some(r) => {
            let mut owners = vec![0u8; SLOTS as usize];
            for l in &r.nodes {
                for s in &l.slots {
                    for x in s.start..=s.end {
                        owners[x as usize] = owners[x as usize].saturating_add(1);
                    }
                }
            }
            let missing: Vec<_> = ranges(&owners, |c| c == 0);
            let doubled: Vec<_> = ranges(&owners, |c| c > 1);
            if !missing.is_empty() {
                let n: usize = missing.iter().map(|r| r.len()).sum();
                f.push(Finding::crit(
                    "slots_covered",
                    None,
                    format!("{n} slot(s) unassigned: {}", ranges_to_string(&missing)),
                ));
            } else if !doubled.is_empty() {
                f.push(Finding::crit(
                    "slots_covered",
                    None,
                    format!("slots claimed twice: {}", ranges_to_string(&doubled)),
                ));
            } else {
                f.push(Finding::ok(
                    "slots_covered",
                    None,
                    "all 16384 slots assigned exactly once",
                ));
            }
            let failed: Vec<String> = r
                .nodes
                .iter()
                .filter(|l| !l.slots.is_empty() && (l.failed() || l.pfailed()))
                .map(|l| format!("{} ({} slots)", l.addr, l.slot_count()))
                .collect();
            if !failed.is_empty() {
                f.push(Finding::crit(
                    "slots_served",
                    None,
                    format!("slots served by failing master(s): {}", failed.join(", ")),
                ));
            }
            for k in [
                "cluster_slots_assigned",
                "cluster_slots_ok",
                "cluster_slots_pfail",
                "cluster_slots_fail",
                "cluster_known_nodes",
                "cluster_current_epoch",
            ] {
                if let Some(v) = r.cluster.get(k).and_then(|v| v.parse::<f64>().ok()) {
                    metrics.push(Metric::new(
                        &format!("redis_{k}"),
                        &format!("CLUSTER INFO {k} (from the most up-to-date node)."),
                        &[],
                        v,
                    ));
                }
            }

            // Replicas per serving master, anti-affinity, balance.
            let masters: Vec<&NodeLine> = r
                .nodes
                .iter()
                .filter(|l| l.is_master() && !l.slots.is_empty())
                .collect();
            let even = SLOTS as f64 / masters.len().max(1) as f64;
            for m in &masters {
                let reps: Vec<&NodeLine> = r
                    .nodes
                    .iter()
                    .filter(|l| l.master.as_deref() == Some(m.id.as_str()) && !l.failed())
                    .collect();
                let node = Some(m.addr.clone());
                if reps.len() < spec.replicas_per_master {
                    f.push(Finding::warn(
                        "replicas",
                        node.clone(),
                        format!(
                            "has {} of {} declared replica(s)",
                            reps.len(),
                            spec.replicas_per_master
                        ),
                    ));
                } else {
                    f.push(Finding::ok(
                        "replicas",
                        node.clone(),
                        format!("{} replica(s)", reps.len()),
                    ));
                }
                if spec.hosts > 1 {
                    let host = m.addr.rsplit_once(':').map(|x| x.0).unwrap_or("");
                    for rep in reps
                        .iter()
                        .filter(|r| r.addr.rsplit_once(':').map(|x| x.0) == Some(host))
                    {
                        f.push(Finding::warn(
                            "anti_affinity",
                            Some(rep.addr.clone()),
                            format!("replica runs on its master's host {host}"),
                        ));
                    }
                }
                let dev = (m.slot_count() as f64 - even).abs() / even * 100.0;
                if dev > spec.checks.slot_balance_tolerance_pct {
                    f.push(Finding::warn(
                        "slot_balance",
                        node,
                        format!(
                            "{} slots, {dev:.1}% off the even share of {even:.0} (tolerance {}%)",
                            m.slot_count(),
                            spec.checks.slot_balance_tolerance_pct
                        ),
                    ));
                }
            }
            if masters.len() == spec.masters().count() {
                f.push(Finding::ok(
                    "masters",
                    None,
                    format!("{} masters serve slots", masters.len()),
                ));
            } else {
                f.push(Finding::warn(
                    "masters",
                    None,
                    format!(
                        "{} master(s) serve slots, {} declared",
                        masters.len(),
                        spec.masters().count()
                    ),
                ));
            }
        }
    }

    // Agreement: members, roles, slots, epochs.
    let views: Vec<Option<&NodeView>> = obs
        .nodes
        .iter()
        .map(|n| n.view().filter(|v| v.cluster_enabled()))
        .collect();
    if views.iter().all(|v| v.is_some()) {
        let gaps = converge::gaps(spec, &addrs, &views);
        let gaps: Vec<&String> = gaps
            .iter()
            .filter(|g| !g.contains("cluster_state:"))
            .collect();
        if gaps.is_empty() {
            f.push(Finding::ok(
                "config_agreement",
                None,
                "all nodes agree on members, roles, slots and epochs",
            ));
        } else {
            let shown: Vec<&str> = gaps.iter().take(4).map(|s| s.as_str()).collect();
            f.push(Finding::warn(
                "config_agreement",
                None,
                format!(
                    "{} disagreement(s): {}{}",
                    gaps.len(),
                    shown.join("; "),
                    if gaps.len() > 4 { "; ..." } else { "" }
                ),
            ));
        }
        // Failovers: the declared master no longer serves its group.
        for (g, m) in spec.masters() {
            let cm = converge::current_master(spec, &views, g);
            if cm != g {
                notes.push(format!(
                    "{} serves the slots declared for {} (a failover happened); `CLUSTER FAILOVER` on {} restores the declared roles",
                    addrs[cm],
                    m.addr(),
                    m.addr()
                ));
            }
        }
    }

    // Node table.
    let nodes: Vec<NodeStatus> = obs
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let own = n.view().and_then(|v| v.myself());
            let seen = own.or_else(|| line_of(&n.addr));
            let role = match seen {
                Some(l) if l.is_master() => "master",
                Some(l) if l.is_replica() => "replica",
                _ => {
                    if spec.nodes[i].is_master() {
                        "master"
                    } else {
                        "replica"
                    }
                }
            };
            let state = match (&n.view, n.process) {
                (Err(_), Process::Stopped { .. }) => "not running".to_string(),
                (Err(_), _) => "unreachable".to_string(),
                (Ok(_), _) => match line_of(&n.addr) {
                    Some(l) if l.failed() => "fail".into(),
                    Some(l) if l.pfailed() => "fail?".into(),
                    Some(l) if l.is_transient() => "handshake".into(),
                    _ => "ok".into(),
                },
            };
            let mut s = NodeStatus::new(&n.addr, role, state);
            s.reachable = n.view.is_ok();
            if let Some(l) = seen {
                s = s.detail("id", l.id[..l.id.len().min(8)].to_string());
                if l.is_master() {
                    let slots = if l.slots.is_empty() {
                        "-".to_string()
                    } else {
                        format!("{} ({})", ranges_to_string(&l.slots), l.slot_count())
                    };
                    s = s.detail("slots", slots);
                }
                if let Some(m) = &l.master {
                    s = s.detail("master", addr_of_id(m));
                }
            }
            if let Some(v) = n.view() {
                s = s.detail("keys", v.keys);
                if let Some(m) = v.info.get("used_memory_human") {
                    s = s.detail("memory", m.clone());
                }
                if let Some(l) = seen {
                    s = s.detail("epoch", l.config_epoch);
                }
                metrics.push(Metric::new(
                    "redis_keys",
                    "Keys in the node's database (DBSIZE).",
                    &[("node", &n.addr)],
                    v.keys as f64,
                ));
                if let Some(m) = v
                    .info
                    .get("used_memory")
                    .and_then(|m| m.parse::<f64>().ok())
                {
                    metrics.push(Metric::new(
                        "redis_used_memory_bytes",
                        "INFO used_memory.",
                        &[("node", &n.addr)],
                        m,
                    ));
                }
                if let Some(m) = v
                    .info
                    .get("connected_clients")
                    .and_then(|m| m.parse::<f64>().ok())
                {
                    metrics.push(Metric::new(
                        "redis_connected_clients",
                        "INFO connected_clients.",
                        &[("node", &n.addr)],
                        m,
                    ));
                }
            }
            s
        })
        .collect();

    let mut r = StatusReport::new(&spec.meta.name, "redis-cluster", nodes, f);
    r.metrics = metrics;
    r.notes = notes;
    r
}

fn memory(spec: &RedisClusterSpec, v: &NodeView, addr: &str, f: &mut Vec<Finding>) {
    let max: u64 = v
        .info
        .get("maxmemory")
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    let used: u64 = v
        .info
        .get("used_memory")
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    if max == 0 {
        return;
    }
    let pct = used as f64 / max as f64 * 100.0;
    let msg = format!("used_memory {used} of maxmemory {max} bytes ({pct:.1}%)");
    let node = Some(addr.to_string());
    f.push(if pct >= spec.checks.memory_crit_pct {
        Finding::crit("memory", node, msg)
    } else if pct >= spec.checks.memory_warn_pct {
        Finding::warn("memory", node, msg)
    } else {
        Finding::ok("memory", node, msg)
    });
}

fn ranges(
    counts: &[u8],
    pred: impl Fn(u8) -> bool,
) -> Vec<crate::topology::redis_cluster::SlotRange> {
    let mut out: Vec<crate::topology::redis_cluster::SlotRange> = Vec::new();
    for (s, c) in counts.iter().enumerate() {
        if pred(*c) {
            match out.last_mut() {
                Some(r) if r.end as usize + 1 == s => r.end = s as u16,
                _ => out.push(crate::topology::redis_cluster::SlotRange {
                    start: s as u16,
                    end: s as u16,
                }),
            }
        }
    }
    out
}
