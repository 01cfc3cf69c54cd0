"""Starts ministack with one correction to its IAM enforcement (AUTH=true), where it differs
from AWS: it authorizes SQS's batch calls under their own names (sqs:SendMessageBatch, ...),
which IAM does not have. AWS authorizes each as its single-message action (the SQS
developer guide's "Amazon SQS API permissions" table; IAM's service authorization reference
lists no batch actions), and so do our policies. Anything else ministack decides unchanged.

    python infra/emulator_main.py     # what infra/emulator.sh runs, in the emulator's venv
"""
import sys

import ministack.core.iam_actions as iam_actions
from ministack.app import main

AS_AWS_AUTHORIZES = {
    "sqs:SendMessageBatch": "sqs:SendMessage",
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
}

_extract = iam_actions.extract_iam_action


def extract_iam_action(*args, **kwargs):
    action = _extract(*args, **kwargs)
    return AS_AWS_AUTHORIZES.get(action, action)


# ministack imports it by name inside each request's handling, so the module's attribute is
# what it calls.
iam_actions.extract_iam_action = extract_iam_action

if __name__ == "__main__":
    sys.exit(main())
