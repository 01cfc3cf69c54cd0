//! The baseline of bench/coldstart.rs: a Rust Lambda that does nothing but answer, built and
//! run the same way as the functions, so the difference is our `main`'s own init work.
//!
//! `INIT_STEPS` adds the functions' init steps one by one, to attribute their cost:
//! `subscriber` (the logging setup), `config` (`aws_config::load_defaults`: region and
//! credential chains), `clients` (an SQS and a DynamoDB client from that config).

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let steps = std::env::var("INIT_STEPS").unwrap_or_default();
    if steps.contains("subscriber") {
        lambda_runtime::tracing::init_default_subscriber();
    }
    if steps.contains("config") {
        let config = message_pipeline::aws::sdk_config().await;
        if steps.contains("clients") {
            std::hint::black_box(aws_sdk_sqs::Client::new(&config));
            std::hint::black_box(aws_sdk_dynamodb::Client::new(&config));
        }
    }
    run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<_, Error>(event.payload)
    }))
    .await
}
