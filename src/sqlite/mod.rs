//! The embedded backend: queue, dead-letter queue and store in one SQLite file.
//!
//! SQLite in WAL mode: a transaction that returned is in the write-ahead log, which survives
//! the process being killed (SIGKILL included). `Durability::Full` also fsyncs every commit,
//! which is what survives losing the machine. One writer connection and a few readers:
//! readers (listing) never wait for the writer in WAL mode.
//!
//! The queue keeps SQS's contract, checked by the same contract tests as SQS itself: a
//! received message is hidden for the visibility timeout under a fresh receipt handle, comes
//! back unless deleted, and on the receive after its `max_receive_count`-th it moves to the
//! dead-letter table instead. Its times come from [`pipeline::clock`]: monotonic within a
//! process, so a step of the system clock changes no visibility timeout.

mod batch;
mod db;
mod flow;
mod keys;
mod lifecycle;
mod operations;
mod queue;
mod store;
mod writer;

pub use batch::BatchInOneTransaction;
pub use db::{Durability, SqliteDb, Stats};
pub use flow::SqliteFlow;
pub use keys::SqliteKeys;
pub use lifecycle::PRUNE_BATCH;
pub use queue::{DeadLetter, SqliteQueue};
pub use store::SqliteStore;
