//! The narrow capabilities the handlers need, one trait each, implemented by the adapters in
//! [`crate::adapters`] (AWS, and the in-memory fakes) and by the local runner's SQLite
//! backend; `tests/contract` holds them to one contract.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::SqsMessage;

pub use crate::domain::FailureClass;
use crate::domain::{
    Attempt, BatchFlow, Claim, DeadLetterId, Deletion, Failure, FlowMinute, HistoryWindow,
    IdempotencyKey, JobId, Lookup, Message, Outgoing, Page, PageLimit, ReservedIds, StoredAnswer,
};

/// Why a call to a backend failed, as far as its caller can act on it: its
/// [`FailureClass`] (the adapter decides it from the backend's answer) and the cause. The
/// HTTP API answers a transient failure with a 503 and `Retry-After`, any other with a 500;
/// the consumer retries what is not permanent, with backoff, and dead-letters the rest at once.
#[derive(Debug, Clone)]
pub struct PortError {
    pub class: FailureClass,
    cause: Arc<anyhow::Error>,
}

impl PortError {
    pub fn new(class: FailureClass, cause: impl Into<anyhow::Error>) -> Self {
        Self {
            class,
            cause: Arc::new(cause.into()),
        }
    }

    pub fn transient(cause: impl Into<anyhow::Error>) -> Self {
        Self::new(FailureClass::Transient, cause)
    }

    pub fn permanent(cause: impl Into<anyhow::Error>) -> Self {
        Self::new(FailureClass::Permanent, cause)
    }

    pub fn is_transient(&self) -> bool {
        self.class == FailureClass::Transient
    }
}

/// What an adapter did not classify is transient: retrying costs little, giving up on
/// something that would have passed loses a message's chance.
impl From<anyhow::Error> for PortError {
    fn from(cause: anyhow::Error) -> Self {
        Self::transient(cause)
    }
}

impl std::fmt::Display for PortError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `{:#}` shows the cause's chain, as anyhow does.
        std::fmt::Display::fmt(&self.cause, f)
    }
}

impl std::error::Error for PortError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause.source()
    }
}

pub type PortResult<T> = Result<T, PortError>;

/// Somewhere to put accepted messages until a worker stores them.
#[async_trait]
pub trait MessageQueue: Send + Sync + std::fmt::Debug {
    /// Sends every message, each after the delay its job id carries (or in its group on a
    /// FIFO queue). One result per message, in order: `Ok` only once the queue has durably
    /// accepted that message. Some may be accepted and others not.
    async fn send_batch(&self, messages: &[Outgoing]) -> Vec<PortResult<()>>;

    /// Whether the queue is FIFO: messages have groups and no delays of their own.
    fn is_fifo(&self) -> bool {
        false
    }

    /// Sends one message (no group: on a FIFO queue, a group of its own).
    async fn send(&self, message: &Message) -> PortResult<()> {
        let outgoing = [Outgoing::from(message.clone())];
        self.send_batch(&outgoing).await.pop().unwrap_or_else(|| {
            Err(anyhow::anyhow!("the queue gave no answer for the message").into())
        })
    }
}

/// Where a worker takes messages from, with SQS's semantics: a received message is hidden
/// for the queue's visibility timeout and comes back unless deleted; one received more than
/// the queue's `maxReceiveCount` times moves to the dead-letter queue instead.
#[async_trait]
pub trait QueueSource: Send + Sync + std::fmt::Debug {
    /// Up to `max` messages as the SQS records a Lambda event carries (message id, receipt
    /// handle, body, `ApproximateReceiveCount`), waiting up to `wait` for the first one.
    async fn receive(&self, max: usize, wait: Duration) -> PortResult<Vec<SqsMessage>>;

    /// Removes received messages for good. A stale receipt handle (the message was received
    /// again since) removes nothing.
    async fn delete(&self, receipt_handles: &[String]) -> PortResult<()>;
}

/// Where messages are kept and read back.
#[async_trait]
pub trait MessageStore: Send + Sync + std::fmt::Debug {
    /// Writes every message, idempotently: putting the same job twice leaves one item, and a
    /// job deleted before is not stored again (its tombstone wins, in the same conditional
    /// write: it counts as done). On failure, names the jobs that were not written (the
    /// others were). Each message expires as the store's retention says.
    async fn put_batch(&self, messages: &[Message]) -> Result<(), PutBatchError>;

    /// What the store holds under `id`; an expired message is absent, even before the
    /// store's reaper removed it.
    async fn lookup(&self, id: JobId) -> PortResult<Lookup>;

    async fn get(&self, id: JobId) -> PortResult<Option<Message>> {
        Ok(self.lookup(id).await?.into_message())
    }

    /// Messages newest first, strictly older than `before` when given; never a deleted or
    /// expired one.
    async fn list(&self, limit: PageLimit, before: Option<JobId>) -> PortResult<Page>;

    /// Deletes job `id`'s message for good, stored or not yet: a tombstone takes its place
    /// for [`TOMBSTONE_KEPT`](crate::domain::TOMBSTONE_KEPT), so that a later delivery of
    /// the job is not stored.
    async fn delete(&self, id: JobId) -> PortResult<Deletion>;
}

/// The jobs of a batch that were not stored, each with why: in one batch, one job may be
/// refused for good (stored with other content) while another was throttled.
#[derive(Debug, thiserror::Error)]
#[error("{} of the batch's messages were not stored", unwritten.len())]
pub struct PutBatchError {
    pub unwritten: Vec<Unwritten>,
}

#[derive(Debug, Clone)]
pub struct Unwritten {
    pub id: JobId,
    pub cause: PortError,
}

impl PutBatchError {
    /// Every one of `messages` unwritten, for the same cause.
    pub fn all(messages: &[Message], cause: PortError) -> Self {
        Self::each(messages.iter().map(|m| m.id), cause)
    }

    /// Each of `ids` unwritten, for the same cause.
    pub fn each(ids: impl IntoIterator<Item = JobId>, cause: PortError) -> Self {
        Self {
            unwritten: ids
                .into_iter()
                .map(|id| Unwritten {
                    id,
                    cause: cause.clone(),
                })
                .collect(),
        }
    }

    pub fn ids(&self) -> Vec<JobId> {
        self.unwritten.iter().map(|u| u.id).collect()
    }
}

/// Where idempotency keys are kept (see [`crate::domain::IdempotencyKey`]): each operation is
/// atomic, so that of concurrent requests with one key exactly one claims it.
#[async_trait]
pub trait IdempotencyKeys: Send + Sync + std::fmt::Debug {
    /// Takes `key` for a request with `fingerprint` that reserved the job ids `reserved`, or
    /// says what stands in the way.
    async fn claim(
        &self,
        key: &IdempotencyKey,
        fingerprint: &str,
        reserved: &ReservedIds,
    ) -> PortResult<Claim>;

    /// Records the request's answer, given again to every repeat until the key expires.
    async fn answer(&self, key: &IdempotencyKey, answer: &StoredAnswer) -> PortResult<()>;

    /// Frees the key of a request that queued nothing, so that a retry starts afresh.
    async fn release(&self, key: &IdempotencyKey) -> PortResult<()>;
}

/// Where the consumer notes a job's last failure (only then: see [`Failure`]) and the
/// job-status route looks it up.
#[async_trait]
pub trait FailureLog: Send + Sync + std::fmt::Debug {
    async fn note(&self, failures: &[Failure]) -> PortResult<()>;

    async fn failure(&self, id: JobId) -> PortResult<Option<Failure>>;

    /// Keeps failed deliveries, each its own record (a delivery noted twice is kept once),
    /// for [`ATTEMPTS_KEPT_MS`](crate::domain::ATTEMPTS_KEPT_MS).
    async fn note_attempts(&self, attempts: &[Attempt]) -> PortResult<()>;

    /// A job's failed deliveries, oldest first.
    async fn attempts(&self, id: JobId) -> PortResult<Vec<Attempt>>;
}

/// Where a worker outside Lambda keeps the flow of its consumer's invocations, minute by
/// minute (the local runner: SQLite). In Lambda the consumer's EMF metrics are that record.
#[async_trait]
pub trait FlowLog: Send + Sync + std::fmt::Debug {
    async fn record(&self, batch: &BatchFlow) -> PortResult<()>;
}

/// What the consumer does with a record it did not store, beyond reporting it failed: hide it
/// for a backoff, or move it to the dead-letter queue at once. On SQS the calls name the
/// records by their receipt handles; on the embedded queue the same.
#[async_trait]
pub trait Redrive: Send + Sync + std::fmt::Debug {
    /// Hides each received message for its wait (from now), all in one call where the queue
    /// allows (SQS: `ChangeMessageVisibilityBatch`, ten a request). A receipt handle that is
    /// stale changes nothing.
    async fn back_off(&self, waits: &[(String, Duration)]) -> PortResult<()>;

    /// Puts each record in the dead-letter queue (its body, attributes and FIFO group). The
    /// consumer then reports it done, so that the event source deletes it from the queue:
    /// send first, delete after, never the other order (a crash in between leaves a copy in
    /// each, never none). One result per record, in order: the dead letter's message id.
    async fn dead_letter(&self, records: &[SqsMessage]) -> Vec<PortResult<String>>;
}

/// What an operator does with a running pipeline: count what is where, and look into, requeue
/// and empty the dead-letter queue. The same contract on SQS + DynamoDB and on SQLite.
#[async_trait]
pub trait Operations: Send + Sync + std::fmt::Debug {
    async fn stats(&self) -> PortResult<PipelineStats>;

    /// The flow over the last `window` minutes, oldest first, every minute present (one
    /// with nothing in it has zero counts).
    async fn history(&self, window: HistoryWindow) -> PortResult<Vec<FlowMinute>>;

    /// Dead letters by their notes: raw ones first, then jobs newest first; strictly after
    /// `before` in that order when given.
    async fn dead_letters(
        &self,
        limit: usize,
        before: Option<DeadLetterId>,
    ) -> PortResult<DeadLetterPage>;

    /// Moves one job from the dead-letter queue back to the queue, under the same job id.
    async fn requeue(&self, id: JobId) -> PortResult<OneDeadLetter>;

    /// Deletes one dead letter for good, and its failure note.
    async fn delete_dead_letter(&self, id: DeadLetterId) -> PortResult<OneDeadLetter>;

    /// Moves the dead-letter queue's jobs back, within about `budget` of time: either a move
    /// task the queue service runs itself, or as many as fit (call again until `done`).
    /// Raw dead letters (bodies that are not envelopes of ours) stay: they would only fail
    /// again.
    async fn requeue_all(&self, budget: Duration) -> PortResult<RequeueAll>;

    /// Deletes every message in the dead-letter queue, and the notes of their failures.
    async fn purge_dead_letters(&self) -> PortResult<()>;

    /// Removes what the queues and the failure log hold of job `id` once its message was
    /// deleted ([`MessageStore::delete`]): its dead letter, if any, and its failure note
    /// (whose preview is a piece of the content), even when the queue has not moved it yet.
    /// Where the queue can be searched (SQLite), its queued copy too; on SQS that copy is
    /// delivered and the tombstone keeps it from being stored.
    async fn erase(&self, id: JobId) -> PortResult<()> {
        self.delete_dead_letter(DeadLetterId::Job(id))
            .await
            .map(|_| ())
    }
}

/// Counts of a running pipeline. A count the backend only estimates says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineStats {
    pub queue: QueueCounts,
    pub dead_letter_queue: Count,
    pub stored: Count,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueCounts {
    /// Waiting to be received.
    pub visible: u64,
    /// Received by a consumer and not yet deleted or back.
    pub in_flight: u64,
    /// Sent with a delay that has not passed.
    pub delayed: u64,
    /// Seconds since the oldest message still in the queue was sent; `None` when the queue is
    /// empty or the backend cannot say yet (SQS gives it as a CloudWatch metric only, once a
    /// minute).
    pub oldest_age_seconds: Option<u64>,
    pub approximate: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Count {
    pub count: u64,
    pub approximate: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterPage {
    pub letters: Vec<Failure>,
    /// The `before` of the next page, when there may be one.
    pub next: Option<DeadLetterId>,
}

/// What came of requeueing or deleting one dead-lettered job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OneDeadLetter {
    /// Requeued (back in the queue, under its job id) or deleted.
    Done,
    /// Its last delivery failed, but the queue has not moved it to the dead-letter queue yet
    /// (SQS does at its next receive, which the consumer makes at once; after the visibility
    /// timeout if it could not).
    NotYetDeadLettered,
    /// Not in the dead-letter queue.
    NotFound,
}

/// What a call of [`Operations::requeue_all`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequeueAll {
    /// Messages moved by this call (0 when a move task does the work).
    pub moved: u64,
    /// Nothing is left to move by this call's method.
    pub done: bool,
    /// The queue service's own move task, when it runs one (SQS `StartMessageMoveTask`).
    pub move_task: Option<String>,
    /// Raw dead letters left where they are (known to this call: on SQS, those noted).
    pub left: u64,
}

// A shared adapter is a port too: the runner hands one `Arc` to the HTTP side and the worker,
// and a wrapper such as `faults::Faulty` can wrap it.
#[async_trait]
impl<T: MessageQueue + ?Sized> MessageQueue for Arc<T> {
    async fn send_batch(&self, messages: &[Outgoing]) -> Vec<PortResult<()>> {
        (**self).send_batch(messages).await
    }

    fn is_fifo(&self) -> bool {
        (**self).is_fifo()
    }
}

#[async_trait]
impl<T: QueueSource + ?Sized> QueueSource for Arc<T> {
    async fn receive(&self, max: usize, wait: Duration) -> PortResult<Vec<SqsMessage>> {
        (**self).receive(max, wait).await
    }

    async fn delete(&self, receipt_handles: &[String]) -> PortResult<()> {
        (**self).delete(receipt_handles).await
    }
}

#[async_trait]
impl<T: MessageStore + ?Sized> MessageStore for Arc<T> {
    async fn put_batch(&self, messages: &[Message]) -> Result<(), PutBatchError> {
        (**self).put_batch(messages).await
    }

    async fn lookup(&self, id: JobId) -> PortResult<Lookup> {
        (**self).lookup(id).await
    }

    async fn list(&self, limit: PageLimit, before: Option<JobId>) -> PortResult<Page> {
        (**self).list(limit, before).await
    }

    async fn delete(&self, id: JobId) -> PortResult<Deletion> {
        (**self).delete(id).await
    }
}

#[async_trait]
impl<T: IdempotencyKeys + ?Sized> IdempotencyKeys for Arc<T> {
    async fn claim(
        &self,
        key: &IdempotencyKey,
        fingerprint: &str,
        reserved: &ReservedIds,
    ) -> PortResult<Claim> {
        (**self).claim(key, fingerprint, reserved).await
    }

    async fn answer(&self, key: &IdempotencyKey, answer: &StoredAnswer) -> PortResult<()> {
        (**self).answer(key, answer).await
    }

    async fn release(&self, key: &IdempotencyKey) -> PortResult<()> {
        (**self).release(key).await
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
    /// As in template.yaml: six times the consumer's 30 s timeout; nine receives, the fewest
    /// with which the default retry policy rides out an hour's outage of the store
    /// ([`crate::domain::RetryPolicy::DEFAULT`]).
    pub const PRODUCTION: Self = Self {
        visibility_timeout: Duration::from_secs(180),
        max_receive_count: 9,
    };
}
