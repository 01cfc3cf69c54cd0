//! The queue and its dead-letter queue, with SQS's contract.

use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use async_trait::async_trait;
use aws_lambda_events::event::sqs::SqsMessage;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;
use std::sync::mpsc;

use tokio::sync::{oneshot, Notify};
use uuid::Uuid;

use super::batch::BatchInOneTransaction;
use super::db::{lock, SqliteDb, Stats};
use super::writer::{DrainRequest, Drained, Job};
use pipeline::domain::{truncate_chars, DeadLetterId, Outgoing, QueuedMessage, PREVIEW_CHARS};
use pipeline::ports::QueueSettings;
use pipeline::ports::{MessageQueue, PortError, PortResult, QueueSource, Redrive};

/// A message in the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    pub message_id: String,
    pub body: String,
    pub receive_count: i64,
}

/// The queue and its dead-letter queue: standard, or FIFO (as an SQS FIFO queue: a group's
/// messages are received in order, and none of a group while one of it is in flight; a job
/// sent twice within five minutes is queued once).
#[derive(Debug)]
pub struct SqliteQueue {
    pub(super) db: Arc<SqliteDb>,
    pub(super) settings: QueueSettings,
    pub(super) fifo: bool,
    pub(super) arrived: Arc<Notify>,
    /// The writer thread ([`super::writer`]): sends, and the consumer's batches.
    writer: mpsc::Sender<Job>,
    /// Receipts deleted since the last receive: written in the next receive's transaction
    /// (or when the queue is dropped), not in one of their own.
    deletes: std::sync::Mutex<Vec<String>>,
}

/// A body waiting for the group commit, and who to tell when it is durable.
pub(super) struct PendingSend {
    body: String,
    delay_ms: i64,
    /// FIFO only: the message group, and the id that deduplicates sends (the job id).
    group: Option<String>,
    dedup_id: Option<String>,
    pub(super) done: oneshot::Sender<Result<(), String>>,
}

/// How long a FIFO queue remembers a deduplication id (SQS's deduplication interval).
const DEDUP_WINDOW_MS: i64 = 5 * 60 * 1000;

impl SqliteQueue {
    pub fn new(db: Arc<SqliteDb>, settings: QueueSettings) -> Self {
        Self::with_kind(db, settings, false)
    }

    /// A FIFO queue (the runner's `--fifo`).
    pub fn fifo(db: Arc<SqliteDb>, settings: QueueSettings) -> Self {
        Self::with_kind(db, settings, true)
    }

    fn with_kind(db: Arc<SqliteDb>, settings: QueueSettings, fifo: bool) -> Self {
        let arrived = Arc::new(Notify::new());
        let writer = super::writer::spawn(db.clone(), arrived.clone());
        Self {
            db,
            settings,
            fifo,
            arrived,
            writer,
            deletes: std::sync::Mutex::default(),
        }
    }

    /// Sends a body as is, as any sender with access to a queue could. Returns once the
    /// message is committed. On a FIFO queue it is a group of its own.
    pub async fn send_raw(&self, body: String) -> anyhow::Result<()> {
        let group = self.fifo.then(|| Uuid::new_v4().to_string());
        let (pending, committed) = self.pending(body, 0, group, None);
        self.enqueue(pending)?;
        committed.await
    }

    fn pending(
        &self,
        body: String,
        delay_ms: i64,
        group: Option<String>,
        dedup_id: Option<String>,
    ) -> (
        PendingSend,
        impl std::future::Future<Output = anyhow::Result<()>>,
    ) {
        let (done, committed) = oneshot::channel();
        let pending = PendingSend {
            body,
            delay_ms,
            group,
            dedup_id,
            done,
        };
        let committed = async move {
            committed
                .await
                .map_err(|_| anyhow!("the queue's writer has stopped"))?
                .map_err(|e| anyhow!("committing the message failed: {e}"))
        };
        (pending, committed)
    }

    fn enqueue(&self, pending: PendingSend) -> anyhow::Result<()> {
        self.writer
            .send(Job::Send(pending))
            .map_err(|_| anyhow!("the queue's writer has stopped"))
    }

    /// Gives `consumer` a turn on the writer thread ([`DrainRequest`]) and waits for it.
    pub(super) async fn drain(
        &self,
        consumer: BatchInOneTransaction,
        max: usize,
        (least, later_least): (usize, usize),
        turn: Duration,
    ) -> anyhow::Result<Drained> {
        let (done, drained) = oneshot::channel();
        let request = DrainRequest {
            consumer,
            max,
            least,
            later_least,
            until: std::time::Instant::now() + turn,
            done,
        };
        self.writer
            .send(Job::Drain(request))
            .map_err(|_| anyhow!("the queue's writer has stopped"))?;
        drained
            .await
            .map_err(|_| anyhow!("the queue's writer has stopped"))?
    }

    pub async fn dead_lettered(&self) -> anyhow::Result<i64> {
        self.db.stats().await.map(|s| s.dead_lettered)
    }

    pub async fn stats(&self) -> PortResult<Stats> {
        self.db.stats().await.map_err(PortError::from)
    }

    /// The dead-letter queue's messages, oldest first, as an operator would inspect them
    /// before redriving or discarding them.
    pub async fn dead_letters(&self) -> PortResult<Vec<DeadLetter>> {
        self.db
            .read(|conn| {
                let letters = conn
                    .prepare_cached(
                        "SELECT message_id, body, receive_count FROM dead_letters ORDER BY dead_at_ms, message_id",
                    )?
                    .query_map([], |r| {
                        Ok(DeadLetter {
                            message_id: r.get(0)?,
                            body: r.get(1)?,
                            receive_count: r.get(2)?,
                        })
                    })?
                    .collect::<Result<_, _>>()?;
                Ok(letters)
            })
            .await
            .map_err(PortError::from)
    }

    async fn receive_now(&self, max: usize) -> anyhow::Result<Vec<SqsMessage>> {
        let visibility_ms = self.settings.visibility_timeout.as_millis() as i64;
        let max_receives = i64::from(self.settings.max_receive_count);
        let clock = self.db.clock.clone();
        let fifo = self.fifo;
        let deletes = std::mem::take(&mut *lock(&self.deletes));
        self.db
            .write(move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                delete_received(&tx, &deletes)?;
                let now = clock.now_ms();
                let due = take_due(&tx, fifo, now, max, max_receives)?;
                let mut records = Vec::with_capacity(due.len());
                for row in due {
                    // Time-ordered, for the receipt's UNIQUE index, as the message ids.
                    let receipt = time_ordered_id();
                    tx.prepare_cached(
                        "UPDATE queue SET receive_count = receive_count + 1, visible_at_ms = ?1, receipt = ?2,
                         first_received_ms = coalesce(first_received_ms, ?4) WHERE seq = ?3",
                    )?
                    .execute(params![now + visibility_ms, receipt, row.seq, now])?;
                    records.push(row.received(receipt, now));
                }
                tx.commit()?;
                Ok(records)
            })
            .await
    }
}

/// The messages a receive takes at `now`, up to `max`: visible ones, oldest first, and on a
/// FIFO queue none of a group that has one in flight. Those received `max_receives` times
/// already are moved to the dead-letter queue instead, as SQS's redrive policy does.
pub(super) fn take_due(
    tx: &Connection,
    fifo: bool,
    now: i64,
    max: usize,
    max_receives: i64,
) -> rusqlite::Result<Vec<DueRow>> {
    // FIFO: oldest first, and nothing of a group that has a message in flight (a received
    // message not yet deleted blocks the ones behind it).
    let sql = if fifo {
        "SELECT seq, message_id, body, sent_at_ms, receive_count, first_received_ms, group_id FROM queue
         WHERE visible_at_ms <= ?1 AND NOT EXISTS (
             SELECT 1 FROM queue AS ahead
             WHERE ahead.group_id = queue.group_id AND ahead.visible_at_ms > ?1)
         ORDER BY seq LIMIT ?2"
    } else {
        "SELECT seq, message_id, body, sent_at_ms, receive_count, first_received_ms, group_id FROM queue
         WHERE visible_at_ms <= ?1 ORDER BY visible_at_ms, seq LIMIT ?2"
    };
    let due: Vec<DueRow> = tx
        .prepare_cached(sql)?
        .query_map(params![now, max as i64], DueRow::read)?
        .collect::<Result<_, _>>()?;
    let mut taken = Vec::with_capacity(due.len());
    let moved = due.len();
    for row in due {
        if row.receive_count < max_receives {
            taken.push(row);
            continue;
        }
        let DueRow {
            seq,
            message_id,
            body,
            sent_at_ms,
            receive_count,
            first_received,
            group,
        } = row;
        note_unnoted(
            tx,
            &message_id,
            &body,
            receive_count,
            first_received.unwrap_or(now),
            now,
        )?;
        tx.prepare_cached(
            "INSERT OR REPLACE INTO dead_letters (message_id, body, sent_at_ms, receive_count, dead_at_ms, group_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![message_id, body, sent_at_ms, receive_count, now, group])?;
        tx.prepare_cached("DELETE FROM queue WHERE seq = ?1")?
            .execute([seq])?;
        tracing::warn!(%message_id, receive_count, "moved to the dead-letter queue");
    }
    super::db::add_to_counter(tx, "queued", -((moved - taken.len()) as i64))?;
    Ok(taken)
}

/// A queue message id or receipt: a UUID whose leading bits are the time (as a UUIDv7's), so
/// that it lands at the end of its UNIQUE index, and whose version is 8, so that it is never
/// taken for a job id (a raw dead letter is named by its message id).
fn time_ordered_id() -> String {
    let mut bytes = *Uuid::now_v7().as_bytes();
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    Uuid::from_bytes(bytes).to_string()
}

/// Deletes received messages by their receipts; a stale receipt deletes nothing.
fn delete_received(tx: &rusqlite::Transaction<'_>, receipts: &[String]) -> rusqlite::Result<()> {
    let mut delete = tx.prepare_cached("DELETE FROM queue WHERE receipt = ?1")?;
    let mut deleted = 0;
    for receipt in receipts {
        deleted += delete.execute([receipt])?;
    }
    super::db::add_to_counter(tx, "queued", -(deleted as i64))
}

/// The deletes noted since the last receive, written when the runner stops.
impl Drop for SqliteQueue {
    fn drop(&mut self) {
        let deletes = std::mem::take(&mut *lock(&self.deletes));
        if deletes.is_empty() {
            return;
        }
        let mut conn = lock(&self.db.writer);
        let written = conn.transaction().and_then(|tx| {
            delete_received(&tx, &deletes)?;
            tx.commit()
        });
        if let Err(error) = written {
            tracing::warn!(%error, "deleting received messages at shutdown failed; they will be delivered again");
        }
    }
}

/// Notes a message the queue dead-letters if the consumer did not (it stopped before it could,
/// or it was a raw body it could not name), so that the dead-letter listing and its count
/// always agree.
fn note_unnoted(
    tx: &Connection,
    message_id: &str,
    body: &str,
    receive_count: i64,
    first_received_ms: i64,
    now: i64,
) -> rusqlite::Result<usize> {
    let (id, preview) = match QueuedMessage::job_id_of(body) {
        Some(job) => (DeadLetterId::Job(job), String::new()),
        None => match DeadLetterId::raw(message_id) {
            Some(id) => (id, truncate_chars(body, PREVIEW_CHARS)),
            None => return Ok(0),
        },
    };
    tx.execute(
        "INSERT OR IGNORE INTO failures VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            id.key(),
            receive_count,
            first_received_ms,
            now,
            format!("dead-lettered by the queue after {receive_count} receives; the consumer noted no failure (it stopped before it could)"),
            preview
        ],
    )
}

/// A queued row as a receive reads it: the columns of its SELECT, in order.
pub(super) struct DueRow {
    pub(super) seq: i64,
    message_id: String,
    body: String,
    sent_at_ms: i64,
    receive_count: i64,
    first_received: Option<i64>,
    group: Option<String>,
}

impl DueRow {
    fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            seq: row.get(0)?,
            message_id: row.get(1)?,
            body: row.get(2)?,
            sent_at_ms: row.get(3)?,
            receive_count: row.get(4)?,
            first_received: row.get(5)?,
            group: row.get(6)?,
        })
    }

    /// The record a consumer is handed for this row, received at `now` under `receipt`.
    pub(super) fn received(self, receipt: String, now: i64) -> SqsMessage {
        let first_received = self.first_received.unwrap_or(now);
        let mut record = record(
            self.message_id,
            receipt,
            self.body,
            self.sent_at_ms,
            self.receive_count + 1,
            first_received,
        );
        if let Some(group) = self.group {
            record.attributes.insert("MessageGroupId".to_owned(), group);
        }
        record
    }
}

pub(super) fn insert_group(
    conn: &mut Connection,
    group: &[PendingSend],
    now: i64,
) -> anyhow::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO queue (message_id, body, sent_at_ms, visible_at_ms, group_id) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        // As SQS FIFO: a deduplication id seen within the window is accepted and not queued.
        let mut remember = tx.prepare_cached(
            "INSERT INTO fifo_sends (dedup_id, sent_at_ms) VALUES (?1, ?2)
             ON CONFLICT (dedup_id) DO UPDATE SET sent_at_ms = ?2 WHERE sent_at_ms <= ?2 - ?3",
        )?;
        let mut queued = 0;
        for send in group {
            if let Some(dedup_id) = &send.dedup_id {
                if remember.execute(params![dedup_id, now, DEDUP_WINDOW_MS])? == 0 {
                    continue;
                }
            }
            queued += 1;
            // Time-ordered: each id lands at the end of the UNIQUE index, not on a page of its
            // own (a random id dirtied a page a message; BENCHMARKS.md, "The runner against
            // this machine's limit").
            insert.execute(params![
                time_ordered_id(),
                send.body,
                now,
                now + send.delay_ms,
                send.group
            ])?;
        }
        tx.execute(
            "DELETE FROM fifo_sends WHERE sent_at_ms <= ?1",
            [now - DEDUP_WINDOW_MS],
        )?;
        super::flow::add_enqueued(&tx, now, queued)?;
        super::db::add_to_counter(&tx, "queued", queued)?;
    }
    tx.commit()?;
    Ok(())
}

fn record(
    message_id: String,
    receipt: String,
    body: String,
    sent_at_ms: i64,
    receives: i64,
    first_received_ms: i64,
) -> SqsMessage {
    let mut record = SqsMessage::default();
    record.message_id = Some(message_id);
    record.receipt_handle = Some(receipt);
    record.body = Some(body);
    record.event_source = Some("aws:sqs".to_owned());
    record.attributes = [
        ("ApproximateReceiveCount", receives.to_string()),
        ("SentTimestamp", sent_at_ms.to_string()),
        (
            "ApproximateFirstReceiveTimestamp",
            first_received_ms.to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    record
}

#[async_trait]
impl MessageQueue for SqliteQueue {
    /// All of the batch goes to the writer at once, so it usually shares one commit.
    async fn send_batch(&self, messages: &[Outgoing]) -> Vec<PortResult<()>> {
        let mut waiting = Vec::with_capacity(messages.len());
        for outgoing in messages {
            let message = &outgoing.message;
            let (group, dedup_id, delay_ms) = if self.fifo {
                (Some(outgoing.fifo_group()), Some(message.id.to_string()), 0)
            } else {
                (None, None, i64::from(message.id.delay().seconds()) * 1000)
            };
            let (pending, committed) =
                self.pending(QueuedMessage::body_of(message), delay_ms, group, dedup_id);
            waiting.push(self.enqueue(pending).map(|()| committed));
        }
        let mut results = Vec::with_capacity(waiting.len());
        for committed in waiting {
            results.push(match committed {
                Ok(committed) => committed.await.map_err(PortError::from),
                Err(e) => Err(e.into()),
            });
        }
        results
    }

    fn is_fifo(&self) -> bool {
        self.fifo
    }
}

#[async_trait]
impl QueueSource for SqliteQueue {
    async fn receive(&self, max: usize, wait: Duration) -> PortResult<Vec<SqsMessage>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Registered before looking, so a send that lands in between still wakes us.
            let arrived = self.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            let records = self.receive_now(max.max(1)).await?;
            if !records.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(records);
            }
            // Also wake now and then: hidden messages become visible without a send.
            let nap = deadline
                .saturating_duration_since(tokio::time::Instant::now())
                .min(Duration::from_millis(100));
            let _ = tokio::time::timeout(nap, arrived).await;
        }
    }

    /// Noted now, written in the next receive's transaction (a write transaction a batch
    /// fewer; BENCHMARKS.md). Until then the messages stay hidden; if the process dies first
    /// they come back after their visibility timeout and are stored once more, which the
    /// store's first-write-wins makes a no-op: SQS's own at-least-once.
    async fn delete(&self, receipt_handles: &[String]) -> PortResult<()> {
        lock(&self.deletes).extend_from_slice(receipt_handles);
        Ok(())
    }
}

/// As SQS: a backoff hides each message for its wait from now; a dead letter is moved to the
/// dead-letter table, in one transaction with its removal from the queue (so never in both,
/// never in neither). A stale receipt (the message was received again since) changes nothing.
#[async_trait]
impl Redrive for SqliteQueue {
    async fn back_off(&self, waits: &[(String, Duration)]) -> PortResult<()> {
        let waits: Vec<(String, i64)> = waits
            .iter()
            .map(|(receipt, wait)| (receipt.clone(), wait.as_millis() as i64))
            .collect();
        let clock = self.db.clock.clone();
        self.db
            .write(move |conn| {
                let tx = conn.transaction()?;
                let now = clock.now_ms();
                {
                    let mut hide = tx
                        .prepare_cached("UPDATE queue SET visible_at_ms = ?1 WHERE receipt = ?2")?;
                    for (receipt, wait_ms) in &waits {
                        hide.execute(params![now + wait_ms, receipt])?;
                    }
                }
                tx.commit()?;
                Ok(())
            })
            .await
            .map_err(PortError::from)
    }

    async fn dead_letter(&self, records: &[SqsMessage]) -> Vec<PortResult<String>> {
        let receipts: Vec<Option<String>> =
            records.iter().map(|r| r.receipt_handle.clone()).collect();
        let clock = self.db.clock.clone();
        let moved = self
            .db
            .write(move |conn| {
                let tx = conn.transaction()?;
                let now = clock.now_ms();
                let mut moved = Vec::with_capacity(receipts.len());
                for receipt in &receipts {
                    let message_id: Option<String> = match receipt {
                        Some(receipt) => tx
                            .query_row(
                                "SELECT message_id FROM queue WHERE receipt = ?1",
                                [receipt],
                                |r| r.get(0),
                            )
                            .optional()?,
                        None => None,
                    };
                    if let Some(message_id) = &message_id {
                        tx.execute(
                            "INSERT OR REPLACE INTO dead_letters (message_id, body, sent_at_ms, receive_count, dead_at_ms, group_id)
                             SELECT message_id, body, sent_at_ms, receive_count, ?2, group_id FROM queue WHERE message_id = ?1",
                            params![message_id, now],
                        )?;
                        let removed =
                            tx.execute("DELETE FROM queue WHERE message_id = ?1", [message_id])?;
                        super::db::add_to_counter(&tx, "queued", -(removed as i64))?;
                    }
                    moved.push(message_id);
                }
                tx.commit()?;
                Ok(moved)
            })
            .await;
        match moved {
            Ok(moved) => moved
                .into_iter()
                .map(|message_id| {
                    message_id.ok_or_else(|| {
                        PortError::transient(anyhow!(
                            "the message is no longer held by this receipt (received again since)"
                        ))
                    })
                })
                .collect(),
            Err(error) => {
                let error = PortError::from(error);
                records.iter().map(|_| Err(error.clone())).collect()
            }
        }
    }
}
