//! The API's route table: each method and path, what it does and the scope it needs. The
//! router, the handlers' authorization, template.yaml and openapi.json are checked against it.

use lambda_http::http::Method;

use super::{ApiError, Scope};

/// What a request asks for, decided from its method and path alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Enqueue,
    EnqueueBatch,
    List,
    /// The id exactly as it appeared in the path; whether it names a job is for the handler.
    Get(String),
    /// The OpenAPI document of this API.
    OpenApi,
    /// A job's status, by the id as it appeared in the path.
    JobStatus(String),
    Stats,
    /// The flow minute by minute (`?minutes=`, for the handler).
    StatsHistory,
    DeadLetters,
    /// Requeue one dead-lettered job, by the id as it appeared in the path.
    Requeue(String),
    RequeueAll,
    PurgeDeadLetters,
    /// Delete one dead-lettered job for good, by the id as it appeared in the path.
    DeleteDeadLetter(String),
    /// Delete a job's message for good, stored or still on its way, by the id as it
    /// appeared in the path.
    DeleteMessage(String),
    /// A file of the dashboard: `""` for the page itself.
    Dashboard(String),
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, with or without a token.
    Public,
    /// Any valid token, whatever its scopes.
    Authenticated,
    /// A token that carries this scope.
    Scoped(Scope),
}

/// One row of the API: a method and path template, what it does and who may call it.
#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    pub method: &'static str,
    /// Literal segments, and one `{name}` segment for a path parameter.
    pub path: &'static str,
    pub access: Access,
    operation: Operation,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Enqueue,
    EnqueueBatch,
    List,
    Get,
    OpenApi,
    JobStatus,
    Stats,
    StatsHistory,
    DeadLetters,
    Requeue,
    RequeueAll,
    PurgeDeadLetters,
    DeleteDeadLetter,
    DeleteMessage,
    Dashboard,
}

const fn spec(
    method: &'static str,
    path: &'static str,
    access: Access,
    operation: Operation,
) -> RouteSpec {
    RouteSpec {
        method,
        path,
        access,
        operation,
    }
}

/// The API's routes and the scope each needs: the one table that the router, the handlers'
/// authorization, template.yaml's route scopes and openapi.json's security are checked
/// against (tests/template.rs, the tests below). `/add_message` is the tutorial's path, kept
/// so its clients keep working.
pub const ROUTES: &[RouteSpec] = &[
    spec(
        "POST",
        "/messages",
        Access::Scoped(Scope::Write),
        Operation::Enqueue,
    ),
    spec(
        "POST",
        "/messages/batch",
        Access::Scoped(Scope::Write),
        Operation::EnqueueBatch,
    ),
    spec(
        "POST",
        "/add_message",
        Access::Scoped(Scope::Write),
        Operation::Enqueue,
    ),
    spec(
        "GET",
        "/messages",
        Access::Scoped(Scope::Read),
        Operation::List,
    ),
    spec(
        "GET",
        "/messages/{id}",
        Access::Scoped(Scope::Read),
        Operation::Get,
    ),
    // Erasure: an operator's act (it also removes the job's dead letter and failure note).
    spec(
        "DELETE",
        "/messages/{id}",
        Access::Scoped(Scope::Admin),
        Operation::DeleteMessage,
    ),
    spec("GET", "/openapi.json", Access::Public, Operation::OpenApi),
    spec(
        "GET",
        "/jobs/{id}",
        Access::Scoped(Scope::Read),
        Operation::JobStatus,
    ),
    spec(
        "GET",
        "/stats",
        Access::Scoped(Scope::Read),
        Operation::Stats,
    ),
    spec(
        "GET",
        "/stats/history",
        Access::Scoped(Scope::Read),
        Operation::StatsHistory,
    ),
    // Dead letters carry message content and their errors: admin only, reads included.
    spec(
        "GET",
        "/dead-letters",
        Access::Scoped(Scope::Admin),
        Operation::DeadLetters,
    ),
    spec(
        "DELETE",
        "/dead-letters",
        Access::Scoped(Scope::Admin),
        Operation::PurgeDeadLetters,
    ),
    spec(
        "POST",
        "/dead-letters/requeue-all",
        Access::Scoped(Scope::Admin),
        Operation::RequeueAll,
    ),
    spec(
        "POST",
        "/dead-letters/{id}/requeue",
        Access::Scoped(Scope::Admin),
        Operation::Requeue,
    ),
    spec(
        "DELETE",
        "/dead-letters/{id}",
        Access::Scoped(Scope::Admin),
        Operation::DeleteDeadLetter,
    ),
    // The page and its files hold no data (it asks for a token and calls the routes above).
    spec("GET", "/dashboard", Access::Public, Operation::Dashboard),
    spec(
        "GET",
        "/dashboard/{file}",
        Access::Public,
        Operation::Dashboard,
    ),
];

/// Who gets an answer (404, 405) for a method and path outside [`ROUTES`]: API Gateway's
/// `$default` route. An anonymous scanner learns nothing and invokes nothing.
pub const CATCH_ALL_ACCESS: Access = Access::Authenticated;

/// A request's route and who may call it; or the 404/405 that answers it.
pub fn route(method: &Method, path: &str) -> Result<(Route, Access), ApiError> {
    let path = match path.strip_suffix('/') {
        Some(trimmed) if !trimmed.is_empty() => trimmed,
        _ => path,
    };
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let candidates: Vec<(&RouteSpec, Option<&str>)> = ROUTES
        .iter()
        .filter_map(|spec| matches(spec.path, &segments).map(|id| (spec, id)))
        .collect();
    // A path that is a resource of its own (`/dead-letters/requeue-all`) is never also read
    // as a parameter (`/dead-letters/{id}`): it has its own methods, and only those.
    let literal = candidates.iter().any(|(spec, _)| !spec.path.contains('{'));
    let mut allowed = Vec::new();
    for (spec, id) in candidates {
        if literal && spec.path.contains('{') {
            continue;
        }
        if spec.method != method.as_str() {
            allowed.push(spec.method);
            continue;
        }
        let route = match spec.operation {
            Operation::Enqueue => Route::Enqueue,
            Operation::EnqueueBatch => Route::EnqueueBatch,
            Operation::List => Route::List,
            Operation::Get => Route::Get(id.unwrap_or_default().to_owned()),
            Operation::OpenApi => Route::OpenApi,
            Operation::JobStatus => Route::JobStatus(id.unwrap_or_default().to_owned()),
            Operation::Stats => Route::Stats,
            Operation::StatsHistory => Route::StatsHistory,
            Operation::DeadLetters => Route::DeadLetters,
            Operation::Requeue => Route::Requeue(id.unwrap_or_default().to_owned()),
            Operation::RequeueAll => Route::RequeueAll,
            Operation::PurgeDeadLetters => Route::PurgeDeadLetters,
            Operation::DeleteDeadLetter => {
                Route::DeleteDeadLetter(id.unwrap_or_default().to_owned())
            }
            Operation::DeleteMessage => Route::DeleteMessage(id.unwrap_or_default().to_owned()),
            Operation::Dashboard => Route::Dashboard(id.unwrap_or_default().to_owned()),
        };
        return Ok((route, spec.access));
    }
    if allowed.is_empty() {
        Err(ApiError::UnknownPath(path.chars().take(200).collect()))
    } else {
        allowed.sort_unstable();
        Err(ApiError::MethodNotAllowed {
            allow: allowed.join(", "),
        })
    }
}

/// `Some(path parameter)` when `segments` fit the template.
fn matches<'a>(template: &str, segments: &[&'a str]) -> Option<Option<&'a str>> {
    let parts: Vec<&str> = template.split('/').skip(1).collect();
    if parts.len() != segments.len() {
        return None;
    }
    let mut id = None;
    for (part, segment) in parts.iter().zip(segments) {
        if part.starts_with('{') && !segment.is_empty() {
            id = Some(*segment);
        } else if part != segment {
            return None;
        }
    }
    Some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route_of(method: Method, path: &str) -> Result<Route, ApiError> {
        route(&method, path).map(|(route, _)| route)
    }

    #[test]
    fn routes_the_api_paths() {
        assert_eq!(route_of(Method::POST, "/messages"), Ok(Route::Enqueue));
        assert_eq!(route_of(Method::POST, "/add_message"), Ok(Route::Enqueue));
        assert_eq!(route_of(Method::GET, "/messages"), Ok(Route::List));
        assert_eq!(route_of(Method::GET, "/openapi.json"), Ok(Route::OpenApi));
        assert_eq!(route_of(Method::GET, "/messages/"), Ok(Route::List));
        assert_eq!(
            route_of(Method::GET, "/messages/abc"),
            Ok(Route::Get("abc".into()))
        );
        assert_eq!(
            route_of(Method::GET, "/jobs/abc"),
            Ok(Route::JobStatus("abc".into()))
        );
        assert_eq!(route_of(Method::GET, "/stats"), Ok(Route::Stats));
        assert_eq!(
            route_of(Method::GET, "/stats/history"),
            Ok(Route::StatsHistory)
        );
        assert_eq!(
            route_of(Method::POST, "/dead-letters/requeue-all"),
            Ok(Route::RequeueAll)
        );
        assert_eq!(
            route_of(Method::POST, "/dead-letters/abc/requeue"),
            Ok(Route::Requeue("abc".into()))
        );
        assert_eq!(
            route_of(Method::DELETE, "/dead-letters"),
            Ok(Route::PurgeDeadLetters)
        );
        assert_eq!(
            route_of(Method::DELETE, "/dead-letters/abc"),
            Ok(Route::DeleteDeadLetter("abc".into()))
        );
        assert_eq!(
            route_of(Method::DELETE, "/messages/abc"),
            Ok(Route::DeleteMessage("abc".into()))
        );
        assert_eq!(
            route(&Method::DELETE, "/messages/abc").unwrap().1,
            Access::Scoped(Scope::Admin)
        );
        assert_eq!(
            route_of(Method::GET, "/dashboard"),
            Ok(Route::Dashboard(String::new()))
        );
        assert_eq!(
            route_of(Method::GET, "/dashboard/app.js"),
            Ok(Route::Dashboard("app.js".into()))
        );
    }

    #[test]
    fn every_change_to_the_dead_letter_queue_is_a_post_or_delete_and_needs_admin() {
        for path in ["/dead-letters/requeue-all", "/dead-letters/x/requeue"] {
            assert!(matches!(
                route(&Method::GET, path),
                Err(ApiError::MethodNotAllowed { .. })
            ));
            assert_eq!(
                route(&Method::POST, path).unwrap().1,
                Access::Scoped(Scope::Admin)
            );
        }
        assert_eq!(
            route(&Method::GET, "/dead-letters").unwrap().1,
            Access::Scoped(Scope::Admin)
        );
    }

    #[test]
    fn writes_need_the_write_scope_reads_the_read_scope_and_the_document_none() {
        let access = |method: Method, path: &str| route(&method, path).unwrap().1;
        assert_eq!(
            access(Method::POST, "/messages"),
            Access::Scoped(Scope::Write)
        );
        assert_eq!(
            access(Method::POST, "/add_message"),
            Access::Scoped(Scope::Write)
        );
        assert_eq!(
            access(Method::GET, "/messages"),
            Access::Scoped(Scope::Read)
        );
        assert_eq!(
            access(Method::GET, "/messages/x"),
            Access::Scoped(Scope::Read)
        );
        assert_eq!(access(Method::GET, "/openapi.json"), Access::Public);
    }

    #[test]
    fn a_known_path_with_another_method_is_405_with_allow() {
        let allow = |method: Method, path: &str| match route(&method, path) {
            Err(ApiError::MethodNotAllowed { allow }) => allow,
            other => panic!("{other:?}"),
        };
        assert_eq!(allow(Method::DELETE, "/messages"), "GET, POST");
        assert_eq!(allow(Method::POST, "/dead-letters"), "DELETE, GET");
        // Found by schemathesis: a literal path is not also `/dead-letters/{id}`.
        assert_eq!(allow(Method::DELETE, "/dead-letters/requeue-all"), "POST");
        assert_eq!(allow(Method::OPTIONS, "/dead-letters/requeue-all"), "POST");
        assert_eq!(allow(Method::GET, "/add_message"), "POST");
        assert_eq!(allow(Method::PUT, "/messages/abc"), "DELETE, GET");
    }

    #[test]
    fn anything_else_is_404() {
        for path in [
            "/",
            "",
            "/message",
            "/messages/a/b",
            "/messages//",
            "/add_message/x",
            "/openapi.json/x",
        ] {
            assert!(
                matches!(route(&Method::GET, path), Err(ApiError::UnknownPath(_))),
                "{path}"
            );
        }
    }
}
