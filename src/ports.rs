//! The narrow capabilities the handlers need, one trait each, implemented by the adapters in
//! [`crate::aws`] and by in-memory fakes in tests.

use async_trait::async_trait;

use crate::domain::{JobId, Message, Page, PageLimit};

/// Somewhere to put accepted messages until a worker stores them.
#[async_trait]
pub trait MessageQueue: Send + Sync {
    /// Returns only once the queue has durably accepted the message.
    async fn send(&self, message: &Message) -> anyhow::Result<()>;
}

/// Where messages are kept and read back.
#[async_trait]
pub trait MessageStore: Send + Sync {
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
