//! The operations routes, the same scenario on both backends of the local runner: embedded
//! (SQLite) and AWS (SQS + DynamoDB on the emulator, through the same adapters the operate
//! and list functions use). A poison message (the store refuses its content until the
//! faults are healed, as a fixed bug would let it through) fails every delivery and is
//! dead-lettered; it is seen, requeued under its own job id and stored.

use serde_json::Value;

use crate::support::{agent, data_file, eventually, get_json, post, Runner};
use crate::support::{TestStack, TEST_QUEUE};

/// The runner settings both backends share: the test queue's redrive (two receives, 1 s
/// visibility) and a poison marker the store refuses.
fn args() -> Vec<String> {
    [
        "--visibility-timeout-secs",
        &TEST_QUEUE.visibility_timeout.as_secs().to_string(),
        "--max-receive-count",
        &TEST_QUEUE.max_receive_count.to_string(),
        "--store-faults",
        "poison=POISON",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

#[test]
fn the_operations_routes_on_the_embedded_backend() {
    let data = data_file();
    let args = args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let runner = Runner::start_with(&data, &args);
    scenario(&runner, &|body| {
        let response = agent()
            .post(format!("{}/_local/queue", runner.url))
            .send(body)
            .unwrap();
        assert_eq!(response.status(), 202);
    });
    runner.terminate();
    crate::support::remove_db(&data);
}

#[tokio::test]
async fn the_operations_routes_on_the_aws_backend() {
    let stack = TestStack::new().await;
    let target = stack.target();
    let send_raw = stack.raw_sender(tokio::runtime::Handle::current());
    tokio::task::spawn_blocking(move || {
        let args = args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let runner = Runner::start_on_aws(&target, &args);
        scenario(&runner, &send_raw);
        runner.terminate();
    })
    .await
    .unwrap();
    stack.teardown().await;
}

fn status_of(runner: &Runner, job: &str) -> Value {
    let (status, body) = runner.call("GET", &format!("/jobs/{job}"));
    assert_eq!(status, 200, "{body}");
    body
}

fn dead_letter_count(runner: &Runner) -> u64 {
    let (status, stats) = runner.call("GET", "/stats");
    assert_eq!(status, 200, "{stats}");
    stats["dead_letter_queue"]["count"].as_u64().unwrap()
}

fn scenario(runner: &Runner, send_raw: &dyn Fn(&str)) {
    let agent = agent();

    // A good job: the 202 points at its status, which ends `stored` with the message.
    let response = agent
        .post(format!("{}/messages", runner.url))
        .header("Content-Type", "application/json")
        .send(r#"{"content": "fine"}"#)
        .unwrap();
    assert_eq!(response.status(), 202);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(response.headers()["retry-after"], "1");
    let good = location.strip_prefix("/jobs/").unwrap().to_owned();
    let stored = eventually("the good job stored", || {
        let job = status_of(runner, &good);
        (job["status"] == "stored").then_some(job)
    });
    assert_eq!(stored["message"]["content"], "fine");
    assert_eq!(stored["job_id"], good.as_str());

    // Ids it never issued, or too old for the queue to hold, are 404s that say so.
    let (status, body) = runner.call("GET", "/jobs/not-a-job");
    assert_eq!(status, 404, "{body}");
    assert!(body["error"].as_str().unwrap().contains("no job"), "{body}");
    let ancient = "01890a5d-ac96-774b-bcce-b302099a8057"; // a UUIDv7 of 2023
    assert_eq!(runner.call("GET", &format!("/jobs/{ancient}")).0, 404);

    // Three poison jobs fail every delivery and are dead-lettered, with why.
    let first = post(&agent, &runner.url, "POISON one").unwrap();
    let second = post(&agent, &runner.url, "POISON two <script>alert(1)</script>").unwrap();
    let third = post(&agent, &runner.url, "POISON three").unwrap();
    for job in [&first, &second, &third] {
        let dead = eventually("a poison job dead-lettered", || {
            let body = status_of(runner, job);
            (body["status"] == "dead_lettered").then_some(body)
        });
        let letter = &dead["dead_letter"];
        // Refused for good: dead-lettered at its first failure, not after every receive.
        assert_eq!(letter["receive_count"], 1);
        assert!(
            letter["last_error"].as_str().unwrap().contains("poison"),
            "{dead}"
        );
        assert!(
            letter["first_failure_at"].as_str().unwrap()
                <= letter["last_failure_at"].as_str().unwrap()
        );
    }
    eventually("all three in the dead-letter queue", || {
        (dead_letter_count(runner) == 3).then_some(())
    });
    // One is deleted for good; a second delete finds nothing.
    let (status, body) = runner.call("DELETE", &format!("/dead-letters/{third}"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["deleted"], true);
    assert_eq!(dead_letter_count(runner), 2);
    assert_eq!(
        runner.call("DELETE", &format!("/dead-letters/{third}")).0,
        404
    );
    let (status, page) = runner.call("GET", "/dead-letters");
    assert_eq!(status, 200, "{page}");
    let listed: Vec<&str> = page["dead_letters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["job_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [second.as_str(), first.as_str()], "newest first");
    assert_eq!(page["dead_letters"][1]["preview"], "POISON one");
    let (_, one) = runner.call("GET", "/dead-letters?limit=1");
    assert_eq!(one["dead_letters"].as_array().unwrap().len(), 1);
    let (_, rest) = runner.call(
        "GET",
        &format!(
            "/dead-letters?limit=1&before={}",
            one["next"].as_str().unwrap()
        ),
    );
    assert_eq!(rest["dead_letters"][0]["job_id"], first.as_str());

    // Refusals change nothing: a purge without its confirmation, a job not dead-lettered.
    let (status, body) = runner.call("DELETE", "/dead-letters");
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("confirm=purge"));
    assert_eq!(
        runner
            .call("POST", &format!("/dead-letters/{good}/requeue"))
            .0,
        404
    );
    assert_eq!(runner.call("GET", "/dead-letters/requeue-all").0, 405);
    assert_eq!(dead_letter_count(runner), 2);

    // The bug is fixed: one requeued by id, then the rest; each is stored under its id.
    assert_eq!(runner.call("DELETE", "/_local/faults").0, 200);
    let (status, body) = runner.call("POST", &format!("/dead-letters/{first}/requeue"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], first.as_str());
    eventually("the requeued job stored", || {
        (status_of(runner, &first)["status"] == "stored").then_some(())
    });
    let mut moved = 0;
    for _ in 0..10 {
        let (status, outcome) = runner.call("POST", "/dead-letters/requeue-all");
        assert_eq!(status, 200, "{outcome}");
        moved += outcome["moved"].as_u64().unwrap();
        if outcome["done"] == true {
            break;
        }
    }
    assert_eq!(moved, 1);
    let second_stored = eventually("the second job stored", || {
        let job = status_of(runner, &second);
        (job["status"] == "stored").then_some(job)
    });
    assert_eq!(
        second_stored["message"]["content"],
        "POISON two <script>alert(1)</script>"
    );
    assert_eq!(dead_letter_count(runner), 0);
    let (_, page) = runner.call("GET", "/dead-letters");
    assert_eq!(page["dead_letters"], serde_json::json!([]));
    // Each job is stored once: requeueing made no second job.
    let listed = get_json(&agent, &format!("{}/messages", runner.url));
    assert_eq!(listed["messages"].as_array().unwrap().len(), 3, "{listed}");

    // A body that is no envelope at all is dead-lettered and listed; purge empties the queue.
    send_raw("not an envelope");
    eventually("the raw body dead-lettered", || {
        (dead_letter_count(runner) == 1).then_some(())
    });
    let (_, page) = runner.call("GET", "/dead-letters");
    assert_eq!(page["dead_letters"][0]["kind"], "raw", "{page}");
    let (status, body) = runner.call("DELETE", "/dead-letters?confirm=purge");
    assert_eq!(status, 200, "{body}");
    eventually("the purge seen in the counts", || {
        (dead_letter_count(runner) == 0).then_some(())
    });
    let (_, stats) = runner.call("GET", "/stats");
    assert_eq!(stats["queue"]["visible"], 0, "{stats}");
}
