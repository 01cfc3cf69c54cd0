//! # Key schema
//!
//! | attribute | role | value |
//! |---|---|---|
//! | `pk` | partition key | `shard#00` .. `shard#15`, from the job id's random bits |
//! | `sk` | sort key | the job id (a UUIDv7, so it sorts by acceptance time) |
//! | `content` | | the message |
//! | `accepted_at` | | RFC 3339, for people reading the table; the API derives it from `sk` |
//!
//! Why shards and not time buckets: a partition takes about 1,000 writes/s, and messages
//! arriving now all share the current time bucket, so bucketing by time funnels every write
//! into one partition anyway (adaptive capacity cannot split on a sort key that only grows).
//! Spreading jobs over 16 shards gives 16 partitions of write headroom from the start. A
//! time-bucketed layout would also make "newest first" walk back over empty buckets, an
//! unbounded number of queries after a quiet month.
//!
//! Reads stay `Query`, never `Scan`: a page queries every shard newest first in parallel
//! (`sk < cursor`, `Limit = limit + 1`) and merges them ([`merge_newest_first`]). The job id
//! of a message gives its full key, so `GET /messages/{id}` is one `GetItem`.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use futures::future::join_all;

use crate::domain::{ContentLimit, Cursor, JobId, Message, MessageContent, Page, PageLimit};
use crate::ports::{MessageStore, PutBatchError};

/// Write shards. Changing it orphans stored items from listing: it is part of the schema.
pub const SHARDS: u8 = 16;
/// BatchWriteItem's limit per call.
const BATCH_WRITE_MAX: usize = 25;
/// Attempts at the items DynamoDB hands back as unprocessed, before reporting them failed.
const UNPROCESSED_ATTEMPTS: u32 = 5;

type Item = HashMap<String, AttributeValue>;

/// The store port on Amazon DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoDbStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoDbStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// A client configured from the environment (see [`super::sdk_config`]).
    pub async fn connect(table: impl Into<String>) -> Self {
        Self::new(
            aws_sdk_dynamodb::Client::new(&super::sdk_config().await),
            table,
        )
    }

    /// Writes up to 25 messages, retrying what DynamoDB leaves unprocessed with bounded,
    /// jittered exponential backoff. Returns the jobs that are still unwritten.
    async fn put_chunk(&self, chunk: &[Message]) -> Result<(), PutBatchError> {
        let mut pending = write_requests(chunk).map_err(|cause| PutBatchError {
            unwritten: chunk.iter().map(|m| m.id).collect(),
            cause,
        })?;
        for attempt in 0..UNPROCESSED_ATTEMPTS {
            if attempt > 0 {
                let base = 25u64 << attempt.min(6);
                tokio::time::sleep(Duration::from_millis(base + fastrand::u64(0..base))).await;
            }
            let output = self
                .client
                .batch_write_item()
                .request_items(&self.table, pending.clone())
                .send()
                .await;
            match output {
                Ok(output) => {
                    pending = output
                        .unprocessed_items
                        .and_then(|mut tables| tables.remove(&self.table))
                        .unwrap_or_default();
                    if pending.is_empty() {
                        return Ok(());
                    }
                    tracing::warn!(
                        unprocessed = pending.len(),
                        attempt,
                        "BatchWriteItem left items unprocessed"
                    );
                }
                // The SDK has already retried throttling and transient errors.
                Err(error) => {
                    return Err(PutBatchError {
                        unwritten: pending.iter().filter_map(job_of_request).collect(),
                        cause: anyhow::Error::new(error).context("DynamoDB BatchWriteItem failed"),
                    })
                }
            }
        }
        Err(PutBatchError {
            unwritten: pending.iter().filter_map(job_of_request).collect(),
            cause: anyhow!("items still unprocessed after {UNPROCESSED_ATTEMPTS} attempts"),
        })
    }

    async fn query_shard(
        &self,
        shard: u8,
        limit: usize,
        before: Option<JobId>,
    ) -> anyhow::Result<ShardPage> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .expression_attribute_values(":pk", AttributeValue::S(shard_key(shard)))
            .scan_index_forward(false)
            .limit(i32::try_from(limit + 1).unwrap_or(i32::MAX));
        query = match before {
            Some(before) => query
                .key_condition_expression("pk = :pk AND sk < :before")
                .expression_attribute_values(":before", AttributeValue::S(before.to_string())),
            None => query.key_condition_expression("pk = :pk"),
        };
        let output = query.send().await.context("DynamoDB Query failed")?;
        Ok(ShardPage {
            exhausted: output.last_evaluated_key.is_none(),
            messages: output
                .items
                .unwrap_or_default()
                .iter()
                .map(message_from_item)
                .collect::<Result<_, _>>()?,
        })
    }
}

#[async_trait]
impl MessageStore for DynamoDbStore {
    async fn put_batch(&self, messages: &[Message]) -> Result<(), PutBatchError> {
        // BatchWriteItem refuses a call that names one key twice; the same job twice is one write.
        let mut seen = HashSet::new();
        let unique: Vec<Message> = messages
            .iter()
            .filter(|m| seen.insert(m.id))
            .cloned()
            .collect();
        let results = join_all(
            unique
                .chunks(BATCH_WRITE_MAX)
                .map(|chunk| self.put_chunk(chunk)),
        )
        .await;
        let mut unwritten = Vec::new();
        let mut causes = Vec::new();
        for error in results.into_iter().filter_map(Result::err) {
            unwritten.extend(error.unwritten);
            causes.push(error.cause);
        }
        match causes.into_iter().next() {
            None => Ok(()),
            Some(cause) => Err(PutBatchError { unwritten, cause }),
        }
    }

    async fn get(&self, id: JobId) -> anyhow::Result<Option<Message>> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(shard_key(shard_of(id))))
            .key("sk", AttributeValue::S(id.to_string()))
            .send()
            .await
            .context("DynamoDB GetItem failed")?;
        output.item.as_ref().map(message_from_item).transpose()
    }

    async fn list(&self, limit: PageLimit, before: Option<JobId>) -> anyhow::Result<Page> {
        let queries = (0..SHARDS).map(|shard| self.query_shard(shard, limit.get(), before));
        let pages = join_all(queries)
            .await
            .into_iter()
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(merge_newest_first(pages, limit))
    }
}

/// One shard's messages, newest first, and whether the shard has nothing older.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardPage {
    pub messages: Vec<Message>,
    pub exhausted: bool,
}

/// Merges per-shard pages into one page, newest first.
///
/// A shard that is not exhausted may hold older messages than it returned, so only messages
/// at or above the highest such "frontier" are known to be in order; the page stops there
/// (possibly short) and its cursor resumes right after its last message.
pub fn merge_newest_first(pages: Vec<ShardPage>, limit: PageLimit) -> Page {
    let frontier = pages
        .iter()
        .filter(|page| !page.exhausted)
        .filter_map(|page| page.messages.last().map(|m| m.id))
        .max();
    let mut messages: Vec<Message> = pages
        .into_iter()
        .flat_map(|page| page.messages)
        .filter(|m| frontier.is_none_or(|f| m.id >= f))
        .collect();
    messages.sort_unstable_by_key(|m| std::cmp::Reverse(m.id));
    let more = frontier.is_some() || messages.len() > limit.get();
    messages.truncate(limit.get());
    let next = if more {
        messages.last().map(Cursor::after)
    } else {
        None
    };
    Page { messages, next }
}

pub(crate) fn shard_of(id: JobId) -> u8 {
    id.spread() % SHARDS
}

fn shard_key(shard: u8) -> String {
    format!("shard#{shard:02}")
}

/// The `PutRequest`s that store `messages`: the consumer's CPU work per batch besides decoding
/// (public for the hot-path benchmark, `bench/consumer_hot_path.rs`).
pub fn write_requests(messages: &[Message]) -> anyhow::Result<Vec<WriteRequest>> {
    messages.iter().map(put_request).collect()
}

fn put_request(message: &Message) -> anyhow::Result<WriteRequest> {
    let put = PutRequest::builder()
        .set_item(Some(item_of(message)))
        .build()?;
    Ok(WriteRequest::builder().put_request(put).build())
}

pub(crate) fn item_of(message: &Message) -> Item {
    HashMap::from([
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
    ])
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
    Ok(Message { id, content })
}

fn job_of_request(request: &WriteRequest) -> Option<JobId> {
    match request.put_request.as_ref()?.item.get("sk")? {
        AttributeValue::S(id) => id.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::stored_messages;

    fn shard(messages: &[Message], exhausted: bool) -> ShardPage {
        let mut messages = messages.to_vec();
        messages.sort_by_key(|m| std::cmp::Reverse(m.id));
        ShardPage {
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
        let item = item_of(&message);
        assert_eq!(message_from_item(&item).unwrap(), message);
        assert_eq!(
            item["pk"],
            AttributeValue::S(shard_key(shard_of(message.id)))
        );
    }

    #[test]
    fn a_malformed_item_is_an_error_not_a_panic() {
        let mut item = item_of(&stored_messages(1)[0]);
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
        );
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
        let page = merge_newest_first(vec![shard(&m, true)], PageLimit::parse("2").unwrap());
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
        );
        assert_eq!(contents(&page), ["message 5", "message 4", "message 3"]);
        assert_eq!(page.next, Some(Cursor::after(&m[3])));
    }

    #[test]
    fn an_exactly_full_last_page_has_no_cursor() {
        let m = stored_messages(2);
        let page = merge_newest_first(vec![shard(&m, true)], PageLimit::parse("2").unwrap());
        assert_eq!(page.messages.len(), 2);
        assert_eq!(page.next, None);
    }

    mod batch_write_retries {
        use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemOutput;
        use aws_sdk_dynamodb::Client;
        use aws_smithy_mocks::{mock, mock_client, RuleMode};

        use super::super::*;
        use crate::testing::stored_messages;

        fn leaving_unprocessed(
            message: Message,
        ) -> impl Fn() -> BatchWriteItemOutput + Send + Sync + 'static {
            move || {
                BatchWriteItemOutput::builder()
                    .unprocessed_items("table", vec![put_request(&message).unwrap()])
                    .build()
            }
        }

        #[tokio::test]
        async fn unprocessed_items_are_sent_again_until_written() {
            let messages = stored_messages(3);
            let rule = mock!(Client::batch_write_item)
                .sequence()
                .output(leaving_unprocessed(messages[1].clone()))
                .output(|| BatchWriteItemOutput::builder().build())
                .build();
            let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&rule]);

            let outcome = DynamoDbStore::new(client, "table")
                .put_batch(&messages)
                .await;

            assert!(outcome.is_ok(), "{outcome:?}");
            assert_eq!(rule.num_calls(), 2);
        }

        #[tokio::test]
        async fn items_still_unprocessed_after_the_last_attempt_are_reported_unwritten() {
            let messages = stored_messages(3);
            let stuck = messages[2].clone();
            let rule = mock!(Client::batch_write_item)
                .sequence()
                .output(leaving_unprocessed(stuck.clone()))
                .times(UNPROCESSED_ATTEMPTS as usize)
                .build();
            let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&rule]);

            let error = DynamoDbStore::new(client, "table")
                .put_batch(&messages)
                .await
                .unwrap_err();

            assert_eq!(error.unwritten, vec![stuck.id]);
            assert_eq!(rule.num_calls(), UNPROCESSED_ATTEMPTS as usize);
        }
    }
}
