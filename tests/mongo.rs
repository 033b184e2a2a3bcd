//! MongoDB sharded clusters end to end: the real `datatier` binary against
//! the wire-protocol test double (`tests/mongo_double`), one double per
//! declared node, with `--provider existing` (no `mongod` can be installed
//! on the project's machines; `tests/mongo_real.rs` runs the same scenarios
//! against real servers when one is available).
//!
//! Results are checked on the double's own state — replica set configs,
//! `config.shards`, `config.collections`, `config.chunks`,
//! `config.settings`, indexes, documents, and the commands it received —
//! not only through datatier's status.
//!
//! Ports: 25000-25299 (this file's share of the mongo range), 20 per test.

mod mongo_double;
mod support;

use bson::{doc, Bson, Document};
use mongo_double::{Double, Role};
use serde_json::Value;
use std::collections::BTreeMap;
use support::Scratch;

const V7: &str = "7.0.14";

/// Addresses of a 3x3x3 + 1 mongos layout from `base`.
struct Layout {
    cfg: Vec<String>,
    shard1: Vec<String>,
    shard2: Vec<String>,
    mongos: String,
}

impl Layout {
    fn new(base: u16) -> Layout {
        let a = |p: u16| format!("127.0.0.1:{p}");
        Layout {
            cfg: (0..3).map(|i| a(base + i)).collect(),
            shard1: (3..6).map(|i| a(base + i)).collect(),
            shard2: (6..9).map(|i| a(base + i)).collect(),
            mongos: a(base + 9),
        }
    }

    fn all(&self) -> Vec<&String> {
        self.cfg
            .iter()
            .chain(&self.shard1)
            .chain(&self.shard2)
            .chain(std::iter::once(&self.mongos))
            .collect()
    }

    /// The seed's layout on these ports, for `--provider existing`.
    fn topology(&self, name: &str, extra: &str) -> String {
        let q = |v: &[String]| {
            v.iter()
                .map(|s| format!("\"{s}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            r#"name = "{name}"
kind = "mongo-sharded"
provider = "existing"

[config_servers]
name = "cfg"
members = [{}]

[[shards]]
name = "shard1"
members = [{}]

[[shards]]
name = "shard2"
members = [{}]

[mongos]
hosts = ["{}"]

[sharding]
chunk_size_mb = 64
balancer = true
balancer_window = {{ start = "02:00", stop = "06:00" }}

[[collections]]
database = "credibility_prod"
name = "analyses"
key = {{ createdAt = "hashed", userId = 1 }}
{extra}"#,
            q(&self.cfg),
            q(&self.shard1),
            q(&self.shard2),
            self.mongos
        )
    }

    /// Start one double per node: uninitiated mongods with their roles,
    /// and the mongos.
    fn spawn(&self, d: &Double, version: &str) {
        for a in &self.cfg {
            d.mongod(a, Some("cfg"), Role::ConfigSvr, version);
        }
        for a in &self.shard1 {
            d.mongod(a, Some("shard1"), Role::ShardSvr, version);
        }
        for a in &self.shard2 {
            d.mongod(a, Some("shard2"), Role::ShardSvr, version);
        }
        d.mongos(
            &self.mongos,
            &format!("cfg/{}", self.cfg.join(",")),
            version,
        );
    }
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            stderr(out)
        )
    })
}

fn finding<'a>(v: &'a Value, check: &str, node: Option<&str>) -> &'a Value {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| {
            f["check"] == check
                && match node {
                    Some(n) => f["node"] == n,
                    None => f["node"].is_null(),
                }
        })
        .unwrap_or_else(|| panic!("no finding {check} {node:?} in {v:#}"))
}

fn setting(d: &Double, id: &str) -> Option<Document> {
    d.catalog("cfg", "settings")
        .into_iter()
        .find(|s| s.get_str("_id").ok() == Some(id))
}

fn hosts(cfg: &Document) -> Vec<String> {
    cfg.get_array("members")
        .unwrap()
        .iter()
        .map(|m| {
            m.as_document()
                .unwrap()
                .get_str("host")
                .unwrap()
                .to_string()
        })
        .collect()
}

/// Commands that change a cluster.
const MUTATING: &[&str] = &[
    "replSetInitiate",
    "replSetReconfig",
    "addShard",
    "enableSharding",
    "createIndexes",
    "shardCollection",
    "update",
    "insert",
    "balancerStart",
    "balancerStop",
];

fn mutations(d: &Double) -> Vec<(String, String)> {
    d.commands()
        .into_iter()
        .filter(|(_, c)| MUTATING.contains(&c.as_str()))
        .collect()
}

#[test]
fn init_from_scratch_builds_the_seed_cluster_and_a_second_init_changes_nothing() {
    let s = Scratch::new();
    let d = Double::new();
    let l = Layout::new(25000);
    l.spawn(&d, V7);
    let topo = s.write("shop.toml", &l.topology("shop", ""));
    let topo = topo.to_str().unwrap();

    // The plan shows the whole bootstrap and changes nothing.
    let plan = s.ok(&["plan", topo]);
    assert!(
        plan.contains("replSetInitiate { _id: \"cfg\", configsvr: true, members: 3 }"),
        "{plan}"
    );
    assert!(plan.contains("shardCollection \"credibility_prod.analyses\" key { createdAt: \"hashed\", userId: 1 }"), "{plan}");
    assert!(
        !plan.contains("start mongod"),
        "existing provider starts nothing: {plan}"
    );
    assert!(
        mutations(&d).is_empty(),
        "plan changed something: {:?}",
        mutations(&d)
    );

    let out = s.run(&["init", topo, "--timeout", "30"]);
    assert!(out.status.success(), "init failed: {}", stderr(&out));

    // Independent checks on the doubles' state.
    let cfg = d.rs_config("cfg").expect("cfg initiated");
    assert_eq!(cfg.get_bool("configsvr"), Ok(true));
    assert_eq!(hosts(&cfg), l.cfg);
    assert!(d.primary("cfg").is_some());
    for (set, members) in [("shard1", &l.shard1), ("shard2", &l.shard2)] {
        let c = d.rs_config(set).unwrap();
        assert!(c.get("configsvr").is_none());
        assert_eq!(&hosts(&c), members);
        assert!(d.primary(set).is_some());
    }
    let shards = d.catalog("cfg", "shards");
    let registered: Vec<(String, String)> = shards
        .iter()
        .map(|s| {
            (
                s.get_str("_id").unwrap().to_string(),
                s.get_str("host").unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        registered,
        [
            (
                "shard1".to_string(),
                format!("shard1/{}", l.shard1.join(","))
            ),
            (
                "shard2".to_string(),
                format!("shard2/{}", l.shard2.join(","))
            ),
        ]
    );
    let colls = d.catalog("cfg", "collections");
    assert_eq!(colls.len(), 1);
    assert_eq!(colls[0].get_str("_id"), Ok("credibility_prod.analyses"));
    // Field order is part of the key.
    let key = colls[0].get_document("key").unwrap();
    assert_eq!(key.keys().collect::<Vec<_>>(), ["createdAt", "userId"]);
    assert_eq!(key.get_str("createdAt"), Ok("hashed"));
    assert_eq!(colls[0].get_bool("unique"), Ok(false));
    // An empty collection with a hashed prefix is pre-split over both shards.
    let chunks = d.catalog("cfg", "chunks");
    assert_eq!(chunks.len(), 4);
    for shard in ["shard1", "shard2"] {
        assert_eq!(
            chunks
                .iter()
                .filter(|c| c.get_str("shard") == Ok(shard))
                .count(),
            2
        );
    }
    assert_eq!(
        setting(&d, "chunksize").unwrap().get("value"),
        Some(&Bson::Int32(64))
    );
    let window = setting(&d, "balancer")
        .unwrap()
        .get_document("activeWindow")
        .unwrap()
        .clone();
    assert_eq!(window, doc! {"start": "02:00", "stop": "06:00"});
    // 7.0 needs no enableSharding, and no deprecated options are sent.
    assert_eq!(d.count_commands("enableSharding"), 0);
    let sc = d.received(&l.mongos, "shardCollection");
    assert_eq!(sc.len(), 1);
    assert!(!sc[0].contains_key("numInitialChunks"), "{:?}", sc[0]);
    assert!(!sc[0].contains_key("unique"), "{:?}", sc[0]);
    // Exactly one replSetInitiate per set, with the declared config.
    let inits: Vec<Document> = l
        .all()
        .iter()
        .flat_map(|a| d.received(a, "replSetInitiate"))
        .collect();
    assert_eq!(inits.len(), 3, "{inits:?}");

    // A second init, and the plan, find nothing to do: no mutation at all.
    d.clear_log();
    assert!(s.ok(&["plan", topo]).contains("nothing to do"));
    let out = s.run(&["init", topo]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("nothing to do"), "{}", stderr(&out));
    assert!(
        mutations(&d).is_empty(),
        "second init changed: {:?}",
        mutations(&d)
    );

    // Status: all OK, every check present, the window note.
    let out = s.run(&["status", topo, "-o", "json"]);
    let v = json(&out);
    assert_eq!(out.status.code(), Some(0), "{v:#}");
    assert_eq!(v["status"], "ok");
    assert_eq!(v["nodes"].as_array().unwrap().len(), 10);
    for check in [
        "member_reachable",
        "cluster_role",
        "rs_initiated",
        "rs_primary",
        "rs_majority",
        "rs_members",
        "mongos_reachable",
        "catalog",
        "shards_registered",
        "collection_sharded",
        "chunk_size",
        "balancer_window",
        "balancer_mode",
        "distribution",
        "jumbo_chunks",
        "versions",
    ] {
        assert!(
            v["findings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["check"] == check),
            "missing check {check}"
        );
    }
    assert!(v["notes"][0]
        .as_str()
        .unwrap()
        .contains("evaluated in the local time of the config server primary"));
    let table = s.ok(&["status", topo]);
    assert!(table.starts_with("shop (mongo-sharded): OK"), "{table}");
    assert!(
        table.contains("note: the balancer window 02:00-06:00"),
        "{table}"
    );
    let prom = s.ok(&["status", topo, "-o", "prometheus"]);
    assert!(
        prom.contains("datatier_mongo_chunks{topology=\"shop\",collection=\"credibility_prod.analyses\",shard=\"shard1\"} 2"),
        "{prom}"
    );

    // env points applications at the mongos.
    let env = s.ok(&["env", topo]);
    assert!(
        env.contains(&format!(
            "export MONGODB_URI='mongodb://{}/credibility_prod'",
            l.mongos
        )),
        "{env}"
    );
}

#[test]
fn a_half_done_bootstrap_resumes_and_server_errors_surface() {
    let s = Scratch::new();
    let d = Double::new();
    let l = Layout::new(25020);
    l.spawn(&d, V7);
    // Someone initiated the config servers and shard1 by hand, then stopped.
    let cfg: Vec<&str> = l.cfg.iter().map(String::as_str).collect();
    d.initiate("cfg", &cfg);
    let s1: Vec<&str> = l.shard1.iter().map(String::as_str).collect();
    d.initiate("shard1", &s1);
    let topo = s.write("half.toml", &l.topology("half", ""));
    let topo = topo.to_str().unwrap();

    let plan = s.ok(&["plan", topo]);
    assert!(!plan.contains("_id: \"cfg\""), "cfg is initiated: {plan}");
    assert!(
        !plan.contains("_id: \"shard1\""),
        "shard1 is initiated: {plan}"
    );
    assert!(plan.contains("replSetInitiate { _id: \"shard2\""), "{plan}");

    // The first addShard fails on the server: the error names the step,
    // the server's code and message, and what happens next.
    d.fail(
        Some(&l.mongos),
        "addShard",
        96,
        "injected: the shard's primary stepped down",
        1,
    );
    let out = s.run(&["init", topo, "--timeout", "30"]);
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(
        e.contains(&format!("addShard \"shard1/{}\" failed: OperationFailed (96): injected: the shard's primary stepped down", l.shard1.join(","))),
        "{e}"
    );
    assert!(e.contains("run `datatier init` again"), "{e}");
    assert!(d.catalog("cfg", "shards").is_empty());
    assert!(
        d.rs_config("shard2").is_some(),
        "shard2 got initiated before"
    );

    // Run again: only the rest happens.
    d.clear_log();
    let out = s.run(&["init", topo, "--timeout", "30"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        d.count_commands("replSetInitiate"),
        0,
        "nothing re-initiated"
    );
    assert_eq!(d.catalog("cfg", "shards").len(), 2);
    assert_eq!(d.catalog("cfg", "collections").len(), 1);
    assert!(s.ok(&["plan", topo]).contains("nothing to do"));
}

#[test]
fn nodes_with_the_wrong_role_or_set_are_refused_and_nothing_changes() {
    let s = Scratch::new();
    let d = Double::new();
    let l = Layout::new(25040);
    for a in &l.cfg {
        d.mongod(a, Some("cfg"), Role::ConfigSvr, V7);
    }
    // shard1 started without --shardsvr; a shard2 member in another set
    for a in &l.shard1 {
        d.mongod(a, Some("shard1"), Role::None, V7);
    }
    d.mongod(&l.shard2[0], Some("shard2"), Role::ShardSvr, V7);
    d.mongod(&l.shard2[1], Some("other"), Role::ShardSvr, V7);
    d.mongod(&l.shard2[2], Some("shard2"), Role::ShardSvr, V7);
    d.mongos(&l.mongos, &format!("cfg/{}", l.cfg.join(",")), V7);
    let topo = s.write("wrong.toml", &l.topology("wrong", ""));
    let out = s.run(&["init", topo.to_str().unwrap(), "--timeout", "10"]);
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(
        e.contains(&format!(
            "{} was started without a cluster role; a member of shard1 needs --shardsvr",
            l.shard1[0]
        )),
        "{e}"
    );
    assert!(
        e.contains(&format!(
            "{} was started with --replSet other, but is declared a member of shard2",
            l.shard2[1]
        )),
        "{e}"
    );
    assert!(e.contains("nothing was changed"), "{e}");
    assert!(mutations(&d).is_empty(), "{:?}", mutations(&d));

    // An unreachable node (existing provider) is named, nothing changes.
    d.stop(&l.cfg[2]);
    let out = s.run(&["plan", topo.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!(
            "cannot plan: {} is unreachable (connection refused)",
            l.cfg[2]
        )),
        "{}",
        stderr(&out)
    );
}

#[test]
fn replset_initiate_errors_surface_with_the_servers_code() {
    let s = Scratch::new();
    let d = Double::new();
    let l = Layout::new(25060);
    l.spawn(&d, V7);
    d.fail(
        Some(&l.shard2[0]),
        "replSetInitiate",
        74,
        "replSetInitiate quorum check failed because not all proposed set members responded affirmatively: injected",
        1,
    );
    let topo = s.write("e.toml", &l.topology("e", ""));
    let out = s.run(&["init", topo.to_str().unwrap(), "--timeout", "10"]);
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(
        e.contains(&format!("{}: replSetInitiate for replica set shard2 failed: NodeNotFound (74): replSetInitiate quorum check failed", l.shard2[0])),
        "{e}"
    );
    // The other sets went ahead; shard2 did not; no shard was added.
    assert!(d.rs_config("cfg").is_some());
    assert!(d.rs_config("shard2").is_none());
    assert!(d.catalog("cfg", "shards").is_empty());
    // And the next run completes.
    let out = s.run(&["init", topo.to_str().unwrap(), "--timeout", "30"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(d.catalog("cfg", "shards").len(), 2);
}

#[test]
fn status_reports_missing_shards_drifted_settings_jumbo_chunks_and_lost_majorities() {
    let s = Scratch::new();
    let d = Double::new();
    let l = Layout::new(25080);
    l.spawn(&d, V7);
    let topo = s.write("st.toml", &l.topology("st", ""));
    let topo = topo.to_str().unwrap();
    let out = s.run(&["init", topo, "--timeout", "30"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // Someone changed the chunk size and the window, a chunk went jumbo.
    d.set_setting("cfg", "chunksize", doc! {"value": 128});
    d.set_setting(
        "cfg",
        "balancer",
        doc! {"mode": "full", "activeWindow": {"start": "01:00", "stop": "02:00"}},
    );
    d.mark_jumbo("cfg", "credibility_prod.analyses", 1);
    let out = s.run(&["status", topo, "-o", "json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "WARNING: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let v = json(&out);
    let c = finding(&v, "chunk_size", None);
    assert_eq!(c["severity"], "warning");
    assert_eq!(
        c["message"],
        "128 MB, declared 64 MB (`datatier init` sets it)"
    );
    let w = finding(&v, "balancer_window", None);
    assert_eq!(
        w["message"],
        "01:00-02:00, declared 02:00-06:00 (`datatier init` sets it)"
    );
    let j = finding(&v, "jumbo_chunks", Some("credibility_prod.analyses"));
    assert_eq!(j["severity"], "warning");
    assert!(j["message"]
        .as_str()
        .unwrap()
        .starts_with("1 jumbo chunk(s)"));
    // init puts the settings back (the jumbo flag is the operator's job).
    d.clear_log();
    let out = s.run(&["init", topo]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        setting(&d, "chunksize").unwrap().get("value"),
        Some(&Bson::Int32(64))
    );
    assert_eq!(
        setting(&d, "balancer")
            .unwrap()
            .get_document("activeWindow")
            .unwrap(),
        &doc! {"start": "02:00", "stop": "06:00"}
    );
    assert_eq!(d.count_commands("shardCollection"), 0);

    // A shard missing from listShards: CRITICAL, named.
    d.delete_catalog("cfg", "shards", "shard2");
    let out = s.run(&["status", topo, "-o", "json"]);
    assert_eq!(out.status.code(), Some(2));
    let v = json(&out);
    let f = finding(&v, "shards_registered", Some("shard2"));
    assert_eq!(f["severity"], "critical");
    assert_eq!(
        f["message"],
        "not registered (listShards); `datatier init` adds it"
    );
    let out = s.run(&["init", topo]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(d.catalog("cfg", "shards").len(), 2);

    // One secondary down: WARNING naming it; the majority holds.
    let secondary = l
        .shard1
        .iter()
        .find(|a| Some(a.to_string()) != d.primary("shard1"))
        .unwrap()
        .clone();
    d.stop(&secondary);
    let out = s.run(&["status", topo, "-o", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(
        finding(&v, "member_reachable", Some(&secondary))["severity"],
        "warning"
    );
    let m = finding(&v, "rs_majority", Some("shard1"));
    assert_eq!(m["severity"], "warning");
    assert!(
        m["message"]
            .as_str()
            .unwrap()
            .starts_with("2 of 3 voting members healthy (majority 2 holds)"),
        "{m}"
    );

    // Two of three down: no primary, no majority: CRITICAL.
    let other = l
        .shard1
        .iter()
        .find(|a| **a != secondary && Some(a.to_string()) != d.primary("shard1"))
        .unwrap()
        .clone();
    d.stop(&other);
    support::eventually(
        "shard1 to lose its primary",
        std::time::Duration::from_secs(5),
        || d.primary("shard1").is_none().then_some(()),
    );
    let out = s.run(&["status", topo, "-o", "json"]);
    assert_eq!(out.status.code(), Some(2));
    let v = json(&out);
    assert_eq!(
        finding(&v, "rs_primary", Some("shard1"))["severity"],
        "critical"
    );
    assert_eq!(
        finding(&v, "rs_majority", Some("shard1"))["severity"],
        "critical"
    );
    // And the mongos gone: CRITICAL, catalog checks skipped.
    d.stop(&l.mongos);
    let out = s.run(&["status", topo, "-o", "json"]);
    let v = json(&out);
    assert_eq!(
        finding(&v, "mongos_reachable", Some(&l.mongos))["severity"],
        "critical"
    );
    assert_eq!(finding(&v, "catalog", None)["severity"], "critical");
}

#[test]
fn a_collection_with_documents_gets_its_supporting_index_and_old_servers_enable_sharding() {
    let s = Scratch::new();
    let d = Double::new();
    let l = Layout::new(25100);
    l.spawn(&d, "5.0.26");
    // shard1 already holds the data (as after a migration from a replica set).
    let s1: Vec<&str> = l.shard1.iter().map(String::as_str).collect();
    d.initiate("shard1", &s1);
    let docs: Vec<Document> = (0..500)
        .map(|i| doc! {"createdAt": bson::DateTime::from_millis(1_700_000_000_000 + i), "userId": i % 37, "score": 0.5})
        .collect();
    d.insert("shard1", "credibility_prod.analyses", docs);
    let topo = s.write("old.toml", &l.topology("old", ""));
    let out = s.run(&["init", topo.to_str().unwrap(), "--timeout", "30"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // Before 6.0, enableSharding came first; the index before shardCollection.
    let order: Vec<String> = d
        .commands()
        .into_iter()
        .filter(|(a, c)| {
            *a == l.mongos
                && ["enableSharding", "createIndexes", "shardCollection"].contains(&c.as_str())
        })
        .map(|(_, c)| c)
        .collect();
    assert_eq!(
        order,
        ["enableSharding", "createIndexes", "shardCollection"]
    );
    assert!(d
        .indexes("shard1", "credibility_prod.analyses")
        .contains(&doc! {"createdAt": "hashed", "userId": 1}));
    // A non-empty collection starts as one chunk on its primary shard.
    let chunks = d.catalog("cfg", "chunks");
    assert_eq!(chunks.len(), 1);
    assert_eq!(chunks[0].get_str("shard"), Ok("shard1"));
    assert_eq!(d.count("shard1", "credibility_prod.analyses"), 500);
    let out = s.run(&["status", topo.to_str().unwrap(), "-o", "json"]);
    let v = json(&out);
    assert_eq!(out.status.code(), Some(0), "{v:#}");
    // 5.0 has no $shardedDataDistribution: chunk counts only.
    assert_eq!(
        finding(&v, "distribution", Some("credibility_prod.analyses"))["message"],
        "chunks: shard1 1, shard2 0"
    );
    assert_eq!(d.count_commands("aggregate"), 0);
}

#[test]
fn data_distribution_comes_from_sharded_data_distribution_on_new_servers() {
    let s = Scratch::new();
    let d = Double::new();
    let l = Layout::new(25120);
    l.spawn(&d, V7);
    let topo = s.write("dist.toml", &l.topology("dist", ""));
    let topo = topo.to_str().unwrap();
    let out = s.run(&["init", topo, "--timeout", "30"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Documents written through the mongos land on both shards.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = mongodb::Client::with_uri_str(format!("mongodb://{}/?directConnection=true", l.mongos))
            .await
            .unwrap();
        let docs: Vec<Document> = (0..200)
            .map(|i| doc! {"createdAt": bson::DateTime::from_millis(1_700_000_000_000 + i * 1000), "userId": i})
            .collect();
        c.database("credibility_prod")
            .collection::<Document>("analyses")
            .insert_many(docs)
            .await
            .unwrap();
    });
    let (n1, n2) = (
        d.count("shard1", "credibility_prod.analyses"),
        d.count("shard2", "credibility_prod.analyses"),
    );
    assert_eq!(n1 + n2, 200);
    assert!(
        n1 > 0 && n2 > 0,
        "hashed key spreads documents: {n1} / {n2}"
    );
    let out = s.run(&["status", topo, "-o", "json"]);
    let v = json(&out);
    let msg = finding(&v, "distribution", Some("credibility_prod.analyses"))["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(msg.contains(&format!("shard1 {n1} docs")), "{msg}");
    assert!(msg.contains(&format!("shard2 {n2} docs")), "{msg}");
    let owned: f64 = v["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["name"] == "mongo_owned_documents")
        .map(|m| m["value"].as_f64().unwrap())
        .sum();
    assert_eq!(owned, 200.0);
}

#[test]
fn members_with_options_are_initiated_and_missing_members_added_one_by_one() {
    let s = Scratch::new();
    let d = Double::new();
    let l = Layout::new(25140);
    l.spawn(&d, V7);
    let extra_a = "127.0.0.1:25150";
    let extra_b = "127.0.0.1:25151";
    d.mongod(extra_a, Some("shard2"), Role::ShardSvr, V7);
    d.mongod(extra_b, Some("shard2"), Role::ShardSvr, V7);
    let base = l.topology("opts", "");
    // shard1: a hidden member and an arbiter-free priority layout.
    let text = base.replace(
        &format!("members = [\"{}\", \"{}\", \"{}\"]\n\n[[shards]]\nname = \"shard2\"", l.shard1[0], l.shard1[1], l.shard1[2]),
        &format!("members = [{{ host = \"{}\", priority = 2 }}, \"{}\", {{ host = \"{}\", hidden = true }}]\n\n[[shards]]\nname = \"shard2\"", l.shard1[0], l.shard1[1], l.shard1[2]),
    );
    assert_ne!(text, base);
    let topo = s.write("opts.toml", &text);
    let out = s.run(&["init", topo.to_str().unwrap(), "--timeout", "30"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let c = d.rs_config("shard1").unwrap();
    let m = c.get_array("members").unwrap();
    assert_eq!(m[0].as_document().unwrap().get_f64("priority"), Ok(2.0));
    assert_eq!(m[2].as_document().unwrap().get_bool("hidden"), Ok(true));
    assert_eq!(m[2].as_document().unwrap().get_f64("priority"), Ok(0.0));
    // The hidden member is not in the shard's seed list.
    let sh1 = d
        .catalog("cfg", "shards")
        .into_iter()
        .find(|s| s.get_str("_id") == Ok("shard1"))
        .unwrap();
    assert_eq!(
        sh1.get_str("host"),
        Ok(format!("shard1/{},{}", l.shard1[0], l.shard1[1]).as_str())
    );

    // Two more members declared for shard2: added by reconfig, one
    // voting member at a time (the double refuses more, like MongoDB).
    let text2 = text.replace(
        &format!("\"{}\"]\n\n[mongos]", l.shard2[2]),
        &format!(
            "\"{}\", \"{extra_a}\", \"{extra_b}\"]\n\n[mongos]",
            l.shard2[2]
        ),
    );
    assert_ne!(text2, text);
    let topo2 = s.write("opts.toml", &text2);
    let plan = s.ok(&["plan", topo2.to_str().unwrap()]);
    assert!(
        plan.contains(&format!("replSetReconfig shard2: add {extra_a}, {extra_b}")),
        "{plan}"
    );
    let out = s.run(&["init", topo2.to_str().unwrap(), "--timeout", "30"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let c = d.rs_config("shard2").unwrap();
    assert_eq!(hosts(&c).len(), 5);
    let p = d.primary("shard2").unwrap();
    assert_eq!(d.received(&p, "replSetReconfig").len(), 2);
    assert!(s
        .ok(&["plan", topo2.to_str().unwrap()])
        .contains("nothing to do"));
}

#[test]
fn topology_rules_are_checked_before_anything_runs() {
    let s = Scratch::new();
    let l = Layout::new(25160);
    let good = l.topology("v", "");
    let cases: Vec<(String, &str)> = vec![
        (
            good.replace("name = \"shard2\"", "name = \"cfg\""),
            "field `shards[1].name`: \"cfg\" is also the config server replica set's name",
        ),
        (
            good.replace(&l.shard2[1], "db2.example.com:27017"),
            "field `shards[1].members[1]`: mixes localhost and other host names",
        ),
        (
            good.replace("key = { createdAt = \"hashed\", userId = 1 }", "key = { createdAt = \"hashed\", userId = \"hashed\" }"),
            "field `collections[0].key`: 2 hashed fields (createdAt, userId); a shard key may hold at most one",
        ),
        (
            good.replace("key = { createdAt = \"hashed\", userId = 1 }", "key = { createdAt = \"hashed\", userId = 1 }\nunique = true"),
            "field `collections[0].unique`: hashed shard keys cannot be declared unique",
        ),
        (good.replace("chunk_size_mb = 64", "chunk_size_mb = 0"), "field `sharding.chunk_size_mb`: must be 1-1024 (MB), got 0"),
        (good.replace("chunk_size_mb = 64", "chunk_size_mb = 2048"), "field `sharding.chunk_size_mb`: must be 1-1024 (MB), got 2048"),
        (
            good.replace("stop = \"06:00\"", "stop = \"02:00\""),
            "field `sharding.balancer_window`: start and stop are both 02:00",
        ),
        (
            good.replace("stop = \"06:00\"", "stop = \"6am\""),
            "field `sharding.balancer_window.stop`: \"6am\" is not a time HH:MM",
        ),
        (
            good.replace(&format!("\"{}\"]\n\n[[shards]]\nname = \"shard1\"", l.cfg[2]), &format!("{{ host = \"{}\", arbiter = true }}]\n\n[[shards]]\nname = \"shard1\"", l.cfg[2])),
            "field `config_servers.members[2]`: arbiters are not allowed in the config server replica set",
        ),
        (
            good.replace(&format!("\"{}\"]\n\n[[shards]]\nname = \"shard2\"", l.shard1[2]), &format!("{{ host = \"{}\", hidden = true, priority = 1 }}]\n\n[[shards]]\nname = \"shard2\"", l.shard1[2])),
            "field `shards[0].members[2]`: a hidden member must have priority 0",
        ),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        assert_ne!(text, &good, "case {i} did not change the file");
        let f = s.write(&format!("bad{i}.toml"), text);
        let out = s.run(&["init", f.to_str().unwrap(), "--timeout", "5"]);
        assert_eq!(out.status.code(), Some(1), "case {i}");
        let e = stderr(&out);
        assert!(e.contains(&format!("bad{i}.toml:")), "case {i}: {e}");
        assert!(e.contains(want), "case {i}: want {want:?} in\n{e}");
    }
    assert!(
        !s.path().join(".datatier").join("v").exists(),
        "no state created"
    );
}

#[test]
fn the_local_provider_says_what_to_install_when_mongod_is_missing() {
    let s = Scratch::new();
    let _g = support::default_ports_lock();
    let out = s
        .cmd(&["init", "mongo-sharded", "--timeout", "5"])
        .env("PATH", "/nonexistent")
        .env_remove("DATATIER_MONGOD_BIN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(e.contains("the local provider needs mongod"), "{e}");
    assert!(e.contains("mongod not found"), "{e}");
    assert!(e.contains("--provider existing"), "{e}");
    let out = s
        .cmd(&["init", "mongo-sharded", "--timeout", "5"])
        .env("DATATIER_MONGOD_BIN", "/nonexistent/mongod")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("DATATIER_MONGOD_BIN=/nonexistent/mongod does not exist"),
        "{}",
        stderr(&out)
    );
    // Nothing was started.
    assert!(!support::listening(27101));
    let manifest = s.path().join(".datatier/mongo-sharded/processes.json");
    assert!(!manifest.exists());
    // The embedded default renders to a compose file for Docker users.
    let c = s.ok(&["render", "compose", "mongo-sharded"]);
    assert!(c.contains("\"mongos\", \"--configdb\", \"cfg/127.0.0.1:27101,127.0.0.1:27102,127.0.0.1:27103\", \"--port\", \"27017\""), "{c}");
}

/// The double itself, through the official driver: replica set discovery
/// (a client given only the set name and seeds finds the primary and
/// follows an election), and the legacy OP_QUERY handshake.
#[test]
fn the_double_supports_driver_discovery_and_the_legacy_handshake() {
    let d = Double::new();
    let members = ["127.0.0.1:25180", "127.0.0.1:25181", "127.0.0.1:25182"];
    for m in members {
        d.mongod(m, Some("rs0"), Role::None, V7);
    }
    d.initiate("rs0", &members);
    let first = d.wait_primary("rs0");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = mongodb::Client::with_uri_str(format!(
            "mongodb://{}/?replicaSet=rs0&serverSelectionTimeoutMS=5000",
            members.join(",")
        ))
        .await
        .unwrap();
        let coll = c.database("app").collection::<Document>("t");
        coll.insert_one(doc! {"x": 1}).await.unwrap();
        assert_eq!(coll.count_documents(doc! {}).await.unwrap(), 1);
        // The primary stops; the driver finds the new one.
        d.stop(&first);
        support::eventually("a new primary", std::time::Duration::from_secs(10), || {
            d.primary("rs0").filter(|p| *p != first)
        });
        coll.insert_one(doc! {"x": 2}).await.unwrap();
        assert_eq!(coll.count_documents(doc! {}).await.unwrap(), 2);
    });
    // OP_QUERY isMaster on admin.$cmd gets an OP_REPLY.
    use std::io::{Read, Write};
    let mut sock = std::net::TcpStream::connect(members[1]).unwrap();
    sock.write_all(&mongo_double::wire::encode_query(
        7,
        "admin.$cmd",
        &doc! {"isMaster": 1},
    ))
    .unwrap();
    let mut len = [0u8; 4];
    sock.read_exact(&mut len).unwrap();
    let mut rest = vec![0u8; i32::from_le_bytes(len) as usize - 4];
    sock.read_exact(&mut rest).unwrap();
    let mut msg = len.to_vec();
    msg.extend(rest);
    let (to, reply) = mongo_double::wire::decode_reply(&msg).unwrap();
    assert_eq!(to, 7);
    assert_eq!(reply.get_str("setName"), Ok("rs0"));
    assert!(reply.get_bool("ismaster").is_ok());
}

// ---------------------------------------------------------------- migrate

/// A replica set `rs0` holding data, plus the nodes of the cluster it
/// should become a shard of (config servers, shard2, mongos), all doubles.
struct Migration {
    rs0: Vec<String>,
    cfg: Vec<String>,
    shard2: Vec<String>,
    mongos: String,
}

impl Migration {
    fn new(d: &Double, base: u16, version: &str) -> Migration {
        let a = |p: u16| format!("127.0.0.1:{p}");
        let m = Migration {
            rs0: (0..3).map(|i| a(base + i)).collect(),
            cfg: (3..6).map(|i| a(base + i)).collect(),
            shard2: (6..9).map(|i| a(base + i)).collect(),
            mongos: a(base + 9),
        };
        for x in &m.rs0 {
            d.mongod(x, Some("rs0"), Role::None, version);
        }
        let rs0: Vec<&str> = m.rs0.iter().map(String::as_str).collect();
        d.initiate("rs0", &rs0);
        let docs = |n: i64| -> Vec<Document> {
            (0..n)
                .map(|i| doc! {"createdAt": bson::DateTime::from_millis(1_700_000_000_000 + i), "userId": i % 17})
                .collect()
        };
        d.insert("rs0", "credibility_prod.analyses", docs(300));
        d.insert("rs0", "credibility_prod.users", docs(50));
        d.insert("rs0", "audit.events", docs(20));
        for x in &m.cfg {
            d.mongod(x, Some("cfg"), Role::ConfigSvr, version);
        }
        for x in &m.shard2 {
            d.mongod(x, Some("shard2"), Role::ShardSvr, version);
        }
        d.mongos(&m.mongos, &format!("cfg/{}", m.cfg.join(",")), version);
        m
    }

    fn uri(&self) -> String {
        format!("mongodb://{}/?replicaSet=rs0", self.rs0.join(","))
    }

    fn topology(&self) -> String {
        let q = |v: &[String]| {
            v.iter()
                .map(|s| format!("\"{s}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            r#"name = "credibility"
kind = "mongo-sharded"
provider = "existing"

[config_servers]
name = "cfg"
members = [{}]

[[shards]]
name = "rs0"
members = [{}]

[[shards]]
name = "shard2"
members = [{}]

[mongos]
hosts = ["{}"]

[sharding]
chunk_size_mb = 64
balancer_window = {{ start = "02:00", stop = "06:00" }}

[[collections]]
database = "credibility_prod"
name = "analyses"
key = {{ createdAt = "hashed", userId = 1 }}
"#,
            q(&self.cfg),
            q(&self.rs0),
            q(&self.shard2),
            self.mongos
        )
    }
}

#[test]
fn migrate_a_replica_set_into_a_sharded_cluster_with_a_manual_restart_in_between() {
    let s = Scratch::new();
    let d = Double::new();
    let m = Migration::new(&d, 25200, V7);
    let to = s.write("credibility.toml", &m.topology());
    let to = to.to_str().unwrap();
    let uri = m.uri();
    let journal = s
        .path()
        .join(".datatier/credibility/migrate-mongo-to-sharded.json");

    // 1st run: the members run without --shardsvr and datatier did not
    // start them: it prints MongoDB's rolling-restart procedure and stops.
    let out = s.run(&[
        "migrate",
        "mongo-to-sharded",
        "--from",
        &uri,
        "--to",
        to,
        "--skip-backup",
        "--yes",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(
        e.contains("preflight: replica set rs0 (3 members) -> sharded cluster credibility"),
        "{e}"
    );
    assert!(e.contains("3 collection(s), 370 document(s)"), "{e}");
    assert!(
        e.contains("must run with --shardsvr before they can become a shard"),
        "{e}"
    );
    assert!(e.contains("rs.stepDown()"), "{e}");
    assert!(
        e.contains(&format!(
            "Not yet running with --shardsvr: {}",
            m.rs0.join(", ")
        )),
        "{e}"
    );
    assert!(
        mutations(&d).is_empty(),
        "nothing changed yet: {:?}",
        mutations(&d)
    );
    let j: Value = serde_json::from_str(&std::fs::read_to_string(&journal).unwrap()).unwrap();
    let steps: Vec<&str> = j["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["preflight", "backup"]);
    assert_eq!(j["counts_before"]["credibility_prod.analyses"], 300);

    // The operator restarts the members with --shardsvr (rolling).
    let primary = d.primary("rs0").unwrap();
    for x in m.rs0.iter().filter(|x| **x != primary) {
        d.restart_with_role(x, Role::ShardSvr);
    }
    d.restart_with_role(&primary, Role::ShardSvr);
    d.wait_primary("rs0");

    // Without --yes and without a terminal: refused before any change.
    let out = s.run(&[
        "migrate",
        "mongo-to-sharded",
        "--from",
        &uri,
        "--to",
        to,
        "--skip-backup",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("needs confirmation, but stdin is not a terminal; re-run with --yes"),
        "{}",
        stderr(&out)
    );
    assert!(mutations(&d).is_empty(), "{:?}", mutations(&d));

    // 2nd run resumes and finishes.
    let out = s.run(&[
        "migrate",
        "mongo-to-sharded",
        "--from",
        &uri,
        "--to",
        to,
        "--skip-backup",
        "--yes",
        "--timeout",
        "30",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{}\n{stdout}", stderr(&out));
    assert!(
        stderr(&out).contains("resuming the migration recorded in"),
        "{}",
        stderr(&out)
    );
    assert!(
        stdout.contains("credibility_prod.analyses         300 ->        300  OK"),
        "{stdout}"
    );
    assert!(stdout.contains("audit.events"), "{stdout}");
    assert!(
        stdout.contains("verified: every collection holds as many documents as before"),
        "{stdout}"
    );

    // Independently: the set is a shard, the data stayed on it, the
    // collection is sharded on the declared key with its supporting index.
    let shards: Vec<String> = d
        .catalog("cfg", "shards")
        .iter()
        .map(|x| x.get_str("host").unwrap().to_string())
        .collect();
    assert_eq!(
        shards,
        [
            format!("rs0/{}", m.rs0.join(",")),
            format!("shard2/{}", m.shard2.join(","))
        ]
    );
    let dbs = d.catalog("cfg", "databases");
    let cp = dbs
        .iter()
        .find(|x| x.get_str("_id") == Ok("credibility_prod"))
        .unwrap();
    assert_eq!(cp.get_str("primary"), Ok("rs0"));
    let colls = d.catalog("cfg", "collections");
    assert_eq!(colls.len(), 1);
    assert_eq!(
        colls[0].get_document("key").unwrap(),
        &doc! {"createdAt": "hashed", "userId": 1}
    );
    assert!(d
        .indexes("rs0", "credibility_prod.analyses")
        .contains(&doc! {"createdAt": "hashed", "userId": 1}));
    assert_eq!(d.count("rs0", "credibility_prod.analyses"), 300);
    assert_eq!(d.count("rs0", "credibility_prod.users"), 50);
    assert_eq!(
        setting(&d, "chunksize").unwrap().get("value"),
        Some(&Bson::Int32(64))
    );
    let j: Value = serde_json::from_str(&std::fs::read_to_string(&journal).unwrap()).unwrap();
    assert!(j["finished"].is_string());
    assert_eq!(j["steps"].as_array().unwrap().len(), 7);
    // The target is recorded: status by name works, and is OK.
    let out = s.run(&["status", "credibility", "-o", "json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Running it again changes nothing and verifies again.
    d.clear_log();
    let out = s.run(&[
        "migrate",
        "mongo-to-sharded",
        "--from",
        &uri,
        "--to",
        to,
        "--skip-backup",
        "--yes",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(mutations(&d).is_empty(), "{:?}", mutations(&d));

    // Documents written outside the migration show up as a difference.
    d.insert("rs0", "audit.events", vec![doc! {"late": true}]);
    let out = s.run(&[
        "migrate",
        "mongo-to-sharded",
        "--from",
        &uri,
        "--to",
        to,
        "--skip-backup",
        "--yes",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        stdout.contains("audit.events") && stdout.contains("DIFFERS"),
        "{stdout}"
    );
    assert!(
        stdout.contains("PROBLEM: audit.events: 20 documents before, 21 after"),
        "{stdout}"
    );
}

#[test]
fn migrate_backs_up_with_mongodump_and_refuses_bad_targets() {
    let s = Scratch::new();
    let d = Double::new();
    let m = Migration::new(&d, 25220, V7);
    for x in m.rs0.clone() {
        d.restart_with_role(&x, Role::ShardSvr);
    }
    d.wait_primary("rs0");
    let uri = m.uri();

    // A target that does not declare the set as a shard.
    let bad = s.write(
        "bad.toml",
        &m.topology().replace("name = \"rs0\"", "name = \"main\""),
    );
    let out = s.run(&[
        "migrate",
        "mongo-to-sharded",
        "--from",
        &uri,
        "--to",
        bad.to_str().unwrap(),
        "--yes",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("declares no shard named rs0 (the source replica set)"),
        "{}",
        stderr(&out)
    );
    // Members declared differently from the set's config.
    let bad = s.write(
        "bad2.toml",
        &m.topology().replace(
            &format!("\"{}\"]\n\n[[shards]]\nname = \"shard2\"", m.rs0[2]),
            "\"127.0.0.1:25239\"]\n\n[[shards]]\nname = \"shard2\"",
        ),
    );
    let out = s.run(&[
        "migrate",
        "mongo-to-sharded",
        "--from",
        &uri,
        "--to",
        bad.to_str().unwrap(),
        "--yes",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("declare the members as the set lists them"),
        "{}",
        stderr(&out)
    );

    let to = s.write("credibility.toml", &m.topology());
    let to = to.to_str().unwrap();
    // A member short of disk space fails the preflight, naming it.
    d.set_disk(&m.rs0[1], (100 << 30) - (200 << 20), 100 << 30);
    let out = s.run(&[
        "migrate",
        "mongo-to-sharded",
        "--from",
        &uri,
        "--to",
        to,
        "--yes",
        "--skip-backup",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!(
            "preflight failed: {}: 200.0 MiB free, needs at least 1.0 GiB",
            m.rs0[1]
        )),
        "{}",
        stderr(&out)
    );
    assert!(mutations(&d).is_empty());
    d.set_disk(&m.rs0[1], 10 << 30, 100 << 30);
    // No mongodump anywhere: a clear error, nothing changed.
    let out = s
        .cmd(&[
            "migrate",
            "mongo-to-sharded",
            "--from",
            &uri,
            "--to",
            to,
            "--yes",
        ])
        .env("PATH", "/nonexistent")
        .env_remove("DATATIER_MONGODUMP_BIN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(
        e.contains("mongodump not found")
            && e.contains("mongodb-database-tools")
            && e.contains("--skip-backup"),
        "{e}"
    );
    assert!(mutations(&d).is_empty());

    // A stand-in mongodump records how it was called (the URI must come
    // through a private config file, not the command line).
    let record = s.path().join("mongodump.args");
    let script = s.write(
        "mongodump",
        &format!(
            "#!/bin/sh\necho \"$@\" > {rec}\nwhile [ $# -gt 0 ]; do case $1 in --config) cp \"$2\" {rec}.conf; stat -c %a \"$2\" > {rec}.mode; shift;; --out) mkdir -p \"$2\"; echo dump > \"$2/done\"; shift;; esac; shift; done\necho 'writing credibility_prod.analyses' >&2\n",
            rec = record.display()
        ),
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let backups = s.path().join("backups");
    let out = s
        .cmd(&[
            "migrate",
            "mongo-to-sharded",
            "--from",
            &uri,
            "--to",
            to,
            "--yes",
            "--backup-dir",
            backups.to_str().unwrap(),
            "--timeout",
            "30",
        ])
        .env("DATATIER_MONGODUMP_BIN", &script)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("{}: 90.0 GiB free on its data disk", m.rs0[0])),
        "{}",
        stderr(&out)
    );
    let args = std::fs::read_to_string(&record).unwrap();
    assert!(
        args.contains("--config") && args.contains("--oplog") && args.contains("--out"),
        "{args}"
    );
    assert!(
        !args.contains("mongodb://"),
        "the URI must not be on the command line: {args}"
    );
    let conf = std::fs::read_to_string(format!("{}.conf", record.display())).unwrap();
    assert_eq!(conf.trim(), format!("uri: \"{uri}\""));
    assert_eq!(
        std::fs::read_to_string(format!("{}.mode", record.display()))
            .unwrap()
            .trim(),
        "600"
    );
    let dumped: Vec<_> = std::fs::read_dir(&backups).unwrap().flatten().collect();
    assert_eq!(dumped.len(), 1);
    assert!(dumped[0].path().join("done").is_file());
    assert!(
        !s.path()
            .join(".datatier/credibility/mongodump.yaml")
            .exists(),
        "the config file is removed"
    );
    let j: Value = serde_json::from_str(
        &std::fs::read_to_string(
            s.path()
                .join(".datatier/credibility/migrate-mongo-to-sharded.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(j["backup"], dumped[0].path().to_str().unwrap());
    assert_eq!(d.catalog("cfg", "shards").len(), 2);
}

/// Timings of datatier against the double, for `scripts/bench-mongo.sh`
/// (no peer tool can run against a test double, so these are datatier's
/// own figures: planning, bootstrap with elections and initial syncs set to
/// take no time, a second init, status). Every run is checked.
#[test]
#[ignore = "benchmark: run by scripts/bench-mongo.sh"]
fn bench_against_the_double() {
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let mut t: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for _ in 0..runs {
        let s = Scratch::new();
        let d = Double::new();
        d.set_delays(std::time::Duration::ZERO, std::time::Duration::ZERO);
        let l = Layout::new(25260);
        l.spawn(&d, V7);
        let topo = s.write("bench.toml", &l.topology("bench", ""));
        let topo = topo.to_str().unwrap();
        let mut time = |name: &'static str, args: &[&str]| {
            let t0 = std::time::Instant::now();
            let out = s.run(args);
            let dt = t0.elapsed().as_secs_f64();
            assert!(out.status.success(), "{name}: {}", stderr(&out));
            t.entry(name).or_default().push(dt);
            out
        };
        time("1 plan (fresh cluster, 25 steps)", &["plan", topo]);
        time("2 init from scratch", &["init", topo, "--timeout", "30"]);
        let out = time("3 init again (nothing to do)", &["init", topo]);
        assert!(stderr(&out).contains("nothing to do"));
        time("4 status (10 nodes, all checks)", &["status", topo]);
        assert_eq!(d.catalog("cfg", "shards").len(), 2);
    }
    println!(
        "\ndatatier against the wire-protocol double, median of {runs} runs (seconds; includes process start)"
    );
    for (name, mut v) in t {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!("  {:<36} {:>7.3}", &name[2..], v[v.len() / 2]);
    }
}

#[test]
fn access_control_with_a_scram_user_whose_password_is_never_printed() {
    let s = Scratch::new();
    let d = Double::new();
    let l = Layout::new(25240);
    l.spawn(&d, V7);
    d.add_user("clusterAdmin", "s3cr3t-pw");
    let topo = s.write(
        "auth.toml",
        &l.topology(
            "auth",
            "\n[auth]\nusername = \"clusterAdmin\"\npassword_env = \"TEST_MONGO_PW\"\n",
        ),
    );
    let topo = topo.to_str().unwrap();
    let run = |pw: Option<&str>, args: &[&str]| {
        let mut c = s.cmd(args);
        match pw {
            Some(p) => c.env("TEST_MONGO_PW", p),
            None => c.env_remove("TEST_MONGO_PW"),
        };
        c.output().unwrap()
    };
    // The variable is named when missing.
    let out = run(None, &["plan", topo]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("environment variable TEST_MONGO_PW (password_env) is not set"),
        "{}",
        stderr(&out)
    );
    // Wrong credentials: refused by the server, the password never shown.
    let out = run(Some("wrong-pw"), &["init", topo, "--timeout", "10"]);
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(
        e.contains("refused the credentials") && e.contains("AuthenticationFailed (18)"),
        "{e}"
    );
    assert!(!e.contains("wrong-pw"), "{e}");
    assert!(mutations(&d).is_empty());
    // The local provider cannot start nodes with access control.
    let out = run(Some("s3cr3t-pw"), &["plan", topo, "--provider", "local"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("[auth] needs provider \"existing\""),
        "{}",
        stderr(&out)
    );
    // The right password: the whole bootstrap over authenticated connections.
    let out = run(Some("s3cr3t-pw"), &["init", topo, "--timeout", "30"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("s3cr3t-pw")
            && !String::from_utf8_lossy(&out.stdout).contains("s3cr3t-pw")
    );
    assert_eq!(d.catalog("cfg", "shards").len(), 2);
    assert_eq!(d.catalog("cfg", "collections").len(), 1);
    let out = run(Some("s3cr3t-pw"), &["status", topo, "-o", "json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("s3cr3t-pw"));
    let out = run(Some("s3cr3t-pw"), &["env", topo]);
    let env = String::from_utf8_lossy(&out.stdout);
    assert!(
        env.contains("export MONGODB_USERNAME='clusterAdmin'"),
        "{env}"
    );
    assert!(
        env.contains("export MONGODB_PASSWORD_FROM='env:TEST_MONGO_PW'"),
        "{env}"
    );
    assert!(!env.contains("s3cr3t-pw"));
    // Access control is really on: without credentials the mongos refuses.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let e = rt.block_on(async {
        let c =
            mongodb::Client::with_uri_str(format!("mongodb://{}/?directConnection=true", l.mongos))
                .await
                .unwrap();
        c.database("admin")
            .run_command(doc! {"listShards": 1})
            .await
            .unwrap_err()
            .to_string()
    });
    assert!(e.contains("requires authentication"), "{e}");
}
