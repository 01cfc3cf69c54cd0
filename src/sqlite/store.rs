//! The store: messages kept, read back newest first, and the consumer's failure notes.
//!
//! A deleted job leaves a row in `deleted_jobs`, which the insert of a later delivery checks
//! in the same statement; an expired message is left out of every read from its expiry on,
//! and the pruner ([`SqliteDb::run_pruner`]) removes it.

use std::sync::Arc;

use anyhow::{anyhow, Context as _};
use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

use super::db::SqliteDb;
use pipeline::domain::{
    Attributes, ContentLimit, Cursor, Deletion, JobId, Lookup, Message, MessageContent,
    MessageRetention, Page, PageLimit, TOMBSTONE_KEPT,
};
use pipeline::ports::{MessageStore, PortError, PortResult, PutBatchError};

/// The store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(super) db: Arc<SqliteDb>,
    pub(super) retention: MessageRetention,
}

impl SqliteStore {
    pub fn new(db: Arc<SqliteDb>) -> Self {
        Self {
            db,
            retention: MessageRetention::FOREVER,
        }
    }

    /// Messages it stores from now on expire after `retention`.
    pub fn with_retention(mut self, retention: MessageRetention) -> Self {
        self.retention = retention;
        self
    }
}

/// Keeps the count of stored messages (`counters`) in step with a write to `messages`, in
/// the write's transaction.
pub(super) fn count_stored(tx: &rusqlite::Connection, change: i64) -> rusqlite::Result<()> {
    super::db::add_to_counter(tx, "stored", change)
}

/// Stores `messages` in the caller's transaction, first write wins; returns the jobs
/// refused (stored before with other content). A job that was deleted is not stored again.
pub(super) fn put_messages(
    tx: &rusqlite::Connection,
    messages: &[Message],
    retention: MessageRetention,
    now_ms: u64,
) -> rusqlite::Result<Vec<JobId>> {
    let expires_at = retention.expires_at_ms(now_ms).map(|ms| ms as i64);
    // A tombstone wins in the insert itself: a deleted job is not stored again.
    let mut insert = tx.prepare_cached(
        "INSERT INTO messages (id, content, attributes, expires_at_ms)
         SELECT ?1, ?2, ?3, ?4 WHERE NOT EXISTS (SELECT 1 FROM deleted_jobs WHERE id = ?1)
         ON CONFLICT (id) DO NOTHING",
    )?;
    let mut stored = tx.prepare_cached("SELECT content FROM messages WHERE id = ?1")?;
    let mut refused = Vec::new();
    let mut inserted = 0;
    for message in messages {
        let key = message.id.to_string();
        let content = message.content.as_str();
        let attributes = attributes_column(&message.attributes);
        let added = insert.execute(params![key, content, attributes, expires_at])?;
        inserted += added;
        if added == 0 {
            // Stored before, or deleted (no row: nothing to compare, done).
            let kept: Option<String> = stored.query_row([&key], |r| r.get(0)).optional()?;
            if kept.is_some_and(|kept| kept != content) {
                refused.push(message.id);
            }
        }
    }
    count_stored(tx, inserted as i64).map(|()| refused)
}

/// What the store holds for `id` at `now`.
pub(super) fn lookup(conn: &rusqlite::Connection, id: JobId, now: i64) -> anyhow::Result<Lookup> {
    let key = id.to_string();
    let deleted: Option<i64> = conn
        .prepare_cached("SELECT deleted_at_ms FROM deleted_jobs WHERE id = ?1")?
        .query_row([&key], |r| r.get(0))
        .optional()?;
    if let Some(at_ms) = deleted {
        return Ok(Lookup::Deleted {
            at_ms: u64::try_from(at_ms).unwrap_or(0),
        });
    }
    let sql = format!("SELECT content, attributes, {LIVE} FROM messages WHERE id = :id");
    let row = conn
        .prepare_cached(&sql)?
        .query_row(rusqlite::named_params! {":id": key, ":now": now}, |r| {
            Ok((r.get::<_, String>(0)?, r.get(1)?, r.get::<_, bool>(2)?))
        })
        .optional()?;
    match row {
        None => Ok(Lookup::Absent),
        Some((_, _, false)) => Ok(Lookup::Expired),
        Some((content, attributes, true)) => {
            Ok(Lookup::Stored(message_from_row(key, content, attributes)?))
        }
    }
}

/// What the consumer is told of the jobs [`put_messages`] refused.
pub(super) fn refusal(refused: Vec<JobId>) -> Result<(), PutBatchError> {
    if refused.is_empty() {
        return Ok(());
    }
    tracing::warn!(
        jobs = refused.len(),
        "repeats of stored jobs with other content were refused; the stored messages are kept"
    );
    Err(PutBatchError::each(
        refused,
        PortError::permanent(anyhow!(
            "the job is stored with other content; a stored message is never rewritten"
        )),
    ))
}

/// Rows a read shows: not expired at `?now`.
const LIVE: &str = "(expires_at_ms IS NULL OR expires_at_ms > :now)";

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
        let owned = messages.to_vec();
        let (clock, retention) = (self.db.clock.clone(), self.retention);
        let refused = self
            .db
            .write(move |conn| {
                let tx = conn.transaction()?;
                let refused = put_messages(&tx, &owned, retention, clock.now_ms_u64())?;
                tx.commit()?;
                Ok(refused)
            })
            .await
            .map_err(|cause| PutBatchError::all(messages, cause.into()))?;
        refusal(refused)
    }

    async fn lookup(&self, id: JobId) -> PortResult<Lookup> {
        let now = self.db.clock.now_ms();
        self.db
            .read(move |conn| lookup(conn, id, now))
            .await
            .map_err(PortError::from)
    }

    /// One transaction: the tombstone, and the message's row gone with it.
    async fn delete(&self, id: JobId) -> PortResult<Deletion> {
        let clock = self.db.clock.clone();
        self.db
            .write(move |conn| {
                let now = clock.now_ms();
                let key = id.to_string();
                let tx = conn.transaction()?;
                let deleted: Option<i64> = tx
                    .query_row(
                        "SELECT deleted_at_ms FROM deleted_jobs WHERE id = ?1",
                        [&key],
                        |r| r.get(0),
                    )
                    .optional()?;
                if let Some(at_ms) = deleted {
                    return Ok(Deletion::AlreadyDeleted {
                        at_ms: u64::try_from(at_ms).unwrap_or(0),
                    });
                }
                tx.execute(
                    "INSERT INTO deleted_jobs VALUES (?1, ?2, ?3)",
                    params![key, now, now + TOMBSTONE_KEPT.as_millis() as i64],
                )?;
                let removed = tx.execute("DELETE FROM messages WHERE id = ?1", [&key])?;
                count_stored(&tx, -(removed as i64))?;
                tx.commit()?;
                Ok(Deletion::Deleted {
                    at_ms: u64::try_from(now).unwrap_or(0),
                })
            })
            .await
            .map_err(PortError::from)
    }

    async fn list(&self, limit: PageLimit, before: Option<JobId>) -> PortResult<Page> {
        let now = self.db.clock.now_ms();
        self.db
            .read(move |conn| {
                // Two statements, not `?1 IS NULL OR id < ?1`: with the OR, SQLite cannot use
                // the primary key's range and scans from the newest row to the cursor, so deep
                // pages cost in proportion to their depth (BENCHMARKS.md, "Listing").
                let wanted = limit.get() as i64 + 1;
                let row = |r: &rusqlite::Row<'_>| Ok((r.get(0)?, r.get(1)?, r.get(2)?));
                let rows: Vec<(String, String, Option<String>)> = match before {
                    None => conn
                        .prepare_cached(&format!(
                            "SELECT id, content, attributes FROM messages WHERE {LIVE} ORDER BY id DESC LIMIT :wanted"
                        ))?
                        .query_map(rusqlite::named_params! {":now": now, ":wanted": wanted}, row)?
                        .collect::<Result<_, _>>()?,
                    Some(before) => conn
                        .prepare_cached(&format!(
                            "SELECT id, content, attributes FROM messages WHERE id < :before AND {LIVE} ORDER BY id DESC LIMIT :wanted"
                        ))?
                        .query_map(
                            rusqlite::named_params! {":before": before.to_string(), ":now": now, ":wanted": wanted},
                            row,
                        )?
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
            .map_err(PortError::from)
    }
}
