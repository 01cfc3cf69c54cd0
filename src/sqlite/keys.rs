//! Idempotency keys on the embedded backend: the `idempotency_keys` table, with the same
//! semantics as DynamoDB's conditional writes. Each call is one immediate transaction on the
//! single writer, so of concurrent requests with one key exactly one claims it.

use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::SqliteDb;
use pipeline::domain::{
    on_existing, Claim, Existing, IdempotencyKey, KeyRecord, ReservedIds, StoredAnswer, KEY_LEASE,
    KEY_LIFETIME,
};
use pipeline::ports::{IdempotencyKeys, PortError, PortResult};

/// The idempotency keys in the runner's database.
#[derive(Debug, Clone)]
pub struct SqliteKeys {
    db: Arc<SqliteDb>,
}

impl SqliteKeys {
    pub fn new(db: Arc<SqliteDb>) -> Self {
        Self { db }
    }
}

const LEASE_MS: i64 = KEY_LEASE.as_millis() as i64;
const LIFETIME_MS: i64 = KEY_LIFETIME.as_millis() as i64;

#[async_trait]
impl IdempotencyKeys for SqliteKeys {
    async fn claim(
        &self,
        key: &IdempotencyKey,
        fingerprint: &str,
        reserved: &ReservedIds,
    ) -> PortResult<Claim> {
        let (key, fingerprint, reserved) = (
            key.record().to_owned(),
            fingerprint.to_owned(),
            reserved.encode(),
        );
        let clock = self.db.clock.clone();
        self.db
            .write(move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let now = clock.now_ms();
                // An expired record is gone, as DynamoDB's condition treats it.
                tx.execute(
                    "DELETE FROM idempotency_keys WHERE key = ?1 AND expires_at_ms <= ?2",
                    params![key, now],
                )?;
                let found = tx
                    .query_row(
                        "SELECT fingerprint, reserved, answer, locked_until_ms FROM idempotency_keys WHERE key = ?1",
                        [&key],
                        |r| {
                            Ok((
                                r.get::<_, String>(0)?,
                                r.get::<_, String>(1)?,
                                r.get::<_, Option<String>>(2)?,
                                r.get::<_, i64>(3)?,
                            ))
                        },
                    )
                    .optional()?;
                let claim = match found {
                    None => {
                        tx.execute(
                            "INSERT INTO idempotency_keys VALUES (?1, ?2, 'in_progress', ?3, ?4, ?5, NULL)",
                            params![key, fingerprint, now + LEASE_MS, now + LIFETIME_MS, reserved],
                        )?;
                        Claim::Started
                    }
                    Some((found_fingerprint, found_reserved, answer, locked_until_ms)) => {
                        let record = KeyRecord {
                            fingerprint: found_fingerprint,
                            reserved: ReservedIds::decode(&found_reserved)?,
                            answer: answer.map(|a| serde_json::from_str(&a)).transpose()?,
                            locked_until_ms: locked_until_ms.max(0) as u64,
                        };
                        match on_existing(&record, &fingerprint, now.max(0) as u64) {
                            Existing::Replay(answer) => Claim::Replay(answer),
                            Existing::InProgress => Claim::InProgress,
                            Existing::Mismatch => Claim::Mismatch,
                            Existing::Abandoned => {
                                tx.execute(
                                    "UPDATE idempotency_keys SET locked_until_ms = ?2 WHERE key = ?1",
                                    params![key, now + LEASE_MS],
                                )?;
                                Claim::TakenOver {
                                    reserved: record.reserved,
                                }
                            }
                        }
                    }
                };
                tx.commit()?;
                Ok(claim)
            })
            .await
            .map_err(PortError::from)
    }

    async fn answer(&self, key: &IdempotencyKey, answer: &StoredAnswer) -> PortResult<()> {
        let (key, answer) = (
            key.record().to_owned(),
            serde_json::to_string(answer).map_err(anyhow::Error::from)?,
        );
        let clock = self.db.clock.clone();
        self.db
            .write(move |conn| {
                conn.execute(
                    "UPDATE idempotency_keys SET state = 'answered', answer = ?2, expires_at_ms = ?3 WHERE key = ?1",
                    params![key, answer, clock.now_ms() + LIFETIME_MS],
                )?;
                Ok(())
            })
            .await
            .map_err(PortError::from)
    }

    async fn release(&self, key: &IdempotencyKey) -> PortResult<()> {
        let key = key.record().to_owned();
        self.db
            .write(move |conn| {
                conn.execute(
                    "DELETE FROM idempotency_keys WHERE key = ?1 AND answer IS NULL",
                    [key],
                )?;
                Ok(())
            })
            .await
            .map_err(PortError::from)
    }
}
