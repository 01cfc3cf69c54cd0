#!/usr/bin/env bash
# `cargo lambda watch` against the local stack: hot-reloading functions on 127.0.0.1:9000
# that use the queue and table `infra/local.sh up` deployed to the emulator.
#
#   infra/local.sh up && infra/watch.sh
#   curl -X POST http://127.0.0.1:9000/lambda-url/enqueue/messages -H 'Content-Type: application/json' -d '{"content": "hi"}'
#   curl http://127.0.0.1:9000/lambda-url/list/messages
#   cargo lambda invoke consumer --data-file events/sqs-batch.json
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=infra/env.sh
. infra/env.sh
PATH="$(infra/tools.sh cli):$PATH"
stack="${STACK_NAME:-message-pipeline-local}"
output() {
  aws --endpoint-url "$AWS_ENDPOINT_URL" --output text cloudformation describe-stacks --stack-name "$stack" \
    --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue"
}
queue_url=$(output QueueUrl) || { echo "watch: no local stack; run infra/local.sh up first" >&2; exit 1; }
env_file="$root/.local/watch.env"
cat >"$env_file" <<EOT
QUEUE_URL=$queue_url
TABLE_NAME=$(output TableName)
AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL
AWS_REGION=$AWS_REGION
AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID
AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
RUST_LOG=info
EOT
echo "watch: functions use $(grep -E '^(QUEUE_URL|TABLE_NAME)' "$env_file" | tr '\n' ' ')"
# Its default invoke address is every interface; this machine's servers bind loopback only.
exec cargo lambda watch --invoke-address 127.0.0.1 --invoke-port "${WATCH_PORT:-9000}" --env-file "$env_file" "$@"
