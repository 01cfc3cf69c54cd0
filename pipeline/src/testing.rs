//! Request helpers for the unit tests of the handlers, and the in-memory fakes they stand on.

use lambda_http::http::header::{HeaderValue, CONTENT_TYPE};
use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};

pub use crate::adapters::memory::*;
use crate::domain::ContentLimit;

pub fn post(path: &str, body: &str) -> Request {
    let mut request = Request::new(Body::Text(body.to_owned()));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = path.parse().unwrap();
    request
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    request
}

pub fn body_json(response: &Response<Body>) -> serde_json::Value {
    assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    serde_json::from_slice(response.body().as_ref()).unwrap()
}

/// The enqueue routes' ports over `queue`, with fresh idempotency keys and default limits.
pub fn test_writer(queue: &InMemoryQueue) -> crate::api::Writer<'_> {
    static LIMITS: crate::api::EnqueueLimits = crate::api::EnqueueLimits {
        content: ContentLimit::DEFAULT,
        max_body_bytes: 4096 * 12 + 1024,
    };
    // Leaked: a test's keys live as long as the test process, which is short.
    let keys: &'static InMemoryKeys = Box::leak(Box::default());
    crate::api::Writer {
        queue,
        keys,
        limits: &LIMITS,
        ids: test_ids(),
        clock: &crate::clock::SystemClock,
    }
}
