//! Redis engines ([`cluster`], [`sentinel`]) and what they share:
//! connections with auth and timeouts, INFO parsing, and `redis-server` /
//! `redis-sentinel` processes for the local provider.

pub mod cluster;
pub mod sentinel;

use crate::provider::local::{self, ProcessRecord, StateDir};
use crate::secret::Secret;
use anyhow::{Context, Result};
use redis::aio::MultiplexedConnection;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Connect to one node with a bounded connect and response time.
pub async fn connect(
    addr: &str,
    password: Option<&Secret>,
    timeout: Duration,
) -> Result<MultiplexedConnection> {
    let (host, port) = split_addr(addr)?;
    use redis::IntoConnectionInfo;
    // No CLIENT SETINFO round trip on every connection.
    let mut redis_settings = redis::RedisConnectionInfo::default().set_skip_set_lib_name();
    if let Some(p) = password {
        redis_settings = redis_settings.set_password(p.expose());
    }
    let info = redis::ConnectionAddr::Tcp(host.to_string(), port)
        .into_connection_info()?
        .set_redis_settings(redis_settings);
    let client = redis::Client::open(info)?;
    let cfg = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    let conn = client
        .get_multiplexed_async_connection_with_config(&cfg)
        .await
        .map_err(|e| anyhow::anyhow!("{}", clean_error(&e)))?;
    Ok(conn)
}

/// A redis error without the password-bearing connection details.
pub fn clean_error(e: &redis::RedisError) -> String {
    let s = e.to_string();
    if s.contains("Connection refused") {
        "connection refused".into()
    } else if e.is_timeout() {
        "timed out".into()
    } else {
        s
    }
}

pub fn split_addr(addr: &str) -> Result<(&str, u16)> {
    let (h, p) = addr
        .rsplit_once(':')
        .with_context(|| format!("`{addr}` is not host:port"))?;
    Ok((
        h,
        p.parse()
            .with_context(|| format!("`{addr}` has a bad port"))?,
    ))
}

/// `INFO` text as a map (sections merged).
pub fn parse_info(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.trim_end().split_once(':'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Bytes for a redis memory value (`256mb`, `1gb`, `1048576`); `None` when
/// not a memory value.
pub fn memory_bytes(v: &str) -> Option<u64> {
    let v = v.trim().to_ascii_lowercase();
    let digits: String = v.chars().take_while(|c| c.is_ascii_digit()).collect();
    if digits.is_empty() {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    let mult = match &v[digits.len()..] {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    Some(n * mult)
}

/// Do two config values mean the same (case, memory units, yes/no)?
pub fn config_equal(a: &str, b: &str) -> bool {
    if a.eq_ignore_ascii_case(b) {
        return true;
    }
    match (memory_bytes(a), memory_bytes(b)) {
        (Some(x), Some(y)) => x == y,
        _ => {
            let norm = |s: &str| {
                s.split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .to_ascii_lowercase()
            };
            norm(a) == norm(b)
        }
    }
}

/// The `redis-server` binary: topology override, `DATATIER_REDIS_SERVER_BIN`, PATH.
pub fn redis_server_bin(configured: Option<&Path>) -> Result<PathBuf> {
    local::find_binary(
        "redis-server",
        configured,
        "DATATIER_REDIS_SERVER_BIN",
        &[PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")],
    )
}

/// The `redis-sentinel` binary: topology override, `DATATIER_REDIS_SENTINEL_BIN`, PATH.
pub fn redis_sentinel_bin(configured: Option<&Path>) -> Result<PathBuf> {
    local::find_binary(
        "redis-sentinel",
        configured,
        "DATATIER_REDIS_SENTINEL_BIN",
        &[PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")],
    )
}

/// The process record that runs `bin CONF` in a node's dir, for a config
/// file that already exists there (`conf_name`: `redis.conf`,
/// `sentinel.conf`). Servers run with umask 077, so the config files they
/// rewrite themselves (CONFIG REWRITE, sentinel state) stay 0600.
pub fn node_record(
    state: &StateDir,
    addr: &str,
    bin: &Path,
    conf_name: &str,
) -> Result<ProcessRecord> {
    let dir = state.node_dir(addr);
    let dir_abs = std::fs::canonicalize(&dir)
        .with_context(|| format!("cannot find node dir {}", dir.display()))?;
    let mut rec = ProcessRecord::new(
        addr,
        bin.to_path_buf(),
        vec![dir_abs.join(conf_name).display().to_string()],
        dir_abs,
    );
    rec.umask = Some(0o077);
    Ok(rec)
}

/// Set (`Some`) or remove (`None`) every occurrence of a directive in
/// redis.conf text, keeping everything else as written (the file may have
/// been rewritten by the server itself). `aliases` are other names of the
/// same directive (`slaveof` for `replicaof`).
pub fn set_conf_directive(text: &str, key: &str, aliases: &[&str], value: Option<&str>) -> String {
    let is_key = |l: &str| {
        let first = l.split_whitespace().next().unwrap_or("");
        first.eq_ignore_ascii_case(key) || aliases.iter().any(|a| first.eq_ignore_ascii_case(a))
    };
    let mut out: String = text
        .lines()
        .filter(|l| !is_key(l))
        .map(|l| format!("{l}\n"))
        .collect();
    if let Some(v) = value {
        out.push_str(&format!("{key} {v}\n"));
    }
    out
}

/// Write a node's `redis.conf` and return the process record that runs it.
/// `settings` are written in order after datatier's own; the password (if
/// any) goes to the 0600 config file, never to the command line.
pub fn server_process(
    state: &StateDir,
    addr: &str,
    bin: &Path,
    settings: &[(String, String)],
    password: Option<&Secret>,
) -> Result<ProcessRecord> {
    let (host, port) = split_addr(addr)?;
    let dir = state.node_dir(addr);
    let data = dir.join("data");
    std::fs::create_dir_all(&data).with_context(|| format!("cannot create {}", data.display()))?;
    let dir_abs = std::fs::canonicalize(&dir)?;
    let mut conf = String::new();
    conf.push_str("# written by datatier; edit the topology file instead\n");
    conf.push_str(&format!("bind {host}\nport {port}\ndaemonize no\n"));
    conf.push_str(&format!("dir {}\n", dir_abs.join("data").display()));
    conf.push_str(&format!(
        "pidfile {}\n",
        dir_abs.join("redis.pid").display()
    ));
    conf.push_str("logfile \"\"\n");
    for (k, v) in settings {
        conf.push_str(&format!("{k} {}\n", quote_conf(v)));
    }
    if let Some(p) = password {
        conf.push_str(&format!(
            "requirepass {}\nmasterauth {}\n",
            quote_conf(p.expose()),
            quote_conf(p.expose())
        ));
    }
    let conf_path = dir.join("redis.conf");
    crate::secret::write_private(&conf_path, conf.as_bytes())?;
    // CONFIG REWRITE replaces the file with a 0644 one; the 0700 node dir
    // keeps it (and the data) private regardless.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    node_record(state, addr, bin, "redis.conf")
}

/// Put a node's redis.conf back to 0600 after `CONFIG REWRITE` (which
/// writes a new file with default permissions).
pub fn protect_config(state: &StateDir, addr: &str) {
    use std::os::unix::fs::PermissionsExt;
    let p = state.node_dir(addr).join("redis.conf");
    if p.is_file() {
        let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600));
    }
}

/// Quote a redis.conf value when it needs it.
pub fn quote_conf(v: &str) -> String {
    if !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:,@".contains(c))
    {
        v.to_string()
    } else {
        format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_and_config_values() {
        let m = parse_info("# Replication\r\nrole:master\r\nconnected_slaves:1\r\n");
        assert_eq!(m["role"], "master");
        assert_eq!(memory_bytes("256mb"), Some(268435456));
        assert!(config_equal("256mb", "268435456"));
        assert!(config_equal("YES", "yes"));
        assert!(!config_equal("allkeys-lru", "noeviction"));
        assert_eq!(quote_conf("a b"), "\"a b\"");
    }

    #[test]
    fn conf_directives_are_replaced_in_place() {
        let text = "port 1\nslaveof 10.0.0.1 6379\n# replicaof x\nappendonly yes\n";
        assert_eq!(
            set_conf_directive(text, "replicaof", &["slaveof"], Some("127.0.0.1 6380")),
            "port 1\n# replicaof x\nappendonly yes\nreplicaof 127.0.0.1 6380\n"
        );
        assert_eq!(
            set_conf_directive(text, "replicaof", &["slaveof"], None),
            "port 1\n# replicaof x\nappendonly yes\n"
        );
    }
}
