//! The store: messages kept, read back newest first, and the consumer's failure notes.

use std::sync::Arc;

use anyhow::{anyhow, Context as _};
use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

use super::db::SqliteDb;
use pipeline::domain::{
    Attributes, ContentLimit, Cursor, JobId, Message, MessageContent, Page, PageLimit,
};
use pipeline::ports::{MessageStore, PortError, PortResult, PutBatchError};

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
            .map_err(|cause| PutBatchError::all(messages, cause.into()))?;
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

    async fn get(&self, id: JobId) -> PortResult<Option<Message>> {
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
            .map_err(PortError::from)
    }

    async fn list(&self, limit: PageLimit, before: Option<JobId>) -> PortResult<Page> {
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
            .map_err(PortError::from)
    }
}
