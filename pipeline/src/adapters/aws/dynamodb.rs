//! # Key schema
//!
//! | attribute | role | value |
//! |---|---|---|
//! | `pk` | partition key | `shard#00` .. `shard#15`, from the job id's random bits |
//! | `sk` | sort key | the job id (a UUIDv7, so it sorts by acceptance time) |
//! | `content` | | the message |
//! | `attributes` | | the message's attributes (a map of strings), absent when it has none |
//! | `accepted_at` | | RFC 3339, for people reading the table; the API derives it from `sk` |
//! | `expires_at` | TTL | epoch seconds: when the message expires (absent: kept for ever), or when a tombstone may go |
//! | `deleted_at` | | a tombstone: milliseconds since the epoch when the message was deleted; no content |
//!
//! A deleted message leaves a tombstone under its key (only `pk`, `sk`, `deleted_at` and
//! `expires_at`), so that the consumer's conditional write of a later delivery finds it and
//! stores nothing: the delete wins in the same condition that makes writes idempotent. Reads
//! skip tombstones and expired items themselves: DynamoDB's TTL reaper can take days.
//!
//! Why shards and not time buckets: a partition takes about 1,000 writes/s, and messages
//! arriving now all share the current time bucket, so bucketing by time funnels every write
//! into one partition anyway (adaptive capacity cannot split on a sort key that only grows).
//! Spreading jobs over 16 shards gives 16 partitions of write headroom from the start. A
//! time-bucketed layout would also make "newest first" walk back over empty buckets, an
//! unbounded number of queries after a quiet month.
//!
//! Reads stay `Query`, never `Scan`: a page queries every shard newest first in parallel
//! (`sk < cursor`, `Limit` = the shard's share of the page and a little more,
//! [`shard_query_limit`]) and merges them ([`merge_newest_first`]). The job id
//! of a message gives its full key, so `GET /messages/{id}` is one `GetItem`.
//!
//! Writes are one conditional `PutItem` a message: the first write of a job wins, and a
//! stored message is never rewritten (see [`DynamoDbStore`]'s `put_batch`).

use std::collections::{HashMap, HashSet};

use anyhow::{anyhow, Context as _};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use futures::future::join_all;

use std::sync::Arc;

use crate::clock::{Clock, SystemClock};
use crate::domain::{
    expired, Attributes, ContentLimit, Cursor, Deletion, JobId, Lookup, Message, MessageContent,
    MessageRetention, Page, PageLimit, TOMBSTONE_KEPT,
};
use crate::ports::{MessageStore, PortError, PortResult, PutBatchError, Unwritten};

/// Write shards. Changing it orphans stored items from listing: it is part of the schema.
pub const SHARDS: u8 = 16;
/// A stored message never changes: an item is written when its key is new, or rewritten
/// with the very content it holds (a redelivery), and refused otherwise.
const FIRST_WRITE_WINS: &str = "attribute_not_exists(pk) OR content = :content";
/// Queries of a shard that keeps answering empty pages that are not its last.
const EMPTY_PAGE_RETRIES: usize = 3;

pub(super) type Item = HashMap<String, AttributeValue>;

/// A tombstone is written once: a second delete finds it and says when the first was.
const NOT_YET_DELETED: &str = "attribute_not_exists(deleted_at)";

/// The store port on Amazon DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoDbStore {
    pub(super) client: aws_sdk_dynamodb::Client,
    pub(super) table: String,
    retention: MessageRetention,
    /// Stamps expiries and tombstones, and decides what has expired.
    clock: Arc<dyn Clock>,
}

impl DynamoDbStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            retention: MessageRetention::FOREVER,
            clock: Arc::new(SystemClock),
        }
    }

    /// Messages it stores expire after `retention` (the consumer's `MESSAGE_RETENTION_DAYS`).
    pub fn with_retention(mut self, retention: MessageRetention) -> Self {
        self.retention = retention;
        self
    }

    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// With a client of the shared configuration (see [`super::sdk_config`]).
    pub fn from_config(sdk: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        Self::new(aws_sdk_dynamodb::Client::new(sdk), table)
    }

    /// The table's item count as DynamoDB last computed it (about every six hours).
    pub async fn describe_item_count(&self) -> anyhow::Result<u64> {
        let output = self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .context("DynamoDB DescribeTable failed")?;
        Ok(output
            .table
            .and_then(|t| t.item_count)
            .map_or(0, |n| u64::try_from(n).unwrap_or(0)))
    }

    /// A `Query` of partition `pk`, newest job first (`sk` is the job id), at most `limit`
    /// items, strictly older than `before` when given.
    pub(super) fn newest_first(
        &self,
        pk: String,
        limit: usize,
        before: Option<String>,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .expression_attribute_values(":pk", AttributeValue::S(pk))
            .scan_index_forward(false)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX));
        match before {
            Some(before) => query
                .key_condition_expression("pk = :pk AND sk < :before")
                .expression_attribute_values(":before", AttributeValue::S(before)),
            None => query.key_condition_expression("pk = :pk"),
        }
    }

    /// Writes one message with the first-write-wins condition. The SDK retries throttling
    /// and transient errors itself.
    async fn put_one(&self, message: &Message) -> PortResult<()> {
        let mut item = message_item(message);
        if let Some(at_ms) = self.retention.expires_at_ms(self.clock.now_ms_u64()) {
            item.insert("expires_at".into(), epoch_seconds(at_ms));
        }
        let outcome = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(FIRST_WRITE_WINS)
            .expression_attribute_values(
                ":content",
                AttributeValue::S(message.content.as_str().to_owned()),
            )
            // What stands in the way comes back with the refusal: a tombstone means done.
            .return_values_on_condition_check_failure(
                aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
            )
            .send()
            .await;
        match outcome {
            Ok(_) => Ok(()),
            Err(error)
                if standing_item(&error).is_some_and(|old| old.contains_key("deleted_at")) =>
            {
                tracing::info!(job_id = %message.id, "not stored: the job was deleted before this delivery");
                Ok(())
            }
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                tracing::warn!(job_id = %message.id, "a repeat of a stored job with other content was refused; the stored message is kept");
                Err(PortError::permanent(anyhow!(
                    "job {} is stored with other content; a stored message is never rewritten",
                    message.id
                )))
            }
            Err(error) => Err(super::port_error(error, "DynamoDB PutItem")),
        }
    }

    async fn query_shard(
        &self,
        shard: u8,
        limit: usize,
        before: Option<JobId>,
    ) -> anyhow::Result<ShardPage> {
        let query = self.newest_first(
            shard_key(shard),
            shard_query_limit(limit),
            before.map(|id| id.to_string()),
        );
        // A page that is empty but not the last one tells nothing (see merge_newest_first):
        // read on from where it stopped, a few times.
        let mut start = None;
        for _ in 0..EMPTY_PAGE_RETRIES {
            let output = query
                .clone()
                .set_exclusive_start_key(start)
                .send()
                .await
                .context("DynamoDB Query failed")?;
            let items = output.items.unwrap_or_default();
            start = output.last_evaluated_key;
            if !items.is_empty() || start.is_none() {
                let now_ms = self.clock.now_ms_u64();
                let mut messages = Vec::with_capacity(items.len());
                let mut last_read = None;
                for item in &items {
                    let (id, lookup) = lookup_from_item(item, now_ms)?;
                    last_read = Some(id);
                    messages.extend(lookup.into_message());
                }
                return Ok(ShardPage {
                    exhausted: start.is_none(),
                    messages,
                    last_read,
                });
            }
        }
        Ok(ShardPage {
            messages: Vec::new(),
            exhausted: false,
            last_read: None,
        })
    }
}

#[async_trait]
impl MessageStore for DynamoDbStore {
    /// One conditional PutItem a message, all at once (first write wins, [`FIRST_WRITE_WINS`]).
    ///
    /// Cost: a write unit a KB an item, as the BatchWriteItem this replaced; a redelivery
    /// costs the same again, and so does a refused repeat (the condition is checked by a
    /// write). On-demand tables bill write units, not requests, so one request a message
    /// instead of one per 25 changes the bill by nothing; BatchWriteItem cannot carry a
    /// condition.
    async fn put_batch(&self, messages: &[Message]) -> Result<(), PutBatchError> {
        // The same job twice in one batch (a redelivery) is one write.
        let mut seen = HashSet::new();
        let unique: Vec<&Message> = messages.iter().filter(|m| seen.insert(m.id)).collect();
        let results = join_all(unique.iter().map(|m| self.put_one(m))).await;
        let unwritten: Vec<Unwritten> = unique
            .iter()
            .zip(results)
            .filter_map(|(message, result)| {
                result.err().map(|cause| Unwritten {
                    id: message.id,
                    cause,
                })
            })
            .collect();
        if unwritten.is_empty() {
            Ok(())
        } else {
            Err(PutBatchError { unwritten })
        }
    }

    async fn lookup(&self, id: JobId) -> PortResult<Lookup> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(shard_key(shard_of(id))))
            .key("sk", AttributeValue::S(id.to_string()))
            .send()
            .await
            .context("DynamoDB GetItem failed")?;
        match output.item {
            None => Ok(Lookup::Absent),
            Some(item) => Ok(lookup_from_item(&item, self.clock.now_ms_u64())?.1),
        }
    }

    /// One PutItem of a tombstone over the message's key, whatever was there (nothing yet, or
    /// the message): no read of the message first, so the operate role needs no read of
    /// messages, only this write (its policy allows items of these attributes only).
    async fn delete(&self, id: JobId) -> PortResult<Deletion> {
        let now_ms = self.clock.now_ms_u64();
        let keep_until = now_ms + TOMBSTONE_KEPT.as_millis() as u64;
        let outcome = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(shard_key(shard_of(id))))
            .item("sk", AttributeValue::S(id.to_string()))
            .item("deleted_at", AttributeValue::N(now_ms.to_string()))
            .item("expires_at", epoch_seconds(keep_until))
            .condition_expression(NOT_YET_DELETED)
            .return_values_on_condition_check_failure(
                aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
            )
            .send()
            .await;
        match outcome {
            Ok(_) => Ok(Deletion::Deleted { at_ms: now_ms }),
            Err(error) => match standing_item(&error) {
                Some(old) => Ok(Deletion::AlreadyDeleted {
                    at_ms: number(old, "deleted_at").unwrap_or(0),
                }),
                None => Err(super::port_error(error, "DynamoDB PutItem")),
            },
        }
    }

    async fn list(&self, limit: PageLimit, before: Option<JobId>) -> PortResult<Page> {
        let queries = (0..SHARDS).map(|shard| self.query_shard(shard, limit.get(), before));
        let pages = join_all(queries)
            .await
            .into_iter()
            .collect::<anyhow::Result<Vec<_>>>()?;
        merge_newest_first(pages, limit).map_err(PortError::from)
    }
}

/// One shard's messages, newest first, and whether the shard has nothing older.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardPage {
    /// The messages to show: deleted and expired ones left out.
    pub messages: Vec<Message>,
    pub exhausted: bool,
    /// The oldest job read, shown or not: how far the shard has been looked through.
    pub last_read: Option<JobId>,
}

/// Merges per-shard pages into one page, newest first.
///
/// A shard that is not exhausted may hold older messages than it returned, so only messages
/// at or above the highest such "frontier" are known to be in order; the page stops there
/// (possibly short) and its cursor resumes right after its last message.
///
/// The frontier counts every item read, tombstones and expired messages too: a shard whose
/// page held only those still moves the walk on (the page may then be empty, with a cursor
/// at the frontier).
///
/// A shard that returned nothing without being exhausted gives no frontier at all: any page
/// cut now could pass over its messages for good. That is an error (a 503: the client asks
/// again); [`DynamoDbStore`] asks such a shard again before it comes to that.
pub fn merge_newest_first(pages: Vec<ShardPage>, limit: PageLimit) -> anyhow::Result<Page> {
    anyhow::ensure!(
        pages.iter().all(|p| p.exhausted || p.last_read.is_some()),
        "a shard answered no items without being exhausted; the page cannot be cut safely"
    );
    let frontier = pages
        .iter()
        .filter(|page| !page.exhausted)
        .filter_map(|page| page.last_read)
        .max();
    let mut messages: Vec<Message> = pages
        .into_iter()
        .flat_map(|page| page.messages)
        .filter(|m| frontier.is_none_or(|f| m.id >= f))
        .collect();
    messages.sort_unstable_by_key(|m| std::cmp::Reverse(m.id));
    let more = frontier.is_some() || messages.len() > limit.get();
    messages.truncate(limit.get());
    let next = match (more, messages.last(), frontier) {
        (false, _, _) => None,
        (true, Some(last), _) => Some(Cursor::after(last)),
        // Everything down to the frontier was deleted or expired: go on from there.
        (true, None, frontier) => frontier.map(|before| Cursor { before }),
    };
    Ok(Page { messages, next })
}

/// The item that made a conditional `PutItem` fail (asked for with
/// `ReturnValuesOnConditionCheckFailure::AllOld`); `None` for any other error.
fn standing_item<R>(
    error: &aws_sdk_dynamodb::error::SdkError<
        aws_sdk_dynamodb::operation::put_item::PutItemError,
        R,
    >,
) -> Option<&Item> {
    match error.as_service_error()? {
        aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(
            refusal,
        ) => refusal.item(),
        _ => None,
    }
}

/// An epoch-milliseconds time as DynamoDB's TTL wants it: epoch seconds (rounded down, so
/// that what a store hides at a millisecond is hidden here by then), a number.
fn epoch_seconds(ms: u64) -> AttributeValue {
    AttributeValue::N((ms / 1000).to_string())
}

fn number(item: &Item, name: &str) -> Option<u64> {
    match item.get(name) {
        Some(AttributeValue::N(n)) => n.parse().ok(),
        _ => None,
    }
}

/// What an item holds, at `now_ms`: a message, a tombstone, or an expired message.
fn lookup_from_item(item: &Item, now_ms: u64) -> anyhow::Result<(JobId, Lookup)> {
    let id: JobId = match item.get("sk") {
        Some(AttributeValue::S(sk)) => sk.parse()?,
        _ => return Err(anyhow!("stored item has no string attribute `sk`")),
    };
    let expires_at_ms = number(item, "expires_at").map(|s| s.saturating_mul(1000));
    if let Some(at_ms) = number(item, "deleted_at") {
        // A tombstone past its time is gone, as if the reaper had been.
        let lookup = if expired(expires_at_ms, now_ms) {
            Lookup::Absent
        } else {
            Lookup::Deleted { at_ms }
        };
        return Ok((id, lookup));
    }
    if expired(expires_at_ms, now_ms) {
        return Ok((id, Lookup::Expired));
    }
    Ok((id, Lookup::Stored(message_from_item(item)?)))
}

/// The shard a job's item is written to.
pub fn shard_of(id: JobId) -> u8 {
    id.spread() % SHARDS
}

/// How many items each shard's Query asks for, for a page of `limit`: its share of the page
/// and a little more, instead of `limit + 1` from every shard (16 times what the page shows).
/// Jobs spread evenly over the shards, so the merge's frontier rule cuts such a page close
/// to `limit`; a page that comes out short is legal and its cursor goes on from there.
/// `bench/list_reads.rs` measures what each choice reads and returns.
pub fn shard_query_limit(limit: usize) -> usize {
    (limit + 1).div_ceil(usize::from(SHARDS)) + SHARE_MARGIN
}

/// Items asked of each shard above its even share: room for the shards that hold more of
/// the page than their share.
const SHARE_MARGIN: usize = 2;

fn shard_key(shard: u8) -> String {
    format!("shard#{shard:02}")
}

/// The item that stores `message` (public for the hot-path benchmark,
/// `bench/consumer_hot_path.rs`: it is the consumer's CPU work per message besides decoding).
pub fn message_item(message: &Message) -> Item {
    let mut item = HashMap::from([
        (
            "pk".to_owned(),
            AttributeValue::S(shard_key(shard_of(message.id))),
        ),
        ("sk".to_owned(), AttributeValue::S(message.id.to_string())),
        (
            "content".to_owned(),
            AttributeValue::S(message.content.as_str().to_owned()),
        ),
        (
            "accepted_at".to_owned(),
            AttributeValue::S(message.id.timestamp()),
        ),
    ]);
    if !message.attributes.is_empty() {
        let map = message
            .attributes
            .iter()
            .map(|(name, value)| (name.clone(), AttributeValue::S(value.clone())))
            .collect();
        item.insert("attributes".to_owned(), AttributeValue::M(map));
    }
    item
}

fn message_from_item(item: &Item) -> anyhow::Result<Message> {
    let text = |name: &str| -> anyhow::Result<&str> {
        match item.get(name) {
            Some(AttributeValue::S(value)) => Ok(value),
            _ => Err(anyhow!("stored item has no string attribute `{name}`")),
        }
    };
    let id: JobId = text("sk")?.parse()?;
    // Stored content was validated on the way in; the widest limit reads it back whatever the
    // current configuration, so lowering the limit never hides old messages.
    let limit = ContentLimit::ceiling();
    let content = MessageContent::parse(text("content")?.to_owned(), limit)
        .with_context(|| format!("stored item {id} has invalid content"))?;
    let attributes = match item.get("attributes") {
        None => Attributes::default(),
        Some(AttributeValue::M(map)) => Attributes::parse(
            map.iter()
                .map(|(name, value)| match value {
                    AttributeValue::S(text) => Ok((name.clone(), text.clone())),
                    _ => Err(anyhow!("stored item {id} has a non-string attribute")),
                })
                .collect::<anyhow::Result<_>>()?,
        )
        .with_context(|| format!("stored item {id} has invalid attributes"))?,
        Some(_) => {
            return Err(anyhow!(
                "stored item {id} has attributes that are not a map"
            ))
        }
    };
    Ok(Message::new(id, content, attributes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::stored_messages;

    fn shard(messages: &[Message], exhausted: bool) -> ShardPage {
        let mut messages = messages.to_vec();
        messages.sort_by_key(|m| std::cmp::Reverse(m.id));
        ShardPage {
            last_read: messages.last().map(|m| m.id),
            messages,
            exhausted,
        }
    }

    fn contents(page: &Page) -> Vec<&str> {
        page.messages.iter().map(|m| m.content.as_str()).collect()
    }

    #[test]
    fn an_item_maps_back_to_the_message_it_was_made_from() {
        let message = stored_messages(1).remove(0);
        let item = message_item(&message);
        assert_eq!(message_from_item(&item).unwrap(), message);
        assert_eq!(
            item["pk"],
            AttributeValue::S(shard_key(shard_of(message.id)))
        );
    }

    #[test]
    fn a_malformed_item_is_an_error_not_a_panic() {
        let mut item = message_item(&stored_messages(1)[0]);
        item.insert("sk".into(), AttributeValue::N("1".into()));
        assert!(message_from_item(&item).is_err());
        item.remove("sk");
        assert!(message_from_item(&item).is_err());
    }

    #[test]
    fn jobs_spread_over_every_shard() {
        let mut counts = [0u32; SHARDS as usize];
        for _ in 0..16_000 {
            counts[usize::from(shard_of(JobId::new()))] += 1;
        }
        assert!(
            counts.iter().all(|&n| (700..1300).contains(&n)),
            "{counts:?}"
        );
    }

    #[test]
    fn exhausted_shards_merge_into_one_ordered_page() {
        let m = stored_messages(5);
        let page = merge_newest_first(
            vec![
                shard(&[m[0].clone(), m[3].clone()], true),
                shard(&[m[1].clone(), m[2].clone(), m[4].clone()], true),
            ],
            PageLimit::parse("10").unwrap(),
        )
        .unwrap();
        assert_eq!(
            contents(&page),
            [
                "message 4",
                "message 3",
                "message 2",
                "message 1",
                "message 0"
            ]
        );
        assert_eq!(page.next, None);
    }

    #[test]
    fn a_full_page_gets_a_cursor_after_its_last_message() {
        let m = stored_messages(5);
        let page =
            merge_newest_first(vec![shard(&m, true)], PageLimit::parse("2").unwrap()).unwrap();
        assert_eq!(contents(&page), ["message 4", "message 3"]);
        assert_eq!(page.next, Some(Cursor::after(&m[3])));
    }

    #[test]
    fn a_truncated_shard_stops_the_page_at_its_frontier() {
        let m = stored_messages(6);
        // Shard A stopped early (1 MB cap) at message 3: messages 0..2 of other shards could
        // be interleaved with what A still holds, so the page must stop at message 3.
        let page = merge_newest_first(
            vec![
                shard(&[m[5].clone(), m[3].clone()], false),
                shard(&[m[4].clone(), m[2].clone(), m[0].clone()], true),
            ],
            PageLimit::parse("10").unwrap(),
        )
        .unwrap();
        assert_eq!(contents(&page), ["message 5", "message 4", "message 3"]);
        assert_eq!(page.next, Some(Cursor::after(&m[3])));
    }

    #[test]
    fn an_exactly_full_last_page_has_no_cursor() {
        let m = stored_messages(2);
        let page =
            merge_newest_first(vec![shard(&m, true)], PageLimit::parse("2").unwrap()).unwrap();
        assert_eq!(page.messages.len(), 2);
        assert_eq!(page.next, None);
    }

    mod merge_properties {
        use proptest::prelude::*;

        use super::super::*;
        use crate::testing::stored_messages;

        /// One shard's answer to `sk < before`, newest first, with the store's `Limit`
        /// ([`shard_query_limit`]), as DynamoDB may
        /// give it: cut short anywhere (the 1 MB cap), and now and then empty without being
        /// exhausted.
        /// `hidden` items (deleted or expired) are read but not shown.
        fn query(
            shard: &[Message],
            hidden: &std::collections::HashSet<JobId>,
            before: Option<JobId>,
            limit: usize,
            rng: &mut fastrand::Rng,
        ) -> ShardPage {
            let older: Vec<Message> = shard
                .iter()
                .rev()
                .filter(|m| before.is_none_or(|b| m.id < b))
                .cloned()
                .collect();
            if !older.is_empty() && rng.u8(..) < 25 {
                return ShardPage {
                    messages: Vec::new(),
                    exhausted: false,
                    last_read: None,
                };
            }
            let asked = shard_query_limit(limit);
            let taken = older.len().min(asked).min(1 + rng.usize(..=asked));
            ShardPage {
                exhausted: taken == older.len(),
                last_read: older[..taken].last().map(|m| m.id),
                messages: older[..taken]
                    .iter()
                    .filter(|m| !hidden.contains(&m.id))
                    .cloned()
                    .collect(),
            }
        }

        proptest! {
            #[test]
            fn a_walk_lists_every_message_once_newest_first(
                n in 0..150usize,
                layout in proptest::collection::vec(0..SHARDS, 150),
                limit in 1..20usize,
                seed in any::<u64>(),
                hidden_share in 0..4u8,
            ) {
                let all = stored_messages(n);
                // Up to three in four deleted or expired: long runs of them in a shard.
                let mut pick = fastrand::Rng::with_seed(seed ^ 1);
                let hidden: std::collections::HashSet<JobId> =
                    all.iter().filter(|_| pick.u8(..4) < hidden_share).map(|m| m.id).collect();
                let mut shards = vec![Vec::new(); usize::from(SHARDS)];
                for (message, shard) in all.iter().zip(&layout) {
                    shards[usize::from(*shard)].push(message.clone());
                }
                let mut rng = fastrand::Rng::with_seed(seed);
                let page_limit = PageLimit::parse(&limit.to_string()).unwrap();
                let (mut listed, mut before, mut calls) = (Vec::new(), None, 0);
                loop {
                    calls += 1;
                    prop_assert!(calls < 10_000, "the walk does not end");
                    let pages = shards
                        .iter()
                        .map(|s| query(s, &hidden, before, limit, &mut rng))
                        .collect();
                    let Ok(page) = merge_newest_first(pages, page_limit) else {
                        continue; // a 503: the client asks again
                    };
                    prop_assert!(page.messages.len() <= limit);
                    listed.extend(page.messages.iter().map(|m| m.id));
                    match page.next {
                        Some(cursor) => before = Some(cursor.before),
                        None => break,
                    }
                }
                let newest_first: Vec<JobId> = all
                    .iter()
                    .rev()
                    .map(|m| m.id)
                    .filter(|id| !hidden.contains(id))
                    .collect();
                prop_assert_eq!(listed, newest_first);
            }
        }
    }

    mod first_write_wins {
        use aws_sdk_dynamodb::operation::put_item::{PutItemError, PutItemOutput};
        use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
        use aws_sdk_dynamodb::Client;
        use aws_smithy_mocks::{mock, mock_client, RuleMode};

        use super::super::*;
        use crate::testing::stored_messages;

        #[tokio::test]
        async fn a_refused_condition_reports_that_job_unwritten_and_writes_the_others() {
            let messages = stored_messages(3);
            let conflicting = messages[1].id.to_string();
            let refused = mock!(Client::put_item)
                .match_requests(move |r| {
                    r.item().and_then(|i| i.get("sk"))
                        == Some(&AttributeValue::S(conflicting.clone()))
                })
                .then_error(|| {
                    PutItemError::ConditionalCheckFailedException(
                        ConditionalCheckFailedException::builder().build(),
                    )
                });
            let written = mock!(Client::put_item).then_output(|| PutItemOutput::builder().build());
            let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&refused, &written]);

            let error = DynamoDbStore::new(client, "table")
                .put_batch(&messages)
                .await
                .unwrap_err();

            assert_eq!(error.ids(), vec![messages[1].id]);
            assert_eq!(
                error.unwritten[0].cause.class,
                crate::domain::FailureClass::Permanent
            );
            assert_eq!((refused.num_calls(), written.num_calls()), (1, 2));
            assert!(
                error.unwritten[0]
                    .cause
                    .to_string()
                    .contains("never rewritten"),
                "{}",
                error.unwritten[0].cause
            );
        }
    }
}
