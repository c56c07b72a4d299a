#!/usr/bin/env bash
# The ledger benchmark: N concurrent clients post transfers that all debit one hot clearing
# account, through the batch RPC (random and time-ordered ids) and with one transfer per RPC,
# against a fresh database on a private PostgreSQL (infra/stack.sh up bench) with
# synchronous_commit on. Measured in the same run, on the same server:
#   - pgbench's TPC-B-like figure (the baseline the targets are ratios of);
#   - the batch RPC's ceiling: the same transfer rows loaded with COPY into a copy of the
#     transfers table with the same indexes, from as many parallel streams as there are cores;
#   - the single-transfer RPC's ceiling: a no-op unary RPC (health Check) from the same load
#     generator at the same concurrency.
#
#   load-tests/ledger-bench.sh [seconds per scenario, default 20]
#
# Loopback only; every step is bounded in time and stops by itself.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds=${1:-20}
[[ $seconds =~ ^[0-9]+$ ]] && ((seconds >= 1 && seconds <= 300)) || { echo "seconds must be 1..300" >&2; exit 2; }

source load-tests/bench-env.sh
bench_setup paymesh_bench
bench_listen "${PAYMESH_BENCH_PORT:-50591}" PAYMESH_LEDGER_LISTEN
export PAYMESH_TELEMETRY_METRICS_LISTEN=127.0.0.1:${PAYMESH_BENCH_METRICS_PORT:-9591}
token=$("$bin/paymesh" token mint operator:bench --ttl 3600)  # it opens accounts and posts: an operator

"$bin/paymesh" serve ledger 2>.paymesh/bench/ledger.log &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true' EXIT
wait_port "$PAYMESH_LEDGER_LISTEN"

pgbench_baseline "$seconds"

run() { "$bin/paymesh-load" ledger --addr "$PAYMESH_LEDGER_LISTEN" --token "$token" --seconds "$seconds" "$@" | echo_err; }
batch=$(run --label batch --clients 8 --batch 1000 --connections 4)
batch_ordered=$(run --label batch-time-ordered --clients 8 --batch 1000 --connections 4 --ids time-ordered)
single=$(run --label single --clients 64 --batch 1 --connections 8)
health=$("$bin/paymesh-load" health --addr "$PAYMESH_LEDGER_LISTEN" --clients 64 --connections 8 --seconds "$seconds" | echo_err)

# The COPY ceiling: the transfer rows the load generator sends (one clearing account, 1000
# merchants, VND, increasing ts), written to files first, then loaded by one psql \copy per
# core into ledger.transfers_copy (LIKE ledger.transfers INCLUDING ALL: the same indexes).
copy_rows=$((seconds * 50000)); ((copy_rows > 2000000)) && copy_rows=2000000
copy_dir=.paymesh/bench/copy
copy_ceiling() { # $1: random | time-ordered; prints rows/s
    local ids streams per start end s select
    streams=$(nproc); per=$((copy_rows / streams))
    case $1 in
        random) ids="gen_random_uuid()" ;;
        time-ordered) ids="(lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1e9)::bigint + g), 16, '0') || substr(md5(g::text), 1, 16))::uuid" ;;
    esac
    rm -rf "$copy_dir"; mkdir -p "$copy_dir"
    psql -q "$PAYMESH_DATABASE_URL" -c "DROP TABLE IF EXISTS ledger.transfers_copy" \
        -c "CREATE TABLE ledger.transfers_copy (LIKE ledger.transfers INCLUDING ALL)"
    for ((s = 0; s < streams; s++)); do
        # One line: psql's \copy reads to the end of its line.
        select="SELECT $ids, '00000000-0000-4000-8000-000000000001'::uuid, ('00000000-0000-4000-8000-' || lpad(to_hex(2 + g % 1000), 12, '0'))::uuid, 10000 + g % 90000, 'VND', 1, 'load', 0, 0, 1700000000000000000 + g, 1700000000000000000 + g FROM generate_series($((s * per + 1)), $(((s + 1) * per))) g"
        psql -q "$PAYMESH_DATABASE_URL" -c "\\copy ($select) TO '$copy_dir/$s.csv' (FORMAT csv)"
    done
    start=$(date +%s.%N)
    for ((s = 0; s < streams; s++)); do
        psql -q "$PAYMESH_DATABASE_URL" -c "\\copy ledger.transfers_copy (id, debit_account_id, credit_account_id, amount, currency, code, reference, flags, timeout_seconds, ts, seq) FROM '$copy_dir/$s.csv' (FORMAT csv)" &
    done
    wait
    end=$(date +%s.%N)
    psql -q "$PAYMESH_DATABASE_URL" -c "DROP TABLE ledger.transfers_copy"
    rm -rf "$copy_dir"
    awk -v n=$((per * streams)) -v a="$start" -v b="$end" 'BEGIN { printf "%.0f", n / (b - a) }'
}
echo "== COPY ceiling: $copy_rows rows, $(nproc) streams ==" >&2
copy_random=$(copy_ceiling random); echo "COPY random ids: $copy_random rows/s" >&2
copy_ordered=$(copy_ceiling time-ordered); echo "COPY time-ordered ids: $copy_ordered rows/s" >&2

stored=$(psql -qAt "$PAYMESH_DATABASE_URL" -c "SELECT count(*) FROM ledger.transfers")
audit=$("$bin/paymesh" ledger audit)

cat <<TABLE

Conditions: $(machine),
$(postgres_conditions), fresh database,
one hot clearing account debited by every transfer, 1000 merchant accounts credited,
${seconds}s per scenario after a 2s warm-up; $stored transfers stored at the end; $audit;
COPY ceiling: $copy_rows rows per variant.

| scenario | clients | transfers/RPC | transfers/s | RPC p50 ms | RPC p99 ms | × pgbench | of its ceiling |
|---|---|---|---|---|---|---|---|
| batch RPC, random ids | $(field "$batch" clients) | $(field "$batch" transfers_per_rpc) | $(field "$batch" transfers_per_s) | $(field "$batch" rpc_p50_ms) | $(field "$batch" rpc_p99_ms) | $(ratio "$(field "$batch" transfers_per_s)" "$pgbench_tps") | $(percent "$(field "$batch" transfers_per_s)" "$copy_random") of COPY |
| batch RPC, time-ordered ids | $(field "$batch_ordered" clients) | $(field "$batch_ordered" transfers_per_rpc) | $(field "$batch_ordered" transfers_per_s) | $(field "$batch_ordered" rpc_p50_ms) | $(field "$batch_ordered" rpc_p99_ms) | $(ratio "$(field "$batch_ordered" transfers_per_s)" "$pgbench_tps") | $(percent "$(field "$batch_ordered" transfers_per_s)" "$copy_ordered") of COPY |
| single-transfer RPC | $(field "$single" clients) | 1 | $(field "$single" transfers_per_s) | $(field "$single" rpc_p50_ms) | $(field "$single" rpc_p99_ms) | $(ratio "$(field "$single" transfers_per_s)" "$pgbench_tps") | $(percent "$(field "$single" transfers_per_s)" "$(field "$health" rpcs_per_s)") of health |
| ceiling: COPY, random ids, $(nproc) streams | – | – | $copy_random rows/s | | | $(ratio "$copy_random" "$pgbench_tps") | |
| ceiling: COPY, time-ordered ids, $(nproc) streams | – | – | $copy_ordered rows/s | | | $(ratio "$copy_ordered" "$pgbench_tps") | |
| ceiling: health Check (no-op unary RPC) | $(field "$health" clients) | – | $(field "$health" rpcs_per_s) RPC/s | $(field "$health" rpc_p50_ms) | $(field "$health" rpc_p99_ms) | $(ratio "$(field "$health" rpcs_per_s)" "$pgbench_tps") | |
| pgbench TPC-B-like (baseline) | 64 | – | ${pgbench_tps%.*} tps | | | 1.0 | |
TABLE
