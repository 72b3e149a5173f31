#!/usr/bin/env bash
# schemathesis (PyPI, pinned) against openapi/paraply.yaml and the real binary: every
# documented operation gets the schema's examples, coverage values and fuzzed inputs; the run
# fails on any 5xx, any status code or content type the description does not list, and any
# body that does not match its schema.
#
# Usage: bash tests/schemathesis/run.sh [path/to/paraply]   (default target/debug/paraply)
# Environment: SCHEMATHESIS_EXAMPLES (per operation, default 25), SCHEMATHESIS_SEED (1).
#
# The server runs `paraply demo --auth none` on a fresh SQLite file: the demo data gives the
# operations something to find, and without logins every request reaches the engine (the
# login refusals have their own tests). One worker: with several, schemathesis 4.32.5 on
# Python 3.11 crashes now and then inside its own generator ("SystemError: AST constructor
# recursion depth mismatch", a CPython thread-safety bug), which would make the run flaky.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BIN="${1:-$ROOT/target/debug/paraply}"
VENV="$ROOT/target/schemathesis-venv"
VERSION=4.32.5

if [ ! -x "$VENV/bin/schemathesis" ] || ! "$VENV/bin/schemathesis" --version | grep -q "$VERSION"; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet "schemathesis==$VERSION"
fi

WORK="$(mktemp -d)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
PARAPLY_LOG=warn "$BIN" demo --auth none --listen "127.0.0.1:$PORT" \
  --database "sqlite://$WORK/paraply.db" >"$WORK/server.log" 2>&1 &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 300); do
  curl -fsS --max-time 2 -o /dev/null "http://127.0.0.1:$PORT/readyz" 2>/dev/null && break
  kill -0 "$SERVER" 2>/dev/null || { cat "$WORK/server.log" >&2; exit 1; }
  sleep 0.2
done

cd "$ROOT"
"$VENV/bin/schemathesis" run openapi/paraply.yaml \
  --url "http://127.0.0.1:$PORT" \
  --max-examples "${SCHEMATHESIS_EXAMPLES:-25}" --seed "${SCHEMATHESIS_SEED:-1}" --workers 1 \
  --phases examples,coverage,fuzzing \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --report-dir "$WORK/report" \
  --warnings off
