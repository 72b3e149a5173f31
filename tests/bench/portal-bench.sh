#!/usr/bin/env bash
# Benchmark of the portal's start page "Min plan" (GET / with a session cookie) beside the
# unified plan it is made from (GET /fhir/Patient/demo-tolvan/$patientkontrakt with the same
# patient's bearer token), on `paraply demo` over a fresh SQLite file (the demo data only).
#
# Usage:
#   bash tests/bench/portal-bench.sh
#
# The start page is the plan (one engine call, one AuditEvent) plus the unread-message count
# (a `_summary=count` search, a second AuditEvent) and the HTML; the difference between the
# two rows is what the portal adds. Both run with logins, access rules and the access log on.
#
# Environment (all optional): BENCH_BIN (default target/release/paraply; a debug binary
# works and is much slower), BENCH_DURATION (20s), BENCH_WARMUP (3s), BENCH_CONNECTIONS (32),
# BENCH_THREADS (2), BENCH_KEEP=1 keeps the work directory. Needs wrk and curl (installs wrk
# with apt-get when missing). All traffic goes to 127.0.0.1.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN="${BENCH_BIN:-$ROOT/target/release/paraply}"
DURATION="${BENCH_DURATION:-20s}"
WARMUP="${BENCH_WARMUP:-3s}"
CONNECTIONS="${BENCH_CONNECTIONS:-32}"
THREADS="${BENCH_THREADS:-2}"
SERVER_PID=""
BASE=""
# shellcheck source=tests/bench/lib.sh
source "$ROOT/tests/bench/lib.sh"

[[ -x "$BIN" ]] || { echo "no binary at $BIN (cargo build --release -p paraply-server)" >&2; exit 1; }
command -v wrk >/dev/null || apt-get install -y -q wrk >/dev/null

WORK="$(mktemp -d)"
cleanup() {
  stop_server
  if [[ -n "${BENCH_KEEP:-}" ]]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

PORT="$(free_port)"
BASE="http://127.0.0.1:$PORT"
PARAPLY_LOG="${PARAPLY_LOG:-warn}" "$BIN" demo --listen "127.0.0.1:$PORT" \
  --database "sqlite://$WORK/paraply.db" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 600); do
  curl -fsS --max-time 2 -o /dev/null "$BASE/readyz" 2>/dev/null && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; exit 1; }
  sleep 0.1
done

# The portal login, as a browser does it (the demo login service knows login_hint).
curl -fsS --max-time 20 -L -c "$WORK/jar" -b "$WORK/jar" -o "$WORK/start.html" \
  "$BASE/auth/login?login_hint=tolvan&return_to=/"
grep -q 'Plan för Tolvan' "$WORK/start.html" || { echo "the start page did not show the plan" >&2; exit 1; }
SESSION="$(awk '$6 == "paraply_session" {print $7}' "$WORK/jar")"
TOKEN="$(demo_token citizen tolvan "openid patient/*.rs")"
echo "start page: $(wc -c <"$WORK/start.html") bytes of HTML"

run() { # name, then wrk arguments
  local name="$1" out="$WORK/wrk-$RANDOM.txt"; shift
  timeout 120 wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" "$@" >/dev/null
  local before after
  before="$(cpu_ticks "$SERVER_PID")"
  timeout 300 wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$@" >"$out"
  after="$(cpu_ticks "$SERVER_PID")"
  local rate p50 p99 errors
  rate="$(awk '/Requests\/sec/ {print $2}' "$out")"
  p50="$(awk '$1 == "50%" {print $2}' "$out")"
  p99="$(awk '$1 == "99%" {print $2}' "$out")"
  errors="$(awk '/Non-2xx/ {n += $NF} /Socket errors/ {n += 1} END {print n + 0}' "$out")"
  printf '| %s | %s | %s | %s | %s | %s |\n' "$name" "$rate" "$p50" "$p99" "$errors" \
    "$(( (after - before) / $(getconf CLK_TCK) ))"
}

echo "| request | requests/s | p50 | p99 | errors | server CPU s |"
echo "|---|---|---|---|---|---|"
run "portal start page GET /" -H "Cookie: paraply_session=$SESSION" "$BASE/"
run "unified plan GET \$patientkontrakt" -H "Authorization: Bearer $TOKEN" \
  "$BASE/fhir/Patient/demo-tolvan/\$patientkontrakt"
