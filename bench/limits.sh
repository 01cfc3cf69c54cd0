#!/usr/bin/env bash
# The runner against this machine's limit for the same durable work (bench/limits.rs), side
# by side in interleaved rounds: enqueue (POST /messages under wrk -t2 -d10s) at 8 and 64
# connections, with the default consumer and with --consumers 0, against a server that only
# commits the same inserts in group commits; the drain at the default batch size (and at 100)
# against moving the same rows one transaction a batch. Medians, the load average beside each run;
# prints Markdown for BENCHMARKS.md. Everything binds 127.0.0.1.
#
#   bench/limits.sh               # 3 rounds
#   ROUNDS=5 DRAIN_N=400000 bench/limits.sh
#
# Needs wrk (Debian: apt-get install wrk).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
rounds="${ROUNDS:-3}"
drain_n="${DRAIN_N:-200000}"
port="${BENCH_PORT:-3902}"
url="http://127.0.0.1:$port"
work=$(mktemp -d)
pid=""
stop() {
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
  pid=""
}
trap 'stop; rm -rf "$work"' EXIT

command -v wrk >/dev/null || { echo "bench: wrk is missing (apt-get install wrk)" >&2; exit 1; }
cargo build --quiet --locked --profile runner --bin message-pipeline --example limits
bin="${CARGO_TARGET_DIR:-target}/runner"
runner="$bin/message-pipeline"

wait_up() {
  for _ in $(seq 1 200); do
    curl -s -o /dev/null "$url/" 2>/dev/null && return
    sleep 0.05
  done
  echo "bench: nothing answers on $url" >&2; cat "$work/log" >&2; exit 1
}
runner_start() {
  rm -f "$work"/db*
  RUST_LOG=warn setsid "$runner" --listen "127.0.0.1:$port" --no-auth --data "$work/db" "$@" >"$work/log" 2>&1 &
  pid=$!; wait_up
}
# A database with the runner's schema, for the limit programs.
fresh_schema() {
  runner_start --consumers 0; stop
  rm -f "$work"/limit.db*
  # The schema may still be in the write-ahead log: it goes with the file.
  cp "$work/db" "$work/limit.db"
  if [ -f "$work/db-wal" ]; then cp "$work/db-wal" "$work/limit.db-wal"; fi
  rm -f "$work"/db*
}
limit_start() {
  setsid "$bin/examples/limits" "$@" >"$work/log" 2>&1 &
  pid=$!; wait_up
}
load() { cut -d' ' -f1 /proc/loadavg; }
# wrk at $1 connections: "requests/s p99"
hit() {
  wrk -t2 -c"$1" -d10s --latency -s bench/post.lua -H "Authorization: Bearer limits" "$url/messages" >"$work/wrk.txt"
  local errors
  errors=$(awk '/Non-2xx/ { print $NF }' "$work/wrk.txt")
  if [ -n "$errors" ]; then
    echo "bench: $errors non-2xx answers from $url; one of them:" >&2
    curl -s -i -X POST "$url/messages" -H "Authorization: Bearer limits" -H 'Content-Type: application/json' -d '{"content": "x"}' >&2
    kill -TERM $$; exit 1
  fi
  echo "$(awk '/Requests\/sec/ { print $2 }' "$work/wrk.txt") $(awk '$1 == "99%" { print $2 }' "$work/wrk.txt")"
}
record() { echo "$1 $2 $(load)" >>"$work/results"; }   # name, "value p99"
stored() { curl -fs "$url/_local/stats" | sed -E 's/.*"stored":([0-9]+).*/\1/'; }
rss() { awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$pid/status"; }
# The runner's worker alone: DRAIN_N messages queued with no worker (the same rows the drain
# limit moves, written by `limits fill`), then the runner started on the file with one (and
# "$@"); messages/s from when it answers (the limit's clock, too, starts after its file is
# open) until all are stored, read every 20 ms.
runner_drain() {
  local name=$1 started finished stored_at_start
  shift
  runner_start --consumers 0; stop
  "$bin/examples/limits" fill "$work/db" "$drain_n"
  RUST_LOG=warn setsid "$runner" --listen "127.0.0.1:$port" --no-auth --data "$work/db" "$@" >"$work/log" 2>&1 &
  pid=$!
  wait_up
  started=$(date +%s.%N); stored_at_start=$(stored)
  while [ "$(stored)" -lt "$drain_n" ]; do sleep 0.02; done
  finished=$(date +%s.%N)
  echo "rss-$name $(rss) - $(load)" >>"$work/results"
  stop
  record "$name" "$(echo "($drain_n - $stored_at_start) / ($finished - $started)" | bc -l | xargs printf '%.0f') -"
}

: >"$work/results"
for round in $(seq 1 "$rounds"); do
  limit_start http "$port"; record http-c64 "$(hit 64)"; stop
  for c in 8 64; do
    fresh_schema; limit_start enqueue "$port" "$work/limit.db" ordered; record "limit-ordered-c$c" "$(hit "$c")"; stop
    runner_start; record "runner-c$c" "$(hit "$c")"
    echo "rss-c$c $(rss) - $(load)" >>"$work/results"; stop
  done
  fresh_schema; limit_start enqueue "$port" "$work/limit.db" random; record limit-random-c64 "$(hit 64)"; stop
  runner_start --consumers 0; record runner-c64-no-consumer "$(hit 64)"; stop
  # The drain: the runner's worker alone on a full queue, against moving the same rows.
  runner_drain runner-drain         # the default batch size: 10
  runner_drain runner-drain-100 --batch-size 100
  for per_tx in 10 100 1000; do
    fresh_schema
    record "limit-drain-$per_tx" "$("$bin/examples/limits" drain "$work/limit.db" "$drain_n" "$per_tx" | cut -d' ' -f1) -"
  done
done

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
m() { awk -v k="$1" '$1 == k { print $2 }' "$work/results" | median; }
p99() { awk -v k="$1" '$1 == k { print $3 }' "$work/results" | sed 's/ms//' | median; }
runs() { awk -v k="$1" '$1 == k { printf "%s%s (%s)", (n++ ? ", " : ""), $2, $4 }' "$work/results"; }
ratio() { echo "$1 / $2" | bc -l | xargs printf '%.2f'; }

echo "### The runner against this machine's limit"
echo
echo "Command: \`bench/limits.sh\` (ROUNDS=$rounds, DRAIN_N=$drain_n). $(nproc) cores, $(date -u +%Y-%m-%d); runner and limits built with \`--profile runner\`, the runner with RUST_LOG=warn and --no-auth; wrk -t2 -d10s -s bench/post.lua. Each run's figure with the load average at its start in brackets; medians in bold."
echo
echo "| measure | runner | limit | runner / limit |"
echo "|---|---|---|---|"
row() { # label runner-key limit-key
  echo "| $1 | **$(m "$2")** ($(runs "$2")) | **$(m "$3")** ($(runs "$3")) | **$(ratio "$(m "$2")" "$(m "$3")")** |"
}
row "enqueue, 8 connections, default consumer (requests/s)" runner-c8 limit-ordered-c8
row "enqueue, 64 connections, default consumer (requests/s)" runner-c64 limit-ordered-c64
row "enqueue, 64 connections, \`--consumers 0\` (requests/s)" runner-c64-no-consumer limit-ordered-c64
row "drain at the default batch size, 10 (messages/s)" runner-drain limit-drain-10
row "drain at batch size 100 (messages/s)" runner-drain-100 limit-drain-100
echo
echo "p99 at 64 connections: runner $(p99 runner-c64) ms, limit $(p99 limit-ordered-c64) ms. The runner's peak RSS (MiB): $(m rss-c64) enqueueing at 64 connections, $(m rss-runner-drain) draining at batch 10, $(m rss-runner-drain-100) at batch 100. The limits themselves: plain HTTP server $(m http-c64) requests/s; durable enqueue with random message ids $(m limit-random-c64) requests/s ($(ratio "$(m limit-random-c64)" "$(m limit-ordered-c64)")× the time-ordered one); drain at 100 and 1000 rows a transaction $(m limit-drain-100) and $(m limit-drain-1000) messages/s ($(ratio "$(m limit-drain-100)" "$(m limit-drain-10)")× and $(ratio "$(m limit-drain-1000)" "$(m limit-drain-10)")× the 10-row figure)."
