//! The narrow capabilities the handlers need, one trait each, implemented by the adapters in
//! [`crate::aws`] and by in-memory fakes in tests.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::SqsMessage;

use crate::domain::{JobId, Message, Page, PageLimit};

/// Somewhere to put accepted messages until a worker stores them.
#[async_trait]
pub trait MessageQueue: Send + Sync + std::fmt::Debug {
    /// Returns only once the queue has durably accepted the message.
    async fn send(&self, message: &Message) -> anyhow::Result<()>;
}

/// Where a worker takes messages from, with SQS's semantics: a received message is hidden
/// for the queue's visibility timeout and comes back unless deleted; one received more than
/// the queue's `maxReceiveCount` times moves to the dead-letter queue instead.
#[async_trait]
pub trait QueueSource: Send + Sync + std::fmt::Debug {
    /// Up to `max` messages as the SQS records a Lambda event carries (message id, receipt
    /// handle, body, `ApproximateReceiveCount`), waiting up to `wait` for the first one.
    async fn receive(&self, max: usize, wait: Duration) -> anyhow::Result<Vec<SqsMessage>>;

    /// Removes received messages for good. A stale receipt handle (the message was received
    /// again since) removes nothing.
    async fn delete(&self, receipt_handles: &[String]) -> anyhow::Result<()>;
}

/// Where messages are kept and read back.
#[async_trait]
pub trait MessageStore: Send + Sync + std::fmt::Debug {
    /// Writes every message, idempotently: putting the same job twice leaves one item.
    /// On failure, names the jobs that were not written (the others were).
    async fn put_batch(&self, messages: &[Message]) -> Result<(), PutBatchError>;

    async fn get(&self, id: JobId) -> anyhow::Result<Option<Message>>;

    /// Messages newest first, strictly older than `before` when given.
    async fn list(&self, limit: PageLimit, before: Option<JobId>) -> anyhow::Result<Page>;
}

#[derive(Debug, thiserror::Error)]
#[error("{} of the batch's messages were not stored", unwritten.len())]
pub struct PutBatchError {
    pub unwritten: Vec<JobId>,
    #[source]
    pub cause: anyhow::Error,
}

// A shared adapter is a port too: the runner hands one `Arc` to the HTTP side and the worker,
// and a wrapper such as `faults::Faulty` can wrap it.
#[async_trait]
impl<T: MessageQueue + ?Sized> MessageQueue for Arc<T> {
    async fn send(&self, message: &Message) -> anyhow::Result<()> {
        (**self).send(message).await
    }
}

#[async_trait]
impl<T: QueueSource + ?Sized> QueueSource for Arc<T> {
    async fn receive(&self, max: usize, wait: Duration) -> anyhow::Result<Vec<SqsMessage>> {
        (**self).receive(max, wait).await
    }

    async fn delete(&self, receipt_handles: &[String]) -> anyhow::Result<()> {
        (**self).delete(receipt_handles).await
    }
}

#[async_trait]
impl<T: MessageStore + ?Sized> MessageStore for Arc<T> {
    async fn put_batch(&self, messages: &[Message]) -> Result<(), PutBatchError> {
        (**self).put_batch(messages).await
    }

    async fn get(&self, id: JobId) -> anyhow::Result<Option<Message>> {
        (**self).get(id).await
    }

    async fn list(&self, limit: PageLimit, before: Option<JobId>) -> anyhow::Result<Page> {
        (**self).list(limit, before).await
    }
}

/// A queue's redrive settings, which both queue adapters keep (SQS as queue attributes, the
/// embedded queue itself). They differ between production and tests (tests want fast
/// redelivery).
#[derive(Debug, Clone, Copy)]
pub struct QueueSettings {
    pub visibility_timeout: Duration,
    pub max_receive_count: u32,
}

impl QueueSettings {
    /// As in template.yaml: six times the consumer's 30 s timeout, five receives.
    pub const PRODUCTION: Self = Self {
        visibility_timeout: Duration::from_secs(180),
        max_receive_count: 5,
    };
}
