//! The local runner behind `cargo run`: the whole pipeline in one process, serving the same
//! HTTP API as the deployed stack, with a queue, a worker and a store behind it, and no
//! Docker or AWS account. It is made of the Lambda functions' own library ([`pipeline`]),
//! driven as Lambda drives it, and of what only a local process needs.
//!
//! # Layout
//! - [`runner`]: the command line and the wiring: which backend, which faults, start and
//!   stop.
//! - [`sqlite`]: the embedded backend, every port in one SQLite file (queue, dead-letter
//!   queue, store, idempotency keys, failure notes, operations), durable across kills. Only
//!   this crate links SQLite; no Lambda function does.
//! - [`server`]: the HTTP server (hyper), API Gateway's JWT authorizer played with bearer
//!   tokens (`gateway`), and the runner's own `/_local/` endpoints.
//! - [`event_source`]: Lambda's SQS event source mapping, which hands the consumer batches.
//! - [`faults`]: wrappers that make the ports fail, throttle, half-write, lose replies and
//!   panic, for the runner (`--store-faults` and the like) and the tests.
//! - [`calls`]: a count of the AWS requests made, on the `aws` backend.
//! - [`provision`]: queues and tables created as the template creates them, for the tests
//!   and benchmarks on the emulator.
//!
//! - [`doctor`]: `pipeline-ctl doctor`'s checks of a deployment's configuration.
//! - [`job_logs`]: `pipeline-ctl logs`: one job's lines, from CloudWatch or the runner's log.
//!
//! The operations CLI, `pipeline-ctl` (`src/bin/`), talks to the HTTP API, and for `doctor`
//! to a stack's AWS resources.

pub mod calls;
pub mod doctor;
pub mod event_source;
pub mod faults;
pub mod job_logs;
mod private_file;
pub mod provision;
pub mod runner;
pub mod server;
pub mod sqlite;

pub use runner::{run, Args};
