#!/usr/bin/env bash
# Start a throw-away Redis on a free loopback port (no persistence); prints REDIS_DIR, REDIS_PID and
# TEST_REDIS_URL lines. Installs Debian's redis-server when it is missing.
set -euo pipefail
if ! command -v redis-server >/dev/null 2>&1; then
  echo "Redis not found: installing it with apt-get" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null) >&2
fi
REDIS_PORT=${REDIS_PORT:-$(python3 -c "import socket;s=socket.socket();s.bind(('127.0.0.1',0));print(s.getsockname()[1])")}
REDIS_DIR=$(mktemp -d /tmp/marketplace-redis.XXXXXX)
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no --dir "$REDIS_DIR" \
  --daemonize yes --pidfile "$REDIS_DIR/redis.pid" --logfile "$REDIS_DIR/redis.log" >/dev/null
for _ in $(seq 1 50); do
  redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
  sleep 0.1
done
redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null
echo "REDIS_DIR=$REDIS_DIR"
echo "TEST_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0"
