#!/usr/bin/env bash
# Start a throw-away PostgreSQL on a free loopback port; prints PGDATA, PGPORT and DATABASE_URL lines.
set -euo pipefail
PGPORT=${PGPORT:-$(python3 -c "import socket;s=socket.socket();s.bind(('127.0.0.1',0));print(s.getsockname()[1])")}
PGDB=${PGDB:-marketplace_test}
if ! command -v initdb >/dev/null 2>&1; then
  echo "PostgreSQL not found: installing it with apt-get" >&2
  (apt-get update -qq && apt-get install -y -qq postgresql >/dev/null) >&2
  PATH="$PATH:$(ls -d /usr/lib/postgresql/*/bin | tail -n 1)"
fi
PGBIN=$(dirname "$(readlink -f "$(command -v initdb)")")
PGDATA=${PGDATA:-$(mktemp -d /tmp/marketplace-pg.XXXXXX)}
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$PGDATA"; fi
chmod 700 "$PGDATA"
as_pg "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PGDATA/server.log" -w -t 60 -o "-c listen_addresses=127.0.0.1 \
  -p $PGPORT -k $PGDATA -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" start >/dev/null
"$PGBIN/createdb" -h 127.0.0.1 -p "$PGPORT" -U postgres "$PGDB"
echo "PGDATA=$PGDATA"
echo "PGPORT=$PGPORT"
echo "PGBIN=$PGBIN"
echo "TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:$PGPORT/$PGDB"
