//! The local runner's gateway: what API Gateway and its JWT authorizer do for the deployed
//! stack, with the same scopes and the same 401/403 bodies.
//!
//! Bearer tokens, one per scope set (write, read, admin), are generated at start (or given by
//! flag or environment) and compared in constant time. A request that passes is handed to the
//! API with the authorizer context API Gateway would add ([`Caller::attach_to`]), so the
//! handlers' own check ([`pipeline::api::authorize`]) runs here too.
//!
//! Whether or not tokens are on, a runner on loopback refuses requests whose `Host` or
//! `Origin` is not a loopback name: a web page cannot reach it by DNS rebinding or post to it
//! cross-site.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use lambda_http::http::header::{AUTHORIZATION, HOST, ORIGIN};
use lambda_http::Request;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use pipeline::api::{route, Access, ApiError, Caller, Scope, CATCH_ALL_ACCESS};

/// Who the runner lets in.
#[derive(Debug)]
pub enum Gate {
    /// Every caller gets every scope: only allowed on loopback (`--no-auth`).
    Open,
    Tokens(Tokens),
}

/// The tokens the runner accepts, kept as SHA-256 digests so that comparing them takes the
/// same time whatever the presented token shares with a real one.
pub struct Tokens {
    accepted: Vec<([u8; 32], Caller)>,
}

// Never print a token, not even in a debug dump.
impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tokens({} accepted)", self.accepted.len())
    }
}

impl fmt::Debug for IssuedTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IssuedTokens(redacted)")
    }
}

/// The three tokens, as a user passes them to curl.
#[derive(Clone)]
pub struct IssuedTokens {
    pub write: String,
    pub read: String,
    pub admin: String,
}

impl IssuedTokens {
    /// Each token given, or a new random one (244 random bits from the OS-seeded CSPRNG).
    pub fn given_or_random(
        write: Option<String>,
        read: Option<String>,
        admin: Option<String>,
    ) -> anyhow::Result<Self> {
        let token = |given: Option<String>, kind: &str| -> anyhow::Result<String> {
            match given {
                Some(token) if token.len() < 16 => {
                    anyhow::bail!("the {kind} token must be at least 16 characters")
                }
                Some(token) => Ok(token),
                None => Ok(format!(
                    "mp{kind}_{}{}",
                    uuid::Uuid::new_v4().simple(),
                    uuid::Uuid::new_v4().simple()
                )),
            }
        };
        Ok(Self {
            write: token(write, "write")?,
            read: token(read, "read")?,
            admin: token(admin, "admin")?,
        })
    }

    /// The file a user sources to get `WRITE_TOKEN`, `READ_TOKEN` and `ADMIN_TOKEN`.
    pub fn as_env_file(&self, url: &str) -> String {
        format!(
            "# Tokens of the message-pipeline local runner at {url}; new at every start.\n\
             PIPELINE_URL={url}\nWRITE_TOKEN={}\nREAD_TOKEN={}\nADMIN_TOKEN={}\n",
            self.write, self.read, self.admin
        )
    }

    pub fn gate(&self) -> Gate {
        let entry = |token: &str, client: &str, scopes: &[Scope]| {
            (digest(token), Caller::with_scopes(client, scopes))
        };
        Gate::Tokens(Tokens {
            accepted: vec![
                entry(&self.write, "local-writer", &[Scope::Write]),
                entry(&self.read, "local-reader", &[Scope::Read]),
                // The admin may do everything (the dashboard and schemathesis use one token).
                entry(&self.admin, "local-admin", &Scope::ALL),
            ],
        })
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Tokens {
    fn caller(&self, presented: &str) -> Option<&Caller> {
        let presented = digest(presented);
        // Every entry is compared, with no early exit, whichever matches.
        let mut found = None;
        for (accepted, caller) in &self.accepted {
            if bool::from(accepted[..].ct_eq(&presented[..])) {
                found = Some(caller);
            }
        }
        found
    }
}

/// Who may call `request`: the API's route table, and the admin scope for `/_local/`.
fn access(request: &Request) -> Access {
    let path = request.uri().path();
    if path.starts_with("/_local/") {
        return Access::Scoped(Scope::Admin);
    }
    route(request.method(), path)
        .map(|(_, access)| access)
        .unwrap_or(CATCH_ALL_ACCESS)
}

impl Gate {
    /// The request with the caller's authorizer context, or the 401/403 API Gateway would give.
    pub fn admit(&self, request: Request) -> Result<Request, ApiError> {
        let tokens = match self {
            Self::Open => {
                return Ok(Caller::with_scopes("local-open", &Scope::ALL).attach_to(request))
            }
            Self::Tokens(tokens) => tokens,
        };
        let access = access(&request);
        let caller = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(bearer_token)
            .and_then(|token| tokens.caller(token));
        let caller = match (access, caller) {
            (Access::Public, _) => return Ok(request),
            (_, None) => return Err(ApiError::Unauthorized),
            (Access::Scoped(scope), Some(caller)) if !caller.has(scope) => {
                return Err(ApiError::Forbidden {
                    reason: format!("the token lacks the scope {}", scope.name()),
                })
            }
            (_, Some(caller)) => caller,
        };
        Ok(caller.attach_to(request))
    }
}

/// The token of an `Authorization: Bearer <token>` header (the scheme's case does not matter,
/// RFC 9110).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Refuses a request to a loopback listener whose `Host` or `Origin` names anything but
/// loopback: the signs of DNS rebinding and of a cross-site request from a browser.
pub fn check_loopback_names(request: &Request) -> Result<(), ApiError> {
    let forbidden = |what: &str, value: &str| ApiError::Forbidden {
        reason: format!(
            "this runner listens on loopback and answers only local names; {what} `{}` is not \
             one (use http://127.0.0.1 or http://localhost)",
            value.chars().take(100).collect::<String>()
        ),
    };
    if let Some(host) = request.headers().get(HOST) {
        let host = host.to_str().unwrap_or("?");
        if !is_loopback_authority(host) {
            return Err(forbidden("Host", host));
        }
    }
    if let Some(origin) = request.headers().get(ORIGIN) {
        let origin = origin.to_str().unwrap_or("?");
        let authority = origin.split_once("://").map(|(_, rest)| rest);
        if !authority.is_some_and(is_loopback_authority) {
            return Err(forbidden("Origin", origin));
        }
    }
    Ok(())
}

/// `localhost`, `127.0.0.1`, `[::1]` and the like, with or without a port.
fn is_loopback_authority(authority: &str) -> bool {
    if let Ok(address) = authority.parse::<SocketAddr>() {
        return address.ip().is_loopback();
    }
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => authority,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use lambda_http::http::{Method, StatusCode};

    use super::*;

    fn request(method: Method, path: &str, authorization: Option<&str>) -> Request {
        let mut request = Request::default();
        *request.method_mut() = method;
        *request.uri_mut() = path.parse().unwrap();
        if let Some(value) = authorization {
            request
                .headers_mut()
                .insert(AUTHORIZATION, value.parse().unwrap());
        }
        request
    }

    fn tokens() -> IssuedTokens {
        IssuedTokens::given_or_random(None, None, None).unwrap()
    }

    fn status(result: Result<Request, ApiError>) -> StatusCode {
        result.map_or_else(|e| e.status(), |_| StatusCode::OK)
    }

    #[test]
    fn no_token_or_a_wrong_one_is_401_and_a_missing_scope_403() {
        let issued = tokens();
        let gate = issued.gate();
        let bearer = |token: &str| format!("Bearer {token}");
        let cases = [
            (Method::POST, "/messages", None, StatusCode::UNAUTHORIZED),
            (Method::GET, "/nowhere", None, StatusCode::UNAUTHORIZED),
            (Method::GET, "/_local/stats", None, StatusCode::UNAUTHORIZED),
            (
                Method::POST,
                "/messages",
                Some(bearer("nottheone-0123456789")),
                StatusCode::UNAUTHORIZED,
            ),
            (
                Method::POST,
                "/messages",
                Some(issued.write.clone()),
                StatusCode::UNAUTHORIZED,
            ),
            (
                Method::POST,
                "/messages",
                Some(bearer(&issued.read)),
                StatusCode::FORBIDDEN,
            ),
            (
                Method::GET,
                "/messages",
                Some(bearer(&issued.write)),
                StatusCode::FORBIDDEN,
            ),
            (
                Method::GET,
                "/_local/stats",
                Some(bearer(&issued.read)),
                StatusCode::FORBIDDEN,
            ),
            (
                Method::POST,
                "/messages",
                Some(bearer(&issued.write)),
                StatusCode::OK,
            ),
            (
                Method::POST,
                "/messages",
                Some(format!("bearer {}", issued.write)),
                StatusCode::OK,
            ),
            (
                Method::POST,
                "/messages",
                Some("Bearer ".to_owned()),
                StatusCode::UNAUTHORIZED,
            ),
            (
                Method::GET,
                "/messages",
                Some(bearer(&issued.read)),
                StatusCode::OK,
            ),
            (
                Method::GET,
                "/nowhere",
                Some(bearer(&issued.write)),
                StatusCode::OK,
            ),
            (
                Method::GET,
                "/_local/stats",
                Some(bearer(&issued.admin)),
                StatusCode::OK,
            ),
            (Method::GET, "/openapi.json", None, StatusCode::OK),
        ];
        for (method, path, authorization, expected) in cases {
            let label = format!("{method} {path} {authorization:?}");
            let admitted = gate.admit(request(method, path, authorization.as_deref()));
            assert_eq!(status(admitted), expected, "{label}");
        }
    }

    #[test]
    fn an_admitted_request_carries_the_callers_scopes_for_the_handlers() {
        let issued = tokens();
        let admitted = issued
            .gate()
            .admit(request(
                Method::POST,
                "/messages",
                Some(&format!("Bearer {}", issued.write)),
            ))
            .unwrap();
        let caller = Caller::of(&admitted).unwrap();
        assert!(caller.has(Scope::Write) && !caller.has(Scope::Read));
        assert_eq!(caller.client_id.as_deref(), Some("local-writer"));
    }

    #[test]
    fn a_short_given_token_is_refused() {
        assert!(IssuedTokens::given_or_random(Some("short".into()), None, None).is_err());
    }

    #[test]
    fn only_loopback_hosts_and_origins_are_answered() {
        for (header, value, ok) in [
            (HOST, "127.0.0.1:3000", true),
            (HOST, "localhost:3000", true),
            (HOST, "LOCALHOST", true),
            (HOST, "[::1]:3000", true),
            (HOST, "127.1.2.3", true),
            (HOST, "evil.example:3000", false),
            (HOST, "localhost.evil.example", false),
            (HOST, "10.0.0.1:3000", false),
            (ORIGIN, "http://localhost:3000", true),
            (ORIGIN, "http://127.0.0.1:5173", true),
            (ORIGIN, "https://evil.example", false),
            (ORIGIN, "null", false),
        ] {
            let mut request = Request::default();
            request
                .headers_mut()
                .insert(header.clone(), value.parse().unwrap());
            assert_eq!(
                check_loopback_names(&request).is_ok(),
                ok,
                "{header}: {value}"
            );
        }
    }
}
