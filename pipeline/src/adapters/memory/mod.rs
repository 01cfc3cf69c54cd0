//! The ports in memory: the fakes that unit tests stand on, which the contract suite
//! (tests/contract) holds to what SQLite and AWS do. Each can be told to fail.

// A fake's mutex is poisoned only by a test that has already panicked.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::SqsMessage;

use crate::clock::{Clock, SystemClock};
use crate::domain::{
    expired, on_existing, Attempt, Claim, ContentLimit, Cursor, DeadLetterId, Deletion, Existing,
    Failure, FlowMinute, HistoryWindow, IdempotencyKey, JobId, KeyRecord, Lookup, Message,
    MessageContent, MessageRetention, Outgoing, Page, PageLimit, ReservedIds, StoredAnswer,
    KEY_LEASE, KEY_LIFETIME,
};
use crate::ports::{
    Count, DeadLetterPage, FailureLog, IdempotencyKeys, MessageQueue, MessageStore, OneDeadLetter,
    Operations, PipelineStats, PortError, PortResult, PutBatchError, QueueCounts, Redrive,
    RequeueAll, Unwritten,
};

/// `n` messages "message 0" .. "message n-1", oldest first, their ids issued by
/// [`test_ids`].
pub fn stored_messages(n: usize) -> Vec<Message> {
    (0..n)
        .map(|i| {
            Message::new(
                test_ids().issue(crate::domain::Delay::NONE),
                MessageContent::parse(format!("message {i}"), ContentLimit::DEFAULT).unwrap(),
                Default::default(),
            )
        })
        .collect()
}

/// The job id keys every test of a process shares: what one test's writer issues, its
/// reader accepts.
pub fn test_ids() -> &'static crate::domain::JobIdKeys {
    static IDS: std::sync::LazyLock<crate::domain::JobIdKeys> =
        std::sync::LazyLock::new(crate::domain::JobIdKeys::random);
    &IDS
}

/// A failure a fake was told to have: transient, as the backends' outages are.
fn injected(what: &'static str) -> PortError {
    PortError::transient(anyhow::anyhow!(what))
}

/// A queue that keeps what it was sent; it can fail every send, or the sends of content
/// that contains a marker (as one entry of an SQS batch fails while the others succeed).
#[derive(Debug, Default)]
pub struct InMemoryQueue {
    sent: Mutex<Vec<Outgoing>>,
    failing: bool,
    refusing: Option<String>,
    fifo: bool,
}

impl InMemoryQueue {
    pub fn failing() -> Self {
        Self {
            failing: true,
            ..Self::default()
        }
    }

    /// Fails the sends of messages whose content contains `marker`.
    pub fn refusing(marker: &str) -> Self {
        Self {
            refusing: Some(marker.to_owned()),
            ..Self::default()
        }
    }

    pub fn fifo() -> Self {
        Self {
            fifo: true,
            ..Self::default()
        }
    }

    pub fn sent(&self) -> Vec<Message> {
        self.outgoing().into_iter().map(|o| o.message).collect()
    }

    pub fn outgoing(&self) -> Vec<Outgoing> {
        self.sent.lock().unwrap().clone()
    }
}

#[async_trait]
impl MessageQueue for InMemoryQueue {
    async fn send_batch(&self, messages: &[Outgoing]) -> Vec<PortResult<()>> {
        messages
            .iter()
            .map(|outgoing| {
                let refused = self
                    .refusing
                    .as_ref()
                    .is_some_and(|m| outgoing.message.content.as_str().contains(m.as_str()));
                if self.failing || refused {
                    return Err(injected("injected queue failure"));
                }
                self.sent.lock().unwrap().push(outgoing.clone());
                Ok(())
            })
            .collect()
    }

    fn is_fifo(&self) -> bool {
        self.fifo
    }
}

/// Idempotency keys in a map, with the adapters' semantics (the decision is the domain's):
/// a lease while the first request is served, and a lifetime from the claim and again from
/// the answer, counted on its clock.
#[derive(Debug)]
pub struct InMemoryKeys {
    records: Mutex<std::collections::HashMap<String, (KeyRecord, u64)>>,
    clock: Arc<dyn Clock>,
}

impl Default for InMemoryKeys {
    fn default() -> Self {
        Self::on_clock(Arc::new(SystemClock))
    }
}

impl InMemoryKeys {
    pub fn on_clock(clock: Arc<dyn Clock>) -> Self {
        Self {
            records: Mutex::default(),
            clock,
        }
    }

    fn expires_at(&self) -> u64 {
        self.clock.now_ms_u64() + KEY_LIFETIME.as_millis() as u64
    }

    /// Puts a record as a request before this one left it.
    pub fn insert(&self, key: &IdempotencyKey, record: KeyRecord) {
        let expires_at = self.expires_at();
        self.records
            .lock()
            .unwrap()
            .insert(key.record().to_owned(), (record, expires_at));
    }

    pub fn len(&self) -> usize {
        self.records.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl IdempotencyKeys for InMemoryKeys {
    async fn claim(
        &self,
        key: &IdempotencyKey,
        fingerprint: &str,
        reserved: &ReservedIds,
    ) -> PortResult<Claim> {
        let mut records = self.records.lock().unwrap();
        let now = self.clock.now_ms_u64();
        let lease = now + KEY_LEASE.as_millis() as u64;
        records.retain(|_, (_, expires_at)| *expires_at > now);
        let Some((record, _)) = records.get_mut(key.record()) else {
            records.insert(
                key.record().to_owned(),
                (
                    KeyRecord {
                        fingerprint: fingerprint.to_owned(),
                        reserved: reserved.clone(),
                        answer: None,
                        locked_until_ms: lease,
                    },
                    self.expires_at(),
                ),
            );
            return Ok(Claim::Started);
        };
        Ok(match on_existing(record, fingerprint, now) {
            Existing::Replay(answer) => Claim::Replay(answer),
            Existing::InProgress => Claim::InProgress,
            Existing::Mismatch => Claim::Mismatch,
            Existing::Abandoned => {
                record.locked_until_ms = lease;
                Claim::TakenOver {
                    reserved: record.reserved.clone(),
                }
            }
        })
    }

    async fn answer(&self, key: &IdempotencyKey, answer: &StoredAnswer) -> PortResult<()> {
        let expires_at = self.expires_at();
        if let Some(entry) = self.records.lock().unwrap().get_mut(key.record()) {
            *entry = (
                KeyRecord {
                    answer: Some(answer.clone()),
                    ..entry.0.clone()
                },
                expires_at,
            );
        }
        Ok(())
    }

    async fn release(&self, key: &IdempotencyKey) -> PortResult<()> {
        let mut records = self.records.lock().unwrap();
        // As the adapters do: an answered key is kept, so that a repeat is replayed.
        if records
            .get(key.record())
            .is_some_and(|(record, _)| record.answer.is_none())
        {
            records.remove(key.record());
        }
        Ok(())
    }
}

/// A store that keeps messages in a map; it can fail everything, fail chosen jobs, or panic.
#[derive(Debug, Default)]
pub struct InMemoryStore {
    items: Mutex<BTreeMap<JobId, Message>>,
    /// When each stored message expires, if it does.
    expiries: Mutex<BTreeMap<JobId, u64>>,
    /// Tombstones: when each deleted job was deleted.
    deleted: Mutex<BTreeMap<JobId, u64>>,
    retention: MessageRetention,
    /// The test's clock, where it moves time; else the system's.
    clock: Option<Arc<dyn Clock>>,
    /// The content of each message written, in the order of the writes.
    written: Mutex<Vec<String>>,
    puts: Mutex<usize>,
    failing: bool,
    pub refuse: HashSet<String>,
    pub panic_on: Option<String>,
}

impl InMemoryStore {
    pub fn with(messages: Vec<Message>) -> Self {
        let store = Self::default();
        store
            .items
            .lock()
            .unwrap()
            .extend(messages.into_iter().map(|m| (m.id, m)));
        store
    }

    pub fn failing() -> Self {
        Self {
            failing: true,
            ..Self::default()
        }
    }

    pub fn items(&self) -> Vec<Message> {
        self.items.lock().unwrap().values().cloned().collect()
    }

    pub fn written(&self) -> Vec<String> {
        self.written.lock().unwrap().clone()
    }

    pub fn put_calls(&self) -> usize {
        *self.puts.lock().unwrap()
    }

    /// A store that keeps each message for `retention` by `clock`.
    pub fn with_retention(retention: MessageRetention, clock: Arc<dyn Clock>) -> Self {
        Self {
            retention,
            clock: Some(clock),
            ..Self::default()
        }
    }

    fn now_ms(&self) -> u64 {
        self.clock
            .as_ref()
            .map_or_else(|| SystemClock.now_ms_u64(), |c| c.now_ms_u64())
    }

    fn is_expired(&self, id: JobId) -> bool {
        let expiry = self.expiries.lock().unwrap().get(&id).copied();
        expired(expiry, self.now_ms())
    }
}

#[async_trait]
impl MessageStore for InMemoryStore {
    async fn put_batch(&self, messages: &[Message]) -> Result<(), PutBatchError> {
        *self.puts.lock().unwrap() += 1;
        if messages
            .iter()
            .any(|m| Some(m.content.as_str()) == self.panic_on.as_deref())
        {
            panic!("injected panic while storing");
        }
        let mut unwritten = Vec::new();
        let mut items = self.items.lock().unwrap();
        for message in messages {
            if self.failing || self.refuse.contains(message.content.as_str()) {
                unwritten.push(Unwritten {
                    id: message.id,
                    cause: injected("injected store failure"),
                });
                continue;
            }
            // As the adapters do: a deleted job stays deleted; the first write of a job wins;
            // a repeat with the same content (a redelivery, or the job twice in one batch)
            // changes nothing, one with other content is refused.
            if self.deleted.lock().unwrap().contains_key(&message.id) {
                continue;
            }
            match items.get(&message.id) {
                Some(stored) if stored == message => {}
                Some(_) => unwritten.push(Unwritten {
                    id: message.id,
                    cause: PortError::permanent(anyhow::anyhow!(
                        "the job is already stored with other content"
                    )),
                }),
                None => {
                    items.insert(message.id, message.clone());
                    if let Some(at) = self.retention.expires_at_ms(self.now_ms()) {
                        self.expiries.lock().unwrap().insert(message.id, at);
                    }
                    let content = message.content.as_str().to_owned();
                    self.written.lock().unwrap().push(content);
                }
            }
        }
        if unwritten.is_empty() {
            Ok(())
        } else {
            Err(PutBatchError { unwritten })
        }
    }

    async fn lookup(&self, id: JobId) -> PortResult<Lookup> {
        if self.failing {
            return Err(injected("injected store failure"));
        }
        if let Some(&at_ms) = self.deleted.lock().unwrap().get(&id) {
            return Ok(Lookup::Deleted { at_ms });
        }
        match self.items.lock().unwrap().get(&id) {
            Some(_) if self.is_expired(id) => Ok(Lookup::Expired),
            Some(message) => Ok(Lookup::Stored(message.clone())),
            None => Ok(Lookup::Absent),
        }
    }

    async fn delete(&self, id: JobId) -> PortResult<Deletion> {
        if self.failing {
            return Err(injected("injected store failure"));
        }
        let mut deleted = self.deleted.lock().unwrap();
        if let Some(&at_ms) = deleted.get(&id) {
            return Ok(Deletion::AlreadyDeleted { at_ms });
        }
        let at_ms = self.now_ms();
        deleted.insert(id, at_ms);
        self.items.lock().unwrap().remove(&id);
        Ok(Deletion::Deleted { at_ms })
    }

    async fn list(&self, limit: PageLimit, before: Option<JobId>) -> PortResult<Page> {
        if self.failing {
            return Err(injected("injected store failure"));
        }
        let items = self.items.lock().unwrap();
        let mut older = items
            .values()
            .rev()
            .filter(|m| before.is_none_or(|b| m.id < b))
            .filter(|m| !self.is_expired(m.id));
        let messages: Vec<Message> = older.by_ref().take(limit.get()).cloned().collect();
        let next = match (older.next(), messages.last()) {
            (Some(_), Some(last)) => Some(Cursor::after(last)),
            _ => None,
        };
        Ok(Page { messages, next })
    }
}

/// A failure log in a map; it can fail every note.
#[derive(Debug, Default)]
pub struct InMemoryFailureLog {
    notes: Mutex<BTreeMap<String, Failure>>,
    attempts: Mutex<Vec<Attempt>>,
    failing: bool,
}

impl InMemoryFailureLog {
    pub fn failing() -> Self {
        Self {
            failing: true,
            ..Self::default()
        }
    }

    pub fn notes(&self) -> Vec<Failure> {
        self.notes.lock().unwrap().values().cloned().collect()
    }

    pub fn failure_of(&self, id: impl Into<DeadLetterId>) -> Option<Failure> {
        self.notes.lock().unwrap().get(&id.into().key()).cloned()
    }
}

#[async_trait]
impl FailureLog for InMemoryFailureLog {
    async fn note(&self, failures: &[Failure]) -> PortResult<()> {
        if self.failing {
            return Err(injected("injected failure-log failure"));
        }
        let mut notes = self.notes.lock().unwrap();
        notes.extend(failures.iter().map(|f| (f.id.key(), f.clone())));
        Ok(())
    }

    async fn failure(&self, id: JobId) -> PortResult<Option<Failure>> {
        Ok(self.failure_of(id))
    }

    async fn note_attempts(&self, attempts: &[Attempt]) -> PortResult<()> {
        if self.failing {
            return Err(injected("injected failure-log failure"));
        }
        let mut kept = self.attempts.lock().unwrap();
        for attempt in attempts {
            if !kept.contains(attempt) {
                kept.push(attempt.clone());
            }
        }
        Ok(())
    }

    async fn attempts(&self, id: JobId) -> PortResult<Vec<Attempt>> {
        let mut found: Vec<Attempt> = (self.attempts.lock().unwrap().iter())
            .filter(|a| a.job == id)
            .cloned()
            .collect();
        found.sort_by_key(|a| (a.receive_count, a.at_ms));
        Ok(found)
    }
}

/// Operations on a pipeline with nothing in it.
#[derive(Debug, Default)]
pub struct EmptyOperations;

#[async_trait]
impl Operations for EmptyOperations {
    async fn stats(&self) -> PortResult<PipelineStats> {
        let nothing = Count {
            count: 0,
            approximate: false,
        };
        Ok(PipelineStats {
            queue: QueueCounts {
                visible: 0,
                in_flight: 0,
                delayed: 0,
                oldest_age_seconds: None,
                approximate: false,
            },
            dead_letter_queue: nothing.clone(),
            stored: nothing,
        })
    }

    async fn history(&self, window: HistoryWindow) -> PortResult<Vec<FlowMinute>> {
        let now = SystemClock.now_ms_u64();
        Ok(window
            .minute_starts(now)
            .map(|start_ms| FlowMinute {
                start_ms,
                backlog: Some(0),
                ..FlowMinute::default()
            })
            .collect())
    }

    async fn dead_letters(&self, _: usize, _: Option<DeadLetterId>) -> PortResult<DeadLetterPage> {
        Ok(DeadLetterPage {
            letters: Vec::new(),
            next: None,
        })
    }

    async fn requeue(&self, _: JobId) -> PortResult<OneDeadLetter> {
        Ok(OneDeadLetter::NotFound)
    }

    async fn delete_dead_letter(&self, _: DeadLetterId) -> PortResult<OneDeadLetter> {
        Ok(OneDeadLetter::NotFound)
    }

    async fn requeue_all(&self, _: std::time::Duration) -> PortResult<RequeueAll> {
        Ok(RequeueAll {
            moved: 0,
            done: true,
            move_task: None,
            left: 0,
        })
    }

    async fn purge_dead_letters(&self) -> PortResult<()> {
        Ok(())
    }
}

/// A redrive that records what the consumer asked of it: the backoffs, and the records put in
/// the dead-letter queue (each under a message id of its own, `dead-N`); it can refuse either.
#[derive(Debug, Default)]
pub struct InMemoryRedrive {
    backoffs: Mutex<Vec<Vec<(String, Duration)>>>,
    dead: Mutex<Vec<SqsMessage>>,
    refuse_dead_letters: bool,
    refuse_backoffs: bool,
}

impl InMemoryRedrive {
    /// One that refuses every dead letter.
    pub fn refusing_dead_letters() -> Self {
        Self {
            refuse_dead_letters: true,
            ..Self::default()
        }
    }

    /// One whose backoff calls fail.
    pub fn refusing_backoffs() -> Self {
        Self {
            refuse_backoffs: true,
            ..Self::default()
        }
    }

    /// Every call of `back_off`, with its waits.
    pub fn backoff_calls(&self) -> Vec<Vec<(String, Duration)>> {
        self.backoffs.lock().unwrap().clone()
    }

    pub fn dead_letters(&self) -> Vec<SqsMessage> {
        self.dead.lock().unwrap().clone()
    }
}

#[async_trait]
impl Redrive for InMemoryRedrive {
    async fn back_off(&self, waits: &[(String, Duration)]) -> PortResult<()> {
        self.backoffs.lock().unwrap().push(waits.to_vec());
        if self.refuse_backoffs {
            return Err(injected("injected backoff failure"));
        }
        Ok(())
    }

    async fn dead_letter(&self, records: &[SqsMessage]) -> Vec<PortResult<String>> {
        let mut dead = self.dead.lock().unwrap();
        records
            .iter()
            .map(|record| {
                if self.refuse_dead_letters {
                    return Err(injected("injected dead-letter queue failure"));
                }
                dead.push(record.clone());
                Ok(format!("dead-{}", dead.len()))
            })
            .collect()
    }
}
