//! The store contract: idempotent puts, lookups, and newest-first pagination.

use std::path::PathBuf;

use message_pipeline::sqlite::SqliteStore;
use pipeline::adapters::aws::DynamoDbStore;
use pipeline::adapters::memory::{InMemoryFailureLog, InMemoryStore};
use pipeline::domain::{Attributes, ContentLimit, JobId, Message, MessageContent, PageLimit};
use pipeline::ports::{FailureLog, MessageStore};

use super::{for_each_backend, remove_db, temp_db};
use crate::support::TestStack;

/// A store, and the failure log beside it (the same table, or the same SQLite file; the
/// in-memory fakes are two).
pub enum StoreBackend {
    Memory(InMemoryStore, InMemoryFailureLog),
    Embedded(SqliteStore, PathBuf),
    Aws(TestStack, DynamoDbStore),
}

impl StoreBackend {
    pub(super) async fn memory() -> Self {
        Self::Memory(InMemoryStore::default(), InMemoryFailureLog::default())
    }

    pub(super) async fn embedded() -> Self {
        let (db, path) = temp_db();
        Self::Embedded(SqliteStore::new(db), path)
    }

    pub(super) async fn aws() -> Self {
        let stack = TestStack::new().await;
        let store = stack.store();
        Self::Aws(stack, store)
    }

    pub(super) fn store(&self) -> &dyn MessageStore {
        match self {
            Self::Memory(store, _) => store,
            Self::Embedded(store, _) => store,
            Self::Aws(_, store) => store,
        }
    }

    pub(super) fn log(&self) -> &dyn FailureLog {
        match self {
            Self::Memory(_, log) => log,
            Self::Embedded(store, _) => store,
            Self::Aws(_, store) => store,
        }
    }

    pub(super) async fn teardown(self) {
        match self {
            Self::Memory(..) => {}
            Self::Embedded(_, path) => remove_db(&path),
            Self::Aws(stack, _) => stack.teardown().await,
        }
    }
}

pub(super) fn messages(n: usize) -> Vec<Message> {
    (0..n)
        .map(|i| {
            Message::accept(MessageContent::parse(format!("m{i}"), ContentLimit::DEFAULT).unwrap())
        })
        .collect()
}

fn limit(n: usize) -> PageLimit {
    PageLimit::parse(&n.to_string()).unwrap()
}

/// Every message, following `next` until it ends.
pub(super) async fn list_all(store: &dyn MessageStore, page_size: usize) -> Vec<Message> {
    let mut all = Vec::new();
    let mut before = None;
    for _ in 0..1000 {
        let page = store.list(limit(page_size), before).await.unwrap();
        assert!(page.messages.len() <= page_size);
        all.extend(page.messages);
        match page.next {
            Some(cursor) => before = Some(cursor.before),
            None => return all,
        }
    }
    panic!("pagination did not end");
}

async fn a_put_message_is_found_by_its_id(backend: &StoreBackend) {
    let sent = messages(3);
    backend.store().put_batch(&sent).await.unwrap();

    assert_eq!(
        backend.store().get(sent[1].id).await.unwrap(),
        Some(sent[1].clone())
    );
    assert_eq!(backend.store().get(JobId::new()).await.unwrap(), None);
}

async fn putting_the_same_jobs_again_leaves_one_item_each(backend: &StoreBackend) {
    let sent = messages(4);
    backend.store().put_batch(&sent).await.unwrap();
    backend.store().put_batch(&sent[1..3]).await.unwrap();
    backend
        .store()
        .put_batch(&[sent[0].clone(), sent[0].clone()])
        .await
        .unwrap();

    let stored = list_all(backend.store(), 100).await;

    let expected: Vec<Message> = sent.into_iter().rev().collect();
    assert_eq!(stored, expected);
}

/// First write wins: a stored message never changes. A repeat of its job with other content
/// (anyone who can send to the queue can make one) is reported unwritten, so its record fails
/// and ends in the dead-letter queue where a person sees it; its neighbours are written.
async fn a_repeat_of_a_stored_job_with_other_content_never_rewrites_it(backend: &StoreBackend) {
    let original = messages(1).remove(0);
    backend
        .store()
        .put_batch(std::slice::from_ref(&original))
        .await
        .unwrap();
    let forged = Message::new(
        original.id,
        MessageContent::parse("rewritten".into(), ContentLimit::DEFAULT).unwrap(),
        Default::default(),
    );
    let neighbour = messages(1).remove(0);

    let refused = backend
        .store()
        .put_batch(&[forged, neighbour.clone()])
        .await
        .unwrap_err();
    let again = backend
        .store()
        .put_batch(std::slice::from_ref(&original))
        .await;

    assert_eq!(refused.ids(), [original.id]);
    assert_eq!(
        refused.unwritten[0].cause.class,
        pipeline::domain::FailureClass::Permanent,
        "no retry can store it"
    );
    let stored = backend.store().get(original.id).await.unwrap();
    assert_eq!(stored, Some(original));
    let written = backend.store().get(neighbour.id).await.unwrap();
    assert_eq!(written, Some(neighbour));
    assert!(
        again.is_ok(),
        "the same job with the same content is a redelivery: {again:?}"
    );
}

async fn pages_list_every_message_once_newest_first(backend: &StoreBackend) {
    let sent = messages(23);
    backend.store().put_batch(&sent).await.unwrap();

    let stored = list_all(backend.store(), 5).await;

    let expected: Vec<Message> = sent.into_iter().rev().collect();
    assert_eq!(stored, expected);
}

async fn a_cursor_lists_only_strictly_older_messages(backend: &StoreBackend) {
    // In id order: ids made in the same millisecond need not sort in the order they were
    // made (the delay takes the bits of the UUIDv7 counter it sits in), and the contract is
    // about ids.
    let mut sent = messages(6);
    sent.sort_by_key(|m| m.id);
    backend.store().put_batch(&sent).await.unwrap();

    let page = backend
        .store()
        .list(limit(10), Some(sent[3].id))
        .await
        .unwrap();

    assert_eq!(
        page.messages,
        vec![sent[2].clone(), sent[1].clone(), sent[0].clone()]
    );
    // A store may not know that the page is the last (on DynamoDB a shard whose query
    // filled its limit exactly): then the cursor it gives leads to nothing more.
    if let Some(cursor) = page.next {
        let rest = backend
            .store()
            .list(limit(10), Some(cursor.before))
            .await
            .unwrap();
        assert_eq!((rest.messages, rest.next), (vec![], None));
    }
}

async fn more_messages_than_one_write_call_takes_are_all_stored(backend: &StoreBackend) {
    let sent = messages(60);
    backend.store().put_batch(&sent).await.unwrap();

    assert_eq!(list_all(backend.store(), 1000).await.len(), 60);
}

async fn an_empty_store_lists_nothing(backend: &StoreBackend) {
    let page = backend.store().list(limit(50), None).await.unwrap();
    assert!(page.messages.is_empty() && page.next.is_none());
}

async fn attributes_are_stored_with_the_message_and_read_back_by_get_and_list(
    backend: &StoreBackend,
) {
    let attributes = Attributes::parse(
        [("tenant", "acme"), ("trace.id", "é\tx")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    )
    .unwrap();
    let mut tagged = messages(1).remove(0);
    tagged.attributes = attributes;
    let plain = messages(1).remove(0);
    backend
        .store()
        .put_batch(&[tagged.clone(), plain.clone()])
        .await
        .unwrap();

    let got = backend.store().get(tagged.id).await.unwrap();
    let listed = list_all(backend.store(), 10).await;

    assert_eq!(got, Some(tagged.clone()));
    assert_eq!(listed, [plain, tagged]);
}

for_each_backend!(StoreBackend [memory, embedded, aws]:
    attributes_are_stored_with_the_message_and_read_back_by_get_and_list,
    a_put_message_is_found_by_its_id,
    putting_the_same_jobs_again_leaves_one_item_each,
    a_repeat_of_a_stored_job_with_other_content_never_rewrites_it,
    pages_list_every_message_once_newest_first,
    a_cursor_lists_only_strictly_older_messages,
    more_messages_than_one_write_call_takes_are_all_stored,
    an_empty_store_lists_nothing,
);
