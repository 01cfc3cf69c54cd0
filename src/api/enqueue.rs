//! `POST /messages` (and the tutorial's `POST /add_message`): the body is checked before
//! anything is queued (content type, size, JSON shape, content rules), and the answer is a 202
//! with the job id only once the queue has confirmed the message.

use lambda_http::http::header::{HeaderValue, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use serde_json::Value;

use super::{json_response, ApiError};
use crate::domain::{ContentLimit, Message, MessageContent};
use crate::ports::MessageQueue;

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

#[derive(Serialize)]
struct Accepted {
    message: &'static str,
    job_id: String,
}

/// Validates the request and answers 202 only after the queue has accepted the message.
#[tracing::instrument(skip_all, fields(job_id))]
pub async fn enqueue(
    request: &Request,
    queue: &dyn MessageQueue,
    limits: &EnqueueLimits,
) -> Result<Response<Body>, ApiError> {
    let content = parse_body(request, limits)?;
    let message = Message::accept(content);
    tracing::Span::current().record("job_id", tracing::field::display(message.id));
    queue
        .send(&message)
        .await
        .map_err(ApiError::QueueUnconfirmed)?;
    tracing::info!(bytes = message.content.as_str().len(), "message enqueued");

    let mut response = json_response(
        StatusCode::ACCEPTED,
        &Accepted {
            message: "Message enqueued",
            job_id: message.id.to_string(),
        },
    );
    // The asynchronous request-reply pattern (RFC 9110 §15.3.3): where to ask about the job,
    // and when.
    if let Ok(location) = HeaderValue::from_str(&format!("/jobs/{}", message.id)) {
        response.headers_mut().insert(LOCATION, location);
    }
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    Ok(response)
}

fn parse_body(request: &Request, limits: &EnqueueLimits) -> Result<MessageContent, ApiError> {
    require_json_content_type(request)?;
    let bytes: &[u8] = match request.body() {
        Body::Empty => &[],
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        // `Body` is non-exhaustive; a shape we do not know is not one we can read.
        _ => return Err(ApiError::BadRequest("body could not be read".into())),
    };
    if bytes.len() > limits.max_body_bytes {
        return Err(ApiError::PayloadTooLarge {
            limit: limits.max_body_bytes,
        });
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest(
            r#"body is empty; send a JSON object such as {"content": "hello"}"#.into(),
        ));
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| ApiError::BadRequest("body is not valid UTF-8".into()))?;
    let value: Value = serde_json::from_str(text)
        .map_err(|e| ApiError::BadRequest(format!("body is not valid JSON: {e}")))?;
    let Value::Object(mut fields) = value else {
        return Err(ApiError::BadRequest(
            r#"body must be a JSON object such as {"content": "hello"}"#.into(),
        ));
    };
    let content = fields.remove("content");
    // Refusing unknown fields catches typos such as `contnet` and keeps names free for later.
    if let Some(unknown) = fields.keys().next() {
        return Err(ApiError::BadRequest(format!(
            "unknown field `{}`; the body takes only `content`",
            unknown.chars().take(64).collect::<String>()
        )));
    }
    match content {
        None => Err(ApiError::BadRequest("content is required".into())),
        Some(Value::Null) => Err(ApiError::BadRequest("content must not be null".into())),
        Some(Value::String(text)) => Ok(MessageContent::parse(text, limits.content)?),
        Some(_) => Err(ApiError::BadRequest("content must be a string".into())),
    }
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
    use crate::testing::{body_json, post, InMemoryQueue};

    async fn call(request: Request, queue: &InMemoryQueue) -> Response<Body> {
        enqueue(&request, queue, &EnqueueLimits::default())
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
