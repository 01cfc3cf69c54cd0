#!/usr/bin/env bash
# What the enqueue side costs a message at batch sizes 1, 10 and 100, without and with an
# Idempotency-Key: the local runner on its AWS backend (the enqueue function's code: the
# SendMessage or SendMessageBatch calls, the idempotency table's PutItem and UpdateItem)
# against the emulator, every request counted by the SDK interceptor (src/calls.rs).
# No consumer runs (--consumers 0): the consumer's side is bench/aws-calls.sh's. Prints one
# JSON line a setting; bench/batch_cost.py turns them into dollars.
#
#   bench/enqueue-cost.sh > /tmp/enqueue.jsonl && python3 bench/batch_cost.py /tmp/enqueue.jsonl
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=infra/env.sh
. infra/env.sh
MESSAGES="${MESSAGES:-2000}"
# Counts do not depend on the build: PROFILE=dev saves the optimised build's minutes.
PROFILE="${PROFILE:-runner}"

emulator_acquire
name="mp-enqueue-cost-$(date +%s)"
target="${CARGO_TARGET_DIR:-target}"
work=$(mktemp -d)
runner_pid=""
bin=""
cleanup() {
  [ -n "$runner_pid" ] && kill "$runner_pid" 2>/dev/null
  [ -n "$bin" ] && "$bin/examples/provision" delete "$name" >/dev/null 2>&1 || true
  rm -rf "$work"
  emulator_release
}
trap cleanup EXIT

cargo build --quiet --locked --profile "$PROFILE" --bin message-pipeline --example loadgen --example provision
bin="$target/$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")"
eval "$("$bin/examples/provision" create "$name")"
export QUEUE_URL TABLE_NAME IDEMPOTENCY_TABLE_NAME DEAD_LETTER_QUEUE_URL

"$bin/message-pipeline" --backend aws --listen 127.0.0.1:0 --no-auth --consumers 0 \
  >"$work/runner.log" 2>&1 &
runner_pid=$!
url=""
until [ -n "$url" ]; do sleep 0.1; url=$(sed -n 's/^ *listening on //p' "$work/runner.log"); done
calls() { curl -fs "$url/_local/stats" | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["aws_calls"]))'; }

for keyed in 0 1; do
  for size in 1 10 100; do
    before=$(calls)
    posted=$("$bin/examples/loadgen" batch "$url" "$MESSAGES" "$size" "$keyed")
    after=$(calls)
    python3 - "$before" "$after" "$posted" <<'PY'
import json, sys
before, after, posted = (json.loads(a) for a in sys.argv[1:4])
calls = {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}
print(json.dumps({**posted, "calls": calls}))
PY
  done
done

# The idempotency records as stored, by the number of job ids they reserve: DynamoDB bills a
# write unit a KB of the item written (UpdateItem: of the item after the update).
"$(infra/tools.sh cli)/python" - "$IDEMPOTENCY_TABLE_NAME" <<'PY'
import json, sys
import boto3
table = boto3.client("dynamodb").get_paginator("scan").paginate(TableName=sys.argv[1])
sizes = {}
for page in table:
    for item in page["Items"]:
        ids = len(json.loads(item["reserved"]["S"]))
        # DynamoDB's item size: attribute names plus values (strings as UTF-8, numbers about
        # one byte a two digits plus one).
        size = lambda names: sum(
            len(n) + (len(item[n]["S"].encode()) if "S" in item[n] else len(item[n]["N"]) // 2 + 1)
            for n in names)
        # As claimed (PutItem), and as answered (UpdateItem).
        claimed = size([n for n in item if n != "answer"])
        sizes.setdefault(ids, []).append((claimed, size(item)))
print(json.dumps({"idempotency_item_bytes": {
    k: {"claimed": sum(c for c, _ in v) / len(v), "answered": sum(a for _, a in v) / len(v)}
    for k, v in sorted(sizes.items())}}))
PY
