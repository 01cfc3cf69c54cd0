//! A message queue pipeline on AWS Lambda: a client POSTs a message, it is queued on SQS and
//! acknowledged at once with a job id; a consumer stores it in DynamoDB exactly once; clients
//! read messages back, newest first.
//!
//! This crate is everything but the four `main` functions in `functions/`, which only read
//! their configuration, build their SDK clients and hand requests to the handlers here.
//!
//! # Layout
//! - [`domain`]: validated content, job ids (UUIDv7, which carry the acceptance time), the
//!   SQS envelope, pages and cursors. No I/O.
//! - [`ports`]: the capabilities the handlers need: a queue that sends, a store that puts,
//!   gets and lists, the failure log, and the operations on the queues.
//! - [`api`]: the HTTP API (routing, validation, error mapping) on `lambda_http` types.
//! - [`worker`]: the SQS consumer, with per-record failure reporting.
//! - [`aws`]: the SQS and DynamoDB adapters, and provisioning that mirrors `template.yaml`.
//! - [`config`]: each function's environment, checked at cold start; [`init_error`] reports
//!   a cold start that fails to the Runtime API.
//! - [`metrics`]: CloudWatch Embedded Metric Format lines on stdout.
//! - `event_source` (feature `local`): Lambda's SQS event source mapping, for workers
//!   outside Lambda.
//! - `faults` (feature `local`): wrappers that make the ports fail, throttle, half-write,
//!   lose replies and panic, for the runner and the tests.
//! - `local` (feature `local`, on by default; off for the functions): the local runner
//!   behind `cargo run`, with the embedded SQLite backend and an HTTP server.

pub mod api;
pub mod aws;
pub mod config;
pub mod domain;
pub mod init_error;
// The emulated event source mapping and the fault injectors are the local runner's and the
// tests' (which build with the default features): the Lambda functions never compile them.
#[cfg(feature = "local")]
pub mod event_source;
#[cfg(feature = "local")]
pub mod faults;
#[cfg(feature = "local")]
pub mod local;
pub mod metrics;
pub mod ports;
pub mod worker;

#[cfg(test)]
mod testing;
