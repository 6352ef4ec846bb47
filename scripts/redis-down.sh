#!/usr/bin/env bash
# Stop the throw-away Redis that redis-up.sh started and remove its directory.
set -u
[ -n "${REDIS_DIR:-}" ] && [ -d "$REDIS_DIR" ] || exit 0
if [ -f "$REDIS_DIR/redis.pid" ]; then
  pid=$(cat "$REDIS_DIR/redis.pid")
  kill "$pid" 2>/dev/null
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
fi
rm -rf "$REDIS_DIR"
