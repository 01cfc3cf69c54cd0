//! How a message is delivered: after a delay (SQS `DelaySeconds`), or in order within a group
//! (SQS FIFO `MessageGroupId`).

use std::fmt;

/// Seconds before a message becomes visible to the consumer: 0 to 900, SQS's range. The
/// emulator accepts more, AWS refuses it; we refuse it before either is asked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Delay(u16);

impl Delay {
    pub const MAX_SECONDS: u16 = 900;
    pub const NONE: Self = Self(0);

    pub fn from_seconds(seconds: u64) -> Result<Self, DelayError> {
        match u16::try_from(seconds) {
            Ok(s) if s <= Self::MAX_SECONDS => Ok(Self(s)),
            _ => Err(DelayError(seconds)),
        }
    }

    pub fn seconds(self) -> u16 {
        self.0
    }

    pub fn is_none(self) -> bool {
        self.0 == 0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "delay_seconds is {0}; it must be between 0 and 900 (15 minutes, SQS's longest delay). \
     For a later time, schedule the POST itself (for instance with EventBridge Scheduler)"
)]
pub struct DelayError(pub u64);

/// A FIFO message group (SQS `MessageGroupId`): messages of one group are stored in the order
/// they were accepted, one at a time; different groups go in parallel.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupId(String);

/// SQS's longest `MessageGroupId`.
pub const MAX_GROUP_CHARS: usize = 128;

impl GroupId {
    /// SQS's rules: 1 to 128 characters, ASCII letters, digits and punctuation.
    pub fn parse(raw: String) -> Result<Self, GroupError> {
        if raw.is_empty() || raw.len() > MAX_GROUP_CHARS {
            return Err(GroupError::Length(raw.chars().count()));
        }
        if !raw.chars().all(|c| c.is_ascii_graphic()) {
            return Err(GroupError::Characters);
        }
        Ok(Self(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GroupId({})", self.0)
    }
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    #[error("group_id is {0} characters long; it must be 1 to 128")]
    Length(usize),
    #[error("group_id may hold only ASCII letters, digits and punctuation (no spaces)")]
    Characters,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_run_from_zero_to_fifteen_minutes() {
        assert_eq!(Delay::from_seconds(0).unwrap(), Delay::NONE);
        assert_eq!(Delay::from_seconds(900).unwrap().seconds(), 900);
        assert_eq!(Delay::from_seconds(901), Err(DelayError(901)));
        assert!(DelayError(901)
            .to_string()
            .contains("EventBridge Scheduler"));
    }

    #[test]
    fn group_ids_follow_sqs_rules() {
        assert!(GroupId::parse("tenant-42/orders!".into()).is_ok());
        assert!(GroupId::parse("x".repeat(128)).is_ok());
        assert_eq!(
            GroupId::parse("x".repeat(129)),
            Err(GroupError::Length(129))
        );
        assert_eq!(GroupId::parse(String::new()), Err(GroupError::Length(0)));
        for bad in ["has space", "tab\t", "é"] {
            assert_eq!(
                GroupId::parse(bad.into()),
                Err(GroupError::Characters),
                "{bad}"
            );
        }
    }
}
