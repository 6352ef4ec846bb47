#!/usr/bin/env bash
# The whole suite: unit and integration tests on SQLite and on a throw-away PostgreSQL, then the
# browser journeys. Installs what the tests need first. Fails loudly if PostgreSQL cannot start.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

# pytest exits 5 when it collected no tests; for a suite folder that is empty, that is not a failure
run_pytest() { "$BIN/python" -m pytest "$@"; local rc=$?; [ $rc -eq 5 ] && rc=0; return $rc; }

if [ ! -x /usr/bin/chromium ]; then
  echo "== installing Debian's chromium for the browser tests"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || {
    echo "could not install chromium" >&2; exit 1; }
fi
if [ -f tests/oidc/package.json ]; then
  (cd tests/oidc && npm ci --no-audit --no-fund --loglevel=error) || { echo "npm ci for the OIDC provider failed" >&2; exit 1; }
fi

echo "== starting a throw-away PostgreSQL"
PG_ENV=$(bash scripts/pg-up.sh) || { echo "PostgreSQL did not start: the PostgreSQL suite cannot run" >&2; exit 1; }
eval "$(echo "$PG_ENV" | sed 's/^/export /')"
trap 'bash scripts/pg-down.sh' EXIT

echo "== starting a throw-away Redis"
REDIS_ENV=$(bash scripts/redis-up.sh) || { echo "Redis did not start: the Redis-backed tests cannot run" >&2; exit 1; }
eval "$(echo "$REDIS_ENV" | sed 's/^/export /')"
trap 'bash scripts/pg-down.sh; bash scripts/redis-down.sh' EXIT

status=0
# The two database suites run side by side (one per core), each with its own Redis database; the
# SQLite suite's output is printed when both are done.
echo "== unit and integration tests on SQLite and on PostgreSQL, side by side"
SQLITE_LOG=$(mktemp)
(TEST_DATABASE_URL= TEST_REDIS_URL="${TEST_REDIS_URL%/*}/1" run_pytest tests -q -p no:cacheprovider \
  >"$SQLITE_LOG" 2>&1) &
SQLITE_PID=$!
echo "== PostgreSQL"
run_pytest tests -q -p no:cacheprovider || status=1
wait $SQLITE_PID || { status=1; echo "SQLite suite failed" >&2; }
echo "== SQLite"
cat "$SQLITE_LOG"
rm -f "$SQLITE_LOG"

if [ -d e2e ] && ls e2e/test_*.py >/dev/null 2>&1; then
  echo "== browser journeys (Playwright, Chromium) on PostgreSQL"
  E2E_DATABASE_URL="${TEST_DATABASE_URL%/*}/e2e" run_pytest e2e -q || status=1
fi
exit $status
