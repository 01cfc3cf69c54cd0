//! The FIFO option on a deployed stack (FifoQueue=true; infra/test.sh deploys a second stack
//! for these and runs them alone): the real FIFO event source mapping drives the consumer.
//!
//! Through the API: messages with a `group_id` are queued and stored, and a delay is refused.
//! Then, in one `SendMessageBatch` straight to SQS (so that they arrive together, as a
//! producer with queue access could send them): group `g` holds g-1, a record the consumer
//! cannot store, g-3; group `h` holds h-1. Whatever batches the event source mapping makes,
//! g-3 must not be stored while the bad record is still being retried (its job reads
//! `queued`): the consumer stops at a group's first failure. Once the bad record has failed
//! for good it is dead-lettered and leaves the group; g-3 is then either stored after it, or
//! (when it was received as often) dead-lettered with it, noted as not attempted, and an
//! operator who deletes the bad record and requeues g-3 gets it stored.

use std::time::{Duration, Instant};

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use pipeline::adapters::aws::sdk_config;
use pipeline::domain::{ContentLimit, JobId, Message, MessageContent, QueuedMessage};
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
    let job = JobId::new();
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
async fn a_fifo_group_stops_at_its_failing_record_and_keeps_its_order() {
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
        let deadline = Instant::now() + Duration::from_secs(180);
        let mut polls_while_retrying = 0;
        let (bad_status, g3_status) = loop {
            let (bad_status, g3_status) = (job(&Stack, &bad), job(&Stack, &g3));
            if bad_status["status"] == "queued" {
                polls_while_retrying += 1;
                assert_ne!(
                    g3_status["status"], "stored",
                    "g-3 was stored while the record ahead of it was still retried"
                );
            }
            let settled =
                |s: &serde_json::Value| s["status"] == "stored" || s["status"] == "dead_lettered";
            if bad_status["status"] == "dead_lettered" && settled(&g3_status) {
                break (bad_status, g3_status);
            }
            assert!(Instant::now() < deadline, "{bad_status} {g3_status}");
            std::thread::sleep(Duration::from_millis(250));
        };
        assert!(
            polls_while_retrying > 0,
            "never saw the bad record being retried"
        );
        assert!(bad_status["dead_letter"]["last_error"]
            .as_str()
            .unwrap()
            .contains("empty"));
        stored(&Stack, &g1);
        stored(&Stack, &h1);
        eprintln!(
            "fifo: g-3 ended {} after the bad record",
            g3_status["status"]
        );

        let (status, body) = as_admin("DELETE", &format!("/dead-letters/{bad}"));
        assert_eq!(status, 200, "{body}");
        if g3_status["status"] == "dead_lettered" {
            assert!(
                g3_status["dead_letter"]["last_error"]
                    .as_str()
                    .unwrap()
                    .contains("not attempted"),
                "{g3_status}"
            );
            let (status, body) = as_admin("POST", &format!("/dead-letters/{g3}/requeue"));
            assert_eq!(status, 200, "{body}");
            stored(&Stack, &g3);
        }
    })
    .await
    .unwrap();
}
