//! The ports on each backend, one folder a backend. A Lambda function compiles `aws` only;
//! `memory` is built for tests (feature `memory`); the embedded SQLite backend is the local
//! runner's own (`src/sqlite/` at the workspace root), so that no function links SQLite.

pub mod aws;
#[cfg(any(test, feature = "memory"))]
pub mod memory;
