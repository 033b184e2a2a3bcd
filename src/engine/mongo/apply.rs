//! Executing a plan, phase by phase; inside a phase every set (or node) is
//! handled at once:
//!
//! 1. start mongods;
//! 2. `replSetInitiate`;
//! 3. reconfigs;
//! 4. wait for primaries;
//! 5. start mongos;
//! 6. wait until a mongos reads the catalog;
//! 7. observe again, when the plan says so;
//! 8. catalog steps in plan order (addShard, enableSharding, indexes,
//!    shardCollection, settings);
//! 9. wait for every member's initial sync.
//!
//! Every step checks before it acts (addShard against `listShards`,
//! shardCollection against `config.collections`, AlreadyInitialized from
//! `replSetInitiate` is success when the set is ours), so a run that fails
//! half-way is completed by running `init` again. Waits poll the real
//! condition with backoff up to `--timeout` and say what is still missing.

use super::conn::{self, code, int, step_error, Auth, CmdError, Node, NODE_TIMEOUT};
use super::observe::config_members;
use super::plan::Action;
use super::process;
use super::MongoEngine;
use crate::engine::{Applied, Ctx};
use crate::plan::{Plan, Step};
use crate::provider::local;
use crate::topology::mongo::{BalancerWindow, MongoShardedSpec, ReplicaSetSpec, ShardKey};
use crate::wait::{self, Poll};
use anyhow::{anyhow, bail, Context, Result};
use bson::{doc, Bson, Document};
use std::time::{Duration, Instant};

fn steps_of(plan: &Plan<Action>, pred: fn(&Action) -> bool) -> Vec<&Step<Action>> {
    plan.steps.iter().filter(|s| pred(&s.action)).collect()
}

pub async fn apply(engine: &MongoEngine<'_>, ctx: &Ctx, plan: Plan<Action>) -> Result<Applied> {
    let spec = engine.spec;
    let started = Instant::now();
    let phase = |name: &str| {
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "phase {name}"
        )
    };

    // 1. mongod processes.
    let starts = steps_of(&plan, |a| matches!(a, Action::StartMongod { .. }));
    if !starts.is_empty() {
        phase("start mongod");
        start_mongods(spec, ctx, &starts).await?;
    }
    let only_provisioning = plan
        .steps
        .iter()
        .all(|s| matches!(s.action, Action::StartMongod { .. } | Action::ObserveAgain));
    if only_provisioning && plan.steps.iter().any(|s| s.action == Action::ObserveAgain) {
        return Ok(Applied::Replan);
    }

    // 2. replSetInitiate, every set at once.
    let inits = steps_of(&plan, |a| matches!(a, Action::Initiate { .. }));
    if !inits.is_empty() {
        phase("initiate");
        futures::future::try_join_all(inits.iter().map(|s| {
            let Action::Initiate { set, .. } = &s.action else {
                unreachable!()
            };
            let set = spec.set(set).expect("planned from the spec");
            initiate(set, &s.target, ctx.timeout, &engine.auth)
        }))
        .await?;
    }

    // 3. Reconfigs (each waits for its set's primary first).
    let reconfigs = steps_of(&plan, |a| matches!(a, Action::Reconfig { .. }));
    if !reconfigs.is_empty() {
        phase("reconfig");
        futures::future::try_join_all(reconfigs.iter().map(|s| {
            let Action::Reconfig { set, .. } = &s.action else {
                unreachable!()
            };
            let set = spec.set(set).expect("planned from the spec");
            reconfig(set, ctx.timeout, &engine.auth)
        }))
        .await?;
    }

    // 4. Primaries.
    let waits = steps_of(&plan, |a| matches!(a, Action::WaitPrimary { .. }));
    if !waits.is_empty() {
        phase("wait for primaries");
        let mut names: Vec<&str> = Vec::new();
        for s in &waits {
            if let Action::WaitPrimary { set, .. } = &s.action {
                if !names.contains(&set.as_str()) {
                    names.push(set);
                }
            }
        }
        futures::future::try_join_all(names.iter().map(|n| {
            let set = spec.set(n).expect("planned from the spec");
            wait_primary(set, ctx.timeout, &engine.auth)
        }))
        .await?;
        tracing::info!(
            "{}: {} replica set(s) have a primary ({:.2}s)",
            spec.meta.name,
            names.len(),
            started.elapsed().as_secs_f64()
        );
    }

    // 5. Routers.
    let mongos = steps_of(&plan, |a| matches!(a, Action::StartMongos { .. }));
    if !mongos.is_empty() {
        phase("start mongos");
        start_mongos(spec, ctx, &mongos).await?;
    }

    // 6. A mongos that reads the catalog.
    let needs_router = plan.steps.iter().any(|s| {
        matches!(
            s.action,
            Action::WaitMongos
                | Action::AddShard { .. }
                | Action::EnableSharding { .. }
                | Action::CreateIndex { .. }
                | Action::ShardCollection { .. }
                | Action::SetChunkSize { .. }
                | Action::SetBalancerWindow { .. }
                | Action::SetBalancer { .. }
        )
    });
    if needs_router {
        phase("wait for mongos");
        let router = wait_router(spec, ctx.timeout, &engine.auth).await?;

        // 7./8. Catalog steps in plan order, up to an "observe again".
        phase("catalog");
        let router = router.with_timeout(ctx.timeout);
        for s in &plan.steps {
            if s.action == Action::ObserveAgain {
                return Ok(Applied::Replan);
            }
            catalog_step(spec, &router, &s.action).await?;
        }
    } else if plan.steps.iter().any(|s| s.action == Action::ObserveAgain) {
        return Ok(Applied::Replan);
    }

    // 9. Initial syncs.
    let member_waits = steps_of(&plan, |a| matches!(a, Action::WaitMembers { .. }));
    if !member_waits.is_empty() {
        phase("wait for members");
        futures::future::try_join_all(member_waits.iter().map(|s| {
            let Action::WaitMembers { set, .. } = &s.action else {
                unreachable!()
            };
            let set = spec.set(set).expect("planned from the spec");
            wait_members(set, ctx.timeout, &engine.auth)
        }))
        .await?;
    }
    tracing::info!(
        "{}: applied in {:.2}s",
        spec.meta.name,
        started.elapsed().as_secs_f64()
    );
    Ok(Applied::Done)
}

async fn start_mongods(spec: &MongoShardedSpec, ctx: &Ctx, steps: &[&Step<Action>]) -> Result<()> {
    // Check every port before starting anything: all or nothing.
    for s in steps {
        local::check_port_free(&s.target)
            .with_context(|| format!("cannot start mongod {}; nothing was started", s.target))?;
    }
    let bin = process::mongod_bin(spec)?;
    ctx.state.create()?;
    let recs = steps
        .iter()
        .map(|s| {
            let Action::StartMongod { set, .. } = &s.action else {
                unreachable!()
            };
            let set = spec.set(set).expect("planned from the spec");
            let m = set.member(&s.target).expect("planned from the spec");
            process::mongod_record(&ctx.state, spec, set, m, &bin)
        })
        .collect::<Result<Vec<_>>>()?;
    start_all(ctx, &recs, "mongod").await
}

async fn start_mongos(spec: &MongoShardedSpec, ctx: &Ctx, steps: &[&Step<Action>]) -> Result<()> {
    for s in steps {
        local::check_port_free(&s.target)
            .with_context(|| format!("cannot start mongos {}; nothing was started", s.target))?;
    }
    let bin = process::mongos_bin(spec)?;
    ctx.state.create()?;
    let recs = steps
        .iter()
        .map(|s| {
            let r = spec
                .mongos
                .iter()
                .find(|r| r.addr() == s.target)
                .expect("planned from the spec");
            process::mongos_record(&ctx.state, spec, r, &bin)
        })
        .collect::<Result<Vec<_>>>()?;
    start_all(ctx, &recs, "mongos").await
}

async fn start_all(ctx: &Ctx, recs: &[local::ProcessRecord], what: &str) -> Result<()> {
    let t = ctx.timeout;
    let state = &ctx.state;
    futures::future::try_join_all(recs.iter().map(|rec| async move {
        match local::start(state, rec, None, t).await? {
            local::Started::Spawned(pid) => {
                tracing::info!("{}: started {what} (pid {pid})", rec.node)
            }
            local::Started::Reused(pid) => {
                tracing::info!("{}: {what} already running (pid {pid})", rec.node)
            }
        }
        Ok::<_, anyhow::Error>(())
    }))
    .await?;
    Ok(())
}

/// The `replSetInitiate` config document for a declared set.
pub fn initiate_config(set: &ReplicaSetSpec) -> Document {
    let members: Vec<Bson> = set
        .members
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mut d = doc! {"_id": i as i32, "host": m.addr()};
            if m.arbiter {
                d.insert("arbiterOnly", true);
            }
            if m.priority != 1.0 && !m.arbiter {
                d.insert("priority", m.priority);
            }
            if m.votes != 1 {
                d.insert("votes", m.votes as i32);
            }
            if m.hidden {
                d.insert("hidden", true);
            }
            Bson::Document(d)
        })
        .collect();
    let mut c = doc! {"_id": &set.name};
    if set.role == crate::topology::mongo::SetRole::Config {
        c.insert("configsvr", true);
    }
    c.insert("members", members);
    c
}

async fn initiate(set: &ReplicaSetSpec, addr: &str, timeout: Duration, auth: &Auth) -> Result<()> {
    let node = connect(addr, auth).await?.with_timeout(timeout);
    let cfg = initiate_config(set);
    match node.admin(doc! {"replSetInitiate": cfg}).await {
        Ok(_) => {
            tracing::info!("{addr}: initiated replica set {}", set.name);
            Ok(())
        }
        // A re-run after a crash between the command and our observation.
        Err(e) if e.is(code::ALREADY_INITIALIZED) => {
            let cfg = node
                .admin(doc! {"replSetGetConfig": 1})
                .await
                .map_err(|e| step_error(addr, "replSetGetConfig", &e))?;
            let name = cfg
                .get_document("config")
                .and_then(|c| c.get_str("_id"))
                .unwrap_or("?");
            if name == set.name {
                Ok(())
            } else {
                bail!(
                    "{addr}: replSetInitiate for {} refused: it already belongs to replica set {name}; nothing was changed",
                    set.name
                )
            }
        }
        Err(e) => Err(step_error(
            addr,
            &format!("replSetInitiate for replica set {}", set.name),
            &e,
        )
        .context("no member of this set was changed; fix the cause and run `datatier init` again")),
    }
}

async fn connect(addr: &str, auth: &Auth) -> Result<Node> {
    conn::connect(addr, NODE_TIMEOUT, auth)
        .await
        .map_err(|e| anyhow!("{addr}: {e}"))
}

/// The next config on the way from `current` to the declared members, or
/// `None` when they match. MongoDB (4.4+) accepts one voting change per
/// reconfig, so at most one member gains or loses a vote per step;
/// priority and hidden changes of members whose vote stays go together.
pub fn next_config(current: &Document, set: &ReplicaSetSpec) -> Option<Document> {
    let have = config_members(Some(current));
    let mut members: Vec<Document> = current
        .get_array("members")
        .map(|a| a.iter().filter_map(Bson::as_document).cloned().collect())
        .unwrap_or_default();
    let mut changed = false;
    let mut voting_change = false;
    let mut next_id = have.iter().map(|m| m.id).max().unwrap_or(-1) + 1;
    for m in &set.members {
        match have.iter().position(|h| h.host == m.addr()) {
            Some(i) => {
                let h = &have[i];
                let vote_differs = h.votes != m.votes as i64;
                if vote_differs && voting_change {
                    continue;
                }
                if h.priority != m.priority || h.hidden != m.hidden || vote_differs {
                    let d = &mut members[i];
                    if !m.arbiter {
                        d.insert("priority", m.priority);
                    }
                    d.insert("hidden", m.hidden);
                    d.insert("votes", m.votes as i32);
                    changed = true;
                    voting_change |= vote_differs;
                }
            }
            None => {
                if m.votes > 0 && voting_change {
                    continue;
                }
                let mut d = doc! {"_id": next_id as i32, "host": m.addr()};
                next_id += 1;
                if m.arbiter {
                    d.insert("arbiterOnly", true);
                } else {
                    d.insert("priority", m.priority);
                }
                d.insert("votes", m.votes as i32);
                if m.hidden {
                    d.insert("hidden", true);
                }
                members.push(d);
                changed = true;
                voting_change |= m.votes > 0;
            }
        }
    }
    if !changed {
        return None;
    }
    let mut next = current.clone();
    for d in &mut members {
        d.remove("newlyAdded");
    }
    next.insert("members", members);
    next.insert(
        "version",
        (int(current.get("version")).unwrap_or(1) + 1) as i32,
    );
    // The server sets the term itself.
    next.remove("term");
    Some(next)
}

/// Reconfigure until the set's config holds the declared members: one
/// change per `replSetReconfig`, each sent to the current primary; a
/// config still propagating (109, 308) or a primary stepping down is
/// retried by the poll, anything else fails at once.
async fn reconfig(set: &ReplicaSetSpec, timeout: Duration, auth: &Auth) -> Result<()> {
    let deadline = Instant::now() + timeout;
    wait::until(
        &format!("replica set {} to take the declared members", set.name),
        timeout,
        Duration::from_millis(20),
        Duration::from_millis(500),
        || async move {
            let left = deadline.saturating_duration_since(Instant::now());
            let primary = match wait_primary(set, left, auth).await {
                Ok(p) => p,
                Err(e) => return Poll::Ready(Err(e)),
            };
            let node = primary.with_timeout(left.max(Duration::from_secs(1)));
            let cfg = match node.admin(doc! {"replSetGetConfig": 1}).await {
                Ok(c) => c.get_document("config").cloned().unwrap_or_default(),
                Err(e) => return Poll::Pending(format!("{}: replSetGetConfig: {e}", node.addr)),
            };
            let Some(next) = next_config(&cfg, set) else {
                return Poll::Ready(Ok(()));
            };
            match node.admin(doc! {"replSetReconfig": next}).await {
                Ok(_) => {
                    tracing::info!("{}: reconfigured {}", node.addr, set.name);
                    Poll::Pending("one change applied; checking for the next".into())
                }
                Err(e)
                    if e.is(code::CONFIGURATION_IN_PROGRESS)
                        || e.is(code::CURRENT_CONFIG_NOT_COMMITTED_YET)
                        || e.is(code::NOT_WRITABLE_PRIMARY)
                        || e.code.is_none() =>
                {
                    Poll::Pending(format!("{}: replSetReconfig: {e}", node.addr))
                }
                Err(e) => Poll::Ready(Err(step_error(
                    &node.addr,
                    &format!("replSetReconfig of {}", set.name),
                    &e,
                ))),
            }
        },
    )
    .await?
}

/// One member's `hello`, or why not.
async fn hello(addr: &str, auth: &Auth) -> Result<Document, CmdError> {
    let n = conn::connect(addr, NODE_TIMEOUT, auth).await?;
    n.admin(doc! {"hello": 1}).await
}

/// Poll until the set has one primary and a healthy voting majority;
/// returns a connection to the primary.
pub async fn wait_primary(set: &ReplicaSetSpec, timeout: Duration, auth: &Auth) -> Result<Node> {
    let addrs = set.addrs();
    wait::until(
        &format!("replica set {} to elect a primary", set.name),
        timeout,
        Duration::from_millis(20),
        Duration::from_millis(250),
        || {
            let addrs = addrs.clone();
            async move {
                let hellos =
                    futures::future::join_all(addrs.iter().map(|a| hello(a, auth))).await;
                let mut states = Vec::new();
                let mut primary = None;
                for (a, h) in addrs.iter().zip(&hellos) {
                    match h {
                        Ok(h) if h.get_str("setName").ok() == Some(set.name.as_str())
                            && h.get_bool("isWritablePrimary").unwrap_or(false) =>
                        {
                            primary = Some(a.clone());
                            states.push(format!("{a} PRIMARY"));
                        }
                        Ok(h) if h.get_bool("secondary").unwrap_or(false) => {
                            states.push(format!("{a} SECONDARY"))
                        }
                        Ok(h) if h.get_bool("arbiterOnly").unwrap_or(false) => {
                            states.push(format!("{a} ARBITER"))
                        }
                        Ok(_) => states.push(format!("{a} not yet a member")),
                        Err(e) => states.push(format!("{a} {e}")),
                    }
                }
                let Some(p) = primary else {
                    return Poll::Pending(format!("no primary yet ({})", states.join(", ")));
                };
                let node = match conn::connect(&p, NODE_TIMEOUT, auth).await {
                    Ok(n) => n,
                    Err(e) => return Poll::Pending(format!("{p}: {e}")),
                };
                match healthy_voting(&node).await {
                    Ok((healthy, majority, _)) if healthy >= majority => Poll::Ready(node),
                    Ok((healthy, majority, voting)) => Poll::Pending(format!(
                        "primary {p}, but only {healthy} of {voting} voting members healthy (need {majority})"
                    )),
                    Err(e) => Poll::Pending(format!("{p}: replSetGetStatus: {e}")),
                }
            }
        },
    )
    .await
}

/// (healthy voting members, majority, voting members) from the primary.
async fn healthy_voting(primary: &Node) -> Result<(usize, usize, usize), CmdError> {
    let (status, cfg) = tokio::join!(
        primary.admin(doc! {"replSetGetStatus": 1}),
        primary.admin(doc! {"replSetGetConfig": 1})
    );
    let status = status?;
    let cfg = cfg?;
    let members = config_members(cfg.get_document("config").ok());
    let voters: Vec<&str> = members
        .iter()
        .filter(|m| m.votes > 0)
        .map(|m| m.host.as_str())
        .collect();
    let healthy = status
        .get_array("members")
        .map(|a| {
            a.iter()
                .filter_map(Bson::as_document)
                .filter(|m| {
                    voters.contains(&m.get_str("name").unwrap_or(""))
                        && m.get("health")
                            .and_then(crate::topology::mongo::bson_number)
                            .unwrap_or(0.0)
                            >= 1.0
                        && matches!(int(m.get("state")), Some(1) | Some(2) | Some(7))
                })
                .count()
        })
        .unwrap_or(0);
    Ok((healthy, voters.len() / 2 + 1, voters.len()))
}

/// Poll until every declared member is PRIMARY, SECONDARY or ARBITER.
async fn wait_members(set: &ReplicaSetSpec, timeout: Duration, auth: &Auth) -> Result<()> {
    let primary = wait_primary(set, timeout, auth).await?;
    wait::until(
        &format!("every member of {} to finish its initial sync", set.name),
        timeout,
        Duration::from_millis(20),
        Duration::from_millis(250),
        || {
            let primary = primary.clone();
            async move {
                let status = match primary.admin(doc! {"replSetGetStatus": 1}).await {
                    Ok(s) => s,
                    Err(e) => return Poll::Pending(format!("replSetGetStatus: {e}")),
                };
                let members: Vec<(String, String)> = status
                    .get_array("members")
                    .map(|a| {
                        a.iter()
                            .filter_map(Bson::as_document)
                            .map(|m| {
                                (
                                    m.get_str("name").unwrap_or("").to_string(),
                                    m.get_str("stateStr").unwrap_or("?").to_string(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let behind: Vec<String> = set
                    .members
                    .iter()
                    .filter_map(|m| {
                        let a = m.addr();
                        match members.iter().find(|(n, _)| *n == a) {
                            Some((_, s))
                                if ["PRIMARY", "SECONDARY", "ARBITER"].contains(&s.as_str()) =>
                            {
                                None
                            }
                            Some((_, s)) => Some(format!("{a} {s}")),
                            None => Some(format!("{a} not in the set yet")),
                        }
                    })
                    .collect();
                if behind.is_empty() {
                    Poll::Ready(())
                } else {
                    Poll::Pending(behind.join(", "))
                }
            }
        },
    )
    .await
}

/// Poll until a declared mongos answers `listShards` (it reads the catalog
/// from the config servers); returns a connection to it.
async fn wait_router(spec: &MongoShardedSpec, timeout: Duration, auth: &Auth) -> Result<Node> {
    let addrs = spec.mongos_addrs();
    wait::until(
        "a mongos to read the cluster catalog",
        timeout,
        Duration::from_millis(20),
        Duration::from_millis(250),
        || {
            let addrs = addrs.clone();
            async move {
                let mut why = Vec::new();
                for a in &addrs {
                    match conn::connect(a, NODE_TIMEOUT, auth).await {
                        Ok(n) => match n.admin(doc! {"listShards": 1}).await {
                            Ok(_) => return Poll::Ready(n),
                            Err(e) => why.push(format!("{a}: listShards: {e}")),
                        },
                        Err(e) => why.push(format!("{a}: {e}")),
                    }
                }
                Poll::Pending(why.join("; "))
            }
        },
    )
    .await
}

const VIA: &str = "cluster";

async fn catalog_step(spec: &MongoShardedSpec, r: &Node, a: &Action) -> Result<()> {
    let hint = "earlier steps stay done; fix the cause and run `datatier init` again";
    match a {
        Action::AddShard { name, seed } => add_shard(r, name, seed).await.context(hint),
        Action::EnableSharding { db } => enable_sharding(r, db).await.context(hint),
        Action::CreateIndex { ns, key, .. } => {
            let (db, coll) = split_ns(ns);
            create_index(r, db, coll, key).await.context(hint)
        }
        Action::ShardCollection { ns, key, unique } => {
            shard_collection(r, ns, key, *unique).await.context(hint)
        }
        Action::SetChunkSize { mb } => {
            upsert_setting(r, "chunksize", doc! {"$set": {"value": *mb as i32}})
                .await
                .context(hint)?;
            tracing::info!("chunk size set to {mb} MB");
            Ok(())
        }
        Action::SetBalancerWindow { window } => set_window(r, *window).await.context(hint),
        Action::SetBalancer { on } => {
            let cmd = if *on { "balancerStart" } else { "balancerStop" };
            r.admin(doc! {cmd: 1})
                .await
                .map_err(|e| step_error(VIA, cmd, &e))
                .context(hint)?;
            tracing::info!("{cmd}");
            Ok(())
        }
        _ => {
            let _ = spec;
            Ok(())
        }
    }
}

fn split_ns(ns: &str) -> (&str, &str) {
    ns.split_once('.').expect("validated namespaces have a dot")
}

async fn add_shard(r: &Node, name: &str, seed: &str) -> Result<()> {
    let shards = r
        .admin(doc! {"listShards": 1})
        .await
        .map_err(|e| step_error(VIA, "listShards", &e))?;
    let present = shards
        .get_array("shards")
        .map(|a| {
            a.iter()
                .filter_map(Bson::as_document)
                .any(|s| s.get_str("_id").ok() == Some(name))
        })
        .unwrap_or(false);
    if present {
        tracing::info!("shard {name} is already registered");
        return Ok(());
    }
    r.admin(doc! {"addShard": seed, "name": name})
        .await
        .map_err(|e| step_error(VIA, &format!("addShard \"{seed}\""), &e))?;
    tracing::info!("added shard {name} ({seed})");
    Ok(())
}

async fn enable_sharding(r: &Node, db: &str) -> Result<()> {
    match r.admin(doc! {"enableSharding": db}).await {
        Ok(_) => Ok(()),
        // "already enabled" on old servers
        Err(e) if e.is(code::ALREADY_INITIALIZED) => Ok(()),
        Err(e) => Err(step_error(VIA, &format!("enableSharding \"{db}\""), &e)),
    }
}

async fn create_index(r: &Node, db: &str, coll: &str, key: &ShardKey) -> Result<()> {
    r.run(
        db,
        doc! {"createIndexes": coll, "indexes": [{"key": key.to_document(), "name": key.index_name()}]},
    )
    .await
    .map_err(|e| step_error(VIA, &format!("createIndexes {db}.{coll} {key}"), &e))?;
    tracing::info!("{db}.{coll}: created index {}", key.index_name());
    Ok(())
}

async fn shard_collection(r: &Node, ns: &str, key: &ShardKey, unique: bool) -> Result<()> {
    // Idempotent: already sharded on this key is done.
    let existing = r
        .find("config", "collections", doc! {"_id": ns}, None)
        .await
        .map_err(|e| step_error(VIA, "reading config.collections", &e))?;
    if let Some(c) = existing
        .iter()
        .find(|c| !c.get_bool("dropped").unwrap_or(false))
    {
        let k = c.get_document("key").cloned().unwrap_or_default();
        if key.matches(&k) {
            return Ok(());
        }
        bail!(
            "{VIA}: {ns} is already sharded on {}, declared {key}; nothing was changed",
            crate::topology::mongo::key_doc_to_string(&k)
        );
    }
    let (db, coll) = split_ns(ns);
    let version = r
        .admin(doc! {"buildInfo": 1})
        .await
        .ok()
        .and_then(|b| b.get_str("version").ok().map(str::to_string));
    if version.as_deref().is_some_and(conn::needs_enable_sharding) {
        let partitioned = r
            .find("config", "databases", doc! {"_id": db}, None)
            .await
            .ok()
            .and_then(|d| d.first().and_then(|d| d.get_bool("partitioned").ok()))
            .unwrap_or(false);
        if !partitioned {
            enable_sharding(r, db).await?;
        }
    }
    let mut cmd = doc! {"shardCollection": ns, "key": key.to_document()};
    if unique {
        cmd.insert("unique", true);
    }
    match r.admin(cmd.clone()).await {
        Ok(_) => {}
        // Documents arrived since the plan was made: build the supporting
        // index, then try once more.
        Err(e) if e.is(code::INVALID_OPTIONS) && e.message.contains("create an index") => {
            create_index(r, db, coll, key).await?;
            r.admin(cmd)
                .await
                .map_err(|e| step_error(VIA, &format!("shardCollection \"{ns}\" {key}"), &e))?;
        }
        Err(e) => {
            return Err(step_error(
                VIA,
                &format!("shardCollection \"{ns}\" {key}"),
                &e,
            ))
        }
    }
    tracing::info!("sharded {ns} on {key}");
    Ok(())
}

async fn upsert_setting(r: &Node, id: &str, update: Document) -> Result<()> {
    r.write(
        "config",
        doc! {
            "update": "settings",
            "updates": [{"q": {"_id": id}, "u": update, "upsert": true}],
            "writeConcern": {"w": "majority", "wtimeout": 15000},
        },
    )
    .await
    .map_err(|e| {
        step_error(
            VIA,
            &format!("update config.settings {{ _id: \"{id}\" }}"),
            &e,
        )
    })?;
    Ok(())
}

async fn set_window(r: &Node, window: Option<BalancerWindow>) -> Result<()> {
    match window {
        Some(w) => {
            upsert_setting(
                r,
                "balancer",
                doc! {"$set": {"activeWindow": {"start": w.start.to_string(), "stop": w.stop.to_string()}}},
            )
            .await?;
            tracing::info!(
                "balancer window set to {w} (in the config server primary's local time)"
            );
        }
        None => {
            upsert_setting(r, "balancer", doc! {"$unset": {"activeWindow": true}}).await?;
            tracing::info!("balancer window removed");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::mongo::{Member, SetRole};

    fn member(addr: &str) -> Member {
        let (host, port) = addr.split_once(':').unwrap();
        Member {
            host: host.into(),
            port: port.parse().unwrap(),
            priority: 1.0,
            votes: 1,
            arbiter: false,
            hidden: false,
        }
    }

    fn set(members: Vec<Member>) -> ReplicaSetSpec {
        ReplicaSetSpec {
            name: "rs".into(),
            role: SetRole::Shard,
            members,
        }
    }

    #[test]
    fn initiate_config_has_roles_and_options() {
        let mut s = set(vec![member("h:1"), member("h:2"), member("h:3")]);
        s.members[1].priority = 0.0;
        s.members[1].hidden = true;
        s.members[2].arbiter = true;
        s.members[2].priority = 0.0;
        let c = initiate_config(&s);
        assert_eq!(
            c,
            doc! {"_id": "rs", "members": [
                {"_id": 0, "host": "h:1"},
                {"_id": 1, "host": "h:2", "priority": 0.0, "hidden": true},
                {"_id": 2, "host": "h:3", "arbiterOnly": true},
            ]}
        );
        s.role = SetRole::Config;
        assert_eq!(initiate_config(&s).get_bool("configsvr"), Ok(true));
    }

    #[test]
    fn reconfig_adds_one_voting_member_at_a_time() {
        let s = set(vec![member("h:1"), member("h:2"), member("h:3")]);
        let cur = doc! {"_id": "rs", "version": 4, "term": 2, "members": [{"_id": 0, "host": "h:1", "priority": 1.0, "votes": 1}]};
        let n1 = next_config(&cur, &s).unwrap();
        assert_eq!(n1.get_i32("version"), Ok(5));
        assert!(n1.get("term").is_none());
        let hosts: Vec<&str> = n1
            .get_array("members")
            .unwrap()
            .iter()
            .map(|m| m.as_document().unwrap().get_str("host").unwrap())
            .collect();
        assert_eq!(hosts, ["h:1", "h:2"]);
        let n2 = next_config(&n1, &s).unwrap();
        assert_eq!(n2.get_array("members").unwrap().len(), 3);
        assert_eq!(
            n2.get_array("members").unwrap()[2]
                .as_document()
                .unwrap()
                .get_i32("_id"),
            Ok(2)
        );
        assert!(next_config(&n2, &s).is_none());
    }

    #[test]
    fn reconfig_changes_options_without_vote_changes_together() {
        let mut s = set(vec![member("h:1"), member("h:2"), member("h:3")]);
        s.members[1].priority = 5.0;
        s.members[2].priority = 0.0;
        s.members[2].hidden = true;
        let cur = doc! {"_id": "rs", "version": 1, "members": [
            {"_id": 0, "host": "h:1"}, {"_id": 1, "host": "h:2"}, {"_id": 2, "host": "h:3"},
        ]};
        let n = next_config(&cur, &s).unwrap();
        let m = n.get_array("members").unwrap();
        assert_eq!(m[1].as_document().unwrap().get_f64("priority"), Ok(5.0));
        assert_eq!(m[2].as_document().unwrap().get_bool("hidden"), Ok(true));
        assert!(next_config(&n, &s).is_none());
    }
}
