#!/usr/bin/env bash
# A fresh cluster on every start (the container is the run's own and is removed with it): initdb with
# POSTGRES_USER as superuser and SCRAM passwords over TCP, POSTGRES_DB created, then postgres with the
# arguments given (the harness passes -c listen_addresses=127.0.0.1 -p <free port>).
set -Eeuo pipefail
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required}"
user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}
if [[ "${1:-}" == "postgres" ]]; then
  shift
  if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
    initdb -D "$PGDATA" -U "$user" --pwfile="$pwfile" -E UTF8 --auth-local=trust --auth-host=scram-sha-256 \
      >/dev/null
    rm -f "$pwfile"
    if [[ "$db" != "postgres" ]]; then
      echo "CREATE DATABASE \"$db\" OWNER \"$user\";" | postgres --single -D "$PGDATA" postgres >/dev/null
    fi
    echo "PostgreSQL init process complete; ready for start up."
  fi
  exec postgres -D "$PGDATA" -c unix_socket_directories=/tmp -c fsync=off -c synchronous_commit=off "$@"
fi
exec "$@"
