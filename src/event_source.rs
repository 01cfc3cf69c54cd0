//! Lambda's SQS event source mapping, for workers that run outside Lambda (the local runner):
//! pollers receive batches from a [`QueueSource`], hand them to the same consumer code the
//! Lambda runs ([`pipeline::worker::Consumer`]) as an `SqsEvent`, and delete exactly the
//! records it did not report as failed. Failed records come back after the backoff the
//! consumer set (or the visibility timeout); the queue moves a record received more than
//! `maxReceiveCount` times to the dead-letter queue, as SQS does.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use tokio::sync::watch;
use tokio::time::Instant;

use pipeline::ports::{FlowLog, MessageStore, QueueSource};
use pipeline::worker::{Consumer, LastFailureNotes, Retries};

/// How a mapping batches and how many batches it works on at once.
#[derive(Debug, Clone, Copy)]
pub struct MappingSettings {
    /// Most records per batch (Lambda: `BatchSize`).
    pub batch_size: usize,
    /// How long to keep gathering once the first record arrived (Lambda:
    /// `MaximumBatchingWindowInSeconds`, here with millisecond resolution).
    pub batching_window: Duration,
    /// Pollers working in parallel (Lambda: `ScalingConfig.MaximumConcurrency`); 0 runs none.
    pub concurrency: usize,
    /// How long one invocation may take (Lambda: the function's `Timeout`); past it the batch
    /// is abandoned whole, as Lambda does, and comes back after the visibility timeout.
    pub invocation_timeout: Duration,
}

impl Default for MappingSettings {
    fn default() -> Self {
        Self {
            batch_size: 10,
            batching_window: Duration::ZERO,
            concurrency: 2,
            invocation_timeout: Duration::from_secs(30),
        }
    }
}

/// What a mapping has done: Lambda's invocation and record counts, for the stats endpoint
/// and the cost benchmark.
#[derive(Debug, Default)]
pub struct MappingCounts {
    invocations: AtomicU64,
    records: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct MappingTally {
    pub invocations: u64,
    pub records: u64,
}

impl MappingCounts {
    pub fn tally(&self) -> MappingTally {
        MappingTally {
            invocations: self.invocations.load(Ordering::Relaxed),
            records: self.records.load(Ordering::Relaxed),
        }
    }
}

/// How long an idle poller waits for a first record before looking at `shutdown` again.
pub const IDLE_POLL: Duration = Duration::from_secs(1);
/// Pauses after the queue itself failed: short for a blip, doubling up to the maximum while
/// it keeps failing, so a broken backend is not hammered.
const ERROR_PAUSE_MIN: Duration = Duration::from_millis(50);
const ERROR_PAUSE_MAX: Duration = Duration::from_secs(5);

/// What each poller's consumer is made of, as the consumer Lambda's `main` makes it: the
/// store, where dead letters are noted, and how failed records are retried.
#[derive(Debug, Clone)]
pub struct ConsumerParts {
    pub store: Arc<dyn MessageStore>,
    pub notes: Option<LastFailureNotes>,
    pub retries: Option<Retries>,
    /// Where each invocation's flow is kept (the runner's history); in Lambda, EMF is.
    pub flow: Option<Arc<dyn FlowLog>>,
}

impl ConsumerParts {
    /// A consumer that stores and reports failures, and nothing more (tests).
    pub fn storing_in(store: Arc<dyn MessageStore>) -> Self {
        Self {
            store,
            notes: None,
            retries: None,
            flow: None,
        }
    }

    fn consumer(&self) -> Consumer<'_> {
        Consumer::new(&*self.store)
            .noting_last_failures(self.notes.as_ref())
            .retrying(self.retries.as_ref())
            .recording_flow(self.flow.as_deref())
    }
}

/// What a poller does with each batch: receive it, have the consumer handle it, and settle it
/// (delete what was handled, leave the rest to come back).
#[async_trait]
pub trait Batches: Send + Sync + std::fmt::Debug {
    /// Handles the next batch (or batches), gathered as `settings` says, waiting up to
    /// [`IDLE_POLL`] for a first record. Nothing handled when none came.
    async fn handle_next(&self, settings: MappingSettings) -> anyhow::Result<Handled>;
}

/// What [`Batches::handle_next`] handled: invocations of the consumer, and their records.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Handled {
    pub invocations: usize,
    pub records: usize,
}

/// Batches as Lambda's event source mapping handles them over SQS: a receive, the consumer's
/// invocation, a delete of the records it did not report failed; each a call to a port.
#[derive(Debug, Clone)]
pub struct OverPorts {
    pub source: Arc<dyn QueueSource>,
    pub parts: ConsumerParts,
}

#[async_trait]
impl Batches for OverPorts {
    async fn handle_next(&self, settings: MappingSettings) -> anyhow::Result<Handled> {
        let event = gather(&*self.source, settings).await?;
        let records = event.records.len();
        if records == 0 {
            return Ok(Handled::default());
        }
        invoke(&*self.source, self.parts.consumer(), settings, event).await;
        Ok(Handled {
            invocations: 1,
            records,
        })
    }
}

/// Runs the mapping until `shutdown` turns true; batches already being handled finish first.
pub async fn run_mapping(
    batches: Arc<dyn Batches>,
    settings: MappingSettings,
    counts: Arc<MappingCounts>,
    shutdown: watch::Receiver<bool>,
) {
    let pollers: Vec<_> = (0..settings.concurrency)
        .map(|poller| {
            let (batches, shutdown) = (batches.clone(), shutdown.clone());
            tokio::spawn(supervise(
                poller,
                batches,
                settings,
                counts.clone(),
                shutdown,
            ))
        })
        .collect();
    for poller in pollers {
        if let Err(error) = poller.await {
            tracing::error!(%error, "a poller's supervisor stopped abnormally");
        }
    }
}

/// Keeps one poller running: a poller that panics (a bug, not a failed call: those it
/// handles itself) is restarted after a pause that doubles while it keeps panicking, as
/// Lambda's pollers outlive a failing invocation. Its batch in hand comes back after the
/// visibility timeout.
async fn supervise(
    poller: usize,
    batches: Arc<dyn Batches>,
    settings: MappingSettings,
    counts: Arc<MappingCounts>,
    shutdown: watch::Receiver<bool>,
) {
    let mut pause = ERROR_PAUSE_MIN;
    loop {
        let (batches, counts) = (batches.clone(), counts.clone());
        let stop = shutdown.clone();
        let run =
            tokio::spawn(async move { poll(poller, &*batches, settings, &counts, stop).await });
        match run.await {
            Ok(()) => return,
            Err(error) if error.is_panic() => {
                tracing::error!(poller, %error, ?pause, "poller panicked; restarting it");
            }
            Err(error) => {
                tracing::error!(poller, %error, "poller cancelled");
                return;
            }
        }
        if *shutdown.borrow() {
            return;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(ERROR_PAUSE_MAX);
    }
}

async fn poll(
    poller: usize,
    batches: &dyn Batches,
    settings: MappingSettings,
    counts: &MappingCounts,
    shutdown: watch::Receiver<bool>,
) {
    let mut pause = ERROR_PAUSE_MIN;
    while !*shutdown.borrow() {
        // Shutdown is seen between batches, never inside a receive: cancelling one could
        // drop records it had already received, which would then be hidden, and spend a
        // receive each, until the visibility timeout. A receive waits at most IDLE_POLL
        // (plus the batching window), so shutdown waits at most that long.
        match batches.handle_next(settings).await {
            Ok(handled) => {
                pause = ERROR_PAUSE_MIN;
                counts
                    .invocations
                    .fetch_add(handled.invocations as u64, Ordering::Relaxed);
                counts
                    .records
                    .fetch_add(handled.records as u64, Ordering::Relaxed);
            }
            Err(error) => {
                tracing::error!(poller, error = ?error, ?pause, "receive failed");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(ERROR_PAUSE_MAX);
            }
        }
    }
    tracing::debug!(poller, "poller stopped");
}

/// One invocation: the consumer's verdict decides which records are deleted.
///
/// An invocation that outlives `settings.invocation_timeout` is abandoned whole, as Lambda
/// abandons a function that times out: nothing is deleted and every record comes back.
pub async fn invoke(
    source: &dyn QueueSource,
    consumer: Consumer<'_>,
    settings: MappingSettings,
    event: SqsEvent,
) {
    let (ids, receipts): (Vec<Option<String>>, Vec<Option<String>>) = event
        .records
        .iter()
        .map(|r| (r.message_id.clone(), r.receipt_handle.clone()))
        .unzip();
    let records = event.records.len();
    let Ok(response) =
        tokio::time::timeout(settings.invocation_timeout, consumer.consume(event)).await
    else {
        tracing::error!(records, timeout = ?settings.invocation_timeout, "invocation timed out; the whole batch will be retried");
        return;
    };
    let done: Vec<String> = done_records(&ids, &response)
        .into_iter()
        .filter_map(|index| receipts[index].clone())
        .collect();
    if let Err(error) = source.delete(&done).await {
        tracing::warn!(error = ?error, "delete failed; the stored records will be redelivered and rewritten");
    }
}

/// The records of a batch to delete after the consumer's `response`, by their place in the
/// batch (`message_ids`, in order): those it did not report failed, or none when a failure
/// names no record of the batch (Lambda's rule: an empty or unknown identifier fails the whole
/// batch).
pub fn done_records(message_ids: &[Option<String>], response: &SqsBatchResponse) -> Vec<usize> {
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    let named = |id: &str| message_ids.iter().any(|m| m.as_deref() == Some(id));
    if failed.iter().any(|id| id.is_empty() || !named(id)) {
        return Vec::new();
    }
    (0..message_ids.len())
        .filter(|&i| !failed.contains(&message_ids[i].as_deref().unwrap_or_default()))
        .collect()
}

/// Receives until the batch is full or the batching window, counted from the first record,
/// has passed, as Lambda does. An empty event means nothing arrived within the idle poll.
///
/// Records already queued are taken at once, so a burst fills a batch without waiting out
/// the window; when the queue runs dry the poller sleeps until the window ends and looks once
/// more, instead of polling as each record trickles in (on SQS that cost a request a record:
/// see BENCHMARKS.md).
async fn gather(source: &dyn QueueSource, settings: MappingSettings) -> anyhow::Result<SqsEvent> {
    let mut event = SqsEvent::default();
    event.records = source.receive(settings.batch_size, IDLE_POLL).await?;
    if event.records.is_empty() || settings.batching_window.is_zero() {
        return Ok(event);
    }
    let deadline = Instant::now() + settings.batching_window;
    while event.records.len() < settings.batch_size {
        let wanted = settings.batch_size - event.records.len();
        // Records in hand are invoked with, as Lambda does: dropping them would hide them
        // until the visibility timeout and spend one of their receives for nothing.
        let received = match source.receive(wanted, Duration::ZERO).await {
            Ok(received) => received,
            Err(error) => {
                tracing::warn!(error = ?error, records = event.records.len(), "receive failed inside the batching window; invoking with the records in hand");
                break;
            }
        };
        if received.is_empty() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            tokio::time::sleep(deadline - now).await;
            continue;
        }
        event.records.extend(received);
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use aws_lambda_events::event::sqs::SqsMessage;

    use super::*;
    use pipeline::adapters::memory::InMemoryStore;
    use pipeline::domain::{ContentLimit, Message, MessageContent, QueuedMessage};
    use pipeline::ports::PortResult;

    /// A source whose batches are handed in by the test; it records what was deleted.
    #[derive(Debug, Default)]
    struct RecordingSource {
        deleted: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl QueueSource for RecordingSource {
        async fn receive(&self, _max: usize, _wait: Duration) -> PortResult<Vec<SqsMessage>> {
            Ok(Vec::new())
        }

        async fn delete(&self, receipt_handles: &[String]) -> PortResult<()> {
            self.deleted
                .lock()
                .unwrap()
                .extend_from_slice(receipt_handles);
            Ok(())
        }
    }

    fn record(id: Option<&str>, body: &str) -> SqsMessage {
        let mut record = SqsMessage::default();
        record.message_id = id.map(str::to_owned);
        record.receipt_handle = id.map(|id| format!("receipt-{id}"));
        record.body = Some(body.to_owned());
        record
    }

    fn good_body(text: &str) -> String {
        let content = MessageContent::parse(text.into(), ContentLimit::DEFAULT).unwrap();
        QueuedMessage::body_of(&Message::accept(content))
    }

    /// A source that hands out its records at the first receive and fails every later one.
    #[derive(Debug)]
    struct FailsAfterFirstReceive(Mutex<Option<Vec<SqsMessage>>>);

    #[async_trait]
    impl QueueSource for FailsAfterFirstReceive {
        async fn receive(&self, _max: usize, _wait: Duration) -> PortResult<Vec<SqsMessage>> {
            self.0
                .lock()
                .unwrap()
                .take()
                .ok_or_else(|| anyhow::anyhow!("injected: the queue stopped answering").into())
        }

        async fn delete(&self, _receipt_handles: &[String]) -> PortResult<()> {
            Ok(())
        }
    }

    // Dropping them would leave them invisible until the visibility timeout and spend one of
    // their receives for nothing: Lambda invokes with what it has.
    #[tokio::test]
    async fn a_failed_receive_inside_the_window_invokes_with_the_records_already_received() {
        let source = FailsAfterFirstReceive(Mutex::new(Some(vec![
            record(Some("a"), &good_body("a")),
            record(Some("b"), &good_body("b")),
        ])));
        let settings = MappingSettings {
            batch_size: 10,
            batching_window: Duration::from_millis(20),
            ..MappingSettings::default()
        };

        let event = gather(&source, settings).await.unwrap();

        let ids: Vec<_> = event
            .records
            .iter()
            .map(|r| r.message_id.clone().unwrap())
            .collect();
        assert_eq!(ids, ["a", "b"]);
    }

    /// A source whose first receive panics (a bug in a poller); after that it hands out one
    /// batch, then nothing. Deletes are recorded.
    #[derive(Debug)]
    struct PanicsOnce {
        calls: Mutex<usize>,
        batch: Mutex<Option<Vec<SqsMessage>>>,
        recorded: RecordingSource,
    }

    #[async_trait]
    impl QueueSource for PanicsOnce {
        async fn receive(&self, _max: usize, wait: Duration) -> PortResult<Vec<SqsMessage>> {
            let call = {
                let mut calls = self.calls.lock().unwrap();
                *calls += 1;
                *calls
            };
            assert!(call > 1, "injected: a poller bug");
            let batch = self.batch.lock().unwrap().take();
            match batch {
                Some(batch) => Ok(batch),
                None => {
                    tokio::time::sleep(wait).await;
                    Ok(Vec::new())
                }
            }
        }

        async fn delete(&self, receipt_handles: &[String]) -> PortResult<()> {
            self.recorded.delete(receipt_handles).await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_poller_that_panics_is_restarted_and_goes_on_consuming() {
        let source = Arc::new(PanicsOnce {
            calls: Mutex::new(0),
            batch: Mutex::new(Some(vec![record(Some("a"), &good_body("a"))])),
            recorded: RecordingSource::default(),
        });
        let store = Arc::new(InMemoryStore::default());
        let (stop, stopped) = watch::channel(false);
        let settings = MappingSettings {
            concurrency: 1,
            ..MappingSettings::default()
        };
        let batches = OverPorts {
            source: source.clone(),
            parts: ConsumerParts::storing_in(store.clone()),
        };
        let mapping = tokio::spawn(run_mapping(
            Arc::new(batches),
            settings,
            Arc::new(MappingCounts::default()),
            stopped,
        ));

        tokio::time::sleep(Duration::from_secs(30)).await;
        stop.send(true).unwrap();
        mapping.await.unwrap();

        assert_eq!(store.items().len(), 1);
        assert_eq!(*source.recorded.deleted.lock().unwrap(), ["receipt-a"]);
    }

    /// A store whose writes never finish: a stalled backend.
    #[derive(Debug, Default)]
    struct StalledStore;

    #[async_trait]
    impl MessageStore for StalledStore {
        async fn put_batch(
            &self,
            _messages: &[pipeline::domain::Message],
        ) -> Result<(), pipeline::ports::PutBatchError> {
            std::future::pending().await
        }

        async fn lookup(
            &self,
            _id: pipeline::domain::JobId,
        ) -> PortResult<pipeline::domain::Lookup> {
            std::future::pending().await
        }

        async fn delete(
            &self,
            _id: pipeline::domain::JobId,
        ) -> PortResult<pipeline::domain::Deletion> {
            std::future::pending().await
        }

        async fn list(
            &self,
            _limit: pipeline::domain::PageLimit,
            _before: Option<pipeline::domain::JobId>,
        ) -> PortResult<pipeline::domain::Page> {
            std::future::pending().await
        }
    }

    // Lambda ends an invocation at the function's timeout and the whole batch comes back
    // after the visibility timeout; a poller must not wait on a stalled store for ever.
    #[tokio::test(start_paused = true)]
    async fn an_invocation_past_its_timeout_is_abandoned_and_deletes_nothing() {
        let source = RecordingSource::default();
        let mut event = SqsEvent::default();
        event.records = vec![record(Some("a"), &good_body("a"))];
        let settings = MappingSettings {
            invocation_timeout: Duration::from_secs(30),
            ..MappingSettings::default()
        };

        // Paused time runs ahead as soon as every task waits: an hour is instant here.
        tokio::time::timeout(
            Duration::from_secs(3600),
            invoke(&source, Consumer::new(&StalledStore), settings, event),
        )
        .await
        .expect("the invocation was never abandoned");

        assert!(source.deleted.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn deletes_the_stored_records_and_leaves_the_failed_ones_to_come_back() {
        let (source, store) = (RecordingSource::default(), InMemoryStore::default());
        let mut event = SqsEvent::default();
        event.records = vec![
            record(Some("a"), &good_body("a")),
            record(Some("b"), "poison"),
            record(Some("c"), &good_body("c")),
        ];

        invoke(
            &source,
            Consumer::new(&store),
            MappingSettings::default(),
            event,
        )
        .await;

        assert_eq!(*source.deleted.lock().unwrap(), ["receipt-a", "receipt-c"]);
        assert_eq!(store.items().len(), 2);
    }

    #[tokio::test]
    async fn deletes_nothing_when_a_failure_cannot_be_attributed_to_a_record() {
        let (source, store) = (RecordingSource::default(), InMemoryStore::default());
        let mut event = SqsEvent::default();
        event.records = vec![record(Some("a"), &good_body("a")), record(None, "poison")];

        invoke(
            &source,
            Consumer::new(&store),
            MappingSettings::default(),
            event,
        )
        .await;

        assert!(source.deleted.lock().unwrap().is_empty());
    }

    /// Records that become available at set times after the test starts (paused clock),
    /// received as a queue would: whatever is available, up to `max`, waiting up to `wait`
    /// for the first. Counts receives, the billed requests of SQS.
    #[derive(Debug)]
    struct Arrivals {
        start: Instant,
        pending: Mutex<Vec<(Duration, SqsMessage)>>,
        receives: Mutex<usize>,
    }

    impl Arrivals {
        fn new(times_ms: &[u64]) -> Self {
            let pending = times_ms
                .iter()
                .enumerate()
                .map(|(i, ms)| {
                    (
                        Duration::from_millis(*ms),
                        record(Some(&i.to_string()), "x"),
                    )
                })
                .collect();
            Self {
                start: Instant::now(),
                pending: Mutex::new(pending),
                receives: Mutex::new(0),
            }
        }

        fn take(&self, max: usize) -> Vec<SqsMessage> {
            let elapsed = self.start.elapsed();
            let mut pending = self.pending.lock().unwrap();
            let ready = pending.iter().take_while(|(at, _)| *at <= elapsed).count();
            pending.drain(..ready.min(max)).map(|(_, r)| r).collect()
        }
    }

    #[async_trait]
    impl QueueSource for Arrivals {
        async fn receive(&self, max: usize, wait: Duration) -> PortResult<Vec<SqsMessage>> {
            *self.receives.lock().unwrap() += 1;
            let deadline = Instant::now() + wait;
            loop {
                let records = self.take(max);
                if !records.is_empty() || Instant::now() >= deadline {
                    return Ok(records);
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }

        async fn delete(&self, _: &[String]) -> PortResult<()> {
            Ok(())
        }
    }

    fn window(batch_size: usize, window_ms: u64) -> MappingSettings {
        MappingSettings {
            batch_size,
            batching_window: Duration::from_millis(window_ms),
            ..MappingSettings::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_window_a_batch_is_what_the_first_receive_returns() {
        let source = Arrivals::new(&[0, 0, 0, 10]);
        let event = gather(&source, window(10, 0)).await.unwrap();
        assert_eq!(event.records.len(), 3);
        assert_eq!(*source.receives.lock().unwrap(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_fills_the_batch_without_waiting_out_the_window() {
        let source = Arrivals::new(&[0; 30]);
        let started = Instant::now();
        let event = gather(&source, window(25, 500)).await.unwrap();
        assert_eq!(event.records.len(), 25);
        assert!(started.elapsed() < Duration::from_millis(500));
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_is_gathered_at_the_end_of_the_window_not_a_request_a_record() {
        // One record at once, then one every 20 ms: 25 arrive within a 500 ms window.
        let times: Vec<u64> = (0..40).map(|i| i * 20).collect();
        let source = Arrivals::new(&times);
        let started = Instant::now();

        let event = gather(&source, window(100, 500)).await.unwrap();

        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(500) && waited < Duration::from_millis(600));
        assert_eq!(event.records.len(), 26);
        // The first receive, one that found nothing, one at the window's end, one that ends it.
        assert_eq!(*source.receives.lock().unwrap(), 4);
    }
}
