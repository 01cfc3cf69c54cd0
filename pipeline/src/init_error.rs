//! A cold start that cannot finish (a missing or invalid environment variable) reported to
//! the Lambda Runtime API, so that the invocation waiting for it fails at once with the
//! reason instead of timing out.
//!
//! AWS takes `POST /runtime/init/error`, fails the pending invocation with it and ends the
//! environment. `cargo lambda watch` (1.9) ignores that call and would hold the invocation
//! until the caller gives up; its Runtime API is served under a path (`/.rt/<function>`),
//! which AWS's never is. There, and only there, the init error also answers the next
//! invocation, as an invocation error. The calls go through the Lambda runtime's own
//! Runtime API client (`lambda_runtime_api_client`), which the functions link anyway.

use std::time::Duration;

use lambda_http::http::HeaderMap;
use lambda_runtime_api_client::body::Body;
use lambda_runtime_api_client::{build_request, PooledClient};

/// The error type Lambda shows for it.
const ERROR_TYPE: &str = "Runtime.ConfigError";
/// How long the report may hold up the exit: the next invocation may take a while to
/// arrive under `cargo lambda watch`, and an init error is not worth more.
const REPORT_BUDGET: Duration = Duration::from_secs(60);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Reports `error` as the init error, and under `cargo lambda watch` as the answer to the
/// invocation waiting for this cold start. Failures to report are printed, never fatal: the
/// function exits with the error either way.
pub async fn report(error: &dyn std::fmt::Display) {
    if let Ok(api) = std::env::var("AWS_LAMBDA_RUNTIME_API") {
        report_to(&api, &error.to_string()).await;
    }
}

/// [`report`] to the Runtime API at `api` (`AWS_LAMBDA_RUNTIME_API`: `host:port`, or
/// `http://host:port/path` under `cargo lambda watch`).
async fn report_to(api: &str, message: &str) {
    let endpoint = if api.contains("://") {
        api.to_owned()
    } else {
        format!("http://{api}")
    };
    let client = match endpoint
        .parse()
        .map_err(BoxError::from)
        .map(|uri| PooledClient::builder().with_endpoint(uri).build())
    {
        Ok(client) => client,
        Err(e) => {
            eprintln!("AWS_LAMBDA_RUNTIME_API is not host:port[/path] ({api}): {e}");
            return;
        }
    };
    let body = serde_json::json!({ "errorMessage": message, "errorType": ERROR_TYPE }).to_string();
    let reported = tokio::time::timeout(REPORT_BUDGET, async {
        if let Err(e) = call(&client, "POST", "/2018-06-01/runtime/init/error", &body).await {
            eprintln!("reporting the init error failed: {e}");
        }
        if served_under_a_path(&endpoint) {
            if let Err(e) = answer_the_waiting_invocation(&client, &body).await {
                eprintln!("answering the waiting invocation with the init error failed: {e}");
            }
        }
    })
    .await;
    if reported.is_err() {
        eprintln!("reporting the init error took over {REPORT_BUDGET:?}; exiting without it");
    }
}

/// `cargo lambda watch` serves its Runtime API under a path; AWS's never is.
fn served_under_a_path(endpoint: &str) -> bool {
    let after_scheme = endpoint
        .split_once("://")
        .map_or(endpoint, |(_, rest)| rest);
    after_scheme
        .split_once('/')
        .is_some_and(|(_, path)| !path.trim_matches('/').is_empty())
}

async fn answer_the_waiting_invocation(client: &PooledClient, body: &str) -> Result<(), BoxError> {
    let next = call(client, "GET", "/2018-06-01/runtime/invocation/next", "").await?;
    let id = next
        .get("lambda-runtime-aws-request-id")
        .and_then(|id| id.to_str().ok())
        .ok_or("the next invocation has no request id")?
        .to_owned();
    let path = format!("/2018-06-01/runtime/invocation/{id}/error");
    call(client, "POST", &path, body).await?;
    Ok(())
}

/// One request to the Runtime API (the client adds its base, path included); the answer's
/// headers.
async fn call(
    client: &PooledClient,
    method: &str,
    path: &str,
    body: &str,
) -> Result<HeaderMap, BoxError> {
    let request = build_request()
        .method(method)
        .uri(path)
        .header("Content-Type", "application/json")
        .header("Lambda-Runtime-Function-Error-Type", ERROR_TYPE)
        .body(Body::from(body.to_owned()))?;
    Ok(client.call(request).await?.headers().clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read as _, Write as _};
    use std::net::TcpListener;

    #[test]
    fn the_runtime_api_address_is_aws_s_host_port_or_cargo_lambda_s_with_a_path() {
        assert!(!served_under_a_path("http://127.0.0.1:9001"));
        assert!(!served_under_a_path("http://127.0.0.1:9001/"));
        assert!(served_under_a_path("http://127.0.0.1:9000/.rt/list"));
    }

    /// A Runtime API served under a path, as cargo lambda watch serves it: it records every
    /// request and hands out one invocation.
    fn fake_runtime_api(requests: usize) -> (String, std::thread::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = format!("http://{}/.rt/list", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for stream in listener.incoming().take(requests) {
                let mut stream = stream.unwrap();
                let request = read_request(&mut stream);
                // One request a connection, as the old reporter sent them.
                let reply = if request.starts_with("GET") {
                    "HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: req-7\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}"
                } else {
                    "HTTP/1.1 202 Accepted\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
                };
                stream.write_all(reply.as_bytes()).unwrap();
                seen.push(request);
            }
            seen
        });
        (address, server)
    }

    /// A whole request: its headers, then as many bytes as its Content-Length says.
    fn read_request(stream: &mut std::net::TcpStream) -> String {
        let mut bytes = Vec::new();
        let mut chunk = [0u8; 1024];
        loop {
            let n = stream.read(&mut chunk).unwrap();
            bytes.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&bytes).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length").then_some(value)
                    })
                    .map_or(0, |n| n.trim().parse().unwrap());
                if body.len() >= length || n == 0 {
                    return text;
                }
            }
            if n == 0 {
                return text;
            }
        }
    }

    #[tokio::test]
    async fn under_cargo_lambda_watch_the_init_error_also_answers_the_waiting_invocation() {
        let (address, server) = fake_runtime_api(3);
        let prefix = "/.rt/list";

        report_to(
            &address,
            "environment variable TABLE_NAME is required but not set",
        )
        .await;

        let seen = server.join().unwrap();
        let lines: Vec<&str> = seen.iter().map(|r| r.lines().next().unwrap()).collect();
        assert_eq!(
            lines,
            [
                format!("POST {}/2018-06-01/runtime/init/error HTTP/1.1", prefix),
                format!("GET {}/2018-06-01/runtime/invocation/next HTTP/1.1", prefix),
                format!(
                    "POST {}/2018-06-01/runtime/invocation/req-7/error HTTP/1.1",
                    prefix
                ),
            ]
        );
        for request in [&seen[0], &seen[2]] {
            assert!(
                request.ends_with(r#"{"errorMessage":"environment variable TABLE_NAME is required but not set","errorType":"Runtime.ConfigError"}"#),
                "{request}"
            );
        }
    }
}
