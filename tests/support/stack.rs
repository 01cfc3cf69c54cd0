//! The deployed stack (infra/local.sh up, its URLs in the environment that
//! `infra/local.sh env` prints): its variables, tokens from its own Cognito user pool, and
//! calls through its API Gateway.

use std::collections::HashSet;
use std::sync::OnceLock;
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use base64::Engine as _;

pub fn var(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run these through infra/test.sh"))
}

/// A job id as the stack's enqueue function would issue it (tagged with the stack's key,
/// `PIPELINE_JOB_ID_SECRET`), for a job a test sends to the queue itself: the routes that
/// take an id refuse any other.
pub fn issued_job_id() -> pipeline::domain::JobId {
    static KEYS: OnceLock<pipeline::domain::JobIdKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        pipeline::domain::JobIdKeys::from_secrets(&var("PIPELINE_JOB_ID_SECRET"), None).unwrap()
    })
    .issue(pipeline::domain::Delay::NONE)
}

pub fn agent() -> ureq::Agent {
    crate::support::http_agent(Duration::from_secs(30))
}

/// An access token for app client `client_id` with `scope`, by the client-credentials grant.
pub fn token_for(client_id: &str, secret: &str, scope: &str) -> String {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{client_id}:{secret}"));
    let mut response = agent()
        .post(var("PIPELINE_TOKEN_URL"))
        .header("Authorization", format!("Basic {basic}"))
        .send_form([("grant_type", "client_credentials"), ("scope", scope)])
        .unwrap();
    let text = response.body_mut().read_to_string().unwrap();
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token for {client_id}: {text}"))
        .to_owned()
}

/// The writer's, the reader's and the operator's tokens, fetched once (clients should cache
/// them too).
pub struct Tokens {
    pub writer: String,
    pub reader: String,
    pub admin: String,
}

pub fn tokens() -> &'static Tokens {
    static TOKENS: OnceLock<Tokens> = OnceLock::new();
    TOKENS.get_or_init(|| Tokens {
        writer: token_for(
            &var("PIPELINE_WRITER_CLIENT_ID"),
            &var("PIPELINE_WRITER_CLIENT_SECRET"),
            "messages/write",
        ),
        reader: token_for(
            &var("PIPELINE_READER_CLIENT_ID"),
            &var("PIPELINE_READER_CLIENT_SECRET"),
            "messages/read",
        ),
        admin: token_for(
            &var("PIPELINE_ADMIN_CLIENT_ID"),
            &var("PIPELINE_ADMIN_CLIENT_SECRET"),
            "messages/admin messages/read",
        ),
    })
}

/// A call with the token a client would use for it: the writer's for POST, the reader's
/// for everything else.
pub fn call(method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    let token = if method == "POST" {
        &tokens().writer
    } else {
        &tokens().reader
    };
    call_with(Some(&format!("Bearer {token}")), method, path, body)
}

/// A call with the operator's token (`messages/admin messages/read`).
pub fn as_admin(method: &str, path: &str) -> (u16, serde_json::Value) {
    call_with(
        Some(&format!("Bearer {}", tokens().admin)),
        method,
        path,
        "",
    )
}

/// A call with this `Authorization` header, or none.
pub fn call_with(
    authorization: Option<&str>,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, serde_json::Value) {
    let (status, text) = call_text(authorization, method, path, body);
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

/// A call's status and body as text.
pub fn call_text(
    authorization: Option<&str>,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, String) {
    let mut request = ureq::http::Request::builder()
        .method(method)
        .uri(format!("{}{path}", var("PIPELINE_API_URL")))
        .header("Content-Type", "application/json");
    if let Some(value) = authorization {
        request = request.header("Authorization", value);
    }
    let request = request.body(body.to_owned()).unwrap();
    let mut response = agent().run(request).unwrap();
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    (status, text)
}

pub fn listed_ids() -> HashSet<String> {
    let (status, page) = call("GET", "/messages?limit=1000", "");
    assert_eq!(status, 200, "{page}");
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

pub async fn dead_lettered(sqs: &aws_sdk_sqs::Client) -> usize {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(var("PIPELINE_DLQ_URL"))
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap_or_default();
    attributes[&QueueAttributeName::ApproximateNumberOfMessages]
        .parse()
        .unwrap()
}
