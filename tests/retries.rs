//! Retries by failure class, on both backends of the runner: a store outage longer than
//! `visibility × maxReceiveCount` dead-letters nothing (transient failures back off); a
//! message the store refuses for good, and a body that is not an envelope at all, reach the
//! dead-letter queue within seconds of being sent, however long the visibility timeout, and
//! are listed there.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{agent, data_file, get_json, post, Runner, TestStack};
use message_pipeline::provision::QueueSettings;

/// Waits for `check` up to `limit` after `since`; fails saying what did not happen in time.
fn within<T>(
    limit: Duration,
    since: Instant,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            since.elapsed() < limit,
            "{what} did not happen within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn dead_letter_count(runner: &Runner) -> u64 {
    let (status, stats) = runner.call("GET", "/stats");
    assert_eq!(status, 200, "{stats}");
    stats["dead_letter_queue"]["count"].as_u64().unwrap()
}

fn dead_letters(runner: &Runner) -> Vec<Value> {
    let (status, page) = runner.call("GET", "/dead-letters?limit=100");
    assert_eq!(status, 200, "{page}");
    page["dead_letters"].as_array().unwrap().clone()
}

// ---- A total outage of the store, longer than today's visibility × maxReceiveCount ----

/// Visibility 1 s and 8 receives: without backoff every message is dead-lettered after about
/// 8 s of outage. With a 1 s base, the waits after the first 6 deliveries add up to at least
/// 32 s (1 + 1 + 2 + 4 + 8 + 16), so the 7th of the 8 meets a healed store after a 30 s outage.
const OUTAGE: Duration = Duration::from_secs(30);
const OUTAGE_QUEUE: QueueSettings = QueueSettings {
    visibility_timeout: Duration::from_secs(1),
    max_receive_count: 8,
};

/// A store that fails every write, on a queue of 1 s visibility and 8 receives, retried from
/// a 1 s base.
pub(crate) fn outage_args() -> Vec<&'static str> {
    vec![
        "--store-faults",
        "error=1",
        "--visibility-timeout-secs",
        "1",
        "--max-receive-count",
        "8",
        "--retry-base-secs",
        "1",
    ]
}

fn an_outage_is_ridden_out(runner: &Runner) {
    let agent = agent();
    let started = Instant::now();
    let jobs: Vec<String> = (0..20)
        .map(|i| post(&agent, &runner.url, &format!("during the outage {i}")).unwrap())
        .collect();
    // The outage lasts well past visibility × maxReceiveCount (8 s)...
    std::thread::sleep(OUTAGE.saturating_sub(started.elapsed()));
    let tally = runner.stats()["faults"]["store"].clone();
    assert!(
        tally["errors"].as_u64().unwrap() > 0,
        "the store failed: {tally}"
    );
    assert_eq!(
        dead_letter_count(runner),
        0,
        "nothing dead-lettered during it"
    );
    // ...then the store heals.
    assert_eq!(runner.call("DELETE", "/_local/faults").0, 200);
    crate::support::eventually("every message stored after the outage", || {
        let stored = runner.list_all();
        (stored.len() == jobs.len()).then_some(stored)
    });
    for job in &jobs {
        let (status, body) = runner.call("GET", &format!("/jobs/{job}"));
        assert_eq!(
            (status, &body["status"]),
            (200, &Value::from("stored")),
            "{body}"
        );
    }
    assert_eq!(dead_letter_count(runner), 0);
}

#[test]
fn a_store_outage_longer_than_visibility_times_receives_dead_letters_nothing_embedded() {
    let data = data_file();
    let runner = Runner::start_with(&data, &outage_args());
    an_outage_is_ridden_out(&runner);
    runner.terminate();
}

#[tokio::test]
async fn a_store_outage_longer_than_visibility_times_receives_dead_letters_nothing_on_aws() {
    let stack = TestStack::with_settings(OUTAGE_QUEUE).await;
    let target = stack.target();
    tokio::task::spawn_blocking(move || {
        let runner = Runner::start_on_aws(&target, &outage_args());
        an_outage_is_ridden_out(&runner);
        runner.terminate();
    })
    .await
    .unwrap();
    stack.teardown().await;
}

// ---- Poison and raw bodies: in the dead-letter queue in seconds ----

/// A visibility timeout of 30 s: a record that waited for it would take minutes to be
/// dead-lettered.
const SLOW_QUEUE: QueueSettings = QueueSettings {
    visibility_timeout: Duration::from_secs(30),
    max_receive_count: 5,
};

fn poison_args() -> Vec<&'static str> {
    vec![
        "--store-faults",
        "poison=BAD",
        "--visibility-timeout-secs",
        "30",
        "--max-receive-count",
        "5",
    ]
}

fn poison_is_dead_lettered_in_seconds(runner: &Runner, send_raw: &dyn Fn(&str)) {
    let agent = agent();
    let accepted = Instant::now();
    let job = post(&agent, &runner.url, "this is BAD").unwrap();
    let dead = within(
        Duration::from_secs(10),
        accepted,
        "the poison job dead-lettered",
        || {
            let (status, body) = runner.call("GET", &format!("/jobs/{job}"));
            assert_eq!(status, 200, "{body}");
            (body["status"] == "dead_lettered").then_some(body)
        },
    );
    let letter = &dead["dead_letter"];
    assert_eq!(letter["receive_count"], 1, "{dead}");
    let error = letter["last_error"].as_str().unwrap();
    assert!(error.starts_with("permanent"), "{error}");
    assert!(error.contains("poison"), "{error}");

    // A body sent straight to the queue that is not an envelope of ours.
    let sent = Instant::now();
    send_raw("hello raw");
    let raw = within(Duration::from_secs(15), sent, "the raw body listed", || {
        dead_letters(runner)
            .into_iter()
            .find(|l| l["kind"] == "raw")
    });
    assert_eq!(raw["preview"], "hello raw");
    assert!(raw.get("job_id").is_none(), "{raw}");
    assert!(
        raw["last_error"].as_str().unwrap().starts_with("permanent"),
        "{raw}"
    );
    let listed = dead_letters(runner);
    assert_eq!(listed.len(), 2, "{listed:?}");
    crate::support::eventually("the count agrees with the listing", || {
        (dead_letter_count(runner) == 2).then_some(())
    });

    // Requeueing it is refused with a reason; requeue-all leaves it and says so.
    let raw_id = raw["id"].as_str().unwrap();
    let (status, body) = runner.call("POST", &format!("/dead-letters/{raw_id}/requeue"));
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("would only fail again"),
        "{body}"
    );
    assert_eq!(runner.call("DELETE", "/_local/faults").0, 200);
    let mut left = 0;
    for _ in 0..10 {
        let (status, outcome) = runner.call("POST", "/dead-letters/requeue-all");
        assert_eq!(status, 200, "{outcome}");
        left = outcome["left"].as_u64().unwrap();
        if outcome["done"] == true {
            break;
        }
    }
    assert_eq!(left, 1);
    crate::support::eventually("the poison job, healed, stored", || {
        let (_, body) = runner.call("GET", &format!("/jobs/{job}"));
        (body["status"] == "stored").then_some(())
    });
    let listed = dead_letters(runner);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], raw_id);

    // It can be deleted, and then it is gone from both the listing and the count.
    let (status, body) = runner.call("DELETE", &format!("/dead-letters/{raw_id}"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], raw_id);
    assert!(dead_letters(runner).is_empty());
    crate::support::eventually("the count at zero", || {
        (dead_letter_count(runner) == 0).then_some(())
    });
    let stats = get_json(&agent, &format!("{}/stats", runner.url));
    assert_eq!(stats["queue"]["visible"], 0, "{stats}");
}

#[test]
fn poison_and_raw_bodies_reach_the_dead_letter_queue_in_seconds_embedded() {
    let data = data_file();
    let runner = Runner::start_with(&data, &poison_args());
    poison_is_dead_lettered_in_seconds(&runner, &|body| runner.send_raw(body));
    runner.terminate();
}

#[tokio::test]
async fn poison_and_raw_bodies_reach_the_dead_letter_queue_in_seconds_on_aws() {
    let stack = TestStack::with_settings(SLOW_QUEUE).await;
    let target = stack.target();
    let send_raw = stack.raw_sender(tokio::runtime::Handle::current());
    tokio::task::spawn_blocking(move || {
        let runner = Runner::start_on_aws(&target, &poison_args());
        poison_is_dead_lettered_in_seconds(&runner, &send_raw);
        runner.terminate();
    })
    .await
    .unwrap();
    stack.teardown().await;
}
