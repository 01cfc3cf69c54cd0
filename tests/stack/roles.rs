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

/// SQS and DynamoDB clients under a session of one of the stack's roles.
struct Role {
    sqs: aws_sdk_sqs::Client,
    dynamodb: aws_sdk_dynamodb::Client,
}

impl Role {
    /// A session of the stack's role `logical_id`, as Lambda takes one for its function.
    async fn assume(logical_id: &str) -> Self {
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
        Self {
            sqs: aws_sdk_sqs::Client::from_conf(sqs),
            dynamodb: aws_sdk_dynamodb::Client::from_conf(dynamodb),
        }
    }

    async fn get_item(&self, table: &str) -> &'static str {
        let call = self.dynamodb.get_item().table_name(table);
        verdict(call.set_key(Some(a_key())).send().await)
    }

    async fn put_item(&self, table: &str) -> &'static str {
        let call = self.dynamodb.put_item().table_name(table);
        verdict(call.set_item(Some(a_key())).send().await)
    }

    async fn delete_item(&self, table: &str) -> &'static str {
        let call = self.dynamodb.delete_item().table_name(table);
        verdict(call.set_key(Some(a_key())).send().await)
    }

    async fn send_message(&self, queue: &str) -> &'static str {
        let call = self.sqs.send_message().queue_url(queue);
        verdict(call.message_body("x").send().await)
    }

    async fn receive_message(&self, queue: &str) -> &'static str {
        let call = self.sqs.receive_message().queue_url(queue);
        verdict(call.max_number_of_messages(1).send().await)
    }

    async fn get_queue_attributes(&self, queue: &str) -> &'static str {
        verdict(
            self.sqs
                .get_queue_attributes()
                .queue_url(queue)
                .send()
                .await,
        )
    }
}

/// What a call got: allowed (whatever else happened), or refused.
fn verdict<T, E: aws_sdk_sqs::error::ProvideErrorMetadata>(outcome: Result<T, E>) -> &'static str {
    let refused = outcome
        .as_ref()
        .err()
        .and_then(|e| e.code())
        .is_some_and(|code| code.starts_with("AccessDenied") || code == "UnauthorizedOperation");
    if refused {
        "refused"
    } else {
        "allowed"
    }
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
    let list = Role::assume("ListFunctionRole").await;
    let enqueue = Role::assume("EnqueueFunctionRole").await;
    let consumer = Role::assume("ConsumerRole").await;
    let operate = Role::assume("OperateFunctionRole").await;

    // Each call, what it got, and what it must get.
    let calls = [
        (
            "list: GetItem messages table",
            list.get_item(&table).await,
            "allowed",
        ),
        (
            "list: PutItem messages table",
            list.put_item(&table).await,
            "refused",
        ),
        (
            "list: SendMessage queue",
            list.send_message(&queue).await,
            "refused",
        ),
        (
            "enqueue: ReceiveMessage queue",
            enqueue.receive_message(&queue).await,
            "refused",
        ),
        (
            "enqueue: PutItem messages table",
            enqueue.put_item(&table).await,
            "refused",
        ),
        (
            "consumer: DeleteItem messages table",
            consumer.delete_item(&table).await,
            "refused",
        ),
        (
            "consumer: ReceiveMessage dead-letter queue",
            consumer.receive_message(&dlq).await,
            "refused",
        ),
        (
            "operate: GetQueueAttributes dead-letter queue",
            operate.get_queue_attributes(&dlq).await,
            "allowed",
        ),
        (
            "operate: PutItem messages table",
            operate.put_item(&table).await,
            "refused",
        ),
    ];
    let seen: Vec<_> = calls.iter().map(|(call, got, _)| (*call, *got)).collect();
    let expected: Vec<_> = calls.iter().map(|(call, _, want)| (*call, *want)).collect();
    assert_eq!(seen, expected);
}
