//! `cargo run`: the whole pipeline on this machine (see [`message_pipeline::runner`]).

use clap::Parser as _;
use message_pipeline::{run, Args};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    lambda_runtime::tracing::init_default_subscriber();
    run(Args::parse()).await
}
