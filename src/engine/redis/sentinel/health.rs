//! Health checks for a sentinel-managed set, from one observation. Every
//! node is judged; a node that does not answer is a finding (CRITICAL when
//! it is the master), and the other checks go on with what the remaining
//! nodes say.

use super::converge::{current_master, max_epoch, MasterSource};
use super::observe::{bad_flags, entry_addr, DataView, Observed, Process};
use crate::health::Finding;
use crate::report::{Metric, NodeStatus, StatusReport};
use crate::topology::redis_sentinel::RedisSentinelSpec;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// Columns of the node table, in order (every row has every key, so the
/// table's columns and the JSON's fields are stable).
const COLUMNS: &[&str] = &[
    "master", "link", "offset", "lag", "keys", "epoch", "sees", "quorum",
];

fn not_running_or(e: &str, p: Process) -> String {
    match p {
        Process::Stopped { .. } => {
            "not running (started by datatier; `datatier init` starts it again)".to_string()
        }
        _ => format!("unreachable: {e}"),
    }
}

/// Replication lag of a replica: bytes behind the master's offset, and
/// seconds since its last acknowledgement (as the master counts them).
///
/// The seconds come from the master's `lag=` for the replica, not from the
/// replica's `master_last_io_seconds_ago`: replicas acknowledge every
/// second, while an idle master only pings them every
/// `repl-ping-replica-period` (10 s), so the latter grows to 10 on a
/// perfectly healthy idle link. It is reported alongside (`last_io`), and
/// used only when the master does not list the replica.
pub struct Lag {
    pub bytes: u64,
    pub seconds: u64,
    pub last_io: Option<u64>,
}

pub fn lag(master: &DataView, replica: &DataView, replica_ip: &str) -> Option<Lag> {
    let mo = master.offset()?;
    let ro = replica.offset()?;
    let last_io: Option<u64> = replica
        .get("master_last_io_seconds_ago")
        .and_then(|v| v.parse().ok());
    let seconds = master
        .attached()
        .into_iter()
        .find(|a| a.addr == replica_ip)
        .map(|a| a.lag)
        .or(last_io)?;
    Some(Lag {
        bytes: mo.saturating_sub(ro),
        seconds,
        last_io,
    })
}

pub fn report(spec: &RedisSentinelSpec, obs: &Observed) -> StatusReport {
    let mut f: Vec<Finding> = Vec::new();
    let mut notes = Vec::new();
    let mut metrics = Vec::new();

    for w in &spec.warnings {
        f.push(Finding::warn("layout", None, w.to_string()));
    }

    let cm = current_master(spec, obs);
    let m = cm.index;
    let master_obs = m.map(|i| &obs.data[i]);
    let master_view = master_obs.and_then(|d| d.view());

    // The master.
    match (m, master_obs) {
        (None, _) => f.push(Finding::crit(
            "master",
            None,
            format!(
                "{} name {} as the master, which is not a data node of this topology",
                cm.source, cm.addr
            ),
        )),
        (Some(i), Some(d)) => {
            let who = match cm.source {
                MasterSource::Sentinels => {
                    format!("per {} of {} answering sentinels", cm.votes, cm.answered)
                }
                other => format!("per {other}; no sentinel answers"),
            };
            match &d.view {
                Err(e) => f.push(Finding::crit(
                    "master",
                    Some(d.addr.clone()),
                    format!(
                        "the master ({who}) is down: {}; the sentinels promote a replica once down-after-milliseconds ({} ms) pass and a quorum agrees",
                        not_running_or(e, d.process),
                        spec.down_after_ms
                    ),
                )),
                Ok(v) if !v.is_master() => f.push(Finding::crit(
                    "master",
                    Some(d.addr.clone()),
                    format!(
                        "named as the master ({who}) but reports role:{} of {}",
                        v.get("role").unwrap_or("?"),
                        obs.name_of(&v.master_addr().unwrap_or_default())
                    ),
                )),
                Ok(_) => {
                    let moved = if i != 0 {
                        format!("; a failover happened (declared master {})", spec.master)
                    } else {
                        String::new()
                    };
                    f.push(Finding::ok(
                        "master",
                        Some(d.addr.clone()),
                        format!("is the master ({who}){moved}"),
                    ));
                    if i != 0 {
                        notes.push(format!(
                            "a failover happened: the master is now {} (declared {}); `datatier init` keeps it that way",
                            d.addr, spec.master
                        ));
                    }
                }
            }
        }
        _ => unreachable!(),
    }

    // Data nodes.
    for (i, d) in obs.data.iter().enumerate() {
        let node = Some(d.addr.clone());
        let is_master = Some(i) == m;
        let v = match &d.view {
            Err(e) => {
                if !is_master {
                    f.push(Finding::warn(
                        "node_reachable",
                        node,
                        format!(
                            "{} (a replica: redundancy is reduced)",
                            not_running_or(e, d.process)
                        ),
                    ));
                } else {
                    f.push(Finding::crit(
                        "node_reachable",
                        node,
                        not_running_or(e, d.process),
                    ));
                }
                continue;
            }
            Ok(v) => v,
        };
        f.push(Finding::ok("node_reachable", node.clone(), "answers"));
        if is_master {
            continue;
        }
        if v.is_master() {
            f.push(Finding::crit(
                "replica_link",
                node,
                format!(
                    "is a master too, not a replica of {}: writes sent to it will be lost (`datatier init` makes it a replica)",
                    master_obs.map(|d| d.addr.as_str()).unwrap_or("?")
                ),
            ));
            continue;
        }
        let follows = master_obs
            .is_some_and(|mo| v.master_addr().is_some_and(|a| a == mo.ip || a == mo.addr));
        if !follows {
            f.push(Finding::warn(
                "replica_link",
                node,
                format!(
                    "replicates {}, not the master{}",
                    obs.name_of(&v.master_addr().unwrap_or_default()),
                    master_obs
                        .map(|d| format!(" {}", d.addr))
                        .unwrap_or_default()
                ),
            ));
            continue;
        }
        if !v.link_up() {
            f.push(Finding::warn(
                "replica_link",
                node,
                format!(
                    "master_link_status:{}{}",
                    v.get("master_link_status").unwrap_or("?"),
                    if v.get("master_sync_in_progress") == Some("1") {
                        " (initial sync in progress)"
                    } else {
                        ""
                    }
                ),
            ));
            continue;
        }
        f.push(Finding::ok(
            "replica_link",
            node.clone(),
            "master_link_status:up",
        ));
        if let Some(mv) = master_view {
            if let Some(l) = lag(mv, v, &d.ip) {
                let msg = format!(
                    "{} byte(s) and {} s behind (thresholds {} bytes, {} s){}",
                    l.bytes,
                    l.seconds,
                    spec.checks.max_lag_bytes,
                    spec.checks.max_lag_seconds,
                    l.last_io
                        .map(|s| format!("; last data from the master {s} s ago"))
                        .unwrap_or_default()
                );
                if l.bytes > spec.checks.max_lag_bytes || l.seconds > spec.checks.max_lag_seconds {
                    f.push(Finding::warn("replica_lag", node.clone(), msg));
                } else {
                    f.push(Finding::ok("replica_lag", node.clone(), msg));
                }
                metrics.push(Metric::new(
                    "redis_replica_lag_bytes",
                    "Replication offset of the master minus the replica's.",
                    &[("node", &d.addr)],
                    l.bytes as f64,
                ));
                metrics.push(Metric::new(
                    "redis_replica_lag_seconds",
                    "Seconds since the replica's last acknowledgement, as the master counts them.",
                    &[("node", &d.addr)],
                    l.seconds as f64,
                ));
            }
        }
    }

    // Sentinels.
    let answering: Vec<usize> = (0..obs.sentinels.len())
        .filter(|j| obs.sentinels[*j].view().is_some_and(|v| v.monitors()))
        .collect();
    let needed = (spec.quorum as usize).max(spec.majority());
    let epoch = max_epoch(obs);
    let mut ids: HashMap<&str, Vec<&str>> = HashMap::new();
    for (j, s) in obs.sentinels.iter().enumerate() {
        let node = Some(s.addr.clone());
        let v = match &s.view {
            Err(e) => {
                f.push(Finding::warn(
                    "sentinel_reachable",
                    node,
                    not_running_or(e, s.process),
                ));
                continue;
            }
            Ok(v) => v,
        };
        f.push(Finding::ok("sentinel_reachable", node.clone(), "answers"));
        if let Some(id) = v.myid.as_deref() {
            ids.entry(id).or_default().push(&s.addr);
        }
        if v.tilt() {
            f.push(Finding::warn(
                "sentinel_tilt",
                node.clone(),
                "in TILT mode (its clock or event loop jumped): it takes no action until it leaves it",
            ));
        }
        if !v.monitors() {
            f.push(Finding::crit(
                "sentinel_monitor",
                node,
                format!(
                    "does not monitor `{}` (`datatier init` adds the monitor)",
                    spec.master_name
                ),
            ));
            continue;
        }
        match &v.ckquorum {
            Ok(t) => f.push(Finding::ok("ckquorum", node.clone(), t.clone())),
            Err(e) => f.push(Finding::crit("ckquorum", node.clone(), e.clone())),
        }
        let flags = v.master_flags();
        // Mid-failover the name already maps to the promoted replica while
        // the old master's record is still flagged down.
        let promoted = v.master.as_ref().map(entry_addr) != v.master_addr;
        if promoted {
            f.push(Finding::warn(
                "sentinel_master_view",
                node.clone(),
                format!(
                    "failover in progress: {} promoted, replicas being reconfigured ({})",
                    obs.name_of(v.master_addr.as_deref().unwrap_or("?")),
                    flags.join(",")
                ),
            ));
        } else if flags.contains(&"o_down") {
            f.push(Finding::crit(
                "sentinel_master_view",
                node.clone(),
                "sees the master objectively down (o_down): a failover is due",
            ));
        } else if flags.contains(&"s_down") {
            f.push(Finding::warn(
                "sentinel_master_view",
                node.clone(),
                "sees the master subjectively down (s_down)",
            ));
        } else if flags.iter().any(|x| x.starts_with("failover")) {
            f.push(Finding::warn(
                "sentinel_master_view",
                node.clone(),
                format!("failover in progress ({})", flags.join(",")),
            ));
        } else {
            f.push(Finding::ok(
                "sentinel_master_view",
                node.clone(),
                format!("sees the master as {}", flags.join(",")),
            ));
        }
        // Settings.
        let mut drift = Vec::new();
        let want_q = spec.quorum.to_string();
        if v.master_field("quorum") != Some(want_q.as_str()) {
            drift.push(format!(
                "quorum {} (declared {want_q})",
                v.master_field("quorum").unwrap_or("?")
            ));
        }
        for (k, want) in spec.sentinel_settings() {
            if v.master_field(&k) != Some(want.as_str()) {
                drift.push(format!(
                    "{k} {} (declared {want})",
                    v.master_field(&k).unwrap_or("?")
                ));
            }
        }
        if drift.is_empty() {
            f.push(Finding::ok(
                "sentinel_settings",
                node.clone(),
                "as declared",
            ));
        } else {
            f.push(Finding::warn(
                "sentinel_settings",
                node.clone(),
                format!("{} (`datatier init` sets them)", drift.join(", ")),
            ));
        }
        // Peers.
        let mut missing = Vec::new();
        for (k, o) in obs.sentinels.iter().enumerate() {
            if k == j {
                continue;
            }
            match v
                .sentinels
                .iter()
                .find(|e| entry_addr(e) == o.ip || entry_addr(e) == o.addr)
            {
                None => missing.push(format!("{} (unknown)", o.addr)),
                Some(e) if !bad_flags(e).is_empty() => {
                    missing.push(format!("{} ({})", o.addr, bad_flags(e).join(",")))
                }
                Some(_) => {}
            }
        }
        let extra: Vec<String> = v
            .sentinels
            .iter()
            .map(entry_addr)
            .filter(|a| obs.sentinel_index(a).is_none())
            .collect();
        let others = obs.sentinels.len() - 1;
        if missing.is_empty() && extra.is_empty() {
            f.push(Finding::ok(
                "sentinel_peers",
                node.clone(),
                format!("sees the {others} other sentinel(s)"),
            ));
        } else {
            let mut parts = Vec::new();
            if !missing.is_empty() {
                parts.push(format!("does not see {}", missing.join(", ")));
            }
            if !extra.is_empty() {
                parts.push(format!(
                    "knows undeclared sentinel(s) {} (SENTINEL RESET forgets stale ones)",
                    extra.join(", ")
                ));
            }
            f.push(Finding::warn(
                "sentinel_peers",
                node.clone(),
                parts.join("; "),
            ));
        }
        // Replicas as this sentinel knows them.
        let mut missing = Vec::new();
        for (i, d) in obs.data.iter().enumerate() {
            if Some(i) == m {
                continue;
            }
            if !v
                .replicas
                .iter()
                .any(|e| entry_addr(e) == d.ip || entry_addr(e) == d.addr)
            {
                missing.push(d.addr.clone());
            }
        }
        let extra: Vec<String> = v
            .replicas
            .iter()
            .map(entry_addr)
            .filter(|a| obs.data_index(a).is_none())
            .collect();
        if missing.is_empty() && extra.is_empty() {
            f.push(Finding::ok(
                "sentinel_replicas",
                node.clone(),
                format!("knows the {} declared replica(s)", obs.data.len() - 1),
            ));
        } else {
            let mut parts = Vec::new();
            if !missing.is_empty() {
                parts.push(format!("does not know replica(s) {}", missing.join(", ")));
            }
            if !extra.is_empty() {
                parts.push(format!("knows undeclared replica(s) {}", extra.join(", ")));
            }
            f.push(Finding::warn(
                "sentinel_replicas",
                node.clone(),
                parts.join("; "),
            ));
        }
        metrics.push(Metric::new(
            "redis_sentinel_config_epoch",
            "The sentinel's config epoch for the master.",
            &[("node", &s.addr)],
            v.config_epoch() as f64,
        ));
        if let Some(n) = v
            .master_field("num-other-sentinels")
            .and_then(|x| x.parse::<f64>().ok())
        {
            metrics.push(Metric::new(
                "redis_sentinel_other_sentinels",
                "Other sentinels this sentinel knows (num-other-sentinels).",
                &[("node", &s.addr)],
                n,
            ));
        }
    }
    // Duplicate ids.
    let mut dup: Vec<String> = ids
        .iter()
        .filter(|(_, a)| a.len() > 1)
        .map(|(id, a)| format!("{} share the id {id}", a.join(" and ")))
        .collect();
    dup.sort();
    if dup.is_empty() {
        if !ids.is_empty() {
            f.push(Finding::ok(
                "sentinel_ids",
                None,
                "every sentinel has its own id",
            ));
        }
    } else {
        f.push(Finding::crit(
            "sentinel_ids",
            None,
            format!(
                "{}: they count as one sentinel (give each config its own `sentinel myid`, or delete the line and restart)",
                dup.join("; ")
            ),
        ));
    }
    // Agreement on the master.
    let mut said: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for j in &answering {
        let s = &obs.sentinels[*j];
        if let Some(a) = s.view().and_then(|v| v.master_addr.clone()) {
            said.entry(obs.name_of(&a)).or_default().push(&s.addr);
        }
    }
    match said.len() {
        0 => {}
        1 => {
            let (a, who) = said.iter().next().expect("one");
            f.push(Finding::ok(
                "sentinel_agreement",
                None,
                format!("all {} answering sentinel(s) name {a}", who.len()),
            ));
        }
        _ => {
            let text: Vec<String> = said
                .iter()
                .map(|(a, who)| format!("{} name {a}", who.join(", ")))
                .collect();
            let top = said.values().map(Vec::len).max().unwrap_or(0);
            let msg = format!("the sentinels disagree: {}", text.join("; "));
            f.push(if top >= spec.majority() {
                Finding::warn("sentinel_agreement", None, msg)
            } else {
                Finding::crit("sentinel_agreement", None, msg)
            });
        }
    }
    let epochs: Vec<u64> = answering
        .iter()
        .filter_map(|j| obs.sentinels[*j].view())
        .map(|v| v.config_epoch())
        .collect();
    if !epochs.is_empty() {
        if epochs.iter().all(|e| *e == epoch) {
            f.push(Finding::ok(
                "config_epoch",
                None,
                format!("config epoch {epoch} on every answering sentinel"),
            ));
        } else {
            let behind: Vec<String> = answering
                .iter()
                .filter_map(|j| {
                    let s = &obs.sentinels[*j];
                    let e = s.view()?.config_epoch();
                    (e < epoch).then(|| format!("{} at {e}", s.addr))
                })
                .collect();
            f.push(Finding::warn(
                "config_epoch",
                None,
                format!(
                    "newest config epoch is {epoch}; behind: {}",
                    behind.join(", ")
                ),
            ));
        }
    }
    let quorum_msg = format!(
        "{} of {} sentinels monitor `{}`; quorum {} and a majority of {} are needed to fail over",
        answering.len(),
        obs.sentinels.len(),
        spec.master_name,
        spec.quorum,
        spec.majority()
    );
    if answering.len() >= needed {
        f.push(Finding::ok("sentinel_quorum", None, quorum_msg));
    } else {
        f.push(Finding::crit(
            "sentinel_quorum",
            None,
            format!("{quorum_msg}: a dead master would not be replaced"),
        ));
    }

    // Node table.
    let mut nodes = Vec::new();
    for (i, d) in obs.data.iter().enumerate() {
        let is_master = Some(i) == m;
        let (role, state) = match d.view() {
            None => (
                if is_master { "master" } else { "replica" },
                match d.process {
                    Process::Stopped { .. } => "not running",
                    _ => "unreachable",
                },
            ),
            Some(v) if v.is_master() => ("master", if is_master { "ok" } else { "rogue master" }),
            Some(v) if v.link_up() => ("replica", "ok"),
            Some(v) if v.get("master_sync_in_progress") == Some("1") => ("replica", "syncing"),
            Some(_) => ("replica", "link down"),
        };
        let mut row: serde_json::Map<String, Value> = COLUMNS
            .iter()
            .map(|c| (c.to_string(), Value::Null))
            .collect();
        if let Some(v) = d.view() {
            if let Some(ma) = v.master_addr() {
                row.insert("master".into(), obs.name_of(&ma).into());
                row.insert(
                    "link".into(),
                    v.get("master_link_status").unwrap_or("?").into(),
                );
            }
            if let Some(o) = v.offset() {
                row.insert("offset".into(), o.into());
            }
            if let Some(mv) = master_view {
                if !is_master && v.is_replica() {
                    if let Some(l) = lag(mv, v, &d.ip) {
                        row.insert(
                            "lag".into(),
                            format!("{} B, {} s", l.bytes, l.seconds).into(),
                        );
                    }
                }
            }
            row.insert("keys".into(), v.keys.into());
            metrics.push(Metric::new(
                "redis_keys",
                "Keys in the node's database (DBSIZE).",
                &[("node", &d.addr)],
                v.keys as f64,
            ));
            metrics.push(Metric::new(
                "redis_is_master",
                "1 for the node the sentinels name as master.",
                &[("node", &d.addr)],
                if is_master { 1.0 } else { 0.0 },
            ));
        }
        let mut s = NodeStatus::new(&d.addr, role, state);
        s.reachable = d.view.is_ok();
        s.details = row;
        nodes.push(s);
    }
    for s in &obs.sentinels {
        let state = match (&s.view, s.process) {
            (Err(_), Process::Stopped { .. }) => "not running",
            (Err(_), _) => "unreachable",
            (Ok(v), _) if !v.monitors() => "not monitoring",
            (Ok(v), _) if v.tilt() => "tilt",
            (Ok(v), _) if v.ckquorum.is_err() => "noquorum",
            (Ok(_), _) => "ok",
        };
        let mut row: serde_json::Map<String, Value> = COLUMNS
            .iter()
            .map(|c| (c.to_string(), Value::Null))
            .collect();
        if let Some(v) = s.view().filter(|v| v.monitors()) {
            if let Some(a) = &v.master_addr {
                let flags = v.master_flags();
                let shown = if flags == ["master"] {
                    obs.name_of(a)
                } else {
                    format!("{} ({})", obs.name_of(a), flags.join(","))
                };
                row.insert("master".into(), shown.into());
            }
            row.insert("epoch".into(), v.config_epoch().into());
            let ok_replicas = v
                .replicas
                .iter()
                .filter(|e| bad_flags(e).is_empty())
                .count();
            let ok_peers = v
                .sentinels
                .iter()
                .filter(|e| bad_flags(e).is_empty())
                .count();
            row.insert(
                "sees".into(),
                format!("{ok_replicas} replica(s), {ok_peers} sentinel(s)").into(),
            );
            row.insert(
                "quorum".into(),
                match &v.ckquorum {
                    Ok(_) => "OK".to_string(),
                    Err(e) => e.split_whitespace().next().unwrap_or("ERR").to_string(),
                }
                .into(),
            );
        }
        let mut n = NodeStatus::new(&s.addr, "sentinel", state);
        n.reachable = s.view.is_ok();
        n.details = row;
        nodes.push(n);
    }

    let mut r = StatusReport::new(&spec.meta.name, "redis-sentinel", nodes, f);
    r.metrics = metrics;
    r.notes = notes;
    r
}

#[cfg(test)]
mod tests {
    use super::super::converge::fixtures::*;
    use super::*;
    use crate::health::Severity;

    fn spec() -> RedisSentinelSpec {
        match crate::topology::builtin("redis-sentinel").unwrap() {
            crate::topology::Topology::RedisSentinel(s) => s,
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
    fn healthy_set_is_ok_with_every_check_present() {
        let r = report(&spec(), &healthy(0));
        assert_eq!(r.status, Severity::Ok, "{:#?}", r.findings);
        for c in [
            "master",
            "replica_link",
            "replica_lag",
            "ckquorum",
            "sentinel_agreement",
            "sentinel_peers",
            "sentinel_replicas",
            "config_epoch",
            "sentinel_quorum",
            "sentinel_ids",
        ] {
            assert!(r.findings.iter().any(|f| f.check == c), "missing {c}");
        }
        let t = r.render(crate::report::OutputFormat::Table);
        assert!(
            t.contains("NODE") && t.contains("MASTER") && t.contains("LAG"),
            "{t}"
        );
        assert_eq!(r.nodes[3].details["sees"], "2 replica(s), 2 sentinel(s)");
        assert_eq!(r.nodes[1].details["master"], "127.0.0.1:6380");
    }

    #[test]
    fn a_dead_master_is_critical_a_dead_replica_a_warning() {
        let mut obs = healthy(0);
        obs.data[0].view = Err("connection refused".into());
        obs.data[0].process = Process::External;
        let r = report(&spec(), &obs);
        assert_eq!(r.status, Severity::Critical);
        assert!(finding(&r, "master", Some(DATA[0]))
            .message
            .contains("is down"));
        let mut obs = healthy(1);
        obs.data[0].view = Err("not running".into());
        obs.data[0].process = Process::Stopped { has_state: true };
        let r = report(&spec(), &obs);
        assert_eq!(r.status, Severity::Warning, "{:#?}", r.findings);
        assert!(finding(&r, "master", Some(DATA[1]))
            .message
            .contains("a failover happened"));
        assert_eq!(
            finding(&r, "node_reachable", Some(DATA[0])).severity,
            Severity::Warning
        );
        assert!(r.notes[0].contains("the master is now 127.0.0.1:6381"));
    }

    #[test]
    fn disagreement_noquorum_and_lag_are_reported() {
        let mut obs = healthy(0);
        if let Ok(v) = &mut obs.sentinels[2].view {
            v.master_addr = Some(DATA[1].into());
        }
        if let Ok(v) = &mut obs.sentinels[0].view {
            v.ckquorum = Err("NOQUORUM 1 usable Sentinels".into());
        }
        if let Ok(v) = &mut obs.data[2].view {
            v.info.insert("slave_repl_offset".into(), "10".into());
        }
        let r = report(&spec(), &obs);
        assert_eq!(
            finding(&r, "sentinel_agreement", None).severity,
            Severity::Warning
        );
        assert!(finding(&r, "sentinel_agreement", None)
            .message
            .contains("127.0.0.1:26382 name 127.0.0.1:6381"));
        assert_eq!(
            finding(&r, "ckquorum", Some(SENTINELS[0])).severity,
            Severity::Critical
        );
        let l = finding(&r, "replica_lag", Some(DATA[2]));
        assert!(l.message.starts_with("990 byte(s)"), "{}", l.message);
        for s in &mut obs.sentinels {
            s.view = Err("connection refused".into());
        }
        let r = report(&spec(), &obs);
        assert_eq!(
            finding(&r, "sentinel_quorum", None).severity,
            Severity::Critical
        );
    }
}
