//! The operations port and the failure log on the embedded backend's SQLite file: the same
//! contract as [`pipeline::adapters::aws::AwsOperations`], with exact counts and atomic moves (a message
//! leaves the dead-letter table and enters the queue in one transaction).

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{SqliteQueue, SqliteStore};
use pipeline::domain::{
    Attempt, DeadLetterId, Failure, FlowMinute, HistoryWindow, JobId, ATTEMPTS_KEPT_MS,
};
use pipeline::ports::{
    Count, DeadLetterPage, FailureLog, OneDeadLetter, Operations, PipelineStats, PortError,
    PortResult, QueueCounts, RequeueAll,
};

/// The job a dead letter's body names, in SQL: `NULL` for a body that is not JSON.
const JOB_OF_BODY: &str = "CASE WHEN json_valid(body) THEN json_extract(body, '$.job_id') END";

#[async_trait]
impl FailureLog for SqliteStore {
    async fn note(&self, failures: &[Failure]) -> PortResult<()> {
        let failures = failures.to_vec();
        self.db
            .write(move |conn| {
                let tx = conn.transaction()?;
                note_failures(&tx, &failures)?;
                tx.commit()?;
                Ok(())
            })
            .await
            .map_err(PortError::from)
    }

    async fn failure(&self, id: JobId) -> PortResult<Option<Failure>> {
        self.db
            .read(move |conn| read_failure(conn, id))
            .await
            .map_err(PortError::from)
    }

    /// Each in the `attempts` table; those older than [`ATTEMPTS_KEPT_MS`] go as new ones
    /// come, as DynamoDB's TTL removes them.
    async fn note_attempts(&self, attempts: &[Attempt]) -> PortResult<()> {
        let attempts = attempts.to_vec();
        self.db
            .write(move |conn| {
                let tx = conn.transaction()?;
                note_attempts(&tx, &attempts)?;
                tx.commit()?;
                Ok(())
            })
            .await
            .map_err(PortError::from)
    }

    async fn attempts(&self, id: JobId) -> PortResult<Vec<Attempt>> {
        self.db
            .read(move |conn| read_attempts(conn, id))
            .await
            .map_err(PortError::from)
    }
}

/// Notes dead letters' last failures, in the caller's transaction.
pub(super) fn note_failures(tx: &Connection, failures: &[Failure]) -> rusqlite::Result<()> {
    let mut note =
        tx.prepare_cached("INSERT OR REPLACE INTO failures VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?;
    for f in failures {
        note.execute(params![
            f.id.key(),
            f.receive_count,
            f.first_failure_ms as i64,
            f.last_failure_ms as i64,
            f.last_error,
            f.preview
        ])?;
    }
    Ok(())
}

/// Keeps failed attempts, in the caller's transaction; those older than [`ATTEMPTS_KEPT_MS`]
/// go as new ones come, as DynamoDB's TTL removes them.
pub(super) fn note_attempts(tx: &Connection, attempts: &[Attempt]) -> rusqlite::Result<()> {
    let newest = attempts.iter().map(|a| a.at_ms).max().unwrap_or(0);
    let mut keep =
        tx.prepare_cached("INSERT OR IGNORE INTO attempts VALUES (?1, ?2, ?3, ?4, ?5)")?;
    for a in attempts {
        keep.execute(params![
            a.job.to_string(),
            a.receive_count,
            a.at_ms as i64,
            a.class.to_string(),
            a.error
        ])?;
    }
    tx.prepare_cached("DELETE FROM attempts WHERE at_ms < ?1")?
        .execute([newest.saturating_sub(ATTEMPTS_KEPT_MS) as i64])?;
    Ok(())
}

/// The failure noted for a job's dead letter, if any.
pub(super) fn read_failure(conn: &Connection, id: JobId) -> anyhow::Result<Option<Failure>> {
    conn.prepare_cached("SELECT * FROM failures WHERE dead_letter = ?1")?
        .query_row([DeadLetterId::Job(id).key()], failure_of_row)
        .optional()?
        .transpose()
}

/// A job's failed attempts, in the order they happened.
pub(super) fn read_attempts(conn: &Connection, id: JobId) -> anyhow::Result<Vec<Attempt>> {
    let mut select = conn.prepare_cached(
        "SELECT receive_count, at_ms, class, error FROM attempts WHERE job_id = ?1
         ORDER BY receive_count, at_ms",
    )?;
    let rows = select.query_map([id.to_string()], |row| {
        Ok((
            row.get::<_, u32>(0)?,
            row.get::<_, i64>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, String>(3)?,
        ))
    })?;
    rows.map(|row| {
        let (receive_count, at_ms, class, error) = row?;
        Ok(Attempt {
            job: id,
            receive_count,
            at_ms: at_ms.max(0) as u64,
            class: class.parse()?,
            error,
        })
    })
    .collect()
}

fn failure_of_row(row: &Row<'_>) -> rusqlite::Result<anyhow::Result<Failure>> {
    let key: String = row.get("dead_letter")?;
    let receive_count: u32 = row.get("receive_count")?;
    let first: i64 = row.get("first_failure_ms")?;
    let last: i64 = row.get("last_failure_ms")?;
    let last_error: String = row.get("last_error")?;
    let preview: String = row.get("preview")?;
    Ok(DeadLetterId::from_key(&key)
        .ok_or_else(|| anyhow::anyhow!("failure note's key `{key}` names no dead letter"))
        .map(|id| Failure {
            id,
            receive_count,
            first_failure_ms: first.max(0) as u64,
            last_failure_ms: last.max(0) as u64,
            last_error,
            preview,
        }))
}

/// Moves dead letters back into the queue, every job's or `job`'s (raw dead letters stay:
/// they would only fail again): fresh message ids are not needed (a message id is unique
/// across both tables), the receive count starts again, visible at once.
fn move_back(conn: &Connection, now: i64, job: Option<JobId>) -> anyhow::Result<u64> {
    let job = job.map(|id| id.to_string());
    let chosen = format!("({JOB_OF_BODY}) IS NOT NULL AND (?2 IS NULL OR ({JOB_OF_BODY}) = ?2)");
    let moved = conn.execute(
        &format!(
            "INSERT INTO queue (message_id, body, sent_at_ms, visible_at_ms, group_id)
             SELECT message_id, body, ?1, ?1, group_id FROM dead_letters WHERE {chosen}"
        ),
        params![now, job],
    )?;
    super::db::add_to_counter(conn, "queued", moved as i64)?;
    conn.execute(
        &format!(
            "DELETE FROM dead_letters WHERE ({JOB_OF_BODY}) IS NOT NULL AND (?1 IS NULL OR ({JOB_OF_BODY}) = ?1)"
        ),
        params![job],
    )?;
    Ok(moved as u64)
}

/// Commits an action on one dead letter that touched `rows` of the dead-letter table (and
/// its note when `noted`); with no row, nothing is kept and the answer says why.
fn finish_one(
    tx: rusqlite::Transaction<'_>,
    rows: u64,
    noted: bool,
) -> anyhow::Result<OneDeadLetter> {
    match (rows, noted) {
        (0, true) => Ok(OneDeadLetter::NotYetDeadLettered),
        (0, false) => Ok(OneDeadLetter::NotFound),
        _ => {
            tx.commit()?;
            Ok(OneDeadLetter::Done)
        }
    }
}

#[async_trait]
impl Operations for SqliteQueue {
    /// The runner's own counts ([`super::SqliteDb::stats`]), exact, as the API gives
    /// them.
    async fn stats(&self) -> PortResult<PipelineStats> {
        let stats = self.db.stats().await?;
        let whole = |n: i64| n.max(0) as u64;
        let exact = |n: i64| Count {
            count: whole(n),
            approximate: false,
        };
        Ok(PipelineStats {
            queue: QueueCounts {
                visible: whole(stats.queued),
                in_flight: whole(stats.in_flight),
                delayed: whole(stats.delayed),
                oldest_age_seconds: stats.oldest_age_ms.map(|ms| whole(ms) / 1000),
                approximate: false,
            },
            dead_letter_queue: exact(stats.dead_lettered),
            stored: exact(stats.stored),
        })
    }

    /// From the flow the runner keeps beside its queue ([`super::SqliteFlow`]).
    async fn history(&self, window: HistoryWindow) -> PortResult<Vec<FlowMinute>> {
        Ok(super::SqliteFlow::new(self.db.clone())
            .history(window)
            .await?)
    }

    async fn dead_letters(
        &self,
        limit: usize,
        before: Option<DeadLetterId>,
    ) -> PortResult<DeadLetterPage> {
        let before = before.map(|id| id.key());
        self.db
            .read(move |conn| {
                let mut letters = conn
                    .prepare_cached(
                        "SELECT * FROM failures WHERE ?1 IS NULL OR dead_letter < ?1
                         ORDER BY dead_letter DESC LIMIT ?2",
                    )?
                    .query_map(params![before, limit as i64 + 1], failure_of_row)?
                    .collect::<Result<Vec<_>, _>>()?
                    .into_iter()
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let more = letters.len() > limit;
                letters.truncate(limit);
                let next = if more {
                    letters.last().map(|f| f.id.clone())
                } else {
                    None
                };
                Ok(DeadLetterPage { letters, next })
            })
            .await
            .map_err(PortError::from)
    }

    async fn requeue(&self, id: JobId) -> PortResult<OneDeadLetter> {
        let now = self.db.clock.now_ms();
        let outcome = self
            .db
            .write(move |conn| {
                let tx = conn.transaction()?;
                let moved = move_back(&tx, now, Some(id))?;
                let noted = tx.execute(
                    "DELETE FROM failures WHERE dead_letter = ?1",
                    [DeadLetterId::Job(id).key()],
                )? > 0;
                finish_one(tx, moved, noted)
            })
            .await?;
        if outcome == OneDeadLetter::Done {
            self.arrived.notify_waiters();
        }
        Ok(outcome)
    }

    async fn delete_dead_letter(&self, id: DeadLetterId) -> PortResult<OneDeadLetter> {
        self.db
            .write(move |conn| {
                let tx = conn.transaction()?;
                let deleted = match &id {
                    DeadLetterId::Job(job) => tx.execute(
                        &format!("DELETE FROM dead_letters WHERE ({JOB_OF_BODY}) = ?1"),
                        [job.to_string()],
                    )?,
                    DeadLetterId::Raw(message_id) => tx.execute(
                        "DELETE FROM dead_letters WHERE message_id = ?1",
                        [message_id],
                    )?,
                };
                let noted =
                    tx.execute("DELETE FROM failures WHERE dead_letter = ?1", [id.key()])? > 0;
                finish_one(tx, deleted as u64, noted)
            })
            .await
            .map_err(PortError::from)
    }

    /// Every copy of the job in one transaction: queued (a scan of the queue, which is short
    /// when the consumer keeps up; deletes are rare), dead-lettered, and its failure note.
    async fn erase(&self, id: JobId) -> PortResult<()> {
        self.db
            .write(move |conn| {
                let tx = conn.transaction()?;
                let job = id.to_string();
                for table in ["queue", "dead_letters"] {
                    let removed = tx.execute(
                        &format!("DELETE FROM {table} WHERE ({JOB_OF_BODY}) = ?1"),
                        [&job],
                    )?;
                    if table == "queue" {
                        super::db::add_to_counter(&tx, "queued", -(removed as i64))?;
                    }
                }
                tx.execute(
                    "DELETE FROM failures WHERE dead_letter = ?1",
                    [DeadLetterId::Job(id).key()],
                )?;
                tx.commit()?;
                Ok(())
            })
            .await
            .map_err(PortError::from)
    }

    async fn requeue_all(&self, _budget: Duration) -> PortResult<RequeueAll> {
        let now = self.db.clock.now_ms();
        let moved = self
            .db
            .write(move |conn| {
                let tx = conn.transaction()?;
                let moved = move_back(&tx, now, None)?;
                let left: i64 =
                    tx.query_row("SELECT count(*) FROM dead_letters", [], |r| r.get(0))?;
                tx.execute(
                    "DELETE FROM failures WHERE dead_letter NOT LIKE 'raw:%'",
                    [],
                )?;
                tx.commit()?;
                Ok((moved, left))
            })
            .await?;
        let (moved, left) = (moved.0, moved.1.max(0) as u64);
        self.arrived.notify_waiters();
        Ok(RequeueAll {
            moved,
            done: true,
            move_task: None,
            left,
        })
    }

    async fn purge_dead_letters(&self) -> PortResult<()> {
        self.db
            .write(|conn| {
                let tx = conn.transaction()?;
                tx.execute("DELETE FROM dead_letters", [])?;
                tx.execute("DELETE FROM failures", [])?;
                tx.commit()?;
                Ok(())
            })
            .await
            .map_err(PortError::from)
    }
}
