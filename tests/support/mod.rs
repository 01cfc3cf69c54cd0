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

use std::path::PathBuf;
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

pub fn data_file() -> PathBuf {
    std::env::temp_dir().join(format!("mp-runner-{}.db", uuid::Uuid::new_v4().simple()))
}
