//! Where a job is, decided from what the store and the failure log know of it and from the
//! time its id carries: nothing is written per message to answer this.

use std::time::Duration;

use super::{Failure, JobId, Lookup, Message};

/// How far in the future a job id's time may be (the clocks of the functions differ a little)
/// before it is taken for one this API never issued.
pub const CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// A job's status (`GET /jobs/{id}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobStatus {
    Stored(Message),
    /// Deleted through the API at this time (milliseconds since the epoch).
    Deleted {
        at_ms: u64,
    },
    /// Stored, and since past the store's retention.
    Expired,
    /// Its last delivery failed and the queue moved it to the dead-letter queue.
    DeadLettered(Failure),
    /// Accepted with a delay that has not passed; visible to the consumer in `wait`.
    Scheduled {
        wait: Duration,
    },
    /// Accepted within the queue's retention, and neither stored nor noted: waiting, in
    /// flight, being retried, or dead-lettered by a consumer that crashed before its note
    /// (these cannot be told apart without a write per message).
    Queued,
    /// Not a job this pipeline knows: its time is past the queue's retention, or ahead of
    /// the clock by more than [`CLOCK_SKEW`].
    Unknown,
}

impl JobStatus {
    /// The status of job `id`, given what the store holds of it, its failure note, the
    /// queue's `retention` and the time `now_ms`.
    pub fn of(
        id: JobId,
        stored: Lookup,
        failure: Option<Failure>,
        retention: Duration,
        now_ms: u64,
    ) -> Self {
        match stored {
            Lookup::Stored(message) => return Self::Stored(message),
            Lookup::Deleted { at_ms } => return Self::Deleted { at_ms },
            Lookup::Expired => return Self::Expired,
            Lookup::Absent => {}
        }
        if let Some(failure) = failure {
            return Self::DeadLettered(failure);
        }
        let accepted = id.unix_millis();
        let ahead = accepted > now_ms + CLOCK_SKEW.as_millis() as u64;
        let expired = accepted + (retention.as_millis() as u64) < now_ms;
        if ahead || expired {
            return Self::Unknown;
        }
        match id.visible_at_millis().checked_sub(now_ms) {
            Some(wait) if wait > 0 => Self::Scheduled {
                wait: Duration::from_millis(wait),
            },
            _ => Self::Queued,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ContentLimit, Delay, MessageContent};

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn what_the_store_and_the_failure_log_know_comes_first() {
        let message =
            Message::accept(MessageContent::parse("m".into(), ContentLimit::DEFAULT).unwrap());
        let id = message.id;
        let failure = Failure {
            id: id.into(),
            receive_count: 5,
            first_failure_ms: 1,
            last_failure_ms: 2,
            last_error: "refused".into(),
            preview: "m".into(),
        };
        let now = id.unix_millis();

        assert_eq!(
            JobStatus::of(
                id,
                Lookup::Stored(message.clone()),
                Some(failure.clone()),
                HOUR,
                now
            ),
            JobStatus::Stored(message)
        );
        assert_eq!(
            JobStatus::of(id, Lookup::Absent, Some(failure.clone()), HOUR, now),
            JobStatus::DeadLettered(failure.clone())
        );
        // A deleted job stays deleted, whatever its notes say.
        assert_eq!(
            JobStatus::of(id, Lookup::Deleted { at_ms: 7 }, Some(failure), HOUR, now),
            JobStatus::Deleted { at_ms: 7 }
        );
    }

    #[test]
    fn a_job_neither_stored_nor_noted_is_scheduled_queued_or_unknown_by_its_time() {
        let delayed = JobId::scheduled(Delay::from_seconds(600).unwrap());
        let accepted = delayed.unix_millis();
        let status = |now| JobStatus::of(delayed, Lookup::Absent, None, HOUR, now);

        assert_eq!(
            status(accepted),
            JobStatus::Scheduled {
                wait: Duration::from_secs(600)
            }
        );
        assert_eq!(status(accepted + 600_000), JobStatus::Queued);
        assert_eq!(status(accepted + 3_600_000), JobStatus::Queued);
        assert_eq!(status(accepted + 3_600_001), JobStatus::Unknown);
        // An id from further ahead than the functions' clocks can differ: never issued here.
        let skew = CLOCK_SKEW.as_millis() as u64;
        assert_eq!(
            status(accepted - skew),
            JobStatus::Scheduled {
                wait: Duration::from_millis(600_000 + skew)
            }
        );
        assert_eq!(status(accepted - skew - 1), JobStatus::Unknown);
    }
}
