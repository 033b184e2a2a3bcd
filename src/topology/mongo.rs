//! `kind = "mongo-sharded"`: a config server replica set, shard replica
//! sets, mongos routers, sharded collections, chunk size and balancer.
//!
//! See `topologies/mongo-sharded.toml` for the annotated format. Everything
//! MongoDB itself would refuse later — half-way through a bootstrap, after
//! processes were started — is refused here, before anything starts, with
//! the file, line and field:
//!
//! - the config set's name differs from every shard's, shard names are
//!   unique and not `config` (addShard refuses it);
//! - host names are all localhost (`localhost`, `127.x`, `::1`) or none:
//!   replica set configs and addShard refuse the mix;
//! - members: priority 0-1000, votes 0/1, hidden and non-voting members
//!   have priority 0, arbiters vote and have priority 0, no arbiters in the
//!   config server set, 1-7 voting members, at least one electable member;
//! - shard keys: ascending (1) fields and at most one `"hashed"` field;
//!   `unique` is not allowed with a hashed key;
//! - chunk size 1-1024 MB; balancer window `HH:MM`, start != stop (a window
//!   may cross midnight).

use super::{default_name, parse_provider, Kind, Meta, Source, TopologyError, TopologyErrors};
use crate::secret::SecretSource;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use toml::Spanned;

/// MongoDB's limits on replica set membership.
pub const MAX_MEMBERS: usize = 50;
pub const MAX_VOTING_MEMBERS: usize = 7;

/// Is this a host MongoDB treats as "localhost" (`HostAndPort::isLocalHost`)?
pub fn is_localhost(host: &str) -> bool {
    host == "localhost" || host.starts_with("127.") || host == "::1"
}

/// One replica set member as declared.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub host: String,
    pub port: u16,
    pub priority: f64,
    pub votes: u8,
    pub arbiter: bool,
    pub hidden: bool,
}

impl Member {
    pub fn addr(&self) -> String {
        join_addr(&self.host, self.port)
    }
    /// Can become primary.
    pub fn electable(&self) -> bool {
        !self.arbiter && self.priority > 0.0 && self.votes > 0
    }
    /// Listed in `hello.hosts`/`passives` (so usable in a seed list).
    pub fn visible(&self) -> bool {
        !self.arbiter && !self.hidden
    }
}

/// `host:port`, bracketing IPv6 addresses.
pub fn join_addr(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// What a replica set is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetRole {
    /// The config server replica set (`--configsvr`, `configsvr: true`).
    Config,
    /// A shard (`--shardsvr`).
    Shard,
}

impl SetRole {
    /// `sharding.clusterRole` as mongod reports it.
    pub fn cluster_role(self) -> &'static str {
        match self {
            SetRole::Config => "configsvr",
            SetRole::Shard => "shardsvr",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaSetSpec {
    pub name: String,
    pub role: SetRole,
    pub members: Vec<Member>,
}

impl ReplicaSetSpec {
    /// `name/h:p,h:p` of the members a client can be pointed at (MongoDB's
    /// addShard and `--configdb` refuse hosts missing from `hello.hosts`,
    /// which hidden members and arbiters are).
    pub fn seed_list(&self) -> String {
        let hosts: Vec<String> = self
            .members
            .iter()
            .filter(|m| m.visible())
            .map(|m| m.addr())
            .collect();
        format!("{}/{}", self.name, hosts.join(","))
    }
    pub fn voting(&self) -> usize {
        self.members.iter().map(|m| m.votes as usize).sum()
    }
    /// Votes needed to elect a primary and to commit majority writes.
    pub fn majority(&self) -> usize {
        self.voting() / 2 + 1
    }
    pub fn addrs(&self) -> Vec<String> {
        self.members.iter().map(|m| m.addr()).collect()
    }
    pub fn member(&self, addr: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.addr() == addr)
    }
}

/// A mongos router.
#[derive(Debug, Clone, PartialEq)]
pub struct Router {
    pub host: String,
    pub port: u16,
}

impl Router {
    pub fn addr(&self) -> String {
        join_addr(&self.host, self.port)
    }
}

/// One field of a shard key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPart {
    Ascending,
    Hashed,
}

/// A shard key: fields in order (order matters to MongoDB).
#[derive(Debug, Clone, PartialEq)]
pub struct ShardKey(pub Vec<(String, KeyPart)>);

impl ShardKey {
    pub fn is_hashed(&self) -> bool {
        self.0.iter().any(|(_, p)| *p == KeyPart::Hashed)
    }
    /// The key as MongoDB takes it: `{createdAt: "hashed", userId: 1}`.
    pub fn to_document(&self) -> bson::Document {
        let mut d = bson::Document::new();
        for (f, p) in &self.0 {
            match p {
                KeyPart::Ascending => d.insert(f.clone(), 1i32),
                KeyPart::Hashed => d.insert(f.clone(), "hashed"),
            };
        }
        d
    }
    /// The default index name MongoDB gives this key (`createdAt_hashed_userId_1`).
    pub fn index_name(&self) -> String {
        self.0
            .iter()
            .map(|(f, p)| match p {
                KeyPart::Ascending => format!("{f}_1"),
                KeyPart::Hashed => format!("{f}_hashed"),
            })
            .collect::<Vec<_>>()
            .join("_")
    }
    /// Does a key document (from config.collections or an index) equal this
    /// key, field order included? Numbers compare by value (1, 1.0, 1L).
    pub fn matches(&self, doc: &bson::Document) -> bool {
        doc.len() == self.0.len()
            && doc.iter().zip(&self.0).all(|((k, v), (f, p))| {
                k == f
                    && match p {
                        KeyPart::Hashed => v.as_str() == Some("hashed"),
                        KeyPart::Ascending => bson_number(v) == Some(1.0),
                    }
            })
    }
}

/// A BSON number as f64.
pub fn bson_number(v: &bson::Bson) -> Option<f64> {
    match v {
        bson::Bson::Int32(i) => Some(*i as f64),
        bson::Bson::Int64(i) => Some(*i as f64),
        bson::Bson::Double(d) => Some(*d),
        _ => None,
    }
}

/// Render a key document the way mongosh prints it: `{ createdAt: "hashed", userId: 1 }`.
pub fn key_doc_to_string(doc: &bson::Document) -> String {
    let parts: Vec<String> = doc
        .iter()
        .map(|(k, v)| match v {
            bson::Bson::String(s) => format!("{k}: \"{s}\""),
            other => match bson_number(other) {
                Some(n) if n.fract() == 0.0 => format!("{k}: {}", n as i64),
                _ => format!("{k}: {other}"),
            },
        })
        .collect();
    format!("{{ {} }}", parts.join(", "))
}

impl fmt::Display for ShardKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&key_doc_to_string(&self.to_document()))
    }
}

/// A collection declared sharded.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardedCollection {
    pub database: String,
    pub name: String,
    pub key: ShardKey,
    pub unique: bool,
}

impl ShardedCollection {
    pub fn ns(&self) -> String {
        format!("{}.{}", self.database, self.name)
    }
}

/// A time of day, `HH:MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimeOfDay {
    pub hour: u8,
    pub minute: u8,
}

impl TimeOfDay {
    /// Parse `HH:MM` (two digits each, 00:00-23:59), as the balancer expects.
    pub fn parse(s: &str) -> Option<TimeOfDay> {
        let (h, m) = s.split_once(':')?;
        if h.len() != 2 || m.len() != 2 {
            return None;
        }
        let hour: u8 = h.parse().ok()?;
        let minute: u8 = m.parse().ok()?;
        (hour < 24 && minute < 60).then_some(TimeOfDay { hour, minute })
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.hour, self.minute)
    }
}

/// The balancer's `activeWindow`, in the config primary's local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BalancerWindow {
    pub start: TimeOfDay,
    pub stop: TimeOfDay,
}

impl BalancerWindow {
    pub fn crosses_midnight(&self) -> bool {
        self.stop < self.start
    }
    /// Is `t` inside the window (start inclusive, stop exclusive)?
    pub fn contains(&self, t: TimeOfDay) -> bool {
        if self.crosses_midnight() {
            t >= self.start || t < self.stop
        } else {
            t >= self.start && t < self.stop
        }
    }
}

impl fmt::Display for BalancerWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.stop)?;
        if self.crosses_midnight() {
            f.write_str(" (crosses midnight)")?;
        }
        Ok(())
    }
}

/// Options for the mongod processes the local provider starts.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MongodOptions {
    pub cache_size_gb: Option<f64>,
    pub oplog_size_mb: Option<u64>,
    pub extra_args: Vec<String>,
}

/// Credentials for nodes with access control (`[auth]`): a SCRAM user
/// that exists on the config servers and every shard.
#[derive(Debug, Clone, PartialEq)]
pub struct MongoAuth {
    pub username: String,
    pub password: SecretSource,
    /// The authentication database (default `admin`).
    pub source: String,
}

/// A validated MongoDB sharded cluster topology.
#[derive(Debug, Clone)]
pub struct MongoShardedSpec {
    pub meta: Meta,
    pub config: ReplicaSetSpec,
    pub shards: Vec<ReplicaSetSpec>,
    pub mongos: Vec<Router>,
    /// `config.settings` `chunksize` in MB; `None`: not managed.
    pub chunk_size_mb: Option<u32>,
    /// Balancer on (`full`) or off; `None`: not managed.
    pub balancer: Option<bool>,
    /// `None`: not managed; `Some(None)`: no window (runs any time).
    pub balancer_window: Option<Option<BalancerWindow>>,
    pub collections: Vec<ShardedCollection>,
    pub mongod: MongodOptions,
    pub auth: Option<MongoAuth>,
    /// `[binaries]`; else `DATATIER_MONGOD_BIN` / `DATATIER_MONGOS_BIN`, PATH.
    pub mongod_bin: Option<PathBuf>,
    pub mongos_bin: Option<PathBuf>,
}

impl MongoShardedSpec {
    /// Every replica set, config servers first.
    pub fn sets(&self) -> impl Iterator<Item = &ReplicaSetSpec> {
        std::iter::once(&self.config).chain(self.shards.iter())
    }
    pub fn set(&self, name: &str) -> Option<&ReplicaSetSpec> {
        self.sets().find(|s| s.name == name)
    }
    pub fn mongos_addrs(&self) -> Vec<String> {
        self.mongos.iter().map(|r| r.addr()).collect()
    }
    /// Databases holding declared collections, in declaration order.
    pub fn databases(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for c in &self.collections {
            if !out.contains(&c.database) {
                out.push(c.database.clone());
            }
        }
        out
    }
}

// ---------------------------------------------------------------- parsing

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    name: Option<Spanned<String>>,
    #[allow(dead_code)]
    kind: Spanned<String>,
    provider: Option<Spanned<String>>,
    config_servers: Option<Spanned<SetSection>>,
    #[serde(default)]
    shards: Vec<Spanned<SetSection>>,
    mongos: Option<Spanned<MongosSection>>,
    #[serde(default)]
    sharding: ShardingSection,
    #[serde(default)]
    collections: Vec<Spanned<CollectionSection>>,
    #[serde(default)]
    mongod: MongodSection,
    auth: Option<Spanned<AuthSection>>,
    #[serde(default)]
    binaries: Binaries,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthSection {
    username: Spanned<String>,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
    source: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetSection {
    name: Spanned<String>,
    members: Spanned<Vec<Spanned<toml::Value>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MongosSection {
    hosts: Spanned<Vec<Spanned<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShardingSection {
    chunk_size_mb: Option<Spanned<i64>>,
    balancer: Option<Spanned<bool>>,
    balancer_window: Option<Spanned<toml::Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CollectionSection {
    database: Spanned<String>,
    name: Spanned<String>,
    key: Spanned<OrderedTable>,
    unique: Option<Spanned<bool>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MongodSection {
    cache_size_gb: Option<Spanned<f64>>,
    oplog_size_mb: Option<Spanned<i64>>,
    #[serde(default)]
    extra_args: Vec<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Binaries {
    mongod: Option<PathBuf>,
    mongos: Option<PathBuf>,
}

/// A TOML table with its keys in file order (a shard key's field order is
/// part of the key; a plain map would sort it).
#[derive(Debug)]
struct OrderedTable(Vec<(String, toml::Value)>);

impl<'de> Deserialize<'de> for OrderedTable {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OrderedTable;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a table like { createdAt = \"hashed\", userId = 1 }")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedTable, A::Error> {
                // toml hands table entries over sorted; the keys' spans
                // give back the order they were written in.
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<Spanned<String>, toml::Value>()? {
                    out.push((k.span().start, k.into_inner(), v));
                }
                out.sort_by_key(|(pos, _, _)| *pos);
                Ok(OrderedTable(
                    out.into_iter().map(|(_, k, v)| (k, v)).collect(),
                ))
            }
        }
        d.deserialize_map(V)
    }
}

/// Collects errors while parsing.
struct Check<'a> {
    source: &'a Source,
    errors: Vec<TopologyError>,
}

impl Check<'_> {
    fn err(&mut self, span: Range<usize>, field: &str, msg: impl Into<String>) {
        self.errors.push(self.source.error(span, field, msg));
    }
    fn err_help(
        &mut self,
        span: Range<usize>,
        field: &str,
        msg: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.errors
            .push(self.source.error(span, field, msg).with_help(help));
    }
}

/// Split `host:port` / `[v6]:port`; the port is required.
pub fn split_host_port(s: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, p) = rest
            .split_once("]:")
            .ok_or_else(|| format!("\"{s}\" is not [ipv6]:port"))?;
        (h.to_string(), p)
    } else {
        let (h, p) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("\"{s}\" has no port; write host:port"))?;
        if h.contains(':') {
            return Err(format!(
                "\"{s}\": write IPv6 addresses in brackets, [::1]:27017"
            ));
        }
        (h.to_string(), p)
    };
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("\"{s}\" has a bad port; ports are 1-65535"))?;
    let ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-_:".contains(c));
    if !ok {
        return Err(format!("\"{host}\" is not a host name or IP address"));
    }
    Ok((host, port))
}

fn valid_set_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

fn parse_member(c: &mut Check, v: &Spanned<toml::Value>, field: &str) -> Option<Member> {
    let span = v.span();
    let mut m = Member {
        host: String::new(),
        port: 0,
        priority: 1.0,
        votes: 1,
        arbiter: false,
        hidden: false,
    };
    let mut explicit_priority = false;
    match v.get_ref() {
        toml::Value::String(s) => match split_host_port(s) {
            Ok((h, p)) => {
                m.host = h;
                m.port = p;
            }
            Err(e) => {
                c.err(span, field, e);
                return None;
            }
        },
        toml::Value::Table(t) => {
            let mut ok = true;
            for (k, val) in t {
                let f = format!("{field}.{k}");
                match (k.as_str(), val) {
                    ("host", toml::Value::String(s)) => match split_host_port(s) {
                        Ok((h, p)) => {
                            m.host = h;
                            m.port = p;
                        }
                        Err(e) => {
                            c.err(span.clone(), &f, e);
                            ok = false;
                        }
                    },
                    ("priority", val) => {
                        let p = match val {
                            toml::Value::Integer(i) => Some(*i as f64),
                            toml::Value::Float(x) => Some(*x),
                            _ => None,
                        };
                        match p {
                            Some(p) if (0.0..=1000.0).contains(&p) => {
                                m.priority = p;
                                explicit_priority = true;
                            }
                            _ => {
                                c.err(span.clone(), &f, "must be a number from 0 to 1000");
                                ok = false;
                            }
                        }
                    }
                    ("votes", toml::Value::Integer(i)) if *i == 0 || *i == 1 => m.votes = *i as u8,
                    ("votes", _) => {
                        c.err(span.clone(), &f, "must be 0 or 1");
                        ok = false;
                    }
                    ("arbiter", toml::Value::Boolean(b)) => m.arbiter = *b,
                    ("hidden", toml::Value::Boolean(b)) => m.hidden = *b,
                    ("arbiter" | "hidden", _) => {
                        c.err(span.clone(), &f, "must be true or false");
                        ok = false;
                    }
                    ("host", _) => {
                        c.err(span.clone(), &f, "must be a string \"host:port\"");
                        ok = false;
                    }
                    _ => {
                        c.err_help(
                            span.clone(),
                            &f,
                            "unknown member option",
                            "member options: host, priority, votes, arbiter, hidden",
                        );
                        ok = false;
                    }
                }
            }
            if m.host.is_empty() && ok {
                c.err(span.clone(), field, "missing `host = \"host:port\"`");
                return None;
            }
            if !ok {
                return None;
            }
        }
        _ => {
            c.err(
                span,
                field,
                "must be \"host:port\" or a table { host = \"host:port\", priority = .., hidden = .., arbiter = .., votes = .. }",
            );
            return None;
        }
    }
    // Defaults and MongoDB's member rules.
    if m.arbiter && !explicit_priority {
        m.priority = 0.0;
    }
    if (m.hidden || m.votes == 0) && !explicit_priority {
        m.priority = 0.0;
    }
    if m.arbiter && m.priority > 0.0 {
        c.err(span.clone(), field, "an arbiter must have priority 0");
    }
    if m.arbiter && m.votes == 0 {
        c.err(span.clone(), field, "an arbiter must vote (votes = 1)");
    }
    if m.arbiter && m.hidden {
        c.err(span.clone(), field, "an arbiter cannot be hidden");
    }
    if m.hidden && m.priority > 0.0 {
        c.err(
            span.clone(),
            field,
            "a hidden member must have priority 0 (MongoDB: \"priority must be 0 when hidden=true\")",
        );
    }
    if m.votes == 0 && m.priority > 0.0 {
        c.err(
            span.clone(),
            field,
            "a non-voting member (votes = 0) must have priority 0",
        );
    }
    Some(m)
}

fn parse_set(
    c: &mut Check,
    s: &Spanned<SetSection>,
    role: SetRole,
    field: &str,
) -> Option<ReplicaSetSpec> {
    let sec = s.get_ref();
    let name = sec.name.get_ref().clone();
    if !valid_set_name(&name) {
        c.err_help(
            sec.name.span(),
            &format!("{field}.name"),
            format!("invalid replica set name \"{name}\""),
            "use letters, digits, '-', '_' or '.'",
        );
    }
    if role == SetRole::Shard && name == "config" {
        c.err(
            sec.name.span(),
            &format!("{field}.name"),
            "a shard cannot be named \"config\" (addShard refuses it)",
        );
    }
    let mspan = sec.members.span();
    let list = sec.members.get_ref();
    if list.is_empty() {
        c.err(
            mspan.clone(),
            &format!("{field}.members"),
            "must list at least one member",
        );
        return None;
    }
    if list.len() > MAX_MEMBERS {
        c.err(
            mspan.clone(),
            &format!("{field}.members"),
            format!(
                "{} members; a replica set has at most {MAX_MEMBERS}",
                list.len()
            ),
        );
    }
    let before = c.errors.len();
    let members: Vec<Member> = list
        .iter()
        .enumerate()
        .filter_map(|(i, v)| parse_member(c, v, &format!("{field}.members[{i}]")))
        .collect();
    if c.errors.len() > before {
        return None;
    }
    let set = ReplicaSetSpec {
        name,
        role,
        members,
    };
    let voting = set.voting();
    if voting == 0 || voting > MAX_VOTING_MEMBERS {
        c.err(
            mspan.clone(),
            &format!("{field}.members"),
            format!("{voting} voting members; a replica set needs 1 to {MAX_VOTING_MEMBERS}"),
        );
    }
    if !set.members.iter().any(|m| m.electable()) {
        c.err(
            mspan.clone(),
            &format!("{field}.members"),
            "no member can become primary (every member is an arbiter, hidden, non-voting or has priority 0)",
        );
    }
    if role == SetRole::Config {
        if let Some((i, _)) = set.members.iter().enumerate().find(|(_, m)| m.arbiter) {
            c.err(
                list[i].span(),
                &format!("{field}.members[{i}]"),
                "arbiters are not allowed in the config server replica set",
            );
        }
    }
    Some(set)
}

/// Parse and validate; every problem is collected.
pub fn parse(source: Source) -> Result<MongoShardedSpec, TopologyErrors> {
    let file: File = toml::from_str(&source.text).map_err(|e| source.from_toml_error(&e))?;
    let mut c = Check {
        source: &source,
        errors: Vec::new(),
    };
    let provider = parse_provider(&source, file.provider, &mut c.errors);
    let name = default_name(&source, file.name);

    let Some(cfg) = &file.config_servers else {
        return Err(source
            .error_top("config_servers", "missing [config_servers] section")
            .with_help(
                "add [config_servers] with name = \"cfg\" and members = [\"127.0.0.1:27101\", ...]",
            )
            .into());
    };
    if file.shards.is_empty() {
        c.errors.push(
            source
                .error_top(
                    "shards",
                    "no [[shards]] declared; a sharded cluster needs at least one",
                )
                .with_help("add [[shards]] with name = \"shard1\" and members = [...]"),
        );
    }
    let Some(mongos) = &file.mongos else {
        c.errors.push(
            source
                .error_top("mongos", "missing [mongos] section")
                .with_help("add [mongos] with hosts = [\"127.0.0.1:27017\"]"),
        );
        return Err(TopologyErrors(c.errors));
    };

    let config = parse_set(&mut c, cfg, SetRole::Config, "config_servers");
    let mut shards = Vec::new();
    for (i, s) in file.shards.iter().enumerate() {
        let field = format!("shards[{i}]");
        if let Some(set) = parse_set(&mut c, s, SetRole::Shard, &field) {
            shards.push((set, s.get_ref().name.span()));
        }
    }

    // Names: config differs from every shard; shards unique.
    let cfg_name = cfg.get_ref().name.get_ref().clone();
    for (i, s) in file.shards.iter().enumerate() {
        let n = s.get_ref().name.get_ref();
        if *n == cfg_name {
            c.err_help(
                s.get_ref().name.span(),
                &format!("shards[{i}].name"),
                format!("\"{n}\" is also the config server replica set's name"),
                "the config server set and every shard need their own replica set name",
            );
        }
        if let Some(j) = file.shards[..i]
            .iter()
            .position(|o| o.get_ref().name.get_ref() == n)
        {
            c.err(
                s.get_ref().name.span(),
                &format!("shards[{i}].name"),
                format!("shard \"{n}\" is declared twice (also shards[{j}])"),
            );
        }
    }

    // mongos
    let mut routers = Vec::new();
    let hosts = mongos.get_ref().hosts.get_ref();
    if hosts.is_empty() {
        c.err(
            mongos.get_ref().hosts.span(),
            "mongos.hosts",
            "must list at least one mongos",
        );
    }
    for (i, h) in hosts.iter().enumerate() {
        match split_host_port(h.get_ref()) {
            Ok((host, port)) => routers.push((Router { host, port }, h.span())),
            Err(e) => c.err(h.span(), &format!("mongos.hosts[{i}]"), e),
        }
    }

    // Every node: one address each, localhost all or none.
    let mut nodes: Vec<(String, String, Range<usize>, String)> = Vec::new(); // host, addr, span, field
    let mut push_set = |set: &ReplicaSetSpec, sec: &Spanned<SetSection>, field: &str| {
        for (i, m) in set.members.iter().enumerate() {
            let span = sec.get_ref().members.get_ref()[i].span();
            nodes.push((
                m.host.clone(),
                m.addr(),
                span,
                format!("{field}.members[{i}]"),
            ));
        }
    };
    if let Some(cs) = &config {
        push_set(cs, cfg, "config_servers");
    }
    for (i, (set, _)) in shards.iter().enumerate() {
        let idx = file
            .shards
            .iter()
            .position(|s| s.get_ref().name.get_ref() == &set.name)
            .unwrap_or(i);
        push_set(set, &file.shards[idx], &format!("shards[{idx}]"));
    }
    for (i, (r, span)) in routers.iter().enumerate() {
        nodes.push((
            r.host.clone(),
            r.addr(),
            span.clone(),
            format!("mongos.hosts[{i}]"),
        ));
    }
    let mut seen: HashMap<String, String> = HashMap::new();
    for (_, addr, span, field) in &nodes {
        if let Some(other) = seen.get(addr) {
            c.err(
                span.clone(),
                field,
                format!("{addr} is declared twice (also {other})"),
            );
        } else {
            seen.insert(addr.clone(), field.clone());
        }
    }
    let local: Vec<&(String, String, Range<usize>, String)> =
        nodes.iter().filter(|n| is_localhost(&n.0)).collect();
    if !local.is_empty() && local.len() != nodes.len() {
        let remote = nodes.iter().find(|n| !is_localhost(&n.0)).unwrap();
        let (odd, other) = if local.len() * 2 <= nodes.len() {
            (local[0], remote)
        } else {
            (remote, local[0])
        };
        c.err_help(
            odd.2.clone(),
            &odd.3,
            format!(
                "mixes localhost and other host names ({} here, {} at {}): MongoDB refuses replica set configs and shards that mix them",
                odd.1, other.1, other.3
            ),
            "use localhost/127.x addresses for every node, or real host names for every node",
        );
    }

    // [sharding]
    let chunk_size_mb = match &file.sharding.chunk_size_mb {
        None => None,
        Some(v) if (1..=1024).contains(v.get_ref()) => Some(*v.get_ref() as u32),
        Some(v) => {
            c.err(
                v.span(),
                "sharding.chunk_size_mb",
                format!("must be 1-1024 (MB), got {}", v.get_ref()),
            );
            None
        }
    };
    let balancer = file.sharding.balancer.as_ref().map(|b| *b.get_ref());
    let balancer_window = match &file.sharding.balancer_window {
        None => None,
        Some(w) => parse_window(&mut c, w),
    };

    // [[collections]]
    let mut collections = Vec::new();
    for (i, col) in file.collections.iter().enumerate() {
        let field = format!("collections[{i}]");
        if let Some(sc) = parse_collection(&mut c, col.get_ref(), &field) {
            if let Some(j) = collections
                .iter()
                .position(|o: &ShardedCollection| o.ns() == sc.ns())
            {
                c.err(
                    col.span(),
                    &field,
                    format!("{} is declared twice (also collections[{j}])", sc.ns()),
                );
            }
            collections.push(sc);
        }
    }

    // [mongod]
    let m = &file.mongod;
    let cache_size_gb = match &m.cache_size_gb {
        Some(v) if !(0.25..=10000.0).contains(v.get_ref()) => {
            c.err(
                v.span(),
                "mongod.cache_size_gb",
                format!("must be 0.25-10000 (GB), got {}", v.get_ref()),
            );
            None
        }
        v => v.as_ref().map(|v| *v.get_ref()),
    };
    let oplog_size_mb = match &m.oplog_size_mb {
        Some(v) if *v.get_ref() < 1 => {
            c.err(
                v.span(),
                "mongod.oplog_size_mb",
                format!("must be a positive number of MB, got {}", v.get_ref()),
            );
            None
        }
        v => v.as_ref().map(|v| *v.get_ref() as u64),
    };
    const MANAGED: &[&str] = &[
        "--port",
        "--bind_ip",
        "--bind_ip_all",
        "--dbpath",
        "--replSet",
        "--configsvr",
        "--shardsvr",
        "--configdb",
        "--fork",
        "--logpath",
        "--pidfilepath",
        "--wiredTigerCacheSizeGB",
        "--oplogSize",
    ];
    for (i, a) in m.extra_args.iter().enumerate() {
        let flag = a.get_ref().split('=').next().unwrap_or("");
        if MANAGED.contains(&flag) {
            c.err_help(
                a.span(),
                &format!("mongod.extra_args[{i}]"),
                format!("{flag} is managed by datatier"),
                "ports, addresses, roles and paths come from the topology; cache and oplog sizes from [mongod]",
            );
        }
    }

    // [auth]
    let auth = match &file.auth {
        None => None,
        Some(a) => {
            let sec = a.get_ref();
            if sec.username.get_ref().is_empty() {
                c.err(sec.username.span(), "auth.username", "must not be empty");
            }
            match (&sec.password_env, &sec.password_file) {
                (Some(_), Some(_)) => c.err(
                    a.span(),
                    "auth",
                    "give either password_env or password_file, not both",
                ),
                (None, None) => c.err_help(
                    a.span(),
                    "auth",
                    "needs a password source",
                    "add password_env = \"MONGO_PASSWORD\" or password_file = \"mongo.pass\" (never the password itself)",
                ),
                _ => {}
            }
            Some(MongoAuth {
                username: sec.username.get_ref().clone(),
                password: SecretSource {
                    password_env: sec.password_env.clone(),
                    password_file: sec.password_file.clone(),
                },
                source: sec.source.clone().unwrap_or_else(|| "admin".into()),
            })
        }
    };

    if !c.errors.is_empty() {
        return Err(TopologyErrors(c.errors));
    }
    Ok(MongoShardedSpec {
        meta: Meta {
            name,
            kind: Kind::MongoSharded,
            provider,
            source: source.clone(),
        },
        config: config.expect("no errors"),
        shards: shards.into_iter().map(|(s, _)| s).collect(),
        mongos: routers.into_iter().map(|(r, _)| r).collect(),
        chunk_size_mb,
        balancer,
        balancer_window,
        collections,
        mongod: MongodOptions {
            cache_size_gb,
            oplog_size_mb,
            extra_args: m.extra_args.iter().map(|a| a.get_ref().clone()).collect(),
        },
        auth,
        mongod_bin: file.binaries.mongod,
        mongos_bin: file.binaries.mongos,
    })
}

fn parse_window(c: &mut Check, w: &Spanned<toml::Value>) -> Option<Option<BalancerWindow>> {
    const FIELD: &str = "sharding.balancer_window";
    match w.get_ref() {
        toml::Value::String(s) if s == "none" => Some(None),
        toml::Value::Table(t) => {
            let mut get = |k: &str| -> Option<TimeOfDay> {
                match t.get(k) {
                    Some(toml::Value::String(s)) => match TimeOfDay::parse(s) {
                        Some(t) => Some(t),
                        None => {
                            c.err(
                                w.span(),
                                &format!("{FIELD}.{k}"),
                                format!("\"{s}\" is not a time HH:MM (00:00-23:59)"),
                            );
                            None
                        }
                    },
                    Some(_) => {
                        c.err(
                            w.span(),
                            &format!("{FIELD}.{k}"),
                            "must be a string \"HH:MM\"",
                        );
                        None
                    }
                    None => {
                        c.err(w.span(), &format!("{FIELD}.{k}"), "missing");
                        None
                    }
                }
            };
            let start = get("start");
            let stop = get("stop");
            if let Some(k) = t.keys().find(|k| *k != "start" && *k != "stop") {
                c.err(
                    w.span(),
                    &format!("{FIELD}.{k}"),
                    "unknown field; a window has `start` and `stop`",
                );
                return None;
            }
            let (start, stop) = (start?, stop?);
            if start == stop {
                c.err_help(
                    w.span(),
                    FIELD,
                    format!("start and stop are both {start}; the window would be empty"),
                    "give different times (a window may cross midnight, e.g. 22:00-04:00), or \"none\" for no window",
                );
                return None;
            }
            Some(Some(BalancerWindow { start, stop }))
        }
        _ => {
            c.err(
                w.span(),
                FIELD,
                "must be { start = \"HH:MM\", stop = \"HH:MM\" } or \"none\"",
            );
            None
        }
    }
}

fn parse_collection(
    c: &mut Check,
    col: &CollectionSection,
    field: &str,
) -> Option<ShardedCollection> {
    let before = c.errors.len();
    let db = col.database.get_ref();
    if db.is_empty() || db.len() > 63 || db.chars().any(|ch| "/\\. \"$\0".contains(ch)) {
        c.err(
            col.database.span(),
            &format!("{field}.database"),
            format!("invalid database name \"{db}\" (1-63 characters, none of / \\ . space \" $)"),
        );
    } else if ["admin", "local", "config"].contains(&db.as_str()) {
        c.err(
            col.database.span(),
            &format!("{field}.database"),
            format!("collections in the \"{db}\" database cannot be sharded here"),
        );
    }
    let name = col.name.get_ref();
    if name.is_empty() || name.contains('$') || name.contains('\0') {
        c.err(
            col.name.span(),
            &format!("{field}.name"),
            format!("invalid collection name \"{name}\""),
        );
    } else if name.starts_with("system.") {
        c.err(
            col.name.span(),
            &format!("{field}.name"),
            "system collections cannot be sharded",
        );
    }
    let kspan = col.key.span();
    let kfield = format!("{field}.key");
    let mut parts = Vec::new();
    if col.key.get_ref().0.is_empty() {
        c.err(
            kspan.clone(),
            &kfield,
            "a shard key needs at least one field",
        );
    }
    for (k, v) in &col.key.get_ref().0 {
        if k.is_empty() || k.starts_with('$') {
            c.err(
                kspan.clone(),
                &kfield,
                format!("invalid field name \"{k}\""),
            );
            continue;
        }
        match v {
            toml::Value::String(s) if s == "hashed" => parts.push((k.clone(), KeyPart::Hashed)),
            toml::Value::Integer(1) => parts.push((k.clone(), KeyPart::Ascending)),
            toml::Value::Integer(-1) => c.err_help(
                kspan.clone(),
                &format!("{kfield}.{k}"),
                "descending (-1) fields are not allowed in a shard key",
                "use 1 (ascending) or \"hashed\"",
            ),
            other => c.err_help(
                kspan.clone(),
                &format!("{kfield}.{k}"),
                format!("{other} is not a shard key value"),
                "use 1 (ascending) or \"hashed\"",
            ),
        }
    }
    let hashed: Vec<&str> = parts
        .iter()
        .filter(|(_, p)| *p == KeyPart::Hashed)
        .map(|(f, _)| f.as_str())
        .collect();
    if hashed.len() > 1 {
        c.err_help(
            kspan.clone(),
            &kfield,
            format!(
                "{} hashed fields ({}); a shard key may hold at most one",
                hashed.len(),
                hashed.join(", ")
            ),
            "keep one \"hashed\" field and make the others 1",
        );
    }
    let unique = col.unique.as_ref().map(|u| *u.get_ref()).unwrap_or(false);
    if unique && !hashed.is_empty() {
        let span = col.unique.as_ref().map(|u| u.span()).unwrap_or(kspan);
        c.err_help(
            span,
            &format!("{field}.unique"),
            "hashed shard keys cannot be declared unique",
            "drop `unique`, or enforce uniqueness with a separate (non-hashed) unique index",
        );
    }
    if c.errors.len() > before {
        return None;
    }
    Some(ShardedCollection {
        database: db.clone(),
        name: name.clone(),
        key: ShardKey(parts),
        unique,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<MongoShardedSpec, TopologyErrors> {
        parse(Source::from_text("m.toml", text, ".".into()))
    }

    const BASE: &str = "kind = \"mongo-sharded\"
[config_servers]
name = \"cfg\"
members = [\"127.0.0.1:1\", \"127.0.0.1:2\", \"127.0.0.1:3\"]
[[shards]]
name = \"s1\"
members = [\"127.0.0.1:11\", \"127.0.0.1:12\", \"127.0.0.1:13\"]
[mongos]
hosts = [\"127.0.0.1:20\"]
";

    fn with(extra: &str) -> String {
        format!("{BASE}{extra}")
    }

    /// The first error's text.
    fn err(text: &str) -> String {
        parse_str(text).unwrap_err().to_string()
    }

    #[test]
    fn default_layout_matches_the_seed() {
        let t = crate::topology::builtin("mongo-sharded").unwrap();
        let crate::topology::Topology::MongoSharded(s) = t else {
            panic!("wrong kind")
        };
        assert_eq!(s.config.name, "cfg");
        assert_eq!(
            s.config.addrs(),
            ["127.0.0.1:27101", "127.0.0.1:27102", "127.0.0.1:27103"]
        );
        let shards: Vec<(String, Vec<String>)> = s
            .shards
            .iter()
            .map(|x| (x.name.clone(), x.addrs()))
            .collect();
        assert_eq!(
            shards,
            [
                (
                    "shard1".to_string(),
                    (27201..=27203)
                        .map(|p| format!("127.0.0.1:{p}"))
                        .collect::<Vec<_>>()
                ),
                (
                    "shard2".to_string(),
                    (27301..=27303).map(|p| format!("127.0.0.1:{p}")).collect()
                )
            ]
        );
        assert_eq!(s.mongos_addrs(), ["127.0.0.1:27017"]);
        assert_eq!(s.chunk_size_mb, Some(64));
        assert_eq!(s.balancer, Some(true));
        let w = s.balancer_window.unwrap().unwrap();
        assert_eq!(w.to_string(), "02:00-06:00");
        assert_eq!(s.collections.len(), 1);
        let c = &s.collections[0];
        assert_eq!(c.ns(), "credibility_prod.analyses");
        assert_eq!(c.key.to_string(), "{ createdAt: \"hashed\", userId: 1 }");
        assert_eq!(c.key.index_name(), "createdAt_hashed_userId_1");
        assert!(!c.unique);
        assert_eq!(
            s.config.seed_list(),
            "cfg/127.0.0.1:27101,127.0.0.1:27102,127.0.0.1:27103"
        );
        assert_eq!(s.config.majority(), 2);
    }

    #[test]
    fn key_order_is_kept_and_compared() {
        let s = parse_str(&with(
            "[[collections]]\ndatabase = \"d\"\nname = \"c\"\nkey = { zeta = 1, alpha = \"hashed\", mid = 1 }\n",
        ))
        .unwrap();
        let k = &s.collections[0].key;
        let fields: Vec<&str> = k.0.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["zeta", "alpha", "mid"]);
        assert!(k.matches(&bson::doc! {"zeta": 1i64, "alpha": "hashed", "mid": 1.0}));
        assert!(!k.matches(&bson::doc! {"alpha": "hashed", "zeta": 1, "mid": 1}));
        assert!(!k.matches(&bson::doc! {"zeta": 1, "alpha": 1, "mid": 1}));
    }

    #[test]
    fn members_with_options() {
        let s = parse_str(&BASE.replace(
            "members = [\"127.0.0.1:11\", \"127.0.0.1:12\", \"127.0.0.1:13\"]",
            "members = [\"127.0.0.1:11\", { host = \"127.0.0.1:12\", priority = 2.5 }, { host = \"127.0.0.1:13\", hidden = true }, { host = \"127.0.0.1:14\", arbiter = true }, { host = \"127.0.0.1:15\", votes = 0 }]",
        ))
        .unwrap();
        let m = &s.shards[0].members;
        assert_eq!(m[1].priority, 2.5);
        assert!(m[2].hidden && m[2].priority == 0.0);
        assert!(m[3].arbiter && m[3].priority == 0.0 && m[3].votes == 1);
        assert_eq!(m[4].votes, 0);
        assert_eq!(s.shards[0].voting(), 4);
        assert_eq!(s.shards[0].majority(), 3);
        // hidden members and arbiters are not in hello.hosts: not in the seed list
        assert_eq!(
            s.shards[0].seed_list(),
            "s1/127.0.0.1:11,127.0.0.1:12,127.0.0.1:15"
        );
    }

    #[test]
    fn any_number_of_shards_routers_and_collections() {
        let mut text = BASE.replace(
            "hosts = [\"127.0.0.1:20\"]",
            "hosts = [\"127.0.0.1:20\", \"127.0.0.1:21\", \"127.0.0.1:22\"]",
        );
        for i in 2..=5 {
            text.push_str(&format!(
                "[[shards]]\nname = \"s{i}\"\nmembers = [\"127.0.0.1:{}\"]\n",
                100 + i
            ));
        }
        for i in 0..4 {
            text.push_str(&format!(
                "[[collections]]\ndatabase = \"d\"\nname = \"c{i}\"\nkey = {{ k = 1 }}\nunique = true\n"
            ));
        }
        let s = parse_str(&text).unwrap();
        assert_eq!(s.shards.len(), 5);
        assert_eq!(s.mongos.len(), 3);
        assert_eq!(s.collections.len(), 4);
        assert!(s.collections[3].unique);
        assert_eq!(s.databases(), ["d"]);
    }

    #[test]
    fn config_name_must_differ_from_every_shard() {
        let e = err(&BASE.replace("name = \"s1\"", "name = \"cfg\""));
        assert!(
            e.contains("m.toml:6:8: field `shards[0].name`: \"cfg\" is also the config server replica set's name"),
            "{e}"
        );
        let e = err(&with(
            "[[shards]]\nname = \"s1\"\nmembers = [\"127.0.0.1:31\"]\n",
        ));
        assert!(
            e.contains("field `shards[1].name`: shard \"s1\" is declared twice"),
            "{e}"
        );
        let e = err(&BASE.replace("name = \"s1\"", "name = \"config\""));
        assert!(e.contains("cannot be named \"config\""), "{e}");
    }

    #[test]
    fn localhost_all_or_none() {
        let e = err(&BASE.replace("\"127.0.0.1:12\"", "\"db2.example.com:12\""));
        assert!(
            e.contains("m.toml:7:28: field `shards[0].members[1]`: mixes localhost and other host names (db2.example.com:12 here, 127.0.0.1:1 at config_servers.members[0])"),
            "{e}"
        );
        // all remote is fine
        let remote = BASE.replace("127.0.0.1", "db.example.com");
        parse_str(&remote).unwrap();
        // localhost and 127.x count as the same kind
        parse_str(&BASE.replace("\"127.0.0.1:20\"", "\"localhost:20\"")).unwrap();
    }

    #[test]
    fn key_rules() {
        let col = |key: &str, extra: &str| {
            err(&with(&format!(
                "[[collections]]\ndatabase = \"d\"\nname = \"c\"\nkey = {key}\n{extra}"
            )))
        };
        let e = col("{ a = \"hashed\", b = \"hashed\" }", "");
        assert!(
            e.contains("m.toml:13:7: field `collections[0].key`: 2 hashed fields (a, b); a shard key may hold at most one"),
            "{e}"
        );
        let e = col("{ a = \"hashed\", b = 1 }", "unique = true\n");
        assert!(
            e.contains("m.toml:14:10: field `collections[0].unique`: hashed shard keys cannot be declared unique"),
            "{e}"
        );
        let e = col("{ a = -1 }", "");
        assert!(
            e.contains("field `collections[0].key.a`: descending (-1)"),
            "{e}"
        );
        let e = col("{ a = \"text\" }", "");
        assert!(
            e.contains("field `collections[0].key.a`: \"text\" is not a shard key value"),
            "{e}"
        );
        let e = col("{}", "");
        assert!(e.contains("needs at least one field"), "{e}");
        let e = err(&with(
            "[[collections]]\ndatabase = \"admin\"\nname = \"c\"\nkey = { a = 1 }\n",
        ));
        assert!(e.contains("field `collections[0].database`"), "{e}");
        let e = err(&with(
            "[[collections]]\ndatabase = \"d\"\nname = \"system.x\"\nkey = { a = 1 }\n",
        ));
        assert!(e.contains("system collections cannot be sharded"), "{e}");
        let e = err(&with(
            "[[collections]]\ndatabase = \"d\"\nname = \"c\"\nkey = { a = 1 }\n[[collections]]\ndatabase = \"d\"\nname = \"c\"\nkey = { b = 1 }\n",
        ));
        assert!(e.contains("d.c is declared twice"), "{e}");
    }

    #[test]
    fn chunk_size_and_window() {
        for bad in ["0", "1025", "-5"] {
            let e = err(&with(&format!("[sharding]\nchunk_size_mb = {bad}\n")));
            assert!(
                e.contains("m.toml:11:17: field `sharding.chunk_size_mb`: must be 1-1024 (MB)"),
                "{e}"
            );
        }
        for ok in ["1", "1024"] {
            parse_str(&with(&format!("[sharding]\nchunk_size_mb = {ok}\n"))).unwrap();
        }
        let e = err(&with(
            "[sharding]\nbalancer_window = { start = \"02:00\", stop = \"02:00\" }\n",
        ));
        assert!(
            e.contains(
                "m.toml:11:19: field `sharding.balancer_window`: start and stop are both 02:00"
            ),
            "{e}"
        );
        for bad in ["24:00", "2:00", "02:60", "0200", "ab:cd"] {
            let e = err(&with(&format!(
                "[sharding]\nbalancer_window = {{ start = \"{bad}\", stop = \"06:00\" }}\n"
            )));
            assert!(
                e.contains(&format!(
                    "field `sharding.balancer_window.start`: \"{bad}\" is not a time HH:MM"
                )),
                "{e}"
            );
        }
        let e = err(&with(
            "[sharding]\nbalancer_window = { start = \"02:00\" }\n",
        ));
        assert!(
            e.contains("field `sharding.balancer_window.stop`: missing"),
            "{e}"
        );
        let s = parse_str(&with(
            "[sharding]\nbalancer_window = { start = \"22:30\", stop = \"04:00\" }\n",
        ))
        .unwrap();
        let w = s.balancer_window.unwrap().unwrap();
        assert!(w.crosses_midnight());
        assert!(w.contains(TimeOfDay::parse("23:00").unwrap()));
        assert!(w.contains(TimeOfDay::parse("03:59").unwrap()));
        assert!(!w.contains(TimeOfDay::parse("04:00").unwrap()));
        assert!(!w.contains(TimeOfDay::parse("12:00").unwrap()));
        let s = parse_str(&with("[sharding]\nbalancer_window = \"none\"\n")).unwrap();
        assert_eq!(s.balancer_window, Some(None));
        let s = parse_str(BASE).unwrap();
        assert_eq!(s.balancer_window, None);
        assert_eq!(s.chunk_size_mb, None);
    }

    #[test]
    fn member_rules() {
        let shard = |members: &str| {
            err(&BASE.replace(
                "members = [\"127.0.0.1:11\", \"127.0.0.1:12\", \"127.0.0.1:13\"]",
                &format!("members = {members}"),
            ))
        };
        let e =
            shard("[\"127.0.0.1:11\", { host = \"127.0.0.1:12\", hidden = true, priority = 1 }]");
        assert!(
            e.contains("field `shards[0].members[1]`: a hidden member must have priority 0"),
            "{e}"
        );
        let e =
            shard("[\"127.0.0.1:11\", { host = \"127.0.0.1:12\", arbiter = true, priority = 1 }]");
        assert!(e.contains("an arbiter must have priority 0"), "{e}");
        let e = shard("[\"127.0.0.1:11\", { host = \"127.0.0.1:12\", votes = 0, priority = 1 }]");
        assert!(
            e.contains("non-voting member (votes = 0) must have priority 0"),
            "{e}"
        );
        let e = shard("[\"127.0.0.1:11\", { host = \"127.0.0.1:12\", priority = 1001 }]");
        assert!(
            e.contains("field `shards[0].members[1].priority`: must be a number from 0 to 1000"),
            "{e}"
        );
        let e = shard("[\"127.0.0.1:11\", { host = \"127.0.0.1:12\", votes = 2 }]");
        assert!(
            e.contains("field `shards[0].members[1].votes`: must be 0 or 1"),
            "{e}"
        );
        let e = shard("[\"127.0.0.1:11\", { host = \"127.0.0.1:12\", tags = 1 }]");
        assert!(e.contains("unknown member option"), "{e}");
        let e = shard("[{ host = \"127.0.0.1:11\", priority = 0 }, { host = \"127.0.0.1:12\", arbiter = true }]");
        assert!(e.contains("no member can become primary"), "{e}");
        let e = shard("[]");
        assert!(
            e.contains("field `shards[0].members`: must list at least one member"),
            "{e}"
        );
        let eight: Vec<String> = (0..8)
            .map(|i| format!("\"127.0.0.1:{}\"", 40 + i))
            .collect();
        let e = shard(&format!("[{}]", eight.join(",")));
        assert!(
            e.contains("8 voting members; a replica set needs 1 to 7"),
            "{e}"
        );
        let e = shard("[\"127.0.0.1\"]");
        assert!(e.contains("has no port"), "{e}");
        let e = shard("[\"127.0.0.1:0\"]");
        assert!(e.contains("bad port"), "{e}");
        let e = err(&BASE.replace(
            "members = [\"127.0.0.1:1\", \"127.0.0.1:2\", \"127.0.0.1:3\"]",
            "members = [\"127.0.0.1:1\", \"127.0.0.1:2\", { host = \"127.0.0.1:3\", arbiter = true }]",
        ));
        assert!(
            e.contains("field `config_servers.members[2]`: arbiters are not allowed in the config server replica set"),
            "{e}"
        );
        let e = err(&BASE.replace("\"127.0.0.1:12\"", "\"127.0.0.1:1\""));
        assert!(
            e.contains("127.0.0.1:1 is declared twice (also config_servers.members[0])"),
            "{e}"
        );
    }

    #[test]
    fn auth_takes_a_password_source_never_a_password() {
        let s = parse_str(&with(
            "[auth]\nusername = \"admin\"\npassword_env = \"MONGO_PW\"\n",
        ))
        .unwrap();
        let a = s.auth.unwrap();
        assert_eq!(a.username, "admin");
        assert_eq!(a.source, "admin");
        assert_eq!(a.password.password_env.as_deref(), Some("MONGO_PW"));
        let e = err(&with("[auth]\nusername = \"admin\"\n"));
        assert!(e.contains("field `auth`: needs a password source"), "{e}");
        let e = err(&with("[auth]\nusername = \"admin\"\npassword = \"x\"\n"));
        assert!(e.contains("field `password`: unknown field"), "{e}");
    }

    #[test]
    fn missing_sections_and_unknown_fields() {
        let e = err("kind = \"mongo-sharded\"\n");
        assert!(
            e.contains("field `config_servers`: missing [config_servers] section"),
            "{e}"
        );
        let e = err(&BASE.replace("[mongos]\nhosts = [\"127.0.0.1:20\"]\n", ""));
        assert!(
            e.contains("field `mongos`: missing [mongos] section"),
            "{e}"
        );
        let e = err(&with("[sharding]\nchunksize = 64\n"));
        assert!(
            e.contains("m.toml:11:1: field `chunksize`: unknown field"),
            "{e}"
        );
        let e = err(&with("[mongod]\nextra_args = [\"--port=1\"]\n"));
        assert!(
            e.contains("field `mongod.extra_args[0]`: --port is managed by datatier"),
            "{e}"
        );
        let e = err(&with("[sharding]\nbalancer = \"yes\"\n"));
        assert!(e.contains("field `balancer`"), "{e}");
    }
}
