//! The enqueue Lambda behind API Gateway: validates `POST /messages` (and the tutorial's
//! `POST /add_message`), sends the message to SQS and answers 202 with its job id.
//!
//! Environment: `QUEUE_URL`, `IDEMPOTENCY_TABLE_NAME` and `JOB_ID_SECRET` (required),
//! `JOB_ID_PREVIOUS_SECRET`, `JOB_IDS_UNTAGGED_UNTIL`, `MAX_CONTENT_CHARS`, `MAX_BODY_BYTES`.

use lambda_http::{run, service_fn, Error, Request};
use pipeline::adapters::aws::{DynamoDbKeys, SqsQueue};
use pipeline::api::{enqueue_function, Writer};
use pipeline::config::{job_id_keys, EnqueueConfig};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    // A bad environment fails the cold start with its reason, also under cargo lambda watch.
    let (config, job_ids) = match EnqueueConfig::from_env().and_then(|c| Ok((c, job_id_keys()?))) {
        Ok(config) => config,
        Err(e) => {
            pipeline::init_error::report(&e).await;
            return Err(e.into());
        }
    };
    let sdk = pipeline::adapters::aws::sdk_config().await;
    let queue = SqsQueue::from_config(&sdk, config.queue_url);
    let keys = DynamoDbKeys::from_config(&sdk, config.idempotency_table);
    let writer = Writer {
        queue: &queue,
        keys: &keys,
        limits: &config.limits,
        ids: &job_ids,
        clock: &pipeline::clock::SystemClock,
    };
    run(service_fn(move |request: Request| async move {
        Ok::<_, Error>(enqueue_function(request, writer).await)
    }))
    .await
}
