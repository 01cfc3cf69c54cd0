//! The flow history (`GET /stats/history`) of the local runner: what it counts a minute is
//! what happened, read back through the API.

use std::time::Duration;

use crate::support::{agent, data_file, eventually, post, remove_db, Runner};

#[test]
fn the_runner_counts_each_minute_s_flow_by_outcome_with_latencies() {
    let data = data_file();
    let runner = Runner::start_with(
        &data,
        &[
            "--visibility-timeout-secs",
            "2",
            "--store-faults",
            "poison=POISON",
        ],
    );
    let agent = agent();
    for i in 0..5 {
        post(&agent, &runner.url, &format!("message {i}")).unwrap();
    }
    let poison = post(&agent, &runner.url, "a POISON message").unwrap();
    eventually("the poison job dead-lettered", || {
        (runner.call("GET", &format!("/jobs/{poison}")).1["status"] == "dead_lettered")
            .then_some(())
    });
    runner.wait_drained(Duration::from_secs(20));

    // Five minutes: the posts and their batches may straddle a minute's end.
    let (status, history) = runner.call("GET", "/stats/history?minutes=5");
    let (default_status, default) = runner.call("GET", "/stats/history");
    let refusals: Vec<(u16, String)> = ["0", "1441", "ten"]
        .iter()
        .map(|bad| runner.call("GET", &format!("/stats/history?minutes={bad}")))
        .map(|(status, body)| {
            (
                status,
                body["error"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    runner.kill();
    remove_db(&data);

    assert_eq!(status, 200, "{history}");
    assert_eq!(default_status, 200, "{default}");
    assert_eq!(default["minutes"].as_array().unwrap().len(), 60);
    let minutes = history["minutes"].as_array().unwrap();
    assert_eq!(minutes.len(), 5);
    let sum = |field: &dyn Fn(&serde_json::Value) -> &serde_json::Value| -> u64 {
        minutes.iter().map(|m| field(m).as_u64().unwrap()).sum()
    };
    assert_eq!(sum(&|m| &m["enqueued"]), 6, "{history}");
    assert_eq!(sum(&|m| &m["stored"]), 5, "{history}");
    assert_eq!(sum(&|m| &m["failed"]["permanent"]), 1, "{history}");
    assert_eq!(sum(&|m| &m["failed"]["transient"]), 0, "{history}");
    assert_eq!(sum(&|m| &m["dead_lettered"]), 1, "{history}");
    // Each minute that stored something says how long it took, p50 at most p99.
    for minute in minutes.iter().filter(|m| m["stored"].as_u64() > Some(0)) {
        let (p50, p99) = (&minute["latency_ms"]["p50"], &minute["latency_ms"]["p99"]);
        assert!(p50.as_u64().unwrap() <= p99.as_u64().unwrap(), "{minute}");
    }
    // The backlog is sampled from the start: the current minute has one.
    assert!(minutes[4]["backlog"].is_u64(), "{history}");
    assert!(minutes[0]["start"].as_str().unwrap() < minutes[4]["start"].as_str().unwrap());
    for (status, error) in refusals {
        assert_eq!(status, 400);
        assert!(error.contains("from 1 to 1440"), "{error}");
    }
}

#[test]
fn a_job_s_status_tells_every_failed_delivery_through_an_outage_and_its_end() {
    let data = data_file();
    // Every store call fails (an outage) until the faults are healed; a second apart.
    let runner = Runner::start_with(
        &data,
        &[
            "--store-faults",
            "error=1",
            "--retry-base-secs",
            "1",
            "--retry-max-secs",
            "1",
            "--max-receive-count",
            "10",
        ],
    );
    let agent = agent();
    let job = post(&agent, &runner.url, "through an outage").unwrap();
    // The store is down, for its reads too (the job's status is a 503): count its failures.
    let (during, _) = runner.call("GET", &format!("/jobs/{job}"));
    eventually("three failed store calls", || {
        (runner.stats()["faults"]["store"]["errors"].as_u64() >= Some(3)).then_some(())
    });
    let (healed, _) = runner.call("DELETE", "/_local/faults");
    let stored = eventually("stored once healed", || {
        let (_, status) = runner.call("GET", &format!("/jobs/{job}"));
        (status["status"] == "stored").then_some(status)
    });
    runner.kill();
    remove_db(&data);

    assert_eq!(during, 503);
    assert_eq!(healed, 200);
    let attempts = stored["attempts"].as_array().unwrap();
    assert!(attempts.len() >= 2, "{stored}");
    for (n, attempt) in attempts.iter().enumerate() {
        assert_eq!(attempt["attempt"], n as u64 + 1, "{stored}");
        assert_eq!(attempt["class"], "transient", "{stored}");
        assert!(
            attempt["error"].as_str().unwrap().contains("injected"),
            "{stored}"
        );
        assert!(
            !attempt.to_string().contains("through an outage"),
            "never content"
        );
    }
    assert!(
        attempts[0]["at"].as_str() < attempts[1]["at"].as_str(),
        "{stored}"
    );
}
