#!/usr/bin/env bash
# The reliability figures in BENCHMARKS.md: runs the fault-injection, poison and crash tests
# RUNS times (default 3) and prints each ledger line (acknowledged, refused, faults injected,
# crashes, stored, dead-lettered, lost, changed, duplicated). The tests assert the promise
# themselves; this only collects what they counted.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=infra/env.sh
. infra/env.sh
emulator_acquire
trap emulator_release EXIT

cargo build --locked --quiet --tests
for run in $(seq "${RUNS:-3}"); do
  echo "run $run"
  cargo test --locked --quiet --test integration -- --nocapture --test-threads 1 \
    conservation:: local_runner::every_acknowledged 2>&1 | grep -oE '(reliability:|poison neighbours:|drained) .*'
done
