//! The enqueue Lambda behind API Gateway: validates `POST /messages` (and the tutorial's
//! `POST /add_message`), sends the message to SQS and answers 202 with its job id.
//!
//! Environment: `QUEUE_URL` (required), `MAX_CONTENT_CHARS`, `MAX_BODY_BYTES`.

use lambda_http::{run, service_fn, Error, Request};
use message_pipeline::api::enqueue_function;
use message_pipeline::aws::SqsQueue;
use message_pipeline::config::EnqueueConfig;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    // A bad environment fails the cold start with its reason, also under cargo lambda watch.
    let config =
        EnqueueConfig::from_env().inspect_err(|e| message_pipeline::init_error::report(e))?;
    let queue = SqsQueue::connect(config.queue_url).await;
    let (queue, limits) = (&queue, &config.limits);
    run(service_fn(move |request: Request| async move {
        Ok::<_, Error>(enqueue_function(request, queue, limits).await)
    }))
    .await
}
