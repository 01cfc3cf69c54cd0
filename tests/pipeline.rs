use std::time::Duration;

use lambda_http::http::Method;
use pipeline::api::enqueue_function;
use pipeline::worker::store_batch;

use crate::support::{failed_ids, json, read, request, writer, TestStack};

/// POST → SQS → consumer → DynamoDB → GET, each hop through the real service, the consumer
/// driven the way the event source mapping drives it.
#[tokio::test]
async fn a_posted_message_is_stored_once_and_read_back() {
    let stack = TestStack::new().await;
    let mut job_ids = Vec::new();
    for text in ["first", "second", "third"] {
        let body = serde_json::json!({ "content": text }).to_string();
        let response = enqueue_function(
            request(Method::POST, "/messages", &body),
            writer(&stack.queue(), &stack.keys()),
        )
        .await;
        assert_eq!(response.status(), 202);
        job_ids.push(json(&response)["job_id"].as_str().unwrap().to_owned());
    }

    let event = stack.receive_event(3, Duration::from_secs(10)).await;
    let response = store_batch(event.clone(), &stack.store()).await;
    stack.delete_succeeded(&event, &failed_ids(&response)).await;

    assert_eq!(stack.queued().await, 0);
    let listed = json(&read(request(Method::GET, "/messages", ""), &stack.store()).await);
    let contents: Vec<&str> = listed["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, ["third", "second", "first"]);
    let one = read(
        request(Method::GET, &format!("/messages/{}", job_ids[0]), ""),
        &stack.store(),
    )
    .await;
    assert_eq!(json(&one)["content"], "first");
    stack.teardown().await;
}
