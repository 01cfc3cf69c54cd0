use lambda_http::http::Method;

use super::ApiError;

/// What a request asks for, decided from its method and path alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Enqueue,
    List,
    /// The id exactly as it appeared in the path; whether it names a job is for the handler.
    Get(String),
    /// The OpenAPI document of this API.
    OpenApi,
}

/// `/add_message` is the tutorial's path, kept so its clients keep working.
pub fn route(method: &Method, path: &str) -> Result<Route, ApiError> {
    let path = match path.strip_suffix('/') {
        Some(trimmed) if !trimmed.is_empty() => trimmed,
        _ => path,
    };
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    match segments.as_slice() {
        ["messages"] => match *method {
            Method::GET => Ok(Route::List),
            Method::POST => Ok(Route::Enqueue),
            _ => Err(ApiError::MethodNotAllowed { allow: "GET, POST" }),
        },
        ["add_message"] => match *method {
            Method::POST => Ok(Route::Enqueue),
            _ => Err(ApiError::MethodNotAllowed { allow: "POST" }),
        },
        ["openapi.json"] => match *method {
            Method::GET => Ok(Route::OpenApi),
            _ => Err(ApiError::MethodNotAllowed { allow: "GET" }),
        },
        ["messages", id] if !id.is_empty() => match *method {
            Method::GET => Ok(Route::Get((*id).to_owned())),
            _ => Err(ApiError::MethodNotAllowed { allow: "GET" }),
        },
        _ => Err(ApiError::UnknownPath(path.chars().take(200).collect())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_the_api_paths() {
        assert_eq!(route(&Method::POST, "/messages"), Ok(Route::Enqueue));
        assert_eq!(route(&Method::POST, "/add_message"), Ok(Route::Enqueue));
        assert_eq!(route(&Method::GET, "/messages"), Ok(Route::List));
        assert_eq!(route(&Method::GET, "/openapi.json"), Ok(Route::OpenApi));
        assert_eq!(route(&Method::GET, "/messages/"), Ok(Route::List));
        assert_eq!(
            route(&Method::GET, "/messages/abc"),
            Ok(Route::Get("abc".into()))
        );
    }

    #[test]
    fn a_known_path_with_another_method_is_405_with_allow() {
        assert_eq!(
            route(&Method::DELETE, "/messages"),
            Err(ApiError::MethodNotAllowed { allow: "GET, POST" })
        );
        assert_eq!(
            route(&Method::GET, "/add_message"),
            Err(ApiError::MethodNotAllowed { allow: "POST" })
        );
        assert_eq!(
            route(&Method::PUT, "/messages/abc"),
            Err(ApiError::MethodNotAllowed { allow: "GET" })
        );
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
        ] {
            assert!(
                matches!(route(&Method::GET, path), Err(ApiError::UnknownPath(_))),
                "{path}"
            );
        }
    }
}
