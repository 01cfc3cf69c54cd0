//! Job ids that say who issued them: 32 of a UUIDv7's random bits are an HMAC of the rest
//! under a key only this pipeline holds, so an id this API never issued is refused before any
//! read (a well-formed forgery used to read `queued` until the queue's retention passed).

use hmac::{KeyInit as _, Mac as _};

use super::{Delay, JobId};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Where the tag sits in the id's 16 bytes: the end of `rand_b`, after the variant (byte 8)
/// and the low 30 bits of the uuid crate's 42-bit millisecond counter (bytes 8 to 11), which
/// keep the ids of one millisecond in creation order. Its last byte is also the one the
/// shards spread on ([`JobId::spread`]): an HMAC's output is as uniform as random bits.
const TAG: std::ops::Range<usize> = 12..16;

/// The keys that tag and check job ids: the current one tags new ids; during a rotation the
/// previous one is still accepted, so jobs issued before it stay readable (README, "Rotating
/// the job id key").
#[derive(Clone)]
pub struct JobIdKeys {
    current: Vec<u8>,
    previous: Option<Vec<u8>>,
    /// Ids issued before tags existed carry random bits where the tag goes: an id from before
    /// this time is admitted untagged. A forged one gains nothing lasting: an id older than the
    /// queue's retention that names nothing stored reads 404 anyway (see [`super::JobStatus`]).
    untagged_until_ms: u64,
}

/// Why a secret cannot key job ids.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a job id secret must be at least {} bytes",
    JobIdKeys::MIN_SECRET_BYTES
)]
pub struct JobIdKeyError;

impl JobIdKeys {
    pub const MIN_SECRET_BYTES: usize = 32;

    /// Keys from the current secret and, during a rotation, the previous one (empty: none).
    pub fn from_secrets(current: &str, previous: Option<&str>) -> Result<Self, JobIdKeyError> {
        let key = |secret: &str| {
            (secret.len() >= Self::MIN_SECRET_BYTES)
                .then(|| secret.as_bytes().to_vec())
                .ok_or(JobIdKeyError)
        };
        Ok(Self {
            current: key(current)?,
            previous: previous
                .filter(|s| !s.trim().is_empty())
                .map(key)
                .transpose()?,
            untagged_until_ms: 0,
        })
    }

    /// A key for one process's lifetime (tests; a runner with nowhere to keep one).
    pub fn random() -> Self {
        let secret = format!("{}{}", uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        Self::from_secrets(&secret, None).unwrap_or_else(|_| unreachable!())
    }

    /// The same keys, admitting untagged ids issued before `until_ms`.
    pub fn admitting_untagged_before(mut self, until_ms: u64) -> Self {
        self.untagged_until_ms = until_ms;
        self
    }

    /// A new job id, tagged with the current key, for a job visible `delay` after now.
    pub fn issue(&self, delay: Delay) -> JobId {
        let mut bytes = JobId::scheduled(delay).to_bytes();
        let tag = tag(&self.current, &bytes);
        bytes[TAG].copy_from_slice(&tag);
        JobId::from_bytes(bytes).unwrap_or_else(|| unreachable!("still a UUIDv7"))
    }

    /// The job id `raw` names, if it is one and this pipeline issued it: what every route
    /// that takes an id asks before any read.
    pub fn parse(&self, raw: &str) -> Option<JobId> {
        raw.parse().ok().filter(|id| self.issued(*id))
    }

    /// Whether this pipeline issued `id`: its tag verifies under the current or the previous
    /// key, or it predates tags. Constant-time in the tag.
    pub fn issued(&self, id: JobId) -> bool {
        if id.unix_millis() < self.untagged_until_ms {
            return true;
        }
        let bytes = id.to_bytes();
        let verifies = |key: &[u8]| mac(key, &bytes).verify_truncated_left(&bytes[TAG]).is_ok();
        verifies(&self.current) || self.previous.as_deref().is_some_and(verifies)
    }
}

/// The tag of an id's bytes under `key`: the first four bytes of HMAC-SHA256 over every byte
/// but the tag's own.
fn tag(key: &[u8], bytes: &[u8; 16]) -> [u8; 4] {
    let full = mac(key, bytes).finalize().into_bytes();
    [full[0], full[1], full[2], full[3]]
}

fn mac(key: &[u8], bytes: &[u8; 16]) -> HmacSha256 {
    // HMAC takes a key of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(b"job-id/1");
    mac.update(&bytes[..TAG.start]);
    mac.update(&bytes[TAG.end..]);
    mac
}

impl std::fmt::Debug for JobIdKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobIdKeys")
            .field("previous", &self.previous.is_some())
            .field("untagged_until_ms", &self.untagged_until_ms)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(c: char) -> String {
        c.to_string().repeat(32)
    }

    #[test]
    fn an_issued_id_verifies_and_keeps_its_time_delay_and_spread() {
        let keys = JobIdKeys::random();
        let plain = JobId::scheduled(Delay::from_seconds(90).unwrap());
        let id = keys.issue(Delay::from_seconds(90).unwrap());
        assert!(keys.issued(id));
        assert_eq!(id.delay().seconds(), 90);
        assert!(id.unix_millis() >= plain.unix_millis());
        assert_eq!(id.to_string().parse::<JobId>(), Ok(id));
        let spreads: std::collections::HashSet<u8> =
            (0..64).map(|_| keys.issue(Delay::NONE).spread()).collect();
        assert!(spreads.len() > 16, "{spreads:?}");
    }

    #[test]
    fn ids_issued_in_one_millisecond_still_sort_in_the_order_they_were_issued() {
        let keys = JobIdKeys::random();
        let issued: Vec<JobId> = (0..2000).map(|_| keys.issue(Delay::NONE)).collect();
        let same_millisecond = issued
            .windows(2)
            .filter(|w| w[0].unix_millis() == w[1].unix_millis())
            .count();
        assert!(same_millisecond > 100, "{same_millisecond}");
        let mut sorted = issued.clone();
        sorted.sort();
        assert!(sorted == issued, "the tag reordered ids of one millisecond");
    }

    #[test]
    fn a_well_formed_id_this_pipeline_never_issued_is_refused() {
        let keys = JobIdKeys::random();
        assert!(!keys.issued(JobId::new()));
        assert!(!keys.issued(JobIdKeys::random().issue(Delay::NONE)));
        // Any bit changed outside the tag breaks it: the time, the delay, the spread.
        let id = keys.issue(Delay::NONE).to_bytes();
        for byte in [0, 5, 7, 9, 11] {
            let mut forged = id;
            forged[byte] ^= 1;
            assert!(!keys.issued(JobId::from_bytes(forged).unwrap()), "{byte}");
        }
    }

    #[test]
    fn during_a_rotation_ids_of_the_previous_key_still_verify() {
        let old = JobIdKeys::from_secrets(&secret('a'), None).unwrap();
        let rotated = JobIdKeys::from_secrets(&secret('b'), Some(&secret('a'))).unwrap();
        let after = JobIdKeys::from_secrets(&secret('b'), Some("")).unwrap();
        let issued_before = old.issue(Delay::NONE);

        assert!(rotated.issued(issued_before));
        assert!(rotated.issued(rotated.issue(Delay::NONE)));
        assert!(!after.issued(issued_before));
        assert!(!old.issued(rotated.issue(Delay::NONE)));
    }

    #[test]
    fn untagged_ids_from_before_tags_existed_are_admitted_and_later_ones_not() {
        let legacy = JobId::new();
        let keys = JobIdKeys::random().admitting_untagged_before(legacy.unix_millis() + 1);
        assert!(keys.issued(legacy));
        let keys = JobIdKeys::random().admitting_untagged_before(legacy.unix_millis());
        assert!(!keys.issued(legacy));
    }

    #[test]
    fn short_secrets_are_refused_and_keys_never_print() {
        assert_eq!(
            JobIdKeys::from_secrets("short", None).unwrap_err(),
            JobIdKeyError
        );
        assert_eq!(
            JobIdKeys::from_secrets(&secret('a'), Some("short")).unwrap_err(),
            JobIdKeyError
        );
        let keys = JobIdKeys::from_secrets(&secret('s'), None).unwrap();
        assert!(!format!("{keys:?}").contains("sss"));
    }
}
