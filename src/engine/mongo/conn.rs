//! Talking to mongod / mongos: one direct connection per node, admin work
//! with `run_command`, every call bounded by a deadline.
//!
//! Why direct connections: a member that has not been initiated yet (or a
//! config server before its set has a primary) is never "selectable" for a
//! replica-set-aware client, so the driver would wait its whole server
//! selection timeout (30 s by default) for a server it will never pick.
//! `directConnection=true` talks to exactly the node we name, whatever its
//! state. Before creating a client we try a plain TCP connect, so a node
//! that is down costs one refused connect, not a selection timeout.

use crate::secret::Secret;
use anyhow::{anyhow, Result};
use bson::{doc, Bson, Document};
use futures::TryStreamExt;
use mongodb::options::{ClientOptions, Credential, ServerAddress};
use mongodb::Client;
use std::fmt;
use std::time::Duration;

/// How long one node may take to answer before it counts as unreachable.
pub const NODE_TIMEOUT: Duration = Duration::from_secs(3);

/// MongoDB error codes datatier reacts to.
pub mod code {
    pub const BAD_VALUE: i32 = 2;
    pub const ILLEGAL_OPERATION: i32 = 20;
    pub const ALREADY_INITIALIZED: i32 = 23;
    pub const NAMESPACE_NOT_FOUND: i32 = 26;
    pub const COMMAND_NOT_FOUND: i32 = 59;
    pub const INVALID_OPTIONS: i32 = 72;
    pub const NO_REPLICATION_ENABLED: i32 = 76;
    pub const INVALID_REPLICA_SET_CONFIG: i32 = 93;
    pub const NOT_YET_INITIALIZED: i32 = 94;
    pub const OPERATION_FAILED: i32 = 96;
    pub const CONFIGURATION_IN_PROGRESS: i32 = 109;
    pub const FAILED_TO_SATISFY_READ_PREFERENCE: i32 = 133;
    pub const CURRENT_CONFIG_NOT_COMMITTED_YET: i32 = 308;
    pub const NOT_WRITABLE_PRIMARY: i32 = 10107;
    pub const NOT_PRIMARY_NO_SECONDARY_OK: i32 = 13435;
    pub const NOT_PRIMARY_OR_SECONDARY: i32 = 13436;
}

/// A failed call: the server's error (code, name, message) or a transport
/// problem (`code` is `None`).
#[derive(Debug, Clone, PartialEq)]
pub struct CmdError {
    pub code: Option<i32>,
    pub code_name: String,
    pub message: String,
}

impl CmdError {
    pub fn transport(message: impl Into<String>) -> Self {
        CmdError {
            code: None,
            code_name: String::new(),
            message: message.into(),
        }
    }
    pub fn is(&self, code: i32) -> bool {
        self.code == Some(code)
    }
}

impl fmt::Display for CmdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code {
            Some(c) if !self.code_name.is_empty() => {
                write!(f, "{} ({c}): {}", self.code_name, self.message)
            }
            Some(c) => write!(f, "error {c}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for CmdError {}

impl From<mongodb::error::Error> for CmdError {
    fn from(e: mongodb::error::Error) -> Self {
        use mongodb::error::ErrorKind;
        match &*e.kind {
            ErrorKind::Command(c) => CmdError {
                code: Some(c.code),
                code_name: c.code_name.clone(),
                message: c.message.clone(),
            },
            ErrorKind::Io(io) => CmdError::transport(io_text(io)),
            ErrorKind::Authentication { message, .. } => CmdError {
                code: Some(18),
                code_name: "AuthenticationFailed".into(),
                message: message.clone(),
            },
            ErrorKind::ServerSelection { message, .. } => {
                // "Server selection timeout: ... Error: Kind: I/O error: Connection refused ..."
                let lower = message.to_ascii_lowercase();
                if lower.contains("connection refused") {
                    CmdError::transport("connection refused")
                } else if lower.contains("timed out") || lower.contains("timeout") {
                    CmdError::transport("timed out")
                } else {
                    CmdError::transport(message.clone())
                }
            }
            _ => CmdError::transport(e.to_string()),
        }
    }
}

fn io_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        std::io::ErrorKind::TimedOut => "timed out".into(),
        std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset => {
            "connection closed by the server".into()
        }
        _ => e.to_string(),
    }
}

/// Credentials for nodes with access control (SCRAM, from the topology's
/// `[auth]` or a `--from` URI). Formatting never shows the password.
#[derive(Clone, Default)]
pub struct Auth(Option<Credential>);

impl Auth {
    pub fn none() -> Auth {
        Auth(None)
    }
    pub fn scram(user: &str, password: &Secret, source: &str) -> Auth {
        Auth(Some(
            Credential::builder()
                .username(user.to_string())
                .password(password.expose().to_string())
                .source(source.to_string())
                .build(),
        ))
    }
    pub fn from_credential(c: Option<Credential>) -> Auth {
        Auth(c)
    }
    pub fn user(&self) -> Option<&str> {
        self.0.as_ref()?.username.as_deref()
    }
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.user() {
            Some(u) => write!(f, "Auth({u}, ***)"),
            None => f.write_str("Auth(none)"),
        }
    }
}

/// A client for exactly one node.
#[derive(Clone)]
pub struct Node {
    pub addr: String,
    client: Client,
    timeout: Duration,
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Node({})", self.addr)
    }
}

/// Connect to one node directly (see the module docs), failing fast when
/// nothing listens there.
pub async fn connect(addr: &str, timeout: Duration, auth: &Auth) -> Result<Node, CmdError> {
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
        Err(_) => return Err(CmdError::transport("timed out")),
        Ok(Err(e)) => return Err(CmdError::transport(io_text(&e))),
        Ok(Ok(_probe)) => {}
    }
    let mut o = ClientOptions::default();
    o.hosts = vec![ServerAddress::parse(addr).map_err(CmdError::from)?];
    o.direct_connection = Some(true);
    o.server_selection_timeout = Some(timeout);
    o.connect_timeout = Some(timeout);
    o.app_name = Some("datatier".into());
    o.max_pool_size = Some(4);
    o.retry_reads = Some(false);
    o.retry_writes = Some(false);
    o.credential = auth.0.clone();
    let client = Client::with_options(o).map_err(CmdError::from)?;
    Ok(Node {
        addr: addr.to_string(),
        client,
        timeout,
    })
}

impl Node {
    /// A node from a ready client (e.g. one built from a user's URI).
    pub fn from_client(addr: &str, client: Client, timeout: Duration) -> Node {
        Node {
            addr: addr.to_string(),
            client,
            timeout,
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The same node with another deadline per call (long admin commands).
    pub fn with_timeout(&self, timeout: Duration) -> Node {
        Node {
            timeout,
            ..self.clone()
        }
    }

    /// Run a command in `db`, bounded by the node's deadline.
    pub async fn run(&self, db: &str, cmd: Document) -> Result<Document, CmdError> {
        let database = self.client.database(db);
        match tokio::time::timeout(self.timeout, database.run_command(cmd)).await {
            Ok(r) => r.map_err(CmdError::from),
            Err(_) => Err(CmdError::transport(format!(
                "no answer within {:.1}s",
                self.timeout.as_secs_f64()
            ))),
        }
    }

    pub async fn admin(&self, cmd: Document) -> Result<Document, CmdError> {
        self.run("admin", cmd).await
    }

    /// All documents of `db.coll` matching `filter` (cursor followed to its
    /// end), bounded by the node's deadline.
    pub async fn find(
        &self,
        db: &str,
        coll: &str,
        filter: Document,
        projection: Option<Document>,
    ) -> Result<Vec<Document>, CmdError> {
        let c = self.client.database(db).collection::<Document>(coll);
        let fut = async {
            let mut f = c.find(filter);
            if let Some(p) = projection {
                f = f.projection(p);
            }
            let cursor = f.await?;
            cursor.try_collect::<Vec<Document>>().await
        };
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r.map_err(CmdError::from),
            Err(_) => Err(CmdError::transport(format!(
                "no answer within {:.1}s",
                self.timeout.as_secs_f64()
            ))),
        }
    }

    /// Exact document count (`countDocuments`: an aggregation, so orphans
    /// left by chunk migrations are not counted on sharded collections).
    pub async fn count_documents(&self, db: &str, coll: &str) -> Result<u64, CmdError> {
        let c = self.client.database(db).collection::<Document>(coll);
        match tokio::time::timeout(self.timeout, c.count_documents(doc! {})).await {
            Ok(r) => r.map_err(CmdError::from),
            Err(_) => Err(CmdError::transport(format!(
                "no answer within {:.1}s",
                self.timeout.as_secs_f64()
            ))),
        }
    }

    /// A write command (`update`, `insert`, ...): the command's own error,
    /// or the first write error / write concern error in its reply.
    pub async fn write(&self, db: &str, cmd: Document) -> Result<Document, CmdError> {
        let reply = self.run(db, cmd).await?;
        if let Ok(errs) = reply.get_array("writeErrors") {
            if let Some(Bson::Document(e)) = errs.first() {
                return Err(reply_error(e));
            }
        }
        if let Ok(e) = reply.get_document("writeConcernError") {
            return Err(reply_error(e));
        }
        Ok(reply)
    }
}

fn reply_error(e: &Document) -> CmdError {
    CmdError {
        code: int(e.get("code")).map(|c| c as i32),
        code_name: e.get_str("codeName").unwrap_or_default().to_string(),
        message: e.get_str("errmsg").unwrap_or_default().to_string(),
    }
}

/// A BSON number as i64 (int32, int64 or a whole double).
pub fn int(v: Option<&Bson>) -> Option<i64> {
    match v? {
        Bson::Int32(i) => Some(*i as i64),
        Bson::Int64(i) => Some(*i),
        Bson::Double(d) if d.fract() == 0.0 => Some(*d as i64),
        _ => None,
    }
}

/// Parse `7.0.14` / `6.0.3-rc1` into (major, minor, patch).
pub fn parse_version(v: &str) -> Option<(u32, u32, u32)> {
    let core = v.split(['-', '+']).next()?;
    let mut it = core.split('.').map(|p| p.parse::<u32>().ok());
    Some((it.next()??, it.next()??, it.next().flatten().unwrap_or(0)))
}

/// Does `version` need `enableSharding` before `shardCollection` (< 6.0)?
pub fn needs_enable_sharding(version: &str) -> bool {
    parse_version(version).is_some_and(|(maj, _, _)| maj < 6)
}

/// Does `version` have `$shardedDataDistribution` (6.0.3+)?
pub fn has_sharded_data_distribution(version: &str) -> bool {
    parse_version(version).is_some_and(|v| v >= (6, 0, 3))
}

/// An error for a failed step: the node, what was tried, the server's reply.
pub fn step_error(node: &str, what: &str, e: &CmdError) -> anyhow::Error {
    anyhow!("{node}: {what} failed: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(parse_version("7.0.14"), Some((7, 0, 14)));
        assert_eq!(parse_version("6.0.3-rc1"), Some((6, 0, 3)));
        assert_eq!(parse_version("5.0"), Some((5, 0, 0)));
        assert!(needs_enable_sharding("5.0.26"));
        assert!(!needs_enable_sharding("6.0.0"));
        assert!(has_sharded_data_distribution("6.0.3"));
        assert!(!has_sharded_data_distribution("6.0.2"));
        assert!(has_sharded_data_distribution("7.0.0"));
        assert!(!has_sharded_data_distribution("garbage"));
    }

    #[test]
    fn auth_never_shows_the_password() {
        let a = Auth::scram("admin", &Secret::new("hunter2"), "admin");
        assert_eq!(format!("{a:?}"), "Auth(admin, ***)");
        assert_eq!(format!("{:?}", Auth::none()), "Auth(none)");
    }

    #[test]
    fn errors_render_code_and_name() {
        let e = CmdError {
            code: Some(94),
            code_name: "NotYetInitialized".into(),
            message: "no replset config has been received".into(),
        };
        assert_eq!(
            e.to_string(),
            "NotYetInitialized (94): no replset config has been received"
        );
        assert!(e.is(code::NOT_YET_INITIALIZED));
        assert_eq!(CmdError::transport("connection refused").code, None);
    }

    #[tokio::test]
    async fn a_closed_port_is_refused_by_the_probe() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        // The TCP probe answers, not the driver's server selection.
        let e = connect(
            &format!("127.0.0.1:{port}"),
            Duration::from_secs(5),
            &Auth::none(),
        )
        .await
        .unwrap_err();
        assert_eq!(e.message, "connection refused");
    }
}
