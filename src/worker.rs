//! The consumer: turns an SQS batch into stored messages and reports, per record, what failed.
//!
//! Delivery is at least once; the effect is exactly once because a job always becomes the same
//! item (same key, same content), so a redelivered record rewrites what is already there.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures::FutureExt as _;

use crate::domain::{ContentLimit, JobId, Message, QueuedMessage};
use crate::ports::MessageStore;

/// Stores every decodable record and names the others, plus those the store refused, as
/// batch item failures: SQS makes exactly those visible again and, after `maxReceiveCount`
/// receives, moves them to the dead-letter queue. One bad record never fails the batch.
#[tracing::instrument(skip_all, fields(records = event.records.len()))]
///
/// Content is decoded against the ceiling, not the configured `MAX_CONTENT_CHARS`: a message
/// that got its 202 under a higher limit (a rollout in which enqueue updated first, or a
/// limit lowered while messages wait) is stored, as the read path reads it.
pub async fn store_batch(event: SqsEvent, store: &dyn MessageStore) -> SqsBatchResponse {
    let limit = ContentLimit::ceiling();
    let mut failures: Vec<String> = Vec::new();
    // Records of the same job (SQS redelivery, or a send retried by the SDK) share one write:
    // One write a job: a store may refuse a batch that names the same key twice.
    let mut records_by_job: HashMap<JobId, Vec<String>> = HashMap::new();
    let mut messages: Vec<Message> = Vec::new();

    for record in &event.records {
        // Lambda treats an empty identifier as "the whole batch failed", the safe reading of a
        // record we cannot name.
        let record_id = record.message_id.clone().unwrap_or_default();
        match decode_guarded(record, limit) {
            Ok(message) => {
                let records = records_by_job.entry(message.id).or_default();
                if records.is_empty() {
                    messages.push(message);
                }
                records.push(record_id);
            }
            Err(reason) => {
                tracing::warn!(message_id = %record_id, %reason, "record cannot be stored; it will be retried, then dead-lettered");
                failures.push(record_id);
            }
        }
    }

    let unwritten = put_guarded(store, &messages).await;
    for id in unwritten {
        failures.extend(records_by_job.remove(&id).unwrap_or_default());
    }

    tracing::info!(
        stored = records_by_job.len(),
        failed = failures.len(),
        "batch handled"
    );
    let mut response = SqsBatchResponse::default();
    response.set_failures(failures);
    response
}

/// Puts the batch; the jobs that were not stored come back. If the put panics, each message is
/// put on its own so that the panic costs the record that causes it, not its neighbours.
async fn put_guarded(store: &dyn MessageStore, messages: &[Message]) -> Vec<JobId> {
    if messages.is_empty() {
        return Vec::new();
    }
    match AssertUnwindSafe(store.put_batch(messages))
        .catch_unwind()
        .await
    {
        Ok(Ok(())) => Vec::new(),
        Ok(Err(error)) => {
            tracing::error!(error = ?error.cause, unwritten = error.unwritten.len(), "store refused part of the batch");
            error.unwritten
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
            unwritten
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
    use crate::domain::MessageContent;
    use crate::testing::InMemoryStore;

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

    #[tokio::test]
    async fn a_record_without_an_id_fails_the_whole_batch_rather_than_vanish() {
        let store = InMemoryStore::default();
        let mut nameless = record("", "garbage");
        nameless.message_id = None;

        let response = store_batch(event(vec![nameless]), &store).await;

        assert_eq!(failed_ids(&response), [""]);
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
            let path = format!("{}/events/aws-samples/{name}", env!("CARGO_MANIFEST_DIR"));
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
            "/events/sqs-batch.json"
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
