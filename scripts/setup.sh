#!/usr/bin/env bash
# Install what datatier and its tests need on Debian (12+) and build it.
#
#   scripts/setup.sh            install missing packages, build release binary
#   scripts/setup.sh --no-build install only
#
# Runs apt-get only for packages that are missing (apt-get update once).
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(
  redis-server redis-tools redis-sentinel    # Redis Cluster / Sentinel
  postgresql-15 postgresql-client-15 pgbouncer # Postgres replicas + PgBouncer
  sqlite3                                    # migration sources
  python3                                    # benchmark data generator
  procps iproute2 ca-certificates curl
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "setup: installing ${missing[*]}" >&2
  # Do not let package scripts start system-wide services on their default
  # ports in containers without an init system.
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "setup: cargo not found; installing the Rust toolchain with rustup" >&2
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
fi

if [ "${1:-}" != "--no-build" ]; then
  cargo build --release --locked 2>&1 | tail -n 3 >&2
fi
