//! Queues, tables and stacks made for one test on the emulator (or AWS), removed after it
//! also when the test fails, and the handlers called as the Lambda functions call them.

use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_http::http::header::{HeaderValue, CONTENT_TYPE};
use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use message_pipeline::provision::{self, QueueSettings, Queues};
use pipeline::adapters::aws::{
    lambda_record_of, sdk_config, DynamoDbKeys, DynamoDbStore, SqsQueue,
};
use pipeline::api::{read_function, Caller, EnqueueLimits, Reader, Scope, Writer};
use pipeline::domain::CursorKey;
use pipeline::ports::MessageStore;

/// The enqueue function's ports over `queue` and `keys`, with the default limits.
pub fn writer<'a>(queue: &'a SqsQueue, keys: &'a DynamoDbKeys) -> Writer<'a> {
    static LIMITS: std::sync::LazyLock<EnqueueLimits> =
        std::sync::LazyLock::new(EnqueueLimits::default);
    Writer {
        queue,
        keys,
        limits: &LIMITS,
        ids: pipeline::adapters::memory::test_ids(),
        clock: &pipeline::clock::SystemClock,
    }
}

/// Keys on a table that is never created: for requests without an `Idempotency-Key`, which
/// never touch it.
pub async fn unused_keys() -> DynamoDbKeys {
    DynamoDbKeys::from_config(&sdk_config().await, "mp-test-no-keys-table")
}

/// A test stack's names, for a runner on the AWS backend (cloneable, unlike the stack).
#[derive(Debug, Clone)]
pub struct AwsTarget {
    pub queues: Queues,
    pub table: String,
    pub keys_table: String,
}

/// A queue with its dead-letter queue and a table, named for one test. `teardown` deletes
/// them; a test that fails before it (a panic) has them deleted by `Drop`, so nothing is
/// left behind on a real account.
pub struct TestStack {
    pub sqs: aws_sdk_sqs::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub queues: Queues,
    pub table: String,
    /// The idempotency keys' table.
    pub keys_table: String,
    torn_down: bool,
}

/// Short timeouts so redelivery and redrive happen within a test.
pub const TEST_QUEUE: QueueSettings = QueueSettings {
    visibility_timeout: Duration::from_secs(1),
    max_receive_count: 2,
};

impl TestStack {
    pub async fn new() -> Self {
        Self::with_settings(TEST_QUEUE).await
    }

    pub async fn with_settings(settings: QueueSettings) -> Self {
        Self::create(settings, false).await
    }

    /// A FIFO queue and FIFO dead-letter queue (`<name>.fifo`, `<name>-dlq.fifo`).
    pub async fn fifo(settings: QueueSettings) -> Self {
        Self::create(settings, true).await
    }

    async fn create(settings: QueueSettings, fifo: bool) -> Self {
        require_a_target();
        let config = sdk_config().await;
        let sqs = aws_sdk_sqs::Client::new(&config);
        let dynamodb = aws_sdk_dynamodb::Client::new(&config);
        let name = format!(
            "mp-test-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let queues = if fifo {
            provision::create_fifo_queues(&sqs, &name, settings).await
        } else {
            provision::create_queues(&sqs, &name, settings).await
        }
        .expect("create queues");
        provision::create_table(&dynamodb, &name)
            .await
            .expect("create table");
        let keys_table = format!("{name}-keys");
        provision::create_key_table(&dynamodb, &keys_table)
            .await
            .expect("create the idempotency table");
        Self {
            sqs,
            dynamodb,
            queues,
            table: name,
            keys_table,
            torn_down: false,
        }
    }

    /// Sends a body straight to this stack's queue from a blocking thread (as any producer
    /// with queue access could), on the runtime of `handle`.
    pub fn raw_sender(&self, handle: tokio::runtime::Handle) -> impl Fn(&str) + Send + 'static {
        let (sqs, queue_url) = (self.sqs.clone(), self.queues.queue_url.clone());
        move |body: &str| {
            handle
                .block_on(
                    sqs.send_message()
                        .queue_url(&queue_url)
                        .message_body(body)
                        .send(),
                )
                .unwrap();
        }
    }

    /// What a runner on the AWS backend needs of this stack.
    pub fn target(&self) -> AwsTarget {
        AwsTarget {
            queues: self.queues.clone(),
            table: self.table.clone(),
            keys_table: self.keys_table.clone(),
        }
    }

    pub fn keys(&self) -> DynamoDbKeys {
        DynamoDbKeys::new(self.dynamodb.clone(), &self.keys_table)
    }

    pub fn queue(&self) -> SqsQueue {
        SqsQueue::new(self.sqs.clone(), &self.queues.queue_url)
    }

    pub fn store(&self) -> DynamoDbStore {
        DynamoDbStore::new(self.dynamodb.clone(), &self.table)
    }

    /// Receives up to `max` messages (10 at most per call) as the Lambda event source mapping
    /// would hand them to the consumer, waiting up to `wait` for the first ones.
    pub async fn receive_event(&self, max: usize, wait: Duration) -> SqsEvent {
        receive_event(&self.sqs, &self.queues.queue_url, max, wait).await
    }

    /// Deletes the records of `event` that are not listed as failures, as the event source
    /// mapping does after the consumer returns.
    pub async fn delete_succeeded(&self, event: &SqsEvent, failed: &[String]) {
        for record in &event.records {
            if failed.contains(record.message_id.as_ref().unwrap()) {
                continue;
            }
            self.sqs
                .delete_message()
                .queue_url(&self.queues.queue_url)
                .receipt_handle(record.receipt_handle.as_ref().unwrap())
                .send()
                .await
                .expect("delete message");
        }
    }

    /// Sends a body straight to the queue, bypassing the API, as any sender with access could.
    pub async fn send_raw(&self, body: &str) {
        self.sqs
            .send_message()
            .queue_url(&self.queues.queue_url)
            .message_body(body)
            .send()
            .await
            .expect("send message");
    }

    /// Messages in the queue now, visible or in flight.
    pub async fn queued(&self) -> usize {
        approximate_count(&self.sqs, &self.queues.queue_url).await
    }

    /// Messages in the dead-letter queue now.
    pub async fn dead_lettered(&self) -> usize {
        approximate_count(&self.sqs, &self.queues.dlq_url).await
    }

    /// Receives every message in the dead-letter queue (hiding each for a minute, so none is
    /// counted twice) and returns the bodies.
    pub async fn drain_dead_letters(&self) -> Vec<String> {
        let mut bodies = Vec::new();
        let mut empty_receives = 0;
        while empty_receives < 2 {
            let received = self
                .sqs
                .receive_message()
                .queue_url(&self.queues.dlq_url)
                .max_number_of_messages(10)
                .visibility_timeout(60)
                .wait_time_seconds(1)
                .send()
                .await
                .expect("receive from the dead-letter queue");
            let messages = received.messages.unwrap_or_default();
            if messages.is_empty() {
                empty_receives += 1;
            }
            bodies.extend(messages.into_iter().filter_map(|m| m.body));
        }
        bodies
    }

    /// Stored messages in the table, counted by DynamoDB itself (a Scan that returns only the
    /// count).
    pub async fn item_count(&self) -> usize {
        let mut count = 0;
        let mut start = None;
        loop {
            let page = self
                .dynamodb
                .scan()
                .table_name(&self.table)
                .select(aws_sdk_dynamodb::types::Select::Count)
                // Messages only (partitions `shard#NN`): failure notes (`dead`) and failed
                // attempts (`attempts#<job>`) live in the same table.
                .filter_expression("begins_with(pk, :shard)")
                .expression_attribute_values(
                    ":shard",
                    aws_sdk_dynamodb::types::AttributeValue::S("shard#".into()),
                )
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("count the table's items");
            count += page.count as usize;
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return count,
            }
        }
    }

    pub async fn teardown(mut self) {
        self.torn_down = true;
        provision::delete_queues(&self.sqs, &self.queues)
            .await
            .expect("delete queues");
        provision::delete_table(&self.dynamodb, &self.table)
            .await
            .expect("delete table");
        provision::delete_table(&self.dynamodb, &self.keys_table)
            .await
            .expect("delete the idempotency table");
    }
}

impl Drop for TestStack {
    fn drop(&mut self) {
        if self.torn_down {
            return;
        }
        // Dropped without teardown: the test failed. Delete on a runtime of its own (the
        // test's may be shutting down), best effort, and never panic while panicking.
        let (sqs, dynamodb) = (self.sqs.clone(), self.dynamodb.clone());
        let (queues, table) = (self.queues.clone(), self.table.clone());
        let keys_table = self.keys_table.clone();
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                let _ = provision::delete_queues(&sqs, &queues).await;
                let _ = provision::delete_table(&dynamodb, &table).await;
                let _ = provision::delete_table(&dynamodb, &keys_table).await;
            });
        })
        .join();
    }
}

pub async fn receive_event(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    max: usize,
    wait: Duration,
) -> SqsEvent {
    let deadline = tokio::time::Instant::now() + wait;
    let mut event = SqsEvent::default();
    while event.records.len() < max && tokio::time::Instant::now() < deadline {
        let wanted = (max - event.records.len()).min(10);
        let output = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(wanted as i32)
            .wait_time_seconds(1)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .send()
            .await
            .expect("receive message");
        event.records.extend(
            output
                .messages
                .unwrap_or_default()
                .into_iter()
                .map(lambda_record_of),
        );
    }
    event
}

/// Counts what is in a queue right now (visible and in flight).
async fn approximate_count(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> usize {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .expect("get queue attributes")
        .attributes
        .unwrap_or_default();
    [
        A::ApproximateNumberOfMessages,
        A::ApproximateNumberOfMessagesNotVisible,
    ]
    .iter()
    .map(|a| {
        attributes
            .get(a)
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0)
    })
    .sum()
}

/// A request as API Gateway hands it on once its authorizer accepted a token with every
/// scope (the handlers' authorization has its own tests).
pub fn request(method: Method, path: &str, body: &str) -> Request {
    let mut request = Request::new(Body::Text(body.to_owned()));
    *request.method_mut() = method;
    *request.uri_mut() = path.parse().unwrap();
    request
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Caller::with_scopes("integration-tests", &Scope::ALL).attach_to(request)
}

pub fn json(response: &Response<Body>) -> serde_json::Value {
    serde_json::from_slice(response.body().as_ref()).unwrap()
}

pub fn failed_ids(response: &aws_lambda_events::event::sqs::SqsBatchResponse) -> Vec<String> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

fn require_a_target() {
    let emulator = std::env::var_os("AWS_ENDPOINT_URL").is_some();
    let aws = std::env::var("PIPELINE_TESTS_ON_AWS").as_deref() == Ok("1");
    assert!(
        emulator || aws,
        "integration tests need an emulator or an AWS account: run `infra/test.sh`, or set \
         AWS_ENDPOINT_URL=http://127.0.0.1:4566 after `infra/emulator.sh start`, or \
         PIPELINE_TESTS_ON_AWS=1 to create (and delete) resources in the configured account"
    );
}

/// An HTTP client that returns 4xx and 5xx as responses, for tests that assert on them.
pub fn http_agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .into()
}

/// The list function's handler on `store`, with one cursor key for the whole test run.
pub async fn read(request: Request, store: &dyn MessageStore) -> Response<Body> {
    static CURSORS: std::sync::LazyLock<CursorKey> = std::sync::LazyLock::new(CursorKey::random);
    read_function(
        request,
        Reader {
            store,
            cursors: &CURSORS,
            failures: &NoNotes,
            retention: std::time::Duration::from_secs(3600),
            clock: &pipeline::clock::SystemClock,
            ids: pipeline::adapters::memory::test_ids(),
        },
    )
    .await
}

/// A failure log with nothing in it, for the read routes' tests on a bare store.
#[derive(Debug)]
struct NoNotes;

#[async_trait::async_trait]
impl pipeline::ports::FailureLog for NoNotes {
    async fn note(&self, _: &[pipeline::domain::Failure]) -> pipeline::ports::PortResult<()> {
        Err(anyhow::anyhow!("the read routes' tests note nothing").into())
    }

    async fn failure(
        &self,
        _: pipeline::domain::JobId,
    ) -> pipeline::ports::PortResult<Option<pipeline::domain::Failure>> {
        Ok(None)
    }

    async fn note_attempts(
        &self,
        _: &[pipeline::domain::Attempt],
    ) -> pipeline::ports::PortResult<()> {
        Err(anyhow::anyhow!("the read routes' tests note nothing").into())
    }

    async fn attempts(
        &self,
        _: pipeline::domain::JobId,
    ) -> pipeline::ports::PortResult<Vec<pipeline::domain::Attempt>> {
        Ok(Vec::new())
    }
}
