#!/usr/bin/env bash
# Installs what the tests need beyond the build, when it is missing:
# cargo-nextest, Chromium, Node.js, dcm2niix and Python's venv (Debian),
# playwright-core (npm).
set -euo pipefail
sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
cd "$(dirname "$0")/.."

need_apt=()
command -v chromium >/dev/null || need_apt+=(chromium)
command -v node >/dev/null || need_apt+=(nodejs)
command -v npm >/dev/null || need_apt+=(npm)
command -v psql >/dev/null || need_apt+=(postgresql-client)
command -v dcm2niix >/dev/null || need_apt+=(dcm2niix)
python3 -c 'import ensurepip, venv' 2>/dev/null || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need_apt[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_apt[@]}"
fi
command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest
if [ ! -d end2end/node_modules/playwright-core ]; then
  (cd end2end && npm ci --no-audit --no-fund --loglevel=error)
fi
