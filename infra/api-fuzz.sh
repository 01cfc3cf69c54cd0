#!/usr/bin/env bash
# Fuzzes the HTTP API from its OpenAPI document: starts the local runner (embedded backend, a
# throwaway database) on a free loopback port and runs schemathesis against /openapi.json with
# every check (no 5xx, every status, header and body as documented, invalid input refused),
# with the runner's admin token (every scope). Its ignored_auth check fails the run if an
# operation that declares a scope answers a request without a token or with an invalid one.
#
#   infra/api-fuzz.sh                      # 100 examples per operation, fixed seed
#   ST_EXAMPLES=2000 ST_SEED=7 infra/api-fuzz.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
st="$(infra/tools.sh api-fuzz)/st"

cargo build --locked --quiet --bin message-pipeline
runner="${CARGO_TARGET_DIR:-$root/target}/debug/message-pipeline"
work=$(mktemp -d)
token="fuzz-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
PIPELINE_ADMIN_TOKEN="$token" "$runner" --listen 127.0.0.1:0 --data "$work/fuzz.db" \
  --tokens-file "$work/tokens.env" >"$work/runner.log" 2>&1 &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

url=""
for _ in $(seq 100); do
  url=$(sed -n 's/^ *listening on //p' "$work/runner.log")
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { echo "api-fuzz: the runner did not start:" >&2; cat "$work/runner.log" >&2; exit 1; }

# Every check but ensure_resource_availability: a 202 means accepted for processing, not
# created, so GET /messages/{id} is a 404 until the worker has stored the message a few
# milliseconds later (as openapi.json says).
"$st" --no-color --config-file infra/schemathesis.toml run "$url/openapi.json" \
  --header "Authorization: Bearer $token" \
  --checks all --exclude-checks ensure_resource_availability \
  --max-examples "${ST_EXAMPLES:-100}" \
  --seed "${ST_SEED:-20261125}" \
  --generation-database none \
  --output-truncate true \
  --report-dir "$work/report"
