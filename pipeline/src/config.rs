//! Each function's configuration, read once from the environment at cold start. A missing or
//! invalid variable stops the cold start with an error that names it.

use std::env;
use std::str::FromStr;

use crate::api::EnqueueLimits;
use crate::domain::{ContentLimit, CursorKey, JobIdKeys, MessageRetention, RetryPolicy};

#[derive(thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required but not set")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

// `main` returns this error and Rust prints a returned error with `Debug`: make that the
// sentence that names the variable.
impl std::fmt::Debug for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// The enqueue function's configuration.
#[derive(Debug, Clone)]
pub struct EnqueueConfig {
    pub queue_url: String,
    /// The table of idempotency keys (`IDEMPOTENCY_TABLE_NAME`).
    pub idempotency_table: String,
    pub limits: EnqueueLimits,
}

impl EnqueueConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = EnqueueLimits::for_content(content_limit()?);
        Ok(Self {
            queue_url: required("QUEUE_URL")?,
            idempotency_table: required("IDEMPOTENCY_TABLE_NAME")?,
            limits: EnqueueLimits {
                content: defaults.content,
                max_body_bytes: optional("MAX_BODY_BYTES")?.unwrap_or(defaults.max_body_bytes),
            },
        })
    }
}

/// The consumer's configuration. It reads no content limit: whatever was accepted is stored
/// (see [`crate::worker::store_batch`]).
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub table_name: String,
    /// The queue's redrive `maxReceiveCount` (`MAX_RECEIVE_COUNT`, default 9): a record that
    /// fails at this receive count is noted as dead-lettered.
    pub max_receive_count: u32,
    /// How long each message it stores is kept (`MESSAGE_RETENTION_DAYS`, 0 or unset: for
    /// ever).
    pub retention: MessageRetention,
}

impl ConsumerConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let days = optional("MESSAGE_RETENTION_DAYS")?.unwrap_or(0);
        Ok(Self {
            table_name: required("TABLE_NAME")?,
            max_receive_count: optional("MAX_RECEIVE_COUNT")?
                .unwrap_or(crate::ports::QueueSettings::PRODUCTION.max_receive_count),
            retention: MessageRetention::days(days).map_err(|reason| ConfigError::Invalid {
                name: "MESSAGE_RETENTION_DAYS",
                reason,
            })?,
        })
    }
}

/// Where and how the consumer Lambda retries: its own queue (`QUEUE_URL`, for backoffs), the
/// dead-letter queue (`DEAD_LETTER_QUEUE_URL`, for records that can never be stored), and the
/// backoff (`RETRY_BASE_SECS`, `RETRY_MAX_SECS`, defaults as the template's).
#[derive(Debug, Clone)]
pub struct RetryConfig {
    pub queue_url: String,
    pub dead_letter_queue_url: String,
    pub policy: RetryPolicy,
}

impl RetryConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let base = optional("RETRY_BASE_SECS")?.unwrap_or(RetryPolicy::DEFAULT.base.as_secs());
        let cap = optional("RETRY_MAX_SECS")?.unwrap_or(RetryPolicy::DEFAULT.cap.as_secs());
        Ok(Self {
            queue_url: required("QUEUE_URL")?,
            dead_letter_queue_url: required("DEAD_LETTER_QUEUE_URL")?,
            policy: RetryPolicy::new(base, cap).map_err(|reason| ConfigError::Invalid {
                name: "RETRY_MAX_SECS",
                reason,
            })?,
        })
    }
}

/// The operate function's configuration (and the runner's on its AWS backend).
#[derive(Debug, Clone)]
pub struct OperateConfig {
    pub queue_url: String,
    pub dead_letter_queue_url: String,
    pub table_name: String,
    /// Whose metrics `/stats/history` reads: `ENQUEUE_FUNCTION_NAME` and
    /// `CONSUMER_FUNCTION_NAME` (the template sets both; without them the history has no
    /// counts).
    pub flow: Option<crate::adapters::aws::FlowSources>,
}

impl OperateConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let queue_url = required("QUEUE_URL")?;
        let functions = (
            std::env::var("ENQUEUE_FUNCTION_NAME"),
            std::env::var("CONSUMER_FUNCTION_NAME"),
        );
        let flow = match functions {
            (Ok(enqueue_function), Ok(consumer_function)) => {
                Some(crate::adapters::aws::FlowSources {
                    enqueue_function,
                    consumer_function,
                    queue_name: queue_url.rsplit('/').next().unwrap_or_default().to_owned(),
                })
            }
            _ => None,
        };
        Ok(Self {
            queue_url,
            dead_letter_queue_url: required("DEAD_LETTER_QUEUE_URL")?,
            table_name: required("TABLE_NAME")?,
            flow,
        })
    }
}

/// The list function's configuration.
#[derive(Debug, Clone)]
pub struct ListConfig {
    pub table_name: String,
    pub cursor_key: CursorKey,
    /// The queue's retention (`QUEUE_RETENTION_SECONDS`, default 4 days): job status answers
    /// 404 for an unknown job older than this.
    pub retention: std::time::Duration,
}

impl ListConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            table_name: required("TABLE_NAME")?,
            cursor_key: cursor_key(&required("CURSOR_SECRET")?)?,
            retention: std::time::Duration::from_secs(
                optional("QUEUE_RETENTION_SECONDS")?.unwrap_or(DEFAULT_RETENTION_SECS),
            ),
        })
    }
}

/// The template's default `QueueRetentionSeconds`.
pub const DEFAULT_RETENTION_SECS: u64 = 4 * 24 * 3600;

/// `CURSOR_SECRET`: signs page cursors; the template generates it in Secrets Manager.
pub fn cursor_key(secret: &str) -> Result<CursorKey, ConfigError> {
    CursorKey::from_secret(secret).map_err(|e| ConfigError::Invalid {
        name: "CURSOR_SECRET",
        reason: e.to_string(),
    })
}

/// When job ids began to carry tags (this version's release): ids from before it are
/// admitted untagged, unless `JOB_IDS_UNTAGGED_UNTIL` says otherwise (a stack upgraded later
/// sets it to its upgrade time, README "Job ids").
pub const TAGS_INTRODUCED_MS: u64 = 1_796_428_800_000; // 2026-12-05T00:00:00Z

/// The keys of job ids (`JOB_ID_SECRET`, and `JOB_ID_PREVIOUS_SECRET` during a rotation; the
/// template resolves both from Secrets Manager at deploy time), admitting untagged ids from
/// before `JOB_IDS_UNTAGGED_UNTIL` (RFC 3339; default [`TAGS_INTRODUCED_MS`]).
pub fn job_id_keys() -> Result<JobIdKeys, ConfigError> {
    let previous = env::var("JOB_ID_PREVIOUS_SECRET").ok();
    let keys =
        JobIdKeys::from_secrets(&required("JOB_ID_SECRET")?, previous.as_deref()).map_err(|e| {
            ConfigError::Invalid {
                name: "JOB_ID_SECRET",
                reason: e.to_string(),
            }
        })?;
    let until = match env::var("JOB_IDS_UNTAGGED_UNTIL") {
        Err(_) => TAGS_INTRODUCED_MS,
        Ok(text) if text.trim().is_empty() => TAGS_INTRODUCED_MS,
        Ok(text) => {
            time::OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc3339)
                .map(|t| (t.unix_timestamp_nanos() / 1_000_000).max(0) as u64)
                .map_err(|e| ConfigError::Invalid {
                    name: "JOB_IDS_UNTAGGED_UNTIL",
                    reason: format!("`{text}` is not an RFC 3339 time: {e}"),
                })?
        }
    };
    Ok(keys.admitting_untagged_before(until))
}

/// `MAX_CONTENT_CHARS`: the longest content enqueue accepts.
fn content_limit() -> Result<ContentLimit, ConfigError> {
    match optional::<usize>("MAX_CONTENT_CHARS")? {
        None => Ok(ContentLimit::DEFAULT),
        Some(n) => ContentLimit::new(n).map_err(|reason| ConfigError::Invalid {
            name: "MAX_CONTENT_CHARS",
            reason,
        }),
    }
}

fn required(name: &'static str) -> Result<String, ConfigError> {
    match env::var(name) {
        Ok(value) if !value.trim().is_empty() => Ok(value),
        _ => Err(ConfigError::Missing(name)),
    }
}

fn optional<T: FromStr>(name: &'static str) -> Result<Option<T>, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match env::var(name) {
        Err(_) => Ok(None),
        Ok(value) => value
            .trim()
            .parse()
            .map(Some)
            .map_err(|e: T::Err| ConfigError::Invalid {
                name,
                reason: format!("`{value}`: {e}"),
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Each test uses variables no other test touches: tests run in parallel in one process.
    #[test]
    fn a_missing_variable_is_named() {
        let error = required("PIPELINE_TEST_SURELY_UNSET").unwrap_err();
        assert_eq!(
            format!("{error:?}"),
            "environment variable PIPELINE_TEST_SURELY_UNSET is required but not set"
        );
    }

    #[test]
    fn an_unparsable_variable_is_named_with_its_value() {
        env::set_var("PIPELINE_TEST_NUMBER", "12x");
        let error = optional::<usize>("PIPELINE_TEST_NUMBER").unwrap_err();
        assert!(
            error
                .to_string()
                .contains("PIPELINE_TEST_NUMBER is invalid: `12x`"),
            "{error}"
        );
    }
}
