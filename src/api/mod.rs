//! The HTTP API, the same wherever it runs: the Lambda functions behind API Gateway call
//! [`enqueue_function`] and [`read_function`]; both share the router and the error mapping,
//! so an unknown path or method gets the same JSON answer whichever function receives it.

mod enqueue;
mod error;
mod read;
mod route;

pub use enqueue::{enqueue, EnqueueLimits};
pub use error::ApiError;
pub use read::{get_message, list_messages};
pub use route::{route, Route};

use lambda_http::http::header::{HeaderValue, CONTENT_TYPE};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Serialize;

use crate::ports::{MessageQueue, MessageStore};

/// The enqueue Lambda: POST /messages and POST /add_message.
pub async fn enqueue_function(
    request: Request,
    queue: &dyn MessageQueue,
    limits: &EnqueueLimits,
) -> Response<Body> {
    let outcome = match route(request.method(), request.uri().path()) {
        Ok(Route::Enqueue) => enqueue(&request, queue, limits).await,
        Ok(other) => Err(ApiError::NotServedHere(other)),
        Err(e) => Err(e),
    };
    outcome.unwrap_or_else(|e| e.into_response())
}

/// The list Lambda: GET /messages and GET /messages/{id}, and the catch-all route that
/// answers 404 and 405 for everything else.
pub async fn read_function(request: Request, store: &dyn MessageStore) -> Response<Body> {
    let outcome = match route(request.method(), request.uri().path()) {
        Ok(Route::List) => list_messages(request.uri().query(), store).await,
        Ok(Route::Get(id)) => get_message(&id, store).await,
        Ok(other) => Err(ApiError::NotServedHere(other)),
        Err(e) => Err(e),
    };
    outcome.unwrap_or_else(|e| e.into_response())
}

pub(crate) fn json_response(status: StatusCode, body: &impl Serialize) -> Response<Body> {
    // Our response types are plain structs of strings and numbers: serialising cannot fail.
    let text = serde_json::to_string(body).unwrap_or_default();
    let mut response = Response::new(Body::Text(text));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
