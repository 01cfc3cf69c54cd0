//! The consumer: turns an SQS batch into stored messages and reports, per record, what failed.
//!
//! Delivery is at least once; the effect is exactly once because a job always becomes the same
//! item (same key, same content), so a redelivered record rewrites what is already there.
//!
//! A record that fails is handled by its class ([`RecordFailure::class`]): one that may pass
//! later is hidden for an exponential backoff ([`RetryPolicy`]) and reported failed, so the
//! queue retries it after the backoff, not after its visibility timeout; one that never can is
//! put in the dead-letter queue at once and reported done.

use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures::FutureExt as _;

use crate::clock::{Clock, SystemClock};
use crate::domain::{
    truncate_chars, Attempt, ContentLimit, DeadLetterId, Failure, FailureClass, JobId, Message,
    QueuedMessage, RecordFailure, RetryPolicy, PREVIEW_CHARS,
};
use crate::metrics::{self, BatchOutcome, Document};
use crate::ports::{FailureLog, FlowLog, MessageStore, Redrive};

/// Where and when the consumer notes a dead letter's last failure: the failure log, and the
/// queue's `maxReceiveCount` (a record that fails at that receive count is about to be
/// dead-lettered).
#[derive(Debug, Clone)]
pub struct LastFailureNotes {
    pub log: Arc<dyn FailureLog>,
    pub max_receive_count: u32,
}

/// How the consumer retries: the queue it changes visibilities on and dead-letters through,
/// the backoff, and the queue's `maxReceiveCount` (a record that fails its last delivery is
/// made visible at once instead: its next receive moves it to the dead-letter queue, and a
/// wait would only delay that, and on FIFO its group).
#[derive(Debug, Clone)]
pub struct Retries {
    pub redrive: Arc<dyn Redrive>,
    pub policy: RetryPolicy,
    pub max_receive_count: u32,
}

/// The SQS consumer: the store it writes, where it notes last failures, how it retries (none
/// in unit tests and benchmarks: failed records are only reported), and the clock their times
/// and its metrics are read on.
#[derive(Debug, Clone, Copy)]
pub struct Consumer<'a> {
    store: &'a dyn MessageStore,
    notes: Option<NotesIn<'a>>,
    retries: Option<RetriesThrough<'a>>,
    flow: Option<&'a dyn FlowLog>,
    clock: &'a dyn Clock,
}

/// [`LastFailureNotes`] as the consumer holds it: borrowed, so that a port that lives only as
/// long as one batch (the runner's ports bound to a batch's transaction) can be one.
#[derive(Debug, Clone, Copy)]
struct NotesIn<'a> {
    log: &'a dyn FailureLog,
    max_receive_count: u32,
}

/// [`Retries`], borrowed likewise.
#[derive(Debug, Clone, Copy)]
struct RetriesThrough<'a> {
    redrive: &'a dyn Redrive,
    policy: RetryPolicy,
    max_receive_count: u32,
}

/// [`Consumer::consume`] with no failure notes and no retries, on the system clock (tests,
/// benchmarks).
pub async fn store_batch(event: SqsEvent, store: &dyn MessageStore) -> SqsBatchResponse {
    Consumer::new(store).consume(event).await
}

impl<'a> Consumer<'a> {
    pub fn new(store: &'a dyn MessageStore) -> Self {
        Self {
            store,
            notes: None,
            retries: None,
            flow: None,
            clock: &SystemClock,
        }
    }

    /// The same consumer, recording each invocation's flow in `flow` (a worker outside
    /// Lambda, where no EMF line is read).
    pub fn recording_flow(self, flow: Option<&'a dyn FlowLog>) -> Self {
        Self { flow, ..self }
    }

    /// The same consumer, noting each dead letter's failure in `notes`.
    pub fn noting_last_failures(self, notes: Option<&'a LastFailureNotes>) -> Self {
        match notes {
            Some(notes) => self.noting_last_failures_in(&*notes.log, notes.max_receive_count),
            None => Self {
                notes: None,
                ..self
            },
        }
    }

    /// The same consumer, noting each dead letter's failure in `log`, which may be borrowed
    /// for one batch.
    pub fn noting_last_failures_in(self, log: &'a dyn FailureLog, max_receive_count: u32) -> Self {
        let notes = NotesIn {
            log,
            max_receive_count,
        };
        Self {
            notes: Some(notes),
            ..self
        }
    }

    /// The same consumer, backing off and dead-letterring as `retries` says.
    pub fn retrying(self, retries: Option<&'a Retries>) -> Self {
        match retries {
            Some(r) => self.retrying_through(&*r.redrive, r.policy, r.max_receive_count),
            None => Self {
                retries: None,
                ..self
            },
        }
    }

    /// The same consumer, backing off and dead-letterring through `redrive`, which may be
    /// borrowed for one batch.
    pub fn retrying_through(
        self,
        redrive: &'a dyn Redrive,
        policy: RetryPolicy,
        max_receive_count: u32,
    ) -> Self {
        let retries = RetriesThrough {
            redrive,
            policy,
            max_receive_count,
        };
        Self {
            retries: Some(retries),
            ..self
        }
    }

    pub fn on_clock(self, clock: &'a dyn Clock) -> Self {
        Self { clock, ..self }
    }

    /// Stores every decodable record and names the others, plus those the store refused, as
    /// batch item failures: SQS makes exactly those visible again and, after
    /// `maxReceiveCount` receives, moves them to the dead-letter queue. One bad record never
    /// fails the batch.
    ///
    /// With [`Retries`], each failure is handled by its class: a record that may pass later
    /// is hidden for its backoff (all of the batch's in one call) and reported failed; one
    /// that never can is put in the dead-letter queue and reported done (if that send fails,
    /// it is backed off and tried again at its next delivery). A batch with no failure makes
    /// no call beyond the store's.
    ///
    /// A dead letter is noted (receive count, first receive, the error and its class): a
    /// record dead-lettered here at once, and a retried one that fails at its last receive,
    /// so that its job's status and the dead-letter listing can say why. Successes and
    /// earlier failures write nothing beyond the message itself.
    ///
    /// FIFO records (they carry `MessageGroupId`) are stored in order within their group
    /// ([`waves`]): at the first retried failure in a group, that record and every later
    /// record of the group are reported failed and the later ones are not attempted. Lambda
    /// deletes every record of a FIFO batch that is not reported, so a later record reported
    /// as done would be stored out of order, or lost to the group's order (Powertools'
    /// `SqsFifoPartialProcessor` does the same). Those records come back behind the failed
    /// one, which keeps its group blocked while it backs off. A permanent failure does not
    /// block its group: it will never be stored, so nothing behind it waits for it.
    ///
    /// Content is decoded against the ceiling, not the configured `MAX_CONTENT_CHARS`: a
    /// message that got its 202 under a higher limit (a rollout in which enqueue updated
    /// first, or a limit lowered while messages wait) is stored, as the read path reads it.
    #[tracing::instrument(skip_all, fields(records = event.records.len()))]
    pub async fn consume(&self, event: SqsEvent) -> SqsBatchResponse {
        let mut failed: Vec<FailedRecord> = Vec::new();
        let mut stored: Vec<JobId> = Vec::new();
        let mut store_latency_ms = 0;
        // FIFO: the groups in which a record failed and will be retried; their later records
        // are not attempted.
        let mut blocked: HashSet<&str> = HashSet::new();
        for wave in waves(&event.records) {
            let mut attempted = Vec::with_capacity(wave.len());
            for index in wave {
                match group_of(&event.records[index]) {
                    Some(group) if blocked.contains(group) => failed.push(FailedRecord {
                        index,
                        job: event.records[index]
                            .body
                            .as_deref()
                            .and_then(QueuedMessage::job_id_of),
                        preview: String::new(),
                        failure: RecordFailure::NotAttempted,
                    }),
                    _ => attempted.push(index),
                }
            }
            let before = failed.len();
            let (wave_stored, latency) =
                store_records(&event.records, &attempted, self.store, &mut failed).await;
            stored.extend(wave_stored);
            store_latency_ms += latency;
            for failure in &failed[before..] {
                if failure.failure.class().is_retried() {
                    if let Some(group) = group_of(&event.records[failure.index]) {
                        blocked.insert(group);
                    }
                }
            }
        }
        failed.sort_by_key(|f| f.index);

        let mut outcome = BatchOutcome {
            records: event.records.len(),
            stored: stored.len(),
            store_latency_ms,
            ..BatchOutcome::default()
        };
        let (moved, retried) = match self.retries {
            Some(retries) => {
                self.redrive(&event.records, failed, retries, &mut outcome)
                    .await
            }
            None => (Vec::new(), failed),
        };
        outcome.failed = retried.len();
        outcome.dead_lettered = match self.notes {
            Some(notes) => {
                let failed = moved.iter().map(|(f, _)| f).chain(&retried);
                note_attempts(&event.records, failed, notes, self.clock).await;
                note_dead_letters(&event.records, &moved, &retried, notes, self.clock).await
            }
            None => 0,
        };
        tracing::info!(
            stored = stored.len(),
            failed = retried.len(),
            dead_lettered = moved.len(),
            "batch handled"
        );
        // From the 202 to stored, by the acceptance time each job id carries.
        let now_ms = self.clock.now_ms_u64();
        let latencies_ms: Vec<u64> = stored
            .iter()
            .map(|id| now_ms.saturating_sub(id.unix_millis()))
            .collect();
        let document = Document::for_this_function(self.clock);
        for document in metrics::batch_documents(document, outcome, &latencies_ms) {
            document.emit();
        }
        if let Some(flow) = self.flow {
            let batch = outcome.flow(now_ms, latencies_ms);
            // The record is for people watching; a batch is handled whether it is kept or not.
            if let Err(error) = flow.record(&batch).await {
                tracing::warn!(%error, "flow not recorded");
            }
        }
        let mut response = SqsBatchResponse::default();
        response.set_failures(retried.iter().map(|f| {
            event.records[f.index]
                .message_id
                .clone()
                .unwrap_or_default()
        }));
        response
    }

    /// Puts the permanent failures in the dead-letter queue and backs off the rest (and
    /// those whose move failed). Returns the moved records (with their dead-letter ids) and
    /// the records to report failed.
    async fn redrive(
        &self,
        records: &[SqsMessage],
        failed: Vec<FailedRecord>,
        retries: RetriesThrough<'_>,
        outcome: &mut BatchOutcome,
    ) -> (Vec<(FailedRecord, DeadLetterId)>, Vec<FailedRecord>) {
        let (permanent, mut retried): (Vec<FailedRecord>, Vec<FailedRecord>) = failed
            .into_iter()
            .partition(|f| f.failure.class() == FailureClass::Permanent);
        let mut moved = Vec::with_capacity(permanent.len());
        if !permanent.is_empty() {
            let copies: Vec<SqsMessage> =
                permanent.iter().map(|f| records[f.index].clone()).collect();
            let results = retries.redrive.dead_letter(&copies).await;
            for (failure, result) in permanent.into_iter().zip(results) {
                match result {
                    Ok(dead_letter_message_id) => {
                        let id = match failure.job {
                            Some(job) => DeadLetterId::Job(job),
                            None => DeadLetterId::Raw(dead_letter_message_id),
                        };
                        tracing::warn!(dead_letter = %id, reason = %failure.failure.reason(), "can never be stored; moved to the dead-letter queue");
                        moved.push((failure, id));
                    }
                    Err(error) => {
                        tracing::error!(%error, "moving a record that can never be stored to the dead-letter queue failed; it is retried");
                        retried.push(failure);
                    }
                }
            }
            retried.sort_by_key(|f| f.index);
        }
        outcome.dead_lettered_at_once = moved.len();
        let mut waits = Vec::with_capacity(retried.len());
        for failure in &retried {
            let record = &records[failure.index];
            let Some(receipt) = record.receipt_handle.clone() else {
                continue;
            };
            let received = receive_count(record);
            let wait = if received >= retries.max_receive_count {
                std::time::Duration::ZERO
            } else {
                retries.policy.backoff(received, fastrand::f64())
            };
            match failure.failure.class() {
                FailureClass::Deployment => outcome.retried_deployment += 1,
                _ => outcome.retried_transient += 1,
            }
            outcome.longest_backoff = outcome.longest_backoff.max(wait);
            waits.push((receipt, wait));
        }
        if !waits.is_empty() {
            if let Err(error) = retries.redrive.back_off(&waits).await {
                tracing::error!(%error, records = waits.len(), "backing off failed records failed; they come back after the visibility timeout");
            }
        }
        (moved, retried)
    }
}

/// A record's `ApproximateReceiveCount` (1 when the event does not say).
fn receive_count(record: &SqsMessage) -> u32 {
    record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// A FIFO record's message group (`MessageGroupId`); none on a standard queue.
fn group_of(record: &SqsMessage) -> Option<&str> {
    record.attributes.get("MessageGroupId").map(String::as_str)
}

/// The order in which records are stored, as waves of record indexes, each wave one store
/// call. Standard queue: one wave. FIFO: wave `k` holds the `k`-th record of every group, so
/// that no record is written before the records ahead of it in its group were, and different
/// groups still share each call (Lambda hands a FIFO function at most 10 records).
fn waves(records: &[SqsMessage]) -> Vec<Vec<usize>> {
    let mut position: HashMap<&str, usize> = HashMap::new();
    let mut waves: Vec<Vec<usize>> = Vec::new();
    for (index, record) in records.iter().enumerate() {
        let wave = match group_of(record) {
            None => 0,
            Some(group) => {
                let next = position.entry(group).or_default();
                *next += 1;
                *next - 1
            }
        };
        if waves.len() <= wave {
            waves.resize_with(wave + 1, Vec::new);
        }
        waves[wave].push(index);
    }
    waves
}

/// Decodes and stores the records at `indexes`; adds those not stored to `failed`. Returns
/// the jobs stored and how long the store took.
async fn store_records(
    records: &[SqsMessage],
    indexes: &[usize],
    store: &dyn MessageStore,
    failed: &mut Vec<FailedRecord>,
) -> (Vec<JobId>, u64) {
    let limit = ContentLimit::ceiling();
    // Records of the same job (SQS redelivery, or a send retried by the SDK) share one write:
    // a store may refuse a batch that names the same key twice.
    let mut records_by_job: HashMap<JobId, Vec<usize>> = HashMap::new();
    let mut messages: Vec<Message> = Vec::new();

    for (index, record) in indexes.iter().map(|&i| (i, &records[i])) {
        // Lambda treats an empty identifier as "the whole batch failed", the safe reading of a
        // record we cannot name.
        let record_id = record.message_id.as_deref().unwrap_or_default();
        // The trace the message was sent in, so that its lines here join the enqueue
        // function's (and API Gateway's) in X-Ray and in the logs.
        let span = tracing::info_span!(
            "record",
            message_id = %record_id,
            job_id = tracing::field::Empty,
            trace_id = tracing::field::Empty,
        );
        if let Some(trace) = trace_root(record) {
            span.record("trace_id", trace);
        }
        let _entered = span.enter();
        match decode_guarded(record, limit) {
            Ok(message) => {
                span.record("job_id", tracing::field::display(message.id));
                let records = records_by_job.entry(message.id).or_default();
                if records.is_empty() {
                    messages.push(message);
                }
                records.push(index);
            }
            Err(failure) => {
                // An envelope with a job id but invalid content still names its job, whose
                // status and dead-letter listing should say why; a body that names none is
                // a raw dead letter, whose preview is the body.
                let body = record.body.as_deref().unwrap_or_default();
                let job = QueuedMessage::job_id_of(body);
                if let Some(job) = job {
                    span.record("job_id", tracing::field::display(job));
                }
                tracing::warn!(reason = %failure.note(), "record cannot be stored");
                failed.push(FailedRecord {
                    index,
                    job,
                    preview: if job.is_some() {
                        String::new()
                    } else {
                        truncate_chars(body, PREVIEW_CHARS)
                    },
                    failure,
                });
            }
        }
    }

    let started = std::time::Instant::now();
    let unwritten = put_guarded(store, &messages).await;
    let latency_ms = started.elapsed().as_millis() as u64;
    // One pass over the batch, not one search of it per refused job: a batch can hold 10,000.
    // Only when something was refused: the common batch allocates nothing for its failures.
    let by_id: HashMap<JobId, &Message> = if unwritten.is_empty() {
        HashMap::new()
    } else {
        messages.iter().map(|m| (m.id, m)).collect()
    };
    for (id, failure) in unwritten {
        let Some(message) = by_id.get(&id) else {
            continue;
        };
        let preview = truncate_chars(message.content.as_str(), PREVIEW_CHARS);
        for index in records_by_job.remove(&id).unwrap_or_default() {
            failed.push(FailedRecord {
                index,
                job: Some(id),
                preview: preview.clone(),
                failure: failure.clone(),
            });
        }
    }

    // Each job's last line when all went well (its failures have their own), in the trace it
    // was sent in.
    for (id, indexes) in &records_by_job {
        match indexes.first().and_then(|&i| trace_root(&records[i])) {
            Some(trace) => tracing::info!(job_id = %id, trace_id = trace, "stored"),
            None => tracing::info!(job_id = %id, "stored"),
        }
    }
    (records_by_job.into_keys().collect(), latency_ms)
}

/// The X-Ray trace a record was sent in: the root of its `AWSTraceHeader` system attribute
/// (`Root=1-...;Parent=...;Sampled=1`), which SQS sets from the sender's trace header (the
/// SDK sends the enqueue function's own).
fn trace_root(record: &SqsMessage) -> Option<&str> {
    record
        .attributes
        .get("AWSTraceHeader")?
        .split(';')
        .find_map(|part| part.trim().strip_prefix("Root="))
}

/// A record that was not stored, and why.
struct FailedRecord {
    index: usize,
    /// The job it names, when it names one.
    job: Option<JobId>,
    preview: String,
    failure: RecordFailure,
}

/// Keeps each failed delivery of a job (not the records a FIFO group held back: they were not
/// tried). A note that cannot be written is logged: the job's retries go on either way.
async fn note_attempts<'f>(
    records: &[SqsMessage],
    failed: impl Iterator<Item = &'f FailedRecord>,
    notes: NotesIn<'_>,
    clock: &dyn Clock,
) {
    let at_ms = clock.now_ms_u64();
    let attempts: Vec<Attempt> = failed
        .filter(|f| !matches!(f.failure, RecordFailure::NotAttempted))
        .filter_map(|f| {
            Some(
                Attempt {
                    job: f.job?,
                    receive_count: receive_count(&records[f.index]),
                    at_ms,
                    class: f.failure.class(),
                    error: f.failure.note(),
                }
                .bounded(),
            )
        })
        .collect();
    if attempts.is_empty() {
        return;
    }
    if let Err(error) = notes.log.note_attempts(&attempts).await {
        tracing::error!(
            ?error,
            attempts = attempts.len(),
            "noting failed attempts failed"
        );
    }
}

/// Notes the dead letters: those moved at once, and retried ones at their last receive (SQS
/// moves them at their next). Returns how many that is. A note that cannot be written is
/// logged, not retried: the record is dead-lettered either way, and its job's status then
/// reads `queued` until the queue's retention ends (see the README's job-status section).
async fn note_dead_letters(
    records: &[SqsMessage],
    moved: &[(FailedRecord, DeadLetterId)],
    retried: &[FailedRecord],
    notes: NotesIn<'_>,
    clock: &dyn Clock,
) -> usize {
    let now_ms = clock.now_ms_u64();
    let mut noted: Vec<Failure> = Vec::new();
    let mut note = |failure: &FailedRecord, id: DeadLetterId| {
        if noted.iter().any(|f| f.id == id) {
            return;
        }
        let record = &records[failure.index];
        let receive_count = receive_count(record);
        tracing::warn!(dead_letter = %id, receive_count, "noted as dead-lettered");
        noted.push(
            Failure {
                id,
                receive_count,
                first_failure_ms: record
                    .attributes
                    .get("ApproximateFirstReceiveTimestamp")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(now_ms),
                last_failure_ms: now_ms,
                last_error: failure.failure.note(),
                preview: failure.preview.clone(),
            }
            .bounded(),
        );
    };
    for (failure, id) in moved {
        note(failure, id.clone());
    }
    for failure in retried {
        let record = &records[failure.index];
        if receive_count(record) < notes.max_receive_count {
            continue;
        }
        // SQS's redrive keeps the message id: a raw body is listed under it.
        let id = match (failure.job, record.message_id.as_deref()) {
            (Some(job), _) => DeadLetterId::Job(job),
            (None, Some(message_id)) => match DeadLetterId::raw(message_id) {
                Some(id) => id,
                None => continue,
            },
            (None, None) => continue,
        };
        note(failure, id);
    }
    if !noted.is_empty() {
        if let Err(error) = notes.log.note(&noted).await {
            tracing::error!(
                ?error,
                dead_letters = noted.len(),
                "noting the dead letters' last failures failed"
            );
        }
    }
    noted.len()
}

/// Puts the batch; the jobs that were not stored come back, each with why. If the put
/// panics, each message is put on its own so that the panic costs the record that causes it,
/// not its neighbours.
async fn put_guarded(
    store: &dyn MessageStore,
    messages: &[Message],
) -> Vec<(JobId, RecordFailure)> {
    if messages.is_empty() {
        return Vec::new();
    }
    let refused = |error: crate::ports::PutBatchError| -> Vec<(JobId, RecordFailure)> {
        error
            .unwritten
            .into_iter()
            .map(|u| {
                let failure = RecordFailure::Refused {
                    class: u.cause.class,
                    cause: format!("{:#}", u.cause),
                };
                (u.id, failure)
            })
            .collect()
    };
    match AssertUnwindSafe(store.put_batch(messages))
        .catch_unwind()
        .await
    {
        Ok(Ok(())) => Vec::new(),
        Ok(Err(error)) => {
            tracing::error!(job_ids = ?error.ids(), error = %error.unwritten.first().map(|u| u.cause.to_string()).unwrap_or_default(), "store refused part of the batch");
            refused(error)
        }
        Err(panic) => {
            let text = panic_text(&*panic).to_owned();
            tracing::error!(
                panic = text,
                "store panicked; putting the batch one message at a time"
            );
            let mut unwritten = Vec::new();
            for message in messages {
                let single = std::slice::from_ref(message);
                match AssertUnwindSafe(store.put_batch(single))
                    .catch_unwind()
                    .await
                {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => unwritten.extend(refused(error)),
                    Err(panic) => {
                        let text = panic_text(&*panic).to_owned();
                        tracing::error!(job_id = %message.id, panic = text, "store panicked on this message");
                        unwritten.push((message.id, RecordFailure::StorePanicked(text)));
                    }
                }
            }
            unwritten
        }
    }
}

/// Decoding runs outside the store's control: a panic in it must cost one record, not the batch.
fn decode_guarded(record: &SqsMessage, limit: ContentLimit) -> Result<Message, RecordFailure> {
    std::panic::catch_unwind(|| {
        let body = record.body.as_deref().ok_or(RecordFailure::NoBody)?;
        QueuedMessage::decode(body, limit).map_err(|e| RecordFailure::of_envelope(&e))
    })
    .unwrap_or_else(|panic| {
        Err(RecordFailure::DecodePanicked(
            panic_text(&*panic).to_owned(),
        ))
    })
}

/// What a caught panic says, for a log line or a record's failure.
pub fn panic_text(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("non-string panic")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::domain::MessageContent;
    use crate::testing::{InMemoryFailureLog, InMemoryRedrive, InMemoryStore};

    fn record(message_id: &str, body: &str) -> SqsMessage {
        let mut record = SqsMessage::default();
        record.message_id = Some(message_id.to_owned());
        record.body = Some(body.to_owned());
        record
    }

    fn job(content: &str) -> (Message, String) {
        let message =
            Message::accept(MessageContent::parse(content.into(), ContentLimit::DEFAULT).unwrap());
        let body = QueuedMessage::body_of(&message);
        (message, body)
    }

    fn event(records: Vec<SqsMessage>) -> SqsEvent {
        let mut event = SqsEvent::default();
        event.records = records;
        event
    }

    fn failed_ids(response: &SqsBatchResponse) -> Vec<&str> {
        let mut ids: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        ids.sort_unstable();
        ids
    }

    #[tokio::test]
    async fn stores_every_record_of_a_good_batch() {
        let store = InMemoryStore::default();
        let (a, body_a) = job("a");
        let (b, body_b) = job("b");

        let response = store_batch(
            event(vec![record("1", &body_a), record("2", &body_b)]),
            &store,
        )
        .await;

        assert!(response.batch_item_failures.is_empty());
        assert_eq!(store.items(), vec![a, b]);
    }

    // A rollout in which enqueue takes a higher MAX_CONTENT_CHARS before the consumer does,
    // or a limit lowered while longer messages wait in the queue: each message got a 202, so
    // it must be stored, not dead-lettered.
    #[tokio::test]
    async fn a_message_accepted_under_a_higher_limit_is_stored_after_the_limit_is_lowered() {
        let store = InMemoryStore::default();
        let accepted_at_8000 = ContentLimit::new(8000).unwrap();
        let long =
            Message::accept(MessageContent::parse("x".repeat(5000), accepted_at_8000).unwrap());
        let body = QueuedMessage::body_of(&long);

        let response = store_batch(event(vec![record("1", &body)]), &store).await;

        assert!(
            failed_ids(&response).is_empty(),
            "{:?}",
            failed_ids(&response)
        );
        assert_eq!(store.items(), vec![long]);
    }

    #[tokio::test]
    async fn redelivered_records_leave_one_item_per_job() {
        let store = InMemoryStore::default();
        let (a, body_a) = job("a");
        let batch = || event(vec![record("1", &body_a), record("2", &body_a)]);

        let first = store_batch(batch(), &store).await;
        let again = store_batch(batch(), &store).await;

        assert!(first.batch_item_failures.is_empty() && again.batch_item_failures.is_empty());
        assert_eq!(store.items(), vec![a]);
        // One store call a batch: the duplicates were merged, not retried one by one.
        assert_eq!(store.put_calls(), 2);
    }

    #[tokio::test]
    async fn a_poison_record_fails_alone() {
        let store = InMemoryStore::default();
        let (a, body_a) = job("a");
        let no_body = {
            let mut r = record("3", "");
            r.body = None;
            r
        };

        let response = store_batch(
            event(vec![
                record("1", "not an envelope"),
                record("2", &body_a),
                no_body,
            ]),
            &store,
        )
        .await;

        assert_eq!(failed_ids(&response), ["1", "3"]);
        assert_eq!(store.items(), vec![a]);
    }

    #[tokio::test]
    async fn records_the_store_refused_are_reported_with_all_their_duplicates() {
        let mut store = InMemoryStore::default();
        store.refuse.insert("refused".into());
        let (kept, body_kept) = job("kept");
        let (_, body_refused) = job("refused");

        let response = store_batch(
            event(vec![
                record("1", &body_refused),
                record("2", &body_kept),
                record("3", &body_refused),
            ]),
            &store,
        )
        .await;

        assert_eq!(failed_ids(&response), ["1", "3"]);
        assert_eq!(store.items(), vec![kept]);
        assert_eq!(store.put_calls(), 1);
    }

    #[tokio::test]
    async fn a_panic_while_storing_one_record_fails_that_record_only() {
        let mut store = InMemoryStore::default();
        store.panic_on = Some("boom".into());
        let (a, body_a) = job("a");
        let (_, body_boom) = job("boom");
        let (c, body_c) = job("c");

        let response = store_batch(
            event(vec![
                record("1", &body_a),
                record("2", &body_boom),
                record("3", &body_c),
            ]),
            &store,
        )
        .await;

        assert_eq!(failed_ids(&response), ["2"]);
        assert_eq!(store.items(), vec![a, c]);
    }

    /// A record of a FIFO queue: it names its message group.
    fn in_group(message_id: &str, body: &str, group: &str) -> SqsMessage {
        let mut record = record(message_id, body);
        record
            .attributes
            .insert("MessageGroupId".into(), group.into());
        record
    }

    #[tokio::test]
    async fn a_fifo_failure_in_the_middle_of_a_batch_keeps_each_groups_order() {
        let mut store = InMemoryStore::default();
        store.refuse.insert("a2".into());
        let bodies: HashMap<&str, String> = ["a1", "a2", "a3", "b1", "b2"]
            .into_iter()
            .map(|c| (c, job(c).1))
            .collect();
        let batch = |names: &[(&str, &str)]| {
            event(
                names
                    .iter()
                    .map(|(id, c)| in_group(id, &bodies[c], &c[..1]))
                    .collect(),
            )
        };

        let first = store_batch(
            batch(&[
                ("1", "a1"),
                ("2", "b1"),
                ("3", "a2"),
                ("4", "b2"),
                ("5", "a3"),
            ]),
            &store,
        )
        .await;

        // a2 failed, so a3 behind it is reported too (Lambda would delete it otherwise) and
        // not written; group b is not held up.
        assert_eq!(failed_ids(&first), ["3", "5"]);
        assert_eq!(store.written(), ["a1", "b1", "b2"]);

        // The fault is fixed; SQS delivers group a again from a2, in order.
        store.refuse.clear();
        let second = store_batch(batch(&[("3", "a2"), ("5", "a3")]), &store).await;

        assert!(failed_ids(&second).is_empty());
        assert_eq!(store.written(), ["a1", "b1", "b2", "a2", "a3"]);
    }

    // It will never be stored, so nothing behind it waits for it.
    #[tokio::test]
    async fn a_fifo_record_that_can_never_be_stored_holds_back_nothing() {
        let store = InMemoryStore::default();
        let (_, body_x1) = job("x1");
        let (_, body_y1) = job("y1");
        let (_, body_y2) = job("y2");

        let response = store_batch(
            event(vec![
                in_group("1", "not an envelope", "x"),
                in_group("2", &body_x1, "x"),
                in_group("3", &body_y1, "y"),
                in_group("4", &body_y2, "y"),
            ]),
            &store,
        )
        .await;

        assert_eq!(failed_ids(&response), ["1"]);
        assert_eq!(store.written(), ["y1", "x1", "y2"]);
    }

    #[tokio::test]
    async fn a_record_without_an_id_fails_the_whole_batch_rather_than_vanish() {
        let store = InMemoryStore::default();
        let mut nameless = record("", "garbage");
        nameless.message_id = None;

        let response = store_batch(event(vec![nameless]), &store).await;

        assert_eq!(failed_ids(&response), [""]);
    }

    fn delivered(message_id: &str, body: &str, receive_count: u32) -> SqsMessage {
        let mut record = record(message_id, body);
        record
            .attributes
            .insert("ApproximateReceiveCount".into(), receive_count.to_string());
        record.attributes.insert(
            "ApproximateFirstReceiveTimestamp".into(),
            "1700000000123".into(),
        );
        record
    }

    #[tokio::test]
    async fn only_a_failure_at_the_last_receive_is_noted_with_its_error_and_preview() {
        let mut store = InMemoryStore::default();
        store.refuse.insert("refused early".into());
        store.refuse.insert("refused at last".into());
        let log = Arc::new(InMemoryFailureLog::default());
        let notes = LastFailureNotes {
            log: log.clone(),
            max_receive_count: 3,
        };
        let clock = ManualClock::at(1_700_000_009_000);
        let (early, body_early) = job("refused early");
        let (last, body_last) = job("refused at last");
        let (stored, body_stored) = job("stored");
        let (unnamed, _) = job("x");
        let empty_content = format!(r#"{{"v":1,"job_id":"{}","content":""}}"#, unnamed.id);

        let response = Consumer::new(&store)
            .noting_last_failures(Some(&notes))
            .on_clock(&clock)
            .consume(event(vec![
                delivered("1", &body_early, 2),
                delivered("2", &body_last, 3),
                delivered("3", &body_stored, 3),
                delivered("4", "not an envelope", 3),
                delivered("5", &empty_content, 3),
            ]))
            .await;

        assert_eq!(failed_ids(&response), ["1", "2", "4", "5"]);
        assert_eq!(store.items(), vec![stored]);
        let noted = log.notes();
        assert_eq!(noted.len(), 3, "{noted:?}");
        // SQS's redrive keeps the message id, which names a raw dead letter.
        let raw = log.failure_of(DeadLetterId::Raw("4".into())).unwrap();
        assert_eq!(raw.preview, "not an envelope");
        assert!(
            raw.last_error.starts_with("permanent"),
            "{}",
            raw.last_error
        );
        let invalid = log.failure_of(unnamed.id).unwrap();
        assert!(
            invalid.last_error.contains("empty"),
            "{}",
            invalid.last_error
        );
        let failure = &log.failure_of(last.id).unwrap();
        assert_eq!(failure.id, DeadLetterId::Job(last.id));
        assert_eq!(failure.receive_count, 3);
        assert_eq!(failure.first_failure_ms, 1_700_000_000_123);
        assert_eq!(failure.last_failure_ms, 1_700_000_009_000);
        assert_eq!(
            failure.last_error,
            "transient (retried with backoff): injected store failure"
        );
        assert_eq!(failure.preview, "refused at last");
        assert!(log.failure_of(early.id).is_none());
    }

    #[test]
    fn a_record_names_the_trace_it_was_sent_in() {
        let mut sent = record("1", "{}");
        sent.attributes.insert(
            "AWSTraceHeader".into(),
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1".into(),
        );
        assert_eq!(
            trace_root(&sent),
            Some("1-5759e988-bd862e3fe1be46a994272793")
        );
        assert_eq!(trace_root(&record("2", "{}")), None);
    }

    #[tokio::test]
    async fn every_failed_delivery_of_a_job_is_kept_not_only_the_last() {
        let mut store = InMemoryStore::default();
        store.refuse.insert("refused".into());
        let log = Arc::new(InMemoryFailureLog::default());
        let notes = LastFailureNotes {
            log: log.clone(),
            max_receive_count: 5,
        };
        let clock = ManualClock::at(1_700_000_000_000);
        let (refused, body) = job("refused");
        let (stored, body_stored) = job("stored");
        let (invalid, _) = job("x");
        let empty = format!(r#"{{"v":1,"job_id":"{}","content":""}}"#, invalid.id);
        let consumer = Consumer::new(&store)
            .noting_last_failures(Some(&notes))
            .on_clock(&clock);

        consumer
            .consume(event(vec![
                delivered("1", &body, 1),
                delivered("2", &body_stored, 1),
                delivered("3", &empty, 1),
                delivered("4", "not an envelope, names no job", 1),
            ]))
            .await;
        clock.advance(std::time::Duration::from_secs(30));
        consumer
            .consume(event(vec![delivered("1", &body, 2)]))
            .await;

        let attempts = log.attempts(refused.id).await.unwrap();
        let seen: Vec<(u32, u64, FailureClass)> = attempts
            .iter()
            .map(|a| (a.receive_count, a.at_ms, a.class))
            .collect();
        assert_eq!(
            seen,
            [
                (1, 1_700_000_000_000, FailureClass::Transient),
                (2, 1_700_000_030_000, FailureClass::Transient),
            ]
        );
        assert_eq!(
            attempts[0].error,
            "transient (retried with backoff): injected store failure"
        );
        // The invalid job's one delivery (dead-lettered at once); a stored job has none.
        let invalid = log.attempts(invalid.id).await.unwrap();
        assert_eq!(invalid.len(), 1, "{invalid:?}");
        assert_eq!(invalid[0].class, FailureClass::Permanent);
        assert!(log.attempts(stored.id).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_failure_log_that_fails_leaves_the_records_failed_and_nothing_else_changed() {
        let mut store = InMemoryStore::default();
        store.refuse.insert("refused".into());
        let log = Arc::new(InMemoryFailureLog::failing());
        let (_, body) = job("refused");
        let notes = LastFailureNotes {
            log: log.clone(),
            max_receive_count: 1,
        };

        let response = Consumer::new(&store)
            .noting_last_failures(Some(&notes))
            .consume(event(vec![delivered("1", &body, 1)]))
            .await;

        assert_eq!(failed_ids(&response), ["1"]);
        assert!(log.notes().is_empty());
    }

    #[tokio::test]
    async fn an_empty_batch_touches_nothing() {
        let store = InMemoryStore::default();
        let response = store_batch(event(vec![]), &store).await;
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(store.put_calls(), 0);
    }

    #[tokio::test]
    async fn the_aws_sample_sqs_events_fail_their_records_which_are_not_envelopes() {
        for name in ["example-sqs-event.json", "example-sqs-event-obj.json"] {
            let path = format!(
                "{}/../events/aws-samples/{name}",
                env!("CARGO_MANIFEST_DIR")
            );
            let event: SqsEvent =
                serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
            let ids: Vec<String> = event
                .records
                .iter()
                .map(|r| r.message_id.clone().unwrap())
                .collect();
            let store = InMemoryStore::default();

            let response = store_batch(event, &store).await;

            assert_eq!(failed_ids(&response), ids, "{name}");
            assert!(store.items().is_empty(), "{name}");
        }
    }

    #[tokio::test]
    async fn the_sample_event_in_events_stores_two_and_fails_the_poison_record() {
        let sample = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../events/sqs-batch.json"
        ));
        let event: SqsEvent = serde_json::from_str(sample).unwrap();
        let store = InMemoryStore::default();

        let response = store_batch(event, &store).await;

        assert_eq!(
            failed_ids(&response),
            ["33333333-3333-4333-8333-333333333333"]
        );
        assert_eq!(store.items().len(), 2);
    }

    fn retrying(redrive: &Arc<InMemoryRedrive>) -> Retries {
        Retries {
            redrive: redrive.clone(),
            policy: RetryPolicy::new(10, 100).unwrap(),
            max_receive_count: 8,
        }
    }

    fn received(message_id: &str, body: &str, receive_count: u32) -> SqsMessage {
        let mut record = delivered(message_id, body, receive_count);
        record.receipt_handle = Some(format!("receipt-{message_id}"));
        record
    }

    #[tokio::test]
    async fn transient_failures_back_off_in_one_call_by_their_receive_counts() {
        let mut store = InMemoryStore::default();
        store.refuse.insert("throttled".into());
        let redrive = Arc::new(InMemoryRedrive::default());
        let retries = retrying(&redrive);
        let (_, body) = job("throttled");
        let (_, other) = job("throttled");
        let (stored, body_stored) = job("fine");

        let response = Consumer::new(&store)
            .retrying(Some(&retries))
            .consume(event(vec![
                received("1", &body, 1),
                received("2", &other, 4),
                received("3", &body_stored, 1),
            ]))
            .await;

        assert_eq!(failed_ids(&response), ["1", "2"]);
        assert_eq!(store.items(), vec![stored]);
        let calls = redrive.backoff_calls();
        assert_eq!(calls.len(), 1, "{calls:?}");
        let waits: HashMap<&str, u64> = calls[0]
            .iter()
            .map(|(receipt, wait)| (receipt.as_str(), wait.as_secs()))
            .collect();
        // min(10 × 2^(n−1), 100) s, jittered in its upper half.
        assert!((5..=10).contains(&waits["receipt-1"]), "{waits:?}");
        assert!((40..=80).contains(&waits["receipt-2"]), "{waits:?}");
        assert_eq!(waits.len(), 2);
        assert!(redrive.dead_letters().is_empty());
    }

    // Its next receive moves it to the dead-letter queue: a wait would only delay that.
    #[tokio::test]
    async fn a_record_that_fails_its_last_delivery_is_made_visible_at_once() {
        let mut store = InMemoryStore::default();
        store.refuse.insert("throttled".into());
        let redrive = Arc::new(InMemoryRedrive::default());
        let retries = retrying(&redrive);
        let (_, body) = job("throttled");

        let response = Consumer::new(&store)
            .retrying(Some(&retries))
            .consume(event(vec![
                received("1", &body, 8),
                received("2", &body, 7),
            ]))
            .await;

        assert_eq!(failed_ids(&response), ["1", "2"]);
        let waits: HashMap<String, u64> = redrive.backoff_calls()[0]
            .iter()
            .map(|(receipt, wait)| (receipt.clone(), wait.as_secs()))
            .collect();
        assert_eq!(waits["receipt-1"], 0);
        assert!(waits["receipt-2"] >= 50, "{waits:?}");
    }

    #[tokio::test]
    async fn a_batch_with_no_failure_makes_no_call_beyond_the_store() {
        let store = InMemoryStore::default();
        let redrive = Arc::new(InMemoryRedrive::default());
        let retries = retrying(&redrive);
        let (_, body) = job("fine");

        let response = Consumer::new(&store)
            .retrying(Some(&retries))
            .consume(event(vec![received("1", &body, 1)]))
            .await;

        assert!(response.batch_item_failures.is_empty());
        assert!(redrive.backoff_calls().is_empty());
        assert!(redrive.dead_letters().is_empty());
    }

    #[tokio::test]
    async fn a_record_that_can_never_be_stored_is_dead_lettered_at_once_and_noted() {
        let store = InMemoryStore::default();
        let redrive = Arc::new(InMemoryRedrive::default());
        let retries = retrying(&redrive);
        let log = Arc::new(InMemoryFailureLog::default());
        let notes = LastFailureNotes {
            log: log.clone(),
            max_receive_count: 8,
        };
        let (invalid, _) = job("x");
        let blank = format!(r#"{{"v":1,"job_id":"{}","content":"  "}}"#, invalid.id);
        let (stored, body_stored) = job("fine");

        let response = Consumer::new(&store)
            .noting_last_failures(Some(&notes))
            .retrying(Some(&retries))
            .consume(event(vec![
                received("1", "hello raw", 1),
                received("2", &blank, 1),
                received("3", &body_stored, 1),
            ]))
            .await;

        // Reported done: the event source deletes them from the queue, after the copy.
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(store.items(), vec![stored]);
        let moved: Vec<Option<String>> =
            redrive.dead_letters().into_iter().map(|r| r.body).collect();
        assert_eq!(moved, [Some("hello raw".to_owned()), Some(blank.clone())]);
        assert!(redrive.backoff_calls().is_empty());
        // The raw body is listed under its id in the dead-letter queue, with its preview.
        let raw = log.failure_of(DeadLetterId::Raw("dead-1".into())).unwrap();
        assert_eq!(raw.preview, "hello raw");
        assert_eq!(raw.receive_count, 1);
        assert!(
            raw.last_error.starts_with("permanent (no retry can help; dead-lettered at once): body is not a message envelope"),
            "{}",
            raw.last_error
        );
        let job_note = log.failure_of(invalid.id).unwrap();
        assert!(
            job_note.last_error.starts_with("permanent"),
            "{}",
            job_note.last_error
        );
    }

    #[tokio::test]
    async fn a_job_stored_with_other_content_is_dead_lettered_at_once() {
        let (original, _) = job("original");
        let store = InMemoryStore::with(vec![original.clone()]);
        let forged = Message::new(
            original.id,
            MessageContent::parse("forged".into(), ContentLimit::DEFAULT).unwrap(),
            Default::default(),
        );
        let redrive = Arc::new(InMemoryRedrive::default());
        let retries = retrying(&redrive);

        let response = Consumer::new(&store)
            .retrying(Some(&retries))
            .consume(event(vec![received(
                "1",
                &QueuedMessage::body_of(&forged),
                1,
            )]))
            .await;

        assert!(response.batch_item_failures.is_empty());
        assert_eq!(redrive.dead_letters().len(), 1);
        assert_eq!(store.items(), vec![original]);
    }

    #[tokio::test]
    async fn a_permanent_failure_whose_move_fails_is_backed_off_and_reported() {
        let store = InMemoryStore::default();
        let redrive = Arc::new(InMemoryRedrive::refusing_dead_letters());
        let retries = retrying(&redrive);

        let response = Consumer::new(&store)
            .retrying(Some(&retries))
            .consume(event(vec![received("1", "hello raw", 2)]))
            .await;

        assert_eq!(failed_ids(&response), ["1"]);
        assert_eq!(redrive.backoff_calls().len(), 1);
    }

    #[tokio::test]
    async fn a_failed_backoff_call_still_reports_the_records_failed() {
        let mut store = InMemoryStore::default();
        store.refuse.insert("throttled".into());
        let redrive = Arc::new(InMemoryRedrive::refusing_backoffs());
        let retries = retrying(&redrive);
        let (_, body) = job("throttled");

        let response = Consumer::new(&store)
            .retrying(Some(&retries))
            .consume(event(vec![received("1", &body, 1)]))
            .await;

        assert_eq!(failed_ids(&response), ["1"]);
    }

    #[tokio::test]
    async fn on_fifo_a_backed_off_record_keeps_its_group_behind_it_and_poison_does_not() {
        let mut store = InMemoryStore::default();
        store.refuse.insert("a1".into());
        let redrive = Arc::new(InMemoryRedrive::default());
        let retries = retrying(&redrive);
        let (_, a1) = job("a1");
        let (_, a2) = job("a2");
        let (_, b2) = job("b2");
        let grouped = |id: &str, body: &str, group: &str| {
            let mut record = received(id, body, 1);
            record
                .attributes
                .insert("MessageGroupId".into(), group.into());
            record
        };

        let response = Consumer::new(&store)
            .retrying(Some(&retries))
            .consume(event(vec![
                grouped("1", &a1, "a"),
                grouped("2", &a2, "a"),
                grouped("3", "poison", "b"),
                grouped("4", &b2, "b"),
            ]))
            .await;

        // a1 backs off and a2 waits behind it; the poison in b leaves, and b2 is stored.
        assert_eq!(failed_ids(&response), ["1", "2"]);
        assert_eq!(store.written(), ["b2"]);
        let backed_off: Vec<String> = redrive.backoff_calls()[0]
            .iter()
            .map(|(receipt, _)| receipt.clone())
            .collect();
        assert_eq!(backed_off, ["receipt-1", "receipt-2"]);
        assert_eq!(redrive.dead_letters().len(), 1);
    }
}
