//! Observation: every data node and every sentinel read in parallel. A node
//! that does not answer is recorded with the reason, never turned into an
//! error. For the local provider, a stopped sentinel's own config file is
//! read too: it holds the last master that sentinel knew, which is what a
//! full restart must come back to.

use crate::engine::redis::{clean_error, connect, parse_info};
use crate::provider::local::{self, ProcState, StateDir};
use crate::secret::Secret;
use redis::aio::MultiplexedConnection;
use redis::Value;
use std::collections::HashMap;
use std::time::Duration;

/// How long one node may take to answer before it counts as unreachable.
pub const NODE_TIMEOUT: Duration = Duration::from_secs(2);

/// What the local provider knows of a node's process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Process {
    /// Not managed by datatier (existing provider).
    External,
    Running(u32),
    /// Stopped; `has_state` when its dir holds a config (and data) from an
    /// earlier run, so it restarts with them rather than fresh.
    Stopped {
        has_state: bool,
    },
}

/// A replica as its master lists it in `INFO replication` (`slaveN:` lines).
#[derive(Debug, Clone, PartialEq)]
pub struct AttachedReplica {
    pub addr: String,
    pub state: String,
    pub offset: u64,
    /// Seconds since the replica's last REPLCONF ACK.
    pub lag: u64,
}

/// A data node (redis-server) as seen from itself.
#[derive(Debug, Clone, Default)]
pub struct DataView {
    /// `INFO` (default sections merged).
    pub info: HashMap<String, String>,
    pub keys: u64,
    /// `CONFIG GET` of the settings datatier manages or checks.
    pub config: HashMap<String, String>,
}

impl DataView {
    pub fn get(&self, k: &str) -> Option<&str> {
        self.info.get(k).map(String::as_str)
    }
    pub fn is_master(&self) -> bool {
        self.get("role") == Some("master")
    }
    pub fn is_replica(&self) -> bool {
        self.get("role") == Some("slave")
    }
    /// `host:port` this node replicates from, if it is a replica.
    pub fn master_addr(&self) -> Option<String> {
        if !self.is_replica() {
            return None;
        }
        Some(format!(
            "{}:{}",
            self.get("master_host")?,
            self.get("master_port")?
        ))
    }
    pub fn link_up(&self) -> bool {
        self.is_replica() && self.get("master_link_status") == Some("up")
    }
    /// The replication offset: the master's own, or how far a replica got.
    pub fn offset(&self) -> Option<u64> {
        let k = if self.is_replica() {
            "slave_repl_offset"
        } else {
            "master_repl_offset"
        };
        self.get(k)?.parse().ok()
    }
    /// Replication ids (current and previous): a node whose id is in
    /// another's pair shares its history (e.g. an old master and the replica
    /// promoted in its place).
    pub fn replids(&self) -> Vec<&str> {
        ["master_replid", "master_replid2"]
            .iter()
            .filter_map(|k| self.get(k))
            .filter(|id| !id.chars().all(|c| c == '0'))
            .collect()
    }
    /// The replicas attached to this node, from its `slaveN:` lines.
    pub fn attached(&self) -> Vec<AttachedReplica> {
        let mut v: Vec<(usize, AttachedReplica)> = self
            .info
            .iter()
            .filter_map(|(k, val)| {
                let n: usize = k.strip_prefix("slave")?.parse().ok()?;
                let f: HashMap<&str, &str> =
                    val.split(',').filter_map(|kv| kv.split_once('=')).collect();
                Some((
                    n,
                    AttachedReplica {
                        addr: format!("{}:{}", f.get("ip")?, f.get("port")?),
                        state: f.get("state").copied().unwrap_or("?").to_string(),
                        offset: f.get("offset").and_then(|o| o.parse().ok()).unwrap_or(0),
                        lag: f.get("lag").and_then(|o| o.parse().ok()).unwrap_or(0),
                    },
                ))
            })
            .collect();
        v.sort_by_key(|(n, _)| *n);
        v.into_iter().map(|(_, r)| r).collect()
    }
    pub fn diskless_delay(&self) -> Option<&str> {
        self.config
            .get("repl-diskless-sync-delay")
            .map(String::as_str)
    }
}

/// A sentinel as seen from itself, for the declared master name.
#[derive(Debug, Clone)]
pub struct SentinelView {
    /// `SENTINEL MYID`.
    pub myid: Option<String>,
    /// `INFO` (sentinel_tilt, sentinel_masters, ...).
    pub info: HashMap<String, String>,
    /// `SENTINEL GET-MASTER-ADDR-BY-NAME`: what clients are told.
    pub master_addr: Option<String>,
    /// `SENTINEL MASTER <name>`; `None` when it does not monitor the name.
    pub master: Option<HashMap<String, String>>,
    pub replicas: Vec<HashMap<String, String>>,
    pub sentinels: Vec<HashMap<String, String>>,
    /// `SENTINEL CKQUORUM`: the OK text or the error.
    pub ckquorum: Result<String, String>,
}

impl SentinelView {
    pub fn monitors(&self) -> bool {
        self.master.is_some()
    }
    pub fn master_field(&self, k: &str) -> Option<&str> {
        self.master.as_ref()?.get(k).map(String::as_str)
    }
    pub fn master_flags(&self) -> Vec<&str> {
        self.master_field("flags")
            .map(|f| f.split(',').collect())
            .unwrap_or_default()
    }
    pub fn config_epoch(&self) -> u64 {
        self.master_field("config-epoch")
            .and_then(|e| e.parse().ok())
            .unwrap_or(0)
    }
    pub fn tilt(&self) -> bool {
        self.info.get("sentinel_tilt").map(String::as_str) == Some("1")
    }
}

/// `ip:port` of an entry of SENTINEL REPLICAS / SENTINELS / MASTER.
pub fn entry_addr(e: &HashMap<String, String>) -> String {
    format!(
        "{}:{}",
        e.get("ip").map(String::as_str).unwrap_or("?"),
        e.get("port").map(String::as_str).unwrap_or("?")
    )
}

/// Flags of an entry, split.
pub fn entry_flags(e: &HashMap<String, String>) -> Vec<&str> {
    e.get("flags")
        .map(|f| f.split(',').collect())
        .unwrap_or_default()
}

/// Flags that mean an entry is not usable right now (down or unreachable);
/// others (`master_down`: it voted the master down, `promoted`, ...) are
/// bookkeeping of a failover.
pub const BAD_FLAGS: &[&str] = &["s_down", "o_down", "disconnected"];

/// The bad flags of an entry (empty when it is usable).
pub fn bad_flags(e: &HashMap<String, String>) -> Vec<&str> {
    entry_flags(e)
        .into_iter()
        .filter(|f| BAD_FLAGS.contains(f))
        .collect()
}

/// What a stopped sentinel's config file says (local provider).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SavedSentinel {
    pub myid: Option<String>,
    /// `ip:port` of `sentinel monitor <name> ip port quorum`.
    pub master_addr: Option<String>,
    pub config_epoch: u64,
}

impl SavedSentinel {
    /// Parse a sentinel.conf for the master `name`.
    pub fn parse(text: &str, name: &str) -> Self {
        let mut s = SavedSentinel::default();
        for line in text.lines() {
            let w: Vec<&str> = line.split_whitespace().collect();
            match w.as_slice() {
                ["sentinel", "myid", id] => s.myid = Some(id.to_string()),
                ["sentinel", "monitor", n, ip, port, _q] if n == &name => {
                    s.master_addr = Some(format!("{ip}:{port}"))
                }
                ["sentinel", "config-epoch", n, e] if n == &name => {
                    s.config_epoch = e.parse().unwrap_or(0)
                }
                _ => {}
            }
        }
        s
    }
}

#[derive(Debug, Clone)]
pub struct DataObs {
    /// Declared `host:port`.
    pub addr: String,
    /// `ip:port` it resolves to (what sentinels and masters report).
    pub ip: String,
    pub process: Process,
    pub view: Result<DataView, String>,
}

impl DataObs {
    pub fn view(&self) -> Option<&DataView> {
        self.view.as_ref().ok()
    }
}

#[derive(Debug, Clone)]
pub struct SentinelObs {
    pub addr: String,
    pub ip: String,
    pub process: Process,
    pub view: Result<SentinelView, String>,
    /// For stopped local sentinels: their config file's view.
    pub saved: Option<SavedSentinel>,
}

impl SentinelObs {
    pub fn view(&self) -> Option<&SentinelView> {
        self.view.as_ref().ok()
    }
}

/// Everything observed, in declaration order (data nodes: master first).
#[derive(Debug, Clone)]
pub struct Observed {
    pub data: Vec<DataObs>,
    pub sentinels: Vec<SentinelObs>,
}

impl Observed {
    /// The declared data node behind an address a server reported.
    pub fn data_index(&self, reported: &str) -> Option<usize> {
        self.data
            .iter()
            .position(|d| d.ip == reported || d.addr == reported)
    }
    pub fn sentinel_index(&self, reported: &str) -> Option<usize> {
        self.sentinels
            .iter()
            .position(|d| d.ip == reported || d.addr == reported)
    }
    /// The declared name of a reported address (or the address itself).
    pub fn name_of(&self, reported: &str) -> String {
        self.data_index(reported)
            .map(|i| self.data[i].addr.clone())
            .or_else(|| {
                self.sentinel_index(reported)
                    .map(|i| self.sentinels[i].addr.clone())
            })
            .unwrap_or_else(|| reported.to_string())
    }
}

/// A flat `[k, v, k, v]` reply (or a RESP3 map) as a map.
pub fn to_map(v: &Value) -> Option<HashMap<String, String>> {
    match v {
        Value::Array(items) => Some(
            items
                .chunks(2)
                .filter_map(|c| match c {
                    [k, v] => Some((to_string(k)?, to_string(v)?)),
                    _ => None,
                })
                .collect(),
        ),
        Value::Map(pairs) => Some(
            pairs
                .iter()
                .filter_map(|(k, v)| Some((to_string(k)?, to_string(v)?)))
                .collect(),
        ),
        _ => None,
    }
}

pub fn to_string(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::Okay => Some("OK".into()),
        Value::Int(i) => Some(i.to_string()),
        Value::Double(d) => Some(d.to_string()),
        _ => None,
    }
}

fn server_error(v: &Value) -> Option<String> {
    match v {
        Value::ServerError(e) => Some(e.to_string()),
        _ => None,
    }
}

/// Read a data node: INFO, DBSIZE, CONFIG GET, one round trip.
pub async fn read_data(
    conn: &mut MultiplexedConnection,
    config_keys: &[String],
) -> Result<DataView, String> {
    let mut cfg = redis::cmd("CONFIG");
    cfg.arg("GET")
        .arg("repl-diskless-sync-delay")
        .arg("replica-priority");
    for k in config_keys {
        cfg.arg(k);
    }
    let replies: Vec<Value> = redis::pipe()
        .cmd("INFO")
        .cmd("DBSIZE")
        .add_command(cfg)
        .ignore_errors()
        .query_async(conn)
        .await
        .map_err(|e| clean_error(&e))?;
    let info = replies
        .first()
        .and_then(to_string)
        .map(|t| parse_info(&t))
        .ok_or_else(|| {
            replies
                .first()
                .and_then(server_error)
                .unwrap_or_else(|| "no INFO reply".into())
        })?;
    if info.get("redis_mode").map(String::as_str) == Some("sentinel") {
        return Err("is a sentinel, not a data node (redis_mode:sentinel)".into());
    }
    if let Some(e) = replies.iter().find_map(server_error) {
        return Err(e);
    }
    let keys = match replies.get(1) {
        Some(Value::Int(n)) => *n as u64,
        _ => 0,
    };
    let config = replies.get(2).and_then(to_map).unwrap_or_default();
    Ok(DataView { info, keys, config })
}

/// Read a sentinel's view of the master `name`, one round trip.
pub async fn read_sentinel(
    conn: &mut MultiplexedConnection,
    name: &str,
) -> Result<SentinelView, String> {
    let replies: Vec<Value> = redis::pipe()
        .cmd("INFO")
        .cmd("SENTINEL")
        .arg("MYID")
        .cmd("SENTINEL")
        .arg("GET-MASTER-ADDR-BY-NAME")
        .arg(name)
        .cmd("SENTINEL")
        .arg("MASTER")
        .arg(name)
        .cmd("SENTINEL")
        .arg("REPLICAS")
        .arg(name)
        .cmd("SENTINEL")
        .arg("SENTINELS")
        .arg(name)
        .cmd("SENTINEL")
        .arg("CKQUORUM")
        .arg(name)
        .ignore_errors()
        .query_async(conn)
        .await
        .map_err(|e| clean_error(&e))?;
    let info = replies
        .first()
        .and_then(to_string)
        .map(|t| parse_info(&t))
        .unwrap_or_default();
    if info.get("redis_mode").map(String::as_str) != Some("sentinel") {
        return Err(format!(
            "is not a sentinel (redis_mode:{})",
            info.get("redis_mode").map(String::as_str).unwrap_or("?")
        ));
    }
    let list = |v: Option<&Value>| -> Vec<HashMap<String, String>> {
        match v {
            Some(Value::Array(items)) => items.iter().filter_map(to_map).collect(),
            _ => Vec::new(),
        }
    };
    let master_addr = match replies.get(2) {
        Some(Value::Array(a)) if a.len() == 2 => Some(format!(
            "{}:{}",
            to_string(&a[0]).unwrap_or_default(),
            to_string(&a[1]).unwrap_or_default()
        )),
        _ => None,
    };
    let master = replies
        .get(3)
        .filter(|v| server_error(v).is_none())
        .and_then(to_map);
    Ok(SentinelView {
        myid: replies.get(1).and_then(to_string),
        info,
        master_addr,
        master,
        replicas: list(replies.get(4)),
        sentinels: list(replies.get(5)),
        ckquorum: match replies.get(6) {
            Some(v) => match server_error(v) {
                Some(e) => Err(e),
                None => Ok(to_string(v).unwrap_or_default()),
            },
            None => Err("no reply".into()),
        },
    })
}

/// `ip:port` for a declared `host:port` (unchanged when it does not resolve).
pub async fn resolve(addr: &str) -> String {
    match tokio::net::lookup_host(addr).await {
        Ok(mut it) => it
            .next()
            .map(|sa| format!("{}:{}", sa.ip(), sa.port()))
            .unwrap_or_else(|| addr.to_string()),
        Err(_) => addr.to_string(),
    }
}

/// The local provider's view of each node's process; `conf` is the config
/// file name that marks earlier state (`redis.conf`, `sentinel.conf`).
pub fn local_processes(state: &StateDir, addrs: &[String], conf: &str) -> Vec<Process> {
    let manifest = state.manifest().unwrap_or_default();
    addrs
        .iter()
        .map(|a| {
            let has_state = state.node_dir(a).join(conf).is_file();
            match manifest.iter().find(|r| &r.node == a) {
                Some(rec) => match local::state(rec) {
                    ProcState::Running(pid) => Process::Running(pid),
                    ProcState::Stopped => Process::Stopped { has_state },
                },
                None => Process::Stopped { has_state },
            }
        })
        .collect()
}

/// Read every declared node in parallel.
#[allow(clippy::too_many_arguments)]
pub async fn observe(
    data_addrs: &[String],
    data_procs: Vec<Process>,
    sentinel_addrs: &[String],
    sentinel_procs: Vec<Process>,
    saved: Vec<Option<SavedSentinel>>,
    master_name: &str,
    password: Option<&Secret>,
    sentinel_password: Option<&Secret>,
    config_keys: &[String],
) -> Observed {
    let data = data_addrs.iter().zip(data_procs).map(|(addr, process)| {
        let addr = addr.clone();
        let password = password.cloned();
        async move {
            let ip = resolve(&addr).await;
            let view = if matches!(process, Process::Stopped { .. }) {
                Err("not running".to_string())
            } else {
                match connect(&addr, password.as_ref(), NODE_TIMEOUT).await {
                    Ok(mut c) => read_data(&mut c, config_keys).await,
                    Err(e) => Err(e.to_string()),
                }
            };
            DataObs {
                addr,
                ip,
                process,
                view,
            }
        }
    });
    let sentinels =
        sentinel_addrs
            .iter()
            .zip(sentinel_procs)
            .zip(saved)
            .map(|((addr, process), saved)| {
                let addr = addr.clone();
                let password = sentinel_password.cloned();
                async move {
                    let ip = resolve(&addr).await;
                    let view = if matches!(process, Process::Stopped { .. }) {
                        Err("not running".to_string())
                    } else {
                        match connect(&addr, password.as_ref(), NODE_TIMEOUT).await {
                            Ok(mut c) => read_sentinel(&mut c, master_name).await,
                            Err(e) => Err(e.to_string()),
                        }
                    };
                    SentinelObs {
                        addr,
                        ip,
                        process,
                        view,
                        saved,
                    }
                }
            });
    let (data, sentinels) = futures::future::join(
        futures::future::join_all(data),
        futures::future::join_all(sentinels),
    )
    .await;
    Observed { data, sentinels }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attached_replicas_and_saved_sentinel_config() {
        let v = DataView {
            info: parse_info(
                "role:master\r\nconnected_slaves:2\r\nslave1:ip=127.0.0.1,port=6382,state=online,offset=90,lag=1\r\nslave0:ip=127.0.0.1,port=6381,state=online,offset=100,lag=0\r\nmaster_repl_offset:100\r\nmaster_replid:abc\r\nmaster_replid2:0000000000000000000000000000000000000000\r\n",
            ),
            ..Default::default()
        };
        let a = v.attached();
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].addr, "127.0.0.1:6381");
        assert_eq!((a[1].offset, a[1].lag), (90, 1));
        assert_eq!(v.offset(), Some(100));
        assert_eq!(v.replids(), ["abc"]);
        let s = SavedSentinel::parse(
            "port 26380\nsentinel myid 0123\nsentinel monitor other 10.0.0.9 1 2\nsentinel monitor mymaster 127.0.0.1 6381 2\nsentinel config-epoch mymaster 3\n",
            "mymaster",
        );
        assert_eq!(s.master_addr.as_deref(), Some("127.0.0.1:6381"));
        assert_eq!(s.config_epoch, 3);
        assert_eq!(s.myid.as_deref(), Some("0123"));
    }
}
