#!/usr/bin/env bash
# Runs every test: template lint, formatting, clippy, unit tests, and the integration tests against the
# LocalStack-compatible emulator, which it starts (and stops again) unless one is already up.
#
#   infra/test.sh                 # everything
#   infra/test.sh -- pagination   # extra arguments go to `cargo test`
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=infra/env.sh
. infra/env.sh

started=""
if ! infra/emulator.sh status >/dev/null 2>&1; then
  infra/emulator.sh start
  started=yes
fi
cleanup() { if [ -n "$started" ]; then infra/emulator.sh stop; fi; }
trap cleanup EXIT

# The template: CloudFormation's linter and SAM's own validation, offline.
PATH="$(infra/tools.sh cli):$PATH"
cfn-lint template.yaml
sam validate --lint >/dev/null

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --all-targets --locked "$@"
