"""Starts ministack with four corrections to its IAM enforcement (AUTH=true), where it
differs from AWS:
- it authorizes SQS's batch calls under their own names (sqs:SendMessageBatch, ...), which
  IAM does not have. AWS authorizes each as its single-message action (the SQS developer
  guide's "Amazon SQS API permissions" table; IAM's service authorization reference lists no
  batch actions), and so do our policies.
- it does not set the condition key dynamodb:LeadingKeys, so a `ForAllValues` condition on it
  (the operate role's: failure notes only) holds for every item. AWS sets it to the partition
  key values a request names; so does this, for the item, batch-write and query calls.
  Nor dynamodb:Attributes (the operate role's: tombstones only), which AWS sets to the
  top-level attribute names a request names; this sets it for PutItem's item.
- it does not name the action of a call in the smithy-rpc-v2-cbor protocol (POST
  /service/<service>/operation/<Operation>), which the Rust SDK speaks to CloudWatch, and so
  lets any signed caller make it: `cloudwatch:GetMetricData` went unchecked.
- it authorizes sqs:StartMessageMoveTask on "*" (the call names no QueueUrl), which no
  policy scoped to a queue matches; AWS authorizes it on its SourceArn, the dead-letter queue.
Anything else ministack decides unchanged.

    python infra/emulator_main.py     # what infra/emulator.sh runs, in the emulator's venv
"""
import json
import re
import sys

import ministack.core.iam_actions as iam_actions
from ministack.app import main

AS_AWS_AUTHORIZES = {
    "sqs:SendMessageBatch": "sqs:SendMessage",
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
}

_extract = iam_actions.extract_iam_action


RPC_V2_OPERATION = re.compile(r"^/service/[^/]+/operation/([A-Za-z0-9]+)$")


def extract_iam_action(service, method, path, headers, body, query_params):
    action = _extract(service, method, path, headers, body, query_params)
    namespace = iam_actions.SERVICE_TO_IAM_NAMESPACE.get(service)
    if action is None and namespace and (operation := RPC_V2_OPERATION.match(path)):
        action = f"{namespace}:{operation.group(1)}"
    return AS_AWS_AUTHORIZES.get(action, action)


_resource = iam_actions.extract_resource_arn


def extract_resource_arn(service, method, path, headers, body, query_params, region, account_id):
    if RPC_V2_OPERATION.match(path) and body:
        # Its resource lookup reads JSON: give it the CBOR body as JSON.
        import cbor2

        body = json.dumps(cbor2.loads(body), default=str).encode()
    arn = _resource(service, method, path, headers, body, query_params, region, account_id)
    if service == "sqs" and arn == "*":
        source = iam_actions._param(body, query_params, "SourceArn")
        return source or arn
    return arn


_dynamodb_context = iam_actions.dynamodb_service_context


def dynamodb_service_context(body):
    context = _dynamodb_context(body)
    try:
        request = json.loads(body or b"{}")
    except (ValueError, TypeError):
        return context
    if isinstance(request, dict) and (keys := leading_keys(request)):
        context["dynamodb:LeadingKeys"] = keys
    if isinstance(request, dict) and isinstance(item := request.get("Item"), dict):
        context["dynamodb:Attributes"] = sorted(item)
    return context


def leading_keys(request):
    """The partition key values a request names: its Key or Item, each of a BatchWriteItem's
    or BatchGetItem's items, or the equality on the partition key in a KeyConditionExpression."""
    keys = []
    if isinstance(table := request.get("TableName"), str):
        items = [request.get("Key"), request.get("Item")]
        condition = request.get("KeyConditionExpression")
        if isinstance(condition, str):
            keys += queried_keys(table, condition, request)
        requests = {table: items}
    else:
        requests = {}
        for name, entries in (request.get("RequestItems") or {}).items():
            if isinstance(entries, dict):  # BatchGetItem: {"Keys": [...]}
                requests[name] = entries.get("Keys") or []
            else:  # BatchWriteItem: [{"PutRequest": {"Item"}} | {"DeleteRequest": {"Key"}}]
                requests[name] = [
                    (entry.get("PutRequest") or {}).get("Item")
                    or (entry.get("DeleteRequest") or {}).get("Key")
                    for entry in entries
                    if isinstance(entry, dict)
                ]
    for table, items in requests.items():
        hash_key = partition_key_name(table)
        for item in items:
            if isinstance(item, dict) and hash_key in item:
                keys.append(scalar(item[hash_key]))
    return [key for key in keys if key is not None]


def queried_keys(table, condition, request):
    hash_key = partition_key_name(table)
    names = request.get("ExpressionAttributeNames") or {}
    values = request.get("ExpressionAttributeValues") or {}
    for left, right in re.findall(r"([#:]?[\w.]+)\s*=\s*([#:]?[\w.]+)", condition):
        for name, value in ((left, right), (right, left)):
            if names.get(name, name) == hash_key and value in values:
                return [scalar(values[value])]
    return []


def partition_key_name(table):
    from ministack.services import dynamodb

    name = table.rsplit("table/", 1)[-1] if table.startswith("arn:") else table
    description = dynamodb._tables.get(name) or {}
    return next(
        (k["AttributeName"] for k in description.get("KeySchema", []) if k.get("KeyType") == "HASH"),
        None,
    )


def scalar(value):
    """An AttributeValue's string form, as IAM compares it."""
    if isinstance(value, dict) and len(value) == 1:
        (kind, inner), = value.items()
        if kind in ("S", "N", "B"):
            return str(inner)
    return None


# ministack imports these by name inside each request's handling, so the module's attributes
# are what it calls.
iam_actions.extract_iam_action = extract_iam_action
iam_actions.dynamodb_service_context = dynamodb_service_context
iam_actions.extract_resource_arn = extract_resource_arn

if __name__ == "__main__":
    sys.exit(main())
