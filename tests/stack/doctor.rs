//! `pipeline-ctl doctor --stack` on the deployed stack, read with the test's credentials: the
//! stack as infra/test.sh deploys it, then made wrong one setting at a time and put right.

use std::process::Command;

use aws_sdk_sqs::types::QueueAttributeName;
use pipeline::adapters::aws::sdk_config;
use serde_json::Value;

use super::auth::aws;
use crate::support::stack::var;

/// Each check's status, and the exit status.
fn doctor() -> (Vec<(String, String)>, bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_pipeline-ctl"))
        .args(["--json", "doctor", "--stack", &var("STACK_NAME")])
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let verdicts = stdout
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .map(|v| {
            (
                v["check"].as_str().unwrap().to_owned(),
                v["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let stderr = String::from_utf8(output.stderr).unwrap();
    (
        verdicts,
        output.status.success(),
        format!("{stdout}{stderr}"),
    )
}

fn status_of<'a>(verdicts: &'a [(String, String)], check: &str) -> &'a str {
    &verdicts.iter().find(|(c, _)| c == check).unwrap().1
}

#[tokio::test]
#[ignore = "needs a deployed stack: infra/test.sh"]
async fn doctor_reads_the_stack_and_fails_each_misconfiguration_until_it_is_put_right() {
    // As deployed: the alarms notify a topic no one is subscribed to.
    let (verdicts, passed, said) = tokio::task::spawn_blocking(doctor).await.unwrap();
    for check in [
        "visibility timeout",
        "consumer concurrency",
        "redrive",
        "event source mapping",
        "authorizer",
    ] {
        assert_eq!(status_of(&verdicts, check), "ok", "{check}: {said}");
    }
    assert_eq!(status_of(&verdicts, "alarms"), "fail", "{said}");
    assert!(!passed, "{said}");

    // Someone subscribes (a queue: SNS confirms it at once); the alarms are heard.
    let topic = aws(&[
        "cloudformation",
        "describe-stack-resource",
        "--stack-name",
        &var("STACK_NAME"),
        "--logical-resource-id",
        "AlarmTopic",
    ])["StackResourceDetail"]["PhysicalResourceId"]
        .as_str()
        .unwrap()
        .to_owned();
    let config = sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let inbox = sqs
        .create_queue()
        .queue_name(format!(
            "mp-test-alarm-inbox-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let inbox_arn = sqs
        .get_queue_attributes()
        .queue_url(&inbox)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    aws(&[
        "sns",
        "subscribe",
        "--topic-arn",
        &topic,
        "--protocol",
        "sqs",
        "--notification-endpoint",
        &inbox_arn,
    ]);
    let (verdicts, _, said) = tokio::task::spawn_blocking(doctor).await.unwrap();
    assert_eq!(status_of(&verdicts, "alarms"), "ok", "{said}");

    // A visibility timeout shorter than six consumer timeouts: fails, with the fix.
    let queue = var("PIPELINE_QUEUE_URL");
    let set = |seconds: &'static str| {
        sqs.set_queue_attributes()
            .queue_url(&queue)
            .attributes(QueueAttributeName::VisibilityTimeout, seconds)
            .send()
    };
    let deployed = sqs
        .get_queue_attributes()
        .queue_url(&queue)
        .attribute_names(QueueAttributeName::VisibilityTimeout)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::VisibilityTimeout]
        .clone();
    set("5").await.unwrap();
    let (verdicts, passed, said) = tokio::task::spawn_blocking(doctor).await.unwrap();
    sqs.set_queue_attributes()
        .queue_url(&queue)
        .attributes(QueueAttributeName::VisibilityTimeout, deployed)
        .send()
        .await
        .unwrap();
    sqs.delete_queue().queue_url(&inbox).send().await.unwrap();
    assert_eq!(status_of(&verdicts, "visibility timeout"), "fail", "{said}");
    assert!(!passed);
    assert!(
        said.contains("raise the queue's visibility timeout to at least"),
        "{said}"
    );
}
