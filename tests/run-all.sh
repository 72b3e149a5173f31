#!/usr/bin/env bash
# Runs every Paraply check: formatting, clippy, and all tests (unit, storage conformance,
# end-to-end over HTTP, the real binary) on SQLite and, when PARAPLY_TEST_DATABASE_URL is
# set, on PostgreSQL. Installs what it needs on a fresh machine (the Python validator used
# to check Paraply's output independently).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${PARAPLY_TEST_DATABASE_URL:-}" ]; then
  echo "################################################################################"
  echo "## PostgreSQL SKIPPED: PARAPLY_TEST_DATABASE_URL is not set."
  echo "## Only SQLite is tested. Example: PARAPLY_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test"
  echo "################################################################################"
fi

# The independent FHIR R4 validator (../shared/tools/fhir-validate) needs fhir.resources.
validator=../shared/tools/fhir-validate/validate_r4.py
venv=target/fhir-validate-venv
if [ -f "$validator" ]; then
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import fhir.resources' 2>/dev/null; then
    python3 -m venv "$venv" && "$venv/bin/pip" install --quiet 'fhir.resources==6.4.0' 'pydantic<2' \
      || echo "!! could not install the FHIR validator; emitted JSON will not be validated independently"
  fi
  if "$venv/bin/python" -c 'import fhir.resources' 2>/dev/null; then
    export PARAPLY_FHIR_VALIDATOR_PYTHON="$PWD/$venv/bin/python"
  fi
else
  echo "!! $validator is absent: emitted JSON will not be validated independently"
fi

# Debian packages the tests use: poppler-utils (pdftotext reads the plan PDFs back) and
# chromium (the portal's browser tests). Installed when missing, as root or through sudo.
missing=()
command -v pdftotext >/dev/null || missing+=(poppler-utils)
[ -x "${PARAPLY_CHROMIUM:-/usr/bin/chromium}" ] || missing+=(chromium)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing ${missing[*]} from Debian's packages"
  sudo_if_needed=()
  [ "$(id -u)" -eq 0 ] || sudo_if_needed=(sudo)
  if ! DEBIAN_FRONTEND=noninteractive "${sudo_if_needed[@]}" apt-get install -y -q "${missing[@]}" >/dev/null; then
    "${sudo_if_needed[@]}" apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive "${sudo_if_needed[@]}" apt-get install -y -q "${missing[@]}" >/dev/null
  fi
fi

# The independent OpenID provider the login tests use (oidc-provider, pinned), checked on
# its own: discovery, keys, browserless logins, token claims, key rotation.
npm ci --prefix tests/idp --no-audit --no-fund --loglevel=error
node tests/idp/selftest.mjs

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked

# The portal in a real headless browser: keyboard use without JavaScript, axe-core's WCAG 2.1
# AA rules on every page in every language, 400 % zoom (playwright-core and axe-core, pinned).
npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
cargo build -p paraply-server --locked
node tests/browser/portal.mjs target/debug/paraply

# schemathesis (pinned) against openapi/paraply.yaml and the binary: no 5xx, and every
# status, content type and body as the description says.
bash tests/schemathesis/run.sh target/debug/paraply
