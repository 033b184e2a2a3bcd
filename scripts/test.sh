#!/usr/bin/env bash
# Install what is missing, then run the whole test suite against real
# servers (redis-server, redis-sentinel, postgres, pgbouncer started by the
# tests through datatier's local provider).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --no-build
export PATH="$HOME/.cargo/bin:$PATH"

cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked --all-targets -- --test-threads "${DATATIER_TEST_THREADS:-4}" --skip needs_mongod_
# The real-mongod tests (tests/mongo_real.rs, all named needs_mongod_*) run on their
# own with output shown: without a mongod binary each says why it skipped.
cargo test --locked --test mongo_real -- --nocapture --test-threads 1
