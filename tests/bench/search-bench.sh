#!/usr/bin/env bash
# Search benchmark for Paraply: load a synthetic population through the FHIR API, measure
# the load rate and the database size, then the throughput and latency of five everyday
# searches with wrk, on SQLite and/or PostgreSQL.
#
# Usage:
#   bash tests/bench/search-bench.sh [sqlite|postgres|all] [PATIENTS]
#                                              (defaults: all, 100000 patients)
#
# What it does, per backend:
#   1. builds the release binary if needed (cargo build --release -p paraply-server) and
#      installs wrk with apt-get if it is missing;
#   2. starts target/release/paraply serve on a fresh database on 127.0.0.1 (a free port
#      chosen up front) with PARAPLY_LOG=warn (no per-request log line), waits for /readyz;
#        - sqlite:   a fresh temporary file;
#        - postgres: a fresh database paraply_bench_<random> on the server of
#                    PARAPLY_BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test),
#                    dropped afterwards;
#   3. loads PATIENTS synthetic patients (about 30 resources each, plus ~2,100 shared
#      Organizations/Practitioners/PractitionerRoles) with
#        target/release/paraply synth --patients N --seed S --base-url ... --concurrency C
#      and records the rate line it prints and the CPU used by synth, the server and
#      PostgreSQL; with BENCH_LOAD_LIMIT=<seconds> the load is stopped after that long and
#      the benchmark continues with the patients loaded by then (reported as "partial");
#   4. measures the database: SQLite the file plus -wal after PRAGMA wal_checkpoint(TRUNCATE)
#      (sqlite3 CLI; installed with apt-get if missing), PostgreSQL pg_database_size after
#      ANALYZE (what autovacuum does by itself shortly after a bulk load); per patient and
#      per resource (resources = current rows of resource_version);
#   5. picks existing search values: patient numbers are drawn uniformly from 1..N (the
#      generator's ids are Patient/p-<n>, every n in 1..N exists); personnummer are read
#      from BENCH_SAMPLE (5000) random Patient/p-<n>; task owners are the distinct
#      Organizations owning a requested or accepted Task among task-<n>-{1,2,3} of 1000 of
#      those patients;
#   6. checks every search with curl on 20 random values (must answer 200 with matches)
#      and reports the number of matches, then, per search, a warm-up (BENCH_WARMUP, 5s) and
#        wrk -t2 -c32 -d20s --latency -s tests/bench/search-random.lua
#      with a new random value on every request;
#   7. prints markdown tables: load and size, search requests/s, p50, p99 and errors
#      (non-2xx + socket errors), and the CPU used during each measured run.
#
# The searches (X a random patient, Y a random task-owning Organization, D the reference
# date of the generated data, before all generated appointments):
#   careteam     CareTeam?patient=Patient/X&category=fast-kontakt&status=active
#   careplan     CarePlan?patient=Patient/X&status=active&_include=CarePlan:care-team
#   appointment  Appointment?patient=Patient/X&date=geD&_sort=date
#   personnummer Patient?identifier=http://electronichealth.se/identifier/personnummer|<pnr>
#   task         Task?owner=Organization/Y&status=requested,accepted
#
# Environment (all optional): BENCH_DURATION (20s), BENCH_WARMUP (5s), BENCH_CONNECTIONS
# (32), BENCH_THREADS (2), BENCH_SEED (1), BENCH_LOAD_CONCURRENCY (4),
# BENCH_PATIENTS_PER_BUNDLE (40), BENCH_REFERENCE_DATE (synth's default,
# 2026-12-01T00:00:00+01:00), BENCH_SAMPLE (5000), BENCH_LOAD_LIMIT (seconds, 0 = none),
# BENCH_SEARCHES (space-separated subset of the names above), BENCH_BIN (the paraply
# binary, default target/release/paraply), PARAPLY_LOG (warn),
# PARAPLY_BENCH_DATABASE_URL, BENCH_SKIP_BUILD=1 uses an existing target/release/paraply
# as it is, BENCH_KEEP=1 keeps the work directory (server log, raw wrk output, samples, the
# SQLite file). The work directory (and so the SQLite database) is made under TMPDIR (/tmp).
#
# Searching a database loaded earlier (the 1,000,000-patient load takes 1.5 h):
#   BENCH_SQLITE_DB=<file>   serve this SQLite file (e.g. a kept work directory's
#                            sqlite/paraply.db) and skip the load; PATIENTS must be the number
#                            it holds; the load row then reports only its size;
#   BENCH_PATIENT_RANGE=<n>  draw patients (and the personnummer and task owners sampled from
#                            them) from 1..n only: on a database larger than memory this
#                            separates what a search costs from the page-cache misses that
#                            random patients across the whole file cause.
#
# All traffic goes to 127.0.0.1; every wrk run has a fixed duration and an outer timeout;
# the server (and the PostgreSQL bench database) are removed on exit.
set -euo pipefail

BACKENDS="${1:-all}"
case "$BACKENDS" in
  sqlite|postgres) ;;
  all) BACKENDS="sqlite postgres" ;;
  *) echo "usage: $0 [sqlite|postgres|all] [PATIENTS]" >&2; exit 2 ;;
esac
PATIENTS="${2:-100000}"
[[ "$PATIENTS" =~ ^[1-9][0-9]*$ ]] || { echo "PATIENTS must be a positive integer" >&2; exit 2; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LUA="$ROOT/tests/bench/search-random.lua"
BIN="${BENCH_BIN:-$ROOT/target/release/paraply}"
DURATION="${BENCH_DURATION:-20s}"
WARMUP="${BENCH_WARMUP:-5s}"
CONNECTIONS="${BENCH_CONNECTIONS:-32}"
THREADS="${BENCH_THREADS:-2}"
SEED="${BENCH_SEED:-1}"
LOAD_CONCURRENCY="${BENCH_LOAD_CONCURRENCY:-4}"
PER_BUNDLE="${BENCH_PATIENTS_PER_BUNDLE:-40}"
REFERENCE_DATE="${BENCH_REFERENCE_DATE:-2026-12-01T00:00:00+01:00}"
SAMPLE="${BENCH_SAMPLE:-5000}"
LOAD_LIMIT="${BENCH_LOAD_LIMIT:-0}"
SEARCHES="${BENCH_SEARCHES:-careteam careplan appointment personnummer task}"
EXISTING_DB="${BENCH_SQLITE_DB:-}"
PATIENT_RANGE="${BENCH_PATIENT_RANGE:-0}"
[[ "$PATIENT_RANGE" =~ ^[0-9]+$ ]] || { echo "BENCH_PATIENT_RANGE must be a number" >&2; exit 2; }
if [[ -n "$EXISTING_DB" ]]; then
  [[ "$BACKENDS" == sqlite && -f "$EXISTING_DB" ]] \
    || { echo "BENCH_SQLITE_DB needs the sqlite backend and an existing file" >&2; exit 2; }
fi
PG_URL="${PARAPLY_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
export PARAPLY_LOG="${PARAPLY_LOG:-warn}"
CLK_TCK="$(getconf CLK_TCK)"
PNR_SYSTEM="http://electronichealth.se/identifier/personnummer"
TODAY="${REFERENCE_DATE:0:10}"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/paraply-search-bench.XXXXXX")"
SERVER_PID=""
PG_DB=""
BASE=""
DB_FILE=""

log() { echo "[search-bench $(date -u +%H:%M:%S)] $*" >&2; }
# stop_server, cpu_ticks, machine_ticks, free_port
source "$ROOT/tests/bench/lib.sh"

drop_pg_db() {
  if [[ -n "$PG_DB" ]]; then
    psql "$PG_URL" -q -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS \"$PG_DB\" WITH (FORCE)" >/dev/null 2>&1 \
      || log "could not drop database $PG_DB"
    PG_DB=""
  fi
}

SYNTH_PID=""
cleanup() {
  # The load runs as time -> timeout -> synth; timeout passes a TERM on to synth.
  if [[ -n "$SYNTH_PID" ]] && kill -0 "$SYNTH_PID" 2>/dev/null; then
    local child
    for child in $(pgrep -P "$SYNTH_PID" 2>/dev/null || true); do kill "$child" 2>/dev/null || true; done
    kill "$SYNTH_PID" 2>/dev/null || true
    wait "$SYNTH_PID" 2>/dev/null || true
  fi
  stop_server
  drop_pg_db
  if [[ "${BENCH_KEEP:-0}" == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- prerequisites ------------------------------------------------------------------------
if ! command -v wrk >/dev/null; then
  log "installing wrk"
  apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi
for tool in jq curl bc; do
  command -v "$tool" >/dev/null || { echo "$tool is needed" >&2; exit 1; }
done
if [[ " $BACKENDS " == *" sqlite "* ]] && ! command -v sqlite3 >/dev/null; then
  log "installing sqlite3 (for the WAL checkpoint before measuring the file)"
  apt-get update -qq && apt-get install -y -qq sqlite3 >/dev/null || log "no sqlite3: sizes are file + WAL without a checkpoint"
fi
if [[ "${BENCH_SKIP_BUILD:-0}" == 1 && -x "$BIN" ]]; then
  log "using the existing $BIN (BENCH_SKIP_BUILD=1)"
else
  log "building the release binary (no-op when up to date)"
  (cd "$ROOT" && cargo build --release -p paraply-server)
fi
[[ -x "$BIN" ]] || { echo "no $BIN" >&2; exit 1; }
# The source the binary was (presumably) built from: HEAD when the run starts.
commit="$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')"
[[ -n "$(cd "$ROOT" && git status --porcelain --untracked-files=no 2>/dev/null | head -n1)" ]] \
  && commit="$commit + uncommitted changes"

# --- helpers ------------------------------------------------------------------------------

# PostgreSQL processes working for the bench: backends of the bench database and the
# server's background processes; other databases' backends are left out.
pg_pids() {
  psql "$PG_URL" -Atq -c "SELECT pid FROM pg_stat_activity
    WHERE datname = '$PG_DB' OR backend_type <> 'client backend'" 2>/dev/null || true
}

# Starts the server on $1 (database URL); sets SERVER_PID and BASE.
start_server() {
  local url="$1" logf="$WORK/server-$2.log" port attempt
  for attempt in 1 2 3; do
    port=$(free_port)
    "$BIN" serve --auth none --listen "127.0.0.1:$port" --database "$url" >>"$logf" 2>&1 &
    SERVER_PID=$!
    BASE="http://127.0.0.1:$port"
    for _ in $(seq 600); do
      if curl -fsS --max-time 2 "$BASE/readyz" >/dev/null 2>&1; then
        log "server pid $SERVER_PID ready at $BASE (PARAPLY_LOG=$PARAPLY_LOG)"
        return 0
      fi
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    stop_server
    log "server did not start on port $port (attempt $attempt)"
  done
  cat "$logf" >&2; echo "server did not start" >&2; exit 1
}

# SQL on the bench database: $1 backend, $2 statement; prints the result (tab-free, one row).
db_query() {
  case "$1" in
    sqlite) sqlite3 "$DB_FILE" "$2" ;;
    postgres) psql "$(pg_bench_url)" -Atq -v ON_ERROR_STOP=1 -c "$2" ;;
  esac
}

# The bench database's URL on the PostgreSQL server of PG_URL.
pg_bench_url() {
  local base="${PG_URL%%\?*}" query=""
  [[ "$PG_URL" == *\?* ]] && query="?${PG_URL#*\?}"
  echo "${base%/*}/$PG_DB$query"
}

http_code() { curl -s -o /dev/null --max-time 10 -w '%{http_code}' "$BASE/fhir/$1"; }

# After a load stopped early: the largest n with Patient/p-1..p-n all loaded. Transactions
# are atomic and started in patient order with at most C in flight, so existence is
# monotone except for a window of at most C bundles at the end; search for the last
# existing patient, then step below the first gap in the window before it.
loaded_patients() {
  local lo=0 hi="$PATIENTS" mid n window=$((4 * LOAD_CONCURRENCY * PER_BUNDLE))
  while ((lo < hi)); do
    mid=$(((lo + hi + 1) / 2))
    if [[ "$(http_code "Patient/p-$mid")" == 200 ]]; then lo=$mid; else hi=$((mid - 1)); fi
  done
  n=$((lo > window ? lo - window : 0))
  for ((mid = n + 1; mid <= lo; mid++)); do
    [[ "$(http_code "Patient/p-$mid")" == 200 ]] || { echo $((mid - 1)); return; }
  done
  echo "$lo"
}

human_bytes() {
  awk -v b="$1" 'BEGIN{ if (b >= 1073741824) printf "%.2f GiB", b/1073741824;
    else if (b >= 10485760) printf "%.0f MiB", b/1048576; else printf "%.0f KiB", b/1024 }'
}

# Loads the population; appends a row to load.md and sets LOADED (patients loaded).
load_population() {
  local backend="$1" out="$WORK/synth-$backend.txt" rc=0 partial=""
  local pgp="" srv0 db0 all0 t0 t1 srv1 db1 all1
  [[ "$backend" == postgres ]] && pgp="$(pg_pids | tr '\n' ' ')"
  srv0=$(cpu_ticks "$SERVER_PID"); db0=$(cpu_ticks $pgp); all0=$(machine_ticks)
  local limit_note=""
  [[ "$LOAD_LIMIT" != 0 ]] && limit_note=", stopped after ${LOAD_LIMIT} s at the latest"
  log "$backend: loading $PATIENTS patients (seed $SEED, concurrency $LOAD_CONCURRENCY, $PER_BUNDLE patient(s) per bundle$limit_note)"
  t0=$(date +%s.%N)
  # time(1) reports the CPU of synth (through timeout, which waits for it); timeout 0 = none;
  # on the limit timeout sends SIGINT to synth and exits 124.
  /usr/bin/time -f 'PARAPLY synth_cpu %U %S' -o "$WORK/synth-time-$backend.txt" \
    timeout -s INT "$LOAD_LIMIT" \
    "$BIN" synth --patients "$PATIENTS" --seed "$SEED" --base-url "$BASE/fhir" \
      --concurrency "$LOAD_CONCURRENCY" --patients-per-bundle "$PER_BUNDLE" \
      --reference-date "$REFERENCE_DATE" >"$out" 2>"$WORK/synth-$backend.err" &
  SYNTH_PID=$!
  # Progress every minute: current resources in the database.
  local ticks=0
  while kill -0 "$SYNTH_PID" 2>/dev/null; do
    sleep 5
    ticks=$((ticks + 1))
    if ((ticks % 12 == 0)) && kill -0 "$SYNTH_PID" 2>/dev/null; then
      log "$backend: $(db_query "$backend" 'SELECT count(*) FROM resource_version WHERE is_current' 2>/dev/null || echo '?') resources after $((ticks * 5)) s"
    fi
  done
  wait "$SYNTH_PID" || rc=$?
  SYNTH_PID=""
  t1=$(date +%s.%N)
  srv1=$(cpu_ticks "$SERVER_PID"); db1=$(cpu_ticks $pgp); all1=$(machine_ticks)
  if [[ "$backend" == postgres ]]; then
    local p newp=""
    for p in $(pg_pids); do [[ " $pgp " == *" $p "* ]] || newp="$newp $p"; done
    [[ -n "$newp" ]] && db1=$((db1 + $(cpu_ticks $newp)))
  fi
  local wall cpu_wall resources rate line
  wall=$(echo "$t1 - $t0" | bc -l)
  cpu_wall="$wall"
  line=$(grep '^loaded ' "$out" || true)
  resources=$(db_query "$backend" 'SELECT count(*) FROM resource_version WHERE is_current')
  if [[ $rc == 0 && -n "$line" ]]; then
    LOADED="$PATIENTS"
    log "$backend: $line"
    # "loaded N patients: R resources (S shared) in T transactions, 123.4 s, 5678 resources/s (...)"
    rate=$(echo "$line" | sed -E 's/.* ([0-9]+) resources\/s.*/\1/')
    wall=$(echo "$line" | sed -E 's/.*, ([0-9.]+) s, .*/\1/')
  elif [[ $rc == 124 && "$LOAD_LIMIT" != 0 ]]; then
    LOADED=$(loaded_patients)
    partial=" (partial: load stopped after ${LOAD_LIMIT} s)"
    rate=$(echo "scale=0; $resources / $wall" | bc -l)
    log "$backend: load stopped after ${LOAD_LIMIT} s: patients 1..$LOADED complete, $resources resources, $rate resources/s"
  else
    cat "$out" "$WORK/synth-$backend.err" >&2
    echo "synth failed (exit $rc)" >&2; exit 1
  fi
  local synth_cpu cpu_srv cpu_db cpu_all
  synth_cpu=$(awk -v w="$cpu_wall" '$1=="PARAPLY" && $2=="synth_cpu"{printf "%.0f%%", 100*($3+$4)/w}' "$WORK/synth-time-$backend.txt")
  cpu_srv=$(echo "scale=0; 100 * ($srv1 - $srv0) / $CLK_TCK / $cpu_wall" | bc -l)
  if [[ "$backend" == postgres ]]; then
    cpu_db="$(echo "scale=0; 100 * ($db1 - $db0) / $CLK_TCK / $cpu_wall" | bc -l)%"
  else
    cpu_db="(in process)"
  fi
  cpu_all=$(echo "scale=0; 100 * ($all1 - $all0) / $CLK_TCK / $cpu_wall" | bc -l)
  LOAD_ROW="| $backend | $LOADED$partial | $resources | $(printf '%.0f' "$wall") s | $rate | $LOAD_CONCURRENCY |"
  echo "| $backend | load $LOADED | ${cpu_srv}% | $cpu_db | ${synth_cpu:-?} (synth) | ${cpu_all}% of $(( $(nproc) * 100 ))% |" >>"$WORK/cpu.md"
  RESOURCES="$resources"
}

# Database size after the load; appends the load-and-size row.
measure_size() {
  local backend="$1" bytes detail=""
  case "$backend" in
    sqlite)
      if command -v sqlite3 >/dev/null; then
        local ck
        ck=$(sqlite3 "$DB_FILE" 'PRAGMA wal_checkpoint(TRUNCATE);' 2>&1 || true)
        log "sqlite: wal_checkpoint(TRUNCATE) -> $ck (busy|log|checkpointed)"
        [[ "$ck" == 0\|* ]] || detail=" (checkpoint incomplete: $ck)"
        # dbstat reads every page: minutes on a database loaded earlier, measured then.
        [[ -n "$EXISTING_DB" ]] \
          || sqlite3 "$DB_FILE" "SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC" \
            >"$WORK/size-objects-$backend.txt" 2>/dev/null || true
      fi
      local f w=0
      f=$(stat -c %s "$DB_FILE")
      [[ -e "$DB_FILE-wal" ]] && w=$(stat -c %s "$DB_FILE-wal")
      bytes=$((f + w))
      detail="file $(human_bytes "$f") + WAL $(human_bytes "$w")$detail"
      ;;
    postgres)
      db_query postgres "ANALYZE" >/dev/null
      bytes=$(db_query postgres "SELECT pg_database_size(current_database())")
      db_query postgres "SELECT c.relname, pg_relation_size(c.oid) FROM pg_class c
          JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = 'public' AND c.relkind IN ('r','i','t') ORDER BY 2 DESC" \
        | tr '|' ' ' >"$WORK/size-objects-$backend.txt" || true
      detail="pg_database_size"
      ;;
  esac
  SIZE_BYTES="$bytes"
  echo "$LOAD_ROW $(human_bytes "$bytes") | $((bytes / LOADED)) B | $((bytes / RESOURCES)) B | $detail |" >>"$WORK/load.md"
  if [[ -s "$WORK/size-objects-$backend.txt" ]]; then
    {
      echo "Largest tables and indexes ($backend, $LOADED patients): name bytes bytes/resource"
      head -n 12 "$WORK/size-objects-$backend.txt" | tr '|' ' ' \
        | awk -v r="$RESOURCES" '{printf "  %-32s %12d %6.0f\n", $1, $2, $2/r}'
    } >>"$WORK/objects.txt"
  fi
}

# The search path templates ("{}" = the random value) and where the values come from.
template() {
  case "$1" in
    careteam)     echo "/fhir/CareTeam?patient=Patient/p-{}&category=fast-kontakt&status=active" ;;
    careplan)     echo "/fhir/CarePlan?patient=Patient/p-{}&status=active&_include=CarePlan:care-team" ;;
    appointment)  echo "/fhir/Appointment?patient=Patient/p-{}&date=ge$TODAY&_sort=date" ;;
    personnummer) echo "/fhir/Patient?identifier=${PNR_SYSTEM}%7C{}" ;;
    task)         echo "/fhir/Task?owner=Organization/{}&status=requested,accepted" ;;
  esac
}
source_of() {
  case "$1" in
    personnummer) echo "$WORK/pnr.txt" ;;
    task) echo "$WORK/owners.txt" ;;
    *) echo "range:1:$(draw_hi)" ;;
  esac
}

# Patients are drawn from 1..DRAW_HI: all loaded ones, or BENCH_PATIENT_RANGE of them.
draw_hi() {
  if ((PATIENT_RANGE > 0 && PATIENT_RANGE < LOADED)); then echo "$PATIENT_RANGE"; else echo "$LOADED"; fi
}

# Reads personnummer and task owners of existing resources into pnr.txt and owners.txt.
sample_values() {
  local hi n k
  hi=$(draw_hi)
  n=$((SAMPLE < hi ? SAMPLE : hi))
  shuf -i "1-$hi" -n "$n" >"$WORK/sample.txt"
  # One curl process per list (keep-alive); bodies arrive concatenated, which jq reads
  # as a stream of JSON values.
  while read -r k; do echo "url = \"$BASE/fhir/Patient/p-$k\""; done <"$WORK/sample.txt" >"$WORK/curl-patients.cfg"
  curl -s --max-time 600 -K "$WORK/curl-patients.cfg" \
    | jq -r --arg sys "$PNR_SYSTEM" 'select(.resourceType=="Patient") | .identifier[]? | select(.system==$sys) | .value' \
    >"$WORK/pnr.txt"
  head -n 1000 "$WORK/sample.txt" | while read -r k; do
    for t in 1 2 3; do echo "url = \"$BASE/fhir/Task/task-$k-$t\""; done
  done >"$WORK/curl-tasks.cfg"
  curl -s --max-time 600 -K "$WORK/curl-tasks.cfg" \
    | jq -r 'select(.resourceType=="Task" and (.status=="requested" or .status=="accepted"))
             | .owner.reference // empty | select(startswith("Organization/")) | ltrimstr("Organization/")' \
    | sort -u >"$WORK/owners.txt"
  log "sampled $(wc -l <"$WORK/pnr.txt") personnummer of $n patients, $(wc -l <"$WORK/owners.txt") task-owning organizations"
  [[ -s "$WORK/pnr.txt" && -s "$WORK/owners.txt" ]] || { echo "sampling found no values" >&2; exit 1; }
}

# Draws one value from a source ("range:1:N" or a file).
draw() {
  if [[ "$1" == range:* ]]; then
    local hi="${1##*:}"; shuf -i "1-$hi" -n 1
  else
    shuf -n 1 "$1"
  fi
}

# Checks a search with curl on 20 random values: all 200, matches found; records the
# number of matches (Bundle.total, asked for with _total=accurate: without it a page that
# does not hold every match has none) and of included resources.
check_search() {
  local backend="$1" name="$2" tpl src i path code body totals="" incl=0 bad=0 example=""
  tpl=$(template "$name"); src=$(source_of "$name")
  for i in $(seq 20); do
    path="${tpl/\{\}/$(draw "$src")}"
    [[ -z "$example" ]] && example="$path"
    code=$(curl -s -o "$WORK/check.json" --max-time 10 -w '%{http_code}' -H 'Accept: application/fhir+json' "$BASE$path&_total=accurate")
    if [[ "$code" != 200 ]]; then
      bad=$((bad + 1))
      log "$backend $name: $code for $path: $(head -c 300 "$WORK/check.json")"
      continue
    fi
    body=$(jq -r '[(.total // "?"), ([.entry[]? | select(.search.mode=="match")] | length),
                   ([.entry[]? | select(.search.mode=="include")] | length)] | @tsv' "$WORK/check.json")
    totals="$totals $(echo "$body" | cut -f1)"
    incl=$((incl + $(echo "$body" | cut -f3)))
    [[ "$(echo "$body" | cut -f2)" != 0 ]] || log "$backend $name: no matches for $path"
  done
  local stats
  stats=$(echo "$totals" | tr ' ' '\n' | grep -v '^$' | sort -n \
    | awk '{v[NR]=$1} END{ if (NR==0) print "-"; else printf "%s / %s / %s", v[1], v[int((NR+1)/2)], v[NR] }')
  echo "| $backend | $name | \`${example//|/\\|}\` | $stats | $(echo "scale=1; $incl / 20" | bc -l) | $bad of 20 |" >>"$WORK/checks.md"
  ((bad == 0)) || { echo "$backend $name: $bad of 20 checks did not answer 200" >&2; exit 1; }
}

# Runs wrk for search $2 on backend $1; appends result rows.
run_search() {
  local backend="$1" name="$2" raw="$WORK/wrk-$1-$2.txt" tpl src
  tpl=$(template "$name"); src=$(source_of "$name")
  local secs="${DURATION%s}" warm="${WARMUP%s}"
  log "$backend $name: warm-up $WARMUP"
  timeout $((warm + 30)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" --timeout 5s -s "$LUA" "$BASE" -- "$tpl" "$src" \
    >"$WORK/warmup-$backend-$name.txt" 2>&1 || log "warm-up exited non-zero"
  log "$backend $name: measuring $DURATION"
  local srv0 db0 srv1 db1 all0 all1 t0 t1 pgp=""
  [[ "$backend" == postgres ]] && pgp="$(pg_pids | tr '\n' ' ')"
  srv0=$(cpu_ticks "$SERVER_PID"); db0=$(cpu_ticks $pgp); all0=$(machine_ticks)
  t0=$(date +%s.%N)
  timeout $((secs + 60)) /usr/bin/time -f 'PARAPLY wrk_cpu %U %S' \
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --timeout 5s --latency -s "$LUA" "$BASE" -- "$tpl" "$src" \
    >"$raw" 2>&1 &
  local wpid=$!
  ( sleep $((secs / 2)); top -b -n1 -w 200 | head -n 20 >"$WORK/top-$backend-$name.txt" ) &
  local tpid=$!
  wait "$wpid" || log "wrk exited non-zero (see below)"
  wait "$tpid" 2>/dev/null || true
  t1=$(date +%s.%N)
  srv1=$(cpu_ticks "$SERVER_PID"); db1=$(cpu_ticks $pgp); all1=$(machine_ticks)
  if [[ "$backend" == postgres ]]; then
    local p newp=""
    for p in $(pg_pids); do [[ " $pgp " == *" $p "* ]] || newp="$newp $p"; done
    [[ -n "$newp" ]] && db1=$((db1 + $(cpu_ticks $newp)))
  fi

  local rps p50 p99 non2xx sockerr first
  rps=$(awk '/^Requests\/sec:/{print $2}' "$raw")
  p50=$(awk '$1=="50%"{print $2}' "$raw")
  p99=$(awk '$1=="99%"{print $2}' "$raw")
  non2xx=$(awk '$1=="PARAPLY" && $2=="non2xx"{print $3}' "$raw")
  sockerr=$(awk '/Socket errors:/{gsub(",","");print $4+$6+$8+$10}' "$raw")
  first=$(grep '^PARAPLY first_non2xx' "$raw" | cut -c 23- | cut -c 1-200 || true)
  [[ -n "$rps" ]] || { cat "$raw" >&2; echo "could not parse wrk output" >&2; exit 1; }
  local errors="${non2xx:-?} non-2xx"
  [[ -n "$sockerr" && "$sockerr" != 0 ]] && errors="$errors, $sockerr socket"
  [[ -n "$first" ]] && errors="$errors (first: ${first//|/\\|})"

  local wall cpu_srv cpu_db cpu_wrk cpu_all cpu_other db_ticks=0
  wall=$(echo "$t1 - $t0" | bc -l)
  cpu_srv=$(echo "scale=0; 100 * ($srv1 - $srv0) / $CLK_TCK / $wall" | bc -l)
  cpu_wrk=$(awk -v w="$wall" '$1=="PARAPLY" && $2=="wrk_cpu"{printf "%.0f", 100*($3+$4)/w}' "$raw")
  if [[ "$backend" == postgres ]]; then
    db_ticks=$((db1 - db0))
    cpu_db="$(echo "scale=0; 100 * $db_ticks / $CLK_TCK / $wall" | bc -l)%"
  else
    cpu_db="(in process)"
  fi
  cpu_all=$(echo "scale=0; 100 * ($all1 - $all0) / $CLK_TCK / $wall" | bc -l)
  cpu_other=$(echo "scale=0; $cpu_all - $cpu_srv - ${cpu_wrk:-0} - 100 * $db_ticks / $CLK_TCK / $wall" | bc -l)

  echo "| $backend | $LOADED | $name | $(printf '%.0f' "$rps") | $p50 | $p99 | $errors |" >>"$WORK/results.md"
  echo "| $backend | $name | ${cpu_srv}% | $cpu_db | ${cpu_wrk}% (wrk) | ${cpu_all}% of $(( $(nproc) * 100 ))% (other ${cpu_other}%) |" >>"$WORK/cpu.md"
  log "$(tail -n1 "$WORK/results.md")"
  sed 's/^/    /' "$raw" >&2
}

run_backend() {
  local backend="$1" url
  case "$backend" in
    sqlite)
      mkdir -p "$WORK/sqlite"
      DB_FILE="${EXISTING_DB:-$WORK/sqlite/paraply.db}"
      url="sqlite://$DB_FILE"
      ;;
    postgres)
      command -v psql >/dev/null || { echo "psql is needed for the postgres run" >&2; exit 1; }
      PG_DB="paraply_bench_$(printf %04x%04x%04x $RANDOM $RANDOM $RANDOM)"
      psql "$PG_URL" -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$PG_DB\"" >/dev/null
      url="$(pg_bench_url)"
      log "created database $PG_DB"
      ;;
  esac
  start_server "$url" "$backend"
  if [[ -n "$EXISTING_DB" ]]; then
    LOADED="$PATIENTS"
    RESOURCES=$(db_query "$backend" 'SELECT count(*) FROM resource_version WHERE is_current')
    LOAD_ROW="| $backend | $LOADED (loaded earlier) | $RESOURCES | - | - | - |"
    log "$backend: searching $DB_FILE ($RESOURCES resources) without loading"
  else
    load_population "$backend"
  fi
  measure_size "$backend"
  sample_values
  local name
  for name in $SEARCHES; do check_search "$backend" "$name"; done
  for name in $SEARCHES; do run_search "$backend" "$name"; done
  stop_server
  [[ "$backend" == postgres ]] && drop_pg_db
  return 0
}

for backend in $BACKENDS; do
  run_backend "$backend"
done

echo
echo "Search benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)), $commit"
echo "synth --patients $PATIENTS --seed $SEED --concurrency $LOAD_CONCURRENCY --patients-per-bundle $PER_BUNDLE --reference-date $REFERENCE_DATE; PARAPLY_LOG=$PARAPLY_LOG"
echo
echo "| Backend | Patients | Resources | Load time | Resources/s | Concurrency | Size | Per patient | Per resource | Measured |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
cat "$WORK/load.md"
echo
[[ -s "$WORK/objects.txt" ]] && { cat "$WORK/objects.txt"; echo; }
echo "Checks (20 random values each; matches = Bundle.total, min / median / max):"
echo
echo "| Backend | Search | Example | Matches | Included per request | Not 200 |"
echo "|---|---|---|---:|---:|---:|"
cat "$WORK/checks.md"
echo
range_note=""
((PATIENT_RANGE > 0)) && range_note=" (patients drawn from 1..$PATIENT_RANGE only)"
echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency after a $WARMUP warm-up, a random existing value on every request$range_note:"
echo
echo "| Backend | Patients | Search | Requests/s | p50 | p99 | Errors |"
echo "|---|---:|---|---:|---:|---:|---|"
cat "$WORK/results.md"
echo
echo "CPU (100% = one core) during the load and during each measured search run:"
echo
echo "| Backend | Run | paraply | PostgreSQL | load generator | machine busy |"
echo "|---|---|---:|---:|---:|---|"
cat "$WORK/cpu.md"
