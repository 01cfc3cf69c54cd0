//! The consumer Lambda, triggered by SQS: stores each message in DynamoDB and reports the
//! records it could not store as batch item failures (the event source mapping must have
//! `ReportBatchItemFailures`), so only those are retried and, in the end, dead-lettered. A
//! record that fails at its last receive is noted in the table (see `worker::LastFailureNotes`).
//!
//! A record that fails transiently is hidden for an exponential backoff on its queue
//! (`ChangeMessageVisibilityBatch`); one that can never be stored is sent to the dead-letter
//! queue at once (`pipeline::worker`).
//!
//! Environment: `TABLE_NAME`, `QUEUE_URL`, `DEAD_LETTER_QUEUE_URL` (required),
//! `MAX_RECEIVE_COUNT` (the queue's redrive policy), `RETRY_BASE_SECS`, `RETRY_MAX_SECS`,
//! `MESSAGE_RETENTION_DAYS` (0 or unset: kept for ever).
//! Content is read against the ceiling, not `MAX_CONTENT_CHARS`: a message that was
//! accepted is stored.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use pipeline::adapters::aws::{sdk_config, DynamoDbStore, SqsRedrive};
use pipeline::config::{ConsumerConfig, RetryConfig};
use pipeline::worker::{Consumer, LastFailureNotes, Retries};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    // A bad environment fails the cold start with its reason, also under cargo lambda watch.
    let (config, retry) =
        match ConsumerConfig::from_env().and_then(|c| Ok((c, RetryConfig::from_env()?))) {
            Ok(config) => config,
            Err(e) => {
                pipeline::init_error::report(&e).await;
                return Err(e.into());
            }
        };
    let sdk = sdk_config().await;
    let store =
        DynamoDbStore::from_config(&sdk, config.table_name).with_retention(config.retention);
    let notes = LastFailureNotes {
        log: Arc::new(store.clone()),
        max_receive_count: config.max_receive_count,
    };
    let retries = Retries {
        redrive: Arc::new(SqsRedrive::from_config(
            &sdk,
            retry.queue_url,
            retry.dead_letter_queue_url,
        )),
        policy: retry.policy,
        max_receive_count: config.max_receive_count,
    };
    let consumer = Consumer::new(&store)
        .noting_last_failures(Some(&notes))
        .retrying(Some(&retries));
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, Error>(consumer.consume(event.payload).await)
    }))
    .await
}
