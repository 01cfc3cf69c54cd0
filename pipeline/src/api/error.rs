//! Every way a request can fail, and the one function that turns each into its status and
//! JSON body: a 4xx says what to fix, a 5xx says nothing internal (the cause goes to the log).

use lambda_http::http::header::{HeaderValue, ALLOW, RETRY_AFTER, WWW_AUTHENTICATE};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};
use serde::Serialize;

use super::response::json_response;
use super::Route;
use crate::domain::{ContentError, CursorError, PageLimitError};
use crate::ports::PortError;

/// Every way a request can fail, each mapped to one status in [`ApiError::into_response`].
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    BadContent(#[from] ContentError),
    #[error(transparent)]
    BadLimit(#[from] PageLimitError),
    #[error(transparent)]
    BadCursor(#[from] CursorError),
    #[error("Content-Type must be application/json")]
    UnsupportedMediaType,
    #[error("body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("no message with id `{0}`")]
    MessageNotFound(String),
    #[error("no job with id `{0}`: it was never issued, or it is older than the queue's retention and was not stored")]
    JobNotFound(String),
    #[error("`{0}` is not in the dead-letter queue")]
    NotDeadLettered(String),
    #[error("dead letter `{0}` is not a message envelope of this pipeline (another producer sent it straight to the queue): requeueing it would only fail again. Read it in the dead-letter queue, fix its producer, then delete it (DELETE /dead-letters/{0})")]
    RawNotRequeueable(String),
    #[error("job `{0}` failed its last delivery, but the queue moves it to the dead-letter queue only at its next receive: retry shortly")]
    NotYetDeadLettered(String),
    #[error("no such path: `{0}`; see /openapi.json for the API's paths")]
    UnknownPath(String),
    #[error("method not allowed here; allowed: {allow}")]
    MethodNotAllowed { allow: String },
    /// No valid bearer token (the local runner's gateway; API Gateway answers this itself).
    #[error("send a valid token: Authorization: Bearer <token>")]
    Unauthorized,
    /// A valid token without the route's scope, or no authorizer context at all.
    #[error("{reason}")]
    Forbidden { reason: String },
    /// A route that reached a function which does not serve it: a deployment mistake.
    #[error("route {0:?} is not served by this function")]
    NotServedHere(Route),
    /// A backend (SQS, DynamoDB, SQLite) failed transiently: a 503 with `Retry-After`. The
    /// client sees a generic body; the cause goes to the log. Made by `From<PortError>`.
    #[error("a backend is unavailable")]
    Unavailable(#[source] PortError),
    /// A backend refused the call itself, so that no retry can help: a 500 with a generic body.
    #[error("a backend refused the call")]
    BackendRefused(#[source] PortError),
    /// A request with this idempotency key is being served now.
    #[error(
        "a request with this Idempotency-Key is still being processed; retry after it is answered"
    )]
    KeyInProgress,
    /// The idempotency key was used for a request with another body.
    #[error("this Idempotency-Key was already used for a request with another body; use a new key for a new request")]
    KeyReused,
    /// SQS did not confirm a message: no 202, but after a timeout SQS may hold it anyway.
    #[error("the queue did not confirm the message")]
    QueueUnconfirmed(#[source] PortError),
}

impl From<PortError> for ApiError {
    fn from(cause: PortError) -> Self {
        if cause.is_transient() {
            Self::Unavailable(cause)
        } else {
            Self::BackendRefused(cause)
        }
    }
}

impl ApiError {
    /// A send the queue did not confirm: one that failed for good queued nothing, and is no
    /// send to retry.
    pub fn unconfirmed(cause: PortError) -> Self {
        if cause.is_transient() {
            Self::QueueUnconfirmed(cause)
        } else {
            Self::BackendRefused(cause)
        }
    }
}

impl PartialEq for ApiError {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    /// API Gateway's own 401/403 bodies carry only `message` (`Unauthorized`, `Forbidden`);
    /// ours carry it too, so a client reads one field whoever refused it.
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'static str>,
    error: &'a str,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) | Self::BadContent(_) | Self::BadLimit(_) | Self::BadCursor(_) => {
                StatusCode::BAD_REQUEST
            }
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::MessageNotFound(_)
            | Self::JobNotFound(_)
            | Self::NotDeadLettered(_)
            | Self::UnknownPath(_) => StatusCode::NOT_FOUND,
            Self::NotYetDeadLettered(_) | Self::KeyInProgress | Self::RawNotRequeueable(_) => {
                StatusCode::CONFLICT
            }
            Self::KeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::NotServedHere(_) | Self::BackendRefused(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unavailable(_) | Self::QueueUnconfirmed(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn into_response(self) -> Response<Body> {
        let status = self.status();
        let message = match &self {
            Self::BackendRefused(cause) => {
                tracing::error!(error = ?cause, "a backend refused the call");
                "internal error".to_owned()
            }
            Self::Unavailable(cause) => {
                tracing::error!(error = ?cause, "backend unavailable");
                "the service is temporarily unavailable; retry shortly".to_owned()
            }
            Self::QueueUnconfirmed(cause) => {
                tracing::error!(error = ?cause, "the queue did not confirm a message");
                "the queue did not confirm the message, so it was not acknowledged; after a \
                 timeout it may still have been queued, and a retry may then make a second job \
                 with the same content. Retry shortly."
                    .to_owned()
            }
            Self::NotServedHere(route) => {
                tracing::error!(?route, "route mapped to the wrong function");
                "internal error".to_owned()
            }
            other => other.to_string(),
        };
        let gateway_message = match &self {
            Self::Unauthorized => Some("Unauthorized"),
            Self::Forbidden { .. } => Some("Forbidden"),
            _ => None,
        };
        let body = ErrorBody {
            message: gateway_message,
            error: &message,
        };
        let mut response = json_response(status, &body);
        let headers = response.headers_mut();
        match &self {
            Self::MethodNotAllowed { allow } => {
                if let Ok(value) = HeaderValue::from_str(allow) {
                    headers.insert(ALLOW, value);
                }
            }
            // RFC 6750: a 401 for a bearer-protected resource names the scheme.
            Self::Unauthorized => {
                headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::Unavailable(_) | Self::QueueUnconfirmed(_) | Self::KeyInProgress => {
                headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Self::NotYetDeadLettered(_) => {
                headers.insert(RETRY_AFTER, HeaderValue::from_static("30"));
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(response: &Response<Body>) -> serde_json::Value {
        serde_json::from_slice(response.body().as_ref()).unwrap()
    }

    #[test]
    fn a_transient_backend_failure_is_a_503_to_retry_and_a_permanent_one_a_500() {
        let transient =
            ApiError::from(PortError::transient(anyhow::anyhow!("throttled"))).into_response();
        let permanent = ApiError::from(PortError::permanent(anyhow::anyhow!(
            "ResourceNotFoundException: no such table"
        )))
        .into_response();

        assert_eq!(transient.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(transient.headers()[RETRY_AFTER], "1");
        assert_eq!(permanent.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!permanent.headers().contains_key(RETRY_AFTER));
        // The cause goes to the log, never to the client.
        assert_eq!(body(&permanent)["error"], "internal error");
        assert!(!body(&transient).to_string().contains("throttled"));
    }

    #[test]
    fn a_send_that_failed_for_good_is_no_unconfirmed_send_to_retry() {
        let refused = ApiError::unconfirmed(PortError::permanent(anyhow::anyhow!("AccessDenied")))
            .into_response();

        assert_eq!(refused.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!refused.headers().contains_key(RETRY_AFTER));
    }
}
