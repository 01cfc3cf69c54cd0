//! Idempotency keys on DynamoDB: a table of their own (`IdempotencyTable` in template.yaml),
//! partition key `pk` (the scoped key's hash), TTL attribute `expires_at`.
//!
//! | attribute | value |
//! |---|---|
//! | `pk` | [`IdempotencyKey::record`] |
//! | `fingerprint` | the request's fingerprint |
//! | `reserved` | the job ids the request reserved |
//! | `locked_until` | epoch milliseconds: the lease of the request that holds the key |
//! | `answer` | the answer (JSON), once given |
//! | `expires_at` | epoch seconds: DynamoDB's TTL deletes the record after it (within days; the condition below treats it as gone at once) |
//!
//! Cost (on-demand, items under 1 KB): a new key is one conditional `PutItem` and one
//! `UpdateItem` with the answer (two write units; a batch's answer of up to 100 results is
//! up to about 10 KB, so up to 11). A repeat is the refused `PutItem` (a write unit: a failed
//! condition is billed) and a strongly consistent `GetItem` (one read unit). BENCHMARKS.md
//! turns that into dollars.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{anyhow, Context as _};
use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;

use crate::clock::{Clock, SystemClock};
use crate::domain::{
    on_existing, Claim, Existing, IdempotencyKey, KeyRecord, ReservedIds, StoredAnswer, KEY_LEASE,
    KEY_LIFETIME,
};
use crate::ports::{IdempotencyKeys, PortError, PortResult};

/// The idempotency table.
#[derive(Debug, Clone)]
pub struct DynamoDbKeys {
    client: aws_sdk_dynamodb::Client,
    table: String,
    /// Leases and lifetimes are counted on it; DynamoDB's TTL reaper counts on the wall clock,
    /// which only deletes what `FREE` already treats as gone.
    clock: Arc<dyn Clock>,
}

/// A new key, or one whose record outlived its TTL but was not reaped yet.
const FREE: &str = "attribute_not_exists(pk) OR expires_at <= :now";
/// Tries of claim: a record deleted between the refused put and the read (a release, or the
/// TTL) is claimed again.
const CLAIM_TRIES: usize = 3;

fn number(n: u64) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

impl DynamoDbKeys {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            clock: Arc::new(SystemClock),
        }
    }

    /// The same keys counted on `clock` (tests move it instead of waiting out a lease).
    pub fn on_clock(self, clock: Arc<dyn Clock>) -> Self {
        Self { clock, ..self }
    }

    /// With a client of the shared configuration (see [`super::sdk_config`]).
    pub fn from_config(sdk: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        Self::new(aws_sdk_dynamodb::Client::new(sdk), table)
    }

    /// Writes a fresh record; `false` when the key is taken.
    async fn put_new(
        &self,
        key: &IdempotencyKey,
        fingerprint: &str,
        reserved: &ReservedIds,
        now: u64,
    ) -> anyhow::Result<bool> {
        let item = HashMap::from([
            ("pk".to_owned(), AttributeValue::S(key.record().to_owned())),
            (
                "fingerprint".to_owned(),
                AttributeValue::S(fingerprint.to_owned()),
            ),
            ("reserved".to_owned(), AttributeValue::S(reserved.encode())),
            (
                "locked_until".to_owned(),
                number(now + KEY_LEASE.as_millis() as u64),
            ),
            (
                "expires_at".to_owned(),
                number((now / 1000) + KEY_LIFETIME.as_secs()),
            ),
        ]);
        let outcome = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(FREE)
            .expression_attribute_values(":now", number(now / 1000))
            .send()
            .await;
        conditional(outcome, "DynamoDB PutItem (idempotency key) failed")
    }

    async fn read(&self, key: &IdempotencyKey) -> anyhow::Result<Option<KeyRecord>> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(key.record().to_owned()))
            .consistent_read(true)
            .send()
            .await
            .context("DynamoDB GetItem (idempotency key) failed")?;
        output.item.as_ref().map(key_record_of).transpose()
    }

    /// Takes over an abandoned record; `false` when another request took it first.
    async fn take_over(
        &self,
        key: &IdempotencyKey,
        seen: &KeyRecord,
        now: u64,
    ) -> anyhow::Result<bool> {
        let outcome = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(key.record().to_owned()))
            .update_expression("SET locked_until = :lease")
            .condition_expression("locked_until = :seen AND attribute_not_exists(answer)")
            .expression_attribute_values(":lease", number(now + KEY_LEASE.as_millis() as u64))
            .expression_attribute_values(":seen", number(seen.locked_until_ms))
            .send()
            .await;
        conditional(outcome, "DynamoDB UpdateItem (idempotency key) failed")
    }
}

/// A conditional write's outcome: done (`true`), refused by its condition (`false`), or failed.
fn conditional<T, E, R>(
    outcome: Result<T, SdkError<E, R>>,
    failed: &'static str,
) -> anyhow::Result<bool>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match outcome {
        Ok(_) => Ok(true),
        Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(false),
        Err(e) => Err(anyhow::Error::new(e).context(failed)),
    }
}

fn key_record_of(item: &HashMap<String, AttributeValue>) -> anyhow::Result<KeyRecord> {
    let text = |name: &str| match item.get(name) {
        Some(AttributeValue::S(s)) => Ok(s.clone()),
        _ => Err(anyhow!("idempotency record has no string `{name}`")),
    };
    let locked_until_ms = match item.get("locked_until") {
        Some(AttributeValue::N(n)) => n.parse()?,
        _ => return Err(anyhow!("idempotency record has no `locked_until`")),
    };
    let answer = match item.get("answer") {
        Some(AttributeValue::S(json)) => Some(serde_json::from_str::<StoredAnswer>(json)?),
        _ => None,
    };
    Ok(KeyRecord {
        fingerprint: text("fingerprint")?,
        reserved: ReservedIds::decode(&text("reserved")?)?,
        answer,
        locked_until_ms,
    })
}

#[async_trait]
impl IdempotencyKeys for DynamoDbKeys {
    async fn claim(
        &self,
        key: &IdempotencyKey,
        fingerprint: &str,
        reserved: &ReservedIds,
    ) -> PortResult<Claim> {
        for _ in 0..CLAIM_TRIES {
            let now = self.clock.now_ms_u64();
            if self.put_new(key, fingerprint, reserved, now).await? {
                return Ok(Claim::Started);
            }
            let Some(record) = self.read(key).await? else {
                continue;
            };
            return Ok(match on_existing(&record, fingerprint, now) {
                Existing::Replay(answer) => Claim::Replay(answer),
                Existing::InProgress => Claim::InProgress,
                Existing::Mismatch => Claim::Mismatch,
                Existing::Abandoned if self.take_over(key, &record, now).await? => {
                    Claim::TakenOver {
                        reserved: record.reserved,
                    }
                }
                Existing::Abandoned => Claim::InProgress,
            });
        }
        Err(anyhow!("the idempotency key kept changing while it was claimed").into())
    }

    async fn answer(&self, key: &IdempotencyKey, answer: &StoredAnswer) -> PortResult<()> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(key.record().to_owned()))
            .update_expression("SET answer = :answer, expires_at = :expires")
            .expression_attribute_values(
                ":answer",
                AttributeValue::S(serde_json::to_string(answer).map_err(anyhow::Error::from)?),
            )
            .expression_attribute_values(
                ":expires",
                number(self.clock.now_ms_u64() / 1000 + KEY_LIFETIME.as_secs()),
            )
            .send()
            .await
            .context("DynamoDB UpdateItem (idempotency answer) failed")?;
        Ok(())
    }

    async fn release(&self, key: &IdempotencyKey) -> PortResult<()> {
        let outcome = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(key.record().to_owned()))
            .condition_expression("attribute_not_exists(answer)")
            .send()
            .await;
        // Refused: answered meanwhile (a takeover finished), and the answer stays.
        conditional(outcome, "DynamoDB DeleteItem (idempotency key) failed")
            .map(|_| ())
            .map_err(PortError::from)
    }
}
