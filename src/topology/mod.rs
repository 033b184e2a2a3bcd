//! Topology files: the declared state.
//!
//! Loading follows ripgrep's "low args / high args" split: the TOML is first
//! parsed into plain structs (syntax and types; errors located by toml's
//! spans), then validated as a whole (semantics: port clashes, slot
//! coverage, placement), collecting every problem before anything starts.
//! Every error names the file, line, column and field.
//!
//! A topology argument on the command line is, in order: a path to an
//! existing file; the name of a topology that `init` already recorded in the
//! state dir; or the name of a built-in default (`redis-cluster`, ...).

pub mod mongo;
pub mod postgres;
pub mod redis_cluster;
pub mod redis_sentinel;

use crate::provider::ProviderKind;
use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};
use toml::Spanned;

pub use mongo::MongoShardedSpec;
pub use postgres::PostgresSpec;
pub use redis_cluster::RedisClusterSpec;
pub use redis_sentinel::RedisSentinelSpec;

/// The embedded defaults: `(name, text)`. Also shipped as `topologies/*.toml`.
pub const BUILTINS: &[(&str, &str)] = &[
    (
        "redis-cluster",
        include_str!("../../topologies/redis-cluster.toml"),
    ),
    (
        "mongo-sharded",
        include_str!("../../topologies/mongo-sharded.toml"),
    ),
    (
        "redis-sentinel",
        include_str!("../../topologies/redis-sentinel.toml"),
    ),
    ("postgres", include_str!("../../topologies/postgres.toml")),
];

/// Where a topology's text came from, kept for error locations.
#[derive(Debug, Clone)]
pub struct Source {
    /// What to call the file in messages (`topologies/shop.toml`, `<built-in redis-cluster>`).
    pub name: String,
    pub text: String,
    /// Directory that relative paths in the file resolve against.
    pub base: PathBuf,
}

impl Source {
    pub fn from_text(name: impl Into<String>, text: impl Into<String>, base: PathBuf) -> Self {
        Source {
            name: name.into(),
            text: text.into(),
            base,
        }
    }

    /// 1-based line and column of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let col = before.rfind('\n').map(|i| offset - i).unwrap_or(offset + 1);
        (line, col)
    }

    /// An error at a span, for field `field`.
    pub fn error(
        &self,
        span: std::ops::Range<usize>,
        field: &str,
        message: impl Into<String>,
    ) -> TopologyError {
        let (line, col) = self.line_col(span.start);
        TopologyError {
            file: self.name.clone(),
            line,
            col,
            field: field.to_string(),
            message: message.into(),
            help: None,
            line_text: self.text.lines().nth(line - 1).unwrap_or("").to_string(),
        }
    }

    /// An error about the file as a whole (no span), e.g. a missing section.
    pub fn error_top(&self, field: &str, message: impl Into<String>) -> TopologyError {
        self.error(0..0, field, message)
    }

    /// Turn toml's parse error into a located error. toml reports the span
    /// of the offending key or value; the field is the key on that line (or
    /// the table header).
    pub fn from_toml_error(&self, e: &toml::de::Error) -> TopologyError {
        let span = e.span().unwrap_or(0..0);
        let (line, _) = self.line_col(span.start);
        let text = self.text.lines().nth(line - 1).unwrap_or("");
        let field = field_on_line(text);
        let message = e.message().trim().to_string();
        self.error(span, &field, message)
    }
}

fn field_on_line(line: &str) -> String {
    let t = line.trim();
    if let Some(h) = t.strip_prefix('[') {
        return h.trim_matches(|c| c == '[' || c == ']').trim().to_string();
    }
    match t.split_once('=') {
        Some((k, _)) => k.trim().trim_matches('"').to_string(),
        None => t.to_string(),
    }
}

/// A located topology error: `file:line:col: field: message`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct TopologyError {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub field: String,
    pub message: String,
    pub help: Option<String>,
    /// The offending source line, shown under the message.
    pub line_text: String,
}

impl TopologyError {
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

impl fmt::Display for TopologyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.col)?;
        if !self.field.is_empty() {
            write!(f, "field `{}`: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

/// All problems found in one file; loading fails if this is non-empty.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct TopologyErrors(pub Vec<TopologyError>);

impl fmt::Display for TopologyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
            if !e.line_text.trim().is_empty() && e.line > 0 {
                write!(f, "\n    {:>4} | {}", e.line, e.line_text)?;
            }
            if let Some(h) = &e.help {
                write!(f, "\n    hint: {h}")?;
            }
        }
        Ok(())
    }
}

impl From<TopologyError> for TopologyErrors {
    fn from(e: TopologyError) -> Self {
        TopologyErrors(vec![e])
    }
}

/// The kinds datatier knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    RedisCluster,
    MongoSharded,
    RedisSentinel,
    Postgres,
}

impl Kind {
    pub const ALL: &'static [(&'static str, Kind)] = &[
        ("redis-cluster", Kind::RedisCluster),
        ("mongo-sharded", Kind::MongoSharded),
        ("redis-sentinel", Kind::RedisSentinel),
        ("postgres", Kind::Postgres),
    ];
    pub fn as_str(self) -> &'static str {
        Self::ALL.iter().find(|(_, k)| *k == self).unwrap().0
    }
}

/// Fields every topology file has, read before the kind-specific parse.
#[derive(Debug, Deserialize)]
struct Header {
    name: Option<Spanned<String>>,
    kind: Option<Spanned<String>>,
}

/// Name, kind, provider and origin: what every topology carries.
#[derive(Debug, Clone)]
pub struct Meta {
    pub name: String,
    pub kind: Kind,
    pub provider: ProviderKind,
    pub source: Source,
}

/// A validated topology: the desired state of one data tier.
// One value per run; the size difference between kinds does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Topology {
    RedisCluster(RedisClusterSpec),
    MongoSharded(MongoShardedSpec),
    RedisSentinel(RedisSentinelSpec),
    Postgres(PostgresSpec),
}

impl Topology {
    pub fn meta(&self) -> &Meta {
        match self {
            Topology::RedisCluster(s) => &s.meta,
            Topology::MongoSharded(s) => &s.meta,
            Topology::RedisSentinel(s) => &s.meta,
            Topology::Postgres(s) => &s.meta,
        }
    }
    pub fn meta_mut(&mut self) -> &mut Meta {
        match self {
            Topology::RedisCluster(s) => &mut s.meta,
            Topology::MongoSharded(s) => &mut s.meta,
            Topology::RedisSentinel(s) => &mut s.meta,
            Topology::Postgres(s) => &mut s.meta,
        }
    }
    pub fn name(&self) -> &str {
        &self.meta().name
    }
    /// Layouts that work but are risky, located like errors; printed when
    /// the file is loaded and reported by `status`.
    pub fn warnings(&self) -> &[TopologyError] {
        match self {
            Topology::RedisCluster(_) | Topology::MongoSharded(_) | Topology::Postgres(_) => &[],
            Topology::RedisSentinel(s) => &s.warnings,
        }
    }
}

/// Parse and validate a topology from source text.
pub fn parse(source: Source) -> Result<Topology, TopologyErrors> {
    let header: Header = toml::from_str(&source.text).map_err(|e| source.from_toml_error(&e))?;
    let kind_field = header.kind.ok_or_else(|| {
        source
            .error_top("kind", "missing; say which kind of topology this is")
            .with_help(format!(
                "add e.g. `kind = \"redis-cluster\"`; kinds: {}",
                kind_names()
            ))
    })?;
    let kind = Kind::ALL
        .iter()
        .find(|(n, _)| *n == kind_field.get_ref())
        .map(|(_, k)| *k)
        .ok_or_else(|| {
            source
                .error(
                    kind_field.span(),
                    "kind",
                    format!("unknown kind \"{}\"", kind_field.get_ref()),
                )
                .with_help(format!("kinds: {}", kind_names()))
        })?;
    if let Some(n) = &header.name {
        let valid = !n.get_ref().is_empty()
            && n.get_ref().len() <= 64
            && n.get_ref()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
            && !n.get_ref().starts_with('.');
        if !valid {
            return Err(source
                .error(
                    n.span(),
                    "name",
                    format!("invalid name \"{}\"", n.get_ref()),
                )
                .with_help("use 1-64 letters, digits, '-', '_' or '.'; it names the state dir")
                .into());
        }
    }
    match kind {
        Kind::RedisCluster => redis_cluster::parse(source).map(Topology::RedisCluster),
        Kind::MongoSharded => mongo::parse(source).map(Topology::MongoSharded),
        Kind::RedisSentinel => redis_sentinel::parse(source).map(Topology::RedisSentinel),
        Kind::Postgres => postgres::parse(source).map(Topology::Postgres),
    }
}

fn kind_names() -> String {
    Kind::ALL
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Default name when a file has no `name`: the file stem.
pub(crate) fn default_name(source: &Source, name: Option<Spanned<String>>) -> String {
    name.map(|n| n.into_inner()).unwrap_or_else(|| {
        Path::new(&source.name)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "datatier".into())
    })
}

/// Parse `provider = "..."` (shared by every kind).
pub(crate) fn parse_provider(
    source: &Source,
    p: Option<Spanned<String>>,
    errors: &mut Vec<TopologyError>,
) -> ProviderKind {
    match p {
        None => ProviderKind::Local,
        Some(p) => match p.get_ref().parse() {
            Ok(k) => k,
            Err(_) => {
                errors.push(
                    source
                        .error(
                            p.span(),
                            "provider",
                            format!("unknown provider \"{}\"", p.get_ref()),
                        )
                        .with_help("providers: local, existing"),
                );
                ProviderKind::Local
            }
        },
    }
}

/// Read a topology file from disk.
pub fn load_file(path: &Path) -> anyhow::Result<Topology> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read topology file {}: {e}", path.display()))?;
    let base = path
        .parent()
        .map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        })
        .unwrap_or(Path::new("."))
        .to_path_buf();
    Ok(parse(Source::from_text(
        path.display().to_string(),
        text,
        base,
    ))?)
}

/// The embedded default for a kind name, if there is one.
pub fn builtin(name: &str) -> Option<Topology> {
    BUILTINS.iter().find(|(n, _)| *n == name).map(|(n, text)| {
        parse(Source::from_text(
            format!("<built-in {n}>"),
            *text,
            PathBuf::from("."),
        ))
        .expect("built-in topologies are valid")
    })
}

/// Resolve a command-line topology argument (see the module docs for the
/// order). `state_root` is the `.datatier` directory.
pub fn resolve(arg: &str, state_root: &Path) -> anyhow::Result<Topology> {
    let path = Path::new(arg);
    if path.is_file() {
        return load_file(path);
    }
    if path.extension().is_some_and(|e| e == "toml") || arg.contains('/') {
        anyhow::bail!("topology file {arg} does not exist");
    }
    let recorded = state_root
        .join(arg)
        .join(crate::provider::local::TOPOLOGY_FILE);
    if recorded.is_file() {
        return load_file(&recorded).map(|mut t| {
            // Errors and messages should name the topology, not the copy.
            t.meta_mut().source.name = format!("<recorded {arg}>");
            t
        });
    }
    builtin(arg).ok_or_else(|| {
        anyhow::anyhow!(
            "`{arg}` is neither a topology file, nor a topology recorded in {}, nor a built-in ({})",
            state_root.display(),
            BUILTINS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
        )
    })
}

/// A Redis `[config]` table passed through to redis.conf: settings datatier
/// manages itself are refused with the reason, values must be scalars
/// (booleans become `yes`/`no`). Shared by every Redis kind.
pub(crate) fn redis_config(
    source: &Source,
    config: &std::collections::BTreeMap<String, Spanned<toml::Value>>,
    managed: &[(&str, &str)],
    errors: &mut Vec<TopologyError>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (k, v) in config {
        if let Some((_, why)) = managed.iter().find(|(m, _)| m.eq_ignore_ascii_case(k)) {
            errors.push(
                source
                    .error(
                        v.span(),
                        &format!("config.{k}"),
                        format!("is managed by datatier ({why})"),
                    )
                    .with_help("remove it from [config]"),
            );
            continue;
        }
        let value = match v.get_ref() {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => if *b { "yes" } else { "no" }.to_string(),
            _ => {
                errors.push(source.error(
                    v.span(),
                    &format!("config.{k}"),
                    "must be a string, number or boolean",
                ));
                continue;
            }
        };
        out.push((k.clone(), value));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_parse() {
        for (name, _) in BUILTINS {
            let t = builtin(name).unwrap();
            assert_eq!(t.name(), *name);
        }
    }

    #[test]
    fn line_col_and_unknown_kind() {
        let src = Source::from_text("x.toml", "name = \"a\"\nkind = \"nope\"\n", ".".into());
        assert_eq!(src.line_col(11), (2, 1));
        let e = parse(src).unwrap_err();
        assert_eq!(e.0[0].line, 2);
        assert_eq!(e.0[0].field, "kind");
        assert!(
            e.to_string()
                .starts_with("x.toml:2:8: field `kind`: unknown kind"),
            "{e}"
        );
    }

    #[test]
    fn missing_kind_and_bad_name() {
        let e = parse(Source::from_text("y.toml", "name = \"a\"\n", ".".into())).unwrap_err();
        assert!(e.to_string().contains("field `kind`: missing"), "{e}");
        let e = parse(Source::from_text(
            "y.toml",
            "name = \"a b\"\nkind = \"redis-cluster\"\n",
            ".".into(),
        ))
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("y.toml:1:8: field `name`: invalid name"),
            "{e}"
        );
    }
}
