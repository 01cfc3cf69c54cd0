//! The ledger that checks the pipeline's promise under load and faults: every acknowledged
//! message ends stored exactly once with its content, or in the dead-letter queue.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use pipeline::domain::{ContentLimit, QueuedMessage};

use super::runner::{agent, post_message, Posted};

/// What clients were told: acknowledged jobs (id → content) and every refusal.
#[derive(Debug, Default)]
pub struct Posts {
    pub acked: HashMap<String, String>,
    /// Status, body and the content that was posted.
    pub refused: Vec<(u16, String, String)>,
}

impl Posts {
    pub fn absorb(&mut self, other: Posts) {
        self.acked.extend(other.acked);
        self.refused.extend(other.refused);
    }
}

/// Posts from `clients` threads until `stop`, `total` posts in all, or the runner dies.
pub fn post_until(
    url: &str,
    clients: usize,
    total: Option<usize>,
    stop: Arc<AtomicBool>,
    tag: &str,
) -> Vec<std::thread::JoinHandle<Posts>> {
    let per_client = total.map(|t| t.div_ceil(clients));
    (0..clients)
        .map(|client| {
            let (url, stop, tag) = (url.to_owned(), stop.clone(), tag.to_owned());
            std::thread::spawn(move || {
                let agent = agent();
                let mut posts = Posts::default();
                for i in 0..per_client.unwrap_or(usize::MAX) {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let content = format!("{tag} client {client} message {i}");
                    match post_message(&agent, &url, &content) {
                        Posted::Accepted(job_id) => {
                            posts.acked.insert(job_id, content);
                        }
                        Posted::Refused(status, body) => {
                            posts.refused.push((status, body, content));
                        }
                        Posted::NoAnswer => break,
                    }
                }
                posts
            })
        })
        .collect()
}

pub fn join_posts(clients: Vec<std::thread::JoinHandle<Posts>>) -> Posts {
    let mut all = Posts::default();
    for client in clients {
        all.absorb(client.join().unwrap());
    }
    all
}

/// The promise, counted: where each acknowledged message ended.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Ledger {
    pub acknowledged: usize,
    /// Acknowledged and stored with the content the client sent.
    pub stored: usize,
    /// Acknowledged, not stored, and in the dead-letter queue.
    pub dead_lettered: usize,
    /// Stored and also in the dead-letter queue (its delete failed, or a retry after a
    /// partial write did): redriving it rewrites the same item.
    pub stored_and_dead_lettered: usize,
    /// Acknowledged and found nowhere.
    pub lost: usize,
    /// Stored with content other than what the client sent.
    pub changed: usize,
    /// Stored but never acknowledged, with the content of a post that was refused: its send
    /// succeeded and the answer was lost (a 503 the client may retry). Not lost, not a
    /// duplicate: at-least-once at the edge.
    pub refused_but_stored: usize,
    /// The same, dead-lettered instead of stored (the store's injected faults outlasted its
    /// receives, as they can for any message).
    pub refused_but_dead_lettered: usize,
    /// Stored but never acknowledged, and not a refused post either: from nowhere.
    pub unacknowledged_stored: usize,
    /// Dead-lettered bodies that are not an acknowledged job (poison sent past the API).
    pub poison: usize,
    /// Rows in the store beyond one per job (the caller counts them; see `with_rows`).
    pub duplicated: usize,
}

impl Ledger {
    pub fn of(posts: &Posts, stored: &HashMap<String, String>, dead_bodies: &[String]) -> Self {
        let acked = &posts.acked;
        let refused: HashSet<&str> = posts.refused.iter().map(|(_, _, c)| c.as_str()).collect();
        let unacknowledged: Vec<&String> = stored
            .iter()
            .filter(|(id, _)| !acked.contains_key(*id))
            .map(|(_, content)| content)
            .collect();
        let refused_but_stored = unacknowledged
            .iter()
            .filter(|content| refused.contains(content.as_str()))
            .count();
        let dead_messages: Vec<_> = dead_bodies
            .iter()
            .filter_map(|body| QueuedMessage::decode(body, ContentLimit::DEFAULT).ok())
            .collect();
        let dead_jobs: HashSet<String> = dead_messages
            .iter()
            .map(|m| m.id.to_string())
            .filter(|id| acked.contains_key(id))
            .collect();
        let refused_but_dead_lettered = dead_messages
            .iter()
            .filter(|m| !acked.contains_key(&m.id.to_string()))
            .filter(|m| refused.contains(m.content.as_str()))
            .count();
        let mut ledger = Ledger {
            acknowledged: acked.len(),
            refused_but_stored,
            refused_but_dead_lettered,
            unacknowledged_stored: unacknowledged.len() - refused_but_stored,
            poison: dead_bodies.len() - dead_jobs.len() - refused_but_dead_lettered,
            ..Ledger::default()
        };
        for (id, content) in acked {
            match (stored.get(id), dead_jobs.contains(id)) {
                (Some(found), dead) => {
                    ledger.stored += 1;
                    if found != content {
                        ledger.changed += 1;
                    }
                    if dead {
                        ledger.stored_and_dead_lettered += 1;
                    }
                }
                (None, true) => ledger.dead_lettered += 1,
                (None, false) => ledger.lost += 1,
            }
        }
        ledger
    }

    /// `rows`: how many items the store itself counts, against the distinct jobs listed.
    pub fn with_rows(mut self, rows: usize, listed: usize) -> Self {
        self.duplicated = rows.saturating_sub(listed);
        self
    }

    /// One line of figures; bench/reliability.sh collects them for BENCHMARKS.md.
    pub fn report(&self, test: &str, refused: usize, crashes: usize, faults: &serde_json::Value) {
        let injected: u64 = faults
            .as_object()
            .into_iter()
            .flat_map(|ports| ports.values())
            .filter_map(|tally| tally.as_object())
            .flat_map(|tally| tally.iter().filter(|(kind, _)| *kind != "calls"))
            .filter_map(|(_, n)| n.as_u64())
            .sum();
        eprintln!(
            "reliability: {test}: acknowledged={} refused_503={refused} crashes={crashes} \
             faults_injected={injected} stored={} dead_lettered={} stored_and_dead_lettered={} \
             refused_but_stored={} lost={} changed={} duplicated={} poison_dead_lettered={}",
            self.acknowledged,
            self.stored,
            self.dead_lettered,
            self.stored_and_dead_lettered,
            self.refused_but_stored,
            self.lost,
            self.changed,
            self.duplicated,
            self.poison
        );
    }

    /// Nothing lost, changed or doubled, and stored + dead-lettered accounts for every 202.
    pub fn assert_kept(&self) {
        assert_eq!(
            (self.lost, self.changed, self.duplicated),
            (0, 0, 0),
            "the promise was broken: {self:?}"
        );
        assert_eq!(
            self.stored + self.dead_lettered,
            self.acknowledged,
            "{self:?}"
        );
    }
}
