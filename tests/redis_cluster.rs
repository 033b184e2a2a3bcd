//! Redis Cluster end to end, against real `redis-server` processes started
//! through datatier's local provider (or by the test itself for the
//! existing provider). Every result is checked independently with
//! `redis-cli`, not only through datatier's own status.

mod support;

use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::{eventually, listening, sh, Scratch};

fn cli(port: u16, args: &[&str]) -> String {
    let p = port.to_string();
    let mut a = vec!["-p", &p];
    a.extend_from_slice(args);
    sh("redis-cli", &a)
}

/// `CLUSTER NODES` of one node as (id, addr, flags, master, slots).
fn nodes(port: u16) -> Vec<(String, String, String, String, String)> {
    cli(port, &["cluster", "nodes"])
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                f[0].to_string(),
                f[1].split('@').next().unwrap().to_string(),
                f[2].to_string(),
                f[3].to_string(),
                f[8..].join(","),
            )
        })
        .collect()
}

fn topology(name: &str, base: u16, masters: u32, extra: &str) -> String {
    format!(
        "name = \"{name}\"\nkind = \"redis-cluster\"\n\n[cluster]\nmasters = {masters}\nreplicas_per_master = 1\nbase_port = {base}\nnode_timeout_ms = 1000\n{extra}\n[config]\nappendonly = \"yes\"\nsave = \"\"\n"
    )
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

fn pid_of(s: &Scratch, topo: &str, port: u16) -> i32 {
    let p = s
        .path()
        .join(".datatier")
        .join(topo)
        .join(format!("127.0.0.1-{port}"))
        .join("server.pid");
    std::fs::read_to_string(&p).unwrap().trim().parse().unwrap()
}

fn total_keys(ports: &[u16]) -> u64 {
    ports
        .iter()
        .filter(|p| cli(**p, &["role"]).starts_with("master"))
        .map(|p| cli(*p, &["dbsize"]).trim().parse::<u64>().unwrap())
        .sum()
}

#[test]
fn default_layout_init_check_idempotent_status_down() {
    let _ports = support::default_ports_lock();
    let s = Scratch::new();
    s.cleanup("redis-cluster");
    s.ok(&["init", "redis-cluster"]);

    // Independent check with the peer tool.
    let check = Command::new("redis-cli")
        .args(["--cluster", "check", "127.0.0.1:7000"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{text}");
    assert!(
        text.contains("[OK] All nodes agree about slots configuration."),
        "{text}"
    );
    assert!(text.contains("[OK] All 16384 slots covered."), "{text}");

    // 3 masters with the seed's slot ranges, 3 replicas on distinct masters.
    let n = nodes(7000);
    assert_eq!(n.len(), 6);
    let masters: Vec<_> = n.iter().filter(|x| x.2.contains("master")).collect();
    let mut slots: Vec<&str> = masters.iter().map(|m| m.4.as_str()).collect();
    slots.sort();
    assert_eq!(slots, ["0-5460", "10923-16383", "5461-10922"]);
    let mut followed: Vec<&str> = n
        .iter()
        .filter(|x| x.2.contains("slave"))
        .map(|x| x.3.as_str())
        .collect();
    followed.sort();
    followed.dedup();
    assert_eq!(
        followed.len(),
        3,
        "each replica on a different master: {n:?}"
    );
    for m in &masters {
        assert!(m.1.starts_with("127.0.0.1:700"), "{m:?}");
    }
    // Declared node timeout restored after the fast bootstrap, and persisted.
    for p in 7000..=7005u16 {
        assert_eq!(
            cli(p, &["config", "get", "cluster-node-timeout"])
                .lines()
                .nth(1),
            Some("5000")
        );
        assert_eq!(
            cli(p, &["config", "get", "appendonly"]).lines().nth(1),
            Some("yes")
        );
        assert_eq!(
            cli(p, &["info", "replication"]).contains("role:slave"),
            p >= 7003
        );
    }
    let conf = std::fs::read_to_string(
        s.path()
            .join(".datatier/redis-cluster/127.0.0.1-7000/redis.conf"),
    )
    .unwrap();
    assert!(conf.contains("cluster-node-timeout 5000"), "{conf}");

    // Keys written through the cluster survive a second init, whose plan is empty.
    for i in 0..200 {
        cli(7000, &["-c", "set", &format!("key:{i}"), &i.to_string()]);
    }
    let ports: Vec<u16> = (7000..=7005).collect();
    assert_eq!(total_keys(&ports), 200);
    let plan = s.ok(&["plan", "redis-cluster"]);
    assert!(plan.contains("nothing to do"), "{plan}");
    let again = s.run(&["init", "redis-cluster"]);
    assert!(again.status.success());
    assert!(
        stderr(&again).contains("nothing to do"),
        "{}",
        stderr(&again)
    );
    assert_eq!(total_keys(&ports), 200);
    assert_eq!(cli(7001, &["-c", "get", "key:7"]).trim(), "7");

    // status: JSON contract, table, prometheus; exit 0.
    let st = s.run(&["status", "redis-cluster", "-o", "json"]);
    assert_eq!(
        st.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&st.stdout)
    );
    let v = json(&st);
    assert_eq!(v["topology"], "redis-cluster");
    assert_eq!(v["status"], "ok");
    assert_eq!(v["nodes"].as_array().unwrap().len(), 6);
    assert_eq!(v["nodes"][0]["address"], "127.0.0.1:7000");
    assert_eq!(v["nodes"][0]["role"], "master");
    assert_eq!(v["nodes"][0]["state"], "ok");
    let checks: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["check"].as_str().unwrap())
        .collect();
    for c in [
        "slots_covered",
        "config_agreement",
        "replicas",
        "open_slots",
        "cluster_state",
        "replica_link",
    ] {
        assert!(checks.contains(&c), "missing check {c}: {checks:?}");
    }
    assert!(
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["severity"] == "ok"),
        "{v:#}"
    );
    let prom = s.ok(&["status", "redis-cluster", "-o", "prometheus"]);
    assert!(
        prom.contains("datatier_status{topology=\"redis-cluster\",kind=\"redis-cluster\"} 0"),
        "{prom}"
    );
    assert!(
        prom.contains("datatier_redis_cluster_slots_ok 16384")
            || prom.contains("datatier_redis_cluster_slots_ok{topology=\"redis-cluster\"} 16384"),
        "{prom}"
    );
    let table = s.ok(&["status"]);
    assert!(
        table.starts_with("redis-cluster (redis-cluster): OK"),
        "{table}"
    );

    // down stops everything and frees the ports; --purge removes the state.
    let down = s.ok(&["down", "redis-cluster"]);
    assert!(down.contains("stopped 6 process(es)"), "{down}");
    for p in 7000..=7005u16 {
        assert!(!listening(p), "port {p} still in use");
        assert!(!listening(p + 10000), "bus port {} still in use", p + 10000);
    }
    // After down (no purge) the nodes come back from their own state with every key.
    s.ok(&["init", "redis-cluster"]);
    assert_eq!(total_keys(&ports), 200);
    s.ok(&["down", "redis-cluster", "--purge"]);
    assert!(!s.path().join(".datatier/redis-cluster").exists());
}

#[test]
fn master_killed_then_replica_promoted_then_init_heals() {
    let s = Scratch::new();
    let f = s.write("shop.toml", &topology("shop", 21000, 3, ""));
    let f = f.to_str().unwrap();
    s.cleanup(f);
    s.ok(&["init", f]);
    for i in 0..100 {
        cli(21000, &["-c", "set", &format!("k{i}"), "v"]);
    }
    // Make sure the writes reached the replicas before the crash.
    for p in 21000..=21002u16 {
        cli(p, &["wait", "1", "2000"]);
    }
    let victim_id = nodes(21000)
        .into_iter()
        .find(|n| n.2.contains("myself"))
        .unwrap()
        .0;
    let pid = pid_of(&s, "shop", 21000);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    eventually(
        "the killed node to stop listening",
        Duration::from_secs(5),
        || (!listening(21000)).then_some(()),
    );

    // Right after the crash: CRITICAL, naming the node.
    let st = s.run(&["status", f, "-o", "json"]);
    assert_eq!(
        st.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&st.stdout)
    );
    let v = json(&st);
    assert!(
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["severity"] == "critical" && x["node"] == "127.0.0.1:21000"),
        "{v:#}"
    );

    // The cluster promotes the replica (node timeout 1 s).
    let promoted = eventually(
        "a replica to take over slots 0-5460",
        Duration::from_secs(30),
        || {
            nodes(21001)
                .into_iter()
                .find(|n| n.4 == "0-5460" && !n.2.contains("fail") && n.0 != victim_id)
                .map(|n| n.1)
        },
    );
    let promoted_port: u16 = promoted.rsplit(':').next().unwrap().parse().unwrap();
    eventually(
        "every live node to see cluster_state:ok",
        Duration::from_secs(30),
        || {
            [21001u16, 21002, 21003, 21004, 21005]
                .iter()
                .all(|p| cli(*p, &["cluster", "info"]).contains("cluster_state:ok"))
                .then_some(())
        },
    );
    let st = eventually(
        "status to settle on WARNING",
        Duration::from_secs(20),
        || {
            let st = s.run(&["status", f, "-o", "json"]);
            (st.status.code() == Some(1)).then_some(st)
        },
    );
    let v = json(&st);
    let node = |addr: &str| {
        v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["address"] == addr)
            .unwrap()
            .clone()
    };
    assert_eq!(node(&promoted)["role"], "master", "{v:#}");
    assert!(
        node(&promoted)["slots"]
            .as_str()
            .unwrap()
            .starts_with("0-5460"),
        "{v:#}"
    );
    assert!(
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["check"] == "replicas"
                && x["severity"] == "warning"
                && x["node"] == promoted.as_str()
                && x["message"].as_str().unwrap().contains("0 of 1")),
        "{v:#}"
    );
    assert!(
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["severity"] != "critical"),
        "{v:#}"
    );

    // init brings the dead node back; it rejoins as a replica of the new master.
    s.ok(&["init", f]);
    let back = nodes(21000)
        .into_iter()
        .find(|n| n.2.contains("myself"))
        .unwrap();
    assert!(back.2.contains("slave"), "{back:?}");
    let new_master_id = nodes(promoted_port)
        .into_iter()
        .find(|n| n.2.contains("myself"))
        .unwrap()
        .0;
    assert_eq!(back.3, new_master_id);
    let st = s.run(&["status", f]);
    assert_eq!(
        st.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&st.stdout)
    );
    assert!(String::from_utf8_lossy(&st.stdout).contains("a failover happened"));
    let ports: Vec<u16> = (21000..=21005).collect();
    assert_eq!(total_keys(&ports), 100, "no acknowledged write lost");
}

/// Spawn plain redis-server processes the way an operator would, for the
/// existing provider. Killed on drop.
struct Servers(Vec<std::process::Child>);

impl Servers {
    fn start(s: &Scratch, ports: &[u16], extra: &[&str]) -> Self {
        let mut kids = Vec::new();
        for p in ports {
            let dir = s.path().join(format!("ext-{p}"));
            std::fs::create_dir_all(&dir).unwrap();
            let mut args = vec![
                "--port".to_string(),
                p.to_string(),
                "--bind".into(),
                "127.0.0.1".into(),
                "--cluster-enabled".into(),
                "yes".into(),
                "--cluster-node-timeout".into(),
                "1000".into(),
                "--dir".into(),
                dir.display().to_string(),
                "--save".into(),
                "".into(),
            ];
            args.extend(extra.iter().map(|x| x.to_string()));
            kids.push(
                Command::new("redis-server")
                    .args(&args)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap(),
            );
        }
        for p in ports {
            eventually(
                "test redis-server to listen",
                Duration::from_secs(10),
                || listening(*p).then_some(()),
            );
        }
        Servers(kids)
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

#[test]
fn existing_provider_configures_nodes_started_elsewhere_and_refuses_data() {
    let s = Scratch::new();
    let ports: Vec<u16> = (21100..21106).collect();
    let _servers = Servers::start(&s, &ports, &["--enable-debug-command", "yes"]);
    let f = s.write(
        "ext.toml",
        &topology("ext", 21100, 3, "").replace(
            "kind = \"redis-cluster\"",
            "kind = \"redis-cluster\"\nprovider = \"existing\"",
        ),
    );
    let f = f.to_str().unwrap();

    // One node already holds keys: refused, nothing changed anywhere.
    cli(21103, &["debug", "populate", "10"]);
    let out = s.run(&["init", f]);
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(
        e.contains("127.0.0.1:21103 holds 10 key(s)")
            && e.contains("nothing was changed")
            && e.contains("--force"),
        "{e}"
    );
    for p in &ports {
        let info = cli(*p, &["cluster", "info"]);
        assert!(
            info.contains("cluster_known_nodes:1") && info.contains("cluster_slots_assigned:0"),
            "{p}: {info}"
        );
    }
    assert_eq!(cli(21103, &["dbsize"]).trim(), "10");

    // A half-done bootstrap by hand: some slots and one MEET already there.
    cli(21100, &["cluster", "addslotsrange", "0", "100"]);
    cli(21100, &["cluster", "meet", "127.0.0.1", "21101"]);

    // --force resets the node with data; the rest is completed, not redone.
    s.ok(&["init", f, "--force"]);
    let check = Command::new("redis-cli")
        .args(["--cluster", "check", "127.0.0.1:21100"])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    assert!(String::from_utf8_lossy(&check.stdout).contains("[OK] All 16384 slots covered."));
    let n = nodes(21100);
    assert_eq!(n.len(), 6);
    assert_eq!(n.iter().filter(|x| x.2.contains("slave")).count(), 3);
    assert!(
        n.iter()
            .any(|x| x.1 == "127.0.0.1:21100" && x.4 == "0-5460"),
        "{n:?}"
    );

    // Existing provider: status works, down touches nothing.
    let st = s.run(&["status", f]);
    assert_eq!(
        st.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&st.stdout)
    );
    let down = s.ok(&["down", f]);
    assert!(down.contains("stopped 0 process(es)"), "{down}");
    assert!(ports.iter().all(|p| listening(*p)));
    let plan = s.ok(&["plan", f]);
    assert!(plan.contains("nothing to do"), "{plan}");
}

#[test]
fn port_in_use_is_named_and_nothing_starts() {
    let s = Scratch::new();
    let f = s.write("busy.toml", &topology("busy", 21200, 3, ""));
    let f = f.to_str().unwrap();
    s.cleanup(f);
    let _blocker = std::net::TcpListener::bind("127.0.0.1:21203").unwrap();
    let out = s.run(&["init", f]);
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(
        e.contains("port 21203 on 127.0.0.1 is already in use"),
        "{e}"
    );
    assert!(e.contains("nothing was started"), "{e}");
    for p in [21200u16, 21201, 21202, 21204, 21205] {
        assert!(!listening(p), "{p} was started");
    }
}

#[test]
fn password_protected_cluster_never_prints_the_password() {
    let s = Scratch::new();
    let secret = "s3cr3t-Hunter2-xyz";
    let f = s.write(
        "auth.toml",
        &topology("auth", 21300, 3, "").replace(
            "[config]",
            "[auth]\npassword_env = \"DT_TEST_REDIS_PW\"\n\n[config]",
        ),
    );
    let f = f.to_str().unwrap();
    s.cleanup(f);
    let out = s
        .cmd(&["-v", "init", f])
        .env("DT_TEST_REDIS_PW", secret)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(!all.contains(secret), "password leaked:\n{all}");
    let noauth = Command::new("redis-cli")
        .args(["-p", "21300", "dbsize"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&noauth.stdout).contains("NOAUTH"));
    let ok = Command::new("redis-cli")
        .args([
            "-p",
            "21300",
            "--no-auth-warning",
            "-a",
            secret,
            "cluster",
            "info",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&ok.stdout).contains("cluster_state:ok"));
    use std::os::unix::fs::PermissionsExt;
    let conf = s.path().join(".datatier/auth/127.0.0.1-21300/redis.conf");
    assert_eq!(
        std::fs::metadata(&conf).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(conf.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
    for args in [
        vec!["status", f, "-o", "json"],
        vec!["plan", f],
        vec!["env", f],
    ] {
        let out = s
            .cmd(&args)
            .env("DT_TEST_REDIS_PW", secret)
            .output()
            .unwrap();
        let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
        assert!(!all.contains(secret), "{args:?} leaked:\n{all}");
    }
    let env = s
        .cmd(&["env", f])
        .env("DT_TEST_REDIS_PW", secret)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&env.stdout).contains("REDIS_PASSWORD_FROM='env:DT_TEST_REDIS_PW'")
    );
    // Without the variable: a clear error naming it, before anything is touched.
    let out = s.run(&["status", f]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("DT_TEST_REDIS_PW"),
        "{}",
        stderr(&out)
    );
    let out = s
        .cmd(&["down", f])
        .env("DT_TEST_REDIS_PW", secret)
        .output()
        .unwrap();
    assert!(out.status.success());
}

#[test]
fn malformed_topologies_fail_with_located_errors_and_start_nothing() {
    let s = Scratch::new();
    let head = "kind = \"redis-cluster\"\n";
    // (file text, expected fragment of the error)
    let cases: Vec<(String, &str)> = vec![
        (format!("{head}[cluster]\nmasters = 2\nbase_port = 21400\n"), "bad1.toml:3:11: field `cluster.masters`: must be at least 3"),
        (format!("{head}[cluster]\nmasters = 3\nbase_port = 21400\nslots = [\"0-5460\", \"5000-10922\", \"10923-16383\"]\n"), "bad2.toml:5:20: field `cluster.slots`: \"5000-10922\" overlaps entry 1"),
        (format!("{head}[cluster]\nmasters = 3\nbase_port = 21400\nslots = [\"0-5460\", \"5462-10922\", \"10923-16383\"]\n"), "bad3.toml:5:9: field `cluster.slots`: slots 5461 are not assigned"),
        (format!("{head}[cluster]\nmasters = 3\nreplicas_per_master = 1\nports = [21400, 21401, 21402, 21403, 21404, 21400]\n"), "bad4.toml:5:45: field `cluster.ports`: port 21400 on 127.0.0.1 is given to two nodes (node 1 and node 6 of the layout)"),
        (format!("{head}[cluster]\nmasters = 3\nreplicas_per_master = 2\nhosts = [\"127.0.0.1\", \"127.0.0.2\"]\nbase_port = 21400\n"), "bad5.toml:4:23: field `cluster.replicas_per_master`: 2 replica(s) per master cannot be placed on 2 host(s)"),
        (format!("{head}[cluster]\nmasters = 3\nbase_port = 21400\nmastres = 4\n"), "bad6.toml:5:1: field `mastres`: unknown field `mastres`"),
        (format!("{head}[cluster]\nmasters = \"three\"\n"), "bad7.toml:3:11: field `masters`: invalid type"),
        (format!("{head}[cluster]\nmasters = 3\nbase_port = 21400\n[config]\nport = 6379\n"), "bad8.toml:6:8: field `config.port`: is managed by datatier"),
        (format!("{head}[cluster]\nmasters = 3\nbase_port = 21400\nslots = [\"0-5460\", \"5461-x\", \"10923-16383\"]\n"), "bad9.toml:5:20: field `cluster.slots`: \"5461-x\" is not a slot or slot range"),
        (format!("{head}provider = \"cloud\"\n[cluster]\nmasters = 3\nbase_port = 21400\n"), "bad10.toml:2:12: field `provider`: unknown provider \"cloud\""),
        ("kind = \"redis-clustr\"\n".to_string(), "bad11.toml:1:8: field `kind`: unknown kind \"redis-clustr\""),
        (format!("{head}name = \"my shop\"\n[cluster]\nmasters = 3\n"), "bad12.toml:2:8: field `name`: invalid name \"my shop\""),
        (format!("{head}[cluster]\nmasters = 3\nbase_port = 60000\n"), "bad13.toml:4:13: field `cluster.base_port`: nodes would use ports 60000-60005"),
        (head.to_string(), "bad14.toml:1:1: field `cluster`: missing [cluster] section"),
        (format!("{head}[cluster]\nmasters = 3\nbase_port = 21400\nnode_timeout_ms = 10\n"), "bad15.toml:5:19: field `cluster.node_timeout_ms`: must be between 100 and 3600000"),
        (format!("{head}[cluster\nmasters = 3\n"), "bad16.toml:2:9"),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let name = format!("bad{}.toml", i + 1);
        let p = s.write(&name, text);
        let out = s.run(&["init", p.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{name} should fail");
        let e = stderr(&out);
        assert!(e.contains(want), "{name}: expected `{want}` in:\n{e}");
        // plan and status reject it too (status with UNKNOWN).
        assert_eq!(
            s.run(&["status", p.to_str().unwrap()]).status.code(),
            Some(3),
            "{name}"
        );
    }
    assert!(
        !s.path().join(".datatier").exists(),
        "no state may be created for bad input"
    );
    for p in 21400..21406u16 {
        assert!(!listening(p));
    }
    // A missing file is named.
    let out = s.run(&["init", "nope/missing.toml"]);
    assert!(
        stderr(&out).contains("topology file nope/missing.toml does not exist"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn render_compose_and_env_for_the_default() {
    let s = Scratch::new();
    let y = s.ok(&["render", "compose", "redis-cluster"]);
    assert_eq!(y.matches("image: \"redis:7.0\"").count(), 6, "{y}");
    assert!(y.contains("\"--cluster-enabled\", \"yes\""), "{y}");
    assert!(y.contains("network_mode: host"));
    let env = s.ok(&["env", "redis-cluster", "--format", "json"]);
    let v: Value = serde_json::from_str(&env).unwrap();
    assert_eq!(
        v["REDIS_CLUSTER_NODES"],
        "127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003,127.0.0.1:7004,127.0.0.1:7005"
    );
}
