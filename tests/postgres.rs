//! Postgres streaming replicas behind PgBouncer, against real servers:
//! postgres, pg_basebackup, pg_rewind and pgbouncer started through
//! datatier's local provider, and checked independently with psql and raw
//! connections, not only through `datatier status`.
//!
//! Ports: the built-in default (15432-15434, 16432) under
//! `support::default_ports_lock()`; everything else in 23000-23499.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{eventually, Scratch};

/// The servers these tests need, or why they cannot run.
fn servers_missing() -> Option<String> {
    let pg = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| e.path().join("bin/pg_basebackup").is_file())
        || std::env::var("DATATIER_PG_BIN_DIR").is_ok();
    let bouncer = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]
        .iter()
        .any(|p| Path::new(p).is_file())
        || std::env::var("DATATIER_PGBOUNCER_BIN").is_ok();
    let psql = std::process::Command::new("psql")
        .arg("--version")
        .output()
        .is_ok();
    match (pg, bouncer, psql) {
        (true, true, true) => None,
        _ => Some(format!(
            "postgres: {pg}, pgbouncer: {bouncer}, psql: {psql} (scripts/setup.sh installs them)"
        )),
    }
}

macro_rules! require_servers {
    () => {
        if let Some(why) = servers_missing() {
            eprintln!("skipped: needs postgres, pg_basebackup, pgbouncer and psql: {why}");
            return;
        }
    };
}

/// The state dir of topology `name` in a scratch dir.
fn state(s: &Scratch, name: &str) -> PathBuf {
    s.path().join(".datatier").join(name)
}

fn secret(s: &Scratch, name: &str, file: &str) -> String {
    std::fs::read_to_string(state(s, name).join(file))
        .unwrap()
        .trim()
        .to_string()
}

/// Run psql against `port` (127.0.0.1) and return its unaligned output.
fn psql(port: u16, user: &str, password: &str, db: &str, sql: &str) -> String {
    let out = std::process::Command::new("psql")
        .args([
            "-XAtq",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            user,
            "-d",
            db,
            "-c",
            sql,
        ])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "5")
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "psql -p {port} -U {user} {db} -c {sql:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `psql` that may fail (for polling).
fn try_psql(port: u16, user: &str, password: &str, db: &str, sql: &str) -> Option<String> {
    let out = std::process::Command::new("psql")
        .args([
            "-XAtq",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            user,
            "-d",
            db,
            "-c",
            sql,
        ])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "2")
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Streaming replicas as the primary's pg_stat_replication lists them.
fn streaming(port: u16, admin: &str) -> usize {
    try_psql(
        port,
        "postgres",
        admin,
        "postgres",
        "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'",
    )
    .and_then(|s| s.parse().ok())
    .unwrap_or(0)
}

/// The uid a process runs as.
fn uid_of(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("Uid:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Every process under the pids recorded in the state dir (postmasters,
/// their backends, pgbouncer), with its uid.
fn server_processes(state: &Path) -> Vec<(u32, u32, String)> {
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("processes.json")).unwrap())
            .unwrap();
    let roots: Vec<u32> = manifest
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| {
            std::fs::read_to_string(r["pidfile"].as_str()?)
                .ok()?
                .trim()
                .parse()
                .ok()
        })
        .collect();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let ppid: u32 = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().nth(1))
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        if roots.contains(&pid) || roots.contains(&ppid) {
            let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
            if let Some(uid) = uid_of(pid) {
                out.push((pid, uid, comm.trim().to_string()));
            }
        }
    }
    out
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn default_layout_serves_writes_reads_and_heals() {
    require_servers!();
    let _ports = support::default_ports_lock();
    let s = Scratch::new();
    s.cleanup("postgres");
    let t0 = Instant::now();
    let out = s.ok(&["init", "postgres"]);
    eprintln!("init postgres took {:.1}s", t0.elapsed().as_secs_f64());
    assert!(out.starts_with("postgres (postgres): OK"), "{out}");
    let st = state(&s, "postgres");
    let admin = secret(&s, "postgres", "admin.pass");
    let app = secret(&s, "postgres", "owner.pass");

    // Secrets: private files, never in output.
    for f in ["admin.pass", "replication.pass", "owner.pass", "app.pgpass"] {
        assert_eq!(mode(&st.join(f)), 0o600, "{f}");
    }
    assert_eq!(mode(&st.join("127.0.0.1-16432/userlist.txt")), 0o600);
    let userlist = std::fs::read_to_string(st.join("127.0.0.1-16432/userlist.txt")).unwrap();
    assert!(
        userlist.contains("\"app\" \"SCRAM-SHA-256$4096:"),
        "{userlist}"
    );
    let env = s.ok(&["env", "postgres", "--format", "json"]);
    let envj: serde_json::Value = serde_json::from_str(&env).unwrap();
    assert_eq!(envj["DATABASE_URL"], "postgres://app@127.0.0.1:16432/app");
    assert_eq!(
        envj["DATABASE_URL_RO"],
        "postgres://app@127.0.0.1:16432/app_ro"
    );
    let printed = format!(
        "{out}{env}{}{}",
        s.ok(&["plan", "postgres", "-o", "json"]),
        String::from_utf8_lossy(&s.run(&["status", "postgres", "-o", "json"]).stdout)
    );
    for pw in [&admin, &app, &secret(&s, "postgres", "replication.pass")] {
        assert!(!printed.contains(pw.as_str()), "a password was printed");
        assert!(
            !userlist.contains(pw.as_str()),
            "a plain password in the auth file"
        );
    }

    // Writes through PgBouncer `app`, reads back through `app_ro` from a replica.
    psql(
        16432,
        "app",
        &app,
        "app",
        "CREATE TABLE orders (id int PRIMARY KEY, item text); INSERT INTO orders SELECT g, 'item ' || g FROM generate_series(1, 3) g",
    );
    assert_eq!(
        psql(
            15432,
            "postgres",
            &admin,
            "postgres",
            "SELECT pg_is_in_recovery()"
        ),
        "f"
    );
    let ro = eventually(
        "rows on a replica through app_ro",
        Duration::from_secs(20),
        || {
            try_psql(
                16432,
                "app",
                &app,
                "app_ro",
                "SELECT count(*) || ' ' || pg_is_in_recovery() FROM orders",
            )
            .filter(|r| r == "3 true")
        },
    );
    assert_eq!(ro, "3 true");
    // Writes through app_ro fail: it is read-only.
    assert!(try_psql(
        16432,
        "app",
        &app,
        "app_ro",
        "INSERT INTO orders VALUES (9, 'x')"
    )
    .is_none());
    // pg_stat_replication on the primary, independently of datatier.
    let rows = psql(
        15432,
        "postgres",
        &admin,
        "postgres",
        "SELECT application_name || ' ' || state FROM pg_stat_replication ORDER BY 1",
    );
    assert_eq!(
        rows, "replica_127_0_0_1_15433 streaming\nreplica_127_0_0_1_15434 streaming",
        "{rows}"
    );
    let slots = psql(
        15432,
        "postgres",
        &admin,
        "postgres",
        "SELECT slot_name || ' ' || active FROM pg_replication_slots ORDER BY 1",
    );
    assert_eq!(
        slots,
        "replica_127_0_0_1_15433 true\nreplica_127_0_0_1_15434 true"
    );
    assert_eq!(
        psql(15432, "postgres", &admin, "postgres", "SHOW data_checksums"),
        "on"
    );
    let pools = psql(16432, "postgres", &admin, "pgbouncer", "SHOW CONFIG");
    assert!(pools.contains("pool_mode|transaction"), "{pools}");
    assert!(pools.contains("max_client_conn|1000"), "{pools}");

    // Nothing runs as root.
    let procs = server_processes(&st);
    assert!(procs.len() >= 4, "{procs:?}");
    for (pid, uid, comm) in &procs {
        assert_ne!(*uid, 0, "{comm} (pid {pid}) runs as root");
    }

    // Idempotent: nothing to do, data kept.
    assert!(s.ok(&["plan", "postgres"]).contains("nothing to do"));
    let again = s.ok(&["init", "postgres"]);
    assert!(again.starts_with("postgres (postgres): OK"), "{again}");
    assert_eq!(
        psql(16432, "app", &app, "app", "SELECT count(*) FROM orders"),
        "3"
    );
    let prom =
        String::from_utf8(s.run(&["status", "postgres", "-o", "prometheus"]).stdout).unwrap();
    assert!(
        prom.contains(
            "datatier_pg_replica_lag_bytes{topology=\"postgres\",node=\"127.0.0.1:15434\"}"
        ),
        "{prom}"
    );

    // A replica stops: status is CRITICAL and names it; init brings it back.
    let pid: i32 = std::fs::read_to_string(st.join("127.0.0.1-15434/server.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    eventually("replica 15434 to stop", Duration::from_secs(30), || {
        (!support::listening(15434)).then_some(())
    });
    let st_out = s.run(&["status", "postgres"]);
    assert_eq!(st_out.status.code(), Some(2), "status exit code");
    let text = String::from_utf8_lossy(&st_out.stdout);
    assert!(
        text.contains("CRITICAL replica_streaming 127.0.0.1:15434: replica 127.0.0.1:15434 is missing from pg_stat_replication"),
        "{text}"
    );
    assert_eq!(streaming(15432, &admin), 1);
    psql(
        16432,
        "app",
        &app,
        "app",
        "INSERT INTO orders VALUES (4, 'while a replica was down')",
    );
    s.ok(&["init", "postgres"]);
    eventually(
        "two streaming replicas again",
        Duration::from_secs(30),
        || (streaming(15432, &admin) == 2).then_some(()),
    );
    let caught_up = eventually(
        "the restarted replica to catch up",
        Duration::from_secs(30),
        || {
            try_psql(
                15434,
                "postgres",
                &admin,
                "app",
                "SELECT count(*) FROM orders",
            )
            .filter(|c| c == "4")
        },
    );
    assert_eq!(caught_up, "4");
    assert_eq!(s.run(&["status", "postgres"]).status.code(), Some(0));
}

/// A client inserting through PgBouncer in a loop: every acknowledged id,
/// the errors it saw and its worst latency.
struct Writer {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<i64>>>,
    errors: Arc<Mutex<Vec<String>>>,
    worst: Arc<Mutex<Duration>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(port: u16, password: String) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let worst = Arc::new(Mutex::new(Duration::ZERO));
        let (s2, a2, e2, w2) = (stop.clone(), acked.clone(), errors.clone(), worst.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let connect = || async {
                    let mut cfg = tokio_postgres::Config::new();
                    cfg.host("127.0.0.1")
                        .port(port)
                        .user("app")
                        .password(password.as_str())
                        .dbname("app")
                        .connect_timeout(Duration::from_secs(5));
                    let (c, conn) = cfg.connect(tokio_postgres::NoTls).await?;
                    tokio::spawn(conn);
                    Ok::<_, tokio_postgres::Error>(c)
                };
                let mut client = connect().await.expect("the writer connects");
                let mut id: i64 = 0;
                while !s2.load(Ordering::Relaxed) {
                    id += 1;
                    let t = Instant::now();
                    match client
                        .simple_query(&format!("INSERT INTO writes (id) VALUES ({id})"))
                        .await
                    {
                        Ok(_) => {
                            a2.lock().unwrap().push(id);
                            let mut w = w2.lock().unwrap();
                            *w = (*w).max(t.elapsed());
                        }
                        Err(e) => {
                            e2.lock().unwrap().push(format!("insert {id}: {e}"));
                            if client.is_closed() {
                                match connect().await {
                                    Ok(c) => client = c,
                                    Err(e) => e2.lock().unwrap().push(format!("reconnect: {e}")),
                                }
                            }
                        }
                    }
                }
            });
        });
        Writer {
            stop,
            acked,
            errors,
            worst,
            thread: Some(thread),
        }
    }

    fn count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    fn finish(mut self) -> (Vec<i64>, Vec<String>, Duration) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap();
        (
            self.acked.lock().unwrap().clone(),
            self.errors.lock().unwrap().clone(),
            *self.worst.lock().unwrap(),
        )
    }
}

const SWITCH_TOPOLOGY: &str = r#"
name = "pg-switch"
kind = "postgres"

[postgres]
port = 23000
replicas = 2
max_connections = 50

[config]
shared_buffers = "16MB"
fsync = false                 # a throw-away test layout
synchronous_commit = "on"

[pgbouncer]
port = 23010
pool_mode = "transaction"
default_pool_size = 5
min_pool_size = 1
"#;

#[test]
fn switchover_under_write_load_loses_no_acknowledged_write() {
    require_servers!();
    let s = Scratch::new();
    s.cleanup("pg-switch");
    let file = s.write("switch.toml", SWITCH_TOPOLOGY);
    let file = file.to_str().unwrap();
    s.ok(&["init", file]);
    let admin = secret(&s, "pg-switch", "admin.pass");
    let app = secret(&s, "pg-switch", "owner.pass");
    psql(
        23010,
        "app",
        &app,
        "app",
        "CREATE TABLE writes (id bigint PRIMARY KEY, at timestamptz DEFAULT now())",
    );

    let writer = Writer::start(23010, app.clone());
    eventually("the writer to get going", Duration::from_secs(20), || {
        (writer.count() > 100).then_some(())
    });
    let out = s.ok(&["switchover", file, "--to", "127.0.0.1:23002", "-o", "json"]);
    let before_stop = writer.count();
    eventually("writes on the new primary", Duration::from_secs(20), || {
        (writer.count() > before_stop + 100).then_some(())
    });
    let (acked, errors, worst) = writer.finish();
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    eprintln!(
        "switchover: writes paused {:.1} ms by datatier's clock; the client's worst insert took {:.1} ms; {} inserts acknowledged",
        j["switchover"]["write_pause_seconds"].as_f64().unwrap() * 1000.0,
        worst.as_secs_f64() * 1000.0,
        acked.len()
    );
    assert!(
        errors.is_empty(),
        "the client saw errors, not just a pause: {errors:?}"
    );
    assert_eq!(j["switchover"]["from"], "127.0.0.1:23000");
    assert_eq!(j["switchover"]["to"], "127.0.0.1:23002");
    assert_eq!(j["status"]["status"], "ok", "{out}");

    // The new layout, checked on the servers themselves.
    assert_eq!(
        psql(
            23002,
            "postgres",
            &admin,
            "postgres",
            "SELECT pg_is_in_recovery()"
        ),
        "f"
    );
    for port in [23000, 23001] {
        assert_eq!(
            psql(
                port,
                "postgres",
                &admin,
                "postgres",
                "SELECT pg_is_in_recovery()"
            ),
            "t"
        );
    }
    eventually(
        "both replicas streaming from 23002",
        Duration::from_secs(30),
        || (streaming(23002, &admin) == 2).then_some(()),
    );
    // Every acknowledged write is on the new primary and on every replica.
    let max = *acked.last().unwrap();
    let want = format!("{} {}", acked.len(), max);
    let sql = format!("SELECT count(*) || ' ' || max(id) FROM writes WHERE id <= {max}");
    assert_eq!(psql(23002, "postgres", &admin, "app", &sql), want);
    let missing = psql(
        23002,
        "postgres",
        &admin,
        "app",
        &format!(
            "SELECT count(*) FROM unnest(ARRAY[{}]::bigint[]) a(id) WHERE NOT EXISTS (SELECT 1 FROM writes w WHERE w.id = a.id)",
            acked.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(",")
        ),
    );
    assert_eq!(missing, "0", "acknowledged writes are missing");
    for port in [23000, 23001] {
        eventually(
            "the replica to hold every write",
            Duration::from_secs(30),
            || try_psql(port, "postgres", &admin, "app", &sql).filter(|r| *r == want),
        );
    }
    // init keeps the new primary: nothing to do.
    let plan = s.ok(&["plan", file]);
    assert!(plan.contains("nothing to do"), "{plan}");
    let st = s.run(&["status", file]);
    assert_eq!(
        st.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&st.stdout)
    );

    // Someone else's view of the same servers (provider existing) agrees.
    let st = state(&s, "pg-switch");
    let existing = s.write(
        "existing.toml",
        &format!(
            "name = \"pg-existing\"\nkind = \"postgres\"\nprovider = \"existing\"\n[postgres]\nnodes = [\"127.0.0.1:23000\", \"127.0.0.1:23001\", \"127.0.0.1:23002\"]\n[admin]\npassword_file = \"{}\"\n[database]\npassword_file = \"{}\"\n[replication]\npassword_file = \"{}\"\n[pgbouncer]\nport = 23010\ndefault_pool_size = 5\nmin_pool_size = 1\n",
            st.join("admin.pass").display(),
            st.join("owner.pass").display(),
            st.join("replication.pass").display()
        ),
    );
    let existing = existing.to_str().unwrap();
    let ex = s.run(&["status", existing]);
    assert_eq!(
        ex.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ex.stdout)
    );
    let ex_plan = s.ok(&["plan", existing]);
    assert!(
        ex_plan
            .lines()
            .skip(1)
            .all(|l| l.contains("record 127.0.0.1:23002 as the current primary")),
        "{ex_plan}"
    );

    // And back, choosing the target automatically.
    let back = s.ok(&["switchover", file]);
    assert!(back.starts_with("switchover 127.0.0.1:23002 -> "), "{back}");
    assert!(back.contains("): OK"), "{back}");
    let rows = psql(23010, "app", &app, "app", "SELECT count(*) FROM writes");
    assert_eq!(rows, acked.len().to_string());
}

#[test]
fn single_primary_without_pgbouncer() {
    require_servers!();
    let s = Scratch::new();
    s.cleanup("pg-single");
    let file = s.write(
        "single.toml",
        "name = \"pg-single\"\nkind = \"postgres\"\n[postgres]\nport = 23020\nreplicas = 0\n[config]\nshared_buffers = \"16MB\"\nfsync = false\n",
    );
    let file = file.to_str().unwrap();
    let out = s.ok(&["init", file]);
    assert!(out.starts_with("pg-single (postgres): OK"), "{out}");
    let env = s.ok(&["env", file]);
    assert!(
        env.contains("export DATABASE_URL='postgres://app@127.0.0.1:23020/app'"),
        "{env}"
    );
    let pgpass = state(&s, "pg-single").join("app.pgpass");
    assert!(
        env.contains(&format!("export PGPASSFILE='{}'", pgpass.display())),
        "{env}"
    );
    // An application with only what `env` printed.
    let out = std::process::Command::new("psql")
        .args([
            "-XAtq",
            "postgres://app@127.0.0.1:23020/app",
            "-c",
            "SELECT current_user || ' ' || pg_is_in_recovery()",
        ])
        .env("PGPASSFILE", &pgpass)
        .env_remove("PGPASSWORD")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "app false",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(s.ok(&["plan", file]).contains("nothing to do"));
    let sw = s.run(&["switchover", file]);
    assert_eq!(sw.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&sw.stderr).contains("has no replica to switch over to"));
    let down = s.ok(&["down", file]);
    assert!(down.contains("stopped 1 process(es)"), "{down}");
    assert!(!support::listening(23020));
    // Data survives down/init.
    s.ok(&["init", file]);
    assert_eq!(
        psql(
            23020,
            "app",
            &secret(&s, "pg-single", "owner.pass"),
            "app",
            "SELECT current_database()"
        ),
        "app"
    );
}

#[test]
fn bad_layouts_and_busy_ports_give_located_errors() {
    let s = Scratch::new();
    let cases: &[(&str, &str)] = &[
        (
            "kind = \"postgres\"\n[postgres]\nport = 23030\nreplicas = 99\n",
            "bad.toml:4:12: field `postgres.replicas`: must be between 0 and 16, got 99",
        ),
        (
            "kind = \"postgres\"\n[postgres]\nport = 23030\n[pgbouncer]\nport = 23030\n",
            "bad.toml:5:8: field `pgbouncer.port`: 127.0.0.1:23030 is also a Postgres node",
        ),
        (
            "kind = \"postgres\"\n[postgres]\nport = 23030\n[pgbouncer.databases]\nro = \"replicas\"\n",
            "bad.toml:5:6: field `pgbouncer.databases.ro`: routes to the replicas, but the topology has none",
        ),
        (
            "kind = \"postgres\"\n[postgres]\nport = 23030\n[config]\nhot_standby = false\n",
            "bad.toml:5:15: field `config.hot_standby`: is managed by datatier",
        ),
    ];
    for (text, want) in cases {
        let f = s.write("bad.toml", text);
        let out = s.run(&["plan", f.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "want {want}\ngot {err}");
    }
    if servers_missing().is_some() {
        eprintln!("skipped the busy-port half: needs postgres and pgbouncer");
        return;
    }
    // A replica's port is taken: refused before anything starts.
    let busy = std::net::TcpListener::bind("127.0.0.1:23031").unwrap();
    s.cleanup("pg-busy");
    let f = s.write(
        "busy.toml",
        "name = \"pg-busy\"\nkind = \"postgres\"\n[postgres]\nport = 23030\nreplicas = 1\n[config]\nfsync = false\n",
    );
    let out = s.run(&["init", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot start 127.0.0.1:23031; nothing was started")
            && err.contains("port 23031 on 127.0.0.1 is already in use"),
        "{err}"
    );
    assert!(!support::listening(23030), "the primary was started anyway");
    assert!(!state(&s, "pg-busy").join("127.0.0.1-23030/data").exists());
    drop(busy);
}
