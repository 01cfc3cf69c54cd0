"""The identity the integration tests run as: an IAM user allowed what the adapters call
(pipeline/src/adapters/aws/, the four functions' actions together) and what the harness
needs to make and remove each test's queues and tables, on resources named `mp-test-*`
only (tests/support/aws.rs names every one so). Not root: a test that needs anything more
fails with AccessDenied on an emulator that enforces IAM (infra/emulator.sh's default).

    python infra/test_identity.py create NAME   # prints AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=...
    python infra/test_identity.py delete NAME

Run with the credentials that may manage IAM (the emulator's root, `test`/`test`).
"""
import json
import sys
import time

import boto3

QUEUES = "arn:aws:sqs:*:*:mp-test-*"
TABLES = "arn:aws:dynamodb:*:*:table/mp-test-*"

POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            # What the functions' adapters call: enqueue's sends, the consumer's receives,
            # deletes, backoffs and dead-lettering, operate's dead-letter moves and purges.
            "Sid": "AdaptersOnTestQueues",
            "Effect": "Allow",
            "Action": [
                "sqs:SendMessage",
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:ChangeMessageVisibility",
                "sqs:GetQueueAttributes",
                "sqs:PurgeQueue",
                "sqs:StartMessageMoveTask",
            ],
            "Resource": QUEUES,
        },
        {
            # The store, its failure notes and the idempotency keys.
            "Sid": "AdaptersOnTestTables",
            "Effect": "Allow",
            "Action": [
                "dynamodb:PutItem",
                "dynamodb:GetItem",
                "dynamodb:UpdateItem",
                "dynamodb:DeleteItem",
                "dynamodb:Query",
                "dynamodb:BatchWriteItem",
                "dynamodb:DescribeTable",
            ],
            "Resource": TABLES,
        },
        {
            # `/stats` reads a queue's age from CloudWatch; the consumer's metrics are EMF in
            # its logs. GetMetricData has no resource-level permissions.
            "Sid": "StatsMetrics",
            "Effect": "Allow",
            "Action": "cloudwatch:GetMetricData",
            "Resource": "*",
        },
        {
            # The harness: each test's queue, dead-letter queue and tables
            # (src/provision.rs), made and deleted by the test.
            "Sid": "HarnessMakesTestQueues",
            "Effect": "Allow",
            "Action": ["sqs:CreateQueue", "sqs:DeleteQueue", "sqs:SetQueueAttributes", "sqs:GetQueueUrl"],
            "Resource": QUEUES,
        },
        {
            "Sid": "HarnessMakesTestTables",
            "Effect": "Allow",
            "Action": ["dynamodb:CreateTable", "dynamodb:DeleteTable", "dynamodb:UpdateTimeToLive"],
            "Resource": TABLES,
        },
        {
            # The conservation tests count every item a run stored (tests/support/aws.rs).
            "Sid": "HarnessCountsTestTables",
            "Effect": "Allow",
            "Action": "dynamodb:Scan",
            "Resource": TABLES,
        },
    ],
}


def create(name: str) -> None:
    iam = boto3.client("iam")
    iam.create_user(UserName=name, Tags=[{"Key": "purpose", "Value": "message-pipeline tests"}])
    iam.put_user_policy(UserName=name, PolicyName="integration-tests", PolicyDocument=json.dumps(POLICY))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    # On AWS a new key takes a few seconds to be accepted everywhere.
    sts = boto3.client(
        "sts", aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"]
    )
    for attempt in range(30):
        try:
            sts.get_caller_identity()
            break
        except Exception:  # noqa: BLE001 (any failure here is "not yet")
            if attempt == 29:
                raise
            time.sleep(1)
    print(f"AWS_ACCESS_KEY_ID={key['AccessKeyId']} AWS_SECRET_ACCESS_KEY={key['SecretAccessKey']}")


def delete(name: str) -> None:
    iam = boto3.client("iam")
    for key in iam.list_access_keys(UserName=name)["AccessKeyMetadata"]:
        iam.delete_access_key(UserName=name, AccessKeyId=key["AccessKeyId"])
    iam.delete_user_policy(UserName=name, PolicyName="integration-tests")
    iam.delete_user(UserName=name)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("create", "delete"):
        sys.exit(__doc__)
    {"create": create, "delete": delete}[sys.argv[1]](sys.argv[2])
