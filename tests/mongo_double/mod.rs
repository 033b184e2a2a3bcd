//! A MongoDB wire-protocol test double that keeps real state.
//!
//! No `mongod` can be installed on the project's machines, so the Mongo
//! engine is tested against this: one double per declared node, each
//! listening on its own port, all sharing one [`World`] the way real nodes
//! share a network. It speaks OP_MSG (and the legacy OP_QUERY handshake),
//! answers `hello` with what the driver's server discovery needs
//! (`setName`, `hosts`, `isWritablePrimary`/`secondary`, `topologyVersion`
//! with awaitable hello, wire versions, `logicalSessionTimeoutMinutes`, ...),
//! and implements the admin commands datatier uses with MongoDB's own
//! rules, replies and error codes:
//!
//! - replica sets: `replSetInitiate` (23 AlreadyInitialized, 76
//!   NoReplicationEnabled, 93 InvalidReplicaSetConfig for bad configs —
//!   the localhost mix, hidden members with priority, arbiters in a config
//!   server set, the configsvr flag — and 74 NodeNotFound when the quorum
//!   check fails), `replSetGetStatus` (94 NotYetInitialized),
//!   `replSetGetConfig`, `replSetReconfig` (one voting change at a time);
//!   elections after a delay, re-elections when a primary stops, initial
//!   sync (STARTUP2) for new members;
//! - sharding on a mongos: `addShard` (idempotent, with MongoDB's checks),
//!   `listShards`, `enableSharding` (required before 6.0),
//!   `shardCollection` (key rules, the supporting index on non-empty
//!   collections, pre-split hashed chunks on empty ones), `balancerStatus`
//!   / `balancerStart` / `balancerStop`, `$shardedDataDistribution` on
//!   6.0.3+; the catalog (`config.shards`, `config.databases`,
//!   `config.collections`, `config.chunks`, `config.settings`) lives in the
//!   config server set's data, and mongos refuses to work (133) while that
//!   set has no primary;
//! - data: `insert`, `find`/`getMore`, `update` (upserts), `count`,
//!   `aggregate` for counting, `createIndexes`, `listIndexes`,
//!   `listDatabases`, `dbStats`; writes only on a primary (10107), reads
//!   refused on members never initiated (13436).
//!
//! Tests inspect the double's state directly (its replica set configs,
//! shards, settings, chunks and documents) — an independent check, not
//! datatier's own report — and can stop, restart, or inject errors.

#![allow(dead_code)]

pub mod query;
pub mod wire;

use bson::oid::ObjectId;
use bson::{doc, Bson, Document};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// `--configsvr`, `--shardsvr`, or neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    None,
    ConfigSvr,
    ShardSvr,
}

impl Role {
    fn name(self) -> Option<&'static str> {
        match self {
            Role::None => None,
            Role::ConfigSvr => Some("configsvr"),
            Role::ShardSvr => Some("shardsvr"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Mongod {
        repl_set: Option<String>,
        role: Role,
    },
    Mongos {
        configdb: String,
    },
}

struct Node {
    addr: String,
    kind: Kind,
    up: bool,
    version: String,
    process_id: ObjectId,
    started: Instant,
    alive: Option<watch::Sender<bool>>,
    /// (fsUsedSize, fsTotalSize) reported by dbStats.
    disk: (i64, i64),
}

#[derive(Debug, Clone)]
pub struct Coll {
    pub uuid: bson::Uuid,
    pub docs: Vec<Document>,
    pub indexes: Vec<(String, Document)>,
}

impl Coll {
    fn new() -> Coll {
        Coll {
            uuid: bson::Uuid::new(),
            docs: Vec::new(),
            indexes: vec![("_id_".into(), doc! {"_id": 1})],
        }
    }
}

/// Databases -> collections.
type Store = BTreeMap<String, BTreeMap<String, Coll>>;

struct ReplSet {
    name: String,
    config: Option<Document>,
    term: i64,
    primary: Option<String>,
    elect_at: Option<Instant>,
    /// Members in initial sync until then.
    ready_at: HashMap<String, Instant>,
    /// The member that ran replSetInitiate (wins the first election).
    preferred: Option<String>,
    data: Store,
}

struct Fault {
    addr: Option<String>,
    command: String,
    reply: Document,
    remaining: usize,
}

struct Err_ {
    code: i32,
    msg: String,
}

fn err(code: i32, msg: impl Into<String>) -> Err_ {
    Err_ {
        code,
        msg: msg.into(),
    }
}

fn code_name(code: i32) -> String {
    match code {
        2 => "BadValue",
        9 => "FailedToParse",
        13 => "Unauthorized",
        20 => "IllegalOperation",
        23 => "AlreadyInitialized",
        26 => "NamespaceNotFound",
        59 => "CommandNotFound",
        70 => "ShardNotFound",
        72 => "InvalidOptions",
        74 => "NodeNotFound",
        76 => "NoReplicationEnabled",
        85 => "IndexOptionsConflict",
        93 => "InvalidReplicaSetConfig",
        94 => "NotYetInitialized",
        96 => "OperationFailed",
        103 => "NewReplicaSetConfigurationIncompatible",
        133 => "FailedToSatisfyReadPreference",
        203 => "NoShardingEnabled",
        10107 => "NotWritablePrimary",
        13436 => "NotPrimaryOrSecondary",
        other => return format!("Location{other}"),
    }
    .to_string()
}

type R = Result<Document, Err_>;

pub fn is_localhost(host: &str) -> bool {
    host == "localhost" || host.starts_with("127.") || host == "::1"
}

fn host_of(addr: &str) -> &str {
    addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(addr)
}

fn wire_version(v: &str) -> i32 {
    let mut it = v.split('.').map(|p| p.parse::<i32>().unwrap_or(0));
    match (it.next().unwrap_or(0), it.next().unwrap_or(0)) {
        (8, _) => 25,
        (7, _) => 21,
        (6, _) => 17,
        (5, _) => 13,
        (4, 4) => 9,
        _ => 21,
    }
}

fn version_tuple(v: &str) -> (i32, i32, i32) {
    let mut it = v.split('.').map(|p| p.parse::<i32>().unwrap_or(0));
    (
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
    )
}

/// A config member: (id, host, priority, votes, arbiter, hidden).
type MemberRow = (i64, String, f64, i64, bool, bool);

/// A config document's members.
fn members_of(cfg: &Document) -> Vec<MemberRow> {
    cfg.get_array("members")
        .map(|a| {
            a.iter()
                .filter_map(Bson::as_document)
                .map(|m| {
                    let num = |k: &str, d: f64| match m.get(k) {
                        Some(Bson::Int32(i)) => *i as f64,
                        Some(Bson::Int64(i)) => *i as f64,
                        Some(Bson::Double(x)) => *x,
                        _ => d,
                    };
                    let arbiter = m.get_bool("arbiterOnly").unwrap_or(false);
                    (
                        num("_id", -1.0) as i64,
                        m.get_str("host").unwrap_or("").to_string(),
                        num("priority", if arbiter { 0.0 } else { 1.0 }),
                        num("votes", 1.0) as i64,
                        arbiter,
                        m.get_bool("hidden").unwrap_or(false),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// FNV-1a of a value's BSON bytes: the double's stand-in for MongoDB's
/// hashed-index hash (only its spread matters here).
fn hash_value(v: &Bson) -> i64 {
    let mut bytes = Vec::new();
    doc! {"": v.clone()}.to_writer(&mut bytes).unwrap();
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h as i64
}

fn doc_size(d: &Document) -> i64 {
    let mut b = Vec::new();
    d.to_writer(&mut b).unwrap();
    b.len() as i64
}

/// Everything the doubles share: nodes, replica sets and their data.
pub struct World {
    nodes: BTreeMap<String, Node>,
    sets: BTreeMap<String, ReplSet>,
    standalone: BTreeMap<String, Store>,
    counter: i64,
    election_delay: Duration,
    sync_delay: Duration,
    faults: Vec<Fault>,
    log: Vec<(String, String, Document)>,
    cursors: HashMap<i64, (String, VecDeque<Document>)>,
    next_cursor: i64,
    balancer_rounds: i64,
    /// Access control: when non-empty, commands need SCRAM-SHA-256 first.
    users: HashMap<String, String>,
}

/// A handle on the doubles of one test: its own runtime and world.
pub struct Double {
    rt: tokio::runtime::Runtime,
    world: Arc<Mutex<World>>,
    changed: Arc<watch::Sender<i64>>,
}

impl Default for Double {
    fn default() -> Self {
        Self::new()
    }
}

impl Double {
    pub fn new() -> Double {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let world = Arc::new(Mutex::new(World {
            nodes: BTreeMap::new(),
            sets: BTreeMap::new(),
            standalone: BTreeMap::new(),
            counter: 1,
            election_delay: Duration::from_millis(150),
            sync_delay: Duration::from_millis(150),
            faults: Vec::new(),
            log: Vec::new(),
            cursors: HashMap::new(),
            next_cursor: 1000,
            balancer_rounds: 0,
            users: HashMap::new(),
        }));
        let (tx, _) = watch::channel(1i64);
        let changed = Arc::new(tx);
        // The clock of the world: elections, initial syncs, and waking
        // awaitable hellos when the topology changed.
        let w = world.clone();
        let c = changed.clone();
        rt.spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(15)).await;
                let counter = {
                    let mut w = w.lock().unwrap();
                    w.refresh(Instant::now());
                    w.balancer_rounds += 1;
                    w.counter
                };
                if *c.borrow() != counter {
                    let _ = c.send(counter);
                }
            }
        });
        Double { rt, world, changed }
    }

    fn w(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap()
    }

    /// Delays of elections and initial syncs (default 150 ms each).
    pub fn set_delays(&self, election: Duration, sync: Duration) {
        let mut w = self.w();
        w.election_delay = election;
        w.sync_delay = sync;
    }

    /// A mongod on `addr`, started with `--replSet repl_set` (or none) and
    /// a role, reporting `version`.
    pub fn mongod(&self, addr: &str, repl_set: Option<&str>, role: Role, version: &str) {
        {
            let mut w = self.w();
            if let Some(rs) = repl_set {
                w.sets.entry(rs.to_string()).or_insert_with(|| ReplSet {
                    name: rs.to_string(),
                    config: None,
                    term: 0,
                    primary: None,
                    elect_at: None,
                    ready_at: HashMap::new(),
                    preferred: None,
                    data: Store::new(),
                });
            } else {
                w.standalone.entry(addr.to_string()).or_default();
            }
            w.nodes.insert(
                addr.to_string(),
                Node {
                    addr: addr.to_string(),
                    kind: Kind::Mongod {
                        repl_set: repl_set.map(str::to_string),
                        role,
                    },
                    up: false,
                    version: version.to_string(),
                    process_id: ObjectId::new(),
                    started: Instant::now(),
                    alive: None,
                    disk: (10 << 30, 100 << 30),
                },
            );
        }
        self.start(addr);
    }

    /// A mongos on `addr` with `--configdb configdb`.
    pub fn mongos(&self, addr: &str, configdb: &str, version: &str) {
        self.w().nodes.insert(
            addr.to_string(),
            Node {
                addr: addr.to_string(),
                kind: Kind::Mongos {
                    configdb: configdb.to_string(),
                },
                up: false,
                version: version.to_string(),
                process_id: ObjectId::new(),
                started: Instant::now(),
                alive: None,
                disk: (0, 0),
            },
        );
        self.start(addr);
    }

    /// Start (or restart) a node's listener; its state is kept.
    pub fn start(&self, addr: &str) {
        let std_listener = {
            let mut last = None;
            let mut got = None;
            for _ in 0..100 {
                match std::net::TcpListener::bind(addr) {
                    Ok(l) => {
                        got = Some(l);
                        break;
                    }
                    Err(e) => {
                        last = Some(e);
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            }
            got.unwrap_or_else(|| panic!("double cannot listen on {addr}: {last:?}"))
        };
        std_listener.set_nonblocking(true).unwrap();
        let (alive_tx, alive_rx) = watch::channel(true);
        {
            let mut w = self.w();
            let n = w.nodes.get_mut(addr).expect("declared node");
            n.up = true;
            n.process_id = ObjectId::new();
            n.started = Instant::now();
            n.alive = Some(alive_tx);
            w.counter += 1;
        }
        let world = self.world.clone();
        let changed = self.changed.clone();
        let addr = addr.to_string();
        self.rt.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
            let mut alive = alive_rx;
            let mut conn_id = 0i64;
            loop {
                tokio::select! {
                    a = listener.accept() => {
                        let Ok((sock, _)) = a else { continue };
                        conn_id += 1;
                        let _ = sock.set_nodelay(true);
                        tokio::spawn(serve(world.clone(), addr.clone(), sock, alive.clone(), changed.subscribe(), conn_id));
                    }
                    _ = alive.changed() => break,
                }
            }
        });
    }

    /// Stop a node: its port closes, open connections drop. State is kept.
    pub fn stop(&self, addr: &str) {
        let mut w = self.w();
        let n = w.nodes.get_mut(addr).expect("declared node");
        n.up = false;
        if let Some(a) = n.alive.take() {
            let _ = a.send(false);
        }
        w.counter += 1;
        drop(w);
        // The listener task drops the socket asynchronously: wait for it.
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(addr).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Restart a mongod with another cluster role (`--shardsvr` ...).
    pub fn restart_with_role(&self, addr: &str, role: Role) {
        self.stop(addr);
        {
            let mut w = self.w();
            if let Kind::Mongod { role: r, .. } = &mut w.nodes.get_mut(addr).unwrap().kind {
                *r = role;
            }
        }
        self.start(addr);
    }

    /// The next `n` times `command` reaches `addr` (any node when `None`),
    /// answer with this error instead.
    pub fn fail(&self, addr: Option<&str>, command: &str, code: i32, msg: &str, n: usize) {
        self.w().faults.push(Fault {
            addr: addr.map(str::to_string),
            command: command.to_string(),
            reply: doc! {"ok": 0.0, "errmsg": msg, "code": code, "codeName": code_name(code)},
            remaining: n,
        });
    }

    /// Turn access control on for every node, with this user.
    pub fn add_user(&self, user: &str, password: &str) {
        self.w()
            .users
            .insert(user.to_string(), password.to_string());
    }

    /// Commands received so far, as (node, command name).
    pub fn commands(&self) -> Vec<(String, String)> {
        self.w()
            .log
            .iter()
            .map(|(a, c, _)| (a.clone(), c.clone()))
            .collect()
    }

    /// Full command documents received by `addr` named `command`.
    pub fn received(&self, addr: &str, command: &str) -> Vec<Document> {
        self.w()
            .log
            .iter()
            .filter(|(a, c, _)| a == addr && c == command)
            .map(|(_, _, d)| d.clone())
            .collect()
    }

    pub fn count_commands(&self, command: &str) -> usize {
        self.w().log.iter().filter(|(_, c, _)| c == command).count()
    }

    pub fn clear_log(&self) {
        self.w().log.clear();
    }

    /// A replica set's config, if initiated.
    pub fn rs_config(&self, set: &str) -> Option<Document> {
        self.w().sets.get(set)?.config.clone()
    }

    pub fn primary(&self, set: &str) -> Option<String> {
        self.w().sets.get(set)?.primary.clone()
    }

    /// Documents of `config.<coll>` in the config server set `cfg`.
    pub fn catalog(&self, cfg: &str, coll: &str) -> Vec<Document> {
        self.w()
            .sets
            .get(cfg)
            .and_then(|s| s.data.get("config"))
            .and_then(|d| d.get(coll))
            .map(|c| c.docs.clone())
            .unwrap_or_default()
    }

    /// Insert documents straight into a replica set's data (as if an
    /// application had written them to its primary).
    pub fn insert(&self, set: &str, ns: &str, docs: Vec<Document>) {
        let (db, coll) = ns.split_once('.').unwrap();
        let mut w = self.w();
        let c = w
            .sets
            .get_mut(set)
            .unwrap()
            .data
            .entry(db.to_string())
            .or_default()
            .entry(coll.to_string())
            .or_insert_with(Coll::new);
        for mut d in docs {
            if !d.contains_key("_id") {
                d.insert("_id", ObjectId::new());
            }
            c.docs.push(d);
        }
    }

    /// Documents of `ns` in a replica set's data.
    pub fn count(&self, set: &str, ns: &str) -> usize {
        let (db, coll) = ns.split_once('.').unwrap();
        self.w()
            .sets
            .get(set)
            .and_then(|s| s.data.get(db))
            .and_then(|d| d.get(coll))
            .map(|c| c.docs.len())
            .unwrap_or(0)
    }

    /// Index keys of `ns` in a replica set's data.
    pub fn indexes(&self, set: &str, ns: &str) -> Vec<Document> {
        let (db, coll) = ns.split_once('.').unwrap();
        self.w()
            .sets
            .get(set)
            .and_then(|s| s.data.get(db))
            .and_then(|d| d.get(coll))
            .map(|c| c.indexes.iter().map(|(_, k)| k.clone()).collect())
            .unwrap_or_default()
    }

    /// Flag the first `n` chunks of `ns` jumbo.
    pub fn mark_jumbo(&self, cfg: &str, ns: &str, n: usize) {
        let mut w = self.w();
        let uuid = w.sets[cfg].data["config"]["collections"]
            .docs
            .iter()
            .find(|c| c.get_str("_id").ok() == Some(ns))
            .and_then(|c| c.get("uuid").cloned())
            .expect("sharded");
        let chunks = w
            .sets
            .get_mut(cfg)
            .unwrap()
            .data
            .get_mut("config")
            .unwrap()
            .get_mut("chunks")
            .unwrap();
        for c in chunks
            .docs
            .iter_mut()
            .filter(|c| c.get("uuid") == Some(&uuid))
            .take(n)
        {
            c.insert("jumbo", true);
        }
    }

    /// Write straight into the catalog (e.g. a chunk size someone else set).
    pub fn set_setting(&self, cfg: &str, id: &str, d: Document) {
        let mut w = self.w();
        let c = w
            .sets
            .get_mut(cfg)
            .unwrap()
            .data
            .entry("config".into())
            .or_default()
            .entry("settings".into())
            .or_insert_with(Coll::new);
        c.docs.retain(|x| x.get_str("_id").ok() != Some(id));
        let mut d = d;
        d.insert("_id", id);
        c.docs.push(d);
    }

    /// Delete a document from the catalog (e.g. a shard's registration).
    pub fn delete_catalog(&self, cfg: &str, coll: &str, id: &str) {
        let mut w = self.w();
        if let Some(c) = w
            .sets
            .get_mut(cfg)
            .and_then(|s| s.data.get_mut("config"))
            .and_then(|d| d.get_mut(coll))
        {
            c.docs.retain(|d| d.get_str("_id").ok() != Some(id));
        }
    }

    /// Set the disk usage a node reports in dbStats.
    pub fn set_disk(&self, addr: &str, used: i64, total: i64) {
        self.w().nodes.get_mut(addr).unwrap().disk = (used, total);
    }

    /// Block until `set` has a primary (for test setup).
    pub fn wait_primary(&self, set: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(p) = self.primary(set) {
                return p;
            }
            assert!(
                Instant::now() < deadline,
                "double: {set} elected no primary"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Initiate a set directly (test setup for "an existing replica set",
    /// or a bootstrap someone left half-done).
    pub fn initiate(&self, set: &str, members: &[&str]) {
        let mut w = self.w();
        let mut cfg = doc! {
            "_id": set,
            "version": 1,
            "members": members.iter().enumerate().map(|(i, h)| doc!{"_id": i as i32, "host": *h}).collect::<Vec<_>>(),
        };
        if w.role_of(members[0]) == Role::ConfigSvr {
            cfg.insert("configsvr", true);
        }
        let now = Instant::now();
        let rs = w.sets.get_mut(set).unwrap();
        rs.config = Some(cfg);
        rs.preferred = Some(members[0].to_string());
        rs.elect_at = Some(now);
        w.counter += 1;
        drop(w);
        self.wait_primary(set);
    }
}

impl Drop for Double {
    fn drop(&mut self) {
        let addrs: Vec<String> = self.w().nodes.keys().cloned().collect();
        let mut w = self.w();
        for a in &addrs {
            if let Some(n) = w.nodes.get_mut(a) {
                n.up = false;
                if let Some(al) = n.alive.take() {
                    let _ = al.send(false);
                }
            }
        }
    }
}

/// What one client connection has established (authentication).
#[derive(Default)]
pub struct ConnState {
    id: i64,
    user: Option<String>,
    scram: Option<Scram>,
}

/// A SCRAM-SHA-256 conversation in progress (RFC 5802 / 7677).
struct Scram {
    user: String,
    client_first_bare: String,
    server_first: String,
    salted: Vec<u8>,
    done: bool,
    /// `options.skipEmptyExchange` of saslStart: finish with the server's
    /// final message instead of waiting for an empty client message.
    skip_empty: bool,
}

fn hmac256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    use hmac::Mac;
    let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    m.update(msg);
    m.finalize().into_bytes().to_vec()
}

fn sha256(b: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(b).to_vec()
}

fn b64(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn unb64(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

const SCRAM_ITERATIONS: u32 = 4096;

/// PBKDF2 of a password, computed once per (password, salt) like a real
/// server that stores the derived keys: unoptimized test builds would
/// otherwise spend seconds hashing when many connections authenticate at once.
fn salted_password(password: &str, salt: &[u8]) -> Vec<u8> {
    use std::sync::{Mutex, OnceLock};
    type Cache = Mutex<HashMap<(String, Vec<u8>), Vec<u8>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = (password.to_string(), salt.to_vec());
    if let Some(v) = cache.lock().unwrap().get(&key) {
        return v.clone();
    }
    let mut salted = vec![0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), salt, SCRAM_ITERATIONS, &mut salted);
    cache.lock().unwrap().insert(key, salted.clone());
    salted
}

fn payload(body: &Document) -> Result<String, Err_> {
    match body.get("payload") {
        Some(Bson::Binary(b)) => Ok(String::from_utf8_lossy(&b.bytes).into_owned()),
        Some(Bson::String(s)) => Ok(s.clone()),
        _ => Err(err(2, "SASL payload missing")),
    }
}

fn bin(s: &str) -> Bson {
    Bson::Binary(bson::Binary {
        subtype: bson::spec::BinarySubtype::Generic,
        bytes: s.as_bytes().to_vec(),
    })
}

fn is_hello(name: &str) -> bool {
    matches!(name, "hello" | "isMaster" | "ismaster")
}

async fn serve(
    world: Arc<Mutex<World>>,
    addr: String,
    mut sock: tokio::net::TcpStream,
    mut alive: watch::Receiver<bool>,
    mut changed: watch::Receiver<i64>,
    conn_id: i64,
) {
    let mut conn = ConnState {
        id: conn_id,
        ..Default::default()
    };
    loop {
        let req = tokio::select! {
            r = wire::read(&mut sock) => match r {
                Ok(Some(r)) => r,
                _ => return,
            },
            _ = alive.changed() => return,
        };
        let name = req.body.keys().next().cloned().unwrap_or_default();
        // Awaitable hello: answer when the topology changes or the wait
        // is over, never at once (the driver would spin).
        if is_hello(&name) {
            if let (Ok(tv), Some(max)) = (
                req.body.get_document("topologyVersion"),
                req.body
                    .get("maxAwaitTimeMS")
                    .and_then(|v| v.as_i64().or(v.as_i32().map(i64::from))),
            ) {
                let their = tv.get_i64("counter").unwrap_or(-1);
                let current = world.lock().unwrap().counter;
                if their == current {
                    let deadline = tokio::time::Instant::now() + Duration::from_millis(max as u64);
                    loop {
                        tokio::select! {
                            _ = tokio::time::sleep_until(deadline) => break,
                            r = changed.changed() => {
                                if r.is_err() || *changed.borrow() != their { break; }
                            }
                            _ = alive.changed() => return,
                        }
                    }
                }
            }
        }
        let reply = {
            let mut w = world.lock().unwrap();
            if !w.nodes.get(&addr).is_some_and(|n| n.up) {
                return;
            }
            w.dispatch(&addr, &req.body, &mut conn)
        };
        if wire::write(&mut sock, &req, &reply).await.is_err() {
            return;
        }
    }
}

// ------------------------------------------------------------- the world

impl World {
    fn node(&self, addr: &str) -> &Node {
        &self.nodes[addr]
    }

    fn up(&self, addr: &str) -> bool {
        self.nodes.get(addr).is_some_and(|n| n.up)
    }

    fn repl_set_of(&self, addr: &str) -> Option<&str> {
        match &self.nodes.get(addr)?.kind {
            Kind::Mongod { repl_set, .. } => repl_set.as_deref(),
            _ => None,
        }
    }

    fn role_of(&self, addr: &str) -> Role {
        match self.nodes.get(addr).map(|n| &n.kind) {
            Some(Kind::Mongod { role, .. }) => *role,
            _ => Role::None,
        }
    }

    /// The set `addr` is a configured member of.
    fn member_set(&self, addr: &str) -> Option<&ReplSet> {
        let rs = self.sets.get(self.repl_set_of(addr)?)?;
        let cfg = rs.config.as_ref()?;
        members_of(cfg).iter().any(|m| m.1 == addr).then_some(rs)
    }

    /// Elections and step-downs.
    fn refresh(&mut self, now: Instant) {
        let names: Vec<String> = self.sets.keys().cloned().collect();
        let mut changed = false;
        for name in names {
            let Some(cfg) = self.sets[&name].config.clone() else {
                continue;
            };
            let members = members_of(&cfg);
            let up = |w: &World, h: &str| w.up(h) && w.repl_set_of(h) == Some(name.as_str());
            let voting: Vec<&MemberRow> = members.iter().filter(|m| m.3 > 0).collect();
            let up_votes = voting.iter().filter(|m| up(self, &m.1)).count();
            let majority = voting.len() / 2 + 1;
            let primary = self.sets[&name].primary.clone();
            if let Some(p) = &primary {
                if !up(self, p) || up_votes < majority || !members.iter().any(|m| &m.1 == p) {
                    let rs = self.sets.get_mut(&name).unwrap();
                    rs.primary = None;
                    rs.elect_at = None;
                    changed = true;
                }
            }
            if self.sets[&name].primary.is_none() && up_votes >= majority {
                let delay = self.election_delay;
                let preferred = self.sets[&name].preferred.clone();
                let mut candidates: Vec<&MemberRow> = members
                    .iter()
                    .filter(|m| !m.4 && !m.5 && m.2 > 0.0 && m.3 > 0 && up(self, &m.1))
                    .collect();
                candidates.sort_by(|a, b| {
                    b.2.partial_cmp(&a.2)
                        .unwrap()
                        .then(
                            (Some(&b.1) == preferred.as_ref())
                                .cmp(&(Some(&a.1) == preferred.as_ref())),
                        )
                        .then(a.0.cmp(&b.0))
                });
                let pick = candidates.first().map(|m| m.1.clone());
                let rs = self.sets.get_mut(&name).unwrap();
                let at = *rs.elect_at.get_or_insert(now + delay);
                if now >= at {
                    if let Some(p) = pick {
                        rs.primary = Some(p);
                        rs.term += 1;
                        rs.elect_at = None;
                        changed = true;
                    }
                }
            }
        }
        if changed {
            self.counter += 1;
        }
    }

    fn member_state(&self, rs: &ReplSet, addr: &str, now: Instant) -> (i32, &'static str, f64) {
        let cfg = rs.config.as_ref().unwrap();
        let m = members_of(cfg).into_iter().find(|m| m.1 == addr);
        if !self.up(addr) || self.repl_set_of(addr) != Some(rs.name.as_str()) {
            return (8, "(not reachable/healthy)", 0.0);
        }
        if m.as_ref().is_some_and(|m| m.4) {
            return (7, "ARBITER", 1.0);
        }
        if rs.primary.as_deref() == Some(addr) {
            return (1, "PRIMARY", 1.0);
        }
        if rs.ready_at.get(addr).is_some_and(|t| *t > now) {
            return (5, "STARTUP2", 1.0);
        }
        (2, "SECONDARY", 1.0)
    }

    fn take_fault(&mut self, addr: &str, name: &str) -> Option<Document> {
        let i = self.faults.iter().position(|f| {
            f.command == name && f.addr.as_deref().is_none_or(|a| a == addr) && f.remaining > 0
        })?;
        let f = &mut self.faults[i];
        f.remaining -= 1;
        let r = f.reply.clone();
        if f.remaining == 0 {
            self.faults.remove(i);
        }
        Some(r)
    }

    fn dispatch(&mut self, addr: &str, body: &Document, conn: &mut ConnState) -> Document {
        let name = body.keys().next().cloned().unwrap_or_default();
        let mut logged = body.clone();
        logged.remove("payload");
        self.log.push((addr.to_string(), name.clone(), logged));
        if let Some(r) = self.take_fault(addr, &name) {
            return r;
        }
        let conn_id = conn.id;
        let db = body.get_str("$db").unwrap_or("admin").to_string();
        let r = match name.as_str() {
            "saslStart" => self.sasl_start(body, conn),
            "saslContinue" => self.sasl_continue(body, conn),
            n if !self.users.is_empty()
                && conn.user.is_none()
                && !(is_hello(n)
                    || matches!(n, "ping" | "buildInfo" | "buildinfo" | "endSessions")) =>
            {
                Err(err(13, format!("Command {n} requires authentication")))
            }
            _ => match self.node(addr).kind.clone() {
                Kind::Mongod { .. } => self.mongod(addr, &name, &db, body, conn_id),
                Kind::Mongos { configdb } => {
                    self.mongos(addr, &configdb, &name, &db, body, conn_id)
                }
            },
        };
        match r {
            Ok(mut d) => {
                d.insert("ok", 1.0);
                d
            }
            Err(e) => {
                doc! {"ok": 0.0, "errmsg": e.msg, "code": e.code, "codeName": code_name(e.code)}
            }
        }
    }

    fn sasl_start(&mut self, body: &Document, conn: &mut ConnState) -> R {
        let mech = body.get_str("mechanism").unwrap_or("");
        if mech != "SCRAM-SHA-256" {
            return Err(err(
                2,
                format!("Received authentication for mechanism {mech} which is not enabled"),
            ));
        }
        let first = payload(body)?;
        let bare = first
            .strip_prefix("n,,")
            .ok_or_else(|| err(17, "Incorrect SCRAM client message prefix"))?
            .to_string();
        let mut user = None;
        let mut cnonce = None;
        for part in bare.split(',') {
            if let Some(u) = part.strip_prefix("n=") {
                user = Some(u.replace("=2C", ",").replace("=3D", "="));
            } else if let Some(r) = part.strip_prefix("r=") {
                cnonce = Some(r.to_string());
            }
        }
        let (Some(user), Some(cnonce)) = (user, cnonce) else {
            return Err(err(17, "Invalid SCRAM client-first message"));
        };
        let salt = sha256(format!("salt:{user}").as_bytes())[..16].to_vec();
        let password = self.users.get(&user).cloned().unwrap_or_default();
        let salted = salted_password(&password, &salt);
        let snonce = b64(&sha256(format!("{}{}", conn.id, ObjectId::new()).as_bytes())[..18]);
        let server_first = format!("r={cnonce}{snonce},s={},i={SCRAM_ITERATIONS}", b64(&salt));
        let skip_empty = body
            .get_document("options")
            .ok()
            .and_then(|o| o.get_bool("skipEmptyExchange").ok())
            .unwrap_or(false);
        conn.scram = Some(Scram {
            user,
            client_first_bare: bare,
            server_first: server_first.clone(),
            salted,
            done: false,
            skip_empty,
        });
        Ok(doc! {"conversationId": 1, "done": false, "payload": bin(&server_first)})
    }

    fn sasl_continue(&mut self, body: &Document, conn: &mut ConnState) -> R {
        let Some(sc) = conn.scram.as_mut() else {
            return Err(err(17, "No SASL session state found"));
        };
        let msg = payload(body)?;
        if sc.done {
            // The client's empty closing message (no skipEmptyExchange).
            return Ok(doc! {"conversationId": 1, "done": true, "payload": bin("")});
        }
        let fail = || err(18, "Authentication failed.");
        let (without_proof, proof) = msg.rsplit_once(",p=").ok_or_else(fail)?;
        let proof = unb64(proof).ok_or_else(fail)?;
        let auth_message = format!(
            "{},{},{}",
            sc.client_first_bare, sc.server_first, without_proof
        );
        let client_key = hmac256(&sc.salted, b"Client Key");
        let stored_key = sha256(&client_key);
        let signature = hmac256(&stored_key, auth_message.as_bytes());
        if proof.len() != signature.len() {
            return Err(fail());
        }
        let recovered: Vec<u8> = proof.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
        if sha256(&recovered) != stored_key || !self.users.contains_key(&sc.user) {
            conn.scram = None;
            return Err(fail());
        }
        let server_key = hmac256(&sc.salted, b"Server Key");
        let server_sig = hmac256(&server_key, auth_message.as_bytes());
        sc.done = true;
        conn.user = Some(sc.user.clone());
        let skip = sc.skip_empty;
        Ok(
            doc! {"conversationId": 1, "done": skip, "payload": bin(&format!("v={}", b64(&server_sig)))},
        )
    }

    fn common(&mut self, addr: &str, name: &str, body: &Document, conn_id: i64) -> Option<R> {
        let n = self.node(addr);
        let version = n.version.clone();
        Some(match name {
            "ping" => Ok(doc! {}),
            "buildInfo" | "buildinfo" => {
                let (a, b, c) = version_tuple(&version);
                Ok(
                    doc! {"version": &version, "versionArray": [a, b, c, 0], "gitVersion": "test-double", "maxBsonObjectSize": 16777216},
                )
            }
            "endSessions" | "killCursors" => {
                if let Ok(ids) = body.get_array("cursors") {
                    for id in ids {
                        if let Some(i) = id.as_i64() {
                            self.cursors.remove(&i);
                        }
                    }
                }
                Ok(doc! {})
            }
            "getMore" => self.get_more(body),
            "getParameter" => {
                let (a, b, _) = version_tuple(&version);
                Ok(doc! {"featureCompatibilityVersion": {"version": format!("{a}.{b}")}})
            }
            "serverStatus" => Ok(doc! {
                "host": addr,
                "version": &version,
                "process": match n.kind { Kind::Mongos { .. } => "mongos", _ => "mongod" },
                "uptime": n.started.elapsed().as_secs_f64(),
                "localTime": bson::DateTime::now(),
            }),
            "getCmdLineOpts" => Ok(self.cmdline(addr)),
            h if is_hello(h) => Ok(self.hello(addr, h, body, conn_id)),
            _ => return None,
        })
    }

    fn cmdline(&self, addr: &str) -> Document {
        let n = self.node(addr);
        let (host, port) = addr.rsplit_once(':').unwrap();
        let port: i32 = port.parse().unwrap();
        match &n.kind {
            Kind::Mongod { repl_set, role } => {
                let mut argv = vec!["mongod".to_string()];
                let mut parsed = doc! {"net": {"port": port, "bindIp": host}};
                if let Some(rs) = repl_set {
                    argv.extend(["--replSet".into(), rs.clone()]);
                    parsed.insert("replication", doc! {"replSet": rs});
                }
                if let Some(r) = role.name() {
                    argv.push(format!("--{r}"));
                    parsed.insert("sharding", doc! {"clusterRole": r});
                }
                argv.extend([
                    "--port".into(),
                    port.to_string(),
                    "--bind_ip".into(),
                    host.into(),
                ]);
                doc! {"argv": argv, "parsed": parsed}
            }
            Kind::Mongos { configdb } => doc! {
                "argv": ["mongos", "--configdb", configdb, "--port", port.to_string(), "--bind_ip", host],
                "parsed": {"net": {"port": port, "bindIp": host}, "sharding": {"configDB": configdb}},
            },
        }
    }

    fn hello(&self, addr: &str, name: &str, body: &Document, conn_id: i64) -> Document {
        let n = self.node(addr);
        let legacy = name != "hello";
        let primary_key = if legacy {
            "ismaster"
        } else {
            "isWritablePrimary"
        };
        let mut d = doc! {
            "topologyVersion": {"processId": n.process_id, "counter": self.counter},
            "maxBsonObjectSize": 16777216,
            "maxMessageSizeBytes": 48000000,
            "maxWriteBatchSize": 100000,
            "localTime": bson::DateTime::now(),
            "logicalSessionTimeoutMinutes": 30,
            "connectionId": conn_id,
            "minWireVersion": 0,
            "maxWireVersion": wire_version(&n.version),
            "readOnly": false,
        };
        if legacy && body.get_bool("helloOk").unwrap_or(false) {
            d.insert("helloOk", true);
        }
        if let Ok(u) = body.get_str("saslSupportedMechs") {
            let user = u.split_once('.').map(|(_, u)| u).unwrap_or(u);
            if self.users.contains_key(user) {
                d.insert("saslSupportedMechs", vec!["SCRAM-SHA-256"]);
            }
        }
        match &n.kind {
            Kind::Mongos { .. } => {
                d.insert(primary_key, true);
                d.insert("msg", "isdbgrid");
            }
            Kind::Mongod { repl_set, role } => {
                match (repl_set, self.member_set(addr)) {
                    (None, _) => {
                        d.insert(primary_key, true);
                    }
                    (Some(_), None) => {
                        d.insert(primary_key, false);
                        d.insert("secondary", false);
                        d.insert("info", "Does not have a valid replica set config");
                        d.insert("isreplicaset", true);
                    }
                    (Some(_), Some(rs)) => {
                        let cfg = rs.config.as_ref().unwrap();
                        let members = members_of(cfg);
                        let hosts: Vec<&str> = members
                            .iter()
                            .filter(|m| !m.4 && !m.5 && m.2 > 0.0)
                            .map(|m| m.1.as_str())
                            .collect();
                        let passives: Vec<&str> = members
                            .iter()
                            .filter(|m| !m.4 && !m.5 && m.2 == 0.0)
                            .map(|m| m.1.as_str())
                            .collect();
                        let arbiters: Vec<&str> = members
                            .iter()
                            .filter(|m| m.4)
                            .map(|m| m.1.as_str())
                            .collect();
                        let me = members.iter().find(|m| m.1 == addr).unwrap();
                        let (state, _, _) = self.member_state(rs, addr, Instant::now());
                        d.insert("hosts", hosts);
                        if !passives.is_empty() {
                            d.insert("passives", passives);
                        }
                        if !arbiters.is_empty() {
                            d.insert("arbiters", arbiters);
                        }
                        d.insert("setName", &rs.name);
                        d.insert(
                            "setVersion",
                            cfg.get("version").cloned().unwrap_or(Bson::Int32(1)),
                        );
                        d.insert(primary_key, state == 1);
                        d.insert("secondary", state == 2);
                        if let Some(p) = &rs.primary {
                            d.insert("primary", p);
                        }
                        d.insert("me", addr);
                        if me.4 {
                            d.insert("arbiterOnly", true);
                        }
                        if me.5 {
                            d.insert("hidden", true);
                        }
                        if me.2 == 0.0 && !me.4 {
                            d.insert("passive", true);
                        }
                        if state == 1 {
                            let mut b = [0u8; 12];
                            b[0..4].copy_from_slice(&[0x7f, 0xff, 0xff, 0xff]);
                            b[4..12].copy_from_slice(&rs.term.to_be_bytes());
                            d.insert("electionId", ObjectId::from_bytes(b));
                        }
                        d.insert(
                            "lastWrite",
                            doc! {"lastWriteDate": bson::DateTime::now(), "majorityWriteDate": bson::DateTime::now()},
                        );
                    }
                }
                if *role == Role::ConfigSvr {
                    d.insert("configsvr", 2);
                }
            }
        }
        d
    }

    // ------------------------------------------------------------ mongod

    fn mongod(&mut self, addr: &str, name: &str, db: &str, body: &Document, conn_id: i64) -> R {
        if let Some(r) = self.common(addr, name, body, conn_id) {
            return r;
        }
        match name {
            "replSetInitiate" => self.repl_set_initiate(addr, body),
            "replSetGetStatus" => self.repl_set_get_status(addr),
            "replSetGetConfig" => {
                self.require_member(addr)?;
                let rs = self.member_set(addr).unwrap();
                let mut c = rs.config.clone().unwrap();
                c.insert("term", rs.term);
                Ok(doc! {"config": c})
            }
            "replSetReconfig" => self.repl_set_reconfig(addr, body),
            "addShard" | "listShards" | "shardCollection" | "balancerStatus" | "balancerStart"
            | "balancerStop" | "enableSharding" => {
                Err(err(59, format!("no such command: '{name}'")))
            }
            _ => {
                let target = self.data_target(addr, is_write(name))?;
                let mut r = self.data_cmd(&[target], name, db, body)?;
                if name == "dbStats" {
                    let (used, total) = self.node(addr).disk;
                    r.insert("fsUsedSize", used as f64);
                    r.insert("fsTotalSize", total as f64);
                }
                Ok(r)
            }
        }
    }

    fn require_member(&self, addr: &str) -> Result<(), Err_> {
        if self.repl_set_of(addr).is_none() {
            return Err(err(76, "not running with --replSet"));
        }
        if self.member_set(addr).is_none() {
            return Err(err(94, "no replset config has been received"));
        }
        Ok(())
    }

    /// Where this mongod's data lives, if it may serve the operation.
    fn data_target(&self, addr: &str, write: bool) -> Result<Target, Err_> {
        match self.repl_set_of(addr) {
            None => Ok(Target::Standalone(addr.to_string())),
            Some(rs) => {
                let Some(set) = self.member_set(addr) else {
                    return Err(err(13436, "node is not in primary or recovering state"));
                };
                let (state, _, _) = self.member_state(set, addr, Instant::now());
                if write && state != 1 {
                    return Err(err(10107, "not primary"));
                }
                if !write && state != 1 && state != 2 {
                    return Err(err(13436, "node is not in primary or recovering state"));
                }
                Ok(Target::Set(rs.to_string()))
            }
        }
    }

    fn validate_members(
        &self,
        cfg: &Document,
        mix_code: i32,
        configsvr: bool,
    ) -> Result<Vec<MemberRow>, Err_> {
        let members = members_of(cfg);
        if members.is_empty() {
            return Err(err(
                93,
                "Replica set configuration must have at least one member",
            ));
        }
        for (i, m) in members.iter().enumerate() {
            if m.1.is_empty() {
                return Err(err(93, format!("members.{i}.host is missing")));
            }
            if let Some(j) = members[..i].iter().position(|o| o.1 == m.1) {
                return Err(err(93, format!("Found two member configurations with same host field, members.{j}.host == members.{i}.host == {}", m.1)));
            }
            if let Some(j) = members[..i].iter().position(|o| o.0 == m.0) {
                return Err(err(93, format!("Found two member configurations with same _id field, members.{j}._id == members.{i}._id == {}", m.0)));
            }
            if m.5 && m.2 > 0.0 {
                return Err(err(
                    93,
                    format!("priority must be 0 when hidden=true: members.{i}"),
                ));
            }
            if m.4 && m.2 > 0.0 {
                return Err(err(
                    93,
                    format!("priority must be 0 when arbiterOnly=true: members.{i}"),
                ));
            }
            if m.3 == 0 && m.2 > 0.0 {
                return Err(err(
                    93,
                    format!("priority must be 0 when non-voting (votes:0): members.{i}"),
                ));
            }
            if configsvr && m.4 {
                return Err(err(93, "Arbiters are not allowed in replica set configurations being used for config servers"));
            }
        }
        let local = members
            .iter()
            .filter(|m| is_localhost(host_of(&m.1)))
            .count();
        if local > 0 && local < members.len() {
            return Err(err(mix_code, format!("Either all host names in a replica set configuration must be localhost references, or none must be; found {local} out of {}", members.len())));
        }
        let voting = members.iter().filter(|m| m.3 > 0).count();
        if voting > 7 {
            return Err(err(93, format!("Replica set configuration contains {voting} voting members, but must be at least 1 and no more than 7")));
        }
        Ok(members)
    }

    fn quorum(&self, rs: &str, hosts: &[&str]) -> Result<(), Err_> {
        for h in hosts {
            let why = if !self.up(h) {
                Some("Connection refused".to_string())
            } else if self.repl_set_of(h) != Some(rs) {
                Some(format!(
                    "replica set IDs do not match, ours: {rs}; remote node's: {}",
                    self.repl_set_of(h).unwrap_or("<none>")
                ))
            } else if self.member_set(h).is_some()
                && self.sets[rs]
                    .config
                    .as_ref()
                    .is_none_or(|c| !members_of(c).iter().any(|m| m.1 == *h))
            {
                Some("it already belongs to another replica set config".into())
            } else {
                None
            };
            if let Some(w) = why {
                return Err(err(74, format!("replSetInitiate quorum check failed because not all proposed set members responded affirmatively: {h} failed with {w}")));
            }
        }
        Ok(())
    }

    fn repl_set_initiate(&mut self, addr: &str, body: &Document) -> R {
        let Kind::Mongod { repl_set, role } = self.node(addr).kind.clone() else {
            unreachable!()
        };
        let Some(rs) = repl_set else {
            return Err(err(
                76,
                "This node was not started with replication enabled.",
            ));
        };
        if self.member_set(addr).is_some() {
            return Err(err(23, "already initialized"));
        }
        let mut cfg = match body.get_document("replSetInitiate") {
            Ok(c) if !c.is_empty() => c.clone(),
            _ => {
                let mut c = doc! {"_id": &rs, "members": [{"_id": 0, "host": addr}]};
                if role == Role::ConfigSvr {
                    c.insert("configsvr", true);
                }
                c
            }
        };
        let id = cfg.get_str("_id").unwrap_or("");
        if id != rs {
            return Err(err(93, format!("Attempting to initiate a replica set with name {id}, but command line reports {rs}; rejecting")));
        }
        let configsvr = cfg.get_bool("configsvr").unwrap_or(false);
        if role == Role::ConfigSvr && !configsvr {
            return Err(err(
                93,
                "Nodes started with the --configsvr flag must have configsvr:true in their config",
            ));
        }
        if configsvr && role != Role::ConfigSvr {
            return Err(err(
                93,
                "Nodes being used for config servers must be started with the --configsvr flag",
            ));
        }
        let members = self.validate_members(&cfg, 93, configsvr)?;
        if !members.iter().any(|m| m.1 == addr) {
            return Err(err(74, format!("No host described in new configuration with {{version: 1, term: 0}} for replica set {rs} maps to this node")));
        }
        let others: Vec<&str> = members
            .iter()
            .filter(|m| m.1 != addr)
            .map(|m| m.1.as_str())
            .collect();
        self.quorum(&rs, &others)?;
        if !cfg.contains_key("version") {
            cfg.insert("version", 1);
        }
        let now = Instant::now();
        let delay = self.sync_delay;
        let elect = self.election_delay;
        let set = self.sets.get_mut(&rs).unwrap();
        set.config = Some(cfg);
        set.preferred = Some(addr.to_string());
        set.elect_at = Some(now + elect);
        for m in &members {
            if m.1 != addr && !m.4 {
                set.ready_at.insert(m.1.clone(), now + delay);
            }
        }
        self.counter += 1;
        Ok(doc! {})
    }

    fn repl_set_get_status(&self, addr: &str) -> R {
        self.require_member(addr)?;
        let rs = self.member_set(addr).unwrap();
        let now = Instant::now();
        let cfg = rs.config.as_ref().unwrap();
        let mut my_state = 0;
        let members: Vec<Document> = members_of(cfg)
            .iter()
            .map(|m| {
                let (state, state_str, health) = self.member_state(rs, &m.1, now);
                let mut d = doc! {
                    "_id": m.0 as i32,
                    "name": &m.1,
                    "health": health,
                    "state": state,
                    "stateStr": state_str,
                    "uptime": self.nodes.get(&m.1).map(|n| n.started.elapsed().as_secs() as i64).unwrap_or(0),
                };
                if m.1 == addr {
                    d.insert("self", true);
                    my_state = state;
                }
                d
            })
            .collect();
        Ok(doc! {
            "set": &rs.name,
            "date": bson::DateTime::now(),
            "myState": my_state,
            "term": rs.term,
            "members": members,
        })
    }

    fn repl_set_reconfig(&mut self, addr: &str, body: &Document) -> R {
        self.require_member(addr)?;
        let rs_name = self.repl_set_of(addr).unwrap().to_string();
        let rs = &self.sets[&rs_name];
        let (state, state_str, _) = self.member_state(rs, addr, Instant::now());
        if state != 1 {
            return Err(err(10107, format!("replSetReconfig should only be run on a writable PRIMARY. Current state {state_str};")));
        }
        let new = body
            .get_document("replSetReconfig")
            .map_err(|_| err(2, "replSetReconfig needs a config document"))?
            .clone();
        let cur = rs.config.clone().unwrap();
        if new.get_str("_id").ok() != Some(rs_name.as_str()) {
            return Err(err(
                103,
                "New and old configurations differ in replica set name",
            ));
        }
        let num = |d: &Document| match d.get("version") {
            Some(Bson::Int32(i)) => *i as i64,
            Some(Bson::Int64(i)) => *i,
            _ => 0,
        };
        if num(&new) <= num(&cur) {
            return Err(err(103, format!("New config is rejected :: caused by :: BadValue: version field value of {} is not greater than the current version {}", num(&new), num(&cur))));
        }
        let configsvr = cur.get_bool("configsvr").unwrap_or(false);
        if new.get_bool("configsvr").unwrap_or(false) != configsvr {
            return Err(err(
                103,
                "New and old configurations differ in the setting of configsvr",
            ));
        }
        let members = self.validate_members(&new, 103, configsvr)?;
        let old = members_of(&cur);
        let mut voting_changes = 0;
        for m in &members {
            match old.iter().find(|o| o.1 == m.1) {
                Some(o) if (o.3 > 0) != (m.3 > 0) => voting_changes += 1,
                Some(o) if o.4 != m.4 => {
                    return Err(err(
                        103,
                        format!(
                            "New and old configurations differ in whether {} is an arbiter",
                            m.1
                        ),
                    ))
                }
                Some(_) => {}
                None if m.3 > 0 => voting_changes += 1,
                None => {}
            }
        }
        for o in &old {
            if o.3 > 0 && !members.iter().any(|m| m.1 == o.1) {
                voting_changes += 1;
            }
        }
        if voting_changes > 1 {
            return Err(err(
                103,
                "Non force replica set reconfig can only add or remove at most 1 voting member.",
            ));
        }
        let added: Vec<&str> = members
            .iter()
            .filter(|m| !old.iter().any(|o| o.1 == m.1))
            .map(|m| m.1.as_str())
            .collect();
        self.quorum(&rs_name, &added)?;
        let now = Instant::now();
        let delay = self.sync_delay;
        let set = self.sets.get_mut(&rs_name).unwrap();
        let mut stored = new.clone();
        stored.remove("term");
        set.config = Some(stored);
        for a in added {
            set.ready_at.insert(a.to_string(), now + delay);
        }
        self.counter += 1;
        Ok(doc! {})
    }

    // ------------------------------------------------------------ data

    fn store(&mut self, t: &Target) -> &mut Store {
        match t {
            Target::Set(s) => &mut self.sets.get_mut(s).unwrap().data,
            Target::Standalone(a) => self.standalone.get_mut(a).unwrap(),
        }
    }

    fn store_ref(&self, t: &Target) -> Option<&Store> {
        match t {
            Target::Set(s) => self.sets.get(s).map(|s| &s.data),
            Target::Standalone(a) => self.standalone.get(a),
        }
    }

    fn docs(&self, targets: &[Target], db: &str, coll: &str) -> Vec<Document> {
        targets
            .iter()
            .filter_map(|t| self.store_ref(t))
            .filter_map(|s| s.get(db).and_then(|d| d.get(coll)))
            .flat_map(|c| c.docs.iter().cloned())
            .collect()
    }

    fn cursor_reply(
        &mut self,
        ns: &str,
        mut docs: VecDeque<Document>,
        batch: usize,
        first: bool,
    ) -> Document {
        let take = batch.min(docs.len());
        let batch_docs: Vec<Document> = docs.drain(..take).collect();
        let id = if docs.is_empty() {
            0i64
        } else {
            self.next_cursor += 1;
            self.cursors
                .insert(self.next_cursor, (ns.to_string(), docs));
            self.next_cursor
        };
        let key = if first { "firstBatch" } else { "nextBatch" };
        doc! {"cursor": {key: batch_docs, "id": id, "ns": ns}}
    }

    fn get_more(&mut self, body: &Document) -> R {
        let id = body
            .get("getMore")
            .and_then(|v| v.as_i64())
            .ok_or_else(|| err(2, "getMore needs a cursor id"))?;
        let batch = body
            .get("batchSize")
            .and_then(|v| v.as_i64().or(v.as_i32().map(i64::from)))
            .unwrap_or(101) as usize;
        let (ns, docs) = self
            .cursors
            .remove(&id)
            .ok_or_else(|| err(43, format!("cursor id {id} not found")))?;
        Ok(self.cursor_reply(&ns, docs, batch.max(1), false))
    }

    /// Data commands against one or more stores (a mongod's own, or the
    /// shards a mongos routes to). The first target receives writes.
    fn data_cmd(&mut self, targets: &[Target], name: &str, db: &str, body: &Document) -> R {
        let coll_name = |k: &str| -> Result<String, Err_> {
            body.get_str(k)
                .map(str::to_string)
                .map_err(|_| err(2, format!("{k} needs a collection name")))
        };
        match name {
            "find" => {
                let coll = coll_name("find")?;
                let filter = body.get_document("filter").cloned().unwrap_or_default();
                let proj = body.get_document("projection").ok().cloned();
                let mut out = VecDeque::new();
                for d in self.docs(targets, db, &coll) {
                    if query::matches(&d, &filter).map_err(|e| err(2, e))? {
                        out.push_back(query::project(&d, proj.as_ref()));
                    }
                }
                if let Some(l) = body
                    .get("limit")
                    .and_then(|v| v.as_i64().or(v.as_i32().map(i64::from)))
                {
                    if l > 0 {
                        out.truncate(l as usize);
                    }
                }
                let batch = body
                    .get("batchSize")
                    .and_then(|v| v.as_i64().or(v.as_i32().map(i64::from)))
                    .unwrap_or(101) as usize;
                Ok(self.cursor_reply(&format!("{db}.{coll}"), out, batch, true))
            }
            "count" => {
                let coll = coll_name("count")?;
                let q = body.get_document("query").cloned().unwrap_or_default();
                let mut n = 0;
                for d in self.docs(targets, db, &coll) {
                    if query::matches(&d, &q).map_err(|e| err(2, e))? {
                        n += 1;
                    }
                }
                Ok(doc! {"n": n as i64})
            }
            "aggregate" => {
                let coll = match body.get("aggregate") {
                    Some(Bson::String(s)) => s.clone(),
                    _ => return Err(err(2, "the test double aggregates collections only")),
                };
                let pipeline = body.get_array("pipeline").cloned().unwrap_or_default();
                let docs = self.docs(targets, db, &coll);
                let out = run_pipeline(docs, &pipeline)?;
                Ok(self.cursor_reply(&format!("{db}.{coll}"), out.into(), 101, true))
            }
            "insert" => {
                let coll = coll_name("insert")?;
                let docs = body.get_array("documents").cloned().unwrap_or_default();
                let t = targets
                    .first()
                    .ok_or_else(|| err(70, "no shard to write to"))?
                    .clone();
                let c = self
                    .store(&t)
                    .entry(db.to_string())
                    .or_default()
                    .entry(coll)
                    .or_insert_with(Coll::new);
                let mut n = 0;
                for d in docs {
                    if let Bson::Document(mut d) = d {
                        if !d.contains_key("_id") {
                            d.insert("_id", ObjectId::new());
                        }
                        c.docs.push(d);
                        n += 1;
                    }
                }
                Ok(doc! {"n": n})
            }
            "update" => {
                let coll = coll_name("update")?;
                let updates = body.get_array("updates").cloned().unwrap_or_default();
                let t = targets
                    .first()
                    .ok_or_else(|| err(70, "no shard to write to"))?
                    .clone();
                let c = self
                    .store(&t)
                    .entry(db.to_string())
                    .or_default()
                    .entry(coll)
                    .or_insert_with(Coll::new);
                let (mut n, mut modified) = (0i32, 0i32);
                let mut upserted = Vec::new();
                for (i, u) in updates.iter().enumerate() {
                    let u = u.as_document().ok_or_else(|| err(2, "bad update"))?;
                    let q = u.get_document("q").cloned().unwrap_or_default();
                    let upd = u.get_document("u").cloned().unwrap_or_default();
                    let multi = u.get_bool("multi").unwrap_or(false);
                    let mut hit = false;
                    for d in c.docs.iter_mut() {
                        if query::matches(d, &q).map_err(|e| err(2, e))? {
                            let before = d.clone();
                            query::apply_update(d, &upd).map_err(|e| err(9, e))?;
                            n += 1;
                            if *d != before {
                                modified += 1;
                            }
                            hit = true;
                            if !multi {
                                break;
                            }
                        }
                    }
                    if !hit && u.get_bool("upsert").unwrap_or(false) {
                        let mut d = query::upsert_seed(&q);
                        query::apply_update(&mut d, &upd).map_err(|e| err(9, e))?;
                        if !d.contains_key("_id") {
                            d.insert("_id", ObjectId::new());
                        }
                        upserted
                            .push(doc! {"index": i as i32, "_id": d.get("_id").cloned().unwrap()});
                        c.docs.push(d);
                        n += 1;
                    }
                }
                let mut r = doc! {"n": n, "nModified": modified};
                if !upserted.is_empty() {
                    r.insert("upserted", upserted);
                }
                Ok(r)
            }
            "delete" => {
                let coll = coll_name("delete")?;
                let deletes = body.get_array("deletes").cloned().unwrap_or_default();
                let t = targets
                    .first()
                    .ok_or_else(|| err(70, "no shard to write to"))?
                    .clone();
                let mut n = 0;
                if let Some(c) = self.store(&t).get_mut(db).and_then(|d| d.get_mut(&coll)) {
                    for dl in deletes.iter().filter_map(Bson::as_document) {
                        let q = dl.get_document("q").cloned().unwrap_or_default();
                        let before = c.docs.len();
                        let mut err_ = None;
                        c.docs.retain(|d| match query::matches(d, &q) {
                            Ok(m) => !m,
                            Err(e) => {
                                err_ = Some(e);
                                true
                            }
                        });
                        if let Some(e) = err_ {
                            return Err(err(2, e));
                        }
                        n += before - c.docs.len();
                    }
                }
                Ok(doc! {"n": n as i32})
            }
            "createIndexes" => {
                let coll = coll_name("createIndexes")?;
                let specs = body.get_array("indexes").cloned().unwrap_or_default();
                let mut before = 0;
                let mut after = 0;
                let mut created_coll = false;
                for t in targets {
                    let dbm = self.store(t).entry(db.to_string()).or_default();
                    created_coll |= !dbm.contains_key(&coll);
                    let c = dbm.entry(coll.clone()).or_insert_with(Coll::new);
                    before = c.indexes.len();
                    for s in specs.iter().filter_map(Bson::as_document) {
                        let key = s
                            .get_document("key")
                            .cloned()
                            .map_err(|_| err(2, "index needs a key"))?;
                        let name = s.get_str("name").unwrap_or("").to_string();
                        let hashed = key
                            .values()
                            .filter(|v| v.as_str() == Some("hashed"))
                            .count();
                        if hashed > 1 {
                            return Err(err(31303, format!("A maximum of one index field is allowed to be hashed but found {hashed} for 'key' {key}")));
                        }
                        match c.indexes.iter().find(|(n, k)| {
                            n == &name
                                || query::bson_eq(
                                    &Bson::Document(k.clone()),
                                    &Bson::Document(key.clone()),
                                )
                        }) {
                            Some((n, k))
                                if n == &name
                                    && query::bson_eq(
                                        &Bson::Document(k.clone()),
                                        &Bson::Document(key.clone()),
                                    ) => {}
                            Some((n, _)) => {
                                return Err(err(
                                    85,
                                    format!("Index already exists with a different name: {n}"),
                                ))
                            }
                            None => c.indexes.push((name, key)),
                        }
                    }
                    after = c.indexes.len();
                }
                Ok(
                    doc! {"createdCollectionAutomatically": created_coll, "numIndexesBefore": before as i32, "numIndexesAfter": after as i32},
                )
            }
            "listIndexes" => {
                let coll = coll_name("listIndexes")?;
                let idx = targets
                    .iter()
                    .filter_map(|t| self.store_ref(t))
                    .find_map(|s| s.get(db).and_then(|d| d.get(&coll)))
                    .map(|c| c.indexes.clone());
                let Some(idx) = idx else {
                    return Err(err(26, format!("ns does not exist: {db}.{coll}")));
                };
                let docs: VecDeque<Document> = idx
                    .into_iter()
                    .map(|(n, k)| doc! {"v": 2, "key": k, "name": n})
                    .collect();
                Ok(self.cursor_reply(&format!("{db}.$cmd.listIndexes"), docs, 101, true))
            }
            "listDatabases" => {
                let mut dbs: BTreeMap<String, i64> = BTreeMap::new();
                for s in targets.iter().filter_map(|t| self.store_ref(t)) {
                    for (name, colls) in s {
                        let size: i64 = colls
                            .values()
                            .flat_map(|c| c.docs.iter())
                            .map(doc_size)
                            .sum();
                        *dbs.entry(name.clone()).or_default() += size;
                    }
                }
                let total: i64 = dbs.values().sum();
                let list: Vec<Document> = dbs
                    .into_iter()
                    .map(|(n, s)| doc! {"name": n, "sizeOnDisk": s.max(8192), "empty": s == 0})
                    .collect();
                Ok(doc! {"databases": list, "totalSize": total})
            }
            "dbStats" => {
                let mut objects = 0i64;
                let mut size = 0i64;
                let mut colls = 0i32;
                for s in targets.iter().filter_map(|t| self.store_ref(t)) {
                    if let Some(d) = s.get(db) {
                        colls += d.len() as i32;
                        for c in d.values() {
                            objects += c.docs.len() as i64;
                            size += c.docs.iter().map(doc_size).sum::<i64>();
                        }
                    }
                }
                Ok(
                    doc! {"db": db, "collections": colls, "objects": objects, "dataSize": size as f64, "storageSize": size as f64, "indexes": colls},
                )
            }
            "listCollections" => {
                let names: Vec<Document> = targets
                    .iter()
                    .filter_map(|t| self.store_ref(t))
                    .filter_map(|s| s.get(db))
                    .flat_map(|d| d.keys().cloned())
                    .map(|n| doc! {"name": n, "type": "collection"})
                    .collect();
                Ok(self.cursor_reply(
                    &format!("{db}.$cmd.listCollections"),
                    names.into(),
                    101,
                    true,
                ))
            }
            other => Err(err(59, format!("no such command: '{other}'"))),
        }
    }

    // ------------------------------------------------------------ mongos

    fn config_ready(&self, cfg: &str) -> Result<(), Err_> {
        let ok = self.sets.get(cfg).is_some_and(|s| {
            s.primary.is_some()
                && s.config
                    .as_ref()
                    .is_some_and(|c| c.get_bool("configsvr").unwrap_or(false))
        });
        if ok {
            Ok(())
        } else {
            Err(err(133, format!("Could not find host matching read preference {{ mode: \"primary\" }} for set {cfg}")))
        }
    }

    fn catalog_mut(&mut self, cfg: &str, coll: &str) -> &mut Coll {
        self.sets
            .get_mut(cfg)
            .unwrap()
            .data
            .entry("config".into())
            .or_default()
            .entry(coll.into())
            .or_insert_with(Coll::new)
    }

    fn catalog(&self, cfg: &str, coll: &str) -> Vec<Document> {
        self.sets
            .get(cfg)
            .and_then(|s| s.data.get("config"))
            .and_then(|d| d.get(coll))
            .map(|c| c.docs.clone())
            .unwrap_or_default()
    }

    /// (shard id, replica set name) of every registered shard.
    fn shard_sets(&self, cfg: &str) -> Vec<(String, String)> {
        self.catalog(cfg, "shards")
            .iter()
            .map(|s| {
                (
                    s.get_str("_id").unwrap_or("").to_string(),
                    s.get_str("host")
                        .unwrap_or("")
                        .split('/')
                        .next()
                        .unwrap_or("")
                        .to_string(),
                )
            })
            .collect()
    }

    fn sharded(&self, cfg: &str, ns: &str) -> Option<Document> {
        self.catalog(cfg, "collections")
            .into_iter()
            .find(|c| c.get_str("_id").ok() == Some(ns) && !c.get_bool("dropped").unwrap_or(false))
    }

    /// Stores a mongos routes `db.coll` to: every shard for a sharded
    /// collection, else the database's primary shard.
    fn route(&self, cfg: &str, db: &str, coll: &str) -> Vec<Target> {
        let shards = self.shard_sets(cfg);
        if self.sharded(cfg, &format!("{db}.{coll}")).is_some() {
            return shards.into_iter().map(|(_, s)| Target::Set(s)).collect();
        }
        let primary = self
            .catalog(cfg, "databases")
            .into_iter()
            .find(|d| d.get_str("_id").ok() == Some(db))
            .and_then(|d| d.get_str("primary").ok().map(str::to_string));
        match primary {
            Some(p) => shards
                .into_iter()
                .filter(|(id, _)| *id == p)
                .map(|(_, s)| Target::Set(s))
                .collect(),
            None => Vec::new(),
        }
    }

    /// The primary shard of `db`, registering the database if needed.
    fn ensure_db(&mut self, cfg: &str, db: &str) -> Result<String, Err_> {
        if let Some(d) = self
            .catalog(cfg, "databases")
            .into_iter()
            .find(|d| d.get_str("_id").ok() == Some(db))
        {
            return Ok(d.get_str("primary").unwrap_or("").to_string());
        }
        let mut shards = self.shard_sets(cfg);
        shards.sort();
        let Some((primary, _)) = shards.first().cloned() else {
            return Err(err(
                70,
                format!("Database {db} could not be created :: caused by :: No shards found"),
            ));
        };
        self.catalog_mut(cfg, "databases").docs.push(doc! {
            "_id": db, "primary": &primary, "partitioned": false,
            "version": {"uuid": bson::Binary::from_uuid(bson::Uuid::new()), "lastMod": 1},
        });
        Ok(primary)
    }

    fn set_of_shard(&self, cfg: &str, shard: &str) -> Option<String> {
        self.shard_sets(cfg)
            .into_iter()
            .find(|(id, _)| id == shard)
            .map(|(_, s)| s)
    }

    fn mongos(
        &mut self,
        addr: &str,
        configdb: &str,
        name: &str,
        db: &str,
        body: &Document,
        conn_id: i64,
    ) -> R {
        if let Some(r) = self.common(addr, name, body, conn_id) {
            return r;
        }
        let cfg = configdb.split('/').next().unwrap_or("").to_string();
        self.config_ready(&cfg)?;
        let version = self.node(addr).version.clone();
        match name {
            "listShards" => Ok(doc! {"shards": self.catalog(&cfg, "shards")}),
            "addShard" => self.add_shard(&cfg, configdb, body),
            "enableSharding" => {
                let d = body
                    .get_str("enableSharding")
                    .map_err(|_| err(2, "enableSharding needs a database name"))?
                    .to_string();
                self.ensure_db(&cfg, &d)?;
                for x in self.catalog_mut(&cfg, "databases").docs.iter_mut() {
                    if x.get_str("_id").ok() == Some(d.as_str()) {
                        x.insert("partitioned", true);
                    }
                }
                Ok(doc! {})
            }
            "shardCollection" => self.shard_collection(&cfg, &version, body),
            "balancerStatus" => {
                let b = self
                    .catalog(&cfg, "settings")
                    .into_iter()
                    .find(|d| d.get_str("_id").ok() == Some("balancer"));
                let mode = match &b {
                    Some(b) if b.get_str("mode").is_ok() => b.get_str("mode").unwrap().to_string(),
                    Some(b) if b.get_bool("stopped").unwrap_or(false) => "off".into(),
                    _ => "full".into(),
                };
                Ok(
                    doc! {"mode": mode, "inBalancerRound": false, "numBalancerRounds": self.balancer_rounds},
                )
            }
            "balancerStart" | "balancerStop" => {
                let on = name == "balancerStart";
                let c = self.catalog_mut(&cfg, "settings");
                match c.docs.iter_mut().find(|d| d.get_str("_id").ok() == Some("balancer")) {
                    Some(d) => {
                        d.insert("mode", if on { "full" } else { "off" });
                        d.insert("stopped", !on);
                    }
                    None => c.docs.push(doc! {"_id": "balancer", "mode": if on { "full" } else { "off" }, "stopped": !on}),
                }
                Ok(doc! {})
            }
            "aggregate" if db == "admin" && body.get("aggregate") == Some(&Bson::Int32(1)) => {
                let pipeline = body.get_array("pipeline").cloned().unwrap_or_default();
                let first = pipeline
                    .first()
                    .and_then(Bson::as_document)
                    .and_then(|d| d.keys().next().cloned());
                if first.as_deref() != Some("$shardedDataDistribution") {
                    return Err(err(
                        2,
                        "the test double supports only $shardedDataDistribution on admin",
                    ));
                }
                if version_tuple(&version) < (6, 0, 3) {
                    return Err(err(
                        40324,
                        "Unrecognized pipeline stage name: '$shardedDataDistribution'",
                    ));
                }
                let mut out = Vec::new();
                for c in self.catalog(&cfg, "collections") {
                    if c.get_bool("dropped").unwrap_or(false) {
                        continue;
                    }
                    let ns = c.get_str("_id").unwrap_or("").to_string();
                    let (d, coll) = ns.split_once('.').unwrap();
                    let mut shards = Vec::new();
                    for (id, set) in self.shard_sets(&cfg) {
                        let docs = self.docs(&[Target::Set(set)], d, coll);
                        if docs.is_empty() {
                            continue;
                        }
                        shards.push(doc! {
                            "shardName": id,
                            "numOrphanedDocs": 0i64,
                            "numOwnedDocuments": docs.len() as i64,
                            "ownedSizeBytes": docs.iter().map(doc_size).sum::<i64>(),
                            "orphanedSizeBytes": 0i64,
                        });
                    }
                    out.push(doc! {"ns": ns, "shards": shards});
                }
                let rest: Vec<Bson> = pipeline.into_iter().skip(1).collect();
                let out = run_pipeline(out, &rest)?;
                Ok(self.cursor_reply("admin.$cmd.aggregate", out.into(), 101, true))
            }
            _ if db == "config" => {
                let t = Target::Set(cfg.clone());
                self.data_cmd(&[t], name, "config", body)
            }
            "insert" => {
                let coll = body
                    .get_str("insert")
                    .map_err(|_| err(2, "insert needs a collection"))?
                    .to_string();
                self.ensure_db(&cfg, db)?;
                let ns = format!("{db}.{coll}");
                let docs = body.get_array("documents").cloned().unwrap_or_default();
                let mut n = 0;
                for d in docs {
                    let t = self.route_doc(&cfg, db, &ns, &d);
                    let mut b = body.clone();
                    b.insert("documents", vec![d]);
                    self.data_cmd(&[t], "insert", db, &b)?;
                    n += 1;
                }
                Ok(doc! {"n": n})
            }
            "listDatabases" => {
                let mut targets: Vec<Target> = self
                    .shard_sets(&cfg)
                    .into_iter()
                    .map(|(_, s)| Target::Set(s))
                    .collect();
                targets.push(Target::Set(cfg.clone()));
                self.data_cmd(&targets, name, db, body)
            }
            _ => {
                let coll = body
                    .get(name)
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_string();
                if matches!(name, "update" | "delete" | "createIndexes") {
                    self.ensure_db(&cfg, db)?;
                }
                let targets = self.route(&cfg, db, &coll);
                self.data_cmd(&targets, name, db, body)
            }
        }
    }

    /// The shard a document of a sharded collection belongs to (by the
    /// hash of its first key field, against the chunks' bounds).
    fn route_doc(&self, cfg: &str, db: &str, ns: &str, d: &Bson) -> Target {
        let primary_set = || {
            let coll = ns.split_once('.').unwrap().1;
            self.route(cfg, db, coll)
                .into_iter()
                .next()
                .unwrap_or(Target::Set(String::new()))
        };
        let Some(c) = self.sharded(cfg, ns) else {
            return primary_set();
        };
        let key = c.get_document("key").cloned().unwrap_or_default();
        let Some((field, kind)) = key.iter().next() else {
            return primary_set();
        };
        let uuid = c.get("uuid").cloned();
        let chunks: Vec<Document> = self
            .catalog(cfg, "chunks")
            .into_iter()
            .filter(|ch| ch.get("uuid").cloned() == uuid)
            .collect();
        let shard = if kind.as_str() == Some("hashed") {
            let v = d
                .as_document()
                .and_then(|d| query::get_path(d, field).cloned())
                .unwrap_or(Bson::Null);
            let h = hash_value(&v);
            chunks.iter().find(|ch| {
                let lo = ch
                    .get_document("min")
                    .ok()
                    .and_then(|m| m.get(field))
                    .cloned();
                let hi = ch
                    .get_document("max")
                    .ok()
                    .and_then(|m| m.get(field))
                    .cloned();
                let above = match lo {
                    Some(Bson::Int64(x)) => h >= x,
                    _ => true,
                };
                let below = match hi {
                    Some(Bson::Int64(x)) => h < x,
                    _ => true,
                };
                above && below
            })
        } else {
            chunks.first()
        }
        .and_then(|ch| ch.get_str("shard").ok().map(str::to_string));
        match shard.and_then(|s| self.set_of_shard(cfg, &s)) {
            Some(s) => Target::Set(s),
            None => primary_set(),
        }
    }

    fn add_shard(&mut self, cfg: &str, configdb: &str, body: &Document) -> R {
        let conn = body
            .get_str("addShard")
            .map_err(|_| err(2, "Invalid connection string"))?
            .to_string();
        let Some((rs, hosts)) = conn.split_once('/') else {
            return Err(err(2, format!("Invalid connection string {conn}: the double takes replica sets as <setName>/<host:port>,...")));
        };
        let hosts: Vec<String> = hosts.split(',').map(str::to_string).collect();
        let name = body
            .get_str("name")
            .map(str::to_string)
            .unwrap_or_else(|_| rs.to_string());
        if name.is_empty() {
            return Err(err(2, "shard name cannot be empty"));
        }
        // Already there with the same options: success, nothing to do.
        for s in self.catalog(cfg, "shards") {
            let id = s.get_str("_id").unwrap_or("").to_string();
            let host = s.get_str("host").unwrap_or("").to_string();
            let (ers, ehosts) = host.split_once('/').unwrap_or(("", ""));
            if ers == rs {
                if id == name {
                    return Ok(doc! {"shardAdded": name});
                }
                return Err(err(
                    20,
                    format!("A shard already exists containing the replica set '{rs}'"),
                ));
            }
            for h in &hosts {
                if ehosts.split(',').any(|e| e == h) {
                    return Err(err(
                        20,
                        format!("'{h}' is already a member of the existing shard '{host}' ({id})."),
                    ));
                }
            }
            if id == name {
                return Err(err(20, format!("A shard named {name} already exists")));
            }
        }
        // localhost all or none, across config servers and shards
        let allow_local = configdb
            .split_once('/')
            .map(|(_, h)| h.split(',').all(|x| is_localhost(host_of(x))))
            .unwrap_or(true);
        for h in &hosts {
            if is_localhost(host_of(h)) != allow_local {
                return Err(err(72, format!("Can't use localhost as a shard since all shards need to communicate. Either use all shards and configdbs in localhost or all in actual IPs. host: {h} isLocalHost:{}", is_localhost(host_of(h)) as i32)));
            }
        }
        // Reach the set's primary through the seed list.
        let reachable: Vec<&String> = hosts.iter().filter(|h| self.up(h)).collect();
        if reachable.is_empty() {
            return Err(err(133, format!("Could not find host matching read preference {{ mode: \"primary\" }} for set {rs}")));
        }
        let probe = reachable[0].clone();
        if matches!(self.node(&probe).kind, Kind::Mongos { .. }) {
            return Err(err(20, "cannot add a mongos as a shard"));
        }
        let found = self.member_set(&probe).map(|s| s.name.clone());
        let Some(found) = found else {
            return Err(err(
                96,
                format!(
                    "host did not return a set name; is the replica set still initializing? {conn}"
                ),
            ));
        };
        if found != rs {
            return Err(err(96, format!("the provided connection string ({conn}) does not match the actual set name {found}")));
        }
        let set = &self.sets[&found];
        let Some(primary) = set.primary.clone() else {
            return Err(err(10107, format!("{conn} does not have a master. If this is a replica set, ensure that it has a healthy primary and that the set has been properly initiated.")));
        };
        if self.role_of(&primary) == Role::ConfigSvr {
            return Err(err(
                96,
                format!("Cannot add {conn} as a shard since it is a config server"),
            ));
        }
        let members = members_of(set.config.as_ref().unwrap());
        for h in &hosts {
            if !members.iter().any(|m| &m.1 == h && !m.5) {
                return Err(err(
                    96,
                    format!("in seed list {conn}, host {h} does not belong to replica set {rs}"),
                ));
            }
        }
        if self.role_of(&primary) != Role::ShardSvr {
            return Err(err(96, format!("failed to run command {{ _shardsvrAddShard: 1 }} when attempting to add shard {conn} :: caused by :: NoShardingEnabled: Cannot accept sharding commands if not started with --shardsvr")));
        }
        if name == "config" {
            return Err(err(
                2,
                "use of shard replica set with name 'config' is not allowed",
            ));
        }
        let dbs: Vec<String> = set
            .data
            .keys()
            .filter(|d| !["admin", "local", "config"].contains(&d.as_str()))
            .cloned()
            .collect();
        for d in &dbs {
            if let Some(x) = self
                .catalog(cfg, "databases")
                .into_iter()
                .find(|x| x.get_str("_id").ok() == Some(d.as_str()))
            {
                return Err(err(96, format!("can't add shard '{conn}' because a local database '{d}' exists in another {}", x.get_str("primary").unwrap_or("?"))));
            }
        }
        let visible: Vec<&str> = members
            .iter()
            .filter(|m| !m.4 && !m.5)
            .map(|m| m.1.as_str())
            .collect();
        self.catalog_mut(cfg, "shards").docs.push(doc! {
            "_id": &name,
            "host": format!("{rs}/{}", visible.join(",")),
            "state": 1,
            "topologyTime": bson::Timestamp { time: 1, increment: 1 },
        });
        for d in dbs {
            self.catalog_mut(cfg, "databases").docs.push(doc! {
                "_id": d, "primary": &name, "partitioned": false,
                "version": {"uuid": bson::Binary::from_uuid(bson::Uuid::new()), "lastMod": 1},
            });
        }
        Ok(doc! {"shardAdded": name})
    }

    fn shard_collection(&mut self, cfg: &str, version: &str, body: &Document) -> R {
        let ns = body
            .get_str("shardCollection")
            .map_err(|_| err(2, "shardCollection needs a namespace"))?
            .to_string();
        let key = body
            .get_document("key")
            .cloned()
            .map_err(|_| err(2, "shardCollection needs a key"))?;
        let unique = body.get_bool("unique").unwrap_or(false);
        if body.contains_key("numInitialChunks") && version_tuple(version) >= (7, 0, 0) {
            return Err(err(2, "numInitialChunks is no longer supported"));
        }
        let Some((db, coll)) = ns.split_once('.') else {
            return Err(err(73, format!("Invalid namespace specified '{ns}'")));
        };
        let mut hashed = 0;
        for (_, v) in &key {
            match v {
                Bson::String(s) if s == "hashed" => hashed += 1,
                Bson::Int32(1) | Bson::Int64(1) => {}
                Bson::Double(x) if *x == 1.0 => {}
                _ => return Err(err(2, format!("Unsupported shard key pattern {key}. Pattern must either be a single hashed field, or a list of ascending fields"))),
            }
        }
        if hashed > 1 {
            return Err(err(
                2,
                format!("Shard key {key} can contain at most one 'hashed' field"),
            ));
        }
        if unique && hashed > 0 {
            return Err(err(72, "Hashed shard keys cannot be declared unique. It's possible to ensure uniqueness on the hashed field by declaring an additional (non-hashed) unique index on the field."));
        }
        if let Some(existing) = self.sharded(cfg, &ns) {
            let same = query::bson_eq(
                &Bson::Document(existing.get_document("key").cloned().unwrap_or_default()),
                &Bson::Document(key.clone()),
            ) && existing.get_bool("unique").unwrap_or(false) == unique;
            if same {
                return Ok(doc! {"collectionsharded": &ns});
            }
            return Err(err(
                23,
                format!("sharding already enabled for collection {ns} with options {existing}"),
            ));
        }
        let dbdoc = self
            .catalog(cfg, "databases")
            .into_iter()
            .find(|d| d.get_str("_id").ok() == Some(db));
        if version_tuple(version) < (6, 0, 0)
            && !dbdoc
                .as_ref()
                .is_some_and(|d| d.get_bool("partitioned").unwrap_or(false))
        {
            return Err(err(20, format!("sharding not enabled for db {db}")));
        }
        let primary = self.ensure_db(cfg, db)?;
        let pset = self
            .set_of_shard(cfg, &primary)
            .ok_or_else(|| err(70, format!("shard {primary} not found")))?;
        let c = self
            .sets
            .get_mut(&pset)
            .unwrap()
            .data
            .entry(db.to_string())
            .or_default()
            .entry(coll.to_string())
            .or_insert_with(Coll::new);
        let has_index = c.indexes.iter().any(|(_, k)| {
            k.len() >= key.len()
                && k.iter()
                    .zip(key.iter())
                    .all(|((a, x), (b, y))| a == b && query::bson_eq(x, y))
        });
        let docs = c.docs.len();
        if !has_index {
            if docs > 0 {
                return Err(err(72, "Please create an index that starts with the proposed shard key before sharding the collection"));
            }
            let name: Vec<String> = key
                .iter()
                .map(|(k, v)| match v {
                    Bson::String(s) => format!("{k}_{s}"),
                    _ => format!("{k}_1"),
                })
                .collect();
            c.indexes.push((name.join("_"), key.clone()));
        }
        let uuid = c.uuid;
        let epoch = ObjectId::new();
        self.catalog_mut(cfg, "collections").docs.push(doc! {
            "_id": &ns,
            "lastmodEpoch": epoch,
            "lastmod": bson::DateTime::now(),
            "timestamp": bson::Timestamp { time: 1, increment: 1 },
            "uuid": bson::Binary::from_uuid(uuid),
            "key": key.clone(),
            "unique": unique,
            "noBalance": false,
        });
        // Chunks: an empty collection with a hashed prefix is pre-split
        // (two chunks per shard); anything else starts as one chunk on the
        // primary shard, for the balancer to split and move later.
        let mut shards: Vec<String> = self.shard_sets(cfg).into_iter().map(|(id, _)| id).collect();
        shards.sort();
        let first_hashed = key
            .iter()
            .next()
            .is_some_and(|(_, v)| v.as_str() == Some("hashed"));
        let fields: Vec<String> = key.keys().cloned().collect();
        let bound = |first: Bson| -> Document {
            let mut d = Document::new();
            for (i, f) in fields.iter().enumerate() {
                d.insert(f.clone(), if i == 0 { first.clone() } else { Bson::MinKey });
            }
            d
        };
        let max_bound = || -> Document {
            let mut d = Document::new();
            for f in &fields {
                d.insert(f.clone(), Bson::MaxKey);
            }
            d
        };
        let mut chunks = Vec::new();
        if docs == 0 && first_hashed && !shards.is_empty() {
            let n = 2 * shards.len() as i128;
            let span = (i64::MAX as i128 - i64::MIN as i128 + 1) / n;
            for i in 0..n {
                let lo = if i == 0 {
                    Bson::MinKey
                } else {
                    Bson::Int64((i64::MIN as i128 + span * i) as i64)
                };
                let hi = if i == n - 1 {
                    None
                } else {
                    Some(Bson::Int64((i64::MIN as i128 + span * (i + 1)) as i64))
                };
                chunks.push((
                    bound(lo),
                    hi.map(bound).unwrap_or_else(max_bound),
                    shards[(i / 2) as usize].clone(),
                ));
            }
        } else {
            chunks.push((bound(Bson::MinKey), max_bound(), primary.clone()));
        }
        let cat = self.catalog_mut(cfg, "chunks");
        for (i, (min, max, shard)) in chunks.into_iter().enumerate() {
            cat.docs.push(doc! {
                "_id": ObjectId::new(),
                "uuid": bson::Binary::from_uuid(uuid),
                "min": min,
                "max": max,
                "shard": shard,
                "lastmod": bson::Timestamp { time: 1, increment: i as u32 },
                "onCurrentShardSince": bson::Timestamp { time: 1, increment: 0 },
            });
        }
        Ok(doc! {"collectionsharded": &ns, "collectionUUID": bson::Binary::from_uuid(uuid)})
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Target {
    Set(String),
    Standalone(String),
}

fn is_write(name: &str) -> bool {
    matches!(
        name,
        "insert" | "update" | "delete" | "createIndexes" | "drop"
    )
}

/// `$match`, `$skip`, `$limit` and a `$group` on a constant `_id` with
/// `$sum` accumulators: what counting (`countDocuments`) needs.
fn run_pipeline(mut docs: Vec<Document>, pipeline: &[Bson]) -> Result<Vec<Document>, Err_> {
    for stage in pipeline {
        let stage = stage
            .as_document()
            .ok_or_else(|| err(2, "pipeline stages are documents"))?;
        let (op, arg) = stage.iter().next().ok_or_else(|| err(2, "empty stage"))?;
        match op.as_str() {
            "$match" => {
                let f = arg.as_document().cloned().unwrap_or_default();
                let mut out = Vec::new();
                for d in docs {
                    if query::matches(&d, &f).map_err(|e| err(2, e))? {
                        out.push(d);
                    }
                }
                docs = out;
            }
            "$skip" => {
                let n = arg.as_i64().or(arg.as_i32().map(i64::from)).unwrap_or(0) as usize;
                docs = docs.into_iter().skip(n).collect();
            }
            "$limit" => {
                let n = arg.as_i64().or(arg.as_i32().map(i64::from)).unwrap_or(0) as usize;
                docs.truncate(n);
            }
            "$group" => {
                let g = arg.as_document().cloned().unwrap_or_default();
                let id = g.get("_id").cloned().unwrap_or(Bson::Null);
                if matches!(&id, Bson::String(s) if s.starts_with('$')) {
                    return Err(err(2, "the test double groups on constant _id only"));
                }
                if docs.is_empty() {
                    docs = Vec::new();
                    continue;
                }
                let mut out = doc! {"_id": id};
                for (k, acc) in &g {
                    if k == "_id" {
                        continue;
                    }
                    let sum = acc
                        .as_document()
                        .and_then(|a| a.get("$sum"))
                        .ok_or_else(|| err(2, "the test double supports $sum accumulators only"))?;
                    let total: i64 = match sum {
                        Bson::Int32(n) => *n as i64 * docs.len() as i64,
                        Bson::Int64(n) => *n * docs.len() as i64,
                        _ => return Err(err(2, "the test double sums constants only")),
                    };
                    out.insert(
                        k.clone(),
                        if total <= i32::MAX as i64 {
                            Bson::Int32(total as i32)
                        } else {
                            Bson::Int64(total)
                        },
                    );
                }
                docs = vec![out];
            }
            other => {
                return Err(err(
                    40324,
                    format!("Unrecognized pipeline stage name: '{other}'"),
                ))
            }
        }
    }
    Ok(docs)
}
