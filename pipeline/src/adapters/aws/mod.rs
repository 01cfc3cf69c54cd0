//! The ports on AWS: SQS for the queue and the dead-letter queue, DynamoDB for the store,
//! the idempotency keys and the failure notes, CloudWatch for the age of the oldest message.
//!
//! Clients come from `aws_config::load_defaults`, so `AWS_ENDPOINT_URL` (or the per-service
//! `AWS_ENDPOINT_URL_SQS` / `AWS_ENDPOINT_URL_DYNAMODB`) points them at an emulator; no
//! endpoint is ever written in code.

use std::time::Duration;

mod attempts;
mod dynamodb;
mod errors;
mod failures;
mod flow_history;
mod idempotency;
mod operations;
mod redrive;
mod sqs;

pub use dynamodb::DynamoDbStore;
pub use errors::{class_of, port_error};
pub use flow_history::FlowSources;
pub use idempotency::DynamoDbKeys;
pub use operations::AwsOperations;
pub use redrive::SqsRedrive;
pub use sqs::{lambda_record_of, SqsQueue};

/// The store's list merge and item mapping, open for the benchmarks that time them
/// (bench/list_reads.rs, bench/consumer_hot_path.rs); the adapter is their only other caller.
pub mod for_benchmarks {
    pub use super::dynamodb::{
        merge_newest_first, message_item, shard_of, shard_query_limit, ShardPage, SHARDS,
    };
}

/// The shared SDK configuration: region, credentials and endpoints from the environment, and
/// the time budget of every call ([`call_budget`]).
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(call_budget())
        .load()
        .await
}

/// How long a call to SQS or DynamoDB may take before it fails, so that a service that
/// stalls after accepting the connection costs a 503 with `Retry-After`, not the function's
/// own timeout and API Gateway's non-JSON 500.
///
/// The budget: 1 s to connect, 2 s an attempt, 5 s in all with the SDK's retries (three
/// attempts, backoff included). The enqueue and list functions have 10 s (template
/// `Globals.Timeout`), so a stalled call is answered within about 5 s; the consumer's batch
/// write fits its 30 s many times. A long poll extends its own attempt by its wait
/// ([`long_poll_budget`]).
pub fn call_budget() -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(Duration::from_secs(5))
        .build()
}

const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// The budget of a receive that long-polls for `wait`: the wait on top of each attempt.
pub fn long_poll_budget(wait: Duration) -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .operation_attempt_timeout(wait + ATTEMPT_TIMEOUT)
        .operation_timeout(3 * (wait + ATTEMPT_TIMEOUT))
        .build()
}
