#!/usr/bin/env bash
# Runs every test: template lint, the supply chain, formatting, clippy, unit and property tests, the integration tests
# against the LocalStack-compatible emulator (which it starts, and stops again, unless one is already
# up), schemathesis against the OpenAPI document, the dashboard in a headless browser, and the
# deployed template on the emulator.
#
#   infra/test.sh                 # everything
#   infra/test.sh -- pagination   # extra arguments go to `cargo test`
#   SKIP_STACK_TESTS=1 infra/test.sh   # without deploying the template to the emulator
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=infra/env.sh
. infra/env.sh

emulator_acquire
# Every emulator-backed test runs under IAM enforcement when the emulator is the one
# infra/emulator.sh starts; an emulator that was already running may not enforce it: say so.
infra/emulator.sh status | grep -q "IAM enforced" \
  || echo "test: WARNING: the emulator at $AWS_ENDPOINT_URL does not enforce IAM; a missing permission would pass here" >&2
# A stack this script deployed is deleted also when a test fails or the run is interrupted,
# so that the next run (and a user's emulator) does not inherit it.
deployed_stack=""
test_identity=""
cleanup() {
  if [ -n "$test_identity" ]; then
    python infra/test_identity.py delete "$test_identity" >/dev/null 2>&1 || true
  fi
  if [ -n "$deployed_stack" ]; then
    STACK_NAME="$deployed_stack" infra/local.sh delete >/dev/null 2>&1 \
      || echo "test: could not delete the stack $deployed_stack" >&2
  fi
  emulator_release
}
trap cleanup EXIT

# The template: CloudFormation's linter with the serverless rules, and SAM's own validation,
# offline. Each finding is fixed or ignored in template.yaml with its reason.
PATH="$(infra/tools.sh cli):$PATH"
cfn-lint template.yaml -a cfn_lint_serverless.rules
sam validate --lint >/dev/null
# The field's own scanners: checkov on the template, parliament on each role's policies.
infra/scan-template.sh

# The supply chain: advisories (a snapshot, or fetched; said loudly when neither can be had),
# bans, licenses and sources (deny.toml).
infra/supply-chain.sh

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# Not as root: the integration tests run as an IAM user allowed what the adapters call and
# what the harness needs for each test's own queues and tables (infra/test_identity.py).
test_identity="mp-tests-$(date +%s)"
identity=$(python infra/test_identity.py create "$test_identity")
# shellcheck disable=SC2086 # two KEY=value words
env $identity cargo test --workspace --all-targets --locked "$@"
python infra/test_identity.py delete "$test_identity"
test_identity=""

# The HTTP API against its OpenAPI document: schemathesis fuzzes the local runner.
infra/api-fuzz.sh

# The dashboard in Debian's Chromium (playwright-core) against the local runner (and below
# against the deployed stack).
infra/browser-test.sh
# The README's blocks marked for CI, as written, against a local runner (and below, the stack).
infra/readme-smoke.sh runner

# The deployed stack: template.yaml on the emulator, called through its API Gateway (the
# tests in tests/stack.rs). Short timeouts so a poison message reaches the DLQ in seconds.
if [ -z "${SKIP_STACK_TESTS:-}" ]; then
  export STACK_NAME="mp-test-$(date +%s)"
  export STACK_PARAMETERS="ConsumerTimeoutSeconds=2 QueueVisibilityTimeoutSeconds=12 MaxReceiveCount=2 RetryBaseSeconds=2 RetryMaxSeconds=12 MessageRetentionDays=1"
  deployed_stack="$STACK_NAME"
  infra/local.sh up >/dev/null
  eval "$(infra/local.sh env)"
  # One at a time: the refusal test compares queue and table counts before and after.
  cargo test --locked --test integration -- --ignored --test-threads=1 stack:: --skip stack::fifo::
  # The dashboard served by the stack, under the API's own base path.
  infra/browser-test.sh stack
  infra/readme-smoke.sh stack
  # `cargo lambda watch` on the same stack: the README's watch section, line by line, and the
  # sample events at their functions.
  infra/watch-smoke.sh
  infra/local.sh delete
  deployed_stack=""
  # The FIFO option: a second stack with FifoQueue=true, and the tests for it alone.
  export STACK_NAME="mp-fifo-$(date +%s)"
  export STACK_PARAMETERS="$STACK_PARAMETERS FifoQueue=true"
  deployed_stack="$STACK_NAME"
  infra/local.sh up >/dev/null
  eval "$(infra/local.sh env)"
  cargo test --locked --test integration -- --ignored --test-threads=1 stack::fifo::
  infra/local.sh delete
  deployed_stack=""
fi
