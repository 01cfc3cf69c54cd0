#!/usr/bin/env python3
"""Dollars a million messages by batch size, without and with idempotency keys, from
bench/enqueue-cost.sh's counts (enqueue side) and bench/aws-calls.sh's (consumer side).

Counted: API requests, SQS sends and idempotency writes a message; the idempotency records'
sizes. Assumed (stated below): prices, the enqueue function's billed duration, and the
consumer side at the template's defaults (batch 10, no window) as bench/aws-calls.sh measured.

    python3 bench/batch_cost.py /tmp/enqueue.jsonl
"""
import json
import math
import sys

from cost import MEMORY_GB, PRICE

# The consumer side a message, batch 10 / window 0 under a burst (BENCHMARKS.md, "AWS calls a
# message"): 0.2 SQS requests (receive and delete), 0.1 invocations of 25 ms, one write unit.
CONSUMER = {
    "SQS receive + delete": 0.20 * PRICE["sqs_request"],
    "Lambda consumer": 0.1 * (PRICE["lambda_request"]
                              + PRICE["lambda_arm64_gb_second"] * MEMORY_GB * 25 / 1000),
    "DynamoDB message": PRICE["dynamodb_write_unit"],
}
# The enqueue function's billed milliseconds an invocation (assumed, in-region): one SQS round
# trip (10 ms), a batch's parallel calls about one and a half (15 ms for 10 calls), and two
# DynamoDB round trips more with a key (claim, then answer: 8 ms).
ENQUEUE_MS = {1: 10, 10: 11, 100: 16}
KEY_MS = 8


def write_units(size_bytes: float) -> int:
    return max(1, math.ceil(size_bytes / 1024))


def main() -> None:
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    sizes = next(r["idempotency_item_bytes"] for r in rows if "idempotency_item_bytes" in r)
    print("| batch size | Idempotency-Key | API requests a message | SQS sends a message "
          "| key write units a request | API GW | Lambda enqueue | SQS | DynamoDB (keys) "
          "| consumer side | **$ a million messages** |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        if "size" not in row:
            continue
        size, keyed, messages = row["size"], row["keyed"], row["accepted"]
        assert row["errors"] == 0, row
        requests = row["requests"] / messages
        sends = sum(v for k, v in row["calls"].items() if k.startswith("SQS.")) / messages
        units = 0
        if keyed:
            item = sizes[str(size)]
            units = write_units(item["claimed"]) + write_units(item["answered"])
            assert row["calls"].get("DynamoDB.PutItem") == row["requests"], row
            assert row["calls"].get("DynamoDB.UpdateItem") == row["requests"], row
        billed_ms = ENQUEUE_MS[size] + (KEY_MS if keyed else 0)
        cost = {
            "API GW": requests * PRICE["apigw_http_request"],
            "Lambda enqueue": requests * (PRICE["lambda_request"]
                                          + PRICE["lambda_arm64_gb_second"] * MEMORY_GB * billed_ms / 1000),
            "SQS": sends * PRICE["sqs_request"],
            "keys": requests * units * PRICE["dynamodb_write_unit"],
            "consumer": sum(CONSUMER.values()),
        }
        total = sum(cost.values()) * 1e6
        print(f"| {size} | {'yes' if keyed else 'no'} | {requests:.2f} | {sends:.2f} | {units if keyed else '-'} "
              f"| {cost['API GW'] * 1e6:.3f} | {cost['Lambda enqueue'] * 1e6:.3f} | {cost['SQS'] * 1e6:.3f} "
              f"| {cost['keys'] * 1e6:.3f} | {cost['consumer'] * 1e6:.3f} | **{total:.3f}** |")


if __name__ == "__main__":
    main()
