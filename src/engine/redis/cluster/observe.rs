//! Observation: every declared node read in parallel. A node that does not
//! answer is recorded with the reason, never turned into an error.

use super::nodes::{self, NodeLine};
use crate::engine::redis::{clean_error, connect, parse_info};
use crate::provider::local::{self, ProcState};
use crate::secret::Secret;
use anyhow::{anyhow, Result};
use redis::aio::MultiplexedConnection;
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
    /// Stopped; `has_state` when its data dir holds a cluster config (it will
    /// rejoin its cluster when started).
    Stopped {
        has_state: bool,
    },
}

/// One node as seen from itself.
#[derive(Debug, Clone)]
pub struct NodeView {
    /// `CLUSTER NODES`, empty when cluster support is disabled.
    pub nodes: Vec<NodeLine>,
    /// `CLUSTER INFO`.
    pub cluster: HashMap<String, String>,
    /// `INFO` (all default sections).
    pub info: HashMap<String, String>,
    pub keys: u64,
    /// `CONFIG GET` of cluster-node-timeout and the declared settings.
    pub config: HashMap<String, String>,
}

impl NodeView {
    pub fn cluster_enabled(&self) -> bool {
        self.info.get("cluster_enabled").map(String::as_str) == Some("1")
    }
    pub fn myself(&self) -> Option<&NodeLine> {
        self.nodes.iter().find(|n| n.is_myself())
    }
    pub fn node_timeout(&self) -> Option<u64> {
        self.config.get("cluster-node-timeout")?.parse().ok()
    }
    pub fn state_ok(&self) -> bool {
        self.cluster.get("cluster_state").map(String::as_str) == Some("ok")
    }
    /// Knows only itself, owns no slot, config epoch 0: a node that has
    /// never joined a cluster.
    pub fn is_fresh(&self) -> bool {
        match self.myself() {
            Some(me) => {
                self.nodes.len() == 1
                    && me.slots.is_empty()
                    && me.config_epoch == 0
                    && me.master.is_none()
            }
            None => false,
        }
    }
    pub fn by_id(&self, id: &str) -> Option<&NodeLine> {
        self.nodes.iter().find(|n| n.id == id)
    }
}

/// One declared node: address, process, and what it answered.
#[derive(Debug, Clone)]
pub struct NodeObs {
    pub addr: String,
    pub process: Process,
    pub view: Result<NodeView, String>,
}

impl NodeObs {
    pub fn view(&self) -> Option<&NodeView> {
        self.view.as_ref().ok()
    }
    pub fn id(&self) -> Option<&str> {
        self.view().and_then(|v| v.myself()).map(|m| m.id.as_str())
    }
}

/// Everything observed, in declaration order.
#[derive(Debug, Clone)]
pub struct Observed {
    pub nodes: Vec<NodeObs>,
}

/// Read one node: INFO, DBSIZE and CONFIG GET, then (in cluster mode)
/// CLUSTER NODES and CLUSTER INFO — two round trips.
pub async fn read_node(
    conn: &mut MultiplexedConnection,
    config_keys: &[String],
) -> Result<NodeView, String> {
    let mut cfg = redis::cmd("CONFIG");
    cfg.arg("GET").arg("cluster-node-timeout");
    for k in config_keys {
        cfg.arg(k);
    }
    let (info, keys, config): (String, u64, Vec<String>) = redis::pipe()
        .cmd("INFO")
        .cmd("DBSIZE")
        .add_command(cfg)
        .query_async(conn)
        .await
        .map_err(|e| clean_error(&e))?;
    let info = parse_info(&info);
    let config = config
        .chunks(2)
        .filter(|c| c.len() == 2)
        .map(|c| (c[0].clone(), c[1].clone()))
        .collect();
    let mut view = NodeView {
        nodes: Vec::new(),
        cluster: HashMap::new(),
        info,
        keys,
        config,
    };
    if view.cluster_enabled() {
        let (n, c): (String, String) = redis::pipe()
            .cmd("CLUSTER")
            .arg("NODES")
            .cmd("CLUSTER")
            .arg("INFO")
            .query_async(conn)
            .await
            .map_err(|e| clean_error(&e))?;
        view.nodes = nodes::parse(&n).map_err(|e| format!("{e:#}"))?;
        view.cluster = parse_info(&c);
    }
    Ok(view)
}

/// Connect to and read every address in parallel.
pub async fn observe(
    addrs: &[String],
    processes: Vec<Process>,
    password: Option<&Secret>,
    config_keys: &[String],
) -> Observed {
    let tasks = addrs.iter().zip(processes).map(|(addr, process)| {
        let addr = addr.clone();
        let password = password.cloned();
        let keys = config_keys.to_vec();
        async move {
            let view = if matches!(process, Process::Stopped { .. }) {
                Err("not running".to_string())
            } else {
                match connect(&addr, password.as_ref(), NODE_TIMEOUT).await {
                    Ok(mut c) => read_node(&mut c, &keys).await,
                    Err(e) => Err(e.to_string()),
                }
            };
            NodeObs {
                addr,
                process,
                view,
            }
        }
    });
    Observed {
        nodes: futures::future::join_all(tasks).await,
    }
}

/// The local provider's view of each node's process.
pub fn local_processes(
    state: &local::StateDir,
    addrs: &[String],
    server_bin: Option<&std::path::Path>,
) -> Vec<Process> {
    let manifest = state.manifest().unwrap_or_default();
    addrs
        .iter()
        .map(|a| {
            let has_state = state.node_dir(a).join("data").join("nodes.conf").is_file();
            match manifest.iter().find(|r| &r.node == a) {
                Some(rec) => match local::state(rec) {
                    ProcState::Running(pid) => Process::Running(pid),
                    ProcState::Stopped => Process::Stopped { has_state },
                },
                None => {
                    let _ = server_bin;
                    Process::Stopped { has_state }
                }
            }
        })
        .collect()
}

/// Connections to every node, kept open across polls while applying.
pub struct Conns {
    pub conns: Vec<(String, MultiplexedConnection)>,
}

impl Conns {
    pub async fn open(addrs: &[String], password: Option<&Secret>) -> Result<Self> {
        let tasks = addrs.iter().map(|a| async move {
            connect(a, password, NODE_TIMEOUT)
                .await
                .map(|c| (a.clone(), c))
                .map_err(|e| anyhow!("{a}: {e}; nothing further was changed"))
        });
        let conns = futures::future::try_join_all(tasks).await?;
        Ok(Conns { conns })
    }
    pub fn get(&self, addr: &str) -> MultiplexedConnection {
        self.conns
            .iter()
            .find(|(a, _)| a == addr)
            .map(|(_, c)| c.clone())
            .expect("connection opened for every declared node")
    }
}
