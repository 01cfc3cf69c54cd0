//! The API's answers, one type each: the handlers write them, `pipeline-ctl` reads them, and
//! `openapi.json` describes them (schemathesis checks that the runner answers as described).
//! What the ports return is the backends' business; these are the wire's.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::{rfc3339_millis, Attempt, Failure, FlowMinute, Message};
use crate::ports::{Count, PipelineStats, QueueCounts, RequeueAll};

/// `202` to `POST /messages`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    pub message: String,
    pub job_id: String,
    /// When a delayed job becomes visible to the consumer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visible_at: Option<String>,
}

/// `POST /messages/batch`: one result per message, in request order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchView {
    /// Set when no message was accepted, so that every error answer has `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub accepted: usize,
    pub rejected: usize,
    pub results: Vec<BatchItem>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum BatchItem {
    Queued {
        job_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        visible_at: Option<String>,
    },
    Refused {
        error: String,
    },
}

/// A stored message, as `GET /messages/{id}` and the pages of `GET /messages` give it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageView {
    pub id: String,
    pub content: String,
    pub timestamp: String,
    /// Always present (`{}` when the message has none), so clients need no special case.
    pub attributes: BTreeMap<String, String>,
}

impl From<Message> for MessageView {
    fn from(message: Message) -> Self {
        Self {
            id: message.id.to_string(),
            timestamp: message.id.timestamp(),
            content: message.content.into_string(),
            attributes: message.attributes.into(),
        }
    }
}

/// `GET /messages`: newest first; `next` is the cursor of the following page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageView {
    pub messages: Vec<MessageView>,
    pub next: Option<String>,
}

/// `GET /jobs/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobView {
    pub job_id: String,
    /// `queued`, `scheduled`, `stored`, `dead_lettered`, `deleted` or `expired`.
    pub status: String,
    pub accepted_at: String,
    /// When a deleted job was deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<String>,
    /// When a delayed job becomes (or became) visible to the consumer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visible_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<MessageView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter: Option<FailureView>,
    /// Every failed delivery, oldest first: empty for a job that never failed.
    #[serde(default)]
    pub attempts: Vec<AttemptView>,
}

/// One failed delivery of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptView {
    /// Which delivery (SQS's receive count).
    pub attempt: u32,
    pub at: String,
    /// `transient`, `deployment` or `permanent`.
    pub class: String,
    pub error: String,
}

impl From<Attempt> for AttemptView {
    fn from(attempt: Attempt) -> Self {
        Self {
            attempt: attempt.receive_count,
            at: rfc3339_millis(attempt.at_ms),
            class: attempt.class.to_string(),
            error: attempt.error,
        }
    }
}

/// A dead letter's last failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureView {
    /// What names it in `/dead-letters/{id}`: its job id, or a raw dead letter's message id.
    pub id: String,
    /// `job`, or `raw`: a body that is not an envelope of ours, which cannot be requeued.
    pub kind: String,
    /// Its job; none for a raw dead letter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    pub receive_count: u32,
    pub first_failure_at: String,
    pub last_failure_at: String,
    pub last_error: String,
    pub preview: String,
}

impl From<Failure> for FailureView {
    fn from(f: Failure) -> Self {
        let job_id = f.id.job().map(|id| id.to_string());
        Self {
            id: f.id.to_string(),
            kind: if job_id.is_some() { "job" } else { "raw" }.to_owned(),
            job_id,
            receive_count: f.receive_count,
            first_failure_at: rfc3339_millis(f.first_failure_ms),
            last_failure_at: rfc3339_millis(f.last_failure_ms),
            last_error: f.last_error,
            preview: f.preview,
        }
    }
}

/// `GET /dead-letters`: newest job first; `next` is the `before` of the following page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterPageView {
    pub dead_letters: Vec<FailureView>,
    pub next: Option<String>,
}

/// `DELETE /messages/{id}`: the job's message is deleted, by this call or an earlier one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedView {
    pub job_id: String,
    /// Always `deleted`, as `GET /jobs/{id}` now says.
    pub status: String,
    pub deleted_at: String,
    /// An earlier call deleted it (`deleted_at` is that call's time); this one changed nothing.
    pub already_deleted: bool,
}

/// `POST /dead-letters/{id}/requeue` (`status: queued`) and `DELETE /dead-letters/{id}`
/// (`deleted: true`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OneDeadLetterView {
    /// The dead letter's id: its job id, or a raw dead letter's message id.
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<bool>,
}

/// `GET /stats/history`: a row a minute, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryView {
    pub minutes: Vec<MinuteView>,
}

/// One minute of flow; `null` where nothing is known (no backlog sample, nothing stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinuteView {
    /// The minute's start (UTC).
    pub start: String,
    pub enqueued: u64,
    pub stored: u64,
    pub failed: FailedView,
    pub dead_lettered: u64,
    pub backlog: Option<u64>,
    /// From 202 to stored, of the messages stored in the minute.
    pub latency_ms: LatencyView,
}

/// Records that failed in the minute, by class: retried (transient, deployment) or
/// dead-lettered at once (permanent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedView {
    pub transient: u64,
    pub deployment: u64,
    pub permanent: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencyView {
    pub p50: Option<u64>,
    pub p99: Option<u64>,
}

impl From<Vec<FlowMinute>> for HistoryView {
    fn from(minutes: Vec<FlowMinute>) -> Self {
        let minutes = minutes
            .into_iter()
            .map(|m| MinuteView {
                start: rfc3339_millis(m.start_ms),
                enqueued: m.enqueued,
                stored: m.stored,
                failed: FailedView {
                    transient: m.failed_transient,
                    deployment: m.failed_deployment,
                    permanent: m.failed_permanent,
                },
                dead_lettered: m.dead_lettered,
                backlog: m.backlog,
                latency_ms: LatencyView {
                    p50: m.latency_p50_ms,
                    p99: m.latency_p99_ms,
                },
            })
            .collect();
        Self { minutes }
    }
}

/// `GET /stats`. A count the backend only estimates says so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsView {
    pub queue: QueueCountsView,
    pub dead_letter_queue: CountView,
    pub stored: CountView,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueCountsView {
    pub visible: u64,
    pub in_flight: u64,
    pub delayed: u64,
    pub oldest_age_seconds: Option<u64>,
    pub approximate: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountView {
    pub count: u64,
    pub approximate: bool,
}

impl From<PipelineStats> for StatsView {
    fn from(stats: PipelineStats) -> Self {
        let QueueCounts {
            visible,
            in_flight,
            delayed,
            oldest_age_seconds,
            approximate,
        } = stats.queue;
        let count = |c: Count| CountView {
            count: c.count,
            approximate: c.approximate,
        };
        Self {
            queue: QueueCountsView {
                visible,
                in_flight,
                delayed,
                oldest_age_seconds,
                approximate,
            },
            dead_letter_queue: count(stats.dead_letter_queue),
            stored: count(stats.stored),
        }
    }
}

/// `POST /dead-letters/requeue-all`: call again until `done`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequeueAllView {
    pub moved: u64,
    pub done: bool,
    /// The queue service's own move task, when it runs one (SQS `StartMessageMoveTask`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub move_task: Option<String>,
    /// Raw dead letters left where they are: they are not envelopes of ours and would only
    /// fail again (delete them once their producer is fixed).
    #[serde(default)]
    pub left: u64,
}

impl From<RequeueAll> for RequeueAllView {
    fn from(outcome: RequeueAll) -> Self {
        Self {
            moved: outcome.moved,
            done: outcome.done,
            move_task: outcome.move_task,
            left: outcome.left,
        }
    }
}
