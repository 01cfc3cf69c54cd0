//! Each function's role, as the emulator enforces it (`AUTH=true`, infra/emulator.sh's
//! default): the test assumes the role, as Lambda does for each function, and makes every
//! SQS, DynamoDB and CloudWatch call the function's code makes (allowed), and the nearest calls
//! it has no business making (refused), on this stack's resources and on another stack's
//! queue and table. That the refusals happen at all is also what shows the emulator enforces
//! IAM in this run: with enforcement off, this test fails.
//!
//! Every call is harmless whatever it gets: a receive asks for 11 messages (invalid once
//! authorized), a send has an empty body, a write is conditional on an item that is not there,
//! a delete names a receipt handle or key that does not exist. So the verdict is only whether
//! IAM let the call through. On the emulator the test's identity may assume any role; on AWS it
//! would need a trust statement of its own.

use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, WriteRequest};
use aws_sdk_sqs::types::QueueAttributeName;
use pipeline::adapters::aws::sdk_config;

use super::auth::aws;
use crate::support::aws::TestStack;
use crate::support::stack::var;

/// Who makes the call: a function's role, by its logical id in template.yaml.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Who {
    Enqueue,
    Consumer,
    List,
    Operate,
}

/// What is called on.
#[derive(Debug, Clone, Copy)]
enum On {
    Queue,
    DeadLetterQueue,
    /// A stored message's item (partition `shard#NN`); a put writes it with content.
    Message,
    /// A deleted message's tombstone: the same key, only `deleted_at` beside it (the operate
    /// role's `dynamodb:Attributes`).
    Tombstone,
    /// A failure note's item (partition `dead`, the operate role's `dynamodb:LeadingKeys`).
    Note,
    /// A job's failed delivery (partition `attempts#<job>`).
    Attempt,
    IdempotencyKey,
    /// Another stack's queue, and a message item in its table.
    ForeignQueue,
    ForeignMessage,
    /// CloudWatch metrics (no resource-level permissions).
    Metrics,
}

#[derive(Debug, Clone, Copy)]
enum Call {
    SendMessage,
    ReceiveMessage,
    DeleteMessage,
    ChangeMessageVisibility,
    GetQueueAttributes,
    PurgeQueue,
    StartMessageMoveTask,
    GetItem,
    PutItem,
    UpdateItem,
    DeleteItem,
    Query,
    BatchWriteItem,
    DescribeTable,
    GetMetricData,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Verdict {
    Allowed,
    Refused,
}

use Call::*;
use On::*;
use Verdict::*;
use Who::*;

/// The table: each role is allowed what its code calls (pipeline/src/adapters/aws/) on its
/// own resources, and refused its neighbours' calls and anything on another stack.
const TABLE: &[(Who, Call, On, Verdict)] = &[
    // enqueue: sends (one or a batch) and keeps idempotency keys.
    (Enqueue, SendMessage, Queue, Allowed),
    (Enqueue, PutItem, IdempotencyKey, Allowed),
    (Enqueue, GetItem, IdempotencyKey, Allowed),
    (Enqueue, UpdateItem, IdempotencyKey, Allowed),
    (Enqueue, DeleteItem, IdempotencyKey, Allowed),
    (Enqueue, ReceiveMessage, Queue, Refused),
    (Enqueue, DeleteMessage, Queue, Refused),
    (Enqueue, SendMessage, DeadLetterQueue, Refused),
    (Enqueue, PutItem, Message, Refused),
    (Enqueue, PutItem, Tombstone, Refused),
    (Enqueue, GetItem, Message, Refused),
    (Enqueue, SendMessage, ForeignQueue, Refused),
    // consumer: the event source mapping's receive and delete, backoffs, dead-lettering a
    // poison record, one conditional put a message or failure note.
    (Consumer, ReceiveMessage, Queue, Allowed),
    (Consumer, DeleteMessage, Queue, Allowed),
    (Consumer, GetQueueAttributes, Queue, Allowed),
    (Consumer, ChangeMessageVisibility, Queue, Allowed),
    (Consumer, SendMessage, DeadLetterQueue, Allowed),
    (Consumer, PutItem, Message, Allowed),
    (Consumer, PutItem, Note, Allowed),
    (Consumer, PutItem, Attempt, Allowed),
    (Consumer, SendMessage, Queue, Refused),
    (Consumer, PurgeQueue, Queue, Refused),
    (Consumer, ReceiveMessage, DeadLetterQueue, Refused),
    (Consumer, DeleteMessage, DeadLetterQueue, Refused),
    (Consumer, DeleteItem, Message, Refused),
    (Consumer, UpdateItem, Message, Refused),
    (Consumer, GetItem, Message, Refused),
    (Consumer, GetItem, IdempotencyKey, Refused),
    (Consumer, ReceiveMessage, ForeignQueue, Refused),
    (Consumer, PutItem, ForeignMessage, Refused),
    // list: reads messages, jobs' notes.
    (List, Query, Message, Allowed),
    (List, GetItem, Message, Allowed),
    (List, GetItem, Note, Allowed),
    (List, Query, Attempt, Allowed),
    (List, PutItem, Message, Refused),
    (List, PutItem, Tombstone, Refused),
    (List, DeleteItem, Message, Refused),
    (List, BatchWriteItem, Note, Refused),
    (List, SendMessage, Queue, Refused),
    (List, ReceiveMessage, DeadLetterQueue, Refused),
    (List, GetItem, IdempotencyKey, Refused),
    (List, GetMetricData, Metrics, Refused),
    (List, GetItem, ForeignMessage, Refused),
    // operate: stats, the dead-letter queue (list, requeue, purge) and its notes only.
    (Operate, GetQueueAttributes, Queue, Allowed),
    (Operate, GetQueueAttributes, DeadLetterQueue, Allowed),
    (Operate, SendMessage, Queue, Allowed),
    (Operate, ReceiveMessage, DeadLetterQueue, Allowed),
    (Operate, DeleteMessage, DeadLetterQueue, Allowed),
    (Operate, ChangeMessageVisibility, DeadLetterQueue, Allowed),
    (Operate, StartMessageMoveTask, DeadLetterQueue, Allowed),
    (Operate, DescribeTable, Message, Allowed),
    (Operate, GetMetricData, Metrics, Allowed),
    (Operate, Query, Note, Allowed),
    (Operate, GetItem, Note, Allowed),
    (Operate, BatchWriteItem, Note, Allowed),
    (Operate, Query, Message, Refused),
    (Operate, GetItem, Message, Refused),
    (Operate, Query, Attempt, Refused),
    (Operate, BatchWriteItem, Message, Refused),
    (Operate, PutItem, Message, Refused),
    (Operate, PutItem, Tombstone, Allowed),
    (Operate, ReceiveMessage, Queue, Refused),
    (Operate, DeleteMessage, Queue, Refused),
    (Operate, PurgeQueue, Queue, Refused),
    (Operate, SendMessage, DeadLetterQueue, Refused),
    (Operate, GetItem, IdempotencyKey, Refused),
    (Operate, GetQueueAttributes, ForeignQueue, Refused),
    (Operate, BatchWriteItem, ForeignMessage, Refused),
];

/// The resources the calls name: this stack's, and another stack's.
struct Names {
    queue: String,
    dead_letter_queue: String,
    dead_letter_queue_arn: String,
    table: String,
    keys_table: String,
    foreign_queue: String,
    foreign_table: String,
}

impl Names {
    fn queue(&self, on: On) -> &str {
        match on {
            Queue => &self.queue,
            DeadLetterQueue => &self.dead_letter_queue,
            ForeignQueue => &self.foreign_queue,
            _ => panic!("{on:?} is not a queue"),
        }
    }

    fn table(&self, on: On) -> &str {
        match on {
            Message | Tombstone | Note | Attempt | Queue | DeadLetterQueue | Metrics => &self.table,
            IdempotencyKey => &self.keys_table,
            ForeignQueue | ForeignMessage => &self.foreign_table,
        }
    }
}

fn key(on: On) -> std::collections::HashMap<String, AttributeValue> {
    let s = |text: &str| AttributeValue::S(text.into());
    match on {
        IdempotencyKey => [("pk".into(), s("role-table-test"))].into(),
        Note => [
            ("pk".into(), s("dead")),
            ("sk".into(), s("role-table-test")),
        ]
        .into(),
        _ => [
            ("pk".into(), s("shard#00")),
            ("sk".into(), s("role-table-test")),
        ]
        .into(),
    }
}

/// SQS, DynamoDB and CloudWatch clients under a session of one of the stack's roles.
struct Role {
    sqs: aws_sdk_sqs::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    cloudwatch: aws_sdk_cloudwatch::Client,
}

impl Role {
    /// A session of the stack's role `logical_id`, as Lambda takes one for its function.
    async fn assume(who: Who) -> Self {
        let logical_id = match who {
            Enqueue => "EnqueueFunctionRole",
            Consumer => "ConsumerRole",
            List => "ListFunctionRole",
            Operate => "OperateFunctionRole",
        };
        let role = aws(&[
            "cloudformation",
            "describe-stack-resource",
            "--stack-name",
            &var("STACK_NAME"),
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
        let config = sdk_config()
            .await
            .into_builder()
            .credentials_provider(aws_sdk_sqs::config::SharedCredentialsProvider::new(
                credentials,
            ))
            .build();
        Self {
            sqs: aws_sdk_sqs::Client::new(&config),
            dynamodb: aws_sdk_dynamodb::Client::new(&config),
            cloudwatch: aws_sdk_cloudwatch::Client::new(&config),
        }
    }

    /// Makes `call` on `on`, harmlessly (see the module's comment), and says whether IAM let
    /// it through.
    async fn make(&self, call: Call, on: On, names: &Names) -> Verdict {
        let (sqs, dynamodb) = (&self.sqs, &self.dynamodb);
        let table = names.table(on);
        let no_receipt = "role-table-test";
        match call {
            SendMessage => {
                let send = sqs.send_message().queue_url(names.queue(on));
                verdict(send.message_body("").send().await)
            }
            ReceiveMessage => {
                let receive = sqs.receive_message().queue_url(names.queue(on));
                verdict(receive.max_number_of_messages(11).send().await)
            }
            DeleteMessage => {
                let delete = sqs.delete_message().queue_url(names.queue(on));
                verdict(delete.receipt_handle(no_receipt).send().await)
            }
            ChangeMessageVisibility => {
                let change = sqs.change_message_visibility().queue_url(names.queue(on));
                verdict(
                    change
                        .receipt_handle(no_receipt)
                        .visibility_timeout(0)
                        .send()
                        .await,
                )
            }
            GetQueueAttributes => {
                let get = sqs.get_queue_attributes().queue_url(names.queue(on));
                verdict(
                    get.attribute_names(QueueAttributeName::QueueArn)
                        .send()
                        .await,
                )
            }
            // Refused rows only: an allowed purge would empty the queue.
            PurgeQueue => verdict(sqs.purge_queue().queue_url(names.queue(on)).send().await),
            StartMessageMoveTask => {
                let arn = &names.dead_letter_queue_arn;
                let start = sqs.start_message_move_task().source_arn(arn);
                // The emulator lacks the action (InvalidAction) but authorizes it first.
                verdict(start.max_number_of_messages_per_second(1).send().await)
            }
            GetItem => {
                let get = dynamodb.get_item().table_name(table);
                verdict(get.set_key(Some(key(on))).send().await)
            }
            PutItem => {
                let mut item = key(on);
                match on {
                    Message => item.insert("content".into(), AttributeValue::S("x".into())),
                    Tombstone => item.insert("deleted_at".into(), AttributeValue::N("1".into())),
                    _ => None,
                };
                let put = dynamodb.put_item().table_name(table).set_item(Some(item));
                verdict(
                    put.condition_expression("attribute_exists(pk)")
                        .send()
                        .await,
                )
            }
            UpdateItem => {
                let update = dynamodb.update_item().table_name(table);
                let update = update
                    .set_key(Some(key(on)))
                    .update_expression("SET x = :x");
                let update =
                    update.expression_attribute_values(":x", AttributeValue::N("1".into()));
                verdict(
                    update
                        .condition_expression("attribute_exists(pk)")
                        .send()
                        .await,
                )
            }
            DeleteItem => {
                let delete = dynamodb.delete_item().table_name(table);
                verdict(delete.set_key(Some(key(on))).send().await)
            }
            Query => {
                let partition = key(on)["pk"].clone();
                let query = dynamodb.query().table_name(table);
                let query = query.key_condition_expression("pk = :pk");
                verdict(
                    query
                        .expression_attribute_values(":pk", partition)
                        .send()
                        .await,
                )
            }
            BatchWriteItem => {
                let delete = DeleteRequest::builder()
                    .set_key(Some(key(on)))
                    .build()
                    .unwrap();
                let write = WriteRequest::builder().delete_request(delete).build();
                let batch = dynamodb
                    .batch_write_item()
                    .request_items(table, vec![write]);
                verdict(batch.send().await)
            }
            DescribeTable => verdict(dynamodb.describe_table().table_name(table).send().await),
            GetMetricData => {
                let now =
                    aws_sdk_cloudwatch::primitives::DateTime::from(std::time::SystemTime::now());
                let get = self
                    .cloudwatch
                    .get_metric_data()
                    .start_time(now)
                    .end_time(now);
                verdict(get.set_metric_data_queries(Some(vec![])).send().await)
            }
        }
    }
}

/// What a call got: refused by IAM, or allowed (whatever else happened).
fn verdict<T, E: aws_sdk_sqs::error::ProvideErrorMetadata>(outcome: Result<T, E>) -> Verdict {
    let refused = outcome
        .as_ref()
        .err()
        .and_then(|e| e.code())
        .is_some_and(|code| code.starts_with("AccessDenied") || code == "UnauthorizedOperation");
    if refused {
        Refused
    } else {
        Allowed
    }
}

#[tokio::test]
#[ignore = "needs a deployed stack: infra/test.sh"]
async fn each_function_role_is_allowed_what_its_code_calls_and_refused_its_neighbours() {
    // Another stack's queue and table, made with the test's own (root) credentials.
    let foreign = TestStack::new().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk_config().await);
    let dead_letter_queue = var("PIPELINE_DLQ_URL");
    let arn = sqs.get_queue_attributes().queue_url(&dead_letter_queue);
    let arn = arn
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap();
    let names = Names {
        queue: var("PIPELINE_QUEUE_URL"),
        dead_letter_queue_arn: arn.attributes().unwrap()[&QueueAttributeName::QueueArn].clone(),
        dead_letter_queue,
        table: var("PIPELINE_TABLE_NAME"),
        keys_table: var("PIPELINE_IDEMPOTENCY_TABLE_NAME"),
        foreign_queue: foreign.queues.queue_url.clone(),
        foreign_table: foreign.table.clone(),
    };

    let mut seen = Vec::new();
    for who in [Enqueue, Consumer, List, Operate] {
        let role = Role::assume(who).await;
        for &(_, call, on, _) in TABLE.iter().filter(|row| row.0 == who) {
            seen.push((who, call, on, role.make(call, on, &names).await));
        }
    }
    foreign.teardown().await;
    // The whole table, for the record (`-- --nocapture`), then the rows that are wrong.
    for (who, call, on, verdict) in &seen {
        println!("{who:?} {call:?} {on:?}: {verdict:?}");
    }
    let wrong: Vec<String> = seen
        .iter()
        .zip(TABLE)
        .filter(|(got, want)| got.3 != want.3)
        .map(|((who, call, on, got), want)| {
            format!("{who:?} {call:?} on {on:?}: {got:?}, must be {:?}", want.3)
        })
        .collect();
    assert_eq!(seen.len(), TABLE.len());
    assert!(
        wrong.is_empty(),
        "calls IAM decided wrongly:\n{}",
        wrong.join("\n")
    );
}
