#!/usr/bin/env python3
"""Benchmark: cluster bootstrap and status, datatier vs redis-cli --cluster.

For each size (6 and 30 nodes) and each tool, N times:
  1. start N fresh, empty redis-server nodes (cluster-enabled, node timeout
     5000 ms) on 127.0.0.1 ports 20000.. and let them pass Redis's 2 s
     "writable delay" after start (identical for both tools);
  2. start the tool and, at the same instant, a poller holding one
     connection per node, which records
       t_ok:   every node reports cluster_state:ok,
       t_full: additionally every node knows every other node (no
               handshake/fail flags) and sees every replica attached;
  3. record the tool's own wall time and the node timeout left in force.
Then `status` on the 30-node cluster: `datatier status` vs
`redis-cli --cluster check`, median of repeated runs.

Prints medians side by side with the ratio redis-cli / datatier.
Standard library only.
"""
import os, shutil, socket, statistics, subprocess, sys, tempfile, time

BASE = int(os.environ.get("BENCH_BASE_PORT", "20000"))
RUNS = int(os.environ.get("BENCH_RUNS", "5"))
DATATIER = os.environ.get("DATATIER", "target/release/datatier")


class Conn:
    """A minimal RESP client (one connection per node)."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.f = self.s.makefile("rb")

    def cmd(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.s.sendall(out)
        return self._read()

    def _read(self):
        line = self.f.readline()
        t, rest = line[:1], line[1:-2]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise RuntimeError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)[:-2]
            return data.decode()
        if t == b"*":
            return [self._read() for _ in range(int(rest))]
        raise RuntimeError("bad reply %r" % line)

    def close(self):
        self.s.close()


def start_nodes(n, workdir):
    procs = []
    for i in range(n):
        port = BASE + i
        d = os.path.join(workdir, str(port))
        os.makedirs(d)
        procs.append(subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
             "--cluster-enabled", "yes", "--cluster-node-timeout", "5000",
             "--cluster-config-file", "nodes.conf", "--dir", d,
             "--save", "", "--appendonly", "no", "--daemonize", "no",
             "--logfile", os.path.join(d, "log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    deadline = time.time() + 10
    for i in range(n):
        while True:
            try:
                Conn(BASE + i).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.01)
    # Redis refuses to turn a master's state ok until 2 s after its first
    # cluster-state update; both tools see nodes past that point.
    time.sleep(2.2)
    return procs


def stop_nodes(procs):
    for p in procs:
        p.kill()
    for p in procs:
        p.wait()


def converged(conns, n):
    ok_all = True
    full = True
    for c in conns:
        info = c.cmd("CLUSTER", "INFO")
        if "cluster_state:ok" not in info:
            ok_all = False
            full = False
            break
        lines = [l.split() for l in c.cmd("CLUSTER", "NODES").splitlines() if l.strip()]
        if len(lines) != n:
            full = False
            continue
        slaves = 0
        for f in lines:
            flags = f[2]
            if any(x in flags for x in ("handshake", "fail", "noaddr")):
                full = False
            if "slave" in flags and f[3] != "-":
                slaves += 1
        if slaves != n // 2:
            full = False
    return ok_all, full


def run_once(tool, n, workdir):
    procs = start_nodes(n, workdir)
    try:
        conns = [Conn(BASE + i) for i in range(n)]
        if tool == "datatier":
            topo = os.path.join(workdir, "bench.toml")
            with open(topo, "w") as f:
                f.write('name = "bench"\nkind = "redis-cluster"\nprovider = "existing"\n'
                        "[cluster]\nmasters = %d\nreplicas_per_master = 1\nbase_port = %d\n"
                        "node_timeout_ms = 5000\n" % (n // 2, BASE))
            cmd = [DATATIER, "-q", "--state-dir", os.path.join(workdir, "state"), "init", topo, "-o", "json"]
        else:
            cmd = ["redis-cli", "--cluster", "create"] + ["127.0.0.1:%d" % (BASE + i) for i in range(n)] + \
                  ["--cluster-replicas", "1", "--cluster-yes"]
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        t_ok = t_full = t_exit = None
        while t_full is None or t_exit is None:
            now = time.perf_counter() - t0
            if now > 60:
                raise RuntimeError("%s on %d nodes did not converge in 60 s" % (tool, n))
            if t_exit is None and p.poll() is not None:
                t_exit = now
                if p.returncode != 0:
                    raise RuntimeError("%s failed: %s" % (tool, p.stderr.read().decode()))
            if t_full is None:
                ok, full = converged(conns, n)
                if ok and t_ok is None:
                    t_ok = time.perf_counter() - t0
                if full:
                    t_full = time.perf_counter() - t0
            time.sleep(0.005)
        timeout = conns[0].cmd("CONFIG", "GET", "cluster-node-timeout")[1]
        for c in conns:
            c.close()
        return t_ok, t_full, t_exit, timeout
    finally:
        stop_nodes(procs)
        shutil.rmtree(workdir)
        os.makedirs(workdir)


def median_runs(fn, runs):
    return statistics.median(fn() for _ in range(runs))


def bench_status(workdir, n=30, runs=15):
    procs = start_nodes(n, workdir)
    try:
        topo = os.path.join(workdir, "bench.toml")
        with open(topo, "w") as f:
            f.write('name = "bench"\nkind = "redis-cluster"\nprovider = "existing"\n'
                    "[cluster]\nmasters = %d\nreplicas_per_master = 1\nbase_port = %d\nnode_timeout_ms = 5000\n" % (n // 2, BASE))
        state = os.path.join(workdir, "state")
        subprocess.run([DATATIER, "-q", "--state-dir", state, "init", topo], check=True, stdout=subprocess.DEVNULL)

        def t(cmd):
            t0 = time.perf_counter()
            r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            dt = time.perf_counter() - t0
            if r.returncode not in (0, 1):
                raise RuntimeError("%s exited %d" % (cmd[0], r.returncode))
            return dt
        ours = median_runs(lambda: t([DATATIER, "-q", "--state-dir", state, "status", topo]), runs)
        theirs = median_runs(lambda: t(["redis-cli", "--cluster", "check", "127.0.0.1:%d" % BASE]), runs)
        return ours, theirs
    finally:
        stop_nodes(procs)


def main():
    if not os.path.exists(DATATIER):
        sys.exit("build first: cargo build --release (or set DATATIER)")
    work = tempfile.mkdtemp(prefix="dt-bench-")
    wdir = os.path.join(work, "w")
    os.makedirs(wdir)
    rows = []
    try:
        for n in (6, 30):
            res = {}
            for tool in ("redis-cli", "datatier"):
                res[tool] = [run_once(tool, n, wdir) for _ in range(RUNS)]
            for metric, idx in (("cluster_state:ok everywhere", 0), ("full convergence", 1), ("command exit", 2)):
                a = statistics.median(s[idx] for s in res["redis-cli"])
                b = statistics.median(s[idx] for s in res["datatier"])
                rows.append(("%2d nodes: %s" % (n, metric), a, b))
            timeouts = {s[3] for s in res["datatier"]}
            rows.append(("%2d nodes: node timeout left in force (ms)" % n,
                         res["redis-cli"][0][3], ",".join(sorted(timeouts))))
        ours, theirs = bench_status(wdir)
        rows.append(("30 nodes: status (datatier) vs --cluster check", theirs, ours))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print("\nmedian of %d runs; times in seconds" % RUNS)
    print("%-52s %12s %12s %8s" % ("", "redis-cli", "datatier", "ratio"))
    for name, a, b in rows:
        if isinstance(a, float):
            print("%-52s %12.3f %12.3f %7.1fx" % (name, a, b, a / b))
        else:
            print("%-52s %12s %12s" % (name, a, b))


if __name__ == "__main__":
    main()
