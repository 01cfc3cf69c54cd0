//! One contract per port, run against every adapter of it, so the embedded backend of the
//! local runner and AWS (here the emulator) cannot drift apart.

mod keys;
mod queue;
mod store;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use message_pipeline::sqlite::{Durability, SqliteDb};
use pipeline::clock::Clock;

/// A fresh SQLite file in the temp directory, removed (with its WAL) by [`remove_db`].
pub fn temp_db() -> (Arc<SqliteDb>, PathBuf) {
    let path = std::env::temp_dir().join(format!("mp-test-{}.db", uuid::Uuid::new_v4().simple()));
    let db = SqliteDb::open(&path, Durability::Process).expect("open sqlite");
    (db, path)
}

/// The same, with the queue's clock in the test's hands.
pub fn temp_db_with_clock(clock: Arc<dyn Clock>) -> (Arc<SqliteDb>, PathBuf) {
    let path = std::env::temp_dir().join(format!("mp-test-{}.db", uuid::Uuid::new_v4().simple()));
    let db = SqliteDb::open_with(&path, Durability::Process, |_| clock).expect("open sqlite");
    (db, path)
}

pub fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.to_path_buf().into_os_string();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }
}

/// Declares each listed contract test once per backend: `embedded::name` and `aws::name`.
macro_rules! for_each_backend {
    ($backend:ident: $($test:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test]
                async fn $test() {
                    let backend = super::$backend::embedded().await;
                    super::$test(&backend).await;
                    backend.teardown().await;
                }
            )*
        }
        mod aws {
            $(
                #[tokio::test]
                async fn $test() {
                    let backend = super::$backend::aws().await;
                    super::$test(&backend).await;
                    backend.teardown().await;
                }
            )*
        }
    };
}
pub(crate) use for_each_backend;

/// The schema the runner wrote before databases carried a version (`PRAGMA user_version` 0).
const UNVERSIONED_SCHEMA: &str = "
CREATE TABLE queue (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT NOT NULL UNIQUE, body TEXT NOT NULL,
    sent_at_ms INTEGER NOT NULL, visible_at_ms INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0, receipt TEXT UNIQUE);
CREATE INDEX queue_by_visibility ON queue (visible_at_ms, seq);
CREATE TABLE dead_letters (
    message_id TEXT PRIMARY KEY, body TEXT NOT NULL, sent_at_ms INTEGER NOT NULL,
    receive_count INTEGER NOT NULL, dead_at_ms INTEGER NOT NULL);
CREATE TABLE messages (id TEXT PRIMARY KEY, content TEXT NOT NULL) WITHOUT ROWID;
";

#[tokio::test]
async fn a_database_written_by_the_previous_version_opens_with_its_messages_and_queue() {
    use message_pipeline::sqlite::{SqliteQueue, SqliteStore};
    use pipeline::domain::{ContentLimit, Message, MessageContent, QueuedMessage};
    use pipeline::ports::{MessageStore, QueueSource};

    let path = std::env::temp_dir().join(format!("mp-old-{}.db", uuid::Uuid::new_v4().simple()));
    let stored =
        Message::accept(MessageContent::parse("stored".into(), ContentLimit::DEFAULT).unwrap());
    let queued =
        Message::accept(MessageContent::parse("queued".into(), ContentLimit::DEFAULT).unwrap());
    {
        let old = rusqlite::Connection::open(&path).unwrap();
        old.execute_batch(UNVERSIONED_SCHEMA).unwrap();
        old.execute(
            "INSERT INTO messages VALUES (?1, ?2)",
            [stored.id.to_string(), "stored".to_owned()],
        )
        .unwrap();
        old.execute(
            "INSERT INTO queue (message_id, body, sent_at_ms, visible_at_ms) VALUES ('m1', ?1, 1, 1)",
            [QueuedMessage::body_of(&queued)],
        )
        .unwrap();
    }

    let db = SqliteDb::open(&path, Durability::Process).unwrap();
    let version: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    let found = SqliteStore::new(db.clone()).get(stored.id).await.unwrap();
    let received = SqliteQueue::new(db, crate::support::TEST_QUEUE)
        .receive(10, std::time::Duration::ZERO)
        .await
        .unwrap();
    remove_db(&path);

    assert_eq!(version, SqliteDb::SCHEMA_VERSION);
    assert_eq!(found, Some(stored));
    assert_eq!(received.len(), 1);
}

#[test]
fn a_database_from_a_newer_version_is_refused_with_a_clear_error() {
    let path = std::env::temp_dir().join(format!("mp-new-{}.db", uuid::Uuid::new_v4().simple()));
    rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", SqliteDb::SCHEMA_VERSION + 1)
        .unwrap();

    let error = SqliteDb::open(&path, Durability::Process).unwrap_err();
    remove_db(&path);

    assert!(format!("{error:#}").contains("newer"), "{error:#}");
}
