//! The local runner as a process (`cargo run`'s binary, on either backend), its tokens, and
//! plain HTTP calls to it.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::aws::AwsTarget;

pub struct Runner {
    child: Child,
    pub url: String,
    /// Where the runner wrote its tokens; removed on drop.
    pub tokens_file: PathBuf,
    /// Everything the runner printed (stdout and its warnings); its tail is shown when the
    /// test fails, and it is removed on drop.
    log: PathBuf,
}

impl Runner {
    /// Starts `cargo run`'s binary on the embedded backend.
    pub fn start(data: &Path) -> Self {
        Self::start_with(data, &["--visibility-timeout-secs", "2"])
    }

    pub fn start_with(data: &Path, args: &[&str]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_message-pipeline"));
        command
            .args(["--backend", "embedded"])
            .args(args)
            .arg("--data")
            .arg(data);
        Self::spawn(command)
    }

    /// Starts the runner on the AWS adapters, against a test stack's queues and tables.
    pub fn start_on_aws(target: &AwsTarget, args: &[&str]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_message-pipeline"));
        command
            .args(["--backend", "aws"])
            .args(args)
            .env("QUEUE_URL", &target.queues.queue_url)
            .env("DEAD_LETTER_QUEUE_URL", &target.queues.dlq_url)
            .env("TABLE_NAME", &target.table)
            .env("IDEMPOTENCY_TABLE_NAME", &target.keys_table);
        Self::spawn(command)
    }

    /// Spawns on a free port and waits until the runner says where it listens. Every
    /// request of [`agent`] carries the admin token this gives it.
    fn spawn(mut command: Command) -> Self {
        let run = uuid::Uuid::new_v4();
        let tokens_file = std::env::temp_dir().join(format!("mp-tokens-{run}.env"));
        let log = std::env::temp_dir().join(format!("mp-runner-{run}.log"));
        let log_file = std::fs::File::create(&log).unwrap();
        let mut child = command
            .args(["--listen", "127.0.0.1:0"])
            .arg("--tokens-file")
            .arg(&tokens_file)
            .env("PIPELINE_WRITE_TOKEN", WRITE_TOKEN)
            .env("PIPELINE_READ_TOKEN", READ_TOKEN)
            .env("PIPELINE_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(log_file.try_clone().unwrap())
            .spawn()
            .expect("start the runner");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let mut banner = log_file.try_clone().unwrap();
        let url = lines
            .by_ref()
            .map_while(Result::ok)
            .inspect(|line| drop(writeln!(banner, "{line}")))
            .find_map(|line| line.trim().strip_prefix("listening on ").map(str::to_owned));
        let Some(url) = url else {
            panic!("the runner printed no address: {}", tail(&log, 50));
        };
        // Keep draining stdout into the log so the runner never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut log_file = log_file;
            for line in lines.map_while(Result::ok) {
                let _ = writeln!(log_file, "{line}");
            }
        });
        Self {
            child,
            url,
            tokens_file,
            log,
        }
    }

    pub fn kill(self) {
        // Drop kills it.
    }

    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        self.child.wait().unwrap()
    }

    /// Calls `method path` with the admin token: the status and the JSON body (null when the
    /// body is not JSON).
    pub fn call(&self, method: &str, path: &str) -> (u16, serde_json::Value) {
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url))
            .body(String::new())
            .unwrap();
        let mut response = agent().run(request).unwrap();
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        )
    }

    pub fn stats(&self) -> serde_json::Value {
        get_json(&agent(), &format!("{}/_local/stats", self.url))
    }

    /// Waits until nothing is queued or in flight (embedded backend).
    pub fn wait_drained(&self, within: Duration) -> serde_json::Value {
        let deadline = Instant::now() + within;
        loop {
            let stats = self.stats();
            if stats["queued"] == 0 && stats["in_flight"] == 0 {
                return stats;
            }
            assert!(Instant::now() < deadline, "not drained: {stats}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Every stored message by id, read through the API's pages; fails on an id listed twice.
    /// A page the (fault-injected) store could not read is a 503, and is asked for again.
    pub fn list_all(&self) -> HashMap<String, String> {
        let agent = agent();
        let mut stored = HashMap::new();
        let mut next: Option<String> = None;
        loop {
            let page_url = match &next {
                None => format!("{}/messages?limit=1000", self.url),
                Some(cursor) => format!("{}/messages?limit=1000&next={cursor}", self.url),
            };
            let page = get_json_retrying_503(&agent, &page_url);
            for m in page["messages"].as_array().unwrap() {
                let previous = stored.insert(
                    m["id"].as_str().unwrap().to_owned(),
                    m["content"].as_str().unwrap().to_owned(),
                );
                assert!(previous.is_none(), "listed twice: {m}");
            }
            match page["next"].as_str() {
                Some(cursor) => next = Some(cursor.to_owned()),
                None => return stored,
            }
        }
    }

    /// The bodies in the embedded dead-letter queue, with how often each was received.
    pub fn dead_letters(&self) -> Vec<(String, u64)> {
        let letters = get_json(&agent(), &format!("{}/_local/dead-letters", self.url));
        letters["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                (
                    l["body"].as_str().unwrap().to_owned(),
                    l["receive_count"].as_u64().unwrap(),
                )
            })
            .collect()
    }

    /// Sends a body straight to the embedded queue, past the API's validation.
    pub fn send_raw(&self, body: &str) {
        let status = agent()
            .post(format!("{}/_local/queue", self.url))
            .send(body)
            .unwrap()
            .status();
        assert_eq!(status, 202);
    }
}

/// A test that fails mid-way leaves no runner behind.
impl Drop for Runner {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_file(&self.tokens_file);
        if std::thread::panicking() {
            eprintln!("runner log, last lines:\n{}", tail(&self.log, 200));
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

/// The last `lines` lines of a log file.
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A random generator for kill times and the like, seeded from `PIPELINE_TEST_SEED` when set
/// (to replay a failure) and at random otherwise; the seed is printed, and cargo test shows
/// it when the test fails.
pub fn seeded_rng(test: &str) -> fastrand::Rng {
    let seed = std::env::var("PIPELINE_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("{test}: seed {seed} (replay with PIPELINE_TEST_SEED={seed})");
    fastrand::Rng::with_seed(seed)
}

/// The tokens of the runners these tests start: write, read, and admin (every scope).
pub const WRITE_TOKEN: &str = "integration-tests-write-token";
pub const READ_TOKEN: &str = "integration-tests-read-token";
pub const ADMIN_TOKEN: &str = "integration-tests-admin-token";

/// An HTTP client whose every request carries [`ADMIN_TOKEN`].
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .middleware(
            |mut request: ureq::http::Request<ureq::SendBody>,
             next: ureq::middleware::MiddlewareNext| {
                request.headers_mut().insert(
                    "Authorization",
                    ureq::http::HeaderValue::from_static("Bearer integration-tests-admin-token"),
                );
                next.handle(request)
            },
        )
        .build()
        .into()
}

/// An HTTP client that adds no token: what an anonymous caller, or one with a token of
/// its own, sends.
pub fn agent_without_token() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// What a POST got.
#[derive(Debug)]
pub enum Posted {
    /// 202, with the job id.
    Accepted(String),
    /// Any other status, with the body.
    Refused(u16, String),
    /// No answer: the runner is gone.
    NoAnswer,
}

pub fn post_message(agent: &ureq::Agent, url: &str, content: &str) -> Posted {
    let body = serde_json::json!({ "content": content }).to_string();
    let Ok(mut response) = agent
        .post(format!("{url}/messages"))
        .header("Content-Type", "application/json")
        .send(&body)
    else {
        return Posted::NoAnswer;
    };
    let status = response.status().as_u16();
    let Ok(text) = response.body_mut().read_to_string() else {
        return Posted::NoAnswer;
    };
    if status != 202 {
        return Posted::Refused(status, text);
    }
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    Posted::Accepted(json["job_id"].as_str().unwrap().to_owned())
}

/// Posts `content`; the job id if the runner answered 202.
pub fn post(agent: &ureq::Agent, url: &str, content: &str) -> Option<String> {
    match post_message(agent, url, content) {
        Posted::Accepted(job_id) => Some(job_id),
        _ => None,
    }
}

pub fn get_json(agent: &ureq::Agent, url: &str) -> serde_json::Value {
    let text = agent
        .get(url)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn get_json_retrying_503(agent: &ureq::Agent, url: &str) -> serde_json::Value {
    for _ in 0..50 {
        let mut response = agent.get(url).call().unwrap();
        let text = response.body_mut().read_to_string().unwrap();
        match response.status().as_u16() {
            200 => return serde_json::from_str(&text).unwrap(),
            503 => std::thread::sleep(Duration::from_millis(20)),
            other => panic!("GET {url}: {other} {text}"),
        }
    }
    panic!("GET {url}: still 503 after 50 tries")
}
