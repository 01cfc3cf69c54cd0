//! The runner's own endpoints under `/_local/`, the stand-in for rq-dashboard and the SQS
//! console: queue counts and injected faults, its settings (for `pipeline-ctl doctor`), the dead-letter queue's messages, and sending a
//! raw body straight to the queue (as any producer with queue access could, bypassing the
//! API's validation: how a poison message gets in).

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde_json::json;

use crate::runner::AppState;
use pipeline::api::{json_response, ApiError};

/// The response for a `/_local/` request; `None` for every other path.
pub async fn respond(request: &Request, state: &AppState) -> Option<Response<Body>> {
    let path = request.uri().path().strip_prefix("/_local/")?;
    let outcome = match (path, request.method()) {
        ("stats", &Method::GET) => stats(state).await,
        ("settings", &Method::GET) => Ok(json_response(StatusCode::OK, &state.settings)),
        ("dead-letters", &Method::GET) => dead_letters(state).await,
        ("queue", &Method::POST) => send_raw(request, state).await,
        ("faults", &Method::DELETE) => heal(state),
        ("stats" | "settings" | "dead-letters", _) => Err(ApiError::MethodNotAllowed {
            allow: "GET".into(),
        }),
        ("queue", _) => Err(ApiError::MethodNotAllowed {
            allow: "POST".into(),
        }),
        ("faults", _) => Err(ApiError::MethodNotAllowed {
            allow: "DELETE".into(),
        }),
        _ => return None,
    };
    Some(outcome.unwrap_or_else(ApiError::into_response))
}

/// Queue depth, in flight, dead-lettered and stored (embedded backend), the consumer's
/// invocations and records, the AWS requests made (AWS backend), and what each
/// fault-injecting wrapper has done so far.
async fn stats(state: &AppState) -> Result<Response<Body>, ApiError> {
    let faults: serde_json::Map<String, serde_json::Value> = state
        .faults
        .iter()
        .map(|(port, counts)| ((*port).to_owned(), json!(counts.tally())))
        .collect();
    let mut body = match &state.embedded {
        Some(queue) => json!(queue.stats().await.map_err(ApiError::from)?),
        None => json!({}),
    };
    body["faults"] = faults.into();
    body["consumer"] = json!(state.consumer.tally());
    if let Some(calls) = &state.calls {
        body["aws_calls"] = json!(calls.snapshot());
    }
    Ok(json_response(StatusCode::OK, &body))
}

/// Stops every injected fault: the bug behind a poison message is "fixed", so its requeue
/// can be seen to store it.
fn heal(state: &AppState) -> Result<Response<Body>, ApiError> {
    for (_, counts) in &state.faults {
        counts.heal();
    }
    Ok(json_response(StatusCode::OK, &json!({ "healed": true })))
}

async fn dead_letters(state: &AppState) -> Result<Response<Body>, ApiError> {
    let queue = embedded_only(state, "/_local/dead-letters")?;
    let letters = queue.dead_letters().await.map_err(ApiError::from)?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "messages": letters }),
    ))
}

async fn send_raw(request: &Request, state: &AppState) -> Result<Response<Body>, ApiError> {
    let queue = embedded_only(state, "/_local/queue")?;
    let body = std::str::from_utf8(request.body().as_ref())
        .map_err(|_| ApiError::BadRequest("the body must be UTF-8 text, as SQS requires".into()))?;
    queue
        .send_raw(body.to_owned())
        .await
        .map_err(|e| ApiError::from(pipeline::ports::PortError::from(e)))?;
    Ok(json_response(
        StatusCode::ACCEPTED,
        &json!({ "queued": true }),
    ))
}

fn embedded_only<'a>(
    state: &'a AppState,
    path: &str,
) -> Result<&'a crate::sqlite::SqliteQueue, ApiError> {
    state
        .embedded
        .as_deref()
        .ok_or_else(|| ApiError::UnknownPath(format!("{path} (embedded backend only)")))
}
