#!/usr/bin/env bash
# Prints the endpoint of an S3-protocol server the tests use (a bucket per
# test): moto's server mode (PyPI), a separate process. Installs it once into
# a venv (scripts/test-python.sh) and starts it when it is not
# already answering on 127.0.0.1:${GYRI_TEST_S3_PORT:-9574}.
set -euo pipefail
port=${GYRI_TEST_S3_PORT:-9574}
endpoint="http://127.0.0.1:$port"
answers() {
  python3 -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)" "$endpoint/" 2>/dev/null
}
if answers; then echo "$endpoint"; exit 0; fi
python="$("$(dirname "$0")/test-python.sh")"
base=$(dirname "$(dirname "$(dirname "$python")")")
setsid nohup "$(dirname "$python")/moto_server" -H 127.0.0.1 -p "$port" >"$base/moto.log" 2>&1 < /dev/null &
for _ in $(seq 1 100); do
  if answers; then echo "$endpoint"; exit 0; fi
  sleep 0.2
done
echo "moto did not start on $endpoint; see $base/moto.log" >&2
exit 1
