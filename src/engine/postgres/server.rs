//! Postgres on this machine (the local provider): binaries, the files
//! datatier writes into a data dir, and the one-shot tools (initdb,
//! pg_basebackup, pg_rewind, pg_controldata).
//!
//! Everything runs as the unprivileged account from
//! [`local::run_as`] when datatier is root (Postgres refuses to run as
//! root). The server is spawned as `postgres -D data` directly, not through
//! pg_ctl, so the recorded pid is the postmaster's and SIGINT is a fast
//! shutdown.
//!
//! Node settings that differ per node (port, listen address, socket
//! directory) go on the command line; everything shared goes into
//! `datatier.conf` inside the data dir, which `pg_basebackup` copies to
//! the replicas, so all nodes run the same configuration and any of them
//! can take over as primary.
//!
//! A data dir is created under `data.partial` and renamed to `data` only
//! when initdb or pg_basebackup succeeded, so an interrupted run never
//! leaves a half-made data dir that looks real.

use super::sql::{conninfo_value, Lsn};
use crate::provider::local::{self, ProcessRecord, RunAs, StateDir, StopSignal};
use crate::secret::Secret;
use crate::topology::postgres::{PgNode, PostgresSpec};
use anyhow::{anyhow, bail, Context, Result};
use sha2::Digest;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The file datatier writes its settings to, included from postgresql.conf.
pub const CONF_FILE: &str = "datatier.conf";
const INCLUDE_LINE: &str = "include_if_exists = 'datatier.conf'\t# added by datatier";

/// The account servers run as when datatier is root.
pub fn run_as() -> Result<Option<RunAs>> {
    local::run_as("postgres")
}

/// The programs datatier runs from one installation.
pub const TOOLS: &[&str] = &[
    "postgres",
    "initdb",
    "pg_basebackup",
    "pg_rewind",
    "pg_controldata",
];

/// One installation's programs, all from the same directory so versions
/// never mix (Debian's /usr/bin/pg_basebackup is a version-picking wrapper).
#[derive(Debug, Clone)]
pub struct PgBinaries {
    pub dir: PathBuf,
}

impl PgBinaries {
    /// `[binaries] bin_dir`, then `DATATIER_PG_BIN_DIR`, then a PATH entry
    /// holding both `postgres` and `initdb`, then the newest
    /// `/usr/lib/postgresql/<version>/bin`.
    pub fn find(configured: Option<&Path>) -> Result<Self> {
        // A directory counts when it has every tool; a PATH entry may hold
        // symlinks (e.g. /usr/local/bin/postgres), so follow `postgres` to
        // the installation it belongs to.
        let ok = |d: &Path| TOOLS.iter().all(|t| d.join(t).is_file());
        let resolve = |d: &Path| -> Option<PathBuf> {
            let real = std::fs::canonicalize(d.join("postgres")).ok()?;
            let dir = real.parent()?.to_path_buf();
            ok(&dir).then_some(dir)
        };
        if let Some(d) = configured {
            return resolve(d).map(|dir| PgBinaries { dir }).ok_or_else(|| {
                anyhow!(
                    "[binaries] bin_dir = {} lacks one of {}",
                    d.display(),
                    TOOLS.join(", ")
                )
            });
        }
        if let Ok(d) = std::env::var("DATATIER_PG_BIN_DIR") {
            let d = PathBuf::from(d);
            return resolve(&d).map(|dir| PgBinaries { dir }).ok_or_else(|| {
                anyhow!(
                    "DATATIER_PG_BIN_DIR={} lacks one of {}",
                    d.display(),
                    TOOLS.join(", ")
                )
            });
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        if let Some(dir) = std::env::split_paths(&path).find_map(|d| resolve(&d)) {
            return Ok(PgBinaries { dir });
        }
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let v: u32 = e.file_name().to_str()?.parse().ok()?;
                let bin = e.path().join("bin");
                ok(&bin).then_some((v, bin))
            })
            .collect();
        versions.sort();
        match versions.pop() {
            Some((_, dir)) => Ok(PgBinaries { dir }),
            None => bail!(
                "postgres not found (looked on PATH and in /usr/lib/postgresql/*/bin for {}); install postgresql (scripts/setup.sh does), set DATATIER_PG_BIN_DIR or [binaries] bin_dir, or use --provider existing",
                TOOLS.join(", ")
            ),
        }
    }
    pub fn tool(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// `[binaries] pgbouncer`, `DATATIER_PGBOUNCER_BIN`, PATH, /usr/sbin.
pub fn pgbouncer_bin(configured: Option<&Path>) -> Result<PathBuf> {
    local::find_binary(
        "pgbouncer",
        configured,
        "DATATIER_PGBOUNCER_BIN",
        &[PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")],
    )
}

/// Where one node's files live.
#[derive(Debug, Clone)]
pub struct NodePaths {
    /// The node dir under the state dir (absolute).
    pub dir: PathBuf,
    pub data: PathBuf,
    /// Where initdb / pg_basebackup write before the rename to `data`.
    pub partial: PathBuf,
    /// libpq password file with the replication role's password (0600,
    /// owned by the server account): primary_conninfo names it, so the
    /// password is in no config file.
    pub pgpass: PathBuf,
    /// The unix socket directory (short, see [`sock_root`]).
    pub sockdir: PathBuf,
}

/// Absolute form of a path that may not exist yet.
pub fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|c| c.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

/// The directory for unix sockets. A socket path may be at most ~107
/// bytes, and state dirs can be deep, so when `<state>/run` is long the
/// sockets go to `/tmp/datatier-<hash of the state dir>` instead.
pub fn sock_root(state: &StateDir) -> PathBuf {
    let dir = absolute(&state.dir);
    let near = dir.join("run");
    if near.as_os_str().len() <= 60 {
        return near;
    }
    let hash = sha2::Sha256::digest(dir.as_os_str().as_encoded_bytes());
    PathBuf::from(format!("/tmp/datatier-{}", &hex::encode(hash)[..16]))
}

/// A file-name-safe form of `host:port`.
pub fn node_key(addr: &str) -> String {
    addr.replace(['[', ']'], "").replace([':', '/'], "-")
}

pub fn node_paths(state: &StateDir, node: &PgNode) -> NodePaths {
    let dir = absolute(&state.node_dir(&node.addr()));
    NodePaths {
        data: dir.join("data"),
        partial: dir.join("data.partial"),
        pgpass: dir.join("pgpass"),
        sockdir: sock_root(state).join(node_key(&node.addr())),
        dir,
    }
}

/// What a local data dir is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataDir {
    /// No data dir (or only a leftover `data.partial`).
    Missing,
    /// A data dir without standby.signal: it was (or is) a primary.
    Primary,
    /// A data dir with standby.signal: a replica.
    Standby,
}

pub fn data_dir_kind(p: &NodePaths) -> DataDir {
    if !p.data.join("PG_VERSION").is_file() {
        DataDir::Missing
    } else if p.data.join("standby.signal").is_file() {
        DataDir::Standby
    } else {
        DataDir::Primary
    }
}

/// `datatier.conf`: the settings every node shares.
pub fn render_conf(spec: &PostgresSpec) -> String {
    let replicas = spec.replicas();
    // pg_basebackup -X stream takes two WAL senders while it runs.
    let senders = (2 * replicas + 4).max(10);
    let slots = (replicas + 4).max(10);
    let mut s = format!(
        "# written by datatier for topology `{}`; edit the topology file instead\n",
        spec.meta.name
    );
    let mut set = |k: &str, v: &str| {
        s.push_str(&format!("{k} = {}\n", conf_value(v)));
    };
    set("wal_level", "replica");
    set("max_wal_senders", &senders.to_string());
    set("max_replication_slots", &slots.to_string());
    set("hot_standby", "on");
    // pg_rewind needs hint bits in WAL or data checksums; initdb enables
    // checksums, this covers data dirs made elsewhere.
    set("wal_log_hints", "on");
    set("max_connections", &spec.max_connections.to_string());
    set("password_encryption", "scram-sha-256");
    for (k, v) in &spec.config {
        set(k, v);
    }
    s
}

/// A postgresql.conf value, quoted unless it is a plain number or word.
fn conf_value(v: &str) -> String {
    if !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_')
        && !v.starts_with('.')
    {
        v.to_string()
    } else {
        format!("'{}'", v.replace('\\', "\\\\").replace('\'', "''"))
    }
}

/// `pg_hba.conf`: SCRAM everywhere, replication only for the replication
/// role, and peer for the admin role over the local socket (so
/// `sudo -u postgres psql -h <socket dir>` works as usual).
pub fn render_hba(spec: &PostgresSpec) -> String {
    let a = &spec.admin.user;
    let r = &spec.replication.user;
    format!(
        "# written by datatier for topology `{}`; edit the topology file instead\n\
         # TYPE  DATABASE     USER          ADDRESS  METHOD\n\
         local   all          {a:<13} peer\n\
         local   replication  {r:<13} scram-sha-256\n\
         local   all          all           scram-sha-256\n\
         host    replication  {r:<13} all      scram-sha-256\n\
         host    all          all           all      scram-sha-256\n",
        spec.meta.name
    )
}

/// The libpq password file line for `user` (any host, port, database).
pub fn pgpass_line(user: &str, password: &Secret) -> String {
    let esc = |s: &str| s.replace('\\', "\\\\").replace(':', "\\:");
    format!("*:*:*:{}:{}\n", esc(user), esc(password.expose()))
}

/// Write a private file and give it to the server account.
pub fn write_owned(path: &Path, contents: &[u8], who: Option<&RunAs>) -> Result<()> {
    crate::secret::write_private(path, contents)
        .with_context(|| format!("cannot write {}", path.display()))?;
    if let Some(u) = who {
        std::os::unix::fs::chown(path, Some(u.uid), Some(u.gid))
            .with_context(|| format!("cannot give {} to {}", path.display(), u.name))?;
    }
    Ok(())
}

/// Create a directory owned by the server account (mode 0700 for data-ish
/// dirs is up to the caller), and check it is reachable for that account.
pub fn ensure_dir(path: &Path, who: Option<&RunAs>) -> Result<()> {
    std::fs::create_dir_all(path).with_context(|| format!("cannot create {}", path.display()))?;
    if let Some(u) = who {
        let md = std::fs::metadata(path)?;
        use std::os::unix::fs::MetadataExt;
        if md.uid() != u.uid && md.uid() != 0 {
            bail!(
                "{} belongs to uid {}, neither root nor {}; refusing to use it",
                path.display(),
                md.uid(),
                u.name
            );
        }
        local::hand_over(path, u)?;
    }
    Ok(())
}

/// Run a one-shot tool as the server account; on failure the error holds
/// the tool's last output lines. Nothing secret is ever on its command line.
pub async fn run_tool(
    what: &str,
    program: &Path,
    args: &[String],
    env: &[(&str, String)],
    who: Option<&RunAs>,
    cwd: &Path,
    timeout: Duration,
) -> Result<String> {
    let mut cmd = local::command_as(program, who, cwd);
    cmd.args(args).current_dir(cwd);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    tracing::debug!("{what}: {} {}", program.display(), args.join(" "));
    let out = tokio::time::timeout(timeout, cmd.output())
        .await
        .map_err(|_| {
            anyhow!(
                "{what}: {} did not finish within {:.0}s",
                program.display(),
                timeout.as_secs_f64()
            )
        })?
        .with_context(|| format!("{what}: cannot run {}", program.display()))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        let lines: Vec<&str> = text.lines().collect();
        bail!(
            "{what} failed ({}):\n{}",
            out.status,
            lines[lines.len().saturating_sub(12)..].join("\n")
        );
    }
    Ok(text)
}

/// `initdb` into `data.partial`, then datatier's files, then the rename.
pub async fn initdb(
    spec: &PostgresSpec,
    bins: &PgBinaries,
    paths: &NodePaths,
    admin_password: &Secret,
    who: Option<&RunAs>,
    timeout: Duration,
) -> Result<()> {
    ensure_dir(&paths.dir, who)?;
    if paths.partial.exists() {
        std::fs::remove_dir_all(&paths.partial)
            .with_context(|| format!("cannot remove leftover {}", paths.partial.display()))?;
    }
    // The superuser's password goes through a private file that only the
    // server account can read, removed right after.
    let pwfile = paths.dir.join(".initdb-pw");
    write_owned(&pwfile, admin_password.expose().as_bytes(), who)?;
    let mut args: Vec<String> = vec![
        "-D".into(),
        paths.partial.display().to_string(),
        "-U".into(),
        spec.admin.user.clone(),
        format!("--pwfile={}", pwfile.display()),
        "--auth-local=peer".into(),
        "--auth-host=scram-sha-256".into(),
        "--data-checksums".into(),
        "-E".into(),
        "UTF8".into(),
        format!("--locale={}", spec.locale),
    ];
    if spec.fsync_off() {
        args.push("--no-sync".into());
    }
    let res = run_tool(
        "initdb",
        &bins.tool("initdb"),
        &args,
        &[],
        who,
        &paths.dir,
        timeout,
    )
    .await;
    let _ = std::fs::remove_file(&pwfile);
    res?;
    write_data_files(spec, &paths.partial, who)?;
    std::fs::rename(&paths.partial, &paths.data)
        .with_context(|| format!("cannot rename {} to data", paths.partial.display()))?;
    Ok(())
}

/// Write datatier.conf and pg_hba.conf into a data dir and make sure
/// postgresql.conf includes datatier.conf.
pub fn write_data_files(spec: &PostgresSpec, data: &Path, who: Option<&RunAs>) -> Result<()> {
    write_owned(&data.join(CONF_FILE), render_conf(spec).as_bytes(), who)?;
    write_owned(&data.join("pg_hba.conf"), render_hba(spec).as_bytes(), who)?;
    let main = data.join("postgresql.conf");
    let text = std::fs::read_to_string(&main)
        .with_context(|| format!("cannot read {}", main.display()))?;
    if !text.lines().any(|l| l.trim() == INCLUDE_LINE) {
        let mut t = text;
        if !t.ends_with('\n') {
            t.push('\n');
        }
        t.push_str(INCLUDE_LINE);
        t.push('\n');
        std::fs::write(&main, t)?;
    }
    Ok(())
}

/// The connection string a replica uses to follow `primary`.
pub fn primary_conninfo(
    spec: &PostgresSpec,
    primary: &PgNode,
    me: &PgNode,
    pgpass: &Path,
) -> String {
    format!(
        "host={} port={} user={} passfile={} application_name={} connect_timeout=2",
        conninfo_value(&primary.host),
        primary.port,
        conninfo_value(&spec.replication.user),
        conninfo_value(&pgpass.display().to_string()),
        me.slot_name()
    )
}

/// `pg_basebackup -X stream -S slot --checkpoint=fast` from `primary` into
/// `data.partial`, then standby settings, then the rename.
#[allow(clippy::too_many_arguments)]
pub async fn basebackup(
    spec: &PostgresSpec,
    bins: &PgBinaries,
    primary: &PgNode,
    me: &PgNode,
    paths: &NodePaths,
    who: Option<&RunAs>,
    timeout: Duration,
) -> Result<()> {
    ensure_dir(&paths.dir, who)?;
    if paths.partial.exists() {
        std::fs::remove_dir_all(&paths.partial)
            .with_context(|| format!("cannot remove leftover {}", paths.partial.display()))?;
    }
    let conninfo = primary_conninfo(spec, primary, me, &paths.pgpass);
    let mut args: Vec<String> = vec![
        "-d".into(),
        conninfo.clone(),
        "-D".into(),
        paths.partial.display().to_string(),
        "-X".into(),
        "stream".into(),
        "-R".into(),
        "-S".into(),
        me.slot_name(),
        // The default spread checkpoint can keep a backup waiting for
        // minutes on an idle primary.
        "--checkpoint=fast".into(),
    ];
    if spec.fsync_off() {
        args.push("--no-sync".into());
    }
    run_tool(
        &format!("pg_basebackup for {}", me.addr()),
        &bins.tool("pg_basebackup"),
        &args,
        &[],
        who,
        &paths.dir,
        timeout,
    )
    .await?;
    // -R wrote standby.signal and a primary_conninfo; make ours the one
    // (same string, but written the same way every time).
    set_standby(&paths.partial, &conninfo, &me.slot_name(), who)?;
    std::fs::rename(&paths.partial, &paths.data)
        .with_context(|| format!("cannot rename {} to data", paths.partial.display()))?;
    Ok(())
}

/// Make a stopped data dir a standby of `conninfo`: standby.signal, and
/// primary_conninfo + primary_slot_name in postgresql.auto.conf (where
/// ALTER SYSTEM and pg_basebackup -R keep them too).
pub fn set_standby(data: &Path, conninfo: &str, slot: &str, who: Option<&RunAs>) -> Result<()> {
    let auto = data.join("postgresql.auto.conf");
    let text = std::fs::read_to_string(&auto).unwrap_or_default();
    let mut out: String = text
        .lines()
        .filter(|l| {
            let k = l.split('=').next().unwrap_or("").trim();
            k != "primary_conninfo" && k != "primary_slot_name"
        })
        .map(|l| format!("{l}\n"))
        .collect();
    out.push_str(&format!("primary_conninfo = {}\n", conf_quote(conninfo)));
    out.push_str(&format!("primary_slot_name = {}\n", conf_quote(slot)));
    write_owned(&auto, out.as_bytes(), who)?;
    write_owned(&data.join("standby.signal"), b"", who)?;
    Ok(())
}

fn conf_quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', "''"))
}

/// The process record that runs one node.
pub fn server_record(
    spec: &PostgresSpec,
    bins: &PgBinaries,
    node: &PgNode,
    paths: &NodePaths,
    who: Option<&RunAs>,
) -> ProcessRecord {
    let mut rec = ProcessRecord::new(
        &node.addr(),
        bins.tool("postgres"),
        vec![
            "-D".into(),
            paths.data.display().to_string(),
            "-p".into(),
            node.port.to_string(),
            "-c".into(),
            format!("listen_addresses={}", node.host),
            "-c".into(),
            format!("unix_socket_directories={}", paths.sockdir.display()),
            "-c".into(),
            format!("cluster_name={}/{}", spec.meta.name, node.port),
        ],
        paths.dir.clone(),
    );
    rec.user = who.map(|u| u.name.clone());
    rec.stop_signal = StopSignal::Int;
    rec
}

/// Make sure the socket dir exists and belongs to the server account.
pub fn prepare_sockdir(paths: &NodePaths, who: Option<&RunAs>) -> Result<()> {
    if let Some(root) = paths.sockdir.parent() {
        ensure_dir(root, who)?;
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755))?;
    }
    ensure_dir(&paths.sockdir, who)?;
    std::fs::set_permissions(&paths.sockdir, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// What pg_controldata says about a (stopped) data dir.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlData {
    /// `shut down`, `shut down in recovery`, `in production`, ...
    pub state: String,
    pub checkpoint: Lsn,
    pub timeline: u32,
    pub system_identifier: String,
}

pub fn parse_controldata(text: &str) -> Option<ControlData> {
    let get = |key: &str| {
        text.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    Some(ControlData {
        state: get("Database cluster state")?,
        checkpoint: Lsn::parse(&get("Latest checkpoint location")?)?,
        timeline: get("Latest checkpoint's TimeLineID")?.parse().ok()?,
        system_identifier: get("Database system identifier")?,
    })
}

pub async fn controldata(
    bins: &PgBinaries,
    data: &Path,
    who: Option<&RunAs>,
) -> Result<ControlData> {
    let out = run_tool(
        "pg_controldata",
        &bins.tool("pg_controldata"),
        &[data.display().to_string()],
        &[("LC_ALL", "C".to_string())],
        who,
        data.parent().unwrap_or(Path::new("/")),
        Duration::from_secs(30),
    )
    .await?;
    parse_controldata(&out).ok_or_else(|| anyhow!("cannot read pg_controldata output:\n{out}"))
}

/// `pg_rewind` a stopped former primary onto `source` (connecting as the
/// admin role through a temporary password file).
#[allow(clippy::too_many_arguments)]
pub async fn rewind(
    spec: &PostgresSpec,
    bins: &PgBinaries,
    source: &PgNode,
    paths: &NodePaths,
    admin_password: &Secret,
    who: Option<&RunAs>,
    timeout: Duration,
) -> Result<String> {
    let passfile = paths.dir.join(".rewind-pgpass");
    write_owned(
        &passfile,
        pgpass_line(&spec.admin.user, admin_password).as_bytes(),
        who,
    )?;
    let src = format!(
        "host={} port={} user={} dbname=postgres passfile={} connect_timeout=5",
        conninfo_value(&source.host),
        source.port,
        conninfo_value(&spec.admin.user),
        conninfo_value(&passfile.display().to_string())
    );
    let mut args = vec![
        format!("--target-pgdata={}", paths.data.display()),
        format!("--source-server={src}"),
    ];
    if spec.fsync_off() {
        args.push("--no-sync".into());
    }
    let res = run_tool(
        "pg_rewind",
        &bins.tool("pg_rewind"),
        &args,
        &[("LC_ALL", "C".to_string())],
        who,
        &paths.dir,
        timeout,
    )
    .await;
    let _ = std::fs::remove_file(&passfile);
    res
}

/// Raise our open-files limit to the hard limit (children inherit it):
/// PgBouncer needs one descriptor per client and server connection.
pub fn raise_nofile_limit() {
    // SAFETY: plain getrlimit/setrlimit on our own process.
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max.min(65536);
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> PostgresSpec {
        match crate::topology::builtin("postgres").unwrap() {
            crate::topology::Topology::Postgres(s) => s,
            _ => unreachable!(),
        }
    }

    #[test]
    fn conf_has_replication_settings_and_user_settings_last() {
        let c = render_conf(&spec());
        assert!(c.contains("wal_level = replica\n"), "{c}");
        assert!(c.contains("hot_standby = on\n"));
        assert!(c.contains("max_wal_senders = 10\n"));
        assert!(c.contains("password_encryption = 'scram-sha-256'\n"));
        assert!(c.trim_end().ends_with("shared_buffers = 128MB"), "{c}");
        assert_eq!(conf_value("it's"), "'it''s'");
    }

    #[test]
    fn hba_limits_replication_to_its_role() {
        let h = render_hba(&spec());
        assert!(
            h.contains("host    replication  replicator    all      scram-sha-256"),
            "{h}"
        );
        assert!(!h.contains("trust"));
        assert!(!h.contains("md5"));
    }

    #[test]
    fn sockets_stay_short() {
        let long = StateDir::new(Path::new(&"/x".repeat(60)), "postgres");
        let r = sock_root(&long);
        assert!(
            r.to_string_lossy().starts_with("/tmp/datatier-"),
            "{}",
            r.display()
        );
        let n = PgNode {
            host: "255.255.255.255".into(),
            port: 65535,
        };
        let p = node_paths(&long, &n);
        assert!(p.sockdir.join(".s.PGSQL.65535.lock").as_os_str().len() < 107);
        let short = StateDir::new(Path::new("/s"), "pg");
        assert_eq!(sock_root(&short), PathBuf::from("/s/pg/run"));
    }

    #[test]
    fn pgpass_escapes() {
        assert_eq!(
            pgpass_line("r", &Secret::new("a:b\\c")),
            "*:*:*:r:a\\:b\\\\c\n"
        );
    }

    #[test]
    fn controldata_is_parsed() {
        let text = "pg_control version number:            1300\nDatabase system identifier:           7306\nDatabase cluster state:               shut down\nLatest checkpoint location:           0/3000028\nLatest checkpoint's REDO location:    0/3000028\nLatest checkpoint's TimeLineID:       2\n";
        let c = parse_controldata(text).unwrap();
        assert_eq!(c.state, "shut down");
        assert_eq!(c.checkpoint.to_string(), "0/3000028");
        assert_eq!(c.timeline, 2);
    }
}
