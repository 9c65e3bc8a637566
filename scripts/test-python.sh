#!/usr/bin/env bash
# Prints the path of a Python with the tests' third-party servers and
# clients (moto's S3 server, the tuspy tus client), installed once into a
# venv under /var/cache/gyri (or ./target).
set -euo pipefail
base=/var/cache/gyri
mkdir -p "$base" 2>/dev/null && [ -w "$base" ] || base="$(pwd)/target"
venv="$base/moto-venv"
if [ ! -x "$venv/bin/moto_server" ] || ! "$venv/bin/python" -c 'import tusclient' 2>/dev/null; then
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check "moto[server]==5.1.22" "tuspy==1.1.0" >&2
fi
echo "$venv/bin/python"
