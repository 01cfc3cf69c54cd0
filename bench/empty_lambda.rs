//! The baseline of bench/coldstart.rs: a Rust Lambda that does nothing but answer, built and
//! run the same way as the functions, so the difference is our `main`'s own init work.

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<_, Error>(event.payload)
    }))
    .await
}
