#!/usr/bin/env bash
# Benchmark of the unified plan, GET /fhir/Patient/{id}/$patientkontrakt (a FHIR document
# Bundle), on SQLite holding a synthetic population, with logins, access rules and the
# access log on, and without them as the baseline.
#
# Usage:
#   bash tests/bench/plan-bench.sh [PATIENTS]          (default 10000)
#
# What it does:
#   1. builds the release binary if needed (cargo build --release -p paraply-server) and
#      installs wrk with apt-get if it is missing;
#   2. loads PATIENTS synthetic patients into a SQLite file through the FHIR API, as
#      search-bench.sh does: `paraply serve --auth none`, then
#        target/release/paraply synth --patients N --seed S --base-url ... --concurrency C
#      (skipped when BENCH_SQLITE_DB names a file that already holds them, see below);
#   3. starts `paraply demo` on that file (it adds the demo data: Tolvan Tolvansson, Anna
#      Berg, ...) and gets two access tokens from its built-in demo login (code + PKCE):
#        patient: demo_token citizen tolvan "openid patient/*.rs"
#        staff:   demo_token staff anna "openid user/*.rs"
#      checks once per token that the plan answers 200 with a document Bundle (its size and
#      number of entries are printed), then, per token, a warm-up (BENCH_WARMUP, 3s) and
#        wrk -t2 -c32 -d20s --latency -s tests/bench/read.lua URL -- ids '/$patientkontrakt'
#      on /fhir/Patient/demo-tolvan/$patientkontrakt: token check, SMART scopes, the access
#      rules on every read and search the operation makes, one AuditEvent committed per call;
#   4. the same on the same file with `paraply serve --auth none` (no token, no rules, no
#      access log): the baseline;
#   5. prints a markdown table (requests/s, p50, p99, errors = non-2xx + socket errors), the
#      CPU used by the server, wrk and the whole machine during each measured run, and the
#      number of AuditEvents written.
#
# Environment (all optional): BENCH_DURATION (20s), BENCH_WARMUP (3s), BENCH_CONNECTIONS
# (32), BENCH_THREADS (2), BENCH_SEED (1), BENCH_LOAD_CONCURRENCY (4),
# BENCH_PATIENTS_PER_BUNDLE (40), BENCH_REFERENCE_DATE (synth's default,
# 2026-12-01T00:00:00+01:00), BENCH_BIN (default target/release/paraply), PARAPLY_LOG (info:
# one log line per request, as in production), BENCH_SKIP_BUILD=1 uses an existing binary
# as it is, BENCH_KEEP=1 keeps the work directory (server logs, raw wrk output, the plan
# documents fetched by the checks).
#
# Keeping the database (loading 100,000 patients takes ~10 minutes):
#   BENCH_SQLITE_DB=<file>   the SQLite file to use and keep. If it exists it is used as it
#                            is (it must hold PATIENTS synthetic patients: Patient/p-PATIENTS
#                            is checked); if not, the population is loaded into it. Every run
#                            adds its AuditEvents to it.
#
# All traffic goes to 127.0.0.1; every wait is bounded and every wrk run has a fixed
# duration and an outer timeout; the server and synth are stopped on exit.
set -euo pipefail

PATIENTS="${1:-10000}"
[[ "$PATIENTS" =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [PATIENTS]" >&2; exit 2; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LUA="$ROOT/tests/bench/read.lua"
BIN="${BENCH_BIN:-$ROOT/target/release/paraply}"
DURATION="${BENCH_DURATION:-20s}"
WARMUP="${BENCH_WARMUP:-3s}"
CONNECTIONS="${BENCH_CONNECTIONS:-32}"
THREADS="${BENCH_THREADS:-2}"
SEED="${BENCH_SEED:-1}"
LOAD_CONCURRENCY="${BENCH_LOAD_CONCURRENCY:-4}"
PER_BUNDLE="${BENCH_PATIENTS_PER_BUNDLE:-40}"
REFERENCE_DATE="${BENCH_REFERENCE_DATE:-2026-12-01T00:00:00+01:00}"
export PARAPLY_LOG="${PARAPLY_LOG:-info}"
CLK_TCK="$(getconf CLK_TCK)"
PATIENT_ID="demo-tolvan"
PLAN_PATH="/fhir/Patient/$PATIENT_ID/\$patientkontrakt"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/paraply-plan-bench.XXXXXX")"
DB_FILE="${BENCH_SQLITE_DB:-$WORK/paraply.db}"
SERVER_PID=""
SYNTH_PID=""
BASE=""

log() { echo "[plan-bench $(date -u +%H:%M:%S)] $*" >&2; }
# stop_server, cpu_ticks, machine_ticks, free_port, demo_token
source "$ROOT/tests/bench/lib.sh"

cleanup() {
  if [[ -n "$SYNTH_PID" ]] && kill -0 "$SYNTH_PID" 2>/dev/null; then
    kill "$SYNTH_PID" 2>/dev/null || true
    wait "$SYNTH_PID" 2>/dev/null || true
  fi
  stop_server
  if [[ "${BENCH_KEEP:-0}" == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
  [[ -n "${BENCH_SQLITE_DB:-}" && -f "$DB_FILE" ]] && log "database kept: $DB_FILE"
  return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- prerequisites ------------------------------------------------------------------------
if ! command -v wrk >/dev/null; then
  log "installing wrk"
  apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi
for tool in curl jq bc openssl sqlite3; do
  command -v "$tool" >/dev/null || { echo "$tool is needed" >&2; exit 1; }
done
if [[ "${BENCH_SKIP_BUILD:-0}" == 1 && -x "$BIN" ]]; then
  log "using the existing $BIN (BENCH_SKIP_BUILD=1)"
else
  log "building the release binary (no-op when up to date)"
  (cd "$ROOT" && cargo build --release -p paraply-server)
fi
[[ -x "$BIN" ]] || { echo "no $BIN" >&2; exit 1; }
commit="$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')"
[[ -n "$(cd "$ROOT" && git status --porcelain --untracked-files=no 2>/dev/null | head -n1)" ]] \
  && commit="$commit + uncommitted changes"

# --- helpers ------------------------------------------------------------------------------

# A run's name as a file name part: "staff token (Anna)" -> "staff-token--Anna-".
slug() { tr -c 'A-Za-z0-9\n' '-' <<<"$1"; }

# Starts `paraply $@` on the database on a free port; $1 names the log. Sets SERVER_PID, BASE.
start_server() {
  local name="$1" logf="$WORK/server-$1.log" port attempt
  shift
  for attempt in 1 2 3; do
    port=$(free_port)
    "$BIN" "$@" --listen "127.0.0.1:$port" --database "sqlite://$DB_FILE" >>"$logf" 2>&1 &
    SERVER_PID=$!
    BASE="http://127.0.0.1:$port"
    # Up to 120 s: `paraply demo` loads the demo data first.
    for _ in $(seq 1200); do
      if curl -fsS --max-time 2 "$BASE/readyz" >/dev/null 2>&1; then
        log "$name: server pid $SERVER_PID ready at $BASE (PARAPLY_LOG=$PARAPLY_LOG)"
        return 0
      fi
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    stop_server
    log "$name: server did not start on port $port (attempt $attempt)"
  done
  cat "$logf" >&2; echo "server did not start" >&2; exit 1
}

http_code() { curl -s -o /dev/null --max-time 10 -w '%{http_code}' "$BASE/fhir/$1"; }

audit_events() {
  sqlite3 "$DB_FILE" "SELECT count(*) FROM resource_version WHERE resource_type = 'AuditEvent'" 2>/dev/null || echo "?"
}

# Loads the synthetic population into the database unless it is there already.
load_population() {
  if [[ -f "$DB_FILE" ]]; then
    start_server load serve --auth none
    if [[ "$(http_code "Patient/p-$PATIENTS")" == 200 ]]; then
      log "using $DB_FILE as it is: Patient/p-$PATIENTS exists"
      LOAD_NOTE="loaded earlier into $DB_FILE"
      stop_server
      return 0
    fi
    echo "$DB_FILE exists but holds no Patient/p-$PATIENTS; give PATIENTS it was loaded with" >&2
    exit 1
  fi
  start_server load serve --auth none
  log "loading $PATIENTS patients (seed $SEED, concurrency $LOAD_CONCURRENCY, $PER_BUNDLE per bundle)"
  local out="$WORK/synth.txt" rc=0 line
  "$BIN" synth --patients "$PATIENTS" --seed "$SEED" --base-url "$BASE/fhir" \
    --concurrency "$LOAD_CONCURRENCY" --patients-per-bundle "$PER_BUNDLE" \
    --reference-date "$REFERENCE_DATE" >"$out" 2>"$WORK/synth.err" &
  SYNTH_PID=$!
  wait "$SYNTH_PID" || rc=$?
  SYNTH_PID=""
  line=$(grep '^loaded ' "$out" || true)
  if [[ $rc != 0 || -z "$line" ]]; then
    cat "$out" "$WORK/synth.err" >&2; echo "synth failed (exit $rc)" >&2; exit 1
  fi
  log "$line"
  LOAD_NOTE="$line"
  stop_server
}

# Fetches the plan once with token $2 (may be empty) for run $1: must be 200 and a document
# Bundle; records its size and entries for the report.
check_plan() {
  local name="$1" token="$2" doc code auth=()
  doc="$WORK/plan-$(slug "$1").json"
  [[ -n "$token" ]] && auth=(-H "Authorization: Bearer $token")
  code=$(curl -s -o "$doc" --max-time 30 -w '%{http_code}' -H 'Accept: application/fhir+json' \
    "${auth[@]}" "$BASE$PLAN_PATH")
  if [[ "$code" != 200 ]] || ! jq -e '.resourceType == "Bundle" and .type == "document"' "$doc" >/dev/null; then
    echo "$name: $PLAN_PATH answered $code: $(head -c 500 "$doc")" >&2; exit 1
  fi
  local entries sections
  entries=$(jq '.entry | length' "$doc")
  sections=$(jq '[.entry[0].resource.section[]?] | length' "$doc")
  echo "| $name | $(stat -c %s "$doc") B | $entries | $sections |" >>"$WORK/documents.md"
  log "$name: document Bundle, $(stat -c %s "$doc") bytes, $entries entries, $sections sections"
}

# Runs wrk on the plan for run $1 with token $2 (may be empty); appends result rows.
run_plan() {
  local name="$1" raw ids="$WORK/ids.txt"
  raw="$WORK/wrk-$(slug "$1").txt"
  local secs="${DURATION%s}" warm="${WARMUP%s}"
  echo "$PATIENT_ID" >"$ids"
  export BENCH_TOKEN="$2"
  log "$name: warm-up $WARMUP"
  timeout $((warm + 30)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" --timeout 5s -s "$LUA" "$BASE" \
    -- "$ids" "/\$patientkontrakt" >"$WORK/warmup-$(slug "$name").txt" 2>&1 || log "warm-up exited non-zero"
  log "$name: measuring $DURATION"
  local srv0 all0 srv1 all1 t0 t1
  srv0=$(cpu_ticks "$SERVER_PID"); all0=$(machine_ticks)
  t0=$(date +%s.%N)
  timeout $((secs + 60)) /usr/bin/time -f 'PARAPLY wrk_cpu %U %S' \
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --timeout 5s --latency -s "$LUA" "$BASE" \
    -- "$ids" "/\$patientkontrakt" >"$raw" 2>&1 || log "wrk exited non-zero (see below)"
  t1=$(date +%s.%N)
  srv1=$(cpu_ticks "$SERVER_PID"); all1=$(machine_ticks)
  unset BENCH_TOKEN

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

  local wall cpu_srv cpu_wrk cpu_all cpu_other
  wall=$(echo "$t1 - $t0" | bc -l)
  cpu_srv=$(echo "scale=0; 100 * ($srv1 - $srv0) / $CLK_TCK / $wall" | bc -l)
  cpu_wrk=$(awk -v w="$wall" '$1=="PARAPLY" && $2=="wrk_cpu"{printf "%.0f", 100*($3+$4)/w}' "$raw")
  cpu_all=$(echo "scale=0; 100 * ($all1 - $all0) / $CLK_TCK / $wall" | bc -l)
  cpu_other=$(echo "scale=0; $cpu_all - $cpu_srv - ${cpu_wrk:-0}" | bc -l)

  echo "| $PATIENTS | $name | $(printf '%.0f' "$rps") | $p50 | $p99 | $errors |" >>"$WORK/results.md"
  echo "| $PATIENTS | $name | ${cpu_srv}% | ${cpu_wrk:-?}% | ${cpu_other}% | ${cpu_all}% of $(( $(nproc) * 100 ))% |" >>"$WORK/cpu.md"
  log "$(tail -n1 "$WORK/results.md")"
  sed 's/^/    /' "$raw" >&2
}

# --- the runs -----------------------------------------------------------------------------
LOAD_NOTE=""
load_population
resources=$(sqlite3 "$DB_FILE" "SELECT count(*) FROM resource_version WHERE is_current" 2>/dev/null || echo "?")

start_server demo demo
grep -o 'demo data loaded.*' "$WORK/server-demo.log" | head -n1 | sed 's/^/[plan-bench] /' >&2 || true
events0=$(audit_events)
patient_token=$(demo_token citizen tolvan "openid patient/*.rs")
staff_token=$(demo_token staff anna "openid user/*.rs")
[[ -n "$patient_token" && -n "$staff_token" ]] || { echo "no access token from the demo login" >&2; exit 1; }
check_plan "patient token (Tolvan)" "$patient_token"
check_plan "staff token (Anna)" "$staff_token"
run_plan "patient token (Tolvan) + rules + access log" "$patient_token"
run_plan "staff token (Anna) + rules + access log" "$staff_token"
stop_server
events1=$(audit_events)

start_server baseline serve --auth none
check_plan "--auth none" ""
run_plan "\`--auth none\` (baseline)" ""
stop_server

size=$(($(stat -c %s "$DB_FILE") + $( [[ -e "$DB_FILE-wal" ]] && stat -c %s "$DB_FILE-wal" || echo 0)))

echo
echo "Unified plan benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)), $commit"
echo "SQLite, $PATIENTS synthetic patients ($LOAD_NOTE); $resources current resources, file + WAL $((size / 1048576)) MiB; PARAPLY_LOG=$PARAPLY_LOG"
echo "GET $PLAN_PATH, wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency after a $WARMUP warm-up"
echo
echo "The document each run gets (checked once before the run):"
echo
echo "| Run | Bytes | Entries | Sections |"
echo "|---|---:|---:|---:|"
cat "$WORK/documents.md"
echo
echo "| Patients | Run | Requests/s | p50 | p99 | Errors |"
echo "|---:|---|---:|---:|---:|---|"
cat "$WORK/results.md"
echo
echo "AuditEvents written during the two authenticated runs (warm-ups and checks included): $((events1 - events0))"
echo
echo "CPU during the measured run (100% = one core):"
echo
echo "| Patients | Run | paraply | wrk | other processes | machine busy |"
echo "|---:|---|---:|---:|---:|---|"
cat "$WORK/cpu.md"
