//! Batch enqueue, idempotency keys, delays and attributes on the deployed stack: the enqueue
//! function behind API Gateway, its idempotency table, SQS's DelaySeconds and the consumer
//! Lambda driven by the event source mapping.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{agent, call, tokens, var};

/// A POST with the writer's token and an optional Idempotency-Key: status, whether the answer
/// was a replay, and the body.
pub(super) fn post_keyed(path: &str, body: &Value, key: Option<&str>) -> (u16, bool, Value) {
    let mut request = agent()
        .post(format!("{}{path}", var("PIPELINE_API_URL")))
        .header("Authorization", format!("Bearer {}", tokens().writer))
        .header("Content-Type", "application/json");
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    let mut response = request.send(body.to_string()).unwrap();
    let replayed = response.headers().contains_key("idempotent-replayed");
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    (
        status,
        replayed,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

/// A job's status once `done` says so, within 120 s.
pub(super) fn job_when(id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, body) = call("GET", &format!("/jobs/{id}"), "");
        assert_eq!(status, 200, "{body}");
        if done(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "job {id}: {body}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn stored(id: &str) -> Value {
    job_when(id, |job| job["status"] == "stored")
}

const CLIENTS: usize = 16;

#[tokio::test]
#[ignore = "needs a deployed stack: infra/test.sh"]
async fn batch_idempotency_delay_and_attributes_on_the_deployed_stack() {
    tokio::task::spawn_blocking(|| {
        let tag = uuid::Uuid::new_v4().simple().to_string();

        let batch = json!({ "messages": [
            { "content": format!("{tag} a"), "attributes": { "tenant": "acme" } },
            { "content": "x", "delay_seconds": 901 },
            { "content": format!("{tag} b") },
        ]});
        let (status, _, answer) = post_keyed("/messages/batch", &batch, None);
        assert_eq!(status, 207, "{answer}");
        let results = answer["results"].as_array().unwrap();
        assert!(results[1]["error"].as_str().unwrap().contains("900"));
        let a = stored(results[0]["job_id"].as_str().unwrap());
        assert_eq!(a["message"]["attributes"], json!({ "tenant": "acme" }));
        stored(results[2]["job_id"].as_str().unwrap());

        let delayed = json!({ "content": format!("{tag} later"), "delay_seconds": 3 });
        let (status, _, answer) = post_keyed("/messages", &delayed, None);
        assert_eq!(status, 202, "{answer}");
        let later = answer["job_id"].as_str().unwrap().to_owned();
        let scheduled = job_when(&later, |_| true);
        assert_eq!(scheduled["status"], "scheduled", "{scheduled}");
        stored(&later);

        let content = format!("{tag} once");
        let body = json!({ "content": content });
        let key = format!("\"{tag}\"");
        let start = Arc::new(Barrier::new(CLIENTS));
        let answers: Vec<(u16, bool, Value)> = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..CLIENTS)
                .map(|_| {
                    let (start, body, key) = (start.clone(), &body, &key);
                    scope.spawn(move || {
                        start.wait();
                        post_keyed("/messages", body, Some(key))
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let accepted: Vec<&Value> = answers
            .iter()
            .filter(|(s, ..)| *s == 202)
            .map(|(_, _, b)| b)
            .collect();
        let conflicts = answers.iter().filter(|(s, ..)| *s == 409).count();
        assert_eq!(accepted.len() + conflicts, CLIENTS, "{answers:?}");
        let job_id = accepted[0]["job_id"].as_str().unwrap().to_owned();
        assert!(accepted.iter().all(|b| b["job_id"] == job_id.as_str()));
        stored(&job_id);
        let (status, page) = call("GET", "/messages?limit=1000", "");
        assert_eq!(status, 200);
        let copies = page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["content"] == content.as_str())
            .count();
        eprintln!(
            "idempotency on the stack: {CLIENTS} clients, {} answered 202 (one job), {conflicts} answered 409, jobs created: {copies}",
            accepted.len()
        );
        assert_eq!(copies, 1);
        let (status, replayed, again) = post_keyed("/messages", &body, Some(&key));
        assert_eq!((status, replayed), (202, true));
        assert_eq!(again["job_id"], job_id.as_str());
        let other = json!({ "content": format!("{tag} other") });
        assert_eq!(post_keyed("/messages", &other, Some(&key)).0, 422);
    })
    .await
    .unwrap();
}
