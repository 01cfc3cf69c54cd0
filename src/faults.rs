//! Fault injection: wrappers around the ports that fail, throttle, half-write, slow down and
//! panic at configured rates, so tests (and the local runner's `--store-faults` /
//! `--queue-faults`) can prove that what a client was promised survives what AWS does on a
//! bad day.
//!
//! The faults are the ones the adapters meet in production: an SQS send that fails or is
//! throttled (the client must get a 503, never a 202), one that succeeded but whose answer was
//! lost (a 503 for a message that is queued, and may be stored), a receive or delete that fails (the
//! message comes back: a duplicate delivery), a BatchWriteItem that fails, is throttled or
//! returns `UnprocessedItems` for part of the batch, and a bug that panics in the middle of a
//! batch after some of it is written.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::SqsMessage;
use serde::Serialize;

use pipeline::domain::{Deletion, JobId, Lookup, Message, Outgoing, Page, PageLimit};
use pipeline::ports::{
    MessageQueue, MessageStore, PortError, PortResult, PutBatchError, QueueSource,
};

/// How often each fault strikes: probabilities per call, from 0 to 1.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultPlan {
    /// The call fails and changes nothing.
    pub error: f64,
    /// The call fails as throttled and changes nothing.
    pub throttle: f64,
    /// `put_batch` writes a random part of the batch and names the rest unwritten, as a
    /// BatchWriteItem with `UnprocessedItems` does.
    pub partial: f64,
    /// `put_batch` writes part of the batch, then panics.
    pub panic: f64,
    /// The call succeeds but its answer is lost: the caller sees an error for something
    /// that happened (a `SendMessage` whose response timed out: SQS holds the message).
    pub lost_reply: f64,
    /// Every call first waits a random time up to this.
    pub max_latency: Duration,
    /// Seeds the random choices, so a failing run can be replayed.
    pub seed: u64,
    /// The store refuses every message whose content contains this text: a poison message
    /// that fails every delivery and reaches the dead-letter queue, until the faults are
    /// healed (`DELETE /_local/faults`), as a fixed bug would let it through.
    pub poison: Option<String>,
    /// The store fails every message whose content contains this text, transiently (as a
    /// key that keeps being throttled), until the faults are healed: the record is retried
    /// with backoff, and on FIFO its group waits behind it.
    pub flaky: Option<String>,
}

impl FaultPlan {
    /// Parses `error=0.2,throttle=0.05,partial=0.1,panic=0.01,latency-ms=5,seed=7`; any
    /// subset, in any order.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut plan = Self::default();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}` is not name=value"))?;
            let number = |value: &str| -> Result<f64, String> {
                value
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite() && *n >= 0.0)
                    .ok_or_else(|| format!("`{name}` must be a number ≥ 0, not `{value}`"))
            };
            let rate = |value: &str| -> Result<f64, String> {
                let n = number(value)?;
                if n <= 1.0 {
                    Ok(n)
                } else {
                    Err(format!(
                        "`{name}` is a probability from 0 to 1, not `{value}`"
                    ))
                }
            };
            match name.trim() {
                "error" => plan.error = rate(value)?,
                "throttle" => plan.throttle = rate(value)?,
                "partial" => plan.partial = rate(value)?,
                "panic" => plan.panic = rate(value)?,
                "lost-reply" => plan.lost_reply = rate(value)?,
                "poison" if !value.trim().is_empty() => plan.poison = Some(value.trim().to_owned()),
                "flaky" if !value.trim().is_empty() => plan.flaky = Some(value.trim().to_owned()),
                "latency-ms" => plan.max_latency = Duration::from_secs_f64(number(value)? / 1e3),
                "seed" => {
                    plan.seed = value
                        .trim()
                        .parse()
                        .map_err(|_| format!("`seed` must be a whole number, not `{value}`"))?;
                }
                other => {
                    return Err(format!(
                        "unknown fault `{other}`: use error, throttle, partial, panic, lost-reply, latency-ms, seed, poison or flaky"
                    ))
                }
            }
        }
        Ok(plan)
    }
}

/// What was injected so far; the runner shows it in `GET /_local/stats`.
#[derive(Debug, Default)]
pub struct FaultCounts {
    calls: AtomicU64,
    errors: AtomicU64,
    throttles: AtomicU64,
    partial_writes: AtomicU64,
    panics: AtomicU64,
    lost_replies: AtomicU64,
    poisoned: AtomicU64,
    flaky: AtomicU64,
    /// Set by [`FaultCounts::heal`]: no fault is injected any more.
    healed: std::sync::atomic::AtomicBool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FaultTally {
    pub calls: u64,
    pub errors: u64,
    pub throttles: u64,
    pub partial_writes: u64,
    pub panics: u64,
    pub lost_replies: u64,
    pub poisoned: u64,
    pub flaky: u64,
    pub healed: bool,
}

impl FaultCounts {
    pub fn tally(&self) -> FaultTally {
        let get = |n: &AtomicU64| n.load(Ordering::Relaxed);
        FaultTally {
            calls: get(&self.calls),
            errors: get(&self.errors),
            throttles: get(&self.throttles),
            partial_writes: get(&self.partial_writes),
            panics: get(&self.panics),
            lost_replies: get(&self.lost_replies),
            poisoned: get(&self.poisoned),
            flaky: get(&self.flaky),
            healed: self.healed.load(Ordering::Relaxed),
        }
    }

    /// Stops every fault of the wrapper these counts belong to.
    pub fn heal(&self) {
        self.healed.store(true, Ordering::Relaxed);
    }

    fn healed(&self) -> bool {
        self.healed.load(Ordering::Relaxed)
    }
}

/// A port wrapped so that it misbehaves according to a [`FaultPlan`].
#[derive(Debug)]
pub struct Faulty<T> {
    inner: T,
    plan: FaultPlan,
    rng: Mutex<fastrand::Rng>,
    counts: Arc<FaultCounts>,
}

/// A fault that makes the whole call fail.
enum Refusal {
    Error,
    Throttle,
}

impl<T> Faulty<T> {
    pub fn new(inner: T, plan: FaultPlan) -> Self {
        Self {
            rng: Mutex::new(fastrand::Rng::with_seed(plan.seed)),
            inner,
            plan,
            counts: Arc::default(),
        }
    }

    pub fn counts(&self) -> Arc<FaultCounts> {
        self.counts.clone()
    }

    fn with_rng<R>(&self, f: impl FnOnce(&mut fastrand::Rng) -> R) -> R {
        f(&mut self.rng.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn chance(&self, probability: f64) -> bool {
        probability > 0.0 && !self.counts.healed() && self.with_rng(|rng| rng.f64()) < probability
    }

    /// Waits the injected latency, then decides whether the call is refused outright.
    async fn enter(&self) -> Option<Refusal> {
        self.counts.calls.fetch_add(1, Ordering::Relaxed);
        if !self.plan.max_latency.is_zero() && !self.counts.healed() {
            let wait = self.with_rng(|rng| self.plan.max_latency.mul_f64(rng.f64()));
            tokio::time::sleep(wait).await;
        }
        if self.chance(self.plan.error) {
            self.counts.errors.fetch_add(1, Ordering::Relaxed);
            Some(Refusal::Error)
        } else if self.chance(self.plan.throttle) {
            self.counts.throttles.fetch_add(1, Ordering::Relaxed);
            Some(Refusal::Throttle)
        } else {
            None
        }
    }

    /// Lets the call through, or fails it as a backend does on a bad day: transiently.
    async fn gate(&self, operation: &str) -> PortResult<()> {
        match self.enter().await {
            None => Ok(()),
            Some(Refusal::Error) => Err(PortError::transient(anyhow::anyhow!(
                "injected fault: {operation} failed"
            ))),
            Some(Refusal::Throttle) => Err(PortError::transient(anyhow::anyhow!(
                "injected fault: {operation} throttled (rate exceeded)"
            ))),
        }
    }

    /// The `poison` (permanent) and `flaky` (transient) refusals: the marked messages are
    /// refused, the others written; `None` when no message is marked.
    async fn refuse_marked(&self, messages: &[Message]) -> Option<PutBatchError>
    where
        T: MessageStore,
    {
        let marked = |marker: &Option<String>, m: &Message| {
            marker
                .as_deref()
                .is_some_and(|marker| m.content.as_str().contains(marker))
        };
        let poisoned: Vec<JobId> = messages
            .iter()
            .filter(|m| marked(&self.plan.poison, m))
            .map(|m| m.id)
            .collect();
        let flaky: Vec<JobId> = messages
            .iter()
            .filter(|m| !marked(&self.plan.poison, m) && marked(&self.plan.flaky, m))
            .map(|m| m.id)
            .collect();
        if poisoned.is_empty() && flaky.is_empty() {
            return None;
        }
        self.counts
            .poisoned
            .fetch_add(poisoned.len() as u64, Ordering::Relaxed);
        self.counts
            .flaky
            .fetch_add(flaky.len() as u64, Ordering::Relaxed);
        // As a store's validation refusal (an item too large): no retry can help.
        let mut refused = PutBatchError::each(
            poisoned,
            PortError::permanent(anyhow::anyhow!(
                "injected fault: the content is poison to this store"
            )),
        );
        refused.unwritten.extend(
            PutBatchError::each(
                flaky,
                PortError::transient(anyhow::anyhow!(
                    "injected fault: this message's write is throttled again"
                )),
            )
            .unwritten,
        );
        let refused_ids = refused.ids();
        let clean: Vec<Message> = messages
            .iter()
            .filter(|m| !refused_ids.contains(&m.id))
            .cloned()
            .collect();
        if !clean.is_empty() {
            if let Err(e) = self.inner.put_batch(&clean).await {
                refused.unwritten.extend(e.unwritten);
            }
        }
        Some(refused)
    }

    /// Splits a batch at random into what gets written and what does not (never all written).
    fn split_batch<'a>(&self, messages: &'a [Message]) -> (Vec<Message>, Vec<&'a Message>) {
        self.with_rng(|rng| {
            let refused = rng.usize(..messages.len());
            let mut written = Vec::new();
            let mut unwritten = Vec::new();
            for (i, message) in messages.iter().enumerate() {
                if i == refused || rng.bool() {
                    unwritten.push(message);
                } else {
                    written.push(message.clone());
                }
            }
            (written, unwritten)
        })
    }
}

#[async_trait]
impl<T: MessageQueue> MessageQueue for Faulty<T> {
    /// Faults strike each message on its own, as the entries of an SQS batch fail alone.
    async fn send_batch(&self, messages: &[Outgoing]) -> Vec<PortResult<()>> {
        let mut results: Vec<PortResult<()>> = Vec::with_capacity(messages.len());
        let mut passed = Vec::new();
        for (i, message) in messages.iter().enumerate() {
            let gate = self.gate("SendMessage").await;
            if gate.is_ok() {
                passed.push((i, message.clone()));
            }
            results.push(gate);
        }
        let (indexes, outgoing): (Vec<usize>, Vec<Outgoing>) = passed.into_iter().unzip();
        let sent = self.inner.send_batch(&outgoing).await;
        for (i, result) in indexes.into_iter().zip(sent) {
            results[i] = result.and_then(|()| {
                if self.chance(self.plan.lost_reply) {
                    self.counts.lost_replies.fetch_add(1, Ordering::Relaxed);
                    return Err(anyhow::anyhow!(
                        "injected fault: SendMessage succeeded but its answer was lost"
                    )
                    .into());
                }
                Ok(())
            });
        }
        results
    }

    fn is_fifo(&self) -> bool {
        self.inner.is_fifo()
    }
}

#[async_trait]
impl<T: QueueSource> QueueSource for Faulty<T> {
    async fn receive(&self, max: usize, wait: Duration) -> PortResult<Vec<SqsMessage>> {
        self.gate("ReceiveMessage").await?;
        self.inner.receive(max, wait).await
    }

    async fn delete(&self, receipt_handles: &[String]) -> PortResult<()> {
        self.gate("DeleteMessageBatch").await?;
        self.inner.delete(receipt_handles).await
    }
}

#[async_trait]
impl<T: MessageStore> MessageStore for Faulty<T> {
    async fn put_batch(&self, messages: &[Message]) -> Result<(), PutBatchError> {
        if let Err(cause) = self.gate("BatchWriteItem").await {
            return Err(PutBatchError::all(messages, cause));
        }
        if messages.is_empty() {
            return self.inner.put_batch(messages).await;
        }
        if !self.counts.healed() {
            if let Some(refused) = self.refuse_marked(messages).await {
                return Err(refused);
            }
        }
        let panic = self.chance(self.plan.panic);
        if panic || self.chance(self.plan.partial) {
            let (written, unwritten) = self.split_batch(messages);
            let mut unprocessed = PutBatchError::each(
                unwritten.iter().map(|m| m.id),
                PortError::transient(anyhow::anyhow!(
                    "injected fault: UnprocessedItems for part of the batch"
                )),
            );
            if !written.is_empty() {
                if let Err(e) = self.inner.put_batch(&written).await {
                    unprocessed.unwritten.extend(e.unwritten);
                }
            }
            if panic {
                self.counts.panics.fetch_add(1, Ordering::Relaxed);
                panic!("injected fault: panicked after writing part of a batch");
            }
            self.counts.partial_writes.fetch_add(1, Ordering::Relaxed);
            return Err(unprocessed);
        }
        self.inner.put_batch(messages).await
    }

    async fn lookup(&self, id: JobId) -> PortResult<Lookup> {
        self.gate("GetItem").await?;
        self.inner.lookup(id).await
    }

    async fn list(&self, limit: PageLimit, before: Option<JobId>) -> PortResult<Page> {
        self.gate("Query").await?;
        self.inner.list(limit, before).await
    }

    async fn delete(&self, id: JobId) -> PortResult<Deletion> {
        self.gate("PutItem").await?;
        self.inner.delete(id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline::adapters::memory::{stored_messages, InMemoryQueue, InMemoryStore};

    #[test]
    fn plans_parse_and_bad_ones_say_why() {
        let plan = FaultPlan::parse(
            "error=0.2, partial=0.1,panic=0.01,lost-reply=0.03,latency-ms=5,seed=7,poison=boom,flaky=slow",
        )
        .unwrap();
        assert_eq!(
            plan,
            FaultPlan {
                error: 0.2,
                throttle: 0.0,
                partial: 0.1,
                panic: 0.01,
                lost_reply: 0.03,
                max_latency: Duration::from_millis(5),
                seed: 7,
                poison: Some("boom".into()),
                flaky: Some("slow".into()),
            }
        );
        assert_eq!(FaultPlan::parse("").unwrap(), FaultPlan::default());
        for (bad, says) in [
            ("error=2", "probability"),
            ("error=-0.1", "≥ 0"),
            ("error=NaN", "≥ 0"),
            ("boom=1", "unknown fault `boom`"),
            ("error", "name=value"),
            ("seed=x", "whole number"),
        ] {
            let error = FaultPlan::parse(bad).unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }

    #[tokio::test]
    async fn a_refused_send_queues_nothing() {
        let queue = Faulty::new(
            InMemoryQueue::default(),
            FaultPlan {
                error: 0.5,
                throttle: 0.5,
                ..FaultPlan::default()
            },
        );
        let mut acknowledged = 0;
        for message in stored_messages(200) {
            if queue.send(&message).await.is_ok() {
                acknowledged += 1;
            }
        }
        let tally = queue.counts().tally();
        assert_eq!(queue.inner.sent().len(), acknowledged);
        assert_eq!(tally.errors + tally.throttles, 200 - acknowledged as u64);
        assert!(tally.errors > 50 && tally.throttles > 10, "{tally:?}");
    }

    #[tokio::test]
    async fn a_lost_reply_is_an_error_for_a_message_that_was_sent() {
        let queue = Faulty::new(
            InMemoryQueue::default(),
            FaultPlan {
                lost_reply: 0.5,
                ..FaultPlan::default()
            },
        );
        let mut refused = 0;
        for message in stored_messages(200) {
            if queue.send(&message).await.is_err() {
                refused += 1;
            }
        }
        let tally = queue.counts().tally();
        assert_eq!(queue.inner.sent().len(), 200, "every message was sent");
        assert_eq!(tally.lost_replies, refused);
        assert!(refused > 50, "{tally:?}");
    }

    #[tokio::test]
    async fn partial_writes_name_exactly_what_was_not_stored() {
        let store = Faulty::new(
            InMemoryStore::default(),
            FaultPlan {
                partial: 1.0,
                seed: 3,
                ..FaultPlan::default()
            },
        );
        let batch = stored_messages(25);

        let error = store.put_batch(&batch).await.unwrap_err();

        let stored: Vec<JobId> = store.inner.items().iter().map(|m| m.id).collect();
        assert!(!error.unwritten.is_empty());
        let unwritten = error.ids();
        for message in &batch {
            assert_ne!(
                stored.contains(&message.id),
                unwritten.contains(&message.id),
                "each message is either stored or named unwritten"
            );
        }
        assert_eq!(store.counts().tally().partial_writes, 1);
    }

    #[tokio::test]
    async fn an_injected_panic_unwinds_after_a_partial_write() {
        use futures::FutureExt as _;
        let store = Faulty::new(
            InMemoryStore::default(),
            FaultPlan {
                panic: 1.0,
                ..FaultPlan::default()
            },
        );
        let batch = stored_messages(10);

        let outcome = std::panic::AssertUnwindSafe(store.put_batch(&batch))
            .catch_unwind()
            .await;

        assert!(outcome.is_err());
        assert!(store.inner.items().len() < batch.len());
        assert_eq!(store.counts().tally().panics, 1);
    }

    #[tokio::test]
    async fn with_no_faults_planned_calls_pass_through() {
        let store = Faulty::new(InMemoryStore::default(), FaultPlan::default());
        store.put_batch(&stored_messages(3)).await.unwrap();
        assert_eq!(store.inner.items().len(), 3);
        let tally = store.counts().tally();
        assert_eq!((tally.calls, tally.errors, tally.partial_writes), (1, 0, 0));
    }
}

#[cfg(test)]
mod marked {
    use super::*;
    use pipeline::adapters::memory::{stored_messages, InMemoryStore};
    use pipeline::domain::FailureClass;

    #[tokio::test]
    async fn poison_is_refused_for_good_flaky_for_now_and_the_rest_is_written() {
        let mut batch = stored_messages(3);
        let content = |text: &str| {
            pipeline::domain::MessageContent::parse(
                text.into(),
                pipeline::domain::ContentLimit::DEFAULT,
            )
            .unwrap()
        };
        batch[0].content = content("a BAD one");
        batch[1].content = content("a slow one");
        let store = Faulty::new(
            InMemoryStore::default(),
            FaultPlan::parse("poison=BAD,flaky=slow").unwrap(),
        );

        let error = store.put_batch(&batch).await.unwrap_err();

        let class_of = |id| {
            error
                .unwritten
                .iter()
                .find(|u| u.id == id)
                .map(|u| u.cause.class)
        };
        assert_eq!(class_of(batch[0].id), Some(FailureClass::Permanent));
        assert_eq!(class_of(batch[1].id), Some(FailureClass::Transient));
        assert_eq!(store.inner.items(), vec![batch[2].clone()]);
        let tally = store.counts().tally();
        assert_eq!((tally.poisoned, tally.flaky), (1, 1));
    }
}
