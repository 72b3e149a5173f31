#!/usr/bin/env bash
# HTTP benchmark for Paraply: create, read and update throughput and latency, measured
# from outside with wrk (an HTTP load generator), on SQLite and/or PostgreSQL.
#
# Usage:
#   bash tests/bench/http-bench.sh [sqlite|postgres|all]      (default: all)
#   bash tests/bench/http-bench.sh auth                        (the cost of logins + access log)
#
# `auth` measures reads of one patient on SQLite three ways: `paraply demo` with a staff token
# (care relationship checked, AuditEvent committed per read) and with the patient's own token,
# both from the built-in demo login service (code + PKCE), then `paraply serve --auth none` on
# the same database (no token, no rules, no log) as the baseline.
#
# What it does, per backend:
#   1. builds the release binary if needed (cargo build --release -p paraply-server) and
#      installs wrk with apt-get if it is missing;
#   2. starts target/release/paraply serve on a fresh database, listening on
#      127.0.0.1 with a free port (--listen 127.0.0.1:0; the address is read from the log),
#      and waits for /readyz;
#        - sqlite:   a fresh temporary file;
#        - postgres: a fresh database paraply_bench_<random>, created with psql on the
#                    server of PARAPLY_BENCH_DATABASE_URL (default
#                    postgres://postgres@127.0.0.1:5432/test) and dropped afterwards;
#   3. creates BENCH_IDS (1000) patients with curl and records their ids;
#   4. for each operation, a warm-up (BENCH_WARMUP, 3s) and then the measured run:
#        wrk -t2 -c32 -d20s --latency
#        create: POST /fhir/Patient, a ~1 KB Swedish Patient, a new personnummer each time
#        read:   GET  /fhir/Patient/{id} over the recorded ids
#        update: PUT  /fhir/Patient/{id} (same id in the body, no If-Match) over those ids
#   5. prints one markdown table row per (backend, operation): requests/s, p50, p99 and
#      errors (non-2xx responses counted by the Lua scripts + wrk socket errors), and a
#      second table with the CPU used by the server, the database and wrk during the run.
#
# Environment (all optional): BENCH_DURATION (20s), BENCH_WARMUP (3s), BENCH_CONNECTIONS
# (32), BENCH_THREADS (2), BENCH_IDS (1000), PARAPLY_LOG (server log filter, default info:
# one log line per request, as in production), PARAPLY_BENCH_DATABASE_URL,
# BENCH_SKIP_BUILD=1 uses an existing target/release/paraply as it is (PARAPLY_BENCH_BIN names
# another binary, e.g. a debug build or another branch's, to compare two builds),
# BENCH_KEEP=1 keeps the work directory (server logs, raw wrk output).
#
# All traffic goes to 127.0.0.1; every wrk run has a fixed duration and an outer timeout;
# the server (and the PostgreSQL bench database) are removed on exit.
set -euo pipefail

BACKENDS="${1:-all}"
case "$BACKENDS" in
  sqlite|postgres|auth) ;;
  all) BACKENDS="sqlite postgres" ;;
  *) echo "usage: $0 [sqlite|postgres|all|auth]" >&2; exit 2 ;;
esac

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LUA_DIR="$ROOT/tests/bench"
BIN="${PARAPLY_BENCH_BIN:-$ROOT/target/release/paraply}"
DURATION="${BENCH_DURATION:-20s}"
WARMUP="${BENCH_WARMUP:-3s}"
CONNECTIONS="${BENCH_CONNECTIONS:-32}"
THREADS="${BENCH_THREADS:-2}"
NIDS="${BENCH_IDS:-1000}"
PG_URL="${PARAPLY_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
export PARAPLY_LOG="${PARAPLY_LOG:-info}"
CLK_TCK="$(getconf CLK_TCK)"

WORK="$(mktemp -d /tmp/paraply-bench.XXXXXX)"
SERVER_PID=""
PG_DB=""

log() { echo "[bench] $*" >&2; }
# stop_server, cpu_ticks, machine_ticks, demo_token
source "$ROOT/tests/bench/lib.sh"

drop_pg_db() {
  if [[ -n "$PG_DB" ]]; then
    psql "$PG_URL" -q -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS \"$PG_DB\" WITH (FORCE)" >/dev/null 2>&1 \
      || log "could not drop database $PG_DB"
    PG_DB=""
  fi
}

cleanup() {
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
if [[ "${BENCH_SKIP_BUILD:-0}" == 1 && -x "$BIN" ]]; then
  log "using the existing $BIN (BENCH_SKIP_BUILD=1)"
else
  log "building the release binary (no-op when up to date)"
  (cd "$ROOT" && cargo build --release -p paraply-server)
fi
[[ -x "$BIN" ]] || { echo "no $BIN" >&2; exit 1; }

# --- helpers ------------------------------------------------------------------------------

# PostgreSQL processes working for the bench: the backends connected to the bench
# database and the server's own background processes (WAL writer, checkpointer, ...);
# backends of other databases (other people's tests) are left out.
pg_pids() {
  psql "$PG_URL" -Atq -c "SELECT pid FROM pg_stat_activity
    WHERE datname = '$PG_DB' OR backend_type <> 'client backend'" 2>/dev/null || true
}

# Starts the server on $1 (database URL), sets SERVER_PID and BASE. $2 names the log; the
# subcommand and its flags follow (default: serve --auth none).
start_server() {
  local url="$1" logf="$WORK/server-$2.log" addr=""
  shift 2
  [[ $# -gt 0 ]] || set -- serve --auth none
  "$BIN" "$@" --listen 127.0.0.1:0 --database "$url" >"$logf" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 300); do
    addr=$(grep -o 'http://127\.0\.0\.1:[0-9]*/fhir' "$logf" | head -n1 || true)
    [[ -n "$addr" ]] && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$logf" >&2; echo "server died" >&2; exit 1; }
    sleep 0.1
  done
  [[ -n "$addr" ]] || { cat "$logf" >&2; echo "server did not start" >&2; exit 1; }
  BASE="${addr%/fhir}"
  for _ in $(seq 100); do
    if curl -fsS --max-time 2 "$BASE/readyz" >/dev/null 2>&1; then
      log "server pid $SERVER_PID ready at $BASE"
      return 0
    fi
    sleep 0.1
  done
  echo "server at $BASE never became ready" >&2; exit 1
}

# Creates $NIDS patients with curl and writes their ids to $1.
seed_ids() {
  local out="$1" i pnr body loc
  : >"$out"
  for i in $(seq 1 "$NIDS"); do
    pnr=$(printf '19%02d%02d%02d%04d' $((40 + i % 60)) $((1 + i % 12)) $((1 + i % 28)) "$i")
    body='{"resourceType":"Patient","identifier":[{"use":"official","system":"http://electronichealth.se/identifier/personnummer","value":"'$pnr'"}],"active":true,"name":[{"use":"official","family":"Lindqvist","given":["Sara","Maja"]}],"telecom":[{"system":"phone","value":"+46 70 123 45 67","use":"mobile"}],"gender":"female","birthDate":"1980-05-17","address":[{"use":"home","line":["Drottninggatan 12"],"city":"Stockholm","postalCode":"111 51","country":"SE"}]}'
    loc=$(curl -fsS --max-time 10 -o /dev/null -D - -X POST "$BASE/fhir/Patient" \
            -H 'Content-Type: application/fhir+json' --data-binary "$body" \
          | tr -d '\r' | awk 'tolower($1)=="location:"{print $2}')
    # Location: <base>/Patient/<id>/_history/1
    loc="${loc%/_history/*}"
    [[ -n "$loc" ]] || { echo "seeding: no Location header for patient $i" >&2; exit 1; }
    echo "${loc##*/}" >>"$out"
  done
  log "seeded $(wc -l <"$out") patients"
}

# Runs wrk for operation $2 on backend $1; appends result rows.
run_op() {
  local backend="$1" op="$2" ids="$3" raw="$WORK/wrk-$1-$2.txt"
  local script="$LUA_DIR/$op.lua" url="$BASE"
  local secs="${DURATION%s}" warm="${WARMUP%s}"
  log "$backend $op: warm-up $WARMUP"
  timeout $((warm + 30)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" --timeout 5s -s "$script" "$url" -- "$ids" \
    >"$WORK/warmup-$backend-$op.txt" 2>&1 || log "warm-up exited non-zero"
  log "$backend $op: measuring $DURATION"
  local srv0 db0 srv1 db1 all0 all1 t0 t1 pgp=""
  [[ "$backend" == postgres ]] && pgp="$(pg_pids | tr "\n" " ")"
  srv0=$(cpu_ticks "$SERVER_PID"); db0=$(cpu_ticks $pgp); all0=$(machine_ticks)
  t0=$(date +%s.%N)
  # /usr/bin/time reports wrk's own CPU (user and system seconds) into the raw output.
  timeout $((secs + 60)) /usr/bin/time -f 'PARAPLY wrk_cpu %U %S' \
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --timeout 5s --latency -s "$script" "$url" -- "$ids" \
    >"$raw" 2>&1 &
  local wpid=$!
  # A top snapshot in the middle of the run (kept in the work directory).
  ( sleep $((secs / 2)); top -b -n1 -w 200 | head -n 20 >"$WORK/top-$backend-$op.txt" ) &
  local tpid=$!
  wait "$wpid" || log "wrk exited non-zero (see below)"
  wait "$tpid" 2>/dev/null || true
  t1=$(date +%s.%N)
  srv1=$(cpu_ticks "$SERVER_PID"); db1=$(cpu_ticks $pgp); all1=$(machine_ticks)
  if [[ "$backend" == postgres ]]; then
    # Backends opened during the run were not in the first sample; count them whole.
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

  echo "| $backend | $op | $(printf '%.0f' "$rps") | $p50 | $p99 | $errors |" >>"$WORK/results.md"
  echo "| $backend | $op | ${cpu_srv}% | $cpu_db | ${cpu_wrk}% | ${cpu_other}% | ${cpu_all}% of $(( $(nproc) * 100 ))% |" >>"$WORK/cpu.md"
  log "$(tail -n1 "$WORK/results.md")"
  sed 's/^/    /' "$raw" >&2
}

run_backend() {
  local backend="$1" url
  case "$backend" in
    sqlite)
      url="sqlite://$WORK/sqlite/paraply.db"
      mkdir -p "$WORK/sqlite"
      ;;
    postgres)
      command -v psql >/dev/null || { echo "psql is needed for the postgres run" >&2; exit 1; }
      PG_DB="paraply_bench_$(printf %04x%04x%04x $RANDOM $RANDOM $RANDOM)"
      psql "$PG_URL" -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$PG_DB\"" >/dev/null
      # Same server and credentials, the fresh database instead of the path's one.
      local base="${PG_URL%%\?*}" query=""
      [[ "$PG_URL" == *\?* ]] && query="?${PG_URL#*\?}"
      url="${base%/*}/$PG_DB$query"
      log "created database $PG_DB"
      ;;
  esac
  start_server "$url" "$backend"
  seed_ids "$WORK/ids-$backend.txt"
  for op in create read update; do
    run_op "$backend" "$op" "$WORK/ids-$backend.txt"
  done
  stop_server
  [[ "$backend" == postgres ]] && drop_pg_db
  return 0
}

run_auth() {
  local url="sqlite://$WORK/auth/paraply.db" ids="$WORK/ids-auth.txt"
  mkdir -p "$WORK/auth"
  echo demo-tolvan >"$ids"
  start_server "$url" auth-demo demo
  BENCH_TOKEN=$(demo_token staff anna "openid user/*.rs") run_op "sqlite, staff token + access log" read "$ids"
  BENCH_TOKEN=$(demo_token citizen tolvan "openid patient/*.rs") run_op "sqlite, patient token + access log" read "$ids"
  stop_server
  local events
  events=$(sqlite3 "$WORK/auth/paraply.db" "SELECT count(*) FROM access_log" 2>/dev/null || echo "?")
  log "access-log entries written: $events"
  start_server "$url" auth-none
  run_op "sqlite, --auth none" read "$ids"
  stop_server
}

if [[ "$BACKENDS" == auth ]]; then
  run_auth
else
  for backend in $BACKENDS; do
    run_backend "$backend"
  done
fi

echo
echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency (after a $WARMUP warm-up), $(nproc) cores, $(date -u +%Y-%m-%d)"
echo
echo "| Backend | Operation | Requests/s | p50 | p99 | Errors |"
echo "|---|---|---:|---:|---:|---|"
cat "$WORK/results.md"
echo
echo "CPU during the measured run (100% = one core):"
echo
echo "| Backend | Operation | paraply | PostgreSQL | wrk | other processes | machine busy |"
echo "|---|---|---:|---:|---:|---:|---:|"
cat "$WORK/cpu.md"
