//! The pure planner: `(spec, observed) -> Plan<Action>`.
//!
//! Order of a full bootstrap, and why:
//!
//! 1. start the data nodes (local provider);
//! 2. on the master, `repl-diskless-sync-delay 0` while bootstrapping
//!    (Redis 7 otherwise waits 5 s for more replicas before a full sync);
//! 3. `REPLICAOF` on every replica (+ `CONFIG REWRITE`, so a restart keeps
//!    the role), then wait until every link is up;
//! 4. restore the declared delay;
//! 5. sentinels, only now: `SENTINEL MONITOR` + `SENTINEL SET` on each. A
//!    sentinel learns the replicas from the master's `INFO`, which it sends
//!    as soon as it connects and then only every 10 s, so the replicas must
//!    already be attached when it first looks. Local sentinels start (with
//!    the data nodes, from a config datatier writes with a distinct
//!    `sentinel myid` each) but monitor nothing until then;
//! 6. introduce the sentinels to each other: each one's hello message (the
//!    one it publishes every 2 s: address, id, epoch, master) is handed to
//!    the others directly, so nobody waits for the next hello round, and no
//!    sentinel has to retry a peer that was not listening yet;
//! 7. wait until every sentinel sees the master, every replica and every
//!    other sentinel ([`super::converge`]).
//!
//! Re-runs follow the sentinels: after a failover the declared master is a
//! replica, and stays one. A restarted node comes back as a replica of the
//! current master (its config is edited before it starts), never as a
//! second master. When the current master is down while the sentinels can
//! still fail over, `init` waits for them instead of restarting it: a
//! restarted master without its last writes would make its replicas drop
//! theirs. Nodes holding data of their own are refused unless `--force`,
//! and a refusal changes nothing.

use super::converge::{self, current_master, MasterSource};
use super::observe::{entry_addr, entry_flags, DataView, Observed, Process};
use crate::engine::redis::config_equal;
use crate::plan::Plan;
use crate::topology::redis_sentinel::RedisSentinelSpec;
use anyhow::{bail, Result};
use std::collections::HashMap;
use std::fmt;

/// Redis's default `repl-diskless-sync-delay`.
pub const DEFAULT_DISKLESS_DELAY: &str = "5";

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Start a data node. `restart`: it has config and data from before;
    /// `replicaof`: written into its config first, so it never comes up as
    /// a second master.
    StartData {
        restart: bool,
        replicaof: Option<String>,
    },
    /// Start a sentinel: from its own config (`restart`), or fresh from a
    /// config written by datatier with its own id (monitoring nothing yet).
    StartSentinel {
        restart: bool,
    },
    /// After restarts whose outcome cannot be predicted.
    ObserveAgain,
    /// The current master is down and the sentinels can fail over: wait
    /// for them to promote a replica.
    WaitFailover {
        master: String,
    },
    /// `repl-diskless-sync-delay 0` on the master while replicas sync.
    BootstrapSettings,
    /// `REPLICAOF` + `CONFIG REWRITE`. `drops_keys`: keys this node holds
    /// as a master, replaced by the master's data (`--force` only).
    ReplicaOf {
        master: String,
        drops_keys: u64,
    },
    WaitSynced {
        replicas: usize,
    },
    /// Declared (or previous) values of the bootstrap settings.
    RestoreSettings(Vec<(String, String)>),
    /// `[config]` values that differ on a running node.
    ConfigSet(Vec<(String, String)>),
    /// `--force`: `SENTINEL REMOVE` a monitor of the name at an undeclared
    /// address.
    RemoveMonitor {
        was: String,
    },
    /// `SENTINEL MONITOR` + `SENTINEL SET` (settings and auth-pass).
    Monitor {
        master: String,
        quorum: u32,
    },
    /// Sentinel settings that differ from the declared ones.
    SentinelSet(Vec<(String, String)>),
    /// Hand each sentinel's hello message to the sentinels that do not know
    /// it yet.
    Introduce,
    /// `SENTINEL RESET`: forget stale undeclared replicas or sentinels
    /// (one sentinel at a time, each re-discovering before the next).
    Reset {
        stale: Vec<String>,
    },
    WaitSentinels {
        sentinels: usize,
    },
}

impl Action {
    pub fn is_start(&self) -> bool {
        matches!(
            self,
            Action::StartData { .. } | Action::StartSentinel { .. }
        )
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::StartData { restart: false, .. } => write!(f, "start redis-server (new node)"),
            Action::StartData { restart: true, replicaof: None } => {
                write!(f, "start redis-server (restarts with its data, as the master)")
            }
            Action::StartData { restart: true, replicaof: Some(m) } => write!(
                f,
                "start redis-server (restarts with its data, as a replica of {m})"
            ),
            Action::StartSentinel { restart: true } => {
                write!(f, "start redis-sentinel (restarts from its own config)")
            }
            Action::StartSentinel { restart: false } => write!(
                f,
                "start redis-sentinel (new; config written with its own sentinel id)"
            ),
            Action::ObserveAgain => {
                write!(f, "observe again once the restarted nodes answer, then plan the rest")
            }
            Action::WaitFailover { master } => write!(
                f,
                "the master {master} is down: wait for the sentinels to promote a replica (restarting it as master could discard writes its replicas hold)"
            ),
            Action::BootstrapSettings => write!(
                f,
                "CONFIG SET repl-diskless-sync-delay 0 while the replicas sync"
            ),
            Action::ReplicaOf { master, drops_keys: 0 } => {
                write!(f, "REPLICAOF {} + CONFIG REWRITE", master.replace(':', " "))
            }
            Action::ReplicaOf { master, drops_keys } => write!(
                f,
                "REPLICAOF {} + CONFIG REWRITE (--force: replaces its {drops_keys} key(s) with the master's data)",
                master.replace(':', " ")
            ),
            Action::WaitSynced { replicas } => write!(
                f,
                "wait until all {replicas} replica(s) report master_link_status:up"
            ),
            Action::RestoreSettings(kv) | Action::ConfigSet(kv) => {
                let s: Vec<String> = kv.iter().map(|(k, v)| format!("{k} {v}")).collect();
                write!(f, "CONFIG SET {} + CONFIG REWRITE", s.join(" "))
            }
            Action::RemoveMonitor { was } => write!(
                f,
                "SENTINEL REMOVE (--force; it monitors the name at undeclared {was})"
            ),
            Action::Monitor { master, quorum } => write!(
                f,
                "SENTINEL MONITOR {} {quorum} + SENTINEL SET (down-after, failover-timeout, parallel-syncs, auth-pass if any)",
                master.replace(':', " ")
            ),
            Action::SentinelSet(kv) => {
                let s: Vec<String> = kv.iter().map(|(k, v)| format!("{k} {v}")).collect();
                write!(f, "SENTINEL SET {}", s.join(" "))
            }
            Action::Introduce => write!(
                f,
                "introduce the sentinels to each other (hand each one's hello to the others instead of waiting for the 2 s hello round)"
            ),
            Action::Reset { stale } => write!(
                f,
                "SENTINEL RESET to forget {} (one sentinel at a time)",
                stale.join(", ")
            ),
            Action::WaitSentinels { sentinels } => write!(
                f,
                "wait until all {sentinels} sentinels see the master, every replica and each other"
            ),
        }
    }
}

/// A data node that has never been configured, as it will look once
/// started (used to plan the rest of a bootstrap in one go).
fn fresh_data(spec: &RedisSentinelSpec) -> DataView {
    let mut config: HashMap<String, String> = spec.config.iter().cloned().collect();
    config
        .entry("repl-diskless-sync-delay".into())
        .or_insert_with(|| DEFAULT_DISKLESS_DELAY.into());
    DataView {
        info: [("role", "master"), ("master_repl_offset", "0")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        keys: 0,
        config,
    }
}

/// Sentinels that answer and monitor the name.
fn monitoring(obs: &Observed) -> usize {
    obs.sentinels
        .iter()
        .filter(|s| s.view().is_some_and(|v| v.monitors()))
        .count()
}

/// Compute the plan. `force` allows replacing the data of nodes that hold
/// keys of their own, and re-pointing sentinels that monitor the name at an
/// undeclared address.
pub fn plan(spec: &RedisSentinelSpec, obs: &Observed, force: bool) -> Result<Plan<Action>> {
    let mut p = Plan::new();

    // 0. The right kind of server on every declared address.
    let mut refusals = Vec::new();
    for d in &obs.data {
        match &d.view {
            Err(e) if e.starts_with("is a sentinel") => refusals.push(format!("{} {e}", d.addr)),
            Ok(v) if v.get("cluster_enabled") == Some("1") => refusals.push(format!(
                "{} runs with cluster-enabled yes (a Redis Cluster node cannot be a sentinel-managed replica)",
                d.addr
            )),
            _ => {}
        }
    }
    for s in &obs.sentinels {
        if let Err(e) = &s.view {
            if e.starts_with("is not a sentinel") {
                refusals.push(format!("{} {e}", s.addr));
            }
        }
    }
    if !refusals.is_empty() {
        bail!("{}; nothing was changed", refusals.join("; "));
    }

    // 1. Who is the master now.
    let cm = current_master(spec, obs);
    let Some(m) = cm.index else {
        bail!(
            "{} name {} as the master of `{}`, which is not a data node of this topology; nothing was changed\nhint: declare it, or remove the monitor from the sentinels (SENTINEL REMOVE {})",
            cm.source,
            cm.addr,
            spec.master_name,
            spec.master_name
        );
    };
    let master = &obs.data[m];
    if master.view.is_err() {
        let replica_up = obs
            .data
            .iter()
            .enumerate()
            .any(|(i, d)| i != m && d.view().is_some());
        let can_fail_over = monitoring(obs) >= (spec.quorum as usize).max(spec.majority());
        if cm.source == MasterSource::Sentinels && replica_up && can_fail_over {
            p.push(
                &master.addr,
                Action::WaitFailover {
                    master: master.addr.clone(),
                },
            );
            return Ok(p);
        }
        if !matches!(master.process, Process::Stopped { .. }) {
            bail!(
                "the master {} does not answer ({}) and the sentinels cannot fail over ({} of the {} needed monitor `{}`); nothing was changed\nhint: bring {} back, or run `datatier failover` once enough sentinels run",
                master.addr,
                master.view.as_ref().err().map(String::as_str).unwrap_or(""),
                monitoring(obs),
                (spec.quorum as usize).max(spec.majority()),
                spec.master_name,
                master.addr
            );
        }
    }
    let unreachable: Vec<String> = obs
        .data
        .iter()
        .filter(|d| !matches!(d.process, Process::Stopped { .. }))
        .filter_map(|d| d.view.as_ref().err().map(|e| format!("{} ({e})", d.addr)))
        .chain(
            obs.sentinels
                .iter()
                .filter(|s| !matches!(s.process, Process::Stopped { .. }))
                .filter_map(|s| s.view.as_ref().err().map(|e| format!("{} ({e})", s.addr))),
        )
        .collect();
    if !unreachable.is_empty() {
        bail!(
            "cannot plan: unreachable {}; nothing was changed\nhint: check that the nodes run and that the address and password are right",
            unreachable.join(", ")
        );
    }
    let master_ip = master.ip.clone();
    // A master about to start without any data of its own, while other
    // nodes hold some: it would become their sync source and wipe them.
    if matches!(master.process, Process::Stopped { has_state: false }) && !force {
        let holders: Vec<String> = obs
            .data
            .iter()
            .enumerate()
            .filter(|(i, d)| {
                *i != m
                    && (matches!(d.process, Process::Stopped { has_state: true })
                        || d.view().is_some_and(|v| v.keys > 0))
            })
            .map(|(_, d)| d.addr.clone())
            .collect();
        if !holders.is_empty() {
            bail!(
                "the master {} ({}) has no data dir, while {} hold data: started empty as the master it would make them drop theirs; nothing was changed\nhint: start the nodes with data first and fail over to one of them (`datatier failover --to NODE`), or --force to start it empty anyway",
                master.addr,
                cm.source,
                holders.join(", ")
            );
        }
    }

    // 2. Processes.
    let mut restarts = false;
    let mut views: Vec<Option<DataView>> = Vec::with_capacity(obs.data.len());
    for (i, d) in obs.data.iter().enumerate() {
        match d.process {
            Process::Stopped { has_state } => {
                let replicaof = (i != m && has_state).then(|| master_ip.clone());
                p.push(
                    &d.addr,
                    Action::StartData {
                        restart: has_state,
                        replicaof,
                    },
                );
                restarts |= has_state;
                views.push((!has_state).then(|| fresh_data(spec)));
            }
            _ => views.push(d.view().cloned()),
        }
    }
    for s in &obs.sentinels {
        if let Process::Stopped { has_state } = s.process {
            p.push(&s.addr, Action::StartSentinel { restart: has_state });
            restarts |= has_state;
        }
    }
    if restarts {
        p.push("sentinel set", Action::ObserveAgain);
        return Ok(p);
    }
    let views: Vec<DataView> = views
        .into_iter()
        .map(|v| v.expect("every data node answers or starts fresh"))
        .collect();

    // 3. Replication.
    let mv = &views[m];
    if mv.is_replica() {
        bail!(
            "{} name {} as the master, but it replicates {}; resolve by hand (e.g. `datatier failover`); nothing was changed",
            cm.source,
            master.addr,
            obs.name_of(&mv.master_addr().unwrap_or_default())
        );
    }
    let known_to_sentinels = |ip: &str| {
        obs.sentinels.iter().filter_map(|s| s.view()).any(|v| {
            v.replicas.iter().any(|e| entry_addr(e) == ip) || v.master_addr.as_deref() == Some(ip)
        })
    };
    let mut data_steps: Plan<Action> = Plan::new();
    let mut refused = Vec::new();
    let mut resync = false;
    for (i, v) in views.iter().enumerate() {
        if i == m {
            continue;
        }
        let d = &obs.data[i];
        let follows = v
            .master_addr()
            .is_some_and(|a| a == master_ip || a == master.addr);
        if v.is_replica() && follows {
            resync |= !v.link_up();
            continue;
        }
        let mut drops = 0;
        if v.is_master() && v.keys > 0 {
            let same_history = v.replids().iter().any(|id| mv.replids().contains(id));
            if !same_history && !known_to_sentinels(&d.ip) {
                if force {
                    drops = v.keys;
                } else {
                    refused.push(format!(
                        "{} holds {} key(s) of its own and would become a replica of {} (losing them)",
                        d.addr, v.keys, master.addr
                    ));
                    continue;
                }
            }
        }
        resync = true;
        data_steps.push(
            &d.addr,
            Action::ReplicaOf {
                master: master_ip.clone(),
                drops_keys: drops,
            },
        );
    }
    if !refused.is_empty() {
        bail!(
            "refusing to replace data: {}; nothing was changed\nhint: --force makes them replicas anyway and DELETES their keys",
            refused.join("; ")
        );
    }
    let declared_delay = spec
        .config
        .iter()
        .find(|(k, _)| k == "repl-diskless-sync-delay")
        .map(|(_, v)| v.clone());
    let current_delay = mv.diskless_delay().map(str::to_string);
    let bootstrapping = resync && current_delay.as_deref() != Some("0");
    if bootstrapping {
        p.push(&master.addr, Action::BootstrapSettings);
    }
    p.steps.extend(data_steps.steps);
    let n_replicas = obs.data.len() - 1;
    if resync {
        p.push(
            "sentinel set",
            Action::WaitSynced {
                replicas: n_replicas,
            },
        );
    }
    let target_delay = declared_delay
        .clone()
        .or_else(|| current_delay.clone().filter(|d| d != "0"))
        .unwrap_or_else(|| DEFAULT_DISKLESS_DELAY.to_string());
    if (bootstrapping || current_delay.as_deref() == Some("0")) && target_delay != "0" {
        p.push(
            &master.addr,
            Action::RestoreSettings(vec![("repl-diskless-sync-delay".into(), target_delay)]),
        );
    }
    for (i, v) in views.iter().enumerate() {
        let drift: Vec<(String, String)> = spec
            .config
            .iter()
            .filter(|(k, want)| {
                k != "repl-diskless-sync-delay"
                    && v.config
                        .get(k)
                        .is_some_and(|have| !config_equal(have, want))
            })
            .cloned()
            .collect();
        if !drift.is_empty() {
            p.push(&obs.data[i].addr, Action::ConfigSet(drift));
        }
    }

    // 4. Sentinels.
    let mut ids: HashMap<&str, Vec<&str>> = HashMap::new();
    for s in &obs.sentinels {
        if let Some(id) = s.view().and_then(|v| v.myid.as_deref()) {
            ids.entry(id).or_default().push(&s.addr);
        }
    }
    let mut dup: Vec<String> = ids
        .iter()
        .filter(|(_, a)| a.len() > 1)
        .map(|(id, a)| format!("{} share the sentinel id {id}", a.join(" and ")))
        .collect();
    dup.sort();
    if !dup.is_empty() {
        bail!(
            "{}: sentinels with one id count as one, so quorum and failover votes break; nothing was changed\nhint: stop them, delete the `sentinel myid` line from all but one config, start them again (each draws a new id)",
            dup.join("; ")
        );
    }
    let mut sentinel_steps: Plan<Action> = Plan::new();
    let mut foreign = Vec::new();
    let mut introduce = false;
    for s in obs.sentinels.iter() {
        let monitor = Action::Monitor {
            master: master_ip.clone(),
            quorum: spec.quorum,
        };
        if let Process::Stopped { has_state: false } = s.process {
            sentinel_steps.push(&s.addr, monitor);
            introduce = true;
            continue;
        }
        let v = s.view().expect("running sentinels answer (checked above)");
        if !v.monitors() {
            sentinel_steps.push(&s.addr, monitor);
            introduce = true;
            continue;
        }
        introduce |= obs.sentinels.iter().any(|o| {
            o.addr != s.addr
                && !v
                    .sentinels
                    .iter()
                    .any(|e| entry_addr(e) == o.ip || entry_addr(e) == o.addr)
        });
        let named = v.master_addr.clone().unwrap_or_default();
        if obs.data_index(&named).is_none() {
            if force {
                sentinel_steps.push(&s.addr, Action::RemoveMonitor { was: named });
                sentinel_steps.push(&s.addr, monitor);
            } else {
                foreign.push(format!(
                    "{} monitors `{}` at {named}",
                    s.addr, spec.master_name
                ));
            }
            continue;
        }
        let mut drift: Vec<(String, String)> = Vec::new();
        if v.master_field("quorum") != Some(spec.quorum.to_string().as_str()) {
            drift.push(("quorum".into(), spec.quorum.to_string()));
        }
        for (k, want) in spec.sentinel_settings() {
            if v.master_field(&k) != Some(want.as_str()) {
                drift.push((k, want));
            }
        }
        if !drift.is_empty() {
            sentinel_steps.push(&s.addr, Action::SentinelSet(drift));
        }
        // Undeclared entries that are gone (down, not attached): stale.
        let attached: Vec<String> = mv.attached().into_iter().map(|r| r.addr).collect();
        let mut stale: Vec<String> = v
            .replicas
            .iter()
            .filter(|e| {
                let a = entry_addr(e);
                obs.data_index(&a).is_none()
                    && !attached.contains(&a)
                    && entry_flags(e)
                        .iter()
                        .any(|f| *f == "s_down" || *f == "disconnected")
            })
            .map(entry_addr)
            .chain(
                v.sentinels
                    .iter()
                    .filter(|e| {
                        obs.sentinel_index(&entry_addr(e)).is_none()
                            && entry_flags(e)
                                .iter()
                                .any(|f| *f == "s_down" || *f == "disconnected")
                    })
                    .map(entry_addr),
            )
            .collect();
        stale.sort();
        if !stale.is_empty() {
            sentinel_steps.push(&s.addr, Action::Reset { stale });
        }
    }
    if !foreign.is_empty() {
        bail!(
            "{}, which is not a data node of this topology; nothing was changed\nhint: --force removes that monitor and monitors the declared set instead",
            foreign.join("; ")
        );
    }
    if introduce {
        sentinel_steps.push("sentinel set", Action::Introduce);
    }
    let converged =
        converge::all_sentinel_gaps(obs, m).is_empty() && p.is_empty() && sentinel_steps.is_empty();
    p.steps.extend(sentinel_steps.steps);
    if !converged {
        p.push(
            "sentinel set",
            Action::WaitSentinels {
                sentinels: obs.sentinels.len(),
            },
        );
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::super::converge::fixtures::*;
    use super::super::observe::*;
    use super::*;

    fn spec() -> RedisSentinelSpec {
        match crate::topology::builtin("redis-sentinel").unwrap() {
            crate::topology::Topology::RedisSentinel(s) => s,
            _ => unreachable!(),
        }
    }

    fn render(p: &Plan<Action>) -> Vec<String> {
        p.steps
            .iter()
            .map(|s| format!("{} {}", s.target, s.action))
            .collect()
    }

    #[test]
    fn a_fresh_bootstrap_is_planned_in_one_go_with_sentinels_last() {
        let p = plan(&spec(), &nothing(), false).unwrap();
        let r = render(&p);
        let pos = |needle: &str| {
            r.iter()
                .position(|s| s.contains(needle))
                .unwrap_or_else(|| panic!("no `{needle}` in {r:#?}"))
        };
        assert_eq!(
            r.iter()
                .filter(|s| s.contains("start redis-server (new node)"))
                .count(),
            3
        );
        assert_eq!(
            r.iter()
                .filter(|s| s.contains(
                    "start redis-sentinel (new; config written with its own sentinel id)"
                ))
                .count(),
            3
        );
        assert!(
            pos("26382 start redis-sentinel") < pos("6380 CONFIG SET repl-diskless-sync-delay 0")
        );
        assert!(
            pos("6380 CONFIG SET repl-diskless-sync-delay 0")
                < pos("6381 REPLICAOF 127.0.0.1 6380")
        );
        assert!(pos("6382 REPLICAOF 127.0.0.1 6380") < pos("wait until all 2 replica(s)"));
        assert!(
            pos("wait until all 2 replica(s)") < pos("6380 CONFIG SET repl-diskless-sync-delay 5")
        );
        assert!(
            pos("6380 CONFIG SET repl-diskless-sync-delay 5")
                < pos("26380 SENTINEL MONITOR 127.0.0.1 6380 2")
        );
        assert!(pos("26382 SENTINEL MONITOR") < pos("introduce the sentinels"));
        assert!(pos("introduce the sentinels") < pos("wait until all 3 sentinels"));
        assert_eq!(r.len(), 16, "{r:#?}");
    }

    #[test]
    fn a_healthy_set_gives_an_empty_plan_even_after_a_failover() {
        for m in 0..3 {
            let p = plan(&spec(), &healthy(m), false).unwrap();
            assert!(p.is_empty(), "{:#?}", render(&p));
        }
    }

    #[test]
    fn after_a_failover_the_old_master_restarts_as_a_replica() {
        let mut obs = healthy(1);
        obs.data[0].process = Process::Stopped { has_state: true };
        obs.data[0].view = Err("not running".into());
        let r = render(&plan(&spec(), &obs, false).unwrap());
        assert_eq!(
            r,
            [
                "127.0.0.1:6380 start redis-server (restarts with its data, as a replica of 127.0.0.1:6381)",
                "sentinel set observe again once the restarted nodes answer, then plan the rest"
            ]
        );
        // Once it answers as a replica syncing, wait for it and the sentinels.
        let mut obs = healthy(1);
        obs.data[0].view = Ok(replica(DATA[1], false));
        let r = render(&plan(&spec(), &obs, false).unwrap());
        assert_eq!(
            r,
            [
                "127.0.0.1:6381 CONFIG SET repl-diskless-sync-delay 0 while the replicas sync",
                "sentinel set wait until all 2 replica(s) report master_link_status:up",
                "127.0.0.1:6381 CONFIG SET repl-diskless-sync-delay 5 + CONFIG REWRITE",
                "sentinel set wait until all 3 sentinels see the master, every replica and each other",
            ]
        );
    }

    #[test]
    fn a_down_master_is_failed_over_not_restarted() {
        let mut obs = healthy(0);
        obs.data[0].process = Process::Stopped { has_state: true };
        obs.data[0].view = Err("not running".into());
        let r = render(&plan(&spec(), &obs, false).unwrap());
        assert_eq!(r.len(), 1);
        assert!(
            r[0].contains("6380 the master 127.0.0.1:6380 is down: wait for the sentinels"),
            "{r:?}"
        );
        // Without the sentinels (all stopped, saved configs naming it), it
        // is simply started again as the master.
        for s in &mut obs.sentinels {
            s.process = Process::Stopped { has_state: true };
            s.view = Err("not running".into());
            s.saved = Some(SavedSentinel {
                myid: None,
                master_addr: Some(DATA[0].into()),
                config_epoch: 0,
            });
        }
        let r = render(&plan(&spec(), &obs, false).unwrap());
        assert_eq!(
            r[0],
            "127.0.0.1:6380 start redis-server (restarts with its data, as the master)"
        );
        assert_eq!(r.len(), 5, "{r:#?}");
    }

    #[test]
    fn an_empty_master_never_becomes_the_sync_source_of_replicas_with_data() {
        let mut obs = nothing();
        obs.data[1].process = Process::Stopped { has_state: true };
        let e = plan(&spec(), &obs, false).unwrap_err().to_string();
        assert!(
            e.contains("the master 127.0.0.1:6380 (the topology) has no data dir, while 127.0.0.1:6381 hold data"),
            "{e}"
        );
        assert!(plan(&spec(), &obs, true).is_ok());
    }

    #[test]
    fn a_master_with_its_own_keys_is_refused_unless_forced() {
        let mut obs = healthy(0);
        obs.data[2].view = Ok(master(&[], 7));
        if let Ok(v) = &mut obs.data[2].view {
            v.info.insert("master_replid".into(), "zzzz".into());
        }
        for s in &mut obs.sentinels {
            if let Ok(v) = &mut s.view {
                v.replicas.retain(|e| entry_addr(e) != DATA[2]);
            }
        }
        let e = plan(&spec(), &obs, false).unwrap_err().to_string();
        assert!(
            e.contains("127.0.0.1:6382 holds 7 key(s) of its own")
                && e.contains("nothing was changed")
                && e.contains("--force"),
            "{e}"
        );
        let r = render(&plan(&spec(), &obs, true).unwrap());
        assert!(
            r.iter().any(|s| s.contains(
                "6382 REPLICAOF 127.0.0.1 6380 + CONFIG REWRITE (--force: replaces its 7 key(s)"
            )),
            "{r:#?}"
        );
        // A former master of the same history (replid) is just re-pointed.
        if let Ok(v) = &mut obs.data[2].view {
            v.info.insert("master_replid".into(), "aaaa".into());
        }
        let r = render(&plan(&spec(), &obs, false).unwrap());
        assert!(
            r.iter()
                .any(|s| s == "127.0.0.1:6382 REPLICAOF 127.0.0.1 6380 + CONFIG REWRITE"),
            "{r:#?}"
        );
    }

    #[test]
    fn running_sentinels_get_monitor_and_settings_drift_is_fixed() {
        let mut obs = healthy(0);
        if let Ok(v) = &mut obs.sentinels[0].view {
            v.master = None;
            v.master_addr = None;
        }
        if let Ok(v) = &mut obs.sentinels[1].view {
            v.master
                .as_mut()
                .unwrap()
                .insert("down-after-milliseconds".into(), "30000".into());
        }
        let r = render(&plan(&spec(), &obs, false).unwrap());
        assert_eq!(
            r,
            [
                "127.0.0.1:26380 SENTINEL MONITOR 127.0.0.1 6380 2 + SENTINEL SET (down-after, failover-timeout, parallel-syncs, auth-pass if any)",
                "127.0.0.1:26381 SENTINEL SET down-after-milliseconds 5000",
                "sentinel set introduce the sentinels to each other (hand each one's hello to the others instead of waiting for the 2 s hello round)",
                "sentinel set wait until all 3 sentinels see the master, every replica and each other",
            ]
        );
    }

    #[test]
    fn foreign_monitors_duplicate_ids_and_wrong_servers_are_refused() {
        let mut obs = healthy(0);
        if let Ok(v) = &mut obs.sentinels[2].view {
            v.master_addr = Some("10.9.9.9:6379".into());
            v.master
                .as_mut()
                .unwrap()
                .insert("config-epoch".into(), "0".into());
        }
        // Two sentinels name 6380; the third a foreign address.
        let e = plan(&spec(), &obs, false).unwrap_err().to_string();
        assert!(
            e.contains("127.0.0.1:26382 monitors `mymaster` at 10.9.9.9:6379"),
            "{e}"
        );
        let r = render(&plan(&spec(), &obs, true).unwrap());
        assert!(r[0].contains("26382 SENTINEL REMOVE (--force"), "{r:#?}");

        let mut obs = healthy(0);
        if let Ok(v) = &mut obs.sentinels[1].view {
            v.myid = Some(format!("{:040}", 0));
        }
        let e = plan(&spec(), &obs, false).unwrap_err().to_string();
        assert!(
            e.contains("127.0.0.1:26380 and 127.0.0.1:26381 share the sentinel id"),
            "{e}"
        );

        let mut obs = healthy(0);
        obs.sentinels[1].view = Err("is not a sentinel (redis_mode:standalone)".into());
        let e = plan(&spec(), &obs, false).unwrap_err().to_string();
        assert!(e.contains("127.0.0.1:26381 is not a sentinel"), "{e}");
    }

    #[test]
    fn stale_undeclared_entries_are_reset_live_ones_are_left_alone() {
        let gone: HashMap<String, String> = [
            ("ip", "10.0.0.9"),
            ("port", "6379"),
            ("flags", "s_down,slave,disconnected"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let mut obs = healthy(0);
        if let Ok(v) = &mut obs.sentinels[1].view {
            v.replicas.push(gone.clone());
        }
        let r = render(&plan(&spec(), &obs, false).unwrap());
        assert_eq!(
            r[0],
            "127.0.0.1:26381 SENTINEL RESET to forget 10.0.0.9:6379 (one sentinel at a time)"
        );
        // Still attached to the master (someone's extra replica): not stale.
        if let Ok(v) = &mut obs.data[0].view {
            v.info.insert(
                "slave2".into(),
                "ip=10.0.0.9,port=6379,state=online,offset=1000,lag=0".into(),
            );
        }
        let r = render(&plan(&spec(), &obs, false).unwrap());
        assert!(!r.iter().any(|x| x.contains("RESET")), "{r:#?}");
    }

    #[test]
    fn an_unreachable_replica_stops_the_plan_with_its_name() {
        let mut obs = healthy(0);
        obs.data[1].process = Process::External;
        obs.data[1].view = Err("connection refused".into());
        let e = plan(&spec(), &obs, false).unwrap_err().to_string();
        assert!(
            e.contains("unreachable 127.0.0.1:6381 (connection refused); nothing was changed"),
            "{e}"
        );
    }
}
