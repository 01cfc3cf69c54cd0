//! The queue ports on Amazon SQS: sending (the enqueue function) and receiving and deleting
//! as the event source mapping does (the local runner on its AWS backend).

use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use aws_lambda_events::event::sqs::SqsMessage;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};

use crate::domain::{Message, QueuedMessage};
use crate::ports::{MessageQueue, QueueSource};

/// SQS's limit on messages per ReceiveMessage and per DeleteMessageBatch.
const SQS_BATCH_MAX: usize = 10;
/// SQS's longest long poll.
const LONG_POLL_MAX: Duration = Duration::from_secs(20);

/// The queue ports on Amazon SQS: one `SendMessage` per accepted message; long-polled
/// `ReceiveMessage` and `DeleteMessageBatch` for a worker outside Lambda (the local runner).
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsQueue {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }

    /// A client configured from the environment (see [`super::sdk_config`]).
    pub async fn connect(queue_url: impl Into<String>) -> Self {
        Self::new(
            aws_sdk_sqs::Client::new(&super::sdk_config().await),
            queue_url,
        )
    }
}

#[async_trait]
impl MessageQueue for SqsQueue {
    async fn send(&self, message: &Message) -> anyhow::Result<()> {
        // The SDK retries throttling and transient errors itself; a retry that duplicates
        // the message is harmless because both copies carry the same job id.
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(QueuedMessage::body_of(message))
            .send()
            .await
            .context("SQS SendMessage failed")?;
        Ok(())
    }
}

#[async_trait]
impl QueueSource for SqsQueue {
    async fn receive(&self, max: usize, wait: Duration) -> anyhow::Result<Vec<SqsMessage>> {
        // SQS waits whole seconds: a shorter wait that is not zero rounds up, never down to a
        // short poll (a poller asking for 0.5 s in a loop would poll without waiting).
        let wait_seconds = wait.min(LONG_POLL_MAX).as_secs_f64().ceil() as u64;
        let output = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max.clamp(1, SQS_BATCH_MAX) as i32)
            .wait_time_seconds(wait_seconds as i32)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .customize()
            .config_override(
                aws_sdk_sqs::config::Builder::default()
                    .timeout_config(super::long_poll_budget(Duration::from_secs(wait_seconds))),
            )
            .send()
            .await
            .context("SQS ReceiveMessage failed")?;
        Ok(output
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(record_of)
            .collect())
    }

    async fn delete(&self, receipt_handles: &[String]) -> anyhow::Result<()> {
        for chunk in receipt_handles.chunks(SQS_BATCH_MAX) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, handle)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(handle)
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()?;
            let output = self
                .client
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .context("SQS DeleteMessageBatch failed")?;
            // A failed delete is not lost work: the message comes back and is stored again,
            // idempotently. Say so, and go on.
            if !output.failed.is_empty() {
                tracing::warn!(
                    failed = output.failed.len(),
                    "some deletes failed; those messages will be redelivered"
                );
            }
        }
        Ok(())
    }
}

/// A received SQS message as the record of a Lambda SQS event.
pub fn record_of(message: aws_sdk_sqs::types::Message) -> SqsMessage {
    let mut record = SqsMessage::default();
    record.message_id = message.message_id;
    record.receipt_handle = message.receipt_handle;
    record.body = message.body;
    record.md5_of_body = message.md5_of_body;
    record.event_source = Some("aws:sqs".to_owned());
    record.attributes = message
        .attributes
        .unwrap_or_default()
        .into_iter()
        .map(|(name, value)| (name.as_str().to_owned(), value))
        .collect();
    record
}
