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

# The independent OpenID provider the login tests use (oidc-provider, pinned), checked on
# its own: discovery, keys, browserless logins, token claims, key rotation.
npm ci --prefix tests/idp --no-audit --no-fund --loglevel=error
node tests/idp/selftest.mjs

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
