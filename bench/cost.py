#!/usr/bin/env python3
"""Dollars per million messages moved from POST to stored, from bench/aws-calls.sh's counts.

Counts (requests and invocations per message) are measured; prices and durations are the
assumptions below, stated so they can be changed. Prints a Markdown table and the cheapest
setting whose idle end-to-end p99 stays within the bound.

    python3 bench/cost.py /tmp/calls.jsonl [P99_BOUND_MS]
"""
import json
import sys

# List prices, us-east-1, on demand, without free tiers (AWS pricing pages, November 2026).
PRICE = {
    "apigw_http_request": 1.00 / 1e6,       # HTTP API, first 300 million a month
    "lambda_request": 0.20 / 1e6,
    "lambda_arm64_gb_second": 0.0000133334,
    "sqs_request": 0.40 / 1e6,              # standard queue, per 64 KB chunk
    "dynamodb_write_unit": 0.625 / 1e6,     # on-demand, per 1 KB written
    "dynamodb_gb_month": 0.25,
}

# Assumptions about the deployed stack (template.yaml defaults), not measured here.
MEMORY_GB = 128 / 1024            # MemorySize: 128 for every function
ENQUEUE_BILLED_MS = 10            # one SendMessage round trip in-region, plus the handler
CONSUMER_BILLED_MS = 25           # one round of parallel conditional PutItem calls, one a message
ITEM_BYTES = 250                  # a 100-character message with its keys: 1 write unit


def per_million(messages: int, invocations: int, calls: dict) -> dict:
    sqs = sum(v for k, v in calls.items() if k.startswith("SQS.")) / messages
    per_message = invocations / messages
    cost = {
        "API Gateway": PRICE["apigw_http_request"],
        "Lambda enqueue": PRICE["lambda_request"]
        + PRICE["lambda_arm64_gb_second"] * MEMORY_GB * ENQUEUE_BILLED_MS / 1000,
        "Lambda consumer": per_message
        * (PRICE["lambda_request"] + PRICE["lambda_arm64_gb_second"] * MEMORY_GB * CONSUMER_BILLED_MS / 1000),
        "SQS": sqs * PRICE["sqs_request"],
        "DynamoDB writes": max(1, -(-ITEM_BYTES // 1024)) * PRICE["dynamodb_write_unit"],
    }
    return {
        "sqs_per_message": sqs,
        "records_per_invocation": messages / max(invocations, 1),
        "cost": {k: v * 1e6 for k, v in cost.items()},
        "total": sum(cost.values()) * 1e6,
    }


def main() -> None:
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip().startswith("{")]
    bound = float(sys.argv[2]) if len(sys.argv) > 2 else 1000.0
    print("| batch size / window | load | records an invocation | SQS requests a message "
          "| API GW | Lambda enqueue | Lambda consumer | SQS | DynamoDB | **$ a million** | idle POST→stored p50 / p99 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    best = None
    for row in rows:
        idle = row["idle_post_to_visible"]
        loads = [("burst, 32 clients", row["messages"], row["invocations"], row["calls"])]
        if "steady" in row:
            st = row["steady"]
            loads.append(("steady, 50/s", st["messages"], st["invocations"], st["calls"]))
        for load, messages, invocations, calls in loads:
            m = per_million(messages, invocations, calls)
            c = m["cost"]
            print(f"| {row['batch_size']} / {row['batching_window_ms']} ms | {load} | {m['records_per_invocation']:.1f} "
                  f"| {m['sqs_per_message']:.2f} | {c['API Gateway']:.3f} | {c['Lambda enqueue']:.3f} "
                  f"| {c['Lambda consumer']:.3f} | {c['SQS']:.3f} | {c['DynamoDB writes']:.3f} | **{m['total']:.3f}** "
                  f"| {idle['p50_ms']:.0f} / {idle['p99_ms']:.0f} ms |")
            if load.startswith("steady") and idle["p99_ms"] <= bound and (best is None or m["total"] < best[1]):
                best = (row, m["total"])
    storage = ITEM_BYTES * 1e6 / 1e9 * PRICE["dynamodb_gb_month"]
    print(f"\nStorage: {storage:.3f} $ a million messages a month kept. Idle SQS polling by the "
          "event source mapping (5 pollers, 20 s long polls): about 650,000 requests, 0.26 $ a month.")
    if best:
        row, total = best
        print(f"Cheapest under steady load within an idle p99 of {bound:.0f} ms: batch size {row['batch_size']}, "
              f"window {row['batching_window_ms']} ms, {total:.3f} $ a million messages.")


if __name__ == "__main__":
    main()
