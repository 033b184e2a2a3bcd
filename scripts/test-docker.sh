#!/usr/bin/env bash
# The real-server tests against real servers in containers, for machines
# where mongod cannot be installed (it is in no Debian archive): starts
# docker-compose.test.yml (MongoDB config servers, shards, mongos and a
# replica set to migrate; Redis and Postgres nodes), runs
# tests/mongo_real.rs against it with --provider existing, forms the Redis
# nodes into a cluster with `datatier init --provider existing`, checks the
# Postgres container answers, and stops everything.
#
#   scripts/test-docker.sh            run, then remove the containers
#   KEEP=1 scripts/test-docker.sh     leave the containers running
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

if ! command -v docker >/dev/null 2>&1; then
  echo "test-docker: docker not found; install Docker Engine with the compose plugin" >&2
  exit 1
fi
if ! docker compose version >/dev/null 2>&1; then
  echo "test-docker: 'docker compose' (v2) not found; install the docker-compose-plugin" >&2
  exit 1
fi

export COMPOSE_PROJECT_NAME=datatier-test
compose=(docker compose -f docker-compose.test.yml)
mkdir -p target/docker-flags
: > target/docker-flags/rs0            # rs0 starts without --shardsvr
if [ -z "${KEEP:-}" ]; then
  trap '"${compose[@]}" down -v --remove-orphans >/dev/null 2>&1 || true' EXIT
fi
echo "test-docker: starting containers" >&2
"${compose[@]}" up -d --wait --wait-timeout 300

export DATATIER_TEST_MONGO_COMPOSE="$PWD/docker-compose.test.yml"
export DATATIER_TEST_MONGO_FLAGS_DIR="$PWD/target/docker-flags"
cargo test --locked --test mongo_real -- --test-threads 1 --nocapture

echo "test-docker: Redis Cluster on the compose nodes (--provider existing)" >&2
cargo build --locked --quiet
state=$(mktemp -d)
target/debug/datatier --state-dir "$state" init --provider existing tests/docker/redis-cluster.toml --timeout 60
target/debug/datatier --state-dir "$state" status tests/docker/redis-cluster.toml
rm -rf "$state"

echo "test-docker: Postgres container" >&2
"${compose[@]}" exec -T postgres pg_isready -h 127.0.0.1 -p 23490
echo "test-docker: all real-server checks passed" >&2
