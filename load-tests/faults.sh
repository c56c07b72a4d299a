#!/usr/bin/env bash
# Faults survived, nothing lost: the six services as separate `paymesh serve` processes on a
# private PostgreSQL and Redis (infra/stack.sh up faults), bank credit notifications under load
# (each retried until acknowledged), merchants' streams and webhooks, intents under idempotency
# keys, a kiosk paying bills; then, one after another: PostgreSQL crashed and restarted, Redis
# stopped, started and flushed, each service kill -9'd and restarted, PostgreSQL paused (SIGSTOP)
# past every deadline, the webhook receiver dropped. After each: every acknowledged payment in
# the ledger exactly once, nothing half-applied, the ledger balanced, every event delivered,
# every idempotency key answering as before, every service answering by itself. Prints a table
# (fault, load during it, checks, result); fails if any check fails. See README.md ("Faults"),
# `paymesh-load faults --help` and load-tests/src/faults.rs.
#
#   load-tests/faults.sh            the full run (release build, default timeouts; ~6 min)
#   load-tests/faults.sh --short    the test command's bounded version (shorter faults, shorter
#                                   timeouts, fewer merchants; under ~90 s in a debug build)
#
# PAYMESH_BENCH_PROFILE=debug|release (default release; the test command runs debug).
# PAYMESH_FAULTS=f1,f2,… runs only those (none, pg-restart, redis-flush, kill-<service>, kill-all,
# pg-pause, webhook-drop, all). PAYMESH_FAULTS_STACK (default faults) names the stack.
# PAYMESH_FAULTS_PORT (default 29101) is where the search for eight free loopback ports starts:
# below the kernel's ephemeral range, so no client's connection can take a killed service's port
# before it is started again. Loopback only; every step is bounded in time and stops by itself.
# The stack is left running (PostgreSQL, Redis and Mosquitto); `infra/stack.sh down faults` stops
# it. Logs: .paymesh/<stack>/logs/ (each service's, and pg_ctl's).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mode=full
case "$#:${1:-}" in
0:) ;;
1:--short) mode=short ;;
*)
    sed -n '2,25s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
    exit 2
    ;;
esac

source load-tests/bench-env.sh # bench_listen, machine
stack=${PAYMESH_FAULTS_STACK:-faults}
state=.paymesh/$stack
stack_env=$(infra/stack.sh up "$stack") || { echo "faults.sh: the $stack stack did not start" >&2; exit 1; }
eval "$stack_env"
# One run per stack at a time (this one restarts and pauses its servers). The lock is not passed
# on to paymesh-load: a PostgreSQL it restarts would hold it.
exec 5>>"$state/faults.lock"
flock -n 5 || { echo "faults.sh: another run uses the $stack stack" >&2; exit 1; }
profile=${PAYMESH_BENCH_PROFILE:-release}
case $profile in
release) cargo build --release --locked -p paymesh -p paymesh-load >&2 ;;
debug) cargo build --locked -p paymesh -p paymesh-load >&2 ;;
*) echo "PAYMESH_BENCH_PROFILE must be release or debug" >&2; exit 2 ;;
esac
bin=target/$profile

# A fresh database for the run.
admin=$PAYMESH_DATABASE_URL
db=paymesh_faults
"$PAYMESH_PG_BIN/psql" -X -q "$admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
export PAYMESH_DATABASE_URL=${admin%/*}/$db

keys=$state/keys
export PAYMESH_AUTH_PRIVATE_KEY_FILE=$keys/private/mesh.pem
export PAYMESH_AUTH_OPERATOR_PRIVATE_KEY_FILE=$keys/private/operator.pem
export PAYMESH_AUTH_PUBLIC_KEYS_DIR=$keys/public
export PAYMESH_TELEMETRY_LOG_FORMAT=text PAYMESH_TELEMETRY_LOG_LEVEL=warn
export PAYMESH_STALL_MQTT_URL=$PAYMESH_MQTT_URL
# The key billing signs lookup references with, as a deployment sets it: left empty, each billing
# process draws its own, and a restart refuses every lookup reference handed out before it —
# payments in flight, and replays under their idempotency key once Redis has lost the answer
# (INVALID_ARGUMENT). `PAYMESH_BILLING_LOOKUP_KEY= load-tests/faults.sh` runs without it.
export PAYMESH_BILLING_LOOKUP_KEY=${PAYMESH_BILLING_LOOKUP_KEY-faults-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')}
"$bin/paymesh" token keygen >&2
export PAYMESH_LOAD_OPERATOR_TOKEN PAYMESH_LOAD_BANK_TOKEN PAYMESH_LOAD_CHANNEL_TOKEN
PAYMESH_LOAD_OPERATOR_TOKEN=$("$bin/paymesh" token mint operator:faults --ttl 3600)
PAYMESH_LOAD_BANK_TOKEN=$("$bin/paymesh" token mint bank:970436 --ttl 3600)
PAYMESH_LOAD_CHANNEL_TOKEN=$("$bin/paymesh" token mint channel:faults-kiosk --ttl 3600)
bench_listen "${PAYMESH_FAULTS_PORT:-29101}" PAYMESH_LEDGER_LISTEN PAYMESH_MERCHANT_LISTEN \
    PAYMESH_BILLING_LISTEN PAYMESH_PAYMENT_LISTEN PAYMESH_SETTLEMENT_LISTEN PAYMESH_STALL_LISTEN \
    PAYMESH_PAYMENT_WEBHOOK_LISTEN PAYMESH_STALL_PAGE_LISTEN

if [[ $mode == short ]]; then
    # Deadlines short enough for a 6 s pause to outlast them all (the ledger client's is 5 s),
    # webhook retries from 200 ms, an idempotency lease of 3 s (a key held by a killed process).
    export PAYMESH_SERVER_REQUEST_TIMEOUT_MS=2000 PAYMESH_DATABASE_ACQUIRE_TIMEOUT_MS=2000
    export PAYMESH_IDEMPOTENCY_LEASE_MS=3000
    export PAYMESH_PAYMENT_WEBHOOK_BACKOFF_MS=200 PAYMESH_PAYMENT_WEBHOOK_BACKOFF_MAX_MS=1000
    faults=all
    args=(--merchants 16 --clients 8 --rate 40 --watchers 3 --bills 600 --bill-rate 8
        --load-seconds 1.5 --down-seconds 0.5 --pause-seconds 6 --receiver-down-seconds 2
        --recover-seconds 30 --settle-seconds 60 --drain-seconds 30)
    limit=300
else
    # Production's defaults (request 10 s, lease 30 s, webhook retries from 5 s doubling).
    faults=none,all
    args=(--merchants 40 --clients 16 --rate 100 --watchers 4 --bills 3000 --bill-rate 8
        --load-seconds 5 --down-seconds 2 --pause-seconds 12 --receiver-down-seconds 15
        --recover-seconds 30 --settle-seconds 120 --drain-seconds 90)
    limit=1800
fi

logs=$state/logs
pids=$state/faults.pids
rm -rf "$logs"
mkdir -p "$logs"
: >"$pids"
# If paymesh-load dies without stopping its services, they are stopped here (by their pids,
# only if still a paymesh process), and PostgreSQL is never left paused.
cleanup() {
    local pid name pm
    while read -r pid name; do
        [[ $pid =~ ^[0-9]+$ && $(cat "/proc/$pid/comm" 2>/dev/null) == paymesh ]] || continue
        echo "faults.sh: stopping $name (pid $pid) left behind" >&2
        kill -TERM "$pid" 2>/dev/null || true
    done <"$pids"
    pm=$(head -n 1 "$state/pg/postmaster.pid" 2>/dev/null) || return 0
    [[ $pm =~ ^[0-9]+$ ]] || return 0
    # shellcheck disable=SC2046 # one pid per word
    kill -CONT "$pm" $(ps -o pid= --ppid "$pm") 2>/dev/null || true
}
trap cleanup EXIT

pg_user=
((EUID != 0)) || pg_user=postgres
echo "== faults ($mode, $profile build): logs in $logs ==" >&2
timeout --kill-after=10 "$limit" "$bin/paymesh-load" faults --paymesh "$bin/paymesh" \
    --log-dir "$logs" --pids-file "$pids" --pg-data "$state/pg" --pg-log "$state/postgres.log" \
    --pg-user "$pg_user" --redis-conf "$state/redis/redis.conf" --build "$profile" \
    --faults "${PAYMESH_FAULTS:-$faults}" "${args[@]}" 5>&-
echo "Machine: $(machine)."
