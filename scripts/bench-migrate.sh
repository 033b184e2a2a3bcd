#!/usr/bin/env bash
# Benchmark: SQLite -> Postgres with datatier, pgloader and a hand-made
# binary-COPY ceiling, on the same data, the same throwaway Postgres 15 and
# the same machine, each into a fresh database. Prints wall time, rows/s,
# peak RSS and whether the result verifies, side by side, with ratios.
#
#   scripts/bench-migrate.sh [--scale 1.0] [--runs 3] [--cache DIR] [--port 20432]
#                            [--no-pgloader] [--no-quirks] [--jobs N]
#
# The database comes from ../shared/bench/gen_sqlite.py (generated once
# into the cache dir, default ~/.cache/datatier-bench). Timings are medians
# over --runs. Needs: cargo, python3, postgresql-15, pgloader (installed with
# apt-get when missing and running as root).
#
# What each figure covers:
#   datatier   `migrate sqlite-to-postgres --yes`: preflight (quick_check,
#              value scan, DDL rehearsal), load, keys/indexes/FKs, ANALYZE,
#              and the full verification (every value checksummed on both sides)
#   datatier*  the same with --verify none --integrity off (what the others do)
#   pgloader   `pgloader sqlite://... postgresql://...` (defaults)
#   ceiling    tables pre-created, each table loaded with server-side
#              `COPY ... FROM file (FORMAT binary)` of files exported
#              beforehand (no reading or converting at all), then primary
#              keys, uniques, indexes and foreign keys (pg_dump's post-data),
#              one session, in order
# "verifies" is `datatier migrate verify` of the result against the source.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SCALE=1.0
RUNS=3
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/datatier-bench
PORT=20432
PGLOADER=1
QUIRKS=1
JOBS=""
while (($#)); do
  case "$1" in
    --scale) SCALE=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --cache) CACHE=$2; shift 2 ;;
    --port) PORT=$2; shift 2 ;;
    --jobs) JOBS="--jobs $2"; shift 2 ;;
    --no-pgloader) PGLOADER=0; shift ;;
    --no-quirks) QUIRKS=0; shift ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

log() { echo "bench: $*" >&2; }
calc() { awk "BEGIN { print $* }"; }
die() { echo "bench: $*" >&2; exit 1; }

GEN=""
for g in "$ROOT/../shared/bench/gen_sqlite.py" /work/shared/bench/gen_sqlite.py; do
  [ -f "$g" ] && GEN=$g && break
done
[ -n "$GEN" ] || die "gen_sqlite.py not found in ../shared/bench/"
PGBIN=""
for v in 15 16 17; do
  [ -x /usr/lib/postgresql/$v/bin/postgres ] && PGBIN=/usr/lib/postgresql/$v/bin && break
done
[ -n "$PGBIN" ] || die "Postgres server binaries not found; run scripts/setup.sh"
if ((PGLOADER)) && ! command -v pgloader >/dev/null; then
  if [ "$(id -u)" -eq 0 ]; then
    log "installing pgloader"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgloader >/dev/null
  else
    die "pgloader is not installed (apt-get install pgloader), or pass --no-pgloader"
  fi
fi
[ -x /usr/bin/time ] || die "/usr/bin/time is needed for peak RSS (apt-get install time)"

log "building datatier (release)"
cargo build --release --locked 2>&1 | tail -n 1 >&2
DT=$ROOT/target/release/datatier

mkdir -p "$CACHE"
DB=$CACHE/bench-$SCALE.db
if [ ! -f "$DB" ]; then
  log "generating $DB (once)"
  python3 "$GEN" "$DB" --scale "$SCALE" >&2
fi
ROWS=$(python3 - "$DB" <<'EOF'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
t = [r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'")]
print(sum(c.execute('SELECT count(*) FROM "%s"' % n).fetchone()[0] for n in t))
EOF
)
log "source: $DB, $(du -h "$DB" | cut -f1), $ROWS rows"

# --- a throwaway Postgres ------------------------------------------------
WORK=$(mktemp -d /var/tmp/datatier-bench.XXXXXX)
chmod 755 "$WORK"
AS=()
if [ "$(id -u)" -eq 0 ]; then
  chown postgres "$WORK"
  AS=(runuser -u postgres --)
fi
cleanup() {
  "${AS[@]}" "$PGBIN/pg_ctl" -D "$WORK/data" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
"${AS[@]}" "$PGBIN/initdb" -D "$WORK/data" -U postgres -E UTF8 --locale=C --auth=trust >/dev/null
"${AS[@]}" "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/pg.log" -w -o \
  "-p $PORT -k $WORK -c listen_addresses=127.0.0.1 -c shared_buffers=256MB -c max_wal_size=4GB -c checkpoint_timeout=30min -c maintenance_work_mem=256MB" \
  start >/dev/null
PSQL=(psql -X -q -h 127.0.0.1 -p "$PORT" -U postgres)
url() { echo "postgres://postgres@127.0.0.1:$PORT/$1"; }
fresh() { "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1" >/dev/null; }

# run NAME CMD...: wall seconds and peak RSS (MB) of CMD into globals
WALL=0; RSS=0; RC=0
run() {
  local out=$WORK/$1.time
  local t0 t1
  t0=$(date +%s.%N)
  set +e
  /usr/bin/time -v -o "$out" "${@:2}" >"$WORK/$1.out" 2>"$WORK/$1.err"
  RC=$?
  set -e
  t1=$(date +%s.%N)
  WALL=$(calc "$t1 - $t0")
  RSS=$(awk -F: '/Maximum resident set size/ {printf "%.0f", $2/1024}' "$out")
}

verify() { # DBNAME [SOURCE] -> "yes" / "NO (...)"
  local rc=0
  "$DT" --state-dir "$WORK/verify-state" migrate verify --from "${2:-$DB}" --to "$(url "$1")" $JOBS -q >"$WORK/verify-$1.txt" 2>&1 || rc=$?
  if ((rc == 0)); then echo yes
  elif grep -q '^DIFFERS' "$WORK/verify-$1.txt"; then
    echo "NO ($(grep -c '^DIFFERS' "$WORK/verify-$1.txt") differences)"
  else
    echo "NO ($(grep -m1 '^error' "$WORK/verify-$1.txt"))"
  fi
}

declare -A TIMES RSSES VERIFIES
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

TOOLS=(datatier datatier_noverify ceiling)
((PGLOADER)) && TOOLS+=(pgloader)

# The ceiling's input: binary files of every table and the schema, taken
# once from a datatier-loaded database (not timed).
prepare_ceiling() {
  fresh prep
  "$DT" --state-dir "$WORK/state-prep" migrate sqlite-to-postgres --from "$DB" --to "$(url prep)" --yes -q --verify none $JOBS >/dev/null
  mkdir -p "$WORK/ceiling"
  [ ${#AS[@]} -gt 0 ] && chown postgres "$WORK/ceiling"
  pg_dump -h 127.0.0.1 -p "$PORT" -U postgres --section=pre-data prep >"$WORK/ceiling/pre.sql"
  pg_dump -h 127.0.0.1 -p "$PORT" -U postgres --section=post-data prep >"$WORK/ceiling/post.sql"
  : >"$WORK/ceiling/load.sql"
  for t in $("${PSQL[@]}" -d prep -At -c "SELECT tablename FROM pg_tables WHERE schemaname='public'"); do
    "${PSQL[@]}" -d prep -c "COPY public.$t TO '$WORK/ceiling/$t.bin' (FORMAT binary)"
    echo "COPY public.$t FROM '$WORK/ceiling/$t.bin' (FORMAT binary);" >>"$WORK/ceiling/load.sql"
  done
  # where identities continue: pg_dump writes it as data, so keep it apart
  : >"$WORK/ceiling/seq.sql"
  for s in $("${PSQL[@]}" -d prep -At -c "SELECT schemaname || '.' || sequencename FROM pg_sequences WHERE schemaname = 'public'"); do
    "${PSQL[@]}" -d prep -At -c "SELECT format('SELECT setval(%L, %s, %s);', '$s', last_value, CASE WHEN is_called THEN 'true' ELSE 'false' END) FROM $s" >>"$WORK/ceiling/seq.sql"
  done
  "${PSQL[@]}" -d postgres -c "DROP DATABASE prep" >/dev/null
}
log "preparing the ceiling's binary files (not timed)"
prepare_ceiling

for ((r = 1; r <= RUNS; r++)); do
  for tool in "${TOOLS[@]}"; do
    db=b_${tool}
    fresh "$db"
    rm -rf "$WORK/state"
    case $tool in
      datatier)
        run "$tool" "$DT" --state-dir "$WORK/state" migrate sqlite-to-postgres --from "$DB" --to "$(url "$db")" --yes $JOBS ;;
      datatier_noverify)
        run "$tool" "$DT" --state-dir "$WORK/state" migrate sqlite-to-postgres --from "$DB" --to "$(url "$db")" --yes --verify none --integrity off $JOBS ;;
      pgloader)
        run "$tool" pgloader "sqlite://$DB" "postgresql://postgres@127.0.0.1:$PORT/$db" ;;
      ceiling)
        run "$tool" "${PSQL[@]}" -d "$db" -v ON_ERROR_STOP=1 -f "$WORK/ceiling/pre.sql" -f "$WORK/ceiling/load.sql" -f "$WORK/ceiling/seq.sql" -f "$WORK/ceiling/post.sql" ;;
    esac
    if ((RC != 0)); then
      log "$tool failed (exit $RC):"; tail -n 20 "$WORK/$tool.err" >&2
    fi
    TIMES[$tool]="${TIMES[$tool]:-} $WALL"
    RSSES[$tool]="${RSSES[$tool]:-} $RSS"
    log "run $r: $tool ${WALL}s, peak RSS ${RSS} MB, exit $RC"
    if ((r == RUNS)); then
      VERIFIES[$tool]=$(verify "$db")
      [ "$tool" = datatier ] && grep -E 'scanned|integrity|data, keys|verified' "$WORK/$tool.err" | sed 's/^/  datatier: /' >&2 || true
    fi
    "${PSQL[@]}" -d postgres -c "DROP DATABASE $db" >/dev/null
  done
done

echo
echo "SQLite -> Postgres, $(basename "$DB") ($ROWS rows, $(du -h "$DB" | cut -f1)), $(nproc) CPUs, load avg $(cut -d' ' -f1-3 /proc/loadavg), median of $RUNS run(s)"
printf '%-20s %10s %12s %14s  %s\n' tool "wall s" "rows/s" "peak RSS MB" verifies
declare -A MED
for tool in "${TOOLS[@]}"; do
  # shellcheck disable=SC2086
  MED[$tool]=$(median ${TIMES[$tool]})
  # shellcheck disable=SC2086
  rss=$(median ${RSSES[$tool]})
  name=$tool; [ "$tool" = datatier_noverify ] && name="datatier --verify none"
  [ "$tool" = ceiling ] && rss="(psql)"
  printf '%-20s %10.1f %12.0f %14s  %s\n' "$name" "${MED[$tool]}" "$(calc "$ROWS / ${MED[$tool]}")" "$rss" "${VERIFIES[$tool]}"
done
echo
if ((PGLOADER)); then
  printf 'pgloader / datatier             = %.2fx  (target >= 3)\n' "$(calc "${MED[pgloader]} / ${MED[datatier]}")"
fi
printf 'datatier / ceiling              = %.2fx  (target <= 1.3)\n' "$(calc "${MED[datatier]} / ${MED[ceiling]}")"
printf 'datatier --verify none / ceiling = %.2fx\n' "$(calc "${MED[datatier_noverify]} / ${MED[ceiling]}")"
if ((PGLOADER)) && [ -f "$WORK/verify-b_pgloader.txt" ]; then
  echo; echo "what datatier verify finds in pgloader's result:"
  grep -E '^(DIFFERS|WARNING)' "$WORK/verify-b_pgloader.txt" | head -n 20 || true
fi

if ((QUIRKS)); then
  echo; echo "--quirks database (SQLite loose typing):"
  Q=$CACHE/quirks.db
  [ -f "$Q" ] || python3 "$GEN" "$Q" --quirks >&2
  fresh q_datatier
  set +e
  "$DT" --state-dir "$WORK/qstate" migrate sqlite-to-postgres --from "$Q" --to "$(url q_datatier)" --yes \
    --on-error skip --rejects "$WORK/quirks-rejects.jsonl" >"$WORK/q.out" 2>&1
  echo "  datatier --on-error skip: exit $?, $(wc -l <"$WORK/quirks-rejects.jsonl" 2>/dev/null || echo 0) rows rejected (each with rowid, column, reason), verification: $(grep -o 'Verification: .*: [A-Z]*' "$WORK/q.out" | sed 's/.*: //')"
  set -e
  if ((PGLOADER)); then
    fresh q_pgloader
    prc=0
    pgloader "sqlite://$Q" "postgresql://postgres@127.0.0.1:$PORT/q_pgloader" >"$WORK/qp.out" 2>&1 || prc=$?
    echo "  pgloader: exit $prc; datatier verify of its result: $(verify q_pgloader "$Q")"
    grep -E '^(DIFFERS|WARNING)' "$WORK/verify-q_pgloader.txt" | head -n 12 | sed 's/^/    /' || true
  fi
fi
