#!/usr/bin/env bash
# Real PostgreSQL and MariaDB servers on loopback for segkit's database-connector tests.
#
# Sourced by scripts/test-all.sh (functions segkit_db_start / segkit_db_stop), or run by hand:
#
#   eval "$(scripts/db-servers.sh start)"   # installs (root only, when missing), starts both, prints the exports
#   scripts/db-servers.sh stop "$SEGKIT_TEST_DB_DIR"
#
# Each server gets a private data directory under a fresh temp dir and a random loopback port; nothing touches
# the system clusters. Exports SEGKIT_TEST_PG_URL, SEGKIT_TEST_MYSQL_URL (both with user and password in the URL)
# and SEGKIT_TEST_DB_DIR.

SEGKIT_DB_PASSWORD=${SEGKIT_DB_PASSWORD:-segkit-test-pw}

segkit_db_install() {
  local need=()
  compgen -G "/usr/lib/postgresql/*/bin/initdb" > /dev/null || need+=(postgresql)
  command -v mariadbd > /dev/null || need+=(mariadb-server)
  if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
      echo "db-servers: ${need[*]} missing; run as root or: sudo apt-get install -y ${need[*]}" >&2
      return 1
    fi
    # Installing must not start the system services (policy-rc.d 101 = "action forbidden").
    local had_policy=0
    [ -e /usr/sbin/policy-rc.d ] && had_policy=1
    if [ $had_policy = 0 ]; then
      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
      chmod +x /usr/sbin/policy-rc.d
    fi
    (apt-get install -y -q "${need[@]}" || { apt-get update -q && apt-get install -y -q "${need[@]}"; }) >&2
    if [ $had_policy = 0 ]; then rm -f /usr/sbin/policy-rc.d; fi
  fi
}

# Runs a command as `user` when we are root (servers refuse to run as root), as ourselves otherwise.
segkit_db_as() {
  local user=$1
  shift
  if [ "$(id -u)" = 0 ]; then runuser -u "$user" -- "$@"; else "$@"; fi
}

segkit_db_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

segkit_db_start() {
  segkit_db_install || return 1
  local dir pgbin pgport myport
  dir=$(mktemp -d "${TMPDIR:-/tmp}/segkit-db.XXXXXX")
  chmod 755 "$dir"
  SEGKIT_TEST_DB_DIR=$dir
  pgbin=$(dirname "$(compgen -G "/usr/lib/postgresql/*/bin/initdb" | sort -V | tail -1)")

  # PostgreSQL: password (scram) auth on 127.0.0.1, user `segkit`, database `segkit`.
  pgport=$(segkit_db_port)
  mkdir -p "$dir/pg" "$dir/pgsock"
  printf '%s\n' "$SEGKIT_DB_PASSWORD" > "$dir/pgpass"
  if [ "$(id -u)" = 0 ]; then chown postgres "$dir/pg" "$dir/pgsock" "$dir/pgpass"; fi
  segkit_db_as postgres "$pgbin/initdb" -D "$dir/pg/data" -U segkit --auth=scram-sha-256 \
    --pwfile="$dir/pgpass" -E UTF8 --locale=C.UTF-8 > "$dir/pg-initdb.log" 2>&1 \
    || { cat "$dir/pg-initdb.log" >&2; return 1; }
  segkit_db_as postgres "$pgbin/pg_ctl" -D "$dir/pg/data" -l "$dir/pg/server.log" -w -t 60 \
    -o "-p $pgport -k $dir/pgsock -c listen_addresses=127.0.0.1 -c fsync=off" start > /dev/null \
    || { cat "$dir/pg/server.log" >&2; return 1; }
  PGPASSWORD=$SEGKIT_DB_PASSWORD "$pgbin/createdb" -h 127.0.0.1 -p "$pgport" -U segkit segkit || return 1
  export SEGKIT_TEST_PG_URL="postgres://segkit:$SEGKIT_DB_PASSWORD@127.0.0.1:$pgport/segkit"

  # MariaDB: user `segkit`@127.0.0.1 with a password, database `segkit`.
  myport=$(segkit_db_port)
  mkdir -p "$dir/my"
  if [ "$(id -u)" = 0 ]; then chown mysql "$dir/my"; fi
  segkit_db_as mysql mariadb-install-db --no-defaults --datadir="$dir/my/data" \
    --auth-root-authentication-method=normal --skip-test-db > "$dir/my-install.log" 2>&1 \
    || { cat "$dir/my-install.log" >&2; return 1; }
  local userarg=()
  if [ "$(id -u)" = 0 ]; then userarg=(--user=mysql); fi
  mariadbd --no-defaults "${userarg[@]}" --datadir="$dir/my/data" --port="$myport" --bind-address=127.0.0.1 \
    --socket="$dir/my/sock" --pid-file="$dir/my/pid" --skip-name-resolve --innodb-flush-log-at-trx-commit=0 \
    > "$dir/my.log" 2>&1 &
  echo $! > "$dir/my.bgpid"
  local i
  for i in $(seq 1 300); do
    mariadb --no-defaults -S "$dir/my/sock" -u root -e 'select 1' > /dev/null 2>&1 && break
    sleep 0.2
  done
  mariadb --no-defaults -S "$dir/my/sock" -u root -e "
    CREATE DATABASE segkit CHARACTER SET utf8mb4;
    CREATE USER 'segkit'@'127.0.0.1' IDENTIFIED BY '$SEGKIT_DB_PASSWORD';
    GRANT ALL ON segkit.* TO 'segkit'@'127.0.0.1';" || { cat "$dir/my.log" >&2; return 1; }
  export SEGKIT_TEST_MYSQL_URL="mysql://segkit:$SEGKIT_DB_PASSWORD@127.0.0.1:$myport/segkit"
  export SEGKIT_TEST_DB_DIR
  echo "PostgreSQL on 127.0.0.1:$pgport, MariaDB on 127.0.0.1:$myport (data in $dir)" >&2
}

segkit_db_stop() {
  local dir=${1:-${SEGKIT_TEST_DB_DIR:-}}
  [ -n "$dir" ] && [ -d "$dir" ] || return 0
  local pgbin
  pgbin=$(dirname "$(compgen -G "/usr/lib/postgresql/*/bin/initdb" | sort -V | tail -1)")
  if [ -d "$dir/pg/data" ]; then
    segkit_db_as postgres "$pgbin/pg_ctl" -D "$dir/pg/data" -m fast -w stop > /dev/null 2>&1 || true
  fi
  if [ -f "$dir/my.bgpid" ]; then
    kill "$(cat "$dir/my.bgpid")" 2> /dev/null || true
    for _ in $(seq 1 100); do kill -0 "$(cat "$dir/my.bgpid")" 2> /dev/null || break; sleep 0.1; done
  fi
  rm -rf "$dir"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  case "${1:-}" in
    start)
      segkit_db_start
      printf 'export SEGKIT_TEST_PG_URL=%q SEGKIT_TEST_MYSQL_URL=%q SEGKIT_TEST_DB_DIR=%q\n' \
        "$SEGKIT_TEST_PG_URL" "$SEGKIT_TEST_MYSQL_URL" "$SEGKIT_TEST_DB_DIR"
      ;;
    stop) segkit_db_stop "${2:-}" ;;
    *) echo "usage: $0 start | stop DIR" >&2; exit 2 ;;
  esac
fi
