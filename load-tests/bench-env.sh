# What the benchmark scripts share (sourced, not run): the private `bench` stack, a release
# (or PAYMESH_BENCH_PROFILE=debug) build, fresh databases and an empty Redis, dev keys, pgbench's TPC-B-like
# baseline, and the table helpers. Loopback only.

# bench_setup DATABASE: sets admin, base, bin, bench_stack; exports PAYMESH_DATABASE_URL (fresh)
# and keys. PAYMESH_BENCH_STACK (default bench) names the stack and its folder .paymesh/<stack>/,
# so that benchmarks on stacks of their own do not share a PostgreSQL.
bench_setup() {
    local stack_env
    bench_stack=${PAYMESH_BENCH_STACK:-bench}
    stack_env=$(infra/stack.sh up "$bench_stack") || { echo "the $bench_stack stack did not start" >&2; return 1; }
    eval "$stack_env"
    # PAYMESH_BENCH_PG=socket: PostgreSQL over its Unix socket instead of TCP loopback, for the
    # mesh, pgbench and psql alike (the conditions line says which).
    case ${PAYMESH_BENCH_PG:-tcp} in
    tcp) admin=$PAYMESH_DATABASE_URL ;;
    socket) admin=$PAYMESH_DATABASE_SOCKET_URL ;;
    *) echo "PAYMESH_BENCH_PG is socket or tcp, not '$PAYMESH_BENCH_PG'" >&2; return 1 ;;
    esac
    base=${admin%/*}
    local profile=${PAYMESH_BENCH_PROFILE:-release}
    if [[ $profile == release ]]; then
        cargo build --release --locked -p paymesh -p paymesh-load >&2
    else
        cargo build --locked -p paymesh -p paymesh-load >&2
    fi
    bin=target/$profile
    psql -q "$admin" -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1" \
        -c "DROP DATABASE IF EXISTS pgbench" -c "CREATE DATABASE pgbench"
    # Redis fresh too. The stack's Redis keeps its keys between runs (idempotency answers live
    # 24 hours), and after a few runs its background save (RDB, ~0.9 core for seconds on
    # 600 MB) fell inside a later run's timed phase: lookups p99 10 ms in one run, 4 in the next.
    redis-cli -u "$PAYMESH_REDIS_URL" FLUSHALL >/dev/null
    local keys=.paymesh/$bench_stack/keys
    export PAYMESH_DATABASE_URL=$base/$1
    export PAYMESH_AUTH_PRIVATE_KEY_FILE=$keys/private/mesh.pem PAYMESH_AUTH_OPERATOR_PRIVATE_KEY_FILE=$keys/private/operator.pem
    export PAYMESH_AUTH_PUBLIC_KEYS_DIR=$keys/public
    export PAYMESH_TELEMETRY_LOG_LEVEL=warn
    # No scheduled settlement close inside a benchmark: its first look comes a minute after the
    # mesh starts, inside the timed phase, and closing the day before (the window is due on a
    # fresh database) reads every merchant's transfers, one ledger call each: 10,000 calls in
    # the payment benchmark's 10,000 merchants, seen in pg_stat_statements of its timed phase.
    export PAYMESH_SETTLEMENT_SCHEDULE_POLL_MS=0
    "$bin/paymesh" token keygen >&2
}

# shellcheck source=infra/ports.sh
source infra/ports.sh

# bench_listen FIRST VAR...: exports each VAR as 127.0.0.1:PORT, taking free ports from FIRST
# on. Fixed ports are not enough: the benches' ports lie in the kernel's ephemeral range, so a
# client's connection (the load generator's, a webhook's) may hold one when the mesh starts.
bench_listen() {
    local port=$1 var
    shift
    for var in "$@"; do
        while port_busy "$port"; do
            port=$((port + 1))
        done
        export "$var=127.0.0.1:$port"
        port=$((port + 1))
    done
}

# wait_port HOST:PORT: until something listens there (10 s at most).
wait_port() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on $1" >&2
    return 1
}

# pgbench_baseline SECONDS: sets pgbench_tps (64 clients, scale 10, prepared statements).
pgbench_baseline() {
    echo "== pgbench TPC-B-like baseline, 64 clients, ${1}s ==" >&2
    "$PAYMESH_PG_BIN/pgbench" -q -i -s 10 "$base/pgbench" >/dev/null 2>&1
    pgbench_tps=$("$PAYMESH_PG_BIN/pgbench" -n -M prepared -c 64 -j 2 -T "$1" "$base/pgbench" 2>/dev/null |
        sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -1)
    echo "pgbench tps=$pgbench_tps" >&2
}

# Copies standard input to standard error as well (not `tee /dev/stderr`: reopening stderr
# truncates a log file it is redirected to).
echo_err() { local line; while IFS= read -r line; do printf '%s\n' "$line"; printf '%s\n' "$line" >&2; done; }

field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f", a / b; else print "n/a" }'; }
percent() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.0f %%", 100 * a / b; else print "n/a" }'; }
# The machine's CPU counters (`/proc/stat`): steal, then all time.
cpu_counters() { awk '/^cpu / {print $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat; }
bench_cpu_start=$(cpu_counters)
# Steal since the script started: the share of time the hypervisor ran others while this
# machine wanted its cores. Runs of one build differ by 2x on a shared machine; this says when.
steal_since_start() {
    echo "$bench_cpu_start $(cpu_counters)" |
        awk '{ if ($4 > $2) printf "%.1f %%", 100 * ($3 - $1) / ($4 - $2); else print "n/a" }'
}
machine() {
    echo "$(nproc) cores ($(sed -n 's/^model name\s*:\s*//p' /proc/cpuinfo | head -1)), $(free -g | awk '/Mem:/ {print $2}') GiB RAM, CPU steal $(steal_since_start) of the time since the script started"
}
pg_transport() { case $admin in *@%2F*) echo "its Unix socket" ;; *) echo "TCP loopback" ;; esac; }
postgres_conditions() {
    echo "PostgreSQL $(psql -qAt "$admin" -c "SHOW server_version") on the same machine (synchronous_commit=$(psql -qAt "$admin" -c "SHOW synchronous_commit"), fsync=$(psql -qAt "$admin" -c "SHOW fsync"), shared_buffers=$(psql -qAt "$admin" -c "SHOW shared_buffers"), reached over $(pg_transport)), no scheduled settlement close"
}
