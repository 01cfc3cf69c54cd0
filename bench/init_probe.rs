//! Times the SDK's part of a function's init in-process, without exec or the Runtime API:
//! `aws_config::load_defaults` (region and credential chains, the HTTPS client with its CA
//! roots) and an SQS and a DynamoDB client. Prints milliseconds: config, sqs, dynamodb.
//! What found that the CA roots dominate (BENCHMARKS.md, "Cold start"):
//!
//!   for i in $(seq 21); do target/release/examples/init_probe; done
//!   env -u SSL_CERT_DIR SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt target/release/examples/init_probe

use std::time::Instant;

#[tokio::main]
async fn main() {
    let started = Instant::now();
    let config = pipeline::adapters::aws::sdk_config().await;
    let loaded = started.elapsed();
    let sqs = aws_sdk_sqs::Client::new(&config);
    let with_sqs = started.elapsed();
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let with_dynamodb = started.elapsed();
    std::hint::black_box((sqs, dynamodb));
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    println!(
        "{:.3} {:.3} {:.3}",
        ms(loaded),
        ms(with_sqs - loaded),
        ms(with_dynamodb - with_sqs)
    );
}
