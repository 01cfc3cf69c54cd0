//! The queue contract: SQS's semantics, which the embedded queue must keep. Both run with the
//! test settings: a 1 s visibility timeout, a `maxReceiveCount` of 2.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsMessage;
use message_pipeline::sqlite::{Durability, SqliteDb, SqliteQueue};
use pipeline::clock::ManualClock;
use pipeline::domain::{
    Attributes, ContentLimit, Delay, GroupId, JobId, Message, MessageContent, Outgoing,
    QueuedMessage,
};
use pipeline::ports::{MessageQueue, QueueSettings, QueueSource};

use super::{for_each_backend, remove_db, temp_db_with_clock};
use crate::support::{TestStack, TEST_QUEUE};

pub enum QueueBackend {
    /// The embedded queue on a clock the test moves: no sleeping for visibility timeouts.
    Embedded(Arc<SqliteQueue>, PathBuf, Arc<ManualClock>),
    Aws(TestStack, pipeline::adapters::aws::SqsQueue),
}

impl QueueBackend {
    async fn embedded() -> Self {
        let clock = Arc::new(ManualClock::at_wall_clock_plus(0));
        let (db, path) = temp_db_with_clock(clock.clone());
        Self::Embedded(Arc::new(SqliteQueue::new(db, TEST_QUEUE)), path, clock)
    }

    /// Lets `time` pass: the embedded queue's clock moves, SQS's takes real time.
    async fn pass(&self, time: Duration) {
        match self {
            Self::Embedded(_, _, clock) => clock.advance(time),
            Self::Aws(..) => tokio::time::sleep(time).await,
        }
    }

    async fn aws() -> Self {
        let stack = TestStack::new().await;
        let queue = stack.queue();
        Self::Aws(stack, queue)
    }

    fn queue(&self) -> &dyn MessageQueue {
        match self {
            Self::Embedded(queue, ..) => &**queue,
            Self::Aws(_, queue) => queue,
        }
    }

    fn source(&self) -> &dyn QueueSource {
        match self {
            Self::Embedded(queue, ..) => &**queue,
            Self::Aws(_, queue) => queue,
        }
    }

    async fn dead_lettered(&self) -> usize {
        match self {
            Self::Embedded(queue, ..) => queue.dead_lettered().await.unwrap() as usize,
            Self::Aws(stack, _) => stack.dead_lettered().await,
        }
    }

    async fn teardown(self) {
        match self {
            Self::Embedded(_, path, _) => remove_db(&path),
            Self::Aws(stack, _) => stack.teardown().await,
        }
    }
}

const WAIT: Duration = Duration::from_secs(2);
/// Past the 1 s visibility timeout, with room for a slow machine.
const AFTER_VISIBILITY: Duration = Duration::from_millis(1500);

fn message(text: &str) -> Message {
    Message::accept(MessageContent::parse(text.into(), ContentLimit::DEFAULT).unwrap())
}

fn receive_count(record: &aws_lambda_events::event::sqs::SqsMessage) -> u32 {
    record.attributes["ApproximateReceiveCount"]
        .parse()
        .unwrap()
}

async fn a_sent_message_is_received_as_an_sqs_record(backend: &QueueBackend) {
    let sent = message("contract");
    backend.queue().send(&sent).await.unwrap();

    let records = backend.source().receive(10, WAIT).await.unwrap();

    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert!(record.message_id.is_some() && record.receipt_handle.is_some());
    assert_eq!(receive_count(record), 1);
    let body = record.body.as_deref().unwrap();
    assert_eq!(
        QueuedMessage::decode(body, ContentLimit::DEFAULT).unwrap(),
        sent
    );
}

async fn a_received_message_is_hidden_until_its_visibility_timeout_passes(backend: &QueueBackend) {
    backend.queue().send(&message("hide")).await.unwrap();
    let first = backend.source().receive(10, WAIT).await.unwrap();
    assert_eq!(first.len(), 1);

    let while_hidden = backend.source().receive(10, Duration::ZERO).await.unwrap();
    backend.pass(AFTER_VISIBILITY).await;
    let again = backend.source().receive(10, WAIT).await.unwrap();

    assert!(while_hidden.is_empty());
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].message_id, first[0].message_id);
    assert_ne!(again[0].receipt_handle, first[0].receipt_handle);
    assert_eq!(receive_count(&again[0]), 2);
}

async fn a_deleted_message_never_comes_back(backend: &QueueBackend) {
    backend.queue().send(&message("gone")).await.unwrap();
    let records = backend.source().receive(10, WAIT).await.unwrap();
    let receipts: Vec<String> = records
        .iter()
        .filter_map(|r| r.receipt_handle.clone())
        .collect();

    backend.source().delete(&receipts).await.unwrap();
    backend.pass(AFTER_VISIBILITY).await;

    assert!(backend
        .source()
        .receive(10, Duration::from_secs(1))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(backend.dead_lettered().await, 0);
}

async fn a_message_received_more_than_max_receive_count_times_is_dead_lettered(
    backend: &QueueBackend,
) {
    backend.queue().send(&message("poison")).await.unwrap();
    let mut receives = 0;
    for _ in 0..TEST_QUEUE.max_receive_count + 1 {
        receives += backend.source().receive(10, WAIT).await.unwrap().len();
        backend.pass(AFTER_VISIBILITY).await;
    }

    assert_eq!(receives, TEST_QUEUE.max_receive_count as usize);
    assert_eq!(backend.dead_lettered().await, 1);
    assert!(backend
        .source()
        .receive(10, Duration::ZERO)
        .await
        .unwrap()
        .is_empty());
}

async fn receive_returns_at_most_the_number_asked_for(backend: &QueueBackend) {
    for i in 0..5 {
        backend
            .queue()
            .send(&message(&format!("m{i}")))
            .await
            .unwrap();
    }

    let some = backend.source().receive(3, WAIT).await.unwrap();
    let mut all = some.len();
    for _ in 0..5 {
        if all == 5 {
            break;
        }
        all += backend.source().receive(10, WAIT).await.unwrap().len();
    }

    assert!(!some.is_empty() && some.len() <= 3, "{}", some.len());
    assert_eq!(all, 5);
}

for_each_backend!(QueueBackend [embedded, aws]:
    a_sent_message_is_received_as_an_sqs_record,
    a_received_message_is_hidden_until_its_visibility_timeout_passes,
    a_deleted_message_never_comes_back,
    a_message_received_more_than_max_receive_count_times_is_dead_lettered,
    receive_returns_at_most_the_number_asked_for,
    a_batch_is_sent_at_once_and_every_message_arrives_with_its_attributes,
    a_delayed_message_is_received_only_after_its_delay,
);

/// The wall clock went back while the runner was down (NTP, a laptop's clock fixed): the
/// messages it queued carry later times than the clock now shows. They are received at once,
/// not once the clock has caught up.
#[tokio::test]
async fn after_a_restart_with_the_clock_set_back_queued_messages_are_received_at_once() {
    let an_hour_ahead = Arc::new(ManualClock::at_wall_clock_plus(3_600_000));
    let (db, path) = temp_db_with_clock(an_hour_ahead);
    let before = SqliteQueue::new(db, TEST_QUEUE);
    before
        .send(&message("queued before the step"))
        .await
        .unwrap();
    drop(before);

    let reopened = SqliteDb::open(&path, Durability::Process).unwrap();
    let received = SqliteQueue::new(reopened, TEST_QUEUE)
        .receive(10, Duration::ZERO)
        .await
        .unwrap();

    remove_db(&path);
    assert_eq!(received.len(), 1);
}

/// Visibility is counted on the queue's clock, to the millisecond, whatever the wall clock does.
#[tokio::test]
async fn a_received_message_is_hidden_for_exactly_its_visibility_timeout() {
    let clock = Arc::new(ManualClock::at(1_000_000));
    let (db, path) = temp_db_with_clock(clock.clone());
    let queue = SqliteQueue::new(db, TEST_QUEUE);
    queue.send(&message("timed")).await.unwrap();
    assert_eq!(queue.receive(10, Duration::ZERO).await.unwrap().len(), 1);

    clock.advance(TEST_QUEUE.visibility_timeout - Duration::from_millis(1));
    let still_hidden = queue.receive(10, Duration::ZERO).await.unwrap();
    clock.advance(Duration::from_millis(1));
    let visible = queue.receive(10, Duration::ZERO).await.unwrap();

    remove_db(&path);
    assert!(still_hidden.is_empty());
    assert_eq!(visible.len(), 1);
}

/// A message accepted with `delay` and `attributes`.
fn delayed_message(text: &str, delay_secs: u64, attributes: &[(&str, &str)]) -> Message {
    let attributes = Attributes::parse(
        attributes
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    )
    .unwrap();
    Message::new(
        JobId::scheduled(Delay::from_seconds(delay_secs).unwrap()),
        MessageContent::parse(text.into(), ContentLimit::DEFAULT).unwrap(),
        attributes,
    )
}

/// Up to `n` records, in as many receives as it takes (`tries` at most; SQS answers a
/// receive with some of the messages available, a FIFO queue often with fewer).
async fn receive_all(backend: &QueueBackend, n: usize, tries: usize) -> Vec<SqsMessage> {
    let mut records = Vec::new();
    for _ in 0..tries {
        records.extend(backend.source().receive(10, WAIT).await.unwrap());
        if records.len() >= n {
            break;
        }
    }
    records
}

async fn a_batch_is_sent_at_once_and_every_message_arrives_with_its_attributes(
    backend: &QueueBackend,
) {
    let sent: Vec<Message> = (0..25)
        .map(|i| delayed_message(&format!("b{i}"), 0, &[("index", &i.to_string())]))
        .collect();
    let outgoing: Vec<Outgoing> = sent.iter().cloned().map(Outgoing::from).collect();

    let results = backend.queue().send_batch(&outgoing).await;

    assert_eq!(results.len(), 25);
    assert!(results.iter().all(Result::is_ok));
    let mut received: Vec<Message> = receive_all(backend, 25, 20)
        .await
        .iter()
        .map(|r| QueuedMessage::decode(r.body.as_deref().unwrap(), ContentLimit::DEFAULT).unwrap())
        .collect();
    received.sort_by_key(|m| m.id);
    assert_eq!(received, sent);
}

async fn a_delayed_message_is_received_only_after_its_delay(backend: &QueueBackend) {
    backend
        .queue()
        .send(&delayed_message("later", 2, &[]))
        .await
        .unwrap();

    let early = backend.source().receive(10, Duration::ZERO).await.unwrap();
    backend.pass(Duration::from_millis(2500)).await;
    let late = backend.source().receive(10, WAIT).await.unwrap();

    assert!(early.is_empty());
    assert_eq!(late.len(), 1);
}

/// The FIFO queue of each backend (a long visibility timeout: the tests hold messages in
/// flight on purpose).
pub struct FifoBackend(QueueBackend);

const FIFO_QUEUE: QueueSettings = QueueSettings {
    visibility_timeout: Duration::from_secs(30),
    max_receive_count: 2,
};

impl FifoBackend {
    async fn embedded() -> Self {
        let clock = Arc::new(ManualClock::at_wall_clock_plus(0));
        let (db, path) = temp_db_with_clock(clock.clone());
        let queue = Arc::new(SqliteQueue::fifo(db, FIFO_QUEUE));
        Self(QueueBackend::Embedded(queue, path, clock))
    }

    async fn aws() -> Self {
        let stack = TestStack::fifo(FIFO_QUEUE).await;
        let queue = stack.queue();
        Self(QueueBackend::Aws(stack, queue))
    }

    async fn teardown(self) {
        self.0.teardown().await;
    }
}

fn in_group(text: &str, group: &str) -> Outgoing {
    Outgoing {
        message: message(text),
        group: Some(GroupId::parse(group.into()).unwrap()),
    }
}

fn contents(records: &[SqsMessage]) -> Vec<String> {
    records
        .iter()
        .map(|r| {
            QueuedMessage::decode(r.body.as_deref().unwrap(), ContentLimit::DEFAULT)
                .unwrap()
                .content
                .into_string()
        })
        .collect()
}

async fn a_group_is_received_in_order_and_held_while_one_of_it_is_in_flight(fifo: &FifoBackend) {
    let backend = &fifo.0;
    assert!(backend.queue().is_fifo());
    let sent = [
        in_group("a1", "a"),
        in_group("a2", "a"),
        in_group("b1", "b"),
    ];
    let results = backend.queue().send_batch(&sent).await;
    assert!(results.iter().all(Result::is_ok));

    let first = backend.source().receive(1, WAIT).await.unwrap();
    assert_eq!(contents(&first), ["a1"]);
    assert_eq!(first[0].attributes["MessageGroupId"], "a");
    // a1 is in flight: nothing more of group a until it is deleted.
    let others = receive_all(backend, 1, 5).await;
    assert_eq!(contents(&others), ["b1"]);

    let handles: Vec<String> = first
        .iter()
        .chain(&others)
        .filter_map(|r| r.receipt_handle.clone())
        .collect();
    backend.source().delete(&handles).await.unwrap();
    let next = receive_all(backend, 1, 5).await;
    assert_eq!(contents(&next), ["a2"]);
}

async fn a_job_sent_twice_is_queued_once(fifo: &FifoBackend) {
    let backend = &fifo.0;
    let job = in_group("once", "g");

    backend.queue().send_batch(std::slice::from_ref(&job)).await;
    let again = backend.queue().send_batch(std::slice::from_ref(&job)).await;

    assert!(again[0].is_ok());
    let received = receive_all(backend, 2, 3).await;
    assert_eq!(contents(&received), ["once"]);
    let handles: Vec<String> = received
        .iter()
        .filter_map(|r| r.receipt_handle.clone())
        .collect();
    backend.source().delete(&handles).await.unwrap();
    assert!(backend
        .source()
        .receive(10, Duration::from_secs(1))
        .await
        .unwrap()
        .is_empty());
}

mod fifo {
    use super::*;

    for_each_backend!(FifoBackend [embedded, aws]:
        a_group_is_received_in_order_and_held_while_one_of_it_is_in_flight,
        a_job_sent_twice_is_queued_once,
    );
}
