#!/usr/bin/env bash
# What the runner's pruner costs the enqueue path: POST /messages under wrk (-t2 -c64 -d10s,
# the default consumer draining meanwhile) on a database that holds a million stored
# messages, (a) all expired, so the pruner deletes them while wrk runs, and (b) none expired,
# the same database size with nothing to prune: the baseline. Interleaved rounds; medians;
# prints Markdown for BENCHMARKS.md. Everything binds 127.0.0.1.
#
#   bench/retention.sh            # 3 rounds
#   ROUNDS=5 ROWS=1000000 bench/retention.sh
#
# Needs wrk (Debian: apt-get install wrk) and python3.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
rounds="${ROUNDS:-3}"
rows="${ROWS:-1000000}"
port="${BENCH_PORT:-3901}"
url="http://127.0.0.1:$port"
work=$(mktemp -d)
pid=""
stop_runner() {
  [ -n "$pid" ] || return 0
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  pid=""
}
trap 'stop_runner; rm -rf "$work"' EXIT

command -v wrk >/dev/null || { echo "bench: wrk is missing (apt-get install wrk)" >&2; exit 1; }
cargo build --quiet --locked --profile runner --bin message-pipeline
runner="${CARGO_TARGET_DIR:-target}/runner/message-pipeline"

start_runner() {
  RUST_LOG=warn setsid "$runner" --listen "127.0.0.1:$port" --no-auth --data "$1" >"$work/runner.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 200); do
    curl -fs "$url/_local/stats" >/dev/null 2>&1 && return
    sleep 0.1
  done
  echo "bench: runner did not start" >&2; cat "$work/runner.log" >&2; exit 1
}
stored() { curl -fs "$url/_local/stats" | sed -E 's/.*"stored":([0-9]+).*/\1/'; }
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# The runner writes the schema; the rows go in with Python's sqlite3, in one transaction.
start_runner "$work/seed.db"; stop_runner
seed() {
  cp "$work/seed.db" "$work/$1.db"
  python3 - "$work/$1.db" "$rows" "$2" <<'EOF'
import sqlite3, sys
path, rows, expires_at = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
db = sqlite3.connect(path)
db.executemany(
    "INSERT INTO messages (id, content, attributes, expires_at_ms) VALUES (?, ?, NULL, ?)",
    ((f"00000000-0000-7000-8000-{i:012d}", "x" * 100, expires_at) for i in range(rows)),
)
db.execute("UPDATE counters SET n = n + ? WHERE name = 'stored'", (rows,))
db.commit()
db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
db.close()
EOF
}
seed expired 1                 # expired in 1970
seed kept 32503680000000       # expires in 3000

: >"$work/results"
for round in $(seq 1 "$rounds"); do
  for variant in kept expired; do
    cp "$work/$variant.db" "$work/run.db"
    rm -f "$work/run.db-wal" "$work/run.db-shm"
    start_runner "$work/run.db"
    load=$(cut -d' ' -f1 /proc/loadavg)
    wrk -t2 -c64 -d10s --latency -s bench/post.lua "$url/messages" >"$work/wrk.txt"
    left=$(stored)
    stop_runner
    rps=$(awk '/Requests\/sec/ { print $2 }' "$work/wrk.txt")
    p99=$(awk '$1 == "99%" { print $2 }' "$work/wrk.txt")
    errors=$(awk '/Non-2xx/ { print $NF }' "$work/wrk.txt")
    echo "$round $variant $rps $p99 $left ${errors:-0} $load" >>"$work/results"
  done
done

echo "### Retention: enqueue while the pruner deletes $rows expired messages"
echo
echo "Command: \`bench/retention.sh\` (ROUNDS=$rounds). $(nproc) cores, $(date -u +%Y-%m-%d); runner built with \`--profile runner\`, RUST_LOG=warn, default consumer."
echo
echo "| round | database | requests/s | p99 | stored rows after 10 s | non-2xx | load average at start |"
echo "|---|---|---|---|---|---|---|"
awk -v rows="$rows" '{ printf "| %d | %s | %s | %s | %s | %s | %s |\n", $1, ($2 == "kept" ? rows " kept (baseline)" : rows " expired"), $3, $4, $5, $6, $7 }' "$work/results"
echo
kept=$(awk '$2 == "kept" { print $3 }' "$work/results" | median)
pruning=$(awk '$2 == "expired" { print $3 }' "$work/results" | median)
echo "Median: $pruning requests/s while pruning, $kept without: $(echo "$pruning / $kept" | bc -l | xargs printf '%.2f')× the baseline."
