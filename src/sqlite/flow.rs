//! The runner's flow history, minute by minute, in the same file as its queue and store:
//! enqueued counts in the send's own transaction, the consumer's outcome and latencies
//! gathered in memory and written at most once a second ([`FlowLog`]: a write transaction a
//! batch cost the drain a quarter of its rate), the backlog sampled
//! ([`SqliteFlow::sample_backlog`]). A day is kept; older minutes go as new ones come. What a
//! kill loses is the last second of these counts, never a message.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::{params, Connection};

use super::SqliteDb;
use pipeline::domain::{latency, minute_of, BatchFlow, FlowMinute, HistoryWindow, MINUTE_MS};
use pipeline::ports::{FlowLog, PortResult};

/// How long minutes are kept: what the longest history window asks for.
const KEPT_MS: i64 = HistoryWindow::MAX_MINUTES as i64 * MINUTE_MS as i64;

/// Adds `enqueued` to the minute of `now_ms`, in the caller's transaction.
pub(super) fn add_enqueued(conn: &Connection, now_ms: i64, enqueued: i64) -> rusqlite::Result<()> {
    if enqueued > 0 {
        conn.prepare_cached(
            "INSERT INTO flow_minutes (minute_ms, enqueued) VALUES (?1, ?2)
             ON CONFLICT (minute_ms) DO UPDATE SET enqueued = enqueued + ?2",
        )?
        .execute(params![minute_ms(now_ms), enqueued])?;
    }
    Ok(())
}

fn minute_ms(ms: i64) -> i64 {
    minute_of(ms.max(0) as u64) as i64
}

/// The flow of a runner's consumer, kept in its database.
#[derive(Debug, Clone)]
pub struct SqliteFlow {
    db: Arc<SqliteDb>,
}

/// Batches not written yet, and when the last write was: kept with the database, so that
/// every reader of the history flushes what any writer gathered.
#[derive(Debug, Default)]
pub(super) struct Pending {
    batches: Vec<BatchFlow>,
    written_ms: i64,
}

/// How long batch flows wait in memory at most before they are written.
const FLUSH_EVERY_MS: i64 = 1000;

impl SqliteFlow {
    pub fn new(db: Arc<SqliteDb>) -> Self {
        Self { db }
    }

    /// Writes the batches gathered so far, in one transaction.
    pub async fn flush(&self) -> anyhow::Result<()> {
        let batches = {
            let mut pending = super::db::lock(&self.db.flow_pending);
            pending.written_ms = self.db.clock.now_ms();
            std::mem::take(&mut pending.batches)
        };
        self.write(batches).await
    }

    async fn write(&self, batches: Vec<BatchFlow>) -> anyhow::Result<()> {
        if batches.is_empty() {
            return Ok(());
        }
        self.db
            .write(move |conn| {
                let tx = conn.transaction()?;
                write_batches(&tx, &batches)?;
                tx.commit()?;
                Ok(())
            })
            .await
    }

    /// Notes the queue's depth now in its minute (the most seen in the minute stays), and
    /// forgets minutes older than a day. The runner calls it every few seconds.
    pub async fn sample_backlog(&self) -> anyhow::Result<()> {
        self.flush().await?;
        let now = self.db.clock.now_ms();
        self.db
            .write(move |conn| {
                let tx = conn.transaction()?;
                let waiting: i64 = tx.query_row(
                    "SELECT count(*) FROM queue WHERE visible_at_ms <= ?1",
                    [now],
                    |r| r.get(0),
                )?;
                tx.execute(
                    "INSERT INTO flow_minutes (minute_ms, backlog) VALUES (?1, ?2)
                     ON CONFLICT (minute_ms) DO UPDATE SET backlog = max(coalesce(backlog, 0), ?2)",
                    params![minute_ms(now), waiting],
                )?;
                let oldest_kept = minute_ms(now) - KEPT_MS;
                tx.execute(
                    "DELETE FROM flow_minutes WHERE minute_ms <= ?1",
                    [oldest_kept],
                )?;
                tx.execute(
                    "DELETE FROM flow_latencies WHERE minute_ms <= ?1",
                    [oldest_kept],
                )?;
                tx.commit()?;
                Ok(())
            })
            .await
    }

    /// The last `window` minutes, oldest first, each present.
    pub async fn history(&self, window: HistoryWindow) -> anyhow::Result<Vec<FlowMinute>> {
        self.flush().await?;
        let now = self.db.clock.now_ms().max(0) as u64;
        let starts: Vec<u64> = window.minute_starts(now).collect();
        let first = starts[0] as i64;
        let (rows, buckets) = self
            .db
            .read(move |conn| {
                let mut rows = HashMap::new();
                let mut select = conn.prepare_cached(
                    "SELECT minute_ms, enqueued, stored, failed_transient, failed_deployment,
                            failed_permanent, dead_lettered, backlog
                     FROM flow_minutes WHERE minute_ms >= ?1",
                )?;
                let mut found = select.query([first])?;
                while let Some(row) = found.next()? {
                    let count = |i| row.get::<_, i64>(i).map(|n| n.max(0) as u64);
                    let start_ms = count(0)?;
                    let backlog: Option<i64> = row.get(7)?;
                    rows.insert(
                        start_ms,
                        FlowMinute {
                            start_ms,
                            enqueued: count(1)?,
                            stored: count(2)?,
                            failed_transient: count(3)?,
                            failed_deployment: count(4)?,
                            failed_permanent: count(5)?,
                            dead_lettered: count(6)?,
                            backlog: backlog.map(|n| n.max(0) as u64),
                            ..FlowMinute::default()
                        },
                    );
                }
                let mut buckets: HashMap<u64, Vec<(u32, u64)>> = HashMap::new();
                let mut select = conn.prepare_cached(
                    "SELECT minute_ms, bucket, count FROM flow_latencies WHERE minute_ms >= ?1",
                )?;
                let mut found = select.query([first])?;
                while let Some(row) = found.next()? {
                    let (minute, bucket, count): (i64, u32, i64) =
                        (row.get(0)?, row.get(1)?, row.get(2)?);
                    buckets
                        .entry(minute as u64)
                        .or_default()
                        .push((bucket, count.max(0) as u64));
                }
                Ok((rows, buckets))
            })
            .await?;
        Ok(starts
            .into_iter()
            .map(|start_ms| {
                let mut minute = rows.get(&start_ms).cloned().unwrap_or(FlowMinute {
                    start_ms,
                    ..FlowMinute::default()
                });
                if let Some(buckets) = buckets.get(&start_ms) {
                    minute.latency_p50_ms = latency::percentile(buckets, 0.50);
                    minute.latency_p99_ms = latency::percentile(buckets, 0.99);
                }
                minute
            })
            .collect())
    }
}

#[async_trait]
impl FlowLog for SqliteFlow {
    async fn record(&self, batch: &BatchFlow) -> PortResult<()> {
        if let Some(due) = gather(&self.db, batch) {
            self.write(due).await?;
        }
        Ok(())
    }
}

/// Adds `batch` to those waiting in memory; when they are due to be written (a second after
/// the last write), takes them all, for the caller to write.
pub(super) fn gather(db: &SqliteDb, batch: &BatchFlow) -> Option<Vec<BatchFlow>> {
    let mut pending = super::db::lock(&db.flow_pending);
    pending.batches.push(batch.clone());
    if (batch.at_ms as i64) < pending.written_ms + FLUSH_EVERY_MS {
        return None;
    }
    pending.written_ms = db.clock.now_ms();
    Some(std::mem::take(&mut pending.batches))
}

/// Adds batches' outcomes and latencies to their minutes, in the caller's transaction.
pub(super) fn write_batches(tx: &Connection, batches: &[BatchFlow]) -> rusqlite::Result<()> {
    batches.iter().try_for_each(|batch| write_batch(tx, batch))
}

/// Adds one batch's outcome and latencies to its minute, in the caller's transaction.
fn write_batch(tx: &Connection, batch: &BatchFlow) -> rusqlite::Result<()> {
    let minute = minute_ms(batch.at_ms as i64);
    tx.prepare_cached(
        "INSERT INTO flow_minutes (minute_ms, stored, failed_transient,
             failed_deployment, failed_permanent, dead_lettered)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (minute_ms) DO UPDATE SET
             stored = stored + ?2, failed_transient = failed_transient + ?3,
             failed_deployment = failed_deployment + ?4,
             failed_permanent = failed_permanent + ?5,
             dead_lettered = dead_lettered + ?6",
    )?
    .execute(params![
        minute,
        batch.stored as i64,
        batch.failed_transient as i64,
        batch.failed_deployment as i64,
        batch.failed_permanent as i64,
        batch.dead_lettered as i64,
    ])?;
    let mut counts: HashMap<u32, i64> = HashMap::new();
    for &ms in &batch.latencies_ms {
        *counts.entry(latency::bucket(ms)).or_default() += 1;
    }
    let mut add = tx.prepare_cached(
        "INSERT INTO flow_latencies (minute_ms, bucket, count) VALUES (?1, ?2, ?3)
         ON CONFLICT (minute_ms, bucket) DO UPDATE SET count = count + ?3",
    )?;
    for (bucket, count) in counts {
        add.execute(params![minute, bucket, count])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::sqlite::{Durability, SqliteQueue};
    use pipeline::clock::ManualClock;
    use pipeline::domain::{ContentLimit, Message, MessageContent};
    use pipeline::ports::{MessageQueue as _, QueueSettings};

    #[tokio::test]
    async fn a_minute_holds_its_sends_its_batches_its_backlog_and_latency_percentiles() {
        let path = std::env::temp_dir().join(format!("mp-flow-{}.db", uuid::Uuid::new_v4()));
        // Five seconds into a minute, so that the minute does not turn during the test.
        let start = 1_800_000_005_000;
        let clock = Arc::new(ManualClock::at(start));
        let db = SqliteDb::open_with(&path, Durability::Process, |_| {
            clock.clone() as Arc<dyn pipeline::clock::Clock>
        })
        .unwrap();
        let settings = QueueSettings {
            visibility_timeout: Duration::from_secs(30),
            max_receive_count: 3,
        };
        let queue = SqliteQueue::new(db.clone(), settings);
        let flow = SqliteFlow::new(db.clone());
        for content in ["a", "b", "c"] {
            let content = MessageContent::parse(content.into(), ContentLimit::DEFAULT).unwrap();
            queue.send(&Message::accept(content)).await.unwrap();
        }
        flow.sample_backlog().await.unwrap();
        flow.record(&BatchFlow {
            at_ms: start as u64 + 1_000,
            stored: 2,
            failed_transient: 1,
            latencies_ms: (1..=100).collect(),
            ..BatchFlow::default()
        })
        .await
        .unwrap();
        clock.advance(Duration::from_secs(60));
        flow.record(&BatchFlow {
            at_ms: start as u64 + 61_000,
            failed_permanent: 1,
            dead_lettered: 1,
            ..BatchFlow::default()
        })
        .await
        .unwrap();

        let window = HistoryWindow::minutes("3").unwrap();
        let mut minutes = flow.history(window).await.unwrap();
        // 1 to 100 ms, one each: the histogram's p50 and p99 within its 2.5 %.
        let p50 = minutes[1].latency_p50_ms.take().unwrap();
        let p99 = minutes[1].latency_p99_ms.take().unwrap();
        assert!(
            (48..=52).contains(&p50) && (96..=102).contains(&p99),
            "{p50} {p99}"
        );
        let first_minute = minute_of(start as u64);
        let expected = [
            FlowMinute {
                start_ms: first_minute - MINUTE_MS,
                ..FlowMinute::default()
            },
            FlowMinute {
                start_ms: first_minute,
                enqueued: 3,
                stored: 2,
                failed_transient: 1,
                backlog: Some(3),
                ..FlowMinute::default()
            },
            FlowMinute {
                start_ms: first_minute + MINUTE_MS,
                failed_permanent: 1,
                dead_lettered: 1,
                ..FlowMinute::default()
            },
        ];
        assert_eq!(minutes, expected);

        // A day later the old minutes are gone from the file, not only from the window.
        clock.advance(Duration::from_secs(24 * 3600));
        flow.sample_backlog().await.unwrap();
        let kept = db
            .read(|conn| {
                let count = |table| {
                    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| {
                        r.get::<_, i64>(0)
                    })
                };
                Ok((count("flow_minutes")?, count("flow_latencies")?))
            })
            .await
            .unwrap();
        assert_eq!(kept, (1, 0), "only the minute just sampled");
        for suffix in ["", "-wal", "-shm"] {
            std::fs::remove_file(format!("{}{suffix}", path.display())).ok();
        }
    }
}
