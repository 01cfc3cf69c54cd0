//! The local runner as a user runs it: a process on a free port, driven over HTTP, killed.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::contract::remove_db;

struct Runner {
    child: Child,
    url: String,
}

impl Runner {
    /// Starts `cargo run`'s binary on the embedded backend.
    fn start(data: &Path) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_message-pipeline"));
        command
            .args(["--backend", "embedded", "--visibility-timeout-secs", "2"])
            .arg("--data")
            .arg(data);
        Self::spawn(command)
    }

    /// Starts the runner on the AWS adapters, against the given queue and table.
    fn start_on_aws(queue_url: &str, table: &str) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_message-pipeline"));
        command
            .args(["--backend", "aws"])
            .env("QUEUE_URL", queue_url)
            .env("TABLE_NAME", table);
        Self::spawn(command)
    }

    /// Spawns on a free port and waits until the runner says where it listens.
    fn spawn(mut command: Command) -> Self {
        let mut child = command
            .args(["--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the runner");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let url = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|line| line.trim().strip_prefix("listening on ").map(str::to_owned))
            .expect("the runner printed no address");
        // Keep draining stdout so the runner never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Self { child, url }
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        self.child.wait().unwrap()
    }
}

fn agent() -> ureq::Agent {
    crate::helpers::http_agent(Duration::from_secs(10))
}

/// Posts `content`; the job id if the runner answered 202, `None` if it did not (or died).
fn post(agent: &ureq::Agent, url: &str, content: &str) -> Option<String> {
    let body = serde_json::json!({ "content": content }).to_string();
    let mut response = agent
        .post(format!("{url}/messages"))
        .header("Content-Type", "application/json")
        .send(&body)
        .ok()?;
    if response.status() != 202 {
        return None;
    }
    let text = response.body_mut().read_to_string().ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["job_id"].as_str().map(str::to_owned)
}

fn get_json(agent: &ureq::Agent, url: &str) -> serde_json::Value {
    let text = agent
        .get(url)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Waits until nothing is queued or in flight, then lists every stored message by id.
fn drained_and_listed(runner: &Runner) -> HashMap<String, String> {
    let agent = agent();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stats = get_json(&agent, &format!("{}/_local/stats", runner.url));
        if stats["queued"] == 0 && stats["in_flight"] == 0 {
            assert_eq!(stats["dead_lettered"], 0, "{stats}");
            break;
        }
        assert!(Instant::now() < deadline, "not drained: {stats}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut stored = HashMap::new();
    let mut next: Option<String> = None;
    loop {
        let page_url = match &next {
            None => format!("{}/messages?limit=1000", runner.url),
            Some(cursor) => format!("{}/messages?limit=1000&next={cursor}", runner.url),
        };
        let page = get_json(&agent, &page_url);
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

fn data_file() -> PathBuf {
    std::env::temp_dir().join(format!("mp-runner-{}.db", uuid::Uuid::new_v4().simple()))
}

/// Posts from `clients` threads until `stop`; returns what was acknowledged (job id, content).
fn post_until(
    url: &str,
    clients: usize,
    stop: Arc<AtomicBool>,
    tag: &str,
) -> Vec<std::thread::JoinHandle<Vec<(String, String)>>> {
    (0..clients)
        .map(|client| {
            let (url, stop, tag) = (url.to_owned(), stop.clone(), tag.to_owned());
            std::thread::spawn(move || {
                let agent = agent();
                let mut acked = Vec::new();
                for i in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let content = format!("{tag} client {client} message {i}");
                    match post(&agent, &url, &content) {
                        Some(job_id) => acked.push((job_id, content)),
                        None => break,
                    }
                }
                acked
            })
        })
        .collect()
}

#[test]
fn every_acknowledged_message_is_stored_exactly_once_across_sigkills() {
    let data = data_file();
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let mut rng_state = std::process::id() as u64;
    for round in 0..3 {
        let runner = Runner::start(&data);
        let stop = Arc::new(AtomicBool::new(false));
        let clients = post_until(&runner.url, 4, stop.clone(), &format!("round {round}"));
        // Kill at a different point each round, while clients are posting and the worker
        // is storing.
        rng_state = rng_state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_millis(300 + (rng_state >> 33) % 700));
        runner.kill();
        stop.store(true, Ordering::Relaxed);
        for client in clients {
            acked.lock().unwrap().extend(client.join().unwrap());
        }
    }

    let runner = Runner::start(&data);
    let stored = drained_and_listed(&runner);
    runner.kill();
    remove_db(&data);

    let acked = acked.lock().unwrap();
    assert!(
        acked.len() > 100,
        "too little load to mean anything: {}",
        acked.len()
    );
    for (job_id, content) in acked.iter() {
        assert_eq!(
            stored.get(job_id),
            Some(content),
            "acknowledged job {job_id} lost or changed"
        );
    }
    // A message whose 202 was lost to the kill may be stored too; nothing else may.
    assert!(
        stored.len() <= acked.len() + 4 * 3,
        "stored {} for {} acknowledged",
        stored.len(),
        acked.len()
    );
}

#[test]
fn sigterm_finishes_in_flight_work_and_exits_cleanly() {
    let data = data_file();
    let runner = Runner::start(&data);
    let stop = Arc::new(AtomicBool::new(false));
    let clients = post_until(&runner.url, 2, stop.clone(), "graceful");
    std::thread::sleep(Duration::from_millis(500));

    let status = runner.terminate();
    stop.store(true, Ordering::Relaxed);
    let acked: Vec<(String, String)> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();

    assert!(status.success(), "{status}");
    let runner = Runner::start(&data);
    let stored = drained_and_listed(&runner);
    runner.kill();
    remove_db(&data);
    assert!(!acked.is_empty());
    for (job_id, content) in &acked {
        assert_eq!(stored.get(job_id), Some(content));
    }
}

#[test]
fn the_runner_serves_the_same_errors_as_the_functions() {
    let data = data_file();
    let runner = Runner::start(&data);
    let agent = agent();

    let cases = [
        ("POST", "/messages", "application/json", "{}", 400),
        ("POST", "/messages", "text/plain", r#"{"content":"x"}"#, 415),
        (
            "POST",
            "/add_message",
            "application/json",
            r#"{"content":"tutorial"}"#,
            202,
        ),
        ("DELETE", "/messages", "application/json", "", 405),
        ("GET", "/nowhere", "application/json", "", 404),
        ("GET", "/messages?limit=0", "application/json", "", 400),
        ("GET", "/messages/not-an-id", "application/json", "", 404),
    ];
    let mut statuses = Vec::new();
    for (method, path, content_type, body, _) in cases {
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", runner.url))
            .header("Content-Type", content_type)
            .body(body.to_owned())
            .unwrap();
        let mut response = agent.run(request).unwrap();
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(
            status == 202 || json["error"].is_string(),
            "{method} {path}: {text}"
        );
        statuses.push(status);
    }
    let huge = format!(r#"{{"content": "{}"}}"#, "x".repeat(200_000));
    let too_large = agent
        .post(format!("{}/messages", runner.url))
        .header("Content-Type", "application/json")
        .send(&huge)
        .map(|r| r.status().as_u16());
    runner.kill();
    remove_db(&data);

    let expected: Vec<u16> = cases.iter().map(|c| c.4).collect();
    assert_eq!(statuses, expected);
    assert_eq!(too_large.unwrap(), 413);
}

#[tokio::test]
async fn with_the_aws_backend_the_runner_moves_messages_through_sqs_and_dynamodb() {
    let stack = crate::helpers::TestStack::new().await;
    let (queue_url, table) = (stack.queues.queue_url.clone(), stack.table.clone());

    let (acked, listed) = tokio::task::spawn_blocking(move || {
        let runner = Runner::start_on_aws(&queue_url, &table);
        let agent = agent();
        let acked: Vec<String> = (0..5)
            .filter_map(|i| post(&agent, &runner.url, &format!("aws {i}")))
            .collect();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut listed = Vec::new();
        while listed.len() < acked.len() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
            let page = get_json(&agent, &format!("{}/messages", runner.url));
            listed = page["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["id"].as_str().unwrap().to_owned())
                .collect();
        }
        runner.terminate();
        (acked, listed)
    })
    .await
    .unwrap();

    assert_eq!(acked.len(), 5);
    let newest_first: Vec<String> = acked.into_iter().rev().collect();
    assert_eq!(listed, newest_first);
    assert_eq!(stack.queued().await, 0);
    stack.teardown().await;
}
