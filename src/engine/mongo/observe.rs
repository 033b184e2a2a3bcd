//! Observation: every declared mongod and mongos read in parallel over
//! direct connections, then the cluster catalog read through one mongos.
//! A node that does not answer is recorded with the reason, never turned
//! into an error; a command a node refuses is recorded with the server's
//! error (e.g. `NotYetInitialized (94)` for a member never initiated).

use super::conn::{self, int, Auth, CmdError, Node, NODE_TIMEOUT};
use crate::provider::local::{self, ProcState, StateDir};
use crate::topology::mongo::{MongoShardedSpec, SetRole};
use bson::{doc, Bson, Document};
use std::collections::{BTreeMap, HashMap};

/// What the provider knows of a node's process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Process {
    /// Not started by datatier (existing provider, or someone else's
    /// process on a declared address).
    External,
    Running(u32),
    /// Not running; `has_state` when its data dir holds data from an
    /// earlier run (it comes back with its replica set config).
    Stopped {
        has_state: bool,
    },
}

/// A member of a replica set config (`replSetGetConfig`).
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigMember {
    pub id: i64,
    pub host: String,
    pub arbiter: bool,
    pub priority: f64,
    pub votes: i64,
    pub hidden: bool,
}

/// One mongod as seen from itself.
#[derive(Debug, Clone)]
pub struct MemberView {
    pub hello: Document,
    /// `replSetGetStatus`, or the server's refusal (94 NotYetInitialized:
    /// never initiated; 76 NoReplicationEnabled: started without --replSet).
    pub status: Result<Document, CmdError>,
    /// `replSetGetConfig.config` (initiated members only).
    pub config: Option<Document>,
    /// `getCmdLineOpts.parsed`.
    pub cmdline: Option<Document>,
    pub version: Option<String>,
    /// Databases other than admin/local/config; `None` when the node would
    /// not say (e.g. not readable before it is initiated).
    pub user_dbs: Option<Vec<String>>,
}

impl MemberView {
    pub fn initiated(&self) -> bool {
        self.status.is_ok()
    }
    /// The set this member belongs to (from its config), if initiated.
    pub fn set_name(&self) -> Option<&str> {
        self.hello
            .get_str("setName")
            .ok()
            .or_else(|| self.status.as_ref().ok()?.get_str("set").ok())
    }
    pub fn is_primary(&self) -> bool {
        self.set_name().is_some()
            && (self.hello.get_bool("isWritablePrimary").unwrap_or(false)
                || self.hello.get_bool("ismaster").unwrap_or(false))
    }
    /// `PRIMARY`, `SECONDARY`, ... or what keeps it from having a state.
    pub fn state_str(&self) -> String {
        match &self.status {
            Ok(s) => s
                .get_array("members")
                .ok()
                .and_then(|ms| {
                    ms.iter()
                        .filter_map(Bson::as_document)
                        .find(|m| m.get_bool("self").unwrap_or(false))
                })
                .and_then(|m| m.get_str("stateStr").ok())
                .map(str::to_string)
                .unwrap_or_else(|| match int(s.get("myState")) {
                    Some(1) => "PRIMARY".into(),
                    Some(2) => "SECONDARY".into(),
                    Some(7) => "ARBITER".into(),
                    Some(n) => format!("state {n}"),
                    None => "?".into(),
                }),
            Err(e) if e.is(conn::code::NOT_YET_INITIALIZED) => "NOT INITIATED".into(),
            Err(e) if e.is(conn::code::NO_REPLICATION_ENABLED) => "STANDALONE".into(),
            Err(_) => "?".into(),
        }
    }
    /// `sharding.clusterRole` it was started with (`configsvr`, `shardsvr`).
    pub fn cluster_role(&self) -> Option<&str> {
        self.cmdline
            .as_ref()?
            .get_document("sharding")
            .ok()?
            .get_str("clusterRole")
            .ok()
    }
    /// The `--replSet` it was started with (without a `/seed` suffix).
    pub fn repl_set_option(&self) -> Option<&str> {
        let r = self.cmdline.as_ref()?.get_document("replication").ok()?;
        let v = r
            .get_str("replSet")
            .or_else(|_| r.get_str("replSetName"))
            .ok()?;
        Some(v.split('/').next().unwrap_or(v))
    }
    pub fn config_version(&self) -> i64 {
        self.config
            .as_ref()
            .and_then(|c| int(c.get("version")))
            .unwrap_or(0)
    }
    pub fn config_members(&self) -> Vec<ConfigMember> {
        config_members(self.config.as_ref())
    }
    /// `configsvr: true` in its replica set config.
    pub fn configsvr_config(&self) -> bool {
        self.config
            .as_ref()
            .and_then(|c| c.get_bool("configsvr").ok())
            .unwrap_or(false)
    }
    /// Members of the set as this member sees them: (host, health, state).
    pub fn status_members(&self) -> Vec<(String, bool, String)> {
        let Ok(s) = &self.status else {
            return Vec::new();
        };
        s.get_array("members")
            .map(|ms| {
                ms.iter()
                    .filter_map(Bson::as_document)
                    .map(|m| {
                        (
                            m.get_str("name").unwrap_or_default().to_string(),
                            m.get("health")
                                .and_then(crate::topology::mongo::bson_number)
                                .unwrap_or(0.0)
                                >= 1.0,
                            m.get_str("stateStr").unwrap_or("?").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Members listed in a replica set config document.
pub fn config_members(config: Option<&Document>) -> Vec<ConfigMember> {
    let Some(c) = config else {
        return Vec::new();
    };
    c.get_array("members")
        .map(|ms| {
            ms.iter()
                .filter_map(Bson::as_document)
                .map(|m| ConfigMember {
                    id: int(m.get("_id")).unwrap_or(-1),
                    host: m.get_str("host").unwrap_or_default().to_string(),
                    arbiter: m.get_bool("arbiterOnly").unwrap_or(false),
                    priority: m
                        .get("priority")
                        .and_then(crate::topology::mongo::bson_number)
                        .unwrap_or(1.0),
                    votes: int(m.get("votes")).unwrap_or(1),
                    hidden: m.get_bool("hidden").unwrap_or(false),
                })
                .collect()
        })
        .unwrap_or_default()
}

#[derive(Debug, Clone)]
pub struct MemberObs {
    pub addr: String,
    pub process: Process,
    pub view: Result<MemberView, String>,
}

impl MemberObs {
    pub fn view(&self) -> Option<&MemberView> {
        self.view.as_ref().ok()
    }
}

/// One declared replica set.
#[derive(Debug, Clone)]
pub struct SetObs {
    pub name: String,
    pub role: SetRole,
    pub members: Vec<MemberObs>,
}

impl SetObs {
    pub fn primary(&self) -> Option<&MemberObs> {
        self.members
            .iter()
            .find(|m| m.view().is_some_and(|v| v.is_primary()))
    }
    /// The most recent config any member holds.
    pub fn newest_config(&self) -> Option<&MemberView> {
        self.members
            .iter()
            .filter_map(|m| m.view())
            .filter(|v| v.config.is_some())
            .max_by_key(|v| v.config_version())
    }
}

#[derive(Debug, Clone)]
pub struct RouterView {
    pub hello: Document,
    pub version: Option<String>,
}

#[derive(Debug, Clone)]
pub struct RouterObs {
    pub addr: String,
    pub process: Process,
    pub view: Result<RouterView, String>,
}

/// A registered shard (`listShards`).
#[derive(Debug, Clone, PartialEq)]
pub struct ShardEntry {
    pub id: String,
    /// `rsName/h:p,h:p`.
    pub host: String,
    pub draining: bool,
}

impl ShardEntry {
    pub fn set_name(&self) -> &str {
        self.host.split('/').next().unwrap_or("")
    }
}

/// A sharded collection in `config.collections`.
#[derive(Debug, Clone)]
pub struct CollectionEntry {
    pub ns: String,
    pub key: Document,
    pub unique: bool,
    pub uuid: Option<Bson>,
}

/// Chunks of one collection: count per shard and jumbo chunks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChunkStats {
    pub per_shard: BTreeMap<String, u64>,
    pub jumbo: u64,
}

/// Data of one collection on one shard (`$shardedDataDistribution`).
#[derive(Debug, Clone, PartialEq)]
pub struct ShardData {
    pub shard: String,
    pub owned_docs: u64,
    pub owned_bytes: u64,
    pub orphaned_docs: u64,
}

/// A declared collection that is not sharded yet.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Unsharded {
    /// Documents (the `count` command: only "empty or not" matters here).
    pub docs: u64,
    /// An index on exactly the declared key exists.
    pub has_key_index: bool,
}

/// The cluster catalog as one mongos reports it.
#[derive(Debug, Clone)]
pub struct ClusterView {
    /// The mongos it was read through.
    pub via: String,
    pub version: Option<String>,
    pub shards: Vec<ShardEntry>,
    pub collections: HashMap<String, CollectionEntry>,
    /// `config.databases` docs of the declared collections' databases.
    pub databases: HashMap<String, Document>,
    /// `config.settings` by `_id`.
    pub settings: HashMap<String, Document>,
    /// `balancerStatus`.
    pub balancer: Result<Document, CmdError>,
    pub chunks: HashMap<String, ChunkStats>,
    /// Per collection, on 6.0.3+ (`$shardedDataDistribution`).
    pub distribution: Option<HashMap<String, Vec<ShardData>>>,
    pub unsharded: HashMap<String, Unsharded>,
}

impl ClusterView {
    pub fn chunk_size_mb(&self) -> Option<i64> {
        int(self.settings.get("chunksize")?.get("value"))
    }
    /// `activeWindow` as (start, stop) strings, if set.
    pub fn window(&self) -> Option<(String, String)> {
        let w = self
            .settings
            .get("balancer")?
            .get_document("activeWindow")
            .ok()?;
        Some((
            w.get_str("start").ok()?.to_string(),
            w.get_str("stop").ok()?.to_string(),
        ))
    }
    /// `full`, `off` (or `autoSplitOnly` on old servers).
    pub fn balancer_mode(&self) -> Option<&str> {
        self.balancer.as_ref().ok()?.get_str("mode").ok()
    }
    pub fn db_partitioned(&self, db: &str) -> bool {
        self.databases
            .get(db)
            .and_then(|d| d.get_bool("partitioned").ok())
            .unwrap_or(false)
    }
}

/// Everything observed, in declaration order.
#[derive(Debug, Clone)]
pub struct Observed {
    /// Config servers first, then shards.
    pub sets: Vec<SetObs>,
    pub routers: Vec<RouterObs>,
    /// `None` when no mongos answered; `Err` when the mongos could not
    /// read the catalog (config servers not ready).
    pub cluster: Option<Result<ClusterView, String>>,
}

impl Observed {
    pub fn set(&self, name: &str) -> Option<&SetObs> {
        self.sets.iter().find(|s| s.name == name)
    }
}

/// Read one mongod.
pub async fn read_member(node: &Node) -> Result<MemberView, String> {
    let hello = node
        .admin(doc! {"hello": 1})
        .await
        .map_err(|e| e.to_string())?;
    let (status, cmdline, build, dbs) = tokio::join!(
        node.admin(doc! {"replSetGetStatus": 1}),
        node.admin(doc! {"getCmdLineOpts": 1}),
        node.admin(doc! {"buildInfo": 1}),
        node.admin(doc! {"listDatabases": 1, "nameOnly": true}),
    );
    // A transport failure on the status means the node went away mid-read.
    if let Err(e) = &status {
        if e.code.is_none() {
            return Err(e.to_string());
        }
    }
    let config = if status.is_ok() {
        node.admin(doc! {"replSetGetConfig": 1})
            .await
            .ok()
            .and_then(|r| r.get_document("config").ok().cloned())
    } else {
        None
    };
    Ok(MemberView {
        hello,
        status,
        config,
        cmdline: cmdline
            .ok()
            .and_then(|c| c.get_document("parsed").ok().cloned()),
        version: build
            .ok()
            .and_then(|b| b.get_str("version").ok().map(str::to_string)),
        user_dbs: dbs.ok().map(|d| {
            d.get_array("databases")
                .map(|a| {
                    a.iter()
                        .filter_map(Bson::as_document)
                        .filter_map(|x| x.get_str("name").ok())
                        .filter(|n| !["admin", "local", "config"].contains(n))
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        }),
    })
}

async fn read_router(node: &Node) -> Result<RouterView, String> {
    let hello = node
        .admin(doc! {"hello": 1})
        .await
        .map_err(|e| e.to_string())?;
    if hello.get_str("msg").ok() != Some("isdbgrid") {
        return Err("answers, but is not a mongos (hello has no msg: \"isdbgrid\")".into());
    }
    let version = node
        .admin(doc! {"buildInfo": 1})
        .await
        .ok()
        .and_then(|b| b.get_str("version").ok().map(str::to_string));
    Ok(RouterView { hello, version })
}

/// Read the catalog through a mongos.
pub async fn read_cluster(
    spec: &MongoShardedSpec,
    node: &Node,
    version: Option<String>,
) -> Result<ClusterView, String> {
    let shards = node
        .admin(doc! {"listShards": 1})
        .await
        .map_err(|e| format!("listShards: {e}"))?;
    let shards: Vec<ShardEntry> = shards
        .get_array("shards")
        .map(|a| {
            a.iter()
                .filter_map(Bson::as_document)
                .map(|s| ShardEntry {
                    id: s.get_str("_id").unwrap_or_default().to_string(),
                    host: s.get_str("host").unwrap_or_default().to_string(),
                    draining: s.get_bool("draining").unwrap_or(false),
                })
                .collect()
        })
        .unwrap_or_default();
    let nss: Vec<String> = spec.collections.iter().map(|c| c.ns()).collect();
    let dbs = spec.databases();
    let e = |what: &str, e: CmdError| format!("{what}: {e}");
    let (colls, databases, settings, balancer) = tokio::join!(
        node.find(
            "config",
            "collections",
            doc! {"_id": {"$in": nss.clone()}},
            None
        ),
        node.find("config", "databases", doc! {"_id": {"$in": dbs}}, None),
        node.find("config", "settings", doc! {}, None),
        node.admin(doc! {"balancerStatus": 1}),
    );
    let colls = colls.map_err(|x| e("config.collections", x))?;
    let mut collections = HashMap::new();
    for c in colls {
        if c.get_bool("dropped").unwrap_or(false) {
            continue;
        }
        let ns = c.get_str("_id").unwrap_or_default().to_string();
        collections.insert(
            ns.clone(),
            CollectionEntry {
                ns,
                key: c.get_document("key").cloned().unwrap_or_default(),
                unique: c.get_bool("unique").unwrap_or(false),
                uuid: c.get("uuid").cloned(),
            },
        );
    }
    let databases = databases
        .map_err(|x| e("config.databases", x))?
        .into_iter()
        .filter_map(|d| Some((d.get_str("_id").ok()?.to_string(), d)))
        .collect();
    let settings = settings
        .map_err(|x| e("config.settings", x))?
        .into_iter()
        .filter_map(|d| Some((d.get_str("_id").ok()?.to_string(), d)))
        .collect();

    // Chunks of the sharded declared collections, by uuid (5.0+) or ns.
    let mut chunks: HashMap<String, ChunkStats> = HashMap::new();
    if !collections.is_empty() {
        let uuids: Vec<Bson> = collections
            .values()
            .filter_map(|c| c.uuid.clone())
            .collect();
        let ns_of_uuid: Vec<(Bson, String)> = collections
            .values()
            .filter_map(|c| Some((c.uuid.clone()?, c.ns.clone())))
            .collect();
        let sharded_nss: Vec<String> = collections.keys().cloned().collect();
        let docs = node
            .find(
                "config",
                "chunks",
                doc! {"$or": [{"uuid": {"$in": uuids}}, {"ns": {"$in": sharded_nss}}]},
                Some(doc! {"shard": 1, "jumbo": 1, "uuid": 1, "ns": 1}),
            )
            .await
            .map_err(|x| e("config.chunks", x))?;
        for d in docs {
            let ns = match (d.get("uuid"), d.get_str("ns")) {
                (Some(u), _) => ns_of_uuid
                    .iter()
                    .find(|(x, _)| x == u)
                    .map(|(_, n)| n.clone()),
                (None, Ok(ns)) => Some(ns.to_string()),
                _ => None,
            };
            let Some(ns) = ns else { continue };
            let st = chunks.entry(ns).or_default();
            *st.per_shard
                .entry(d.get_str("shard").unwrap_or("?").to_string())
                .or_default() += 1;
            if d.get_bool("jumbo").unwrap_or(false) {
                st.jumbo += 1;
            }
        }
    }

    let distribution = match &version {
        Some(v) if conn::has_sharded_data_distribution(v) && !collections.is_empty() => {
            let sharded: Vec<String> = collections.keys().cloned().collect();
            match node
                .admin(doc! {
                    "aggregate": 1,
                    "pipeline": [{"$shardedDataDistribution": {}}, {"$match": {"ns": {"$in": sharded}}}],
                    "cursor": {},
                })
                .await
            {
                Ok(r) => Some(parse_distribution(&r)),
                Err(x) => {
                    tracing::debug!("$shardedDataDistribution: {x}");
                    None
                }
            }
        }
        _ => None,
    };

    let mut unsharded = HashMap::new();
    for c in &spec.collections {
        let ns = c.ns();
        if collections.contains_key(&ns) {
            continue;
        }
        let count = node.run(&c.database, doc! {"count": &c.name}).await;
        let docs = match count {
            Ok(r) => int(r.get("n")).unwrap_or(0).max(0) as u64,
            Err(x) if x.is(conn::code::NAMESPACE_NOT_FOUND) => 0,
            Err(x) => return Err(e(&format!("count {ns}"), x)),
        };
        let has_key_index = match node.run(&c.database, doc! {"listIndexes": &c.name}).await {
            Ok(r) => r
                .get_document("cursor")
                .and_then(|cur| cur.get_array("firstBatch"))
                .map(|b| {
                    b.iter().filter_map(Bson::as_document).any(|ix| {
                        ix.get_document("key")
                            .map(|k| c.key.matches(k))
                            .unwrap_or(false)
                    })
                })
                .unwrap_or(false),
            Err(_) => false,
        };
        unsharded.insert(
            ns,
            Unsharded {
                docs,
                has_key_index,
            },
        );
    }

    Ok(ClusterView {
        via: node.addr.clone(),
        version,
        shards,
        collections,
        databases,
        settings,
        balancer,
        chunks,
        distribution,
        unsharded,
    })
}

/// `$shardedDataDistribution` results by namespace.
pub fn parse_distribution(reply: &Document) -> HashMap<String, Vec<ShardData>> {
    let mut out: HashMap<String, Vec<ShardData>> = HashMap::new();
    let batch = reply
        .get_document("cursor")
        .and_then(|c| c.get_array("firstBatch"))
        .cloned()
        .unwrap_or_default();
    for d in batch.iter().filter_map(Bson::as_document) {
        let ns = d.get_str("ns").unwrap_or_default().to_string();
        let shards = d
            .get_array("shards")
            .map(|a| {
                a.iter()
                    .filter_map(Bson::as_document)
                    .map(|s| ShardData {
                        shard: s.get_str("shardName").unwrap_or("?").to_string(),
                        owned_docs: int(s.get("numOwnedDocuments")).unwrap_or(0).max(0) as u64,
                        owned_bytes: int(s.get("ownedSizeBytes")).unwrap_or(0).max(0) as u64,
                        orphaned_docs: int(s.get("numOrphanedDocs")).unwrap_or(0).max(0) as u64,
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.insert(ns, shards);
    }
    out
}

/// The local provider's view of a node's process. A declared address
/// that datatier did not start but that answers is someone else's node
/// (e.g. the replica set a migration turns into a shard): `External`.
pub fn local_process(state: &StateDir, addr: &str) -> Process {
    let manifest = state.manifest().unwrap_or_default();
    let data = state.node_dir(addr).join("data");
    let has_state = std::fs::read_dir(&data)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    match manifest.iter().find(|r| r.node == addr) {
        Some(rec) => match local::state(rec) {
            ProcState::Running(pid) => Process::Running(pid),
            ProcState::Stopped => Process::Stopped { has_state },
        },
        None if local::listening(addr) => Process::External,
        None => Process::Stopped { has_state },
    }
}

/// Observe everything: members and routers in parallel, then the catalog.
pub async fn observe(
    spec: &MongoShardedSpec,
    processes: &dyn Fn(&str) -> Process,
    auth: &Auth,
) -> Observed {
    let member_tasks = spec.sets().map(|set| {
        let tasks = set.members.iter().map(|m| {
            let addr = m.addr();
            let process = processes(&addr);
            async move {
                let view = if matches!(process, Process::Stopped { .. }) {
                    Err("not running".to_string())
                } else {
                    match conn::connect(&addr, NODE_TIMEOUT, auth).await {
                        Ok(n) => read_member(&n).await,
                        Err(e) => Err(e.to_string()),
                    }
                };
                MemberObs {
                    addr,
                    process,
                    view,
                }
            }
        });
        async move {
            SetObs {
                name: set.name.clone(),
                role: set.role,
                members: futures::future::join_all(tasks).await,
            }
        }
    });
    let router_tasks = spec.mongos.iter().map(|r| {
        let addr = r.addr();
        let process = processes(&addr);
        async move {
            let (view, node) = if matches!(process, Process::Stopped { .. }) {
                (Err("not running".to_string()), None)
            } else {
                match conn::connect(&addr, NODE_TIMEOUT, auth).await {
                    Ok(n) => (read_router(&n).await, Some(n)),
                    Err(e) => (Err(e.to_string()), None),
                }
            };
            (
                RouterObs {
                    addr,
                    process,
                    view,
                },
                node,
            )
        }
    });
    let (sets, routers) = tokio::join!(
        futures::future::join_all(member_tasks),
        futures::future::join_all(router_tasks)
    );
    let via = routers
        .iter()
        .find_map(|(r, n)| Some((n.clone()?, r.view.as_ref().ok()?.version.clone())));
    let cluster = match via {
        Some((node, version)) => Some(read_cluster(spec, &node, version).await),
        None => None,
    };
    Observed {
        sets,
        routers: routers.into_iter().map(|(r, _)| r).collect(),
        cluster,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_view_accessors() {
        let v = MemberView {
            hello: doc! {"setName": "cfg", "isWritablePrimary": true},
            status: Ok(doc! {"set": "cfg", "myState": 1, "members": [
                {"name": "h:1", "health": 1.0, "stateStr": "PRIMARY", "self": true},
                {"name": "h:2", "health": 0.0, "stateStr": "(not reachable/healthy)"},
            ]}),
            config: Some(
                doc! {"_id": "cfg", "version": 3, "configsvr": true, "members": [
                    {"_id": 0, "host": "h:1"}, {"_id": 1, "host": "h:2", "priority": 0, "hidden": true},
                ]},
            ),
            cmdline: Some(
                doc! {"sharding": {"clusterRole": "configsvr"}, "replication": {"replSet": "cfg/h:1,h:2"}},
            ),
            version: Some("7.0.14".into()),
            user_dbs: Some(vec![]),
        };
        assert!(v.is_primary());
        assert_eq!(v.state_str(), "PRIMARY");
        assert_eq!(v.cluster_role(), Some("configsvr"));
        assert_eq!(v.repl_set_option(), Some("cfg"));
        assert_eq!(v.config_version(), 3);
        assert!(v.configsvr_config());
        let m = v.config_members();
        assert_eq!(m[1].host, "h:2");
        assert!(m[1].hidden && m[1].priority == 0.0);
        assert_eq!(
            v.status_members(),
            vec![
                ("h:1".into(), true, "PRIMARY".into()),
                ("h:2".into(), false, "(not reachable/healthy)".into())
            ]
        );
        let fresh = MemberView {
            hello: doc! {"isWritablePrimary": false, "isreplicaset": true},
            status: Err(CmdError {
                code: Some(94),
                code_name: "NotYetInitialized".into(),
                message: "no replset config has been received".into(),
            }),
            config: None,
            cmdline: None,
            version: None,
            user_dbs: None,
        };
        assert!(!fresh.initiated() && !fresh.is_primary());
        assert_eq!(fresh.state_str(), "NOT INITIATED");
    }

    #[test]
    fn distribution_parses() {
        let r = doc! {"cursor": {"firstBatch": [
            {"ns": "d.c", "shards": [
                {"shardName": "s1", "numOwnedDocuments": 10i64, "ownedSizeBytes": 1000i64, "numOrphanedDocs": 0},
                {"shardName": "s2", "numOwnedDocuments": 12, "ownedSizeBytes": 1200, "numOrphanedDocs": 1},
            ]}
        ], "id": 0i64}};
        let d = parse_distribution(&r);
        assert_eq!(d["d.c"][1].owned_docs, 12);
        assert_eq!(d["d.c"][1].orphaned_docs, 1);
    }
}
