//! The data's lifecycle, the same on every store: a deleted message is gone from every read
//! and a later delivery of its job does not bring it back; an expired message is never
//! returned, even before the store's reaper removed it.

use std::sync::Arc;
use std::time::Duration;

use message_pipeline::sqlite::SqliteStore;
use pipeline::adapters::memory::InMemoryStore;
use pipeline::clock::ManualClock;
use pipeline::domain::{Deletion, Lookup, MessageRetention};
use pipeline::ports::MessageStore;

use super::store::{list_all, messages, StoreBackend};
use super::{for_each_backend, remove_db, temp_db_with_clock};
use crate::support::TestStack;

async fn a_deleted_message_is_gone_from_every_read_and_a_redelivery_does_not_store_it(
    backend: &StoreBackend,
) {
    let store = backend.store();
    let sent = messages(3);
    store.put_batch(&sent).await.unwrap();

    let deleted = store.delete(sent[1].id).await.unwrap();
    // The job comes again (a redelivery, or a requeue from the dead-letter queue).
    let redelivered = store.put_batch(&sent[1..2]).await;

    assert!(matches!(deleted, Deletion::Deleted { .. }), "{deleted:?}");
    assert!(
        redelivered.is_ok(),
        "a deleted job is done: {redelivered:?}"
    );
    let Ok(Lookup::Deleted { at_ms }) = store.lookup(sent[1].id).await else {
        panic!("not a tombstone: {:?}", store.lookup(sent[1].id).await);
    };
    assert_eq!(store.get(sent[1].id).await.unwrap(), None);
    let listed = list_all(store, 2).await;
    assert_eq!(listed, vec![sent[2].clone(), sent[0].clone()]);
    // A second delete changes nothing and says when the first was.
    assert_eq!(
        store.delete(sent[1].id).await.unwrap(),
        Deletion::AlreadyDeleted { at_ms }
    );
    // Its neighbours are untouched.
    assert_eq!(
        store.lookup(sent[0].id).await.unwrap(),
        Lookup::Stored(sent[0].clone())
    );
}

async fn a_job_deleted_before_it_was_stored_is_never_stored(backend: &StoreBackend) {
    let store = backend.store();
    let on_its_way = messages(1).remove(0);

    store.delete(on_its_way.id).await.unwrap();
    let delivered = store.put_batch(std::slice::from_ref(&on_its_way)).await;

    assert!(delivered.is_ok(), "{delivered:?}");
    assert!(matches!(
        store.lookup(on_its_way.id).await.unwrap(),
        Lookup::Deleted { .. }
    ));
    assert!(list_all(store, 10).await.is_empty());
}

for_each_backend!(StoreBackend [memory, embedded, aws]:
    a_deleted_message_is_gone_from_every_read_and_a_redelivery_does_not_store_it,
    a_job_deleted_before_it_was_stored_is_never_stored,
);

/// Messages stored a day apart under a retention of two days: the first is gone from every
/// read once its two days have passed, the second is not; the clock is the test's, so the
/// store's reaper (DynamoDB's TTL, the runner's pruner) has not run.
async fn an_expired_message_is_not_returned(store: &dyn MessageStore, clock: &ManualClock) {
    let (old, young) = (messages(1).remove(0), messages(1).remove(0));
    store.put_batch(std::slice::from_ref(&old)).await.unwrap();
    clock.advance(Duration::from_secs(24 * 3600));
    store.put_batch(std::slice::from_ref(&young)).await.unwrap();
    assert_eq!(list_all(store, 10).await.len(), 2, "both kept for now");

    clock.advance(Duration::from_secs(24 * 3600));

    assert_eq!(store.lookup(old.id).await.unwrap(), Lookup::Expired);
    assert_eq!(
        store.lookup(young.id).await.unwrap(),
        Lookup::Stored(young.clone())
    );
    assert_eq!(list_all(store, 1).await, vec![young]);
}

fn two_days() -> MessageRetention {
    MessageRetention::days(2).unwrap()
}

mod expiry {
    use super::*;

    #[tokio::test]
    async fn memory() {
        let clock = Arc::new(ManualClock::at_wall_clock_plus(0));
        let store = InMemoryStore::with_retention(two_days(), clock.clone());
        an_expired_message_is_not_returned(&store, &clock).await;
    }

    #[tokio::test]
    async fn embedded() {
        let clock = Arc::new(ManualClock::at_wall_clock_plus(0));
        let (db, path) = temp_db_with_clock(clock.clone());
        let store = SqliteStore::new(db.clone()).with_retention(two_days());
        an_expired_message_is_not_returned(&store, &clock).await;
        // The pruner removes what reads already hide, and only that.
        assert_eq!(db.prune_once().await.unwrap(), 1);
        assert_eq!(db.prune_once().await.unwrap(), 0);
        assert_eq!(list_all(&store, 10).await.len(), 1);
        remove_db(&path);
    }

    #[tokio::test]
    async fn aws() {
        let stack = TestStack::new().await;
        let clock = Arc::new(ManualClock::at_wall_clock_plus(0));
        let store = stack
            .store()
            .with_retention(two_days())
            .with_clock(clock.clone());
        an_expired_message_is_not_returned(&store, &clock).await;
        stack.teardown().await;
    }
}
