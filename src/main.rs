//! `cargo run`: the whole pipeline on this machine (see [`message_pipeline::runner`]).

use std::process::ExitCode;

use clap::Parser as _;
use message_pipeline::{run, Args};

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(&message_pipeline::runner::log_file(&args));
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // A start-up error is the user's to fix: one line with its causes, never the
            // backtrace that returning the error would print under RUST_BACKTRACE=1.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs as the functions do (text on stdout, level from `RUST_LOG`, INFO by default), and
/// the same events as JSON lines appended to `log`, owner-only, for `pipeline-ctl logs`. A
/// log that cannot be opened is said once and left out.
fn init_logging(log: &std::path::Path) {
    use lambda_runtime::tracing::subscriber::filter::{EnvFilter, LevelFilter};
    use lambda_runtime::tracing::subscriber::fmt;
    use lambda_runtime::tracing::subscriber::layer::SubscriberExt as _;
    use lambda_runtime::tracing::subscriber::util::SubscriberInitExt as _;
    use std::os::unix::fs::OpenOptionsExt as _;

    let file = log
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(log)
        });
    let file = match file {
        Ok(file) => Some(file),
        Err(error) => {
            eprintln!("warning: not logging to {}: {error}", log.display());
            None
        }
    };
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env_lossy();
    lambda_runtime::tracing::subscriber::registry()
        .with(filter)
        .with(fmt::layer().with_target(false).without_time())
        .with(file.map(|file| fmt::layer().json().with_writer(std::sync::Mutex::new(file))))
        .init();
}
