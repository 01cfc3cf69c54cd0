//! The operations routes on the deployed stack, through API Gateway: job status on the list
//! function, counts and the dead-letter queue on the operate function, with the scopes the
//! route table gives them (reads: messages/read; dead letters: messages/admin).

use std::time::{Duration, Instant};

use pipeline::adapters::aws::sdk_config;
use pipeline::domain::JobId;

use crate::support::stack::{call, call_text, call_with, dead_lettered, tokens, var};

fn as_admin(method: &str, path: &str) -> (u16, serde_json::Value) {
    call_with(
        Some(&format!("Bearer {}", tokens().admin)),
        method,
        path,
        "",
    )
}

#[tokio::test]
#[ignore = "needs a deployed stack: infra/test.sh"]
async fn a_job_with_invalid_content_is_dead_lettered_with_why_and_an_operator_can_requeue_and_purge_it(
) {
    // Anyone with queue access can send what the API would refuse: here, empty content.
    let sqs = aws_sdk_sqs::Client::new(&sdk_config().await);
    let job = JobId::new().to_string();
    let before = dead_lettered(&sqs).await;
    sqs.send_message()
        .queue_url(var("PIPELINE_QUEUE_URL"))
        .message_body(format!(r#"{{"v":1,"job_id":"{job}","content":""}}"#))
        .send()
        .await
        .unwrap();

    let status = {
        let job = job.clone();
        tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            loop {
                let (code, body) = call("GET", &format!("/jobs/{job}"), "");
                assert_eq!(code, 200, "{body}");
                if body["status"] == "dead_lettered" || Instant::now() > deadline {
                    return body;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        })
        .await
        .unwrap()
    };
    assert_eq!(status["status"], "dead_lettered", "{status}");
    assert_eq!(status["dead_letter"]["receive_count"], 2);
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
                .any(|l| l["job_id"] == job.as_str()),
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
        assert!(page.contains("/dashboard/app.js"), "{page}");
        job
    })
    .await
    .unwrap();
    // Requeued: it left the dead-letter queue (and, still invalid, will come back to it).
    let (code, status) =
        tokio::task::spawn_blocking(move || call("GET", &format!("/jobs/{outcome}"), ""))
            .await
            .unwrap();
    assert_eq!(code, 200);
    assert_eq!(status["status"], "queued", "{status}");
    assert_eq!(dead_lettered(&sqs).await, before);

    let (code, body) =
        tokio::task::spawn_blocking(|| as_admin("DELETE", "/dead-letters?confirm=purge"))
            .await
            .unwrap();
    assert_eq!(code, 200, "{body}");
    assert_eq!(dead_lettered(&sqs).await, 0);
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
