//! The failure log's attempts contract: every failed delivery of a job kept once, read back
//! oldest first, and only its own.

use std::path::PathBuf;

use message_pipeline::sqlite::SqliteStore;
use pipeline::adapters::aws::DynamoDbStore;
use pipeline::adapters::memory::InMemoryFailureLog;
use pipeline::clock::{Clock as _, SystemClock};
use pipeline::domain::{Attempt, FailureClass, JobId};
use pipeline::ports::FailureLog;

use super::{for_each_backend, remove_db, temp_db};
use crate::support::TestStack;

pub enum AttemptsBackend {
    Memory(InMemoryFailureLog),
    Embedded(SqliteStore, PathBuf),
    Aws(TestStack, DynamoDbStore),
}

impl AttemptsBackend {
    async fn memory() -> Self {
        Self::Memory(InMemoryFailureLog::default())
    }

    async fn embedded() -> Self {
        let (db, path) = temp_db();
        Self::Embedded(SqliteStore::new(db), path)
    }

    async fn aws() -> Self {
        let stack = TestStack::new().await;
        let store = stack.store();
        Self::Aws(stack, store)
    }

    fn log(&self) -> &dyn FailureLog {
        match self {
            Self::Memory(log) => log,
            Self::Embedded(store, _) => store,
            Self::Aws(_, store) => store,
        }
    }

    async fn teardown(self) {
        match self {
            Self::Memory(_) => {}
            Self::Embedded(_, path) => remove_db(&path),
            Self::Aws(stack, _) => stack.teardown().await,
        }
    }
}

async fn a_job_s_attempts_come_back_oldest_first_once_each_and_only_its_own(
    backend: &AttemptsBackend,
) {
    let log = backend.log();
    let (job, other) = (JobId::new(), JobId::new());
    let now = SystemClock.now_ms_u64();
    let attempt = |job, receive_count: u32, class| Attempt {
        job,
        receive_count,
        at_ms: now + u64::from(receive_count) * 1000,
        class,
        error: format!("{class} (attempt {receive_count}): what went wrong"),
    };
    let first = attempt(job, 1, FailureClass::Transient);
    let second = attempt(job, 2, FailureClass::Deployment);
    let last = attempt(job, 3, FailureClass::Permanent);
    let others = attempt(other, 1, FailureClass::Transient);

    log.note_attempts(&[second.clone(), first.clone(), others.clone()])
        .await
        .unwrap();
    // A delivery noted again (a consumer retried after a crash) is kept once.
    log.note_attempts(&[first.clone(), last.clone()])
        .await
        .unwrap();

    assert_eq!(log.attempts(job).await.unwrap(), [first, second, last]);
    assert_eq!(log.attempts(other).await.unwrap(), [others]);
    assert_eq!(log.attempts(JobId::new()).await.unwrap(), []);
}

for_each_backend!(AttemptsBackend [memory, embedded, aws]:
    a_job_s_attempts_come_back_oldest_first_once_each_and_only_its_own,
);
