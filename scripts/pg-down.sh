#!/usr/bin/env bash
# Stop the throw-away PostgreSQL that pg-up.sh started and remove its data directory.
set -u
[ -n "${PGDATA:-}" ] && [ -d "$PGDATA" ] || exit 0
PGBIN=${PGBIN:-$(dirname "$(readlink -f "$(command -v pg_ctl)")")}
if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null 2>&1
else "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null 2>&1; fi
rm -rf "$PGDATA"
