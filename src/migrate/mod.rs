//! Guided migration runs: named steps with preflight checks, a journal on
//! disk so an interrupted run resumes where it stopped, confirmations unless
//! `--yes`, progress on stderr, and a final verification that proves nothing
//! was lost.
//!
//! Every migration (`sqlite-to-postgres` today, `mongo-to-sharded` and
//! `redis-to-cluster` later) has the same shape:
//!
//! ```text
//! preflight (read only) -> plan (printed) -> confirm -> steps... -> verify
//!                                     journal.json records each finished step
//! ```
//!
//! This module holds what every migration shares, so each one only writes
//! its own steps:
//! - [`journal`]: the on-disk record of a run. A step is marked done only
//!   after its effect is durable on the target, so a `kill -9` at any point
//!   leaves a journal that under-reports, never over-reports; every step is
//!   written to be redone safely.
//! - [`progress`]: per-task progress on stderr: bars on a terminal, plain
//!   lines (rate-limited) when stderr is a file or a CI log.
//! - [`confirm`]: asks before the first write unless `--yes`; refuses
//!   clearly when there is no terminal to ask on.
//! - [`redact_url`]: connection strings are shown with the password masked,
//!   in plans, logs, errors and journals alike.
//! - [`run_dir`]: where a run keeps its journal and side files, derived from
//!   what it migrates so `--resume` finds it again.

pub mod journal;
pub mod mongo_to_sharded;
pub mod progress;
pub mod sqlite_pg;

pub use journal::{Journal, RunStatus, StepRecord};
pub use progress::{Progress, Task};

use anyhow::{bail, Result};
use sha2::{Digest, Sha256};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

/// Ask `question` on stderr and read y/N from stdin, unless `yes`; a "no"
/// stops the run before anything is written.
///
/// Without a terminal on stdin (CI, pipes, cron) nobody can answer, so the
/// run is refused with a hint instead of hanging or guessing.
pub fn confirm(question: &str, yes: bool) -> Result<()> {
    ask(
        question,
        yes,
        "re-run with --yes to proceed (or --dry-run to only see the plan)",
        "nothing was changed",
    )
}

/// [`confirm`] with the run's own words: `no_terminal` says how to go on
/// without a terminal, `declined` what a "no" leaves behind.
pub fn ask(question: &str, yes: bool, no_terminal: &str, declined: &str) -> Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!("{question} needs confirmation, but stdin is not a terminal; {no_terminal}");
    }
    let mut err = std::io::stderr().lock();
    write!(err, "{question} [y/N] ")?;
    err.flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    match line.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => bail!("not confirmed; {declined}"),
    }
}

/// The directory a run keeps its journal in:
/// `<state root>/migrate/<kind>-<label>-<hash>`, where the hash covers
/// `identity` (source and target, passwords excluded), so the same
/// migration finds the same directory and a different one never does.
pub fn run_dir(state_root: &Path, kind: &str, label: &str, identity: &[&str]) -> PathBuf {
    let mut h = Sha256::new();
    for part in identity {
        h.update(part.as_bytes());
        h.update([0]);
    }
    let hash = hex::encode(&h.finalize()[..4]);
    let label: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    state_root
        .join("migrate")
        .join(format!("{kind}-{label}-{hash}"))
}

/// A connection string with its password replaced by `***`.
///
/// Handles URLs (`scheme://user:pass@host/db?password=...`) and libpq
/// key/value strings (`host=... password='x y'`). Used on every string that
/// may contain a target address before it is printed, logged or stored.
pub fn redact_url(s: &str) -> String {
    if let Some(scheme_end) = s.find("://") {
        let (scheme, rest) = s.split_at(scheme_end + 3);
        // userinfo ends at the last '@' before the path/query.
        let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (auth, tail) = rest.split_at(auth_end);
        let auth = match auth.rfind('@') {
            Some(at) => {
                let (userinfo, hosts) = auth.split_at(at);
                match userinfo.find(':') {
                    Some(c) => format!("{}:***{hosts}", &userinfo[..c]),
                    None => format!("{userinfo}{hosts}"),
                }
            }
            None => auth.to_string(),
        };
        let tail = redact_query_password(tail);
        return format!("{scheme}{auth}{tail}");
    }
    redact_keyvalue_password(s)
}

fn redact_query_password(tail: &str) -> String {
    let Some(q) = tail.find('?') else {
        return tail.to_string();
    };
    let (path, query) = tail.split_at(q + 1);
    let parts: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => kv.to_string(),
        })
        .collect();
    format!("{path}{}", parts.join("&"))
}

fn redact_keyvalue_password(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(pos) = find_ci(rest, "password") {
        let after = &rest[pos + "password".len()..];
        let trimmed = after.trim_start();
        let is_key =
            (pos == 0 || rest[..pos].ends_with(char::is_whitespace)) && trimmed.starts_with('=');
        if !is_key {
            out.push_str(&rest[..pos + "password".len()]);
            rest = after;
            continue;
        }
        out.push_str(&rest[..pos]);
        out.push_str("password=***");
        let value = trimmed[1..].trim_start();
        let consumed = if let Some(v) = value.strip_prefix('\'') {
            // quoted value: up to the next unescaped quote
            let mut end = v.len();
            let mut esc = false;
            for (i, ch) in v.char_indices() {
                if esc {
                    esc = false;
                } else if ch == '\\' {
                    esc = true;
                } else if ch == '\'' {
                    end = i + 1;
                    break;
                }
            }
            1 + end
        } else {
            value.find(char::is_whitespace).unwrap_or(value.len())
        };
        rest = &value[consumed.min(value.len())..];
    }
    out.push_str(rest);
    out
}

fn find_ci(hay: &str, needle: &str) -> Option<usize> {
    hay.to_ascii_lowercase().find(needle)
}

/// A count with thousands separators, for plans and reports (`3,550,989`).
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Byte sizes for humans (`567.1 MB`).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_in_every_form() {
        for (input, want) in [
            (
                "postgres://app:s3cr%40t@db.example:5432/shop",
                "postgres://app:***@db.example:5432/shop",
            ),
            (
                "postgresql://app:p@ss@host/db?sslmode=disable",
                "postgresql://app:***@host/db?sslmode=disable",
            ),
            (
                "postgres://app@host/db?password=hunter2&application_name=x",
                "postgres://app@host/db?password=***&application_name=x",
            ),
            ("postgres://host/db", "postgres://host/db"),
            (
                "host=127.0.0.1 password=hunter2 user=app",
                "host=127.0.0.1 password=*** user=app",
            ),
            (
                "host=h password = 'a b\\' c' dbname=x",
                "host=h password=*** dbname=x",
            ),
            (
                "mongodb://u:pw@a:1,b:2/?replicaSet=r",
                "mongodb://u:***@a:1,b:2/?replicaSet=r",
            ),
        ] {
            let got = redact_url(input);
            assert_eq!(got, want, "{input}");
            assert!(!got.contains("hunter2") && !got.contains("s3cr"));
        }
    }

    #[test]
    fn run_dirs_are_stable_and_distinct() {
        let root = Path::new("/s");
        let a = run_dir(
            root,
            "sqlite-to-postgres",
            "app.db",
            &["/x/app.db", "pg://h/db"],
        );
        assert_eq!(
            a,
            run_dir(
                root,
                "sqlite-to-postgres",
                "app.db",
                &["/x/app.db", "pg://h/db"]
            )
        );
        assert_ne!(
            a,
            run_dir(
                root,
                "sqlite-to-postgres",
                "app.db",
                &["/x/app.db", "pg://h/db2"]
            )
        );
        assert!(a
            .to_string_lossy()
            .starts_with("/s/migrate/sqlite-to-postgres-app_db-"));
    }

    #[test]
    fn numbers_for_humans() {
        assert_eq!(thousands(3550989), "3,550,989");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(human_bytes(567_091_200), "567.1 MB");
        assert_eq!(human_bytes(12), "12 B");
    }
}
