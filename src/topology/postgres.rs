//! `kind = "postgres"`: a primary, streaming replicas, and PgBouncer in front.
//!
//! ```toml
//! name = "postgres"
//! kind = "postgres"
//! provider = "local"                 # or "existing"
//!
//! [postgres]
//! host = "127.0.0.1"
//! port = 15432                       # the primary; replicas take the next ports
//! replicas = 2
//! # nodes = ["10.0.0.1:5432", "10.0.0.2:5432"]   # instead: explicit list, primary first
//! max_connections = 100
//!
//! [database]                         # created on the primary, owned by `owner`
//! name = "app"
//! owner = "app"                      # password_env / password_file, else generated
//!
//! [replication]
//! user = "replicator"                # password_env / password_file, else generated
//!
//! [admin]                            # the superuser datatier connects as
//! user = "postgres"
//!
//! [config]                           # postgresql.conf settings for every node
//! shared_buffers = "128MB"
//!
//! [pgbouncer]                        # optional
//! port = 16432
//! pool_mode = "transaction"
//! [pgbouncer.databases]              # client-side name -> primary | replicas
//! app = "primary"
//! app_ro = "replicas"
//!
//! [checks]
//! lag_warn_seconds = 1.0
//! ```
//!
//! The first node is the *declared* primary. After a switchover the state
//! dir records which node is primary now, and `init` keeps it that way:
//! the file describes the layout, not who leads it at this moment.

use super::{default_name, parse_provider, Kind, Meta, Source, TopologyError, TopologyErrors};
use crate::provider::ProviderKind;
use crate::secret::SecretSource;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use toml::Spanned;

/// One Postgres server, by address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PgNode {
    pub host: String,
    pub port: u16,
}

impl PgNode {
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The physical replication slot this node uses while it is a replica
    /// (`replica_127_0_0_1_15433`); also its `application_name` in
    /// `pg_stat_replication`, so both tell which node is which.
    pub fn slot_name(&self) -> String {
        let host: String = self
            .host
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        let mut name = format!("{SLOT_PREFIX}{host}_{}", self.port);
        if name.len() > 63 {
            // Slot names are at most 63 bytes; keep the tail (port) readable.
            let keep = name.split_off(name.len() - 40);
            name = format!("{SLOT_PREFIX}{}", keep.trim_start_matches('_'));
        }
        name
    }
}

/// Every slot datatier creates starts with this, so it can tell its own
/// slots from the ones other tools made.
pub const SLOT_PREFIX: &str = "replica_";

impl fmt::Display for PgNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.addr())
    }
}

/// Where a PgBouncer database sends its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteTarget {
    /// The current primary: read-write.
    Primary,
    /// The replicas, round robin: read-only.
    Replicas,
}

impl fmt::Display for RouteTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RouteTarget::Primary => "primary",
            RouteTarget::Replicas => "replicas",
        })
    }
}

/// One `[databases]` entry of PgBouncer: clients ask for `name`, PgBouncer
/// connects to the declared database on `target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub name: String,
    pub target: RouteTarget,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolMode {
    Session,
    Transaction,
    Statement,
}

impl PoolMode {
    pub fn as_str(self) -> &'static str {
        match self {
            PoolMode::Session => "session",
            PoolMode::Transaction => "transaction",
            PoolMode::Statement => "statement",
        }
    }
}

/// The PgBouncer in front of the nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct PgBouncerSpec {
    pub host: String,
    pub port: u16,
    pub pool_mode: PoolMode,
    pub max_client_conn: u32,
    pub default_pool_size: u32,
    pub min_pool_size: u32,
    pub reserve_pool_size: u32,
    pub routes: Vec<Route>,
    /// `[pgbouncer.config]`: further `[pgbouncer]` settings, in file order.
    pub config: Vec<(String, String)>,
    /// Provider `existing`: the ini file datatier may rewrite (the auth
    /// file goes next to it). Without it, an existing PgBouncer is only
    /// verified.
    pub config_file: Option<PathBuf>,
}

impl PgBouncerSpec {
    pub fn addr(&self) -> String {
        PgNode {
            host: self.host.clone(),
            port: self.port,
        }
        .addr()
    }
}

/// A role with a password from the topology (or generated).
#[derive(Debug, Clone, PartialEq)]
pub struct RoleSpec {
    pub user: String,
    pub password: SecretSource,
}

/// Thresholds for `status`.
#[derive(Debug, Clone, PartialEq)]
pub struct PgChecks {
    pub lag_warn_seconds: f64,
    pub lag_crit_seconds: f64,
    pub lag_warn_bytes: u64,
    pub lag_crit_bytes: u64,
    pub connections_warn_pct: f64,
    pub connections_crit_pct: f64,
    pub pool_waiting_warn: u64,
    pub pool_waiting_crit: u64,
    pub pool_maxwait_warn_seconds: f64,
    pub pool_maxwait_crit_seconds: f64,
}

impl Default for PgChecks {
    fn default() -> Self {
        PgChecks {
            lag_warn_seconds: 1.0,
            lag_crit_seconds: 10.0,
            lag_warn_bytes: 16 << 20,
            lag_crit_bytes: 256 << 20,
            connections_warn_pct: 80.0,
            connections_crit_pct: 95.0,
            pool_waiting_warn: 10,
            pool_waiting_crit: 100,
            pool_maxwait_warn_seconds: 1.0,
            pool_maxwait_crit_seconds: 5.0,
        }
    }
}

/// A validated Postgres topology.
#[derive(Debug, Clone)]
pub struct PostgresSpec {
    pub meta: Meta,
    /// The declared primary first, then the replicas.
    pub nodes: Vec<PgNode>,
    pub database: String,
    pub owner: RoleSpec,
    pub replication: RoleSpec,
    pub admin: RoleSpec,
    pub max_connections: u32,
    pub locale: String,
    /// postgresql.conf settings passed through, in file order.
    pub config: Vec<(String, String)>,
    pub pgbouncer: Option<PgBouncerSpec>,
    pub checks: PgChecks,
    /// `[binaries] bin_dir`: postgres, initdb, pg_basebackup, pg_rewind, pg_controldata.
    pub bin_dir: Option<PathBuf>,
    /// `[binaries] pgbouncer`.
    pub pgbouncer_bin: Option<PathBuf>,
}

impl PostgresSpec {
    pub fn declared_primary(&self) -> &PgNode {
        &self.nodes[0]
    }
    pub fn replicas(&self) -> usize {
        self.nodes.len() - 1
    }
    pub fn node(&self, addr: &str) -> Option<&PgNode> {
        self.nodes.iter().find(|n| n.addr() == addr)
    }
    /// `fsync = off` in `[config]`: the user gave up durability (test
    /// topologies), so initdb and pg_basebackup may skip their syncs too.
    pub fn fsync_off(&self) -> bool {
        self.config
            .iter()
            .any(|(k, v)| k == "fsync" && matches!(v.as_str(), "off" | "false" | "0" | "no"))
    }
}

/// Settings datatier writes itself; users set them through the topology.
const MANAGED_CONFIG: &[(&str, &str)] = &[
    ("port", "derived from [postgres] port / nodes"),
    ("listen_addresses", "derived from [postgres] host / nodes"),
    ("unix_socket_directories", "kept short under the state dir"),
    ("data_directory", "the state dir"),
    ("config_file", "the state dir"),
    ("hba_file", "datatier writes pg_hba.conf"),
    ("ident_file", "the state dir"),
    ("include", "datatier writes the configuration"),
    ("include_dir", "datatier writes the configuration"),
    ("include_if_exists", "datatier writes the configuration"),
    ("hot_standby", "always on: replicas serve reads"),
    (
        "primary_conninfo",
        "set by datatier to follow the current primary",
    ),
    (
        "primary_slot_name",
        "one slot per replica, managed by datatier",
    ),
    ("max_connections", "use [postgres] max_connections"),
    ("password_encryption", "always scram-sha-256"),
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    name: Option<Spanned<String>>,
    #[allow(dead_code)]
    kind: Spanned<String>,
    provider: Option<Spanned<String>>,
    postgres: Option<Spanned<PostgresSection>>,
    #[serde(default)]
    database: DatabaseSection,
    #[serde(default)]
    replication: RoleSection,
    #[serde(default)]
    admin: RoleSection,
    #[serde(default)]
    config: BTreeMap<String, Spanned<toml::Value>>,
    pgbouncer: Option<Spanned<BouncerSection>>,
    #[serde(default)]
    checks: ChecksSection,
    #[serde(default)]
    binaries: Binaries,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PostgresSection {
    host: Option<Spanned<String>>,
    port: Option<Spanned<i64>>,
    replicas: Option<Spanned<i64>>,
    nodes: Option<Spanned<Vec<Spanned<String>>>>,
    max_connections: Option<Spanned<i64>>,
    locale: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DatabaseSection {
    name: Option<Spanned<String>>,
    owner: Option<Spanned<String>>,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleSection {
    user: Option<Spanned<String>>,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BouncerSection {
    host: Option<Spanned<String>>,
    port: Option<Spanned<i64>>,
    pool_mode: Option<Spanned<String>>,
    max_client_conn: Option<Spanned<i64>>,
    default_pool_size: Option<Spanned<i64>>,
    min_pool_size: Option<Spanned<i64>>,
    reserve_pool_size: Option<Spanned<i64>>,
    databases: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
    #[serde(default)]
    config: BTreeMap<String, Spanned<toml::Value>>,
    config_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChecksSection {
    lag_warn_seconds: Option<Spanned<f64>>,
    lag_crit_seconds: Option<Spanned<f64>>,
    lag_warn_bytes: Option<Spanned<i64>>,
    lag_crit_bytes: Option<Spanned<i64>>,
    connections_warn_pct: Option<Spanned<f64>>,
    connections_crit_pct: Option<Spanned<f64>>,
    pool_waiting_warn: Option<Spanned<i64>>,
    pool_waiting_crit: Option<Spanned<i64>>,
    pool_maxwait_warn_seconds: Option<Spanned<f64>>,
    pool_maxwait_crit_seconds: Option<Spanned<f64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Binaries {
    bin_dir: Option<PathBuf>,
    pgbouncer: Option<PathBuf>,
}

/// Collects errors while validating one file.
struct V<'a> {
    source: &'a Source,
    errors: Vec<TopologyError>,
}

impl V<'_> {
    fn err(&mut self, span: Range<usize>, field: &str, msg: impl Into<String>) {
        self.errors.push(self.source.error(span, field, msg));
    }
    fn err_help(&mut self, span: Range<usize>, field: &str, msg: impl Into<String>, help: &str) {
        self.errors
            .push(self.source.error(span, field, msg).with_help(help));
    }

    fn int(
        &mut self,
        v: &Option<Spanned<i64>>,
        field: &str,
        range: std::ops::RangeInclusive<i64>,
        default: i64,
    ) -> i64 {
        match v {
            None => default,
            Some(x) if !range.contains(x.get_ref()) => {
                self.err(
                    x.span(),
                    field,
                    format!(
                        "must be between {} and {}, got {}",
                        range.start(),
                        range.end(),
                        x.get_ref()
                    ),
                );
                default
            }
            Some(x) => *x.get_ref(),
        }
    }

    fn float(&mut self, v: &Option<Spanned<f64>>, field: &str, max: f64, default: f64) -> f64 {
        match v {
            None => default,
            Some(x) if !(0.0..=max).contains(x.get_ref()) => {
                self.err(
                    x.span(),
                    field,
                    format!("must be between 0 and {max}, got {}", x.get_ref()),
                );
                default
            }
            Some(x) => *x.get_ref(),
        }
    }

    /// A SQL identifier datatier can use unquoted in messages and safely
    /// quoted in statements.
    fn ident(&mut self, v: &Option<Spanned<String>>, field: &str, default: &str) -> String {
        match v {
            None => default.to_string(),
            Some(x) => {
                let s = x.get_ref();
                let ok = !s.is_empty()
                    && s.len() <= 63
                    && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
                    && s.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
                if !ok {
                    self.err_help(
                        x.span(),
                        field,
                        format!("\"{s}\" is not a plain SQL name"),
                        "use 1-63 lowercase letters, digits and '_', starting with a letter or '_'",
                    );
                }
                s.clone()
            }
        }
    }

    fn host(&mut self, h: &Spanned<String>, field: &str) -> String {
        let s = h.get_ref();
        let ok = !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:_".contains(c));
        if !ok {
            self.err(
                h.span(),
                field,
                format!("\"{s}\" is not a host name or IP address"),
            );
        }
        s.clone()
    }
}

fn config_value(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(if *b { "on" } else { "off" }.into()),
        _ => None,
    }
}

fn valid_setting_name(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

/// Parse and validate; every problem is collected.
pub fn parse(source: Source) -> Result<PostgresSpec, TopologyErrors> {
    let file: File = toml::from_str(&source.text).map_err(|e| source.from_toml_error(&e))?;
    let mut v = V {
        source: &source,
        errors: Vec::new(),
    };
    let provider = parse_provider(&source, file.provider.clone(), &mut v.errors);
    let name = default_name(&source, file.name);

    let Some(pg) = file.postgres else {
        return Err(source
            .error_top("postgres", "missing [postgres] section")
            .with_help("add [postgres] with e.g. `port = 5432` and `replicas = 2`")
            .into());
    };
    let pspan = pg.span();
    let pg = pg.into_inner();

    // Nodes: an explicit list, or host + port + replicas.
    let mut node_spans: Vec<(PgNode, Range<usize>, &'static str)> = Vec::new();
    match &pg.nodes {
        Some(list) => {
            for (field, val) in [
                ("postgres.host", pg.host.as_ref().map(|h| h.span())),
                ("postgres.port", pg.port.as_ref().map(|p| p.span())),
                ("postgres.replicas", pg.replicas.as_ref().map(|r| r.span())),
            ] {
                if let Some(span) = val {
                    v.err_help(
                        span,
                        field,
                        "cannot be combined with `nodes`",
                        "give either `nodes = [\"host:port\", ...]` (primary first) or host/port/replicas",
                    );
                }
            }
            if list.get_ref().is_empty() {
                v.err(
                    list.span(),
                    "postgres.nodes",
                    "must list at least the primary",
                );
            }
            for n in list.get_ref() {
                let s = n.get_ref();
                let parsed = s
                    .rsplit_once(':')
                    .and_then(|(h, p)| Some((h.trim_matches(['[', ']']), p.parse::<u16>().ok()?)));
                match parsed {
                    Some((h, p)) if p > 0 => {
                        let host = v.host(&Spanned::new(n.span(), h.to_string()), "postgres.nodes");
                        node_spans.push((PgNode { host, port: p }, n.span(), "postgres.nodes"));
                    }
                    _ => v.err_help(
                        n.span(),
                        "postgres.nodes",
                        format!("\"{s}\" is not host:port"),
                        "e.g. \"10.0.0.1:5432\"",
                    ),
                }
            }
        }
        None => {
            let host = match &pg.host {
                Some(h) => v.host(h, "postgres.host"),
                None => "127.0.0.1".to_string(),
            };
            let replicas = v.int(&pg.replicas, "postgres.replicas", 0..=16, 0) as u16;
            let port_span = pg.port.as_ref().map(|p| p.span()).unwrap_or(pspan.clone());
            let port = match &pg.port {
                None => 5432,
                Some(p) if !(1..=65535).contains(p.get_ref()) => {
                    v.err(
                        p.span(),
                        "postgres.port",
                        format!("port {} is out of range 1-65535", p.get_ref()),
                    );
                    5432
                }
                Some(p) => *p.get_ref(),
            };
            if port + replicas as i64 > 65535 {
                v.err(
                    port_span.clone(),
                    "postgres.port",
                    format!(
                        "the replicas would need ports up to {}, beyond 65535",
                        port + replicas as i64
                    ),
                );
            } else {
                for i in 0..=replicas {
                    node_spans.push((
                        PgNode {
                            host: host.clone(),
                            port: port as u16 + i,
                        },
                        port_span.clone(),
                        "postgres.port",
                    ));
                }
            }
        }
    }
    for (i, (n, span, field)) in node_spans.iter().enumerate() {
        if let Some((o, _, _)) = node_spans[..i].iter().find(|(o, _, _)| o == n) {
            v.err(span.clone(), field, format!("{} is listed twice", o.addr()));
        }
    }
    let max_connections = v.int(
        &pg.max_connections,
        "postgres.max_connections",
        5..=10000,
        100,
    ) as u32;
    let locale = match &pg.locale {
        None => "C".to_string(),
        Some(l) => {
            if l.get_ref().is_empty()
                || !l
                    .get_ref()
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c))
            {
                v.err(
                    l.span(),
                    "postgres.locale",
                    format!("\"{}\" is not a locale name", l.get_ref()),
                );
            }
            l.get_ref().clone()
        }
    };

    // Roles and database.
    let database = v.ident(&file.database.name, "database.name", "app");
    let owner = RoleSpec {
        user: v.ident(&file.database.owner, "database.owner", &database),
        password: SecretSource {
            password_env: file.database.password_env.clone(),
            password_file: file.database.password_file.clone(),
        },
    };
    let replication = RoleSpec {
        user: v.ident(&file.replication.user, "replication.user", "replicator"),
        password: SecretSource {
            password_env: file.replication.password_env.clone(),
            password_file: file.replication.password_file.clone(),
        },
    };
    let admin = RoleSpec {
        user: v.ident(&file.admin.user, "admin.user", "postgres"),
        password: SecretSource {
            password_env: file.admin.password_env.clone(),
            password_file: file.admin.password_file.clone(),
        },
    };
    for (role, field, span) in [
        (
            &owner,
            "database.owner",
            file.database.owner.as_ref().map(|o| o.span()),
        ),
        (
            &replication,
            "replication.user",
            file.replication.user.as_ref().map(|o| o.span()),
        ),
    ] {
        if role.user == admin.user {
            v.err_help(
                span.unwrap_or(0..0),
                field,
                format!("\"{}\" is also the admin (superuser) role", role.user),
                "use a separate role; datatier manages its password and privileges",
            );
        }
    }
    if owner.user == replication.user {
        v.err(
            file.replication
                .user
                .as_ref()
                .map(|o| o.span())
                .unwrap_or(0..0),
            "replication.user",
            format!("\"{}\" is also the database owner", owner.user),
        );
    }
    for (src, field) in [
        (&owner.password, "database"),
        (&replication.password, "replication"),
        (&admin.password, "admin"),
    ] {
        if src.password_env.is_some() && src.password_file.is_some() {
            v.err(
                0..0,
                &format!("{field}.password_env"),
                "give either password_env or password_file, not both",
            );
        }
    }
    if provider == ProviderKind::Existing && !admin.password.is_set() {
        v.err_help(
            file.provider.as_ref().map(|p| p.span()).unwrap_or(0..0),
            "admin",
            "provider \"existing\" needs the superuser's password to reach the nodes",
            "add [admin] with password_env = \"VAR\" or password_file = \"path\" (and `user` if it is not postgres)",
        );
    }

    // postgresql.conf passthrough.
    let mut config = Vec::new();
    for (k, val) in &file.config {
        let field = format!("config.{k}");
        if !valid_setting_name(k) {
            v.err(val.span(), &field, "is not a setting name");
            continue;
        }
        if let Some((_, why)) = MANAGED_CONFIG
            .iter()
            .find(|(m, _)| m.eq_ignore_ascii_case(k))
        {
            v.err_help(
                val.span(),
                &field,
                format!("is managed by datatier ({why})"),
                "remove it from [config]",
            );
            continue;
        }
        let Some(s) = config_value(val.get_ref()) else {
            v.err(val.span(), &field, "must be a string, number or boolean");
            continue;
        };
        let lower = k.to_ascii_lowercase();
        if lower == "wal_level" && !matches!(s.as_str(), "replica" | "logical") {
            v.err_help(
                val.span(),
                &field,
                format!("\"{s}\" cannot feed streaming replicas"),
                "use \"replica\" (the default) or \"logical\"",
            );
        }
        if matches!(lower.as_str(), "max_wal_senders" | "max_replication_slots") {
            let need = node_spans.len() as i64 - 1;
            if s.parse::<i64>().is_ok_and(|n| n < need) {
                v.err(
                    val.span(),
                    &field,
                    format!("must be at least {need} (one per replica)"),
                );
            }
        }
        config.push((lower, s));
    }

    // PgBouncer.
    let nodes: Vec<PgNode> = node_spans.iter().map(|(n, _, _)| n.clone()).collect();
    let replicas = nodes.len().saturating_sub(1);
    let pgbouncer = match file.pgbouncer {
        None => None,
        Some(b) => {
            let bspan = b.span();
            let b = b.into_inner();
            let host = match &b.host {
                Some(h) => v.host(h, "pgbouncer.host"),
                None => nodes
                    .first()
                    .map(|n| n.host.clone())
                    .unwrap_or_else(|| "127.0.0.1".into()),
            };
            let port = v.int(&b.port, "pgbouncer.port", 1..=65535, 6432) as u16;
            let port_span = b.port.as_ref().map(|p| p.span()).unwrap_or(bspan.clone());
            if let Some(n) = nodes.iter().find(|n| n.host == host && n.port == port) {
                v.err(
                    port_span,
                    "pgbouncer.port",
                    format!("{} is also a Postgres node", n.addr()),
                );
            }
            let pool_mode = match &b.pool_mode {
                None => PoolMode::Transaction,
                Some(m) => match m.get_ref().as_str() {
                    "session" => PoolMode::Session,
                    "transaction" => PoolMode::Transaction,
                    "statement" => PoolMode::Statement,
                    other => {
                        v.err_help(
                            m.span(),
                            "pgbouncer.pool_mode",
                            format!("unknown pool mode \"{other}\""),
                            "pool modes: session, transaction, statement",
                        );
                        PoolMode::Transaction
                    }
                },
            };
            let max_client_conn = v.int(
                &b.max_client_conn,
                "pgbouncer.max_client_conn",
                1..=1_000_000,
                1000,
            ) as u32;
            let default_pool_size = v.int(
                &b.default_pool_size,
                "pgbouncer.default_pool_size",
                1..=10_000,
                20,
            ) as u32;
            let min_pool_size =
                v.int(&b.min_pool_size, "pgbouncer.min_pool_size", 0..=10_000, 0) as u32;
            let reserve_pool_size = v.int(
                &b.reserve_pool_size,
                "pgbouncer.reserve_pool_size",
                0..=10_000,
                0,
            ) as u32;
            if min_pool_size > default_pool_size {
                v.err(
                    b.min_pool_size.as_ref().map(|m| m.span()).unwrap_or(0..0),
                    "pgbouncer.min_pool_size",
                    format!("{min_pool_size} exceeds default_pool_size {default_pool_size}"),
                );
            }
            let pool_total = (default_pool_size + reserve_pool_size) as u64;
            if pool_total > max_connections as u64 {
                v.err_help(
                    b.default_pool_size.as_ref().map(|m| m.span()).unwrap_or(bspan.clone()),
                    "pgbouncer.default_pool_size",
                    format!(
                        "a pool of {pool_total} server connections cannot fit in max_connections {max_connections}"
                    ),
                    "raise [postgres] max_connections or lower the pool size",
                );
            }
            let routes = match &b.databases {
                None => {
                    let mut r = vec![Route {
                        name: database.clone(),
                        target: RouteTarget::Primary,
                    }];
                    if replicas > 0 {
                        r.push(Route {
                            name: format!("{database}_ro"),
                            target: RouteTarget::Replicas,
                        });
                    }
                    r
                }
                Some(dbs) => {
                    if dbs.get_ref().is_empty() {
                        v.err(
                            dbs.span(),
                            "pgbouncer.databases",
                            "must route at least one database",
                        );
                    }
                    let mut r = Vec::new();
                    for (k, t) in dbs.get_ref() {
                        let field = format!("pgbouncer.databases.{k}");
                        if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                        {
                            v.err(
                                t.span(),
                                &field,
                                format!(
                                    "\"{k}\" is not a plain database name (letters, digits, '_')"
                                ),
                            );
                        }
                        if k == "pgbouncer" {
                            v.err(
                                t.span(),
                                &field,
                                "\"pgbouncer\" is PgBouncer's admin console",
                            );
                        }
                        let target = match t.get_ref().as_str() {
                            "primary" => RouteTarget::Primary,
                            "replicas" => RouteTarget::Replicas,
                            other => {
                                v.err_help(
                                    t.span(),
                                    &field,
                                    format!("unknown target \"{other}\""),
                                    "targets: \"primary\" (read-write) or \"replicas\" (read-only)",
                                );
                                RouteTarget::Primary
                            }
                        };
                        if target == RouteTarget::Replicas && replicas == 0 {
                            v.err_help(
                                t.span(),
                                &field,
                                "routes to the replicas, but the topology has none",
                                "declare [postgres] replicas, or route it to \"primary\"",
                            );
                        }
                        r.push(Route {
                            name: k.clone(),
                            target,
                        });
                    }
                    // Read-write first, as users read them.
                    r.sort_by_key(|r| (r.target != RouteTarget::Primary, r.name.clone()));
                    r
                }
            };
            let mut config = Vec::new();
            for (k, val) in &b.config {
                let field = format!("pgbouncer.config.{k}");
                const MANAGED: &[&str] = &[
                    "listen_addr",
                    "listen_port",
                    "unix_socket_dir",
                    "auth_type",
                    "auth_file",
                    "admin_users",
                    "stats_users",
                    "pool_mode",
                    "max_client_conn",
                    "default_pool_size",
                    "min_pool_size",
                    "reserve_pool_size",
                    "logfile",
                    "pidfile",
                    "user",
                ];
                if !valid_setting_name(k) {
                    v.err(val.span(), &field, "is not a setting name");
                } else if MANAGED.contains(&k.as_str()) {
                    v.err_help(
                        val.span(),
                        &field,
                        "is managed by datatier",
                        "set it in [pgbouncer] itself (pool sizes, port) or leave it to datatier",
                    );
                } else {
                    match config_value(val.get_ref()) {
                        Some(s) if !s.contains('\n') => config.push((k.clone(), s)),
                        _ => v.err(
                            val.span(),
                            &field,
                            "must be a one-line string, number or boolean",
                        ),
                    }
                }
            }
            if b.config_file.is_some() && provider == ProviderKind::Local {
                v.err_help(
                    bspan.clone(),
                    "pgbouncer.config_file",
                    "is for provider \"existing\"",
                    "with provider \"local\" datatier keeps the ini in the state dir",
                );
            }
            Some(PgBouncerSpec {
                host,
                port,
                pool_mode,
                max_client_conn,
                default_pool_size,
                min_pool_size,
                reserve_pool_size,
                routes,
                config,
                config_file: b.config_file.map(|p| {
                    if p.is_absolute() {
                        p
                    } else {
                        source.base.join(p)
                    }
                }),
            })
        }
    };

    // Checks.
    let c = &file.checks;
    let d = PgChecks::default();
    let checks = PgChecks {
        lag_warn_seconds: v.float(
            &c.lag_warn_seconds,
            "checks.lag_warn_seconds",
            86400.0,
            d.lag_warn_seconds,
        ),
        lag_crit_seconds: v.float(
            &c.lag_crit_seconds,
            "checks.lag_crit_seconds",
            86400.0,
            d.lag_crit_seconds,
        ),
        lag_warn_bytes: v.int(
            &c.lag_warn_bytes,
            "checks.lag_warn_bytes",
            0..=i64::MAX,
            d.lag_warn_bytes as i64,
        ) as u64,
        lag_crit_bytes: v.int(
            &c.lag_crit_bytes,
            "checks.lag_crit_bytes",
            0..=i64::MAX,
            d.lag_crit_bytes as i64,
        ) as u64,
        connections_warn_pct: v.float(
            &c.connections_warn_pct,
            "checks.connections_warn_pct",
            100.0,
            d.connections_warn_pct,
        ),
        connections_crit_pct: v.float(
            &c.connections_crit_pct,
            "checks.connections_crit_pct",
            100.0,
            d.connections_crit_pct,
        ),
        pool_waiting_warn: v.int(
            &c.pool_waiting_warn,
            "checks.pool_waiting_warn",
            0..=i64::MAX,
            d.pool_waiting_warn as i64,
        ) as u64,
        pool_waiting_crit: v.int(
            &c.pool_waiting_crit,
            "checks.pool_waiting_crit",
            0..=i64::MAX,
            d.pool_waiting_crit as i64,
        ) as u64,
        pool_maxwait_warn_seconds: v.float(
            &c.pool_maxwait_warn_seconds,
            "checks.pool_maxwait_warn_seconds",
            86400.0,
            d.pool_maxwait_warn_seconds,
        ),
        pool_maxwait_crit_seconds: v.float(
            &c.pool_maxwait_crit_seconds,
            "checks.pool_maxwait_crit_seconds",
            86400.0,
            d.pool_maxwait_crit_seconds,
        ),
    };
    for (warn, crit, wf, wspan) in [
        (
            checks.lag_warn_seconds,
            checks.lag_crit_seconds,
            "checks.lag_warn_seconds",
            c.lag_warn_seconds.as_ref().map(|x| x.span()),
        ),
        (
            checks.lag_warn_bytes as f64,
            checks.lag_crit_bytes as f64,
            "checks.lag_warn_bytes",
            c.lag_warn_bytes.as_ref().map(|x| x.span()),
        ),
        (
            checks.connections_warn_pct,
            checks.connections_crit_pct,
            "checks.connections_warn_pct",
            c.connections_warn_pct.as_ref().map(|x| x.span()),
        ),
        (
            checks.pool_waiting_warn as f64,
            checks.pool_waiting_crit as f64,
            "checks.pool_waiting_warn",
            c.pool_waiting_warn.as_ref().map(|x| x.span()),
        ),
        (
            checks.pool_maxwait_warn_seconds,
            checks.pool_maxwait_crit_seconds,
            "checks.pool_maxwait_warn_seconds",
            c.pool_maxwait_warn_seconds.as_ref().map(|x| x.span()),
        ),
    ] {
        if warn > crit {
            let crit_field = wf.replace("warn", "crit");
            v.err(
                wspan.unwrap_or(0..0),
                wf,
                format!("must not exceed {crit_field}"),
            );
        }
    }

    if !v.errors.is_empty() {
        return Err(TopologyErrors(v.errors));
    }
    Ok(PostgresSpec {
        meta: Meta {
            name,
            kind: Kind::Postgres,
            provider,
            source,
        },
        nodes,
        database,
        owner,
        replication,
        admin,
        max_connections,
        locale,
        config,
        pgbouncer,
        checks,
        bin_dir: file.binaries.bin_dir,
        pgbouncer_bin: file.binaries.pgbouncer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<PostgresSpec, TopologyErrors> {
        parse(Source::from_text("t.toml", text, ".".into()))
    }

    #[test]
    fn default_layout_matches_the_seeds() {
        let crate::topology::Topology::Postgres(s) = crate::topology::builtin("postgres").unwrap()
        else {
            panic!("kind")
        };
        let addrs: Vec<String> = s.nodes.iter().map(|n| n.addr()).collect();
        assert_eq!(
            addrs,
            ["127.0.0.1:15432", "127.0.0.1:15433", "127.0.0.1:15434"]
        );
        let b = s.pgbouncer.as_ref().unwrap();
        assert_eq!(b.addr(), "127.0.0.1:16432");
        assert_eq!(b.pool_mode, PoolMode::Transaction);
        assert_eq!(
            (b.max_client_conn, b.default_pool_size, b.min_pool_size),
            (1000, 20, 5)
        );
        assert_eq!(
            b.routes,
            [
                Route {
                    name: "app".into(),
                    target: RouteTarget::Primary
                },
                Route {
                    name: "app_ro".into(),
                    target: RouteTarget::Replicas
                },
            ]
        );
        assert_eq!((s.database.as_str(), s.owner.user.as_str()), ("app", "app"));
        assert_eq!(s.checks.lag_warn_seconds, 1.0);
        assert_eq!(s.checks.connections_warn_pct, 80.0);
        assert_eq!(s.checks.connections_crit_pct, 95.0);
        assert!(!s.fsync_off(), "the default layout keeps durability");
    }

    #[test]
    fn single_primary_without_pgbouncer() {
        let s = parse_str("kind='postgres'\n[postgres]\nport=23100\n").unwrap();
        assert_eq!(s.nodes.len(), 1);
        assert!(s.pgbouncer.is_none());
        assert_eq!(s.replicas(), 0);
        // Default routes without replicas: only the read-write one.
        let s = parse_str("kind='postgres'\n[postgres]\nport=23100\n[pgbouncer]\nport=23110\n")
            .unwrap();
        assert_eq!(s.pgbouncer.unwrap().routes.len(), 1);
    }

    #[test]
    fn explicit_nodes_and_slot_names() {
        let s = parse_str(
            "kind='postgres'\nprovider='existing'\n[postgres]\nnodes=['db-1.example.com:5432','10.0.0.2:5433']\n[admin]\npassword_env='X'\n",
        )
        .unwrap();
        assert_eq!(s.nodes[1].addr(), "10.0.0.2:5433");
        assert_eq!(s.nodes[0].slot_name(), "replica_db_1_example_com_5432");
        let long = PgNode {
            host: "a".repeat(80),
            port: 5432,
        };
        assert!(long.slot_name().len() <= 63);
        assert!(long.slot_name().ends_with("_5432"));
    }

    #[test]
    fn errors_are_located() {
        let cases: &[(&str, &str)] = &[
            ("kind='postgres'\n", "t.toml:1:1: field `postgres`: missing [postgres] section"),
            ("kind='postgres'\n[postgres]\nreplicas=-1\n", "t.toml:3:10: field `postgres.replicas`: must be between 0 and 16"),
            ("kind='postgres'\n[postgres]\nport=70000\n", "t.toml:3:6: field `postgres.port`: port 70000 is out of range"),
            ("kind='postgres'\n[postgres]\nnodes=['a:1','a:1']\n", "field `postgres.nodes`: a:1 is listed twice"),
            ("kind='postgres'\n[postgres]\nnodes=['a']\n", "t.toml:3:8: field `postgres.nodes`: \"a\" is not host:port"),
            ("kind='postgres'\n[postgres]\nport=1\nnodes=['a:1']\n", "t.toml:3:6: field `postgres.port`: cannot be combined with `nodes`"),
            ("kind='postgres'\n[postgres]\nport=5432\n[config]\nport=1\n", "t.toml:5:6: field `config.port`: is managed by datatier"),
            ("kind='postgres'\n[postgres]\nport=5432\n[config]\nwal_level='minimal'\n", "field `config.wal_level`: \"minimal\" cannot feed streaming replicas"),
            ("kind='postgres'\n[postgres]\nport=5432\n[database]\nname='App'\n", "t.toml:5:6: field `database.name`: \"App\" is not a plain SQL name"),
            ("kind='postgres'\n[postgres]\nport=5432\n[database]\nowner='postgres'\n", "field `database.owner`: \"postgres\" is also the admin"),
            ("kind='postgres'\n[postgres]\nport=5432\n[pgbouncer]\nport=5432\n", "t.toml:5:6: field `pgbouncer.port`: 127.0.0.1:5432 is also a Postgres node"),
            ("kind='postgres'\n[postgres]\nport=5432\n[pgbouncer]\npool_mode='fast'\n", "field `pgbouncer.pool_mode`: unknown pool mode \"fast\""),
            ("kind='postgres'\n[postgres]\nport=5432\n[pgbouncer]\n[pgbouncer.databases]\napp_ro='replicas'\n", "t.toml:6:8: field `pgbouncer.databases.app_ro`: routes to the replicas, but the topology has none"),
            ("kind='postgres'\n[postgres]\nport=5432\n[pgbouncer]\nmin_pool_size=50\n", "field `pgbouncer.min_pool_size`: 50 exceeds default_pool_size 20"),
            ("kind='postgres'\n[postgres]\nport=5432\n[checks]\nlag_warn_seconds=5.0\nlag_crit_seconds=2.0\n", "t.toml:5:18: field `checks.lag_warn_seconds`: must not exceed checks.lag_crit_seconds"),
            ("kind='postgres'\nprovider='existing'\n[postgres]\nport=5432\n", "t.toml:2:10: field `admin`: provider \"existing\" needs the superuser's password"),
            ("kind='postgres'\n[postgres]\nport=5432\nbogus=1\n", "t.toml:4:1: field `bogus`: unknown field"),
        ];
        for (text, want) in cases {
            let e = parse_str(text).unwrap_err().to_string();
            assert!(e.contains(want), "for {text:?}\n got: {e}\nwant: {want}");
        }
    }

    #[test]
    fn fsync_off_is_only_what_the_file_says() {
        let s =
            parse_str("kind='postgres'\n[postgres]\nport=5432\n[config]\nfsync=false\n").unwrap();
        assert!(s.fsync_off());
        assert_eq!(s.config, [("fsync".to_string(), "off".to_string())]);
    }
}
