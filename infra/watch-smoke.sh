#!/usr/bin/env bash
# `cargo lambda watch` as a user runs it, against the deployed stack (STACK_NAME; infra/test.sh
# runs this after the stack tests): starts `infra/local.sh watch` on a free loopback port,
# runs the README's watch section line by line (on that port), then every event in events/
# and events/aws-samples/ through the function it is meant for, and checks each answer.
#
#   STACK_NAME=... infra/watch-smoke.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=infra/env.sh
. infra/env.sh
PATH="$(infra/tools.sh cli):$PATH"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=$(mktemp)
WATCH_PORT="$port" setsid infra/local.sh watch >"$log" 2>&1 </dev/null &
watch_pid=$!
stop() {
  kill -TERM -- "-$watch_pid" 2>/dev/null || true
  sleep 0.5
  kill -KILL -- "-$watch_pid" 2>/dev/null || true
}
fail() {
  echo "watch-smoke: $*" >&2
  echo "--- cargo lambda watch said:" >&2
  tail -40 "$log" >&2
  exit 1
}
trap 'stop; rm -f "$log"' EXIT

for _ in $(seq 120); do
  grep -q "starting Runtime server" "$log" && break
  kill -0 "$watch_pid" 2>/dev/null || fail "cargo lambda watch exited"
  sleep 0.5
done
grep -q "starting Runtime server" "$log" || fail "cargo lambda watch did not start within 60 s"

# One invocation: its answer, or a failure that names the call.
invoke() {
  local function=$1 file=$2
  timeout 180 cargo lambda invoke "$function" --invoke-address 127.0.0.1 --invoke-port "$port" \
    --data-file "$file" 2>&1 || fail "cargo lambda invoke $function --data-file $file failed"
}

expect() {
  local what=$1 answer=$2 pattern=$3
  grep -Eq "$pattern" <<<"$answer" || fail "$what answered: ${answer:0:400}"
  echo "watch-smoke: ok  $what"
}

# The README's lines, as written there, on this run's port.
readme=$(sed -n '/^### `cargo lambda watch`/,/^## /p' README.md | sed -n '/^```sh$/,/^```$/p' \
  | grep '^cargo lambda invoke' || true)
[ -n "$readme" ] || fail "no cargo lambda invoke lines in the README's watch section"
checked=0
while read -r _ _ _ function rest; do
  file=$(sed -E 's/.*--data-file ([^ ]+).*/\1/' <<<"$rest")
  answer=$(invoke "$function" "$file")
  case "$function" in
    enqueue) expect "README: $function $file" "$answer" '"statusCode":202' ;;
    # The poison record can never be stored: it is sent to the dead-letter queue at once and
    # not reported (the EMF line below counts it).
    consumer) expect "README: $function $file" "$answer" '"batchItemFailures":\[\]' ;;
    list | operate) expect "README: $function $file" "$answer" '"statusCode":200' ;;
    *) fail "the README invokes an unknown function: $function" ;;
  esac
  checked=$((checked + 1))
done <<<"$readme"
[ "$checked" -eq 4 ] || fail "the README's watch section invokes $checked functions, not 4"

# Every event in events/, at its function.
expect "enqueue events/post-invalid-message.json" \
  "$(invoke enqueue events/post-invalid-message.json)" '"statusCode":400'
# A batch with an Idempotency-Key: queued, then (the same event again) the same answer. The
# key is made unique to this run, so that a rerun on the same stack starts afresh.
batch_event=$(mktemp --suffix=.json)
sed "s/sample-batch-1/sample-batch-$(date +%s%N)/" events/post-batch.json >"$batch_event"
first=$(invoke enqueue "$batch_event")
expect "enqueue events/post-batch.json" "$first" '"statusCode":202'
again=$(invoke enqueue "$batch_event")
rm -f "$batch_event"
expect "enqueue events/post-batch.json again: replayed" "$again" '"idempotent-replayed":"true"'
[ "$(grep -o 'job_id[^,]*' <<<"$first")" = "$(grep -o 'job_id[^,]*' <<<"$again")" ] \
  || fail "the replayed batch named other job ids: $first / $again"
echo "watch-smoke: ok  enqueue events/post-batch.json again: the same job ids"
# The AWS samples: without a JWT context every route is refused (fail-closed); a JWT without
# the route's scopes on an unknown path gets the JSON 404; SQS records that are not envelopes
# are dead-lettered at once (so none is reported failed).
for sample in no-authorizer iam lambda-authorizer multi-value-parameters; do
  expect "list aws-samples/$sample" \
    "$(invoke list "events/aws-samples/example-apigw-v2-request-$sample.json")" '"statusCode":403'
done
expect "list aws-samples/jwt-authorizer" \
  "$(invoke list events/aws-samples/example-apigw-v2-request-jwt-authorizer.json)" '"statusCode":404'
for sample in example-sqs-event example-sqs-event-obj; do
  expect "consumer aws-samples/$sample" \
    "$(invoke consumer "events/aws-samples/$sample.json")" '"batchItemFailures":\[\]'
done

# Metrics: the functions print CloudWatch EMF lines on stdout (the emulator does not parse
# them, so the lines themselves are checked): a queued message, and a consumer batch with
# its two stored messages' latencies from 202 to stored.
emf() {
  local what=$1 pattern=$2
  grep -Eq "$pattern" "$log" || fail "no EMF line for $what in the watch log"
  echo "watch-smoke: ok  EMF $what"
}
emf_head='\{"_aws":\{"Timestamp":[0-9]+,"CloudWatchMetrics":\[\{"Namespace":"MessagePipeline","Dimensions":\[\["FunctionName"\]\],"Metrics":'
emf "enqueue MessagesEnqueued" "$emf_head"'\[\{"Name":"MessagesEnqueued","Unit":"Count"\}\]\}\]\},"FunctionName":"enqueue","MessagesEnqueued":1\}'
emf "enqueue batch MessagesEnqueued 3" "$emf_head"'\[\{"Name":"MessagesEnqueued","Unit":"Count"\}\]\}\]\},"FunctionName":"enqueue","MessagesEnqueued":3\}'
emf "enqueue RequestsReplayed" "$emf_head"'\[\{"Name":"RequestsReplayed","Unit":"Count"\}\]\}\]\},"FunctionName":"enqueue","RequestsReplayed":1\}'
emf "consumer batch" "$emf_head"'\[\{"Name":"BatchSize","Unit":"Count"\}.*"FunctionName":"consumer","BatchSize":3,"MessagesStored":2,"RecordsFailed":0,"MessagesDeadLettered":1,"StoreLatency":[0-9]+,"RecordsRetriedTransient":0,"RecordsRetriedDeployment":0,"RecordsDeadLetteredAtOnce":1,"RetryBackoff":0,"EndToEndLatency":\[[0-9]+,[0-9]+\]\}'

# A function that cannot start answers at once with its reason, not a hang: a second watch
# whose environment lacks TABLE_NAME.
broken_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
broken_env=$(mktemp)
broken_log=$(mktemp)
grep -v '^TABLE_NAME=' .local/watch.env >"$broken_env"
setsid cargo lambda watch --invoke-address 127.0.0.1 --invoke-port "$broken_port" \
  --env-file "$broken_env" >"$broken_log" 2>&1 </dev/null &
broken_pid=$!
trap 'stop; kill -TERM -- "-$broken_pid" 2>/dev/null || true; rm -f "$log" "$broken_env" "$broken_log"' EXIT
for _ in $(seq 120); do
  grep -q "starting Runtime server" "$broken_log" && break
  sleep 0.5
done
# The timeout only ends a hang: the answer is expected at once.
answer=$(timeout 60 cargo lambda invoke list --invoke-address 127.0.0.1 --invoke-port "$broken_port" \
  --data-file events/list-messages.json 2>&1) || true
expect "list without TABLE_NAME fails with its reason" "$answer" \
  '"errorMessage":"environment variable TABLE_NAME is required but not set","errorType":"Runtime.ConfigError"'
