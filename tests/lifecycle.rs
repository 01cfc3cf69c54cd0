//! The data's lifecycle through the runner's HTTP API, on both backends: a well-formed id the
//! API never issued is a 404 on every route that takes an id while a real one is read; a
//! deleted message is gone from every read and the same job delivered again after the
//! delete is not stored; the job says `deleted`.

use serde_json::Value;

use crate::support::{agent, data_file, eventually, post, Runner, TestStack};

#[test]
fn deletion_and_forged_ids_on_the_embedded_backend() {
    let data = data_file();
    let runner = Runner::start_with(&data, POISON);
    scenario(&runner, &|body| runner.send_raw(body));
    runner.terminate();
    crate::support::remove_db(&data);
}

#[tokio::test]
async fn deletion_and_forged_ids_on_the_aws_backend() {
    let stack = TestStack::new().await;
    let target = stack.target();
    let send_raw = stack.raw_sender(tokio::runtime::Handle::current());
    tokio::task::spawn_blocking(move || {
        let runner = Runner::start_on_aws(&target, POISON);
        scenario(&runner, &send_raw);
        runner.terminate();
    })
    .await
    .unwrap();
    stack.teardown().await;
}

/// A store that refuses content with POISON for good: such a job is dead-lettered at once.
const POISON: &[&str] = &["--store-faults", "poison=POISON"];

fn records_consumed(runner: &Runner) -> u64 {
    runner.stats()["consumer"]["records"].as_u64().unwrap()
}

fn scenario(runner: &Runner, send_raw: &dyn Fn(&str)) {
    let agent = agent();
    let erased = post(&agent, &runner.url, "a person's data").unwrap();
    let kept = post(&agent, &runner.url, "someone else's").unwrap();
    for job in [&erased, &kept] {
        eventually("stored", || {
            (runner.call("GET", &format!("/jobs/{job}")).1["status"] == "stored").then_some(())
        });
    }

    // A well-formed UUIDv7 of now that this API did not issue: 404 before any read, on every
    // route that takes an id, while the real ones answer.
    let forged = uuid::Uuid::now_v7().to_string();
    for (method, path) in [
        ("GET", format!("/jobs/{forged}")),
        ("GET", format!("/messages/{forged}")),
        ("DELETE", format!("/messages/{forged}")),
        ("POST", format!("/dead-letters/{forged}/requeue")),
        ("DELETE", format!("/dead-letters/{forged}")),
    ] {
        let (status, body) = runner.call(method, &path);
        assert_eq!(status, 404, "{method} {path}: {body}");
        assert!(body["error"].is_string(), "{body}");
    }
    assert_eq!(runner.call("GET", &format!("/messages/{kept}")).0, 200);

    let (status, deleted) = runner.call("DELETE", &format!("/messages/{erased}"));
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["status"], "deleted");
    assert_eq!(deleted["already_deleted"], false);
    let gone = |runner: &Runner| {
        assert_eq!(runner.call("GET", &format!("/messages/{erased}")).0, 404);
        let listed = runner.list_all();
        assert!(!listed.contains_key(&erased), "listed after its delete");
        assert!(listed.contains_key(&kept));
        let (status, job) = runner.call("GET", &format!("/jobs/{erased}"));
        assert_eq!(
            (status, &job["status"]),
            (200, &Value::from("deleted")),
            "{job}"
        );
        assert_eq!(job["deleted_at"], deleted["deleted_at"]);
        assert!(job.get("message").is_none(), "{job}");
    };
    gone(runner);
    let (status, again) = runner.call("DELETE", &format!("/messages/{erased}"));
    assert_eq!(
        (status, &again["already_deleted"]),
        (200, &Value::from(true))
    );
    assert_eq!(again["deleted_at"], deleted["deleted_at"]);

    // The same job delivered again after the delete (a producer's duplicate, a requeue), then
    // a control sent after it that is stored: once both were consumed, the job is still gone.
    let consumed = records_consumed(runner);
    send_raw(
        &serde_json::json!({ "v": 1, "job_id": erased, "content": "a person's data" }).to_string(),
    );
    let control = uuid::Uuid::now_v7().to_string();
    send_raw(&serde_json::json!({ "v": 1, "job_id": control, "content": "control" }).to_string());
    eventually("both deliveries consumed and the control stored", || {
        (records_consumed(runner) >= consumed + 2 && runner.list_all().contains_key(&control))
            .then_some(())
    });
    gone(runner);

    // A dead-lettered job's delete takes its dead letter and its note (content preview) too.
    let dead = post(&agent, &runner.url, "a POISON with a person's data").unwrap();
    eventually("dead-lettered", || {
        (runner.call("GET", &format!("/jobs/{dead}")).1["status"] == "dead_lettered").then_some(())
    });
    let listed = |runner: &Runner| {
        let (status, page) = runner.call("GET", "/dead-letters");
        assert_eq!(status, 200, "{page}");
        page["dead_letters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["id"] == dead.as_str())
    };
    assert!(
        listed(runner),
        "the dead letter is listed before its delete"
    );
    assert_eq!(runner.call("DELETE", &format!("/messages/{dead}")).0, 200);
    assert!(
        !listed(runner),
        "the dead letter is listed after its delete"
    );
    assert_eq!(
        runner.call("GET", &format!("/jobs/{dead}")).1["status"],
        "deleted"
    );
}
