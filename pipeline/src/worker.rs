//! The consumer: turns an SQS batch into stored messages and reports, per record, what failed.
//!
//! Delivery is at least once; the effect is exactly once because a job always becomes the same
//! item (same key, same content), so a redelivered record rewrites what is already there.

use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures::FutureExt as _;

use crate::clock::{Clock, SystemClock};
use crate::domain::{
    truncate_chars, ContentLimit, Failure, JobId, Message, QueuedMessage, PREVIEW_CHARS,
};
use crate::metrics::{self, BatchOutcome, Document};
use crate::ports::{FailureLog, MessageStore};

/// Where and when the consumer notes a job's last failure: the failure log, and the queue's
/// `maxReceiveCount` (a record that fails at that receive count is about to be dead-lettered).
#[derive(Debug, Clone)]
pub struct LastFailureNotes {
    pub log: Arc<dyn FailureLog>,
    pub max_receive_count: u32,
}

/// The SQS consumer: the store it writes, where it notes last failures (none in tests and
/// benchmarks), and the clock their times and its metrics are read on.
#[derive(Debug, Clone, Copy)]
pub struct Consumer<'a> {
    store: &'a dyn MessageStore,
    notes: Option<&'a LastFailureNotes>,
    clock: &'a dyn Clock,
}

/// [`Consumer::consume`] with no failure notes, on the system clock (tests, benchmarks).
pub async fn store_batch(event: SqsEvent, store: &dyn MessageStore) -> SqsBatchResponse {
    Consumer::new(store).consume(event).await
}

impl<'a> Consumer<'a> {
    pub fn new(store: &'a dyn MessageStore) -> Self {
        Self {
            store,
            notes: None,
            clock: &SystemClock,
        }
    }

    /// The same consumer, noting each job's failure at its last receive in `notes`.
    pub fn noting_last_failures(self, notes: Option<&'a LastFailureNotes>) -> Self {
        Self { notes, ..self }
    }

    pub fn on_clock(self, clock: &'a dyn Clock) -> Self {
        Self { clock, ..self }
    }

    /// Stores every decodable record and names the others, plus those the store refused, as
    /// batch item failures: SQS makes exactly those visible again and, after
    /// `maxReceiveCount` receives, moves them to the dead-letter queue. One bad record never
    /// fails the batch.
    ///
    /// A failed record at its last receive is noted (receive count, first receive, the
    /// error), so that its job's status and the dead-letter listing can say why. Earlier
    /// failures and successes write nothing beyond the message itself.
    ///
    /// FIFO records (they carry `MessageGroupId`) are stored in order within their group
    /// ([`waves`]): at the first failure in a group, that record and every later record of
    /// the group are reported failed and the later ones are not attempted. Lambda deletes
    /// every record of a FIFO batch that is not reported, so a later record reported as done
    /// would be stored out of order, or lost to the group's order (Powertools'
    /// `SqsFifoPartialProcessor` does the same). Those records come back behind the failed
    /// one; if it keeps failing, SQS moves them to the dead-letter queue with it (they were
    /// received as often), noted as not attempted.
    ///
    /// Content is decoded against the ceiling, not the configured `MAX_CONTENT_CHARS`: a
    /// message that got its 202 under a higher limit (a rollout in which enqueue updated
    /// first, or a limit lowered while messages wait) is stored, as the read path reads it.
    #[tracing::instrument(skip_all, fields(records = event.records.len()))]
    pub async fn consume(&self, event: SqsEvent) -> SqsBatchResponse {
        let Self {
            store,
            notes,
            clock,
        } = *self;
        let mut failed: Vec<FailedRecord> = Vec::new();
        let mut stored = 0;
        let mut store_latency_ms = 0;
        // FIFO: the groups in which a record failed; their later records are not attempted.
        let mut blocked: HashSet<&str> = HashSet::new();
        for wave in waves(&event.records) {
            let mut attempted = Vec::with_capacity(wave.len());
            for index in wave {
                match group_of(&event.records[index]) {
                    Some(group) if blocked.contains(group) => {
                        failed.push(FailedRecord {
                            index,
                            job: event.records[index]
                                .body
                                .as_deref()
                                .and_then(QueuedMessage::job_id_of),
                            preview: String::new(),
                            reason:
                                "not attempted: an earlier message of its FIFO group failed in \
                                     this batch, and a group is stored in order"
                                    .into(),
                        });
                    }
                    _ => attempted.push(index),
                }
            }
            let before = failed.len();
            let (wave_stored, latency) =
                store_records(&event.records, &attempted, store, &mut failed).await;
            stored += wave_stored;
            store_latency_ms += latency;
            for failure in &failed[before..] {
                if let Some(group) = group_of(&event.records[failure.index]) {
                    blocked.insert(group);
                }
            }
        }
        failed.sort_by_key(|f| f.index);

        let dead_lettered = match notes {
            Some(notes) => note_last_failures(&event.records, &failed, notes, clock).await,
            None => 0,
        };
        tracing::info!(stored, failed = failed.len(), "batch handled");
        let outcome = BatchOutcome {
            records: event.records.len(),
            stored,
            failed: failed.len(),
            dead_lettered,
            store_latency_ms,
        };
        metrics::batch_outcome(Document::for_this_function(clock), outcome).emit();
        let mut response = SqsBatchResponse::default();
        response.set_failures(failed.iter().map(|f| {
            event.records[f.index]
                .message_id
                .clone()
                .unwrap_or_default()
        }));
        response
    }
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
/// how many jobs were stored and how long the store took.
async fn store_records(
    records: &[SqsMessage],
    indexes: &[usize],
    store: &dyn MessageStore,
    failed: &mut Vec<FailedRecord>,
) -> (usize, u64) {
    let limit = ContentLimit::ceiling();
    // Records of the same job (SQS redelivery, or a send retried by the SDK) share one write:
    // a store may refuse a batch that names the same key twice.
    let mut records_by_job: HashMap<JobId, Vec<usize>> = HashMap::new();
    let mut messages: Vec<Message> = Vec::new();

    for (index, record) in indexes.iter().map(|&i| (i, &records[i])) {
        // Lambda treats an empty identifier as "the whole batch failed", the safe reading of a
        // record we cannot name.
        let record_id = record.message_id.as_deref().unwrap_or_default();
        let span =
            tracing::info_span!("record", message_id = %record_id, job_id = tracing::field::Empty);
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
            Err(reason) => {
                // An envelope with a job id but invalid content still names its job, whose
                // status and dead-letter listing should say why.
                let job = record.body.as_deref().and_then(QueuedMessage::job_id_of);
                if let Some(job) = job {
                    span.record("job_id", tracing::field::display(job));
                }
                tracing::warn!(%reason, "record cannot be stored; it will be retried, then dead-lettered");
                failed.push(FailedRecord {
                    index,
                    job,
                    preview: String::new(),
                    reason,
                });
            }
        }
    }

    let started = std::time::Instant::now();
    let (unwritten, cause) = put_guarded(store, &messages).await;
    let latency_ms = started.elapsed().as_millis() as u64;
    // One pass over the batch, not one search of it per refused job: a batch can hold 10,000.
    let unwritten: HashSet<JobId> = unwritten.into_iter().collect();
    for message in messages.iter().filter(|m| unwritten.contains(&m.id)) {
        let preview = truncate_chars(message.content.as_str(), PREVIEW_CHARS);
        for index in records_by_job.remove(&message.id).unwrap_or_default() {
            failed.push(FailedRecord {
                index,
                job: Some(message.id),
                preview: preview.clone(),
                reason: cause.clone(),
            });
        }
    }

    (records_by_job.len(), latency_ms)
}

/// A record that was not stored, and why.
struct FailedRecord {
    index: usize,
    /// The job it names, when it names one.
    job: Option<JobId>,
    preview: String,
    reason: String,
}

/// Notes the failures of records at their last receive; returns how many jobs that is. A
/// note that cannot be written is logged, not retried: the record fails either way, and its
/// job's status then reads `queued` until the queue's retention ends (see the README's
/// job-status section).
async fn note_last_failures(
    records: &[SqsMessage],
    failed: &[FailedRecord],
    notes: &LastFailureNotes,
    clock: &dyn Clock,
) -> usize {
    let now_ms = clock.now_ms_u64();
    let attribute = |record: &SqsMessage, name: &str| -> Option<u64> {
        record.attributes.get(name).and_then(|v| v.parse().ok())
    };
    let mut last: Vec<Failure> = Vec::new();
    for failure in failed {
        let record = &records[failure.index];
        let receive_count = attribute(record, "ApproximateReceiveCount").unwrap_or(1) as u32;
        let Some(job) = failure.job else {
            continue;
        };
        if receive_count < notes.max_receive_count || last.iter().any(|f| f.job_id == job) {
            continue;
        }
        tracing::warn!(job_id = %job, receive_count, "last delivery failed; the job goes to the dead-letter queue");
        last.push(
            Failure {
                job_id: job,
                receive_count,
                first_failure_ms: attribute(record, "ApproximateFirstReceiveTimestamp")
                    .unwrap_or(now_ms),
                last_failure_ms: now_ms,
                last_error: failure.reason.clone(),
                preview: failure.preview.clone(),
            }
            .bounded(),
        );
    }
    if !last.is_empty() {
        if let Err(error) = notes.log.note(&last).await {
            tracing::error!(
                ?error,
                jobs = last.len(),
                "noting the jobs' last failures failed"
            );
        }
    }
    last.len()
}

/// Puts the batch; the jobs that were not stored come back. If the put panics, each message is
/// put on its own so that the panic costs the record that causes it, not its neighbours.
async fn put_guarded(store: &dyn MessageStore, messages: &[Message]) -> (Vec<JobId>, String) {
    if messages.is_empty() {
        return (Vec::new(), String::new());
    }
    match AssertUnwindSafe(store.put_batch(messages))
        .catch_unwind()
        .await
    {
        Ok(Ok(())) => (Vec::new(), String::new()),
        Ok(Err(error)) => {
            tracing::error!(error = ?error.cause, job_ids = ?error.unwritten, "store refused part of the batch");
            (error.unwritten, format!("{:#}", error.cause))
        }
        Err(panic) => {
            tracing::error!(
                panic = panic_text(&*panic),
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
                    Ok(Err(error)) => unwritten.extend(error.unwritten),
                    Err(panic) => {
                        tracing::error!(job_id = %message.id, panic = panic_text(&*panic), "store panicked on this message");
                        unwritten.push(message.id);
                    }
                }
            }
            (
                unwritten,
                format!("the store panicked: {}", panic_text(&*panic)),
            )
        }
    }
}

/// Decoding runs outside the store's control: a panic in it must cost one record, not the batch.
fn decode_guarded(record: &SqsMessage, limit: ContentLimit) -> Result<Message, String> {
    std::panic::catch_unwind(|| {
        let body = record.body.as_deref().ok_or("record has no body")?;
        QueuedMessage::decode(body, limit).map_err(|e| e.to_string())
    })
    .unwrap_or_else(|panic| Err(format!("panicked while decoding: {}", panic_text(&*panic))))
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> &str {
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
    use crate::testing::{InMemoryFailureLog, InMemoryStore};

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

    #[tokio::test]
    async fn a_fifo_record_that_cannot_be_decoded_holds_back_its_group_only() {
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

        assert_eq!(failed_ids(&response), ["1", "2"]);
        assert_eq!(store.written(), ["y1", "y2"]);
        drop(body_x1);
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
        assert_eq!(noted.len(), 2, "{noted:?}");
        let invalid = log.failure_of(unnamed.id).unwrap();
        assert!(
            invalid.last_error.contains("empty"),
            "{}",
            invalid.last_error
        );
        let failure = &log.failure_of(last.id).unwrap();
        assert_eq!(failure.job_id, last.id);
        assert_eq!(failure.receive_count, 3);
        assert_eq!(failure.first_failure_ms, 1_700_000_000_123);
        assert_eq!(failure.last_failure_ms, 1_700_000_009_000);
        assert_eq!(failure.last_error, "injected store failure");
        assert_eq!(failure.preview, "refused at last");
        assert!(log.failure_of(early.id).is_none());
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
}
