//! One contract per port, run against every adapter of it, so the embedded backend of the
//! local runner, AWS (here the emulator) and the in-memory fakes that unit tests stand on
//! cannot drift apart.

mod attempts;
mod keys;
mod lifecycle;
mod queue;
mod store;

use std::path::PathBuf;
use std::sync::Arc;

use message_pipeline::sqlite::{Durability, SqliteDb};
use pipeline::clock::Clock;

pub use crate::support::remove_db;

/// A fresh SQLite file in the temp directory, removed (with its WAL) by `remove_db`.
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

/// Declares each listed contract test once per backend named in brackets, as
/// `<backend>::<test>`: `memory` (the fakes unit tests stand on), `embedded` (SQLite), `aws`.
macro_rules! for_each_backend {
    ($backend:ident [$kind:ident $(, $rest:ident)*]: $($test:ident),* $(,)?) => {
        mod $kind {
            $(
                #[tokio::test]
                async fn $test() {
                    let backend = super::$backend::$kind().await;
                    super::$test(&backend).await;
                    backend.teardown().await;
                }
            )*
        }
        for_each_backend!($backend [$($rest),*]: $($test),*);
    };
    ($backend:ident []: $($test:ident),* $(,)?) => {};
}
pub(crate) use for_each_backend;
