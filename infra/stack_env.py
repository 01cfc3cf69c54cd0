"""Prints a deployed stack's URLs, queues, tables and app clients as shell exports, for
`eval "$(infra/local.sh env)"`, in one process (the AWS CLI costs a Python start a call).

The stack's own outputs ApiUrl, TokenUrl and DashboardUrl name AWS host names, which do not
answer on an emulator: these are the emulator's (its execute-api path, its token endpoint,
TOKEN_URL overriding, e.g. LocalStack's /_aws/cognito-idp/oauth2/token).

    python infra/stack_env.py STACK_NAME   # needs AWS_ENDPOINT_URL and credentials in the environment
"""
import json
import os
import shlex
import sys

import boto3


def main(stack: str) -> None:
    endpoint = os.environ["AWS_ENDPOINT_URL"].rstrip("/")
    cfn = boto3.client("cloudformation")
    outputs = {
        o["OutputKey"]: o["OutputValue"]
        for o in cfn.describe_stacks(StackName=stack)["Stacks"][0].get("Outputs", [])
    }
    api = cfn.describe_stack_resource(StackName=stack, LogicalResourceId="MessagesApi")
    api_url = f"{endpoint}/_aws/execute-api/{api['StackResourceDetail']['PhysicalResourceId']}"
    exports = {
        "PIPELINE_API_URL": api_url,
        "PIPELINE_DASHBOARD_URL": f"{api_url}/dashboard",
        "PIPELINE_QUEUE_URL": outputs["QueueUrl"],
        "PIPELINE_DLQ_URL": outputs["DeadLetterQueueUrl"],
        "PIPELINE_TABLE_NAME": outputs["TableName"],
        "PIPELINE_IDEMPOTENCY_TABLE_NAME": outputs["IdempotencyTableName"],
    }
    if "UserPoolId" in outputs:
        pool = outputs["UserPoolId"]
        cognito = boto3.client("cognito-idp")
        exports["PIPELINE_USER_POOL_ID"] = pool
        exports["PIPELINE_TOKEN_URL"] = os.environ.get("TOKEN_URL") or f"{endpoint}/oauth2/token"
        for role in ("WRITER", "READER", "ADMIN"):
            client_id = outputs[f"{role.title()}ClientId"]
            client = cognito.describe_user_pool_client(UserPoolId=pool, ClientId=client_id)
            exports[f"PIPELINE_{role}_CLIENT_ID"] = client_id
            exports[f"PIPELINE_{role}_CLIENT_SECRET"] = client["UserPoolClient"]["ClientSecret"]
    # The key that tags job ids, for tests that send a job to the queue themselves (as a
    # producer with the stack's key would): the routes that take an id refuse any other.
    secret = cfn.describe_stack_resource(StackName=stack, LogicalResourceId="JobIdSecret")
    value = boto3.client("secretsmanager").get_secret_value(
        SecretId=secret["StackResourceDetail"]["PhysicalResourceId"]
    )["SecretString"]
    exports["PIPELINE_JOB_ID_SECRET"] = json.loads(value)["current"]
    for name, value in exports.items():
        print(f"export {name}={shlex.quote(value)}")


if __name__ == "__main__":
    main(sys.argv[1])
