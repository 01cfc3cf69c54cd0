//! Integration tests against SQS and DynamoDB: a LocalStack-compatible emulator when
//! `AWS_ENDPOINT_URL` is set (infra/test.sh sets it), real AWS when
//! `PIPELINE_TESTS_ON_AWS=1`. Every test creates its own uniquely named queue, dead-letter
//! queue and table, and deletes them at the end.
//!
//! One binary (this file declares the modules) so the SDK and fixtures link once.

// Test fixtures fail loudly: a panic with the cause is the clearest report a test can give.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod cli;
mod conservation;
mod consumer;
mod contract;
mod enqueue;
mod flow;
mod lifecycle;
mod list;
mod local_runner;
mod operations;
mod pipeline;
mod queue_features;
mod retries;
mod stack;
mod template;
