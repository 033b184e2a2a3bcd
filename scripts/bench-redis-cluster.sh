#!/usr/bin/env bash
# Cluster bootstrap and status: datatier vs redis-cli --cluster (6 and 30
# nodes, median of BENCH_RUNS=5). Prints both figures and the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --no-build
cargo build --release --locked 2>&1 | tail -n 1 >&2
exec python3 scripts/bench/redis_cluster.py "$@"
