//! Hostile input, as properties: whatever a client sends (any method, path, query, content
//! type and body, valid or not, huge, deeply nested, not UTF-8), the API answers a JSON 2xx or
//! 4xx that says what is wrong; never a 5xx, never a panic, never a message queued that the
//! answer did not acknowledge. Run with `PROPTEST_CASES=<n>` for a longer search (the count
//! in BENCHMARKS.md comes from such a run).

use std::sync::LazyLock;
use std::time::Duration;

use lambda_http::http::header::{HeaderValue, CONTENT_TYPE};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use serde_json::Value;

use super::{route, with_scopes, Access, Api, EnqueueLimits, Reader, Scope, CATCH_ALL_ACCESS};
use crate::domain::{ContentLimit, Cursor, CursorKey, JobId, MessageContent};
use crate::testing::{
    stored_messages, EmptyOperations, InMemoryFailureLog, InMemoryQueue, InMemoryStore,
};

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
});
static KEY: LazyLock<CursorKey> = LazyLock::new(CursorKey::random);
static STORE: LazyLock<InMemoryStore> = LazyLock::new(|| InMemoryStore::with(stored_messages(5)));

fn call(request: Request, queue: &InMemoryQueue) -> Response<Body> {
    static FAILURES: LazyLock<InMemoryFailureLog> = LazyLock::new(InMemoryFailureLog::default);
    static OPERATIONS: LazyLock<EmptyOperations> = LazyLock::new(EmptyOperations::default);
    let reader = Reader {
        store: &*STORE,
        cursors: &KEY,
        failures: &*FAILURES,
        retention: Duration::from_secs(3600),
        clock: &crate::clock::SystemClock,
        ids: crate::testing::test_ids(),
    };
    let api = Api {
        writer: crate::testing::test_writer(queue),
        reader,
        operator: super::Operator {
            operations: &*OPERATIONS,
            store: &*STORE,
            ids: crate::testing::test_ids(),
        },
    };
    RUNTIME.block_on(api.handle(request))
}

/// A JSON answer; a 4xx one carries an `error` sentence.
fn check_answer(response: &Response<Body>) -> Result<Value, TestCaseError> {
    let status = response.status();
    prop_assert!(
        status.is_success() || status.is_client_error(),
        "status {status}"
    );
    prop_assert_eq!(&response.headers()[CONTENT_TYPE], "application/json");
    let body: Value = serde_json::from_slice(response.body().as_ref())
        .map_err(|e| TestCaseError::fail(format!("body is not JSON: {e}")))?;
    if status.is_client_error() {
        let error = body["error"].as_str().unwrap_or_default();
        prop_assert!(!error.is_empty(), "a {status} without an error: {body}");
    }
    Ok(body)
}

fn percent_encoded(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        4 => Just(Method::POST),
        4 => Just(Method::GET),
        1 => Just(Method::PUT),
        1 => Just(Method::DELETE),
        1 => Just(Method::HEAD),
        1 => Just(Method::OPTIONS),
        1 => "[A-Z]{1,12}".prop_map(|m| Method::from_bytes(m.as_bytes()).unwrap()),
    ]
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just("/messages".to_owned()),
        2 => Just("/add_message".to_owned()),
        1 => Just("/messages/".to_owned()),
        2 => ".{0,60}".prop_map(|id| format!("/messages/{}", percent_encoded(&id))),
        1 => Just(format!("/messages/{}", JobId::new())),
        2 => vec(".{0,20}", 0..5).prop_map(|segments| {
            segments.iter().map(|s| format!("/{}", percent_encoded(s))).collect()
        }),
    ]
}

/// Cursors issued by the API, the same altered, and strings that never were cursors.
fn cursor() -> impl Strategy<Value = String> {
    let issued = Cursor {
        before: JobId::new(),
    }
    .encode(&KEY);
    prop_oneof![
        1 => Just(issued.clone()),
        2 => (0..issued.len(), any::<char>()).prop_map(move |(at, c)| {
            let mut forged: Vec<char> = issued.chars().collect();
            forged[at] = c;
            forged.into_iter().collect()
        }),
        2 => ".{0,80}",
        1 => "[A-Za-z0-9_-]{40,50}",
    ]
}

fn query() -> impl Strategy<Value = String> {
    let key = prop_oneof![Just("limit".to_owned()), Just("next".to_owned()), ".{0,10}"];
    let value = prop_oneof![
        cursor(),
        (0..2000u32).prop_map(|n| n.to_string()),
        ".{0,20}"
    ];
    prop_oneof![
        4 => vec((key, value), 0..4).prop_map(|pairs| {
            form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish()
        }),
        // Raw and broken: stray separators, bad escapes, repeated keys.
        1 => "[a-z=&%0-9]{0,40}",
    ]
}

fn content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        4 => Just(Some("application/json".to_owned())),
        1 => Just(Some("application/json; charset=utf-8".to_owned())),
        1 => Just(Some("APPLICATION/JSON".to_owned())),
        1 => Just(Some("text/plain".to_owned())),
        1 => Just(None),
        1 => "[ -~]{0,40}".prop_map(Some),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map(
                prop_oneof![Just("content".to_owned()), ".{0,8}"],
                inner,
                0..4
            )
            .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    let max = EnqueueLimits::default().max_body_bytes;
    prop_oneof![
        // A message, with any content: NULs, noncharacters, blanks, every plane.
        4 => any::<String>().prop_map(|content| serde_json::json!({ "content": content }).to_string().into_bytes()),
        3 => json_value().prop_map(|v| v.to_string().into_bytes()),
        2 => vec(any::<u8>(), 0..512),
        // Nested far past serde_json's recursion limit.
        1 => (1..50_000usize).prop_map(|depth| format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes()),
        1 => (1..50_000usize).prop_map(|depth| format!("{}1{}", "{\"content\":".repeat(depth), "}".repeat(depth)).into_bytes()),
        // Around the body limit.
        1 => (max - 16..max * 3).prop_map(|n| format!(r#"{{"content": "{}"}}"#, "x".repeat(n)).into_bytes()),
    ]
}

/// What API Gateway's authorizer granted: usually every scope (these properties are about
/// input), sometimes some of them, sometimes no authorizer context at all.
fn grant() -> impl Strategy<Value = Option<Vec<Scope>>> {
    prop_oneof![
        6 => Just(Some(Scope::ALL.to_vec())),
        1 => Just(None),
        2 => proptest::sample::subsequence(Scope::ALL.to_vec(), 0..=3).prop_map(Some),
    ]
}

/// A request from a caller with every scope.
fn request(
    method: Method,
    path: &str,
    query: &str,
    content_type: Option<String>,
    body: Vec<u8>,
) -> Request {
    granted(method, path, query, content_type, body, Some(&Scope::ALL))
}

fn granted(
    method: Method,
    path: &str,
    query: &str,
    content_type: Option<String>,
    body: Vec<u8>,
    scopes: Option<&[Scope]>,
) -> Request {
    let mut request = Request::new(if body.is_empty() {
        Body::Empty
    } else {
        Body::Binary(body)
    });
    *request.method_mut() = method;
    let uri = if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    };
    *request.uri_mut() = uri.parse().unwrap_or_else(|_| "/messages".parse().unwrap());
    if let Some(value) = content_type.and_then(|t| HeaderValue::from_str(&t).ok()) {
        request.headers_mut().insert(CONTENT_TYPE, value);
    }
    match scopes {
        Some(scopes) => with_scopes(request, scopes),
        None => request,
    }
}

/// Whether a caller with `scopes` (`None`: no authorizer context) may have an answer.
fn allowed(request: &Request, scopes: Option<&[Scope]>) -> bool {
    let access = route(request.method(), request.uri().path())
        .map(|(_, access)| access)
        .unwrap_or(CATCH_ALL_ACCESS);
    match access {
        Access::Public => true,
        Access::Authenticated => scopes.is_some(),
        Access::Scoped(scope) => scopes.is_some_and(|granted| granted.contains(&scope)),
    }
}

proptest! {
    #[test]
    fn any_request_gets_a_json_answer_never_a_5xx(
        method in method(),
        path in path(),
        query in query(),
        content_type in content_type(),
        body in body(),
        scopes in grant(),
    ) {
        let queue = InMemoryQueue::default();
        let request = granted(method, &path, &query, content_type, body, scopes.as_deref());
        let allowed = allowed(&request, scopes.as_deref());
        let response = call(request, &queue);
        let answer = check_answer(&response)?;
        // Without the route's scope, nothing but a 403, before any queue or store call.
        if !allowed {
            prop_assert_eq!(response.status(), StatusCode::FORBIDDEN);
        }
        // A message is queued if and only if the client was told so.
        if response.status() == StatusCode::ACCEPTED {
            let sent = queue.sent();
            prop_assert_eq!(sent.len(), 1);
            prop_assert_eq!(answer["job_id"].as_str().map(str::to_owned), Some(sent[0].id.to_string()));
        } else {
            prop_assert!(queue.sent().is_empty());
        }
    }

    #[test]
    fn a_posted_value_is_accepted_exactly_when_it_is_a_valid_message(value in json_value()) {
        let queue = InMemoryQueue::default();
        let body = value.to_string().into_bytes();
        let response = call(
            request(Method::POST, "/messages", "", Some("application/json".into()), body),
            &queue,
        );
        check_answer(&response)?;
        let valid = match &value {
            Value::Object(fields) if fields.len() == 1 => match fields.get("content") {
                Some(Value::String(text)) => {
                    MessageContent::parse(text.clone(), ContentLimit::DEFAULT).ok()
                }
                _ => None,
            },
            _ => None,
        };
        match valid {
            Some(content) => {
                prop_assert_eq!(response.status(), StatusCode::ACCEPTED);
                prop_assert_eq!(&queue.sent()[0].content, &content);
            }
            None => {
                prop_assert_eq!(response.status(), StatusCode::BAD_REQUEST);
                prop_assert!(queue.sent().is_empty());
            }
        }
    }

    #[test]
    fn only_issued_cursors_decode(raw in cursor()) {
        match Cursor::decode(&raw, &KEY) {
            Ok(cursor) => prop_assert_eq!(cursor.encode(&KEY), raw.trim()),
            Err(_) => {
                let response = call(
                    request(Method::GET, "/messages", &format!("next={}", percent_encoded(&raw)), None, vec![]),
                    &InMemoryQueue::default(),
                );
                prop_assert_eq!(response.status(), StatusCode::BAD_REQUEST);
            }
        }
    }

    #[test]
    fn a_page_after_a_cursor_holds_only_older_messages(at in 0..5usize, limit in 1..10usize) {
        let all: Vec<JobId> = STORE.items().iter().map(|m| m.id).collect();
        let cursor = Cursor { before: all[at] }.encode(&KEY);
        let response = call(
            request(Method::GET, "/messages", &format!("limit={limit}&next={cursor}"), None, vec![]),
            &InMemoryQueue::default(),
        );
        let page = check_answer(&response)?;
        let listed: Vec<String> = page["messages"]
            .as_array()
            .map(|ms| ms.iter().filter_map(|m| m["id"].as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        let expected: Vec<String> = all[..at].iter().rev().take(limit).map(|id| id.to_string()).collect();
        prop_assert_eq!(listed, expected);
    }
}
