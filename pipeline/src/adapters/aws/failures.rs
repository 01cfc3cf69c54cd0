//! The failure log on the messages table: one item a dead letter, in its own partition.
//!
//! | attribute | value |
//! |---|---|
//! | `pk` | `dead` |
//! | `sk` | the dead letter's key ([`DeadLetterId::key`]): the job id, so that jobs list newest first as the messages do; raw dead letters (`raw:` and their message id) before them |
//! | `receive_count`, `first_failure_ms`, `last_failure_ms` | numbers |
//! | `last_error`, `preview` | bounded strings ([`crate::domain::Failure`]) |
//! | `expires_at` | epoch seconds: the table's TTL removes a note when the dead-letter queue's own retention would have removed its message |
//!
//! One partition, not sixteen: notes are written only when a job fails for the last time,
//! far below a partition's 1,000 writes a second, and one partition keeps the listing one
//! `Query`.

use anyhow::{anyhow, Context as _};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, WriteRequest};
use futures::future::try_join_all;

use super::dynamodb::{DynamoDbStore, Item};
use crate::domain::{Attempt, DeadLetterId, Failure, JobId};
use crate::ports::{DeadLetterPage, FailureLog, PortError, PortResult};

const PARTITION: &str = "dead";
/// The dead-letter queue's retention in template.yaml (14 days).
pub const DEAD_LETTER_RETENTION_SECS: u64 = 14 * 24 * 3600;
/// BatchWriteItem's limit.
const BATCH_WRITE_MAX: usize = 25;

impl DynamoDbStore {
    /// Notes, raw ones first, then newest job first; strictly after `before`.
    pub async fn dead_letter_notes(
        &self,
        limit: usize,
        before: Option<DeadLetterId>,
    ) -> anyhow::Result<DeadLetterPage> {
        let output = self
            .newest_first(PARTITION.into(), limit, before.map(|id| id.key()))
            .send()
            .await
            .context("DynamoDB Query failed")?;
        let letters: Vec<Failure> = output
            .items()
            .iter()
            .map(failure_from_item)
            .collect::<anyhow::Result<_>>()?;
        let next = output
            .last_evaluated_key
            .is_some()
            .then(|| letters.last().map(|f| f.id.clone()))
            .flatten();
        Ok(DeadLetterPage { letters, next })
    }

    /// Removes the notes of these dead letters (requeued, deleted or purged).
    pub async fn forget_failures(&self, ids: &[DeadLetterId]) -> anyhow::Result<()> {
        let batches = ids.chunks(BATCH_WRITE_MAX).map(|chunk| async move {
            let mut requests: Vec<WriteRequest> = chunk
                .iter()
                .map(|id| {
                    let key = DeleteRequest::builder()
                        .key("pk", AttributeValue::S(PARTITION.into()))
                        .key("sk", AttributeValue::S(id.key()))
                        .build()?;
                    Ok(WriteRequest::builder().delete_request(key).build())
                })
                .collect::<anyhow::Result<_>>()?;
            // Unprocessed deletes are sent again; a note left behind only lists a job that
            // is no longer in the dead-letter queue, which requeueing it then reports.
            for _ in 0..5 {
                let output = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, requests)
                    .send()
                    .await
                    .context("DynamoDB BatchWriteItem failed")?;
                requests = output
                    .unprocessed_items
                    .and_then(|mut left| left.remove(&self.table))
                    .unwrap_or_default();
                if requests.is_empty() {
                    return Ok(());
                }
            }
            Err(anyhow!(
                "{} notes were left after five tries",
                requests.len()
            ))
        });
        try_join_all(batches).await.map(|_| ())
    }

    /// Every noted dead letter, for a purge.
    pub async fn all_failure_ids(&self) -> anyhow::Result<Vec<DeadLetterId>> {
        let mut ids = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", AttributeValue::S(PARTITION.into()))
                .projection_expression("sk")
                .set_exclusive_start_key(start)
                .send()
                .await
                .context("DynamoDB Query failed")?;
            for item in output.items() {
                ids.push(dead_letter_id(text(item, "sk")?)?);
            }
            start = output.last_evaluated_key;
            if start.is_none() {
                return Ok(ids);
            }
        }
    }
}

#[async_trait]
impl FailureLog for DynamoDbStore {
    async fn note(&self, failures: &[Failure]) -> PortResult<()> {
        let items = failures.iter().map(failure_item);
        Ok(self.put_each(items).await.context("failure note")?)
    }

    async fn failure(&self, id: JobId) -> PortResult<Option<Failure>> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(PARTITION.into()))
            .key("sk", AttributeValue::S(DeadLetterId::Job(id).key()))
            .send()
            .await
            .context("DynamoDB GetItem failed")?;
        output
            .item
            .as_ref()
            .map(failure_from_item)
            .transpose()
            .map_err(PortError::from)
    }

    async fn note_attempts(&self, attempts: &[Attempt]) -> PortResult<()> {
        Ok(self.put_attempts(attempts).await?)
    }

    async fn attempts(&self, id: JobId) -> PortResult<Vec<Attempt>> {
        Ok(self.query_attempts(id).await?)
    }
}

fn failure_item(failure: &Failure) -> Item {
    let number = |n: u64| AttributeValue::N(n.to_string());
    Item::from([
        ("pk".to_owned(), AttributeValue::S(PARTITION.into())),
        ("sk".to_owned(), AttributeValue::S(failure.id.key())),
        (
            "receive_count".to_owned(),
            number(u64::from(failure.receive_count)),
        ),
        (
            "first_failure_ms".to_owned(),
            number(failure.first_failure_ms),
        ),
        (
            "last_failure_ms".to_owned(),
            number(failure.last_failure_ms),
        ),
        (
            "last_error".to_owned(),
            AttributeValue::S(failure.last_error.clone()),
        ),
        (
            "preview".to_owned(),
            AttributeValue::S(failure.preview.clone()),
        ),
        (
            "expires_at".to_owned(),
            number(failure.last_failure_ms / 1000 + DEAD_LETTER_RETENTION_SECS),
        ),
    ])
}

fn text<'a>(item: &'a Item, name: &str) -> anyhow::Result<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Ok(value),
        _ => Err(anyhow!("failure note has no string attribute `{name}`")),
    }
}

fn number(item: &Item, name: &str) -> anyhow::Result<u64> {
    match item.get(name) {
        Some(AttributeValue::N(value)) => value
            .parse()
            .with_context(|| format!("failure note's `{name}` is not a whole number")),
        _ => Err(anyhow!("failure note has no number attribute `{name}`")),
    }
}

fn dead_letter_id(key: &str) -> anyhow::Result<DeadLetterId> {
    DeadLetterId::from_key(key)
        .ok_or_else(|| anyhow!("failure note's key `{key}` names no dead letter"))
}

fn failure_from_item(item: &Item) -> anyhow::Result<Failure> {
    Ok(Failure {
        id: dead_letter_id(text(item, "sk")?)?,
        receive_count: u32::try_from(number(item, "receive_count")?)?,
        first_failure_ms: number(item, "first_failure_ms")?,
        last_failure_ms: number(item, "last_failure_ms")?,
        last_error: text(item, "last_error")?.to_owned(),
        preview: text(item, "preview")?.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_note_maps_back_to_the_failure_it_was_made_from_and_expires_with_the_dlq() {
        let failure = Failure {
            id: DeadLetterId::Job(JobId::new()),
            receive_count: 5,
            first_failure_ms: 1_700_000_000_000,
            last_failure_ms: 1_700_000_100_000,
            last_error: "throttled".into(),
            preview: "hello".into(),
        };
        let item = failure_item(&failure);
        assert_eq!(failure_from_item(&item).unwrap(), failure);
        let raw = Failure {
            id: DeadLetterId::Raw("0f6b3c2e-4a1d".into()),
            ..failure.clone()
        };
        assert_eq!(failure_from_item(&failure_item(&raw)).unwrap(), raw);
        assert_eq!(
            item["expires_at"],
            AttributeValue::N((1_700_000_100 + DEAD_LETTER_RETENTION_SECS).to_string())
        );
    }
}
