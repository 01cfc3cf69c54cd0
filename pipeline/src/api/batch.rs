//! `POST /messages/batch`: up to [`MAX_BATCH`] messages in one request, each validated and
//! answered on its own, in request order.
//!
//! The status says how many were accepted: all 202, some 207 (Multi-Status, as WebDAV and
//! many batch APIs use it: read each result), none 400 (every item was invalid) or 503 (the
//! queue took none, with `Retry-After`). An item is reported with a job id only once the queue
//! confirmed it; an item the queue refused has an error and no job id, and was not queued.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::Value;

use super::answers::{BatchItem, BatchView};
use super::enqueue::{parse_item, read_object, visible_at};
use super::idempotent::{send_items, Answer, Outcome};
use super::{ApiError, Writer};

/// Most messages a batch request holds.
pub const MAX_BATCH: usize = 100;
/// The largest batch body: Lambda takes an event of at most 6 MB, and API Gateway puts the
/// body in it as a JSON string, where escaping can double it (every `"` and `\` becomes two
/// bytes). 2 MiB, doubled, leaves room for the event's headers and context.
pub const MAX_BATCH_BODY_BYTES: usize = 2 * 1024 * 1024;

/// Validates each message, sends the valid ones together and answers per item.
#[tracing::instrument(skip_all, fields(items))]
pub async fn enqueue_batch(
    request: &Request,
    writer: Writer<'_>,
) -> Result<Response<Body>, ApiError> {
    let limit = MAX_BATCH_BODY_BYTES.max(writer.limits.max_body_bytes);
    let example = r#"{"messages": [{"content": "hello"}]}"#;
    let mut fields = read_object(request, limit, example)?;
    let messages = fields.remove("messages");
    if let Some(unknown) = fields.keys().next() {
        return Err(ApiError::BadRequest(format!(
            "unknown field `{}`; the body takes only `messages`",
            crate::domain::truncate_chars(unknown, 64)
        )));
    }
    let messages = match messages {
        Some(Value::Array(messages)) => messages,
        None => {
            return Err(ApiError::BadRequest(format!(
                "messages is required, as in {example}"
            )))
        }
        Some(_) => {
            return Err(ApiError::BadRequest(
                "messages must be an array of messages".into(),
            ))
        }
    };
    if messages.is_empty() || messages.len() > MAX_BATCH {
        return Err(ApiError::BadRequest(format!(
            "messages holds {} items; send 1 to {MAX_BATCH} (split larger batches)",
            messages.len()
        )));
    }
    tracing::Span::current().record("items", messages.len());
    let items = messages
        .into_iter()
        .map(|value| match value {
            Value::Object(fields) => parse_item(fields, writer),
            _ => Err(r#"each message must be a JSON object such as {"content": "hello"}"#.into()),
        })
        .collect();
    send_items(request, writer, "/messages/batch", items, batch_answer).await
}

fn batch_answer(outcomes: Vec<Outcome>) -> Result<Answer, ApiError> {
    let mut results = Vec::with_capacity(outcomes.len());
    let (mut accepted, mut unsent) = (0, 0);
    for outcome in outcomes {
        results.push(match outcome {
            Outcome::Queued(id) => {
                accepted += 1;
                BatchItem::Queued {
                    job_id: id.to_string(),
                    visible_at: visible_at(id),
                }
            }
            Outcome::Invalid(error) => BatchItem::Refused { error },
            Outcome::Unsent(cause) => {
                unsent += 1;
                tracing::error!(error = ?cause, "the queue did not confirm a message of a batch");
                BatchItem::Refused {
                    error: "the queue did not confirm this message, so it was not queued; send it again".into(),
                }
            }
        });
    }
    let rejected = results.len() - accepted;
    let status = match (accepted, rejected) {
        (_, 0) => StatusCode::ACCEPTED,
        (0, _) if unsent > 0 => StatusCode::SERVICE_UNAVAILABLE,
        (0, _) => StatusCode::BAD_REQUEST,
        _ => StatusCode::MULTI_STATUS,
    };
    tracing::info!(accepted, rejected, "batch enqueued");
    let view = BatchView {
        error: (accepted == 0)
            .then(|| "no message of the batch was accepted; each result says why".to_owned()),
        accepted,
        rejected,
        results,
    };
    Ok(Answer {
        status,
        body: serde_json::to_string(&view).unwrap_or_default(),
        location: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{body_json, post, test_writer, InMemoryQueue};
    use serde_json::json;

    async fn call(body: &str, queue: &InMemoryQueue) -> Response<Body> {
        enqueue_batch(&post("/messages/batch", body), test_writer(queue))
            .await
            .unwrap_or_else(ApiError::into_response)
    }

    fn batch(contents: &[&str]) -> String {
        let messages: Vec<Value> = contents.iter().map(|c| json!({ "content": c })).collect();
        json!({ "messages": messages }).to_string()
    }

    #[tokio::test]
    async fn a_valid_batch_is_queued_at_once_and_answered_in_request_order() {
        let queue = InMemoryQueue::default();
        let contents: Vec<String> = (0..100).map(|i| format!("m{i}")).collect();
        let contents: Vec<&str> = contents.iter().map(String::as_str).collect();

        let response = call(&batch(&contents), &queue).await;

        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let body = body_json(&response);
        assert_eq!(
            (body["accepted"].as_u64(), body["rejected"].as_u64()),
            (Some(100), Some(0))
        );
        let sent = queue.sent();
        let results = body["results"].as_array().unwrap();
        for (i, (result, message)) in results.iter().zip(&sent).enumerate() {
            assert_eq!(result["job_id"], message.id.to_string());
            assert_eq!(message.content.as_str(), format!("m{i}"));
        }
    }

    #[tokio::test]
    async fn invalid_messages_are_refused_one_by_one_and_the_rest_queued_with_207() {
        let queue = InMemoryQueue::default();
        let body = json!({ "messages": [
            { "content": "good" },
            { "content": "" },
            "not an object",
            { "content": "x", "delay_seconds": 901 },
            { "content": "also good", "attributes": { "k": "v" } },
        ]})
        .to_string();

        let response = call(&body, &queue).await;

        assert_eq!(response.status(), StatusCode::MULTI_STATUS);
        let body = body_json(&response);
        assert_eq!(
            (body["accepted"].as_u64(), body["rejected"].as_u64()),
            (Some(2), Some(3))
        );
        let results = body["results"].as_array().unwrap();
        let sent = queue.sent();
        assert_eq!(sent.len(), 2);
        assert_eq!(results[0]["job_id"], sent[0].id.to_string());
        assert_eq!(results[4]["job_id"], sent[1].id.to_string());
        for (i, needle) in [
            (1, "must not be empty"),
            (2, "JSON object"),
            (3, "0 and 900"),
        ] {
            assert!(results[i]["job_id"].is_null());
            let error = results[i]["error"].as_str().unwrap();
            assert!(error.contains(needle), "{i}: {error}");
        }
    }

    #[tokio::test]
    async fn a_message_the_queue_refused_is_never_reported_queued() {
        let queue = InMemoryQueue::refusing("refused");

        let response = call(&batch(&["ok", "refused", "ok too"]), &queue).await;

        assert_eq!(response.status(), StatusCode::MULTI_STATUS);
        let body = body_json(&response);
        let results = body["results"].as_array().unwrap();
        assert!(results[1]["job_id"].is_null());
        assert!(results[1]["error"].as_str().unwrap().contains("not queued"));
        let sent: Vec<String> = queue.sent().iter().map(|m| m.id.to_string()).collect();
        assert_eq!(
            sent,
            [
                results[0]["job_id"].as_str().unwrap(),
                results[2]["job_id"].as_str().unwrap()
            ]
        );
    }

    #[tokio::test]
    async fn none_accepted_is_400_when_all_are_invalid_and_503_when_the_queue_took_none() {
        let invalid = call(&batch(&["", " "]), &InMemoryQueue::default()).await;
        assert_eq!(invalid.status(), StatusCode::BAD_REQUEST);
        assert!(body_json(&invalid)["error"].is_string());

        let down = call(&batch(&["a", "b"]), &InMemoryQueue::failing()).await;
        assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(down.headers().contains_key("retry-after"));
        assert_eq!(body_json(&down)["accepted"], 0);
    }

    #[tokio::test]
    async fn bodies_that_are_not_batches_are_4xx_and_queue_nothing() {
        let too_many = batch(&vec!["x"; 101]);
        let huge = batch(&["y".repeat(4000).as_str(); 100]).replace('y', "\\u0079");
        let cases: &[(&str, u16, &str)] = &[
            ("{}", 400, "messages is required"),
            (r#"{"messages": []}"#, 400, "1 to 100"),
            (&too_many, 400, "101 items"),
            (r#"{"messages": {}}"#, 400, "must be an array"),
            (r#"{"messages": [], "x": 1}"#, 400, "unknown field `x`"),
            (&huge, 413, "2097152"),
        ];
        for (body, status, needle) in cases {
            let queue = InMemoryQueue::default();
            let response = call(body, &queue).await;
            assert_eq!(response.status().as_u16(), *status, "{needle}");
            let error = body_json(&response)["error"].as_str().unwrap().to_owned();
            assert!(error.contains(needle), "{needle}: {error}");
            assert!(queue.sent().is_empty());
        }
    }
}
