//! The operations routes on the deployed stack, through API Gateway: job status on the list
//! function, counts and the dead-letter queue on the operate function, with the scopes the
//! route table gives them (reads: messages/read; dead letters: messages/admin).

use std::time::{Duration, Instant};

use pipeline::adapters::aws::sdk_config;

use crate::support::stack::{as_admin, call, call_text, call_with, dead_lettered, tokens, var};

#[tokio::test]
#[ignore = "needs a deployed stack: infra/test.sh"]
async fn a_job_with_invalid_content_is_dead_lettered_with_why_and_an_operator_can_requeue_and_purge_it(
) {
    // Anyone with queue access can send what the API would refuse: here, empty content.
    let sqs = aws_sdk_sqs::Client::new(&sdk_config().await);
    let job = crate::support::stack::issued_job_id().to_string();
    let before = dead_lettered(&sqs).await;
    sqs.send_message()
        .queue_url(var("PIPELINE_QUEUE_URL"))
        .message_body(format!(r#"{{"v":1,"job_id":"{job}","content":""}}"#))
        .send()
        .await
        .unwrap();

    // Refused for good: in the dead-letter queue within seconds, where waiting out the
    // visibility timeout (12 s on the test stack) twice would take half a minute.
    let sent = Instant::now();
    let status = dead_lettered_within(&job, Duration::from_secs(10)).await;
    assert_eq!(
        status["status"],
        "dead_lettered",
        "{status} after {:?}",
        sent.elapsed()
    );
    assert_eq!(status["dead_letter"]["receive_count"], 1);
    // Its one failed delivery, kept beside the note (the consumer's PutItem, the list's Query).
    assert_eq!(status["attempts"].as_array().unwrap().len(), 1, "{status}");
    assert_eq!(status["attempts"][0]["class"], "permanent", "{status}");
    assert!(
        status["dead_letter"]["last_error"]
            .as_str()
            .unwrap()
            .starts_with("permanent"),
        "{status}"
    );
    assert!(
        status["dead_letter"]["last_error"]
            .as_str()
            .unwrap()
            .contains("empty"),
        "{status}"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while dead_lettered(&sqs).await == before && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(dead_lettered(&sqs).await, before + 1);

    let job_for_calls = job.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let job = job_for_calls;
        // Reads: the reader may see counts, not dead letters.
        let (code, stats) = call("GET", "/stats", "");
        assert_eq!(code, 200, "{stats}");
        assert!(
            stats["dead_letter_queue"]["count"].as_u64().unwrap() >= 1,
            "{stats}"
        );
        assert_eq!(stats["dead_letter_queue"]["approximate"], true);
        assert_eq!(call("GET", "/dead-letters", "").0, 403);
        let (code, page) = as_admin("GET", "/dead-letters");
        assert_eq!(code, 200, "{page}");
        assert!(
            page["dead_letters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|l| l["job_id"] == job.as_str() && l["kind"] == "job"),
            "{page}"
        );
        // Changes: admin only, never by GET, purge only when confirmed.
        let writer = format!("Bearer {}", tokens().writer);
        let requeue = format!("/dead-letters/{job}/requeue");
        assert_eq!(call_with(Some(&writer), "POST", &requeue, "").0, 403);
        assert_eq!(as_admin("DELETE", "/dead-letters").0, 400);
        let (code, body) = as_admin("POST", &requeue);
        assert_eq!(code, 200, "{body}");
        // The page itself is public and loads nothing from elsewhere.
        let (code, page) = call_text(None, "GET", "/dashboard", "");
        assert_eq!(code, 200);
        assert!(page.contains(r#"src="dashboard/app.js""#), "{page}");
        job
    })
    .await
    .unwrap();
    // Requeued, and still invalid: it is back in the dead-letter queue at its first failure.
    let back = dead_lettered_within(&outcome, Duration::from_secs(30)).await;
    assert_eq!(back["dead_letter"]["receive_count"], 1, "{back}");

    let (code, body) =
        tokio::task::spawn_blocking(|| as_admin("DELETE", "/dead-letters?confirm=purge"))
            .await
            .unwrap();
    assert_eq!(code, 200, "{body}");
    assert_eq!(dead_lettered(&sqs).await, 0);
}

/// The job's status once it reads `dead_lettered`, or when `limit` has passed.
async fn dead_lettered_within(job: &str, limit: Duration) -> serde_json::Value {
    status_within(job, "dead_lettered", limit).await
}

/// The job's status once it reads `wanted`, or when `limit` has passed.
async fn status_within(job: &str, wanted: &'static str, limit: Duration) -> serde_json::Value {
    let job = job.to_owned();
    tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + limit;
        loop {
            let (code, body) = call("GET", &format!("/jobs/{job}"), "");
            assert_eq!(code, 200, "{body}");
            if body["status"] == wanted || Instant::now() > deadline {
                return body;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    })
    .await
    .unwrap()
}

#[tokio::test]
#[ignore = "needs a deployed stack: infra/test.sh"]
async fn a_raw_body_and_a_forged_job_sent_with_the_aws_cli_are_listed_as_dead_letters_in_seconds() {
    let sqs = aws_sdk_sqs::Client::new(&sdk_config().await);
    let before = dead_lettered(&sqs).await;
    // A job stored through API Gateway, then its id reused with other content: refused for
    // good (a stored message is never rewritten).
    let original = tokio::task::spawn_blocking(|| {
        let (code, body) = call("POST", "/messages", r#"{"content":"the original"}"#);
        assert_eq!(code, 202, "{body}");
        body["job_id"].as_str().unwrap().to_owned()
    })
    .await
    .unwrap();
    let stored = status_within(&original, "stored", Duration::from_secs(60)).await;
    assert_eq!(stored["status"], "stored", "{stored}");

    let queue = var("PIPELINE_QUEUE_URL");
    let sent = Instant::now();
    let forged = format!(r#"{{"v":1,"job_id":"{original}","content":"forged"}}"#);
    for body in ["hello raw", &forged] {
        super::auth::aws(&[
            "sqs",
            "send-message",
            "--queue-url",
            &queue,
            "--message-body",
            body,
        ]);
    }

    let page = tokio::task::spawn_blocking(move || loop {
        let (code, page) = as_admin("GET", "/dead-letters?limit=100");
        assert_eq!(code, 200, "{page}");
        let letters = page["dead_letters"].as_array().unwrap();
        let raw = letters
            .iter()
            .any(|l| l["kind"] == "raw" && l["preview"] == "hello raw");
        let conflict = letters.iter().any(|l| l["job_id"] == original.as_str());
        if (raw && conflict) || sent.elapsed() > Duration::from_secs(15) {
            return page;
        }
        std::thread::sleep(Duration::from_millis(250));
    })
    .await
    .unwrap();
    let letters = page["dead_letters"].as_array().unwrap().clone();
    // Another test's raw dead letter may be there too: this one is found by its body.
    let raw = letters
        .iter()
        .find(|l| l["kind"] == "raw" && l["preview"] == "hello raw")
        .unwrap_or_else(|| panic!("no raw dead letter within 15 s: {page}"))
        .clone();
    assert!(
        raw["last_error"].as_str().unwrap().starts_with("permanent"),
        "{raw}"
    );
    let conflict = letters
        .iter()
        .find(|l| l["kind"] == "job")
        .unwrap_or_else(|| panic!("the forged job not listed within 15 s: {page}"));
    assert!(
        conflict["last_error"]
            .as_str()
            .unwrap()
            .contains("other content"),
        "{conflict}"
    );
    // The listing and the count agree, and the stored message is the original.
    assert_eq!(dead_lettered(&sqs).await, before + 2);
    let raw_id = raw["id"].as_str().unwrap().to_owned();
    tokio::task::spawn_blocking(move || {
        let (code, body) = as_admin("POST", &format!("/dead-letters/{raw_id}/requeue"));
        assert_eq!(code, 409, "{body}");
        let (code, body) = as_admin("DELETE", &format!("/dead-letters/{raw_id}"));
        assert_eq!(code, 200, "{body}");
        let (code, page) = as_admin("GET", "/dead-letters?limit=100");
        assert_eq!(code, 200);
        assert!(
            !page["dead_letters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|l| l["id"] == raw_id.as_str()),
            "{page}"
        );
        let (_, job) = call(
            "GET",
            &format!("/jobs/{}", stored["job_id"].as_str().unwrap()),
            "",
        );
        assert_eq!(job["message"]["content"], "the original", "{job}");
    })
    .await
    .unwrap();
    assert_eq!(dead_lettered(&sqs).await, before + 1);
    let (code, body) =
        tokio::task::spawn_blocking(|| as_admin("DELETE", "/dead-letters?confirm=purge"))
            .await
            .unwrap();
    assert_eq!(code, 200, "{body}");
}

#[tokio::test]
#[ignore = "needs a deployed stack: infra/test.sh"]
async fn the_deployed_alarms_and_dashboard_watch_this_stack_s_own_functions_queues_and_api() {
    let stack = var("STACK_NAME");
    let physical = |logical: &str| {
        super::auth::aws(&[
            "cloudformation",
            "describe-stack-resource",
            "--stack-name",
            &stack,
            "--logical-resource-id",
            logical,
        ])["StackResourceDetail"]["PhysicalResourceId"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let alarms = super::auth::aws(&["cloudwatch", "describe-alarms"]);
    let alarm = |logical: &str| {
        let name = physical(logical);
        alarms["MetricAlarms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["AlarmName"] == name.as_str())
            .unwrap_or_else(|| panic!("no alarm {name}"))
            .clone()
    };
    let dimension =
        |alarm: &serde_json::Value| alarm["Dimensions"][0]["Value"].as_str().unwrap().to_owned();
    let consumer = physical("ConsumerFunction");
    for logical in ["ConsumerErrorsAlarm", "ConsumerThrottlesAlarm"] {
        assert_eq!(dimension(&alarm(logical)), consumer, "{logical}");
    }
    // The emulator's form of the 5xx alarm (it has no metric math).
    assert_eq!(
        dimension(&alarm("Api5xxCountAlarm")),
        physical("MessagesApi")
    );
    let queue_name = var("PIPELINE_DLQ_URL")
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(
        dimension(&alarm("DeadLetterQueueNotEmptyAlarm")),
        queue_name
    );
    for logical in [
        "ConsumerErrorsAlarm",
        "Api5xxCountAlarm",
        "DeadLetterQueueNotEmptyAlarm",
    ] {
        assert_eq!(
            alarm(logical)["AlarmActions"].as_array().unwrap().len(),
            1,
            "{logical}"
        );
    }
}

#[test]
#[ignore = "needs a deployed stack: infra/test.sh"]
fn the_flow_history_answers_readers_under_the_operate_role_from_cloudwatch() {
    // The operate function reads CloudWatch under its own role (IAM enforced on the
    // emulator). The emulator parses no EMF and publishes no SQS metrics: the minutes are
    // there, their counts zero and their backlog and latencies unknown; on AWS they fill.
    let (code, history) = call("GET", "/stats/history?minutes=3", "");
    assert_eq!(code, 200, "{history}");
    let minutes = history["minutes"].as_array().unwrap();
    assert_eq!(minutes.len(), 3, "{history}");
    for minute in minutes {
        assert!(
            minute["start"].as_str().unwrap().ends_with(":00.000Z"),
            "{minute}"
        );
        assert!(minute["enqueued"].is_u64() && minute["failed"]["permanent"].is_u64());
    }
    let writer = format!("Bearer {}", tokens().writer);
    assert_eq!(call_with(Some(&writer), "GET", "/stats/history", "").0, 403);
    let (code, refused) = call("GET", "/stats/history?minutes=0", "");
    assert_eq!(code, 400, "{refused}");
}
