use anyhow::Context as _;
use async_trait::async_trait;

use crate::domain::{Message, QueuedMessage};
use crate::ports::MessageQueue;

/// The queue port on Amazon SQS: one `SendMessage` per accepted message.
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
