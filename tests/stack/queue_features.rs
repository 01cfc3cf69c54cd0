//! Batch enqueue, idempotency keys, delays and attributes on the deployed stack: the very
//! scenario the local runner passes on both backends ([`crate::queue_features::scenario`]),
//! here through API Gateway, the enqueue function's idempotency table, SQS's DelaySeconds
//! and the consumer Lambda driven by the event source mapping, with Cognito tokens: the
//! writer's for POSTs, the reader's for reads.

use std::time::Duration;

use crate::queue_features::{scenario, Api};

use crate::support::stack::{tokens, var};

/// The deployed stack's API.
pub(super) struct Stack;

impl Api for Stack {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", var("PIPELINE_API_URL"))
    }

    fn authorization(&self, method: &str) -> String {
        let token = if method == "POST" {
            &tokens().writer
        } else {
            &tokens().reader
        };
        format!("Bearer {token}")
    }

    fn patience(&self) -> Duration {
        Duration::from_secs(120)
    }
}

#[tokio::test]
#[ignore = "needs a deployed stack: infra/test.sh"]
async fn batch_idempotency_delay_and_attributes_on_the_deployed_stack() {
    tokio::task::spawn_blocking(|| {
        let tag = format!("stack-{}", uuid::Uuid::new_v4().simple());
        scenario(&Stack, &tag);
    })
    .await
    .unwrap();
}
