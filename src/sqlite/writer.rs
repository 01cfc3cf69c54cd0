//! The queue's writer thread: sends in group commits, and the consumer's batches, taking turns.
//!
//! SQLite has one writer at a time. With the sends' group commits on one thread and each
//! consumer batch handed to the blocking pool, a batch cost two thread wake-ups and a lock
//! taken from the other thread, and a quarter of the drain's CPU went to waking and switching
//! threads (BENCHMARKS.md, "The runner against this machine's limit"). Here one thread does
//! both, in turns: every send waiting is committed, then one batch of each consumer at work,
//! then the sends that came meanwhile. Neither starves the other (a lock handed between two
//! busy threads need not be), and a consumer's batches follow each other with no hand-off
//! until the queue has nothing due or its turn (a tenth of a second) is over.

use std::sync::{mpsc, Arc};
use std::time::Instant;

use tokio::sync::{oneshot, Notify};

use super::batch::{BatchInOneTransaction, Tried};
use super::db::{lock, SqliteDb};
use super::queue::{insert_group, PendingSend};

/// Most sends one group commit takes.
const GROUP_COMMIT_MAX: usize = 1024;

/// Work for the writer thread.
pub(super) enum Job {
    Send(PendingSend),
    Drain(DrainRequest),
}

/// A consumer's turn: batches of at most `max` records until nothing is due or `until`. The
/// first batch is taken only if at least `least` records are due, each later one only if
/// `later_least` are (a batching window waits for full batches).
pub(super) struct DrainRequest {
    pub(super) consumer: BatchInOneTransaction,
    pub(super) max: usize,
    pub(super) least: usize,
    pub(super) later_least: usize,
    pub(super) until: Instant,
    pub(super) done: oneshot::Sender<anyhow::Result<Drained>>,
}

/// What a consumer's turn did.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Drained {
    pub(super) batches: usize,
    pub(super) records: usize,
    /// When no batch was taken: how many records were due.
    pub(super) due: usize,
}

/// Starts the writer thread; it ends when the queue, and with it the last sender, is dropped.
pub(super) fn spawn(db: Arc<SqliteDb>, arrived: Arc<Notify>) -> mpsc::Sender<Job> {
    let (jobs, waiting) = mpsc::channel::<Job>();
    std::thread::spawn(move || {
        let mut draining: Vec<(DrainRequest, Drained)> = Vec::new();
        loop {
            let mut sends = Vec::new();
            let idle = draining.is_empty();
            let mut take = |job: Job, sends: &mut Vec<PendingSend>| match job {
                Job::Send(send) => sends.push(send),
                Job::Drain(request) => draining.push((request, Drained::default())),
            };
            // Waits for work only when no consumer is at work.
            if idle {
                match waiting.recv() {
                    Ok(job) => take(job, &mut sends),
                    Err(mpsc::RecvError) => return,
                }
            }
            while sends.len() < GROUP_COMMIT_MAX {
                match waiting.try_recv() {
                    Ok(job) => take(job, &mut sends),
                    Err(_) => break,
                }
            }
            if !sends.is_empty() {
                commit(&db, sends);
                arrived.notify_waiters();
            }
            draining = std::mem::take(&mut draining)
                .into_iter()
                .filter_map(|(request, drained)| one_batch(&db, request, drained))
                .collect();
        }
    });
    jobs
}

/// Sends arriving together share one transaction (group commit): under load, hundreds of
/// 202s cost one commit, which is what makes the embedded queue keep up with HTTP. Each
/// sender is answered only after the commit that holds its message.
fn commit(db: &SqliteDb, sends: Vec<PendingSend>) {
    let committed = insert_group(&mut lock(&db.writer), &sends, db.clock.now_ms())
        .map_err(|e| format!("{e:#}"));
    for send in sends {
        // A sender that gave up waiting needs no answer.
        let _ = send.done.send(committed.clone());
    }
}

/// Handles one batch of a consumer's turn; returns the turn if it goes on, or answers it.
fn one_batch(
    db: &SqliteDb,
    request: DrainRequest,
    mut drained: Drained,
) -> Option<(DrainRequest, Drained)> {
    let least = if drained.batches == 0 {
        request.least
    } else {
        request.later_least
    };
    let outcome = request
        .consumer
        .handle_in_transaction(&mut lock(&db.writer), request.max, least);
    let answer = match outcome {
        Ok(Tried::Handled(records)) => {
            drained.batches += 1;
            drained.records += records;
            if Instant::now() < request.until {
                return Some((request, drained));
            }
            Ok(drained)
        }
        Ok(Tried::Waiting { due }) => {
            drained.due = due;
            Ok(drained)
        }
        // The batches already handled are committed: said, and the error is met again next turn.
        Err(error) if drained.batches > 0 => {
            tracing::error!(error = ?error, "a consumer batch failed; it comes back");
            Ok(drained)
        }
        Err(error) => Err(error),
    };
    // A consumer that stopped waiting needs no answer.
    let _ = request.done.send(answer);
    None
}
