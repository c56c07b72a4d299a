#!/usr/bin/env bash
# The settlement benchmarks: a bank's statement of N lines imported and matched three ways
# against N bookings, with about 1 % of each break planted (the run fails unless it finds
# exactly what was planted), and a day's camt.053 of N entries produced (rendered from
# PostgreSQL by streaming, SHA-256 taken), each with the process's peak memory; in-process
# through the settlement library on the private bench PostgreSQL (infra/stack.sh up bench).
#
#   load-tests/recon-bench.sh [lines, default 1000000] [entries, default 1000000]
#
# Targets (issue 10): reconcile 1,000,000 lines against 1,000,000 transfers in <= 10 s with
# <= 1 GiB peak; produce a 1,000,000-entry camt.053 in <= 15 s with <= 256 MiB.
#
# PAYMESH_BENCH_PROFILE=debug runs a debug build (the test command's short, bounded run;
# numbers from it mean nothing). PAYMESH_BENCH_VALIDATE=1 also writes the camt.053 out and
# validates it with `xmllint --stream --schema` (not timed). Loopback only; stops by itself.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
lines=${1:-1000000}
entries=${2:-1000000}
[[ $lines =~ ^[0-9]+$ ]] && ((lines >= 100 && lines <= 5000000)) || { echo "lines must be 100..5000000" >&2; exit 2; }
[[ $entries =~ ^[0-9]+$ ]] && ((entries >= 1 && entries <= 5000000)) || { echo "entries must be 1..5000000" >&2; exit 2; }
profile=${PAYMESH_BENCH_PROFILE:-release}

source load-tests/bench-env.sh
bench_setup paymesh_recon_bench
recon=$(timeout 1200 "$bin/paymesh-load" recon --bookings "$lines" | echo_err)
psql -q "$admin" -c "DROP DATABASE IF EXISTS paymesh_camt_bench" -c "CREATE DATABASE paymesh_camt_bench"
out_args=()
if [[ ${PAYMESH_BENCH_VALIDATE:-0} == 1 ]]; then
    out=.paymesh/bench/camt053-bench.xml
    mkdir -p .paymesh/bench
    out_args=(--out "$out")
fi
camt=$(PAYMESH_DATABASE_URL=$base/paymesh_camt_bench timeout 1200 "$bin/paymesh-load" camt --entries "$entries" "${out_args[@]}" | echo_err)
validated="not validated (PAYMESH_BENCH_VALIDATE=1 does)"
if [[ ${PAYMESH_BENCH_VALIDATE:-0} == 1 ]]; then
    xmllint --noout --stream --schema ../shared/formats/iso20022/camt.053.001.08.xsd "$out" >&2
    validated="validated by xmllint --stream --schema camt.053.001.08.xsd"
    rm -f "$out"
fi
r=$(grep '^RESULT label=recon ' <<<"$recon")
c=$(grep '^RESULT label=camt ' <<<"$camt")
cat <<TABLE

Conditions: $(machine), $(postgres_conditions), the settlement library in one process ($profile
build) on a fresh database; statement as paymesh's CSV; the camt.053 $validated.

| benchmark | size | time | peak memory | target |
|---|---|---|---|---|
| import + three-way match + store a statement | $(field "$r" lines) lines ($(field "$r" csv_mb) MB) vs $(field "$r" bookings) bookings | $(field "$r" seconds) s (read $(field "$r" read_ms) ms while the bookings load, loaded at $(field "$r" loaded_ms) ms, match $(field "$r" match_ms) ms, store $(field "$r" store_ms) ms) | $(field "$r" peak_mib) MiB | ≤ 10 s, ≤ 1 GiB |
| produce a day's camt.053 | $(field "$c" entries) entries ($(field "$c" mb) MB) | $(field "$c" seconds) s | $(field "$c" peak_mib) MiB | ≤ 15 s, ≤ 256 MiB |

$(grep '^recon: every' <<<"$recon")
TABLE
