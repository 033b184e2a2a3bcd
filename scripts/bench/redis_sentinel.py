#!/usr/bin/env python3
"""Benchmark: Redis Sentinel with datatier vs by hand (redis-cli, configs).

1. Failover. A set like the default (1 master, 2 replicas,
   3 sentinels, quorum 2, down-after-milliseconds 5000) is created with
   `datatier init`; the master is killed with SIGKILL and, from that
   instant, two pollers run side by side:
     sentinels: GET-MASTER-ADDR-BY-NAME on every sentinel every 10 ms;
                time until the first, and until every, sentinel names a
                new master;
     datatier:  `datatier status -o json` run back to back; time until a
                run's answer names the new master (its `master` check OK on
                another node), measured when that run exits.
   Also the wall time of one `datatier status` on the healthy set, and a
   planned switchover until every sentinel names the new master and every
   data node (the old master included) follows it: `SENTINEL FAILOVER`
   vs `datatier failover`.

2. Bootstrap until verified: replicas linked, and every sentinel sees the
   master, both replicas and the two other sentinels (CKQUORUM OK):
     datatier init (local provider, from nothing)
       vs by hand, seed-004 style: redis.conf / sentinel.conf written
          (replicaof, sentinel monitor + down-after / failover-timeout /
          parallel-syncs), six processes started, then polled until verified;
          once all at once with Redis defaults (as the seed's compose file),
          once in the careful order (repl-diskless-sync-delay 0, replicas
          linked, then the sentinels);
     datatier init --provider existing on six running, unconfigured servers
       vs redis-cli on the same, in the careful order: CONFIG SET
          repl-diskless-sync-delay 0, REPLICAOF x2, wait for the links,
          SENTINEL MONITOR + SET x3, polled until verified.

Prints medians (BENCH_RUNS, default 5) side by side with the ratio.
Standard library only; ports 20500-20512 (benchmark range).
"""
import json, os, shutil, signal, statistics, subprocess, sys, tempfile, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from redis_cluster import Conn  # noqa: E402  (the minimal RESP client)

BASE = int(os.environ.get("BENCH_SENTINEL_PORT", "20500"))
RUNS = int(os.environ.get("BENCH_RUNS", "5"))
DATATIER = os.environ.get("DATATIER", "target/release/datatier")
DATA = [BASE, BASE + 1, BASE + 2]
SENTINELS = [BASE + 10, BASE + 11, BASE + 12]


def topology(path, provider="local"):
    with open(path, "w") as f:
        f.write(
            'name = "bench"\nkind = "redis-sentinel"\nprovider = "%s"\n[sentinel]\n'
            'master_name = "mymaster"\nmaster = "127.0.0.1:%d"\n'
            'replicas = ["127.0.0.1:%d", "127.0.0.1:%d"]\n'
            'sentinels = ["127.0.0.1:%d", "127.0.0.1:%d", "127.0.0.1:%d"]\n'
            "quorum = 2\ndown_after_ms = 5000\nfailover_timeout_ms = 10000\nparallel_syncs = 1\n"
            % ((provider,) + tuple(DATA) + tuple(SENTINELS))
        )


def wait_listening(ports, timeout=10):
    deadline = time.time() + timeout
    for p in ports:
        while True:
            try:
                Conn(p).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.005)


def wait_closed(ports, timeout=20):
    deadline = time.time() + timeout
    for p in ports:
        while True:
            try:
                Conn(p).close()
            except OSError:
                break
            if time.time() > deadline:
                raise RuntimeError("port %d still in use" % p)
            time.sleep(0.02)


def field(pairs, k):
    return pairs[pairs.index(k) + 1]


def verified(data_conns, sentinel_conns):
    """The bar both sides must reach: replicas linked; every sentinel sees
    the master, both replicas and the other sentinels, none flagged down."""
    try:
        for c in data_conns[1:]:
            info = c.cmd("INFO", "replication")
            if "master_link_status:up" not in info:
                return False
        bad = ("s_down", "o_down", "disconnected")
        for c in sentinel_conns:
            if not str(c.cmd("SENTINEL", "CKQUORUM", "mymaster")).startswith("OK"):
                return False
            m = c.cmd("SENTINEL", "MASTER", "mymaster")
            if field(m, "flags") != "master":
                return False
            reps = c.cmd("SENTINEL", "REPLICAS", "mymaster")
            sens = c.cmd("SENTINEL", "SENTINELS", "mymaster")
            if len(reps) != 2 or len(sens) != 2:
                return False
            for e in reps + sens:
                if any(b in field(e, "flags") for b in bad):
                    return False
        return True
    except (OSError, RuntimeError, ValueError):
        return False


def poll_verified(t0, timeout=60):
    dc = sc = None
    while True:
        if time.perf_counter() - t0 > timeout:
            raise RuntimeError("not verified after %d s" % timeout)
        try:
            if dc is None:
                dc = [Conn(p) for p in DATA]
                sc = [Conn(p) for p in SENTINELS]
            if verified(dc, sc):
                t = time.perf_counter() - t0
                for c in dc + sc:
                    c.close()
                return t
        except OSError:
            dc = sc = None
        time.sleep(0.005)


def dt(state, *args, check=True):
    return subprocess.run([DATATIER, "-q", "--state-dir", state] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=check)


# --- 1. failover detection -------------------------------------------------

def failover_once(work):
    topo = os.path.join(work, "bench.toml")
    state = os.path.join(work, "state")
    topology(topo)
    dt(state, "init", topo)
    old = "127.0.0.1:%d" % DATA[0]
    pid = int(open(os.path.join(state, "bench", "127.0.0.1-%d" % DATA[0], "server.pid")).read())
    conns = [Conn(p) for p in SENTINELS]
    res = {}
    done = threading.Event()

    def sentinels(t0):
        first = None
        while not done.is_set():
            named = []
            for c in conns:
                a = c.cmd("SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster")
                named.append("%s:%s" % (a[0], a[1]))
            now = time.perf_counter() - t0
            new = [n for n in named if n != old]
            if new and first is None:
                first = now
            if len(new) == len(named) and len(set(new)) == 1:
                res["first"], res["all"] = first, now
                return
            if now > 60:
                return
            time.sleep(0.01)

    def status(t0):
        while not done.is_set():
            r = dt(state, "status", topo, "-o", "json", check=False)
            now = time.perf_counter() - t0
            try:
                v = json.loads(r.stdout)
            except ValueError:
                continue
            m = [f for f in v["findings"] if f["check"] == "master"]
            if m and m[0]["severity"] == "ok" and m[0]["node"] != old:
                res["datatier"] = now
                return
            if now > 60:
                return

    os.kill(pid, signal.SIGKILL)
    t0 = time.perf_counter()
    threads = [threading.Thread(target=sentinels, args=(t0,)), threading.Thread(target=status, args=(t0,))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(70)
    done.set()
    for c in conns:
        c.close()
    # one status on the healthy (failed-over, healed) set
    dt(state, "init", topo)
    t1 = time.perf_counter()
    dt(state, "status", topo, check=False)
    res["status"] = time.perf_counter() - t1
    dt(state, "down", topo, "--purge")
    wait_closed(DATA + SENTINELS)
    if not all(k in res for k in ("first", "all", "datatier")):
        raise RuntimeError("failover not observed: %r" % res)
    return res


def switched(old_port):
    """Every sentinel names one new master, every data node follows it."""
    try:
        named = set()
        for p in SENTINELS:
            c = Conn(p)
            a = c.cmd("SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster")
            c.close()
            named.add(int(a[1]))
        if len(named) != 1 or old_port in named:
            return False
        new = named.pop()
        for p in DATA:
            c = Conn(p)
            info = c.cmd("INFO", "replication")
            c.close()
            if p == new:
                if "role:master" not in info:
                    return False
            elif "master_port:%d" % new not in info or "master_link_status:up" not in info:
                return False
        return True
    except (OSError, RuntimeError, ValueError, IndexError):
        return False


def master_port():
    c = Conn(SENTINELS[0])
    a = c.cmd("SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster")
    c.close()
    return int(a[1])


def switchover_once(work):
    """A planned switchover until complete: SENTINEL FAILOVER vs datatier failover."""
    topo = os.path.join(work, "bench.toml")
    state = os.path.join(work, "state")
    topology(topo)
    dt(state, "init", topo)
    res = {}
    old = master_port()
    t0 = time.perf_counter()
    subprocess.run(["redis-cli", "-p", str(SENTINELS[0]), "sentinel", "failover", "mymaster"],
                   check=True, stdout=subprocess.DEVNULL)
    while not switched(old):
        if time.perf_counter() - t0 > 60:
            raise RuntimeError("SENTINEL FAILOVER did not complete in 60 s")
        time.sleep(0.01)
    res["peer"] = time.perf_counter() - t0
    dt(state, "init", topo)  # settle (sentinels' failover bookkeeping)
    old = master_port()
    t0 = time.perf_counter()
    dt(state, "failover", topo)
    res["datatier"] = time.perf_counter() - t0
    if not switched(old):
        raise RuntimeError("datatier failover returned before the switch was complete")
    dt(state, "down", topo, "--purge")
    wait_closed(DATA + SENTINELS)
    return res


# --- 2. bootstrap -----------------------------------------------------------

def spawn(cmd):
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def hand_bootstrap(work, careful):
    """Seed 004 by hand: configs written, processes started, then verified.

    Not careful: everything started at once, Redis defaults, as the seed's
    compose file does. Careful: the master with repl-diskless-sync-delay 0,
    the replicas, and only once both are linked the sentinels (a sentinel
    that looks at the master before the replicas attach learns of them only
    at its next INFO, 10 s later)."""
    procs = []
    t0 = time.perf_counter()
    for i, p in enumerate(DATA):
        d = os.path.join(work, str(p))
        os.makedirs(d)
        conf = "port %d\nbind 127.0.0.1\ndir %s\nappendonly yes\n" % (p, d)
        if i > 0:
            conf += "replicaof 127.0.0.1 %d\n" % DATA[0]
        elif careful:
            conf += "repl-diskless-sync-delay 0\n"
        open(os.path.join(d, "redis.conf"), "w").write(conf)
        procs.append(spawn(["redis-server", os.path.join(d, "redis.conf")]))
    if careful:
        wait_listening(DATA)
        conns = [Conn(p) for p in DATA[1:]]
        while not all("master_link_status:up" in c.cmd("INFO", "replication") for c in conns):
            time.sleep(0.005)
        for c in conns:
            c.close()
    for p in SENTINELS:
        d = os.path.join(work, str(p))
        os.makedirs(d)
        conf = ("port %d\nbind 127.0.0.1\ndir %s\n"
                "sentinel monitor mymaster 127.0.0.1 %d 2\n"
                "sentinel down-after-milliseconds mymaster 5000\n"
                "sentinel failover-timeout mymaster 10000\n"
                "sentinel parallel-syncs mymaster 1\n" % (p, d, DATA[0]))
        open(os.path.join(d, "sentinel.conf"), "w").write(conf)
        procs.append(spawn(["redis-sentinel", os.path.join(d, "sentinel.conf")]))
    try:
        return poll_verified(t0)
    finally:
        for pr in procs:
            pr.kill()
        for pr in procs:
            pr.wait()
        wait_closed(DATA + SENTINELS)


def datatier_bootstrap(work):
    topo = os.path.join(work, "bench.toml")
    state = os.path.join(work, "state")
    topology(topo)
    t0 = time.perf_counter()
    dt(state, "init", topo)
    t = time.perf_counter() - t0
    poll_verified(time.perf_counter())  # holds already; checked independently
    dt(state, "down", topo, "--purge")
    wait_closed(DATA + SENTINELS)
    return t


def running_servers(work):
    procs = []
    for p in DATA:
        d = os.path.join(work, str(p))
        os.makedirs(d)
        procs.append(spawn(["redis-server", "--port", str(p), "--bind", "127.0.0.1", "--dir", d,
                            "--appendonly", "yes"]))
    for p in SENTINELS:
        d = os.path.join(work, str(p))
        os.makedirs(d)
        open(os.path.join(d, "sentinel.conf"), "w").write("port %d\nbind 127.0.0.1\ndir %s\n" % (p, d))
        procs.append(spawn(["redis-sentinel", os.path.join(d, "sentinel.conf")]))
    wait_listening(DATA + SENTINELS)
    return procs


def configure_running(work, tool):
    procs = running_servers(work)
    try:
        t0 = time.perf_counter()
        if tool == "datatier":
            topo = os.path.join(work, "bench.toml")
            topology(topo, provider="existing")
            dt(os.path.join(work, "state"), "init", topo)
            t_cmd = time.perf_counter() - t0
            t = poll_verified(t0)
            return max(t, t_cmd)
        # The careful order: no diskless delay, replicas linked, then sentinels.
        subprocess.run(["redis-cli", "-p", str(DATA[0]), "config", "set", "repl-diskless-sync-delay", "0"],
                       check=True, stdout=subprocess.DEVNULL)
        for p in DATA[1:]:
            subprocess.run(["redis-cli", "-p", str(p), "replicaof", "127.0.0.1", str(DATA[0])],
                           check=True, stdout=subprocess.DEVNULL)
        for p in DATA[1:]:
            while "master_link_status:up" not in subprocess.run(
                    ["redis-cli", "-p", str(p), "info", "replication"],
                    check=True, stdout=subprocess.PIPE).stdout.decode():
                time.sleep(0.005)
        for p in SENTINELS:
            subprocess.run(["redis-cli", "-p", str(p), "sentinel", "monitor", "mymaster", "127.0.0.1",
                            str(DATA[0]), "2"], check=True, stdout=subprocess.DEVNULL)
            subprocess.run(["redis-cli", "-p", str(p), "sentinel", "set", "mymaster",
                            "down-after-milliseconds", "5000", "failover-timeout", "10000",
                            "parallel-syncs", "1"], check=True, stdout=subprocess.DEVNULL)
        return poll_verified(t0)
    finally:
        for pr in procs:
            pr.kill()
        for pr in procs:
            pr.wait()
        wait_closed(DATA + SENTINELS)


def fresh(work):
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    return work


def main():
    if not os.path.exists(DATATIER):
        sys.exit("build first: cargo build --release (or set DATATIER)")
    root = tempfile.mkdtemp(prefix="dt-bench-sentinel-")
    os.chmod(root, 0o755)
    work = os.path.join(root, "w")
    try:
        fo = [failover_once(fresh(work)) for _ in range(RUNS)]
        sw = [switchover_once(fresh(work)) for _ in range(RUNS)]
        boot = {
            "datatier": [datatier_bootstrap(fresh(work)) for _ in range(RUNS)],
            "hand": [hand_bootstrap(fresh(work), False) for _ in range(RUNS)],
            "hand-careful": [hand_bootstrap(fresh(work), True) for _ in range(RUNS)],
            "dt-existing": [configure_running(fresh(work), "datatier") for _ in range(RUNS)],
            "cli-existing": [configure_running(fresh(work), "redis-cli") for _ in range(RUNS)],
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)

    med = statistics.median
    print("\nmedian of %d runs; times in seconds (down-after-milliseconds 5000)" % RUNS)
    print("%-58s %10s %10s %8s" % ("", "peer", "datatier", "ratio"))

    def row(name, a, b):
        print("%-58s %10.3f %10.3f %7.2fx" % (name, a, b, a / b))

    s_first = med(r["first"] for r in fo)
    s_all = med(r["all"] for r in fo)
    d = med(r["datatier"] for r in fo)
    row("kill -9 -> first sentinel names new master | status", s_first, d)
    row("kill -9 -> every sentinel names it         | status", s_all, d)
    print("%-58s %10s %10.3f" % ("status adds over the first sentinel (median of diffs)", "",
                                 med(r["datatier"] - r["first"] for r in fo)))
    print("%-58s %10s %10.3f" % ("one `datatier status` on the healthy set", "", med(r["status"] for r in fo)))
    row("switchover until every node follows: SENTINEL FAILOVER | failover",
        med(r["peer"] for r in sw), med(r["datatier"] for r in sw))
    row("from nothing: seed-style, all at once | init", med(boot["hand"]), med(boot["datatier"]))
    row("from nothing: by hand, careful order  | init", med(boot["hand-careful"]), med(boot["datatier"]))
    row("running servers: redis-cli, careful | init --provider existing", med(boot["cli-existing"]),
        med(boot["dt-existing"]))
    print("\nall runs:")
    for k in ("first", "all", "datatier"):
        print("  failover %-9s %s" % (k, " ".join("%.3f" % r[k] for r in fo)))
    for k in ("peer", "datatier"):
        print("  switchover %-8s %s" % (k, " ".join("%.3f" % r[k] for r in sw)))
    for k, v in boot.items():
        print("  bootstrap %-12s %s" % (k, " ".join("%.3f" % x for x in v)))


if __name__ == "__main__":
    main()
