//! The failure log's attempts contract: every failed delivery of a job kept once, read back
//! oldest first, and only its own.

use pipeline::clock::{Clock as _, SystemClock};
use pipeline::domain::{Attempt, FailureClass, JobId};

use super::for_each_backend;
use super::store::StoreBackend;

async fn a_job_s_attempts_come_back_oldest_first_once_each_and_only_its_own(
    backend: &StoreBackend,
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

for_each_backend!(StoreBackend [memory, embedded, aws]:
    a_job_s_attempts_come_back_oldest_first_once_each_and_only_its_own,
);
