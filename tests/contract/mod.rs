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
