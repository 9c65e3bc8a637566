#!/usr/bin/env bash
# Installs what the tests need beyond the build, when it is missing:
# cargo-nextest, Chromium and Node.js (Debian), playwright-core (npm).
set -euo pipefail
sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
cd "$(dirname "$0")/.."

need_apt=()
command -v chromium >/dev/null || need_apt+=(chromium)
command -v node >/dev/null || need_apt+=(nodejs)
command -v npm >/dev/null || need_apt+=(npm)
command -v psql >/dev/null || need_apt+=(postgresql-client)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need_apt[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_apt[@]}"
fi
command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest
if [ ! -d end2end/node_modules/playwright-core ]; then
  (cd end2end && npm ci --no-audit --no-fund --loglevel=error)
fi
