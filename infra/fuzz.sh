#!/usr/bin/env bash
# Fuzzes the VietQR decoder with cargo-fuzz (libFuzzer) for a bounded time, then stops.
#
#   infra/fuzz.sh [seconds per target, default 60]
#
# cargo-fuzz needs nightly-only compiler flags; RUSTC_BOOTSTRAP=1 lets the stable toolchain
# accept them. Crashes land in crates/vietqr/fuzz/artifacts/ and fail this script.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../crates/vietqr/fuzz"
seconds=${1:-60}
[[ $seconds =~ ^[0-9]+$ ]] && ((seconds >= 1 && seconds <= 3600)) || { echo "seconds must be 1..3600" >&2; exit 2; }
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-../../../target/fuzz}
mkdir -p corpus/decode corpus/decode_body
# Seed both targets with the published vectors (decode_body gets them without their CRC).
python3 - <<'PY'
import json, pathlib, hashlib
for p in ("../../../../shared/formats/vietqr/vectors.json", "../tests/data/vectors.json"):
    try:
        vectors = json.load(open(p))
        break
    except OSError:
        continue
for v in vectors:
    qr = v["qr"].encode()
    name = hashlib.sha1(qr).hexdigest()
    pathlib.Path("corpus/decode", name).write_bytes(qr)
    pathlib.Path("corpus/decode_body", name).write_bytes(qr[:-8] if qr[-8:-4] == b"6304" else qr)
PY
for target in decode decode_body; do
    echo "== fuzzing $target for ${seconds}s ==" >&2
    cargo fuzz run "$target" "corpus/$target" -- -max_total_time="$seconds" -rss_limit_mb=2048
done
