//! mongod and mongos processes for the local provider: which binary, which
//! command line, where the data goes.
//!
//! Every option that decides what a node *is* (port, address, replica set,
//! cluster role, config servers) comes from the topology and goes on the
//! command line, so `getCmdLineOpts` on the running node shows the same
//! thing the topology says — which is what `status` and the planner check.

use crate::provider::local::{self, ProcessRecord, StateDir};
use crate::topology::mongo::{Member, MongoShardedSpec, ReplicaSetSpec, Router};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

const INSTALL_HINT: &str = "install MongoDB Community Server (packages mongodb-org-server and mongodb-mongosh from repo.mongodb.org; Debian's own archive has no mongod), or point DATATIER_MONGOD_BIN / DATATIER_MONGOS_BIN (or [binaries] in the topology) at the binaries, or run the nodes elsewhere (e.g. `datatier render compose FILE`) and use --provider existing";

fn find(name: &str, configured: Option<&Path>, env: &str) -> Result<PathBuf> {
    let dirs = [
        PathBuf::from("/usr/bin"),
        PathBuf::from("/usr/local/bin"),
        PathBuf::from("/opt/mongodb/bin"),
    ];
    local::find_binary(name, configured, env, &dirs)
        .map_err(|e| {
            let e = e.to_string();
            // The generic message points at scripts/setup.sh, which cannot
            // install MongoDB: say what can.
            let e = if e.contains("not found on PATH") {
                format!("{name} not found on PATH (nor in /usr/bin, /usr/local/bin, /opt/mongodb/bin) and {env} is unset")
            } else {
                e
            };
            anyhow::anyhow!("{e}\nhint: {INSTALL_HINT}")
        })
        .with_context(|| format!("the local provider needs {name}"))
}

/// `mongod`: `[binaries] mongod`, `DATATIER_MONGOD_BIN`, PATH.
pub fn mongod_bin(spec: &MongoShardedSpec) -> Result<PathBuf> {
    find("mongod", spec.mongod_bin.as_deref(), "DATATIER_MONGOD_BIN")
}

/// `mongos`: `[binaries] mongos`, `DATATIER_MONGOS_BIN`, PATH.
pub fn mongos_bin(spec: &MongoShardedSpec) -> Result<PathBuf> {
    find("mongos", spec.mongos_bin.as_deref(), "DATATIER_MONGOS_BIN")
}

/// The command line of a replica set member.
pub fn mongod_args(
    spec: &MongoShardedSpec,
    set: &ReplicaSetSpec,
    m: &Member,
    dbpath: &Path,
) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "--replSet".into(),
        set.name.clone(),
        format!("--{}", set.role.cluster_role()),
        "--port".into(),
        m.port.to_string(),
        "--bind_ip".into(),
        m.host.clone(),
        "--dbpath".into(),
        dbpath.display().to_string(),
        // The socket file would land in /tmp, shared by every instance.
        "--nounixsocket".into(),
    ];
    if m.host.contains(':') {
        a.push("--ipv6".into());
    }
    if let Some(c) = spec.mongod.cache_size_gb {
        a.push("--wiredTigerCacheSizeGB".into());
        a.push(c.to_string());
    }
    if let Some(o) = spec.mongod.oplog_size_mb {
        a.push("--oplogSize".into());
        a.push(o.to_string());
    }
    a.extend(spec.mongod.extra_args.iter().cloned());
    a
}

/// The command line of a mongos.
pub fn mongos_args(spec: &MongoShardedSpec, r: &Router) -> Vec<String> {
    let mut a = vec![
        "--configdb".into(),
        spec.config.seed_list(),
        "--port".into(),
        r.port.to_string(),
        "--bind_ip".into(),
        r.host.clone(),
        "--nounixsocket".into(),
    ];
    if r.host.contains(':') {
        a.push("--ipv6".into());
    }
    a
}

/// Create the member's data dir and return the record that starts it.
pub fn mongod_record(
    state: &StateDir,
    spec: &MongoShardedSpec,
    set: &ReplicaSetSpec,
    m: &Member,
    bin: &Path,
) -> Result<ProcessRecord> {
    let addr = m.addr();
    let dir = state.node_dir(&addr);
    let data = dir.join("data");
    std::fs::create_dir_all(&data).with_context(|| format!("cannot create {}", data.display()))?;
    let dir = std::fs::canonicalize(&dir)?;
    let args = mongod_args(spec, set, m, &dir.join("data"));
    Ok(ProcessRecord::new(&addr, bin.to_path_buf(), args, dir))
}

/// The record that starts a mongos (it keeps no data of its own).
pub fn mongos_record(
    state: &StateDir,
    spec: &MongoShardedSpec,
    r: &Router,
    bin: &Path,
) -> Result<ProcessRecord> {
    let addr = r.addr();
    let dir = state.node_dir(&addr);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = std::fs::canonicalize(&dir)?;
    Ok(ProcessRecord::new(
        &addr,
        bin.to_path_buf(),
        mongos_args(spec, r),
        dir,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::Topology;

    #[test]
    fn command_lines_carry_role_set_and_address() {
        let Topology::MongoSharded(s) = crate::topology::builtin("mongo-sharded").unwrap() else {
            unreachable!()
        };
        let a = mongod_args(&s, &s.config, &s.config.members[0], Path::new("/d"));
        assert_eq!(
            a.join(" "),
            "--replSet cfg --configsvr --port 27101 --bind_ip 127.0.0.1 --dbpath /d --nounixsocket --wiredTigerCacheSizeGB 0.25 --oplogSize 256"
        );
        let a = mongod_args(&s, &s.shards[1], &s.shards[1].members[2], Path::new("/d"));
        assert!(a
            .join(" ")
            .starts_with("--replSet shard2 --shardsvr --port 27303"));
        assert_eq!(
            mongos_args(&s, &s.mongos[0]).join(" "),
            "--configdb cfg/127.0.0.1:27101,127.0.0.1:27102,127.0.0.1:27103 --port 27017 --bind_ip 127.0.0.1 --nounixsocket"
        );
    }

    #[test]
    fn a_missing_binary_says_what_to_install() {
        let Topology::MongoSharded(mut s) = crate::topology::builtin("mongo-sharded").unwrap()
        else {
            unreachable!()
        };
        s.mongod_bin = Some(PathBuf::from("/nonexistent/mongod"));
        let e = format!("{:#}", mongod_bin(&s).unwrap_err());
        assert!(e.contains("the local provider needs mongod"), "{e}");
        assert!(e.contains("/nonexistent/mongod"), "{e}");
        assert!(e.contains("--provider existing"), "{e}");
        assert!(e.contains("mongodb-org-server"), "{e}");
    }
}
