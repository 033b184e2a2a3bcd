//! The local provider: server processes on this machine.
//!
//! Layout of a state dir (default `.datatier/<topology name>/`):
//!
//! ```text
//! topology.toml          the topology text init ran with (status/down by name)
//! processes.json         manifest: every process started, in start order
//! <node>/                one folder per node, e.g. 127.0.0.1-7000/
//!     <config files>     written by the engine
//!     data/              the server's data
//!     server.log         stdout/stderr of the process
//!     server.pid         pid written by datatier at spawn
//! ```
//!
//! Processes are spawned in their own session (so they outlive datatier and
//! a Ctrl-C of it), optionally as an unprivileged user (Postgres and
//! PgBouncer refuse root). A pid is trusted only if `/proc/<pid>/exe` is the
//! recorded program, so a recycled pid is never signalled.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The recorded topology text inside a state dir.
pub const TOPOLOGY_FILE: &str = "topology.toml";
const MANIFEST: &str = "processes.json";

/// One topology's state dir.
#[derive(Debug, Clone)]
pub struct StateDir {
    pub dir: PathBuf,
}

impl StateDir {
    pub fn new(root: &Path, name: &str) -> Self {
        StateDir {
            dir: root.join(name),
        }
    }

    pub fn exists(&self) -> bool {
        self.dir.is_dir()
    }

    pub fn create(&self) -> Result<()> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create state dir {}", self.dir.display()))
    }

    /// The directory of one node, e.g. `127.0.0.1-7000`.
    pub fn node_dir(&self, node: &str) -> PathBuf {
        self.dir.join(node.replace([':', '/'], "-"))
    }

    /// Record the topology text init ran with, so `status NAME`, `down NAME`
    /// find it again.
    pub fn record_topology(&self, text: &str) -> Result<()> {
        self.create()?;
        std::fs::write(self.dir.join(TOPOLOGY_FILE), text)
            .with_context(|| format!("cannot write {}", self.dir.join(TOPOLOGY_FILE).display()))
    }

    pub fn manifest(&self) -> Result<Vec<ProcessRecord>> {
        let p = self.dir.join(MANIFEST);
        match std::fs::read_to_string(&p) {
            Ok(text) => serde_json::from_str(&text)
                .with_context(|| format!("state file {} is corrupt", p.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", p.display())),
        }
    }

    /// Insert or replace the record for `rec.node`, keeping start order.
    pub fn upsert(&self, rec: &ProcessRecord) -> Result<()> {
        let mut all = self.manifest()?;
        match all.iter_mut().find(|r| r.node == rec.node) {
            Some(r) => *r = rec.clone(),
            None => all.push(rec.clone()),
        }
        self.create()?;
        let tmp = self.dir.join(format!("{MANIFEST}.tmp"));
        std::fs::write(&tmp, serde_json::to_vec_pretty(&all)?)?;
        std::fs::rename(&tmp, self.dir.join(MANIFEST))?;
        Ok(())
    }

    /// Take an exclusive lock on the state dir for the life of the returned
    /// guard, so two datatier runs never act on one topology at once.
    pub fn lock(&self) -> Result<StateLock> {
        self.create()?;
        let path = self.dir.join(".lock");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a valid fd we own.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            bail!(
                "another datatier run holds {} (wait for it to finish)",
                path.display()
            );
        }
        Ok(StateLock { _file: f })
    }
}

/// Held while a run owns a state dir.
pub struct StateLock {
    _file: std::fs::File,
}

/// Which signal stops a program cleanly.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
pub enum StopSignal {
    #[default]
    Term,
    /// Postgres: SIGINT is "fast shutdown" (SIGTERM waits for clients).
    Int,
}

/// Everything needed to start, find and stop one server process.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProcessRecord {
    /// `host:port` the node serves.
    pub node: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Working directory (the node dir).
    pub dir: PathBuf,
    pub log: PathBuf,
    pub pidfile: PathBuf,
    /// Unprivileged account to run as when datatier runs as root.
    pub user: Option<String>,
    /// Addresses the process listens on (checked free before start, polled
    /// after start).
    pub listen: Vec<String>,
    #[serde(default)]
    pub stop_signal: StopSignal,
    #[serde(default)]
    pub env: Vec<(String, String)>,
}

impl ProcessRecord {
    /// A record for `program args...` in `dir`, logging to `dir/server.log`.
    pub fn new(node: &str, program: PathBuf, args: Vec<String>, dir: PathBuf) -> Self {
        ProcessRecord {
            node: node.to_string(),
            program,
            args,
            log: dir.join("server.log"),
            pidfile: dir.join("server.pid"),
            dir,
            user: None,
            listen: vec![node.to_string()],
            stop_signal: StopSignal::Term,
            env: Vec::new(),
        }
    }
}

/// What the pid file says about a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcState {
    Running(u32),
    Stopped,
}

fn read_pid(rec: &ProcessRecord) -> Option<u32> {
    std::fs::read_to_string(&rec.pidfile)
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Is `pid` alive and running `program`? Zombies count as dead.
pub fn pid_runs(pid: u32, program: &Path) -> bool {
    let stat = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s,
        Err(_) => return false,
    };
    // state is the field after the parenthesised comm
    if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r.trim_start()) {
        if rest.starts_with('Z') || rest.starts_with('X') {
            return false;
        }
    }
    let want = std::fs::canonicalize(program).unwrap_or_else(|_| program.to_path_buf());
    match std::fs::read_link(format!("/proc/{pid}/exe")) {
        Ok(exe) => {
            let exe = PathBuf::from(exe.to_string_lossy().trim_end_matches(" (deleted)"));
            exe == want || exe.file_name() == want.file_name()
        }
        // Not allowed to read exe: fall back to the command line.
        Err(_) => std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| {
                let name = program
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                String::from_utf8_lossy(&c).contains(&name)
            })
            .unwrap_or(false),
    }
}

pub fn state(rec: &ProcessRecord) -> ProcState {
    match read_pid(rec) {
        Some(pid) if pid_runs(pid, &rec.program) => ProcState::Running(pid),
        _ => ProcState::Stopped,
    }
}

/// An unprivileged account to run a server as.
#[derive(Debug, Clone)]
pub struct RunAs {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// When running as root, the account `preferred` (e.g. `postgres`), or the
/// value of `DATATIER_RUN_AS`; `None` when not root.
pub fn run_as(preferred: &str) -> Result<Option<RunAs>> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    let name = std::env::var("DATATIER_RUN_AS").unwrap_or_else(|_| preferred.to_string());
    match nix::unistd::User::from_name(&name)? {
        Some(u) => Ok(Some(RunAs {
            name,
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
        })),
        None => bail!(
            "datatier runs as root and must start this server as an unprivileged user, but user `{name}` does not exist; create it (useradd --system {name}) or set DATATIER_RUN_AS"
        ),
    }
}

/// Give `path` (recursively) to `who`, and make every ancestor directory
/// traversable for it, or explain why it cannot be.
pub fn hand_over(path: &Path, who: &RunAs) -> Result<()> {
    fn walk(p: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
        std::os::unix::fs::lchown(p, Some(uid), Some(gid))?;
        if p.is_dir() && !p.is_symlink() {
            for e in std::fs::read_dir(p)? {
                walk(&e?.path(), uid, gid)?;
            }
        }
        Ok(())
    }
    walk(path, who.uid, who.gid)
        .with_context(|| format!("cannot give {} to user {}", path.display(), who.name))?;
    let abs = std::fs::canonicalize(path)?;
    for anc in abs.ancestors().skip(1) {
        let md = std::fs::metadata(anc)?;
        let mode = md.permissions().mode();
        let can = if md.uid() == who.uid {
            mode & 0o100 != 0
        } else if md.gid() == who.gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        if !can {
            bail!(
                "user {} cannot reach {}: {} (mode {:o}) is not traversable for it; use a --state-dir outside it (e.g. /var/tmp/datatier) or chmod o+x {}",
                who.name,
                path.display(),
                anc.display(),
                mode & 0o777,
                anc.display()
            );
        }
    }
    Ok(())
}

/// Find a server binary: the topology's override, then the env var, then
/// PATH, then `extra_dirs` (globs are not needed: pass concrete dirs).
pub fn find_binary(
    name: &str,
    configured: Option<&Path>,
    env_var: &str,
    extra_dirs: &[PathBuf],
) -> Result<PathBuf> {
    if let Some(p) = configured {
        if p.is_file() {
            return Ok(p.to_path_buf());
        }
        bail!(
            "{name} binary {} (from the topology's [binaries]) does not exist",
            p.display()
        );
    }
    if let Ok(p) = std::env::var(env_var) {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        bail!("{env_var}={} does not exist", p.display());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path).chain(extra_dirs.iter().cloned()) {
        let cand = dir.join(name);
        if cand.is_file() {
            return Ok(cand);
        }
    }
    bail!(
        "{name} not found on PATH; install it (scripts/setup.sh does) or set {env_var}, or use --provider existing"
    )
}

fn to_addr(s: &str) -> Option<SocketAddr> {
    s.to_socket_addrs().ok()?.next()
}

/// Who listens on a TCP port, from /proc/net/tcp{,6} and /proc/*/fd.
pub fn port_owner(port: u16) -> Option<(u32, String)> {
    let mut inodes = Vec::new();
    for f in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(file) = std::fs::File::open(f) else {
            continue;
        };
        for line in std::io::BufReader::new(file)
            .lines()
            .skip(1)
            .map_while(|l| l.ok())
        {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() < 10 || cols[3] != "0A" {
                continue; // not LISTEN
            }
            let p = cols[1]
                .rsplit(':')
                .next()
                .and_then(|h| u16::from_str_radix(h, 16).ok());
            if p == Some(port) {
                inodes.push(format!("socket:[{}]", cols[9]));
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(link) = std::fs::read_link(fd.path()) {
                if inodes.iter().any(|i| link.as_os_str() == i.as_str()) {
                    let comm =
                        std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
                    return Some((pid, comm.trim().to_string()));
                }
            }
        }
    }
    None
}

/// Fails with a message naming the address (and its owner, when it can be
/// found) if something already listens there.
pub fn check_port_free(addr: &str) -> Result<()> {
    let Some(sa) = to_addr(addr) else {
        bail!("cannot resolve {addr}")
    };
    match TcpListener::bind(sa) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            let owner = port_owner(sa.port())
                .map(|(pid, comm)| format!(" by {comm} (pid {pid})"))
                .unwrap_or_default();
            bail!("port {} on {} is already in use{owner}", sa.port(), sa.ip())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => {
            bail!("cannot listen on {addr}: the address is not on this machine (the local provider starts nodes on this machine only; use --provider existing for other hosts)")
        }
        Err(e) => bail!("cannot listen on {addr}: {e}"),
    }
}

/// Is something accepting connections at `addr`?
pub fn listening(addr: &str) -> bool {
    to_addr(addr)
        .map(|sa| TcpStream::connect_timeout(&sa, Duration::from_millis(200)).is_ok())
        .unwrap_or(false)
}

/// The last `n` lines of a log, for error messages.
pub fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// What `start` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    Spawned(u32),
    /// Our own process was already running; nothing was done.
    Reused(u32),
}

/// Start the process unless it already runs, record it in the manifest, and
/// wait (polling, up to `timeout`) until every `listen` address accepts
/// connections. If the process exits first, the error carries its log tail.
pub async fn start(
    state: &StateDir,
    rec: &ProcessRecord,
    run_as: Option<&RunAs>,
    timeout: Duration,
) -> Result<Started> {
    if let ProcState::Running(pid) = state_of(rec) {
        state.upsert(rec)?;
        return Ok(Started::Reused(pid));
    }
    for a in &rec.listen {
        check_port_free(a).with_context(|| format!("cannot start {}", rec.node))?;
    }
    std::fs::create_dir_all(&rec.dir)?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&rec.log)
        .with_context(|| format!("cannot open log {}", rec.log.display()))?;
    if let Some(u) = run_as {
        hand_over(&rec.dir, u)?;
    }
    let mut cmd = Command::new(&rec.program);
    cmd.args(&rec.args)
        .current_dir(&rec.dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .envs(rec.env.iter().map(|(k, v)| (k, v)));
    if let Some(u) = run_as {
        // std drops root's supplementary groups itself (setgroups(0)) before
        // setuid; a setgroups in pre_exec would run after setuid and fail.
        cmd.uid(u.uid).gid(u.gid);
        cmd.env("HOME", &rec.dir).env("USER", &u.name);
    }
    // SAFETY: setsid is async-signal-safe; it detaches the server from our
    // session so it survives datatier and its Ctrl-C.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot run {}", rec.program.display()))?;
    let pid = child.id();
    let mut f = std::fs::File::create(&rec.pidfile)?;
    writeln!(f, "{pid}")?;
    state.upsert(rec)?;
    let what = format!("{} to accept connections", rec.node);
    let res = crate::wait::until_default(&what, timeout, || {
        let exited = child.try_wait().ok().flatten();
        let ready = rec.listen.iter().all(|a| listening(a));
        async move {
            if let Some(status) = exited {
                return crate::wait::Poll::Ready(Err(status));
            }
            if ready {
                crate::wait::Poll::Ready(Ok(()))
            } else {
                crate::wait::Poll::Pending(format!("{} not listening yet", rec.listen.join(", ")))
            }
        }
    })
    .await;
    match res {
        Ok(Ok(())) => Ok(Started::Spawned(pid)),
        Ok(Err(status)) => bail!(
            "{} ({}) exited during start ({status}); last lines of {}:\n{}",
            rec.node,
            rec.program.display(),
            rec.log.display(),
            log_tail(&rec.log, 15)
        ),
        Err(e) => bail!(
            "{e}; last lines of {}:\n{}",
            rec.log.display(),
            log_tail(&rec.log, 15)
        ),
    }
}

fn state_of(rec: &ProcessRecord) -> ProcState {
    state(rec)
}

/// Stop a process: its stop signal, then SIGKILL if it has not exited
/// within `timeout`. Returns whether it was running.
pub async fn stop(rec: &ProcessRecord, timeout: Duration) -> Result<bool> {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let ProcState::Running(pid) = state(rec) else {
        let _ = std::fs::remove_file(&rec.pidfile);
        return Ok(false);
    };
    let p = Pid::from_raw(pid as i32);
    let sig = match rec.stop_signal {
        StopSignal::Term => Signal::SIGTERM,
        StopSignal::Int => Signal::SIGINT,
    };
    let _ = kill(p, sig);
    let gone = crate::wait::until_default(&format!("{} to exit", rec.node), timeout, || {
        // Reap it if it happens to be our child.
        let _ = nix::sys::wait::waitpid(p, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
        let alive = pid_runs(pid, &rec.program);
        async move {
            if alive {
                crate::wait::Poll::Pending("still running".into())
            } else {
                crate::wait::Poll::Ready(())
            }
        }
    })
    .await;
    if gone.is_err() {
        tracing::warn!(node = %rec.node, pid, "did not stop in time; sending SIGKILL");
        let _ = kill(p, Signal::SIGKILL);
        crate::wait::until_default(
            &format!("{} to die", rec.node),
            Duration::from_secs(5),
            || {
                let _ = nix::sys::wait::waitpid(p, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
                let alive = pid_runs(pid, &rec.program);
                async move {
                    if alive {
                        crate::wait::Poll::Pending("still running after SIGKILL".into())
                    } else {
                        crate::wait::Poll::Ready(())
                    }
                }
            },
        )
        .await?;
    }
    let _ = std::fs::remove_file(&rec.pidfile);
    Ok(true)
}

/// Stop every process of a state dir, last started first. Returns the nodes
/// that were running.
pub async fn stop_all(state: &StateDir, timeout: Duration) -> Result<Vec<String>> {
    let mut stopped = Vec::new();
    for rec in state.manifest()?.iter().rev() {
        if stop(rec, timeout).await? {
            stopped.push(rec.node.clone());
        }
    }
    Ok(stopped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_in_use_names_port_and_owner() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let e = check_port_free(&format!("127.0.0.1:{port}"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("port {port} on 127.0.0.1 is already in use")),
            "{e}"
        );
        assert!(e.contains(&format!("pid {}", std::process::id())), "{e}");
        drop(l);
        check_port_free(&format!("127.0.0.1:{port}")).unwrap();
    }

    #[tokio::test]
    async fn start_reuse_stop_a_real_process() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path(), "t");
        // python3 is on every machine this project targets; it listens like a server would.
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let node = format!("127.0.0.1:{port}");
        let py = find_binary("python3", None, "DATATIER_TEST_PY", &[]).unwrap();
        let rec = ProcessRecord::new(
            &node,
            py,
            vec![
                "-c".into(),
                format!("import socket,time;s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(('127.0.0.1',{port}));s.listen();time.sleep(60)"),
            ],
            state.node_dir(&node),
        );
        let pid = match start(&state, &rec, None, Duration::from_secs(10))
            .await
            .unwrap()
        {
            Started::Spawned(p) => p,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            start(&state, &rec, None, Duration::from_secs(10))
                .await
                .unwrap(),
            Started::Reused(pid)
        );
        assert_eq!(state.manifest().unwrap().len(), 1);
        assert_eq!(
            stop_all(&state, Duration::from_secs(5)).await.unwrap(),
            vec![node.clone()]
        );
        assert_eq!(super::state(&rec), ProcState::Stopped);
        assert!(!listening(&node));
    }

    #[tokio::test]
    async fn a_process_that_dies_reports_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path(), "t");
        let sh = find_binary("sh", None, "DATATIER_TEST_SH", &[]).unwrap();
        let rec = ProcessRecord::new(
            "127.0.0.1:1",
            sh,
            vec![
                "-c".into(),
                "echo 'fatal: bad config line 3'; exit 7".into(),
            ],
            state.node_dir("127.0.0.1:1"),
        );
        let mut rec = rec;
        rec.listen = vec!["127.0.0.1:29999".into()];
        let e = start(&state, &rec, None, Duration::from_secs(10))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("exited during start") && e.contains("fatal: bad config line 3"),
            "{e}"
        );
    }
}
