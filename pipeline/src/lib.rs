//! A message queue pipeline on AWS Lambda: a client POSTs a message, it is queued on SQS and
//! acknowledged at once with a job id; a consumer stores it in DynamoDB exactly once; clients
//! read messages back, newest first.
//!
//! This crate is everything the four Lambda functions in `functions/` are made of: their
//! `main`s only read their configuration, build their SDK clients and hand requests to the
//! handlers here. It has no SQLite, HTTP server or CLI in it: those are the local runner's
//! (the workspace's root package), which builds on this crate.
//!
//! # Layout
//! - [`domain`]: validated content, job ids (UUIDv7, which carry the acceptance time), the
//!   SQS envelope, pages, cursors and idempotency keys. No I/O.
//! - [`ports`]: the capabilities the handlers need, one trait each: a queue that sends, a
//!   store that puts, gets and lists, idempotency keys, the failure log, and the operations
//!   on the queues.
//! - [`adapters`]: the ports on each backend, a folder each: `aws` (SQS, DynamoDB,
//!   CloudWatch), `memory` (the fakes that unit tests stand on; feature `memory`). The SQLite
//!   backend is the local runner's (`src/sqlite/` at the workspace root).
//! - [`api`]: the HTTP API (routing, scopes, validation, error mapping) on `lambda_http` types.
//! - [`worker`]: the SQS consumer, with per-record failure reporting.
//! - [`clock`]: where time comes from, so that what expires can be tested without waiting.
//! - [`config`]: each function's environment, checked at cold start; [`init_error`] reports
//!   a cold start that fails to the Runtime API.
//! - [`metrics`]: CloudWatch Embedded Metric Format lines on stdout.

pub mod adapters;
pub mod api;
pub mod clock;
pub mod config;
pub mod domain;
pub mod init_error;
pub mod metrics;
pub mod ports;
pub mod worker;

#[cfg(test)]
mod testing;
