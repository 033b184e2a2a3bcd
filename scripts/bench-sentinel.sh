#!/usr/bin/env bash
# Redis Sentinel: failover detection (kill -9 of the master -> the sentinels
# name a new master -> `datatier status` names it) and bootstrap until
# verified, datatier vs by hand (configs + redis-cli). Median of
# BENCH_RUNS=5; prints both figures and the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --no-build
cargo build --release --locked 2>&1 | tail -n 1 >&2
exec python3 scripts/bench/redis_sentinel.py "$@"
