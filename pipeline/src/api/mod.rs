//! The HTTP API on `lambda_http` types, the same wherever it runs: each Lambda function behind
//! API Gateway calls its own entry point with the ports it holds ([`enqueue_function`],
//! [`read_function`], [`operate_function`]); the local runner holds every port and calls
//! [`Api::handle`]. All share the route table ([`route`]), the authorization and the error
//! mapping, so every path and method gets the same answer anywhere.
//!
//! One file per concern: `route` (the table), `auth` (scopes), `error` (one enum, one
//! mapping to a response), `response` (JSON answers and the OpenAPI document), and one per
//! route group: `enqueue` and `batch` (with `idempotent`, the keyed send), `read`, `operate`,
//! `dashboard`.

mod answers;
mod auth;
mod batch;
mod dashboard;
mod enqueue;
mod error;
mod idempotent;
mod operate;
#[cfg(test)]
mod property_tests;
mod read;
mod response;
mod route;

pub use answers::{
    Accepted, BatchItem, BatchView, CountView, DeadLetterPageView, DeletedView, FailureView,
    JobView, MessageView, OneDeadLetterView, PageView, QueueCountsView, RequeueAllView, StatsView,
};
#[cfg(test)]
pub(crate) use auth::tests::with_scopes;
pub use auth::{authorize, Caller, Scope};
pub use batch::{enqueue_batch, MAX_BATCH, MAX_BATCH_BODY_BYTES};
pub use enqueue::{enqueue, EnqueueLimits};
pub use error::ApiError;
pub use idempotent::IDEMPOTENCY_KEY;
pub use operate::{PURGE_CONFIRMATION, REQUEUE_ALL_BUDGET};
pub use read::{get_message, list_messages};
pub use response::{json_response, OPENAPI};
pub use route::{route, Access, Route, RouteSpec, CATCH_ALL_ACCESS, ROUTES};

use lambda_http::{Body, Request, Response};

use std::time::Duration;

use crate::clock::Clock;
use crate::domain::{CursorKey, JobIdKeys};
use crate::ports::{FailureLog, IdempotencyKeys, MessageQueue, MessageStore, Operations};

/// The enqueue Lambda: POST /messages, POST /messages/batch and POST /add_message.
pub async fn enqueue_function(request: Request, writer: Writer<'_>) -> Response<Body> {
    let response = dispatch(request, Some(writer), None, None).await;
    crate::metrics::enqueue_outcome(
        crate::metrics::Document::for_this_function(writer.clock),
        enqueue_outcome(&response),
    )
    .emit();
    response
}

/// What an enqueue answer queued: the messages its handler counted, a replay, or nothing.
fn enqueue_outcome(response: &Response<Body>) -> crate::metrics::EnqueueOutcome {
    use crate::metrics::EnqueueOutcome;
    if response.headers().contains_key(idempotent::REPLAYED) {
        return EnqueueOutcome::Replayed;
    }
    match response.extensions().get::<idempotent::QueuedMessages>() {
        Some(idempotent::QueuedMessages(queued)) if *queued > 0 => {
            EnqueueOutcome::Accepted(*queued)
        }
        _ => EnqueueOutcome::Refused(response.status()),
    }
}

/// The list Lambda: GET /messages, GET /messages/{id} and GET /jobs/{id}, and the catch-all
/// route that answers 404 and 405 for everything else.
pub async fn read_function(request: Request, reader: Reader<'_>) -> Response<Body> {
    dispatch(request, None, Some(reader), None).await
}

/// The operate Lambda: GET /stats, the dead-letter routes, DELETE /messages/{id} and the
/// dashboard's files.
pub async fn operate_function(request: Request, operator: Operator<'_>) -> Response<Body> {
    dispatch(request, None, None, Some(operator)).await
}

/// The whole API at once, as the local runner serves it: every route has its port.
#[derive(Debug, Clone, Copy)]
pub struct Api<'a> {
    pub writer: Writer<'a>,
    pub reader: Reader<'a>,
    pub operator: Operator<'a>,
}

impl Api<'_> {
    pub async fn handle(&self, request: Request) -> Response<Body> {
        dispatch(
            request,
            Some(self.writer),
            Some(self.reader),
            Some(self.operator),
        )
        .await
    }
}

/// What the enqueue routes need: the queue, the idempotency keys and the body limits.
#[derive(Debug, Clone, Copy)]
pub struct Writer<'a> {
    pub queue: &'a dyn MessageQueue,
    pub keys: &'a dyn IdempotencyKeys,
    pub limits: &'a EnqueueLimits,
    /// Tags each new job id, so that the read routes can tell it from a forgery.
    pub ids: &'a JobIdKeys,
    /// Stamps the function's metrics.
    pub clock: &'a dyn Clock,
}

/// What the read routes need: the store, the key that signs and checks page cursors, the
/// failure notes, and how long the queue keeps a message (past it, an unknown job is a 404).
#[derive(Debug, Clone, Copy)]
pub struct Reader<'a> {
    pub store: &'a dyn MessageStore,
    pub cursors: &'a CursorKey,
    pub failures: &'a dyn FailureLog,
    pub retention: Duration,
    /// What "now" is for the job-status route (a job past the retention is unknown).
    pub clock: &'a dyn Clock,
    /// Checks the job ids in paths: one this pipeline did not issue is a 404 before any read.
    pub ids: &'a JobIdKeys,
}

/// What the operator's routes need: the dead-letter side, the store (to delete a message:
/// on AWS the operate role may write tombstones, never read a message) and the id keys.
#[derive(Debug, Clone, Copy)]
pub struct Operator<'a> {
    pub operations: &'a dyn Operations,
    pub store: &'a dyn MessageStore,
    pub ids: &'a JobIdKeys,
}

/// Routes a request to the handler that serves it, once the caller is authorized for the
/// route ([`authorize`]: before any queue or store call). Private: the entry points above
/// give it exactly the ports of their function (or, [`Api`], all of them), so the only way a
/// route finds its port missing is API Gateway sending it to another function than the
/// template says (`NotServedHere`, a 500: tests/template.rs checks the template's routes).
async fn dispatch(
    request: Request,
    writer: Option<Writer<'_>>,
    reader: Option<Reader<'_>>,
    operator: Option<Operator<'_>>,
) -> Response<Body> {
    let routed = match route(request.method(), request.uri().path()) {
        Ok((route, access)) => authorize(&request, access).map(|()| route),
        // Even a 404 or 405 is for authenticated callers only, as behind API Gateway.
        Err(refusal) => authorize(&request, CATCH_ALL_ACCESS).and(Err(refusal)),
    };
    let query = request.uri().query();
    let outcome = match (routed, writer, reader, operator) {
        (Ok(Route::Enqueue), Some(writer), _, _) => enqueue(&request, writer).await,
        (Ok(Route::EnqueueBatch), Some(writer), _, _) => enqueue_batch(&request, writer).await,
        (Ok(Route::List), _, Some(reader), _) => list_messages(query, reader).await,
        (Ok(Route::Get(id)), _, Some(reader), _) => get_message(&id, reader).await,
        (Ok(Route::JobStatus(id)), _, Some(reader), _) => operate::job_status(&id, reader).await,
        (Ok(Route::Stats), _, _, Some(op)) => operate::stats(op.operations).await,
        (Ok(Route::StatsHistory), _, _, Some(op)) => operate::history(query, op.operations).await,
        (Ok(Route::DeadLetters), _, _, Some(op)) => {
            operate::dead_letters(query, op.operations).await
        }
        (Ok(Route::Requeue(id)), _, _, Some(op)) => operate::requeue(&id, op).await,
        (Ok(Route::RequeueAll), _, _, Some(op)) => operate::requeue_all(op.operations).await,
        (Ok(Route::PurgeDeadLetters), _, _, Some(op)) => operate::purge(query, op.operations).await,
        (Ok(Route::DeleteDeadLetter(id)), _, _, Some(op)) => {
            operate::delete_dead_letter(&id, op).await
        }
        (Ok(Route::DeleteMessage(id)), _, _, Some(op)) => operate::delete_message(&id, op).await,
        (Ok(Route::Dashboard(file)), _, _, _) => dashboard::file(&file, request.uri().path()),
        (Ok(Route::OpenApi), _, _, _) => Ok(response::openapi()),
        (Ok(other), _, _, _) => Err(ApiError::NotServedHere(other)),
        (Err(e), _, _, _) => Err(e),
    };
    outcome.unwrap_or_else(|e| e.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ContentLimit, PageLimit};
    use crate::testing::{
        body_json, post, test_writer, InMemoryFailureLog, InMemoryQueue, InMemoryStore,
    };
    use lambda_http::http::header::HeaderValue;
    use lambda_http::http::StatusCode;

    fn get(path: &str) -> Request {
        let mut request = Request::default();
        *request.uri_mut() = path.parse().unwrap();
        request
    }

    #[tokio::test]
    async fn a_route_deployed_without_its_authorizer_fails_closed_before_the_queue() {
        let queue = InMemoryQueue::default();
        let anonymous = post("/messages", r#"{"content": "hi"}"#);
        let response = enqueue_function(anonymous, test_writer(&queue)).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(body_json(&response)["message"], "Forbidden");
        assert!(queue.sent().is_empty());

        let reader = with_scopes(post("/messages", r#"{"content": "hi"}"#), &[Scope::Read]);
        let response = enqueue_function(reader, test_writer(&queue)).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert!(queue.sent().is_empty());

        let writer = with_scopes(post("/messages", r#"{"content": "hi"}"#), &[Scope::Write]);
        let response = enqueue_function(writer, test_writer(&queue)).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        assert_eq!(queue.sent().len(), 1);
    }

    #[tokio::test]
    async fn the_enqueue_metric_counts_messages_queued_not_requests() {
        use crate::metrics::EnqueueOutcome;
        let queue = InMemoryQueue::refusing("no");
        let writer = test_writer(&queue);
        let write = |path: &str, body: &str| with_scopes(post(path, body), &[Scope::Write]);
        let batch = r#"{"messages": [{"content": "a"}, {"content": "no"}, {"content": "b"}]}"#;
        let mut keyed = write("/messages", r#"{"content": "k"}"#);
        keyed
            .headers_mut()
            .insert("idempotency-key", HeaderValue::from_static("m-1"));

        let single = dispatch(
            write("/messages", r#"{"content": "x"}"#),
            Some(writer),
            None,
            None,
        )
        .await;
        let partly = dispatch(write("/messages/batch", batch), Some(writer), None, None).await;
        let invalid = dispatch(write("/messages", "{}"), Some(writer), None, None).await;
        dispatch(keyed.clone(), Some(writer), None, None).await;
        let replayed = dispatch(keyed, Some(writer), None, None).await;

        assert_eq!(enqueue_outcome(&single), EnqueueOutcome::Accepted(1));
        assert_eq!(enqueue_outcome(&partly), EnqueueOutcome::Accepted(2));
        assert_eq!(
            enqueue_outcome(&invalid),
            EnqueueOutcome::Refused(StatusCode::BAD_REQUEST)
        );
        assert_eq!(enqueue_outcome(&replayed), EnqueueOutcome::Replayed);
    }

    /// The list function's ports over an empty store, with one cursor key for every test.
    fn empty_reader() -> Reader<'static> {
        static STORE: std::sync::LazyLock<InMemoryStore> =
            std::sync::LazyLock::new(InMemoryStore::default);
        static KEY: std::sync::LazyLock<CursorKey> = std::sync::LazyLock::new(CursorKey::random);
        static FAILURES: std::sync::LazyLock<InMemoryFailureLog> =
            std::sync::LazyLock::new(InMemoryFailureLog::default);
        Reader {
            store: &*STORE,
            cursors: &KEY,
            failures: &*FAILURES,
            retention: Duration::from_secs(3600),
            clock: &crate::clock::SystemClock,
            ids: crate::testing::test_ids(),
        }
    }

    /// An event file under `events/`, changed by `edit` before it is parsed.
    fn event_file(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> Request {
        let path = format!("{}/../events/{name}", env!("CARGO_MANIFEST_DIR"));
        let mut event: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        edit(&mut event);
        lambda_http::request::from_str(&event.to_string()).unwrap()
    }

    fn sample_event(name: &str) -> Request {
        event_file(name, |_| {})
    }

    // The events README's `cargo lambda invoke` lines send: as API Gateway hands requests on
    // once its JWT authorizer accepted the token.
    #[tokio::test]
    async fn the_sample_api_events_in_events_are_authorized_as_the_gateway_would() {
        let queue = InMemoryQueue::default();
        let posted = enqueue_function(sample_event("post-message.json"), test_writer(&queue)).await;
        assert_eq!(posted.status(), StatusCode::ACCEPTED);
        let invalid = sample_event("post-invalid-message.json");
        let refused = enqueue_function(invalid, test_writer(&queue)).await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
        let writer = test_writer(&queue);
        let batch = enqueue_function(sample_event("post-batch.json"), writer).await;
        assert_eq!(batch.status(), StatusCode::ACCEPTED);
        assert_eq!(body_json(&batch)["accepted"], 3);
        let again = enqueue_function(sample_event("post-batch.json"), writer).await;
        assert_eq!(again.headers()["idempotent-replayed"], "true");
        assert_eq!(body_json(&again), body_json(&batch));
        assert_eq!(queue.sent().len(), 4);
        let reader = empty_reader();
        let listed = read_function(sample_event("list-messages.json"), reader).await;
        assert_eq!(listed.status(), StatusCode::OK);
        let operations = crate::testing::EmptyOperations;
        let operator = Operator {
            operations: &operations,
            store: reader.store,
            ids: reader.ids,
        };
        let stats = operate_function(sample_event("get-stats.json"), operator).await;
        assert_eq!(stats.status(), StatusCode::OK);
        assert_eq!(body_json(&stats)["dead_letter_queue"]["count"], 0);
    }

    /// An AWS sample event from `events/aws-samples/` (the `aws_lambda_events` crate's own),
    /// changed by `edit` before it is parsed.
    fn aws_sample(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> Request {
        event_file(&format!("aws-samples/{name}"), edit)
    }

    // What API Gateway would hand each function: without a JWT context (none, IAM, a Lambda
    // authorizer) every route is refused, fail-closed; with one, a path the API does not
    // serve is its JSON 404, and a scoped route answers only the right scope.
    #[tokio::test]
    async fn the_aws_sample_events_get_the_documented_json_answers() {
        let reader = empty_reader();
        let queue = InMemoryQueue::default();
        let no_edit = |_: &mut serde_json::Value| {};
        let to_messages = |scopes: &'static [&'static str]| {
            move |event: &mut serde_json::Value| {
                event["rawPath"] = "/messages".into();
                event["requestContext"]["http"]["path"] = "/messages".into();
                event["requestContext"]["authorizer"]["jwt"]["scopes"] = scopes.into();
            }
        };
        let jwt = "example-apigw-v2-request-jwt-authorizer.json";
        let cases: Vec<(&str, Request, StatusCode)> = vec![
            (
                "no authorizer",
                aws_sample("example-apigw-v2-request-no-authorizer.json", no_edit),
                StatusCode::FORBIDDEN,
            ),
            (
                "IAM",
                aws_sample("example-apigw-v2-request-iam.json", no_edit),
                StatusCode::FORBIDDEN,
            ),
            (
                "Lambda authorizer",
                aws_sample("example-apigw-v2-request-lambda-authorizer.json", no_edit),
                StatusCode::FORBIDDEN,
            ),
            (
                "multi-value",
                aws_sample(
                    "example-apigw-v2-request-multi-value-parameters.json",
                    no_edit,
                ),
                StatusCode::FORBIDDEN,
            ),
            (
                "JWT, unknown path",
                aws_sample(jwt, no_edit),
                StatusCode::NOT_FOUND,
            ),
            (
                "JWT, wrong scopes",
                aws_sample(jwt, to_messages(&["scope1", "scope2"])),
                StatusCode::FORBIDDEN,
            ),
            (
                "JWT, messages/read",
                aws_sample(jwt, to_messages(&["messages/read"])),
                StatusCode::OK,
            ),
        ];
        for (case, request, expected) in cases {
            let copy = request.clone();
            let listed = read_function(request, reader).await;
            assert_eq!(listed.status(), expected, "{case}");
            assert!(body_json(&listed).is_object(), "{case}");
            // At the enqueue function (where the gateway sends only its POSTs) these are
            // refused or unknown; an authorized GET /messages there would be a routing mistake.
            if expected != StatusCode::OK {
                let posted = enqueue_function(copy, test_writer(&queue)).await;
                let status = posted.status();
                assert!(status.is_client_error(), "{case}: {status}");
            }
        }
        assert!(queue.sent().is_empty());
    }

    #[tokio::test]
    async fn reads_need_the_read_scope_and_the_document_nothing() {
        let reader = empty_reader();
        for (request, expected) in [
            (get("/messages"), StatusCode::FORBIDDEN),
            (get("/messages/x"), StatusCode::FORBIDDEN),
            (get("/nowhere"), StatusCode::FORBIDDEN),
            (
                with_scopes(get("/messages"), &[Scope::Write]),
                StatusCode::FORBIDDEN,
            ),
            (
                with_scopes(get("/messages"), &[Scope::Read]),
                StatusCode::OK,
            ),
            (
                with_scopes(get("/nowhere"), &[Scope::Write]),
                StatusCode::NOT_FOUND,
            ),
            (get("/openapi.json"), StatusCode::OK),
        ] {
            let path = request.uri().path().to_owned();
            let response = read_function(request, reader).await;
            assert_eq!(response.status(), expected, "{path}");
        }
    }

    #[test]
    fn the_openapi_document_declares_the_scope_of_every_route_and_its_refusals() {
        let document: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        for spec in ROUTES {
            let operation = &document["paths"][spec.path][spec.method.to_lowercase()];
            let label = format!("{} {}", spec.method, spec.path);
            let expected = match spec.access {
                Access::Public => serde_json::json!([]),
                Access::Authenticated => serde_json::json!([{ "bearerAuth": [] }]),
                Access::Scoped(scope) => {
                    serde_json::json!([{ "bearerAuth": [], "messagesAuth": [scope.name()] }])
                }
            };
            assert_eq!(operation["security"], expected, "{label}");
            if spec.access != Access::Public {
                for status in ["401", "403"] {
                    assert!(
                        operation["responses"][status].is_object(),
                        "{label}: {status}"
                    );
                }
            }
        }
        let scopes = &document["components"]["securitySchemes"]["messagesAuth"]["flows"]
            ["clientCredentials"]["scopes"];
        for scope in Scope::ALL {
            assert!(scopes[scope.name()].is_string(), "{}", scope.name());
        }
    }

    #[test]
    fn the_openapi_document_states_the_limits_the_code_enforces() {
        let document: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        assert_eq!(document["openapi"], "3.0.3");
        let schemas = &document["components"]["schemas"];
        assert_eq!(
            schemas["NewMessage"]["properties"]["content"]["maxLength"],
            ContentLimit::DEFAULT.max_chars()
        );
        let limit = &document["paths"]["/messages"]["get"]["parameters"][0];
        assert_eq!(limit["name"], "limit");
        assert_eq!(limit["schema"]["maximum"], PageLimit::MAX);
        assert_eq!(limit["schema"]["default"], PageLimit::DEFAULT.get());
    }
}
