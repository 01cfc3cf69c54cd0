//! The embedded backend: queue, dead-letter queue and store in one SQLite file.
//!
//! SQLite in WAL mode: a transaction that returned is in the write-ahead log, which survives
//! the process being killed (SIGKILL included). `Durability::Full` also fsyncs every commit,
//! which is what survives losing the machine. One writer connection and a few readers:
//! readers (listing) never wait for the writer in WAL mode.
//!
//! The queue keeps SQS's contract, checked by the same contract tests as SQS itself: a
//! received message is hidden for the visibility timeout under a fresh receipt handle, comes
//! back unless deleted, and on the receive after its `max_receive_count`-th it moves to the
//! dead-letter table instead. Its times come from [`pipeline::clock`]: monotonic within a
//! process, so a step of the system clock changes no visibility timeout.

mod keys;
mod operations;

pub use keys::SqliteKeys;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use async_trait::async_trait;
use aws_lambda_events::event::sqs::SqsMessage;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;
use std::sync::mpsc;

use tokio::sync::{oneshot, Notify};
use uuid::Uuid;

use pipeline::clock::{Clock, ProcessClock};
use pipeline::domain::{
    Attributes, ContentLimit, Cursor, JobId, Message, MessageContent, Outgoing, Page, PageLimit,
    QueuedMessage,
};
use pipeline::ports::QueueSettings;
use pipeline::ports::{MessageQueue, MessageStore, PutBatchError, QueueSource};

/// What a commit survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Durability {
    /// The process being killed (WAL, `synchronous=NORMAL`).
    Process,
    /// The machine losing power (WAL, `synchronous=FULL`: an fsync per commit).
    Full,
}

/// The schema's history: step `i` takes a database from version `i` to `i + 1`, and
/// `PRAGMA user_version` records how many have run. Append a step for every change; never edit
/// one that has shipped. Step 1 is the schema as the runner wrote it before it kept versions
/// (`IF NOT EXISTS` makes it a no-op on such a database).
const MIGRATIONS: &[&str] = &[SCHEMA_V1, SCHEMA_V2, SCHEMA_V3];

const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS queue (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id    TEXT    NOT NULL UNIQUE,
    body          TEXT    NOT NULL,
    sent_at_ms    INTEGER NOT NULL,
    visible_at_ms INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt       TEXT    UNIQUE
);
CREATE INDEX IF NOT EXISTS queue_by_visibility ON queue (visible_at_ms, seq);
CREATE TABLE IF NOT EXISTS dead_letters (
    message_id    TEXT    PRIMARY KEY,
    body          TEXT    NOT NULL,
    sent_at_ms    INTEGER NOT NULL,
    receive_count INTEGER NOT NULL,
    dead_at_ms    INTEGER NOT NULL
);
-- Job ids are UUIDv7 strings: ordering by id is ordering by acceptance time.
CREATE TABLE IF NOT EXISTS messages (
    id      TEXT PRIMARY KEY,
    content TEXT NOT NULL
) WITHOUT ROWID;
";

/// Version 2: the failure notes (as DynamoDB's `dead` partition), and each queued message's
/// first receive (SQS's `ApproximateFirstReceiveTimestamp`).
const SCHEMA_V2: &str = "
CREATE TABLE failures (
    job_id           TEXT    PRIMARY KEY,
    receive_count    INTEGER NOT NULL,
    first_failure_ms INTEGER NOT NULL,
    last_failure_ms  INTEGER NOT NULL,
    last_error       TEXT    NOT NULL,
    preview          TEXT    NOT NULL
) WITHOUT ROWID;
ALTER TABLE queue ADD COLUMN first_received_ms INTEGER;
";

/// Version 3: message attributes (JSON, NULL when none), FIFO message groups (NULL on a
/// standard queue, carried into and out of the dead-letter queue), FIFO deduplication, and
/// idempotency keys (as DynamoDB's idempotency table).
const SCHEMA_V3: &str = "
ALTER TABLE messages ADD COLUMN attributes TEXT;
ALTER TABLE queue ADD COLUMN group_id TEXT;
ALTER TABLE dead_letters ADD COLUMN group_id TEXT;
CREATE INDEX queue_by_group ON queue (group_id, seq) WHERE group_id IS NOT NULL;
CREATE TABLE fifo_sends (
    dedup_id   TEXT    PRIMARY KEY,
    sent_at_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE idempotency_keys (
    key             TEXT    PRIMARY KEY,
    fingerprint     TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    locked_until_ms INTEGER NOT NULL,
    expires_at_ms   INTEGER NOT NULL,
    reserved        TEXT    NOT NULL,
    answer          TEXT
) WITHOUT ROWID;
";

/// The database file: one writer connection (SQLite has one writer at a time) and a few
/// readers, which WAL lets read while the writer writes and each other read.
#[derive(Debug)]
pub struct SqliteDb {
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    /// Where the queue's times come from (see [`pipeline::clock`]).
    pub(super) clock: Arc<dyn Clock>,
}

/// Reader connections: as many as the requests a two-core machine serves at once, with room.
const READERS: usize = 4;

impl SqliteDb {
    /// The schema version this runner writes and reads.
    pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

    /// Opens (or creates) the database, with a [`ProcessClock`] that starts no earlier than
    /// the latest time the database holds.
    pub fn open(path: &Path, durability: Durability) -> anyhow::Result<Arc<Self>> {
        Self::open_with(path, durability, |floor_ms| {
            Arc::new(ProcessClock::not_before(floor_ms))
        })
    }

    /// Opens the database with the clock `clock` makes from the latest time it holds.
    pub fn open_with(
        path: &Path,
        durability: Durability,
        clock: impl FnOnce(i64) -> Arc<dyn Clock>,
    ) -> anyhow::Result<Arc<Self>> {
        // Messages are data: owner-only, before SQLite creates the file with the umask's mode.
        crate::private_file::ensure(path)?;
        let open = || -> anyhow::Result<Connection> {
            let conn =
                Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
            conn.busy_timeout(Duration::from_secs(5))?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            let synchronous = match durability {
                Durability::Process => "NORMAL",
                Durability::Full => "FULL",
            };
            conn.pragma_update(None, "synchronous", synchronous)?;
            Ok(conn)
        };
        let mut writer = open()?;
        migrate(&mut writer).with_context(|| format!("preparing {}", path.display()))?;
        let latest: i64 = writer.query_row(
            "SELECT max(coalesce((SELECT max(sent_at_ms) FROM queue), 0),
                        coalesce((SELECT max(dead_at_ms) FROM dead_letters), 0))",
            [],
            |r| r.get(0),
        )?;
        let readers = (0..READERS)
            .map(|_| open().map(Mutex::new))
            .collect::<anyhow::Result<_>>()?;
        Ok(Arc::new(Self {
            writer: Mutex::new(writer),
            readers,
            next_reader: AtomicUsize::new(0),
            clock: clock(latest),
        }))
    }

    /// Runs `work` on the writer connection off the async runtime.
    pub(super) async fn write<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&mut Connection) -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let db = self.clone();
        tokio::task::spawn_blocking(move || work(&mut lock(&db.writer))).await?
    }

    pub(super) async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&Connection) -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let db = self.clone();
        tokio::task::spawn_blocking(move || {
            // Round robin; a reader busy with a long read only delays the requests behind it.
            let reader = db.next_reader.fetch_add(1, Ordering::Relaxed) % db.readers.len();
            work(&lock(&db.readers[reader]))
        })
        .await?
    }

    /// Counts for the runner's stats endpoint, the local stand-in for queue metrics.
    pub async fn stats(self: &Arc<Self>) -> anyhow::Result<Stats> {
        let now = self.clock.now_ms();
        self.read(move |conn| {
            // One pass over the queue for its counts and its oldest message.
            let (queued, in_flight, delayed, oldest_age_ms) = conn.query_row(
                "SELECT coalesce(sum(visible_at_ms <= ?1), 0),
                        coalesce(sum(visible_at_ms > ?1 AND receive_count > 0), 0),
                        coalesce(sum(visible_at_ms > ?1 AND receive_count = 0), 0),
                        ?1 - min(sent_at_ms)
                 FROM queue",
                [now],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )?;
            Ok(Stats {
                queued,
                in_flight,
                delayed,
                dead_lettered: conn
                    .query_row("SELECT count(*) FROM dead_letters", [], |r| r.get(0))?,
                stored: conn.query_row("SELECT count(*) FROM messages", [], |r| r.get(0))?,
                oldest_age_ms,
            })
        })
        .await
    }
}

/// Brings the schema up to [`SqliteDb::SCHEMA_VERSION`], one step a transaction; refuses a
/// database a newer runner wrote rather than guess at its tables.
fn migrate(conn: &mut Connection) -> anyhow::Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    anyhow::ensure!(
        version <= SqliteDb::SCHEMA_VERSION,
        "the database was written by a newer version of the runner (schema {version}; this one \
         knows up to {}): upgrade the runner, or give it another --data file",
        SqliteDb::SCHEMA_VERSION
    );
    for (done, step) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(step)
            .with_context(|| format!("migrating the schema to version {}", done + 1))?;
        tx.pragma_update(None, "user_version", done as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

// A panic while holding a connection leaves SQLite consistent (the transaction rolls back
// when dropped), so a poisoned lock is safe to take over.
fn lock(mutex: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub queued: i64,
    pub in_flight: i64,
    /// Sent with a delay that has not passed yet.
    pub delayed: i64,
    pub dead_lettered: i64,
    pub stored: i64,
    /// How long the oldest queued message has waited; none when the queue is empty.
    pub oldest_age_ms: Option<i64>,
}

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
    settings: QueueSettings,
    fifo: bool,
    pub(super) arrived: Arc<Notify>,
    sends: mpsc::Sender<PendingSend>,
}

/// A body waiting for the group commit, and who to tell when it is durable.
struct PendingSend {
    body: String,
    delay_ms: i64,
    /// FIFO only: the message group, and the id that deduplicates sends (the job id).
    group: Option<String>,
    dedup_id: Option<String>,
    done: oneshot::Sender<Result<(), String>>,
}

/// How long a FIFO queue remembers a deduplication id (SQS's deduplication interval).
const DEDUP_WINDOW_MS: i64 = 5 * 60 * 1000;

/// Most sends one group commit takes.
const GROUP_COMMIT_MAX: usize = 1024;

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
        let sends = spawn_group_commit(db.clone(), arrived.clone());
        Self {
            db,
            settings,
            fifo,
            arrived,
            sends,
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
        self.sends
            .send(pending)
            .map_err(|_| anyhow!("the queue's writer has stopped"))
    }

    pub async fn dead_lettered(&self) -> anyhow::Result<i64> {
        self.db.stats().await.map(|s| s.dead_lettered)
    }

    pub async fn stats(&self) -> anyhow::Result<Stats> {
        self.db.stats().await
    }

    /// The dead-letter queue's messages, oldest first, as an operator would inspect them
    /// before redriving or discarding them.
    pub async fn dead_letters(&self) -> anyhow::Result<Vec<DeadLetter>> {
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
    }

    async fn receive_now(&self, max: usize) -> anyhow::Result<Vec<SqsMessage>> {
        let visibility_ms = self.settings.visibility_timeout.as_millis() as i64;
        let max_receives = i64::from(self.settings.max_receive_count);
        let clock = self.db.clock.clone();
        let fifo = self.fifo;
        self.db
            .write(move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let now = clock.now_ms();
                // FIFO: oldest first, and nothing of a group that has a message in flight (a
                // received message not yet deleted blocks the ones behind it).
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
                let due: Vec<Due> = tx
                    .prepare_cached(sql)?
                    .query_map(params![now, max as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)))?
                    .collect::<Result<_, _>>()?;
                let mut records = Vec::with_capacity(due.len());
                for (seq, message_id, body, sent_at_ms, receive_count, first_received, group) in due {
                    if receive_count >= max_receives {
                        tx.execute(
                            "INSERT OR REPLACE INTO dead_letters (message_id, body, sent_at_ms, receive_count, dead_at_ms, group_id)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                            params![message_id, body, sent_at_ms, receive_count, now, group],
                        )?;
                        tx.execute("DELETE FROM queue WHERE seq = ?1", [seq])?;
                        tracing::warn!(%message_id, receive_count, "moved to the dead-letter queue");
                        continue;
                    }
                    let receipt = Uuid::new_v4().to_string();
                    tx.execute(
                        "UPDATE queue SET receive_count = receive_count + 1, visible_at_ms = ?1, receipt = ?2,
                         first_received_ms = coalesce(first_received_ms, ?4) WHERE seq = ?3",
                        params![now + visibility_ms, receipt, seq, now],
                    )?;
                    let first_received = first_received.unwrap_or(now);
                    let mut record = record(message_id, receipt, body, sent_at_ms, receive_count + 1, first_received);
                    if let Some(group) = group {
                        record.attributes.insert("MessageGroupId".to_owned(), group);
                    }
                    records.push(record);
                }
                tx.commit()?;
                Ok(records)
            })
            .await
    }
}

/// Sends arriving together share one transaction (group commit): under load, hundreds of
/// 202s cost one commit, which is what makes the embedded queue keep up with HTTP. Each
/// sender is answered only after the commit that holds its message.
fn spawn_group_commit(db: Arc<SqliteDb>, arrived: Arc<Notify>) -> mpsc::Sender<PendingSend> {
    let (sends, pending) = mpsc::channel::<PendingSend>();
    std::thread::spawn(move || {
        // Ends when the queue, and with it the last sender, is dropped.
        while let Ok(first) = pending.recv() {
            let mut group = vec![first];
            group.extend(pending.try_iter().take(GROUP_COMMIT_MAX - 1));
            let committed = insert_group(&mut lock(&db.writer), &group, db.clock.now_ms())
                .map_err(|e| format!("{e:#}"));
            for send in group {
                // A sender that gave up waiting needs no answer.
                let _ = send.done.send(committed.clone());
            }
            arrived.notify_waiters();
        }
    });
    sends
}

/// A queued row as a receive reads it.
type Due = (i64, String, String, i64, i64, Option<i64>, Option<String>);

fn insert_group(conn: &mut Connection, group: &[PendingSend], now: i64) -> anyhow::Result<()> {
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
        for send in group {
            if let Some(dedup_id) = &send.dedup_id {
                if remember.execute(params![dedup_id, now, DEDUP_WINDOW_MS])? == 0 {
                    continue;
                }
            }
            insert.execute(params![
                Uuid::new_v4().to_string(),
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
    async fn send_batch(&self, messages: &[Outgoing]) -> Vec<anyhow::Result<()>> {
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
                Ok(committed) => committed.await,
                Err(e) => Err(e),
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
    async fn receive(&self, max: usize, wait: Duration) -> anyhow::Result<Vec<SqsMessage>> {
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

    async fn delete(&self, receipt_handles: &[String]) -> anyhow::Result<()> {
        let handles = receipt_handles.to_vec();
        self.db
            .write(move |conn| {
                let tx = conn.transaction()?;
                for handle in &handles {
                    tx.execute("DELETE FROM queue WHERE receipt = ?1", [handle])?;
                }
                tx.commit()?;
                Ok(())
            })
            .await
    }
}

/// The store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(super) db: Arc<SqliteDb>,
}

impl SqliteStore {
    pub fn new(db: Arc<SqliteDb>) -> Self {
        Self { db }
    }
}

fn message_from_row(
    id: String,
    content: String,
    attributes: Option<String>,
) -> anyhow::Result<Message> {
    let id: JobId = id.parse()?;
    let limit = ContentLimit::ceiling();
    let content = MessageContent::parse(content, limit)
        .with_context(|| format!("stored message {id} is invalid"))?;
    let attributes: Attributes = match attributes {
        None => Attributes::default(),
        Some(json) => serde_json::from_str(&json)
            .with_context(|| format!("stored message {id} has invalid attributes"))?,
    };
    Ok(Message::new(id, content, attributes))
}

/// How a message's attributes are kept in a row: JSON, or NULL when there are none.
fn attributes_column(attributes: &Attributes) -> Option<String> {
    (!attributes.is_empty()).then(|| serde_json::to_string(attributes).unwrap_or_default())
}

#[async_trait]
impl MessageStore for SqliteStore {
    /// First write wins, as on DynamoDB: a job already stored with the same content is a
    /// redelivery; with other content it is refused and reported unwritten, and the stored
    /// message is kept.
    async fn put_batch(&self, messages: &[Message]) -> Result<(), PutBatchError> {
        let rows: Vec<(JobId, String, Option<String>)> = messages
            .iter()
            .map(|m| {
                (
                    m.id,
                    m.content.as_str().to_owned(),
                    attributes_column(&m.attributes),
                )
            })
            .collect();
        let refused = self
            .db
            .write(move |conn| {
                let tx = conn.transaction()?;
                let mut refused = Vec::new();
                {
                    let mut insert =
                        tx.prepare_cached("INSERT INTO messages (id, content, attributes) VALUES (?1, ?2, ?3) ON CONFLICT (id) DO NOTHING")?;
                    let mut stored = tx.prepare_cached("SELECT content FROM messages WHERE id = ?1")?;
                    for (id, content, attributes) in &rows {
                        let key = id.to_string();
                        if insert.execute(params![key, content, attributes])? == 0 {
                            let kept: String = stored.query_row([&key], |r| r.get(0))?;
                            if &kept != content {
                                refused.push(*id);
                            }
                        }
                    }
                }
                tx.commit()?;
                Ok(refused)
            })
            .await
            .map_err(|cause| PutBatchError {
                unwritten: messages.iter().map(|m| m.id).collect(),
                cause,
            })?;
        if refused.is_empty() {
            return Ok(());
        }
        tracing::warn!(
            jobs = refused.len(),
            "repeats of stored jobs with other content were refused; the stored messages are kept"
        );
        Err(PutBatchError {
            cause: anyhow!(
                "{} jobs are stored with other content; a stored message is never rewritten",
                refused.len()
            ),
            unwritten: refused,
        })
    }

    async fn get(&self, id: JobId) -> anyhow::Result<Option<Message>> {
        self.db
            .read(move |conn| {
                conn.query_row(
                    "SELECT content, attributes FROM messages WHERE id = ?1",
                    [id.to_string()],
                    |r| Ok((r.get::<_, String>(0)?, r.get(1)?)),
                )
                .optional()?
                .map(|(content, attributes)| message_from_row(id.to_string(), content, attributes))
                .transpose()
            })
            .await
    }

    async fn list(&self, limit: PageLimit, before: Option<JobId>) -> anyhow::Result<Page> {
        self.db
            .read(move |conn| {
                // Two statements, not `?1 IS NULL OR id < ?1`: with the OR, SQLite cannot use
                // the primary key's range and scans from the newest row to the cursor, so deep
                // pages cost in proportion to their depth (BENCHMARKS.md, "Listing").
                let wanted = limit.get() as i64 + 1;
                let row = |r: &rusqlite::Row<'_>| Ok((r.get(0)?, r.get(1)?, r.get(2)?));
                let rows: Vec<(String, String, Option<String>)> = match before {
                    None => conn
                        .prepare_cached("SELECT id, content, attributes FROM messages ORDER BY id DESC LIMIT ?1")?
                        .query_map(params![wanted], row)?
                        .collect::<Result<_, _>>()?,
                    Some(before) => conn
                        .prepare_cached(
                            "SELECT id, content, attributes FROM messages WHERE id < ?1 ORDER BY id DESC LIMIT ?2",
                        )?
                        .query_map(params![before.to_string(), wanted], row)?
                        .collect::<Result<_, _>>()?,
                };
                let more = rows.len() > limit.get();
                let messages = rows
                    .into_iter()
                    .take(limit.get())
                    .map(|(id, content, attributes)| message_from_row(id, content, attributes))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let next = if more { messages.last().map(Cursor::after) } else { None };
                Ok(Page { messages, next })
            })
            .await
    }
}
