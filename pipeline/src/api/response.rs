//! JSON answers, and the API's own description.

use lambda_http::http::header::{HeaderValue, CONTENT_TYPE};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};
use serde::Serialize;

/// The API's OpenAPI 3 document (`openapi.json` at the repository root), served at
/// `GET /openapi.json` by every function and the local runner.
pub const OPENAPI: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi.json"));

pub(super) fn openapi() -> Response<Body> {
    let mut response = Response::new(Body::Text(OPENAPI.to_owned()));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

pub fn json_response(status: StatusCode, body: &impl Serialize) -> Response<Body> {
    // Our response types are plain structs of strings and numbers: serialising cannot fail.
    let text = serde_json::to_string(body).unwrap_or_default();
    let mut response = Response::new(Body::Text(text));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
