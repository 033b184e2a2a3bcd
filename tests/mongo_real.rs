//! MongoDB sharded clusters against real servers, the same scenarios as
//! `tests/mongo.rs` (which runs them against the wire-protocol double):
//! init from scratch and again (nothing to do), status, and the guided
//! migration of a replica set with a restart to `--shardsvr` in between.
//! Results are checked with the official driver, not only datatier's own
//! status.
//!
//! Two ways to run them:
//! - a `mongod` (and `mongos`) binary from `DATATIER_MONGOD_BIN` /
//!   `DATATIER_MONGOS_BIN` or PATH: datatier's local provider starts the
//!   cluster's nodes; the source replica set of the migration is started by
//!   the test itself (as "someone else's" set);
//! - `DATATIER_TEST_MONGO_COMPOSE=docker-compose.test.yml` (set by
//!   `scripts/test-docker.sh`): the nodes run in the compose file's
//!   containers and datatier uses `--provider existing`.
//!
//! Otherwise every test prints why it was skipped and passes.
//!
//! Ports: 25300-25349 (this file's share of the mongo range).

mod support;

use bson::{doc, Document};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::Scratch;

enum Mode {
    Local { mongod: PathBuf },
    Compose { file: PathBuf },
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// How to reach real servers, or why not.
fn mode() -> Result<Mode, String> {
    if let Ok(f) = std::env::var("DATATIER_TEST_MONGO_COMPOSE") {
        return Ok(Mode::Compose {
            file: PathBuf::from(f),
        });
    }
    let mongod = match std::env::var("DATATIER_MONGOD_BIN") {
        Ok(p) if Path::new(&p).is_file() => PathBuf::from(p),
        Ok(p) => return Err(format!("DATATIER_MONGOD_BIN={p} does not exist")),
        Err(_) => find_on_path("mongod").ok_or(
            "no mongod: not on PATH and DATATIER_MONGOD_BIN is unset (MongoDB is in no package registry this machine reaches; run scripts/test-docker.sh with Docker, or install mongodb-org-server)",
        )?,
    };
    let mongos_ok = std::env::var("DATATIER_MONGOS_BIN").is_ok_and(|p| Path::new(&p).is_file())
        || find_on_path("mongos").is_some()
        || mongod.with_file_name("mongos").is_file();
    if !mongos_ok {
        return Err(format!(
            "found {} but no mongos (set DATATIER_MONGOS_BIN)",
            mongod.display()
        ));
    }
    Ok(Mode::Local { mongod })
}

macro_rules! real_or_skip {
    ($name:literal) => {
        match mode() {
            Ok(m) => m,
            Err(why) => {
                eprintln!("SKIPPED {}: {why}", $name);
                return;
            }
        }
    };
}

fn mongos_env(c: &mut assert_cmd::Command, mode: &Mode) {
    if let Mode::Local { mongod } = mode {
        c.env("DATATIER_MONGOD_BIN", mongod);
        if std::env::var("DATATIER_MONGOS_BIN").is_err() && find_on_path("mongos").is_none() {
            c.env("DATATIER_MONGOS_BIN", mongod.with_file_name("mongos"));
        }
    }
}

fn run(s: &Scratch, mode: &Mode, args: &[&str]) -> std::process::Output {
    let mut c = s.cmd(args);
    mongos_env(&mut c, mode);
    c.output().unwrap()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn addrs(base: u16, n: u16) -> Vec<String> {
    (0..n).map(|i| format!("127.0.0.1:{}", base + i)).collect()
}

fn q(v: &[String]) -> String {
    v.iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

fn topology(
    name: &str,
    provider: &str,
    sets: &[(&str, &[String])],
    cfg: &[String],
    mongos: &str,
) -> String {
    let mut t = format!(
        "name = \"{name}\"\nkind = \"mongo-sharded\"\nprovider = \"{provider}\"\n\n[config_servers]\nname = \"cfg\"\nmembers = [{}]\n\n",
        q(cfg)
    );
    for (n, m) in sets {
        t.push_str(&format!(
            "[[shards]]\nname = \"{n}\"\nmembers = [{}]\n\n",
            q(m)
        ));
    }
    t.push_str(&format!(
        "[mongos]\nhosts = [\"{mongos}\"]\n\n[sharding]\nchunk_size_mb = 64\nbalancer = true\nbalancer_window = {{ start = \"02:00\", stop = \"06:00\" }}\n\n[[collections]]\ndatabase = \"credibility_prod\"\nname = \"analyses\"\nkey = {{ createdAt = \"hashed\", userId = 1 }}\n\n[mongod]\ncache_size_gb = 0.25\noplog_size_mb = 64\n"
    ));
    t
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

async fn client(uri: &str) -> mongodb::Client {
    mongodb::Client::with_uri_str(uri).await.unwrap()
}

async fn admin(addr: &str, cmd: Document) -> Document {
    client(&format!(
        "mongodb://{addr}/?directConnection=true&serverSelectionTimeoutMS=5000"
    ))
    .await
    .database("admin")
    .run_command(cmd)
    .await
    .unwrap_or_else(|e| panic!("{addr}: {e}"))
}

/// Independent checks of a cluster datatier built, through the driver.
fn check_cluster(cfg0: &str, mongos: &str, shards: &[(&str, &[String])]) {
    block_on(async {
        let c = admin(cfg0, doc! {"replSetGetConfig": 1}).await;
        assert_eq!(
            c.get_document("config").unwrap().get_bool("configsvr"),
            Ok(true)
        );
        let ls = admin(mongos, doc! {"listShards": 1}).await;
        let mut ids: Vec<String> = ls
            .get_array("shards")
            .unwrap()
            .iter()
            .map(|s| s.as_document().unwrap().get_str("_id").unwrap().to_string())
            .collect();
        ids.sort();
        let mut want: Vec<String> = shards.iter().map(|(n, _)| n.to_string()).collect();
        want.sort();
        assert_eq!(ids, want);
        let m = client(&format!(
            "mongodb://{mongos}/?serverSelectionTimeoutMS=5000"
        ))
        .await;
        let coll = m
            .database("config")
            .collection::<Document>("collections")
            .find_one(doc! {"_id": "credibility_prod.analyses"})
            .await
            .unwrap()
            .expect("sharded");
        let key = coll.get_document("key").unwrap();
        assert_eq!(key.keys().collect::<Vec<_>>(), ["createdAt", "userId"]);
        assert_eq!(key.get_str("createdAt"), Ok("hashed"));
        let settings = m.database("config").collection::<Document>("settings");
        let chunk = settings
            .find_one(doc! {"_id": "chunksize"})
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            chunk
                .get("value")
                .and_then(|v| v.as_i32().or(v.as_i64().map(|x| x as i32))),
            Some(64)
        );
        let bal = settings
            .find_one(doc! {"_id": "balancer"})
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            bal.get_document("activeWindow").unwrap(),
            &doc! {"start": "02:00", "stop": "06:00"}
        );
    });
}

#[test]
fn needs_mongod_init_builds_the_cluster_and_a_second_init_changes_nothing() {
    let mode =
        real_or_skip!("needs_mongod_init_builds_the_cluster_and_a_second_init_changes_nothing");
    let s = Scratch::new();
    let (base, provider) = match &mode {
        Mode::Local { .. } => (25300, "local"),
        Mode::Compose { .. } => (25320, "existing"),
    };
    let cfg = addrs(base, 3);
    let shard1 = addrs(base + 3, 3);
    let shard2 = addrs(base + 6, 3);
    let mongos = format!("127.0.0.1:{}", base + 9);
    let shards: [(&str, &[String]); 2] = [("shard1", &shard1), ("shard2", &shard2)];
    let text = topology("real", provider, &shards, &cfg, &mongos);
    let topo = s.write("real.toml", &text);
    let topo = topo.to_str().unwrap();
    if provider == "local" {
        s.cleanup("real");
    }
    let out = run(&s, &mode, &["init", topo, "--timeout", "180"]);
    assert!(out.status.success(), "init failed:\n{}", stderr(&out));
    check_cluster(&cfg[0], &mongos, &shards);

    // Nothing left to do.
    let out = run(&s, &mode, &["plan", topo]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("nothing to do"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = run(&s, &mode, &["init", topo, "--timeout", "60"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("nothing to do"), "{}", stderr(&out));

    // Documents through mongos are counted and spread by the hashed key.
    block_on(async {
        let m = client(&format!("mongodb://{mongos}/")).await;
        let coll = m
            .database("credibility_prod")
            .collection::<Document>("analyses");
        let docs: Vec<Document> = (0..2000)
            .map(|i| doc! {"createdAt": bson::DateTime::from_millis(1_700_000_000_000 + i * 1000), "userId": i % 97})
            .collect();
        coll.insert_many(docs).await.unwrap();
        assert_eq!(coll.count_documents(doc! {}).await.unwrap(), 2000);
    });
    let out = run(&s, &mode, &["status", topo, "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(out.status.code().unwrap() <= 1, "{v:#}");
    assert!(v["notes"][0]
        .as_str()
        .unwrap()
        .contains("local time of the config server primary"));
    let owned: f64 = v["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["name"] == "mongo_owned_documents")
        .map(|m| m["value"].as_f64().unwrap())
        .sum();
    if owned > 0.0 {
        assert_eq!(
            owned, 2000.0,
            "$shardedDataDistribution counts every document"
        );
    }
    if provider == "local" {
        let out = run(&s, &mode, &["down", "real", "--purge"]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(!support::listening(base + 9));
    }
}

/// The source replica set, run by the test (or compose) as "someone
/// else's" nodes: started without --shardsvr.
struct SourceSet {
    members: Vec<String>,
    children: Vec<Option<Child>>,
    dirs: Vec<PathBuf>,
    mongod: Option<PathBuf>,
    compose: Option<PathBuf>,
}

impl SourceSet {
    fn start(&mut self, i: usize, shardsvr: bool) {
        match (&self.mongod, &self.compose) {
            (Some(bin), _) => {
                let port = self.members[i].rsplit_once(':').unwrap().1.to_string();
                let log = std::fs::File::create(self.dirs[i].join("mongod.log")).unwrap();
                let mut c = Command::new(bin);
                c.args([
                    "--replSet",
                    "rs0",
                    "--port",
                    &port,
                    "--bind_ip",
                    "127.0.0.1",
                    "--nounixsocket",
                    "--wiredTigerCacheSizeGB",
                    "0.25",
                    "--oplogSize",
                    "64",
                    "--dbpath",
                ])
                .arg(&self.dirs[i])
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .stdin(Stdio::null());
                if shardsvr {
                    c.arg("--shardsvr");
                }
                self.children[i] = Some(c.spawn().unwrap());
            }
            (None, Some(file)) => {
                // The compose service reads its extra flags from a file.
                let flags = std::env::var("DATATIER_TEST_MONGO_FLAGS_DIR")
                    .expect("set by scripts/test-docker.sh");
                std::fs::write(
                    Path::new(&flags).join("rs0"),
                    if shardsvr { "--shardsvr" } else { "" },
                )
                .unwrap();
                let svc = format!("mongo-rs0-{}", i);
                let st = Command::new("docker")
                    .args(["compose", "-f"])
                    .arg(file)
                    .args(["restart", &svc])
                    .status()
                    .unwrap();
                assert!(st.success(), "docker compose restart {svc}");
            }
            _ => unreachable!(),
        }
        let a = self.members[i].clone();
        wait_for(&format!("{a} to answer"), || {
            std::net::TcpStream::connect(&a).is_ok().then_some(())
        });
    }

    fn stop(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = c.wait();
        }
    }

    fn wait_healthy(&self) {
        let members = self.members.clone();
        wait_for("rs0 to have a primary and two secondaries", || {
            block_on(async {
                let st = client(&format!(
                    "mongodb://{}/?directConnection=true&serverSelectionTimeoutMS=2000",
                    members[0]
                ))
                .await
                .database("admin")
                .run_command(doc! {"replSetGetStatus": 1})
                .await
                .ok()?;
                let states: Vec<i32> = st
                    .get_array("members")
                    .ok()?
                    .iter()
                    .filter_map(|m| m.as_document()?.get_i32("state").ok())
                    .collect();
                (states.iter().filter(|s| **s == 1).count() == 1
                    && states.iter().filter(|s| **s == 2).count() == 2)
                    .then_some(())
            })
        });
    }
}

impl Drop for SourceSet {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.stop(i);
        }
    }
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn needs_mongod_migrate_a_replica_set_into_a_sharded_cluster() {
    let mode = real_or_skip!("needs_mongod_migrate_a_replica_set_into_a_sharded_cluster");
    let s = Scratch::new();
    let (base, provider) = match &mode {
        Mode::Local { .. } => (25310, "local"),
        Mode::Compose { .. } => (25330, "existing"),
    };
    let rs0 = addrs(base, 3);
    let cfg = addrs(base + 3, 3);
    let shard2 = addrs(base + 6, 3);
    let mongos = format!("127.0.0.1:{}", base + 9);
    let mut src = SourceSet {
        members: rs0.clone(),
        children: vec![None, None, None],
        dirs: (0..3)
            .map(|i| {
                let d = s.path().join(format!("rs0-{i}"));
                std::fs::create_dir_all(&d).unwrap();
                d
            })
            .collect(),
        mongod: match &mode {
            Mode::Local { mongod } => Some(mongod.clone()),
            _ => None,
        },
        compose: match &mode {
            Mode::Compose { file } => Some(file.clone()),
            _ => None,
        },
    };
    for i in 0..3 {
        src.start(i, false);
    }
    block_on(async {
        let members: Vec<Document> = rs0
            .iter()
            .enumerate()
            .map(|(i, h)| doc! {"_id": i as i32, "host": h})
            .collect();
        let _ = admin(
            &rs0[0],
            doc! {"replSetInitiate": {"_id": "rs0", "members": members}},
        )
        .await;
    });
    src.wait_healthy();
    let uri = format!("mongodb://{}/?replicaSet=rs0", rs0.join(","));
    block_on(async {
        let c = client(&uri).await;
        let a = c
            .database("credibility_prod")
            .collection::<Document>("analyses");
        let docs: Vec<Document> = (0..3000)
            .map(|i| doc! {"createdAt": bson::DateTime::from_millis(1_700_000_000_000 + i * 1000), "userId": i % 101})
            .collect();
        a.insert_many(docs).await.unwrap();
        let u = c
            .database("credibility_prod")
            .collection::<Document>("users");
        u.insert_many((0..100).map(|i| doc! {"_id": i}))
            .await
            .unwrap();
    });
    let shards: [(&str, &[String]); 2] = [("rs0", &rs0), ("shard2", &shard2)];
    let text = topology("migrated", provider, &shards, &cfg, &mongos);
    let to = s.write("migrated.toml", &text);
    let to = to.to_str().unwrap();
    if provider == "local" {
        s.cleanup("migrated");
    }
    let backup = if find_on_path("mongodump").is_some() {
        vec![]
    } else {
        vec!["--skip-backup"]
    };
    let mut args = vec![
        "migrate",
        "mongo-to-sharded",
        "--from",
        &uri,
        "--to",
        to,
        "--yes",
        "--timeout",
        "180",
    ];
    args.extend(&backup);

    // Stops at --shardsvr: the set is not ours to restart.
    let out = run(&s, &mode, &args);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("must run with --shardsvr before they can become a shard"),
        "{}",
        stderr(&out)
    );

    // Rolling restart with --shardsvr: secondaries, then the old primary.
    let primary = wait_for("rs0's primary", || {
        block_on(async {
            let h = admin(&rs0[0], doc! {"hello": 1}).await;
            h.get_str("primary").ok().map(str::to_string)
        })
    });
    let order: Vec<usize> = (0..3)
        .filter(|i| rs0[*i] != primary)
        .chain((0..3).filter(|i| rs0[*i] == primary))
        .collect();
    for i in order {
        if rs0[i] == primary {
            block_on(async {
                let _ = client(&format!("mongodb://{}/?directConnection=true", rs0[i]))
                    .await
                    .database("admin")
                    .run_command(doc! {"replSetStepDown": 30})
                    .await;
            });
        }
        src.stop(i);
        src.start(i, true);
        src.wait_healthy();
    }

    let out = run(&s, &mode, &args);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{}\n{stdout}", stderr(&out));
    assert!(
        stdout.contains("verified: every collection holds as many documents as before"),
        "{stdout}"
    );
    check_cluster(&cfg[0], &mongos, &shards);
    block_on(async {
        let m = client(&format!("mongodb://{mongos}/")).await;
        let n = m
            .database("credibility_prod")
            .collection::<Document>("analyses")
            .count_documents(doc! {})
            .await
            .unwrap();
        assert_eq!(n, 3000);
        let n = m
            .database("credibility_prod")
            .collection::<Document>("users")
            .count_documents(doc! {})
            .await
            .unwrap();
        assert_eq!(n, 100);
    });
    if provider == "local" {
        let out = run(&s, &mode, &["down", "migrated", "--purge"]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
}
