#!/usr/bin/env bash
# Benchmarks the local runner (`cargo run`, embedded backend) on this machine and prints
# Markdown for BENCHMARKS.md. Everything binds 127.0.0.1; every load is bounded.
#
#   bench/run.sh              # all measurements, 3 runs each where it says "median of 3"
#   RUNS=5 bench/run.sh
#
# Needs wrk (Debian: apt-get install wrk).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
runs="${RUNS:-3}"
port="${BENCH_PORT:-3900}"
url="http://127.0.0.1:$port"
work=$(mktemp -d)
trap 'stop_runner >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

command -v wrk >/dev/null || { echo "bench: wrk is missing (apt-get install wrk)" >&2; exit 1; }
cargo build --quiet --locked --profile runner --bin message-pipeline --example loadgen
runner="${CARGO_TARGET_DIR:-target}/runner/message-pipeline"
loadgen="${CARGO_TARGET_DIR:-target}/runner/examples/loadgen"

pid=""
start_runner() {
  rm -f "$work"/db*
  # --no-auth: these measure the pipeline, on loopback; a token check is one SHA-256.
  RUST_LOG=warn setsid "$runner" --listen "127.0.0.1:$port" --no-auth --data "$work/db" "$@" >"$work/runner.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do
    curl -fs "$url/_local/stats" >/dev/null 2>&1 && return
    sleep 0.1
  done
  echo "bench: runner did not start" >&2; cat "$work/runner.log" >&2; exit 1
}
# Prints the runner's peak RSS in MiB, then stops it.
stop_runner() {
  [ -n "$pid" ] || return 0
  awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$pid/status"
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  pid=""
}
stored() { curl -fs "$url/_local/stats" | sed -E 's/.*"stored":([0-9]+).*/\1/'; }
# Waits until N messages are stored, then prints "messages/s seconds peak-RSS" since $1
# (a `now` timestamp) and stops the runner.
until_stored() {
  local started=$1 n=$2 finished rss
  while [ "$(stored)" -lt "$n" ]; do sleep 0.01; done
  finished=$(now)
  rss=$(stop_runner)
  echo "$(echo "$n / ($finished - $started)" | bc -l | xargs printf '%.0f') $(echo "$finished - $started" | bc -l | xargs printf '%.2f') $rss"
}
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
now() { date +%s.%N; }

echo "## Local runner (embedded backend), $(nproc) cores, $(date -u +%Y-%m-%d)"
echo
echo "Command: \`bench/run.sh\` (RUNS=$runs). Runner built with \`--profile runner\`, RUST_LOG=warn."
echo

# 1. Enqueue over HTTP: wrk, 2 threads, 64 connections, 10 s, with the worker draining meanwhile.
enqueue() {
: >"$work/enqueue"
for _ in $(seq 1 "$runs"); do
  start_runner "$@"
  wrk -t2 -c64 -d10s --latency -s bench/post.lua "$url/messages" >"$work/wrk.txt"
  rss=$(stop_runner)
  rps=$(awk '/Requests\/sec/ { print $2 }' "$work/wrk.txt")
  p50=$(awk '$1 == "50%" { print $2 }' "$work/wrk.txt")
  p99=$(awk '$1 == "99%" { print $2 }' "$work/wrk.txt")
  errors=$(awk '/Non-2xx/ { print $NF } /Socket errors/ { print }' "$work/wrk.txt" | tr '\n' ' ')
  echo "$rps $p50 $p99 $rss ${errors:-none}" >>"$work/enqueue"
done
echo "### Enqueue: POST /messages under wrk -t2 -c64 -d10s, worker: ${*:-default (1 consumer)}"
echo
echo "| run | requests/s | p50 | p99 | peak RSS (MiB) | errors |"
echo "|---|---|---|---|---|---|"
awk '{ printf "| %d | %s | %s | %s | %s | %s |\n", NR, $1, $2, $3, $4, ($5 == "" ? "none" : $5) }' "$work/enqueue"
echo
echo "Median: $(awk '{ print $1 }' "$work/enqueue" | median) requests/s."
echo
}
enqueue
enqueue --consumers 2

# 2. Drain: N messages from the first POST to the last one stored (enqueue and worker overlap).
drain() {
  local n=$1 batch=$2 consumers=$3 started posted
  start_runner --batch-size "$batch" --consumers "$consumers"
  started=$(now)
  posted=$("$loadgen" post "$url/messages" "$n" 32)
  echo "$(until_stored "$started" "$n") $posted"
}
echo "### Drain: from the first POST to the last message stored"
echo
echo "32 keep-alive clients (bench/loadgen.rs) post N messages; the time runs until GET /_local/stats counts N stored."
echo
echo "| N | batch size | consumers | run | messages/s | seconds | peak RSS (MiB) | enqueue side |"
echo "|---|---|---|---|---|---|---|---|"
for setting in "10000 10 1" "10000 100 1"; do
  read -r n batch consumers <<<"$setting"
  : >"$work/drain"
  for run in $(seq 1 "$runs"); do
    line=$(drain "$n" "$batch" "$consumers")
    echo "$line" >>"$work/drain"
    read -r rate seconds rss posted <<<"$line"
    echo "| $n | $batch | $consumers | $run | $rate | $seconds | $rss | \`$posted\` |"
  done
  echo "| $n | $batch | $consumers | **median** | **$(awk '{ print $1 }' "$work/drain" | median)** | | | |"
done
read -r rate seconds rss posted <<<"$(drain 100000 100 1)"
echo "| 100000 | 100 | 1 | 1 | $rate | $seconds | $rss | \`$posted\` |"
echo

# 3. The worker alone: fill the queue with no worker running, then time the drain.
consume() {
  local n=$1 batch=$2 consumers=$3 started
  start_runner --consumers 0
  "$loadgen" post "$url/messages" "$n" 32 >/dev/null
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  # Restart on the same file (start_runner would wipe it) with the worker on.
  RUST_LOG=warn setsid "$runner" --listen "127.0.0.1:$port" --data "$work/db" --batch-size "$batch" --consumers "$consumers" >"$work/runner.log" 2>&1 &
  pid=$!
  started=$(now)
  until curl -fs "$url/_local/stats" >/dev/null 2>&1; do sleep 0.01; done
  until_stored "$started" "$n"
}
echo "### The worker alone: a full queue of N messages drained"
echo
echo "N messages enqueued with no worker running (\`--consumers 0\`), then the runner restarted on the same file; the time runs from the restart until all N are stored."
echo
echo "| N | batch size | consumers | run | messages/s | seconds | peak RSS (MiB) |"
echo "|---|---|---|---|---|---|---|"
for setting in "10000 10 1" "10000 100 1" "10000 100 2"; do
  read -r n batch consumers <<<"$setting"
  : >"$work/consume"
  for run in $(seq 1 "$runs"); do
    line=$(consume "$n" "$batch" "$consumers")
    echo "$line" >>"$work/consume"
    read -r rate seconds rss <<<"$line"
    echo "| $n | $batch | $consumers | $run | $rate | $seconds | $rss |"
  done
  echo "| $n | $batch | $consumers | **median** | **$(awk '{ print $1 }' "$work/consume" | median)** | | |"
done
read -r rate seconds rss <<<"$(consume 100000 100 1)"
echo "| 100000 | 100 | 1 | 1 | $rate | $seconds | $rss |"
echo

# 4. Idle: from POST to the message being readable by GET /messages/{id}.
start_runner
visible=$("$loadgen" visible "$url" 200)
rss=$(stop_runner)
echo "### Idle: POST to visible in GET /messages/{id}"
echo
echo "200 probes, one at a time, 20 ms apart: \`$visible\`, peak RSS $rss MiB."
