#!/usr/bin/env bash
# The payment benchmark (issue 8): the acquiring bank's credit notifications through the payment
# service's whole path — matching, the merchant directory, the ledger chain on one hot clearing
# account, the event stream and the webhook outbox — against the mesh in one `paymesh dev`
# process on a private PostgreSQL and Redis (infra/stack.sh up bench), with pgbench's
# TPC-B-like figure measured in the same run as the baseline the target is a ratio of.
#
#   load-tests/payment-bench.sh [seconds, default 60] [merchants, default 10000] [clients, default 64]
#
# PAYMESH_BENCH_PROFILE=debug runs a debug build (the test command's short, bounded run).
# Loopback only; every step is bounded in time and stops by itself. The run fails unless its
# checks hold (ledger moved by exactly what was notified, every watched payment streamed once,
# every payment's webhook delivered).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds=${1:-60}
merchants=${2:-10000}
clients=${3:-64}
[[ $seconds =~ ^[0-9]+$ ]] && ((seconds >= 1 && seconds <= 300)) || { echo "seconds must be 1..300" >&2; exit 2; }
[[ $merchants =~ ^[0-9]+$ ]] && ((merchants >= 1 && merchants <= 20000)) || { echo "merchants must be 1..20000" >&2; exit 2; }
[[ $clients =~ ^[0-9]+$ ]] && ((clients >= 1 && clients <= 1024)) || { echo "clients must be 1..1024" >&2; exit 2; }

source load-tests/bench-env.sh
bench_setup paymesh_payment_bench
bench_listen "${PAYMESH_BENCH_PORT:-50691}" PAYMESH_LEDGER_LISTEN PAYMESH_MERCHANT_LISTEN \
    PAYMESH_PAYMENT_LISTEN PAYMESH_PAYMENT_WEBHOOK_LISTEN PAYMESH_TELEMETRY_METRICS_LISTEN \
    PAYMESH_BILLING_LISTEN
export PAYMESH_TELEMETRY_LOG_FORMAT=text
operator=$("$bin/paymesh" token mint operator:bench --ttl 3600)
bank=$("$bin/paymesh" token mint bank:970436 --ttl 3600)

mkdir -p .paymesh/bench
"$bin/paymesh" dev >.paymesh/bench/payment-dev.out 2>.paymesh/bench/payment-dev.log &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true' EXIT
wait_port "$PAYMESH_PAYMENT_LISTEN"

pgbench_baseline "$((seconds < 20 ? seconds : 20))"

echo "== payments: $merchants merchants, $clients clients, ${seconds}s ==" >&2
result=$(timeout $((seconds + 900)) "$bin/paymesh-load" payments \
    --ledger-addr "$PAYMESH_LEDGER_LISTEN" --merchant-addr "$PAYMESH_MERCHANT_LISTEN" \
    --payment-addr "$PAYMESH_PAYMENT_LISTEN" --operator-token "$operator" --bank-token "$bank" \
    --merchants "$merchants" --clients "$clients" --seconds "$seconds" | echo_err)
run=$(grep '^RESULT' <<<"$result")
checks=$(grep '^CHECK' <<<"$result")
audit=$("$bin/paymesh" ledger audit)

cat <<TABLE

Conditions: $(machine), $(postgres_conditions), the mesh in one \`paymesh dev\` process
(${PAYMESH_BENCH_PROFILE:-release} build), fresh database; $merchants merchants (each with an open intent and a
webhook endpoint on the load generator's receiver), one hot bank clearing account, $(field "$run" watchers)
merchants' streams watched; ${seconds}s after a 2s warm-up; checks: ${checks#CHECK }; $audit.

| scenario | clients | payments/s | RPC p50 ms | RPC p99 ms | notification p50 ms | notification p99 ms | × pgbench |
|---|---|---|---|---|---|---|---|
| NotifyCredit (first credit of a merchant pays its intent, later ones by virtual account) | $clients | $(field "$run" payments_per_s) | $(field "$run" rpc_p50_ms) | $(field "$run" rpc_p99_ms) | $(field "$run" notify_p50_ms) | $(field "$run" notify_p99_ms) | $(ratio "$(field "$run" payments_per_s)" "$pgbench_tps") |
| pgbench TPC-B-like (baseline) | 64 | ${pgbench_tps%.*} tps | | | | | 1.0 |
TABLE
