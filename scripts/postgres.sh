#!/usr/bin/env bash
# A local PostgreSQL (Debian's package, default major version 15) for the Dagster stack tests.
#
#   scripts/postgres.sh start|stop|status
#
# Env: PG_PORT (default 5432), PG_DIR (state folder, default <repo>/.run/postgres-$PG_PORT),
#      PG_USER (default dagster), PG_DB (default dagster), PG_PASSWORD (the superuser's
#      password, read from the environment only: never argv, never a file),
#      PG_HOST (listen address, default 127.0.0.1), PG_VERSION (default 15),
#      PG_START_TIMEOUT (seconds, default 60).
# As root the server runs as `nobody` (PostgreSQL refuses to run as root); PG_DIR's parents
# must then be searchable by nobody. Installs `postgresql` with apt-get when it is missing.
# `start` on a running server and `stop` on a stopped one do nothing.
set -euo pipefail

repo_dir="$(cd "$(dirname "$0")/.." && pwd)"
port="${PG_PORT:-5432}"
state_dir="${PG_DIR:-$repo_dir/.run/postgres-$port}"
data_dir="$state_dir/data"
log_file="$state_dir/postgres.log"
user="${PG_USER:-dagster}"
db="${PG_DB:-dagster}"
host="${PG_HOST:-127.0.0.1}"
version="${PG_VERSION:-15}"
bin="/usr/lib/postgresql/$version/bin"
start_timeout="${PG_START_TIMEOUT:-60}"

say() { echo "postgres.sh: $*" >&2; }

ensure_installed() {
    [ -x "$bin/initdb" ] && return 0
    say "PostgreSQL $version is missing: installing the Debian package"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends postgresql
    [ -x "$bin/initdb" ] || { say "no $bin/initdb after installing postgresql"; exit 1; }
}

# as_owner CMD...: run as the server's owner (nobody when we are root), environment kept.
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"
    else
        "$@"
    fi
}

postmaster_pid() {
    [ -f "$data_dir/postmaster.pid" ] || return 1
    local pid
    pid="$(head -1 "$data_dir/postmaster.pid")"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

init_cluster() {
    [ -f "$data_dir/PG_VERSION" ] && return 0
    [ -n "${PG_PASSWORD:-}" ] || { say "set PG_PASSWORD (the password of $user)"; exit 1; }
    mkdir -p "$state_dir"
    chmod 700 "$state_dir"
    [ "$(id -u)" -eq 0 ] && chown nobody:nogroup "$state_dir"
    as_owner test -w "$state_dir" \
        || { say "$state_dir is not writable by the server's user (are its parents searchable?)"; exit 1; }
    say "initdb in $data_dir (superuser $user)"
    # The password goes through a pipe the owner itself creates (printf is a builtin: no argv).
    as_owner env PG_PASSWORD="$PG_PASSWORD" bash -c \
        'printf "%s\n" "$PG_PASSWORD" | "$1/initdb" -D "$2" -U "$3" --pwfile=/dev/stdin \
            --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 \
            >>"$4" 2>&1' _ "$bin" "$data_dir" "$user" "$log_file" \
        || { say "initdb failed, see $log_file"; tail -20 "$log_file" >&2; exit 1; }
}

create_database() {
    local exists
    exists="$(as_owner "$bin/psql" -h "$state_dir" -p "$port" -U "$user" -d postgres -tAq \
        -v ON_ERROR_STOP=1 -v db="$db" <<<"SELECT 1 FROM pg_database WHERE datname = :'db'")"
    [ "$exists" = "1" ] && return 0
    as_owner "$bin/psql" -h "$state_dir" -p "$port" -U "$user" -d postgres -q \
        -v ON_ERROR_STOP=1 -v db="$db" <<<'CREATE DATABASE :"db"'
    say "created database $db"
}

start() {
    if pid="$(postmaster_pid)"; then
        say "already running (pid $pid) on $host:$port"
        return 0
    fi
    ensure_installed
    local started=$SECONDS
    init_cluster
    # -k: the Unix socket lives in the private state folder, not in /var/run/postgresql.
    as_owner "$bin/pg_ctl" -D "$data_dir" -l "$log_file" -w -t "$start_timeout" \
        -o "-h $host -p $port -k $state_dir" start >/dev/null \
        || { say "start failed, see $log_file"; tail -20 "$log_file" >&2; exit 1; }
    create_database
    say "started (pid $(postmaster_pid)) on $host:$port in $((SECONDS - started)) s; log: $log_file"
}

stop() {
    local pid
    if ! pid="$(postmaster_pid)"; then
        say "not running ($host:$port)"
        return 0
    fi
    # Fast shutdown: aborts open transactions, closes connections, then exits.
    if ! as_owner "$bin/pg_ctl" -D "$data_dir" -m fast -w -t 30 stop >/dev/null 2>&1; then
        say "still running after 30 s; killing postmaster $pid"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    say "stopped (pid $pid)"
}

status() {
    if pid="$(postmaster_pid)"; then
        echo "running (pid $pid) on $host:$port; data: $data_dir; log: $log_file"
    else
        echo "stopped ($host:$port)"
        return 3
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
