//! What names a dead letter: the job its body carries, or, for a body that is not an envelope
//! of ours (sent straight to the queue by another producer), the queue's message id.

use std::fmt;

use super::JobId;

/// Longest queue message id taken from a client (SQS's are 36 characters).
const MESSAGE_ID_MAX_CHARS: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DeadLetterId {
    Job(JobId),
    /// The dead-letter queue's message id of a body that names no job.
    Raw(String),
}

/// The prefix of a raw dead letter's key where notes are kept: after every job id in sort
/// order (job ids start with a hex digit), so that the newest-first listing shows them first:
/// they come from outside the pipeline and want a look.
const RAW_KEY_PREFIX: &str = "raw:";

impl DeadLetterId {
    /// A raw dead letter's id, if `message_id` can be one.
    pub fn raw(message_id: &str) -> Option<Self> {
        let valid = !message_id.is_empty()
            && message_id.len() <= MESSAGE_ID_MAX_CHARS
            && message_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        valid.then(|| Self::Raw(message_id.to_owned()))
    }

    pub fn job(&self) -> Option<JobId> {
        match self {
            Self::Job(id) => Some(*id),
            Self::Raw(_) => None,
        }
    }

    /// The key its note is kept under (a sort key, a primary key).
    pub fn key(&self) -> String {
        match self {
            Self::Job(id) => id.to_string(),
            Self::Raw(message_id) => format!("{RAW_KEY_PREFIX}{message_id}"),
        }
    }

    /// The id whose key is `key`.
    pub fn from_key(key: &str) -> Option<Self> {
        match key.strip_prefix(RAW_KEY_PREFIX) {
            Some(message_id) => Self::raw(message_id),
            None => key.parse().ok().map(Self::Job),
        }
    }

    /// An id as a client gives it (a job id, or a raw dead letter's message id).
    pub fn parse(text: &str) -> Option<Self> {
        match text.parse::<JobId>() {
            Ok(job) => Some(Self::Job(job)),
            Err(_) => Self::raw(text),
        }
    }
}

impl fmt::Display for DeadLetterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Job(id) => id.fmt(f),
            Self::Raw(message_id) => f.write_str(message_id),
        }
    }
}

impl From<JobId> for DeadLetterId {
    fn from(id: JobId) -> Self {
        Self::Job(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_id_names_a_job_and_anything_else_plausible_a_raw_message() {
        let job = JobId::new();
        assert_eq!(
            DeadLetterId::parse(&job.to_string()),
            Some(DeadLetterId::Job(job))
        );
        let sqs = "0f6b3c2e-4a1d-4c1e-9b7a-2d3e4f5a6b7c";
        assert_eq!(
            DeadLetterId::parse(sqs),
            Some(DeadLetterId::Raw(sqs.into()))
        );
        for bad in ["", "a/b", "../x", "x y", &"a".repeat(129)] {
            assert_eq!(DeadLetterId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn keys_map_back_and_raw_ones_sort_after_every_job() {
        let job = DeadLetterId::Job(JobId::new());
        let raw = DeadLetterId::Raw("0f6b3c2e".into());
        for id in [&job, &raw] {
            assert_eq!(DeadLetterId::from_key(&id.key()).as_ref(), Some(id));
        }
        assert!(raw.key() > job.key());
        assert!(raw.key().as_str() > "ffffffff-ffff-7fff-bfff-ffffffffffff");
    }
}
