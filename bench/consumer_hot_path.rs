//! The consumer's CPU work per batch, without the network: decode the `SqsEvent` Lambda hands
//! over (JSON), decode and validate each record's envelope, dedupe jobs, and build the
//! DynamoDB items, through the consumer the Lambda runs (with its retries: a batch with no
//! failure must make no redrive call, which the benchmark checks). Per-message time comes
//! from criterion (throughput in elements); allocations per message from a counting
//! allocator, printed once per batch size.
//!
//!   cargo bench --bench consumer_hot_path

// A benchmark fixture fails loudly, like a test.
#![allow(clippy::expect_used)]

use std::alloc::System;
use std::hint::black_box;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::SqsEvent;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pipeline::adapters::aws::for_benchmarks::message_item;
use pipeline::domain::RetryPolicy;
use pipeline::domain::{
    ContentLimit, Deletion, JobId, Lookup, Message, MessageContent, Page, PageLimit, QueuedMessage,
};
use pipeline::ports::{MessageStore, PortResult, PutBatchError, Redrive};
use pipeline::worker::{Consumer, Retries};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static ALLOCATOR: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// A store that does the adapter's CPU work (an item a message) and no I/O.
#[derive(Debug)]
struct RequestBuilder;

#[async_trait]
impl MessageStore for RequestBuilder {
    async fn put_batch(&self, messages: &[Message]) -> Result<(), PutBatchError> {
        for message in messages {
            black_box(message_item(message));
        }
        Ok(())
    }

    async fn lookup(&self, _: JobId) -> PortResult<Lookup> {
        Ok(Lookup::Absent)
    }

    async fn list(&self, _: PageLimit, _: Option<JobId>) -> PortResult<Page> {
        Ok(Page::default())
    }

    async fn delete(&self, _: JobId) -> PortResult<Deletion> {
        panic!("the consumer deletes nothing")
    }
}

/// A redrive that must never be called: the benchmark's batches have no failure.
#[derive(Debug)]
struct NoRedrive;

#[async_trait]
impl Redrive for NoRedrive {
    async fn back_off(&self, _: &[(String, std::time::Duration)]) -> PortResult<()> {
        panic!("a batch with no failure made a backoff call")
    }

    async fn dead_letter(
        &self,
        _: &[aws_lambda_events::event::sqs::SqsMessage],
    ) -> Vec<PortResult<String>> {
        panic!("a batch with no failure made a dead-letter call")
    }
}

/// An event as Lambda delivers it: `n` records with 100-character contents and the
/// attributes SQS sets.
fn event_json(n: usize) -> Vec<u8> {
    let records: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            let content = format!("message {i:04} {}", "x".repeat(87));
            let message = Message::accept(MessageContent::parse(content, ContentLimit::DEFAULT).expect("valid"));
            serde_json::json!({
                "messageId": uuid::Uuid::new_v4().to_string(),
                "receiptHandle": format!("AQEB{}", "r".repeat(180)),
                "body": QueuedMessage::body_of(&message),
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1795615200000",
                    "SenderId": "AROAEXAMPLE:enqueue",
                    "ApproximateFirstReceiveTimestamp": "1795615200010"
                },
                "messageAttributes": {},
                "md5OfBody": "6a1c2d1f3b4e5a6b7c8d9e0f1a2b3c4d",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:message-pipeline-MessagesQueue",
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({ "Records": records })).expect("serialisable")
}

fn handle(runtime: &tokio::runtime::Runtime, retries: &Retries, payload: &[u8]) {
    let event: SqsEvent = serde_json::from_slice(payload).expect("an SqsEvent");
    let consumer = Consumer::new(&RequestBuilder).retrying(Some(retries));
    let response = runtime.block_on(consumer.consume(event));
    assert!(response.batch_item_failures.is_empty());
    black_box(response);
}

fn consumer_hot_path(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let retries = Retries {
        redrive: std::sync::Arc::new(NoRedrive),
        policy: RetryPolicy::DEFAULT,
        max_receive_count: 9,
    };
    let mut group = c.benchmark_group("consumer: SqsEvent JSON to write requests");
    for n in [10usize, 100] {
        let payload = event_json(n);
        let region = Region::new(ALLOCATOR);
        handle(&runtime, &retries, &payload);
        let stats = region.change();
        eprintln!(
            "{n} records ({} bytes of event): {:.1} allocations and {:.0} bytes allocated per message",
            payload.len(),
            stats.allocations as f64 / n as f64,
            stats.bytes_allocated as f64 / n as f64
        );
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &payload, |b, payload| {
            b.iter(|| handle(&runtime, &retries, payload))
        });
    }
    group.finish();
}

criterion_group!(benches, consumer_hot_path);
criterion_main!(benches);
