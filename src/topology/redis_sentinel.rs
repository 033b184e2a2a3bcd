//! `kind = "redis-sentinel"`: one master, its replicas, and the sentinels
//! that watch them and fail over when the master dies.
//!
//! ```toml
//! name = "redis-sentinel"
//! kind = "redis-sentinel"
//! provider = "local"                     # or "existing"
//!
//! [sentinel]
//! master_name = "mymaster"               # the name clients ask the sentinels for
//! master = "127.0.0.1:6380"              # the declared (initial) master
//! replicas = ["127.0.0.1:6381", "127.0.0.1:6382"]
//! sentinels = ["127.0.0.1:26380", "127.0.0.1:26381", "127.0.0.1:26382"]
//! quorum = 2                             # sentinels that must agree the master is down
//! down_after_ms = 5000                   # sentinel down-after-milliseconds
//! failover_timeout_ms = 10000            # sentinel failover-timeout
//! parallel_syncs = 1                     # sentinel parallel-syncs
//!
//! [config]                               # passed through to the data nodes' redis.conf
//! appendonly = "yes"
//!
//! [auth]                                 # requirepass + masterauth on the data nodes,
//! password_env = "REDIS_PASSWORD"        # and the sentinels' auth-pass for the master
//!
//! [sentinel_auth]                        # requirepass of the sentinels themselves (optional)
//! password_env = "SENTINEL_PASSWORD"
//!
//! [checks]
//! max_lag_bytes = 1048576                # replica offset behind the master's
//! max_lag_seconds = 2                    # seconds since the replica's last ACK
//! ```
//!
//! Validation separates what can never work (errors: a quorum larger than
//! the number of sentinels can never declare the master down, so no failover
//! would ever happen) from what works until the wrong thing fails (warnings:
//! fewer than three sentinels, all sentinels on one host). Warnings are
//! printed when the file is loaded and reported again by `status`.

use super::{default_name, parse_provider, Kind, Meta, Source, TopologyError, TopologyErrors};
use crate::secret::SecretSource;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use toml::Spanned;

/// Thresholds for `status`.
#[derive(Debug, Clone, PartialEq)]
pub struct SentinelChecks {
    /// A replica whose offset is further behind the master's is a WARNING.
    pub max_lag_bytes: u64,
    /// A replica whose last acknowledgement is older is a WARNING (replicas
    /// acknowledge every second, so 0-1 is normal).
    pub max_lag_seconds: u64,
}

/// A validated Redis Sentinel topology.
#[derive(Debug, Clone)]
pub struct RedisSentinelSpec {
    pub meta: Meta,
    /// The name sentinels monitor the master under (`SENTINEL MONITOR <name> ...`).
    pub master_name: String,
    /// `host:port` of the declared master. After a failover the sentinels'
    /// master is another data node; datatier follows them.
    pub master: String,
    pub replicas: Vec<String>,
    pub sentinels: Vec<String>,
    pub quorum: u32,
    pub down_after_ms: u64,
    pub failover_timeout_ms: u64,
    pub parallel_syncs: u32,
    /// redis.conf settings for the data nodes, in file order.
    pub config: Vec<(String, String)>,
    /// The data nodes' password (requirepass, masterauth, sentinel auth-pass).
    pub auth: SecretSource,
    /// The sentinels' own password (their requirepass), if any.
    pub sentinel_auth: SecretSource,
    pub checks: SentinelChecks,
    pub redis_server_bin: Option<PathBuf>,
    pub redis_sentinel_bin: Option<PathBuf>,
    /// Risky but workable layouts, located like errors.
    pub warnings: Vec<TopologyError>,
}

impl RedisSentinelSpec {
    /// Data nodes: the declared master first, then the replicas.
    pub fn data_nodes(&self) -> Vec<String> {
        std::iter::once(self.master.clone())
            .chain(self.replicas.iter().cloned())
            .collect()
    }

    /// The sentinel settings datatier keeps in force, as `SENTINEL SET` pairs.
    pub fn sentinel_settings(&self) -> Vec<(String, String)> {
        vec![
            (
                "down-after-milliseconds".into(),
                self.down_after_ms.to_string(),
            ),
            (
                "failover-timeout".into(),
                self.failover_timeout_ms.to_string(),
            ),
            ("parallel-syncs".into(), self.parallel_syncs.to_string()),
        ]
    }

    /// How many sentinels must authorize a failover (a majority of all).
    pub fn majority(&self) -> usize {
        self.sentinels.len() / 2 + 1
    }
}

/// Settings datatier writes itself; users set them through the topology.
const MANAGED_CONFIG: &[(&str, &str)] = &[
    ("port", "derived from [sentinel] master / replicas"),
    ("bind", "derived from [sentinel] master / replicas"),
    ("dir", "the state dir"),
    ("daemonize", "datatier supervises the process"),
    ("pidfile", "the state dir"),
    ("logfile", "the state dir"),
    (
        "cluster-enabled",
        "a sentinel-managed set is not a Redis Cluster",
    ),
    ("requirepass", "use [auth] password_env or password_file"),
    ("masterauth", "use [auth] password_env or password_file"),
    ("replicaof", "datatier and the sentinels choose the master"),
    ("slaveof", "datatier and the sentinels choose the master"),
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    name: Option<Spanned<String>>,
    #[allow(dead_code)]
    kind: Spanned<String>,
    provider: Option<Spanned<String>>,
    sentinel: Option<Spanned<SentinelSection>>,
    #[serde(default)]
    config: BTreeMap<String, Spanned<toml::Value>>,
    #[serde(default)]
    auth: SecretSource,
    #[serde(default)]
    sentinel_auth: SecretSource,
    #[serde(default)]
    checks: ChecksSection,
    #[serde(default)]
    binaries: Binaries,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SentinelSection {
    master_name: Option<Spanned<String>>,
    master: Spanned<String>,
    #[serde(default)]
    replicas: Option<Spanned<Vec<Spanned<String>>>>,
    sentinels: Spanned<Vec<Spanned<String>>>,
    quorum: Option<Spanned<i64>>,
    down_after_ms: Option<Spanned<i64>>,
    failover_timeout_ms: Option<Spanned<i64>>,
    parallel_syncs: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChecksSection {
    max_lag_bytes: Option<Spanned<i64>>,
    max_lag_seconds: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Binaries {
    redis_server: Option<PathBuf>,
    redis_sentinel: Option<PathBuf>,
}

/// `host:port` with a plausible host and a port 1-65535.
fn parse_addr(s: &str) -> Result<(String, u16), String> {
    let (h, p) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("\"{s}\" is not host:port (e.g. \"127.0.0.1:6380\")"))?;
    let h = h.trim_start_matches('[').trim_end_matches(']');
    let ok = !h.is_empty()
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:_".contains(c));
    if !ok {
        return Err(format!(
            "\"{h}\" in \"{s}\" is not a host name or IP address"
        ));
    }
    let port: u32 = p
        .parse()
        .map_err(|_| format!("\"{p}\" in \"{s}\" is not a port number"))?;
    if !(1..=65535).contains(&port) {
        return Err(format!("port {port} in \"{s}\" is out of range 1-65535"));
    }
    Ok((h.to_string(), port as u16))
}

/// Integer in a range, or an error at its span.
fn ranged(
    source: &Source,
    v: &Option<Spanned<i64>>,
    field: &str,
    range: std::ops::RangeInclusive<i64>,
    default: i64,
    errors: &mut Vec<TopologyError>,
) -> i64 {
    match v {
        None => default,
        Some(x) if !range.contains(x.get_ref()) => {
            errors.push(source.error(
                x.span(),
                field,
                format!(
                    "must be between {} and {}, got {}",
                    range.start(),
                    range.end(),
                    x.get_ref()
                ),
            ));
            default
        }
        Some(x) => *x.get_ref(),
    }
}

/// Parse and validate; every problem is collected.
pub fn parse(source: Source) -> Result<RedisSentinelSpec, TopologyErrors> {
    let file: File = toml::from_str(&source.text).map_err(|e| source.from_toml_error(&e))?;
    let mut errors: Vec<TopologyError> = Vec::new();
    let mut warnings: Vec<TopologyError> = Vec::new();
    let provider = parse_provider(&source, file.provider, &mut errors);
    let name = default_name(&source, file.name);

    let Some(section) = file.sentinel else {
        return Err(source
            .error_top("sentinel", "missing [sentinel] section")
            .with_help(
                "add [sentinel] with `master`, `replicas` and `sentinels` (host:port strings)",
            )
            .into());
    };
    let sspan = section.span();
    let s = section.into_inner();

    // master_name
    let master_name = match &s.master_name {
        None => "mymaster".to_string(),
        Some(n) => {
            let v = n.get_ref();
            let ok = !v.is_empty()
                && v.len() <= 128
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !ok {
                errors.push(
                    source
                        .error(
                            n.span(),
                            "sentinel.master_name",
                            format!("invalid master name \"{v}\""),
                        )
                        .with_help("use 1-128 letters, digits, '-', '_' or '.'"),
                );
            }
            v.clone()
        }
    };

    // Addresses: every node, with its span and field, for clash detection.
    struct Node {
        addr: String,
        host: String,
        span: std::ops::Range<usize>,
        field: &'static str,
    }
    let mut nodes: Vec<Node> = Vec::new();
    let mut take = |v: &Spanned<String>, field: &'static str, errors: &mut Vec<TopologyError>| {
        match parse_addr(v.get_ref()) {
            Ok((host, port)) => {
                let addr = format!("{host}:{port}");
                nodes.push(Node {
                    addr: addr.clone(),
                    host,
                    span: v.span(),
                    field,
                });
                Some(addr)
            }
            Err(m) => {
                errors.push(source.error(v.span(), field, m));
                None
            }
        }
    };
    let master = take(&s.master, "sentinel.master", &mut errors).unwrap_or_default();
    let replicas: Vec<String> = match &s.replicas {
        None => Vec::new(),
        Some(r) => r
            .get_ref()
            .iter()
            .filter_map(|v| take(v, "sentinel.replicas", &mut errors))
            .collect(),
    };
    let sentinels: Vec<String> = s
        .sentinels
        .get_ref()
        .iter()
        .filter_map(|v| take(v, "sentinel.sentinels", &mut errors))
        .collect();

    if s.replicas.as_ref().is_none_or(|r| r.get_ref().is_empty()) {
        let span = s
            .replicas
            .as_ref()
            .map(|r| r.span())
            .unwrap_or(sspan.clone());
        errors.push(
            source
                .error(
                    span,
                    "sentinel.replicas",
                    "no replicas: the sentinels would have nothing to promote, so a failover can never happen",
                )
                .with_help("list at least one replica, e.g. replicas = [\"127.0.0.1:6381\"]"),
        );
    }
    if s.sentinels.get_ref().is_empty() {
        errors.push(
            source
                .error(
                    s.sentinels.span(),
                    "sentinel.sentinels",
                    "no sentinels: nothing would watch the master",
                )
                .with_help("list three sentinels on different hosts"),
        );
    }

    // The same address twice, anywhere.
    for (i, n) in nodes.iter().enumerate() {
        if let Some(j) = nodes[..i].iter().position(|o| o.addr == n.addr) {
            let other = &nodes[j];
            errors.push(source.error(
                n.span.clone(),
                n.field,
                format!(
                    "{} is already used (by `{}` on line {})",
                    n.addr,
                    other.field,
                    source.line_col(other.span.start).0
                ),
            ));
        }
    }

    // quorum
    let n_sentinels = sentinels.len().max(s.sentinels.get_ref().len());
    let quorum = match &s.quorum {
        None => 2.min(n_sentinels.max(1)) as i64,
        Some(q) if *q.get_ref() < 1 => {
            errors.push(source.error(
                q.span(),
                "sentinel.quorum",
                format!("must be at least 1, got {}", q.get_ref()),
            ));
            1
        }
        Some(q) if *q.get_ref() as usize > n_sentinels && n_sentinels > 0 => {
            errors.push(
                source
                    .error(
                        q.span(),
                        "sentinel.quorum",
                        format!(
                            "quorum {} is larger than the number of sentinels ({n_sentinels}): they can never agree that the master is down, so no failover would ever happen",
                            q.get_ref()
                        ),
                    )
                    .with_help(format!(
                        "add sentinels (three on different hosts is the usual minimum) or lower the quorum to at most {n_sentinels}"
                    )),
            );
            1
        }
        Some(q) => *q.get_ref(),
    } as u32;

    let down_after_ms = ranged(
        &source,
        &s.down_after_ms,
        "sentinel.down_after_ms",
        1..=86_400_000,
        5000,
        &mut errors,
    ) as u64;
    let failover_timeout_ms = ranged(
        &source,
        &s.failover_timeout_ms,
        "sentinel.failover_timeout_ms",
        1..=86_400_000,
        10000,
        &mut errors,
    ) as u64;
    let parallel_syncs = ranged(
        &source,
        &s.parallel_syncs,
        "sentinel.parallel_syncs",
        1..=1000,
        1,
        &mut errors,
    ) as u32;

    // config passthrough
    let config = crate::topology::redis_config(&source, &file.config, MANAGED_CONFIG, &mut errors);

    let checks = SentinelChecks {
        max_lag_bytes: ranged(
            &source,
            &file.checks.max_lag_bytes,
            "checks.max_lag_bytes",
            0..=i64::MAX,
            1024 * 1024,
            &mut errors,
        ) as u64,
        max_lag_seconds: ranged(
            &source,
            &file.checks.max_lag_seconds,
            "checks.max_lag_seconds",
            0..=86_400,
            2,
            &mut errors,
        ) as u64,
    };

    if !errors.is_empty() {
        return Err(TopologyErrors(errors));
    }

    // Warnings: layouts that work until the wrong thing fails.
    let sspan_list = s.sentinels.span();
    if sentinels.len() < 3 {
        warnings.push(
            source
                .error(
                    sspan_list.clone(),
                    "sentinel.sentinels",
                    format!(
                        "only {} sentinel(s): a failover needs a majority of all sentinels ({}) to authorize it, so losing one sentinel{} blocks failovers",
                        sentinels.len(),
                        sentinels.len() / 2 + 1,
                        if sentinels.len() == 1 { " (the only one)" } else { "" }
                    ),
                )
                .with_help("run at least three sentinels, on different hosts"),
        );
    }
    let all_hosts: BTreeSet<&str> = nodes.iter().map(|n| n.host.as_str()).collect();
    let sentinel_hosts: BTreeSet<&str> = nodes
        .iter()
        .filter(|n| n.field == "sentinel.sentinels")
        .map(|n| n.host.as_str())
        .collect();
    if all_hosts.len() > 1 && sentinel_hosts.len() == 1 && sentinels.len() > 1 {
        let host = sentinel_hosts.iter().next().copied().unwrap_or_default();
        warnings.push(
            source
                .error(
                    sspan_list.clone(),
                    "sentinel.sentinels",
                    format!(
                        "all {} sentinels run on {host}: if that host fails, nothing is left to fail over",
                        sentinels.len()
                    ),
                )
                .with_help("spread the sentinels over the hosts of the data nodes"),
        );
    }

    Ok(RedisSentinelSpec {
        meta: Meta {
            name,
            kind: Kind::RedisSentinel,
            provider,
            source,
        },
        master_name,
        master,
        replicas,
        sentinels,
        quorum,
        down_after_ms,
        failover_timeout_ms,
        parallel_syncs,
        config,
        auth: file.auth,
        sentinel_auth: file.sentinel_auth,
        checks,
        redis_server_bin: file.binaries.redis_server,
        redis_sentinel_bin: file.binaries.redis_sentinel,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<RedisSentinelSpec, TopologyErrors> {
        parse(Source::from_text("t.toml", text, ".".into()))
    }

    const HEAD: &str = "kind = 'redis-sentinel'\n[sentinel]\n";

    #[test]
    fn default_layout_matches_the_seed() {
        let t = crate::topology::builtin("redis-sentinel").unwrap();
        let crate::topology::Topology::RedisSentinel(s) = t else {
            panic!("wrong kind")
        };
        assert_eq!(s.master_name, "mymaster");
        assert_eq!(s.master, "127.0.0.1:6380");
        assert_eq!(s.replicas, ["127.0.0.1:6381", "127.0.0.1:6382"]);
        assert_eq!(
            s.sentinels,
            ["127.0.0.1:26380", "127.0.0.1:26381", "127.0.0.1:26382"]
        );
        assert_eq!(
            (
                s.quorum,
                s.down_after_ms,
                s.failover_timeout_ms,
                s.parallel_syncs
            ),
            (2, 5000, 10000, 1)
        );
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
        assert_eq!(s.majority(), 2);
    }

    #[test]
    fn seed_004_single_sentinel_with_quorum_2_is_an_error() {
        let e = parse_str(&format!(
            "{HEAD}master = '127.0.0.1:6379'\nreplicas = ['127.0.0.1:6380']\nsentinels = ['127.0.0.1:26379']\nquorum = 2\n"
        ))
        .unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with("t.toml:6:10: field `sentinel.quorum`: quorum 2 is larger than the number of sentinels (1)"),
            "{text}"
        );
        assert!(text.contains("no failover would ever happen"), "{text}");
    }

    #[test]
    fn risky_layouts_are_warnings_with_locations() {
        let s = parse_str(&format!(
            "{HEAD}master = '127.0.0.1:6379'\nreplicas = ['127.0.0.1:6380']\nsentinels = ['127.0.0.1:26379', '127.0.0.1:26380']\nquorum = 1\n"
        ))
        .unwrap();
        assert_eq!(s.warnings.len(), 1);
        assert!(
            s.warnings[0].to_string().starts_with(
                "t.toml:5:13: field `sentinel.sentinels`: only 2 sentinel(s): a failover needs a majority"
            ),
            "{}",
            s.warnings[0]
        );
        let s = parse_str(&format!(
            "{HEAD}master = '10.0.0.1:6379'\nreplicas = ['10.0.0.2:6379']\nsentinels = ['10.0.0.3:26379', '10.0.0.3:26380', '10.0.0.3:26381']\n"
        ))
        .unwrap();
        assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
        assert!(
            s.warnings[0]
                .message
                .contains("all 3 sentinels run on 10.0.0.3"),
            "{}",
            s.warnings[0]
        );
        // One host for everything (a local test set-up): no host warning.
        let s = parse_str(&format!(
            "{HEAD}master = '127.0.0.1:6379'\nreplicas = ['127.0.0.1:6380']\nsentinels = ['127.0.0.1:26379', '127.0.0.1:26380', '127.0.0.1:26381']\n"
        ))
        .unwrap();
        assert!(s.warnings.is_empty());
        assert_eq!(s.quorum, 2);
    }

    #[test]
    fn errors_are_located_and_collected() {
        let e = parse_str(&format!(
            "{HEAD}master = '127.0.0.1:6379'\nreplicas = ['127.0.0.1:6379', 'nohost']\nsentinels = ['127.0.0.1:26379', '127.0.0.1:26380', '127.0.0.1:99999']\nquorum = 0\ndown_after_ms = 0\n"
        ))
        .unwrap_err();
        let text = e.to_string();
        for want in [
            "t.toml:4:31: field `sentinel.replicas`: \"nohost\" is not host:port",
            "t.toml:5:52: field `sentinel.sentinels`: port 99999",
            "t.toml:4:13: field `sentinel.replicas`: 127.0.0.1:6379 is already used (by `sentinel.master` on line 3)",
            "t.toml:6:10: field `sentinel.quorum`: must be at least 1",
            "t.toml:7:17: field `sentinel.down_after_ms`: must be between 1 and",
        ] {
            assert!(text.contains(want), "missing `{want}` in:\n{text}");
        }
        let e = parse_str(&format!(
            "{HEAD}master = '127.0.0.1:6379'\nsentinels = ['127.0.0.1:26379']\n"
        ))
        .unwrap_err();
        assert!(
            e.to_string().contains(
                "field `sentinel.replicas`: no replicas: the sentinels would have nothing to promote"
            ),
            "{e}"
        );
        let e = parse_str(&format!(
            "{HEAD}master = '127.0.0.1:6379'\nreplicas = ['127.0.0.1:6380']\nsentinels = ['127.0.0.1:26379']\nquorum = 1\n[config]\nreplicaof = '127.0.0.1 6379'\n"
        ))
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("t.toml:8:13: field `config.replicaof`: is managed by datatier"),
            "{e}"
        );
        let e = parse_str("kind = 'redis-sentinel'\n").unwrap_err();
        assert!(
            e.to_string()
                .contains("field `sentinel`: missing [sentinel] section"),
            "{e}"
        );
        let e = parse_str(&format!(
            "{HEAD}master = '127.0.0.1:6379'\nreplicas = ['127.0.0.1:6380']\nsentinels = ['127.0.0.1:26379']\nmaster_name = 'my master'\n"
        ))
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("t.toml:6:15: field `sentinel.master_name`: invalid master name"),
            "{e}"
        );
    }
}
