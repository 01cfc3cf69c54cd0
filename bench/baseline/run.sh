#!/usr/bin/env bash
# Measures the tutorial's stack (Flask under gunicorn + Redis Queue + SQLite) on this machine,
# the same way bench/run.sh measures ours, and prints Markdown for BENCHMARKS.md.
#
#   bench/baseline/run.sh      # needs wrk and redis-server (Debian), and Python 3
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
runs="${RUNS:-3}"
drain_n="${DRAIN_N:-2000}"
redis_port="${BASELINE_REDIS_PORT:-6390}"
app_port="${BASELINE_PORT:-5900}"
export REDIS_URL="redis://127.0.0.1:$redis_port"
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

for tool in wrk redis-server; do
  command -v "$tool" >/dev/null || { echo "baseline: $tool is missing (apt-get install $tool)" >&2; exit 1; }
done
bin=$("$root/infra/tools.sh" baseline)
(cd "$root" && cargo build --quiet --locked --profile runner --example loadgen)
cp "$here"/app.py "$here"/models.py "$here"/task_queue.py "$work/"
cd "$work"

setsid redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no >"$work/redis.log" 2>&1 &
pids+=($!)
until "$bin/python" -c "import redis, os; redis.Redis.from_url(os.environ['REDIS_URL']).ping()" 2>/dev/null; do sleep 0.1; done

reset() {
  "$bin/python" -c "import redis, os; redis.Redis.from_url(os.environ['REDIS_URL']).flushall()"
  rm -rf "$work/instance"
}
start_app() {
  setsid "$bin/gunicorn" --workers "$(( $(nproc) * 2 ))" --bind "127.0.0.1:$app_port" app:app >"$work/gunicorn.log" 2>&1 &
  app_pid=$!
  pids+=("$app_pid")
  until curl -fs "http://127.0.0.1:$app_port/messages" >/dev/null 2>&1; do sleep 0.1; done
}
stop() { kill -TERM -- "-$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

echo "## Baseline: the tutorial (Flask + gunicorn, RQ, SQLite), $(nproc) cores, $(date -u +%Y-%m-%d)"
echo
echo "Command: \`bench/baseline/run.sh\` (RUNS=$runs). gunicorn with $(( $(nproc) * 2 )) sync workers; Redis $(redis-server --version | awk '{ print $3 }') on loopback, no persistence."
echo
echo "### Enqueue: POST /add_message under wrk -t2 -c64 -d10s, one RQ worker running"
echo
echo "| run | requests/s | p50 | p99 | errors |"
echo "|---|---|---|---|---|"
: >"$work/enqueue"
for run in $(seq 1 "$runs"); do
  reset
  start_app
  setsid "$bin/rq" worker --url "$REDIS_URL" --worker-class rq.worker.SimpleWorker >"$work/worker.log" 2>&1 &
  worker=$!
  pids+=("$worker")
  wrk -t2 -c64 -d10s --latency -s "$here/post.lua" "http://127.0.0.1:$app_port/add_message" >"$work/wrk.txt"
  stop "$worker"; stop "$app_pid"
  rps=$(awk '/Requests\/sec/ { print $2 }' "$work/wrk.txt")
  errors=$(awk '/Non-2xx/ { print $NF } /Socket errors/ { print }' "$work/wrk.txt" | tr '\n' ' ')
  # A run with errors measured something else; it is shown but not counted.
  [ -n "$errors" ] || echo "$rps" >>"$work/enqueue"
  echo "| $run | $rps | $(awk '$1 == "50%" { print $2 }' "$work/wrk.txt") | $(awk '$1 == "99%" { print $2 }' "$work/wrk.txt") | ${errors:-none} |"
done
echo
echo "Median of the runs without errors: $(median <"$work/enqueue") requests/s."
echo
echo "### Drain: $drain_n queued jobs, one RQ SimpleWorker in burst mode"
echo
echo "| run | messages/s | seconds |"
echo "|---|---|---|"
: >"$work/drain"
for run in $(seq 1 "$runs"); do
  reset
  start_app
  "$root/${CARGO_TARGET_DIR:-target}/runner/examples/loadgen" post "http://127.0.0.1:$app_port/add_message" "$drain_n" 16 >/dev/null
  stop "$app_pid"
  started=$(date +%s.%N)
  "$bin/rq" worker --url "$REDIS_URL" --worker-class rq.worker.SimpleWorker --burst >"$work/worker.log" 2>&1
  seconds=$(echo "$(date +%s.%N) - $started" | bc -l)
  rate=$(echo "$drain_n / $seconds" | bc -l | xargs printf '%.1f')
  echo "$rate" >>"$work/drain"
  echo "| $run | $rate | $(printf '%.1f' "$seconds") |"
done
echo
echo "Median: $(median <"$work/drain") messages/s."
