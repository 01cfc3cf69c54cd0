//! The consumer's batch in one transaction, on the embedded backend: received, stored and
//! settled together.
//!
//! Over SQS a batch is three calls: the mapping's receive, the consumer's write, the
//! mapping's delete. Made as the same calls on one SQLite file, a batch was two write
//! transactions and two hand-offs to the blocking pool, and the drain ran at 0.29 of what
//! moving the same rows one transaction a batch allows (BENCHMARKS.md, "The runner against
//! this machine's limit"). Here the whole batch is one transaction on the writer, in one
//! blocking call: take the due rows, run the consumer on them, delete what it stored, mark
//! the rest received. A row that is stored and deleted in the same transaction is never
//! written as received.
//!
//! The consumer is the Lambda's own ([`Consumer`]), over ports bound to the transaction
//! ([`InBatch`]): its store writes, failure notes, backoffs and dead-letter moves are
//! statements of the batch's transaction, and nothing in them waits, so the consumer's future
//! is complete when first polled. All of a batch commits or none of it: a kill before the
//! commit leaves the batch queued as it was, as if it had never been received. With nothing
//! waiting, the invocation timeout has nothing to end.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::anyhow;
use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use futures::FutureExt as _;
use rusqlite::{params, Connection};
use tokio::time::Instant;

use super::db::{lock, SqliteDb};
use super::{flow, operations, store, SqliteQueue, SqliteStore};
use crate::event_source::{done_records, Batches, Handled, MappingSettings, IDLE_POLL};
use pipeline::domain::{
    Attempt, BatchFlow, Deletion, Failure, JobId, Lookup, Message, MessageRetention, Page,
    PageLimit, RetryPolicy,
};
use pipeline::ports::{
    FailureLog, FlowLog, MessageStore, PortError, PortResult, PutBatchError, Redrive,
};
use pipeline::worker::{panic_text, Consumer};

/// The runner's consumer on its embedded queue: each batch one transaction.
#[derive(Debug, Clone)]
pub struct BatchInOneTransaction {
    queue: Arc<SqliteQueue>,
    retention: MessageRetention,
    policy: RetryPolicy,
}

impl BatchInOneTransaction {
    /// Batches of `queue`'s messages, stored as `store` stores them and retried by `policy`.
    pub fn new(queue: Arc<SqliteQueue>, store: &SqliteStore, policy: RetryPolicy) -> Self {
        Self {
            queue,
            retention: store.retention,
            policy,
        }
    }

    /// One try, in its own transaction on `conn` (the writer): takes the due rows and, when
    /// there are at least `least` of them (a batching window waits for a full batch), handles
    /// them. A panic in it is an error, and the transaction is rolled back.
    pub(super) fn handle_in_transaction(
        &self,
        conn: &mut Connection,
        max: usize,
        least: usize,
    ) -> anyhow::Result<Tried> {
        let mut taken = Vec::new();
        let tried = in_transaction(conn, |conn| self.handle(conn, max, least, &mut taken));
        if let (Err(error), false) = (&tried, taken.is_empty()) {
            // As Lambda after an invocation that failed: every record comes back after the
            // visibility timeout with a receive spent, so that a batch that always fails
            // reaches the dead-letter queue instead of being taken again for ever.
            tracing::error!(
                ?error,
                records = taken.len(),
                "a batch failed; its records come back after the visibility timeout"
            );
            in_transaction(conn, |conn| self.spend_a_receive(conn, &taken))?;
        }
        tried
    }

    /// Marks rows received once more and hides them for the visibility timeout.
    fn spend_a_receive(&self, conn: &mut Connection, seqs: &[i64]) -> anyhow::Result<()> {
        let now = self.queue.db.clock.now_ms();
        let visibility = self.queue.settings.visibility_timeout;
        for &seq in seqs {
            mark_received(conn, seq, now, visibility)?;
        }
        Ok(())
    }

    /// Takes the due rows (their `seq`s into `taken`) and handles them.
    fn handle(
        &self,
        conn: &mut Connection,
        max: usize,
        least: usize,
        taken: &mut Vec<i64>,
    ) -> anyhow::Result<Tried> {
        let queue = &*self.queue;
        let db = &*queue.db;
        let now = db.clock.now_ms();
        let max_receives = queue.settings.max_receive_count;
        let due = super::queue::take_due(conn, queue.fifo, now, max, i64::from(max_receives))?;
        if due.is_empty() || due.len() < least {
            return Ok(Tried::Waiting { due: due.len() });
        }
        let mut event = SqsEvent::default();
        for row in due {
            taken.push(row.seq);
            // The receipt is the row: the batch's ports find it by it, within this transaction.
            let receipt = row.seq.to_string();
            event.records.push(row.received(receipt, now));
        }
        let ids: Vec<Option<String>> = event.records.iter().map(|r| r.message_id.clone()).collect();
        let ports = InBatch {
            conn: Mutex::new(conn),
            db,
            retention: self.retention,
            now,
            settling: Mutex::default(),
        };
        let consumer = Consumer::new(&ports)
            .noting_last_failures_in(&ports, max_receives)
            .retrying_through(&ports, self.policy, max_receives)
            .recording_flow(Some(&ports))
            .on_clock(&*db.clock);
        let response = consumer
            .consume(event)
            .now_or_never()
            .ok_or_else(|| anyhow!("a port of the batch's transaction waited"))?;
        let done: HashSet<usize> = done_records(&ids, &response).into_iter().collect();
        let Settling { waits, moved } = std::mem::take(&mut *lock(&ports.settling));
        let conn = ports.conn.into_inner().unwrap_or_else(|p| p.into_inner());
        let visibility = queue.settings.visibility_timeout;
        let mut removed = moved.len();
        for (index, seq) in taken.iter().enumerate() {
            if moved.contains(seq) {
                continue;
            }
            if done.contains(&index) {
                removed += conn
                    .prepare_cached("DELETE FROM queue WHERE seq = ?1")?
                    .execute([seq])?;
                continue;
            }
            // Reported failed: received, as a receive over SQS leaves it, and hidden until its
            // backoff ends (the consumer set it) or else the visibility timeout.
            let hidden = waits.get(seq).copied().unwrap_or(visibility);
            mark_received(conn, *seq, now, hidden)?;
        }
        super::db::add_to_counter(conn, "queued", -(removed as i64))?;
        Ok(Tried::Handled(taken.len()))
    }
}

/// Marks a row received at `now` (one receive more, its first receive kept) and hides it
/// for `hidden`, as a receive over SQS leaves a record that is not deleted.
fn mark_received(conn: &Connection, seq: i64, now: i64, hidden: Duration) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE queue SET receive_count = receive_count + 1, visible_at_ms = ?1,
         first_received_ms = coalesce(first_received_ms, ?2) WHERE seq = ?3",
    )?
    .execute(params![now + hidden.as_millis() as i64, now, seq])
    .map(|_| ())
}

/// What one try did.
pub(super) enum Tried {
    Handled(usize),
    Waiting { due: usize },
}

/// How long a consumer's turn on the writer lasts at most: then the poller sees shutdown,
/// and its counts move on.
const TURN: Duration = Duration::from_millis(100);

#[async_trait]
impl Batches for BatchInOneTransaction {
    /// As [`crate::event_source::OverPorts`] gathers: what is due at once, or with a batching
    /// window a full batch, or what is due when the window, counted from the first record
    /// seen, ends. Then batch after batch on the writer thread, while records are due, for
    /// up to a [`TURN`].
    async fn handle_next(&self, settings: MappingSettings) -> anyhow::Result<Handled> {
        let max = settings.batch_size.max(1);
        let windowed = !settings.batching_window.is_zero();
        let idle_until = Instant::now() + IDLE_POLL;
        let mut window_ends: Option<Instant> = None;
        loop {
            // Registered before looking, so a send that lands in between still wakes us.
            let arrived = self.queue.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            let now = Instant::now();
            let least = match window_ends {
                _ if !windowed => 1,
                Some(ends) if now >= ends => 1,
                _ => max,
            };
            let later_least = if windowed { max } else { 1 };
            let drained = self
                .queue
                .drain(self.clone(), max, (least, later_least), TURN)
                .await?;
            if drained.batches > 0 {
                return Ok(Handled {
                    invocations: drained.batches,
                    records: drained.records,
                });
            }
            if drained.due > 0 && window_ends.is_none() {
                window_ends = Some(now + settings.batching_window);
            }
            let until = match window_ends {
                Some(ends) if now < ends => ends,
                // The window ended and nothing was taken: another poller took the rows.
                Some(_) => return Ok(Handled::default()),
                None if now >= idle_until => return Ok(Handled::default()),
                None => idle_until,
            };
            // Also wake now and then: hidden messages become visible without a send.
            let nap = until
                .saturating_duration_since(now)
                .min(Duration::from_millis(100));
            let _ = tokio::time::timeout(nap, arrived).await;
        }
    }
}

/// Runs `work` in a write transaction on `conn`: committed if it returns `Ok`, rolled back if
/// it fails or panics (the writer thread it runs on goes on). By hand, not with a
/// `rusqlite::Transaction`: the batch's ports hold the connection itself, and must be `Sync`.
fn in_transaction<T>(
    conn: &mut Connection,
    work: impl FnOnce(&mut Connection) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
    let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(conn)));
    let outcome = match done {
        Ok(Ok(value)) => conn
            .prepare_cached("COMMIT")
            .and_then(|mut commit| commit.execute([]))
            .map(|_| value)
            .map_err(anyhow::Error::from),
        Ok(Err(error)) => Err(error),
        Err(panic) => Err(anyhow!("the consumer panicked: {}", panic_text(&*panic))),
    };
    if outcome.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    outcome
}

/// The ports of one batch, bound to its transaction: the consumer's writes are statements in
/// it, and its backoffs and dead-letter moves are noted for the settling.
#[derive(Debug)]
struct InBatch<'c> {
    conn: Mutex<&'c mut Connection>,
    db: &'c SqliteDb,
    retention: MessageRetention,
    now: i64,
    settling: Mutex<Settling>,
}

/// What the consumer decided beyond stored or failed: the rows it backed off and for how
/// long, and those it moved to the dead-letter queue.
#[derive(Debug, Default)]
struct Settling {
    waits: HashMap<i64, Duration>,
    moved: HashSet<i64>,
}

impl InBatch<'_> {
    fn with_conn<T>(
        &self,
        work: impl FnOnce(&Connection) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        work(&lock(&self.conn))
    }
}

/// A receipt of this batch: the row's `seq`.
fn seq_of(receipt: &str) -> anyhow::Result<i64> {
    receipt
        .parse()
        .map_err(|_| anyhow!("`{receipt}` is not a receipt of this batch"))
}

#[async_trait]
impl MessageStore for InBatch<'_> {
    async fn put_batch(&self, messages: &[Message]) -> Result<(), PutBatchError> {
        let now = self.now.max(0) as u64;
        let refused = self
            .with_conn(|conn| Ok(store::put_messages(conn, messages, self.retention, now)?))
            .map_err(|cause| PutBatchError::all(messages, cause.into()))?;
        store::refusal(refused)
    }

    async fn lookup(&self, id: JobId) -> PortResult<Lookup> {
        self.with_conn(|conn| store::lookup(conn, id, self.now))
            .map_err(PortError::from)
    }

    async fn delete(&self, _id: JobId) -> PortResult<Deletion> {
        Err(PortError::permanent(anyhow!(
            "a batch's transaction stores messages; deleting one is the store's (SqliteStore)"
        )))
    }

    async fn list(&self, _limit: PageLimit, _before: Option<JobId>) -> PortResult<Page> {
        Err(PortError::permanent(anyhow!(
            "a batch's transaction stores messages; listing them is the store's (SqliteStore)"
        )))
    }
}

#[async_trait]
impl FailureLog for InBatch<'_> {
    async fn note(&self, failures: &[Failure]) -> PortResult<()> {
        self.with_conn(|conn| Ok(operations::note_failures(conn, failures)?))
            .map_err(PortError::from)
    }

    async fn failure(&self, id: JobId) -> PortResult<Option<Failure>> {
        self.with_conn(|conn| operations::read_failure(conn, id))
            .map_err(PortError::from)
    }

    async fn note_attempts(&self, attempts: &[Attempt]) -> PortResult<()> {
        self.with_conn(|conn| Ok(operations::note_attempts(conn, attempts)?))
            .map_err(PortError::from)
    }

    async fn attempts(&self, id: JobId) -> PortResult<Vec<Attempt>> {
        self.with_conn(|conn| operations::read_attempts(conn, id))
            .map_err(PortError::from)
    }
}

#[async_trait]
impl Redrive for InBatch<'_> {
    /// Noted; the settling hides each row for its wait.
    async fn back_off(&self, waits: &[(String, Duration)]) -> PortResult<()> {
        let mut settling = lock(&self.settling);
        for (receipt, wait) in waits {
            settling.waits.insert(seq_of(receipt)?, *wait);
        }
        Ok(())
    }

    /// Moves each record's row to the dead-letter table now, received once more (as SQS
    /// counts the receive that handed it over).
    async fn dead_letter(&self, records: &[SqsMessage]) -> Vec<PortResult<String>> {
        records
            .iter()
            .map(|record| {
                let seq = seq_of(record.receipt_handle.as_deref().unwrap_or_default())?;
                let moved = self.with_conn(|conn| {
                    let moved = conn
                        .prepare_cached(
                            "INSERT OR REPLACE INTO dead_letters (message_id, body, sent_at_ms, receive_count, dead_at_ms, group_id)
                             SELECT message_id, body, sent_at_ms, receive_count + 1, ?2, group_id FROM queue WHERE seq = ?1
                             RETURNING message_id",
                        )?
                        .query_row(params![seq, self.now], |r| r.get::<_, String>(0))?;
                    conn.prepare_cached("DELETE FROM queue WHERE seq = ?1")?
                        .execute([seq])?;
                    Ok(moved)
                })?;
                lock(&self.settling).moved.insert(seq);
                Ok(moved)
            })
            .collect()
    }
}

#[async_trait]
impl FlowLog for InBatch<'_> {
    /// Gathered in memory as [`super::SqliteFlow`] gathers; when due, written in this
    /// transaction.
    async fn record(&self, batch: &BatchFlow) -> PortResult<()> {
        if let Some(due) = flow::gather(self.db, batch) {
            self.with_conn(|conn| Ok(flow::write_batches(conn, &due)?))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
