//! `pipeline-ctl`: the pipeline's operations from a terminal or a script, over its HTTP API
//! (the local runner or a deployed stack; the same routes). Human output by default, `--json`
//! for scripts (the API's own answers, one JSON document a line).
//!
//! The token comes from `--token` / `PIPELINE_TOKEN`; without one, from the local runner's
//! token file (`.local/tokens.env`), choosing the token each command needs.

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use pipeline::api::{
    Accepted, BatchItem, BatchView, DeadLetterPageView, DeletedView, JobView, OneDeadLetterView,
    PageView, RequeueAllView, StatsView,
};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Parser)]
#[command(
    name = "pipeline-ctl",
    version,
    about = "Operate a message pipeline over its HTTP API"
)]
struct Cli {
    /// The API's base URL: a stack's ApiUrl output, or the local runner's (default: the one
    /// in the token file, else http://127.0.0.1:3000).
    #[arg(long, env = "PIPELINE_URL")]
    url: Option<String>,
    /// Bearer token (prefer the environment variable: a flag shows in the process list).
    #[arg(long, env = "PIPELINE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Where the local runner wrote its URL and tokens, used when no token is given.
    #[arg(long, default_value = ".local/tokens.env")]
    tokens_file: PathBuf,
    /// Print the API's JSON answers instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Show whole contents and errors: `list` and `dlq list` otherwise cut each line to the
    /// terminal's width (`COLUMNS` when the output is not a terminal).
    #[arg(long, global = true)]
    full: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Queue a message; prints its job id.
    Send {
        content: String,
        #[command(flatten)]
        options: MessageOptions,
        /// Idempotency-Key: sending again with the same key and content queues nothing and
        /// prints the same job id (for 24 hours).
        #[arg(long)]
        key: Option<String>,
    },
    /// Queue one message per line of a file (`-`: standard input), 100 a request; prints
    /// each line's job id or error, in order (a blank line is an error in its place). Fails
    /// if any line was not queued.
    SendBatch {
        file: PathBuf,
        #[command(flatten)]
        options: MessageOptions,
        /// Idempotency-Key prefix: request `n` of the file carries `<key>-<n>`, so the whole
        /// command can be run again safely.
        #[arg(long)]
        key: Option<String>,
    },
    /// A job's status: scheduled, queued, stored, dead_lettered, deleted or expired.
    Status {
        job_id: String,
        /// Ask again (as Retry-After says) until the job is stored or dead-lettered.
        #[arg(long)]
        wait: bool,
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 60)]
        timeout_secs: u64,
    },
    /// Delete a job's message for good, stored or still on its way (erasure): it is gone
    /// from every read, and a later delivery of the job is not stored.
    Delete {
        job_id: String,
        /// Confirms the deletion; without it nothing is deleted.
        #[arg(long)]
        yes: bool,
    },
    /// The newest stored messages.
    List {
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Counts: queued, in flight, delayed, dead letters, stored.
    Stats,
    /// The dead-letter queue.
    #[command(subcommand)]
    Dlq(Dlq),
    /// Checks that the deployment cannot lose or double-process messages and that someone
    /// hears of trouble: the local runner's settings, or with --stack a deployed stack's
    /// (with your AWS credentials). Each check's verdict on a line, and what to change;
    /// exits 1 if any failed.
    Doctor {
        /// A deployed stack's name (CloudFormation), read with your AWS credentials.
        #[arg(long)]
        stack: Option<String>,
    },
    /// One job's log lines across the functions, oldest first: with --stack from the stack's
    /// log groups (CloudWatch Logs Insights, your AWS credentials), else from the local
    /// runner's log.
    Logs {
        job_id: String,
        /// A deployed stack's name (CloudFormation).
        #[arg(long)]
        stack: Option<String>,
        /// How far back to look on the stack, in hours.
        #[arg(long, default_value_t = 24)]
        hours: u64,
        /// The runner's log (beside its database).
        #[arg(long, default_value = ".local/pipeline.log")]
        log: PathBuf,
    },
}

/// What every message sent by a command carries besides its content.
#[derive(Debug, clap::Args)]
struct MessageOptions {
    /// Seconds before the message becomes visible to the worker (0 to 900).
    #[arg(long)]
    delay: Option<u32>,
    /// An attribute, `name=value` (repeat for more, up to 10).
    #[arg(long = "attr", value_name = "NAME=VALUE", value_parser = name_value)]
    attributes: Vec<(String, String)>,
    /// The FIFO message group (FIFO deployments only).
    #[arg(long)]
    group: Option<String>,
}

fn name_value(raw: &str) -> Result<(String, String), String> {
    raw.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("`{raw}` is not name=value"))
}

impl MessageOptions {
    /// The message's JSON, as the API takes it.
    fn message(&self, content: &str) -> Value {
        let mut message = serde_json::json!({ "content": content });
        if let Some(delay) = self.delay {
            message["delay_seconds"] = delay.into();
        }
        if !self.attributes.is_empty() {
            let map: serde_json::Map<String, Value> = self
                .attributes
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                .collect();
            message["attributes"] = Value::Object(map);
        }
        if let Some(group) = &self.group {
            message["group_id"] = group.as_str().into();
        }
        message
    }
}

/// Messages a batch request holds at most (the API's limit).
const BATCH: usize = 100;

#[derive(Debug, Subcommand)]
enum Dlq {
    /// Dead-lettered jobs, newest first, with their last error.
    List {
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Move one job back to the queue, under its job id.
    Requeue { job_id: String },
    /// Move every dead-lettered job back to the queue (raw dead letters stay: they would only
    /// fail again).
    RequeueAll,
    /// Delete one dead letter for good: a job id, or a raw dead letter's id (`dlq list`).
    Delete {
        job_id: String,
        /// Confirms the deletion; without it nothing is deleted.
        #[arg(long)]
        yes: bool,
    },
    /// Delete every dead letter for good.
    Purge {
        /// Confirms the purge; without it nothing is deleted.
        #[arg(long)]
        yes: bool,
    },
}

/// Which of the local runner's tokens a command needs.
#[derive(Clone, Copy)]
enum Need {
    Write,
    Read,
    Admin,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("pipeline-ctl: {error}");
            ExitCode::FAILURE
        }
    }
}

struct Api {
    url: String,
    agent: ureq::Agent,
    token: Option<String>,
}

/// An answer of the API: its typed body, the JSON it came as (what `--json` prints), and its
/// `Retry-After`.
struct Answer<T> {
    body: T,
    json: String,
    retry_after: Option<u64>,
}

/// What a 4xx or 5xx says: `error` (ours), or `message` (API Gateway's own).
#[derive(Deserialize)]
struct Refusal {
    error: Option<String>,
    message: Option<String>,
}

impl Api {
    /// Calls the API; a non-2xx answer is an error carrying the API's own sentence.
    fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Answer<T>> {
        self.call_keyed(method, path, body, None)
    }

    /// [`Api::call`] with an `Idempotency-Key`.
    fn call_keyed<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        key: Option<&str>,
    ) -> anyhow::Result<Answer<T>> {
        let url = format!("{}{path}", self.url.trim_end_matches('/'));
        let mut request = ureq::http::Request::builder().method(method).uri(&url);
        if let Some(key) = key {
            // The draft's form: a structured-field string.
            request = request.header("Idempotency-Key", format!("\"{key}\""));
        }
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let body = match body {
            Some(json) => {
                request = request.header("Content-Type", "application/json");
                json.to_string()
            }
            None => String::new(),
        };
        let mut response = self
            .agent
            .run(request.body(body)?)
            .map_err(|e| anyhow::anyhow!("{method} {url}: {e}"))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let json = response.body_mut().read_to_string()?;
        if !(200..300).contains(&status) {
            let reason = serde_json::from_str::<Refusal>(&json)
                .ok()
                .and_then(|r| r.error.or(r.message))
                .unwrap_or_default();
            anyhow::bail!("{method} {path}: {status} {reason}");
        }
        let body = serde_json::from_str(&json).map_err(|e| {
            anyhow::anyhow!("{method} {path}: an answer this version cannot read ({e}): {json}")
        })?;
        Ok(Answer {
            body,
            json,
            retry_after,
        })
    }
}

/// An HTTP(S) client: rustls on aws-lc-rs with the system's root certificates, as the SDK.
fn agent() -> anyhow::Result<ureq::Agent> {
    // Fails only when a provider is already installed, which is as good.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let roots: Vec<ureq::tls::Certificate<'static>> = rustls_native_certs::load_native_certs()
        .certs
        .iter()
        .map(|der| ureq::tls::Certificate::from_der(der.as_ref()).to_owned())
        .collect();
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::from(roots))
        .build();
    Ok(ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .tls_config(tls)
        .build()
        .into())
}

/// A `NAME=value` line of the local runner's token file.
fn from_tokens_file(cli: &Cli, name: &str) -> Option<String> {
    let file = std::fs::read_to_string(&cli.tokens_file).ok()?;
    file.lines().find_map(|line| {
        let line = line.trim().strip_prefix("export ").unwrap_or(line.trim());
        let (key, value) = line.split_once('=')?;
        (key == name).then(|| value.trim_matches(['\'', '"']).to_owned())
    })
}

fn token(cli: &Cli, need: Need) -> Option<String> {
    let name = match need {
        Need::Write => "WRITE_TOKEN",
        Need::Read => "READ_TOKEN",
        Need::Admin => "ADMIN_TOKEN",
    };
    cli.token.clone().or_else(|| from_tokens_file(cli, name))
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let need = match &cli.command {
        Command::Send { .. } | Command::SendBatch { .. } => Need::Write,
        Command::Status { .. } | Command::List { .. } | Command::Stats => Need::Read,
        Command::Dlq(_) | Command::Doctor { .. } | Command::Delete { .. } => Need::Admin,
        Command::Logs { .. } => Need::Read,
    };
    if let Command::Dlq(Dlq::Purge { yes: false }) = &cli.command {
        anyhow::bail!("purge deletes every dead letter for good: add --yes to do it");
    }
    if let Command::Delete { yes: false, job_id } = &cli.command {
        anyhow::bail!(
            "this deletes the message of job {job_id} for good (it cannot be read again): add --yes to do it"
        );
    }
    if let Command::Dlq(Dlq::Delete { yes: false, job_id }) = &cli.command {
        anyhow::bail!("this deletes job {job_id} for good: add --yes to do it");
    }
    let api = Api {
        url: cli
            .url
            .clone()
            .or_else(|| from_tokens_file(cli, "PIPELINE_URL"))
            .unwrap_or_else(|| "http://127.0.0.1:3000".to_owned()),
        agent: agent()?,
        token: token(cli, need),
    };
    match &cli.command {
        Command::Doctor { stack } => return doctor(cli, &api, stack.as_deref()),
        Command::Logs {
            job_id,
            stack,
            hours,
            log,
        } => {
            use message_pipeline::job_logs;
            let job: pipeline::domain::JobId = job_id.parse().map_err(|_| {
                anyhow::anyhow!("{job_id:?} is not a job id (a UUID, as POST /messages gives)")
            })?;
            let lines = match stack {
                Some(stack) => tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?
                    .block_on(job_logs::from_cloudwatch(
                        stack,
                        job,
                        Duration::from_secs(hours * 3600),
                    ))?,
                None => job_logs::from_file(log, job)?,
            };
            if lines.is_empty() {
                anyhow::bail!("no log line names job {job}");
            }
            for line in lines {
                println!("{line}");
            }
        }
        Command::Send {
            content,
            options,
            key,
        } => {
            let message = options.message(content);
            let answer: Answer<Accepted> =
                api.call_keyed("POST", "/messages", Some(&message), key.as_deref())?;
            print(cli, &answer, |a| a.job_id.clone());
        }
        Command::SendBatch { file, options, key } => send_batch(cli, &api, file, options, key)?,
        Command::Status {
            job_id,
            wait,
            timeout_secs,
        } => {
            let deadline = Instant::now() + Duration::from_secs(*timeout_secs);
            loop {
                let answer: Answer<JobView> = api.call("GET", &format!("/jobs/{job_id}"), None)?;
                let settled = !matches!(answer.body.status.as_str(), "queued" | "scheduled");
                if settled || !wait || Instant::now() >= deadline {
                    print(cli, &answer, describe_job);
                    if *wait && !settled {
                        anyhow::bail!("job {job_id} is not stored yet after {timeout_secs} s");
                    }
                    break;
                }
                std::thread::sleep(Duration::from_secs(answer.retry_after.unwrap_or(1)));
            }
        }
        Command::List { limit } => {
            let answer: Answer<PageView> =
                api.call("GET", &format!("/messages?limit={limit}"), None)?;
            let width = line_width(cli);
            print(cli, &answer, |page| {
                rows(&page.messages, |m| {
                    let line = format!("{}  {}  {}", m.id, m.timestamp, one_line(&m.content));
                    cut(line, width)
                })
            });
        }
        Command::Stats => {
            let answer: Answer<StatsView> = api.call("GET", "/stats", None)?;
            print(cli, &answer, describe_stats);
        }
        Command::Dlq(Dlq::List { limit }) => {
            let answer: Answer<DeadLetterPageView> =
                api.call("GET", &format!("/dead-letters?limit={limit}"), None)?;
            let width = line_width(cli);
            print(cli, &answer, |page| {
                rows(&page.dead_letters, |l| {
                    let line = format!(
                        "{}{}  {}  last {}  {}  | {}",
                        l.id,
                        if l.kind == "raw" { " (raw)" } else { "" },
                        counted(l.receive_count, "receive"),
                        l.last_failure_at,
                        one_line(&l.last_error),
                        one_line(&l.preview),
                    );
                    cut(line, width)
                })
            });
        }
        Command::Delete { job_id, .. } => {
            let answer: Answer<DeletedView> =
                api.call("DELETE", &format!("/messages/{job_id}"), None)?;
            print(cli, &answer, |a| match a.already_deleted {
                false => format!("deleted {} at {}", a.job_id, a.deleted_at),
                true => format!("{} was already deleted, at {}", a.job_id, a.deleted_at),
            });
        }
        Command::Dlq(Dlq::Requeue { job_id }) => {
            let answer: Answer<OneDeadLetterView> =
                api.call("POST", &format!("/dead-letters/{job_id}/requeue"), None)?;
            print(cli, &answer, |a| format!("requeued {}", a.id));
        }
        Command::Dlq(Dlq::RequeueAll) => requeue_all(cli, &api)?,
        Command::Dlq(Dlq::Delete { job_id, .. }) => {
            let answer: Answer<OneDeadLetterView> =
                api.call("DELETE", &format!("/dead-letters/{job_id}"), None)?;
            print(cli, &answer, |a| format!("deleted {}", a.id));
        }
        Command::Dlq(Dlq::Purge { .. }) => {
            let answer: Answer<Value> = api.call("DELETE", "/dead-letters?confirm=purge", None)?;
            print(cli, &answer, |_| "purged the dead-letter queue".to_owned());
        }
    }
    Ok(())
}

/// `send-batch`: the file's lines as messages, [`BATCH`] a request.
fn send_batch(
    cli: &Cli,
    api: &Api,
    file: &std::path::Path,
    options: &MessageOptions,
    key: &Option<String>,
) -> anyhow::Result<()> {
    let text = if file == std::path::Path::new("-") {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(file)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", file.display()))?
    };
    let lines: Vec<&str> = text.lines().collect();
    anyhow::ensure!(!lines.is_empty(), "{} holds no messages", file.display());
    let mut refused = 0;
    for (n, chunk) in lines.chunks(BATCH).enumerate() {
        // A blank line is refused here, in its place: the API would refuse it anyway, and a
        // request of blank lines only would be refused whole.
        let messages: Vec<Value> = chunk
            .iter()
            .filter(|line| !is_blank(line))
            .map(|line| options.message(line))
            .collect();
        let results = if messages.is_empty() {
            Vec::new()
        } else {
            let body = serde_json::json!({ "messages": messages });
            let key = key.as_ref().map(|k| format!("{k}-{n}"));
            let answer: Answer<BatchView> =
                api.call_keyed("POST", "/messages/batch", Some(&body), key.as_deref())?;
            if cli.json {
                println!("{}", answer.json);
            }
            answer.body.results
        };
        let mut results = results.into_iter();
        for line in chunk {
            let shown = if is_blank(line) {
                refused += 1;
                "error: the line is blank: a message needs content".to_owned()
            } else {
                match results.next() {
                    Some(BatchItem::Queued { job_id, .. }) => job_id,
                    Some(BatchItem::Refused { error }) => {
                        refused += 1;
                        format!("error: {}", one_line(&error))
                    }
                    None => anyhow::bail!("the API answered fewer results than messages sent"),
                }
            };
            if !cli.json {
                println!("{shown}");
            }
        }
    }
    if refused > 0 {
        anyhow::bail!(
            "{refused} of {} were not queued",
            counted(lines.len() as u64, "line")
        );
    }
    Ok(())
}

fn is_blank(line: &str) -> bool {
    line.trim().is_empty()
}

/// "1 dead letter", "2 dead letters".
fn counted(n: impl Into<u64>, thing: &str) -> String {
    match n.into() {
        1 => format!("1 {thing}"),
        n => format!("{n} {thing}s"),
    }
}

/// How wide a listed line may be: none with `--full` or `--json`, else the terminal's width,
/// else `COLUMNS`, else none (a pipe to a program gets whole lines).
fn line_width(cli: &Cli) -> Option<usize> {
    if cli.full || cli.json {
        return None;
    }
    if let Some((terminal_size::Width(columns), _)) =
        terminal_size::terminal_size_of(std::io::stdout())
    {
        return Some(usize::from(columns));
    }
    std::env::var("COLUMNS").ok()?.parse().ok()
}

/// `line` cut to `width` characters, the last one an ellipsis when anything was cut.
fn cut(line: String, width: Option<usize>) -> String {
    match width {
        Some(width) if width > 0 && line.chars().count() > width => {
            let mut cut: String = line.chars().take(width - 1).collect();
            cut.push('…');
            cut
        }
        _ => line,
    }
}

/// Calls requeue-all until it is done, with a progress bar on a terminal: the API moves
/// what fits in one call when SQS has no move task for it.
fn requeue_all(cli: &Cli, api: &Api) -> anyhow::Result<()> {
    let stats: Answer<StatsView> = api.call("GET", "/stats", None)?;
    let total = stats.body.dead_letter_queue.count;
    let bar = std::io::stderr().is_terminal() && !cli.json;
    let mut moved = 0;
    let mut left = 0;
    loop {
        let answer: Answer<RequeueAllView> = api.call("POST", "/dead-letters/requeue-all", None)?;
        moved += answer.body.moved;
        left = left.max(answer.body.left);
        if cli.json {
            println!("{}", answer.json);
        }
        if bar {
            const WIDTH: u64 = 30;
            let done = (moved.min(total) * WIDTH)
                .checked_div(total)
                .unwrap_or(WIDTH);
            eprint!(
                "\r[{}{}] {moved}/{total}",
                "#".repeat(done as usize),
                "-".repeat((WIDTH - done) as usize)
            );
            let _ = std::io::stderr().flush();
        }
        if let Some(task) = &answer.body.move_task {
            if bar {
                eprintln!();
            }
            if !cli.json {
                println!(
                    "SQS is moving the {} (move task {task}); follow it with `pipeline-ctl stats`",
                    counted(total, "dead letter")
                );
            }
            return Ok(());
        }
        if answer.body.done {
            break;
        }
    }
    if bar {
        eprintln!();
    }
    if !cli.json {
        println!("requeued {}", counted(moved, "dead letter"));
        if left > 0 {
            println!("left {} (not envelopes of this pipeline: they would only fail again); see `pipeline-ctl dlq list`, then delete them", counted(left, "raw dead letter"));
        }
    }
    Ok(())
}

/// `pipeline-ctl doctor`: the facts of a stack (AWS) or of the runner (its `/_local/`
/// endpoints), every check's verdict, and an error if any failed.
fn doctor(cli: &Cli, api: &Api, stack: Option<&str>) -> anyhow::Result<()> {
    use message_pipeline::doctor::{self, Status};
    let facts = match stack {
        Some(stack) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(doctor::aws::facts(stack))?,
        None => {
            let settings: Answer<Value> = api.call("GET", "/_local/settings", None)?;
            let stats: Answer<Value> = api.call("GET", "/_local/stats", None)?;
            doctor::runner::facts(&settings.body, &stats.body)?
        }
    };
    let verdicts = doctor::diagnose(&facts);
    for verdict in &verdicts {
        if cli.json {
            println!("{}", serde_json::to_string(verdict)?);
            continue;
        }
        let status = match verdict.status {
            Status::Ok => "ok  ",
            Status::Fail => "FAIL",
            Status::Skipped => "-   ",
        };
        println!("{status}  {}: {}", verdict.check, verdict.detail);
        if let Some(fix) = &verdict.fix {
            println!("      fix: {fix}");
        }
    }
    let failed = verdicts.iter().filter(|v| v.status == Status::Fail).count();
    anyhow::ensure!(
        failed == 0,
        "{failed} check{} failed",
        if failed == 1 { "" } else { "s" }
    );
    Ok(())
}

fn print<T>(cli: &Cli, answer: &Answer<T>, human: impl Fn(&T) -> String) {
    if cli.json {
        println!("{}", answer.json);
    } else {
        println!("{}", human(&answer.body));
    }
}

fn rows<T>(items: &[T], row: impl Fn(&T) -> String) -> String {
    if items.is_empty() {
        return "(none)".to_owned();
    }
    items.iter().map(row).collect::<Vec<_>>().join("\n")
}

/// A text on one line, control characters shown escaped: a message cannot rewrite the
/// terminal it is shown on.
fn one_line(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

fn describe_job(job: &JobView) -> String {
    let id = &job.job_id;
    match job.status.as_str() {
        "stored" => format!(
            "{id}: stored\n  {}",
            one_line(job.message.as_ref().map_or("", |m| m.content.as_str()))
        ),
        "dead_lettered" => match &job.dead_letter {
            Some(letter) => format!(
                "{id}: dead-lettered after {}\n  last error: {}",
                counted(letter.receive_count, "receive"),
                one_line(&letter.last_error)
            ),
            None => format!("{id}: dead-lettered"),
        },
        "scheduled" => format!(
            "{id}: scheduled, visible at {}",
            job.visible_at.as_deref().unwrap_or_default()
        ),
        "deleted" => format!(
            "{id}: deleted at {}",
            job.deleted_at.as_deref().unwrap_or_default()
        ),
        other => format!("{id}: {other} (accepted {})", job.accepted_at),
    }
}

fn describe_stats(stats: &StatsView) -> String {
    let approx = |approximate: bool| if approximate { " (approximate)" } else { "" };
    let queue = &stats.queue;
    let oldest = match queue.oldest_age_seconds {
        Some(age) => format!("{age} s"),
        None => "n/a".to_owned(),
    };
    format!(
        "queued       {}{}\nin flight    {}\ndelayed      {}\noldest       {oldest}\ndead letters {}{}\nstored       {}{}",
        queue.visible,
        approx(queue.approximate),
        queue.in_flight,
        queue.delayed,
        stats.dead_letter_queue.count,
        approx(stats.dead_letter_queue.approximate),
        stats.stored.count,
        approx(stats.stored.approximate),
    )
}
