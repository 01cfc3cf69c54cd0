//! The data's lifecycle on the deployed stack, through API Gateway and under each function's
//! own role: a forged job id is a 404 while a real queued one reads; a message deleted while
//! still on its way is not stored when the consumer gets it; an expired message is not
//! returned. The test stack keeps messages a day (MessageRetentionDays=1, infra/test.sh).

use aws_sdk_dynamodb::types::AttributeValue;
use pipeline::adapters::aws::for_benchmarks::shard_of;
use pipeline::adapters::aws::sdk_config;
use pipeline::domain::JobId;

use crate::support::eventually;
use crate::support::stack::{as_admin, call, listed_ids, var};

fn post(body: &str) -> String {
    let (status, accepted) = call("POST", "/messages", body);
    assert_eq!(status, 202, "{accepted}");
    accepted["job_id"].as_str().unwrap().to_owned()
}

fn status_of(job: &str) -> serde_json::Value {
    let (status, body) = call("GET", &format!("/jobs/{job}"), "");
    assert_eq!(status, 200, "{body}");
    body
}

#[test]
#[ignore = "needs a deployed stack: infra/test.sh"]
fn a_forged_id_is_a_404_and_a_job_deleted_on_its_way_is_never_stored() {
    // Both wait out a delay in the queue; one is deleted meanwhile.
    let doomed = post(r#"{"content": "erase me", "delay_seconds": 4}"#);
    let control = post(r#"{"content": "keep me", "delay_seconds": 4}"#);
    assert_eq!(status_of(&doomed)["status"], "scheduled");

    let forged = uuid::Uuid::now_v7().to_string();
    for (method, path) in [
        ("GET", format!("/jobs/{forged}")),
        ("GET", format!("/messages/{forged}")),
        ("DELETE", format!("/messages/{forged}")),
    ] {
        let (status, body) = as_admin(method, &path);
        assert_eq!(status, 404, "{method} {path}: {body}");
    }
    // Deleting needs messages/admin.
    assert_eq!(call("DELETE", &format!("/messages/{doomed}"), "").0, 403);

    let (status, deleted) = as_admin("DELETE", &format!("/messages/{doomed}"));
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["already_deleted"], false);

    // The consumer gets both after their delay: the control is stored, the other not.
    eventually("the control stored", || {
        (status_of(&control)["status"] == "stored").then_some(())
    });
    eventually("the queue empty", || {
        let (_, stats) = call("GET", "/stats", "");
        let queue = &stats["queue"];
        (queue["visible"] == 0 && queue["in_flight"] == 0 && queue["delayed"] == 0).then_some(())
    });
    let job = status_of(&doomed);
    assert_eq!(job["status"], "deleted", "{job}");
    assert_eq!(job["deleted_at"], deleted["deleted_at"]);
    assert_eq!(call("GET", &format!("/messages/{doomed}"), "").0, 404);
    let listed = listed_ids();
    assert!(listed.contains(&control) && !listed.contains(&doomed));
}

#[tokio::test]
#[ignore = "needs a deployed stack: infra/test.sh"]
async fn a_stored_message_expires_with_the_retention_and_is_not_returned_after() {
    let job = post(r#"{"content": "for a day"}"#);
    eventually("stored", || {
        (status_of(&job)["status"] == "stored").then_some(())
    });
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk_config().await);
    let id: JobId = job.parse().unwrap();
    let key = |item: aws_sdk_dynamodb::operation::get_item::builders::GetItemFluentBuilder| {
        item.table_name(var("PIPELINE_TABLE_NAME"))
            .key(
                "pk",
                AttributeValue::S(format!("shard#{:02}", shard_of(id))),
            )
            .key("sk", AttributeValue::S(job.clone()))
    };

    // The consumer stamped it with a day's TTL.
    let item = key(dynamodb.get_item()).send().await.unwrap().item.unwrap();
    let AttributeValue::N(expires_at) = &item["expires_at"] else {
        panic!("no expires_at: {item:?}");
    };
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    };
    let in_a_day = now() + 86_400;
    let expires_at: i64 = expires_at.parse().unwrap();
    assert!(
        (in_a_day - expires_at).abs() < 600,
        "{expires_at} vs {in_a_day}"
    );

    // A day later (its expiry moved to a minute ago; DynamoDB's reaper can lag for days):
    // gone from every read, and its job says why.
    let past = (now() - 60).to_string();
    dynamodb
        .update_item()
        .table_name(var("PIPELINE_TABLE_NAME"))
        .key("pk", item["pk"].clone())
        .key("sk", item["sk"].clone())
        .update_expression("SET expires_at = :past")
        .expression_attribute_values(":past", AttributeValue::N(past))
        .send()
        .await
        .unwrap();

    assert_eq!(call("GET", &format!("/messages/{job}"), "").0, 404);
    assert!(!listed_ids().contains(&job));
    assert_eq!(status_of(&job)["status"], "expired");
}
