//! The database file: opening it, its schema and migrations, and its connections.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context as _;
use rusqlite::{Connection, OptionalExtension as _};
use serde::Serialize;

use pipeline::clock::{Clock, ProcessClock};

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
const MIGRATIONS: &[&str] = &[
    SCHEMA_V1, SCHEMA_V2, SCHEMA_V3, SCHEMA_V4, SCHEMA_V5, SCHEMA_V6, SCHEMA_V7, SCHEMA_V8,
];

/// Version 8: the count of queued rows, kept by every write that adds or removes one, so that
/// stats need not count a deep queue (a drain's watcher counting 200,000 rows every 20 ms
/// took a core from the drain).
const SCHEMA_V8: &str = "
INSERT INTO counters SELECT 'queued', count(*) FROM queue;
";

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

/// Version 7: the data's lifecycle. Each stored message's expiry (NULL: kept for ever), the
/// tombstones of deleted jobs (as DynamoDB's tombstone items), and the keys that tag job ids.
/// A database that already holds jobs admits their untagged ids: those issued before now.
/// And the count of stored messages, kept by every write to `messages`, so that stats read
/// one row instead of counting the table (a count scans every message).
const SCHEMA_V7: &str = "
CREATE TABLE counters (
    name TEXT    PRIMARY KEY,
    n    INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO counters SELECT 'stored', count(*) FROM messages;
ALTER TABLE messages ADD COLUMN expires_at_ms INTEGER;
CREATE INDEX messages_by_expiry ON messages (expires_at_ms) WHERE expires_at_ms IS NOT NULL;
CREATE TABLE deleted_jobs (
    id            TEXT    PRIMARY KEY,
    deleted_at_ms INTEGER NOT NULL,
    keep_until_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX deleted_jobs_by_expiry ON deleted_jobs (keep_until_ms);
CREATE TABLE job_id_keys (
    created_at_ms INTEGER PRIMARY KEY,
    secret        TEXT    NOT NULL
);
CREATE TABLE untagged_job_ids (
    until_ms INTEGER NOT NULL
);
INSERT INTO untagged_job_ids
SELECT CASE WHEN EXISTS (SELECT 1 FROM messages) OR EXISTS (SELECT 1 FROM queue)
                 OR EXISTS (SELECT 1 FROM dead_letters)
            THEN CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
            ELSE 0 END;
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

/// Version 4: a failure note names a dead letter, which is a job or, for a body that is not an
/// envelope of ours, a raw message ([`pipeline::domain::DeadLetterId::key`]).
const SCHEMA_V4: &str = "
ALTER TABLE failures RENAME COLUMN job_id TO dead_letter;
";

/// Version 6: every failed delivery of a job ([`pipeline::domain::Attempt`]), kept as long as
/// a dead letter can be.
const SCHEMA_V6: &str = "
CREATE TABLE attempts (
    job_id        TEXT    NOT NULL,
    receive_count INTEGER NOT NULL,
    at_ms         INTEGER NOT NULL,
    class         TEXT    NOT NULL,
    error         TEXT    NOT NULL,
    PRIMARY KEY (job_id, receive_count, at_ms)
) WITHOUT ROWID;
CREATE INDEX attempts_by_time ON attempts (at_ms);
";

/// Version 5: the flow, a row a minute (a day of them is kept), and each minute's end-to-end
/// latencies as histogram buckets ([`pipeline::domain::latency`]).
const SCHEMA_V5: &str = "
CREATE TABLE flow_minutes (
    minute_ms         INTEGER PRIMARY KEY,
    enqueued          INTEGER NOT NULL DEFAULT 0,
    stored            INTEGER NOT NULL DEFAULT 0,
    failed_transient  INTEGER NOT NULL DEFAULT 0,
    failed_deployment INTEGER NOT NULL DEFAULT 0,
    failed_permanent  INTEGER NOT NULL DEFAULT 0,
    dead_lettered     INTEGER NOT NULL DEFAULT 0,
    backlog           INTEGER
);
CREATE TABLE flow_latencies (
    minute_ms INTEGER NOT NULL,
    bucket    INTEGER NOT NULL,
    count     INTEGER NOT NULL,
    PRIMARY KEY (minute_ms, bucket)
) WITHOUT ROWID;
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
    pub(super) writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    /// Where the queue's times come from (see [`pipeline::clock`]).
    pub(super) clock: Arc<dyn Clock>,
    /// The consumer's flow not written yet ([`super::SqliteFlow`]).
    pub(super) flow_pending: Mutex<super::flow::Pending>,
}

/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 64;

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
            // The writer alone runs more distinct statements than rusqlite's default 16 keeps,
            // and one evicted is parsed again at its next use.
            conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
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
            flow_pending: Mutex::default(),
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
            // Nothing here reads every queued row (the watcher of a drain asks often, and a
            // scan of a deep queue slowed what it watched): the total is a counter, the hidden
            // rows come from the visibility index, the oldest is the first by `seq` (sent times
            // only grow with it: a requeued dead letter is sent anew).
            let total: i64 = conn
                .prepare_cached("SELECT n FROM counters WHERE name = 'queued'")?
                .query_row([], |r| r.get(0))?;
            let (mut in_flight, mut delayed) = (0, 0);
            let mut hidden = conn
                .prepare_cached("SELECT receive_count > 0 FROM queue WHERE visible_at_ms > ?1")?;
            let mut rows = hidden.query([now])?;
            while let Some(row) = rows.next()? {
                if row.get::<_, bool>(0)? {
                    in_flight += 1;
                } else {
                    delayed += 1;
                }
            }
            let queued = total - in_flight - delayed;
            let oldest_age_ms: Option<i64> = conn
                .prepare_cached("SELECT ?1 - sent_at_ms FROM queue ORDER BY seq LIMIT 1")?
                .query_row([now], |r| r.get(0))
                .optional()?;
            Ok(Stats {
                queued,
                in_flight,
                delayed,
                dead_lettered: conn
                    .prepare_cached("SELECT count(*) FROM dead_letters")?
                    .query_row([], |r| r.get(0))?,
                stored: conn
                    .prepare_cached("SELECT n FROM counters WHERE name = 'stored'")?
                    .query_row([], |r| r.get(0))?,
                oldest_age_ms,
            })
        })
        .await
    }
}

/// Adds `change` to the counter `name` (`stored`, `queued`), in the caller's transaction.
pub(super) fn add_to_counter(tx: &Connection, name: &str, change: i64) -> rusqlite::Result<()> {
    if change != 0 {
        tx.prepare_cached("UPDATE counters SET n = n + ?1 WHERE name = ?2")?
            .execute(rusqlite::params![change, name])?;
    }
    Ok(())
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
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::{SqliteQueue, SqliteStore};
    use pipeline::domain::{ContentLimit, Message, MessageContent, QueuedMessage};
    use pipeline::ports::{MessageStore, QueueSettings, QueueSource};

    fn remove_db(path: &Path) {
        for suffix in ["", "-wal", "-shm"] {
            let mut file = path.to_path_buf().into_os_string();
            file.push(suffix);
            let _ = std::fs::remove_file(file);
        }
    }

    /// The schema the runner wrote before databases carried a version (`PRAGMA user_version` 0).
    const UNVERSIONED_SCHEMA: &str = "
    CREATE TABLE queue (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT NOT NULL UNIQUE, body TEXT NOT NULL,
        sent_at_ms INTEGER NOT NULL, visible_at_ms INTEGER NOT NULL,
        receive_count INTEGER NOT NULL DEFAULT 0, receipt TEXT UNIQUE);
    CREATE INDEX queue_by_visibility ON queue (visible_at_ms, seq);
    CREATE TABLE dead_letters (
        message_id TEXT PRIMARY KEY, body TEXT NOT NULL, sent_at_ms INTEGER NOT NULL,
        receive_count INTEGER NOT NULL, dead_at_ms INTEGER NOT NULL);
    CREATE TABLE messages (id TEXT PRIMARY KEY, content TEXT NOT NULL) WITHOUT ROWID;
    ";

    #[tokio::test]
    async fn a_database_written_by_the_previous_version_opens_with_its_messages_and_queue() {
        let path =
            std::env::temp_dir().join(format!("mp-old-{}.db", uuid::Uuid::new_v4().simple()));
        let stored =
            Message::accept(MessageContent::parse("stored".into(), ContentLimit::DEFAULT).unwrap());
        let queued =
            Message::accept(MessageContent::parse("queued".into(), ContentLimit::DEFAULT).unwrap());
        {
            let old = rusqlite::Connection::open(&path).unwrap();
            old.execute_batch(UNVERSIONED_SCHEMA).unwrap();
            old.execute(
                "INSERT INTO messages VALUES (?1, ?2)",
                [stored.id.to_string(), "stored".to_owned()],
            )
            .unwrap();
            old.execute(
                "INSERT INTO queue (message_id, body, sent_at_ms, visible_at_ms) VALUES ('m1', ?1, 1, 1)",
                [QueuedMessage::body_of(&queued)],
            )
            .unwrap();
        }

        let db = SqliteDb::open(&path, Durability::Process).unwrap();
        let version: i64 = rusqlite::Connection::open(&path)
            .unwrap()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        let found = SqliteStore::new(db.clone()).get(stored.id).await.unwrap();
        let received = SqliteQueue::new(db, QueueSettings::PRODUCTION)
            .receive(10, std::time::Duration::ZERO)
            .await
            .unwrap();
        remove_db(&path);

        assert_eq!(version, SqliteDb::SCHEMA_VERSION);
        assert_eq!(found, Some(stored));
        assert_eq!(received.len(), 1);
    }

    #[test]
    fn a_database_from_a_newer_version_is_refused_with_a_clear_error() {
        let path =
            std::env::temp_dir().join(format!("mp-new-{}.db", uuid::Uuid::new_v4().simple()));
        rusqlite::Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", SqliteDb::SCHEMA_VERSION + 1)
            .unwrap();

        let error = SqliteDb::open(&path, Durability::Process).unwrap_err();
        remove_db(&path);

        assert!(format!("{error:#}").contains("newer"), "{error:#}");
    }
}
