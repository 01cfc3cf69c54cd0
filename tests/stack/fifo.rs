//! The FIFO option on a deployed stack (FifoQueue=true; infra/test.sh deploys a second stack
//! for these and runs them alone): the real FIFO event source mapping drives the consumer.
//!
//! Group `g` holds, in order: g-1, a record the consumer cannot store (sent to SQS directly,
//! as anyone with queue access could), g-3. Group `h` holds h-1. The consumer stops at the
//! bad record and reports it and g-3, so g-3 is never stored out of order: both reach the
//! FIFO dead-letter queue (g-3 noted as not attempted); g-1 and h-1 are stored. An operator
//! deletes the bad record and requeues g-3, which is then stored.

use std::time::{Duration, Instant};

use message_pipeline::aws::sdk_config;
use message_pipeline::domain::JobId;
use serde_json::json;

use super::queue_features::Stack;
use super::{call_with, tokens, var};
use crate::queue_features::{job_when, post};

/// An operator's action on one dead letter, repeated while it is a 409: a failure is noted
/// at the last receive, and SQS moves the message to the dead-letter queue at the next one.
fn as_admin(method: &str, path: &str) -> (u16, serde_json::Value) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let answer = call_with(
            Some(&format!("Bearer {}", tokens().admin)),
            method,
            path,
            "",
        );
        if answer.0 != 409 || Instant::now() > deadline {
            return answer;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn post_in_group(content: &str, group: &str) -> String {
    let body = json!({ "content": content, "group_id": group });
    let answer = post(&Stack, "/messages", &body, None);
    assert_eq!(answer.status, 202, "{answer:?}");
    answer.body["job_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
#[ignore = "needs a deployed FIFO stack: infra/test.sh"]
async fn a_fifo_group_stops_at_its_failing_record_and_keeps_its_order() {
    let queue_url = var("PIPELINE_QUEUE_URL");
    assert!(
        queue_url.ends_with(".fifo"),
        "not a FIFO stack: {queue_url}"
    );
    let sqs = aws_sdk_sqs::Client::new(&sdk_config().await);
    let bad = JobId::new().to_string();

    let g1 = tokio::task::spawn_blocking(|| post_in_group("g-1", "g"))
        .await
        .unwrap();
    sqs.send_message()
        .queue_url(&queue_url)
        .message_body(format!(r#"{{"v":1,"job_id":"{bad}","content":""}}"#))
        .message_group_id("g")
        .message_deduplication_id(&bad)
        .send()
        .await
        .unwrap();
    let (g3, h1) =
        tokio::task::spawn_blocking(|| (post_in_group("g-3", "g"), post_in_group("h-1", "h")))
            .await
            .unwrap();

    let bad_for_check = bad.clone();
    tokio::task::spawn_blocking(move || {
        job_when(&Stack, &g1, |j| j["status"] == "stored");
        job_when(&Stack, &h1, |j| j["status"] == "stored");
        let dead = job_when(&Stack, &bad_for_check, |j| j["status"] == "dead_lettered");
        assert!(dead["dead_letter"]["last_error"]
            .as_str()
            .unwrap()
            .contains("empty"));
        let held = job_when(&Stack, &g3, |j| j["status"] != "queued");
        assert_eq!(
            held["status"], "dead_lettered",
            "g-3 was stored out of order: {held}"
        );
        assert!(
            held["dead_letter"]["last_error"]
                .as_str()
                .unwrap()
                .contains("not attempted"),
            "{held}"
        );

        let (status, body) = as_admin("DELETE", &format!("/dead-letters/{bad_for_check}"));
        assert_eq!(status, 200, "{body}");
        let (status, body) = as_admin("POST", &format!("/dead-letters/{g3}/requeue"));
        assert_eq!(status, 200, "{body}");
        job_when(&Stack, &g3, |j| j["status"] == "stored");
    })
    .await
    .unwrap();
}
