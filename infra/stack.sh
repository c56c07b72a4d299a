#!/usr/bin/env bash
# Local PostgreSQL + Redis + Mosquitto for paymesh, one named stack per use (dev, test, ...).
#
#   infra/stack.sh up <name>               start (installing what is missing) and print export lines
#   infra/stack.sh down <name> [--purge]   stop; --purge also deletes the stack's data
#   infra/stack.sh env <name>              print the export lines of a running stack
#
#   eval "$(infra/stack.sh up test)"
#
# Only the export lines go to stdout; progress and errors go to stderr. Every command is
# idempotent, and calls for one name are serialised with flock, so two shells may race.
#
# Ports (PostgreSQL / Redis / Mosquitto): dev 54329 / 63799 / 18839, test 54339 / 63809 / 18849,
# any other name 54349 / 63819 / 18859. All listen on 127.0.0.1 only. When a port is taken by
# something else, the next free one is used and kept in .paymesh/<name>/ports for later calls.
# (A system-wide mosquitto that the Debian package may start on 1883 is left alone: it is not
# ours, and ours never uses that port.)
#
# State, under <repo>/.paymesh/<name>/:
#   env            the export lines (removed by `down`)
#   ports          the ports this stack uses
#   lock           flock(1) lock file
#   pg/            PostgreSQL data directory (owned by the `postgres` OS user when run as root)
#   sock/          PostgreSQL unix socket directory
#   postgres.log   PostgreSQL server log; initdb.log: initdb's output
#   redis/         Redis config, pid file and AOF; redis.log: Redis log
#   mosquitto/     Mosquitto config and pid file (no persistence: sessions live in memory);
#                  mosquitto.log: Mosquitto log. Started as a daemon by this script, not through
#                  systemd. As root it runs as the `mosquitto` OS user (made by the package),
#                  which owns both; as root itself when that user cannot reach the state folder.
# PostgreSQL refuses to run as root, so as root the server runs as `postgres`. When `postgres`
# cannot reach the state folder (e.g. the repo is under /root, mode 0700), pg/, sock/ and
# postgres.log live in /var/tmp/paymesh-<sha256(repo path), 12 hex>/<name>/ instead, with
# symlinks pg and postgres.log in the state folder pointing there. When the socket path would
# exceed the 107-byte limit of unix sockets, the socket directory is /tmp/paymesh-<hash>-<name>.
#
# Environment:
#   PAYMESH_APT_EXTRA      extra Debian packages to install in the same apt-get run (space or comma
#                          separated), e.g. "libxml2-utils zbar-tools python3-venv"
#   PAYMESH_STACK_WAIT_S   how long to wait for each server to answer (default 30); raise it when
#                          PostgreSQL has a long crash recovery to replay (up to max_wal_size)
set -euo pipefail

# Stdout carries the export lines only (fd 3); everything else goes to stderr.
exec 3>&1 1>&2

usage() {
    sed -n '2,9s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
    exit 2
}
die() {
    printf 'stack.sh: error: %s\n' "$*" >&2
    exit 1
}
say() { printf 'stack.sh[%s]: %s\n' "$name" "$*" >&2; }

cmd=${1:-}
name=${2:-}
purge=false
case "$cmd" in
up | env) (($# == 2)) || usage ;;
down)
    if (($# == 3)) && [[ $3 == --purge ]]; then
        purge=true
    elif (($# != 2)); then
        usage
    fi
    ;;
*) usage ;;
esac
[[ $name =~ ^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$ ]] || die "stack name must match [A-Za-z0-9][A-Za-z0-9_-]{0,31}, got '$name'"

repo=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
# Paths are written into config files unescaped; refuse the characters that would need escaping.
[[ $repo != *[\'\"\\$'\n']* ]] || die "the repository path contains a quote, backslash or newline: $repo"
state=$repo/.paymesh/$name
hash=$(printf '%s' "$repo" | sha256sum | cut -c1-12)
fallback_base=/var/tmp/paymesh-$hash/$name
wait_s=${PAYMESH_STACK_WAIT_S:-30}
[[ $wait_s =~ ^[1-9][0-9]*$ ]] || die "PAYMESH_STACK_WAIT_S must be a positive integer, got '$wait_s'"
port_scan_max=100 # how many ports past a busy one to try

case "$name" in
dev) pg_port_default=54329 redis_port_default=63799 mqtt_port_default=18839 ;;
test) pg_port_default=54339 redis_port_default=63809 mqtt_port_default=18849 ;;
*) pg_port_default=54349 redis_port_default=63819 mqtt_port_default=18859 ;;
esac

# The caller's libpq settings must not redirect our own psql/pg_ctl calls.
unset PGHOST PGHOSTADDR PGPORT PGDATA PGUSER PGDATABASE PGSERVICE PGOPTIONS PGPASSFILE PGSSLMODE

if ((EUID == 0)); then
    pg_user=postgres
else
    pg_user=$(id -un)
fi

# Runs a PostgreSQL program as the user that owns the data directory.
as_pg() {
    if ((EUID == 0)); then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

proc_state() { sed -n 's/^State:[[:space:]]*\(.\).*/\1/p' "/proc/$1/status" 2>/dev/null; }

# Is process $1 alive and named $2? A zombie (killed, not yet reaped by its parent) is not,
# although it still answers kill -0.
alive() {
    local state
    state=$(proc_state "$1") || return 1
    [[ -n $state && $state != Z && $(cat "/proc/$1/comm" 2>/dev/null) == "$2" ]]
}

# Waits while process $1 is a zombie: PostgreSQL takes a pid file whose pid exists as held.
wait_reaped() {
    local deadline=$((SECONDS + wait_s))
    while [[ $(proc_state "$1") == Z ]]; do
        ((SECONDS < deadline)) || die "$2 (pid $1) is a zombie still after ${wait_s}s"
        sleep 0.2
    done
}

# ---------------------------------------------------------------------------------------------
# Packages

newest_pg_bin() {
    local p
    p=$(printf '%s\n' /usr/lib/postgresql/*/bin/postgres | sort -V | tail -n 1)
    [[ -x $p ]] || return 1
    dirname -- "$p"
}

# The broker is in /usr/sbin, which a normal user's PATH may lack.
mosquitto_bin() {
    local p
    p=$(command -v mosquitto 2>/dev/null || echo /usr/sbin/mosquitto)
    [[ -x $p ]] || return 1
    echo "$p"
}

missing_packages() {
    local -a pkgs=() extra=()
    local p raw=${PAYMESH_APT_EXTRA:-}
    newest_pg_bin >/dev/null || pkgs+=(postgresql)
    command -v redis-server >/dev/null || pkgs+=(redis-server)
    command -v redis-cli >/dev/null || pkgs+=(redis-tools)
    mosquitto_bin >/dev/null || pkgs+=(mosquitto)
    { command -v mosquitto_pub && command -v mosquitto_sub; } >/dev/null || pkgs+=(mosquitto-clients)
    read -ra extra <<<"${raw//,/ }"
    for p in "${extra[@]}"; do
        # shellcheck disable=SC2016 # ${Status} is dpkg-query's field, not a shell variable
        [[ $(dpkg-query -W -f='${Status}' "${p%%[=:]*}" 2>/dev/null) == 'install ok installed' ]] || pkgs+=("$p")
    done
    if ((${#pkgs[@]})); then printf '%s\n' "${pkgs[@]}"; fi
}

install_missing() {
    local missing log=$repo/.paymesh/apt.log
    local -a pkgs sudo=()
    missing=$(missing_packages)
    [[ -n $missing ]] || return 0
    mkdir -p "$repo/.paymesh"
    exec 7>>"$repo/.paymesh/.install.lock"
    flock -w 900 7 || die "timed out waiting for another stack.sh to finish installing"
    missing=$(missing_packages) # another shell may have installed them while we waited
    if [[ -n $missing ]]; then
        mapfile -t pkgs <<<"$missing"
        if ((EUID != 0)); then
            command -v sudo >/dev/null || die "not root and no sudo; install these packages: ${pkgs[*]}"
            sudo=(sudo)
        fi
        printf 'stack.sh: installing %s (log: %s)\n' "${pkgs[*]}" "$log" >&2
        if ! {
            "${sudo[@]}" apt-get -q -o DPkg::Lock::Timeout=600 update &&
                "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
                    apt-get -q -y -o DPkg::Lock::Timeout=600 install "${pkgs[@]}"
        } >"$log" 2>&1; then
            tail -n 40 "$log" >&2
            die "apt-get failed; full log: $log"
        fi
        missing=$(missing_packages)
        [[ -z $missing ]] || die "still missing after apt-get install: $(tr '\n' ' ' <<<"$missing")"
    fi
    exec 7>&-
}

# ---------------------------------------------------------------------------------------------
# Locks, ports, paths

# Holds an exclusive lock on <state>/lock for the rest of the script. Retries if a concurrent
# `down --purge` deleted the lock file while we waited on it.
lock_state() {
    while :; do
        mkdir -p "$state"
        exec 9>>"$state/lock"
        flock -w 600 9 || die "timed out waiting for another stack.sh on '$name'"
        [[ /dev/fd/9 -ef $state/lock ]] && return 0
        exec 9>&-
    done
}

# shellcheck source=infra/ports.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/ports.sh"

free_port_from() {
    local port=$1 i
    for ((i = 0; i < port_scan_max; i++, port++)); do
        if ! port_busy "$port"; then
            echo "$port"
            return 0
        fi
    done
    die "no free port in $1..$((port - 1))"
}

read_ports() {
    local k v
    pg_port=$pg_port_default
    redis_port=$redis_port_default
    mqtt_port=$mqtt_port_default
    if [[ -f $state/ports ]]; then
        while IFS='=' read -r k v; do
            case "$k" in
            pg) pg_port=$v ;;
            redis) redis_port=$v ;;
            mqtt) mqtt_port=$v ;;
            esac
        done <"$state/ports"
    fi
    [[ $pg_port =~ ^[0-9]+$ && $redis_port =~ ^[0-9]+$ && $mqtt_port =~ ^[0-9]+$ ]] ||
        die "bad port in $state/ports"
}

# Can the PostgreSQL user reach (traverse into) directory $1?
pg_can_reach() { as_pg test -x "$1" 2>/dev/null; }

# Sets pg_base, pg_data, pg_log and sock_dir. Keeps an earlier choice; for a new stack, uses the
# state folder when the PostgreSQL user can reach it and the /var/tmp fallback otherwise.
resolve_pg_paths() {
    if [[ -L $state/pg ]]; then
        pg_base=$(dirname -- "$(readlink -- "$state/pg")")
    elif [[ -e $state/pg ]] || pg_can_reach "$state"; then
        pg_base=$state
    else
        pg_base=$fallback_base
    fi
    pg_data=$pg_base/pg
    pg_log=$pg_base/postgres.log
    sock_dir=$pg_base/sock
    # "<dir>/.s.PGSQL.<port>.lock" must fit in sockaddr_un.sun_path (108 bytes with the NUL).
    ((${#sock_dir} + 21 <= 107)) || sock_dir=/tmp/paymesh-$hash-$name
}

# Picks the binaries matching an existing data directory, else the newest installed.
select_pg_bin() {
    local version
    if [[ -f $pg_data/PG_VERSION ]]; then
        version=$(<"$pg_data/PG_VERSION")
        pg_bin=/usr/lib/postgresql/$version/bin
        [[ -x $pg_bin/postgres ]] ||
            die "$pg_data was made by PostgreSQL $version, which is not installed; install postgresql-$version or run: infra/stack.sh down $name --purge"
    else
        pg_bin=$(newest_pg_bin) || die "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin"
    fi
}

# ---------------------------------------------------------------------------------------------
# PostgreSQL

prepare_pg_dirs() {
    local group
    group=$(id -gn "$pg_user")
    if [[ $pg_base != "$state" ]]; then
        install -d -m 0755 "${pg_base%/*}"
        [[ ! -L ${pg_base%/*} && $(stat -c %u "${pg_base%/*}") == "$EUID" ]] ||
            die "${pg_base%/*} is not a directory owned by $(id -un)"
        install -d -m 0700 -o "$pg_user" -g "$group" "$pg_base"
    fi
    [[ ! -L $sock_dir ]] || die "$sock_dir is a symlink; refusing to use it"
    install -d -m 0700 -o "$pg_user" -g "$group" "$pg_data" "$sock_dir"
    [[ -e $pg_log ]] || install -m 0640 -o "$pg_user" -g "$group" /dev/null "$pg_log"
    if [[ $pg_base != "$state" ]]; then
        ln -sfn "$pg_data" "$state/pg"
        ln -sfn "$pg_log" "$state/postgres.log"
    fi
}

init_pg() {
    [[ -f $pg_data/PG_VERSION ]] && return 0
    [[ -z $(find "$pg_data" -mindepth 1 -maxdepth 1 -print -quit) ]] ||
        die "$pg_data is not empty but holds no cluster (PG_VERSION missing); run: infra/stack.sh down $name --purge"
    say "initdb $pg_data ($("$pg_bin/postgres" --version))"
    if ! as_pg "$pg_bin/initdb" -D "$pg_data" -A trust -U paymesh --encoding=UTF8 --locale=C \
        >"$state/initdb.log" 2>&1; then
        tail -n 30 "$state/initdb.log" >&2
        die "initdb failed; full log: $state/initdb.log"
    fi
    printf "\ninclude_if_exists = 'paymesh.conf'\n" >>"$pg_data/postgresql.conf"
}

# Rewritten before every start, so a changed port or socket directory takes effect.
write_pg_conf() {
    local conf=$pg_data/paymesh.conf
    cat >"$conf.tmp" <<EOF
# Written by infra/stack.sh before every start: change the script, not this file.
listen_addresses = '127.0.0.1'
port = $pg_port
unix_socket_directories = '$sock_dir'
max_connections = 200
# Room for a million bills and their indexes (~350 MB) with the ledger's hot pages: at 256MB a
# lookup benchmark over 1,000,000 bills evicted and re-read pages all the time (p99 34 against
# 9 ms). Memory is taken as pages are used, not at start.
shared_buffers = 1GB

# Durable as in production: the ledger's durability claims are tested against this server.
fsync = on
synchronous_commit = on
full_page_writes = on

wal_level = minimal
max_wal_senders = 0
checkpoint_timeout = 15min
max_wal_size = 4GB

timezone = 'UTC'
log_timezone = 'UTC'
lc_messages = 'C'
log_line_prefix = '%m [%p] %q%u@%d '
log_min_duration_statement = 1000
EOF
    chown "$pg_user" "$conf.tmp"
    mv -f "$conf.tmp" "$conf"
}

# Prints the postmaster's pid from postmaster.pid, or fails when there is none.
postmaster_pid() {
    local pid
    [[ -f $pg_data/postmaster.pid ]] || return 1
    pid=$(head -n 1 "$pg_data/postmaster.pid")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    echo "$pid"
}
pg_running() {
    local pid
    pid=$(postmaster_pid) && alive "$pid" postgres
}
pg_ready() { "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port" -U paymesh -d postgres -t 2; }
psql_admin() { "$pg_bin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pg_port" -U paymesh -d postgres -tA "$@"; }

# Waits until "$@" succeeds; after wait_s seconds, shows the tail of log $2 and fails.
wait_until() {
    local what=$1 log=$2 deadline=$((SECONDS + wait_s))
    shift 2
    until "$@"; do
        if ((SECONDS >= deadline)); then
            say "$what did not answer within ${wait_s}s; last lines of $log:"
            tail -n 30 "$log" >&2 || true
            die "$what is not up"
        fi
        sleep 0.2
    done
}

start_pg() {
    local pid
    if pg_running; then
        pg_port=$(sed -n 4p "$pg_data/postmaster.pid")
        say "PostgreSQL already running on port $pg_port"
    else
        if port_busy "$pg_port"; then
            local busy=$pg_port
            pg_port=$(free_port_from "$pg_port")
            say "port $busy is taken by another process; PostgreSQL will use $pg_port"
        fi
        # After a crash, postmaster.pid stays behind; PostgreSQL replaces it once its pid is gone.
        if pid=$(postmaster_pid); then wait_reaped "$pid" "the previous postmaster"; fi
        write_pg_conf
        say "starting PostgreSQL on 127.0.0.1:$pg_port (log: $pg_log)"
        # The server must not inherit our stdout (fd 3: `$(stack.sh up)` would wait for it) nor
        # the lock descriptors (7-9: the locks would live as long as the server).
        if ! as_pg "$pg_bin/pg_ctl" -D "$pg_data" -l "$pg_log" -w -t "$wait_s" start \
            >/dev/null 3>&- 7>&- 8>&- 9>&-; then
            say "last lines of $pg_log:"
            tail -n 30 "$pg_log" >&2 || true
            die "PostgreSQL failed to start"
        fi
    fi
    wait_until PostgreSQL "$pg_log" pg_ready
    if [[ $(psql_admin -c "select 1 from pg_database where datname = 'paymesh'") != 1 ]]; then
        say "creating database paymesh"
        "$pg_bin/createdb" -h 127.0.0.1 -p "$pg_port" -U paymesh -O paymesh paymesh
    fi
}

stop_pg() {
    [[ -f $pg_data/PG_VERSION ]] || return 0
    select_pg_bin
    if pg_running; then
        say "stopping PostgreSQL"
        as_pg "$pg_bin/pg_ctl" -D "$pg_data" -m fast -w -t 60 stop >/dev/null
    fi
}

# ---------------------------------------------------------------------------------------------
# Redis

redis_dir=$state/redis
redis_conf=$redis_dir/redis.conf
redis_log=$state/redis.log

# Prints the pid of this stack's redis-server, or fails when it is not running.
redis_pid() {
    local pid
    [[ -f $redis_dir/redis.pid ]] || return 1
    pid=$(<"$redis_dir/redis.pid")
    [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" redis-server || return 1
    echo "$pid"
}
redis_conf_port() { sed -n 's/^port //p' "$redis_conf"; }
redis_ready() { [[ $(timeout 5 redis-cli -h 127.0.0.1 -p "$redis_port" ping 2>/dev/null) == PONG ]]; }

write_redis_conf() {
    cat >"$redis_conf.tmp" <<EOF
# Written by infra/stack.sh before every start: change the script, not this file.
bind 127.0.0.1
port $redis_port
protected-mode yes
daemonize yes
pidfile "$redis_dir/redis.pid"
logfile "$redis_log"
dir "$redis_dir"
appendonly yes
appendfsync everysec
EOF
    mv -f "$redis_conf.tmp" "$redis_conf"
}

start_redis() {
    mkdir -p "$redis_dir"
    if redis_pid >/dev/null; then
        redis_port=$(redis_conf_port)
        say "Redis already running on port $redis_port"
    else
        if port_busy "$redis_port"; then
            local busy=$redis_port
            redis_port=$(free_port_from "$redis_port")
            say "port $busy is taken by another process; Redis will use $redis_port"
        fi
        write_redis_conf
        say "starting Redis on 127.0.0.1:$redis_port (log: $redis_log)"
        if ! redis-server "$redis_conf" >>"$redis_log" 2>&1 3>&- 7>&- 8>&- 9>&-; then
            tail -n 30 "$redis_log" >&2 || true
            die "Redis failed to start"
        fi
    fi
    wait_until Redis "$redis_log" redis_ready
}

stop_redis() {
    local pid deadline
    pid=$(redis_pid) || return 0
    say "stopping Redis"
    # SHUTDOWN flushes and fsyncs the AOF; NOSAVE skips the extra RDB snapshot.
    timeout 10 redis-cli -h 127.0.0.1 -p "$(redis_conf_port)" shutdown nosave >/dev/null 2>&1 ||
        kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + wait_s))
    while alive "$pid" redis-server; do
        ((SECONDS < deadline)) || die "Redis (pid $pid) did not stop within ${wait_s}s"
        sleep 0.2
    done
}

# ---------------------------------------------------------------------------------------------
# Mosquitto (the MQTT broker the sound boxes subscribe to)

mqtt_dir=$state/mosquitto
mqtt_conf=$mqtt_dir/mosquitto.conf
mqtt_log=$state/mosquitto.log

# Mosquitto will not run as root unless told `user root`. As root, ours drops to the package's
# `mosquitto` user right after opening its port (as PostgreSQL runs as `postgres`); it writes
# its pid file and log after that, so that user owns mosquitto/ and mosquitto.log. It stays
# root only when that user does not exist or cannot reach the state folder (a repo under /root,
# mode 0700). A normal user runs it as itself (the `user` line is ignored then).
mqtt_user() {
    if ((EUID != 0)); then
        id -un
    elif getent passwd mosquitto >/dev/null &&
        (cd / && runuser -u mosquitto -- test -x "$state") 2>/dev/null; then
        echo mosquitto
    else
        echo root
    fi
}

# Prints the pid of this stack's mosquitto, or fails when it is not running.
mqtt_pid() {
    local pid
    [[ -f $mqtt_dir/mosquitto.pid ]] || return 1
    pid=$(<"$mqtt_dir/mosquitto.pid")
    [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" mosquitto || return 1
    echo "$pid"
}
mqtt_conf_port() { sed -n 's/^listener \([0-9][0-9]*\) .*/\1/p' "$mqtt_conf"; }
# Connects and publishes an empty QoS 0 message: fails while nothing speaks MQTT on the port.
mqtt_ready() {
    timeout 5 mosquitto_pub -h 127.0.0.1 -p "$mqtt_port" -i "paymesh-stack-$name-$$" \
        -t paymesh/stack/ready -n >/dev/null 2>&1
}

write_mqtt_conf() {
    local user
    user=$(mqtt_user)
    cat >"$mqtt_conf.tmp" <<EOF
# Written by infra/stack.sh before every start: change the script, not this file.
# Anonymous clients are allowed only because the one listener is on loopback: nothing off this
# machine can connect. Never copy this to a broker that listens on another interface.
listener $mqtt_port 127.0.0.1
allow_anonymous true
# Sessions, subscriptions and in-flight messages live in memory only (a restart forgets them).
persistence false
pid_file $mqtt_dir/mosquitto.pid
log_dest file $mqtt_log
log_type error
log_type warning
log_type notice
log_type information
log_timestamp_format %Y-%m-%dT%H:%M:%S
connection_messages true
user $user
EOF
    mv -f "$mqtt_conf.tmp" "$mqtt_conf"
}

start_mqtt() {
    local bin user
    bin=$(mosquitto_bin) || die "mosquitto is not installed (package mosquitto)"
    if mqtt_pid >/dev/null; then
        mqtt_port=$(mqtt_conf_port)
        say "Mosquitto already running on port $mqtt_port"
    else
        if port_busy "$mqtt_port"; then
            local busy=$mqtt_port
            mqtt_port=$(free_port_from "$mqtt_port")
            say "port $busy is taken by another process; Mosquitto will use $mqtt_port"
        fi
        user=$(mqtt_user)
        install -d -m 0755 -o "$user" "$mqtt_dir"
        [[ -e $mqtt_log ]] || install -m 0640 -o "$user" /dev/null "$mqtt_log"
        chown "$user" "$mqtt_log"
        rm -f "$mqtt_dir/mosquitto.pid" # a dead broker's
        write_mqtt_conf
        say "starting Mosquitto on 127.0.0.1:$mqtt_port as $user (log: $mqtt_log)"
        # A daemon in its own session, not a systemd service (the package's service is another
        # broker). Not `mosquitto -d`: that sends stderr to /dev/null before the log is open, and
        # an early error (an unwritable pid file) would be lost; here it lands in the log.
        if ! (cd / && setsid -f "$bin" -c "$mqtt_conf") </dev/null >>"$mqtt_log" 2>&1 \
            3>&- 7>&- 8>&- 9>&-; then
            tail -n 30 "$mqtt_log" >&2 || true
            die "Mosquitto failed to start"
        fi
    fi
    wait_until Mosquitto "$mqtt_log" mqtt_ready
}

stop_mqtt() {
    local pid deadline
    pid=$(mqtt_pid) || return 0
    say "stopping Mosquitto"
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + wait_s))
    while alive "$pid" mosquitto; do
        ((SECONDS < deadline)) || die "Mosquitto (pid $pid) did not stop within ${wait_s}s"
        sleep 0.2
    done
    rm -f "$mqtt_dir/mosquitto.pid" # left behind when it could not remove it itself
}

# url_encode TEXT: TEXT with every byte outside [A-Za-z0-9._~-] percent-encoded, so a socket
# directory can be a URL's host (libpq, pgbench and sqlx read "%2F..." as a socket path).
url_encode() {
    local LC_ALL=C text=$1 out='' c i
    for ((i = 0; i < ${#text}; i++)); do
        c=${text:i:1}
        case $c in
        [A-Za-z0-9._~-]) out+=$c ;;
        *) printf -v c '%%%02X' "'$c"; out+=$c ;;
        esac
    done
    printf '%s' "$out"
}

# ---------------------------------------------------------------------------------------------
# Commands

cmd_up() {
    install_missing
    ((EUID != 0)) || getent passwd postgres >/dev/null ||
        die "running as root needs the 'postgres' OS user (package postgresql-common)"
    lock_state
    resolve_pg_paths
    prepare_pg_dirs
    select_pg_bin
    init_pg

    # Port choice and start-up are serialised across all stacks of this repo, so two names
    # started at once cannot both pick the same free port.
    exec 8>>"$repo/.paymesh/.ports.lock"
    flock -w 600 8 || die "timed out waiting for another stack.sh to choose ports"
    read_ports
    start_pg
    start_redis
    start_mqtt
    exec 8>&-

    printf 'pg=%s\nredis=%s\nmqtt=%s\n' "$pg_port" "$redis_port" "$mqtt_port" >"$state/ports"
    {
        printf 'export PAYMESH_DATABASE_URL=postgres://paymesh@127.0.0.1:%s/paymesh\n' "$pg_port"
        # The same server over its Unix socket, for comparing the two (PAYMESH_BENCH_PG=socket;
        # the README's benchmark sections say what it changed: nothing clear so far).
        printf 'export PAYMESH_DATABASE_SOCKET_URL=postgres://paymesh@%s:%s/paymesh\n' "$(url_encode "$sock_dir")" "$pg_port"
        printf 'export PAYMESH_REDIS_URL=redis://127.0.0.1:%s/\n' "$redis_port"
        printf 'export PAYMESH_MQTT_URL=mqtt://127.0.0.1:%s\n' "$mqtt_port"
        printf 'export PAYMESH_PG_PORT=%s PAYMESH_REDIS_PORT=%s PAYMESH_MQTT_PORT=%s PAYMESH_PG_BIN=%q\n' \
            "$pg_port" "$redis_port" "$mqtt_port" "$pg_bin"
    } >"$state/env.tmp"
    mv -f "$state/env.tmp" "$state/env"
    say "up: PostgreSQL $sock_dir and 127.0.0.1:$pg_port (data $pg_data), Redis 127.0.0.1:$redis_port," \
        "Mosquitto 127.0.0.1:$mqtt_port"
    cat "$state/env" >&3
}

cmd_down() {
    if [[ -d $state ]]; then
        lock_state
        resolve_pg_paths
        stop_pg
        stop_redis
        stop_mqtt
        rm -f "$state/env"
    fi
    if $purge; then
        say "deleting $state"
        rm -rf -- "$state" "$fallback_base" "/tmp/paymesh-$hash-$name"
        rmdir -- "${fallback_base%/*}" 2>/dev/null || true
    fi
    say "down"
}

cmd_env() {
    [[ -f $state/env ]] || die "stack '$name' is not up; run: infra/stack.sh up $name"
    read_ports
    resolve_pg_paths
    select_pg_bin
    pg_ready || die "stack '$name': PostgreSQL does not answer on port $pg_port; run: infra/stack.sh up $name"
    redis_ready || die "stack '$name': Redis does not answer on port $redis_port; run: infra/stack.sh up $name"
    mqtt_ready || die "stack '$name': Mosquitto does not answer on port $mqtt_port; run: infra/stack.sh up $name"
    cat "$state/env" >&3
}

"cmd_$cmd"
