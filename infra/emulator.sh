#!/usr/bin/env bash
# Starts or stops the LocalStack-compatible emulator (ministack) on 127.0.0.1:4566, no Docker.
#
#   infra/emulator.sh start   # idempotent; reuses anything already healthy on the port (real LocalStack too)
#   infra/emulator.sh stop    # stops what `start` started, by process group (its Lambda children too)
#   infra/emulator.sh status  # says whether it enforces IAM
#
# State (pid, log, the emulator's temp files) lives in .local/emulator/ of this checkout.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
state="$root/.local/emulator"
port="${EMULATOR_PORT:-4566}"
endpoint="http://127.0.0.1:$port"
health="$endpoint/_localstack/health"

healthy() { curl -fsS --max-time 2 "$health" >/dev/null 2>&1; }
# ministack's health says "auth": "enabled" when it enforces IAM (LocalStack's does not say).
iam_enforced() { curl -fsS --max-time 2 "$health" 2>/dev/null | grep -q '"auth": *"enabled"'; }

start() {
  if healthy; then
    echo "emulator: already running at $endpoint"
    return
  fi
  local bin
  bin=$("$root/infra/tools.sh" emulator)
  mkdir -p "$state/tmp"
  # BIND_HOST keeps it on loopback (it binds all interfaces otherwise); IOT_MTLS_ENABLED=0 and
  # SFTP_ENABLED=0 stop the extra listeners of ministack[full]. AWS_ENDPOINT_URL is what it hands
  # to the Lambda processes it runs, so their SDK clients reach it with no code change.
  # AUTH=true (the default; AUTH=false to turn it off): SigV4 checked and IAM identity
  # policies enforced on every call, each Lambda function run under a session of its own
  # execution role, as on AWS. infra/emulator_main.py corrects how it names SQS's batch calls.
  AUTH="${AUTH:-true}" BIND_HOST=127.0.0.1 GATEWAY_PORT="$port" IOT_MTLS_ENABLED=0 SFTP_ENABLED=0 \
    SERVICES=sqs,dynamodb,lambda,cloudformation,apigateway,s3,iam,sts,logs,cognito-idp,sns,cloudwatch,secretsmanager \
    AWS_ENDPOINT_URL="$endpoint" TMPDIR="$state/tmp" \
    setsid "$bin/python" "$root/infra/emulator_main.py" >"$state/log" 2>&1 </dev/null &
  echo $! >"$state/pid"
  for _ in $(seq 1 150); do
    if healthy; then
      echo "emulator: ministack up at $endpoint (pid $(cat "$state/pid"), log $state/log)"
      return
    fi
    if ! kill -0 "$(cat "$state/pid")" 2>/dev/null; then
      echo "emulator: ministack exited; last lines of $state/log:" >&2
      tail -20 "$state/log" >&2
      exit 1
    fi
    sleep 0.2
  done
  echo "emulator: no health answer from $health after 30 s" >&2
  exit 1
}

stop() {
  [ -f "$state/pid" ] || { echo "emulator: not started by this checkout"; return; }
  local pid
  pid=$(cat "$state/pid")
  # setsid made the emulator a group leader: the group holds it and every Lambda bootstrap it spawned.
  kill -TERM -- "-$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 -- "-$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$state/pid"
  echo "emulator: stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status)
    if healthy; then
      echo "emulator: up at $endpoint (IAM $(iam_enforced && echo enforced || echo "not enforced"))"
    else
      echo "emulator: down"
      exit 1
    fi ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
