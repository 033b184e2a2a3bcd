//! Redis Sentinel end to end, against real `redis-server` and
//! `redis-sentinel` processes started through datatier's local provider (or
//! by the test itself for the existing provider). Every result is checked
//! independently with `redis-cli`, not only through datatier's own status.
//!
//! Ports: the built-in default (6380-6382, 26380-26382) under
//! `support::default_ports_lock()`, everything else in 22000-22499.

mod support;

use serde_json::Value;
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{eventually, listening, sh, Scratch};

fn cli(port: u16, args: &[&str]) -> String {
    let p = port.to_string();
    let mut a = vec!["-p", &p];
    a.extend_from_slice(args);
    sh("redis-cli", &a)
}

/// `redis-cli` that may fail (returns stdout + stderr).
fn try_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A field of `INFO replication`.
fn repl(port: u16, field: &str) -> String {
    cli(port, &["info", "replication"])
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

/// What a sentinel tells clients: the master's port.
fn sentinel_master(port: u16) -> u16 {
    let out = cli(port, &["sentinel", "get-master-addr-by-name", "mymaster"]);
    out.lines()
        .nth(1)
        .unwrap_or("0")
        .trim()
        .parse()
        .unwrap_or(0)
}

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn pid_of(s: &Scratch, topo: &str, port: u16) -> i32 {
    let p = s
        .path()
        .join(".datatier")
        .join(topo)
        .join(format!("127.0.0.1-{port}"))
        .join("server.pid");
    std::fs::read_to_string(&p).unwrap().trim().parse().unwrap()
}

fn kill9(pid: i32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
}

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// A topology with data nodes on `base..base+2` and sentinels on
/// `base+10..base+12`, down-after 1000 ms to keep failovers short.
fn topology(name: &str, base: u16, extra: &str) -> String {
    format!(
        "name = \"{name}\"\nkind = \"redis-sentinel\"\n\n[sentinel]\nmaster = \"127.0.0.1:{}\"\nreplicas = [\"127.0.0.1:{}\", \"127.0.0.1:{}\"]\nsentinels = [\"127.0.0.1:{}\", \"127.0.0.1:{}\", \"127.0.0.1:{}\"]\nquorum = 2\ndown_after_ms = 1000\nfailover_timeout_ms = 10000\n{extra}\n[config]\nappendonly = \"yes\"\n",
        base,
        base + 1,
        base + 2,
        base + 10,
        base + 11,
        base + 12
    )
}

fn finding<'a>(v: &'a Value, check: &str, node: Option<&str>) -> &'a Value {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == check && (node.is_none() || f["node"] == node.unwrap()))
        .unwrap_or_else(|| panic!("no finding {check} {node:?} in {v:#}"))
}

/// Write `n` keys to `port` with `prefix`, and return those that at least
/// one replica acknowledged (WAIT after each batch).
fn write_acked(port: u16, prefix: &str, n: usize) -> Vec<String> {
    let mut acked = Vec::new();
    for batch in 0..n / 10 {
        let mut args: Vec<String> = vec!["mset".into()];
        let keys: Vec<String> = (0..10)
            .map(|i| format!("{prefix}:{}", batch * 10 + i))
            .collect();
        for k in &keys {
            args.push(k.clone());
            args.push(format!("v-{k}"));
        }
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_eq!(cli(port, &a).trim(), "OK");
        let reached: u32 = cli(port, &["wait", "1", "2000"]).trim().parse().unwrap();
        if reached >= 1 {
            acked.extend(keys);
        }
    }
    acked
}

fn missing_keys(port: u16, keys: &[String]) -> Vec<String> {
    keys.iter()
        .filter(|k| cli(port, &["get", k]).trim() != format!("v-{k}"))
        .cloned()
        .collect()
}

#[test]
fn default_layout_init_ckquorum_replication_idempotent_down() {
    let _ports = support::default_ports_lock();
    let s = Scratch::new();
    s.cleanup("redis-sentinel");
    let out = s.run(&["init", "redis-sentinel"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("redis-sentinel (redis-sentinel): OK"));

    // The peer tool's own verdict, on every sentinel.
    for p in 26380..=26382u16 {
        let q = cli(p, &["sentinel", "ckquorum", "mymaster"]);
        assert!(q.starts_with("OK 3 usable Sentinels"), "{p}: {q}");
        assert_eq!(sentinel_master(p), 6380);
        let m = cli(p, &["sentinel", "master", "mymaster"]);
        let field = |k: &str| {
            let lines: Vec<&str> = m.lines().collect();
            let i = lines.iter().position(|l| *l == k).unwrap();
            lines[i + 1].to_string()
        };
        assert_eq!(field("quorum"), "2");
        assert_eq!(field("down-after-milliseconds"), "5000");
        assert_eq!(field("failover-timeout"), "10000");
        assert_eq!(field("parallel-syncs"), "1");
        assert_eq!(field("num-slaves"), "2");
        assert_eq!(field("num-other-sentinels"), "2");
    }
    // Distinct ids, each sentinel in its own 0600 config.
    let mut ids = BTreeSet::new();
    for p in 26380..=26382u16 {
        ids.insert(cli(p, &["sentinel", "myid"]).trim().to_string());
        let dir = s
            .path()
            .join(format!(".datatier/redis-sentinel/127.0.0.1-{p}"));
        let conf = dir.join("sentinel.conf");
        assert_eq!(mode(&conf), 0o600);
        assert_eq!(mode(&dir), 0o700);
        let text = std::fs::read_to_string(&conf).unwrap();
        assert!(
            text.contains("sentinel monitor mymaster 127.0.0.1 6380 2"),
            "{text}"
        );
    }
    assert_eq!(ids.len(), 3, "{ids:?}");

    // Two replicas linked; writes on the master visible on both.
    assert_eq!(repl(6380, "role"), "master");
    assert_eq!(repl(6380, "connected_slaves"), "2");
    for p in [6381u16, 6382] {
        assert_eq!(repl(p, "role"), "slave");
        assert_eq!(repl(p, "master_port"), "6380");
        assert_eq!(repl(p, "master_link_status"), "up");
    }
    let keys = write_acked(6380, "k", 200);
    assert_eq!(keys.len(), 200);
    assert_eq!(cli(6380, &["wait", "2", "5000"]).trim(), "2");
    for p in [6381u16, 6382] {
        assert_eq!(cli(p, &["dbsize"]).trim(), "200");
        assert!(missing_keys(p, &keys).is_empty());
    }
    // The declared diskless delay is back after the fast bootstrap, persisted.
    assert_eq!(
        cli(6380, &["config", "get", "repl-diskless-sync-delay"])
            .lines()
            .nth(1),
        Some("5")
    );

    // Idempotent: empty plan, second init changes nothing, data intact.
    let plan = s.ok(&["plan", "redis-sentinel"]);
    assert!(plan.contains("nothing to do"), "{plan}");
    let again = s.run(&["init", "redis-sentinel"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("nothing to do"),
        "{}",
        stderr(&again)
    );
    assert_eq!(cli(6380, &["dbsize"]).trim(), "200");
    assert_eq!(cli(6382, &["get", "k:7"]).trim(), "v-k:7");

    // status: JSON contract, prometheus, table; exit 0.
    let st = s.run(&["status", "redis-sentinel", "-o", "json"]);
    assert_eq!(st.status.code(), Some(0), "{}", stdout(&st));
    let v = json(&st);
    assert_eq!(v["kind"], "redis-sentinel");
    assert_eq!(v["status"], "ok");
    let nodes = v["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 6);
    assert_eq!(nodes[0]["address"], "127.0.0.1:6380");
    assert_eq!(nodes[0]["role"], "master");
    assert_eq!(nodes[1]["role"], "replica");
    assert_eq!(nodes[1]["master"], "127.0.0.1:6380");
    assert_eq!(nodes[1]["link"], "up");
    assert_eq!(nodes[3]["role"], "sentinel");
    assert_eq!(nodes[3]["master"], "127.0.0.1:6380");
    assert_eq!(nodes[3]["quorum"], "OK");
    for c in [
        "ckquorum",
        "sentinel_agreement",
        "sentinel_peers",
        "sentinel_replicas",
        "config_epoch",
        "replica_link",
        "replica_lag",
        "master",
    ] {
        assert_eq!(finding(&v, c, None)["severity"], "ok", "{c}: {v:#}");
    }
    assert!(finding(&v, "master", None)["message"]
        .as_str()
        .unwrap()
        .contains("per 3 of 3 answering sentinels"));
    let prom = s.ok(&["status", "redis-sentinel", "-o", "prometheus"]);
    assert!(
        prom.contains("datatier_status{topology=\"redis-sentinel\",kind=\"redis-sentinel\"} 0"),
        "{prom}"
    );
    assert!(prom.contains(
        "datatier_redis_is_master{topology=\"redis-sentinel\",node=\"127.0.0.1:6380\"} 1"
    ));
    let env = s.ok(&["env", "redis-sentinel"]);
    assert!(
        env.contains("export REDIS_SENTINELS='127.0.0.1:26380,127.0.0.1:26381,127.0.0.1:26382'")
    );
    assert!(env.contains("export REDIS_SENTINEL_MASTER='mymaster'"));

    // down frees every port; init afterwards brings the same set back with its data.
    let down = s.ok(&["down", "redis-sentinel"]);
    assert!(down.contains("stopped 6 process(es)"), "{down}");
    for p in [6380u16, 6381, 6382, 26380, 26381, 26382] {
        assert!(!listening(p), "port {p} still in use");
    }
    s.ok(&["init", "redis-sentinel"]);
    assert_eq!(repl(6380, "role"), "master");
    assert_eq!(repl(6381, "master_port"), "6380");
    assert_eq!(cli(6381, &["dbsize"]).trim(), "200");
    assert_eq!(cli(26381, &["sentinel", "myid"]).trim().len(), 40);
    assert!(
        ids.contains(cli(26381, &["sentinel", "myid"]).trim()),
        "sentinels keep their ids"
    );
    s.ok(&["down", "redis-sentinel", "--purge"]);
    assert!(!s.path().join(".datatier/redis-sentinel").exists());
}

#[test]
fn master_killed_sentinels_promote_status_follows_init_heals() {
    let s = Scratch::new();
    let f = s.write("shop.toml", &topology("shop", 22000, ""));
    let f = f.to_str().unwrap();
    s.cleanup(f);
    s.ok(&["init", f]);
    let acked = write_acked(22000, "order", 300);
    assert_eq!(acked.len(), 300);

    kill9(pid_of(&s, "shop", 22000));
    eventually(
        "the killed master to stop listening",
        Duration::from_secs(5),
        || (!listening(22000)).then_some(()),
    );
    // Right away: CRITICAL, naming the master.
    let st = s.run(&["status", f, "-o", "json"]);
    assert_eq!(st.status.code(), Some(2), "{}", stdout(&st));
    let v = json(&st);
    let m = finding(&v, "master", Some("127.0.0.1:22000"));
    assert_eq!(m["severity"], "critical", "{v:#}");
    assert!(m["message"].as_str().unwrap().contains("is down"), "{v:#}");

    // The sentinels promote a replica (checked with redis-cli).
    let promoted = eventually(
        "the sentinels to promote a replica",
        Duration::from_secs(30),
        || {
            let p = sentinel_master(22010);
            (p == 22001 || p == 22002).then_some(p)
        },
    );
    eventually(
        "the promoted replica to be a master",
        Duration::from_secs(10),
        || (repl(promoted, "role") == "master").then_some(()),
    );
    // status names the new master (no longer CRITICAL: the old master is a
    // replica now, and a missing replica is a WARNING).
    let v = eventually(
        "status to name the new master",
        Duration::from_secs(30),
        || {
            let st = s.run(&["status", f, "-o", "json"]);
            let v = json(&st);
            (st.status.code() == Some(1)
                && finding(&v, "master", None)["node"] == format!("127.0.0.1:{promoted}"))
            .then_some(v)
        },
    );
    assert_eq!(finding(&v, "master", None)["severity"], "ok", "{v:#}");
    assert_eq!(
        finding(&v, "node_reachable", Some("127.0.0.1:22000"))["severity"],
        "warning"
    );
    let table = s.run(&["status", f]);
    assert!(
        stdout(&table).contains("a failover happened: the master is now 127.0.0.1:"),
        "{}",
        stdout(&table)
    );

    // init restores three data nodes, the old master as a replica of the new one.
    let plan = s.ok(&["plan", f]);
    assert!(
        plan.contains(&format!(
            "127.0.0.1:22000  start redis-server (restarts with its data, as a replica of 127.0.0.1:{promoted})"
        )),
        "{plan}"
    );
    s.ok(&["init", f]);
    assert_eq!(repl(22000, "role"), "slave");
    assert_eq!(repl(22000, "master_port"), promoted.to_string());
    assert_eq!(repl(22000, "master_link_status"), "up");
    assert_eq!(repl(promoted, "connected_slaves"), "2");
    for p in 22010..=22012u16 {
        assert_eq!(sentinel_master(p), promoted, "sentinel {p}");
    }
    // No acknowledged write lost, on any of the three.
    for p in 22000..=22002u16 {
        assert_eq!(missing_keys(p, &acked), Vec::<String>::new(), "node {p}");
    }
    // And the set works: a write on the new master reaches the old one.
    cli(promoted, &["set", "after", "failover"]);
    assert_eq!(cli(promoted, &["wait", "2", "5000"]).trim(), "2");
    assert_eq!(cli(22000, &["get", "after"]).trim(), "failover");
    let st = s.run(&["status", f]);
    assert_eq!(st.status.code(), Some(0), "{}", stdout(&st));
    assert!(s.ok(&["plan", f]).contains("nothing to do"));

    // After `down`, init comes back with the promoted master (from the
    // sentinels' own configs), not the declared one.
    s.ok(&["down", f]);
    s.ok(&["init", f]);
    assert_eq!(repl(promoted, "role"), "master");
    assert_eq!(repl(22000, "role"), "slave");
    assert_eq!(repl(22000, "master_port"), promoted.to_string());
    assert_eq!(sentinel_master(22011), promoted);
    assert_eq!(missing_keys(22000, &acked), Vec::<String>::new());
}

#[test]
fn failover_command_loses_no_acknowledged_write() {
    let s = Scratch::new();
    let f = s.write("fo.toml", &topology("fo", 22100, ""));
    let f = f.to_str().unwrap();
    s.cleanup(f);
    s.ok(&["init", f]);
    write_acked(22100, "base", 50);

    // A client writing all the time, following the sentinels on errors.
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let writer = {
        let stop = stop.clone();
        let acked = acked.clone();
        std::thread::spawn(move || {
            let mut port = 22100u16;
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let k = format!("live:{i}");
                let out = try_cli(port, &["set", &k, &format!("v-{k}")]);
                if out.trim() == "OK" {
                    acked.lock().unwrap().push(k);
                    i += 1;
                } else {
                    port = sentinel_master(22110);
                }
            }
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let out = s.run(&["failover", f, "-o", "json"]);
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["old_master"], "127.0.0.1:22100");
    let new = v["new_master"].as_str().unwrap().to_string();
    let new_port: u16 = new.rsplit(':').next().unwrap().parse().unwrap();
    assert_ne!(new_port, 22100);
    assert_eq!(v["status"]["status"], "ok", "{v:#}");
    // Every sentinel agrees, every replica follows, checked independently.
    for p in 22110..=22112u16 {
        assert_eq!(sentinel_master(p), new_port);
    }
    assert_eq!(repl(new_port, "role"), "master");
    for p in (22100..=22102u16).filter(|p| *p != new_port) {
        assert_eq!(repl(p, "role"), "slave", "{p}");
        assert_eq!(repl(p, "master_port"), new_port.to_string(), "{p}");
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 10,
        "the writer wrote too little: {}",
        acked.len()
    );
    assert_eq!(missing_keys(new_port, &acked), Vec::<String>::new());

    // --to a given node (back to the declared master); priorities restored.
    let out = s.run(&["failover", f, "--to", "127.0.0.1:22100"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with(&format!("old master: {new}\nnew master: 127.0.0.1:22100\n")),
        "{}",
        stdout(&out)
    );
    for p in 22110..=22112u16 {
        assert_eq!(sentinel_master(p), 22100);
    }
    for p in 22100..=22102u16 {
        assert_eq!(
            cli(p, &["config", "get", "replica-priority"])
                .lines()
                .nth(1),
            Some("100"),
            "{p}"
        );
    }
    assert_eq!(missing_keys(22100, &acked), Vec::<String>::new());
    assert!(s.ok(&["plan", f]).contains("nothing to do"));

    // Refusals name the problem and change nothing.
    let out = s.run(&["failover", f, "--to", "127.0.0.1:22100"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("127.0.0.1:22100 is already the master; nothing was changed"));
    let out = s.run(&["failover", f, "--to", "127.0.0.1:9"]);
    assert!(stderr(&out).contains("127.0.0.1:9 is not a data node of this topology"));
    let out = s.run(&["failover", "redis-cluster"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("`datatier failover` does not support kind `redis-cluster` yet"),
        "{}",
        stderr(&out)
    );
    assert!(!s.path().join(".datatier/redis-cluster").exists());

    // A master killed and `init` run at once: init waits for the sentinels'
    // failover instead of restarting the old master, then brings it back as
    // a replica.
    kill9(pid_of(&s, "fo", 22100));
    eventually(
        "the killed master to stop listening",
        Duration::from_secs(5),
        || (!listening(22100)).then_some(()),
    );
    let out = s.run(&["init", f]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("wait for the sentinels to promote a replica"),
        "{}",
        stderr(&out)
    );
    let now = sentinel_master(22111);
    assert_ne!(now, 22100);
    assert_eq!(repl(22100, "role"), "slave");
    assert_eq!(repl(22100, "master_port"), now.to_string());
    assert_eq!(missing_keys(22100, &acked), Vec::<String>::new());
}

/// Plain server processes started the way an operator would, for the
/// existing provider. Killed on drop.
struct Servers(Vec<std::process::Child>);

impl Servers {
    fn spawn(&mut self, program: &str, args: &[String]) {
        self.0.push(
            Command::new(program)
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        for k in &mut self.0 {
            let _ = k.kill();
            let _ = k.wait();
        }
    }
}

fn start_sentinels(s: &Scratch, ports: &[u16], same_id: bool) -> Servers {
    let mut servers = Servers(Vec::new());
    for p in ports {
        let dir = s.path().join(format!("ext-s-{p}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut conf = format!("port {p}\nbind 127.0.0.1\ndir {}\n", dir.display());
        if same_id {
            // The classic mistake: one config copied to every sentinel.
            conf.push_str("sentinel myid 0123456789012345678901234567890123456789\n");
        }
        let path = dir.join("sentinel.conf");
        std::fs::write(&path, conf).unwrap();
        servers.spawn("redis-sentinel", &[path.display().to_string()]);
    }
    for p in ports {
        eventually("a test sentinel to listen", Duration::from_secs(10), || {
            listening(*p).then_some(())
        });
    }
    servers
}

#[test]
fn existing_provider_monitors_running_sentinels_and_refuses_what_it_must() {
    let s = Scratch::new();
    let data: Vec<u16> = (22200..=22202).collect();
    let sentinels: Vec<u16> = (22210..=22212).collect();
    let mut servers = Servers(Vec::new());
    for p in &data {
        let dir = s.path().join(format!("ext-{p}"));
        std::fs::create_dir_all(&dir).unwrap();
        let args: Vec<String> = [
            "--port",
            &p.to_string(),
            "--bind",
            "127.0.0.1",
            "--dir",
            &dir.display().to_string(),
            "--save",
            "",
        ]
        .iter()
        .map(|x| x.to_string())
        .collect();
        servers.spawn("redis-server", &args);
    }
    for p in &data {
        eventually(
            "a test redis-server to listen",
            Duration::from_secs(10),
            || listening(*p).then_some(()),
        );
    }
    let f = s.write(
        "ext.toml",
        &topology("ext", 22200, "").replace(
            "kind = \"redis-sentinel\"",
            "kind = \"redis-sentinel\"\nprovider = \"existing\"",
        ),
    );
    let f = f.to_str().unwrap();

    // Sentinels sharing one id: refused, nothing changed anywhere.
    let dup = start_sentinels(&s, &sentinels, true);
    let out = s.run(&["init", f]);
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(
        e.contains("127.0.0.1:22210 and 127.0.0.1:22211 and 127.0.0.1:22212 share the sentinel id")
            && e.contains("nothing was changed"),
        "{e}"
    );
    for p in &data {
        assert_eq!(repl(*p, "role"), "master");
    }
    for p in &sentinels {
        assert!(try_cli(*p, &["sentinel", "master", "mymaster"]).contains("No such master"));
    }
    drop(dup);
    for p in &sentinels {
        eventually("a test sentinel to stop", Duration::from_secs(10), || {
            (!listening(*p)).then_some(())
        });
    }
    let _sentinels = start_sentinels(&s, &sentinels, false);

    // A declared replica holding keys of its own: refused unless --force.
    for i in 0..5 {
        cli(22202, &["set", &format!("own:{i}"), "x"]);
    }
    let out = s.run(&["init", f]);
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(
        e.contains("127.0.0.1:22202 holds 5 key(s) of its own") && e.contains("--force"),
        "{e}"
    );
    assert_eq!(repl(22202, "role"), "master");
    assert_eq!(cli(22202, &["dbsize"]).trim(), "5");

    cli(22200, &["set", "from-master", "1"]);
    let out = s.run(&["init", f, "--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("SENTINEL MONITOR 127.0.0.1 22200 2"));
    for p in &sentinels {
        let q = cli(*p, &["sentinel", "ckquorum", "mymaster"]);
        assert!(q.starts_with("OK 3 usable Sentinels"), "{p}: {q}");
    }
    for p in [22201u16, 22202] {
        assert_eq!(repl(p, "master_port"), "22200");
        assert_eq!(repl(p, "master_link_status"), "up");
        assert_eq!(
            cli(p, &["dbsize"]).trim(),
            "1",
            "the master's data replaced the node's own"
        );
    }
    let st = s.run(&["status", f]);
    assert_eq!(st.status.code(), Some(0), "{}", stdout(&st));
    assert!(s.ok(&["plan", f]).contains("nothing to do"));
    // Settings drift (set by hand on one sentinel) is planned back.
    cli(
        22211,
        &[
            "sentinel",
            "set",
            "mymaster",
            "down-after-milliseconds",
            "30000",
        ],
    );
    let st = s.run(&["status", f, "-o", "json"]);
    assert_eq!(st.status.code(), Some(1));
    assert_eq!(
        finding(&json(&st), "sentinel_settings", Some("127.0.0.1:22211"))["severity"],
        "warning"
    );
    let plan = s.ok(&["plan", f]);
    assert!(
        plan.contains("127.0.0.1:22211  SENTINEL SET down-after-milliseconds 1000"),
        "{plan}"
    );
    s.ok(&["init", f]);
    let m = cli(22211, &["sentinel", "master", "mymaster"]);
    assert!(m.contains("down-after-milliseconds\n1000"), "{m}");
    // down with the existing provider stops nothing.
    let down = s.ok(&["down", f]);
    assert!(
        down.contains("stopped 0 process(es)") || down.contains("nothing to stop"),
        "{down}"
    );
    assert!(data.iter().chain(&sentinels).all(|p| listening(*p)));
}

#[test]
fn passwords_stay_secret_and_configs_private_across_failovers() {
    let s = Scratch::new();
    let pw = "s3cr3t-Data-Pw-42";
    let spw = "s3cr3t-Sentinel-Pw-43";
    let f = s.write(
        "auth.toml",
        &topology(
            "auth",
            22300,
            "\n[auth]\npassword_env = \"DT_TEST_REDIS_PW\"\n\n[sentinel_auth]\npassword_file = \"sentinel.pass\"\n",
        ),
    );
    s.write("sentinel.pass", &format!("{spw}\n"));
    let f = f.to_str().unwrap();
    s.cleanup(f);
    let run = |args: &[&str]| s.cmd(args).env("DT_TEST_REDIS_PW", pw).output().unwrap();
    let out = run(&["-v", "init", f]);
    assert!(out.status.success(), "{}", stderr(&out));
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        !all.contains(pw) && !all.contains(spw),
        "password leaked:\n{all}"
    );

    assert!(try_cli(22300, &["dbsize"]).contains("NOAUTH"));
    assert!(try_cli(22310, &["sentinel", "ckquorum", "mymaster"]).contains("NOAUTH"));
    let ok = try_cli(
        22310,
        &[
            "--no-auth-warning",
            "-a",
            spw,
            "sentinel",
            "ckquorum",
            "mymaster",
        ],
    );
    assert!(ok.starts_with("OK 3 usable Sentinels"), "{ok}");
    let role = try_cli(
        22301,
        &["--no-auth-warning", "-a", pw, "info", "replication"],
    );
    assert!(role.contains("master_link_status:up"), "{role}");

    let out = run(&["failover", f]);
    assert!(out.status.success(), "{}", stderr(&out));
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        !all.contains(pw) && !all.contains(spw),
        "password leaked:\n{all}"
    );
    // Files holding passwords stay private, also after the servers rewrote them.
    let base = s.path().join(".datatier/auth");
    for p in [22300u16, 22301, 22302] {
        let dir = base.join(format!("127.0.0.1-{p}"));
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("redis.conf")), 0o600, "{p}");
    }
    for p in [22310u16, 22311, 22312] {
        let conf = base.join(format!("127.0.0.1-{p}/sentinel.conf"));
        assert_eq!(mode(&conf), 0o600, "{p}");
        let text = std::fs::read_to_string(&conf).unwrap();
        assert!(text.contains("sentinel auth-pass mymaster"), "{text}");
    }
    for args in [
        vec!["status", f, "-o", "json"],
        vec!["plan", f],
        vec!["env", f],
        vec!["render", "compose", f],
    ] {
        let out = run(&args);
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert!(
            !all.contains(pw) && !all.contains(spw),
            "{args:?} leaked:\n{all}"
        );
    }
    let env = stdout(&run(&["env", f]));
    assert!(
        env.contains("REDIS_PASSWORD_FROM='env:DT_TEST_REDIS_PW'"),
        "{env}"
    );
    assert!(
        env.contains("REDIS_SENTINEL_PASSWORD_FROM='file:sentinel.pass'"),
        "{env}"
    );
    // Without the variable: a clear error naming it, before anything is touched.
    let out = s.run(&["status", f]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("DT_TEST_REDIS_PW"),
        "{}",
        stderr(&out)
    );
    let out = run(&["down", f]);
    assert!(out.status.success());
}

#[test]
fn bad_layouts_are_located_and_start_nothing() {
    let s = Scratch::new();
    let head = "kind = \"redis-sentinel\"\n[sentinel]\n";
    let ok_nodes = "master = \"127.0.0.1:22400\"\nreplicas = [\"127.0.0.1:22401\"]\n";
    let cases: Vec<(String, &str)> = vec![
        // Seed 004's example: one sentinel, quorum 2.
        (
            format!("{head}{ok_nodes}sentinels = [\"127.0.0.1:22410\"]\nquorum = 2\n"),
            "bad1.toml:6:10: field `sentinel.quorum`: quorum 2 is larger than the number of sentinels (1): they can never agree that the master is down, so no failover would ever happen",
        ),
        (
            format!("{head}master = \"127.0.0.1:22400\"\nreplicas = [\"127.0.0.1:22400\"]\nsentinels = [\"127.0.0.1:22410\"]\nquorum = 1\n"),
            "bad2.toml:4:13: field `sentinel.replicas`: 127.0.0.1:22400 is already used (by `sentinel.master` on line 3)",
        ),
        (
            format!("{head}master = \"127.0.0.1:22400\"\nsentinels = [\"127.0.0.1:22410\"]\nquorum = 1\n"),
            "bad3.toml:2:1: field `sentinel.replicas`: no replicas",
        ),
        (
            format!("{head}{ok_nodes}sentinels = [\"127.0.0.1:70000\"]\nquorum = 1\n"),
            "bad4.toml:5:14: field `sentinel.sentinels`: port 70000 in \"127.0.0.1:70000\" is out of range 1-65535",
        ),
        (
            format!("{head}{ok_nodes}sentinels = [\"127.0.0.1:22410\"]\nquorum = 1\nquorom = 2\n"),
            "bad5.toml:7:1: field `quorom`: unknown field `quorom`",
        ),
        (
            format!("{head}{ok_nodes}sentinels = [\"127.0.0.1:22410\"]\nquorum = 1\n[config]\nrequirepass = \"x\"\n"),
            "bad6.toml:8:15: field `config.requirepass`: is managed by datatier",
        ),
        (
            format!("{head}{ok_nodes}sentinels = [\"127.0.0.1:22410\"]\nquorum = 1\nmaster_name = \"my master\"\n"),
            "bad7.toml:7:15: field `sentinel.master_name`: invalid master name \"my master\"",
        ),
        (
            format!("{head}{ok_nodes}sentinels = [\"127.0.0.1:22410\"]\nquorum = 0\n"),
            "bad8.toml:6:10: field `sentinel.quorum`: must be at least 1, got 0",
        ),
        (
            "kind = \"redis-sentinel\"\n".to_string(),
            "bad9.toml:1:1: field `sentinel`: missing [sentinel] section",
        ),
        (
            format!("{head}{ok_nodes}sentinels = \"127.0.0.1:22410\"\n"),
            "bad10.toml:5:13: field `sentinels`: invalid type",
        ),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let name = format!("bad{}.toml", i + 1);
        let p = s.write(&name, text);
        let out = s.run(&["init", p.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{name} should fail");
        let e = stderr(&out);
        assert!(e.contains(want), "{name}: expected `{want}` in:\n{e}");
        assert_eq!(
            s.run(&["status", p.to_str().unwrap()]).status.code(),
            Some(3),
            "{name}"
        );
    }
    assert!(
        !s.path().join(".datatier").exists(),
        "no state for bad input"
    );
    for p in [22400u16, 22401, 22410] {
        assert!(!listening(p));
    }

    // Risky but workable: a warning with its location, printed by plan.
    let p = s.write(
        "two.toml",
        &format!(
            "{head}{ok_nodes}sentinels = [\"127.0.0.1:22410\", \"127.0.0.1:22411\"]\nquorum = 1\n"
        ),
    );
    let out = s.run(&["plan", p.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("two.toml:5:13: field `sentinel.sentinels`: only 2 sentinel(s): a failover needs a majority of all sentinels (2)"),
        "{}",
        stderr(&out)
    );

    // A port in use is named, and nothing starts.
    let _blocker = std::net::TcpListener::bind("127.0.0.1:22412").unwrap();
    let p = s.write("busy.toml", &topology("busy", 22402, ""));
    let out = s.run(&["init", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("port 22412 on 127.0.0.1 is already in use")
            && stderr(&out).contains("nothing was started"),
        "{}",
        stderr(&out)
    );
    for p in [22402u16, 22403, 22404, 22413, 22414] {
        assert!(!listening(p), "{p} was started");
    }
}

#[test]
fn render_compose_and_env_for_the_default() {
    let s = Scratch::new();
    let y = s.ok(&["render", "compose", "redis-sentinel"]);
    assert_eq!(y.matches("image: \"redis:7.0\"").count(), 6, "{y}");
    assert_eq!(
        y.matches("exec redis-sentinel /data/sentinel.conf").count(),
        3,
        "{y}"
    );
    assert!(y.contains("network_mode: host"));
    let env = s.ok(&["env", "redis-sentinel", "--format", "json"]);
    let v: Value = serde_json::from_str(&env).unwrap();
    assert_eq!(v["REDIS_SENTINEL_MASTER"], "mymaster");
    assert_eq!(
        v["REDIS_SENTINEL_URL"],
        "redis+sentinel://127.0.0.1:26380,127.0.0.1:26381,127.0.0.1:26382/mymaster"
    );
}

#[test]
fn several_loopback_hosts_announce_their_own_addresses() {
    let s = Scratch::new();
    let f = s.write(
        "multi.toml",
        "name = \"multi\"\nkind = \"redis-sentinel\"\n[sentinel]\nmaster = \"127.0.0.1:22250\"\nreplicas = [\"127.0.0.2:22251\", \"127.0.0.3:22252\"]\nsentinels = [\"127.0.0.1:22260\", \"127.0.0.2:22261\", \"127.0.0.3:22262\"]\ndown_after_ms = 1000\n",
    );
    let f = f.to_str().unwrap();
    s.cleanup(f);
    s.ok(&["init", f]);
    let hcli = |host: &str, port: u16, args: &[&str]| {
        let p = port.to_string();
        let mut a = vec!["-h", host, "-p", &p];
        a.extend_from_slice(args);
        sh("redis-cli", &a)
    };
    // The master lists each replica at the address it listens on...
    let info = hcli("127.0.0.1", 22250, &["info", "replication"]);
    assert!(info.contains("ip=127.0.0.2,port=22251"), "{info}");
    assert!(info.contains("ip=127.0.0.3,port=22252"), "{info}");
    // ...and so does every sentinel, for replicas and for its peers.
    for (h, p) in [
        ("127.0.0.1", 22260u16),
        ("127.0.0.2", 22261),
        ("127.0.0.3", 22262),
    ] {
        let reps = hcli(h, p, &["sentinel", "replicas", "mymaster"]);
        assert!(
            reps.contains("127.0.0.2:22251") && reps.contains("127.0.0.3:22252"),
            "{reps}"
        );
        let peers = hcli(h, p, &["sentinel", "sentinels", "mymaster"]);
        for (oh, op) in [
            ("127.0.0.1", 22260u16),
            ("127.0.0.2", 22261),
            ("127.0.0.3", 22262),
        ] {
            if op != p {
                assert!(
                    peers.contains(&format!("ip\n{oh}\nport\n{op}\n")),
                    "{h}:{p} peers: {peers}"
                );
            }
        }
    }
    let out = s.run(&["failover", f, "-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = json(&out);
    let new = v["new_master"].as_str().unwrap();
    assert!(
        new == "127.0.0.2:22251" || new == "127.0.0.3:22252",
        "{new}"
    );
    assert_eq!(v["status"]["status"], "ok", "{v:#}");
    let (nh, np) = new.rsplit_once(':').unwrap();
    let got = hcli(
        "127.0.0.2",
        22261,
        &["sentinel", "get-master-addr-by-name", "mymaster"],
    );
    assert_eq!(got.split_whitespace().collect::<Vec<_>>(), [nh, np]);
    assert!(s.ok(&["plan", f]).contains("nothing to do"));
}
