//! Talking to Postgres and PgBouncer: connections with deadlines, the
//! simple query protocol (the only one PgBouncer's admin console speaks,
//! and safe through transaction pooling), quoting, and WAL positions.

use crate::secret::Secret;
use anyhow::{anyhow, bail, Context, Result};
use std::collections::HashMap;
use std::fmt;
use std::time::Duration;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

/// How long one node may take to connect or answer during observation.
pub const NODE_TIMEOUT: Duration = Duration::from_secs(3);

/// A WAL position (`pg_lsn`), e.g. `0/3000060`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Lsn(pub u64);

impl Lsn {
    pub fn parse(s: &str) -> Option<Lsn> {
        let (hi, lo) = s.trim().split_once('/')?;
        Some(Lsn(
            (u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?
        ))
    }
    /// Bytes from `self` up to `later` (0 when `later` is behind).
    pub fn bytes_to(self, later: Lsn) -> u64 {
        later.0.saturating_sub(self.0)
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xffff_ffff)
    }
}

/// Split `host:port` (IPv6 hosts in brackets).
pub fn split_addr(addr: &str) -> Result<(String, u16)> {
    let (h, p) = addr
        .rsplit_once(':')
        .with_context(|| format!("`{addr}` is not host:port"))?;
    Ok((
        h.trim_matches(['[', ']']).to_string(),
        p.parse()
            .with_context(|| format!("`{addr}` has a bad port"))?,
    ))
}

/// An error without connection details, in one line.
pub fn clean(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{}: {}", db.severity(), db.message());
    }
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s = inner.to_string();
        src = inner.source();
    }
    if s.contains("Connection refused") {
        "connection refused".into()
    } else {
        s
    }
}

/// Why a connection failed, and whether waiting may help (server
/// starting up or shutting down, refused while it restarts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnError {
    pub message: String,
    pub transient: bool,
}

impl fmt::Display for ConnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConnError {}

impl ConnError {
    fn from_pg(e: &tokio_postgres::Error) -> Self {
        let transient = match e.code() {
            // cannot_connect_now, admin_shutdown, crash_shutdown, too_many_connections
            Some(c) => matches!(c.code(), "57P03" | "57P01" | "57P02" | "53300"),
            None => true,
        };
        ConnError {
            message: clean(e),
            transient,
        }
    }
}

/// Connect with a deadline. `dbname` is `pgbouncer` for the admin console.
pub async fn connect(
    addr: &str,
    user: &str,
    password: Option<&Secret>,
    dbname: &str,
    timeout: Duration,
) -> Result<Client, ConnError> {
    let (host, port) = split_addr(addr).map_err(|e| ConnError {
        message: e.to_string(),
        transient: false,
    })?;
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(&host)
        .port(port)
        .user(user)
        .dbname(dbname)
        .connect_timeout(timeout)
        .application_name("datatier");
    if let Some(p) = password {
        cfg.password(p.expose());
    }
    let (client, conn) = match tokio::time::timeout(timeout, cfg.connect(NoTls)).await {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => return Err(ConnError::from_pg(&e)),
        Err(_) => {
            return Err(ConnError {
                message: format!("no answer within {:.1}s", timeout.as_secs_f64()),
                transient: true,
            })
        }
    };
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// Rows of a simple query as column -> text value (NULL is `None`).
pub type Row = HashMap<String, Option<String>>;

/// Run one or more statements with the simple query protocol; rows of
/// all result sets, in order.
pub async fn rows(c: &Client, sql: &str, timeout: Duration) -> Result<Vec<Row>> {
    let msgs = tokio::time::timeout(timeout, c.simple_query(sql))
        .await
        .map_err(|_| anyhow!("timed out after {:.1}s", timeout.as_secs_f64()))?
        .map_err(|e| anyhow!("{}", clean(&e)))?;
    let mut out = Vec::new();
    for m in msgs {
        if let SimpleQueryMessage::Row(r) = m {
            let mut map = HashMap::new();
            for (i, col) in r.columns().iter().enumerate() {
                map.insert(col.name().to_string(), r.get(i).map(str::to_string));
            }
            out.push(map);
        }
    }
    Ok(out)
}

/// Run statements, ignoring results.
pub async fn exec(c: &Client, sql: &str, timeout: Duration) -> Result<()> {
    rows(c, sql, timeout).await.map(|_| ())
}

/// The first row of a query.
pub async fn one(c: &Client, sql: &str, timeout: Duration) -> Result<Row> {
    rows(c, sql, timeout)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("no row returned"))
}

/// Typed access to a text row.
pub trait RowExt {
    fn text(&self, col: &str) -> Option<&str>;
    fn string(&self, col: &str) -> String {
        self.text(col).unwrap_or_default().to_string()
    }
    fn bool(&self, col: &str) -> bool {
        matches!(self.text(col), Some("t" | "true" | "on" | "1"))
    }
    fn u64(&self, col: &str) -> Option<u64> {
        self.text(col)?.parse().ok()
    }
    fn f64(&self, col: &str) -> Option<f64> {
        self.text(col)?.parse().ok()
    }
    fn lsn(&self, col: &str) -> Option<Lsn> {
        Lsn::parse(self.text(col)?)
    }
}

impl RowExt for Row {
    fn text(&self, col: &str) -> Option<&str> {
        self.get(col).and_then(|v| v.as_deref())
    }
}

/// `'text'` with quotes doubled (standard_conforming_strings is on since 9.1).
pub fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `"name"` with quotes doubled.
pub fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// A libpq connection-string value, quoted when needed.
pub fn conninfo_value(s: &str) -> String {
    if !s.is_empty() && !s.contains([' ', '\'', '\\']) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
    }
}

/// Parse a libpq `key=value ...` connection string (values may be quoted).
pub fn parse_conninfo(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() {
            break;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            break;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut val = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            val.push(n)
                        }
                    }
                    '\'' => break,
                    c => val.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                if c == '\\' {
                    chars.next();
                    if let Some(n) = chars.next() {
                        val.push(n);
                    }
                    continue;
                }
                val.push(c);
                chars.next();
            }
        }
        out.insert(key, val);
    }
    out
}

/// Fail unless `version_num` (server_version_num) is at least 12, where
/// `standby.signal`, `primary_conninfo` in postgresql.conf and pg_promote()
/// exist; 13 for reloading `primary_conninfo` without a restart.
pub fn check_version(addr: &str, version_num: u32) -> Result<()> {
    if version_num < 120000 {
        bail!(
            "{addr} runs Postgres {}.{}; datatier needs 12 or newer (standby.signal, pg_promote)",
            version_num / 10000,
            version_num % 10000 / 100
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsn_round_trip_and_distance() {
        let a = Lsn::parse("0/3000060").unwrap();
        let b = Lsn::parse("1/0").unwrap();
        assert_eq!(a.to_string(), "0/3000060");
        assert_eq!(b.0, 1 << 32);
        assert_eq!(a.bytes_to(b), (1 << 32) - 0x3000060);
        assert_eq!(b.bytes_to(a), 0);
        assert!(Lsn::parse("junk").is_none());
    }

    #[test]
    fn conninfo_parses_what_it_quotes() {
        let s = format!(
            "host=127.0.0.1 port=15432 user=replicator passfile={} application_name=x",
            conninfo_value("/tmp/a b/it's")
        );
        let m = parse_conninfo(&s);
        assert_eq!(m["host"], "127.0.0.1");
        assert_eq!(m["port"], "15432");
        assert_eq!(m["passfile"], "/tmp/a b/it's");
        assert_eq!(m["application_name"], "x");
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
    }
}
