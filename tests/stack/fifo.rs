//! The FIFO option on a deployed stack (FifoQueue=true; infra/test.sh deploys a second stack
//! for these and runs them alone): the real FIFO event source mapping drives the consumer.
//!
//! Through the API: messages with a `group_id` are queued and stored, and a delay is refused.
//! Then, in one `SendMessageBatch` straight to SQS (so that they arrive together, as a
//! producer with queue access could send them): group `g` holds g-1, a record the consumer
//! can never store (empty content), g-3; group `h` holds h-1. The bad record is refused for
//! good: it goes to the FIFO dead-letter queue at its first delivery and leaves its group,
//! so nothing waits behind it and g-3 is stored. (A group waiting behind a record that fails
//! transiently needs a failing store, which the runner's fault injection gives:
//! tests/queue_features.rs runs that on the same adapters against the emulator.)

use std::time::{Duration, Instant};

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use pipeline::adapters::aws::sdk_config;
use pipeline::domain::{ContentLimit, Message, MessageContent, QueuedMessage};
use serde_json::json;

use super::queue_features::Stack;
use crate::queue_features::{job, post, stored};
use crate::support::stack::{call_with, tokens, var};

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

/// A queue entry for `group`: a valid envelope of `content`, or with `bad` one whose content
/// the consumer refuses (empty). Returns the job id too.
fn entry(content: &str, group: &str, bad: bool) -> (String, SendMessageBatchRequestEntry) {
    let job = crate::support::stack::issued_job_id();
    let body = if bad {
        format!(r#"{{"v":1,"job_id":"{job}","content":""}}"#)
    } else {
        let content = MessageContent::parse(content.into(), ContentLimit::DEFAULT).unwrap();
        QueuedMessage::body_of(&Message::new(job, content, Default::default()))
    };
    let entry = SendMessageBatchRequestEntry::builder()
        .id(content.to_owned())
        .message_body(body)
        .message_group_id(group)
        .message_deduplication_id(job.to_string())
        .build()
        .unwrap();
    (job.to_string(), entry)
}

#[tokio::test]
#[ignore = "needs a deployed FIFO stack: infra/test.sh"]
async fn a_record_that_can_never_be_stored_leaves_its_fifo_group_at_once() {
    let queue_url = var("PIPELINE_QUEUE_URL");
    assert!(
        queue_url.ends_with(".fifo"),
        "not a FIFO stack: {queue_url}"
    );

    // Through the API.
    tokio::task::spawn_blocking(|| {
        let batch = json!({ "messages": [
            { "content": "g-0", "group_id": "g" },
            { "content": "h-0", "group_id": "h" },
        ]});
        let answer = post(&Stack, "/messages/batch", &batch, None);
        assert_eq!(answer.status, 202, "{answer:?}");
        for result in answer.body["results"].as_array().unwrap() {
            stored(&Stack, result["job_id"].as_str().unwrap());
        }
        let delayed = json!({ "content": "x", "delay_seconds": 5 });
        assert_eq!(post(&Stack, "/messages", &delayed, None).status, 400);
    })
    .await
    .unwrap();

    // Straight to SQS, together.
    let sqs = aws_sdk_sqs::Client::new(&sdk_config().await);
    let (g1, g1_entry) = entry("g-1", "g", false);
    let (bad, bad_entry) = entry("bad", "g", true);
    let (g3, g3_entry) = entry("g-3", "g", false);
    let (h1, h1_entry) = entry("h-1", "h", false);
    let sent = sqs
        .send_message_batch()
        .queue_url(&queue_url)
        .set_entries(Some(vec![g1_entry, bad_entry, g3_entry, h1_entry]))
        .send()
        .await
        .unwrap();
    assert!(sent.failed.is_empty(), "{:?}", sent.failed);

    tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        let bad_status = loop {
            let bad_status = job(&Stack, &bad);
            if bad_status["status"] == "dead_lettered" {
                break bad_status;
            }
            assert!(Instant::now() < deadline, "{bad_status}");
            std::thread::sleep(Duration::from_millis(250));
        };
        let letter = &bad_status["dead_letter"];
        assert_eq!(letter["receive_count"], 1, "{bad_status}");
        let error = letter["last_error"].as_str().unwrap();
        assert!(
            error.starts_with("permanent") && error.contains("empty"),
            "{error}"
        );
        stored(&Stack, &g1);
        stored(&Stack, &g3);
        stored(&Stack, &h1);

        let (status, body) = as_admin("DELETE", &format!("/dead-letters/{bad}"));
        assert_eq!(status, 200, "{body}");
    })
    .await
    .unwrap();
}
