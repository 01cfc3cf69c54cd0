//! What is known of a dead letter: the consumer notes it once, when it moves a record that can
//! never be stored to the dead-letter queue itself, or when a record fails with its receive
//! count at the queue's `maxReceiveCount` (SQS moves it at its next receive). The common path
//! writes nothing of this.

use super::{DeadLetterId, FailureClass, JobId};

/// Characters of the content kept beside a failure, for an operator to recognise the job.
pub const PREVIEW_CHARS: usize = 200;
/// Characters of the last error kept: enough for a cause chain, bounded for the item size.
pub const ERROR_CHARS: usize = 1000;

/// A dead letter's last failure, as the consumer saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Its job, or for a body that is not an envelope of ours, its dead-letter message id.
    pub id: DeadLetterId,
    /// Deliveries so far (SQS's `ApproximateReceiveCount`).
    pub receive_count: u32,
    /// When the job was first received (SQS's `ApproximateFirstReceiveTimestamp`), in
    /// milliseconds since the epoch: its first failure began then.
    pub first_failure_ms: u64,
    /// When its last delivery failed, in milliseconds since the epoch.
    pub last_failure_ms: u64,
    /// What the consumer saw go wrong the last time, bounded to [`ERROR_CHARS`].
    pub last_error: String,
    /// The start of the content, bounded to [`PREVIEW_CHARS`].
    pub preview: String,
}

impl Failure {
    /// Bounds the free-text fields, cutting at character boundaries.
    pub fn bounded(mut self) -> Self {
        self.last_error = truncate_chars(&self.last_error, ERROR_CHARS);
        self.preview = truncate_chars(&self.preview, PREVIEW_CHARS);
        self
    }
}

/// One failed delivery of a job: every one is kept, not only the last, so that a job's status
/// tells its whole story (an outage's retries, then the poison that ended it). Never content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub job: JobId,
    /// Which delivery it was (SQS's `ApproximateReceiveCount`).
    pub receive_count: u32,
    /// When it failed, in milliseconds since the epoch.
    pub at_ms: u64,
    pub class: FailureClass,
    /// What went wrong, bounded to [`ERROR_CHARS`].
    pub error: String,
}

impl Attempt {
    pub fn bounded(mut self) -> Self {
        self.error = truncate_chars(&self.error, ERROR_CHARS);
        self
    }
}

/// How long a job's attempts are kept: as long as its dead letter can be (the dead-letter
/// queue's retention, 14 days), whatever became of it.
pub const ATTEMPTS_KEPT_MS: u64 = 14 * 24 * 3600 * 1000;

pub fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// RFC 3339 with milliseconds, UTC, as job timestamps are written.
pub fn rfc3339_millis(unix_ms: u64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_cuts_at_a_character_boundary_and_says_so() {
        assert_eq!(truncate_chars("héllo", 2), "hé…");
        assert_eq!(truncate_chars("hé", 2), "hé");
        assert_eq!(truncate_chars("", 2), "");
    }

    #[test]
    fn timestamps_are_rfc3339_with_milliseconds() {
        assert_eq!(
            rfc3339_millis(1_700_000_000_123),
            "2023-11-14T22:13:20.123Z"
        );
    }
}
