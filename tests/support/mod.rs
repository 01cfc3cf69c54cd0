//! What every integration test stands on, in one place: queues and tables made for one test
//! on the emulator or AWS and removed after it ([`aws`]), the local runner started as a
//! process ([`runner`]), the ledger that counts where each acknowledged message ended
//! ([`ledger`]), and waiting on a condition instead of a fixed sleep.

pub mod aws;
pub mod ledger;
pub mod runner;
pub mod stack;

pub use aws::*;
pub use ledger::*;
pub use runner::*;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Polls `check` until it gives a value, for up to 60 s (redrive takes a few visibility
/// timeouts; the emulator's mapping is slower than the embedded one).
pub fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Removes a SQLite file and what WAL mode keeps beside it (`-wal`, `-shm`).
pub fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.to_path_buf().into_os_string();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }
    // The runner's log beside it.
    let _ = std::fs::remove_file(path.with_extension("log"));
}

/// A runner's database file in the temp directory, removed with its WAL files when the
/// guard drops, also when the test fails. Declare it before the runner that uses it: locals
/// drop in reverse order, so the runner is stopped before its files go.
#[derive(Debug)]
pub struct DataFile(PathBuf);

impl std::ops::Deref for DataFile {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for DataFile {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for DataFile {
    fn drop(&mut self) {
        remove_db(&self.0);
    }
}

pub fn data_file() -> DataFile {
    DataFile(std::env::temp_dir().join(format!("mp-runner-{}.db", uuid::Uuid::new_v4().simple())))
}
