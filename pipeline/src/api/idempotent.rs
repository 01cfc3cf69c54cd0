//! Sending a request's messages, at most once per `Idempotency-Key`
//! (draft-ietf-httpapi-idempotency-key-header; the semantics are in
//! [`crate::domain::IdempotencyKey`]'s module).
//!
//! Without the header a request behaves as it always did. With it: the body is validated
//! first (a 400 takes no key), then the key is claimed with the request's fingerprint and the
//! job ids reserved for it; a repeat gets the first answer (`Idempotent-Replayed: true`), a
//! concurrent repeat a 409, a reuse with another body a 422. An answer that queued nothing
//! (a 503) frees the key, so that the client's retry can succeed.

use lambda_http::http::header::{HeaderName, HeaderValue, LOCATION, RETRY_AFTER};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::{json, Value};

use super::{ApiError, Caller, Writer};
use crate::domain::{
    fingerprint, Claim, IdempotencyKey, JobId, Outgoing, ReservedIds, StoredAnswer,
};
use crate::ports::PortError;

/// The request header (the draft's name).
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Set on a replayed answer, as Stripe and others do, so a client can tell.
pub(super) const REPLAYED: &str = "idempotent-replayed";

/// What became of one item of a request.
#[derive(Debug)]
pub(super) enum Outcome {
    Queued(JobId),
    /// Not valid: what to fix.
    Invalid(String),
    /// Valid, but the queue did not take it.
    Unsent(PortError),
}

/// How many messages an answer queued, carried on the response (an extension) for the
/// enqueue metric, which would otherwise parse the body again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct QueuedMessages(pub usize);

/// An answer as it is given, and given again to a repeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Answer {
    pub status: StatusCode,
    pub body: String,
    pub location: Option<String>,
}

/// Sends the valid `items` (in one batch) and answers with `answer`, honouring the request's
/// `Idempotency-Key`. `route` names the operation in the fingerprint.
pub(super) async fn send_items(
    request: &Request,
    writer: Writer<'_>,
    route: &str,
    mut items: Vec<Result<Outgoing, String>>,
    answer: fn(Vec<Outcome>) -> Result<Answer, ApiError>,
) -> Result<Response<Body>, ApiError> {
    let key = key_of(request)?;
    if let Some(key) = &key {
        let print = fingerprint(route, &canonical(&items));
        match writer
            .keys
            .claim(key, &print, &reserved(&items))
            .await
            .map_err(ApiError::from)?
        {
            Claim::Started => {}
            Claim::TakenOver { reserved } => {
                tracing::warn!("idempotency key taken over from a request that did not finish; sending its job ids again");
                reuse(&mut items, reserved);
            }
            Claim::Replay(stored) => return Ok(replay(stored)),
            Claim::InProgress => return Err(ApiError::KeyInProgress),
            Claim::Mismatch => return Err(ApiError::KeyReused),
        }
    }

    let outcomes = send(writer, items).await;
    // A job's first line: the start of its story in the logs (`pipeline-ctl logs`).
    for outcome in &outcomes {
        if let Outcome::Queued(id) = outcome {
            tracing::info!(job_id = %id, "queued");
        }
    }
    let queued = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Queued(_)))
        .count();
    let answered = answer(outcomes);
    if let Some(key) = &key {
        let kept = match &answered {
            Ok(a) if !a.status.is_server_error() => {
                let stored = StoredAnswer {
                    status: a.status.as_u16(),
                    body: a.body.clone(),
                };
                writer.keys.answer(key, &stored).await
            }
            _ => writer.keys.release(key).await,
        };
        // The answer stands either way: an unrecorded answer leaves the key in progress, and
        // a retry after its lease sends the same job ids again (stored once).
        if let Err(error) = kept {
            tracing::error!(?error, "recording the idempotency key's outcome failed");
        }
    }
    answered.map(|answer| {
        let mut response = respond(answer);
        response.extensions_mut().insert(QueuedMessages(queued));
        response
    })
}

async fn send(writer: Writer<'_>, items: Vec<Result<Outgoing, String>>) -> Vec<Outcome> {
    let valid: Vec<Outgoing> = items
        .iter()
        .filter_map(|i| i.as_ref().ok().cloned())
        .collect();
    let mut sent = writer.queue.send_batch(&valid).await.into_iter();
    items
        .into_iter()
        .map(|item| match item {
            Err(error) => Outcome::Invalid(error),
            Ok(outgoing) => match sent.next() {
                Some(Ok(())) => Outcome::Queued(outgoing.message.id),
                Some(Err(error)) => Outcome::Unsent(error),
                None => Outcome::Unsent(anyhow::anyhow!("the queue gave no answer").into()),
            },
        })
        .collect()
}

/// The request's key, scoped to the calling app client; none without the header.
fn key_of(request: &Request) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(header) = request.headers().get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let client = Caller::of(request)
        .and_then(|c| c.client_id)
        .unwrap_or_default();
    let text = header
        .to_str()
        .map_err(|_| ApiError::BadRequest(crate::domain::KeyError.to_string()))?;
    IdempotencyKey::parse(text, &client)
        .map(Some)
        .map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// The items as validated (an invalid item by its error): what the fingerprint covers.
fn canonical(items: &[Result<Outgoing, String>]) -> String {
    let values: Vec<Value> = items
        .iter()
        .map(|item| match item {
            Ok(o) => json!({
                "content": o.message.content.as_str(),
                "delay_seconds": o.message.id.delay().seconds(),
                "attributes": o.message.attributes.as_map(),
                "group_id": o.group.as_ref().map(|g| g.as_str()),
            }),
            Err(error) => json!({ "invalid": error }),
        })
        .collect();
    Value::Array(values).to_string()
}

/// The job ids the items reserved, by position (none for an invalid item).
fn reserved(items: &[Result<Outgoing, String>]) -> ReservedIds {
    ReservedIds(
        items
            .iter()
            .map(|i| i.as_ref().ok().map(|o| o.message.id))
            .collect(),
    )
}

/// Gives the items the job ids an earlier request reserved (same fingerprint, so the same
/// items, valid and invalid at the same positions).
fn reuse(items: &mut [Result<Outgoing, String>], reserved: ReservedIds) {
    for (item, id) in items.iter_mut().zip(reserved.0) {
        if let (Ok(outgoing), Some(id)) = (item, id) {
            outgoing.message.id = id;
        }
    }
}

fn respond(answer: Answer) -> Response<Body> {
    let mut response = Response::new(Body::Text(answer.body));
    *response.status_mut() = answer.status;
    let headers = response.headers_mut();
    headers.insert(
        lambda_http::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(location) = answer.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        headers.insert(LOCATION, location);
    }
    // The asynchronous request-reply pattern (RFC 9110 §15.3.3): when to ask about the jobs;
    // after a 503, when to retry.
    if answer.status.is_success() || answer.status.is_server_error() {
        headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// The first answer again; its job's location comes from its body.
fn replay(stored: StoredAnswer) -> Response<Body> {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let location = serde_json::from_str::<Value>(&stored.body)
        .ok()
        .and_then(|body| body["job_id"].as_str().map(|id| format!("/jobs/{id}")));
    let mut response = respond(Answer {
        status,
        body: stored.body,
        location,
    });
    response.headers_mut().insert(
        HeaderName::from_static(REPLAYED),
        HeaderValue::from_static("true"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{enqueue, enqueue_batch, EnqueueLimits, Scope};
    use crate::domain::KeyRecord;
    use crate::ports::IdempotencyKeys as _;
    use crate::testing::{body_json, post, InMemoryKeys, InMemoryQueue};

    fn keyed(path: &str, body: &str, key: &str, client: &str) -> Request {
        let mut request = Caller::with_scopes(client, &[Scope::Write]).attach_to(post(path, body));
        request
            .headers_mut()
            .insert(IDEMPOTENCY_KEY, HeaderValue::from_str(key).unwrap());
        request
    }

    async fn call(request: Request, queue: &InMemoryQueue, keys: &InMemoryKeys) -> Response<Body> {
        let limits = EnqueueLimits::default();
        let writer = Writer {
            queue,
            keys,
            limits: &limits,
            ids: crate::testing::test_ids(),
            clock: &crate::clock::SystemClock,
        };
        let answer = if request.uri().path() == "/messages/batch" {
            enqueue_batch(&request, writer).await
        } else {
            enqueue(&request, writer).await
        };
        answer.unwrap_or_else(ApiError::into_response)
    }

    const HELLO: &str = r#"{"content": "hello"}"#;

    #[tokio::test]
    async fn a_repeat_with_the_same_key_and_body_gets_the_first_answer_and_queues_nothing() {
        let (queue, keys) = (InMemoryQueue::default(), InMemoryKeys::default());

        let first = call(keyed("/messages", HELLO, r#""k-1""#, "app"), &queue, &keys).await;
        // The same body, written differently: the same request.
        let spaced = "{ \"content\" : \"hello\" }";
        let again = call(keyed("/messages", spaced, r#""k-1""#, "app"), &queue, &keys).await;

        assert_eq!(first.status(), StatusCode::ACCEPTED);
        assert_eq!(again.status(), StatusCode::ACCEPTED);
        assert_eq!(body_json(&again), body_json(&first));
        assert_eq!(again.headers()[LOCATION], first.headers()[LOCATION]);
        assert_eq!(again.headers()[REPLAYED], "true");
        assert!(!first.headers().contains_key(REPLAYED));
        assert_eq!(queue.sent().len(), 1);
    }

    #[tokio::test]
    async fn the_same_key_with_another_body_or_route_is_422() {
        let (queue, keys) = (InMemoryQueue::default(), InMemoryKeys::default());
        call(keyed("/messages", HELLO, "k", "app"), &queue, &keys).await;

        let other_body = call(
            keyed("/messages", r#"{"content": "bye"}"#, "k", "app"),
            &queue,
            &keys,
        )
        .await;
        let other_route = r#"{"messages": [{"content": "hello"}]}"#;
        let batch = call(
            keyed("/messages/batch", other_route, "k", "app"),
            &queue,
            &keys,
        )
        .await;

        assert_eq!(other_body.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(body_json(&other_body)["error"]
            .as_str()
            .unwrap()
            .contains("another body"));
        assert_eq!(batch.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(queue.sent().len(), 1);
    }

    #[tokio::test]
    async fn a_repeat_while_the_first_is_in_progress_is_409() {
        let (queue, keys) = (InMemoryQueue::default(), InMemoryKeys::default());
        let key = IdempotencyKey::parse("k", "app").unwrap();
        let first = post("/messages", HELLO);
        let print = fingerprint("/messages", &canonical(&[Ok(outgoing_of(&first))]));
        keys.claim(&key, &print, &ReservedIds(vec![None]))
            .await
            .unwrap();

        let response = call(keyed("/messages", HELLO, "k", "app"), &queue, &keys).await;

        assert_eq!(response.status(), StatusCode::CONFLICT);
        assert!(response.headers().contains_key(RETRY_AFTER));
        assert!(queue.sent().is_empty());
    }

    fn outgoing_of(request: &Request) -> Outgoing {
        let fields = super::super::enqueue::read_object(request, 1 << 20, "").unwrap();
        let queue = InMemoryQueue::default();
        super::super::enqueue::parse_item(fields, crate::testing::test_writer(&queue)).unwrap()
    }

    #[tokio::test]
    async fn a_key_whose_request_died_is_taken_over_and_sends_the_job_id_it_reserved() {
        let (queue, keys) = (InMemoryQueue::default(), InMemoryKeys::default());
        let key = IdempotencyKey::parse("k", "app").unwrap();
        let dead = outgoing_of(&post("/messages", HELLO));
        keys.insert(
            &key,
            KeyRecord {
                fingerprint: fingerprint("/messages", &canonical(&[Ok(dead.clone())])),
                reserved: reserved(&[Ok(dead.clone())]),
                answer: None,
                locked_until_ms: 0,
            },
        );

        let response = call(keyed("/messages", HELLO, "k", "app"), &queue, &keys).await;

        assert_eq!(response.status(), StatusCode::ACCEPTED);
        assert_eq!(body_json(&response)["job_id"], dead.message.id.to_string());
        assert_eq!(queue.sent()[0].id, dead.message.id);
    }

    #[tokio::test]
    async fn an_answer_that_queued_nothing_frees_the_key_for_the_retry() {
        let keys = InMemoryKeys::default();
        let down = call(
            keyed("/messages", HELLO, "k", "app"),
            &InMemoryQueue::failing(),
            &keys,
        )
        .await;
        assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(keys.len(), 0);

        let queue = InMemoryQueue::default();
        let retry = call(keyed("/messages", HELLO, "k", "app"), &queue, &keys).await;
        assert_eq!(retry.status(), StatusCode::ACCEPTED);
        assert_eq!(queue.sent().len(), 1);
    }

    #[tokio::test]
    async fn keys_of_different_clients_never_meet_and_no_header_records_nothing() {
        let (queue, keys) = (InMemoryQueue::default(), InMemoryKeys::default());

        let a = call(keyed("/messages", HELLO, "k", "app-a"), &queue, &keys).await;
        let b = call(keyed("/messages", HELLO, "k", "app-b"), &queue, &keys).await;
        call(post("/messages", HELLO), &queue, &keys).await;

        assert_ne!(body_json(&a)["job_id"], body_json(&b)["job_id"]);
        assert_eq!(queue.sent().len(), 3);
        assert_eq!(keys.len(), 2);
    }

    #[tokio::test]
    async fn a_malformed_key_is_400_before_anything_is_queued() {
        let (queue, keys) = (InMemoryQueue::default(), InMemoryKeys::default());
        for bad in [r#""a"b""#, &"k".repeat(256), "\"\""] {
            let response = call(keyed("/messages", HELLO, bad, "app"), &queue, &keys).await;
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
            assert!(body_json(&response)["error"]
                .as_str()
                .unwrap()
                .contains("Idempotency-Key"));
        }
        assert!(queue.sent().is_empty());
    }

    #[tokio::test]
    async fn a_partly_accepted_batch_is_replayed_as_it_was_answered() {
        let (queue, keys) = (InMemoryQueue::refusing("no"), InMemoryKeys::default());
        let body = r#"{"messages": [{"content": "yes"}, {"content": "no"}]}"#;

        let first = call(keyed("/messages/batch", body, "b", "app"), &queue, &keys).await;
        let again = call(keyed("/messages/batch", body, "b", "app"), &queue, &keys).await;

        assert_eq!(first.status(), StatusCode::MULTI_STATUS);
        assert_eq!(again.status(), StatusCode::MULTI_STATUS);
        assert_eq!(body_json(&again), body_json(&first));
        assert_eq!(queue.sent().len(), 1);
    }
}
