//! Creates the queue, its dead-letter queue and the table with the settings `template.yaml`
//! gives them, for the integration tests (one uniquely named set per test) and the benchmarks
//! (`cargo run --example provision`). Keep the two in step: `tests/template.rs` checks the template side.

use std::time::Duration;

use anyhow::{bail, Context as _};
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::create_table::{CreateTableError, CreateTableOutput};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    SseSpecification, TableStatus, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;

pub use pipeline::ports::QueueSettings;

/// The URLs and ARN of a queue and its dead-letter queue.
#[derive(Debug, Clone)]
pub struct Queues {
    pub queue_url: String,
    pub queue_arn: String,
    pub dlq_url: String,
}

const FOURTEEN_DAYS_SECS: u32 = 14 * 24 * 3600;

/// Creates `<name>` with a redrive policy to `<name>-dlq` (kept 14 days). Idempotent.
pub async fn create_queues(
    client: &aws_sdk_sqs::Client,
    name: &str,
    settings: QueueSettings,
) -> anyhow::Result<Queues> {
    create(client, name, settings, false).await
}

/// Creates FIFO `<name>.fifo` with a redrive policy to FIFO `<name>-dlq.fifo` (a FIFO queue's
/// dead-letter queue must be FIFO too), deduplicating by the id each send gives (the job id),
/// as template.yaml with FifoQueue=true. Idempotent.
pub async fn create_fifo_queues(
    client: &aws_sdk_sqs::Client,
    name: &str,
    settings: QueueSettings,
) -> anyhow::Result<Queues> {
    create(client, name, settings, true).await
}

async fn create(
    client: &aws_sdk_sqs::Client,
    name: &str,
    settings: QueueSettings,
    fifo: bool,
) -> anyhow::Result<Queues> {
    let suffix = if fifo { ".fifo" } else { "" };
    let kind =
        |create: aws_sdk_sqs::operation::create_queue::builders::CreateQueueFluentBuilder| {
            if fifo {
                create
                    .attributes(QueueAttributeName::FifoQueue, "true")
                    .attributes(QueueAttributeName::ContentBasedDeduplication, "false")
            } else {
                create
            }
        };
    let dlq_url = kind(client.create_queue())
        .queue_name(format!("{name}-dlq{suffix}"))
        .attributes(
            QueueAttributeName::MessageRetentionPeriod,
            FOURTEEN_DAYS_SECS.to_string(),
        )
        .attributes(QueueAttributeName::SqsManagedSseEnabled, "true")
        .send()
        .await
        .context("CreateQueue (dead-letter queue)")?
        .queue_url
        .context("CreateQueue returned no URL")?;
    let dlq_arn = queue_arn(client, &dlq_url).await?;
    let redrive = serde_json::json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": settings.max_receive_count,
    });
    let queue_url = kind(client.create_queue())
        .queue_name(format!("{name}{suffix}"))
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            settings.visibility_timeout.as_secs().to_string(),
        )
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .attributes(QueueAttributeName::SqsManagedSseEnabled, "true")
        .send()
        .await
        .context("CreateQueue")?
        .queue_url
        .context("CreateQueue returned no URL")?;
    let queue_arn = queue_arn(client, &queue_url).await?;
    Ok(Queues {
        queue_url,
        queue_arn,
        dlq_url,
    })
}

/// The ARN of a queue, asked of SQS rather than assembled (account ids differ everywhere).
pub async fn queue_arn(client: &aws_sdk_sqs::Client, queue_url: &str) -> anyhow::Result<String> {
    client
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .context("GetQueueAttributes")?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .context("queue has no QueueArn")
}

pub async fn delete_queues(client: &aws_sdk_sqs::Client, queues: &Queues) -> anyhow::Result<()> {
    for url in [&queues.queue_url, &queues.dlq_url] {
        client
            .delete_queue()
            .queue_url(url)
            .send()
            .await
            .context("DeleteQueue")?;
    }
    Ok(())
}

/// Creates the messages table (on demand, encrypted) and waits until it is ACTIVE.
pub async fn create_table(client: &aws_sdk_dynamodb::Client, name: &str) -> anyhow::Result<()> {
    let key = |attribute: &str, key_type: KeyType| -> anyhow::Result<KeySchemaElement> {
        Ok(KeySchemaElement::builder()
            .attribute_name(attribute)
            .key_type(key_type)
            .build()?)
    };
    let string_attribute = |attribute: &str| -> anyhow::Result<AttributeDefinition> {
        Ok(AttributeDefinition::builder()
            .attribute_name(attribute)
            .attribute_type(ScalarAttributeType::S)
            .build()?)
    };
    let created = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .attribute_definitions(string_attribute("pk")?)
        .attribute_definitions(string_attribute("sk")?)
        .sse_specification(SseSpecification::builder().enabled(true).build())
        .send()
        .await;
    created_or_there(created, "CreateTable")?;
    wait_for_active(client, name).await
}

/// A `CreateTable` that succeeded, or found the table there already.
fn created_or_there(
    created: Result<CreateTableOutput, SdkError<CreateTableError>>,
    what: &'static str,
) -> anyhow::Result<()> {
    match created {
        Err(error)
            if !error
                .as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) =>
        {
            Err(anyhow::Error::new(error).context(what))
        }
        _ => Ok(()),
    }
}

/// Creates a table of idempotency keys as template.yaml's `IdempotencyTable` (partition key
/// `pk`, TTL on `expires_at`) and waits until it is ACTIVE.
pub async fn create_key_table(client: &aws_sdk_dynamodb::Client, name: &str) -> anyhow::Result<()> {
    let created = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()?,
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()?,
        )
        .sse_specification(SseSpecification::builder().enabled(true).build())
        .send()
        .await;
    created_or_there(created, "CreateTable (idempotency keys)")?;
    wait_for_active(client, name).await?;
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name("expires_at")
                .enabled(true)
                .build()?,
        )
        .send()
        .await
        .context("UpdateTimeToLive (idempotency keys)")?;
    Ok(())
}

/// Polls every 200 ms. The SDK's `wait_until_table_exists` waits at least 20 s between polls
/// (its generated `min_delay`), while a new on-demand table is usually ACTIVE within seconds:
/// for a test that creates its own table, that is up to 20 s for nothing.
async fn wait_for_active(client: &aws_sdk_dynamodb::Client, name: &str) -> anyhow::Result<()> {
    for _ in 0..300 {
        let status = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .context("DescribeTable")?
            .table
            .and_then(|t| t.table_status);
        if status == Some(TableStatus::Active) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("table {name} did not become ACTIVE within 60 s")
}

pub async fn delete_table(client: &aws_sdk_dynamodb::Client, name: &str) -> anyhow::Result<()> {
    client
        .delete_table()
        .table_name(name)
        .send()
        .await
        .context("DeleteTable")?;
    Ok(())
}
