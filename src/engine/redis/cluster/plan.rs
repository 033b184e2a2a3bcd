//! The pure planner: `(spec, observed) -> Plan<Action>`.
//!
//! Order of a full bootstrap (what `redis-cli --cluster create` does, minus
//! its fixed sleeps, plus a short bootstrap node timeout):
//!
//! 1. start nodes (local provider);
//! 2. on every node at once: a short `cluster-node-timeout` while
//!    bootstrapping (a master that has been "in the minority" — as every
//!    node is before it has met its peers — refuses to report `ok` for
//!    clamp(node timeout, 0.5 s, 5 s)), `SET-CONFIG-EPOCH` with distinct
//!    epochs (no epoch collisions to resolve later), `ADDSLOTSRANGE`;
//! 3. `MEET` between every pair not yet acquainted (full mesh, so nobody
//!    waits for gossip to learn the others);
//! 4. `REPLICATE` as soon as each replica knows its master;
//! 5. wait until converged ([`super::converge::gaps`] is empty);
//! 6. restore the declared node timeout and persist it (`CONFIG REWRITE`).
//!
//! Partial states (a crash half-way, a node restarted, a failover) produce
//! only the missing steps. Nodes that hold keys or know undeclared nodes
//! are refused unless `--force`, and the refusal changes nothing.

use super::converge::{self, current_master, members};
use super::nodes::NodeLine;
use super::observe::{NodeView, Observed, Process};
use crate::plan::Plan;
use crate::topology::redis_cluster::{ranges_to_string, NodeRole, RedisClusterSpec, SlotRange};
use anyhow::{bail, Result};
use std::collections::HashMap;
use std::fmt;

/// The node timeout used while bootstrapping (the rejoin delay's floor).
pub const BOOTSTRAP_NODE_TIMEOUT_MS: u64 = 500;

/// Settings applied while bootstrapping and restored at the end: a short
/// node timeout (see the module docs) and no diskless-sync delay, so a new
/// replica's first sync starts at once instead of after 5 s of waiting
/// for more replicas.
pub fn bootstrap_settings() -> Vec<(String, String)> {
    vec![
        (
            "cluster-node-timeout".into(),
            BOOTSTRAP_NODE_TIMEOUT_MS.to_string(),
        ),
        ("repl-diskless-sync-delay".into(), "0".into()),
    ]
}

/// Redis's default `repl-diskless-sync-delay`.
const DEFAULT_DISKLESS_DELAY: &str = "5";

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Start the node's process; `rejoin` when it has cluster state on disk.
    Start {
        rejoin: bool,
    },
    /// `--force`: FLUSHALL and CLUSTER RESET HARD (destroys its data).
    Reset {
        keys: u64,
        why: String,
    },
    /// After starts/resets whose outcome cannot be predicted.
    ObserveAgain,
    /// [`bootstrap_settings`] on these nodes while bootstrapping.
    BootstrapSettings {
        nodes: Vec<String>,
    },
    /// `CLUSTER FORGET` stale entries: ids of declared addresses that
    /// restarted with a new id (data dir wiped), now failed.
    Forget(Vec<String>),
    SetConfigEpoch(u64),
    AddSlots(Vec<SlotRange>),
    Meet(Vec<String>),
    Replicate {
        master: String,
    },
    WaitConverged {
        nodes: usize,
    },
    /// Wait until every replica's link to its master is up (initial sync done).
    WaitReplicasSynced {
        replicas: usize,
    },
    /// Restore the declared (or previous) settings per node and persist
    /// them with CONFIG REWRITE.
    RestoreSettings {
        nodes: Vec<(String, Vec<(String, String)>)>,
    },
    /// Settings from `[config]` that differ on a running node.
    ConfigSet(Vec<(String, String)>),
}

impl Action {
    /// Steps that change which processes or data exist; after them the
    /// rest of the plan must be recomputed from a fresh observation.
    pub fn is_provisioning(&self) -> bool {
        matches!(
            self,
            Action::Start { .. } | Action::Reset { .. } | Action::ObserveAgain
        )
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Start { rejoin: false } => write!(f, "start redis-server (new node)"),
            Action::Start { rejoin: true } => write!(f, "start redis-server (rejoins its cluster from nodes.conf)"),
            Action::Reset { keys, why } => {
                write!(f, "FLUSHALL + CLUSTER RESET HARD (--force; {why}; deletes {keys} key(s))")
            }
            Action::ObserveAgain => write!(f, "observe again once the restarted nodes answer, then plan the rest"),
            Action::BootstrapSettings { nodes } => write!(
                f,
                "CONFIG SET {} on {} node(s) while bootstrapping",
                bootstrap_settings().iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(" "),
                nodes.len()
            ),
            Action::Forget(ids) => {
                let short: Vec<&str> = ids.iter().map(|i| &i[..i.len().min(8)]).collect();
                write!(f, "CLUSTER FORGET {} (stale ids of restarted nodes)", short.join(" "))
            }
            Action::SetConfigEpoch(e) => write!(f, "CLUSTER SET-CONFIG-EPOCH {e}"),
            Action::AddSlots(r) => {
                let n: usize = r.iter().map(|r| r.len()).sum();
                write!(f, "CLUSTER ADDSLOTSRANGE {} ({n} slots)", ranges_to_string(r))
            }
            Action::Meet(a) => write!(f, "CLUSTER MEET {}", a.join(" ")),
            Action::Replicate { master } => write!(f, "CLUSTER REPLICATE <id of {master}>"),
            Action::WaitConverged { nodes } => write!(
                f,
                "wait until all {nodes} nodes report cluster_state:ok and agree on members, roles and slots"
            ),
            Action::WaitReplicasSynced { replicas } => {
                write!(f, "wait until all {replicas} replicas finished their initial sync (master_link_status:up)")
            }
            Action::RestoreSettings { nodes } => {
                let mut keys: Vec<&str> = nodes.iter().flat_map(|(_, kv)| kv.iter().map(|(k, _)| k.as_str())).collect();
                keys.sort();
                keys.dedup();
                write!(f, "CONFIG SET {} (declared values) + CONFIG REWRITE on {} node(s)", keys.join(", "), nodes.len())
            }
            Action::ConfigSet(kv) => {
                let s: Vec<String> = kv.iter().map(|(k, v)| format!("{k} {v}")).collect();
                write!(f, "CONFIG SET {} + CONFIG REWRITE", s.join(" "))
            }
        }
    }
}

/// A view of a node that has never joined a cluster, used to predict the
/// plan for nodes not started yet (or about to be reset).
fn fresh_view(addr: &str, spec: &RedisClusterSpec) -> NodeView {
    let mut config: HashMap<String, String> = spec.config.iter().cloned().collect();
    config.insert(
        "cluster-node-timeout".into(),
        spec.node_timeout_ms.to_string(),
    );
    NodeView {
        nodes: vec![NodeLine {
            id: format!("<new {addr}>"),
            addr: addr.to_string(),
            flags: vec!["myself".into(), "master".into()],
            master: None,
            config_epoch: 0,
            connected: true,
            slots: vec![],
            migrating: vec![],
            importing: vec![],
        }],
        cluster: HashMap::new(),
        info: [("cluster_enabled".to_string(), "1".to_string())]
            .into_iter()
            .collect(),
        keys: 0,
        config,
    }
}

/// Compute the plan. `force` allows resetting nodes that hold data or
/// belong to another cluster.
pub fn plan(spec: &RedisClusterSpec, obs: &Observed, force: bool) -> Result<Plan<Action>> {
    let addrs: Vec<String> = obs.nodes.iter().map(|n| n.addr.clone()).collect();
    let mut p = Plan::new();
    let mut predicted: Vec<Option<NodeView>> = Vec::with_capacity(addrs.len());
    let mut unpredictable = false;

    // 1. Processes.
    let mut unreachable = Vec::new();
    for n in &obs.nodes {
        match (&n.process, &n.view) {
            (Process::Stopped { has_state }, _) => {
                p.push(&n.addr, Action::Start { rejoin: *has_state });
                unpredictable |= *has_state;
                predicted.push(Some(fresh_view(&n.addr, spec)));
            }
            (_, Err(e)) => {
                unreachable.push(format!("{} is unreachable ({e})", n.addr));
                predicted.push(None);
            }
            (_, Ok(v)) => predicted.push(Some(v.clone())),
        }
    }
    if !unreachable.is_empty() {
        bail!(
            "cannot plan: {}; nothing was changed\nhint: check that the nodes run and the address and password are right",
            unreachable.join("; ")
        );
    }
    let mut views: Vec<NodeView> = predicted
        .into_iter()
        .map(|v| v.expect("all reachable"))
        .collect();

    // 2. Cluster mode, foreign membership, data.
    let mut refusals = Vec::new();
    for (i, v) in views.iter().enumerate() {
        if !v.cluster_enabled() {
            refusals.push(format!(
                "{} runs without cluster support (cluster-enabled no): restart it with cluster-enabled yes",
                addrs[i]
            ));
        }
    }
    if !refusals.is_empty() {
        bail!("{}; nothing was changed", refusals.join("; "));
    }
    let own_ids: Vec<String> = views
        .iter()
        .map(|v| v.myself().map(|m| m.id.clone()).unwrap_or_default())
        .collect();
    for (i, v) in views.clone().iter().enumerate() {
        let foreign: Vec<String> = v
            .nodes
            .iter()
            .filter(|n| {
                // Unknown id at an address we do not declare. (An unknown id
                // at a declared address is that node's old self.)
                !n.is_myself()
                    && !n.is_transient()
                    && !own_ids.contains(&n.id)
                    && !n.addr.is_empty()
                    && !addrs.contains(&n.addr)
            })
            .map(|n| {
                if n.addr.is_empty() {
                    n.id[..8.min(n.id.len())].to_string()
                } else {
                    n.addr.clone()
                }
            })
            .collect();
        let why = if !foreign.is_empty() {
            Some(format!(
                "belongs to another cluster (knows {})",
                foreign.join(", ")
            ))
        } else if v.is_fresh() && v.keys > 0 {
            Some(format!(
                "holds {} key(s) and is not part of this cluster",
                v.keys
            ))
        } else {
            None
        };
        if let Some(why) = why {
            if force {
                p.push(&addrs[i], Action::Reset { keys: v.keys, why });
                views[i] = fresh_view(&addrs[i], spec);
            } else {
                refusals.push(format!("{} {why}", addrs[i]));
            }
        }
    }
    if !refusals.is_empty() {
        bail!(
            "refusing to touch nodes with data or other membership: {}; nothing was changed\nhint: --force resets these nodes and DELETES their data",
            refusals.join("; ")
        );
    }
    if unpredictable {
        p.push("cluster", Action::ObserveAgain);
        return Ok(p);
    }

    // 3. Cluster steps, against actual or predicted views.
    let refs: Vec<Option<&NodeView>> = views.iter().map(Some).collect();
    let ids: Vec<&str> = views
        .iter()
        .map(|v| v.myself().map(|m| m.id.as_str()).unwrap_or(""))
        .collect();
    let own_slots: Vec<&[SlotRange]> = views
        .iter()
        .map(|v| v.myself().map(|m| m.slots.as_slice()).unwrap_or(&[]))
        .collect();

    // Who owns each slot now (by the nodes' own claims), and who should.
    let mut owner: Vec<Option<usize>> = vec![None; 16384];
    for (i, slots) in own_slots.iter().enumerate() {
        for r in slots.iter() {
            for s in r.start..=r.end {
                owner[s as usize] = Some(i);
            }
        }
    }
    let mut mismatches = Vec::new();
    let mut add: HashMap<usize, Vec<SlotRange>> = HashMap::new();
    for (g, m) in spec.masters() {
        let NodeRole::Master { slots } = &m.role else {
            unreachable!()
        };
        let group = members(spec, g);
        let cm = current_master(spec, &refs, g);
        for r in slots {
            for s in r.start..=r.end {
                match owner[s as usize] {
                    None => push_slot(add.entry(cm).or_default(), s),
                    Some(o) if group.contains(&o) => {}
                    Some(o) => mismatches.push((s, addrs[o].clone(), addrs[g].clone())),
                }
            }
        }
    }
    if let Some((s, has, want)) = mismatches.first() {
        bail!(
            "{} slot(s) are served by a node other than the declared one (e.g. slot {s} by {has}, declared for {want}'s group); moving slots is resharding, which init does not do; nothing was changed",
            mismatches.len()
        );
    }

    let fresh: Vec<bool> = views.iter().map(|v| v.is_fresh()).collect();
    let bootstrap = fresh.iter().any(|f| *f) || !add.is_empty();
    let mut cluster_steps: Plan<Action> = Plan::new();
    if bootstrap {
        cluster_steps.push(
            "cluster",
            Action::BootstrapSettings {
                nodes: addrs.clone(),
            },
        );
    }
    // Stale entries of declared nodes that came back with a new id.
    for (i, v) in views.iter().enumerate() {
        let ghosts: Vec<String> = v
            .nodes
            .iter()
            .filter(|n| !n.is_myself() && !ids.contains(&n.id.as_str()) && is_ghost(n, &addrs))
            .map(|n| n.id.clone())
            .collect();
        if !ghosts.is_empty() {
            cluster_steps.push(&addrs[i], Action::Forget(ghosts));
        }
    }
    // Distinct config epochs above any in use, so no collision handling.
    let mut epoch = views
        .iter()
        .flat_map(|v| {
            v.nodes.iter().map(|n| n.config_epoch).chain(
                v.cluster
                    .get("cluster_current_epoch")
                    .and_then(|e| e.parse().ok()),
            )
        })
        .max()
        .unwrap_or(0);
    for (i, f) in fresh.iter().enumerate() {
        if *f {
            epoch += 1;
            cluster_steps.push(&addrs[i], Action::SetConfigEpoch(epoch));
        }
    }
    let mut add_sorted: Vec<_> = add.into_iter().collect();
    add_sorted.sort_by_key(|(i, _)| *i);
    for (i, ranges) in add_sorted {
        cluster_steps.push(&addrs[i], Action::AddSlots(ranges));
    }
    // Full-mesh MEET: i meets j when i does not know j, unless j will meet i.
    let knows = |i: usize, j: usize| views[i].by_id(ids[j]).is_some_and(|n| !n.is_transient());
    for i in 0..views.len() {
        let targets: Vec<String> = (0..views.len())
            .filter(|&j| j != i && !knows(i, j) && (i < j || knows(j, i)))
            .map(|j| addrs[j].clone())
            .collect();
        if !targets.is_empty() {
            cluster_steps.push(&addrs[i], Action::Meet(targets));
        }
    }
    let mut stale_claims = false;
    for (g, _) in spec.masters() {
        let cm = current_master(spec, &refs, g);
        for m in members(spec, g) {
            if m == cm {
                continue;
            }
            let me = views[m].myself();
            if me.and_then(|me| me.master.as_deref()) != Some(ids[cm]) {
                if !own_slots[m].is_empty() {
                    let epoch_of =
                        |i: usize| views[i].myself().map(|me| me.config_epoch).unwrap_or(0);
                    if epoch_of(m) < epoch_of(cm) {
                        // A restarted old master with a stale claim: the
                        // cluster demotes it to a replica by itself.
                        stale_claims = true;
                        continue;
                    }
                    bail!(
                        "{} and {} both serve slots of one group; resolve by hand (CLUSTER FAILOVER / resharding); nothing was changed",
                        addrs[m],
                        addrs[cm]
                    );
                }
                cluster_steps.push(
                    &addrs[m],
                    Action::Replicate {
                        master: addrs[cm].clone(),
                    },
                );
            }
        }
    }
    let converged = converge::gaps(spec, &addrs, &refs).is_empty();
    if !cluster_steps.is_empty() || !converged || stale_claims {
        cluster_steps.push("cluster", Action::WaitConverged { nodes: views.len() });
    }
    // Replicas by their own account (a promoted declared replica is a master
    // now and has no link to wait for).
    let unsynced = views
        .iter()
        .filter(|v| {
            v.myself().is_some_and(|m| m.is_replica())
                && v.info.get("master_link_status").map(String::as_str) != Some("up")
        })
        .count();
    let replicas = spec.nodes.iter().filter(|n| !n.is_master()).count();
    if (bootstrap || unsynced > 0) && replicas > 0 {
        cluster_steps.push("cluster", Action::WaitReplicasSynced { replicas });
    }
    let mut restore = Vec::new();
    for (v, a) in views.iter().zip(&addrs) {
        let mut kv = Vec::new();
        if bootstrap || v.node_timeout() != Some(spec.node_timeout_ms) {
            kv.push((
                "cluster-node-timeout".to_string(),
                spec.node_timeout_ms.to_string(),
            ));
        }
        if bootstrap {
            // Back to the declared value, else what the node had before.
            let declared = spec
                .config
                .iter()
                .find(|(k, _)| k == "repl-diskless-sync-delay")
                .map(|(_, v)| v.clone());
            let had = v.config.get("repl-diskless-sync-delay").cloned();
            let value = declared
                .or(had)
                .unwrap_or_else(|| DEFAULT_DISKLESS_DELAY.to_string());
            kv.push(("repl-diskless-sync-delay".to_string(), value));
        }
        if !kv.is_empty() {
            restore.push((a.clone(), kv));
        }
    }
    if !restore.is_empty() {
        cluster_steps.push("cluster", Action::RestoreSettings { nodes: restore });
    }
    for (i, v) in views.iter().enumerate() {
        let drift: Vec<(String, String)> = spec
            .config
            .iter()
            .filter(|(k, want)| {
                v.config
                    .get(k)
                    .is_some_and(|have| !crate::engine::redis::config_equal(have, want))
            })
            .cloned()
            .collect();
        if !drift.is_empty() {
            cluster_steps.push(&addrs[i], Action::ConfigSet(drift));
        }
    }
    p.steps.extend(cluster_steps.steps);
    Ok(p)
}

/// An entry for a declared address under an id that is not the node's
/// current one, no longer answering: the node restarted with a new id.
fn is_ghost(n: &NodeLine, addrs: &[String]) -> bool {
    !n.is_transient()
        && (n.failed() || n.pfailed() || !n.connected)
        && (n.addr.is_empty() || addrs.contains(&n.addr))
}

fn push_slot(v: &mut Vec<SlotRange>, s: u16) {
    match v.last_mut() {
        Some(r) if r.end + 1 == s => r.end = s,
        _ => v.push(SlotRange { start: s, end: s }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::redis::cluster::observe::NodeObs;
    use crate::topology::{builtin, Topology};

    fn spec() -> RedisClusterSpec {
        match builtin("redis-cluster").unwrap() {
            Topology::RedisCluster(s) => s,
            _ => unreachable!("the redis-cluster built-in is a redis-cluster"),
        }
    }

    /// One node of a synthetic cluster: (port, id, master id or "-", epoch, slots).
    type Desc<'a> = (u16, &'a str, &'a str, u64, &'a str);

    /// Views where every node knows every node in `desc` (as each would
    /// after convergence); `known` limits which ports each node knows.
    fn views(desc: &[Desc], known: impl Fn(u16, u16) -> bool, link_up: bool) -> Observed {
        let nodes = desc
            .iter()
            .map(|(port, id, master, epoch, slots)| {
                let mut text = String::new();
                for (p, i, m, e, s) in desc {
                    if p != port && !known(*port, *p) {
                        continue;
                    }
                    let role = if *m == "-" { "master" } else { "slave" };
                    let flags = if p == port {
                        format!("myself,{role}")
                    } else {
                        role.to_string()
                    };
                    text.push_str(&format!(
                        "{i} 127.0.0.1:{p}@{} {flags} {m} 0 0 {e} connected {s}\n",
                        p + 10000
                    ));
                }
                let mut info: HashMap<String, String> =
                    [("cluster_enabled".to_string(), "1".to_string())].into();
                if *master != "-" {
                    info.insert(
                        "master_link_status".into(),
                        if link_up { "up" } else { "down" }.into(),
                    );
                }
                let view = NodeView {
                    nodes: crate::engine::redis::cluster::nodes::parse(&text).unwrap(),
                    cluster: [("cluster_state".to_string(), "ok".to_string())].into(),
                    info,
                    keys: 0,
                    config: [
                        ("cluster-node-timeout".to_string(), "5000".to_string()),
                        ("appendonly".to_string(), "yes".to_string()),
                    ]
                    .into(),
                };
                let _ = (id, epoch, slots);
                NodeObs {
                    addr: format!("127.0.0.1:{port}"),
                    process: Process::Running(1),
                    view: Ok(view),
                }
            })
            .collect();
        Observed { nodes }
    }

    const HEALTHY: &[Desc] = &[
        (7000, "a0", "-", 1, "0-5460"),
        (7001, "a1", "-", 2, "5461-10922"),
        (7002, "a2", "-", 3, "10923-16383"),
        (7003, "a3", "a0", 4, ""),
        (7004, "a4", "a1", 5, ""),
        (7005, "a5", "a2", 6, ""),
    ];

    fn actions(p: &Plan<Action>) -> Vec<String> {
        p.steps
            .iter()
            .map(|s| format!("{} {}", s.target, s.action))
            .collect()
    }

    #[test]
    fn a_converged_cluster_needs_nothing() {
        let p = plan(&spec(), &views(HEALTHY, |_, _| true, true), false).unwrap();
        assert!(p.is_empty(), "{:?}", actions(&p));
    }

    #[test]
    fn fresh_nodes_get_the_full_bootstrap_in_order() {
        let fresh: Vec<Desc> = (0..6)
            .map(|i| {
                (
                    7000 + i,
                    ["f0", "f1", "f2", "f3", "f4", "f5"][i as usize],
                    "-",
                    0,
                    "",
                )
            })
            .collect();
        let obs = views(&fresh, |_, _| false, false);
        let p = plan(&spec(), &obs, false).unwrap();
        let a = actions(&p);
        assert!(
            a[0].starts_with("cluster CONFIG SET cluster-node-timeout 500"),
            "{a:#?}"
        );
        assert_eq!(
            a.iter().filter(|s| s.contains("SET-CONFIG-EPOCH")).count(),
            6
        );
        assert!(
            a.contains(&"127.0.0.1:7001 CLUSTER ADDSLOTSRANGE 5461-10922 (5462 slots)".to_string()),
            "{a:#?}"
        );
        // Full mesh with each pair met once: 5 + 4 + 3 + 2 + 1 targets.
        let meets: usize = p
            .steps
            .iter()
            .map(|s| {
                if let Action::Meet(t) = &s.action {
                    t.len()
                } else {
                    0
                }
            })
            .sum();
        assert_eq!(meets, 15);
        assert!(
            a.contains(&"127.0.0.1:7004 CLUSTER REPLICATE <id of 127.0.0.1:7001>".to_string()),
            "{a:#?}"
        );
        let last: Vec<&str> = p
            .steps
            .iter()
            .rev()
            .take(3)
            .map(|s| s.target.as_str())
            .collect();
        assert_eq!(last, ["cluster"; 3]);
        assert!(matches!(
            p.steps.last().unwrap().action,
            Action::RestoreSettings { .. }
        ));
        // Epochs are distinct and set before any MEET.
        let first_meet = p
            .steps
            .iter()
            .position(|s| matches!(s.action, Action::Meet(_)))
            .unwrap();
        let last_epoch = p
            .steps
            .iter()
            .rposition(|s| matches!(s.action, Action::SetConfigEpoch(_)))
            .unwrap();
        assert!(last_epoch < first_meet);
    }

    #[test]
    fn after_a_failover_the_new_master_is_accepted() {
        let failed_over: &[Desc] = &[
            (7000, "a0", "a3", 1, ""),
            (7001, "a1", "-", 2, "5461-10922"),
            (7002, "a2", "-", 3, "10923-16383"),
            (7003, "a3", "-", 7, "0-5460"),
            (7004, "a4", "a1", 5, ""),
            (7005, "a5", "a2", 6, ""),
        ];
        let p = plan(&spec(), &views(failed_over, |_, _| true, true), false).unwrap();
        assert!(p.is_empty(), "{:?}", actions(&p));
    }

    #[test]
    fn a_restarted_old_master_with_a_stale_claim_is_waited_for() {
        let stale: &[Desc] = &[
            (7000, "a0", "-", 1, "0-5460"),
            (7001, "a1", "-", 2, "5461-10922"),
            (7002, "a2", "-", 3, "10923-16383"),
            (7003, "a3", "-", 7, "0-5460"),
            (7004, "a4", "a1", 5, ""),
            (7005, "a5", "a2", 6, ""),
        ];
        let p = plan(&spec(), &views(stale, |_, _| true, true), false).unwrap();
        assert_eq!(actions(&p), ["cluster wait until all 6 nodes report cluster_state:ok and agree on members, roles and slots"]);
    }

    #[test]
    fn slots_on_the_wrong_group_are_refused() {
        let wrong: &[Desc] = &[
            (7000, "a0", "-", 1, "0-5400"),
            (7001, "a1", "-", 2, "5401-10922"),
            (7002, "a2", "-", 3, "10923-16383"),
            (7003, "a3", "a0", 4, ""),
            (7004, "a4", "a1", 5, ""),
            (7005, "a5", "a2", 6, ""),
        ];
        let e = plan(&spec(), &views(wrong, |_, _| true, true), false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("60 slot(s) are served by a node other than the declared one")
                && e.contains("nothing was changed"),
            "{e}"
        );
    }

    #[test]
    fn foreign_members_are_refused_unless_forced() {
        let mut obs = views(HEALTHY, |_, _| true, true);
        let v = obs.nodes[5].view.as_mut().unwrap();
        v.nodes.push(
            crate::engine::redis::cluster::nodes::parse(
                "zz 10.9.9.9:7000@17000 master - 0 0 9 connected\n",
            )
            .unwrap()
            .remove(0),
        );
        let e = plan(&spec(), &obs, false).unwrap_err().to_string();
        assert!(
            e.contains("127.0.0.1:7005 belongs to another cluster (knows 10.9.9.9:7000)")
                && e.contains("--force"),
            "{e}"
        );
        let p = plan(&spec(), &obs, true).unwrap();
        assert!(
            matches!(p.steps[0].action, Action::Reset { .. })
                && p.steps[0].target == "127.0.0.1:7005"
        );
    }

    #[test]
    fn ghosts_of_restarted_nodes_are_forgotten_and_the_new_id_replicates() {
        let mut obs = views(HEALTHY, |_, _| true, true);
        // 7005 came back with an empty data dir: new id, knows only itself.
        obs.nodes[5] = views(&[(7005, "n5", "-", 0, "")], |_, _| false, false)
            .nodes
            .remove(0);
        for v in obs.nodes[..5].iter_mut() {
            let v = v.view.as_mut().unwrap();
            for l in v.nodes.iter_mut().filter(|l| l.id == "a5") {
                l.flags.push("fail".into());
                l.connected = false;
            }
        }
        let a = actions(&plan(&spec(), &obs, false).unwrap());
        assert!(
            a.contains(
                &"127.0.0.1:7000 CLUSTER FORGET a5 (stale ids of restarted nodes)".to_string()
            ),
            "{a:#?}"
        );
        assert!(
            a.iter()
                .any(|s| s.starts_with("127.0.0.1:7005 CLUSTER SET-CONFIG-EPOCH 7")),
            "{a:#?}"
        );
        assert!(
            a.contains(&"127.0.0.1:7005 CLUSTER REPLICATE <id of 127.0.0.1:7002>".to_string()),
            "{a:#?}"
        );
    }

    #[test]
    fn unreachable_and_stopped_nodes() {
        let mut obs = views(HEALTHY, |_, _| true, true);
        obs.nodes[2].view = Err("connection refused".into());
        let e = plan(&spec(), &obs, false).unwrap_err().to_string();
        assert!(
            e.contains("127.0.0.1:7002 is unreachable (connection refused); nothing was changed"),
            "{e}"
        );
        obs.nodes[2].process = Process::Stopped { has_state: true };
        let a = actions(&plan(&spec(), &obs, false).unwrap());
        assert_eq!(
            a,
            [
                "127.0.0.1:7002 start redis-server (rejoins its cluster from nodes.conf)",
                "cluster observe again once the restarted nodes answer, then plan the rest"
            ]
        );
    }

    #[test]
    fn a_lost_replica_link_and_a_changed_setting_are_planned() {
        let mut obs = views(HEALTHY, |_, _| true, false);
        obs.nodes[1]
            .view
            .as_mut()
            .unwrap()
            .config
            .insert("appendonly".into(), "no".into());
        let a = actions(&plan(&spec(), &obs, false).unwrap());
        assert_eq!(
            a,
            [
                "cluster wait until all 3 replicas finished their initial sync (master_link_status:up)",
                "127.0.0.1:7001 CONFIG SET appendonly yes + CONFIG REWRITE"
            ]
        );
    }
}
