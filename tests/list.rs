use std::collections::HashSet;

use lambda_http::http::Method;
use pipeline::domain::{ContentLimit, Message, MessageContent};
use pipeline::ports::MessageStore;

use crate::support::{json, read, request, TestStack};

/// `n` messages under ids the API issued (the read routes refuse any other).
fn messages(n: usize) -> Vec<Message> {
    (0..n)
        .map(|i| {
            Message::new(
                pipeline::adapters::memory::test_ids().issue(pipeline::domain::Delay::NONE),
                MessageContent::parse(format!("m{i}"), ContentLimit::DEFAULT).unwrap(),
                Default::default(),
            )
        })
        .collect()
}

#[tokio::test]
async fn pagination_returns_every_message_exactly_once_newest_first() {
    let stack = TestStack::new().await;
    let sent = messages(130);
    stack.store().put_batch(&sent).await.unwrap();

    let mut seen: Vec<String> = Vec::new();
    let mut next: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &next {
            None => "/messages?limit=7".to_owned(),
            Some(cursor) => format!("/messages?limit=7&next={cursor}"),
        };
        let response = read(request(Method::GET, &path, ""), &stack.store()).await;
        assert_eq!(response.status(), 200);
        let page = json(&response);
        let ids: Vec<String> = page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect();
        assert!(ids.len() <= 7);
        seen.extend(ids);
        pages += 1;
        assert!(pages <= 30, "pagination does not end");
        match page["next"].as_str() {
            Some(cursor) => next = Some(cursor.to_owned()),
            None => break,
        }
    }

    let expected: Vec<String> = sent.iter().rev().map(|m| m.id.to_string()).collect();
    assert_eq!(seen, expected);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 130);
    // Pages may be short (each shard is asked for its share of a page): at least 130 / 7.
    assert!(pages >= 19, "{pages} pages");
    stack.teardown().await;
}

#[tokio::test]
async fn get_by_id_returns_the_message_or_404() {
    let stack = TestStack::new().await;
    let sent = messages(3);
    stack.store().put_batch(&sent).await.unwrap();

    let found = read(
        request(Method::GET, &format!("/messages/{}", sent[1].id), ""),
        &stack.store(),
    )
    .await;
    let missing = read(
        request(Method::GET, &format!("/messages/{}", messages(1)[0].id), ""),
        &stack.store(),
    )
    .await;

    assert_eq!(found.status(), 200);
    let body = json(&found);
    assert_eq!(body["content"], "m1");
    assert_eq!(body["id"], sent[1].id.to_string());
    assert_eq!(missing.status(), 404);
    assert!(json(&missing)["error"]
        .as_str()
        .unwrap()
        .contains("no message"));
    stack.teardown().await;
}

#[tokio::test]
async fn an_empty_table_lists_no_messages_and_no_cursor() {
    let stack = TestStack::new().await;

    let response = read(request(Method::GET, "/messages", ""), &stack.store()).await;

    assert_eq!(response.status(), 200);
    assert_eq!(
        json(&response),
        serde_json::json!({"messages": [], "next": null})
    );
    stack.teardown().await;
}

#[tokio::test]
async fn a_missing_table_gives_503() {
    let stack = TestStack::new().await;
    let absent = pipeline::adapters::aws::DynamoDbStore::new(
        stack.dynamodb.clone(),
        format!("{}-absent", stack.table),
    );

    let response = read(request(Method::GET, "/messages", ""), &absent).await;

    assert_eq!(response.status(), 503);
    stack.teardown().await;
}

#[tokio::test]
async fn a_dynamodb_endpoint_that_stalls_gives_503_within_the_budget() {
    let endpoint = crate::enqueue::stalled_endpoint().await;
    let config =
        aws_sdk_dynamodb::config::Builder::from(&pipeline::adapters::aws::sdk_config().await)
            .endpoint_url(endpoint)
            .build();
    let store = pipeline::adapters::aws::DynamoDbStore::new(
        aws_sdk_dynamodb::Client::from_conf(config),
        "stalled",
    );

    let response = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        read(request(Method::GET, "/messages", ""), &store),
    )
    .await
    .expect("the call never timed out");

    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
}
