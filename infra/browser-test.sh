#!/usr/bin/env bash
# The dashboard in a real headless browser: installs Debian's Chromium (once) and
# playwright-core (npm ci, from tests/browser/package-lock.json), starts the local runner
# (embedded backend, a throwaway database, a store that refuses content with POISON until
# its faults are healed, fast redrive) on a free loopback port, and runs
# tests/browser/dashboard.mjs against it. With `stack`, the same page on the deployed stack
# whose URLs `eval "$(infra/local.sh env)"` exported: tokens from its user pool, and a raw
# dead letter sent to its queue.
#
#   infra/browser-test.sh                                   # against the local runner
#   infra/browser-test.sh stack                             # against the deployed stack
#   SCREENSHOT=docs/dashboard.png infra/browser-test.sh     # refresh the README's screenshot
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
# A screenshot only when asked for: a test run leaves the checkout as it found it.
[ -n "${SCREENSHOT:-}" ] && SCREENSHOT=$(realpath -m "$SCREENSHOT")

if [ "${1:-}" = stack ]; then
  : "${PIPELINE_API_URL:?run eval \"\$(infra/local.sh env)\" first}"
  # shellcheck source=infra/env.sh
  . infra/env.sh
  token() {
    curl -sf -u "$1:$2" -d grant_type=client_credentials -d "scope=$3" "$PIPELINE_TOKEN_URL" \
      | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])'
  }
  raw="not an envelope, from the browser test $(date +%s%N)"
  PATH="$(infra/tools.sh cli):$PATH" aws --endpoint-url "$AWS_ENDPOINT_URL" sqs send-message \
    --queue-url "$PIPELINE_QUEUE_URL" --message-body "$raw" >/dev/null
  TARGET=stack RAW_BODY="$raw" PIPELINE_URL="$PIPELINE_API_URL" \
    ADMIN_TOKEN=$(token "$PIPELINE_ADMIN_CLIENT_ID" "$PIPELINE_ADMIN_CLIENT_SECRET" "messages/admin messages/read") \
    WRITE_TOKEN=$(token "$PIPELINE_WRITER_CLIENT_ID" "$PIPELINE_WRITER_CLIENT_SECRET" messages/write) \
    exec node tests/browser/dashboard.mjs
fi

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

node tests/browser/dashboard.mjs \
  || { echo "--- the runner said:" >&2; tail -40 "$work/runner.log" >&2; exit 1; }
