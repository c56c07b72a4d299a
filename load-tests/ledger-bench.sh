#!/usr/bin/env bash
# The ledger benchmark: N concurrent clients post transfers that all debit one hot clearing
# account, through the batch RPC and with one transfer per RPC, against a fresh database on a
# private PostgreSQL (infra/stack.sh up bench) with synchronous_commit on; the same server's
# pgbench TPC-B-like figure is measured in the same run as the baseline.
#
#   load-tests/ledger-bench.sh [seconds per scenario, default 20]
#
# Loopback only; every step is bounded in time and stops by itself.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds=${1:-20}
[[ $seconds =~ ^[0-9]+$ ]] && ((seconds >= 1 && seconds <= 300)) || { echo "seconds must be 1..300" >&2; exit 2; }

eval "$(infra/stack.sh up bench)"
admin=$PAYMESH_DATABASE_URL
base=${admin%/*}
cargo build --release --locked -p paymesh -p paymesh-load >&2
bin=target/release
psql -q "$admin" -c "DROP DATABASE IF EXISTS paymesh_bench" -c "CREATE DATABASE paymesh_bench" \
    -c "DROP DATABASE IF EXISTS pgbench" -c "CREATE DATABASE pgbench"

keys=.paymesh/bench/keys
export PAYMESH_DATABASE_URL=$base/paymesh_bench
export PAYMESH_AUTH_PRIVATE_KEY_FILE=$keys/jwt-private.pem PAYMESH_AUTH_PUBLIC_KEY_FILE=$keys/jwt-public.pem
export PAYMESH_LEDGER_LISTEN=127.0.0.1:${PAYMESH_BENCH_PORT:-50591}
export PAYMESH_TELEMETRY_METRICS_LISTEN=127.0.0.1:${PAYMESH_BENCH_METRICS_PORT:-9591}
export PAYMESH_TELEMETRY_LOG_LEVEL=warn
"$bin/paymesh" token keygen >&2
token=$("$bin/paymesh" token mint service:load --ttl 3600)

"$bin/paymesh" serve ledger 2>.paymesh/bench/ledger.log &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/${PAYMESH_LEDGER_LISTEN%:*}/${PAYMESH_LEDGER_LISTEN#*:}") 2>/dev/null && break
    sleep 0.1
done

echo "== pgbench TPC-B-like baseline, 64 clients, ${seconds}s ==" >&2
"$PAYMESH_PG_BIN/pgbench" -q -i -s 10 "$base/pgbench" >/dev/null 2>&1
pgbench_tps=$("$PAYMESH_PG_BIN/pgbench" -n -M prepared -c 64 -j 2 -T "$seconds" "$base/pgbench" 2>/dev/null |
    sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -1)
echo "pgbench tps=$pgbench_tps" >&2

run() { "$bin/paymesh-load" ledger --addr "$PAYMESH_LEDGER_LISTEN" --token "$token" --seconds "$seconds" "$@" | tee /dev/stderr; }
batch=$(run --label batch --clients 8 --batch 1000 --connections 4)
single=$(run --label single --clients 64 --batch 1 --connections 8)

field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"; }
stored=$(psql -qAt "$PAYMESH_DATABASE_URL" -c "SELECT count(*) FROM ledger.transfers")
audit=$("$bin/paymesh" ledger audit)
pgv=$(psql -qAt "$admin" -c "SHOW server_version")
sync=$(psql -qAt "$admin" -c "SHOW synchronous_commit")
fsync=$(psql -qAt "$admin" -c "SHOW fsync")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f", a / b; else print "n/a" }'; }

cat <<TABLE

Conditions: $(nproc) cores ($(sed -n 's/^model name\s*:\s*//p' /proc/cpuinfo | head -1)), $(free -g | awk '/Mem:/ {print $2}') GiB RAM,
PostgreSQL $pgv on the same machine (synchronous_commit=$sync, fsync=$fsync), fresh database,
one hot clearing account debited by every transfer, 1000 merchant accounts credited,
${seconds}s per scenario after a 2s warm-up; $stored transfers stored at the end; $audit.

| scenario | clients | transfers/RPC | transfers/s | RPC p50 ms | RPC p99 ms | × pgbench |
|---|---|---|---|---|---|---|
| batch RPC | $(field "$batch" clients) | $(field "$batch" transfers_per_rpc) | $(field "$batch" transfers_per_s) | $(field "$batch" rpc_p50_ms) | $(field "$batch" rpc_p99_ms) | $(ratio "$(field "$batch" transfers_per_s)" "$pgbench_tps") |
| single-transfer RPC | $(field "$single" clients) | 1 | $(field "$single" transfers_per_s) | $(field "$single" rpc_p50_ms) | $(field "$single" rpc_p99_ms) | $(ratio "$(field "$single" transfers_per_s)" "$pgbench_tps") |
| pgbench TPC-B-like (baseline) | 64 | – | ${pgbench_tps%.*} tps | | | 1.0 |
TABLE
