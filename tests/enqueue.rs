use std::time::Duration;

use lambda_http::http::Method;
use pipeline::adapters::aws::{sdk_config, SqsQueue};
use pipeline::api::enqueue_function;
use pipeline::domain::{ContentLimit, QueuedMessage};

use crate::support::{json, request, unused_keys, writer, TestStack};

#[tokio::test]
async fn enqueue_puts_the_message_on_sqs_with_the_job_id_it_answers() {
    let stack = TestStack::new().await;

    let response = enqueue_function(
        request(
            Method::POST,
            "/messages",
            r#"{"content": "Hello from Flask Queue!"}"#,
        ),
        writer(&stack.queue(), &stack.keys()),
    )
    .await;

    assert_eq!(response.status(), 202);
    let job_id = json(&response)["job_id"].as_str().unwrap().to_owned();
    let event = stack.receive_event(1, Duration::from_secs(5)).await;
    assert_eq!(event.records.len(), 1);
    let queued = QueuedMessage::decode(
        event.records[0].body.as_deref().unwrap(),
        ContentLimit::DEFAULT,
    )
    .unwrap();
    assert_eq!(queued.id.to_string(), job_id);
    assert_eq!(queued.content.as_str(), "Hello from Flask Queue!");
    stack.teardown().await;
}

#[tokio::test]
async fn the_tutorial_path_enqueues_too() {
    let stack = TestStack::new().await;

    let response = enqueue_function(
        request(Method::POST, "/add_message", r#"{"content": "tutorial"}"#),
        writer(&stack.queue(), &stack.keys()),
    )
    .await;

    assert_eq!(response.status(), 202);
    assert_eq!(
        stack
            .receive_event(1, Duration::from_secs(5))
            .await
            .records
            .len(),
        1
    );
    stack.teardown().await;
}

#[tokio::test]
async fn invalid_requests_never_reach_the_queue() {
    let stack = TestStack::new().await;

    for body in ["", "{}", r#"{"content": ""}"#, r#"{"content": 1}"#] {
        let response = enqueue_function(
            request(Method::POST, "/messages", body),
            writer(&stack.queue(), &stack.keys()),
        )
        .await;
        assert_eq!(response.status(), 400, "{body}");
    }

    assert_eq!(stack.queued().await, 0);
    stack.teardown().await;
}

#[tokio::test]
async fn a_queue_that_cannot_be_reached_gives_503_not_202() {
    let stack = TestStack::new().await;
    let gone = SqsQueue::new(
        stack.sqs.clone(),
        format!("{}-deleted", stack.queues.queue_url),
    );

    let response = enqueue_function(
        request(Method::POST, "/messages", r#"{"content": "lost?"}"#),
        writer(&gone, &unused_keys().await),
    )
    .await;

    assert_eq!(response.status(), 503);
    assert!(json(&response)["job_id"].is_null());
    stack.teardown().await;
}

#[tokio::test]
async fn an_sqs_endpoint_that_is_down_gives_503_not_202() {
    // Nothing listens on port 9 of the loopback: every connection is refused.
    let config = aws_sdk_sqs::config::Builder::from(&sdk_config().await)
        .endpoint_url("http://127.0.0.1:9")
        .build();
    let down = SqsQueue::new(
        aws_sdk_sqs::Client::from_conf(config),
        "http://127.0.0.1:9/000000000000/unreachable",
    );

    let response = enqueue_function(
        request(Method::POST, "/messages", r#"{"content": "lost?"}"#),
        writer(&down, &unused_keys().await),
    )
    .await;

    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    assert!(json(&response)["error"].is_string());
}

/// A TCP server on loopback that accepts connections and never answers: an endpoint that
/// stalls after connecting. Its address, for an endpoint URL.
pub async fn stalled_endpoint() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    format!("http://{address}")
}

#[tokio::test]
async fn an_sqs_endpoint_that_stalls_gives_503_within_the_budget_and_says_the_outcome_is_unknown() {
    let endpoint = stalled_endpoint().await;
    let config = aws_sdk_sqs::config::Builder::from(&sdk_config().await)
        .endpoint_url(&endpoint)
        .build();
    let stalled = SqsQueue::new(
        aws_sdk_sqs::Client::from_conf(config),
        format!("{endpoint}/000000000000/stalled"),
    );

    // The guard only keeps a regression from hanging the suite; the budget is the SDK's.
    let response = tokio::time::timeout(
        Duration::from_secs(60),
        enqueue_function(
            request(Method::POST, "/messages", r#"{"content": "sent?"}"#),
            writer(&stalled, &unused_keys().await),
        ),
    )
    .await
    .expect("the call never timed out");

    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let error = json(&response)["error"].as_str().unwrap().to_owned();
    assert!(error.contains("may"), "{error}");
}
