#!/usr/bin/env bash
# Sharded cluster bootstrap: datatier vs mlaunch (mtools), on the same
# layout (3 config servers, 2 shards x 3 members, 1 mongos), median of
# BENCH_RUNS=3 runs, both figures and the ratio. Needs mongod/mongos
# (DATATIER_MONGOD_BIN or PATH) and mlaunch (pip install 'mtools[mlaunch]');
# when either is missing it says so and skips that comparison.
#
# Then, always: datatier's own timings against the wire-protocol test double
# (plan, init, a second init, status) — no peer tool can run against it.
#
# Ports: 20100-20109 (datatier), 20200-20209 (mlaunch).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
RUNS=${BENCH_RUNS:-3}

mongod=${DATATIER_MONGOD_BIN:-$(command -v mongod || true)}
mlaunch=$(command -v mlaunch || true)
skip=""
[ -n "$mongod" ] && [ -x "$mongod" ] || skip="no mongod (not on PATH, DATATIER_MONGOD_BIN unset): MongoDB is in no package registry this machine reaches"
[ -n "$skip" ] || [ -n "$mlaunch" ] || skip="no mlaunch (pip install 'mtools[mlaunch]')"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
now() { date +%s.%N; }

if [ -n "$skip" ]; then
  echo "SKIPPED datatier vs mlaunch: $skip"
else
  cargo build --release --locked 2>&1 | tail -n 1 >&2
  bindir=$(dirname "$mongod")
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  cat > "$work/bench.toml" <<TOML
name = "bench-mongo"
kind = "mongo-sharded"
[config_servers]
name = "cfg"
members = ["127.0.0.1:20100", "127.0.0.1:20101", "127.0.0.1:20102"]
[[shards]]
name = "shard01"
members = ["127.0.0.1:20103", "127.0.0.1:20104", "127.0.0.1:20105"]
[[shards]]
name = "shard02"
members = ["127.0.0.1:20106", "127.0.0.1:20107", "127.0.0.1:20108"]
[mongos]
hosts = ["127.0.0.1:20109"]
[mongod]
cache_size_gb = 0.25
oplog_size_mb = 64
[binaries]
mongod = "$mongod"
mongos = "$bindir/mongos"
TOML
  dt=(); ml=()
  for i in $(seq "$RUNS"); do
    t0=$(now)
    target/release/datatier --state-dir "$work/state" -q init "$work/bench.toml" --timeout 300 >/dev/null
    t1=$(now)
    dt+=("$(awk -v a="$t1" -v b="$t0" 'BEGIN {printf "%.3f", a - b}')")
    target/release/datatier --state-dir "$work/state" -q down bench-mongo --purge >/dev/null
    t0=$(now)
    "$mlaunch" init --sharded 2 --replicaset --nodes 3 --config 3 --port 20200 \
      --dir "$work/mlaunch" --binarypath "$bindir" >/dev/null
    t1=$(now)
    ml+=("$(awk -v a="$t1" -v b="$t0" 'BEGIN {printf "%.3f", a - b}')")
    "$mlaunch" stop --dir "$work/mlaunch" >/dev/null
    rm -rf "$work/mlaunch"
  done
  d=$(printf '%s\n' "${dt[@]}" | median)
  m=$(printf '%s\n' "${ml[@]}" | median)
  echo "sharded cluster bootstrap (3 config + 2x3 shard members + 1 mongos), median of $RUNS runs, seconds"
  printf '  %-40s %10s %10s %8s\n' "" mlaunch datatier ratio
  printf '  %-40s %10.3f %10.3f %7.1fx\n' "command start to cluster with shards added" "$m" "$d" "$(awk -v a="$m" -v b="$d" 'BEGIN {printf "%.2f", a / b}')"
fi

echo
BENCH_RUNS=${BENCH_RUNS:-5} cargo test --release --locked --test mongo bench_against_the_double \
  -- --ignored --nocapture --test-threads 1 2>/dev/null | grep -v '^running\|^test \|^$\|test result\|^ok$'
