#!/usr/bin/env bash
# The cost of durable commits: times N sequential Goal creates over one keep-alive HTTP
# connection against `paraply serve --auth none` on a fresh SQLite file, with
# `[storage] sqlite_synchronous = "full"` and then "normal", ROUNDS times alternating.
# CLIENTS (1) connections send at once, N creates in all: with 1 every commit waits for its
# own fsync; with more, the one SQLite writer still commits (and syncs) once per request.
# Usage: tests/bench/durability-bench.sh [path/to/paraply] (default target/debug/paraply).
# N (2000), ROUNDS (2) and WORK (a temporary folder; the database lives there, so put it on
# the disk you want to measure) come from the environment.
set -euo pipefail
BINARY=${1:-target/debug/paraply}
N=${N:-2000}
CLIENTS=${CLIENTS:-1}
ROUNDS=${ROUNDS:-2}
WORK=${WORK:-$(mktemp -d)}
PORT=${PORT:-18790}

run_one() {
  local mode=$1 dir="$WORK/$1-$2"
  mkdir -p "$dir"
  printf '[storage]\nsqlite_synchronous = "%s"\n' "$mode" >"$dir/paraply.toml"
  "$BINARY" serve --auth none --listen "127.0.0.1:$PORT" --database "sqlite://$dir/p.db" \
    --config "$dir/paraply.toml" >"$dir/out.log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
  python3 - "$PORT" "$N" "$mode" "$CLIENTS" <<'PY'
import http.client, json, sys, threading, time
port, n, mode, clients = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
def send(count):
    conn = http.client.HTTPConnection("127.0.0.1", port)
    for i in range(count):
        body = json.dumps({"resourceType": "Goal", "lifecycleStatus": "active",
                           "description": {"text": f"goal {i}"}, "subject": {"reference": "Patient/p"}})
        conn.request("POST", "/fhir/Goal", body, {"content-type": "application/fhir+json"})
        answer = conn.getresponse()
        answer.read()
        assert answer.status == 201, answer.status
threads = [threading.Thread(target=send, args=(n // clients,)) for _ in range(clients)]
start = time.perf_counter()
for t in threads: t.start()
for t in threads: t.join()
elapsed = time.perf_counter() - start
done = n // clients * clients
print(f"sqlite_synchronous={mode}, {clients} client(s): {done} creates in {elapsed:.2f} s = {1000 * elapsed / done:.2f} ms each, {done / elapsed:.0f}/s")
PY
  kill "$pid"
  wait "$pid" || true
}

echo "$(df -T "$WORK" | tail -1 | awk '{print $2}') at $WORK, $(nproc) cores, $("$BINARY" --version)"
for round in $(seq "$ROUNDS"); do
  run_one full "$round"
  run_one normal "$round"
done
