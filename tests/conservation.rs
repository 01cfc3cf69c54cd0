//! Nothing lost, nothing doubled: the pipeline under injected faults (store errors, throttling,
//! partial batch writes, panics, failed sends, receives and deletes) and poison messages.
//! Each test ends with the ledger: every 202 is a message stored once with its content, or
//! one in the dead-letter queue.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use message_pipeline::provision::QueueSettings;

use crate::support::remove_db;
use crate::support::TestStack;
use crate::support::{data_file, join_posts, post_until, Ledger, Posts, Runner};

/// Bodies a consumer cannot store: not JSON, not an envelope, an unknown version, a job id
/// that is not one, content over the ceiling that any deployment may configure (content over
/// today's limit but under the ceiling is stored: it may have been accepted under a higher
/// one), content that is empty. All but the unknown version are refused for good and
/// dead-lettered at their first failure; an unknown version may be a newer enqueue's, which
/// the next consumer will know, and is retried until its last receive.
fn poison(n: usize) -> Vec<String> {
    let kinds = [
        "not json at all".to_owned(),
        r#"{"hello": "world"}"#.to_owned(),
        r#"{"v": 9, "job_id": "0190a5c2-0000-7000-8000-000000000000", "content": "x"}"#.to_owned(),
        r#"{"v": 1, "job_id": "not-a-uuid", "content": "x"}"#.to_owned(),
        format!(
            r#"{{"v": 1, "job_id": "{}", "content": "{}"}}"#,
            uuid::Uuid::now_v7(),
            "x".repeat(pipeline::domain::ContentLimit::CEILING + 1)
        ),
        format!(
            r#"{{"v": 1, "job_id": "{}", "content": ""}}"#,
            uuid::Uuid::now_v7()
        ),
    ];
    (0..n)
        .map(|i| match &kinds[i % kinds.len()] {
            // Distinct bodies, so each can be found in the dead-letter queue.
            k if k.starts_with('{') => k.replacen('{', &format!("{{\"poison\": {i}, "), 1),
            k => format!("{k} #{i}"),
        })
        .collect()
}

/// Every refusal a client saw was a 503 with a JSON error that says to retry.
fn assert_refusals_are_503(posts: &Posts) {
    for (status, body, _) in &posts.refused {
        assert_eq!(*status, 503, "{body}");
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(json["error"].is_string(), "{body}");
    }
}

#[test]
fn ten_thousand_messages_survive_store_queue_and_worker_faults() {
    let data = data_file();
    let max_receives = 5;
    let runner = Runner::start_with(
        &data,
        &[
            "--visibility-timeout-secs",
            "1",
            "--max-receive-count",
            &max_receives.to_string(),
            "--retry-base-secs",
            "1",
            "--retry-max-secs",
            "2",
            "--store-faults",
            "error=0.2,throttle=0.02,partial=0.1,panic=0.005,latency-ms=2,seed=5",
            "--queue-faults",
            "error=0.02,throttle=0.01,lost-reply=0.01,seed=6",
            "--source-faults",
            "error=0.02,seed=7",
        ],
    );
    let poison = poison(24);
    let stop = Arc::new(AtomicBool::new(false));

    let posting = post_until(&runner.url, 4, Some(10_000), stop, "conservation");
    for body in &poison {
        runner.send_raw(body);
    }
    let posts = join_posts(posting);
    let drained = Instant::now();
    let stats = runner.wait_drained(Duration::from_secs(180));
    let drain_secs = drained.elapsed().as_secs_f64();
    let stored = runner.list_all();
    let dead = runner.dead_letters();
    runner.kill();
    remove_db(&data);

    let dead_bodies: Vec<String> = dead.iter().map(|(body, _)| body.clone()).collect();
    let rows = stats["stored"].as_u64().unwrap() as usize;
    let ledger = Ledger::of(&posts, &stored, &dead_bodies).with_rows(rows, stored.len());
    let faults = &stats["faults"];
    ledger.report("embedded, 10,000 posts", posts.refused.len(), 0, faults);
    eprintln!("drained {drain_secs:.1} s after the last post; faults {faults}");

    assert_eq!(posts.acked.len() + posts.refused.len(), 10_000);
    ledger.assert_kept();
    assert_eq!(ledger.unacknowledged_stored, 0, "{ledger:?}");
    // Each refused post is one injected send failure, and the client saw it.
    assert_refusals_are_503(&posts);
    let lost_replies = faults["queue"]["lost_replies"].as_u64().unwrap();
    let queue_faults = faults["queue"]["errors"].as_u64().unwrap()
        + faults["queue"]["throttles"].as_u64().unwrap()
        + lost_replies;
    assert_eq!(posts.refused.len() as u64, queue_faults);
    // A send whose answer was lost: the client saw a 503, and the message is stored (under a
    // job id the client never learned). Counted once, never as lost.
    assert!(lost_replies > 0, "{faults}");
    assert_eq!(
        (ledger.refused_but_stored + ledger.refused_but_dead_lettered) as u64,
        lost_replies,
        "{ledger:?}"
    );
    // Every kind of fault actually happened.
    for (port, kind) in [
        ("store", "errors"),
        ("store", "throttles"),
        ("store", "partial_writes"),
        ("store", "panics"),
        ("source", "errors"),
    ] {
        assert!(
            faults[port][kind].as_u64().unwrap() > 0,
            "no {port} {kind}: {faults}"
        );
    }
    // Poison reaches the dead-letter queue at its first failure; an unknown envelope version
    // after exactly maxReceiveCount receives.
    assert_eq!(ledger.poison, poison.len());
    for body in &poison {
        let receives = dead.iter().find(|(b, _)| b == body).map(|(_, n)| *n);
        let expected = if body.contains(r#""v": 9"#) {
            max_receives
        } else {
            1
        };
        assert_eq!(receives, Some(expected), "{body:.60}");
    }
}

#[test]
fn poison_in_a_batch_does_not_hold_back_its_neighbours() {
    // One receive each: a record that fails even once is dead-lettered at its next receive.
    // Had a poison record failed its batch, its neighbours would end in the dead-letter queue
    // beside it instead of stored: what happened shows it, however fast or slow the machine.
    let data = data_file();
    let runner = Runner::start_with(
        &data,
        &[
            "--visibility-timeout-secs",
            "1",
            "--max-receive-count",
            "1",
            "--retry-base-secs",
            "1",
            "--batching-window-ms",
            "50",
        ],
    );
    let agent = crate::support::agent();
    let poison = poison(60);
    let mut acked = HashMap::new();
    for (i, body) in poison.iter().enumerate() {
        runner.send_raw(body);
        for j in 0..5 {
            let content = format!("neighbour {i}.{j}");
            let id = crate::support::post(&agent, &runner.url, &content).unwrap();
            acked.insert(id, content);
        }
    }

    // A guard against a hang, not a speed requirement.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut stats = runner.stats();
    while (stats["stored"] != acked.len() || stats["dead_lettered"] != poison.len())
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
        stats = runner.stats();
    }
    let dead: Vec<String> = runner
        .dead_letters()
        .into_iter()
        .map(|(body, _)| body)
        .collect();
    let stored = runner.list_all();
    runner.kill();
    remove_db(&data);

    eprintln!("poison neighbours: {stats}");
    // Compared by their first characters: one poison body is 32 KB long.
    let short = |bodies: &[String]| {
        let mut short: Vec<String> = bodies
            .iter()
            .map(|b| b.chars().take(80).collect())
            .collect();
        short.sort();
        short
    };
    assert_eq!(
        short(&dead),
        short(&poison),
        "only the poison is dead-lettered"
    );
    assert_eq!(stored.len(), acked.len(), "{stats}");
    for (id, content) in &acked {
        assert_eq!(stored.get(id), Some(content), "neighbour {id}");
    }
}

#[tokio::test]
async fn messages_survive_faults_through_sqs_and_dynamodb() {
    let max_receives = 4;
    let stack = TestStack::with_settings(QueueSettings {
        visibility_timeout: Duration::from_secs(1),
        max_receive_count: max_receives,
    })
    .await;
    let poison = poison(6);
    for body in &poison {
        stack
            .sqs
            .send_message()
            .queue_url(&stack.queues.queue_url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
    let target = stack.target();
    let (posts, runner) = tokio::task::spawn_blocking(move || {
        let runner = Runner::start_on_aws(
            &target,
            &[
                "--max-receive-count",
                &max_receives.to_string(),
                "--retry-base-secs",
                "1",
                "--retry-max-secs",
                "2",
                "--store-faults",
                "error=0.2,partial=0.1,panic=0.01,seed=8",
                "--queue-faults",
                "error=0.05,lost-reply=0.03,seed=9",
            ],
        );
        let stop = Arc::new(AtomicBool::new(false));
        let posts = join_posts(post_until(&runner.url, 4, Some(400), stop, "aws faults"));
        (posts, runner)
    })
    .await
    .unwrap();

    let deadline = Instant::now() + Duration::from_secs(120);
    while stack.queued().await > 0 {
        assert!(Instant::now() < deadline, "the queue never drained");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (stored, faults) = tokio::task::spawn_blocking(move || {
        let listed = (runner.list_all(), runner.stats()["faults"].clone());
        runner.terminate();
        listed
    })
    .await
    .unwrap();
    let dead = stack.drain_dead_letters().await;
    let rows = stack.item_count().await;
    stack.teardown().await;

    let ledger = Ledger::of(&posts, &stored, &dead).with_rows(rows, stored.len());
    ledger.report(
        "SQS + DynamoDB (emulator), 400 posts",
        posts.refused.len(),
        0,
        &faults,
    );
    ledger.assert_kept();
    assert_eq!(ledger.unacknowledged_stored, 0, "{ledger:?}");
    assert_eq!(ledger.poison, poison.len(), "{ledger:?}");
    assert_refusals_are_503(&posts);
    let lost_replies = faults["queue"]["lost_replies"].as_u64().unwrap();
    assert_eq!(
        posts.refused.len() as u64,
        faults["queue"]["errors"].as_u64().unwrap() + lost_replies
    );
    assert!(lost_replies > 0, "{faults}");
    assert_eq!(
        (ledger.refused_but_stored + ledger.refused_but_dead_lettered) as u64,
        lost_replies,
        "{ledger:?}"
    );
    assert!(faults["store"]["errors"].as_u64().unwrap() > 0, "{faults}");
}

/// A total outage of the store, longer than `visibility × maxReceiveCount` (8 s here): before
/// backoff every message received during it was dead-lettered; now each waits, and once the
/// store heals every acknowledged message is stored once and none is dead-lettered.
#[test]
fn a_total_store_outage_longer_than_visibility_times_receives_loses_doubles_and_dead_letters_nothing(
) {
    let data = data_file();
    let runner = Runner::start_with(&data, &crate::retries::outage_args());
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let posts = join_posts(post_until(
        &runner.url,
        4,
        Some(2_000),
        stop,
        "total outage",
    ));
    // The outage: 30 s from the first post, well past 8 receives of 1 s.
    std::thread::sleep(Duration::from_secs(30).saturating_sub(started.elapsed()));
    let during = runner.stats();
    assert_eq!(during["dead_lettered"], 0, "{during}");
    assert!(
        during["faults"]["store"]["errors"].as_u64().unwrap() > 0,
        "{during}"
    );
    let healed = crate::support::agent()
        .delete(format!("{}/_local/faults", runner.url))
        .call()
        .unwrap();
    assert_eq!(healed.status(), 200);
    let stats = runner.wait_drained(Duration::from_secs(120));
    let stored = runner.list_all();
    let dead: Vec<String> = runner.dead_letters().into_iter().map(|(b, _)| b).collect();
    runner.kill();
    remove_db(&data);

    let rows = stats["stored"].as_u64().unwrap() as usize;
    let ledger = Ledger::of(&posts, &stored, &dead).with_rows(rows, stored.len());
    ledger.report(
        "embedded, 30 s store outage",
        posts.refused.len(),
        0,
        &stats["faults"],
    );
    ledger.assert_kept();
    assert!(
        dead.is_empty(),
        "dead-lettered during the outage: {}",
        dead.len()
    );
    assert_eq!(stored.len(), posts.acked.len());
}
