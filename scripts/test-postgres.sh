#!/usr/bin/env bash
# Prints the URL of a PostgreSQL server the tests can use as superuser
# (they create a database per test). Uses 127.0.0.1:5432 when it trusts the
# postgres user; otherwise starts (once) a private cluster on a Unix socket
# under /var/cache/gyri/test-postgres (or ./target/test-postgres).
set -euo pipefail
if psql "postgres://postgres@127.0.0.1:5432/postgres" -Atqc 'SELECT 1' >/dev/null 2>&1; then
  echo "postgres://postgres@127.0.0.1:5432/postgres"
  exit 0
fi
base=/var/cache/gyri/test-postgres
mkdir -p "$base" 2>/dev/null && [ -w "$base" ] || base="$(pwd)/target/test-postgres"
mkdir -p "$base"
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
as=()
if [ "$(id -u)" -eq 0 ]; then
  chown postgres: "$base"
  as=(runuser -u postgres --)
fi
if [ ! -f "$base/data/PG_VERSION" ]; then
  "${as[@]}" "$bin/initdb" -D "$base/data" -U postgres --auth=trust >/dev/null
fi
if ! "${as[@]}" "$bin/pg_ctl" -D "$base/data" status >/dev/null 2>&1; then
  "${as[@]}" "$bin/pg_ctl" -D "$base/data" -l "$base/log" -w \
    -o "-c listen_addresses= -c unix_socket_directories=$base -c max_connections=200" start >/dev/null
fi
echo "postgres:///postgres?host=$base&user=postgres"
