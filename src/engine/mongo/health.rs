//! Health checks for a MongoDB sharded cluster, from one observation.
//! Every node is judged; an unreachable member is a finding, and the other
//! checks go on with what the remaining nodes say.
//!
//! | check              | what                                                        |
//! |--------------------|-------------------------------------------------------------|
//! | member_reachable   | each mongod answers                                         |
//! | cluster_role       | started with --configsvr / --shardsvr and the declared set   |
//! | rs_initiated       | the set has a config                                        |
//! | rs_primary         | exactly one primary                                         |
//! | rs_majority        | healthy voting members (all: OK, a majority: WARNING)       |
//! | rs_members         | the set's config holds the declared members and options     |
//! | mongos_reachable   | each mongos answers                                         |
//! | catalog            | a mongos can read the catalog                               |
//! | shards_registered  | listShards holds every declared shard, and nothing else     |
//! | collection_sharded | each declared collection is sharded on the declared key     |
//! | chunk_size         | config.settings chunksize as declared                       |
//! | balancer_window    | activeWindow as declared (config primary's local time)      |
//! | balancer_mode      | balancerStatus mode as declared                             |
//! | distribution       | chunks / data per shard; imbalance beyond the balancer's own thresholds |
//! | jumbo_chunks       | chunks flagged jumbo (too big to move)                      |
//! | versions           | every node runs the same major.minor version                |

use super::conn::parse_version;
use super::observe::{ClusterView, MemberObs, Observed, Process, SetObs};
use crate::health::Finding;
use crate::report::{Metric, NodeStatus, StatusReport};
use crate::topology::mongo::{key_doc_to_string, MongoShardedSpec, ReplicaSetSpec, SetRole};
use std::collections::BTreeMap;

/// MongoDB's default chunk (range) size when `chunksize` is not set (6.0+).
const DEFAULT_CHUNK_MB: i64 = 128;

pub fn report(spec: &MongoShardedSpec, obs: &Observed) -> StatusReport {
    let mut f: Vec<Finding> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let mut metrics: Vec<Metric> = Vec::new();
    let mut nodes: Vec<NodeStatus> = Vec::new();

    for (set, so) in spec.sets().zip(&obs.sets) {
        check_set(set, so, &mut f, &mut nodes, &mut metrics);
    }

    // Routers.
    let mut routers_up = 0;
    for r in &obs.routers {
        let node = Some(r.addr.clone());
        match &r.view {
            Ok(v) => {
                routers_up += 1;
                f.push(Finding::ok("mongos_reachable", node, "answers"));
                nodes.push(
                    NodeStatus::new(&r.addr, "mongos", "up")
                        .detail("set", "")
                        .detail("version", v.version.clone().unwrap_or_default()),
                );
            }
            Err(e) => {
                let msg = if matches!(r.process, Process::Stopped { .. }) {
                    "not running (started by datatier; `datatier init` starts it again)".to_string()
                } else {
                    format!("unreachable: {e}")
                };
                f.push(Finding::warn("mongos_reachable", node, msg));
                nodes.push(NodeStatus::new(&r.addr, "mongos", "unreachable"));
            }
        }
    }
    if routers_up == 0 {
        // No router at all: applications cannot reach the cluster.
        for x in f.iter_mut().filter(|x| x.check == "mongos_reachable") {
            x.severity = crate::health::Severity::Critical;
        }
    }

    match &obs.cluster {
        None => f.push(Finding::crit(
            "catalog",
            None,
            "no mongos answered; shard, collection and balancer checks skipped",
        )),
        Some(Err(e)) => f.push(Finding::crit(
            "catalog",
            None,
            format!("the mongos cannot read the cluster catalog: {e}"),
        )),
        Some(Ok(cv)) => {
            f.push(Finding::ok(
                "catalog",
                None,
                format!("read through mongos {}", cv.via),
            ));
            check_cluster(spec, obs, cv, &mut f, &mut notes, &mut metrics);
        }
    }

    // Versions.
    let mut versions: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for so in &obs.sets {
        for m in &so.members {
            if let Some(v) = m.view().and_then(|v| v.version.clone()) {
                versions
                    .entry(major_minor(&v))
                    .or_default()
                    .push(m.addr.clone());
            }
        }
    }
    if versions.len() > 1 {
        let list: Vec<String> = versions
            .iter()
            .map(|(v, a)| format!("{v} on {}", a.join(", ")))
            .collect();
        f.push(Finding::warn(
            "versions",
            None,
            format!("mixed server versions: {} (finish the upgrade, then setFeatureCompatibilityVersion)", list.join("; ")),
        ));
    } else if let Some(v) = versions.keys().next() {
        f.push(Finding::ok(
            "versions",
            None,
            format!("every mongod runs {v}"),
        ));
    }

    let mut r = StatusReport::new(&spec.meta.name, spec.meta.kind.as_str(), nodes, f);
    r.metrics = metrics;
    r.notes = notes;
    r
}

fn major_minor(v: &str) -> String {
    match parse_version(v) {
        Some((a, b, _)) => format!("{a}.{b}"),
        None => v.to_string(),
    }
}

fn role_label(set: &ReplicaSetSpec) -> String {
    match set.role {
        SetRole::Config => "config".to_string(),
        SetRole::Shard => format!("shard {}", set.name),
    }
}

fn check_set(
    set: &ReplicaSetSpec,
    so: &SetObs,
    f: &mut Vec<Finding>,
    nodes: &mut Vec<NodeStatus>,
    metrics: &mut Vec<Metric>,
) {
    let label = role_label(set);
    for m in &so.members {
        member_findings(set, m, f);
        let (state, version) = match &m.view {
            Ok(v) => (v.state_str(), v.version.clone().unwrap_or_default()),
            Err(_) if matches!(m.process, Process::Stopped { .. }) => {
                ("not running".to_string(), String::new())
            }
            Err(_) => ("unreachable".to_string(), String::new()),
        };
        let mut ns = NodeStatus::new(&m.addr, &label, state)
            .detail("set", set.name.clone())
            .detail("version", version);
        if let Some(d) = set.member(&m.addr) {
            let mut flags = Vec::new();
            if d.arbiter {
                flags.push("arbiter".to_string());
            }
            if d.hidden {
                flags.push("hidden".to_string());
            }
            if d.priority != 1.0 && !d.arbiter {
                flags.push(format!("priority {}", d.priority));
            }
            if d.votes == 0 {
                flags.push("non-voting".to_string());
            }
            if !flags.is_empty() {
                ns = ns.detail("member", flags.join(", "));
            }
        }
        nodes.push(ns);
    }

    let node = Some(set.name.clone());
    let views: Vec<&MemberObs> = so.members.iter().filter(|m| m.view().is_some()).collect();
    if views.is_empty() {
        f.push(Finding::crit("rs_primary", node, "no member answers"));
        return;
    }
    if !views.iter().any(|m| m.view().unwrap().initiated()) {
        f.push(Finding::crit(
            "rs_initiated",
            node,
            "never initiated (replSetGetStatus: NotYetInitialized); `datatier init` initiates it",
        ));
        return;
    }
    f.push(Finding::ok("rs_initiated", node.clone(), "initiated"));

    let primaries: Vec<&str> = views
        .iter()
        .filter(|m| m.view().unwrap().is_primary())
        .map(|m| m.addr.as_str())
        .collect();
    match primaries.as_slice() {
        [p] => f.push(Finding::ok("rs_primary", node.clone(), format!("primary {p}"))),
        [] => f.push(Finding::crit(
            "rs_primary",
            node.clone(),
            "no primary: writes to this set fail (an election in progress, or too few voting members up)",
        )),
        many => f.push(Finding::crit(
            "rs_primary",
            node.clone(),
            format!("{} members claim to be primary: {}", many.len(), many.join(", ")),
        )),
    }

    // Majority, from the primary's view (else any initiated member's).
    let reference = so
        .primary()
        .or_else(|| {
            views
                .iter()
                .copied()
                .find(|m| m.view().unwrap().initiated())
        })
        .and_then(|m| m.view());
    if let Some(rv) = reference {
        let cfg = rv.config_members();
        let status = rv.status_members();
        let voters: Vec<&str> = cfg
            .iter()
            .filter(|c| c.votes > 0)
            .map(|c| c.host.as_str())
            .collect();
        let healthy: Vec<&str> = voters
            .iter()
            .copied()
            .filter(|h| {
                status.iter().any(|(n, ok, st)| {
                    n == h && *ok && ["PRIMARY", "SECONDARY", "ARBITER"].contains(&st.as_str())
                })
            })
            .collect();
        let majority = voters.len() / 2 + 1;
        let down: Vec<String> = voters
            .iter()
            .filter(|h| !healthy.contains(h))
            .map(|h| {
                let st = status
                    .iter()
                    .find(|(n, _, _)| n == h)
                    .map(|(_, _, s)| s.as_str())
                    .unwrap_or("?");
                format!("{h} ({st})")
            })
            .collect();
        metrics.push(Metric::new(
            "mongo_rs_healthy_voting_members",
            "Healthy voting members of a replica set (PRIMARY, SECONDARY or ARBITER).",
            &[("set", &set.name)],
            healthy.len() as f64,
        ));
        metrics.push(Metric::new(
            "mongo_rs_voting_members",
            "Voting members in a replica set's config.",
            &[("set", &set.name)],
            voters.len() as f64,
        ));
        if healthy.len() == voters.len() {
            f.push(Finding::ok(
                "rs_majority",
                node.clone(),
                format!("all {} voting members healthy", voters.len()),
            ));
        } else if healthy.len() >= majority {
            f.push(Finding::warn(
                "rs_majority",
                node.clone(),
                format!(
                    "{} of {} voting members healthy (majority {majority} holds); not healthy: {}",
                    healthy.len(),
                    voters.len(),
                    down.join(", ")
                ),
            ));
        } else {
            f.push(Finding::crit(
                "rs_majority",
                node.clone(),
                format!(
                    "only {} of {} voting members healthy, majority is {majority}: no primary can be elected and majority writes fail; not healthy: {}",
                    healthy.len(),
                    voters.len(),
                    down.join(", ")
                ),
            ));
        }

        // Declared members vs the set's config.
        let mut problems = Vec::new();
        for m in &set.members {
            match cfg.iter().find(|c| c.host == m.addr()) {
                None => problems.push(format!(
                    "{} is declared but not in the set's config",
                    m.addr()
                )),
                Some(c) => {
                    if c.arbiter != m.arbiter {
                        problems.push(format!(
                            "{} is {} in the config",
                            m.addr(),
                            if c.arbiter {
                                "an arbiter"
                            } else {
                                "not an arbiter"
                            }
                        ));
                    } else if c.priority != m.priority
                        || c.hidden != m.hidden
                        || c.votes != m.votes as i64
                    {
                        problems.push(format!(
                            "{} has priority {} votes {} hidden {} in the config, declared priority {} votes {} hidden {}",
                            m.addr(), c.priority, c.votes, c.hidden, m.priority, m.votes, m.hidden
                        ));
                    }
                }
            }
        }
        for c in &cfg {
            if set.member(&c.host).is_none() {
                problems.push(format!(
                    "{} is in the set's config but not declared",
                    c.host
                ));
            }
        }
        if rv.configsvr_config() != (set.role == SetRole::Config) {
            f.push(Finding::crit(
                "rs_members",
                node.clone(),
                if set.role == SetRole::Config {
                    "the config server set was initiated without configsvr: true"
                } else {
                    "this shard's set was initiated with configsvr: true"
                },
            ));
        }
        if problems.is_empty() {
            f.push(Finding::ok(
                "rs_members",
                node,
                format!(
                    "config v{} holds the {} declared members",
                    rv.config_version(),
                    set.members.len()
                ),
            ));
        } else {
            f.push(Finding::warn(
                "rs_members",
                node,
                format!(
                    "{} (`datatier init` reconfigures declared members)",
                    problems.join("; ")
                ),
            ));
        }
    }
}

fn member_findings(set: &ReplicaSetSpec, m: &MemberObs, f: &mut Vec<Finding>) {
    let node = Some(m.addr.clone());
    match &m.view {
        Err(_) if matches!(m.process, Process::Stopped { .. }) => f.push(Finding::warn(
            "member_reachable",
            node,
            "not running (started by datatier; `datatier init` starts it again)",
        )),
        Err(e) => f.push(Finding::warn(
            "member_reachable",
            node,
            format!("unreachable: {e}"),
        )),
        Ok(v) => {
            f.push(Finding::ok("member_reachable", node.clone(), "answers"));
            let mut wrong = Vec::new();
            if let Some(r) = v.repl_set_option() {
                if r != set.name {
                    wrong.push(format!(
                        "started with --replSet {r}, declared in {}",
                        set.name
                    ));
                }
            }
            if v.cmdline.is_some() && v.cluster_role() != Some(set.role.cluster_role()) {
                wrong.push(format!(
                    "started {}, needs --{}",
                    v.cluster_role()
                        .map(|r| format!("as {r}"))
                        .unwrap_or_else(|| "without a cluster role".into()),
                    set.role.cluster_role()
                ));
            }
            if let Some(n) = v.set_name() {
                if n != set.name {
                    wrong.push(format!("belongs to replica set {n}"));
                }
            }
            if wrong.is_empty() {
                if v.cmdline.is_some() {
                    f.push(Finding::ok(
                        "cluster_role",
                        node,
                        format!("--{} --replSet {}", set.role.cluster_role(), set.name),
                    ));
                }
            } else {
                f.push(Finding::crit("cluster_role", node, wrong.join("; ")));
            }
        }
    }
}

fn check_cluster(
    spec: &MongoShardedSpec,
    obs: &Observed,
    cv: &ClusterView,
    f: &mut Vec<Finding>,
    notes: &mut Vec<String>,
    metrics: &mut Vec<Metric>,
) {
    // Shards.
    for s in &spec.shards {
        let node = Some(s.name.clone());
        match cv.shards.iter().find(|e| e.id == s.name) {
            None => f.push(Finding::crit(
                "shards_registered",
                node,
                "not registered (listShards); `datatier init` adds it",
            )),
            Some(e) if e.set_name() != s.name => f.push(Finding::crit(
                "shards_registered",
                node,
                format!("registered with host \"{}\" (another replica set)", e.host),
            )),
            Some(e) if e.draining => f.push(Finding::warn(
                "shards_registered",
                node,
                format!(
                    "registered as \"{}\" but draining (removeShard in progress)",
                    e.host
                ),
            )),
            Some(e) => f.push(Finding::ok(
                "shards_registered",
                node,
                format!("registered as \"{}\"", e.host),
            )),
        }
    }
    for e in &cv.shards {
        if !spec.shards.iter().any(|s| s.name == e.id) {
            f.push(Finding::warn(
                "shards_registered",
                Some(e.id.clone()),
                format!("registered (\"{}\") but not declared", e.host),
            ));
        }
    }
    metrics.push(Metric::new(
        "mongo_shards_registered",
        "Shards in listShards.",
        &[],
        cv.shards.len() as f64,
    ));

    // Collections, chunks, distribution.
    let chunk_mb = cv
        .chunk_size_mb()
        .or(spec.chunk_size_mb.map(|m| m as i64))
        .unwrap_or(DEFAULT_CHUNK_MB);
    for c in &spec.collections {
        let ns = c.ns();
        let node = Some(ns.clone());
        let Some(e) = cv.collections.get(&ns) else {
            let docs = cv.unsharded.get(&ns).map(|u| u.docs).unwrap_or(0);
            f.push(Finding::crit(
                "collection_sharded",
                node,
                format!("not sharded ({docs} document(s) on its primary shard); `datatier init` shards it on {}", c.key),
            ));
            continue;
        };
        if !c.key.matches(&e.key) {
            f.push(Finding::crit(
                "collection_sharded",
                node.clone(),
                format!(
                    "sharded on {}, declared {}",
                    key_doc_to_string(&e.key),
                    c.key
                ),
            ));
        } else if e.unique != c.unique {
            f.push(Finding::warn(
                "collection_sharded",
                node.clone(),
                format!(
                    "sharded on {} with unique: {}, declared unique: {}",
                    c.key, e.unique, c.unique
                ),
            ));
        } else {
            f.push(Finding::ok(
                "collection_sharded",
                node.clone(),
                format!("sharded on {}", c.key),
            ));
        }
        let stats = cv.chunks.get(&ns).cloned().unwrap_or_default();
        let mut per_shard: BTreeMap<String, u64> =
            spec.shards.iter().map(|s| (s.name.clone(), 0)).collect();
        for (s, n) in &stats.per_shard {
            per_shard.insert(s.clone(), *n);
        }
        for (s, n) in &per_shard {
            metrics.push(Metric::new(
                "mongo_chunks",
                "Chunks of a sharded collection per shard (config.chunks).",
                &[("collection", &ns), ("shard", s)],
                *n as f64,
            ));
        }
        metrics.push(Metric::new(
            "mongo_jumbo_chunks",
            "Chunks flagged jumbo (too big for the balancer to move).",
            &[("collection", &ns)],
            stats.jumbo as f64,
        ));
        let chunk_text: Vec<String> = per_shard.iter().map(|(s, n)| format!("{s} {n}")).collect();
        let total: u64 = per_shard.values().sum();
        let dist = cv.distribution.as_ref().and_then(|d| d.get(&ns));
        let window_hint = if cv.window().is_some() {
            " (the balancer moves chunks only inside its window)"
        } else {
            ""
        };
        match dist {
            Some(d) => {
                for x in d {
                    metrics.push(Metric::new(
                        "mongo_owned_documents",
                        "Documents a shard owns of a collection ($shardedDataDistribution).",
                        &[("collection", &ns), ("shard", &x.shard)],
                        x.owned_docs as f64,
                    ));
                    metrics.push(Metric::new(
                        "mongo_owned_bytes",
                        "Bytes a shard owns of a collection ($shardedDataDistribution).",
                        &[("collection", &ns), ("shard", &x.shard)],
                        x.owned_bytes as f64,
                    ));
                }
                let mut bytes: BTreeMap<String, u64> =
                    per_shard.keys().map(|s| (s.clone(), 0)).collect();
                for x in d {
                    bytes.insert(x.shard.clone(), x.owned_bytes);
                }
                let max = bytes.values().max().copied().unwrap_or(0);
                let min = bytes.values().min().copied().unwrap_or(0);
                let docs: Vec<String> = d
                    .iter()
                    .map(|x| {
                        format!(
                            "{} {} docs / {}",
                            x.shard,
                            x.owned_docs,
                            human_bytes(x.owned_bytes)
                        )
                    })
                    .collect();
                // 6.0.3+: imbalanced when shards differ by more than three ranges' worth.
                let limit = 3 * chunk_mb.max(1) as u64 * 1024 * 1024;
                if max - min > limit {
                    f.push(Finding::warn(
                        "distribution",
                        node.clone(),
                        format!("data imbalance: {} (shards differ by {}, more than 3 x {chunk_mb} MB){window_hint}", docs.join(", "), human_bytes(max - min)),
                    ));
                } else {
                    f.push(Finding::ok(
                        "distribution",
                        node.clone(),
                        format!("{}; chunks: {}", docs.join(", "), chunk_text.join(", ")),
                    ));
                }
            }
            None => {
                let max = per_shard.values().max().copied().unwrap_or(0);
                let min = per_shard.values().min().copied().unwrap_or(0);
                // The balancer's own thresholds before 6.0.3.
                let threshold = if total < 20 {
                    2
                } else if total < 80 {
                    4
                } else {
                    8
                };
                if max - min > threshold {
                    f.push(Finding::warn(
                        "distribution",
                        node.clone(),
                        format!(
                            "chunk imbalance: {} (difference {} > {threshold}){window_hint}",
                            chunk_text.join(", "),
                            max - min
                        ),
                    ));
                } else {
                    f.push(Finding::ok(
                        "distribution",
                        node.clone(),
                        format!("chunks: {}", chunk_text.join(", ")),
                    ));
                }
            }
        }
        if stats.jumbo > 0 {
            f.push(Finding::warn(
                "jumbo_chunks",
                node,
                format!("{} jumbo chunk(s): too big to move; refine the shard key or split them (sh.splitAt) and clear the flag (clearJumboFlag)", stats.jumbo),
            ));
        } else {
            f.push(Finding::ok("jumbo_chunks", node, "no jumbo chunks"));
        }
    }

    // Settings.
    let have_chunk = cv.chunk_size_mb();
    if let Some(c) = have_chunk {
        metrics.push(Metric::new(
            "mongo_chunk_size_mb",
            "config.settings chunksize (MB).",
            &[],
            c as f64,
        ));
    }
    if let Some(want) = spec.chunk_size_mb {
        match have_chunk {
            Some(h) if h == want as i64 => {
                f.push(Finding::ok("chunk_size", None, format!("{h} MB")))
            }
            Some(h) => f.push(Finding::warn(
                "chunk_size",
                None,
                format!("{h} MB, declared {want} MB (`datatier init` sets it)"),
            )),
            None => f.push(Finding::warn(
                "chunk_size",
                None,
                format!("not set (the server default applies: 128 MB on 6.0+, 64 MB before), declared {want} MB"),
            )),
        }
    }
    let config_primary = obs
        .sets
        .first()
        .and_then(|s| s.primary())
        .map(|m| m.addr.clone())
        .unwrap_or_else(|| "no primary right now".to_string());
    let have_window = cv.window();
    if let Some(want) = spec.balancer_window {
        let same = match (&want, &have_window) {
            (None, None) => true,
            (Some(w), Some((s, t))) => w.start.to_string() == *s && w.stop.to_string() == *t,
            _ => false,
        };
        let have_text = have_window
            .as_ref()
            .map(|(s, t)| format!("{s}-{t}"))
            .unwrap_or_else(|| "none (balances any time)".into());
        let want_text = want.map(|w| w.to_string()).unwrap_or_else(|| "none".into());
        if same {
            f.push(Finding::ok(
                "balancer_window",
                None,
                format!("{have_text} (config primary's local time)"),
            ));
        } else {
            f.push(Finding::warn(
                "balancer_window",
                None,
                format!("{have_text}, declared {want_text} (`datatier init` sets it)"),
            ));
        }
    }
    if let Some((s, t)) = &have_window {
        notes.push(format!(
            "the balancer window {s}-{t} is evaluated in the local time of the config server primary ({config_primary}), not in UTC nor this machine's time zone"
        ));
    }
    match (&cv.balancer, spec.balancer) {
        (Ok(b), want) => {
            let mode = b.get_str("mode").unwrap_or("?");
            let running = b.get_bool("inBalancerRound").unwrap_or(false);
            metrics.push(Metric::new(
                "mongo_balancer_enabled",
                "1 when the balancer mode is full.",
                &[],
                if mode == "full" { 1.0 } else { 0.0 },
            ));
            let text = format!(
                "mode {mode}{}",
                if running {
                    ", in a balancing round"
                } else {
                    ""
                }
            );
            match want {
                Some(on) if (mode == "full") != on => f.push(Finding::warn(
                    "balancer_mode",
                    None,
                    format!(
                        "{text}, declared {} (`datatier init` sets it)",
                        if on { "on (full)" } else { "off" }
                    ),
                )),
                _ => f.push(Finding::ok("balancer_mode", None, text)),
            }
        }
        (Err(e), _) => f.push(Finding::warn(
            "balancer_mode",
            None,
            format!("balancerStatus failed: {e}"),
        )),
    }
}

fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::mongo::observe::{ChunkStats, ShardData};
    use crate::health::Severity;

    fn spec() -> MongoShardedSpec {
        match crate::topology::builtin("mongo-sharded").unwrap() {
            crate::topology::Topology::MongoSharded(s) => s,
            _ => unreachable!(),
        }
    }

    fn finding<'a>(r: &'a StatusReport, check: &str, node: Option<&str>) -> &'a Finding {
        r.findings
            .iter()
            .find(|f| f.check == check && f.node.as_deref() == node)
            .unwrap_or_else(|| panic!("no {check} {node:?} in {:#?}", r.findings))
    }

    #[test]
    fn a_converged_cluster_is_ok_and_says_where_the_window_is_evaluated() {
        let s = spec();
        let o = crate::engine::mongo::plan::tests_support::converged(&s);
        let r = report(&s, &o);
        assert_eq!(r.status, Severity::Ok, "{:#?}", r.findings);
        assert!(
            r.notes[0].contains("02:00-06:00 is evaluated in the local time of the config server primary (127.0.0.1:27101)"),
            "{:?}",
            r.notes
        );
        assert_eq!(r.nodes.len(), 10);
        assert_eq!(r.nodes[0].role, "config");
        assert_eq!(r.nodes[0].state, "PRIMARY");
    }

    #[test]
    fn findings_for_drift_and_damage() {
        let s = spec();
        let mut o = crate::engine::mongo::plan::tests_support::converged(&s);
        let Some(Ok(cv)) = &mut o.cluster else {
            unreachable!()
        };
        cv.shards.retain(|e| e.id != "shard2");
        cv.settings.insert(
            "chunksize".into(),
            bson::doc! {"_id": "chunksize", "value": 128},
        );
        cv.chunks.insert(
            "credibility_prod.analyses".into(),
            ChunkStats {
                per_shard: [("shard1".to_string(), 9u64)].into_iter().collect(),
                jumbo: 2,
            },
        );
        // a secondary of shard1 down
        o.sets[1].members[2].view = Err("connection refused".into());
        let r = report(&s, &o);
        assert_eq!(r.status, Severity::Critical);
        assert_eq!(
            finding(&r, "shards_registered", Some("shard2")).severity,
            Severity::Critical
        );
        let c = finding(&r, "chunk_size", None);
        assert_eq!(c.severity, Severity::Warning);
        assert_eq!(
            c.message,
            "128 MB, declared 64 MB (`datatier init` sets it)"
        );
        let d = finding(&r, "distribution", Some("credibility_prod.analyses"));
        assert_eq!(d.severity, Severity::Warning);
        assert!(
            d.message.starts_with("chunk imbalance: shard1 9, shard2 0"),
            "{}",
            d.message
        );
        assert_eq!(
            finding(&r, "jumbo_chunks", Some("credibility_prod.analyses")).severity,
            Severity::Warning
        );
        let m = finding(&r, "member_reachable", Some("127.0.0.1:27203"));
        assert_eq!(m.severity, Severity::Warning);
        assert!(r
            .metrics
            .iter()
            .any(|m| m.name == "mongo_chunks" && m.value == 9.0));
    }

    #[test]
    fn data_distribution_on_new_servers() {
        let s = spec();
        let mut o = crate::engine::mongo::plan::tests_support::converged(&s);
        let Some(Ok(cv)) = &mut o.cluster else {
            unreachable!()
        };
        let mb = 1024 * 1024;
        cv.distribution = Some(
            [(
                "credibility_prod.analyses".to_string(),
                vec![
                    ShardData {
                        shard: "shard1".into(),
                        owned_docs: 10,
                        owned_bytes: 500 * mb,
                        orphaned_docs: 0,
                    },
                    ShardData {
                        shard: "shard2".into(),
                        owned_docs: 1,
                        owned_bytes: 10 * mb,
                        orphaned_docs: 0,
                    },
                ],
            )]
            .into_iter()
            .collect(),
        );
        let r = report(&s, &o);
        let d = finding(&r, "distribution", Some("credibility_prod.analyses"));
        assert_eq!(d.severity, Severity::Warning, "{}", d.message);
        assert!(d.message.contains("more than 3 x 64 MB"), "{}", d.message);
        assert!(
            d.message.contains("only inside its window"),
            "{}",
            d.message
        );
    }

    #[test]
    fn a_set_without_majority_is_critical() {
        let s = spec();
        let mut o = crate::engine::mongo::plan::tests_support::converged(&s);
        if let Ok(v) = &mut o.sets[2].members[0].view {
            v.status = Ok(bson::doc! {"set": "shard2", "members": [
                {"name": "127.0.0.1:27301", "health": 1.0, "stateStr": "PRIMARY"},
                {"name": "127.0.0.1:27302", "health": 0.0, "stateStr": "(not reachable/healthy)"},
                {"name": "127.0.0.1:27303", "health": 0.0, "stateStr": "(not reachable/healthy)"},
            ]});
        }
        let r = report(&s, &o);
        let m = finding(&r, "rs_majority", Some("shard2"));
        assert_eq!(m.severity, Severity::Critical);
        assert!(
            m.message
                .starts_with("only 1 of 3 voting members healthy, majority is 2"),
            "{}",
            m.message
        );
    }
}
