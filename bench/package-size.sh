#!/usr/bin/env bash
# The deploy packages: each function's bootstrap as `sam build` makes it (cargo lambda build
# --release for arm64: the release profile, stripped), zipped with deflate at the default
# level, as SAM uploads it.
#
#   bench/package-size.sh                  # arm64, the deploy target
#   ARCH=x86_64 bench/package-size.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PATH="$(infra/tools.sh cli):$PATH"
arch="${ARCH:-arm64}"
flag=""; machine="x86-64"
if [ "$arch" = arm64 ]; then flag="--arm64"; machine="aarch64"; fi
started=$(date +%s)
cargo lambda build --release $flag --locked -p enqueue -p consumer -p list -p operate >&2
echo "build: $(( $(date +%s) - started )) s" >&2
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
echo "| function | $arch bootstrap | zipped |"
echo "|---|---|---|"
for fn in enqueue consumer list operate; do
  bootstrap="${CARGO_TARGET_DIR:-target}/lambda/$fn/bootstrap"
  (cd "$(dirname "$bootstrap")" && zip -q "$work/$fn.zip" bootstrap)
  printf '| %s | %.2f MB | %.2f MB |\n' "$fn" \
    "$(echo "$(stat -c %s "$bootstrap") / 1000000" | bc -l)" \
    "$(echo "$(stat -c %s "$work/$fn.zip") / 1000000" | bc -l)"
done
file "${CARGO_TARGET_DIR:-target}/lambda/enqueue/bootstrap" | grep -q "$machine" \
  || { echo "package-size: the bootstrap is not $arch" >&2; exit 1; }
