#!/usr/bin/env bash
# The README's shell blocks as a user pastes them: every ```sh block right after a
# `<!-- ci: runner ... -->` or `<!-- ci: stack ... -->` line, run command by command in one
# shell, each one's exit status and answer checked (an HTTP status line must be 2xx, a JSON
# answer must not be an error). Only what a user fills in is filled in:
#   runner: the runner this script starts on a free port (with a poison marker) for
#           http://127.0.0.1:3000 and .local/tokens.env; <job_id> is the job id the block's
#           last answer named, and <job id> a dead-lettered job's;
#   stack:  nothing (STACK_NAME names the deployed stack, as infra/test.sh exports it).
#
#   infra/readme-smoke.sh runner
#   STACK_NAME=... infra/readme-smoke.sh stack
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mode="${1:?usage: infra/readme-smoke.sh runner|stack}"
command -v jq >/dev/null || { echo "readme-smoke: the README's lines use jq; install it (apt-get install jq)" >&2; exit 1; }

work=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ]; then
    kill -TERM -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  # What the blocks write in the checkout (pipeline-ctl runs there, as `cargo run` must).
  [ -n "${made_messages:-}" ] && rm -f "$root/messages.txt"
  rm -rf "$work"
}
trap cleanup EXIT

# The marked blocks of this mode, as logical lines (continuations joined), comments kept.
awk -v mode="$mode" '
  $0 ~ "^<!-- ci: " mode "[ >]" { armed = 1; next }
  armed && /^```sh$/ { inside = 1; armed = 0; next }
  inside && /^```$/ { inside = 0; next }
  inside { print }
  { armed = armed && /^$/ }
' README.md | sed -e ':a' -e '/\\$/N; s/\\\n//; ta' >"$work/lines"
[ -s "$work/lines" ] || { echo "readme-smoke: no <!-- ci: $mode --> block in README.md" >&2; exit 1; }

if [ "$mode" = runner ]; then
  [ -e messages.txt ] && { echo "readme-smoke: messages.txt exists here; the README's block would overwrite it" >&2; exit 1; }
  made_messages=yes
  cargo build --locked --quiet --bin message-pipeline --bin pipeline-ctl
  setsid "${CARGO_TARGET_DIR:-$root/target}/debug/message-pipeline" --listen 127.0.0.1:0 \
    --data "$work/readme.db" --tokens-file "$work/tokens.env" --store-faults poison=POISON \
    >"$work/runner.log" 2>&1 </dev/null &
  pid=$!
  for _ in $(seq 100); do
    [ -s "$work/tokens.env" ] && break
    sleep 0.1
  done
  [ -s "$work/tokens.env" ] || { cat "$work/runner.log" >&2; exit 1; }
  # The URL and the admin token, for pipeline-ctl (which would otherwise read .local/tokens.env).
  url=$(sed -n 's/^PIPELINE_URL=//p' "$work/tokens.env")
  admin=$(sed -n 's/^ADMIN_TOKEN=//p' "$work/tokens.env")
  sed -i -e "s#http://127.0.0.1:3000#$url#g" -e "s#\\. \\.local/tokens\\.env#. $work/tokens.env#g" "$work/lines"
  export PIPELINE_URL="$url" PIPELINE_TOKEN="$admin"
fi

# The script the lines become: each one run in this shell (so assignments and aliases hold),
# its output kept and checked.
{
  echo 'set -uo pipefail'
  echo 'shopt -s expand_aliases'
  cat <<'EOT'
_job=""
fail() { echo "readme-smoke: $1" >&2; echo "--- it answered:" >&2; head -c 2000 "$out" >&2; echo >&2; exit 1; }
check() {
  local line=$1 rc=$2 status
  [ "$rc" -eq 0 ] || fail "exit status $rc: $line"
  status=$(tr -d '\r' <"$out" | sed -n 's#^HTTP/[0-9.]* \([0-9]*\).*#\1#p' | tail -1)
  [ -z "$status" ] || [ "${status:0:1}" = 2 ] || fail "HTTP $status: $line"
  ! grep -q '^{"message":"[A-Za-z]*","error"\|^{"error"' "$out" || fail "an error: $line"
  local named
  named=$(grep -oE '[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}' "$out" | head -1 || true)
  [ -z "$named" ] || _job=$named
  echo "readme-smoke: ok  ${line:0:110}"
}
# A dead-lettered job for <job id>: one poison message, waited for until it is in the
# dead-letter queue again (a requeue puts it back on the queue first).
dead=""
dead_letter() {
  if [ -z "$dead" ]; then
    dead=$(curl -s -X POST "$PIPELINE_URL/messages" -H "Authorization: Bearer $WRITE_FOR_POISON" \
      -H 'Content-Type: application/json' -d '{"content": "POISON, for the README"}' | jq -r .job_id)
  fi
  for _ in $(seq 100); do
    curl -s "$PIPELINE_URL/jobs/$dead" -H "Authorization: Bearer $PIPELINE_TOKEN" \
      | grep -q '"status":"dead_lettered"' && break
    sleep 0.1
  done
  echo "$dead"
}
out=$(mktemp)
EOT
  while IFS= read -r line; do
    stripped=$(sed -E 's/^[[:space:]]+//' <<<"$line")
    [ -z "$stripped" ] || [ "${stripped:0:1}" = "#" ] && continue
    line=${line//<job_id>/\$_job}
    line=${line//<job id>/\$(dead_letter)}
    printf '{ %s\n} >"$out" 2>&1 </dev/null; check %q $?\n' "$line" "$line"
  done <"$work/lines"
} >"$work/script.sh"

if [ "$mode" = runner ]; then
  WRITE_FOR_POISON=$(sed -n 's/^WRITE_TOKEN=//p' "$work/tokens.env") bash "$work/script.sh"
else
  : "${STACK_NAME:?set STACK_NAME to the deployed stack}"
  bash "$work/script.sh"
fi
