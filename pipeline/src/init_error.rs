//! A cold start that cannot finish (a missing or invalid environment variable) reported to
//! the Lambda Runtime API, so that the invocation waiting for it fails at once with the
//! reason instead of timing out.
//!
//! AWS takes `POST /runtime/init/error`, fails the pending invocation with it and ends the
//! environment. `cargo lambda watch` (1.9) ignores that call and would hold the invocation
//! until the caller gives up; its Runtime API is served under a path (`/.rt/<function>`),
//! which AWS's never is. There, and only there, the init error also answers the next
//! invocation, as an invocation error. Plain HTTP/1.1 over loopback: the functions carry no
//! HTTP client of their own, and this runs once, on the way out.

use std::io::{Read as _, Write as _};

use std::net::TcpStream;
use std::time::Duration;

/// The error type Lambda shows for it.
const ERROR_TYPE: &str = "Runtime.ConfigError";

/// Reports `error` as the init error, and under `cargo lambda watch` as the answer to the
/// invocation waiting for this cold start. Failures to report are printed, never fatal: the
/// function exits with the error either way.
pub fn report(error: &dyn std::fmt::Display) {
    if let Ok(api) = std::env::var("AWS_LAMBDA_RUNTIME_API") {
        report_to(&api, error);
    }
}

/// [`report`] to the Runtime API at `api` (`AWS_LAMBDA_RUNTIME_API`).
fn report_to(api: &str, error: &dyn std::fmt::Display) {
    let Some(api) = RuntimeApi::parse(api) else {
        eprintln!("AWS_LAMBDA_RUNTIME_API is not host:port[/path]: {api}");
        return;
    };
    let body = serde_json::json!({ "errorMessage": error.to_string(), "errorType": ERROR_TYPE })
        .to_string();
    if let Err(e) = api.call("POST", "/2018-06-01/runtime/init/error", &body) {
        eprintln!("reporting the init error failed: {e}");
    }
    if api.prefix.is_empty() {
        return;
    }
    let answered = api
        .call("GET", "/2018-06-01/runtime/invocation/next", "")
        .and_then(|response| {
            let id = request_id(&response).ok_or("the next invocation has no request id")?;
            api.call(
                "POST",
                &format!("/2018-06-01/runtime/invocation/{id}/error"),
                &body,
            )
        });
    if let Err(e) = answered {
        eprintln!("answering the waiting invocation with the init error failed: {e}");
    }
}

#[derive(Debug, PartialEq, Eq)]
struct RuntimeApi {
    host: String,
    prefix: String,
}

impl RuntimeApi {
    fn parse(raw: &str) -> Option<Self> {
        let rest = raw.strip_prefix("http://").unwrap_or(raw);
        let (host, prefix) = match rest.split_once('/') {
            Some((host, path)) => (host, format!("/{}", path.trim_end_matches('/'))),
            None => (rest, String::new()),
        };
        (!host.is_empty()).then(|| Self {
            host: host.to_owned(),
            prefix,
        })
    }

    /// One request, `Connection: close`; the whole response as text.
    fn call(
        &self,
        method: &str,
        path: &str,
        body: &str,
    ) -> Result<String, Box<dyn std::error::Error>> {
        let mut stream = TcpStream::connect(&self.host)?;
        // The next invocation may take a while to arrive; an init error is not worth more.
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        let request = format!(
            "{method} {}{path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Lambda-Runtime-Function-Error-Type: {ERROR_TYPE}\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            self.prefix,
            self.host,
            body.len()
        );
        stream.write_all(request.as_bytes())?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        Ok(response)
    }
}

fn request_id(response: &str) -> Option<&str> {
    response.split("\r\n\r\n").next()?.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("lambda-runtime-aws-request-id")
            .then(|| value.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn the_runtime_api_address_is_aws_s_host_port_or_cargo_lambda_s_with_a_path() {
        assert_eq!(
            RuntimeApi::parse("127.0.0.1:9001"),
            Some(RuntimeApi {
                host: "127.0.0.1:9001".into(),
                prefix: String::new()
            })
        );
        assert_eq!(
            RuntimeApi::parse("http://127.0.0.1:9000/.rt/list"),
            Some(RuntimeApi {
                host: "127.0.0.1:9000".into(),
                prefix: "/.rt/list".into()
            })
        );
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
                let reply = if request.starts_with("GET") {
                    "HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: req-7\r\nContent-Length: 2\r\n\r\n{}"
                } else {
                    "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"
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
                    .find_map(|l| l.strip_prefix("Content-Length: "))
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

    #[test]
    fn under_cargo_lambda_watch_the_init_error_also_answers_the_waiting_invocation() {
        let (address, server) = fake_runtime_api(3);
        let api = RuntimeApi::parse(&address).unwrap();

        report_to(
            &address,
            &"environment variable TABLE_NAME is required but not set",
        );

        let seen = server.join().unwrap();
        let lines: Vec<&str> = seen.iter().map(|r| r.lines().next().unwrap()).collect();
        assert_eq!(
            lines,
            [
                format!("POST {}/2018-06-01/runtime/init/error HTTP/1.1", api.prefix),
                format!(
                    "GET {}/2018-06-01/runtime/invocation/next HTTP/1.1",
                    api.prefix
                ),
                format!(
                    "POST {}/2018-06-01/runtime/invocation/req-7/error HTTP/1.1",
                    api.prefix
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
