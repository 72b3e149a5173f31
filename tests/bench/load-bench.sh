#!/usr/bin/env bash
# Load rate the way clinical systems write: one patient per transaction Bundle (12–30
# resources), from several connections at once, through the FHIR API into a fresh SQLite
# file. Per durability setting (SYNC) and per number of connections (CONNECTIONS): start
# `paraply serve --auth none` (PARAPLY_LOG=warn), load PATIENTS synthetic patients with
# `paraply synth --patients-per-bundle 1 --concurrency C`, and print synth's rate line with
# the CPU the server and synth used and the group commits the writer made.
#
# Usage: tests/bench/load-bench.sh [PATIENTS (10000)]
# BIN (target/release/paraply; build it first: `cargo build --release -p paraply-server`),
# CONNECTIONS ("1 4 8"), SYNC ("full normal"), WORK (a temporary folder; the databases
# live there) come from the environment.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=tests/bench/lib.sh
source tests/bench/lib.sh

PATIENTS=${1:-10000}
BIN=${BIN:-target/release/paraply}
CONNECTIONS=${CONNECTIONS:-1 4 8}
SYNC=${SYNC:-full normal}
WORK=${WORK:-$(mktemp -d)}
SERVER_PID=""
trap stop_server EXIT

[[ -x "$BIN" ]] || { echo "no $BIN: cargo build --release -p paraply-server" >&2; exit 1; }
echo "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $PATIENTS patients, $("$BIN" --version)"

for sync in $SYNC; do
  for connections in $CONNECTIONS; do
    dir="$WORK/$sync-$connections"
    mkdir -p "$dir"
    printf '[storage]\nsqlite_synchronous = "%s"\n' "$sync" >"$dir/paraply.toml"
    port=$(free_port)
    BASE="http://127.0.0.1:$port"
    PARAPLY_LOG=warn,paraply_store_sql::group=debug "$BIN" serve --auth none \
      --listen "127.0.0.1:$port" --database "sqlite://$dir/p.db" --config "$dir/paraply.toml" \
      >"$dir/server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 200); do curl -fs --max-time 1 "$BASE/readyz" >/dev/null && break; sleep 0.1; done
    before=$(cpu_ticks "$SERVER_PID")
    /usr/bin/time -f '%U %S' -o "$dir/synth-cpu.txt" "$BIN" synth --patients "$PATIENTS" --seed 1 \
      --base-url "$BASE/fhir" --concurrency "$connections" --patients-per-bundle 1 \
      >"$dir/synth.txt" 2>/dev/null
    server_ticks=$(($(cpu_ticks "$SERVER_PID") - before))
    stop_server
    seconds=$(sed -n 's/.*, \([0-9.]*\) s, .*/\1/p' "$dir/synth.txt")
    read -r user system <"$dir/synth-cpu.txt"
    groups=$(grep -c "group commit" "$dir/server.log" || true)
    transactions=$(sed -n 's/.*transactions=\([0-9]*\).*/\1/p' "$dir/server.log" | paste -sd+ | bc)
    printf 'sync=%-6s connections=%s: %s | server CPU %s %% | synth CPU %s %% | %s commits for %s transactions\n' \
      "$sync" "$connections" "$(tail -n1 "$dir/synth.txt")" \
      "$(echo "scale=0; $server_ticks * 100 / $(getconf CLK_TCK) / $seconds" | bc)" \
      "$(echo "scale=0; ($user + $system) * 100 / $seconds" | bc)" "$groups" "${transactions:-0}"
  done
done
