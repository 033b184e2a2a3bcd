//! Shared helpers for the integration tests: run the real `datatier`
//! binary in a scratch directory, and always clean up the servers a test
//! started (even when it panics).
//!
//! Port ranges, so tests that run in parallel never collide (all below
//! 32768; a Redis Cluster node also uses port + 10000):
//!
//! | tests                  | ports          |
//! |------------------------|----------------|
//! | built-in defaults      | as declared (7000-7005, 6380-6382/26380-26382, 15432-15434/16432, 27017...) |
//! | redis_cluster.rs       | 21000-21999    |
//! | redis_sentinel.rs      | 22000-22499    |
//! | postgres.rs            | 23000-23499    |
//! | migrate_*.rs           | 24000-24499    |
//! | mongo*.rs              | 25000-25499    |
//! | lib unit tests         | 19900-19999    |
//! | benchmarks (scripts/)  | 20000-20999    |
//!
//! Tests that use a built-in default's fixed ports take [`default_ports_lock`]
//! so two of them never run at once.

#![allow(dead_code)]

pub mod pg;

use assert_cmd::Command;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A scratch directory readable by unprivileged server users (postgres
/// refuses root, and a root-only 0700 temp dir would lock it out).
pub struct Scratch {
    pub dir: tempfile::TempDir,
    /// Topologies to `down --purge` when the scratch is dropped.
    cleanup: Mutex<Vec<String>>,
}

impl Scratch {
    pub fn new() -> Self {
        let base = std::env::temp_dir().join("datatier-tests");
        std::fs::create_dir_all(&base).unwrap();
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755)).unwrap();
        let dir = tempfile::Builder::new()
            .prefix("t")
            .tempdir_in(&base)
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        Scratch {
            dir,
            cleanup: Mutex::new(Vec::new()),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Write a file in the scratch dir and return its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// `datatier ARGS...` run in the scratch dir (state in `./.datatier`).
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::cargo_bin("datatier").unwrap();
        c.current_dir(self.path())
            .args(args)
            .env_remove("DATATIER_STATE_DIR")
            .timeout(Duration::from_secs(300));
        c
    }

    /// Run and return the output (no assertion).
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Run, assert exit code 0, return stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "datatier {args:?} failed ({:?})\nstdout:\n{}\nstderr:\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Remember to run `datatier down TOPOLOGY --purge` on drop.
    pub fn cleanup(&self, topology: &str) {
        self.cleanup.lock().unwrap().push(topology.to_string());
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for t in self.cleanup.lock().unwrap().drain(..).rev() {
            let _ = self.run(&["down", &t, "--purge"]);
        }
    }
}

static DEFAULT_PORTS: Mutex<()> = Mutex::new(());

/// Serialize tests that use a built-in default's fixed ports.
pub fn default_ports_lock() -> MutexGuard<'static, ()> {
    DEFAULT_PORTS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Poll `f` every 50 ms until it returns `Some`, or panic after `timeout`
/// with `what`.
pub fn eventually<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Run an outside program (redis-cli, psql, ...) and return stdout; panics
/// with its stderr on failure.
pub fn sh(program: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Is a TCP port on 127.0.0.1 accepting connections?
pub fn listening(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
        .is_ok()
}
