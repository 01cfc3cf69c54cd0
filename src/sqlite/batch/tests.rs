//! A batch handled in one transaction leaves the file as the same batch handled over the
//! ports (receive, store, note, back off, dead-letter, delete: each its own call) leaves it.

use std::path::PathBuf;

use super::*;
use crate::event_source::{ConsumerParts, OverPorts};
use crate::sqlite::{Durability, SqliteFlow};
use pipeline::clock::{Clock, ManualClock};
use pipeline::domain::{ContentLimit, MessageContent, QueuedMessage};
use pipeline::ports::{MessageQueue as _, QueueSettings};
use pipeline::worker::{LastFailureNotes, Retries};

/// Five seconds into a minute, so that the flow's minute does not turn within a step.
const START_MS: i64 = 1_800_000_005_000;
const MAX_RECEIVES: u32 = 2;
/// Far longer than any backoff here: a row hidden for it was not backed off.
const VISIBILITY: Duration = Duration::from_secs(3600);

/// Each table's rows, as [`File::tables`] reads them.
type Tables = Vec<Vec<String>>;

struct File {
    path: PathBuf,
    clock: Arc<ManualClock>,
    db: Arc<SqliteDb>,
    queue: Arc<SqliteQueue>,
    store: Arc<SqliteStore>,
}

impl File {
    fn open() -> Self {
        let path = std::env::temp_dir().join(format!("mp-batch-{}.db", uuid::Uuid::new_v4()));
        let clock = Arc::new(ManualClock::at(START_MS));
        let db = SqliteDb::open_with(&path, Durability::Process, |_| {
            clock.clone() as Arc<dyn Clock>
        })
        .unwrap();
        let settings = QueueSettings {
            visibility_timeout: VISIBILITY,
            max_receive_count: MAX_RECEIVES,
        };
        let queue = Arc::new(SqliteQueue::new(db.clone(), settings));
        let store = Arc::new(SqliteStore::new(db.clone()));
        Self {
            path,
            clock,
            db,
            queue,
            store,
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy::new(1, 2).unwrap()
    }

    fn over_ports(&self) -> Arc<dyn Batches> {
        Arc::new(OverPorts {
            source: self.queue.clone(),
            parts: ConsumerParts {
                store: self.store.clone(),
                notes: Some(LastFailureNotes {
                    log: self.store.clone(),
                    max_receive_count: MAX_RECEIVES,
                }),
                retries: Some(Retries {
                    redrive: self.queue.clone(),
                    policy: Self::policy(),
                    max_receive_count: MAX_RECEIVES,
                }),
                flow: Some(Arc::new(SqliteFlow::new(self.db.clone()))),
            },
        })
    }

    fn in_one_transaction(&self) -> Arc<dyn Batches> {
        Arc::new(BatchInOneTransaction::new(
            self.queue.clone(),
            &self.store,
            Self::policy(),
        ))
    }

    /// Every table a batch writes, without the ids and times each run makes afresh.
    async fn tables(&self) -> Tables {
        SqliteFlow::new(self.db.clone()).flush().await.unwrap();
        let now = self.clock.now_ms();
        self.db
            .read(move |conn| {
                let rows = |sql: &str| -> anyhow::Result<Vec<String>> {
                    let mut select = conn.prepare(sql)?;
                    let params: &[i64] = if sql.contains("?1") { &[now] } else { &[] };
                    let mut rows: Vec<String> = select
                        .query_map(rusqlite::params_from_iter(params), |r| r.get(0))?
                        .collect::<Result<_, _>>()?;
                    rows.sort();
                    Ok(rows)
                };
                Ok(vec![
                    rows("SELECT content FROM messages")?,
                    // Hidden: for a backoff (at most the policy's 2 s) or the visibility timeout.
                    rows("SELECT substr(body, 1, 12) || ' received ' || receive_count || CASE
                              WHEN visible_at_ms <= ?1 THEN ' visible'
                              WHEN visible_at_ms <= ?1 + 2000 THEN ' backed off'
                              ELSE ' hidden' END FROM queue")?,
                    rows("SELECT substr(body, 1, 12) || ' received ' || receive_count FROM dead_letters")?,
                    rows("SELECT receive_count || ' ' || last_error || ' ' || preview FROM failures")?,
                    rows("SELECT receive_count || ' ' || class || ' ' || error FROM attempts")?,
                    rows("SELECT sum(stored) || ' ' || sum(failed_transient) || ' ' || sum(failed_deployment) || ' '
                              || sum(failed_permanent) || ' ' || sum(dead_lettered) FROM flow_minutes")?,
                    rows("SELECT CAST(n AS TEXT) FROM counters WHERE name = 'stored'")?,
                    rows("SELECT (SELECT n FROM counters WHERE name = 'queued') || ' counted, '
                              || (SELECT count(*) FROM queue) || ' rows'")?,
                ])
            })
            .await
            .unwrap()
    }
}

impl Drop for File {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.path.display()));
        }
    }
}

fn job(content: &str) -> Message {
    Message::accept(MessageContent::parse(content.into(), ContentLimit::DEFAULT).unwrap())
}

/// Two good jobs, a body that is no envelope (dead-lettered at once), and an envelope of a
/// version this consumer does not know (retried with backoff, then dead-lettered), handled in
/// three batches a minute apart; the tables after the first batch and after the last.
async fn scenario(file: &File, batches: Arc<dyn Batches>) -> (Vec<usize>, Vec<Tables>) {
    file.queue.send(&job("first")).await.unwrap();
    file.queue.send_raw("no envelope".into()).await.unwrap();
    let newer = QueuedMessage::body_of(&job("newer")).replace("\"v\":1", "\"v\":9");
    file.queue.send_raw(newer).await.unwrap();
    file.queue.send(&job("second")).await.unwrap();
    let settings = MappingSettings {
        batch_size: 10,
        ..MappingSettings::default()
    };
    let mut handled = Vec::new();
    let mut tables = Vec::new();
    for _ in 0..3 {
        handled.push(batches.handle_next(settings).await.unwrap().records);
        tables.push(file.tables().await);
        file.clock.advance(Duration::from_secs(60));
    }
    let last = tables.pop().unwrap();
    (handled, vec![tables.remove(0), last])
}

#[tokio::test]
async fn a_batch_in_one_transaction_leaves_what_the_ports_leave() {
    let (ports, one) = (File::open(), File::open());

    let (handled, mut over_ports) = scenario(&ports, ports.over_ports()).await;
    let (handled_in_one, in_one) = scenario(&one, one.in_one_transaction()).await;

    // The third try finds only the newer record, past its last receive: moved, not handled.
    assert_eq!(handled, [4, 1, 0]);
    assert_eq!(handled_in_one, handled);
    // After the first batch, over the ports the stored jobs are still in the queue, received:
    // their delete is written with the next receive. In one transaction they are gone.
    let newer_backed_off = r#"{"v":9,"job_ received 1 backed off"#;
    let stored_awaiting_delete = r#"{"v":1,"job_ received 1 hidden"#;
    assert_eq!(
        over_ports[0][1],
        [
            stored_awaiting_delete,
            stored_awaiting_delete,
            newer_backed_off
        ]
    );
    assert_eq!(in_one[0][1], [newer_backed_off]);
    assert_eq!(over_ports[0][7], ["3 counted, 3 rows"]);
    over_ports[0][1] = in_one[0][1].clone();
    over_ports[0][7] = in_one[0][7].clone();
    assert_eq!(in_one, over_ports);

    let (after_first, last) = (&in_one[0], &in_one[1]);
    assert_eq!(after_first[0], ["first", "second"]);
    assert_eq!(after_first[2], ["no envelope received 1"]);
    assert!(last[1].is_empty(), "{:?}", last[1]);
    assert_eq!(
        last[2],
        ["no envelope received 1", r#"{"v":9,"job_ received 2"#]
    );
    assert_eq!(
        last[5],
        ["2 0 2 1 2"],
        "stored, failed by class, dead-lettered"
    );
    assert_eq!(last[6], ["2"]);
    assert_eq!(after_first[7], ["1 counted, 1 rows"]);
    assert_eq!(last[7], ["0 counted, 0 rows"]);
}

// A batch whose transaction fails after its rows were taken (here the settling's delete,
// refused by a trigger: a full disk or a bug would do the same) is rolled back whole, and
// its records still spend a receive, as after a Lambda invocation that failed: otherwise a
// batch that always fails would be taken again for ever and never reach the dead-letter queue.
#[tokio::test]
async fn a_batch_that_fails_is_rolled_back_and_its_records_spend_a_receive() {
    let file = File::open();
    file.queue.send(&job("kept")).await.unwrap();
    file.db
        .write(|conn| {
            conn.execute_batch(
                "CREATE TRIGGER refuse_deletes BEFORE DELETE ON queue
                 BEGIN SELECT RAISE(ABORT, 'injected: the delete is refused'); END",
            )?;
            Ok(())
        })
        .await
        .unwrap();
    let batches = file.in_one_transaction();
    let settings = MappingSettings::default();

    let error = batches.handle_next(settings).await.unwrap_err();

    assert!(format!("{error:#}").contains("injected"), "{error:#}");
    let tables = file.tables().await;
    assert!(tables[0].is_empty(), "nothing stored: {:?}", tables[0]);
    assert_eq!(tables[1], [r#"{"v":1,"job_ received 1 hidden"#]);
}

// Two pollers with a batching window see the same record due; one takes it when the window
// ends. The other must come back with nothing (and so see shutdown), not wait for a window
// that has ended on rows that are gone: it span there, and a runner with
// `--batching-window-ms 50 --consumers 4` never stopped.
#[tokio::test]
async fn a_poller_whose_window_ended_on_rows_another_took_comes_back_empty() {
    let file = File::open();
    file.queue.send(&job("only")).await.unwrap();
    let settings = MappingSettings {
        batch_size: 10,
        batching_window: Duration::from_millis(50),
        ..MappingSettings::default()
    };
    let (first, second) = (file.in_one_transaction(), file.in_one_transaction());

    let both = tokio::time::timeout(Duration::from_secs(10), async {
        tokio::join!(first.handle_next(settings), second.handle_next(settings))
    })
    .await
    .expect("a poller never came back");

    let records = both.0.unwrap().records + both.1.unwrap().records;
    assert_eq!(records, 1);
}
