//! The local runner's facts, from its own endpoints (`/_local/settings`, `/_local/stats`):
//! the same checks as a stack's, where the runner has the thing checked.

use serde_json::Value;

use super::{ConsumerFacts, DeadLetterFacts, Facts, MappingFacts, QueueFacts};

/// The runner keeps dead letters until they are deleted.
pub const KEPT_UNTIL_DELETED: u64 = u64::MAX;

pub fn facts(settings: &Value, stats: &Value) -> anyhow::Result<Facts> {
    let number = |value: &Value, name: &str| {
        value[name].as_u64().ok_or_else(|| {
            anyhow::anyhow!("the runner's answer has no `{name}`: is it this version's?")
        })
    };
    let consumers = number(settings, "consumers")?;
    Ok(Facts {
        queue: QueueFacts {
            visibility_timeout_secs: number(settings, "visibility_timeout_secs")?,
            retention_secs: number(settings, "queue_retention_secs")?,
            max_receive_count: Some(number(settings, "max_receive_count")? as u32),
        },
        // On the AWS backend the runner's stats have no queue counts of their own.
        dead_letter_queue: stats["dead_lettered"]
            .as_u64()
            .map(|messages| DeadLetterFacts {
                retention_secs: KEPT_UNTIL_DELETED,
                messages,
                oldest_age_secs: None,
            }),
        consumer: ConsumerFacts {
            timeout_secs: number(settings, "consumer_timeout_secs")?,
            reserved_concurrency: None,
            visibility_timeouts: 1,
        },
        mapping: Some(MappingFacts {
            enabled: consumers > 0,
            batching_window_secs: number(settings, "batching_window_ms")?.div_ceil(1000),
            maximum_concurrency: Some(consumers as u32),
            // Its event source deletes exactly the records the consumer did not report.
            reports_batch_item_failures: true,
        }),
        alarms: None,
        routes: None,
    })
}
