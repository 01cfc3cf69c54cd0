use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use pipeline::domain::{ContentLimit, Message, MessageContent, PageLimit, QueuedMessage};
use pipeline::ports::{MessageQueue, MessageStore};
use pipeline::worker::store_batch;

use crate::support::{failed_ids, TestStack};

fn message(text: &str) -> Message {
    Message::accept(MessageContent::parse(text.into(), ContentLimit::DEFAULT).unwrap())
}

async fn stored(stack: &TestStack) -> Vec<Message> {
    let page = stack
        .store()
        .list(PageLimit::parse("1000").unwrap(), None)
        .await
        .unwrap();
    assert!(page.next.is_none());
    page.messages
}

#[tokio::test]
async fn a_batch_received_from_sqs_is_stored_in_dynamodb() {
    let stack = TestStack::new().await;
    let sent: Vec<Message> = (0..7).map(|i| message(&format!("batch {i}"))).collect();
    for m in &sent {
        stack.queue().send(m).await.unwrap();
    }
    let event = stack.receive_event(7, Duration::from_secs(10)).await;
    assert_eq!(event.records.len(), 7);

    let response = store_batch(event, &stack.store()).await;

    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    for m in &sent {
        assert_eq!(stack.store().get(m.id).await.unwrap().as_ref(), Some(m));
    }
    stack.teardown().await;
}

#[tokio::test]
async fn redelivering_the_same_batch_leaves_one_item_per_job() {
    let stack = TestStack::new().await;
    let sent: Vec<Message> = (0..3).map(|i| message(&format!("again {i}"))).collect();
    for m in &sent {
        stack.queue().send(m).await.unwrap();
    }
    // A send the SDK retried after a lost response: SQS holds the same job twice.
    stack.queue().send(&sent[0]).await.unwrap();
    let event = stack.receive_event(4, Duration::from_secs(10)).await;
    assert_eq!(event.records.len(), 4);

    let first = store_batch(event.clone(), &stack.store()).await;
    let second = store_batch(event, &stack.store()).await;

    assert!(first.batch_item_failures.is_empty() && second.batch_item_failures.is_empty());
    let mut expected = sent.clone();
    expected.reverse();
    assert_eq!(stored(&stack).await, expected);
    stack.teardown().await;
}

#[tokio::test]
async fn a_poison_record_is_a_batch_item_failure_and_the_others_are_stored() {
    let stack = TestStack::new().await;
    let good = message("good");
    stack.queue().send(&good).await.unwrap();
    stack.send_raw("{\"not\": \"an envelope\"}").await;
    let event = stack.receive_event(2, Duration::from_secs(10)).await;
    let poison_id = event
        .records
        .iter()
        .find(|r| r.body.as_deref() != Some(QueuedMessage::body_of(&good).as_str()))
        .and_then(|r| r.message_id.clone())
        .unwrap();

    let response = store_batch(event.clone(), &stack.store()).await;

    assert_eq!(failed_ids(&response), vec![poison_id]);
    assert_eq!(stored(&stack).await, vec![good]);
    stack.teardown().await;
}

#[tokio::test]
async fn a_record_that_keeps_failing_ends_in_the_dead_letter_queue() {
    let stack = TestStack::new().await;
    stack.send_raw("poison").await;

    // Each receive that reports the record failed leaves it to reappear after the visibility
    // timeout; past maxReceiveCount SQS moves it to the dead-letter queue.
    let mut receives = 0;
    for _ in 0..20 {
        let event = stack.receive_event(1, Duration::from_secs(3)).await;
        if event.records.is_empty() && stack.dead_lettered().await == 1 {
            break;
        }
        let response = store_batch(event.clone(), &stack.store()).await;
        assert_eq!(response.batch_item_failures.len(), event.records.len());
        receives += event.records.len();
    }

    assert_eq!(receives, 2, "received {receives} times before redrive");
    assert_eq!(stack.dead_lettered().await, 1);
    assert_eq!(stack.queued().await, 0);
    stack.teardown().await;
}

#[tokio::test]
async fn more_records_than_one_batch_write_holds_are_all_stored() {
    let stack = TestStack::new().await;
    let sent: Vec<Message> = (0..60).map(|i| message(&format!("big {i}"))).collect();
    let mut event = SqsEvent::default();
    for (i, m) in sent.iter().enumerate() {
        let mut record = SqsMessage::default();
        record.message_id = Some(format!("record-{i}"));
        record.body = Some(QueuedMessage::body_of(m));
        event.records.push(record);
    }

    let response = store_batch(event, &stack.store()).await;

    assert!(response.batch_item_failures.is_empty());
    assert_eq!(stored(&stack).await.len(), 60);
    stack.teardown().await;
}
