//! The operations routes: a job's status, the pipeline's counts, and the dead-letter queue
//! (list, requeue one, requeue all, purge). The same on the deployed stack and the runner.

use std::time::Duration;

use lambda_http::http::header::{HeaderValue, RETRY_AFTER};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};

use super::answers::{
    AttemptView, DeadLetterPageView, DeletedView, FailureView, HistoryView, JobView,
    OneDeadLetterView, RequeueAllView, StatsView,
};
use super::response::json_response;
use super::{ApiError, Operator, Reader};
use crate::domain::{
    rfc3339_millis, DeadLetterId, Deletion, HistoryWindow, JobId, JobIdKeys, JobStatus,
};
use crate::ports::{OneDeadLetter, Operations, PortResult};

/// Seconds a client waits before asking about a queued job again: the pipeline stores a
/// message within about a second when it keeps up (BENCHMARKS.md).
const RETRY_AFTER_SECS: &str = "1";
/// How long one requeue-all call moves messages one by one before it answers (the operate
/// function's timeout is 30 s): the caller calls again until `done`.
pub const REQUEUE_ALL_BUDGET: Duration = Duration::from_secs(20);
/// Dead letters a page holds by default and at most.
const DEAD_LETTER_PAGE_DEFAULT: usize = 20;
const DEAD_LETTER_PAGE_MAX: usize = 100;
/// The word `DELETE /dead-letters` needs in its `confirm` parameter.
pub const PURGE_CONFIRMATION: &str = "purge";

/// The job `raw` names, if this pipeline issued it: a forged id is a 404 before any read.
fn job_id(raw: &str, ids: &JobIdKeys) -> Result<JobId, ApiError> {
    ids.parse(raw)
        .ok_or_else(|| ApiError::JobNotFound(raw.chars().take(100).collect()))
}

/// A dead letter's id: a raw one's message id (SQS's own), or a job id this pipeline issued.
fn dead_letter_id(raw: &str, ids: &JobIdKeys) -> Result<DeadLetterId, ApiError> {
    DeadLetterId::parse(raw)
        .filter(|id| id.job().is_none_or(|job| ids.issued(job)))
        .ok_or_else(|| ApiError::NotDeadLettered(raw.chars().take(100).collect()))
}

/// GET /jobs/{id}: `stored` (with the message), `dead_lettered` (with its last failure),
/// `scheduled` (accepted with a delay that has not passed: `visible_at` says until when; the
/// delay is in the job id), `queued`, or 404: [`JobStatus`] decides.
#[tracing::instrument(skip_all, fields(job_id = %raw_id))]
pub async fn job_status(raw_id: &str, reader: Reader<'_>) -> Result<Response<Body>, ApiError> {
    let id = job_id(raw_id, reader.ids)?;
    let (stored, failure, attempts) = tokio::try_join!(
        reader.store.lookup(id),
        reader.failures.failure(id),
        reader.failures.attempts(id)
    )
    .map_err(ApiError::from)?;
    let status = JobStatus::of(
        id,
        stored,
        failure,
        reader.retention,
        reader.clock.now_ms_u64(),
    );
    let mut view = JobView {
        job_id: id.to_string(),
        status: String::new(),
        accepted_at: id.timestamp(),
        deleted_at: None,
        visible_at: super::enqueue::visible_at(id),
        message: None,
        dead_letter: None,
        attempts: attempts.into_iter().map(AttemptView::from).collect(),
    };
    // A job on its way is worth asking about again: a scheduled one once it is visible.
    let retry_after = match status {
        JobStatus::Stored(message) => {
            view.status = "stored".into();
            view.message = Some(message.into());
            None
        }
        JobStatus::Deleted { at_ms } => {
            view.status = "deleted".into();
            view.deleted_at = Some(rfc3339_millis(at_ms));
            None
        }
        JobStatus::Expired => {
            view.status = "expired".into();
            None
        }
        JobStatus::DeadLettered(failure) => {
            view.status = "dead_lettered".into();
            view.dead_letter = Some(failure.into());
            None
        }
        JobStatus::Scheduled { wait } => {
            view.status = "scheduled".into();
            Some(HeaderValue::from(wait.as_millis().div_ceil(1000) as u64))
        }
        JobStatus::Queued => {
            view.status = "queued".into();
            Some(HeaderValue::from_static(RETRY_AFTER_SECS))
        }
        JobStatus::Unknown => return Err(ApiError::JobNotFound(id.to_string())),
    };
    let mut response = json_response(StatusCode::OK, &view);
    if let Some(retry_after) = retry_after {
        response.headers_mut().insert(RETRY_AFTER, retry_after);
    }
    Ok(response)
}

/// GET /stats.
pub async fn stats(operations: &dyn Operations) -> Result<Response<Body>, ApiError> {
    let stats = operations.stats().await.map_err(ApiError::from)?;
    Ok(json_response(StatusCode::OK, &StatsView::from(stats)))
}

/// GET /stats/history?minutes=: the flow, a minute a row, oldest first (60 minutes unless
/// asked).
pub async fn history(
    query: Option<&str>,
    operations: &dyn Operations,
) -> Result<Response<Body>, ApiError> {
    let mut window = HistoryWindow::DEFAULT;
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if key == "minutes" {
            window = HistoryWindow::minutes(&value).map_err(ApiError::BadRequest)?;
        }
    }
    let minutes = operations.history(window).await.map_err(ApiError::from)?;
    Ok(json_response(StatusCode::OK, &HistoryView::from(minutes)))
}

/// GET /dead-letters?limit=&before=: raw dead letters first, then jobs newest first.
pub async fn dead_letters(
    query: Option<&str>,
    operations: &dyn Operations,
) -> Result<Response<Body>, ApiError> {
    let mut limit = DEAD_LETTER_PAGE_DEFAULT;
    let mut before = None;
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match &*key {
            "limit" => {
                limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=DEAD_LETTER_PAGE_MAX).contains(n))
                    .ok_or_else(|| {
                        ApiError::BadRequest(format!(
                            "limit must be a whole number from 1 to {DEAD_LETTER_PAGE_MAX}"
                        ))
                    })?;
            }
            "before" => {
                before = Some(DeadLetterId::parse(&value).ok_or_else(|| {
                    ApiError::BadRequest(
                        "before must be a dead letter's id, as the `next` of the previous page"
                            .into(),
                    )
                })?);
            }
            _ => {}
        }
    }
    let page = operations
        .dead_letters(limit, before)
        .await
        .map_err(ApiError::from)?;
    Ok(json_response(
        StatusCode::OK,
        &DeadLetterPageView {
            dead_letters: page.letters.into_iter().map(FailureView::from).collect(),
            next: page.next.map(|id| id.to_string()),
        },
    ))
}

/// POST /dead-letters/{id}/requeue: the job goes back to the queue under the same id. A raw
/// dead letter is refused: it would only fail again.
#[tracing::instrument(skip_all, fields(dead_letter = %raw_id))]
pub async fn requeue(raw_id: &str, operator: Operator<'_>) -> Result<Response<Body>, ApiError> {
    let id = match dead_letter_id(raw_id, operator.ids)? {
        DeadLetterId::Job(id) => id,
        DeadLetterId::Raw(message_id) => return Err(ApiError::RawNotRequeueable(message_id)),
    };
    let outcome = operator.operations.requeue(id).await;
    answer_for_one(&DeadLetterId::Job(id), outcome, "requeued")
}

/// DELETE /dead-letters/{id}: one dead letter gone for good (the dashboard asks first).
#[tracing::instrument(skip_all, fields(dead_letter = %raw_id))]
pub async fn delete_dead_letter(
    raw_id: &str,
    operator: Operator<'_>,
) -> Result<Response<Body>, ApiError> {
    let id = dead_letter_id(raw_id, operator.ids)?;
    let outcome = operator.operations.delete_dead_letter(id.clone()).await;
    answer_for_one(&id, outcome, "deleted")
}

/// DELETE /messages/{id}: the job's message is gone for good from every read, stored or not
/// yet (a tombstone keeps a later delivery from storing it), and so are its dead letter and
/// failure note. 200 each time: a repeat says `already_deleted` (a client that lost the first
/// answer retries safely). A job this pipeline never issued is a 404.
#[tracing::instrument(skip_all, fields(job_id = %raw_id))]
pub async fn delete_message(
    raw_id: &str,
    operator: Operator<'_>,
) -> Result<Response<Body>, ApiError> {
    let id = job_id(raw_id, operator.ids)?;
    let deletion = operator.store.delete(id).await.map_err(ApiError::from)?;
    // After the tombstone, so that a failure here is retried by the client and the retry
    // (already deleted) erases again.
    operator
        .operations
        .erase(id)
        .await
        .map_err(ApiError::from)?;
    let (at_ms, already_deleted) = match deletion {
        Deletion::Deleted { at_ms } => (at_ms, false),
        Deletion::AlreadyDeleted { at_ms } => (at_ms, true),
    };
    tracing::info!(already_deleted, "message deleted");
    Ok(json_response(
        StatusCode::OK,
        &DeletedView {
            job_id: id.to_string(),
            status: "deleted".into(),
            deleted_at: rfc3339_millis(at_ms),
            already_deleted,
        },
    ))
}

/// The answer to an action on one dead letter: 200 with its id and `field`, or why not.
fn answer_for_one(
    id: &DeadLetterId,
    outcome: PortResult<OneDeadLetter>,
    done: &'static str,
) -> Result<Response<Body>, ApiError> {
    match outcome.map_err(ApiError::from)? {
        OneDeadLetter::Done => {
            tracing::warn!(action = done, "dead letter {done}");
            let requeued = done == "requeued";
            let view = OneDeadLetterView {
                id: id.to_string(),
                status: requeued.then(|| "queued".to_owned()),
                deleted: (!requeued).then_some(true),
            };
            Ok(json_response(StatusCode::OK, &view))
        }
        OneDeadLetter::NotYetDeadLettered => Err(ApiError::NotYetDeadLettered(id.to_string())),
        OneDeadLetter::NotFound => Err(ApiError::NotDeadLettered(id.to_string())),
    }
}

/// POST /dead-letters/requeue-all.
pub async fn requeue_all(operations: &dyn Operations) -> Result<Response<Body>, ApiError> {
    let outcome = operations
        .requeue_all(REQUEUE_ALL_BUDGET)
        .await
        .map_err(ApiError::from)?;
    tracing::info!(
        moved = outcome.moved,
        left = outcome.left,
        done = outcome.done,
        move_task = outcome.move_task.is_some(),
        "dead letters requeued"
    );
    Ok(json_response(
        StatusCode::OK,
        &RequeueAllView::from(outcome),
    ))
}

/// DELETE /dead-letters?confirm=purge: gone for good, so it must be asked for by name.
pub async fn purge(
    query: Option<&str>,
    operations: &dyn Operations,
) -> Result<Response<Body>, ApiError> {
    let confirmed = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .any(|(key, value)| key == "confirm" && value == PURGE_CONFIRMATION);
    if !confirmed {
        return Err(ApiError::BadRequest(format!(
            "purging deletes every dead letter for good: add ?confirm={PURGE_CONFIRMATION} to do it"
        )));
    }
    operations
        .purge_dead_letters()
        .await
        .map_err(ApiError::from)?;
    tracing::warn!("dead-letter queue purged");
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "purged": true }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::domain::{rfc3339_millis, CursorKey, Delay};
    use crate::testing::{body_json, InMemoryFailureLog, InMemoryStore};

    #[tokio::test]
    async fn a_delayed_job_reads_scheduled_until_it_is_visible_then_queued() {
        let (store, failures) = (InMemoryStore::default(), InMemoryFailureLog::default());
        let cursors = CursorKey::random();
        let delayed = crate::testing::test_ids().issue(Delay::from_seconds(600).unwrap());
        let clock = ManualClock::at(delayed.unix_millis() as i64);
        let reader = Reader {
            store: &store,
            cursors: &cursors,
            failures: &failures,
            retention: Duration::from_secs(3600),
            clock: &clock,
            ids: crate::testing::test_ids(),
        };

        let response = job_status(&delayed.to_string(), reader).await.unwrap();
        let body = body_json(&response);
        assert_eq!(body["status"], "scheduled");
        assert_eq!(
            body["visible_at"],
            rfc3339_millis(delayed.visible_at_millis())
        );
        assert_eq!(response.headers()[RETRY_AFTER], "600");

        clock.advance(Duration::from_secs(599));
        let response = job_status(&delayed.to_string(), reader).await.unwrap();
        assert_eq!(body_json(&response)["status"], "scheduled");
        assert_eq!(response.headers()[RETRY_AFTER], "1");

        clock.advance(Duration::from_secs(1));
        let response = job_status(&delayed.to_string(), reader).await.unwrap();
        assert_eq!(body_json(&response)["status"], "queued");

        // Accepted after the delayed job, ten minutes before the clock's now: queued, no delay.
        let plain = crate::testing::test_ids().issue(Delay::NONE);
        let response = job_status(&plain.to_string(), reader).await.unwrap();
        let body = body_json(&response);
        assert_eq!(body["status"], "queued");
        assert!(body.get("visible_at").is_none(), "{body}");
    }
}
