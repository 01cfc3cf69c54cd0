//! How long a stored message lives, and what is left of one deleted: the rules both stores
//! keep (DynamoDB with TTL and a tombstone item, SQLite with a column and a table).

use std::time::Duration;

use super::Message;

/// What a store holds under a job id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Stored(Message),
    /// Deleted at this time (milliseconds since the epoch): a tombstone stands where the
    /// message was, so that a later delivery of the job does not store it again.
    Deleted {
        at_ms: u64,
    },
    /// Stored, and past its retention: never returned, even before the store's reaper
    /// removed it.
    Expired,
    /// Nothing: never stored (or removed since).
    Absent,
}

impl Lookup {
    pub fn into_message(self) -> Option<Message> {
        match self {
            Self::Stored(message) => Some(message),
            Self::Deleted { .. } | Self::Expired | Self::Absent => None,
        }
    }
}

/// What a delete did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    /// The message (or, for a job not stored yet, its place) is deleted from now on: at
    /// this time.
    Deleted { at_ms: u64 },
    /// An earlier delete did it, at this time.
    AlreadyDeleted { at_ms: u64 },
}

/// How long a tombstone is kept: the longest a job can still be delivered after its delete,
/// SQS's longest retention in the queue (14 days) and again in the dead-letter queue. A
/// requeue from the dead-letter queue restarts the clock; a job requeued after its tombstone
/// expired would be stored again (README, "Deleting a message").
pub const TOMBSTONE_KEPT: Duration = Duration::from_secs(28 * 24 * 3600);

/// How long a stored message is kept: for ever, or a number of days from when it is stored.
/// A change applies to messages stored afterwards: each keeps the expiry it was stored with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessageRetention(Option<Duration>);

impl MessageRetention {
    pub const FOREVER: Self = Self(None);
    /// Ten years: a longer retention is a mistyped one.
    pub const MAX_DAYS: u64 = 3650;

    /// From a number of days, 0 being for ever (the template's `MessageRetentionDays`).
    pub fn days(days: u64) -> Result<Self, String> {
        match days {
            0 => Ok(Self::FOREVER),
            1..=Self::MAX_DAYS => Ok(Self(Some(Duration::from_secs(days * 24 * 3600)))),
            _ => Err(format!(
                "a message retention is 0 (keep for ever) to {} days, not {days}",
                Self::MAX_DAYS
            )),
        }
    }

    /// When a message stored at `stored_ms` expires, if it does.
    pub fn expires_at_ms(&self, stored_ms: u64) -> Option<u64> {
        self.0
            .map(|kept| stored_ms.saturating_add(kept.as_millis() as u64))
    }
}

/// Whether a message with expiry `expires_at_ms` is past it at `now_ms`: stores answer as if
/// it were gone from that moment, before their reaper (DynamoDB's TTL can lag for days, the
/// runner's pruner by seconds) has removed it.
pub fn expired(expires_at_ms: Option<u64>, now_ms: u64) -> bool {
    expires_at_ms.is_some_and(|at| at <= now_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retention_of_days_expires_that_long_after_storing_and_zero_never() {
        assert_eq!(MessageRetention::days(0), Ok(MessageRetention::FOREVER));
        assert_eq!(MessageRetention::FOREVER.expires_at_ms(1_000), None);
        let week = MessageRetention::days(7).unwrap();
        assert_eq!(week.expires_at_ms(1_000), Some(1_000 + 7 * 86_400_000));
        assert!(MessageRetention::days(3651)
            .unwrap_err()
            .contains("0 (keep for ever) to 3650 days"));
    }

    #[test]
    fn a_message_is_expired_from_its_expiry_on() {
        assert!(!expired(None, u64::MAX));
        assert!(!expired(Some(10), 9));
        assert!(expired(Some(10), 10));
    }
}
