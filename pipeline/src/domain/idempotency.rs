//! Idempotency keys (draft-ietf-httpapi-idempotency-key-header): a client that retries a POST
//! with the same `Idempotency-Key` gets the first answer again, and nothing is queued twice.
//!
//! A key's record holds the request's fingerprint, the job ids reserved for it before anything
//! was sent, and, once the request is answered, the answer. A request that finds a record:
//! - with another fingerprint: the key was reused for another request (422);
//! - answered: the answer again (the same job ids);
//! - in progress, within its lease: a concurrent duplicate (409);
//! - in progress past its lease: the first request died between taking the key and answering
//!   (a function timeout). The retry takes the record over and sends the *reserved* job ids,
//!   so a message the dead request did send is the same job and is stored once.

use std::time::Duration;

use sha2::{Digest, Sha256};

use super::JobId;

/// How long a key is remembered after its request: the draft asks for a published expiry;
/// 24 hours covers a client's retries across a day's outage.
pub const KEY_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// How long a request holds its key before a retry may take it over: longer than the enqueue
/// function's timeout (10 s in template.yaml), so a live request is never taken over.
pub const KEY_LEASE: Duration = Duration::from_secs(30);
/// The longest key accepted.
pub const MAX_KEY_CHARS: usize = 255;

/// A client's key, scoped to the client: two clients choosing the same key never meet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// SHA-256 of the client and the key, hex: fixed size, and no client text in table keys.
    record: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "Idempotency-Key must be 1 to 255 visible ASCII characters, as a quoted string \
     (Idempotency-Key: \"8e03978e-40d5-43e8-bc93-6894a57f9324\")"
)]
pub struct KeyError;

impl IdempotencyKey {
    /// Parses the header's value: a structured-field string (`"..."`, as the draft defines
    /// it); a bare token is accepted too, as many clients send one.
    pub fn parse(header: &str, client: &str) -> Result<Self, KeyError> {
        let header = header.trim();
        let key = match header.strip_prefix('"').and_then(|h| h.strip_suffix('"')) {
            Some(quoted) if !quoted.contains(['"', '\\']) => quoted,
            Some(_) => return Err(KeyError),
            None if header.contains('"') => return Err(KeyError),
            None => header,
        };
        if key.is_empty()
            || key.len() > MAX_KEY_CHARS
            || !key.bytes().all(|b| (0x20..=0x7e).contains(&b))
        {
            return Err(KeyError);
        }
        let mut hash = Sha256::new();
        hash.update(client.as_bytes());
        hash.update([0]);
        hash.update(key.as_bytes());
        Ok(Self {
            record: hex(&hash.finalize()),
        })
    }

    /// The record's key in the idempotency store.
    pub fn record(&self) -> &str {
        &self.record
    }
}

/// What identifies a request's payload: SHA-256 of its route and its validated fields, so
/// that whitespace or the order of JSON fields do not make a retry "another request".
pub fn fingerprint(route: &str, canonical: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(route.as_bytes());
    hash.update([0]);
    hash.update(canonical.as_bytes());
    hex(&hash.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The first answer to a keyed request, as it is given again.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredAnswer {
    pub status: u16,
    pub body: String,
}

/// The job ids a keyed request reserved before it sent anything, by the position of its
/// items (none for an invalid item): a request that takes over the key of one that died
/// sends the same jobs again, so that what the first one sent is stored once.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReservedIds(pub Vec<Option<JobId>>);

/// A record's reserved ids that are not a JSON array of job ids and nulls.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the idempotency record's reserved job ids are unreadable: {0}")]
pub struct ReservedIdsError(String);

impl ReservedIds {
    /// As the stores keep it: a JSON array of job ids and nulls.
    pub fn encode(&self) -> String {
        let ids: Vec<Option<String>> = self
            .0
            .iter()
            .map(|id| id.map(|id| id.to_string()))
            .collect();
        serde_json::to_string(&ids).unwrap_or_default()
    }

    pub fn decode(text: &str) -> Result<Self, ReservedIdsError> {
        let ids: Vec<Option<String>> =
            serde_json::from_str(text).map_err(|e| ReservedIdsError(e.to_string()))?;
        ids.into_iter()
            .map(|id| id.map(|id| id.parse::<JobId>()).transpose())
            .collect::<Result<_, _>>()
            .map(Self)
            .map_err(|_| ReservedIdsError(format!("not a job id in {text}")))
    }
}

/// A key's record as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub fingerprint: String,
    pub reserved: ReservedIds,
    pub answer: Option<StoredAnswer>,
    pub locked_until_ms: u64,
}

/// What taking a key came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is new (or expired): go on with the ids just reserved.
    Started,
    /// A dead request's key, taken over: go on with the ids it reserved.
    TakenOver { reserved: ReservedIds },
    /// Answered before: give that answer.
    Replay(StoredAnswer),
    /// Another request with this key is being served now.
    InProgress,
    /// The key was used for another request.
    Mismatch,
}

/// What a request that found `record` does (see the module's documentation); `Abandoned`
/// means the store should try to take the record over.
pub fn on_existing(record: &KeyRecord, fingerprint: &str, now_ms: u64) -> Existing {
    if record.fingerprint != fingerprint {
        Existing::Mismatch
    } else if let Some(answer) = &record.answer {
        Existing::Replay(answer.clone())
    } else if now_ms < record.locked_until_ms {
        Existing::InProgress
    } else {
        Existing::Abandoned
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Existing {
    Replay(StoredAnswer),
    InProgress,
    Mismatch,
    Abandoned,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_scoped_to_their_client_and_parse_quoted_or_bare() {
        let quoted = IdempotencyKey::parse(r#""abc-123""#, "client-a").unwrap();
        let bare = IdempotencyKey::parse("abc-123", "client-a").unwrap();
        let other_client = IdempotencyKey::parse("abc-123", "client-b").unwrap();
        assert_eq!(quoted, bare);
        assert_ne!(bare, other_client);
        assert_eq!(bare.record().len(), 64);
    }

    #[test]
    fn refuses_keys_that_are_empty_long_or_not_visible_ascii() {
        let long = "k".repeat(256);
        for bad in [
            "",
            "\"\"",
            "\"a\"b\"",
            "é",
            "tab\there",
            &long,
            "\"unterminated",
        ] {
            assert_eq!(IdempotencyKey::parse(bad, "c"), Err(KeyError), "{bad}");
        }
        assert!(IdempotencyKey::parse(&"k".repeat(255), "c").is_ok());
    }

    fn record(answer: Option<StoredAnswer>, locked_until_ms: u64) -> KeyRecord {
        KeyRecord {
            fingerprint: "f".into(),
            reserved: ReservedIds::default(),
            answer,
            locked_until_ms,
        }
    }

    #[test]
    fn a_found_record_decides_replay_conflict_mismatch_or_takeover() {
        let answer = StoredAnswer {
            status: 202,
            body: "{}".into(),
        };
        let done = record(Some(answer.clone()), 100);
        assert_eq!(on_existing(&done, "f", 0), Existing::Replay(answer));
        assert_eq!(on_existing(&done, "g", 0), Existing::Mismatch);
        let running = record(None, 100);
        assert_eq!(on_existing(&running, "f", 99), Existing::InProgress);
        assert_eq!(on_existing(&running, "f", 100), Existing::Abandoned);
        assert_eq!(on_existing(&running, "g", 100), Existing::Mismatch);
    }

    #[test]
    fn reserved_ids_survive_the_store_and_an_unreadable_record_is_an_error() {
        let ids = ReservedIds(vec![Some(JobId::new()), None, Some(JobId::new())]);

        assert_eq!(ReservedIds::decode(&ids.encode()), Ok(ids));
        assert!(ReservedIds::decode("[\"not a job id\"]").is_err());
        assert!(ReservedIds::decode("{}").is_err());
    }
}
