//! Who the master is now, and what "converged" means for a sentinel-managed
//! set, as lists of gaps (empty when converged). `init` polls until the
//! gaps are gone, `failover` waits on them, and `status` reports them, so all
//! three agree on the definitions:
//!
//! - data: the current master answers and is a master; every other declared
//!   data node replicates it with its link up;
//! - sentinels: every declared sentinel monitors the master name at the
//!   current master's address, sees it healthy (flags exactly `master`), at
//!   the newest config epoch, knows every declared replica and every other
//!   declared sentinel, none of them flagged down or disconnected.
//!
//! The current master is what the sentinels say — they own failovers, and a
//! datatier run must never undo one — and only when no sentinel can be asked
//! does datatier fall back to the sentinels' saved configs, then to the data
//! nodes' own roles, then to the declaration.

use super::observe::{bad_flags, entry_addr, Observed};
use crate::topology::redis_sentinel::RedisSentinelSpec;
use std::collections::BTreeMap;
use std::fmt;

/// Where the current master's identity came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MasterSource {
    /// Live sentinels' answers (`SENTINEL GET-MASTER-ADDR-BY-NAME`).
    Sentinels,
    /// Stopped sentinels' config files (local provider, nothing running).
    SavedSentinels,
    /// The data nodes' own roles (no sentinel monitors the name yet).
    DataNodes,
    /// Nothing to ask: the topology's `master`.
    Declared,
}

impl fmt::Display for MasterSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MasterSource::Sentinels => "the sentinels",
            MasterSource::SavedSentinels => "the sentinels' saved configs",
            MasterSource::DataNodes => "the data nodes' roles",
            MasterSource::Declared => "the topology",
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CurrentMaster {
    /// `ip:port` as reported (or the declared address).
    pub addr: String,
    /// Index into the data nodes (declared master first), if declared.
    pub index: Option<usize>,
    pub source: MasterSource,
    /// Sentinels naming it, and sentinels that answered for the name.
    pub votes: usize,
    pub answered: usize,
    /// The highest config epoch among the sentinels naming it.
    pub epoch: u64,
}

/// Pick among `(answer, epoch)` pairs: highest epoch, then most votes.
fn elect(answers: &[(String, u64)]) -> Option<(String, usize, u64)> {
    let mut by: BTreeMap<&str, (usize, u64)> = BTreeMap::new();
    for (a, e) in answers {
        let x = by.entry(a.as_str()).or_insert((0, 0));
        x.0 += 1;
        x.1 = x.1.max(*e);
    }
    by.into_iter()
        .max_by_key(|(_, (votes, epoch))| (*epoch, *votes))
        .map(|(a, (v, e))| (a.to_string(), v, e))
}

pub fn current_master(spec: &RedisSentinelSpec, obs: &Observed) -> CurrentMaster {
    let _ = spec;
    let live: Vec<(String, u64)> = obs
        .sentinels
        .iter()
        .filter_map(|s| s.view())
        .filter_map(|v| Some((v.master_addr.clone()?, v.config_epoch())))
        .collect();
    let found = |addr: String, votes, answered, epoch, source| CurrentMaster {
        index: obs.data_index(&addr),
        addr,
        source,
        votes,
        answered,
        epoch,
    };
    if let Some((addr, votes, epoch)) = elect(&live) {
        return found(addr, votes, live.len(), epoch, MasterSource::Sentinels);
    }
    let saved: Vec<(String, u64)> = obs
        .sentinels
        .iter()
        .filter(|s| s.view.is_err())
        .filter_map(|s| s.saved.as_ref())
        .filter_map(|s| Some((s.master_addr.clone()?, s.config_epoch)))
        .collect();
    if let Some((addr, votes, epoch)) = elect(&saved) {
        return found(
            addr,
            votes,
            saved.len(),
            epoch,
            MasterSource::SavedSentinels,
        );
    }
    // The data nodes' own roles: a master with replicas beats a lone one,
    // the declared master beats the others.
    let masters: Vec<(usize, usize)> = obs
        .data
        .iter()
        .enumerate()
        .filter_map(|(i, d)| {
            let v = d.view()?;
            v.is_master().then(|| (i, v.attached().len()))
        })
        .collect();
    let best = masters
        .iter()
        .max_by_key(|(i, replicas)| (*replicas, *i == 0))
        .map(|(i, _)| *i);
    match best {
        // Only a master with replicas says anything: a lone master is just
        // a node nobody configured yet.
        Some(i) if masters.iter().any(|(_, r)| *r > 0) => CurrentMaster {
            addr: obs.data[i].ip.clone(),
            index: Some(i),
            source: MasterSource::DataNodes,
            votes: 0,
            answered: 0,
            epoch: 0,
        },
        _ => CurrentMaster {
            addr: obs.data[0].ip.clone(),
            index: Some(0),
            source: MasterSource::Declared,
            votes: 0,
            answered: 0,
            epoch: 0,
        },
    }
}

/// What keeps the data nodes from following master `m` (an index).
pub fn data_gaps(obs: &Observed, m: usize) -> Vec<String> {
    let mut gaps = Vec::new();
    let master = &obs.data[m];
    match master.view() {
        None => gaps.push(format!("the master {} does not answer", master.addr)),
        Some(v) if !v.is_master() => gaps.push(format!(
            "the master {} reports role:{}",
            master.addr,
            v.get("role").unwrap_or("?")
        )),
        Some(_) => {}
    }
    for (i, d) in obs.data.iter().enumerate() {
        if i == m {
            continue;
        }
        match d.view() {
            None => gaps.push(format!("{} does not answer", d.addr)),
            Some(v) if !v.is_replica() => gaps.push(format!(
                "{} is a master, not a replica of {}",
                d.addr, master.addr
            )),
            Some(v) => {
                let follows = v
                    .master_addr()
                    .is_some_and(|a| a == master.ip || a == master.addr);
                if !follows {
                    gaps.push(format!(
                        "{} replicates {}, not {}",
                        d.addr,
                        obs.name_of(&v.master_addr().unwrap_or_default()),
                        master.addr
                    ));
                } else if !v.link_up() {
                    gaps.push(format!(
                        "{} master_link_status:{}{}",
                        d.addr,
                        v.get("master_link_status").unwrap_or("?"),
                        if v.get("master_sync_in_progress") == Some("1") {
                            " (initial sync in progress)"
                        } else {
                            ""
                        }
                    ));
                }
            }
        }
    }
    gaps
}

/// What keeps sentinel `s` (an index) from a converged view of master `m`.
pub fn sentinel_gaps(obs: &Observed, s: usize, m: usize, max_epoch: u64) -> Vec<String> {
    let mut gaps = Vec::new();
    let so = &obs.sentinels[s];
    let a = &so.addr;
    let master = &obs.data[m];
    let Some(v) = so.view() else {
        return vec![format!("sentinel {a} does not answer")];
    };
    if !v.monitors() {
        return vec![format!("sentinel {a} does not monitor the master name")];
    }
    let named = v.master_addr.clone().unwrap_or_default();
    if named != master.ip && named != master.addr {
        gaps.push(format!(
            "sentinel {a} names {} as master, not {}",
            obs.name_of(&named),
            master.addr
        ));
        return gaps;
    }
    let flags = v.master_flags();
    if flags != ["master"] {
        gaps.push(format!("sentinel {a} flags the master {}", flags.join(",")));
    }
    if v.config_epoch() < max_epoch {
        gaps.push(format!(
            "sentinel {a} is at config epoch {} (others at {max_epoch})",
            v.config_epoch()
        ));
    }
    for (i, d) in obs.data.iter().enumerate() {
        if i == m {
            continue;
        }
        match v
            .replicas
            .iter()
            .find(|e| entry_addr(e) == d.ip || entry_addr(e) == d.addr)
        {
            None => gaps.push(format!("sentinel {a} does not know replica {} yet", d.addr)),
            // Only whether it knows the replica and can reach it: the rest
            // of its view (role, link, master) comes from INFO it refreshes
            // every 10 s, so it lags behind reality by design; the data
            // nodes themselves are checked by `data_gaps`.
            Some(e) if !bad_flags(e).is_empty() => gaps.push(format!(
                "sentinel {a} flags replica {} {}",
                d.addr,
                bad_flags(e).join(",")
            )),
            Some(_) => {}
        }
    }
    for (j, o) in obs.sentinels.iter().enumerate() {
        if j == s {
            continue;
        }
        match v
            .sentinels
            .iter()
            .find(|e| entry_addr(e) == o.ip || entry_addr(e) == o.addr)
        {
            None => gaps.push(format!(
                "sentinel {a} does not know sentinel {} yet",
                o.addr
            )),
            Some(e) if !bad_flags(e).is_empty() => gaps.push(format!(
                "sentinel {a} flags sentinel {} {}",
                o.addr,
                bad_flags(e).join(",")
            )),
            Some(_) => {}
        }
    }
    gaps
}

/// The highest config epoch among the sentinels that answer.
pub fn max_epoch(obs: &Observed) -> u64 {
    obs.sentinels
        .iter()
        .filter_map(|s| s.view())
        .map(|v| v.config_epoch())
        .max()
        .unwrap_or(0)
}

/// Every sentinel's gaps, flattened.
pub fn all_sentinel_gaps(obs: &Observed, m: usize) -> Vec<String> {
    let e = max_epoch(obs);
    (0..obs.sentinels.len())
        .flat_map(|s| sentinel_gaps(obs, s, m, e))
        .collect()
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Synthetic observations for planner and health unit tests.
    use super::super::observe::*;
    use std::collections::HashMap;

    pub fn master(replicas: &[&str], keys: u64) -> DataView {
        let mut info: HashMap<String, String> = [
            ("role", "master"),
            ("master_repl_offset", "1000"),
            ("master_replid", "aaaa"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (i, r) in replicas.iter().enumerate() {
            let (ip, port) = r.rsplit_once(':').unwrap();
            info.insert(
                format!("slave{i}"),
                format!("ip={ip},port={port},state=online,offset=1000,lag=0"),
            );
        }
        info.insert("connected_slaves".into(), replicas.len().to_string());
        DataView {
            info,
            keys,
            config: [("repl-diskless-sync-delay", "5"), ("appendonly", "yes")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    pub fn replica(of: &str, up: bool) -> DataView {
        let (h, p) = of.rsplit_once(':').unwrap();
        let info = [
            ("role", "slave"),
            ("master_host", h),
            ("master_port", p),
            ("master_link_status", if up { "up" } else { "down" }),
            ("slave_repl_offset", "1000"),
            ("master_replid", "aaaa"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        DataView {
            info,
            keys: 0,
            config: [("repl-diskless-sync-delay", "5"), ("appendonly", "yes")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn entry(kv: &[(&str, &str)]) -> HashMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// A sentinel that sees `master` with `replicas` and `peers`, healthy.
    pub fn sentinel(
        id: &str,
        master: &str,
        epoch: u64,
        replicas: &[&str],
        peers: &[&str],
    ) -> SentinelView {
        let (mh, mp) = master.rsplit_once(':').unwrap();
        SentinelView {
            myid: Some(id.to_string()),
            info: entry(&[("redis_mode", "sentinel"), ("sentinel_tilt", "0")]),
            master_addr: Some(master.to_string()),
            master: Some(entry(&[
                ("name", "mymaster"),
                ("ip", mh),
                ("port", mp),
                ("flags", "master"),
                ("config-epoch", &epoch.to_string()),
                ("quorum", "2"),
                ("down-after-milliseconds", "5000"),
                ("failover-timeout", "10000"),
                ("parallel-syncs", "1"),
                ("num-other-sentinels", &peers.len().to_string()),
                ("num-slaves", &replicas.len().to_string()),
            ])),
            replicas: replicas
                .iter()
                .map(|r| {
                    let (h, p) = r.rsplit_once(':').unwrap();
                    entry(&[
                        ("ip", h),
                        ("port", p),
                        ("flags", "slave"),
                        ("master-host", mh),
                        ("master-port", mp),
                        ("master-link-status", "ok"),
                        ("slave-priority", "100"),
                    ])
                })
                .collect(),
            sentinels: peers
                .iter()
                .map(|r| {
                    let (h, p) = r.rsplit_once(':').unwrap();
                    entry(&[("ip", h), ("port", p), ("flags", "sentinel")])
                })
                .collect(),
            ckquorum: Ok(
                "OK 3 usable Sentinels. Quorum and failover authorization can be reached".into(),
            ),
        }
    }

    pub const DATA: [&str; 3] = ["127.0.0.1:6380", "127.0.0.1:6381", "127.0.0.1:6382"];
    pub const SENTINELS: [&str; 3] = ["127.0.0.1:26380", "127.0.0.1:26381", "127.0.0.1:26382"];

    /// A healthy set with `master` (an index into DATA) as the master.
    pub fn healthy(m: usize) -> Observed {
        let ma = DATA[m];
        let others: Vec<&str> = DATA.iter().copied().filter(|a| *a != ma).collect();
        Observed {
            data: DATA
                .iter()
                .enumerate()
                .map(|(i, a)| DataObs {
                    addr: a.to_string(),
                    ip: a.to_string(),
                    process: Process::Running(100 + i as u32),
                    view: Ok(if i == m {
                        master(&others, 0)
                    } else {
                        replica(ma, true)
                    }),
                })
                .collect(),
            sentinels: SENTINELS
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    let peers: Vec<&str> = SENTINELS.iter().copied().filter(|p| p != a).collect();
                    SentinelObs {
                        addr: a.to_string(),
                        ip: a.to_string(),
                        process: Process::Running(200 + i as u32),
                        view: Ok(sentinel(&format!("{i:040}"), ma, 0, &others, &peers)),
                        saved: None,
                    }
                })
                .collect(),
        }
    }

    /// Nothing started yet.
    pub fn nothing() -> Observed {
        Observed {
            data: DATA
                .iter()
                .map(|a| DataObs {
                    addr: a.to_string(),
                    ip: a.to_string(),
                    process: Process::Stopped { has_state: false },
                    view: Err("not running".into()),
                })
                .collect(),
            sentinels: SENTINELS
                .iter()
                .map(|a| SentinelObs {
                    addr: a.to_string(),
                    ip: a.to_string(),
                    process: Process::Stopped { has_state: false },
                    view: Err("not running".into()),
                    saved: None,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    fn spec() -> RedisSentinelSpec {
        match crate::topology::builtin("redis-sentinel").unwrap() {
            crate::topology::Topology::RedisSentinel(s) => s,
            _ => unreachable!(),
        }
    }

    #[test]
    fn the_sentinels_decide_and_the_newest_epoch_wins() {
        let mut obs = healthy(1);
        let cm = current_master(&spec(), &obs);
        assert_eq!(
            (cm.index, cm.source, cm.votes),
            (Some(1), MasterSource::Sentinels, 3)
        );
        assert!(data_gaps(&obs, 1).is_empty());
        assert!(
            all_sentinel_gaps(&obs, 1).is_empty(),
            "{:?}",
            all_sentinel_gaps(&obs, 1)
        );
        // Two stale sentinels at epoch 0 still name 6381; one saw the newer
        // failover (epoch 2) to 6382: it wins, the others will follow.
        if let Ok(v) = &mut obs.sentinels[2].view {
            v.master_addr = Some(DATA[2].into());
            v.master
                .as_mut()
                .unwrap()
                .insert("config-epoch".into(), "2".into());
        }
        let cm = current_master(&spec(), &obs);
        assert_eq!((cm.index, cm.votes, cm.epoch), (Some(2), 1, 2));
        let gaps = all_sentinel_gaps(&obs, 2);
        assert!(
            gaps.iter()
                .any(|g| g.contains("sentinel 127.0.0.1:26380 names 127.0.0.1:6381 as master")),
            "{gaps:?}"
        );
    }

    #[test]
    fn without_sentinels_saved_configs_then_roles_then_declaration() {
        let mut obs = nothing();
        assert_eq!(current_master(&spec(), &obs).source, MasterSource::Declared);
        obs.sentinels[0].saved = Some(super::super::observe::SavedSentinel {
            myid: None,
            master_addr: Some(DATA[2].into()),
            config_epoch: 4,
        });
        let cm = current_master(&spec(), &obs);
        assert_eq!(
            (cm.index, cm.source),
            (Some(2), MasterSource::SavedSentinels)
        );
        let mut obs = healthy(1);
        for s in &mut obs.sentinels {
            s.view = Err("connection refused".into());
        }
        let cm = current_master(&spec(), &obs);
        assert_eq!((cm.index, cm.source), (Some(1), MasterSource::DataNodes));
    }

    #[test]
    fn gaps_name_what_is_missing() {
        let mut obs = healthy(0);
        obs.data[2].view = Ok(replica(DATA[0], false));
        if let Ok(v) = &mut obs.sentinels[1].view {
            v.sentinels.pop();
        }
        let d = data_gaps(&obs, 0);
        assert_eq!(d, ["127.0.0.1:6382 master_link_status:down"]);
        let s = all_sentinel_gaps(&obs, 0);
        assert_eq!(
            s,
            ["sentinel 127.0.0.1:26381 does not know sentinel 127.0.0.1:26382 yet"]
        );
    }
}
