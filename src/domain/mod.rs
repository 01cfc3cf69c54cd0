//! What a message is, independent of HTTP, SQS and DynamoDB: validated content, the job id
//! that names it, the envelope it travels in and the page it is read back in.

mod content;
mod cursor;
mod envelope;
mod failure;
mod job_id;
mod page;

pub use content::{ContentError, ContentLimit, MessageContent};
pub use cursor::{Cursor, CursorError, CursorKey, CursorKeyError};
pub use envelope::{EnvelopeError, QueuedMessage};
pub use failure::{rfc3339_millis, truncate_chars, Failure, ERROR_CHARS, PREVIEW_CHARS};
pub use job_id::JobId;
pub use page::{Page, PageLimit, PageLimitError};

/// A message accepted by the API: its job id and content. The job id also carries the time
/// of acceptance, so every delivery of the same job describes the same stored item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: JobId,
    pub content: MessageContent,
}

impl Message {
    /// A new job for `content`, timestamped now.
    pub fn accept(content: MessageContent) -> Self {
        Self {
            id: JobId::new(),
            content,
        }
    }
}
