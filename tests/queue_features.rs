//! Batch enqueue, idempotency keys, delays, attributes and the FIFO option, through the local
//! runner's HTTP API on both backends: embedded (SQLite) and AWS (SQS + DynamoDB on the
//! emulator, through the adapters the functions use). The same [`scenario`] runs on the
//! deployed stack (tests/stack/queue_features.rs).

use std::sync::{Arc, Barrier};
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{agent, data_file, eventually, Runner};
use crate::support::{TestStack, TEST_QUEUE};
use pipeline::ports::QueueSettings;

/// Where the scenario sends its requests: the local runner, or the deployed stack through
/// API Gateway (tests/stack/queue_features.rs), each with the tokens its routes need.
pub trait Api: Sync {
    /// `base` + path.
    fn url(&self, path: &str) -> String;
    /// The `Authorization` header for a call of `method`.
    fn authorization(&self, method: &str) -> String;
    /// How long a job may take to be stored (the deployed stack's Lambda path is slower).
    fn patience(&self) -> Duration {
        Duration::from_secs(60)
    }
}

impl Api for Runner {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    fn authorization(&self, _method: &str) -> String {
        format!("Bearer {}", crate::support::ADMIN_TOKEN)
    }
}

fn http() -> ureq::Agent {
    crate::support::http_agent(Duration::from_secs(30))
}

/// Posts `body` to `path` with an optional idempotency key: status, headers' job location
/// and replay mark, and the JSON body.
pub fn post(api: &dyn Api, path: &str, body: &Value, key: Option<&str>) -> Answer {
    let mut request = http()
        .post(api.url(path))
        .header("Authorization", api.authorization("POST"))
        .header("Content-Type", "application/json");
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    let mut response = request.send(body.to_string()).unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let (replayed, location) = (header("idempotent-replayed"), header("location"));
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    Answer {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        replayed: replayed.is_some(),
        location,
    }
}

#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub replayed: bool,
    pub location: Option<String>,
}

pub fn get(api: &dyn Api, path: &str) -> (u16, Value) {
    let mut response = http()
        .get(api.url(path))
        .header("Authorization", api.authorization("GET"))
        .call()
        .unwrap();
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

pub fn job(api: &dyn Api, id: &str) -> Value {
    let (status, body) = get(api, &format!("/jobs/{id}"));
    assert_eq!(status, 200, "{body}");
    body
}

/// The job's status once `done` says so, within the API's patience.
pub fn job_when(api: &dyn Api, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + api.patience();
    loop {
        let status = job(api, id);
        if done(&status) {
            return status;
        }
        assert!(std::time::Instant::now() < deadline, "job {id}: {status}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

pub fn stored(api: &dyn Api, id: &str) -> Value {
    job_when(api, id, |job| job["status"] == "stored")
}

/// How many stored messages hold `content`, over every page of the listing.
fn copies_of(api: &dyn Api, content: &str) -> usize {
    let mut copies = 0;
    let mut path = "/messages?limit=1000".to_owned();
    loop {
        let (status, page) = get(api, &path);
        assert_eq!(status, 200, "{page}");
        copies += page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["content"] == content)
            .count();
        match page["next"].as_str() {
            Some(next) => path = format!("/messages?limit=1000&next={next}"),
            None => return copies,
        }
    }
}

/// Clients that fire the same keyed request at once.
const CLIENTS: usize = 16;

/// Every feature but FIFO, the same on the runner's two backends and on the deployed stack;
/// `tag` makes the contents unique to this run.
pub fn scenario(api: &dyn Api, tag: &str) {
    // A batch: two good messages (one with attributes) and a bad one, answered in order.
    let batch = json!({ "messages": [
        { "content": format!("{tag} one"), "attributes": { "tenant": "acme", "trace.id": "t-1" } },
        { "content": "" },
        { "content": format!("{tag} two") },
    ]});
    let answer = post(api, "/messages/batch", &batch, None);
    assert_eq!(answer.status, 207, "{answer:?}");
    let results = answer.body["results"].as_array().unwrap();
    assert!(results[1]["error"].as_str().unwrap().contains("empty"));
    let one = results[0]["job_id"].as_str().unwrap();
    let two = results[2]["job_id"].as_str().unwrap();
    let stored_one = stored(api, one);
    stored(api, two);
    assert_eq!(
        stored_one["message"]["attributes"],
        json!({ "tenant": "acme", "trace.id": "t-1" })
    );
    let (_, read) = get(api, &format!("/messages/{two}"));
    assert_eq!(read["attributes"], json!({}));

    // A delayed message is scheduled, with the time it becomes visible, then stored.
    let delayed = json!({ "content": format!("{tag} later"), "delay_seconds": 2 });
    let answer = post(api, "/messages", &delayed, None);
    assert_eq!(answer.status, 202, "{answer:?}");
    let later = answer.body["job_id"].as_str().unwrap().to_owned();
    let scheduled = job(api, &later);
    assert_eq!(scheduled["status"], "scheduled", "{scheduled}");
    assert_eq!(scheduled["visible_at"], answer.body["visible_at"]);
    stored(api, &later);
    let too_late = json!({ "content": "x", "delay_seconds": 901 });
    assert_eq!(post(api, "/messages", &too_late, None).status, 400);

    // The same key from many clients at once: one job, every 202 naming it.
    let content = format!("{tag} exactly once");
    let body = json!({ "content": content });
    let key = format!("\"{tag}-key\"");
    let start = Arc::new(Barrier::new(CLIENTS));
    let answers: Vec<Answer> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let (start, body, key) = (start.clone(), &body, &key);
                scope.spawn(move || {
                    start.wait();
                    post(api, "/messages", body, Some(key))
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let accepted: Vec<&Answer> = answers.iter().filter(|a| a.status == 202).collect();
    let conflicts = answers.iter().filter(|a| a.status == 409).count();
    assert_eq!(accepted.len() + conflicts, CLIENTS, "{answers:?}");
    assert!(!accepted.is_empty());
    let job_id = accepted[0].body["job_id"].as_str().unwrap().to_owned();
    assert!(accepted.iter().all(|a| a.body["job_id"] == job_id.as_str()));
    let replay = post(api, "/messages", &body, Some(&key));
    assert_eq!((replay.status, replay.replayed), (202, true));
    assert_eq!(replay.body["job_id"], job_id.as_str());
    assert_eq!(replay.location, Some(format!("/jobs/{job_id}")));
    stored(api, &job_id);
    let copies = copies_of(api, &content);
    eprintln!(
        "idempotency ({tag}): {CLIENTS} clients, {} answered 202 (one job), {conflicts} answered 409, jobs created: {copies}",
        accepted.len()
    );
    assert_eq!(copies, 1);

    // The key with another body is refused, and queues nothing.
    let other = json!({ "content": format!("{tag} another") });
    let reused = post(api, "/messages", &other, Some(&key));
    assert_eq!(reused.status, 422, "{reused:?}");
}

#[test]
fn queue_features_on_the_embedded_backend() {
    let data = data_file();
    let runner = Runner::start_with(&data, &["--visibility-timeout-secs", "2"]);
    scenario(&runner, "embedded");
    runner.terminate();
    crate::support::remove_db(&data);
}

#[tokio::test]
async fn queue_features_on_the_aws_backend() {
    let stack = TestStack::new().await;
    let target = stack.target();
    tokio::task::spawn_blocking(move || {
        let runner = Runner::start_on_aws(&target, &[]);
        scenario(&runner, "aws");
        runner.terminate();
    })
    .await
    .unwrap();
    stack.teardown().await;
}

/// FIFO end to end through the runner: a message whose write keeps failing transiently in the
/// middle of a group holds the rest of its group back (nothing behind it is stored while it
/// is retried) and no other group; once the fault is healed the group is stored in order.
fn fifo_scenario(runner: &Runner) {
    let api: &dyn Api = runner;
    let batch = json!({ "messages": [
        { "content": "g-1", "group_id": "g" },
        { "content": "POISON g-2", "group_id": "g" },
        { "content": "g-3", "group_id": "g" },
        { "content": "h-1", "group_id": "h" },
    ]});
    let answer = post(api, "/messages/batch", &batch, None);
    assert_eq!(answer.status, 202, "{answer:?}");
    let ids: Vec<String> = answer.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["job_id"].as_str().unwrap().to_owned())
        .collect();
    stored(api, &ids[0]);
    stored(api, &ids[3]);
    // Three failed deliveries of g-2, seen as the store's refusals: g-3 had as many chances to
    // be delivered out of order, and waits behind it.
    eventually("three refused deliveries of g-2", || {
        let refused = runner.stats()["faults"]["store"]["flaky"].as_u64();
        refused.filter(|&n| n >= 3)
    });
    assert_eq!(job(api, &ids[1])["status"], "queued");
    assert_eq!(job(api, &ids[2])["status"], "queued");
    let delayed = json!({ "content": "x", "delay_seconds": 5 });
    let refused = post(api, "/messages", &delayed, None);
    assert_eq!(refused.status, 400, "{refused:?}");

    let healed = agent()
        .delete(format!("{}/_local/faults", runner.url))
        .call()
        .unwrap();
    assert_eq!(healed.status(), 200);
    stored(api, &ids[1]);
    stored(api, &ids[2]);
}

/// Enough receives that the failing message is retried, not dead-lettered, during the test.
const FIFO_SETTINGS: QueueSettings = QueueSettings {
    visibility_timeout: TEST_QUEUE.visibility_timeout,
    max_receive_count: 100,
};

fn fifo_args() -> Vec<&'static str> {
    vec![
        "--visibility-timeout-secs",
        "1",
        "--max-receive-count",
        "100",
        "--retry-base-secs",
        "1",
        "--retry-max-secs",
        "2",
        // Transient: a message that can never be stored would leave its group at once.
        "--store-faults",
        "flaky=POISON",
    ]
}

#[test]
fn a_fifo_group_waits_behind_its_failing_message_on_the_embedded_backend() {
    let data = data_file();
    let mut args = fifo_args();
    args.push("--fifo");
    let runner = Runner::start_with(&data, &args);
    fifo_scenario(&runner);
    runner.terminate();
    crate::support::remove_db(&data);
}

#[tokio::test]
async fn a_fifo_group_waits_behind_its_failing_message_on_the_aws_backend() {
    let stack = TestStack::fifo(FIFO_SETTINGS).await;
    let target = stack.target();
    tokio::task::spawn_blocking(move || {
        let runner = Runner::start_on_aws(&target, &fifo_args());
        fifo_scenario(&runner);
        runner.terminate();
    })
    .await
    .unwrap();
    stack.teardown().await;
}
