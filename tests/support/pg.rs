//! A throwaway Postgres for tests, started through datatier's own local
//! provider (`provider::local::{run_as, hand_over, ProcessRecord, start,
//! stop}`): `initdb` as the `postgres` user (Postgres refuses root), then
//! `postgres -D ... -p PORT -k DIR` on 127.0.0.1 with small memory
//! settings. Stopped (fast shutdown) when dropped.
//!
//! Binaries: `DATATIER_PG_BIN` (a directory), else
//! `/usr/lib/postgresql/{15,16,17}/bin` (scripts/setup.sh installs 15).
//! When none is found, [`Pg::start`] returns `None` and says why, so the
//! calling test can print that it skipped.

#![allow(dead_code)]

use super::Scratch;
use datatier::provider::local::{self, ProcessRecord, StateDir, StopSignal};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub struct Pg {
    pub port: u16,
    /// Set when the server requires a password (scram over TCP).
    pub password: Option<String>,
    rec: ProcessRecord,
    rt: tokio::runtime::Runtime,
    pub dir: PathBuf,
}

/// The directory holding initdb/postgres/psql, or why there is none.
pub fn bin_dir() -> Result<PathBuf, String> {
    if let Ok(d) = std::env::var("DATATIER_PG_BIN") {
        let d = PathBuf::from(d);
        return if d.join("postgres").is_file() {
            Ok(d)
        } else {
            Err(format!(
                "DATATIER_PG_BIN={} has no postgres binary",
                d.display()
            ))
        };
    }
    for v in ["15", "16", "17"] {
        let d = PathBuf::from(format!("/usr/lib/postgresql/{v}/bin"));
        if d.join("postgres").is_file() && d.join("initdb").is_file() {
            return Ok(d);
        }
    }
    Err("no Postgres server binaries (install postgresql-15: scripts/setup.sh, or set DATATIER_PG_BIN)".into())
}

impl Pg {
    /// Start a server on `port` (from the test file's range); `password`
    /// makes TCP connections require it. `None` (with a message on stderr)
    /// when Postgres is not installed.
    pub fn start(scratch: &Scratch, port: u16, password: Option<&str>) -> Option<Pg> {
        let bin = match bin_dir() {
            Ok(b) => b,
            Err(why) => {
                eprintln!("SKIPPED: {why}");
                return None;
            }
        };
        let dir = scratch.path().join(format!("pg-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let who = local::run_as("postgres").expect("an unprivileged user for postgres");
        if let Some(u) = &who {
            local::hand_over(&dir, u).unwrap();
        }
        let data = dir.join("data");
        let mut initdb = Command::new(bin.join("initdb"));
        initdb.args([
            "-D",
            data.to_str().unwrap(),
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
            "--locale=C",
        ]);
        if let Some(pw) = password {
            let pwfile = dir.join("pwfile");
            std::fs::write(&pwfile, pw).unwrap();
            if let Some(u) = &who {
                local::hand_over(&pwfile, u).unwrap();
            }
            initdb.args(["--auth-local=trust", "--auth-host=scram-sha-256"]);
            initdb.arg(format!("--pwfile={}", pwfile.display()));
        } else {
            initdb.args(["--auth=trust"]);
        }
        if let Some(u) = &who {
            // std drops root's supplementary groups before setuid
            initdb
                .uid(u.uid)
                .gid(u.gid)
                .env("HOME", &dir)
                .env("USER", &u.name);
        }
        let out = initdb.current_dir(&dir).output().expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let node = format!("127.0.0.1:{port}");
        let mut rec = ProcessRecord::new(
            &node,
            bin.join("postgres"),
            vec![
                "-D".into(),
                data.to_string_lossy().into_owned(),
                "-p".into(),
                port.to_string(),
                "-k".into(),
                dir.to_string_lossy().into_owned(),
                "-c".into(),
                "listen_addresses=127.0.0.1".into(),
                "-c".into(),
                "shared_buffers=32MB".into(),
                "-c".into(),
                "max_connections=40".into(),
                "-c".into(),
                "fsync=off".into(),
                "-c".into(),
                "full_page_writes=off".into(),
                "-c".into(),
                "max_wal_size=256MB".into(),
            ],
            dir.clone(),
        );
        rec.user = who.as_ref().map(|u| u.name.clone());
        rec.stop_signal = StopSignal::Int;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let state = StateDir::new(&dir, "state");
        rt.block_on(local::start(
            &state,
            &rec,
            who.as_ref(),
            Duration::from_secs(60),
        ))
        .unwrap_or_else(|e| panic!("cannot start postgres on port {port}: {e:#}"));
        let pg = Pg {
            port,
            password: password.map(str::to_string),
            rec,
            rt,
            dir,
        };
        // listening is not yet accepting queries: poll until it answers
        super::eventually(
            "postgres to accept queries",
            Duration::from_secs(60),
            || pg.try_psql("postgres", "SELECT 1").ok(),
        );
        Some(pg)
    }

    /// `postgres://postgres[:pw]@127.0.0.1:PORT/DB`.
    pub fn url(&self, db: &str) -> String {
        match &self.password {
            Some(pw) => format!("postgres://postgres:{pw}@127.0.0.1:{}/{db}", self.port),
            None => format!("postgres://postgres@127.0.0.1:{}/{db}", self.port),
        }
    }

    /// The URL without the password (it then comes from elsewhere).
    pub fn url_without_password(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    fn psql_cmd(&self, db: &str, sql: &str) -> Command {
        let bin = bin_dir().unwrap();
        let psql = if bin.join("psql").is_file() {
            bin.join("psql")
        } else {
            PathBuf::from("psql")
        };
        let mut c = Command::new(psql);
        c.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            "postgres",
            "-d",
            db,
        ])
        .args([
            "-X",
            "-A",
            "-t",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-F",
            "\u{1f}",
            "-c",
            sql,
        ])
        .env_remove("PGPASSWORD");
        if let Some(pw) = &self.password {
            c.env("PGPASSWORD", pw);
        }
        c
    }

    pub fn try_psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let out = self.psql_cmd(db, sql).output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Run SQL with psql (unaligned, tuples only, fields separated by
    /// U+001F); panics on error.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        self.try_psql(db, sql)
            .unwrap_or_else(|e| panic!("psql {sql:?} failed: {e}"))
    }

    /// Rows as vectors of fields.
    pub fn rows(&self, db: &str, sql: &str) -> Vec<Vec<String>> {
        self.psql(db, sql)
            .lines()
            .map(|l| l.split('\u{1f}').map(str::to_string).collect())
            .collect()
    }

    /// One value.
    pub fn one(&self, db: &str, sql: &str) -> String {
        self.psql(db, sql).trim_end_matches('\n').to_string()
    }

    pub fn create_db(&self, name: &str) {
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""));
    }

    pub fn data_dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let _ = self
            .rt
            .block_on(local::stop(&self.rec, Duration::from_secs(20)));
    }
}
