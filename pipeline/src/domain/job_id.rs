//! Job ids: UUIDv7, which carry the time a message was accepted and sort by it.

use std::fmt;
use std::str::FromStr;

use time::OffsetDateTime;
use uuid::Uuid;

use super::Delay;

/// The id a client receives with its 202: a UUIDv7.
///
/// Version 7 puts the acceptance time (milliseconds since the epoch) in the leading bits, so
/// ids sort by time as strings, the timestamp of a message comes from its id rather than from
/// the clock of whichever worker stores it, and redelivering a job rewrites the same item.
///
/// The 12 bits after the version (`rand_a`, which RFC 9562 leaves to the implementation) carry
/// the job's delay in seconds (0 to 900), so that the job's status can say when a delayed job
/// becomes visible without a write per message. Ids issued before delays existed hold random
/// bits there: such a job, while still queued, may read `scheduled` for up to 15 minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(Uuid);

impl JobId {
    pub fn new() -> Self {
        Self::scheduled(Delay::NONE)
    }

    /// A new id for a job that becomes visible `delay` after now.
    pub fn scheduled(delay: Delay) -> Self {
        let mut bytes = *Uuid::now_v7().as_bytes();
        let seconds = delay.seconds();
        bytes[6] = 0x70 | (seconds >> 8) as u8;
        bytes[7] = (seconds & 0xff) as u8;
        Self(Uuid::from_bytes(bytes))
    }

    /// The delay the job was accepted with (see the type's documentation).
    pub fn delay(&self) -> Delay {
        let bytes = self.0.as_bytes();
        let seconds = u64::from(bytes[6] & 0x0f) << 8 | u64::from(bytes[7]);
        Delay::from_seconds(seconds).unwrap_or(Delay::NONE)
    }

    /// When the job becomes visible to the consumer: its acceptance plus its delay.
    pub fn visible_at_millis(&self) -> u64 {
        self.unix_millis() + u64::from(self.delay().seconds()) * 1000
    }

    pub fn from_uuid(uuid: Uuid) -> Option<Self> {
        (uuid.get_version_num() == 7).then_some(Self(uuid))
    }

    /// The id's 16 bytes, big-endian: they sort as the ids do.
    pub fn to_bytes(self) -> [u8; 16] {
        *self.0.as_bytes()
    }

    pub fn from_bytes(bytes: [u8; 16]) -> Option<Self> {
        Self::from_uuid(Uuid::from_bytes(bytes))
    }

    /// When the message was accepted, to the millisecond.
    pub fn accepted_at(&self) -> OffsetDateTime {
        let millis = self.unix_millis();
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// The acceptance time as RFC 3339 in UTC with exactly three fraction digits
    /// (`2026-11-26T14:00:00.100Z`), so that timestamps sort as strings as the ids do.
    pub fn timestamp(&self) -> String {
        super::failure::rfc3339_millis(self.unix_millis())
    }

    pub fn unix_millis(&self) -> u64 {
        // A JobId is always a UUIDv7 (see `from_uuid`), which always has a timestamp.
        self.0.get_timestamp().map_or(0, |timestamp| {
            let (seconds, nanos) = timestamp.to_unix();
            seconds * 1000 + u64::from(nanos / 1_000_000)
        })
    }

    /// A stable, uniformly spread number derived from the id's random bits.
    pub fn spread(&self) -> u8 {
        self.0.as_bytes()[15]
    }
}

impl Default for JobId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a job id (a UUIDv7 as returned by POST /messages)")]
pub struct NotAJobId(String);

impl FromStr for JobId {
    type Err = NotAJobId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::try_parse(s)
            .ok()
            .and_then(Self::from_uuid)
            .ok_or_else(|| NotAJobId(s.chars().take(64).collect()))
    }
}

#[cfg(test)]
mod tests {
    fn accepted_at_millis(millis: u64) -> JobId {
        let timestamp = uuid::Timestamp::from_unix(
            uuid::NoContext,
            millis / 1000,
            u32::try_from(millis % 1000).unwrap() * 1_000_000,
        );
        JobId::from_uuid(Uuid::new_v7(timestamp)).unwrap()
    }

    #[test]
    fn timestamps_always_have_three_fraction_digits_and_sort_as_strings() {
        let stamps: Vec<String> = [
            1_795_700_000_000,
            1_795_700_000_100,
            1_795_700_000_120,
            1_795_700_001_000,
        ]
        .into_iter()
        .map(|millis| accepted_at_millis(millis).timestamp())
        .collect();
        assert_eq!(
            stamps,
            [
                "2026-11-26T13:33:20.000Z",
                "2026-11-26T13:33:20.100Z",
                "2026-11-26T13:33:20.120Z",
                "2026-11-26T13:33:21.000Z",
            ]
        );
        let mut sorted = stamps.clone();
        sorted.sort();
        assert_eq!(sorted, stamps);
    }

    use super::*;

    #[test]
    fn ids_sort_by_acceptance_time_as_strings() {
        let first = JobId::new();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = JobId::new();
        assert!(first.to_string() < second.to_string());
        assert!(first.unix_millis() < second.unix_millis());
    }

    #[test]
    fn the_timestamp_is_the_time_of_acceptance() {
        let before = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        let id = JobId::new();
        let after = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        let millis = i128::from(id.unix_millis());
        assert!(before <= millis && millis <= after);
        assert_eq!(id.accepted_at().unix_timestamp_nanos() / 1_000_000, millis);
    }

    #[test]
    fn an_id_carries_its_delay_and_stays_a_time_ordered_uuidv7() {
        let before = JobId::new();
        let delayed = JobId::scheduled(Delay::from_seconds(900).unwrap());
        assert_eq!(delayed.delay().seconds(), 900);
        assert_eq!(before.delay(), Delay::NONE);
        assert_eq!(delayed.to_string().parse::<JobId>(), Ok(delayed));
        assert!(delayed.unix_millis() >= before.unix_millis());
        assert_eq!(delayed.visible_at_millis(), delayed.unix_millis() + 900_000);
        // The shard spread comes from the last byte, which the delay leaves random.
        let spreads: std::collections::HashSet<u8> = (0..64)
            .map(|_| JobId::scheduled(Delay::from_seconds(5).unwrap()).spread())
            .collect();
        assert!(spreads.len() > 16, "{spreads:?}");
    }

    #[test]
    fn round_trips_through_its_string_form() {
        let id = JobId::new();
        assert_eq!(id.to_string().parse::<JobId>(), Ok(id));
        assert_eq!(id.to_string().to_uppercase().parse::<JobId>(), Ok(id));
    }

    #[test]
    fn refuses_strings_that_are_not_version_7_uuids() {
        assert!("not-a-uuid".parse::<JobId>().is_err());
        assert!(Uuid::new_v4().to_string().parse::<JobId>().is_err());
    }
}
