#!/usr/bin/env bash
# A Python with PyTorch (CPU use), scikit-image and nibabel for the
# reference runs the benchmarks and recorded test references compare
# against: /var/cache/gyri/torch-venv (else ./target/torch-venv). Prints
# the python to use. Quick when it is there.
set -euo pipefail
dir=/var/cache/gyri/torch-venv
mkdir -p "$(dirname "$dir")" 2>/dev/null && [ -w "$(dirname "$dir")" ] || dir="$(pwd)/target/torch-venv"
if ! "$dir/bin/python" -c 'import torch, skimage, nibabel, safetensors' 2>/dev/null; then
  python3 -m venv "$dir"
  "$dir/bin/pip" install -q --disable-pip-version-check \
    "torch==2.15.0" "numpy==2.4.6" "scipy==1.17.1" "scikit-image==0.26.0" \
    "nibabel==5.4.2" "safetensors==0.8.0" "requests" "appdirs" >&2
fi
echo "$dir/bin/python"
