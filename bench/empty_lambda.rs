//! The baseline of bench/coldstart.rs: a Rust Lambda that does nothing but answer (no SDK,
//! no configuration), built and run the same way as the functions, so the difference is our
//! `main`'s own init work. bench/init_probe.rs attributes that work.

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<_, Error>(event.payload)
    }))
    .await
}
