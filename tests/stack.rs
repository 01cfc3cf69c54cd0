//! The deployed stack, end to end over HTTP: template.yaml deployed to the emulator by
//! `infra/local.sh up`, called through its API Gateway, the consumer Lambda driven by the
//! real event source mapping. Ignored in a plain `cargo test` (there is no stack); infra/test.sh
//! deploys a stack with short timeouts and runs them with `--ignored`.
//!
//! Every call carries a token from the stack's own Cognito user pool (client credentials,
//! as a client would get one); `tests/stack/auth.rs` checks what the gateway refuses.
//!
//! Environment (infra/local.sh env prints it): PIPELINE_API_URL, PIPELINE_QUEUE_URL,
//! PIPELINE_DLQ_URL, PIPELINE_TABLE_NAME, PIPELINE_TOKEN_URL, PIPELINE_USER_POOL_ID and the
//! writer's, reader's and admin's PIPELINE_*_CLIENT_ID / _SECRET.

mod auth;
mod doctor;
mod fifo;
mod lifecycle;
mod logs;
mod operations;
mod queue_features;
mod roles;

use crate::support::stack::{call, call_text, dead_lettered, listed_ids, tokens, var};

use std::collections::HashSet;
use std::time::{Duration, Instant};

use pipeline::adapters::aws::{sdk_config, DynamoDbStore};
use pipeline::domain::{ContentLimit, Message, MessageContent};
use pipeline::ports::MessageStore;

#[tokio::test]
#[ignore = "needs a deployed stack: infra/test.sh"]
async fn posted_messages_are_stored_by_the_consumer_lambda_and_listed() {
    let mut job_ids = HashSet::new();
    for i in 0..5 {
        let (status, body) = tokio::task::spawn_blocking(move || {
            call(
                "POST",
                "/messages",
                &format!(r#"{{"content": "stack {i}"}}"#),
            )
        })
        .await
        .unwrap();
        assert_eq!(status, 202, "{body}");
        job_ids.insert(body["job_id"].as_str().unwrap().to_owned());
    }

    let deadline = Instant::now() + Duration::from_secs(60);
    let mut listed = HashSet::new();
    while !job_ids.is_subset(&listed) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        listed = tokio::task::spawn_blocking(listed_ids).await.unwrap();
    }
    assert!(
        job_ids.is_subset(&listed),
        "not stored within 60 s: {:?}",
        job_ids.difference(&listed)
    );
}

#[tokio::test]
#[ignore = "needs a deployed stack: infra/test.sh"]
async fn a_poison_message_ends_in_the_dead_letter_queue_and_the_others_are_stored() {
    let sqs = aws_sdk_sqs::Client::new(&sdk_config().await);
    let before = dead_lettered(&sqs).await;
    sqs.send_message()
        .queue_url(var("PIPELINE_QUEUE_URL"))
        .message_body("not an envelope")
        .send()
        .await
        .unwrap();
    let (status, body) = tokio::task::spawn_blocking(|| {
        call("POST", "/messages", r#"{"content": "beside the poison"}"#)
    })
    .await
    .unwrap();
    assert_eq!(status, 202);
    let job_id = body["job_id"].as_str().unwrap().to_owned();

    // The poison can never be stored: it is dead-lettered at its first delivery, which may
    // come before or after the good message is stored; wait for both.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut listed = HashSet::new();
    while (dead_lettered(&sqs).await == before || !listed.contains(&job_id))
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(500)).await;
        listed = tokio::task::spawn_blocking(listed_ids).await.unwrap();
    }

    assert_eq!(
        dead_lettered(&sqs).await,
        before + 1,
        "the poison message did not reach the DLQ"
    );
    assert!(
        listed.contains(&job_id),
        "the good message was held up by the poison one"
    );
}

#[tokio::test]
#[ignore = "needs a deployed stack: infra/test.sh"]
async fn api_gateway_answers_the_same_json_errors() {
    let cases = [
        ("POST", "/messages", r#"{"content": ""}"#, 400),
        ("POST", "/add_message", "{}", 400),
        ("DELETE", "/messages", "", 405),
        ("GET", "/nowhere", "", 404),
        ("GET", "/messages/not-an-id", "", 404),
    ];
    for (method, path, body, expected) in cases {
        let (status, json) = tokio::task::spawn_blocking(move || call(method, path, body))
            .await
            .unwrap();
        assert_eq!(status, expected, "{method} {path}: {json}");
        assert!(json["error"].is_string(), "{method} {path}: {json}");
    }
}

#[tokio::test]
#[ignore = "needs a deployed stack: infra/test.sh"]
async fn pages_follow_signed_cursors_and_a_forged_one_is_refused() {
    let (pages, forged, openapi) = tokio::task::spawn_blocking(|| {
        for i in 0..3 {
            let (status, _) = call(
                "POST",
                "/messages",
                &format!(r#"{{"content": "page {i}"}}"#),
            );
            assert_eq!(status, 202);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while listed_ids().len() < 3 {
            assert!(Instant::now() < deadline, "messages never stored");
            std::thread::sleep(Duration::from_millis(300));
        }
        let (status, first) = call("GET", "/messages?limit=1", "");
        assert_eq!(status, 200, "{first}");
        let next = first["next"].as_str().unwrap().to_owned();
        let second = call("GET", &format!("/messages?limit=1&next={next}"), "");
        // The same cursor with its last character changed.
        let mut altered = next.clone();
        let last = altered.pop().unwrap();
        altered.push(if last == 'A' { 'B' } else { 'A' });
        let forged = call("GET", &format!("/messages?limit=1&next={altered}"), "");
        let openapi = call("GET", "/openapi.json", "");
        ((first, second), forged, openapi)
    })
    .await
    .unwrap();

    let ((first, (status, second)), (forged_status, forged_body), (doc_status, doc)) =
        (pages, forged, openapi);
    assert_eq!(status, 200, "{second}");
    assert_ne!(first["messages"][0]["id"], second["messages"][0]["id"]);
    assert_eq!(forged_status, 400, "{forged_body}");
    assert!(forged_body["error"].is_string());
    assert_eq!((doc_status, doc["openapi"].as_str()), (200, Some("3.0.3")));
}

/// Lambda refuses a response over 6 MB, and API Gateway then answers a non-JSON 500.
const LAMBDA_RESPONSE_LIMIT: usize = 6 * 1024 * 1024;

#[tokio::test]
#[ignore = "needs a deployed stack: infra/test.sh"]
async fn a_page_of_worst_case_content_comes_through_api_gateway_as_json_under_six_mb() {
    // 300 messages of 4,096 control characters: about 28 KB each once serialised, 8.4 MB for
    // the page asked for. Written to the table directly: the API's path in is not the point.
    let store = DynamoDbStore::new(
        aws_sdk_dynamodb::Client::new(&sdk_config().await),
        var("PIPELINE_TABLE_NAME"),
    );
    let worst: Vec<Message> = (0..300)
        .map(|_| {
            Message::accept(
                MessageContent::parse("\u{1}".repeat(4096), ContentLimit::DEFAULT).unwrap(),
            )
        })
        .collect();
    for chunk in worst.chunks(25) {
        store.put_batch(chunk).await.unwrap();
    }

    let reader = format!("Bearer {}", tokens().reader);
    let (status, text) = tokio::task::spawn_blocking(move || {
        call_text(Some(&reader), "GET", "/messages?limit=300", "")
    })
    .await
    .unwrap();

    assert_eq!(status, 200, "{:.300}", text);
    assert!(text.len() < LAMBDA_RESPONSE_LIMIT, "{} bytes", text.len());
    let page: serde_json::Value = serde_json::from_str(&text).unwrap();
    let listed = page["messages"].as_array().unwrap().len();
    assert!(listed > 0 && listed < 300, "{listed} messages");
    assert!(
        page["next"].is_string(),
        "a page cut short hands out its cursor"
    );
}
