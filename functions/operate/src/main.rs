//! The operate Lambda behind API Gateway: `GET /stats`, the dead-letter routes (list, requeue
//! one, requeue all, purge: `messages/admin`) and the dashboard's files. Its role alone may
//! read and move the dead-letter queue.
//!
//! Its role may also write a tombstone over a message (`DELETE /messages/{id}`), never read one.
//!
//! Environment: `QUEUE_URL`, `DEAD_LETTER_QUEUE_URL`, `TABLE_NAME` and `JOB_ID_SECRET`, all
//! required; `JOB_ID_PREVIOUS_SECRET`, `JOB_IDS_UNTAGGED_UNTIL`.

use lambda_http::{run, service_fn, Error, Request};
use pipeline::adapters::aws::{sdk_config, AwsOperations, DynamoDbStore};
use pipeline::api::{operate_function, Operator};
use pipeline::config::{job_id_keys, OperateConfig};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    // A bad environment fails the cold start with its reason, also under cargo lambda watch.
    let (config, job_ids) = match OperateConfig::from_env().and_then(|c| Ok((c, job_id_keys()?))) {
        Ok(config) => config,
        Err(e) => {
            pipeline::init_error::report(&e).await;
            return Err(e.into());
        }
    };
    let sdk = sdk_config().await;
    let operations = AwsOperations::from_config(&sdk, &config);
    let store = DynamoDbStore::from_config(&sdk, config.table_name.clone());
    let operator = Operator {
        operations: &operations,
        store: &store,
        ids: &job_ids,
    };
    run(service_fn(move |request: Request| async move {
        Ok::<_, Error>(operate_function(request, operator).await)
    }))
    .await
}
