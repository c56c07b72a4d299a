#!/usr/bin/env bash
# Runs every paymesh test on this machine, from a fresh clone:
#   - installs what is missing (PostgreSQL, Redis, Mosquitto, xmllint, zbarimg, Chromium, fonts,
#     python3-venv) from Debian,
#   - starts a private PostgreSQL, Redis and Mosquitto for tests (infra/stack.sh up test: own
#     folder, own ports),
#   - checks formatting and lints, lints the protos with buf (pinned in infra/tools/, installed
#     from the npm registry into .paymesh/tools/), runs the Rust test suite against them,
#   - checks the gRPC surface with an independent client (Python grpcio),
#   - stops the test stack again and deletes its data (PAYMESH_KEEP_STACK=1 keeps it running).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*" >&2; }

step "test stack (PostgreSQL + Redis + Mosquitto)"
export PAYMESH_APT_EXTRA="${PAYMESH_APT_EXTRA:-} libxml2-utils zbar-tools python3 python3-venv python3-pip chromium fonts-noto-core"
# buf (the proto linter) comes from the npm registry, pinned by infra/tools/package-lock.json,
# into .paymesh/tools/. The copy of the lock file there says which version is installed; npm
# is needed (and installed from Debian when missing) only when that is not the pinned one.
tools=.paymesh/tools
buf=$tools/node_modules/.bin/buf
buf_installed() { [[ -x $buf ]] && cmp -s infra/tools/package-lock.json "$tools/installed.lock"; }
if ! buf_installed && ! command -v npm >/dev/null; then
    PAYMESH_APT_EXTRA+=" nodejs npm"
fi
# (Not `eval "$(…)"` alone: a failed substitution inside eval would not stop the script.)
stack_env=$(infra/stack.sh up test) || { echo "test.sh: the test stack did not start" >&2; exit 1; }
eval "$stack_env"
if [[ ${PAYMESH_KEEP_STACK:-0} != 1 ]]; then
    # Purged, not only stopped: every test makes a fresh database and none is dropped, so a
    # kept data folder grows by gigabytes a run (17 GB seen on a long-lived machine).
    trap 'infra/stack.sh down test --purge >/dev/null 2>&1 || true' EXIT
fi

step "format and lints"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "proto lint (buf lint proto; rules in proto/buf.yaml)"
if ! buf_installed; then
    rm -rf "$tools"
    mkdir -p "$tools"
    cp infra/tools/package.json infra/tools/package-lock.json "$tools/"
    # --ignore-scripts: the package's postinstall only caches the path of the platform binary,
    # which its bin/buf wrapper otherwise finds by itself.
    (cd "$tools" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
    cp infra/tools/package-lock.json "$tools/installed.lock"
fi
printf 'buf %s\n' "$("$buf" --version)" >&2
"$buf" lint proto

step "Python for the independent checks (grpcio, mt-940)"
venv=.paymesh/venv
if [[ ! -x $venv/bin/pytest ]] || ! cmp -s tests/grpc/requirements.txt "$venv/requirements.txt"; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/grpc/requirements.txt
    cp tests/grpc/requirements.txt "$venv/requirements.txt"
fi
# The Rust tests check the MT940 files they write with the mt-940 package through it.
export PAYMESH_PYTHON=$PWD/$venv/bin/python

step "Rust tests (real PostgreSQL at $PAYMESH_DATABASE_URL, Redis at $PAYMESH_REDIS_URL)"
cargo test --workspace --locked

step "gRPC surface through Python grpcio"
cargo build --locked -p paymesh
"$venv/bin/pytest" -q -p no:cacheprovider tests/grpc

step "browser harness: headless Chromium through CDP (tests/browser)"
"$venv/bin/pytest" -q -p no:cacheprovider tests/browser

step "payment load scenario, short and bounded (the full run: load-tests/payment-bench.sh)"
# Its own PostgreSQL and Redis (the bench stack), a debug build, 3 s of load on 100 merchants;
# it fails unless its checks hold (ledger, streams, webhooks). Numbers from it mean nothing.
PAYMESH_BENCH_PROFILE=debug PAYMESH_BENCH_PORT=50791 load-tests/payment-bench.sh 3 100 8

step "bill-payment load scenario, short and bounded (the full run: load-tests/billing-bench.sh)"
# 20,000 bills, 3 s of lookups and of payments (5 % racing for the same bill) in a debug build;
# it fails unless every bill loads and no bill is paid twice. Numbers from it mean nothing.
PAYMESH_BENCH_PROFILE=debug PAYMESH_BENCH_PORT=50801 load-tests/billing-bench.sh 20000 3 8

step "a province's day, short and bounded (the full run: load-tests/province-bench.sh)"
# 50 vendors, 5,000 bills, 6 s of the mixed open-loop load (QR payments, intents, bills,
# refunds, 20 streams watched) at 50 flows/s with the window closed early in the middle, debug
# build; it fails unless its checks hold (ledger once and audited, no bill paid twice, every
# watched event streamed, the window SETTLED). Numbers from it mean nothing.
PAYMESH_BENCH_PROFILE=debug PAYMESH_BENCH_PORT=50811 PAYMESH_BENCH_BILLS=5000 PAYMESH_BENCH_WATCHERS=20 \
    load-tests/province-bench.sh 6 50 50

step "settlement benchmarks, short and bounded (the full run: load-tests/recon-bench.sh)"
# 20,000 statement lines with planted breaks and a 20,000-entry camt.053 (validated by
# xmllint), debug build: it fails unless the run finds exactly the breaks planted. Numbers from
# it mean nothing.
PAYMESH_BENCH_PROFILE=debug PAYMESH_BENCH_VALIDATE=1 load-tests/recon-bench.sh 20000 20000
[[ ${PAYMESH_KEEP_STACK:-} == 1 ]] || infra/stack.sh down bench

step "faults under load, short and bounded (the full run: load-tests/faults.sh)"
# The six services as separate processes on a stack of their own, debug build: PostgreSQL
# crashed and paused past every deadline, Redis flushed, each service kill -9'd, the webhook
# receiver dropped, each under load; it fails unless nothing acknowledged is lost or applied
# twice, nothing is half-applied, the ledger balances, every event arrives and every service
# recovers by itself. Numbers from it mean nothing.
PAYMESH_BENCH_PROFILE=debug PAYMESH_FAULTS_STACK=faults-test PAYMESH_FAULTS_PORT=29141 load-tests/faults.sh --short
[[ ${PAYMESH_KEEP_STACK:-} == 1 ]] || infra/stack.sh down faults-test
