//! The operate Lambda behind API Gateway: `GET /stats`, the dead-letter routes (list, requeue
//! one, requeue all, purge: `messages/admin`) and the dashboard's files. Its role alone may
//! read and move the dead-letter queue.
//!
//! Environment: `QUEUE_URL`, `DEAD_LETTER_QUEUE_URL` and `TABLE_NAME`, all required.

use lambda_http::{run, service_fn, Error, Request};
use pipeline::adapters::aws::{sdk_config, AwsOperations};
use pipeline::api::operate_function;
use pipeline::config::OperateConfig;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    // A bad environment fails the cold start with its reason, also under cargo lambda watch.
    let config = match OperateConfig::from_env() {
        Ok(config) => config,
        Err(e) => {
            pipeline::init_error::report(&e).await;
            return Err(e.into());
        }
    };
    let operations = AwsOperations::from_config(&sdk_config().await, &config);
    let operations = &operations;
    run(service_fn(move |request: Request| async move {
        Ok::<_, Error>(operate_function(request, operations).await)
    }))
    .await
}
