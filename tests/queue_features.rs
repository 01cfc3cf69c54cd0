//! Batch enqueue, idempotency keys, delays, attributes and the FIFO option, through the local
//! runner's HTTP API on both backends: embedded (SQLite) and AWS (SQS + DynamoDB on the
//! emulator, through the adapters the functions use).

use std::sync::{Arc, Barrier};
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{TestStack, TEST_QUEUE};
use crate::runner::{agent, data_file, eventually, Runner};
use message_pipeline::ports::QueueSettings;

/// Posts `body` to `path` with an optional idempotency key: status, headers' job location
/// and replay mark, and the JSON body.
fn post(runner: &Runner, path: &str, body: &Value, key: Option<&str>) -> Answer {
    let mut request = agent()
        .post(format!("{}{path}", runner.url))
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
struct Answer {
    status: u16,
    body: Value,
    replayed: bool,
    location: Option<String>,
}

fn get(runner: &Runner, path: &str) -> (u16, Value) {
    let mut response = agent().get(format!("{}{path}", runner.url)).call().unwrap();
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn job(runner: &Runner, id: &str) -> Value {
    let (status, body) = get(runner, &format!("/jobs/{id}"));
    assert_eq!(status, 200, "{body}");
    body
}

fn stored(runner: &Runner, id: &str) -> Value {
    eventually(&format!("job {id} stored"), || {
        let status = job(runner, id);
        (status["status"] == "stored").then_some(status)
    })
}

/// Clients that fire the same keyed request at once.
const CLIENTS: usize = 16;

/// Every feature on one runner; `tag` makes the contents unique to this run.
fn scenario(runner: &Runner, tag: &str) {
    // A batch: two good messages (one with attributes) and a bad one, answered in order.
    let batch = json!({ "messages": [
        { "content": format!("{tag} one"), "attributes": { "tenant": "acme", "trace.id": "t-1" } },
        { "content": "" },
        { "content": format!("{tag} two") },
    ]});
    let answer = post(runner, "/messages/batch", &batch, None);
    assert_eq!(answer.status, 207, "{answer:?}");
    let results = answer.body["results"].as_array().unwrap();
    assert!(results[1]["error"].as_str().unwrap().contains("empty"));
    let one = results[0]["job_id"].as_str().unwrap();
    let two = results[2]["job_id"].as_str().unwrap();
    let stored_one = stored(runner, one);
    stored(runner, two);
    assert_eq!(
        stored_one["message"]["attributes"],
        json!({ "tenant": "acme", "trace.id": "t-1" })
    );
    let (_, read) = get(runner, &format!("/messages/{two}"));
    assert_eq!(read["attributes"], json!({}));

    // A delayed message is scheduled, with the time it becomes visible, then stored.
    let delayed = json!({ "content": format!("{tag} later"), "delay_seconds": 2 });
    let answer = post(runner, "/messages", &delayed, None);
    assert_eq!(answer.status, 202, "{answer:?}");
    let later = answer.body["job_id"].as_str().unwrap().to_owned();
    let scheduled = job(runner, &later);
    assert_eq!(scheduled["status"], "scheduled", "{scheduled}");
    assert_eq!(scheduled["visible_at"], answer.body["visible_at"]);
    stored(runner, &later);
    let too_late = json!({ "content": "x", "delay_seconds": 901 });
    assert_eq!(post(runner, "/messages", &too_late, None).status, 400);

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
                    post(runner, "/messages", body, Some(key))
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
    let replay = post(runner, "/messages", &body, Some(&key));
    assert_eq!((replay.status, replay.replayed), (202, true));
    assert_eq!(replay.body["job_id"], job_id.as_str());
    assert_eq!(replay.location, Some(format!("/jobs/{job_id}")));
    stored(runner, &job_id);
    let copies = runner
        .list_all()
        .values()
        .filter(|stored| **stored == content)
        .count();
    eprintln!(
        "idempotency: {CLIENTS} clients, {} answered 202 (one job), {conflicts} answered 409, jobs created: {copies}",
        accepted.len()
    );
    assert_eq!(copies, 1);

    // The key with another body is refused, and queues nothing.
    let other = json!({ "content": format!("{tag} another") });
    let reused = post(runner, "/messages", &other, Some(&key));
    assert_eq!(reused.status, 422, "{reused:?}");
}

#[test]
fn queue_features_on_the_embedded_backend() {
    let data = data_file();
    let runner = Runner::start_with(&data, &["--visibility-timeout-secs", "2"]);
    scenario(&runner, "embedded");
    runner.terminate();
    let _ = std::fs::remove_file(&data);
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

/// FIFO end to end through the runner: a poison message in the middle of a group holds the
/// rest of its group back (nothing behind it is stored while it fails) and no other group;
/// once the fault is healed the group is stored in order.
fn fifo_scenario(runner: &Runner) {
    let batch = json!({ "messages": [
        { "content": "g-1", "group_id": "g" },
        { "content": "POISON g-2", "group_id": "g" },
        { "content": "g-3", "group_id": "g" },
        { "content": "h-1", "group_id": "h" },
    ]});
    let answer = post(runner, "/messages/batch", &batch, None);
    assert_eq!(answer.status, 202, "{answer:?}");
    let ids: Vec<String> = answer.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["job_id"].as_str().unwrap().to_owned())
        .collect();
    stored(runner, &ids[0]);
    stored(runner, &ids[3]);
    // Several failed deliveries of g-2 (1 s visibility timeout): g-3 waits behind it.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(job(runner, &ids[1])["status"], "queued");
    assert_eq!(job(runner, &ids[2])["status"], "queued");
    let delayed = json!({ "content": "x", "delay_seconds": 5 });
    let refused = post(runner, "/messages", &delayed, None);
    assert_eq!(refused.status, 400, "{refused:?}");

    let healed = agent()
        .delete(format!("{}/_local/faults", runner.url))
        .call()
        .unwrap();
    assert_eq!(healed.status(), 200);
    stored(runner, &ids[1]);
    stored(runner, &ids[2]);
}

/// Enough receives that the poison message is retried, not dead-lettered, during the test.
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
        "--store-faults",
        "poison=POISON",
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
    let _ = std::fs::remove_file(&data);
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
