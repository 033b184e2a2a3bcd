//! What "converged" means for a Redis Cluster, as a list of gaps (empty when
//! converged). Used by `init` (poll until empty) and by `status`
//! (`config_agreement`), so both agree on the definition:
//!
//! - every node answers and says `cluster_state:ok`;
//! - every node knows every declared node as a full member (no handshake,
//!   no `fail`/`fail?`), and no undeclared one;
//! - every node sees the same roles (each replica's master) and the same
//!   slot owners and config epochs as the nodes themselves claim;
//! - every declared replica replicates the current master of its group.

use super::observe::NodeView;
use crate::topology::redis_cluster::RedisClusterSpec;
use std::collections::BTreeMap;

/// Members of group `g` (declared master first).
pub fn members(spec: &RedisClusterSpec, g: usize) -> Vec<usize> {
    std::iter::once(g)
        .chain(spec.replicas_of(g).map(|(i, _)| i))
        .collect()
}

/// The member of group `g` that currently serves its slots (by the nodes'
/// own claims; highest config epoch wins), else the declared master.
pub fn current_master(spec: &RedisClusterSpec, views: &[Option<&NodeView>], g: usize) -> usize {
    members(spec, g)
        .into_iter()
        .filter_map(|m| {
            let me = views[m]?.myself()?;
            (me.is_master() && !me.slots.is_empty()).then_some((me.config_epoch, m))
        })
        .max()
        .map(|(_, m)| m)
        .unwrap_or(g)
}

/// Human descriptions of what is not yet converged.
pub fn gaps(spec: &RedisClusterSpec, addrs: &[String], views: &[Option<&NodeView>]) -> Vec<String> {
    let mut gaps = Vec::new();
    let ids: Vec<Option<&str>> = views
        .iter()
        .map(|v| v.and_then(|v| v.myself()).map(|m| m.id.as_str()))
        .collect();
    for (i, v) in views.iter().enumerate() {
        if v.is_none() {
            gaps.push(format!("{} does not answer", addrs[i]));
        }
    }
    if !gaps.is_empty() {
        return gaps;
    }
    let name_of = |id: &str| -> String {
        ids.iter()
            .position(|x| *x == Some(id))
            .map(|i| addrs[i].clone())
            .unwrap_or_else(|| format!("unknown node {}", &id[..id.len().min(8)]))
    };
    // Ground truth: each node's own claims.
    let mut truth: BTreeMap<&str, (Option<&str>, u64, String)> = BTreeMap::new();
    for v in views.iter().flatten() {
        if let Some(me) = v.myself() {
            truth.insert(
                &me.id,
                (
                    me.master.as_deref(),
                    me.config_epoch,
                    crate::topology::redis_cluster::ranges_to_string(&me.slots),
                ),
            );
        }
    }
    for (i, v) in views.iter().enumerate() {
        let v = v.expect("checked above");
        let a = &addrs[i];
        if !v.state_ok() {
            gaps.push(format!(
                "{a} has cluster_state:{}",
                v.cluster
                    .get("cluster_state")
                    .map(String::as_str)
                    .unwrap_or("?")
            ));
        }
        for (j, id) in ids.iter().enumerate() {
            let id = id.expect("answered");
            if i == j {
                continue;
            }
            match v.by_id(id) {
                None => gaps.push(format!("{a} does not know {} yet", addrs[j])),
                Some(n) if n.is_transient() => {
                    gaps.push(format!("{a} is still in handshake with {}", addrs[j]))
                }
                Some(n) if n.failed() || n.pfailed() => gaps.push(format!(
                    "{a} flags {} as {}",
                    addrs[j],
                    if n.failed() { "fail" } else { "fail?" }
                )),
                Some(n) => {
                    let (master, epoch, slots) = &truth[id];
                    if n.master.as_deref() != *master {
                        gaps.push(format!(
                            "{a} sees {} as {} (it is {})",
                            addrs[j],
                            role_text(n.master.as_deref(), &name_of),
                            role_text(*master, &name_of)
                        ));
                    } else if n.config_epoch != *epoch
                        || crate::topology::redis_cluster::ranges_to_string(&n.slots) != *slots
                    {
                        gaps.push(format!("{a} has an outdated slot map for {}", addrs[j]));
                    }
                }
            }
        }
        for n in &v.nodes {
            if !n.is_myself() && !n.is_transient() && !ids.contains(&Some(n.id.as_str())) {
                gaps.push(format!(
                    "{a} knows undeclared node {} ({})",
                    n.addr,
                    &n.id[..n.id.len().min(8)]
                ));
            }
        }
    }
    // Declared replicas follow their group's current master.
    for (g, _) in spec.masters() {
        let cm = current_master(spec, views, g);
        let cm_id = ids[cm].expect("answered");
        for m in members(spec, g) {
            if m == cm {
                continue;
            }
            let own = views[m].and_then(|v| v.myself());
            if own.and_then(|o| o.master.as_deref()) != Some(cm_id) {
                gaps.push(format!(
                    "{} is not yet a replica of {}",
                    addrs[m], addrs[cm]
                ));
            }
        }
    }
    gaps
}

fn role_text(master: Option<&str>, name_of: &dyn Fn(&str) -> String) -> String {
    match master {
        None => "a master".into(),
        Some(m) => format!("a replica of {}", name_of(m)),
    }
}
