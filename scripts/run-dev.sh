#!/usr/bin/env bash
# `make run`: the web server and one job worker, started together; Ctrl-C (or SIGTERM) stops both.
# The demo logins are printed last, once the server answers and the worker takes jobs.
set -uo pipefail
FLASK=${FLASK:-.venv/bin/flask --app app}
PORT=${PORT:-5000}
worker= server=
ready=$(mktemp -u "${TMPDIR:-/tmp}/marketplace-worker-ready.XXXXXX")

stop() {  # $1: the signal for the worker; the server always gets TERM
  trap - INT TERM EXIT
  # the worker got a SIGINT from the terminal too after a Ctrl-C; either way it finishes its running
  # jobs first (a second signal changes nothing)
  [ -n "$worker" ] && kill "-$1" "$worker" 2>/dev/null
  [ -n "$server" ] && kill -TERM "$server" 2>/dev/null
  wait
  rm -f "$ready"
}
trap 'stop INT; exit 130' INT
trap 'stop TERM; exit 143' TERM
trap 'stop TERM' EXIT

$FLASK worker --concurrency 8 --ready-file "$ready" &  # runs (queue "runs") and the other jobs; 8 at once
worker=$!
$FLASK run --host 127.0.0.1 --port "$PORT" &
server=$!

for _ in $(seq 1 150); do  # up to 30 s for the server to listen
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
  kill -0 "$server" 2>/dev/null || break
  sleep 0.2
done
for _ in $(seq 1 300); do  # up to 60 s for the worker to take jobs
  [ -e "$ready" ] && break
  kill -0 "$worker" 2>/dev/null || break
  sleep 0.2
done
$FLASK demo-logins
echo "Serving Digitlify Marketplace on http://127.0.0.1:$PORT with one job worker; Ctrl-C stops both."
wait -n  # when either one ends, the trap stops the other
