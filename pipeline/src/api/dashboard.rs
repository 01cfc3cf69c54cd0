//! `GET /dashboard`: the operations page, its script and its style sheet, compiled into the
//! binary from `dashboard/` so that the page loads nothing from anywhere else. They hold no
//! data: the page asks for a token and calls the API with it.

use lambda_http::http::header::{
    HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION,
    REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};

use super::ApiError;

const FILES: &[(&str, &str, &str)] = &[
    (
        "",
        "text/html; charset=utf-8",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../dashboard/index.html"
        )),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../dashboard/app.js")),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../dashboard/style.css"
        )),
    ),
];

/// Only this origin's own files and API; no inline script (a message body that got into
/// the page as markup could not run), no framing.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                      connect-src 'self'; img-src 'self'; base-uri 'none'; \
                      form-action 'none'; frame-ancestors 'none'";

/// `name` of the files above; `path`, the request's, so that the page asked for as
/// `.../dashboard/` is sent to `.../dashboard`, where its relative URLs resolve.
pub fn file(name: &str, path: &str) -> Result<Response<Body>, ApiError> {
    if name.is_empty() && path.ends_with('/') {
        let mut response = Response::new(Body::Empty);
        *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
        response
            .headers_mut()
            .insert(LOCATION, HeaderValue::from_static("../dashboard"));
        return Ok(response);
    }
    let (_, content_type, text) = FILES
        .iter()
        .find(|(file, _, _)| *file == name)
        .ok_or_else(|| ApiError::UnknownPath(format!("/dashboard/{name}")))?;
    let mut response = Response::new(Body::Text((*text).to_owned()));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        HeaderName::from_static("x-frame-options"),
        HeaderValue::from_static("DENY"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The page's URLs are relative to it: at `/dashboard/` they would miss.
    #[test]
    fn the_page_with_a_trailing_slash_is_sent_to_the_page() {
        let response = file("", "/prod/dashboard/").unwrap();
        assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(response.headers()[LOCATION], "../dashboard");

        let page = file("", "/prod/dashboard").unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        let Body::Text(html) = page.body() else {
            panic!("the page is text")
        };
        assert!(html.contains(r#"src="dashboard/app.js""#), "{html}");
        assert!(
            !html.contains(r#"="/"#),
            "no URL from the host's root: {html}"
        );
    }
}
