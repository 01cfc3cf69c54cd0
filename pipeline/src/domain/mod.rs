//! What a message is, independent of HTTP, SQS and DynamoDB: validated content, the job id
//! that names it, the envelope it travels in and the page it is read back in.

mod attributes;
mod content;
mod cursor;
mod dead_letter_id;
mod delivery;
mod envelope;
mod failure;
mod flow;
mod idempotency;
mod job_id;
mod job_id_keys;
mod job_status;
mod lifecycle;
mod page;
mod record_failure;
mod retry;

pub use attributes::{AttributeError, Attributes, MAX_ATTRIBUTES, MAX_NAME_CHARS, MAX_VALUE_CHARS};
pub use content::{ContentError, ContentLimit, MessageContent};
pub use cursor::{Cursor, CursorError, CursorKey, CursorKeyError};
pub use dead_letter_id::DeadLetterId;
pub use delivery::{Delay, DelayError, GroupError, GroupId, MAX_GROUP_CHARS};
pub use envelope::{EnvelopeError, QueuedMessage};
pub use failure::{
    rfc3339_millis, truncate_chars, Attempt, Failure, ATTEMPTS_KEPT_MS, ERROR_CHARS, PREVIEW_CHARS,
};
pub use flow::{latency, minute_of, BatchFlow, FlowMinute, HistoryWindow, MINUTE_MS};
pub use idempotency::{
    fingerprint, on_existing, Claim, Existing, IdempotencyKey, KeyError, KeyRecord, ReservedIds,
    ReservedIdsError, StoredAnswer, KEY_LEASE, KEY_LIFETIME,
};
pub use job_id::JobId;
pub use job_id_keys::{JobIdKeyError, JobIdKeys};
pub use job_status::{JobStatus, CLOCK_SKEW};
pub use lifecycle::{expired, Deletion, Lookup, MessageRetention, TOMBSTONE_KEPT};
pub use page::{Page, PageLimit, PageLimitError};
pub use record_failure::RecordFailure;
pub use retry::{FailureClass, RetryPolicy, MAX_BACKOFF};

/// A message accepted by the API: its job id, content and attributes. The job id also carries
/// the time of acceptance (and the delay), so every delivery of the same job describes the
/// same stored item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: JobId,
    pub content: MessageContent,
    pub attributes: Attributes,
}

impl Message {
    /// A new job for `content`, timestamped now.
    pub fn accept(content: MessageContent) -> Self {
        Self::new(JobId::new(), content, Attributes::default())
    }

    pub fn new(id: JobId, content: MessageContent, attributes: Attributes) -> Self {
        Self {
            id,
            content,
            attributes,
        }
    }
}

/// A message on its way to the queue, with what the queue needs beyond the message: its FIFO
/// group (the delay is in its job id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub message: Message,
    pub group: Option<GroupId>,
}

impl Outgoing {
    /// The group a FIFO queue files the message under: its own, or, when the client named
    /// none, one of its own (the job id), so that it waits for no other message.
    pub fn fifo_group(&self) -> String {
        self.group
            .as_ref()
            .map_or_else(|| self.message.id.to_string(), |g| g.as_str().to_owned())
    }
}

impl From<Message> for Outgoing {
    fn from(message: Message) -> Self {
        Self {
            message,
            group: None,
        }
    }
}
