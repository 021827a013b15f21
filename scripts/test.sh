#!/usr/bin/env bash
# The one test command (README, CI): installs what is missing, then runs the whole suite on SQLite
# and again on a throwaway PostgreSQL cluster that this script starts and stops.
# Extra arguments go to pytest (e.g. scripts/test.sh tests/smtp -x).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q -e ".[test,fast]" 2>&1 | grep -v -i "warning" || true

PG_DIR=$(mktemp -d /tmp/tidings-pg.XXXXXX)
PG_PORT=${TIDINGS_PG_PORT:-55432}
cleanup() { bash scripts/pg-cluster.sh stop "$PG_DIR"; rm -rf "$PG_DIR"; }
trap cleanup EXIT
PG_URL=$(bash scripts/pg-cluster.sh start "$PG_DIR" "$PG_PORT")

status=0
echo "=== test suite on SQLite ==="
.venv/bin/pytest -q -p no:cacheprovider "$@" || status=$?
echo "=== test suite on PostgreSQL ($PG_URL) ==="
TIDINGS_TEST_DATABASE="$PG_URL" .venv/bin/pytest -q -p no:cacheprovider -m "not sqlite_only" "$@" || status=$?
exit $status
