#!/usr/bin/env bash
# The retry figures in BENCHMARKS.md, measured on the runner (embedded backend):
#
#   outage  the store fails every write (--store-faults error=1): how long each of 5 messages
#           stays out of the dead-letter queue, from its 202 to `dead_lettered` (the longest
#           total outage it rides out). With the runner's defaults that takes hours, so every
#           time setting is divided by SCALE (default 30): visibility 30 s -> 1 s, retry base
#           30 s -> 1 s, cap 3600 s -> 120 s. Multiply the figures by SCALE.
#   poison  the store refuses content with BAD for good (--store-faults poison=BAD), the
#           runner's own defaults: from each of 5 messages' 202 to `dead_lettered`.
#
#   bench/retries.sh <runner binary> <before|after>
#
# `before` is a binary without --retry-base-secs (every failure waits out the visibility
# timeout; maxReceiveCount 5); `after` one with them. Prints one line a message and the median.
set -euo pipefail
runner=${1:?the runner binary}
kind=${2:?before or after}
scale=${SCALE:-30}
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# Starts the runner with the given flags; prints its URL.
start() {
  local name=$1
  shift
  setsid "$runner" --listen 127.0.0.1:0 --no-auth --data "$work/$name.db" \
    --tokens-file "$work/$name.env" "$@" >"$work/$name.log" 2>&1 </dev/null &
  pids+=($!)
  for _ in $(seq 100); do
    url=$(grep -oE 'listening on http://[0-9.:]+' "$work/$name.log" | cut -d' ' -f3 || true)
    [ -n "$url" ] && { echo "$url"; return; }
    sleep 0.1
  done
  echo "the runner did not start: $(cat "$work/$name.log")" >&2
  exit 1
}

# Posts 5 messages with `content`, then prints the seconds from each 202 to its listing in
# GET /dead-letters: the moment it is doomed (noted at its last failed delivery, or moved at
# once), so the longest outage it rides out. (Job status reads the store, which fails during
# the outage; the listing reads the failure notes.)
measure() {
  local url=$1 content=$2 label=$3
  local ids=() starts=() times=() left=5
  for i in 1 2 3 4 5; do
    ids+=("$(curl -sf "$url/messages" -H 'Content-Type: application/json' \
      -d "{\"content\": \"$content $i\"}" | jq -r .job_id)")
    starts+=("$(date +%s.%N)")
  done
  while [ "$left" -gt 0 ]; do
    listed=$(curl -sf "$url/dead-letters?limit=100" | jq -r '.dead_letters[] | (.job_id // .id)')
    now=$(date +%s.%N)
    for i in 0 1 2 3 4; do
      if [ -z "${times[$i]:-}" ] && grep -qx "${ids[$i]}" <<<"$listed"; then
        times[i]=$(echo "$now - ${starts[$i]}" | bc)
        left=$((left - 1))
      fi
    done
    sleep 0.1
  done
  printf '%s\n' "${times[@]}" | sort -n | awk -v label="$label" \
    '{ t[NR] = $1; printf "%s: message %d dead-lettered after %.1f s\n", label, NR, $1 } END { printf "%s: median %.1f s\n", label, t[3] }'
}

visibility=$((30 / scale > 0 ? 30 / scale : 1))
if [ "$kind" = after ]; then
  outage_flags=(--visibility-timeout-secs "$visibility" --max-receive-count 9
    --retry-base-secs $((30 / scale > 0 ? 30 / scale : 1)) --retry-max-secs $((3600 / scale)))
else
  outage_flags=(--visibility-timeout-secs "$visibility" --max-receive-count 5)
fi
outage=$(start outage --store-faults error=1 "${outage_flags[@]}")
poison=$(start poison --store-faults poison=BAD)
measure "$outage" "during the outage" "$kind outage (x$scale)" &
outage_measure=$!
measure "$poison" "this is BAD" "$kind poison" &
poison_measure=$!
wait "$outage_measure" "$poison_measure"
