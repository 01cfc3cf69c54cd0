//! The idempotency keys contract: what a request that claims a key is told, on SQLite and on
//! DynamoDB, including concurrent claims, a lapsed lease and an expired key.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use futures::future::join_all;
use message_pipeline::sqlite::SqliteKeys;
use pipeline::adapters::aws::DynamoDbKeys;
use pipeline::adapters::memory::InMemoryKeys;
use pipeline::clock::ManualClock;
use pipeline::domain::{
    Claim, IdempotencyKey, JobId, ReservedIds, StoredAnswer, KEY_LEASE, KEY_LIFETIME,
};
use pipeline::ports::IdempotencyKeys;

use super::{for_each_backend, remove_db, temp_db_with_clock};
use crate::support::TestStack;

pub enum KeysBackend {
    /// On a clock the test moves.
    Memory(InMemoryKeys, Arc<ManualClock>),
    /// On a clock the test moves.
    Embedded(SqliteKeys, PathBuf, Arc<ManualClock>),
    Aws(TestStack, DynamoDbKeys),
}

impl KeysBackend {
    async fn memory() -> Self {
        let clock = Arc::new(ManualClock::at_wall_clock_plus(0));
        Self::Memory(InMemoryKeys::on_clock(clock.clone()), clock)
    }

    async fn embedded() -> Self {
        let clock = Arc::new(ManualClock::at_wall_clock_plus(0));
        let (db, path) = temp_db_with_clock(clock.clone());
        Self::Embedded(SqliteKeys::new(db), path, clock)
    }

    async fn aws() -> Self {
        let stack = TestStack::new().await;
        let keys = stack.keys();
        Self::Aws(stack, keys)
    }

    fn keys(&self) -> &dyn IdempotencyKeys {
        match self {
            Self::Memory(keys, _) => keys,
            Self::Embedded(keys, ..) => keys,
            Self::Aws(_, keys) => keys,
        }
    }

    /// Lets `time` pass for `key`'s record: the embedded clock moves; on DynamoDB, whose
    /// clock is the wall clock, the record's times are moved back by as much.
    async fn pass(&self, key: &IdempotencyKey, time: Duration) {
        match self {
            Self::Memory(_, clock) | Self::Embedded(_, _, clock) => clock.advance(time),
            Self::Aws(stack, _) => {
                let back = |attribute: &str, amount: &str| {
                    format!("{attribute} = {attribute} - :{amount}")
                };
                stack
                    .dynamodb
                    .update_item()
                    .table_name(&stack.keys_table)
                    .key("pk", AttributeValue::S(key.record().to_owned()))
                    .update_expression(format!(
                        "SET {}, {}",
                        back("locked_until", "millis"),
                        back("expires_at", "seconds")
                    ))
                    .expression_attribute_values(
                        ":millis",
                        AttributeValue::N(time.as_millis().to_string()),
                    )
                    .expression_attribute_values(
                        ":seconds",
                        AttributeValue::N(time.as_secs().to_string()),
                    )
                    .send()
                    .await
                    .unwrap();
            }
        }
    }

    async fn teardown(self) {
        match self {
            Self::Memory(..) => {}
            Self::Embedded(_, path, _) => remove_db(&path),
            Self::Aws(stack, _) => stack.teardown().await,
        }
    }
}

fn key(name: &str) -> IdempotencyKey {
    IdempotencyKey::parse(&format!("{name}-{}", uuid::Uuid::new_v4()), "client").unwrap()
}

/// `n` fresh job ids, as a request with `n` valid items reserves them.
fn ids(n: usize) -> ReservedIds {
    ReservedIds((0..n).map(|_| Some(JobId::new())).collect())
}

fn answer(body: &str) -> StoredAnswer {
    StoredAnswer {
        status: 202,
        body: body.to_owned(),
    }
}

async fn a_new_key_is_started_then_replayed_once_answered(backend: &KeysBackend) {
    let key = key("replay");
    let keys = backend.keys();

    assert_eq!(
        keys.claim(&key, "f", &ids(1)).await.unwrap(),
        Claim::Started
    );
    keys.answer(&key, &answer("first")).await.unwrap();

    assert_eq!(
        keys.claim(&key, "f", &ids(1)).await.unwrap(),
        Claim::Replay(answer("first"))
    );
    assert_eq!(
        keys.claim(&key, "g", &ids(1)).await.unwrap(),
        Claim::Mismatch
    );
}

async fn of_concurrent_claims_exactly_one_starts(backend: &KeysBackend) {
    let key = key("race");
    let keys = backend.keys();

    let claims = join_all((0..16).map(|i| {
        let key = key.clone();
        async move { keys.claim(&key, "f", &ids(i % 3)).await.unwrap() }
    }))
    .await;

    let started = claims.iter().filter(|c| **c == Claim::Started).count();
    let waiting = claims.iter().filter(|c| **c == Claim::InProgress).count();
    assert_eq!((started, waiting), (1, 15), "{claims:?}");
}

async fn a_lapsed_lease_is_taken_over_once_with_the_ids_reserved_first(backend: &KeysBackend) {
    let key = key("lapsed");
    let keys = backend.keys();
    let first = ids(2);
    keys.claim(&key, "f", &first).await.unwrap();
    assert_eq!(
        keys.claim(&key, "f", &ids(2)).await.unwrap(),
        Claim::InProgress
    );

    backend.pass(&key, KEY_LEASE + Duration::from_secs(1)).await;
    let takeovers = join_all((0..4).map(|_| async { keys.claim(&key, "f", &ids(2)).await })).await;

    let taken: Vec<&Claim> = takeovers
        .iter()
        .map(|c| c.as_ref().unwrap())
        .filter(|c| matches!(c, Claim::TakenOver { .. }))
        .collect();
    assert_eq!(taken, [&Claim::TakenOver { reserved: first }]);
}

async fn a_released_key_starts_afresh_and_an_answered_one_is_not_released(backend: &KeysBackend) {
    let keys = backend.keys();
    let released = key("released");
    keys.claim(&released, "f", &ids(0)).await.unwrap();
    keys.release(&released).await.unwrap();
    assert_eq!(
        keys.claim(&released, "g", &ids(0)).await.unwrap(),
        Claim::Started
    );

    let answered = key("answered");
    keys.claim(&answered, "f", &ids(0)).await.unwrap();
    keys.answer(&answered, &answer("kept")).await.unwrap();
    keys.release(&answered).await.unwrap();
    assert_eq!(
        keys.claim(&answered, "f", &ids(0)).await.unwrap(),
        Claim::Replay(answer("kept"))
    );
}

async fn a_key_is_forgotten_after_its_lifetime(backend: &KeysBackend) {
    let key = key("expired");
    let keys = backend.keys();
    keys.claim(&key, "f", &ids(0)).await.unwrap();
    keys.answer(&key, &answer("old")).await.unwrap();

    backend
        .pass(&key, KEY_LIFETIME - Duration::from_secs(60))
        .await;
    let within = keys.claim(&key, "g", &ids(0)).await.unwrap();
    backend.pass(&key, Duration::from_secs(120)).await;
    let after = keys.claim(&key, "g", &ids(0)).await.unwrap();

    assert_eq!(within, Claim::Mismatch);
    assert_eq!(after, Claim::Started);
}

for_each_backend!(KeysBackend [memory, embedded, aws]:
    a_new_key_is_started_then_replayed_once_answered,
    of_concurrent_claims_exactly_one_starts,
    a_lapsed_lease_is_taken_over_once_with_the_ids_reserved_first,
    a_released_key_starts_afresh_and_an_answered_one_is_not_released,
    a_key_is_forgotten_after_its_lifetime,
);
