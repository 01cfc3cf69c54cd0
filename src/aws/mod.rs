//! Adapters of the ports to AWS: SQS for the queue, DynamoDB for the store, and the
//! provisioning the integration tests and local scripts use to create both as the template does.
//!
//! Clients come from `aws_config::load_defaults`, so `AWS_ENDPOINT_URL` (or the per-service
//! `AWS_ENDPOINT_URL_SQS` / `AWS_ENDPOINT_URL_DYNAMODB`) points them at an emulator; no
//! endpoint is ever written in code.

pub mod calls;
mod dynamodb;
pub mod provision;
mod sqs;

pub use dynamodb::{write_requests, DynamoDbStore, SHARDS};
pub use sqs::{record_of, SqsQueue};

/// The shared SDK configuration: region, credentials and endpoints from the environment.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}
