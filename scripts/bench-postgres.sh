#!/usr/bin/env bash
# Benchmarks of the Postgres engine, side by side with the peer:
#
#   1. init of the default layout (primary, 2 replicas, PgBouncer) vs the
#      same steps done by hand with initdb / postgres / pg_basebackup /
#      pgbouncer (scripted here, same machine, same settings);
#   2. a ~1 GB load (pgbench -i -s $SCALE): replica catch-up, then a new
#      replica of the loaded primary (datatier init after its data dir is
#      gone) vs a hand-run `pg_basebackup -X stream --checkpoint=fast` of
#      the same primary, and the hand-run baseline of issue #4;
#   3. the write pause of a switchover under load: pgbench clients inserting
#      through PgBouncer in a loop (worst latency, longest gap with no
#      commit, aborted clients, acknowledged vs stored rows) vs the
#      hand-run PAUSE/promote/RELOAD/RESUME baseline of issue #4.
#
# Figures only; nothing here asserts a time. Ports 20000-20999 (the
# benchmark range of tests/support). Runs as root (servers as `postgres`)
# or as any user who can run postgres.
#
#   scripts/bench-postgres.sh              SCALE=70 (~1.05 GB)
#   SCALE=10 scripts/bench-postgres.sh     quicker
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE=${SCALE:-70}
DIR=${BENCH_DIR:-/var/tmp/datatier-bench}
SWITCH_SECS=${SWITCH_SECS:-12}

# Hand-run baselines from issue #4 (same kind of machine).
BASE_BB_SECS=1.6        # pg_basebackup -X stream --checkpoint=fast of a 1.45 GB primary
BASE_BB_GB=1.45
BASE_STREAM_SECS=0.24   # replica streaming this long after start
BASE_PAUSE_SECS=0.26    # PAUSE / promote / RELOAD / RESUME: clients paused
BASE_WORST_MS=258       # worst client latency during that switchover

cargo build --release --quiet
DT="$PWD/target/release/datatier"
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$PGBIN/postgres" ] || { echo "bench: postgres not found under /usr/lib/postgresql; run scripts/setup.sh" >&2; exit 1; }
PGBOUNCER=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
AS=()
if [ "$(id -u)" = 0 ]; then AS=(runuser -u postgres --); fi

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
dt() { "$DT" --state-dir "$DIR/state" -q "$@"; }
log() { echo "bench: $*" >&2; }

MANUAL_PIDS=()
cleanup() {
  dt down pg-bench --purge >/dev/null 2>&1 || true
  for p in "${MANUAL_PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  for p in "${MANUAL_PIDS[@]}"; do while kill -0 "$p" 2>/dev/null; do sleep 0.1; done; done
  rm -rf "$DIR"
}
trap cleanup EXIT
rm -rf "$DIR"
mkdir -p "$DIR"
chmod 755 "$DIR"
if [ "${#AS[@]}" -gt 0 ]; then chown postgres "$DIR"; fi

# The default layout, on benchmark ports.
sed -e 's/^name = "postgres"/name = "pg-bench"/' \
    -e 's/^port = 15432 .*/port = 20432/' \
    -e 's/^port = 16432/port = 20532/' \
    topologies/postgres.toml > "$DIR/bench.toml"
grep -q 'port = 20432' "$DIR/bench.toml" && grep -q 'port = 20532' "$DIR/bench.toml" \
  || { echo "bench: could not move topologies/postgres.toml to benchmark ports" >&2; exit 1; }
TOPO="$DIR/bench.toml"
STATE="$DIR/state/pg-bench"

# ---- 1. init -------------------------------------------------------------
log "datatier init (default layout on 20432-20434, PgBouncer 20532)"
t0=$(now); dt init "$TOPO" >/dev/null; t1=$(now)
DT_INIT=$(secs "$t0" "$t1")
ADMIN_PW=$(cat "$STATE/admin.pass")
APP_PW=$(cat "$STATE/owner.pass")

# The same by hand: initdb, start, roles + slots, two base backups, start,
# wait for streaming, PgBouncer.
manual_init() {
  local m="$DIR/manual"
  "${AS[@]}" mkdir -p "$m"
  "${AS[@]}" bash -c "echo secret > '$m/pw'"
  "${AS[@]}" "$PGBIN/initdb" -D "$m/p" -U postgres --pwfile="$m/pw" --auth-host=scram-sha-256 \
      --auth-local=peer --data-checksums -E UTF8 --locale=C >/dev/null
  "${AS[@]}" bash -c "cat >> '$m/p/postgresql.conf'" <<EOF
shared_buffers = 128MB
hot_standby = on
EOF
  "${AS[@]}" bash -c "echo 'host replication all 127.0.0.1/32 scram-sha-256' >> '$m/p/pg_hba.conf'"
  "${AS[@]}" bash -c "setsid '$PGBIN/postgres' -D '$m/p' -p 20632 -c listen_addresses=127.0.0.1 -k '$m' > '$m/p.log' 2>&1 & echo \$! > '$m/p.pid'"
  MANUAL_PIDS+=("$(cat "$m/p.pid")")
  until PGPASSWORD=secret psql -XAtq -h 127.0.0.1 -p 20632 -U postgres -c 'select 1' >/dev/null 2>&1; do sleep 0.05; done
  PGPASSWORD=secret psql -XAtq -h 127.0.0.1 -p 20632 -U postgres \
    -c "create role replicator login replication password 'secret'" \
    -c "create role app login password 'secret'" \
    -c "select pg_create_physical_replication_slot('r1'), pg_create_physical_replication_slot('r2')" >/dev/null
  PGPASSWORD=secret psql -XAtq -h 127.0.0.1 -p 20632 -U postgres -c "create database app owner app" >/dev/null
  for i in 1 2; do
    "${AS[@]}" env PGPASSWORD=secret "$PGBIN/pg_basebackup" -h 127.0.0.1 -p 20632 -U replicator \
        -D "$m/r$i" -X stream -R -S "r$i" --checkpoint=fast
    "${AS[@]}" bash -c "setsid '$PGBIN/postgres' -D '$m/r$i' -p $((20632 + i)) -c listen_addresses=127.0.0.1 -k '$m' > '$m/r$i.log' 2>&1 & echo \$! > '$m/r$i.pid'"
    MANUAL_PIDS+=("$(cat "$m/r$i.pid")")
  done
  until [ "$(PGPASSWORD=secret psql -XAtq -h 127.0.0.1 -p 20632 -U postgres -c "select count(*) from pg_stat_replication where state = 'streaming'")" = 2 ]; do sleep 0.05; done
  "${AS[@]}" bash -c "printf '\"app\" \"secret\"\n' > '$m/users.txt'; chmod 600 '$m/users.txt'"
  "${AS[@]}" bash -c "cat > '$m/pgb.ini'" <<EOF
[databases]
app = host=127.0.0.1 port=20632 dbname=app
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = 20642
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $m/users.txt
pool_mode = transaction
max_client_conn = 1000
default_pool_size = 20
min_pool_size = 5
EOF
  "${AS[@]}" bash -c "setsid '$PGBOUNCER' '$m/pgb.ini' > '$m/pgb.log' 2>&1 & echo \$! > '$m/pgb.pid'"
  MANUAL_PIDS+=("$(cat "$m/pgb.pid")")
  until PGPASSWORD=secret psql -XAtq -h 127.0.0.1 -p 20642 -U app app -c 'select 1' >/dev/null 2>&1; do sleep 0.05; done
}
log "the same layout by hand (initdb, pg_basebackup x2, pgbouncer; ports 20632-20642)"
t0=$(now); manual_init; t1=$(now)
MAN_INIT=$(secs "$t0" "$t1")
for p in "${MANUAL_PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
for p in "${MANUAL_PIDS[@]}"; do while kill -0 "$p" 2>/dev/null; do sleep 0.05; done; done
MANUAL_PIDS=()
rm -rf "$DIR/manual"

# ---- 2. ~1 GB load, catch-up, a new replica of the loaded primary --------
psql_admin() { PGPASSWORD="$ADMIN_PW" psql -XAtq -h 127.0.0.1 -p "$1" -U postgres -d "${3:-postgres}" -c "$2"; }
log "pgbench -i -s $SCALE on the primary (this takes a while)"
t0=$(now)
PGPASSWORD="$ADMIN_PW" pgbench -i -q -s "$SCALE" -h 127.0.0.1 -p 20432 -U postgres app >/dev/null 2>&1
t1=$(now)
LOAD_SECS=$(secs "$t0" "$t1")
until [ "$(psql_admin 20432 "select coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)), -1) from pg_stat_replication")" = 0 ]; do sleep 0.02; done
t2=$(now)
CATCHUP_SECS=$(secs "$t1" "$t2")
DB_BYTES=$(psql_admin 20432 "select sum(pg_database_size(datname)) from pg_database")
DB_GB=$(awk -v b="$DB_BYTES" 'BEGIN { printf "%.2f", b / 1024 / 1024 / 1024 }')

log "a new replica of the loaded primary: datatier init after 20434's data dir is gone"
kill -INT "$(cat "$STATE/127.0.0.1-20434/server.pid")"
while [ -e "$STATE/127.0.0.1-20434/server.pid" ] && kill -0 "$(cat "$STATE/127.0.0.1-20434/server.pid")" 2>/dev/null; do sleep 0.05; done
rm -rf "$STATE/127.0.0.1-20434/data"
t0=$(now)
"$DT" --state-dir "$DIR/state" init "$TOPO" >/dev/null 2>"$DIR/rebuild.log"
t1=$(now)
DT_REBUILD=$(secs "$t0" "$t1")
DT_BB=$(sed -n 's/.*127.0.0.1:20434: pg_basebackup.*(\([0-9.]*\)s)$/\1/p' "$DIR/rebuild.log")
DT_START=$(sed -n 's/.*127.0.0.1:20434: start postgres (replica) (\([0-9.]*\)s)$/\1/p' "$DIR/rebuild.log")
DT_WAIT=$(sed -n 's/.*replication: wait until .*(\([0-9.]*\)s)$/\1/p' "$DIR/rebuild.log")
DT_STREAM=$(awk -v a="${DT_START:-0}" -v b="${DT_WAIT:-0}" 'BEGIN { printf "%.2f", a + b }')

log "the same base backup by hand"
"${AS[@]}" mkdir -p "$DIR/hand"
t0=$(now)
"${AS[@]}" env PGPASSWORD="$(cat "$STATE/replication.pass")" "$PGBIN/pg_basebackup" -h 127.0.0.1 -p 20432 \
    -U replicator -D "$DIR/hand/r" -X stream -R --checkpoint=fast
t1=$(now)
MAN_BB=$(secs "$t0" "$t1")
"${AS[@]}" bash -c "setsid '$PGBIN/postgres' -D '$DIR/hand/r' -p 20640 -c listen_addresses=127.0.0.1 -k '$DIR/hand' -c cluster_name=hand > '$DIR/hand/r.log' 2>&1 & echo \$! > '$DIR/hand/r.pid'"
MANUAL_PIDS+=("$(cat "$DIR/hand/r.pid")")
until [ "$(psql_admin 20432 "select count(*) from pg_stat_replication where application_name = 'hand' and state = 'streaming'")" = 1 ]; do sleep 0.01; done
t2=$(now)
MAN_STREAM=$(secs "$t1" "$t2")
for p in "${MANUAL_PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
for p in "${MANUAL_PIDS[@]}"; do while kill -0 "$p" 2>/dev/null; do sleep 0.05; done; done
MANUAL_PIDS=()
rm -rf "$DIR/hand"

# ---- 3. switchover under write load ---------------------------------------
PGPASSWORD="$APP_PW" psql -XAtq -h 127.0.0.1 -p 20532 -U app app \
  -c "create table bench_writes (id bigserial primary key, at timestamptz default now())" >/dev/null
echo "insert into bench_writes default values;" > "$DIR/insert.sql"
log "switchover while 4 pgbench clients insert through PgBouncer for ${SWITCH_SECS}s"
( cd "$DIR" && PGPASSWORD="$APP_PW" pgbench -n -M simple -c 4 -j 2 -T "$SWITCH_SECS" -l --log-prefix=pgb \
    -f insert.sql -h 127.0.0.1 -p 20532 -U app app > pgbench.out 2>&1 ) &
BENCH_PID=$!
sleep 4   # let the clients reach a steady rate before switching
dt switchover "$TOPO" -o json > "$DIR/switchover.json"
wait "$BENCH_PID" || true
read -r DT_PAUSE DT_SW_TOTAL < <(python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))["switchover"]
print("%.3f %.2f" % (j["write_pause_seconds"], j["total_seconds"]))' "$DIR/switchover.json")
PHASES=$(python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))["switchover"]
print(", ".join("%s %.0f ms" % (n, s * 1000) for n, s in j["phases"]))' "$DIR/switchover.json")
read -r WORST_MS GAP_MS TXNS < <(python3 - "$DIR" <<'EOF'
import glob, sys
done, worst = [], 0
for f in glob.glob(sys.argv[1] + "/pgb.*"):
    for line in open(f):
        c = line.split()
        # client txno latency_us script epoch us
        lat = int(c[2]); end = int(c[4]) + int(c[5]) / 1e6
        worst = max(worst, lat); done.append(end)
done.sort()
gap = max((b - a for a, b in zip(done, done[1:])), default=0)
print("%.0f %.0f %d" % (worst / 1000, gap * 1000, len(done)))
EOF
)
ABORTED=$(grep -c "aborted" "$DIR/pgbench.out" || true)
FAILED=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$DIR/pgbench.out")
STORED=$(PGPASSWORD="$APP_PW" psql -XAtq -h 127.0.0.1 -p 20532 -U app app -c "select count(*) from bench_writes")

# ---- report ----------------------------------------------------------------
DT_BB_GBPS=$(awk -v g="$DB_GB" -v s="$DT_BB" 'BEGIN { if (s > 0) printf "%.2f", g / s; else print "-" }')
MAN_BB_GBPS=$(awk -v g="$DB_GB" -v s="$MAN_BB" 'BEGIN { if (s > 0) printf "%.2f", g / s; else print "-" }')
BASE_BB_GBPS=$(awk -v g="$BASE_BB_GB" -v s="$BASE_BB_SECS" 'BEGIN { printf "%.2f", g / s }')
cat <<EOF

Postgres engine benchmark ($(nproc) cores, $("$PGBIN/postgres" --version | sed 's/.*) //'), $("$PGBOUNCER" --version | head -n 1), data ${DB_GB} GB after pgbench -s $SCALE)

figure                                          datatier        peer            ratio (datatier/peer)
init, default layout (3 nodes + PgBouncer)      ${DT_INIT} s          ${MAN_INIT} s by hand       $(ratio "$DT_INIT" "$MAN_INIT")
load ${DB_GB} GB (pgbench -i), replicas caught up  ${CATCHUP_SECS} s after the load ended (load took ${LOAD_SECS} s)
new replica: base backup of ${DB_GB} GB          ${DT_BB} s (${DT_BB_GBPS} GB/s)  ${MAN_BB} s by hand (${MAN_BB_GBPS} GB/s)  $(ratio "$DT_BB" "$MAN_BB")
   vs issue #4 hand-run baseline                ${DT_BB_GBPS} GB/s       ${BASE_BB_GBPS} GB/s (1.45 GB in 1.6 s)  $(ratio "$BASE_BB_GBPS" "$DT_BB_GBPS") (time per GB)
new replica: start -> streaming                 ${DT_STREAM} s          ${MAN_STREAM} s by hand; ${BASE_STREAM_SECS} s issue #4   $(ratio "$DT_STREAM" "$BASE_STREAM_SECS") (vs issue)
new replica: whole datatier init                ${DT_REBUILD} s
switchover: writes paused (datatier's clock)    ${DT_PAUSE} s          ${BASE_PAUSE_SECS} s issue #4    $(ratio "$DT_PAUSE" "$BASE_PAUSE_SECS")
switchover: worst client latency                ${WORST_MS} ms          ${BASE_WORST_MS} ms issue #4     $(ratio "$WORST_MS" "$BASE_WORST_MS")
switchover: longest gap without a commit        ${GAP_MS} ms
switchover: whole run incl. old primary rejoin  ${DT_SW_TOTAL} s
switchover phases: ${PHASES}
switchover: aborted clients / failed txns       ${ABORTED} / ${FAILED:-0}         0 issue #4
switchover: transactions acked / rows stored    ${TXNS} / ${STORED}
EOF
