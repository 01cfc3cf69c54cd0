//! Creates a queue (with its dead-letter queue), the messages table and the idempotency keys'
//! table as template.yaml does, through whatever endpoint the environment names (the
//! emulator for bench/aws-calls.sh), and prints them as shell assignments. `provision delete NAME` removes them again.
//!
//!   eval "$(cargo run --example provision -- create mp-bench-1)"

use message_pipeline::provision::{self, QueueSettings};
use pipeline::adapters::aws::sdk_config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["create", name] => {
            let queues = provision::create_queues(&sqs, name, QueueSettings::PRODUCTION).await?;
            provision::create_table(&dynamodb, name).await?;
            provision::create_key_table(&dynamodb, &format!("{name}-keys")).await?;
            println!("QUEUE_URL={}", queues.queue_url);
            println!("DLQ_URL={}", queues.dlq_url);
            println!("DEAD_LETTER_QUEUE_URL={}", queues.dlq_url);
            println!("TABLE_NAME={name}");
            println!("IDEMPOTENCY_TABLE_NAME={name}-keys");
        }
        ["delete", name] => {
            let queue_url = sqs.get_queue_url().queue_name(*name).send().await?;
            let dlq_url = sqs
                .get_queue_url()
                .queue_name(format!("{name}-dlq"))
                .send()
                .await?;
            for url in [queue_url.queue_url, dlq_url.queue_url]
                .into_iter()
                .flatten()
            {
                sqs.delete_queue().queue_url(url).send().await?;
            }
            provision::delete_table(&dynamodb, name).await?;
            provision::delete_table(&dynamodb, &format!("{name}-keys")).await?;
        }
        _ => anyhow::bail!("usage: provision create|delete NAME"),
    }
    Ok(())
}
