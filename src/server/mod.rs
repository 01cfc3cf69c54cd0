//! The HTTP front of the local runner: hyper on a TCP listener, each request turned into the
//! `lambda_http` request the functions get from API Gateway and handed to [`Api::handle`].

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use lambda_http::{Body, Request, Response};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

mod admin;
pub mod gateway;

use crate::runner::AppState;
use gateway::check_loopback_names;
use pipeline::api::{Api, ApiError, Operator, Reader, Writer};
use pipeline::clock::SystemClock;

/// How long shutdown waits for open connections to finish their requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client may take to send a request's headers: a client that opens connections
/// and trickles bytes (slowloris) holds nothing for longer.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections served at once; past it, new ones wait in the kernel's accept queue.
const MAX_CONNECTIONS: usize = 1024;

/// Serves until `shutdown` turns true, then lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            _ = shutdown.changed() => break,
        };
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let state = state.clone();
        let service = service_fn(move |request| {
            let state = state.clone();
            async move { Ok::<_, Infallible>(respond(request, &state).await) }
        });
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
            drop(slot);
        });
    }
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after {DRAIN_TIMEOUT:?}; closing them");
    }
}

async fn respond(
    request: hyper::Request<Incoming>,
    state: &AppState,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    // The gateway decides on the head alone, as API Gateway's authorizer does: an anonymous
    // caller learns nothing but 401, whatever it sends.
    let head = Request::from_parts(parts, Body::Empty);
    let admitted = if state.loopback {
        check_loopback_names(&head)
    } else {
        Ok(())
    }
    .and_then(|()| state.gate.admit(head));
    let parts = match admitted {
        Ok(head) => head.into_parts().0,
        Err(refusal) => {
            drain(body).await;
            return into_hyper(refusal.into_response());
        }
    };
    // The largest body any route takes; each route checks its own limit.
    let limit = state
        .limits
        .max_body_bytes
        .max(pipeline::api::MAX_BATCH_BODY_BYTES);
    let Some(bytes) = read_body(body, limit).await else {
        return into_hyper(ApiError::PayloadTooLarge { limit }.into_response());
    };
    let body = if bytes.is_empty() {
        Body::Empty
    } else {
        Body::Binary(bytes.to_vec())
    };
    let request = Request::from_parts(parts, body);
    if let Some(response) = admin::respond(&request, state).await {
        return into_hyper(response);
    }
    let api = Api {
        writer: Writer {
            queue: &*state.queue,
            keys: &*state.keys,
            limits: &state.limits,
            ids: &state.job_ids,
            clock: &SystemClock,
        },
        reader: Reader {
            store: &*state.store,
            cursors: &state.cursors,
            failures: &*state.failures,
            retention: state.retention,
            clock: &SystemClock,
            ids: &state.job_ids,
        },
        operator: Operator {
            operations: &*state.operations,
            store: &*state.store,
            ids: &state.job_ids,
        },
    };
    into_hyper(api.handle(request).await)
}

/// How much of an oversized body is read (and dropped) so that a client that writes its
/// whole body before reading gets its 413 instead of a reset connection: API Gateway's own
/// payload limit, past which it refuses a request itself. (`http_body_util::Limited` stops
/// reading at the limit, which is the reset this avoids; the 413 test in
/// tests/local_runner.rs sends 6 and 10 MB.)
const READ_AND_DROP_MAX: usize = 10 * 1024 * 1024;

/// The body, or `None` when it is over `limit` bytes. An oversized body is never buffered.
async fn read_body(mut body: Incoming, limit: usize) -> Option<Bytes> {
    let mut bytes = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map(|f| f.into_data()) else {
            return None;
        };
        let Ok(data) = data else { continue };
        seen += data.len();
        if seen <= limit {
            bytes.extend_from_slice(&data);
        } else if seen > READ_AND_DROP_MAX.max(limit) {
            return None;
        }
    }
    (seen <= limit).then(|| Bytes::from(bytes))
}

/// Reads and drops a refused request's body (up to [`READ_AND_DROP_MAX`]), so that a client
/// that writes it all before reading gets its answer, not a reset connection.
async fn drain(body: Incoming) {
    let _ = read_body(body, 0).await;
}

fn into_hyper(response: Response<Body>) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = response.into_parts();
    let bytes = match body {
        Body::Text(text) => Bytes::from(text),
        Body::Binary(bytes) => Bytes::from(bytes),
        _ => Bytes::new(),
    };
    hyper::Response::from_parts(parts, Full::new(bytes))
}
