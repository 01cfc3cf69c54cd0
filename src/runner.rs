//! The runner's command line and wiring: which backend, which faults, the HTTP server and
//! the worker, started together and stopped together on SIGINT or SIGTERM.
//!
//! The worker is the Lambda consumer's own code ([`pipeline::worker::Consumer`]) driven by
//! [`crate::event_source`], the event source mapping emulated. Two backends:
//! - `embedded` (default): queue, dead-letter queue and store in one SQLite file
//!   ([`crate::sqlite`]), durable across kills;
//! - `aws`: the real adapters, polling SQS and writing DynamoDB (or the emulator, with
//!   `AWS_ENDPOINT_URL`), chosen when `QUEUE_URL` is set or with `--backend aws`.

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::calls::CallCounter;
use crate::event_source::{
    run_mapping, Batches, ConsumerParts, MappingCounts, MappingSettings, OverPorts,
};
use crate::faults::{FaultCounts, FaultPlan, Faulty};
use crate::server::gateway::{Gate, IssuedTokens};
use crate::sqlite::{
    BatchInOneTransaction, Durability, SqliteDb, SqliteFlow, SqliteKeys, SqliteQueue, SqliteStore,
};
use crate::{private_file, server};
use pipeline::adapters::aws::{AwsOperations, DynamoDbKeys, DynamoDbStore, SqsQueue, SqsRedrive};
use pipeline::api::EnqueueLimits;
use pipeline::domain::{ContentLimit, CursorKey, JobIdKeys, MessageRetention, RetryPolicy};
use pipeline::ports::QueueSettings;
use pipeline::ports::{
    FailureLog, FlowLog, IdempotencyKeys, MessageQueue, MessageStore, Operations, QueueSource,
    Redrive,
};
use pipeline::worker::{LastFailureNotes, Retries};

/// Everything a request may need.
#[derive(Debug)]
pub struct AppState {
    pub queue: Arc<dyn MessageQueue>,
    pub keys: Arc<dyn IdempotencyKeys>,
    pub store: Arc<dyn MessageStore>,
    pub failures: Arc<dyn FailureLog>,
    pub operations: Arc<dyn Operations>,
    /// How long the queue keeps a message: an unknown job older than this is a 404.
    pub retention: Duration,
    pub limits: EnqueueLimits,
    pub cursors: CursorKey,
    /// Tags job ids and checks the ids in paths.
    pub job_ids: JobIdKeys,
    /// The embedded queue, for the `/_local/` endpoints; none on the AWS backend.
    pub embedded: Option<Arc<SqliteQueue>>,
    /// The fault-injecting wrappers in place, by the port they wrap.
    pub faults: Vec<(&'static str, Arc<FaultCounts>)>,
    /// AWS requests made so far (AWS backend).
    pub calls: Option<CallCounter>,
    /// Batches handed to the consumer: Lambda's invocations.
    pub consumer: Arc<MappingCounts>,
    /// Who gets in: API Gateway's authorizer, played locally.
    pub gate: Gate,
    /// Listening on loopback: only loopback `Host` and `Origin` names are answered.
    pub loopback: bool,
    /// What `pipeline-ctl doctor` checks (`/_local/settings`).
    pub settings: Settings,
}

/// The runner's queue and consumer settings, as the template's parameters would be.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Settings {
    pub visibility_timeout_secs: u64,
    pub max_receive_count: u32,
    pub queue_retention_secs: u64,
    pub consumer_timeout_secs: u64,
    pub batching_window_ms: u64,
    pub consumers: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// SQLite file: no emulator, no AWS account.
    Embedded,
    /// SQS and DynamoDB (or an emulator via AWS_ENDPOINT_URL): needs QUEUE_URL and TABLE_NAME.
    Aws,
}

/// Runs the message pipeline locally: the deployed stack's HTTP API, queue, worker and store
/// in one process.
#[derive(Debug, clap::Parser)]
#[command(name = "message-pipeline", version)]
pub struct Args {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,
    /// Backend; default `aws` when QUEUE_URL is set, `embedded` otherwise.
    #[arg(long, value_enum)]
    pub backend: Option<Backend>,
    /// The embedded backend's database file; a directory holds it as `pipeline.db`.
    #[arg(long, env = "DATA_FILE", default_value = ".local/pipeline.db")]
    pub data: PathBuf,
    /// What an acknowledged message survives (embedded backend).
    #[arg(long, value_enum, default_value = "process")]
    pub durability: Durability,
    /// Records per consumer batch (Lambda BatchSize).
    #[arg(long, default_value_t = 10)]
    pub batch_size: usize,
    /// Milliseconds to keep gathering a batch once it has a record (Lambda batching window).
    #[arg(long, default_value_t = 0)]
    pub batching_window_ms: u64,
    /// Batches worked on at once (Lambda MaximumConcurrency); 0 runs no worker, so the queue
    /// only fills (for benchmarks, or to inspect messages before they are consumed). Default:
    /// 1 on the embedded backend, whose single SQLite writer a second poller only contends
    /// for (see BENCHMARKS.md); 4 on AWS, where pollers mostly wait on the network.
    #[arg(long)]
    pub consumers: Option<usize>,
    /// Seconds a received message stays hidden before it is retried (embedded backend; on
    /// SQS it is the queue's own setting).
    #[arg(long, default_value_t = 30)]
    pub visibility_timeout_secs: u64,
    /// Seconds one consumer invocation may take (Lambda's function timeout); past it the
    /// batch is abandoned and retried after the visibility timeout. An embedded batch is one
    /// transaction that waits on nothing, so only batches over SQS (or with faults) reach it.
    #[arg(long, default_value_t = 30)]
    pub consumer_timeout_secs: u64,
    /// Receives before a message moves to the dead-letter queue (embedded backend; on SQS,
    /// the queue's redrive policy, which this must match so the consumer notes last failures).
    #[arg(long, env = "MAX_RECEIVE_COUNT", default_value_t = QueueSettings::PRODUCTION.max_receive_count)]
    pub max_receive_count: u32,
    /// Seconds a record that failed transiently first waits before its next delivery; each
    /// further failure doubles it, up to --retry-max-secs (jittered in its upper half). With
    /// the defaults and --max-receive-count 9, a store outage of 61 min dead-letters nothing.
    #[arg(long, env = "RETRY_BASE_SECS", default_value_t = RetryPolicy::DEFAULT.base.as_secs())]
    pub retry_base_secs: u64,
    /// The longest wait between two deliveries of a failing record (at most 43200).
    #[arg(long, env = "RETRY_MAX_SECS", default_value_t = RetryPolicy::DEFAULT.cap.as_secs())]
    pub retry_max_secs: u64,
    /// Seconds the queue keeps a message (as the template's QueueRetentionSeconds): job
    /// status answers 404 for an unknown job older than this.
    #[arg(long, env = "QUEUE_RETENTION_SECONDS", default_value_t = 4 * 24 * 3600)]
    pub queue_retention_secs: u64,
    /// Signs page cursors (at least 32 bytes); default: a random key, so cursors from an
    /// earlier run of the runner are refused.
    #[arg(long, env = "CURSOR_SECRET", hide_env_values = true)]
    pub cursor_secret: Option<String>,
    /// Days a stored message is kept (as the template's MessageRetentionDays; 0: for ever).
    /// Applies to messages stored from then on; expired ones are pruned in the background.
    #[arg(long, env = "MESSAGE_RETENTION_DAYS", default_value_t = 0)]
    pub message_retention_days: u64,
    /// Makes a new key for job ids before starting; ids tagged with the one before stay
    /// valid, those of the one before that do not (README, "Rotating the job id key").
    /// Embedded backend: the keys live in its database.
    #[arg(long)]
    pub rotate_job_id_key: bool,
    /// The job id key on the AWS backend (at least 32 bytes), as the stack's functions hold
    /// it; default: a random key, so the ids of an earlier run are refused. The embedded
    /// backend keeps its keys in its database.
    #[arg(long, env = "JOB_ID_SECRET", hide_env_values = true)]
    pub job_id_secret: Option<String>,
    /// Faults injected into the store, e.g. `error=0.2,partial=0.1,panic=0.01,latency-ms=5`
    /// (also `throttle`, `seed`): proves that retries and the dead-letter queue keep every
    /// acknowledged message. Counts in `GET /_local/stats`.
    #[arg(long, value_parser = FaultPlan::parse, value_name = "PLAN")]
    pub store_faults: Option<FaultPlan>,
    /// Faults injected into sending to the queue: the client must get a 503, never a 202.
    #[arg(long, value_parser = FaultPlan::parse, value_name = "PLAN")]
    pub queue_faults: Option<FaultPlan>,
    /// Faults injected into the worker's receives and deletes (a failed delete means the
    /// message is delivered again).
    #[arg(long, value_parser = FaultPlan::parse, value_name = "PLAN")]
    pub source_faults: Option<FaultPlan>,
    /// Longest message content, in characters.
    #[arg(long, env = "MAX_CONTENT_CHARS", default_value_t = ContentLimit::DEFAULT.max_chars())]
    pub max_content_chars: usize,
    /// Bearer token with the messages/write scope (default: random at each start). Prefer
    /// the environment variable: a flag shows in the process list.
    #[arg(long, env = "PIPELINE_WRITE_TOKEN", hide_env_values = true)]
    pub write_token: Option<String>,
    /// Bearer token with the messages/read scope (default: random at each start).
    #[arg(long, env = "PIPELINE_READ_TOKEN", hide_env_values = true)]
    pub read_token: Option<String>,
    /// Bearer token with every scope, messages/admin included (`/_local/`; default: random).
    #[arg(long, env = "PIPELINE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Where the tokens are written, readable by you only: `. .local/tokens.env` sets
    /// WRITE_TOKEN, READ_TOKEN and ADMIN_TOKEN.
    #[arg(long, default_value = ".local/tokens.env")]
    pub tokens_file: PathBuf,
    /// Serve without tokens (every caller may do everything). Refused unless --listen is a
    /// loopback address; requests naming a non-loopback Host or Origin are still refused.
    #[arg(long)]
    pub no_auth: bool,
    /// A FIFO queue (embedded backend), as the template's FifoQueue=true: messages take a
    /// `group_id`, and a group's messages are stored in order. On the AWS backend the queue's
    /// URL says it (a FIFO queue's name ends in `.fifo`).
    #[arg(long)]
    pub fifo: bool,
}

struct Pipeline {
    default_consumers: usize,
    queue: Arc<dyn MessageQueue>,
    keys: Arc<dyn IdempotencyKeys>,
    source: Arc<dyn QueueSource>,
    redrive: Arc<dyn Redrive>,
    store: Arc<dyn MessageStore>,
    failures: Arc<dyn FailureLog>,
    operations: Arc<dyn Operations>,
    embedded: Option<Arc<SqliteQueue>>,
    /// The embedded store, when the consumer's batches are each one transaction on the
    /// embedded queue's file; none when faults are injected into the ports the consumer uses,
    /// which batches then go through.
    batch_store: Option<Arc<SqliteStore>>,
    flow: Option<Arc<SqliteFlow>>,
    calls: Option<CallCounter>,
    job_ids: JobIdKeys,
    /// The embedded database, which the pruner keeps within its retention.
    db: Option<Arc<SqliteDb>>,
    description: String,
}

impl Pipeline {
    /// Wraps each port named in `args` in a fault injector; returns what each one counts.
    fn with_faults(mut self, args: &Args) -> (Self, Vec<(&'static str, Arc<FaultCounts>)>) {
        let mut counts = Vec::new();
        if let Some(plan) = &args.queue_faults {
            let faulty = Faulty::new(self.queue, plan.clone());
            counts.push(("queue", faulty.counts()));
            self.queue = Arc::new(faulty);
        }
        if let Some(plan) = &args.source_faults {
            let faulty = Faulty::new(self.source, plan.clone());
            counts.push(("source", faulty.counts()));
            self.source = Arc::new(faulty);
            self.batch_store = None;
        }
        if let Some(plan) = &args.store_faults {
            let faulty = Faulty::new(self.store, plan.clone());
            counts.push(("store", faulty.counts()));
            self.store = Arc::new(faulty);
            self.batch_store = None;
        }
        (self, counts)
    }
}

async fn pipeline(args: &Args) -> anyhow::Result<Pipeline> {
    let retention = MessageRetention::days(args.message_retention_days)
        .map_err(|e| anyhow::anyhow!("--message-retention-days: {e}"))?;
    let backend = args
        .backend
        .unwrap_or(if std::env::var_os("QUEUE_URL").is_some() {
            Backend::Aws
        } else {
            Backend::Embedded
        });
    match backend {
        Backend::Embedded => {
            let data = database_file(&args.data);
            let db = SqliteDb::open(&data, args.durability)?;
            let settings = QueueSettings {
                visibility_timeout: Duration::from_secs(args.visibility_timeout_secs),
                max_receive_count: args.max_receive_count,
            };
            let queue = Arc::new(if args.fifo {
                SqliteQueue::fifo(db.clone(), settings)
            } else {
                SqliteQueue::new(db.clone(), settings)
            });
            let store = Arc::new(SqliteStore::new(db.clone()).with_retention(retention));
            let job_ids = db.job_id_keys(args.rotate_job_id_key).await?;
            Ok(Pipeline {
                default_consumers: 1,
                queue: queue.clone(),
                keys: Arc::new(SqliteKeys::new(db.clone())),
                source: queue.clone(),
                redrive: queue.clone(),
                store: store.clone(),
                failures: store.clone(),
                operations: queue.clone(),
                embedded: Some(queue),
                batch_store: Some(store),
                flow: Some(Arc::new(SqliteFlow::new(db.clone()))),
                calls: None,
                job_ids,
                db: Some(db),
                description: format!(
                    "embedded (SQLite at {}, durability {:?}{})",
                    data.display(),
                    args.durability,
                    if args.fifo { ", FIFO queue" } else { "" }
                ),
            })
        }
        Backend::Aws => {
            let config = pipeline::config::EnqueueConfig::from_env()?;
            let table = pipeline::config::ConsumerConfig::from_env()?.table_name;
            // Every request is counted, for GET /_local/stats and the cost benchmark.
            let calls = CallCounter::default();
            let sdk = pipeline::adapters::aws::sdk_config().await;
            let dead_letters = pipeline::config::OperateConfig::from_env()?.dead_letter_queue_url;
            let redrive = SqsRedrive::new(calls.sqs(&sdk), &config.queue_url, &dead_letters);
            let queue = Arc::new(SqsQueue::new(calls.sqs(&sdk), &config.queue_url));
            anyhow::ensure!(
                !args.fifo || queue.is_fifo(),
                "--fifo needs a FIFO queue, and {} is not one (a FIFO queue's name ends in .fifo)",
                config.queue_url
            );
            let keys = Arc::new(DynamoDbKeys::new(
                calls.dynamodb(&sdk),
                &config.idempotency_table,
            ));
            let store = DynamoDbStore::new(calls.dynamodb(&sdk), &table).with_retention(retention);
            anyhow::ensure!(
                !args.rotate_job_id_key,
                "--rotate-job-id-key rotates the embedded backend's key; on AWS, rotate the \
                 stack's secret (README, \"Rotating the job id key\")"
            );
            let job_ids = match &args.job_id_secret {
                Some(secret) => JobIdKeys::from_secrets(secret, None)?,
                None => {
                    println!(
                        "  job ids: a random key (set JOB_ID_SECRET to keep ids valid across runs)"
                    );
                    JobIdKeys::random()
                }
            };
            let operations = AwsOperations::new(
                calls.sqs(&sdk),
                &config.queue_url,
                dead_letters,
                store.clone(),
            )
            .with_cloudwatch(aws_sdk_cloudwatch::Client::new(&sdk));
            let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "AWS".into());
            let store = Arc::new(store);
            Ok(Pipeline {
                default_consumers: 4,
                queue: queue.clone(),
                keys,
                source: queue,
                redrive: Arc::new(redrive),
                store: store.clone(),
                failures: store,
                operations: Arc::new(operations),
                embedded: None,
                batch_store: None,
                flow: None,
                calls: Some(calls),
                job_ids,
                db: None,
                description: format!(
                    "aws (queue {}, table {table}, endpoint {endpoint})",
                    config.queue_url
                ),
            })
        }
    }
}

/// Where the runner also writes its log, as JSON lines (for `pipeline-ctl logs <job id>`):
/// beside its database, `.local/pipeline.log` by default.
pub fn log_file(args: &Args) -> PathBuf {
    crate::job_logs::runner_log(&database_file(&args.data))
}

/// The database file `--data` names: itself, or `pipeline.db` in it when it is a directory.
fn database_file(data: &Path) -> PathBuf {
    if data.is_dir() {
        data.join("pipeline.db")
    } else {
        data.to_path_buf()
    }
}

/// A second `cargo run` in the same checkout would overwrite the tokens of the first, still
/// running, and lock out whoever sourced them. The file's `PIPELINE_URL` answering tells a
/// live runner from a stale file (killed, rebooted), which is simply taken over.
fn refuse_the_tokens_file_of_a_running_runner(tokens_file: &Path) -> anyhow::Result<()> {
    let Ok(contents) = std::fs::read_to_string(tokens_file) else {
        return Ok(());
    };
    let Some(url) = contents
        .lines()
        .find_map(|line| line.strip_prefix("PIPELINE_URL="))
    else {
        return Ok(());
    };
    let address = url.trim().trim_start_matches("http://");
    let answering = address
        .parse::<std::net::SocketAddr>()
        .is_ok_and(|address| {
            std::net::TcpStream::connect_timeout(&address, Duration::from_millis(300)).is_ok()
        });
    anyhow::ensure!(
        !answering,
        "{} holds the tokens of the runner still listening on {}: stop it, or give this one \
         its own file with --tokens-file (and its own --data)",
        tokens_file.display(),
        url.trim()
    );
    Ok(())
}

/// Runs until SIGINT or SIGTERM, then stops taking requests and finishes in-flight batches.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let content_limit = ContentLimit::new(args.max_content_chars)
        .map_err(|e| anyhow::anyhow!("--max-content-chars {e}"))?;
    let cursors = match &args.cursor_secret {
        Some(secret) => pipeline::config::cursor_key(secret)?,
        None => CursorKey::random(),
    };
    anyhow::ensure!(args.batch_size >= 1, "--batch-size must be at least 1");
    let policy = RetryPolicy::new(args.retry_base_secs, args.retry_max_secs)
        .map_err(|e| anyhow::anyhow!("--retry-base-secs/--retry-max-secs: {e}"))?;
    let loopback = args.listen.ip().is_loopback();
    anyhow::ensure!(
        loopback || !args.no_auth,
        "--no-auth would let anyone who can reach {} read and write every message: it is \
         allowed on a loopback --listen (127.0.0.1, [::1]) only. Drop --no-auth to require \
         tokens.",
        args.listen
    );
    let tokens = (!args.no_auth)
        .then(|| {
            IssuedTokens::given_or_random(
                args.write_token.clone(),
                args.read_token.clone(),
                args.admin_token.clone(),
            )
        })
        .transpose()?;
    if tokens.is_some() {
        refuse_the_tokens_file_of_a_running_runner(&args.tokens_file)?;
    }
    let (pipeline, faults) = pipeline(&args).await?.with_faults(&args);
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let url = format!("http://{}", listener.local_addr()?);
    if let Some(tokens) = &tokens {
        private_file::write(&args.tokens_file, &tokens.as_env_file(&url))?;
    }
    let mapping = MappingSettings {
        batch_size: args.batch_size,
        batching_window: Duration::from_millis(args.batching_window_ms),
        concurrency: args.consumers.unwrap_or(pipeline.default_consumers),
        invocation_timeout: Duration::from_secs(args.consumer_timeout_secs),
    };
    println!("message-pipeline local runner");
    println!("  listening on {url}");
    println!("  backend: {}", pipeline.description);
    println!(
        "  consumer: batches of {} within {} ms, {} at once",
        mapping.batch_size, args.batching_window_ms, mapping.concurrency
    );
    print_how_to_call(&url, &args.tokens_file, tokens.as_ref());

    let (stop, stopped) = watch::channel(false);
    let consumer = Arc::new(MappingCounts::default());
    let notes = LastFailureNotes {
        log: pipeline.failures.clone(),
        max_receive_count: args.max_receive_count,
    };
    let retries = Retries {
        redrive: pipeline.redrive,
        policy,
        max_receive_count: args.max_receive_count,
    };
    let batch_queue = pipeline.embedded.clone();
    let state = Arc::new(AppState {
        queue: pipeline.queue,
        keys: pipeline.keys,
        store: pipeline.store.clone(),
        failures: pipeline.failures,
        operations: pipeline.operations,
        retention: Duration::from_secs(args.queue_retention_secs),
        limits: EnqueueLimits::for_content(content_limit),
        cursors,
        job_ids: pipeline.job_ids,
        embedded: pipeline.embedded,
        faults,
        calls: pipeline.calls,
        consumer: consumer.clone(),
        gate: tokens.as_ref().map_or(Gate::Open, IssuedTokens::gate),
        loopback,
        settings: Settings {
            visibility_timeout_secs: args.visibility_timeout_secs,
            max_receive_count: args.max_receive_count,
            queue_retention_secs: args.queue_retention_secs,
            consumer_timeout_secs: args.consumer_timeout_secs,
            batching_window_ms: args.batching_window_ms,
            consumers: mapping.concurrency,
        },
    });
    // The flow history (`GET /stats/history`) of the embedded backend, kept beside its queue;
    // the AWS backend's is CloudWatch's.
    let flow = pipeline.flow.clone();
    if let Some(flow) = flow.clone() {
        tokio::spawn(sample_backlog(flow, stopped.clone()));
    }
    if let Some(db) = pipeline.db {
        tokio::spawn(db.run_pruner(stopped.clone()));
    }
    let server = tokio::spawn(server::serve(listener, state, stopped.clone()));
    let batches: Arc<dyn Batches> = match (batch_queue, pipeline.batch_store) {
        (Some(queue), Some(store)) => Arc::new(BatchInOneTransaction::new(queue, &store, policy)),
        _ => Arc::new(OverPorts {
            source: pipeline.source,
            parts: ConsumerParts {
                store: pipeline.store,
                notes: Some(notes),
                retries: Some(retries),
                flow: flow.map(|flow| flow as Arc<dyn FlowLog>),
            },
        }),
    };
    let worker = tokio::spawn(run_mapping(batches, mapping, consumer, stopped));

    shutdown_signal().await;
    println!("shutting down: finishing requests and batches in flight");
    let _ = stop.send(true);
    server.await?;
    worker.await?;
    println!("stopped");
    Ok(())
}

/// How often the backlog is sampled into the flow history: several times a minute, so a
/// minute's most is near what it was.
const BACKLOG_SAMPLE: Duration = Duration::from_secs(5);

async fn sample_backlog(flow: Arc<SqliteFlow>, mut stopped: watch::Receiver<bool>) {
    loop {
        if let Err(error) = flow.sample_backlog().await {
            tracing::warn!(%error, "sampling the backlog failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(BACKLOG_SAMPLE) => {}
            _ = stopped.changed() => return,
        }
    }
}

/// The banner's lines a person pastes: the token file to source, then curl. The tokens
/// themselves are shown only on a terminal, so that they never land in a captured log.
fn print_how_to_call(url: &str, tokens_file: &Path, tokens: Option<&IssuedTokens>) {
    let (auth_write, auth_read) = match tokens {
        None => {
            println!("  auth: none (--no-auth): every local caller may do everything");
            (String::new(), String::new())
        }
        Some(tokens) => {
            let file = tokens_file.display();
            println!("  auth: bearer tokens, in {file} (readable by you only; new at every start)");
            if std::io::stdout().is_terminal() {
                println!("    write: {}", tokens.write);
                println!("    read:  {}", tokens.read);
                println!("    admin: {} (every scope, /_local/ too)", tokens.admin);
            }
            println!("  try:  . {file}");
            (
                " -H \"Authorization: Bearer $WRITE_TOKEN\"".to_owned(),
                " -H \"Authorization: Bearer $READ_TOKEN\"".to_owned(),
            )
        }
    };
    println!("        curl -i -X POST {url}/messages{auth_write} -H 'Content-Type: application/json' -d '{{\"content\": \"hello\"}}'");
    println!("        curl -s {url}/messages{auth_read}");
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
