#!/usr/bin/env bash
# The dashboard in a real headless browser: installs Debian's Chromium (once) and
# playwright-core (npm ci, from tests/browser/package-lock.json), starts the local runner
# (embedded backend, a throwaway database, a store that refuses content with POISON until
# its faults are healed, fast redrive) on a free loopback port, and runs
# tests/browser/dashboard.mjs against it. It saves the README's screenshot, docs/dashboard.png.
#
#   infra/browser-test.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

if ! command -v chromium >/dev/null; then
  echo "browser-test: installing Debian's chromium" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q chromium >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
fi
npm ci --prefix tests/browser --no-audit --no-fund --silent

cargo build --locked --quiet --bin message-pipeline
runner="${CARGO_TARGET_DIR:-$root/target}/debug/message-pipeline"
work=$(mktemp -d)
setsid "$runner" --listen 127.0.0.1:0 --data "$work/browser.db" --tokens-file "$work/tokens.env" \
  --store-faults poison=POISON --max-receive-count 2 --visibility-timeout-secs 1 \
  >"$work/runner.log" 2>&1 </dev/null &
pid=$!
cleanup() {
  kill -TERM -- "-$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

for _ in $(seq 100); do
  [ -s "$work/tokens.env" ] && break
  sleep 0.1
done
[ -s "$work/tokens.env" ] || { echo "browser-test: the runner did not start:" >&2; cat "$work/runner.log" >&2; exit 1; }
# PIPELINE_URL, WRITE_TOKEN, READ_TOKEN, ADMIN_TOKEN
set -a
# shellcheck source=/dev/null
. "$work/tokens.env"
set +a

SCREENSHOT="$root/docs/dashboard.png" node tests/browser/dashboard.mjs \
  || { echo "--- the runner said:" >&2; tail -40 "$work/runner.log" >&2; exit 1; }
