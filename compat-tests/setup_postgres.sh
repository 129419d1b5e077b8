#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the postgres output's tests (tests/pipeline_postgres.rs).
#
#   bash compat-tests/setup_postgres.sh start   # prints the URL as its last line of stdout
#   bash compat-tests/setup_postgres.sh stop
#
# start: installs Debian's `postgresql` with apt-get when no initdb/pg_ctl is found (on PATH or
# under /usr/lib/postgresql/*/bin), creates a cluster in a private directory under ${TMPDIR:-/tmp}
# (one per checkout), and starts it on 127.0.0.1 on a free port, with trust authentication for
# the `postgres` user, listening on nothing else. initdb refuses to run as root, so as root the
# cluster belongs to the `postgres` system user (created with the package; created here if
# missing) and runs through runuser. Idempotent: a running cluster is reused. The tests read the
# URL from SLUICEGATE_TEST_PG (.ci/run exports it). Exits non-zero with the reason on failure.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cmd="${1:-start}"
base="${TMPDIR:-/tmp}/sluicegate-pg-$(printf '%s' "$here" | md5sum | cut -c1-10)"
data="$base/data"
log="$base/server.log"

find_bin() {
  local d
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(readlink -f "$(command -v pg_ctl)")"
    return 0
  fi
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
      echo "$d"
      return 0
    fi
  done
  return 1
}

# Runs a command as the cluster's owner.
as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

if [ "$cmd" = stop ]; then
  if bin=$(find_bin) && [ -f "$data/PG_VERSION" ]; then
    as_owner "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  exit 0
fi
[ "$cmd" = start ] || { echo "usage: $0 start|stop" >&2; exit 64; }

mkdir -p "$base"
exec 9>"$base.lock"
flock 9

if ! bin=$(find_bin); then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "setup_postgres: no initdb/pg_ctl found, installing Debian's postgresql" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
  fi
  bin=$(find_bin) || {
    echo "setup_postgres: no PostgreSQL server binaries (initdb, pg_ctl) on PATH or under /usr/lib/postgresql/*/bin, and apt-get could not install them (install Debian's postgresql package)" >&2
    exit 2
  }
  # The package starts its own cluster on 5432; the tests do not use it.
fi

if [ "$(id -u)" = 0 ]; then
  if ! id postgres >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/postgresql --shell /usr/sbin/nologin postgres
  fi
  chown postgres "$base"
fi
chmod 700 "$base"

if ! [ -f "$data/PG_VERSION" ]; then
  rm -rf "$data"
  as_owner "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C --no-sync >"$base/initdb.log" 2>&1 || {
    echo "setup_postgres: initdb failed:" >&2
    cat "$base/initdb.log" >&2
    exit 3
  }
fi

port_file="$base/port"
if as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1 && [ -f "$port_file" ]; then
  port=$(cat "$port_file")
else
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  echo "$port" >"$port_file"
  as_owner "$bin/pg_ctl" -D "$data" -l "$log" -w -t 60 \
    -o "-p $port -c listen_addresses=127.0.0.1 -k $base -c fsync=off -c max_connections=50" start >/dev/null 9>&- || {
    echo "setup_postgres: the server did not start; its log:" >&2
    cat "$log" >&2 || true
    exit 4
  }
fi
"$bin/pg_isready" -h 127.0.0.1 -p "$port" -t 30 >/dev/null 2>&1 || {
  echo "setup_postgres: the server on 127.0.0.1:$port does not accept connections; its log:" >&2
  cat "$log" >&2 || true
  exit 5
}
echo "setup_postgres: PostgreSQL $("$bin/pg_ctl" --version | awk '{print $3}') on 127.0.0.1:$port (data $data)" >&2
echo "postgres://postgres@127.0.0.1:$port/postgres"
