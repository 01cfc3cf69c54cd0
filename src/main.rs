//! `cargo run`: the whole pipeline on this machine (see [`message_pipeline::runner`]).

use std::process::ExitCode;

use clap::Parser as _;
use message_pipeline::{run, Args};

#[tokio::main]
async fn main() -> ExitCode {
    lambda_runtime::tracing::init_default_subscriber();
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // A start-up error is the user's to fix: one line with its causes, never the
            // backtrace that returning the error would print under RUST_BACKTRACE=1.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
