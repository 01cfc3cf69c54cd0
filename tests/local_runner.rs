//! The local runner as a user runs it: a process on a free port, driven over HTTP, killed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::remove_db;
use crate::support::{
    agent, data_file, eventually, get_json, join_posts, post, post_until, Ledger, Posts, Runner,
};

#[test]
fn every_acknowledged_message_is_kept_across_sigkills_under_store_faults() {
    // Faults go into the ports: each batch is a receive, a store call and a delete.
    kept_across_sigkills(
        "embedded, SIGKILLed under load",
        &["--store-faults", "error=0.2,partial=0.1,seed=11"],
    );
}

// With no faults injected, each batch is one transaction (receive, store, delete): a kill
// at any point of it must leave the batch queued or stored, never half of either.
#[test]
fn every_acknowledged_message_is_kept_across_sigkills_with_batches_in_one_transaction() {
    kept_across_sigkills("embedded, batches in one transaction, SIGKILLed", &[]);
}

fn kept_across_sigkills(name: &str, faults: &[&str]) {
    let data = data_file();
    let mut args = vec![
        "--visibility-timeout-secs",
        "1",
        // Transient failures come back within seconds, so the rounds drain quickly.
        "--retry-base-secs",
        "1",
        "--retry-max-secs",
        "2",
    ];
    args.extend_from_slice(faults);
    let mut posts = Posts::default();
    let mut rng = crate::support::seeded_rng(name);
    let (rounds, clients) = (3, 4);
    for round in 0..rounds {
        let runner = Runner::start_with(&data, &args);
        let stop = Arc::new(AtomicBool::new(false));
        let posting = post_until(
            &runner.url,
            clients,
            None,
            stop.clone(),
            &format!("round {round}"),
        );
        // Kill at a different point each round, while clients are posting and the worker
        // is storing.
        std::thread::sleep(Duration::from_millis(300 + rng.u64(..700)));
        runner.kill();
        stop.store(true, Ordering::Relaxed);
        posts.absorb(join_posts(posting));
    }

    let runner = Runner::start_with(&data, &args);
    runner.wait_drained(Duration::from_secs(60));
    let stored = runner.list_all();
    let dead: Vec<String> = runner
        .dead_letters()
        .into_iter()
        .map(|(body, _)| body)
        .collect();
    let stats = runner.stats();
    runner.kill();
    remove_db(&data);

    let rows = stats["stored"].as_u64().unwrap() as usize;
    let ledger = Ledger::of(&posts, &stored, &dead).with_rows(rows, stored.len());
    // Faults counted by the last run only: the killed runs took theirs with them.
    ledger.report(name, posts.refused.len(), rounds, &stats["faults"]);
    assert!(
        ledger.acknowledged > 100,
        "too little load to mean anything: {ledger:?}"
    );
    ledger.assert_kept();
    // A message whose 202 was lost to the kill may be stored too; nothing else may.
    assert!(
        ledger.unacknowledged_stored <= clients * rounds,
        "{ledger:?}"
    );
    assert_eq!(ledger.poison, 0);
}

#[test]
fn sigterm_finishes_in_flight_work_and_exits_cleanly() {
    let data = data_file();
    let runner = Runner::start(&data);
    let stop = Arc::new(AtomicBool::new(false));
    let clients = post_until(&runner.url, 2, None, stop.clone(), "graceful");
    // Stopped while the consumer is at work: messages are being stored.
    eventually("the consumer storing the posts", || {
        runner.stats()["stored"].as_i64().filter(|&n| n > 0)
    });

    let status = runner.terminate();
    stop.store(true, Ordering::Relaxed);
    let posts = join_posts(clients);

    assert!(status.success(), "{status}");
    // At once, before anything could come back: every record the stopped runner received was
    // handled and deleted; one abandoned at SIGTERM would still be in the queue, received.
    let abandoned: i64 = rusqlite::Connection::open(&data)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM queue WHERE receive_count > 0",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        abandoned, 0,
        "records received but neither stored nor released"
    );
    let runner = Runner::start(&data);
    runner.wait_drained(Duration::from_secs(60));
    let stored = runner.list_all();
    runner.kill();
    remove_db(&data);
    assert!(!posts.acked.is_empty());
    let ledger = Ledger::of(&posts, &stored, &[]);
    ledger.assert_kept();
    assert_eq!(ledger.dead_lettered, 0);
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
    // Over the cap, and up to API Gateway's 10 MB payload limit: a client that writes its
    // whole body before reading still gets the JSON 413, not a reset connection.
    let too_large: Vec<_> = [200_000, 6_000_000, 10_000_000 - 64]
        .into_iter()
        .map(|chars| post_content_of(&agent, &runner.url, chars, None))
        .collect();
    runner.kill();
    remove_db(&data);

    let expected: Vec<u16> = cases.iter().map(|c| c.4).collect();
    assert_eq!(statuses, expected);
    for answer in too_large {
        let (status, body) = answer.expect("a readable answer, not a reset connection");
        assert_eq!(status, 413, "{body}");
        assert!(body.contains("\"error\""), "{body}");
    }
}

#[tokio::test]
async fn with_the_aws_backend_the_runner_moves_messages_through_sqs_and_dynamodb() {
    let stack = crate::support::TestStack::new().await;
    let target = stack.target();

    let (acked, listed, stats) = tokio::task::spawn_blocking(move || {
        let runner = Runner::start_on_aws(&target, &[]);
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
        let stats = runner.stats();
        runner.terminate();
        (acked, listed, stats)
    })
    .await
    .unwrap();

    assert_eq!(acked.len(), 5);
    // Every request the runner made is counted: one SendMessage a message, and the
    // consumer's writes.
    let calls = &stats["aws_calls"];
    assert_eq!(calls["SQS.SendMessage"], 5, "{stats}");
    assert!(calls["DynamoDB.PutItem"].as_u64().unwrap() >= 5, "{stats}");
    assert!(
        calls["SQS.ReceiveMessage"].as_u64().unwrap() >= 1,
        "{stats}"
    );
    // At least each message once: under the test queue's 1 s visibility timeout a slow
    // machine may see a record again, which the listing below shows changes nothing.
    assert!(
        stats["consumer"]["records"].as_u64().unwrap() >= 5,
        "{stats}"
    );
    let newest_first: Vec<String> = acked.into_iter().rev().collect();
    assert_eq!(listed, newest_first);
    assert_eq!(stack.queued().await, 0);
    stack.teardown().await;
}

/// One call with these headers: its status and JSON body.
fn call_with(
    url: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, serde_json::Value) {
    let mut request = ureq::http::Request::builder()
        .method(method)
        .uri(format!("{url}{path}"))
        .header("Content-Type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let body = if method == "POST" {
        r#"{"content": "refused"}"#
    } else {
        ""
    };
    let mut response = crate::support::http_agent(Duration::from_secs(10))
        .run(request.body(body.to_owned()).unwrap())
        .unwrap();
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or_default())
}

#[test]
fn the_runner_refuses_anonymous_callers_wrong_scopes_and_foreign_names_and_nothing_happens() {
    use crate::support::{READ_TOKEN, WRITE_TOKEN};
    let data = data_file();
    let runner = Runner::start(&data);
    let read = format!("Bearer {READ_TOKEN}");
    let write = format!("Bearer {WRITE_TOKEN}");
    type Headers<'a> = Vec<(&'a str, &'a str)>;
    let cases: Vec<(&str, &str, Headers, u16)> = vec![
        ("POST", "/messages", vec![], 401),
        ("POST", "/add_message", vec![], 401),
        ("GET", "/messages", vec![], 401),
        ("GET", "/nowhere", vec![], 401),
        ("GET", "/_local/stats", vec![], 401),
        ("POST", "/_local/queue", vec![], 401),
        (
            "POST",
            "/messages",
            vec![("Authorization", "Bearer not-a-token-of-this-runner")],
            401,
        ),
        (
            "POST",
            "/messages",
            vec![("Authorization", WRITE_TOKEN)],
            401,
        ),
        ("POST", "/messages", vec![("Authorization", &read)], 403),
        ("POST", "/add_message", vec![("Authorization", &read)], 403),
        ("GET", "/messages", vec![("Authorization", &write)], 403),
        ("GET", "/_local/stats", vec![("Authorization", &read)], 403),
        (
            "POST",
            "/_local/queue",
            vec![("Authorization", &write)],
            403,
        ),
        // A page on another site, through DNS rebinding or a cross-site post.
        (
            "POST",
            "/messages",
            vec![("Authorization", &write), ("Host", "evil.example")],
            403,
        ),
        (
            "POST",
            "/messages",
            vec![
                ("Authorization", &write),
                ("Origin", "https://evil.example"),
            ],
            403,
        ),
        (
            "GET",
            "/messages",
            vec![("Authorization", &read), ("Host", "rebound.example:3000")],
            403,
        ),
    ];
    let answers: Vec<_> = cases
        .iter()
        .map(|(method, path, headers, _)| call_with(&runner.url, method, path, headers))
        .collect();
    let document = call_with(&runner.url, "GET", "/openapi.json", &[]);
    let tokens_mode = std::fs::metadata(&runner.tokens_file)
        .unwrap()
        .permissions();
    let data_mode = std::fs::metadata(&data).unwrap().permissions();
    // The positive control: one post that does get through, after every refused one. Once it
    // is stored and nothing is queued or in flight, anything that had got through before it
    // would be counted too.
    let control = call_with(
        &runner.url,
        "POST",
        "/messages",
        &[("Authorization", &write)],
    );
    let stats = eventually("the control message stored", || {
        let stats = runner.stats();
        let stored = stats["stored"].as_u64().unwrap_or(0);
        let settled = stored >= 1 && stats["queued"] == 0 && stats["in_flight"] == 0;
        settled.then_some(stats)
    });
    runner.kill();
    remove_db(&data);

    for ((method, path, headers, expected), (status, body)) in cases.iter().zip(&answers) {
        assert_eq!(status, expected, "{method} {path} {headers:?}: {body}");
        assert!(
            body["message"].is_string() && body["error"].is_string(),
            "{body}"
        );
    }
    assert_eq!(document.0, 200, "the API's description stays public");
    assert_eq!(control.0, 202, "{}", control.1);
    assert_eq!(
        (
            stats["queued"].as_u64(),
            stats["in_flight"].as_u64(),
            stats["stored"].as_u64()
        ),
        (Some(0), Some(0), Some(1)),
        "{stats}"
    );
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(tokens_mode.mode() & 0o777, 0o600);
    assert_eq!(data_mode.mode() & 0o777, 0o600);
}

#[test]
fn the_runner_will_not_serve_every_interface_without_tokens() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_message-pipeline"))
        .args(["--listen", "0.0.0.0:0", "--no-auth", "--data"])
        .arg(std::env::temp_dir().join(format!("mp-never-{}.db", uuid::Uuid::new_v4())))
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("--no-auth") && stderr.contains("loopback"),
        "{stderr}"
    );
}

// Issue 22: a start-up error is one line that says what to do, even with backtraces on.
#[test]
fn a_start_up_error_is_one_line_without_a_backtrace() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_message-pipeline"))
        .args(["--retry-base-secs", "0", "--data"])
        .arg(std::env::temp_dir().join(format!("mp-never-{}.db", uuid::Uuid::new_v4())))
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(lines[0].contains("at least 1 second"), "{stderr}");
}

// Issue 22: `--data` naming a directory keeps the database in it.
#[test]
fn a_data_directory_holds_the_database() {
    let dir = std::env::temp_dir().join(format!("mp-data-dir-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let runner = Runner::start_with(&dir, &[]);

    let job = post(&agent(), &runner.url, "kept in a directory").unwrap();
    eventually("the message stored", || {
        let status = get_json(&agent(), &format!("{}/jobs/{job}", runner.url));
        (status["status"] == "stored").then_some(())
    });
    runner.terminate();

    assert!(
        dir.join("pipeline.db").is_file(),
        "{:?}",
        std::fs::read_dir(&dir).unwrap().collect::<Vec<_>>()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

// Issue 22: a second runner must not silently take the tokens file of one still running.
#[test]
fn a_second_runner_refuses_the_tokens_file_of_a_running_one() {
    let data = data_file();
    let first = Runner::start_with(&data, &[]);
    let other = data_file();

    let mut second = std::process::Command::new(env!("CARGO_BIN_EXE_message-pipeline"));
    second
        .args(["--listen", "127.0.0.1:0", "--data"])
        .arg(&*other)
        .arg("--tokens-file")
        .arg(&first.tokens_file);
    let output = output_within(second, Duration::from_secs(20));

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&first.url),
        "names the running one: {stderr}"
    );
    assert!(
        stderr.contains("--tokens-file"),
        "says what to do: {stderr}"
    );
    let kept = std::fs::read_to_string(&first.tokens_file).unwrap();
    assert!(
        kept.contains(&format!("PIPELINE_URL={}", first.url)),
        "{kept}"
    );
    first.terminate();
}

// The file of a runner that is gone (killed, or its machine rebooted) is simply taken over.
#[test]
fn a_stale_tokens_file_is_taken_over() {
    use std::io::BufRead as _;
    let data = data_file();
    let file = std::env::temp_dir().join(format!("mp-stale-{}.env", uuid::Uuid::new_v4()));
    let gone = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    std::fs::write(
        &file,
        format!("PIPELINE_URL=http://{gone}\nWRITE_TOKEN=x\n"),
    )
    .unwrap();

    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_message-pipeline"))
        .args(["--listen", "127.0.0.1:0", "--data"])
        .arg(&*data)
        .arg("--tokens-file")
        .arg(&file)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = std::io::BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .find_map(|line| line.trim().strip_prefix("listening on ").map(str::to_owned));
    let _ = child.kill();
    let _ = child.wait();

    let url = url.expect("the runner started");
    let taken = std::fs::read_to_string(&file).unwrap();
    std::fs::remove_file(&file).unwrap();
    assert!(taken.contains(&format!("PIPELINE_URL={url}")), "{taken}");
}

/// The command's output, or a failure naming it when it is still running after `limit` (a
/// runner that starts where it should have refused would otherwise hang the test).
fn output_within(mut command: std::process::Command, limit: Duration) -> std::process::Output {
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "{command:?} still running after {limit:?}: {}",
                String::from_utf8_lossy(&output.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

// Issue 22: the gateway decides before the body is read, so an anonymous caller learns
// nothing but 401 (not the size limit of a route it may not call), and a token without the
// route's scope gets its 403; either answer arrives whole, not as a reset connection.
#[test]
fn an_oversized_request_is_authenticated_first() {
    let data = data_file();
    let runner = Runner::start(&data);
    let anonymous = crate::support::agent_without_token();
    let answers: Vec<_> = [
        (None, 200_000),
        (None, 6_000_000),
        (Some(crate::support::READ_TOKEN), 6_000_000),
    ]
    .into_iter()
    .map(|(token, chars)| post_content_of(&anonymous, &runner.url, chars, token))
    .collect();
    runner.kill();
    remove_db(&data);

    let statuses: Vec<u16> = answers
        .iter()
        .map(|answer| answer.as_ref().expect("a readable answer").0)
        .collect();
    assert_eq!(statuses, [401, 401, 403], "{answers:?}");
}

// Issue 22: the 401 and 403 bodies the README shows are the ones the runner sends.
#[test]
fn the_readme_shows_the_runners_refusals_as_sent() {
    let data = data_file();
    let runner = Runner::start(&data);
    let plain = crate::support::agent_without_token();
    let unauthorized = post_content_of(&plain, &runner.url, 1, None).unwrap();
    let forbidden =
        post_content_of(&plain, &runner.url, 1, Some(crate::support::READ_TOKEN)).unwrap();
    runner.kill();
    remove_db(&data);

    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .unwrap()
        .replace('\n', " ");
    assert_eq!(unauthorized.0, 401);
    assert_eq!(forbidden.0, 403);
    for (_, body) in [unauthorized, forbidden] {
        assert!(
            readme.contains(&format!("`{body}`")),
            "README lacks `{body}`"
        );
    }
}

/// POST /messages with `chars` characters of content, and `token` if any (besides what the
/// agent adds): the status and body, or why no answer could be read.
fn post_content_of(
    agent: &ureq::Agent,
    url: &str,
    chars: usize,
    token: Option<&str>,
) -> Result<(u16, String), String> {
    let content = format!(r#"{{"content": "{}"}}"#, "x".repeat(chars));
    let mut request = agent
        .post(format!("{url}/messages"))
        .header("Content-Type", "application/json");
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    request
        .send(&content)
        .map(|mut r| {
            (
                r.status().as_u16(),
                r.body_mut().read_to_string().unwrap_or_default(),
            )
        })
        .map_err(|e| e.to_string())
}
