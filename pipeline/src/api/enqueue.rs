//! `POST /messages` (and the tutorial's `POST /add_message`): the body is checked before
//! anything is queued (content type, size, JSON shape, content rules), and the answer is a 202
//! with the job id only once the queue has confirmed the message. The message fields and body
//! checks here serve `POST /messages/batch` too ([`super::batch`]).

use std::collections::BTreeMap;

use lambda_http::http::header::CONTENT_TYPE;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::{Map, Value};

use super::answers::Accepted;
use super::idempotent::{send_items, Answer, Outcome};
use super::{ApiError, Writer};
use crate::domain::{
    rfc3339_millis, truncate_chars, Attributes, ContentLimit, Delay, GroupId, JobId, Message,
    MessageContent, Outgoing,
};

/// What the enqueue endpoint accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnqueueLimits {
    pub content: ContentLimit,
    /// Checked before parsing, so a huge body costs nothing but its transfer.
    pub max_body_bytes: usize,
}

impl EnqueueLimits {
    /// Room for the largest valid content with every character JSON-escaped: an astral
    /// character escaped as a surrogate pair (`\ud83d\ude00`) is 12 bytes.
    pub fn for_content(content: ContentLimit) -> Self {
        Self {
            content,
            max_body_bytes: content.max_chars() * 12 + 1024,
        }
    }
}

impl Default for EnqueueLimits {
    fn default() -> Self {
        Self::for_content(ContentLimit::DEFAULT)
    }
}

/// `POST /messages`: one message. Invalid → 400 and nothing queued; queued → 202 with the job
/// id (and `Location: /jobs/<id>`), only once the queue has confirmed it.
#[tracing::instrument(skip_all, fields(job_id))]
pub async fn enqueue(request: &Request, writer: Writer<'_>) -> Result<Response<Body>, ApiError> {
    let fields = read_object(
        request,
        writer.limits.max_body_bytes,
        r#"{"content": "hello"}"#,
    )?;
    let item = parse_item(fields, writer).map_err(ApiError::BadRequest)?;
    tracing::Span::current().record("job_id", tracing::field::display(item.message.id));
    send_items(request, writer, "/messages", vec![Ok(item)], single_answer).await
}

/// The answer to one message: 202, or the queue's failure.
fn single_answer(mut outcomes: Vec<Outcome>) -> Result<Answer, ApiError> {
    match outcomes.pop() {
        Some(Outcome::Queued(id)) => Ok(Answer {
            status: StatusCode::ACCEPTED,
            body: serde_json::to_string(&Accepted {
                message: "Message enqueued".into(),
                job_id: id.to_string(),
                visible_at: visible_at(id),
            })
            .unwrap_or_default(),
            location: Some(format!("/jobs/{id}")),
        }),
        Some(Outcome::Unsent(error)) => Err(ApiError::unconfirmed(error)),
        Some(Outcome::Invalid(error)) => Err(ApiError::BadRequest(error)),
        None => Err(ApiError::unconfirmed(anyhow::anyhow!("no outcome").into())),
    }
}

/// When a job with a delay becomes visible; none without a delay.
pub(super) fn visible_at(id: JobId) -> Option<String> {
    (!id.delay().is_none()).then(|| rfc3339_millis(id.visible_at_millis()))
}

/// The request body as a JSON object: content type, size, UTF-8 and JSON checked first.
/// `example` is what the error shows as a valid body.
pub(super) fn read_object(
    request: &Request,
    max_bytes: usize,
    example: &str,
) -> Result<Map<String, Value>, ApiError> {
    require_json_content_type(request)?;
    let bytes: &[u8] = match request.body() {
        Body::Empty => &[],
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        // `Body` is non-exhaustive; a shape we do not know is not one we can read.
        _ => return Err(ApiError::BadRequest("body could not be read".into())),
    };
    if bytes.len() > max_bytes {
        return Err(ApiError::PayloadTooLarge { limit: max_bytes });
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest(format!(
            "body is empty; send a JSON object such as {example}"
        )));
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| ApiError::BadRequest("body is not valid UTF-8".into()))?;
    let value: Value = serde_json::from_str(text)
        .map_err(|e| ApiError::BadRequest(format!("body is not valid JSON: {e}")))?;
    match value {
        Value::Object(fields) => Ok(fields),
        _ => Err(ApiError::BadRequest(format!(
            "body must be a JSON object such as {example}"
        ))),
    }
}

/// One message's fields: `content` (required), `delay_seconds`, `attributes`, `group_id`.
/// The error says what to fix. A FIFO queue takes groups and no delays; a standard queue
/// the reverse.
pub(super) fn parse_item(
    mut fields: Map<String, Value>,
    writer: Writer<'_>,
) -> Result<Outgoing, String> {
    let (limit, fifo) = (writer.limits.content, writer.queue.is_fifo());
    let content = fields.remove("content");
    let delay = fields.remove("delay_seconds");
    let attributes = fields.remove("attributes");
    let group = fields.remove("group_id");
    // Refusing unknown fields catches typos such as `contnet` and keeps names free for later.
    if let Some(unknown) = fields.keys().next() {
        return Err(format!(
            "unknown field `{}`; a message takes `content`, `delay_seconds`, `attributes` and `group_id`",
            truncate_chars(unknown, 64)
        ));
    }
    let content = match content {
        None => return Err("content is required".into()),
        Some(Value::Null) => return Err("content must not be null".into()),
        Some(Value::String(text)) => {
            MessageContent::parse(text, limit).map_err(|e| e.to_string())?
        }
        Some(_) => return Err("content must be a string".into()),
    };
    let delay = match delay {
        None => Delay::NONE,
        Some(Value::Number(n)) => match n.as_u64() {
            Some(seconds) => Delay::from_seconds(seconds).map_err(|e| e.to_string())?,
            None => {
                return Err(format!(
                    "delay_seconds is {n}; it must be a whole number of seconds from 0 to 900"
                ))
            }
        },
        Some(_) => {
            return Err("delay_seconds must be a whole number of seconds from 0 to 900".into())
        }
    };
    if fifo && !delay.is_none() {
        return Err("delay_seconds is not available on a FIFO queue (SQS delays a FIFO queue as a whole, not its messages); leave it out".into());
    }
    let attributes = match attributes {
        None => Attributes::default(),
        Some(Value::Object(map)) => {
            let mut strings = BTreeMap::new();
            for (name, value) in map {
                match value {
                    Value::String(text) => {
                        strings.insert(name, text);
                    }
                    _ => {
                        return Err(format!(
                            "attribute `{}` must be a string",
                            truncate_chars(&name, 64)
                        ))
                    }
                }
            }
            Attributes::parse(strings).map_err(|e| e.to_string())?
        }
        Some(_) => {
            return Err(
                r#"attributes must be an object of strings, such as {"tenant": "acme"}"#.into(),
            )
        }
    };
    let group = match group {
        None => None,
        Some(_) if !fifo => {
            return Err("group_id needs a FIFO queue, and this deployment's queue is standard (deploy with FifoQueue=true, or run the runner with --fifo); leave it out".into())
        }
        Some(Value::String(text)) => Some(GroupId::parse(text).map_err(|e| e.to_string())?),
        Some(_) => return Err("group_id must be a string".into()),
    };
    let id = writer.ids.issue(delay);
    Ok(Outgoing {
        message: Message::new(id, content, attributes),
        group,
    })
}

fn require_json_content_type(request: &Request) -> Result<(), ApiError> {
    let media_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(str::trim);
    match media_type {
        Some(t) if t.eq_ignore_ascii_case("application/json") => Ok(()),
        _ => Err(ApiError::UnsupportedMediaType),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{body_json, post, test_writer, InMemoryQueue};
    use lambda_http::http::header::{HeaderValue, LOCATION, RETRY_AFTER};

    async fn call(request: Request, queue: &InMemoryQueue) -> Response<Body> {
        enqueue(&request, test_writer(queue))
            .await
            .unwrap_or_else(ApiError::into_response)
    }

    #[tokio::test]
    async fn accepts_a_message_and_queues_it_before_answering_202() {
        let queue = InMemoryQueue::default();

        let response = call(post("/messages", r#"{"content": "hello"}"#), &queue).await;

        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let body = body_json(&response);
        assert_eq!(body["message"], "Message enqueued");
        let job_id = body["job_id"].as_str().unwrap();
        assert_eq!(
            response.headers()[LOCATION].to_str().unwrap(),
            format!("/jobs/{job_id}")
        );
        assert_eq!(response.headers()[RETRY_AFTER], "1");
        let sent = queue.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].id.to_string(), job_id);
        assert_eq!(sent[0].content.as_str(), "hello");
    }

    #[tokio::test]
    async fn a_message_with_a_delay_and_attributes_is_queued_with_them() {
        let queue = InMemoryQueue::default();
        let body = r#"{"content": "later", "delay_seconds": 60, "attributes": {"tenant": "acme", "trace.id": "t-1"}}"#;

        let response = call(post("/messages", body), &queue).await;

        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let sent = &queue.sent()[0];
        assert_eq!(sent.id.delay().seconds(), 60);
        assert_eq!(
            body_json(&response)["visible_at"],
            rfc3339_millis(sent.id.visible_at_millis())
        );
        let attributes: Vec<(&str, &str)> = sent
            .attributes
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(attributes, [("tenant", "acme"), ("trace.id", "t-1")]);
    }

    #[tokio::test]
    async fn delays_and_attributes_outside_sqs_limits_are_400_naming_the_limit() {
        let eleven: serde_json::Map<String, Value> = (0..11)
            .map(|i| (format!("a{i}"), Value::from("v")))
            .collect();
        let cases = [
            (
                serde_json::json!({"content": "x", "delay_seconds": 901}),
                "between 0 and 900",
            ),
            (
                serde_json::json!({"content": "x", "delay_seconds": -1}),
                "whole number",
            ),
            (
                serde_json::json!({"content": "x", "delay_seconds": 1.5}),
                "whole number",
            ),
            (
                serde_json::json!({"content": "x", "delay_seconds": "5"}),
                "whole number",
            ),
            (
                serde_json::json!({"content": "x", "attributes": eleven}),
                "at most 10",
            ),
            (
                serde_json::json!({"content": "x", "attributes": {"AWS.x": "v"}}),
                "reserved",
            ),
            (
                serde_json::json!({"content": "x", "attributes": {"k": 1}}),
                "must be a string",
            ),
            (
                serde_json::json!({"content": "x", "attributes": {"k": ""}}),
                "empty",
            ),
            (
                serde_json::json!({"content": "x", "attributes": ["k"]}),
                "object of strings",
            ),
            (
                serde_json::json!({"content": "x", "group_id": "g"}),
                "needs a FIFO queue",
            ),
        ];
        for (body, needle) in cases {
            let queue = InMemoryQueue::default();
            let response = call(post("/messages", &body.to_string()), &queue).await;
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
            let error = body_json(&response)["error"].as_str().unwrap().to_owned();
            assert!(error.contains(needle), "{body}: {error}");
            assert!(queue.sent().is_empty());
        }
    }

    #[tokio::test]
    async fn a_fifo_queue_takes_a_group_and_refuses_a_delay() {
        let queue = InMemoryQueue::fifo();
        let grouped = r#"{"content": "first", "group_id": "order-42"}"#;
        let delayed = r#"{"content": "x", "delay_seconds": 5}"#;

        assert_eq!(call(post("/messages", grouped), &queue).await.status(), 202);
        let refused = call(post("/messages", delayed), &queue).await;

        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
        assert!(body_json(&refused)["error"]
            .as_str()
            .unwrap()
            .contains("not available on a FIFO queue"));
        let sent = queue.outgoing();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].group.as_ref().unwrap().as_str(), "order-42");
    }

    #[tokio::test]
    async fn a_queue_failure_is_a_503_and_never_a_202() {
        let queue = InMemoryQueue::failing();

        let response = call(post("/messages", r#"{"content": "hello"}"#), &queue).await;

        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let error = body_json(&response)["error"].as_str().unwrap().to_owned();
        assert!(
            !error.contains("injected"),
            "internal cause leaked: {error}"
        );
        assert!(response.headers().contains_key("retry-after"));
    }

    #[tokio::test]
    async fn bad_bodies_are_4xx_with_an_error_that_says_what_to_fix() {
        let cases: &[(&str, u16, &str)] = &[
            ("", 400, "body is empty"),
            ("not json", 400, "not valid JSON"),
            ("[1,2]", 400, "must be a JSON object"),
            ("{}", 400, "content is required"),
            (r#"{"content": null}"#, 400, "must not be null"),
            (r#"{"content": 42}"#, 400, "must be a string"),
            (r#"{"content": ["a"]}"#, 400, "must be a string"),
            (r#"{"content": ""}"#, 400, "must not be empty"),
            (
                r#"{"content": "hi", "extra": 1}"#,
                400,
                "unknown field `extra`",
            ),
        ];
        for (body, status, needle) in cases {
            let queue = InMemoryQueue::default();
            let response = call(post("/messages", body), &queue).await;
            assert_eq!(response.status().as_u16(), *status, "{body}");
            let error = body_json(&response)["error"].as_str().unwrap().to_owned();
            assert!(error.contains(needle), "{body}: {error}");
            assert!(queue.sent().is_empty(), "{body} was queued");
        }
    }

    #[tokio::test]
    async fn content_over_the_limit_is_400_naming_the_limit() {
        let queue = InMemoryQueue::default();
        let body = serde_json::json!({ "content": "x".repeat(4097) }).to_string();

        let response = call(post("/messages", &body), &queue).await;

        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert!(body_json(&response)["error"]
            .as_str()
            .unwrap()
            .contains("4096"));
    }

    #[tokio::test]
    async fn the_longest_content_fits_under_the_size_cap_however_it_is_escaped() {
        let queue = InMemoryQueue::default();
        // Found by schemathesis: 4096 astral characters, each escaped as a surrogate pair.
        let body = format!(r#"{{"content": "{}"}}"#, r"\ud83d\ude00".repeat(4096));

        let response = call(post("/messages", &body), &queue).await;

        assert_eq!(response.status(), StatusCode::ACCEPTED);
        assert_eq!(queue.sent()[0].content.as_str(), "😀".repeat(4096));
    }

    #[tokio::test]
    async fn a_body_over_the_size_cap_is_413() {
        let queue = InMemoryQueue::default();
        let body = format!(r#"{{"content": "{}"}}"#, "x".repeat(100_000));

        let response = call(post("/messages", &body), &queue).await;

        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert!(queue.sent().is_empty());
    }

    #[tokio::test]
    async fn requires_a_json_content_type_and_accepts_parameters() {
        let queue = InMemoryQueue::default();
        let mut wrong = post("/messages", r#"{"content": "hi"}"#);
        wrong
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        let mut missing = post("/messages", r#"{"content": "hi"}"#);
        missing.headers_mut().remove(CONTENT_TYPE);
        let mut with_charset = post("/messages", r#"{"content": "hi"}"#);
        with_charset.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("Application/JSON; charset=utf-8"),
        );

        assert_eq!(call(wrong, &queue).await.status(), 415);
        assert_eq!(call(missing, &queue).await.status(), 415);
        assert_eq!(call(with_charset, &queue).await.status(), 202);
    }

    #[tokio::test]
    async fn reads_base64_encoded_binary_bodies_and_refuses_invalid_utf8() {
        let queue = InMemoryQueue::default();
        let mut binary = post("/messages", "");
        *binary.body_mut() = Body::Binary(br#"{"content": "bin"}"#.to_vec());
        let mut invalid = post("/messages", "");
        *invalid.body_mut() = Body::Binary(vec![b'{', 0xff, b'}']);

        assert_eq!(call(binary, &queue).await.status(), 202);
        let response = call(invalid, &queue).await;
        assert_eq!(response.status(), 400);
        assert!(body_json(&response)["error"]
            .as_str()
            .unwrap()
            .contains("UTF-8"));
    }
}
