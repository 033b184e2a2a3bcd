//! The pure planner: `(spec, observed) -> Plan<Action>`.
//!
//! Order of a full bootstrap (MongoDB's own "deploy a sharded cluster"
//! procedure, minus its waiting by hand):
//!
//! 1. start every mongod (`--configsvr` / `--shardsvr`, `--replSet`);
//! 2. `replSetInitiate` each set on one member (`configsvr: true` for the
//!    config servers), then wait until it has a primary and a healthy
//!    majority;
//! 3. start the mongos routers (`--configdb cfg/<members>`) and wait until
//!    they can read the catalog;
//! 4. `addShard "<set>/<members>"` for each shard not in `listShards`;
//! 5. per declared collection: `enableSharding` (servers < 6.0 only), the
//!    supporting index when the collection already holds documents, then
//!    `shardCollection`;
//! 6. `config.settings` `chunksize` and `balancer.activeWindow` upserts,
//!    `balancerStart` / `balancerStop`.
//!
//! Partial states produce only the missing steps. Steps whose outcome
//! cannot be predicted (members restarting with data on disk, a catalog no
//! mongos could read yet) end the plan with "observe again". Members that
//! hold data and would be wiped by an initial sync, nodes started with the
//! wrong role or set name, and collections sharded on another key are
//! refused, and the refusal changes nothing.

use super::conn::{self, CmdError};
use super::observe::{ClusterView, MemberView, Observed, Process, Unsharded};
use crate::plan::Plan;
use crate::topology::mongo::{BalancerWindow, MongoShardedSpec, ReplicaSetSpec, SetRole, ShardKey};
use anyhow::{bail, Result};
use bson::doc;
use std::collections::HashMap;
use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Start a mongod; `rejoin` when its data dir holds an earlier run.
    StartMongod {
        set: String,
        role: SetRole,
        rejoin: bool,
    },
    /// After starts whose outcome cannot be predicted.
    ObserveAgain,
    /// `replSetInitiate` on this member.
    Initiate {
        set: String,
        configsvr: bool,
        members: usize,
    },
    /// `replSetReconfig`: add declared members missing from the config and
    /// bring member options (priority, votes, hidden) to the declared ones.
    Reconfig {
        set: String,
        add: Vec<String>,
        change: Vec<String>,
    },
    /// Poll until the set has one primary and a healthy voting majority.
    WaitPrimary {
        set: String,
        majority: usize,
        voting: usize,
    },
    /// Poll until every declared member is PRIMARY, SECONDARY or ARBITER
    /// (initial syncs done), so the final status is clean.
    WaitMembers {
        set: String,
        members: usize,
    },
    StartMongos {
        configdb: String,
    },
    /// Poll until a mongos reads the catalog (`listShards` answers).
    WaitMongos,
    AddShard {
        name: String,
        seed: String,
    },
    EnableSharding {
        db: String,
    },
    CreateIndex {
        ns: String,
        key: ShardKey,
        docs: u64,
    },
    ShardCollection {
        ns: String,
        key: ShardKey,
        unique: bool,
    },
    SetChunkSize {
        mb: u32,
    },
    SetBalancerWindow {
        window: Option<BalancerWindow>,
    },
    SetBalancer {
        on: bool,
    },
}

impl Action {
    /// Steps that change which processes exist.
    pub fn is_provisioning(&self) -> bool {
        matches!(
            self,
            Action::StartMongod { .. } | Action::StartMongos { .. } | Action::ObserveAgain
        )
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::StartMongod { set, role, rejoin } => write!(
                f,
                "start mongod --{} --replSet {set} ({})",
                role.cluster_role(),
                if *rejoin {
                    "restarts with the data on disk"
                } else {
                    "new member"
                }
            ),
            Action::ObserveAgain => write!(
                f,
                "observe again, then plan the rest (it depends on what the nodes report then)"
            ),
            Action::Initiate {
                set,
                configsvr,
                members,
            } => write!(
                f,
                "replSetInitiate {{ _id: \"{set}\"{}, members: {members} }}",
                if *configsvr { ", configsvr: true" } else { "" }
            ),
            Action::Reconfig { set, add, change } => {
                let mut parts = Vec::new();
                if !add.is_empty() {
                    parts.push(format!("add {}", add.join(", ")));
                }
                if !change.is_empty() {
                    parts.push(format!("set declared options of {}", change.join(", ")));
                }
                write!(
                    f,
                    "replSetReconfig {set}: {} (one voting change per reconfig)",
                    parts.join("; ")
                )
            }
            Action::WaitPrimary {
                set,
                majority,
                voting,
            } => write!(
                f,
                "wait until {set} has a primary and at least {majority} of {voting} voting members healthy"
            ),
            Action::WaitMembers { set, members } => write!(
                f,
                "wait until all {members} members of {set} are PRIMARY, SECONDARY or ARBITER (initial sync done)"
            ),
            Action::StartMongos { configdb } => write!(f, "start mongos --configdb {configdb}"),
            Action::WaitMongos => write!(
                f,
                "wait until mongos reads the cluster catalog (listShards answers)"
            ),
            Action::AddShard { name, seed } => {
                write!(f, "addShard \"{seed}\" name \"{name}\"")
            }
            Action::EnableSharding { db } => {
                write!(f, "enableSharding \"{db}\" (needed before 6.0)")
            }
            Action::CreateIndex { ns, key, docs } => write!(
                f,
                "createIndexes {ns} {key} (supporting index: the collection holds {docs} document(s))"
            ),
            Action::ShardCollection { ns, key, unique } => write!(
                f,
                "shardCollection \"{ns}\" key {key}{}",
                if *unique { " unique: true" } else { "" }
            ),
            Action::SetChunkSize { mb } => {
                write!(f, "config.settings {{ _id: \"chunksize\" }} value = {mb} (MB, upsert)")
            }
            Action::SetBalancerWindow { window: Some(w) } => write!(
                f,
                "config.settings {{ _id: \"balancer\" }} activeWindow = {{ start: \"{}\", stop: \"{}\" }} (upsert; config primary's local time)",
                w.start, w.stop
            ),
            Action::SetBalancerWindow { window: None } => write!(
                f,
                "config.settings {{ _id: \"balancer\" }} unset activeWindow (balance any time)"
            ),
            Action::SetBalancer { on: true } => write!(f, "balancerStart"),
            Action::SetBalancer { on: false } => write!(f, "balancerStop"),
        }
    }
}

/// The view of a member that has never been initiated, used to predict the
/// plan for members not started yet.
pub fn fresh_view(set: &ReplicaSetSpec) -> MemberView {
    MemberView {
        hello: doc! {"isWritablePrimary": false, "secondary": false, "isreplicaset": true},
        status: Err(CmdError {
            code: Some(conn::code::NOT_YET_INITIALIZED),
            code_name: "NotYetInitialized".into(),
            message: "no replset config has been received".into(),
        }),
        config: None,
        cmdline: Some(doc! {
            "replication": {"replSet": &set.name},
            "sharding": {"clusterRole": set.role.cluster_role()},
        }),
        version: None,
        user_dbs: Some(Vec::new()),
    }
}

/// An empty catalog: what a freshly deployed cluster holds.
pub fn fresh_cluster() -> ClusterView {
    ClusterView {
        via: String::new(),
        version: None,
        shards: Vec::new(),
        collections: HashMap::new(),
        databases: HashMap::new(),
        settings: HashMap::new(),
        balancer: Ok(doc! {"mode": "full"}),
        chunks: HashMap::new(),
        distribution: None,
        unsharded: HashMap::new(),
    }
}

/// What to plan: everything (`init`), or one stage of a guided migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope {
    /// Processes, replica sets, routers.
    pub deploy: bool,
    pub add_shards: bool,
    /// Collections and balancer settings.
    pub shard_collections: bool,
}

impl Scope {
    pub const ALL: Scope = Scope {
        deploy: true,
        add_shards: true,
        shard_collections: true,
    };
}

/// Compute the plan. `force` allows initiating sets whose members hold data
/// that an initial sync would replace.
pub fn plan(spec: &MongoShardedSpec, obs: &Observed, force: bool) -> Result<Plan<Action>> {
    plan_scoped(spec, obs, force, Scope::ALL)
}

pub fn plan_scoped(
    spec: &MongoShardedSpec,
    obs: &Observed,
    force: bool,
    scope: Scope,
) -> Result<Plan<Action>> {
    let mut p = Plan::new();
    let mut refusals: Vec<String> = Vec::new();
    let mut unreachable: Vec<String> = Vec::new();
    let mut unpredictable = false;

    // 1. Processes.
    let mut views: Vec<Vec<(String, MemberView)>> = Vec::new();
    for (set, so) in spec.sets().zip(&obs.sets) {
        let mut vs = Vec::new();
        for m in &so.members {
            match (&m.process, &m.view) {
                (Process::Stopped { has_state }, _) => {
                    p.push(
                        &m.addr,
                        Action::StartMongod {
                            set: set.name.clone(),
                            role: set.role,
                            rejoin: *has_state,
                        },
                    );
                    unpredictable |= *has_state;
                    vs.push((m.addr.clone(), fresh_view(set)));
                }
                (_, Err(e)) if e.starts_with("AuthenticationFailed") => {
                    unreachable.push(format!("{} refused the credentials ({e})", m.addr))
                }
                (_, Err(e)) => unreachable.push(format!("{} is unreachable ({e})", m.addr)),
                (_, Ok(v)) => vs.push((m.addr.clone(), v.clone())),
            }
        }
        views.push(vs);
    }
    let mut mongos_starts = Vec::new();
    for r in &obs.routers {
        match (&r.process, &r.view) {
            (Process::Stopped { .. }, _) => mongos_starts.push(r.addr.clone()),
            (_, Err(e)) if e.starts_with("AuthenticationFailed") => {
                unreachable.push(format!("mongos {} refused the credentials ({e})", r.addr))
            }
            (_, Err(e)) => unreachable.push(format!("mongos {} is unreachable ({e})", r.addr)),
            (_, Ok(_)) => {}
        }
    }
    if !unreachable.is_empty() {
        bail!(
            "cannot plan: {}; nothing was changed\nhint: check that the nodes run and the addresses are right (with --provider existing datatier starts nothing)",
            unreachable.join("; ")
        );
    }
    if !scope.deploy && !p.is_empty() {
        bail!(
            "cannot continue: {} declared member(s) do not run ({}); nothing was changed",
            p.len(),
            p.steps
                .iter()
                .map(|s| s.target.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if unpredictable {
        p.push("cluster", Action::ObserveAgain);
        return Ok(p);
    }

    // 2. Replica sets.
    let mut set_steps: Plan<Action> = Plan::new();
    let mut member_waits: Plan<Action> = Plan::new();
    let mut config_fresh = false;
    let mut config_primary = true;
    for (set, vs) in spec.sets().zip(&views) {
        let mut set_refusals = Vec::new();
        for (addr, v) in vs {
            if let Err(e) = &v.status {
                if e.is(conn::code::NO_REPLICATION_ENABLED) {
                    set_refusals.push(format!(
                        "{addr} runs without --replSet (a standalone mongod); restart it with --replSet {} --{}",
                        set.name,
                        set.role.cluster_role()
                    ));
                    continue;
                }
            }
            if let Some(r) = v.repl_set_option() {
                if r != set.name {
                    set_refusals.push(format!(
                        "{addr} was started with --replSet {r}, but is declared a member of {}",
                        set.name
                    ));
                }
            }
            if v.cmdline.is_some() && v.cluster_role() != Some(set.role.cluster_role()) {
                set_refusals.push(format!(
                    "{addr} was started {}; a member of {} needs --{} (sharding.clusterRole: {}): restart it with that option",
                    match v.cluster_role() {
                        Some(r) => format!("as a {r}"),
                        None => "without a cluster role".to_string(),
                    },
                    set.name,
                    set.role.cluster_role(),
                    set.role.cluster_role()
                ));
            }
            if let Some(n) = v.set_name() {
                if n != set.name {
                    set_refusals.push(format!(
                        "{addr} belongs to replica set {n}, not {}",
                        set.name
                    ));
                }
            }
        }
        if !set_refusals.is_empty() {
            refusals.extend(set_refusals);
            continue;
        }
        let initiated: Vec<&(String, MemberView)> =
            vs.iter().filter(|(_, v)| v.initiated()).collect();
        if initiated.is_empty() {
            // Who initiates: the one member holding data (its data becomes
            // the set's), else the first member that can become primary.
            let with_data: Vec<(&str, &Vec<String>)> = vs
                .iter()
                .filter_map(|(a, v)| {
                    v.user_dbs
                        .as_ref()
                        .filter(|d| !d.is_empty())
                        .map(|d| (a.as_str(), d))
                })
                .collect();
            let first_electable = set
                .members
                .iter()
                .find(|m| m.electable())
                .map(|m| m.addr())
                .expect("validated: one member is electable");
            let initiator = match with_data.as_slice() {
                [(a, _)] if set.member(a).is_some_and(|m| m.electable()) => a.to_string(),
                _ => first_electable,
            };
            let wiped: Vec<String> = with_data
                .iter()
                .filter(|(a, _)| *a != initiator)
                .map(|(a, d)| format!("{a} (databases {})", d.join(", ")))
                .collect();
            if !wiped.is_empty() && !force {
                refusals.push(format!(
                    "set {}: {} hold data that the initial sync from {initiator} would replace",
                    set.name,
                    wiped.join(", ")
                ));
                continue;
            }
            if set.role == SetRole::Config {
                config_fresh = true;
            }
            set_steps.push(
                &initiator,
                Action::Initiate {
                    set: set.name.clone(),
                    configsvr: set.role == SetRole::Config,
                    members: set.members.len(),
                },
            );
            set_steps.push(&set.name, wait_primary(set));
            member_waits.push(&set.name, wait_members(set));
            if set.role == SetRole::Config {
                config_primary = false;
            }
            continue;
        }
        // Initiated: compare the newest config with the declaration.
        let newest = initiated
            .iter()
            .max_by_key(|(_, v)| v.config_version())
            .map(|(_, v)| v)
            .expect("non-empty");
        if newest.configsvr_config() != (set.role == SetRole::Config) {
            refusals.push(format!(
                "set {} is initiated {} configsvr: true, but is declared {}",
                set.name,
                if newest.configsvr_config() {
                    "with"
                } else {
                    "without"
                },
                if set.role == SetRole::Config {
                    "the config server set"
                } else {
                    "a shard"
                }
            ));
            continue;
        }
        let cfg_members = newest.config_members();
        let mut add = Vec::new();
        let mut change = Vec::new();
        for m in &set.members {
            match cfg_members.iter().find(|c| c.host == m.addr()) {
                None => add.push(m.addr()),
                Some(c) if c.arbiter != m.arbiter => refusals.push(format!(
                    "{} is {} in the config of {} but declared {}; MongoDB cannot change that by reconfig (remove and re-add the member by hand)",
                    m.addr(),
                    if c.arbiter { "an arbiter" } else { "a data-bearing member" },
                    set.name,
                    if m.arbiter { "an arbiter" } else { "data-bearing" }
                )),
                Some(c) => {
                    if c.priority != m.priority || c.votes != m.votes as i64 || c.hidden != m.hidden {
                        change.push(m.addr());
                    }
                }
            }
        }
        let has_primary = vs.iter().any(|(_, v)| v.is_primary());
        if !has_primary {
            set_steps.push(&set.name, wait_primary(set));
            if set.role == SetRole::Config {
                config_primary = false;
            }
        }
        let all_healthy = vs
            .iter()
            .find(|(_, v)| v.is_primary())
            .is_some_and(|(_, pv)| {
                let st = pv.status_members();
                set.members.iter().all(|m| {
                    st.iter().any(|(h, ok, state)| {
                        *h == m.addr()
                            && *ok
                            && ["PRIMARY", "SECONDARY", "ARBITER"].contains(&state.as_str())
                    })
                })
            });
        let reconfig = !add.is_empty() || !change.is_empty();
        if reconfig {
            set_steps.push(
                &set.name,
                Action::Reconfig {
                    set: set.name.clone(),
                    add,
                    change,
                },
            );
            set_steps.push(&set.name, wait_primary(set));
        }
        if reconfig || !all_healthy {
            member_waits.push(&set.name, wait_members(set));
        }
    }
    if !refusals.is_empty() {
        bail!(
            "refusing to change the replica sets: {}; nothing was changed",
            refusals.join("; ")
        );
    }
    if scope.deploy {
        p.steps.extend(set_steps.steps);
    } else if !set_steps.is_empty() {
        bail!(
            "cannot continue: the replica sets are not as declared yet ({}); nothing was changed",
            set_steps
                .steps
                .iter()
                .map(|s| format!("{}: {}", s.target, s.action))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }

    // 3. Routers.
    let configdb = spec.config.seed_list();
    for a in &mongos_starts {
        p.push(
            a,
            Action::StartMongos {
                configdb: configdb.clone(),
            },
        );
    }

    // 4. The catalog, actual or predicted.
    if !scope.add_shards && !scope.shard_collections {
        if scope.deploy {
            p.steps.extend(member_waits.steps);
        }
        return Ok(p);
    }
    let fresh;
    let cv: &ClusterView = match &obs.cluster {
        Some(Ok(cv)) if !config_fresh => cv,
        _ if config_fresh => {
            fresh = ClusterView {
                // The routers will run the members' version.
                version: views.iter().flatten().find_map(|(_, v)| v.version.clone()),
                ..fresh_cluster()
            };
            &fresh
        }
        // The config set holds a catalog no mongos could read yet.
        _ => {
            p.push("cluster", Action::WaitMongos);
            p.push("cluster", Action::ObserveAgain);
            return Ok(p);
        }
    };
    let mut cluster_steps: Plan<Action> = Plan::new();
    if scope.add_shards {
        for s in &spec.shards {
            match cv.shards.iter().find(|e| e.id == s.name) {
                Some(e) if e.set_name() != s.name => refusals.push(format!(
                    "shard \"{}\" is registered with host \"{}\" (replica set {}), declared replica set {}",
                    e.id,
                    e.host,
                    e.set_name(),
                    s.name
                )),
                Some(_) => {}
                None => match cv.shards.iter().find(|e| e.set_name() == s.name) {
                    Some(e) => refusals.push(format!(
                        "replica set {} is registered as shard \"{}\", declared as shard \"{}\"",
                        s.name, e.id, s.name
                    )),
                    None => cluster_steps.push(
                        "cluster",
                        Action::AddShard {
                            name: s.name.clone(),
                            seed: s.seed_list(),
                        },
                    ),
                },
            }
        }
    }
    // Shards added now may bring the declared collections' databases with
    // them (a replica set turned into a shard): what those collections
    // need (indexes, enableSharding) is known only once they are added.
    let dbs = spec.databases();
    let bringing_data: Vec<&str> =
        spec.shards
            .iter()
            .filter(|s| {
                cluster_steps.steps.iter().any(
                    |st| matches!(&st.action, Action::AddShard { name, .. } if *name == s.name),
                )
            })
            .filter(|s| {
                obs.set(&s.name).is_some_and(|so| {
                    so.members.iter().filter_map(|m| m.view()).any(|v| {
                        v.user_dbs
                            .as_ref()
                            .is_some_and(|u| u.iter().any(|d| dbs.contains(d)))
                    })
                })
            })
            .map(|s| s.name.as_str())
            .collect();
    if scope.shard_collections && !bringing_data.is_empty() && refusals.is_empty() {
        tracing::debug!(
            "shards {} bring declared databases; planning their collections after addShard",
            bringing_data.join(", ")
        );
        cluster_steps.push("cluster", Action::ObserveAgain);
    } else if scope.shard_collections {
        let needs_enable = cv
            .version
            .as_deref()
            .is_some_and(conn::needs_enable_sharding);
        let mut enabled: Vec<&str> = Vec::new();
        for c in &spec.collections {
            let ns = c.ns();
            if let Some(e) = cv.collections.get(&ns) {
                if !c.key.matches(&e.key) {
                    refusals.push(format!(
                        "{ns} is sharded on {}, declared {}; changing a shard key is resharding (reshardCollection, MongoDB 5.0+), which init does not do",
                        crate::topology::mongo::key_doc_to_string(&e.key),
                        c.key
                    ));
                }
                continue;
            }
            if needs_enable
                && !cv.db_partitioned(&c.database)
                && !enabled.contains(&c.database.as_str())
            {
                enabled.push(&c.database);
                cluster_steps.push(
                    "cluster",
                    Action::EnableSharding {
                        db: c.database.clone(),
                    },
                );
            }
            let u = cv
                .unsharded
                .get(&ns)
                .cloned()
                .unwrap_or(Unsharded::default());
            if u.docs > 0 && !u.has_key_index {
                cluster_steps.push(
                    "cluster",
                    Action::CreateIndex {
                        ns: ns.clone(),
                        key: c.key.clone(),
                        docs: u.docs,
                    },
                );
            }
            cluster_steps.push(
                "cluster",
                Action::ShardCollection {
                    ns,
                    key: c.key.clone(),
                    unique: c.unique,
                },
            );
        }
        if let Some(mb) = spec.chunk_size_mb {
            if cv.chunk_size_mb() != Some(mb as i64) {
                cluster_steps.push("cluster", Action::SetChunkSize { mb });
            }
        }
        if let Some(want) = spec.balancer_window {
            let have = cv.window();
            let same = match (&want, &have) {
                (None, None) => true,
                (Some(w), Some((s, t))) => w.start.to_string() == *s && w.stop.to_string() == *t,
                _ => false,
            };
            if !same {
                cluster_steps.push("cluster", Action::SetBalancerWindow { window: want });
            }
        }
        if let Some(on) = spec.balancer {
            let mode = cv.balancer_mode();
            let ok = if on {
                mode == Some("full")
            } else {
                mode == Some("off")
            };
            if !ok {
                cluster_steps.push("cluster", Action::SetBalancer { on });
            }
        }
    }
    if !refusals.is_empty() {
        bail!(
            "refusing to change the cluster: {}; nothing was changed",
            refusals.join("; ")
        );
    }
    if !cluster_steps.is_empty() {
        let cluster_ready = matches!(&obs.cluster, Some(Ok(_))) && config_primary;
        if !mongos_starts.is_empty() || !cluster_ready {
            p.push("cluster", Action::WaitMongos);
        }
        p.steps.extend(cluster_steps.steps);
    }
    if scope.deploy {
        p.steps.extend(member_waits.steps);
    }
    Ok(p)
}

fn wait_members(set: &ReplicaSetSpec) -> Action {
    Action::WaitMembers {
        set: set.name.clone(),
        members: set.members.len(),
    }
}

fn wait_primary(set: &ReplicaSetSpec) -> Action {
    Action::WaitPrimary {
        set: set.name.clone(),
        majority: set.majority(),
        voting: set.voting(),
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;
    use crate::engine::mongo::observe::{
        CollectionEntry, MemberObs, RouterObs, RouterView, SetObs, ShardEntry,
    };
    use crate::topology::Topology;

    pub fn spec() -> MongoShardedSpec {
        match crate::topology::builtin("mongo-sharded").unwrap() {
            Topology::MongoSharded(s) => s,
            _ => unreachable!(),
        }
    }

    pub fn running_view(set: &ReplicaSetSpec, primary: bool) -> MemberView {
        let members: Vec<bson::Document> = set
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| doc! {"_id": i as i32, "host": m.addr()})
            .collect();
        let status_members: Vec<bson::Document> = set
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| doc! {"name": m.addr(), "health": 1.0, "stateStr": if i == 0 {"PRIMARY"} else {"SECONDARY"}})
            .collect();
        MemberView {
            hello: doc! {"setName": &set.name, "isWritablePrimary": primary, "secondary": !primary},
            status: Ok(
                doc! {"set": &set.name, "myState": if primary {1} else {2}, "members": status_members},
            ),
            config: Some(
                doc! {"_id": &set.name, "version": 1, "configsvr": set.role == SetRole::Config, "members": members},
            ),
            cmdline: Some(
                doc! {"replication": {"replSet": &set.name}, "sharding": {"clusterRole": set.role.cluster_role()}},
            ),
            version: Some("7.0.14".into()),
            user_dbs: Some(vec![]),
        }
    }

    /// Observation of a cluster where everything is as declared.
    pub fn converged(s: &MongoShardedSpec) -> Observed {
        let sets = s
            .sets()
            .map(|set| SetObs {
                name: set.name.clone(),
                role: set.role,
                members: set
                    .members
                    .iter()
                    .enumerate()
                    .map(|(i, m)| MemberObs {
                        addr: m.addr(),
                        process: Process::Running(100 + i as u32),
                        view: Ok(running_view(set, i == 0)),
                    })
                    .collect(),
            })
            .collect();
        let mut cv = fresh_cluster();
        cv.version = Some("7.0.14".into());
        cv.shards = s
            .shards
            .iter()
            .map(|x| ShardEntry {
                id: x.name.clone(),
                host: x.seed_list(),
                draining: false,
            })
            .collect();
        for c in &s.collections {
            cv.collections.insert(
                c.ns(),
                CollectionEntry {
                    ns: c.ns(),
                    key: c.key.to_document(),
                    unique: false,
                    uuid: None,
                },
            );
        }
        cv.settings
            .insert("chunksize".into(), doc! {"_id": "chunksize", "value": 64});
        cv.settings.insert(
            "balancer".into(),
            doc! {"_id": "balancer", "mode": "full", "activeWindow": {"start": "02:00", "stop": "06:00"}},
        );
        Observed {
            sets,
            routers: s
                .mongos
                .iter()
                .map(|r| RouterObs {
                    addr: r.addr(),
                    process: Process::Running(9),
                    view: Ok(RouterView {
                        hello: doc! {"msg": "isdbgrid"},
                        version: Some("7.0.14".into()),
                    }),
                })
                .collect(),
            cluster: Some(Ok(cv)),
        }
    }

    pub fn nothing_running(s: &MongoShardedSpec) -> Observed {
        let mut o = converged(s);
        for set in &mut o.sets {
            for m in &mut set.members {
                m.process = Process::Stopped { has_state: false };
                m.view = Err("not running".into());
            }
        }
        for r in &mut o.routers {
            r.process = Process::Stopped { has_state: false };
            r.view = Err("not running".into());
        }
        o.cluster = None;
        o
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::*;
    use super::*;

    fn rendered(p: &Plan<Action>) -> Vec<String> {
        p.steps
            .iter()
            .map(|s| format!("{} {}", s.target, s.action))
            .collect()
    }

    #[test]
    fn converged_cluster_has_an_empty_plan() {
        let s = spec();
        let p = plan(&s, &converged(&s), false).unwrap();
        assert!(p.is_empty(), "{:#?}", rendered(&p));
    }

    #[test]
    fn from_scratch_the_whole_bootstrap_is_planned_in_order() {
        let s = spec();
        let p = plan(&s, &nothing_running(&s), false).unwrap();
        let r = rendered(&p);
        assert_eq!(
            r[0],
            "127.0.0.1:27101 start mongod --configsvr --replSet cfg (new member)"
        );
        assert_eq!(
            r[3],
            "127.0.0.1:27201 start mongod --shardsvr --replSet shard1 (new member)"
        );
        assert_eq!(
            r[9],
            "127.0.0.1:27101 replSetInitiate { _id: \"cfg\", configsvr: true, members: 3 }"
        );
        assert_eq!(
            r[10],
            "cfg wait until cfg has a primary and at least 2 of 3 voting members healthy"
        );
        assert_eq!(
            r[11],
            "127.0.0.1:27201 replSetInitiate { _id: \"shard1\", members: 3 }"
        );
        assert_eq!(
            r[15],
            "127.0.0.1:27017 start mongos --configdb cfg/127.0.0.1:27101,127.0.0.1:27102,127.0.0.1:27103"
        );
        assert_eq!(
            r[16],
            "cluster wait until mongos reads the cluster catalog (listShards answers)"
        );
        assert_eq!(
            r[17],
            "cluster addShard \"shard1/127.0.0.1:27201,127.0.0.1:27202,127.0.0.1:27203\" name \"shard1\""
        );
        assert_eq!(
            r[19],
            "cluster shardCollection \"credibility_prod.analyses\" key { createdAt: \"hashed\", userId: 1 }"
        );
        assert_eq!(
            r[20],
            "cluster config.settings { _id: \"chunksize\" } value = 64 (MB, upsert)"
        );
        assert!(r[21].contains("activeWindow = { start: \"02:00\", stop: \"06:00\" }"));
        // the fresh balancer is already on: no balancerStart
        assert_eq!(
            r[22],
            "cfg wait until all 3 members of cfg are PRIMARY, SECONDARY or ARBITER (initial sync done)"
        );
        assert_eq!(r.len(), 25);
    }

    #[test]
    fn half_done_bootstrap_plans_only_the_rest() {
        let s = spec();
        let mut o = converged(&s);
        // shard2 never initiated, not registered; settings never written
        let shard2 = &s.shards[1];
        for m in &mut o.sets[2].members {
            m.view = Ok(fresh_view(shard2));
        }
        let Some(Ok(cv)) = &mut o.cluster else {
            unreachable!()
        };
        cv.shards.retain(|e| e.id != "shard2");
        cv.settings.clear();
        cv.collections.clear();
        cv.unsharded.insert(
            "credibility_prod.analyses".into(),
            Unsharded {
                docs: 500,
                has_key_index: false,
            },
        );
        let r = rendered(&plan(&s, &o, false).unwrap());
        assert_eq!(
            r,
            [
                "127.0.0.1:27301 replSetInitiate { _id: \"shard2\", members: 3 }",
                "shard2 wait until shard2 has a primary and at least 2 of 3 voting members healthy",
                "cluster addShard \"shard2/127.0.0.1:27301,127.0.0.1:27302,127.0.0.1:27303\" name \"shard2\"",
                "cluster createIndexes credibility_prod.analyses { createdAt: \"hashed\", userId: 1 } (supporting index: the collection holds 500 document(s))",
                "cluster shardCollection \"credibility_prod.analyses\" key { createdAt: \"hashed\", userId: 1 }",
                "cluster config.settings { _id: \"chunksize\" } value = 64 (MB, upsert)",
                "cluster config.settings { _id: \"balancer\" } activeWindow = { start: \"02:00\", stop: \"06:00\" } (upsert; config primary's local time)",
                "shard2 wait until all 3 members of shard2 are PRIMARY, SECONDARY or ARBITER (initial sync done)",
            ]
        );
    }

    #[test]
    fn shards_bringing_data_are_added_before_their_collections_are_planned() {
        let s = spec();
        let mut o = converged(&s);
        let Some(Ok(cv)) = &mut o.cluster else {
            unreachable!()
        };
        cv.shards.clear();
        cv.collections.clear();
        for m in &mut o.sets[1].members {
            if let Ok(v) = &mut m.view {
                v.user_dbs = Some(vec!["credibility_prod".into()]);
            }
        }
        let r = rendered(&plan(&s, &o, false).unwrap());
        assert_eq!(
            r,
            [
                "cluster addShard \"shard1/127.0.0.1:27201,127.0.0.1:27202,127.0.0.1:27203\" name \"shard1\"",
                "cluster addShard \"shard2/127.0.0.1:27301,127.0.0.1:27302,127.0.0.1:27303\" name \"shard2\"",
                "cluster observe again, then plan the rest (it depends on what the nodes report then)",
            ]
        );
    }

    #[test]
    fn old_servers_get_enable_sharding_once_per_database() {
        let mut s = spec();
        let mut c2 = s.collections[0].clone();
        c2.name = "other".into();
        s.collections.push(c2);
        let mut o = converged(&s);
        let Some(Ok(cv)) = &mut o.cluster else {
            unreachable!()
        };
        cv.version = Some("5.0.26".into());
        cv.collections.clear();
        let r = rendered(&plan(&s, &o, false).unwrap());
        assert_eq!(
            r.iter().filter(|x| x.contains("enableSharding")).count(),
            1,
            "{r:#?}"
        );
        assert!(
            r[0].contains("enableSharding \"credibility_prod\""),
            "{r:#?}"
        );
        cv_partitioned(&mut o);
        let r = rendered(&plan(&s, &o, false).unwrap());
        assert!(!r.iter().any(|x| x.contains("enableSharding")), "{r:#?}");
    }

    fn cv_partitioned(o: &mut Observed) {
        let Some(Ok(cv)) = &mut o.cluster else {
            unreachable!()
        };
        cv.databases.insert(
            "credibility_prod".into(),
            doc! {"_id": "credibility_prod", "primary": "shard1", "partitioned": true},
        );
    }

    #[test]
    fn drifted_settings_and_balancer() {
        let mut s = spec();
        s.balancer = Some(false);
        s.balancer_window = Some(None);
        let mut o = converged(&s);
        let Some(Ok(cv)) = &mut o.cluster else {
            unreachable!()
        };
        cv.settings
            .insert("chunksize".into(), doc! {"_id": "chunksize", "value": 128});
        let r = rendered(&plan(&s, &o, false).unwrap());
        assert_eq!(
            r,
            [
                "cluster config.settings { _id: \"chunksize\" } value = 64 (MB, upsert)",
                "cluster config.settings { _id: \"balancer\" } unset activeWindow (balance any time)",
                "cluster balancerStop",
            ]
        );
    }

    #[test]
    fn refusals_change_nothing() {
        let s = spec();
        // a collection sharded on another key
        let mut o = converged(&s);
        let Some(Ok(cv)) = &mut o.cluster else {
            unreachable!()
        };
        cv.collections
            .get_mut("credibility_prod.analyses")
            .unwrap()
            .key = doc! {"userId": 1};
        let e = plan(&s, &o, false).unwrap_err().to_string();
        assert!(
            e.contains("credibility_prod.analyses is sharded on { userId: 1 }, declared { createdAt: \"hashed\", userId: 1 }"),
            "{e}"
        );
        assert!(e.contains("nothing was changed"), "{e}");

        // a shard member started without --shardsvr
        let mut o = converged(&s);
        if let Ok(v) = &mut o.sets[1].members[2].view {
            v.cmdline = Some(doc! {"replication": {"replSet": "shard1"}});
        }
        let e = plan(&s, &o, false).unwrap_err().to_string();
        assert!(
            e.contains("127.0.0.1:27203 was started without a cluster role; a member of shard1 needs --shardsvr"),
            "{e}"
        );

        // members with data that an initial sync would wipe
        let mut o = nothing_running(&s);
        for (i, m) in o.sets[1].members.iter_mut().enumerate() {
            m.process = Process::External;
            let mut v = fresh_view(&s.shards[0]);
            if i > 0 {
                v.user_dbs = Some(vec!["shop".into()]);
            }
            m.view = Ok(v);
        }
        let e = plan(&s, &o, false).unwrap_err().to_string();
        assert!(e.contains("127.0.0.1:27202 (databases shop)"), "{e}");
        // --force accepts it; the member holding data initiates when it is the only one
        plan(&s, &o, true).unwrap();
        if let Ok(v) = &mut o.sets[1].members[2].view {
            v.user_dbs = Some(vec![]);
        }
        let r = rendered(&plan(&s, &o, false).unwrap());
        assert!(
            r.iter()
                .any(|x| x == "127.0.0.1:27202 replSetInitiate { _id: \"shard1\", members: 3 }"),
            "{r:#?}"
        );

        // unreachable with the existing provider
        let mut o = converged(&s);
        o.sets[0].members[1].process = Process::External;
        o.sets[0].members[1].view = Err("connection refused".into());
        let e = plan(&s, &o, false).unwrap_err().to_string();
        assert!(
            e.starts_with("cannot plan: 127.0.0.1:27102 is unreachable (connection refused)"),
            "{e}"
        );

        // a shard registered under another name
        let mut o = converged(&s);
        let Some(Ok(cv)) = &mut o.cluster else {
            unreachable!()
        };
        cv.shards[0].id = "shard0000".into();
        let e = plan(&s, &o, false).unwrap_err().to_string();
        assert!(
            e.contains("replica set shard1 is registered as shard \"shard0000\""),
            "{e}"
        );
    }

    #[test]
    fn restarted_members_with_data_are_observed_again() {
        let s = spec();
        let mut o = nothing_running(&s);
        o.sets[0].members[0].process = Process::Stopped { has_state: true };
        let r = rendered(&plan(&s, &o, false).unwrap());
        assert!(r[0].contains("restarts with the data on disk"), "{r:#?}");
        assert_eq!(
            r.last().unwrap(),
            "cluster observe again, then plan the rest (it depends on what the nodes report then)"
        );
    }

    #[test]
    fn missing_members_are_added_and_options_reconfigured() {
        let mut s = spec();
        s.shards[0].members[2].priority = 0.0;
        s.shards[0].members[2].hidden = true;
        let mut o = converged(&s);
        // the config only knows the first two members
        for m in &mut o.sets[1].members {
            if let Ok(v) = &mut m.view {
                let c = v.config.as_mut().unwrap();
                let ms = c.get_array_mut("members").unwrap();
                ms.truncate(2);
            }
        }
        let r = rendered(&plan(&s, &o, false).unwrap());
        assert_eq!(
            r,
            [
                "shard1 replSetReconfig shard1: add 127.0.0.1:27203 (one voting change per reconfig)",
                "shard1 wait until shard1 has a primary and at least 2 of 3 voting members healthy",
                "shard1 wait until all 3 members of shard1 are PRIMARY, SECONDARY or ARBITER (initial sync done)",
            ]
        );
        let mut o = converged(&s);
        let r = rendered(&plan(&s, &o, false).unwrap());
        assert_eq!(
            r[0],
            "shard1 replSetReconfig shard1: set declared options of 127.0.0.1:27203 (one voting change per reconfig)"
        );
        // a set without a primary: wait for it; the catalog is then unknown
        for m in &mut o.sets[0].members {
            if let Ok(v) = &mut m.view {
                v.hello.insert("isWritablePrimary", false);
            }
        }
        o.cluster = Some(Err("listShards: FailedToSatisfyReadPreference (133)".into()));
        let r = rendered(&plan(&s, &o, false).unwrap());
        assert!(
            r.contains(
                &"cfg wait until cfg has a primary and at least 2 of 3 voting members healthy"
                    .to_string()
            ),
            "{r:#?}"
        );
        assert_eq!(
            r.last().unwrap(),
            "cluster observe again, then plan the rest (it depends on what the nodes report then)"
        );
    }

    #[test]
    fn migration_scopes() {
        let s = spec();
        let o = nothing_running(&s);
        let scope = Scope {
            deploy: true,
            add_shards: false,
            shard_collections: false,
        };
        let r = rendered(&plan_scoped(&s, &o, false, scope).unwrap());
        assert!(!r.iter().any(|x| x.contains("addShard")), "{r:#?}");
        assert!(r.iter().any(|x| x.contains("start mongos")), "{r:#?}");
        let scope = Scope {
            deploy: false,
            add_shards: true,
            shard_collections: false,
        };
        let e = plan_scoped(&s, &o, false, scope).unwrap_err().to_string();
        assert!(e.contains("do not run"), "{e}");
    }
}
