#!/bin/sh
# Start PostgreSQL the way the public postgres image does, for the variables compose gives:
# on an empty PGDATA, make a cluster whose superuser is POSTGRES_USER (password
# POSTGRES_PASSWORD, scram-sha-256 over TCP from anywhere, trust on the local socket
# inside the container only) and create POSTGRES_DB; then run postgres in the foreground
# as PID 1. Arguments starting with "-" go to postgres (`command: ["-c", "fsync=off"]`).
set -eu

: "${PGDATA:=/var/lib/postgresql/data}"
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
export PGDATA

log() { printf 'postgres-entrypoint: %s\n' "$*" >&2; }

if [ "${1#-}" != "$1" ]; then
  set -- postgres "$@"
fi

if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    log "POSTGRES_PASSWORD is empty: set it (compose reads it from .env)"
    exit 1
  fi
  log "initialising a new cluster in $PGDATA"
  pwfile=$(mktemp)
  trap 'rm -f "$pwfile"' EXIT
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  initdb --pgdata="$PGDATA" --username="$POSTGRES_USER" --pwfile="$pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pwfile"
  printf '%s\n' "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  if [ "$POSTGRES_DB" != postgres ]; then
    # a server on the socket only, for as long as creating the database takes
    pg_ctl --pgdata="$PGDATA" --wait --silent --options="-c listen_addresses=''" start
    printf '%s\n' 'CREATE DATABASE :"db";' |
      psql --quiet --no-psqlrc --username="$POSTGRES_USER" --dbname=postgres \
        --set=ON_ERROR_STOP=1 --set=db="$POSTGRES_DB"
    pg_ctl --pgdata="$PGDATA" --wait --silent --mode=fast stop
  fi
  log "cluster ready: user $POSTGRES_USER, database $POSTGRES_DB"
fi

if [ "$1" = postgres ]; then
  shift
  exec postgres -c listen_addresses='*' "$@"
fi
exec "$@"
