//! The data's lifecycle on the embedded backend: the keys that tag job ids (kept with the
//! data, so a restart keeps every id valid), and the pruner that removes expired messages
//! and old tombstones in the background.

use std::sync::Arc;
use std::time::Duration;

use rusqlite::params;
use tokio::sync::watch;

use super::SqliteDb;
use pipeline::domain::JobIdKeys;

/// Rows a prune transaction deletes at most: small enough that the writer lock is held for a
/// few milliseconds, so enqueues wait no longer than that (BENCHMARKS.md, "Retention").
pub const PRUNE_BATCH: usize = 1000;
/// How often the pruner looks for expired rows once it found none.
const PRUNE_EVERY: Duration = Duration::from_secs(10);
/// The pause between two full batches: at most 50,000 rows a second, more than twice the
/// fastest drain measured (so it keeps up with whatever expires), while enqueues keep most of
/// the writer (BENCHMARKS.md, "Retention").
const PRUNE_PAUSE: Duration = Duration::from_millis(20);

impl SqliteDb {
    /// The keys of this database's job ids: the newest tags, the one before it is still
    /// accepted (a rotation's grace), and ids from before the database had keys are admitted
    /// untagged. The first call makes a key; `rotate` makes a new one and keeps two.
    pub async fn job_id_keys(self: &Arc<Self>, rotate: bool) -> anyhow::Result<JobIdKeys> {
        let clock = self.clock.clone();
        self.write(move |conn| {
            let tx = conn.transaction()?;
            let count: i64 = tx.query_row("SELECT count(*) FROM job_id_keys", [], |r| r.get(0))?;
            if count == 0 || rotate {
                // Never two keys of one millisecond: the newest must be the newest.
                let newest: i64 = tx.query_row(
                    "SELECT coalesce(max(created_at_ms), 0) FROM job_id_keys",
                    [],
                    |r| r.get(0),
                )?;
                tx.execute(
                    "INSERT INTO job_id_keys VALUES (?1, ?2)",
                    params![clock.now_ms().max(newest + 1), new_secret()],
                )?;
                tx.execute(
                    "DELETE FROM job_id_keys WHERE created_at_ms NOT IN
                     (SELECT created_at_ms FROM job_id_keys ORDER BY created_at_ms DESC LIMIT 2)",
                    [],
                )?;
            }
            let secrets: Vec<String> = tx
                .prepare("SELECT secret FROM job_id_keys ORDER BY created_at_ms DESC")?
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let untagged_until: i64 =
                tx.query_row("SELECT until_ms FROM untagged_job_ids", [], |r| r.get(0))?;
            tx.commit()?;
            let keys = JobIdKeys::from_secrets(&secrets[0], secrets.get(1).map(String::as_str))?;
            Ok(keys.admitting_untagged_before(u64::try_from(untagged_until).unwrap_or(0)))
        })
        .await
    }

    /// Deletes up to [`PRUNE_BATCH`] expired messages and as many tombstones past their
    /// keeping, in one short transaction; returns how many rows went.
    pub async fn prune_once(self: &Arc<Self>) -> anyhow::Result<usize> {
        let now = self.clock.now_ms();
        self.write(move |conn| {
            let tx = conn.transaction()?;
            let messages = tx
                .prepare_cached(
                    "DELETE FROM messages WHERE id IN (SELECT id FROM messages
                     WHERE expires_at_ms IS NOT NULL AND expires_at_ms <= ?1 LIMIT ?2)",
                )?
                .execute(params![now, PRUNE_BATCH as i64])?;
            super::store::count_stored(&tx, -(messages as i64))?;
            let tombstones = tx
                .prepare_cached(
                    "DELETE FROM deleted_jobs WHERE id IN (SELECT id FROM deleted_jobs
                     WHERE keep_until_ms <= ?1 LIMIT ?2)",
                )?
                .execute(params![now, PRUNE_BATCH as i64])?;
            tx.commit()?;
            Ok(messages + tombstones)
        })
        .await
    }

    /// Prunes until `stop` turns true: batch after batch while there is work ([`PRUNE_PAUSE`]
    /// between them), every [`PRUNE_EVERY`] once there is none.
    pub async fn run_pruner(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        while !*stop.borrow() {
            let pruned = match self.prune_once().await {
                Ok(pruned) => pruned,
                Err(error) => {
                    tracing::warn!(
                        error = format!("{error:#}"),
                        "pruning expired messages failed"
                    );
                    0
                }
            };
            if pruned > 0 {
                tracing::debug!(pruned, "pruned expired messages and tombstones");
            }
            let pause = if pruned > 0 { PRUNE_PAUSE } else { PRUNE_EVERY };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.changed() => {}
            }
        }
    }
}

fn new_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}
