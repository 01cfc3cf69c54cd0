//! Each function's role, as the emulator enforces it (`AUTH=true`, infra/emulator.sh's
//! default): the test assumes the role, as Lambda does for each function, and calls SQS and
//! DynamoDB with its session. A call the function makes is allowed; the nearest calls it has
//! no business making are refused. That the refusals happen at all is also what shows the
//! emulator enforces IAM in this run: with enforcement off, this test fails.
//!
//! On the emulator the test's identity may assume any role; on AWS it would need a trust
//! statement of its own.

use aws_sdk_dynamodb::types::AttributeValue;
use pipeline::adapters::aws::sdk_config;

use super::auth::aws;
use crate::support::stack::var;

/// SQS and DynamoDB clients under a session of the stack's role `logical_id`.
async fn clients_of(logical_id: &str) -> (aws_sdk_sqs::Client, aws_sdk_dynamodb::Client) {
    let stack = var("STACK_NAME");
    let role = aws(&[
        "cloudformation",
        "describe-stack-resource",
        "--stack-name",
        &stack,
        "--logical-resource-id",
        logical_id,
    ])["StackResourceDetail"]["PhysicalResourceId"]
        .as_str()
        .unwrap()
        .to_owned();
    let arn = aws(&["iam", "get-role", "--role-name", &role])["Role"]["Arn"]
        .as_str()
        .unwrap()
        .to_owned();
    let session = aws(&[
        "sts",
        "assume-role",
        "--role-arn",
        &arn,
        "--role-session-name",
        "role-table-test",
    ]);
    let keys = &session["Credentials"];
    let key = |name: &str| keys[name].as_str().unwrap().to_owned();
    let credentials = aws_sdk_sqs::config::Credentials::new(
        key("AccessKeyId"),
        key("SecretAccessKey"),
        Some(key("SessionToken")),
        None,
        "assumed-role",
    );
    let config = sdk_config().await;
    let sqs = aws_sdk_sqs::config::Builder::from(&config)
        .credentials_provider(credentials.clone())
        .build();
    let dynamodb = aws_sdk_dynamodb::config::Builder::from(&config)
        .credentials_provider(credentials)
        .build();
    (
        aws_sdk_sqs::Client::from_conf(sqs),
        aws_sdk_dynamodb::Client::from_conf(dynamodb),
    )
}

/// What a call got: allowed (whatever else happened), or refused.
fn verdict<T, E: aws_sdk_sqs::error::ProvideErrorMetadata>(
    call: &str,
    outcome: Result<T, E>,
) -> (String, &'static str) {
    let refused = outcome
        .as_ref()
        .err()
        .and_then(|e| e.code())
        .is_some_and(|code| code.starts_with("AccessDenied") || code == "UnauthorizedOperation");
    (call.to_owned(), if refused { "refused" } else { "allowed" })
}

fn a_key() -> std::collections::HashMap<String, AttributeValue> {
    // Any key: what is checked is whether the role may ask, not what is there.
    [
        ("pk".to_owned(), AttributeValue::S("role-table-test".into())),
        ("sk".to_owned(), AttributeValue::S("role-table-test".into())),
    ]
    .into()
}

#[tokio::test]
#[ignore = "needs a deployed stack: infra/test.sh"]
async fn each_function_role_is_allowed_what_its_code_calls_and_refused_its_neighbours() {
    let queue = var("PIPELINE_QUEUE_URL");
    let dlq = var("PIPELINE_DLQ_URL");
    let table = var("PIPELINE_TABLE_NAME");
    let mut seen = Vec::new();

    let (sqs, dynamodb) = clients_of("ListFunctionRole").await;
    let get = dynamodb
        .get_item()
        .table_name(&table)
        .set_key(Some(a_key()));
    seen.push(verdict("list: GetItem messages table", get.send().await));
    let put = dynamodb
        .put_item()
        .table_name(&table)
        .set_item(Some(a_key()));
    seen.push(verdict("list: PutItem messages table", put.send().await));
    let send = sqs.send_message().queue_url(&queue).message_body("x");
    seen.push(verdict("list: SendMessage queue", send.send().await));

    let (sqs, dynamodb) = clients_of("EnqueueFunctionRole").await;
    let receive = sqs
        .receive_message()
        .queue_url(&queue)
        .max_number_of_messages(1);
    seen.push(verdict(
        "enqueue: ReceiveMessage queue",
        receive.send().await,
    ));
    let put = dynamodb
        .put_item()
        .table_name(&table)
        .set_item(Some(a_key()));
    seen.push(verdict("enqueue: PutItem messages table", put.send().await));

    let (sqs, dynamodb) = clients_of("ConsumerRole").await;
    let delete = dynamodb
        .delete_item()
        .table_name(&table)
        .set_key(Some(a_key()));
    seen.push(verdict(
        "consumer: DeleteItem messages table",
        delete.send().await,
    ));
    let receive = sqs
        .receive_message()
        .queue_url(&dlq)
        .max_number_of_messages(1);
    seen.push(verdict(
        "consumer: ReceiveMessage dead-letter queue",
        receive.send().await,
    ));

    let (sqs, dynamodb) = clients_of("OperateFunctionRole").await;
    let attributes = sqs.get_queue_attributes().queue_url(&dlq);
    seen.push(verdict(
        "operate: GetQueueAttributes dead-letter queue",
        attributes.send().await,
    ));
    let put = dynamodb
        .put_item()
        .table_name(&table)
        .set_item(Some(a_key()));
    seen.push(verdict("operate: PutItem messages table", put.send().await));

    let expected = [
        ("list: GetItem messages table", "allowed"),
        ("list: PutItem messages table", "refused"),
        ("list: SendMessage queue", "refused"),
        ("enqueue: ReceiveMessage queue", "refused"),
        ("enqueue: PutItem messages table", "refused"),
        ("consumer: DeleteItem messages table", "refused"),
        ("consumer: ReceiveMessage dead-letter queue", "refused"),
        ("operate: GetQueueAttributes dead-letter queue", "allowed"),
        ("operate: PutItem messages table", "refused"),
    ]
    .map(|(call, verdict)| (call.to_owned(), verdict));
    assert_eq!(seen, expected);
}
