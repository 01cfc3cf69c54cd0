#!/usr/bin/env bash
# AWS requests and consumer invocations per message, for the cost model: the local runner on
# its AWS backend (the enqueue function's SendMessage, the event source mapping's
# ReceiveMessage and DeleteMessageBatch, the consumer's PutItem a message), against the emulator,
# for several batch sizes and batching windows. Per setting: 10,000 messages posted by 32
# clients and drained (a burst: batches fill whatever the window); then 500 messages at a
# steady 50 a second (light load: here the window decides how full a batch gets); then 50
# messages posted one at a time on the idle pipeline, each timed until GET /messages/{id}
# finds it (the end-to-end latency a batching window adds).
# Prints one JSON line a setting; bench/cost.py turns them into dollars.
#
#   bench/aws-calls.sh > /tmp/calls.jsonl && python3 bench/cost.py /tmp/calls.jsonl
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=infra/env.sh
. infra/env.sh
MESSAGES="${MESSAGES:-10000}"
SETTINGS="${SETTINGS:-10:0 10:500 100:500 100:2000}"   # batch size:batching window ms

emulator_acquire
name="mp-calls-$(date +%s)"
target="${CARGO_TARGET_DIR:-target}"
work=$(mktemp -d)
runner_pid=""
cleanup() {
  [ -n "$runner_pid" ] && kill "$runner_pid" 2>/dev/null
  "$target/runner/examples/provision" delete "$name" >/dev/null 2>&1 || true
  rm -rf "$work"
  emulator_release
}
trap cleanup EXIT

cargo build --quiet --locked --profile runner --bin message-pipeline --example loadgen --example provision
eval "$("$target/runner/examples/provision" create "$name")"
export QUEUE_URL TABLE_NAME IDEMPOTENCY_TABLE_NAME DEAD_LETTER_QUEUE_URL

stat() { curl -fs "$url/_local/stats"; }
for setting in $SETTINGS; do
  batch=${setting%%:*} window=${setting##*:}
  "$target/runner/message-pipeline" --backend aws --listen 127.0.0.1:0 --no-auth \
    --batch-size "$batch" --batching-window-ms "$window" >"$work/runner.log" 2>&1 &
  runner_pid=$!
  url=""
  until [ -n "$url" ]; do sleep 0.1; url=$(sed -n 's/^ *listening on //p' "$work/runner.log"); done

  posted=$("$target/runner/examples/loadgen" post "$url/messages" "$MESSAGES" 32)
  until [ "$(stat | python3 -c 'import json,sys; print(json.load(sys.stdin)["consumer"]["records"])')" -ge "$MESSAGES" ]; do
    sleep 0.5
  done
  sleep 2   # the last batch's DeleteMessageBatch
  drained=$(stat)
  "$target/runner/examples/loadgen" steady "$url/messages" 500 50 >/dev/null
  sleep 3
  steady=$(stat)
  visible=$("$target/runner/examples/loadgen" visible "$url" 50)
  kill "$runner_pid"; wait "$runner_pid" 2>/dev/null || true; runner_pid=""

  python3 - "$batch" "$window" "$MESSAGES" "$posted" "$drained" "$steady" "$visible" <<'PY'
import json, sys
batch, window, messages = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
posted, drained, steady, visible = (json.loads(a) for a in sys.argv[4:8])
def delta(after, before):
    return {k: v - before.get(k, 0) for k, v in after.items()}
print(json.dumps({
    "batch_size": batch, "batching_window_ms": window, "messages": messages,
    "invocations": drained["consumer"]["invocations"], "records": drained["consumer"]["records"],
    "calls": drained["aws_calls"],
    "steady": {
        "messages": steady["consumer"]["records"] - drained["consumer"]["records"],
        "invocations": steady["consumer"]["invocations"] - drained["consumer"]["invocations"],
        "calls": delta(steady["aws_calls"], drained["aws_calls"]),
    },
    "post": posted, "idle_post_to_visible": visible,
}))
PY
done
