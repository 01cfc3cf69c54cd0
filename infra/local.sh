#!/usr/bin/env bash
# Runs the whole pipeline on this machine with no Docker and no AWS account: template.yaml
# itself, deployed by `sam deploy` to the LocalStack-compatible emulator, with the three
# functions built natively and run by the emulator's Lambda as host processes, the SQS event
# source mapping driving the consumer, and the HTTP API in front.
#
#   infra/local.sh up      # start the emulator, build, deploy; prints the API URL and curl lines
#                          # (BUILD=debug: deploy the debug build instead of cargo lambda's release)
#   infra/local.sh down    # delete the stack and stop the emulator
#   infra/local.sh url     # the API URL of the running stack
#   infra/local.sh env     # the stack's URLs as shell exports (PIPELINE_API_URL, ...)
#   infra/local.sh delete  # delete the stack, leave the emulator running
#
# STACK_NAME picks the stack (default message-pipeline-local); STACK_PARAMETERS overrides
# template parameters, e.g. STACK_PARAMETERS="MaxReceiveCount=2 ConsumerTimeoutSeconds=2".
#   infra/local.sh watch   # `cargo lambda watch` on 127.0.0.1:9000 with the stack's queue and table
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=infra/env.sh
. infra/env.sh
PATH="$(infra/tools.sh cli):$PATH"
stack="${STACK_NAME:-message-pipeline-local}"
bucket="${stack}-artifacts"
stage="$root/.local/stack"
target="${CARGO_TARGET_DIR:-$root/target}"
aws_() { aws --endpoint-url "$AWS_ENDPOINT_URL" --output text "$@"; }

output() {
  aws_ cloudformation describe-stacks --stack-name "$stack" \
    --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue"
}

resource() {
  aws_ cloudformation describe-stack-resource --stack-name "$stack" --logical-resource-id "$1" \
    --query StackResourceDetail.PhysicalResourceId
}

build() {
  rm -rf "$stage"
  mkdir -p "$stage"
  if [ "${BUILD:-release}" = debug ]; then
    # Quick iteration: the test build's debug binaries.
    cargo build --locked -p enqueue -p consumer -p list -p operate
    for function in enqueue consumer list operate; do
      mkdir -p "$stage/$function"
      cp "$target/debug/$function" "$stage/$function/bootstrap"
    done
  else
    # As `sam build` builds them (cargo lambda build --release, the deploy profile), for this
    # host's architecture: the emulator runs bootstraps as host processes, so an arm64 build
    # would not run here (and the arm64 standard library cannot be installed offline).
    cargo lambda build --release --locked -p enqueue -p consumer -p list -p operate --lambda-dir "$stage" >&2
  fi
  # The template unchanged but for where each function's code is.
  sed -E "s#CodeUri: functions/(.*)#CodeUri: $stage/\\1#" template.yaml >"$stage/template.yaml"
}

deploy() {
  aws_ s3api head-bucket --bucket "$bucket" >/dev/null 2>&1 || aws_ s3 mb "s3://$bucket" >/dev/null
  # MetricMathAlarms=false: the emulator has no CloudWatch metric math (template.yaml).
  sam deploy --template-file "$stage/template.yaml" --stack-name "$stack" --s3-bucket "$bucket" \
    --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND --no-confirm-changeset \
    --no-fail-on-empty-changeset --parameter-overrides LogLevel=DEBUG MetricMathAlarms=false ${STACK_PARAMETERS:-} >"$root/.local/deploy.log" 2>&1 \
    || { tail -40 "$root/.local/deploy.log" >&2; exit 1; }
}

# Emulator gap (shared/EMULATOR.md): the HTTP API that SAM generates gets no routes and no
# authorizer, because the emulator ignores the OpenAPI body. infra/routes.py creates both from
# the stack's processed template, so the emulator enforces exactly what template.yaml says.
add_routes() {
  "$(infra/tools.sh cli)/python" infra/routes.py "$stack" >"$root/.local/routes.log"
}

# Emulator gap: a mapping created through CloudFormation keeps ScalingConfig's
# MaximumConcurrency as the string a Number parameter resolves to, and its SQS poller then
# fails on every poll ("'>=' not supported between instances of 'int' and 'str"). Setting
# the same value again through the Lambda API stores it as the integer AWS would.
fix_event_source_mapping() {
  local uuid concurrency
  uuid=$(resource ConsumerFunctionQueue)
  concurrency=$(aws_ lambda get-event-source-mapping --uuid "$uuid" --query ScalingConfig.MaximumConcurrency)
  [ "$concurrency" = "None" ] && return 0
  aws_ lambda update-event-source-mapping --uuid "$uuid" \
    --scaling-config "MaximumConcurrency=$concurrency" >/dev/null
}

up() {
  infra/emulator.sh start
  build
  deploy
  add_routes
  fix_event_source_mapping
  eval "$(stack_env)"
  cat <<EOT

The pipeline is running (stack $stack on $AWS_ENDPOINT_URL). On the emulator these replace
the outputs ApiUrl, DashboardUrl and TokenUrl, which name AWS host names:
  API:         $PIPELINE_API_URL
  dashboard:   $PIPELINE_DASHBOARD_URL
  tokens:      ${PIPELINE_TOKEN_URL:-the token endpoint of your JwtIssuer}
  queue:       $PIPELINE_QUEUE_URL
  dead letter: $PIPELINE_DLQ_URL
  table:       $PIPELINE_TABLE_NAME

Every route but /openapi.json needs a token (client credentials; README, "Authorization"):
  eval "\$(infra/local.sh env)"
  token=\$(curl -s -u "\$PIPELINE_WRITER_CLIENT_ID:\$PIPELINE_WRITER_CLIENT_SECRET" \\
    -d grant_type=client_credentials -d scope=messages/write "\$PIPELINE_TOKEN_URL" | jq -r .access_token)
  curl -i -X POST "\$PIPELINE_API_URL/messages" -H "Authorization: Bearer \$token" \\
    -H 'Content-Type: application/json' -d '{"content": "Hello from the queue!"}'
Stop with: infra/local.sh down
EOT
}

# Hot-reloading functions that use the running stack's queue and table:
#   curl -X POST http://127.0.0.1:9000/lambda-url/enqueue/messages -H 'Content-Type: application/json' -d '{"content": "hi"}'
#   curl http://127.0.0.1:9000/lambda-url/list/messages
#   cargo lambda invoke consumer --invoke-address 127.0.0.1 --data-file events/sqs-batch.json
#   cargo lambda invoke operate --invoke-address 127.0.0.1 --data-file events/get-stats.json
watch() {
  local queue_url env_file="$root/.local/watch.env"
  queue_url=$(output QueueUrl) || { echo "watch: no local stack; run infra/local.sh up first" >&2; exit 1; }
  # The list function signs cursors with the stack's secret; where it cannot be read or
  # carried, a random one for this run. Never printed.
  local cursor_secret
  cursor_secret=$(aws_ secretsmanager get-secret-value --secret-id "$(resource CursorSecret)" \
    --query SecretString 2>/dev/null) || cursor_secret=""
  # An env file value must be plain: the emulator's generated secrets hold punctuation
  # (it ignores ExcludePunctuation), which the env file cannot carry unquoted.
  if [ "${#cursor_secret}" -lt 32 ] || [[ ! "$cursor_secret" =~ ^[A-Za-z0-9]+$ ]]; then
    cursor_secret=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
  fi
  # Job ids are tagged with the stack's key where it can be carried, so ids issued here read
  # there and back; else with one of this run's.
  local job_id_secret
  job_id_secret=$(aws_ secretsmanager get-secret-value --secret-id "$(resource JobIdSecret)" \
    --query SecretString 2>/dev/null | python3 -c 'import json, sys; print(json.load(sys.stdin)["current"])' 2>/dev/null) || job_id_secret=""
  if [ "${#job_id_secret}" -lt 32 ] || [[ ! "$job_id_secret" =~ ^[A-Za-z0-9]+$ ]]; then
    job_id_secret=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
  fi
  # The consumer notes a job's last failure at the queue's own maxReceiveCount, and job status
  # knows the queue's retention: both read from the queue.
  local attributes max_receive_count retention
  attributes=$(aws_ sqs get-queue-attributes --queue-url "$queue_url" \
    --attribute-names RedrivePolicy MessageRetentionPeriod --query Attributes --output json)
  max_receive_count=$(python3 -c 'import json, sys; a = json.load(sys.stdin); print(json.loads(a["RedrivePolicy"])["maxReceiveCount"])' <<<"$attributes")
  retention=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["MessageRetentionPeriod"])' <<<"$attributes")
  # Credentials, endpoints and the cursor secret: readable by you only.
  umask 077
  rm -f "$env_file"
  cat >"$env_file" <<EOT
QUEUE_URL=$queue_url
DEAD_LETTER_QUEUE_URL=$(output DeadLetterQueueUrl)
MAX_RECEIVE_COUNT=$max_receive_count
QUEUE_RETENTION_SECONDS=$retention
CURSOR_SECRET=$cursor_secret
JOB_ID_SECRET=$job_id_secret
TABLE_NAME=$(output TableName)
IDEMPOTENCY_TABLE_NAME=$(output IdempotencyTableName)
AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL
AWS_REGION=$AWS_REGION
AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID
AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
RUST_LOG=info
EOT
  echo "watch: functions use the queue and table of stack $stack (see $env_file)"
  # Its default invoke address is every interface; servers here bind loopback only.
  exec cargo lambda watch --invoke-address 127.0.0.1 --invoke-port "${WATCH_PORT:-9000}" --env-file "$env_file" "$@"
}

# The stack's URLs (the emulator's, not the outputs' AWS host names), queues, tables and app
# clients as shell exports, in one process: infra/stack_env.py.
stack_env() {
  "$(infra/tools.sh cli)/python" infra/stack_env.py "$stack"
}

delete() {
  aws_ cloudformation delete-stack --stack-name "$stack"
}

down() {
  if infra/emulator.sh status >/dev/null 2>&1; then
    aws_ cloudformation delete-stack --stack-name "$stack" || true
  fi
  infra/emulator.sh stop
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  url) eval "$(stack_env)"; echo "$PIPELINE_API_URL" ;;
  env) stack_env ;;
  delete) delete ;;
  watch) shift; watch "$@" ;;
  *) echo "usage: $0 up|down|url|env|delete|watch" >&2; exit 2 ;;
esac
