#!/usr/bin/env bash
# A province's day under load: `paymesh-load province` against the whole mesh in one `paymesh dev`
# process (ledger, merchant, payment, billing, settlement, stall) on a private PostgreSQL, Redis
# and Mosquitto (infra/stack.sh up bench, or PAYMESH_BENCH_STACK): vendors onboarded and
# approved, billers with their bills loaded, then an open-loop mix at a fixed rate — static-QR
# payments (the bank's NotifyCredit), dynamic ones (an intent first), bill lookups and payments
# from payer channels, refunds the bank then settles — with streams watched, and the day's
# settlement window closed early (cut-off now) by an operator in the middle of it.
#
#   load-tests/province-bench.sh [seconds, default 60] [rate in flows/s, default 500] [vendors, default 2000]
#
# PAYMESH_BENCH_PROFILE=debug runs a debug build (the test command's short, bounded run; no
# pgbench then). PAYMESH_BENCH_STACK (default bench) is the stack to use: one of its own keeps
# a run from sharing PostgreSQL with another benchmark. PAYMESH_BENCH_PORT (default 50991) is
# where the search for nine free loopback ports starts. PAYMESH_BENCH_BILLS (default 200000),
# PAYMESH_BENCH_WATCHERS (default 100) and PAYMESH_BENCH_MIX (default
# qr=45,intent=15,bill=20,lookup=15,refund=5) size the rest; the table is also written as JSON
# to PAYMESH_BENCH_JSON (default .paymesh/<stack>/province.json).
#
# The window's close reads every merchant's movements (two ledger pages per merchant and per
# bank): with 2,000 vendors under load it takes about as long as the server's 10 s request
# deadline, and a close cut off by the deadline leaves the settlement lock held, so that no
# close succeeds after it in that process. PAYMESH_SERVER_REQUEST_TIMEOUT_MS=120000 (read by
# `paymesh dev`) gives it room; the conditions print the value used.
#
# Loopback only; every step is bounded in time and stops by itself. The run fails unless its
# checks hold: every acknowledged payment's, bill payment's and refund's transfers in the ledger
# once, the ledger's audit clean, no bill paid twice, every watched event streamed once, the
# window SETTLED, no RPC failed but by an expected refusal or for want of speed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds=${1:-60}
rate=${2:-500}
vendors=${3:-2000}
bills=${PAYMESH_BENCH_BILLS:-200000}
watchers=${PAYMESH_BENCH_WATCHERS:-100}
mix=${PAYMESH_BENCH_MIX:-qr=45,intent=15,bill=20,lookup=15,refund=5}
[[ $seconds =~ ^[0-9]+$ ]] && ((seconds >= 2 && seconds <= 300)) || { echo "seconds must be 2..300" >&2; exit 2; }
[[ $rate =~ ^[0-9]+$ ]] && ((rate >= 1 && rate <= 20000)) || { echo "rate must be 1..20000" >&2; exit 2; }
[[ $vendors =~ ^[0-9]+$ ]] && ((vendors >= 1 && vendors <= 100000)) || { echo "vendors must be 1..100000" >&2; exit 2; }
[[ $bills =~ ^[0-9]+$ ]] && ((bills >= 2 && bills <= 10000000)) || { echo "PAYMESH_BENCH_BILLS must be 2..10000000" >&2; exit 2; }
[[ $watchers =~ ^[0-9]+$ ]] && ((watchers <= 1000)) || { echo "PAYMESH_BENCH_WATCHERS must be 0..1000" >&2; exit 2; }
profile=${PAYMESH_BENCH_PROFILE:-release}
channels=8

source load-tests/bench-env.sh
bench_setup paymesh_province_bench
json=${PAYMESH_BENCH_JSON:-.paymesh/$bench_stack/province.json}
bench_listen "${PAYMESH_BENCH_PORT:-50991}" PAYMESH_LEDGER_LISTEN PAYMESH_MERCHANT_LISTEN \
    PAYMESH_PAYMENT_LISTEN PAYMESH_PAYMENT_WEBHOOK_LISTEN PAYMESH_BILLING_LISTEN \
    PAYMESH_SETTLEMENT_LISTEN PAYMESH_STALL_LISTEN PAYMESH_STALL_PAGE_LISTEN \
    PAYMESH_TELEMETRY_METRICS_LISTEN
export PAYMESH_TELEMETRY_LOG_FORMAT=text
# The operator closes the window (bench_setup turns the scheduled close off).
# The load generator reads its tokens from its environment (not its command line).
operator=$("$bin/paymesh" token mint operator:bench --ttl 3600)
bank=$("$bin/paymesh" token mint bank:970436 --ttl 3600)
tokens=()
for ((c = 1; c <= channels; c++)); do
    tokens+=("$("$bin/paymesh" token mint "channel:bench-app-$c" --ttl 3600)")
done
channel_tokens=$(IFS=,; echo "${tokens[*]}")

logs=.paymesh/$bench_stack
mkdir -p "$logs"
"$bin/paymesh" dev >"$logs/province-dev.out" 2>"$logs/province-dev.log" &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true' EXIT
for listen in PAYMESH_PAYMENT_LISTEN PAYMESH_BILLING_LISTEN PAYMESH_SETTLEMENT_LISTEN; do
    wait_port "${!listen}"
done

baseline=
if [[ $profile == release ]]; then
    pgbench_baseline 10
    baseline="; pgbench TPC-B-like just before: ${pgbench_tps%.*} tps (64 clients, 10 s)"
fi
load=$(cut -d' ' -f1-3 /proc/loadavg)

echo "== province: ${rate} flows/s for ${seconds}s, $vendors vendors, $bills bills ==" >&2
started=$SECONDS
result=$(PAYMESH_LOAD_OPERATOR_TOKEN=$operator PAYMESH_LOAD_BANK_TOKEN=$bank \
    PAYMESH_LOAD_CHANNEL_TOKENS=$channel_tokens \
    timeout $((seconds + 900)) "$bin/paymesh-load" province \
    --merchant-addr "$PAYMESH_MERCHANT_LISTEN" --payment-addr "$PAYMESH_PAYMENT_LISTEN" \
    --billing-addr "$PAYMESH_BILLING_LISTEN" --settlement-addr "$PAYMESH_SETTLEMENT_LISTEN" \
    --vendors "$vendors" --bills "$bills" --watchers "$watchers" --mix "$mix" \
    --rate "$rate" --seconds "$seconds" --json "$json" | echo_err)
took=$((SECONDS - started))
conditions=$(grep '^CONDITIONS' <<<"$result")
run=$(grep '^RESULT' <<<"$result")
checks=$(grep '^CHECK' <<<"$result")

cat <<TABLE

Conditions: $(machine), load average $load before the run, $(postgres_conditions),
the mesh in one \`paymesh dev\` process ($profile build), fresh database, server.request_timeout_ms=${PAYMESH_SERVER_REQUEST_TIMEOUT_MS:-10000}$baseline;
${conditions#CONDITIONS }; ${run#RESULT label=province }; the load generator's whole run (set-up, load, checks) took ${took}s;
checks: ${checks#CHECK }.

$(grep '^|' <<<"$result")
TABLE
