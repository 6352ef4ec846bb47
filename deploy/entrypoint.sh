#!/bin/sh
# The image's roles: web (gunicorn), worker (the job worker), migrate (schema upgrade), or any flask command.
set -eu
role=${1:-web}
case "$role" in
  web)     shift || true; exec gunicorn -c gunicorn.conf.py "app:create_app()" "$@" ;;
  worker)  shift || true; exec flask --app app worker "$@" ;;
  migrate) shift || true; exec flask --app app db upgrade "$@" ;;
  flask)   shift; exec flask --app app "$@" ;;
  *)       echo "usage: web | worker | migrate | flask <command>" >&2; exit 64 ;;
esac
