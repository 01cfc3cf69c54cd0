//! The list Lambda behind API Gateway: `GET /messages` (newest first, paginated),
//! `GET /messages/{id}` and `GET /jobs/{id}` from DynamoDB; also the catch-all route that
//! answers 404 and 405.
//!
//! Environment: `TABLE_NAME`, `CURSOR_SECRET` and `JOB_ID_SECRET` (at least 32 bytes), all
//! required; `QUEUE_RETENTION_SECONDS`, `JOB_ID_PREVIOUS_SECRET`, `JOB_IDS_UNTAGGED_UNTIL`.

use lambda_http::{run, service_fn, Error, Request};
use pipeline::adapters::aws::{sdk_config, DynamoDbStore};
use pipeline::api::{read_function, Reader};
use pipeline::config::{job_id_keys, ListConfig};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    // A bad environment fails the cold start with its reason, also under cargo lambda watch.
    let (config, job_ids) = match ListConfig::from_env().and_then(|c| Ok((c, job_id_keys()?))) {
        Ok(config) => config,
        Err(e) => {
            pipeline::init_error::report(&e).await;
            return Err(e.into());
        }
    };
    let store = DynamoDbStore::from_config(&sdk_config().await, config.table_name);
    let reader = Reader {
        store: &store,
        cursors: &config.cursor_key,
        failures: &store,
        retention: config.retention,
        clock: &pipeline::clock::SystemClock,
        ids: &job_ids,
    };
    run(service_fn(move |request: Request| async move {
        Ok::<_, Error>(read_function(request, reader).await)
    }))
    .await
}
