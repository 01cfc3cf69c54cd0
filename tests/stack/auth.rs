//! What the deployed API refuses, through the emulated API Gateway and its JWT authorizer,
//! built from the template's own `Auth` (infra/routes.py): a missing, garbage, tampered,
//! expired, wrong-audience or wrong-issuer token is a 401, a token without the route's scope
//! a 403; and after all of them nothing was queued and nothing stored.
//!
//! The clients and the user pool these tests make are created and deleted with the AWS CLI
//! (on PATH through infra/test.sh), as an operator would.

use std::process::Command;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::QueueAttributeName as A;
use base64::Engine as _;
use pipeline::adapters::aws::sdk_config;

use crate::support::stack::{call_with, token_for, tokens, var};

/// `aws <args> --output json`, against the emulator when AWS_ENDPOINT_URL is set (awscli v1
/// does not read it for every service).
pub(super) fn aws(args: &[&str]) -> serde_json::Value {
    let mut command = Command::new("aws");
    if let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL") {
        command.args(["--endpoint-url", &endpoint]);
    }
    let output = command
        .args(args)
        .args(["--output", "json"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "aws {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or(serde_json::Value::Null)
}

/// A client-credentials app client of `pool` allowed `scope`: its id and secret.
fn create_client(pool: &str, name: &str, scope: &str) -> (String, String) {
    let created = aws(&[
        "cognito-idp",
        "create-user-pool-client",
        "--user-pool-id",
        pool,
        "--client-name",
        name,
        "--generate-secret",
        "--allowed-o-auth-flows",
        "client_credentials",
        "--allowed-o-auth-flows-user-pool-client",
        "--allowed-o-auth-scopes",
        scope,
    ]);
    let client = &created["UserPoolClient"];
    (
        client["ClientId"].as_str().unwrap().to_owned(),
        client["ClientSecret"].as_str().unwrap().to_owned(),
    )
}

/// A token of another user pool (another issuer, another signing key) with the scope
/// `messages/write` of its own resource server `messages`.
fn token_of_another_pool() -> String {
    let pool = aws(&[
        "cognito-idp",
        "create-user-pool",
        "--pool-name",
        &format!("mp-foreign-{}", uuid::Uuid::new_v4().simple()),
    ])["UserPool"]["Id"]
        .as_str()
        .unwrap()
        .to_owned();
    aws(&[
        "cognito-idp",
        "create-resource-server",
        "--user-pool-id",
        &pool,
        "--identifier",
        "messages",
        "--name",
        "messages",
        "--scopes",
        "ScopeName=write,ScopeDescription=write",
    ]);
    let (id, secret) = create_client(&pool, "foreign-writer", "messages/write");
    let token = token_for(&id, &secret, "messages/write");
    aws(&["cognito-idp", "delete-user-pool", "--user-pool-id", &pool]);
    token
}

/// A token of an app client of the stack's own pool that the API does not list as an
/// audience.
fn token_of_an_unlisted_client() -> String {
    let pool = var("PIPELINE_USER_POOL_ID");
    let (id, secret) = create_client(&pool, "unlisted-writer", "messages/write");
    let token = token_for(&id, &secret, "messages/write");
    aws(&[
        "cognito-idp",
        "delete-user-pool-client",
        "--user-pool-id",
        &pool,
        "--client-id",
        &id,
    ]);
    token
}

/// A reader token that has expired: the reader client's token validity is cut to a second
/// for one token, then restored. The emulator takes validity in seconds; AWS's shortest is
/// five minutes, so on AWS this case is left out.
fn an_expired_reader_token() -> Option<String> {
    std::env::var("AWS_ENDPOINT_URL").ok()?;
    let pool = var("PIPELINE_USER_POOL_ID");
    let client = var("PIPELINE_READER_CLIENT_ID");
    let validity = |value: &str, unit: &str| {
        aws(&[
            "cognito-idp",
            "update-user-pool-client",
            "--user-pool-id",
            &pool,
            "--client-id",
            &client,
            "--allowed-o-auth-flows",
            "client_credentials",
            "--allowed-o-auth-flows-user-pool-client",
            "--allowed-o-auth-scopes",
            "messages/read",
            "--supported-identity-providers",
            "COGNITO",
            "--access-token-validity",
            value,
            "--token-validity-units",
            &format!("AccessToken={unit}"),
        ]);
    };
    validity("1", "seconds");
    let token = token_for(
        &client,
        &var("PIPELINE_READER_CLIENT_SECRET"),
        "messages/read",
    );
    validity("60", "minutes");
    std::thread::sleep(Duration::from_secs(2));
    Some(token)
}

/// The reader's token with its payload changed to claim the write scope, signature kept.
fn a_reader_token_claiming_write() -> String {
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = tokens().reader.split('.').collect();
    let payload = String::from_utf8(engine.decode(parts[1]).unwrap()).unwrap();
    let forged = payload.replace("messages/read", "messages/write");
    assert_ne!(payload, forged);
    format!("{}.{}.{}", parts[0], engine.encode(forged), parts[2])
}

/// Messages in the queue (visible, in flight, delayed) and items in the table.
async fn queued_and_stored() -> (u64, u64) {
    let config = sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(var("PIPELINE_QUEUE_URL"))
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(A::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap_or_default();
    let queued = attributes.values().map(|v| v.parse::<u64>().unwrap()).sum();
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let mut stored = 0;
    let mut start = None;
    loop {
        let page = dynamodb
            .scan()
            .table_name(var("PIPELINE_TABLE_NAME"))
            .select(aws_sdk_dynamodb::types::Select::Count)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        stored += page.count() as u64;
        start = page.last_evaluated_key;
        if start.is_none() {
            break;
        }
    }
    (queued, stored)
}

/// Waits until the queue is empty, so that counts taken now can only change by a request
/// of this test.
async fn settled() -> (u64, u64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let counts = queued_and_stored().await;
        if counts.0 == 0 || Instant::now() > deadline {
            return counts;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
#[ignore = "needs a deployed stack: infra/test.sh"]
async fn the_gateway_refuses_bad_tokens_and_wrong_scopes_and_nothing_is_queued_or_stored() {
    // Valid tokens first: the expired case changes the reader client for a moment.
    tokio::task::spawn_blocking(tokens).await.unwrap();
    let before = settled().await;
    assert_eq!(before.0, 0, "the queue never emptied");

    let refusals = tokio::task::spawn_blocking(|| {
        let mut bad: Vec<(&str, Option<String>)> = vec![
            ("missing", None),
            ("garbage", Some("Bearer not-a-token".into())),
            ("not a JWT", Some("Bearer a.b.c".into())),
            ("another scheme", Some("Basic dXNlcjpwYXNz".into())),
            (
                "tampered",
                Some(format!("Bearer {}", a_reader_token_claiming_write())),
            ),
            (
                "wrong audience",
                Some(format!("Bearer {}", token_of_an_unlisted_client())),
            ),
            (
                "wrong issuer",
                Some(format!("Bearer {}", token_of_another_pool())),
            ),
        ];
        if let Some(token) = an_expired_reader_token() {
            bad.push(("expired", Some(format!("Bearer {token}"))));
        }
        let calls = [
            ("POST", "/messages", r#"{"content": "refused"}"#),
            ("POST", "/add_message", r#"{"content": "refused"}"#),
            ("GET", "/messages", ""),
            ("GET", "/messages/01a2181a-6977-73e7-880b-d49c43825691", ""),
            ("GET", "/nowhere", ""),
            ("DELETE", "/messages", ""),
        ];
        let mut refusals = Vec::new();
        for (case, authorization) in &bad {
            for (method, path, body) in calls {
                let (status, json) = call_with(authorization.as_deref(), method, path, body);
                refusals.push((format!("{case}: {method} {path}"), status, json, 401));
            }
        }
        let writer = format!("Bearer {}", tokens().writer);
        let reader = format!("Bearer {}", tokens().reader);
        for (who, token, method, path, body) in [
            (
                "reader",
                &reader,
                "POST",
                "/messages",
                r#"{"content": "x"}"#,
            ),
            (
                "reader",
                &reader,
                "POST",
                "/add_message",
                r#"{"content": "x"}"#,
            ),
            ("writer", &writer, "GET", "/messages", ""),
            ("writer", &writer, "GET", "/messages/x", ""),
        ] {
            let (status, json) = call_with(Some(token), method, path, body);
            refusals.push((format!("{who}: {method} {path}"), status, json, 403));
        }
        refusals
    })
    .await
    .unwrap();

    for (case, status, json, expected) in &refusals {
        assert_eq!(status, expected, "{case}: {json}");
        assert!(json["message"].is_string(), "{case}: {json}");
    }
    // The positive control: one request that does get through, sent after every refused one.
    // Once it is stored and the queue is empty again, anything that had got through before it
    // is stored too (its content is valid), so the counts hold it.
    let (status, control) = tokio::task::spawn_blocking(|| {
        let writer = format!("Bearer {}", tokens().writer);
        call_with(
            Some(&writer),
            "POST",
            "/messages",
            r#"{"content": "control"}"#,
        )
    })
    .await
    .unwrap();
    assert_eq!(status, 202, "{control}");
    let job = format!("/messages/{}", control["job_id"].as_str().unwrap());
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let job = job.clone();
        let (status, _) = tokio::task::spawn_blocking(move || {
            let reader = format!("Bearer {}", tokens().reader);
            call_with(Some(&reader), "GET", &job, "")
        })
        .await
        .unwrap();
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the control message was not stored in 120 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(settled().await, (0, before.1 + 1), "before: {before:?}");
}

#[tokio::test]
#[ignore = "needs a deployed stack: infra/test.sh"]
async fn the_openapi_document_is_public_and_a_valid_token_of_any_scope_gets_the_json_404() {
    let (document, not_found) = tokio::task::spawn_blocking(|| {
        let writer = format!("Bearer {}", tokens().writer);
        (
            call_with(None, "GET", "/openapi.json", ""),
            call_with(Some(&writer), "GET", "/nowhere", ""),
        )
    })
    .await
    .unwrap();
    assert_eq!(document.0, 200);
    assert_eq!(document.1["openapi"], "3.0.3");
    assert_eq!(not_found.0, 404, "{}", not_found.1);
    assert!(not_found.1["error"].is_string());
}
