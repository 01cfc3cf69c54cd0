//! A job's failed deliveries on the messages table: one item an attempt, in the job's own
//! partition, so that a failing outage spreads its writes over as many partitions as there
//! are jobs, and a job's story is one `Query`.
//!
//! | attribute | value |
//! |---|---|
//! | `pk` | `attempts#` and the job id |
//! | `sk` | the receive count, five digits, `#`, the time in ms: in order, and a delivery noted twice is one item |
//! | `at_ms`, `receive_count` | numbers |
//! | `class`, `error` | `transient`, `deployment` or `permanent`; the bounded error, never content |
//! | `expires_at` | epoch seconds: kept as long as a dead letter can be |
//!
//! The consumer writes them with the `PutItem` it stores messages with; the list function
//! reads them with its `Query`. No new permission.

use anyhow::{anyhow, Context as _};
use aws_sdk_dynamodb::types::AttributeValue;
use futures::future::try_join_all;

use super::dynamodb::{DynamoDbStore, Item};
use crate::domain::{Attempt, JobId, ATTEMPTS_KEPT_MS};

fn partition(job: JobId) -> String {
    format!("attempts#{job}")
}

impl DynamoDbStore {
    pub(super) async fn put_attempts(&self, attempts: &[Attempt]) -> anyhow::Result<()> {
        let items = attempts.iter().map(attempt_item);
        self.put_each(items).await.context("attempt")
    }

    /// Puts each item with its own `PutItem`, all at once: a few items, each in its own
    /// partition or rewriting itself, where a batch write would only add its retries.
    pub(super) async fn put_each(&self, items: impl Iterator<Item = Item>) -> anyhow::Result<()> {
        let puts = items.map(|item| {
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .send()
        });
        try_join_all(puts)
            .await
            .context("DynamoDB PutItem failed")?;
        Ok(())
    }

    pub(super) async fn query_attempts(&self, job: JobId) -> anyhow::Result<Vec<Attempt>> {
        let mut attempts = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", AttributeValue::S(partition(job)))
                .set_exclusive_start_key(start)
                .send()
                .await
                .context("DynamoDB Query (attempts) failed")?;
            for item in output.items() {
                attempts.push(attempt_from_item(job, item)?);
            }
            start = output.last_evaluated_key;
            if start.is_none() {
                return Ok(attempts);
            }
        }
    }
}

fn attempt_item(attempt: &Attempt) -> Item {
    let number = |n: u64| AttributeValue::N(n.to_string());
    let expires_at = (attempt.at_ms + ATTEMPTS_KEPT_MS) / 1000;
    Item::from([
        ("pk".to_owned(), AttributeValue::S(partition(attempt.job))),
        (
            "sk".to_owned(),
            AttributeValue::S(format!("{:05}#{}", attempt.receive_count, attempt.at_ms)),
        ),
        ("at_ms".to_owned(), number(attempt.at_ms)),
        (
            "receive_count".to_owned(),
            number(u64::from(attempt.receive_count)),
        ),
        (
            "class".to_owned(),
            AttributeValue::S(attempt.class.to_string()),
        ),
        ("error".to_owned(), AttributeValue::S(attempt.error.clone())),
        ("expires_at".to_owned(), number(expires_at)),
    ])
}

fn attempt_from_item(job: JobId, item: &Item) -> anyhow::Result<Attempt> {
    let text = |name: &str| match item.get(name) {
        Some(AttributeValue::S(value)) => Ok(value.as_str()),
        _ => Err(anyhow!("attempt has no string attribute `{name}`")),
    };
    let number = |name: &str| -> anyhow::Result<u64> {
        match item.get(name) {
            Some(AttributeValue::N(value)) => Ok(value.parse()?),
            _ => Err(anyhow!("attempt has no number attribute `{name}`")),
        }
    };
    Ok(Attempt {
        job,
        receive_count: u32::try_from(number("receive_count")?)?,
        at_ms: number("at_ms")?,
        class: text("class")?.parse()?,
        error: text("error")?.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::FailureClass;

    #[test]
    fn an_attempt_maps_back_and_sorts_by_delivery_then_time() {
        let job = JobId::new();
        let attempt = Attempt {
            job,
            receive_count: 3,
            at_ms: 1_700_000_000_123,
            class: FailureClass::Deployment,
            error: "deployment (retried with backoff): table missing".into(),
        };
        let item = attempt_item(&attempt);
        assert_eq!(attempt_from_item(job, &item).unwrap(), attempt);
        assert_eq!(item["sk"], AttributeValue::S("00003#1700000000123".into()));
        assert_eq!(
            item["expires_at"],
            AttributeValue::N(((1_700_000_000_123 + ATTEMPTS_KEPT_MS) / 1000).to_string())
        );
    }
}
