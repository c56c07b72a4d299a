#!/usr/bin/env bash
# The bill-payment benchmark: billers' bulk loads (UpsertBills streams, one transaction each),
# payer channels' lookups offered open-loop at a fixed rate, and their payments (lookup, then
# PayBill quoting it) from many channels at once, some racing another channel for the same bill,
# against the mesh in one `paymesh dev` process (ledger, merchant, billing, payment) on a private
# PostgreSQL and Redis (infra/stack.sh up bench), with pgbench's TPC-B-like figure measured in
# the same run as the baseline the targets are ratios of. Then the database is read: no bill
# paid twice.
#
#   load-tests/billing-bench.sh [bills, default 1000000] [seconds, default 20] [clients, default 64]
#
# Targets (issue): load >= 16x pgbench bills/s; lookup p99 <= 5 ms at 5,000/s offered;
# payments >= 1x pgbench.
#
# PAYMESH_BENCH_BILLERS (default 2) spreads the bills over that many billers.
# PAYMESH_BENCH_PROFILE=debug runs a debug build (the test command's short, bounded run; it
# offers 500 lookups/s unless PAYMESH_BENCH_LOOKUP_RATE says otherwise). PAYMESH_BENCH_PORT
# (default 50891) is where the search for six free loopback ports starts. Every step is bounded
# in time and stops by itself. The run fails unless every bill loads, no lookup or payment fails, each race ends
# with one payment and one BILL_PAID refusal, and the database shows no bill paid twice.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bills=${1:-1000000}
seconds=${2:-20}
clients=${3:-64}
[[ $bills =~ ^[0-9]+$ ]] && ((bills >= 100 && bills <= 10000000)) || { echo "bills must be 100..10000000" >&2; exit 2; }
[[ $seconds =~ ^[0-9]+$ ]] && ((seconds >= 1 && seconds <= 300)) || { echo "seconds must be 1..300" >&2; exit 2; }
[[ $clients =~ ^[0-9]+$ ]] && ((clients >= 1 && clients <= 1024)) || { echo "clients must be 1..1024" >&2; exit 2; }
profile=${PAYMESH_BENCH_PROFILE:-release}
if [[ $profile == release ]]; then lookup_rate_default=5000; else lookup_rate_default=500; fi
lookup_rate=${PAYMESH_BENCH_LOOKUP_RATE:-$lookup_rate_default}
[[ $lookup_rate =~ ^[0-9]+$ ]] && ((lookup_rate >= 1 && lookup_rate <= 100000)) || { echo "PAYMESH_BENCH_LOOKUP_RATE must be 1..100000" >&2; exit 2; }
channels=8

source load-tests/bench-env.sh
bench_setup paymesh_billing_bench
bench_listen "${PAYMESH_BENCH_PORT:-50891}" PAYMESH_LEDGER_LISTEN PAYMESH_MERCHANT_LISTEN \
    PAYMESH_PAYMENT_LISTEN PAYMESH_PAYMENT_WEBHOOK_LISTEN PAYMESH_BILLING_LISTEN \
    PAYMESH_TELEMETRY_METRICS_LISTEN
export PAYMESH_TELEMETRY_LOG_FORMAT=text
# The load generator reads the operator's and the channels' tokens from its environment (not
# its command line); they are given to it alone.
operator=$("$bin/paymesh" token mint operator:bench --ttl 3600)
tokens=()
for ((c = 1; c <= channels; c++)); do
    tokens+=("$("$bin/paymesh" token mint "channel:bench-app-$c" --ttl 3600)")
done
channel_tokens=$(IFS=,; echo "${tokens[*]}")

mkdir -p .paymesh/bench
"$bin/paymesh" dev >.paymesh/bench/billing-dev.out 2>.paymesh/bench/billing-dev.log &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true' EXIT
wait_port "$PAYMESH_BILLING_LISTEN"
wait_port "$PAYMESH_PAYMENT_LISTEN"

pgbench_baseline "$((seconds < 20 ? seconds : 20))"

echo "== bills: $bills bills, lookups at ${lookup_rate}/s and $clients paying clients for ${seconds}s each ==" >&2
result=$(PAYMESH_LOAD_OPERATOR_TOKEN=$operator PAYMESH_LOAD_CHANNEL_TOKENS=$channel_tokens \
    timeout $((2 * seconds + 900)) "$bin/paymesh-load" bills \
    --billing-addr "$PAYMESH_BILLING_LISTEN" --merchant-addr "$PAYMESH_MERCHANT_LISTEN" \
    --bills "$bills" --billers "${PAYMESH_BENCH_BILLERS:-2}" \
    --lookup-rate "$lookup_rate" --seconds "$seconds" --clients "$clients" | echo_err)
loaded=$(grep '^RESULT label=bills-load ' <<<"$result")
looked=$(grep '^RESULT label=bills-lookup ' <<<"$result")
paid=$(grep '^RESULT label=bills-pay ' <<<"$result")
checks=$(grep '^CHECK' <<<"$result")
audit=$("$bin/paymesh" ledger audit)

cat <<TABLE

Conditions: $(machine), $(postgres_conditions), the mesh in one \`paymesh dev\` process
($profile build), fresh database; $(field "$loaded" billers) billers (EXACT, customer codes PE + 11 digits),
$(field "$loaded" loaded) bills over $(field "$loaded" customers_per_biller) customers per biller; loads of $(field "$loaded" bills_per_stream) bills per stream
(one transaction), $(field "$loaded" bills_per_message) per message, $(field "$loaded" streams_in_flight) streams in flight (longest stream $(field "$loaded" stream_max_s) s); lookups
open loop from up to $(field "$looked" in_flight_max) concurrent tasks over $(field "$looked" connections) connections as $channels channels, latency from each lookup's due time (released by a thread of
their own; the generator's own send lag p99 $(field "$looked" send_lag_p99_ms) ms, counted in);
payments closed loop, $clients clients, $(field "$paid" raced_pct) % racing another channel for the same bill; ${seconds}s per
timed phase after a 2s warm-up; checks: ${checks#CHECK }; $audit.

| scenario | concurrency | rate | p50 ms | p95 ms | p99 ms | × pgbench | target |
|---|---|---|---|---|---|---|---|
| UpsertBills (bulk load) | $(field "$loaded" streams_in_flight) streams | $(field "$loaded" bills_per_s) bills/s | | | | $(ratio "$(field "$loaded" bills_per_s)" "$pgbench_tps") | ≥ 16 × pgbench |
| LookupBills (open loop) | ≤ $(field "$looked" in_flight_max) tasks | $(field "$looked" offered_per_s)/s offered, $(field "$looked" achieved_per_s)/s answered | $(field "$looked" lookup_p50_ms) | $(field "$looked" lookup_p95_ms) | $(field "$looked" lookup_p99_ms) | | p99 ≤ 5 ms at 5,000/s |
| PayBill (lookup, then pay; $(field "$paid" refused_expected) races refused BILL_PAID) | $clients clients | $(field "$paid" payments_per_s) payments/s | $(field "$paid" pay_p50_ms) | | $(field "$paid" pay_p99_ms) | $(ratio "$(field "$paid" payments_per_s)" "$pgbench_tps") | ≥ 1 × pgbench |
| lookup + PayBill, as the channel sees it | $clients clients | | $(field "$paid" flow_p50_ms) | | $(field "$paid" flow_p99_ms) | | |
| pgbench TPC-B-like (baseline) | 64 | ${pgbench_tps%.*} tps | | | | 1.0 | |
TABLE
