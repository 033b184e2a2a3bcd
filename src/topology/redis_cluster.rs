//! `kind = "redis-cluster"`: masters, replicas, hosts, ports, slot ranges.
//!
//! ```toml
//! name = "redis-cluster"
//! kind = "redis-cluster"
//! provider = "local"                 # or "existing"
//!
//! [cluster]
//! masters = 3
//! replicas_per_master = 1
//! hosts = ["127.0.0.1"]              # several 127.0.0.x count as different hosts
//! base_port = 7000                   # or: ports = [7000, 7001, ...]
//! node_timeout_ms = 5000
//! # slots = ["0-5460", "5461-10922", "10923-16383"]   # one entry per master
//!
//! [config]                           # passed through to redis.conf
//! appendonly = "yes"
//!
//! [auth]                             # requirepass + masterauth
//! password_env = "REDIS_PASSWORD"    # or password_file = "redis.pass"
//! ```
//!
//! Node `i` (masters first, then replicas) is placed on `hosts[i % hosts]`
//! and takes `ports[i]`, or `base_port + i / hosts`. Replicas are assigned
//! to masters so that no replica shares its master's host when several hosts
//! are given (a bipartite matching, so a placement is found whenever one
//! exists).

use super::{default_name, parse_provider, Kind, Meta, Source, TopologyError, TopologyErrors};
use crate::secret::SecretSource;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;
use toml::Spanned;

/// Number of hash slots in a Redis Cluster.
pub const SLOTS: u16 = 16384;

/// An inclusive range of hash slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SlotRange {
    pub start: u16,
    pub end: u16,
}

impl SlotRange {
    pub fn len(&self) -> usize {
        (self.end - self.start) as usize + 1
    }
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl fmt::Display for SlotRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

/// Render a list of ranges as `0-5460,6000`.
pub fn ranges_to_string(r: &[SlotRange]) -> String {
    r.iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Parse `"0-5460"`, `"7"` or `"0-100,200-300"`.
pub fn parse_ranges(s: &str) -> Result<Vec<SlotRange>, String> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let a: u16 = a
            .parse()
            .map_err(|_| format!("\"{part}\" is not a slot or slot range like 0-5460"))?;
        let b: u16 = b
            .parse()
            .map_err(|_| format!("\"{part}\" is not a slot or slot range like 0-5460"))?;
        if a > b {
            return Err(format!("range {part} runs backwards"));
        }
        if b >= SLOTS {
            return Err(format!("slot {b} is out of range 0-16383"));
        }
        out.push(SlotRange { start: a, end: b });
    }
    Ok(out)
}

/// The even split redis-cli uses: `masters` contiguous ranges.
pub fn even_split(masters: usize) -> Vec<SlotRange> {
    let per = SLOTS as f64 / masters as f64;
    let mut cursor = 0.0f64;
    let mut first = 0u16;
    let mut out = Vec::with_capacity(masters);
    for i in 0..masters {
        let mut last = (cursor + per - 1.0).round() as i64;
        if last > SLOTS as i64 - 1 || i == masters - 1 {
            last = SLOTS as i64 - 1;
        }
        out.push(SlotRange {
            start: first,
            end: last as u16,
        });
        first = last as u16 + 1;
        cursor += per;
    }
    out
}

/// What a node is declared to be.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeRole {
    Master {
        slots: Vec<SlotRange>,
    },
    /// Index into `RedisClusterSpec::nodes` of its master.
    Replica {
        master: usize,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClusterNode {
    pub host: String,
    pub port: u16,
    pub role: NodeRole,
}

impl ClusterNode {
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
    pub fn is_master(&self) -> bool {
        matches!(self.role, NodeRole::Master { .. })
    }
}

/// Thresholds for `status`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterChecks {
    /// A master whose slot count differs from the even share by more than
    /// this percentage is a WARNING (redis-cli rebalance uses 2 %).
    pub slot_balance_tolerance_pct: f64,
    /// used_memory / maxmemory above these is WARNING / CRITICAL.
    pub memory_warn_pct: f64,
    pub memory_crit_pct: f64,
}

/// A validated Redis Cluster topology.
#[derive(Debug, Clone)]
pub struct RedisClusterSpec {
    pub meta: Meta,
    /// Masters first (in declaration order), then replicas.
    pub nodes: Vec<ClusterNode>,
    pub replicas_per_master: usize,
    /// Number of distinct hosts declared.
    pub hosts: usize,
    pub node_timeout_ms: u64,
    /// redis.conf settings passed through, in file order.
    pub config: Vec<(String, String)>,
    pub auth: SecretSource,
    pub checks: ClusterChecks,
    /// `[binaries] redis_server = "..."`; else `DATATIER_REDIS_SERVER_BIN`, PATH.
    pub redis_server_bin: Option<PathBuf>,
}

impl RedisClusterSpec {
    pub fn masters(&self) -> impl Iterator<Item = (usize, &ClusterNode)> {
        self.nodes.iter().enumerate().filter(|(_, n)| n.is_master())
    }
    pub fn replicas_of(&self, master: usize) -> impl Iterator<Item = (usize, &ClusterNode)> {
        self.nodes
            .iter()
            .enumerate()
            .filter(move |(_, n)| n.role == NodeRole::Replica { master })
    }
}

/// Settings datatier writes itself; users set them through the topology.
const MANAGED_CONFIG: &[(&str, &str)] = &[
    ("port", "derived from base_port / ports"),
    ("bind", "derived from hosts"),
    ("dir", "the state dir"),
    ("daemonize", "datatier supervises the process"),
    ("pidfile", "the state dir"),
    ("logfile", "the state dir"),
    ("cluster-enabled", "always yes for this kind"),
    ("cluster-config-file", "the state dir"),
    ("cluster-node-timeout", "use [cluster] node_timeout_ms"),
    ("requirepass", "use [auth] password_env or password_file"),
    ("masterauth", "use [auth] password_env or password_file"),
    ("replicaof", "replicas are assigned by datatier"),
    ("slaveof", "replicas are assigned by datatier"),
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    name: Option<Spanned<String>>,
    #[allow(dead_code)]
    kind: Spanned<String>,
    provider: Option<Spanned<String>>,
    cluster: Option<Spanned<ClusterSection>>,
    #[serde(default)]
    config: BTreeMap<String, Spanned<toml::Value>>,
    #[serde(default)]
    auth: SecretSource,
    #[serde(default)]
    checks: ChecksSection,
    #[serde(default)]
    binaries: Binaries,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClusterSection {
    masters: Spanned<i64>,
    replicas_per_master: Option<Spanned<i64>>,
    hosts: Option<Spanned<Vec<Spanned<String>>>>,
    base_port: Option<Spanned<i64>>,
    ports: Option<Spanned<Vec<Spanned<i64>>>>,
    node_timeout_ms: Option<Spanned<i64>>,
    slots: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChecksSection {
    slot_balance_tolerance_pct: Option<Spanned<f64>>,
    memory_warn_pct: Option<Spanned<f64>>,
    memory_crit_pct: Option<Spanned<f64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Binaries {
    redis_server: Option<PathBuf>,
}

/// Parse and validate; every problem is collected.
pub fn parse(source: Source) -> Result<RedisClusterSpec, TopologyErrors> {
    let file: File = toml::from_str(&source.text).map_err(|e| source.from_toml_error(&e))?;
    let mut errors: Vec<TopologyError> = Vec::new();
    let provider = parse_provider(&source, file.provider, &mut errors);
    let name = default_name(&source, file.name);

    let Some(cluster) = file.cluster else {
        return Err(source
            .error_top("cluster", "missing [cluster] section")
            .with_help("add [cluster] with at least `masters = 3`")
            .into());
    };
    let cspan = cluster.span();
    let c = cluster.into_inner();

    // masters
    let masters = *c.masters.get_ref();
    if masters < 3 {
        errors.push(
            source
                .error(
                    c.masters.span(),
                    "cluster.masters",
                    format!("must be at least 3, got {masters}"),
                )
                .with_help("a Redis Cluster needs 3 masters to reach a failover majority"),
        );
    }
    if masters > 1000 {
        errors.push(source.error(
            c.masters.span(),
            "cluster.masters",
            "more than 1000 masters is not supported",
        ));
    }
    let masters = masters.clamp(0, 1000) as usize;

    // replicas
    let replicas = match &c.replicas_per_master {
        None => 1,
        Some(r) if *r.get_ref() < 0 || *r.get_ref() > 10 => {
            errors.push(source.error(
                r.span(),
                "cluster.replicas_per_master",
                format!("must be between 0 and 10, got {}", r.get_ref()),
            ));
            0
        }
        Some(r) => *r.get_ref() as usize,
    };
    let total = masters * (1 + replicas);

    // hosts
    let hosts: Vec<Spanned<String>> = match c.hosts {
        None => vec![Spanned::new(cspan.clone(), "127.0.0.1".to_string())],
        Some(h) => {
            let span = h.span();
            let h = h.into_inner();
            if h.is_empty() {
                errors.push(source.error(span, "cluster.hosts", "must list at least one host"));
                vec![Spanned::new(cspan.clone(), "127.0.0.1".to_string())]
            } else {
                h
            }
        }
    };
    for (i, h) in hosts.iter().enumerate() {
        let s = h.get_ref();
        let ok = !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:_".contains(c));
        if !ok {
            errors.push(source.error(
                h.span(),
                "cluster.hosts",
                format!("\"{s}\" is not a host name or IP address"),
            ));
        }
        if hosts[..i].iter().any(|o| o.get_ref() == s) {
            errors.push(source.error(
                h.span(),
                "cluster.hosts",
                format!("host \"{s}\" is listed twice"),
            ));
        }
    }
    let nh = hosts.len();

    // ports
    let ports: Vec<(u16, std::ops::Range<usize>)> = match (&c.ports, &c.base_port) {
        (Some(_), Some(b)) => {
            errors.push(source.error(
                b.span(),
                "cluster.base_port",
                "give either base_port or ports, not both",
            ));
            Vec::new()
        }
        (Some(p), None) => {
            if p.get_ref().len() != total {
                errors.push(source.error(
                    p.span(),
                    "cluster.ports",
                    format!(
                        "lists {} ports but the layout has {total} nodes ({masters} masters x (1 + {replicas} replicas))",
                        p.get_ref().len()
                    ),
                ));
            }
            p.get_ref()
                .iter()
                .filter_map(|v| {
                    port_value(&source, v, "cluster.ports", &mut errors).map(|n| (n, v.span()))
                })
                .collect()
        }
        (None, b) => {
            let (base, span) = match b {
                Some(b) => (*b.get_ref(), b.span()),
                None => (7000, cspan.clone()),
            };
            let last = base + ((total.max(1) - 1) / nh) as i64;
            if !(1..=55535).contains(&base) || last > 55535 {
                errors.push(source.error(
                    span,
                    "cluster.base_port",
                    format!("nodes would use ports {base}-{last}; ports must be 1-55535 (the cluster bus uses port + 10000)"),
                ));
                Vec::new()
            } else {
                (0..total)
                    .map(|i| ((base + (i / nh) as i64) as u16, span.clone()))
                    .collect()
            }
        }
    };

    // node_timeout
    let node_timeout_ms = match &c.node_timeout_ms {
        None => 15000,
        Some(t) if *t.get_ref() < 100 || *t.get_ref() > 3_600_000 => {
            errors.push(source.error(
                t.span(),
                "cluster.node_timeout_ms",
                format!("must be between 100 and 3600000 ms, got {}", t.get_ref()),
            ));
            15000
        }
        Some(t) => *t.get_ref() as u64,
    };

    // slots
    let slot_ranges: Vec<Vec<SlotRange>> = match &c.slots {
        None => even_split(masters.max(1))
            .into_iter()
            .map(|r| vec![r])
            .collect(),
        Some(s) => {
            if s.get_ref().len() != masters {
                errors.push(source.error(
                    s.span(),
                    "cluster.slots",
                    format!(
                        "has {} entries but there are {masters} masters; give one entry per master",
                        s.get_ref().len()
                    ),
                ));
            }
            let mut per_master = Vec::new();
            let mut owner: Vec<Option<usize>> = vec![None; SLOTS as usize];
            for (mi, entry) in s.get_ref().iter().enumerate() {
                match parse_ranges(entry.get_ref()) {
                    Err(m) => {
                        errors.push(source.error(entry.span(), "cluster.slots", m));
                        per_master.push(Vec::new());
                    }
                    Ok(rs) => {
                        let mut overlap: Option<(u16, usize)> = None;
                        for r in &rs {
                            for slot in r.start..=r.end {
                                match owner[slot as usize] {
                                    Some(o) if overlap.is_none() => overlap = Some((slot, o)),
                                    Some(_) => {}
                                    None => owner[slot as usize] = Some(mi),
                                }
                            }
                        }
                        if let Some((slot, o)) = overlap {
                            errors.push(source.error(
                                entry.span(),
                                "cluster.slots",
                                format!(
                                    "\"{}\" overlaps entry {} (\"{}\") at slot {slot}; every slot must belong to exactly one master",
                                    entry.get_ref(),
                                    o + 1,
                                    s.get_ref()[o].get_ref()
                                ),
                            ));
                        }
                        per_master.push(rs);
                    }
                }
            }
            let missing = missing_ranges(&owner);
            if !missing.is_empty() && errors.iter().all(|e| e.field != "cluster.slots") {
                errors.push(
                    source
                        .error(
                            s.span(),
                            "cluster.slots",
                            format!(
                                "slots {} are not assigned to any master",
                                ranges_to_string(&missing)
                            ),
                        )
                        .with_help("all 16384 slots (0-16383) must be covered exactly once"),
                );
            }
            per_master
        }
    };

    // config passthrough
    let config = crate::topology::redis_config(&source, &file.config, MANAGED_CONFIG, &mut errors);

    // checks
    let pct = |v: &Option<Spanned<f64>>,
               field: &str,
               default: f64,
               errors: &mut Vec<TopologyError>| match v {
        None => default,
        Some(p) if !(0.0..=100.0).contains(p.get_ref()) => {
            errors.push(source.error(
                p.span(),
                field,
                format!("must be a percentage 0-100, got {}", p.get_ref()),
            ));
            default
        }
        Some(p) => *p.get_ref(),
    };
    let checks = ClusterChecks {
        slot_balance_tolerance_pct: pct(
            &file.checks.slot_balance_tolerance_pct,
            "checks.slot_balance_tolerance_pct",
            2.0,
            &mut errors,
        ),
        memory_warn_pct: pct(
            &file.checks.memory_warn_pct,
            "checks.memory_warn_pct",
            80.0,
            &mut errors,
        ),
        memory_crit_pct: pct(
            &file.checks.memory_crit_pct,
            "checks.memory_crit_pct",
            95.0,
            &mut errors,
        ),
    };
    if checks.memory_warn_pct > checks.memory_crit_pct {
        if let Some(w) = &file.checks.memory_warn_pct {
            errors.push(source.error(
                w.span(),
                "checks.memory_warn_pct",
                "must not exceed checks.memory_crit_pct",
            ));
        }
    }

    if !errors.is_empty() {
        return Err(TopologyErrors(errors));
    }

    // Place nodes: node i on hosts[i % nh].
    let host_of = |i: usize| hosts[i % nh].get_ref().clone();
    let mut nodes: Vec<ClusterNode> = (0..masters)
        .map(|i| ClusterNode {
            host: host_of(i),
            port: ports[i].0,
            role: NodeRole::Master {
                slots: slot_ranges.get(i).cloned().unwrap_or_default(),
            },
        })
        .collect();
    let replica_hosts: Vec<String> = (masters..total).map(host_of).collect();
    let master_hosts: Vec<String> = (0..masters).map(host_of).collect();
    let assignment = match assign_replicas(&master_hosts, &replica_hosts, replicas, nh > 1) {
        Some(a) => a,
        None => {
            let span = c
                .replicas_per_master
                .as_ref()
                .map(|r| r.span())
                .unwrap_or(cspan.clone());
            return Err(source
                .error(
                    span,
                    "cluster.replicas_per_master",
                    format!(
                        "{replicas} replica(s) per master cannot be placed on {nh} host(s) without putting a replica on its own master's host"
                    ),
                )
                .with_help("add hosts, or lower replicas_per_master")
                .into());
        }
    };
    for (k, m) in assignment.into_iter().enumerate() {
        let i = masters + k;
        nodes.push(ClusterNode {
            host: host_of(i),
            port: ports[i].0,
            role: NodeRole::Replica { master: m },
        });
    }

    // Port clashes: the same host:port twice, or a port equal to another
    // node's cluster bus port (port + 10000) on the same host.
    // (host, port) -> (node index, is it that node's bus port)
    let mut seen: HashMap<(String, u16), (usize, bool)> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        for (p, bus) in [(n.port, false), (n.port + 10000, true)] {
            if let Some(&(j, other_bus)) = seen.get(&(n.host.clone(), p)) {
                let msg = match (bus, other_bus) {
                    (false, false) => format!(
                        "port {p} on {} is given to two nodes (node {} and node {} of the layout)",
                        n.host,
                        j + 1,
                        i + 1
                    ),
                    (false, true) => format!(
                        "port {p} of node {} is the cluster bus port (port + 10000) of {}",
                        n.addr(),
                        nodes[j].addr()
                    ),
                    _ => format!(
                        "the cluster bus port {p} (port + 10000) of {} is the port of {}",
                        n.addr(),
                        nodes[j].addr()
                    ),
                };
                let field = if c.ports.is_some() {
                    "cluster.ports"
                } else {
                    "cluster.base_port"
                };
                errors.push(source.error(ports[i].1.clone(), field, msg));
            }
        }
        seen.insert((n.host.clone(), n.port), (i, false));
        seen.insert((n.host.clone(), n.port + 10000), (i, true));
    }
    if !errors.is_empty() {
        return Err(TopologyErrors(errors));
    }

    Ok(RedisClusterSpec {
        meta: Meta {
            name,
            kind: Kind::RedisCluster,
            provider,
            source,
        },
        nodes,
        replicas_per_master: replicas,
        hosts: nh,
        node_timeout_ms,
        config,
        auth: file.auth,
        checks,
        redis_server_bin: file.binaries.redis_server,
    })
}

fn port_value(
    source: &Source,
    v: &Spanned<i64>,
    field: &str,
    errors: &mut Vec<TopologyError>,
) -> Option<u16> {
    let p = *v.get_ref();
    if (1..=55535).contains(&p) {
        Some(p as u16)
    } else {
        errors.push(source.error(
            v.span(),
            field,
            format!("port {p} is out of range 1-55535 (the cluster bus uses port + 10000)"),
        ));
        None
    }
}

/// Slots owned by nobody, as ranges.
fn missing_ranges(owner: &[Option<usize>]) -> Vec<SlotRange> {
    let mut out: Vec<SlotRange> = Vec::new();
    for (slot, o) in owner.iter().enumerate() {
        if o.is_none() {
            match out.last_mut() {
                Some(r) if r.end as usize + 1 == slot => r.end = slot as u16,
                _ => out.push(SlotRange {
                    start: slot as u16,
                    end: slot as u16,
                }),
            }
        }
    }
    out
}

/// Assign each replica (by host) to a master (by host) so that every master
/// gets exactly `per_master` replicas and, when `anti_affinity`, no replica
/// shares its master's host. Kuhn's augmenting paths over master "seats";
/// replicas prefer masters in round-robin order so the result is stable and
/// spreads replicas like `redis-cli --cluster create` does.
pub fn assign_replicas(
    master_hosts: &[String],
    replica_hosts: &[String],
    per_master: usize,
    anti_affinity: bool,
) -> Option<Vec<usize>> {
    let m = master_hosts.len();
    let seats = m * per_master;
    if replica_hosts.len() != seats {
        return None;
    }
    // seat s belongs to master s % m
    let allowed = |r: usize, s: usize| !anti_affinity || replica_hosts[r] != master_hosts[s % m];
    let mut seat_of: Vec<Option<usize>> = vec![None; seats];
    fn try_assign(
        r: usize,
        seats: usize,
        m: usize,
        allowed: &dyn Fn(usize, usize) -> bool,
        seen: &mut [bool],
        seat_of: &mut [Option<usize>],
    ) -> bool {
        for k in 0..seats {
            // Start the search at the replica's own round-robin seat.
            let s = (r + k) % seats;
            let _ = m;
            if !allowed(r, s) || seen[s] {
                continue;
            }
            seen[s] = true;
            if seat_of[s].is_none()
                || try_assign(seat_of[s].unwrap(), seats, m, allowed, seen, seat_of)
            {
                seat_of[s] = Some(r);
                return true;
            }
        }
        false
    }
    for r in 0..replica_hosts.len() {
        let mut seen = vec![false; seats];
        if !try_assign(r, seats, m, &allowed, &mut seen, &mut seat_of) {
            return None;
        }
    }
    let mut out = vec![0; replica_hosts.len()];
    for (s, r) in seat_of.iter().enumerate() {
        out[r.expect("every seat taken")] = s % m;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<RedisClusterSpec, TopologyErrors> {
        parse(Source::from_text("t.toml", text, ".".into()))
    }

    #[test]
    fn default_layout_matches_the_seed() {
        let t = crate::topology::builtin("redis-cluster").unwrap();
        let crate::topology::Topology::RedisCluster(s) = t else {
            unreachable!("the redis-cluster built-in is a redis-cluster")
        };
        let addrs: Vec<String> = s.nodes.iter().map(|n| n.addr()).collect();
        assert_eq!(
            addrs,
            (7000..=7005)
                .map(|p| format!("127.0.0.1:{p}"))
                .collect::<Vec<_>>()
        );
        let slots: Vec<String> = s
            .masters()
            .map(|(_, n)| match &n.role {
                NodeRole::Master { slots } => ranges_to_string(slots),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(slots, ["0-5460", "5461-10922", "10923-16383"]);
        let masters_of: Vec<usize> = s.nodes[3..]
            .iter()
            .map(|n| match n.role {
                NodeRole::Replica { master } => master,
                _ => unreachable!(),
            })
            .collect();
        let mut sorted = masters_of.clone();
        sorted.sort();
        assert_eq!(sorted, [0, 1, 2], "each replica on a different master");
        assert_eq!(s.node_timeout_ms, 5000);
        assert!(s.config.contains(&("appendonly".into(), "yes".into())));
    }

    #[test]
    fn even_split_covers_everything() {
        for m in 3..50 {
            let r = even_split(m);
            assert_eq!(r[0].start, 0);
            assert_eq!(r.last().unwrap().end, 16383);
            for w in r.windows(2) {
                assert_eq!(w[0].end + 1, w[1].start);
            }
        }
    }

    #[test]
    fn anti_affinity_on_several_hosts() {
        let s = parse_str(
            "kind='redis-cluster'\n[cluster]\nmasters=3\nreplicas_per_master=2\nhosts=['127.0.0.1','127.0.0.2','127.0.0.3']\nbase_port=7000\n",
        )
        .unwrap();
        for n in &s.nodes {
            if let NodeRole::Replica { master } = n.role {
                assert_ne!(n.host, s.nodes[master].host, "{n:?}");
            }
        }
        for (i, _) in s.masters() {
            assert_eq!(s.replicas_of(i).count(), 2);
        }
    }

    #[test]
    fn errors_are_located() {
        let e = parse_str("kind='redis-cluster'\n[cluster]\nmasters=2\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("t.toml:3:9: field `cluster.masters`: must be at least 3"),
            "{e}"
        );
        let e = parse_str("kind='redis-cluster'\n[cluster]\nmasters=3\nslots=['0-5460','5000-10922','10923-16383']\n")
            .unwrap_err();
        assert!(e.to_string().contains("overlaps entry 1"), "{e}");
        let e = parse_str("kind='redis-cluster'\n[cluster]\nmasters=3\nslots=['0-5460','5462-10922','10923-16383']\n")
            .unwrap_err();
        assert!(e.to_string().contains("slots 5461 are not assigned"), "{e}");
        let e = parse_str("kind='redis-cluster'\n[cluster]\nmasters=3\nreplicas_per_master=1\nports=[7000,7001,7002,7003,7004,7000]\n")
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("port 7000 on 127.0.0.1 is given to two nodes (node 1 and node 6"),
            "{e}"
        );
        let e = parse_str(
            "kind='redis-cluster'\n[cluster]\nmasters=3\nreplicas_per_master=2\nhosts=['a','b']\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("cannot be placed"), "{e}");
        let e = parse_str("kind='redis-cluster'\n[cluster]\nmasters=3\n[config]\nport=1\n")
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("field `config.port`: is managed by datatier"),
            "{e}"
        );
        let e = parse_str("kind='redis-cluster'\n[cluster]\nmasters=3\nbogus=1\n").unwrap_err();
        assert!(
            e.to_string()
                .contains("t.toml:4:1: field `bogus`: unknown field"),
            "{e}"
        );
        let e = parse_str("kind='redis-cluster'\n[cluster]\nmasters='three'\n").unwrap_err();
        assert!(e.to_string().contains("t.toml:3:9: field `masters`"), "{e}");
    }

    #[test]
    fn bus_port_clash_is_an_error() {
        let e = parse_str("kind='redis-cluster'\n[cluster]\nmasters=3\nreplicas_per_master=0\nports=[7000,7001,17000]\n")
            .unwrap_err();
        assert!(e.to_string().contains("cluster bus port"), "{e}");
    }

    #[test]
    fn assignment_finds_a_placement_when_one_exists() {
        let h = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // Greedy round-robin would fail here; matching does not.
        let a = assign_replicas(&h(&["a", "a", "b"]), &h(&["b", "b", "a"]), 1, true).unwrap();
        assert_eq!(a.len(), 3);
        assert!(assign_replicas(&h(&["a", "a", "a"]), &h(&["a", "a", "a"]), 1, true).is_none());
    }
}
