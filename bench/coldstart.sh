#!/usr/bin/env bash
# Cold start, warm latency and peak RSS of each function's release bootstrap and of an empty
# Rust handler (the baseline), against the minimal Runtime API in bench/coldstart.rs. The
# functions' AWS calls go to the emulator (started here unless one is up), with resources
# made for the run. Prints one JSON line a function, then a Markdown table.
#
#   bench/coldstart.sh                   # 20 cold starts and 1,000 warm invocations each
#   COLD=50 WARM=2000 bench/coldstart.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=infra/env.sh
. infra/env.sh
emulator_acquire
target="${CARGO_TARGET_DIR:-target}/release"
name="mp-cold-$(date +%s)"
work=$(mktemp -d)
cleanup() {
  "$target/examples/provision" delete "$name" >/dev/null 2>&1 || true
  rm -rf "$work"
  emulator_release
}
trap cleanup EXIT

# Two builds: naming examples restricts a build to them.
cargo build --quiet --locked --release -p enqueue -p consumer -p list
cargo build --quiet --locked --release --example empty_lambda --example coldstart --example provision
eval "$("$target/examples/provision" create "$name")"
export QUEUE_URL TABLE_NAME IDEMPOTENCY_TABLE_NAME DEAD_LETTER_QUEUE_URL
# As Lambda runs them with template.yaml: SSL_CERT_FILE names one CA bundle (this host's
# here; the template names AL2023's), no SSL_CERT_DIR or AWS_CA_BUNDLE (this machine sets both).
# BENCH_CA_BUNDLE=probe measures without it: the platform probe, a bundle and a directory.
unset AWS_CA_BUNDLE SSL_CERT_DIR
if [ "${BENCH_CA_BUNDLE:-}" = probe ]; then
  unset SSL_CERT_FILE
else
  export SSL_CERT_FILE="${BENCH_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
fi
export CURSOR_SECRET="coldstart-benchmark-secret-0123456789abcdef"

# A realistic consumer event: ten valid records, as the event source mapping delivers them.
python3 - "$work/sqs-10.json" <<'PY'
import json, os, sys, time, uuid
def uuid7():
    ms = int(time.time() * 1000)
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms << 80) | (0x7 << 76) | ((rand >> 68) & 0xFFF) << 64 | (0b10 << 62) | (rand & ((1 << 62) - 1))
    return str(uuid.UUID(int=value))
records = [{
    "messageId": str(uuid.uuid4()),
    "receiptHandle": "AQEB" + "r" * 180,
    "body": json.dumps({"v": 1, "job_id": uuid7(), "content": f"cold start message {i} " + "x" * 80}),
    "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1795615200000",
                   "SenderId": "AROAEXAMPLE:enqueue", "ApproximateFirstReceiveTimestamp": "1795615200010"},
    "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
    "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:" + "bench", "awsRegion": "us-east-1",
} for i in range(10)]
json.dump({"Records": records}, open(sys.argv[1], "w"))
PY

cold="${COLD:-20}" warm="${WARM:-1000}"
{
  "$target/examples/coldstart" empty "$target/examples/empty_lambda" events/post-message.json "$cold" "$warm"
  "$target/examples/coldstart" enqueue "$target/enqueue" events/post-message.json "$cold" "$warm"
  "$target/examples/coldstart" consumer "$target/consumer" "$work/sqs-10.json" "$cold" "$warm"
  "$target/examples/coldstart" list "$target/list" events/list-messages.json "$cold" "$warm"
} | tee "$work/results.jsonl"

python3 - "$work/results.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
empty = rows[0]["init_ms_median"]
print("\n| function | init (exec → first GET /next), median | over the empty handler | exec → first response, median | warm p50 / p99 | peak RSS |")
print("|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r['function']} | {r['init_ms_median']:.2f} ms | {r['init_ms_median'] - empty:+.2f} ms "
          f"| {r['first_response_ms_median']:.2f} ms | {r['warm_p50_ms']:.2f} / {r['warm_p99_ms']:.2f} ms "
          f"| {r['peak_rss_mib']:.1f} MiB |")
PY
