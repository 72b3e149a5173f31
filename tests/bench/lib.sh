# shellcheck shell=bash
# Shared shell helpers for the Paraply benchmarks (sourced by http-bench.sh, search-bench.sh
# and plan-bench.sh; not a script of its own).
#
# Expects from the sourcing script: SERVER_PID (the server's pid or empty) and BASE (the
# server's http://127.0.0.1:PORT once started). Every loop here is bounded and every curl
# has a timeout; all traffic goes to 127.0.0.1.

# Stops the server started by the benchmark (SERVER_PID): TERM, up to 10 s, then KILL.
stop_server() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=""
}

# CPU ticks (user+system) used so far by the given pids (missing pids count 0).
cpu_ticks() {
  local total=0 pid fields
  for pid in "$@"; do
    if fields=$(cut -d' ' -f14,15 "/proc/$pid/stat" 2>/dev/null); then
      total=$((total + ${fields% *} + ${fields#* }))
    fi
  done
  echo "$total"
}

# Busy CPU ticks of the whole machine (all cores) so far.
machine_ticks() { awk '$1=="cpu"{print $2+$3+$4+$7+$8+$9; exit}' /proc/stat; }

# A TCP port on 127.0.0.1 nobody listens on (with PARAPLY_LOG=warn the server's log is
# quiet, so --listen 127.0.0.1:0 would leave the port unknown).
free_port() {
  if command -v python3 >/dev/null; then
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
  else
    local p
    for _ in $(seq 100); do
      p=$((20000 + RANDOM % 40000))
      (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
    done
    echo "no free port found" >&2; return 1
  fi
}

# An access token from the demo login service of `paraply demo` at $BASE (code + PKCE):
# realm $1 (citizen|staff), person $2 (login_hint), scope $3.
demo_token() {
  local issuer="$BASE/demo-idp/$1" verifier challenge location code
  verifier="bench-$(printf %08x%08x%08x%08x $RANDOM$RANDOM $RANDOM$RANDOM $RANDOM$RANDOM $RANDOM$RANDOM)-verifier"
  challenge=$(printf %s "$verifier" | openssl dgst -binary -sha256 | openssl base64 -A | tr '+/' '-_' | tr -d '=')
  location=$(curl -fsS --max-time 10 -o /dev/null -w '%{redirect_url}' -G "$issuer/authorize" \
    --data-urlencode response_type=code --data-urlencode client_id=bench \
    --data-urlencode redirect_uri=http://127.0.0.1/bench/callback --data-urlencode "scope=$3" \
    --data-urlencode state=s --data-urlencode "code_challenge=$challenge" \
    --data-urlencode code_challenge_method=S256 --data-urlencode "login_hint=$2")
  code=$(sed -n 's/.*[?&]code=\([^&]*\).*/\1/p' <<<"$location")
  [[ -n "$code" ]] || { echo "demo login of $2 failed: $location" >&2; exit 1; }
  curl -fsS --max-time 10 -X POST "$issuer/token" --data-urlencode grant_type=authorization_code \
    --data-urlencode "code=$code" --data-urlencode redirect_uri=http://127.0.0.1/bench/callback \
    --data-urlencode client_id=bench --data-urlencode "code_verifier=$verifier" \
    | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p'
}
