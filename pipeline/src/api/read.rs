//! `GET /messages` (a page, newest first, with a signed cursor; capped under Lambda's response
//! limit) and `GET /messages/{id}`.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};

use super::answers::{MessageView, PageView};
use super::response::json_response;
use super::{ApiError, Reader};
use crate::domain::{Cursor, Page, PageLimit};

/// GET /messages?limit=&next=: newest first.
#[tracing::instrument(skip_all)]
pub async fn list_messages(
    query: Option<&str>,
    reader: Reader<'_>,
) -> Result<Response<Body>, ApiError> {
    let mut limit = PageLimit::DEFAULT;
    let mut cursor = None;
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match &*key {
            "limit" => limit = PageLimit::parse(&value)?,
            "next" => cursor = Some(Cursor::decode(&value, reader.cursors)?),
            // Unknown parameters (cache busters, tracking tags) change nothing.
            _ => {}
        }
    }
    let page = reader
        .store
        .list(limit, cursor.map(|c| c.before))
        .await
        .map_err(ApiError::from)?;
    let (messages, next) = within_response_budget(page);
    let view = PageView {
        next: next.map(|c| c.encode(reader.cursors)),
        messages,
    };
    Ok(json_response(StatusCode::OK, &view))
}

/// The most a page's messages may take once the page is a JSON string inside Lambda's
/// response (its body is escaped once more there). Lambda refuses a response over 6 MB
/// (6,291,456 bytes), and API Gateway then answers a non-JSON 500; the margin is for the
/// envelope, headers and cursor.
pub const PAGE_BUDGET_BYTES: usize = 5 * 1024 * 1024;

/// The page's messages that fit [`PAGE_BUDGET_BYTES`], at least one; when some do not, the
/// page ends early (a short page is legal) and its cursor resumes after the last one kept.
fn within_response_budget(page: Page) -> (Vec<MessageView>, Option<Cursor>) {
    let mut budget = PAGE_BUDGET_BYTES;
    let mut views = Vec::with_capacity(page.messages.len());
    let mut last_kept = None;
    for message in page.messages {
        let id = message.id;
        let view = MessageView::from(message);
        let size = size_in_lambda_response(&view);
        if last_kept.is_some() && size > budget {
            return (views, last_kept.map(|before| Cursor { before }));
        }
        budget = budget.saturating_sub(size);
        views.push(view);
        last_kept = Some(id);
    }
    (views, page.next)
}

/// Bytes a message takes in the page once the page is escaped into Lambda's response.
fn size_in_lambda_response(view: &MessageView) -> usize {
    let json = serde_json::to_string(view).unwrap_or_default();
    // Serialising the JSON text as a string escapes it as Lambda's runtime will; +1 comma.
    serde_json::to_string(&json).map_or(json.len() * 2, |s| s.len() - 2) + 1
}

/// GET /messages/{id}.
#[tracing::instrument(skip(reader))]
pub async fn get_message(raw_id: &str, reader: Reader<'_>) -> Result<Response<Body>, ApiError> {
    let not_found = || ApiError::MessageNotFound(raw_id.chars().take(64).collect());
    // A string that is not a job id this pipeline issued cannot name a stored message.
    let id = reader.ids.parse(raw_id).ok_or_else(not_found)?;
    let message = reader
        .store
        .get(id)
        .await
        .map_err(ApiError::from)?
        .ok_or_else(not_found)?;
    Ok(json_response(StatusCode::OK, &MessageView::from(message)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ContentLimit, CursorKey, JobId, Message, MessageContent};
    use crate::testing::{body_json, stored_messages, InMemoryFailureLog, InMemoryStore};

    static KEY: std::sync::LazyLock<CursorKey> = std::sync::LazyLock::new(CursorKey::random);

    fn reader(store: &InMemoryStore) -> Reader<'_> {
        static FAILURES: std::sync::LazyLock<InMemoryFailureLog> =
            std::sync::LazyLock::new(InMemoryFailureLog::default);
        Reader {
            store,
            cursors: &KEY,
            failures: &*FAILURES,
            retention: std::time::Duration::from_secs(3600),
            clock: &crate::clock::SystemClock,
            ids: crate::testing::test_ids(),
        }
    }

    async fn list(query: &str, store: &InMemoryStore) -> Response<Body> {
        list_messages(Some(query), reader(store))
            .await
            .unwrap_or_else(ApiError::into_response)
    }

    #[tokio::test]
    async fn lists_newest_first_with_rfc3339_timestamps() {
        let store = InMemoryStore::with(stored_messages(3));

        let response = list("", &store).await;

        assert_eq!(response.status(), StatusCode::OK);
        let body = body_json(&response);
        let messages = body["messages"].as_array().unwrap();
        let contents: Vec<_> = messages
            .iter()
            .map(|m| m["content"].as_str().unwrap())
            .collect();
        assert_eq!(contents, ["message 2", "message 1", "message 0"]);
        let timestamp = messages[0]["timestamp"].as_str().unwrap();
        assert!(
            time::OffsetDateTime::parse(timestamp, &time::format_description::well_known::Rfc3339)
                .is_ok(),
            "{timestamp}"
        );
        assert!(body["next"].is_null());
    }

    /// Lambda refuses a response over 6 MB, and API Gateway then answers a non-JSON 500.
    const LAMBDA_RESPONSE_LIMIT: usize = 6 * 1024 * 1024;

    #[tokio::test]
    async fn pages_of_worst_case_content_stay_under_lambdas_response_limit_and_walk_everything() {
        // Control characters serialise to six bytes each (`\u0001`), seven once the page is
        // a string inside Lambda's response: about 28 KB a message.
        let worst = |_| {
            Message::accept(
                MessageContent::parse("\u{1}".repeat(4096), ContentLimit::DEFAULT).unwrap(),
            )
        };
        let all: Vec<Message> = (0..300).map(worst).collect();
        let store = InMemoryStore::with(all.clone());

        let mut listed = Vec::new();
        let mut query = "limit=1000".to_owned();
        let mut pages = 0;
        loop {
            let response = list(&query, &store).await;
            assert_eq!(response.status(), StatusCode::OK);
            let text = std::str::from_utf8(response.body().as_ref()).unwrap();
            let in_lambdas_response = serde_json::to_string(text).unwrap().len();
            assert!(
                in_lambdas_response < LAMBDA_RESPONSE_LIMIT,
                "page {pages}: {in_lambdas_response} bytes"
            );
            let body = body_json(&response);
            let ids = body["messages"].as_array().unwrap().iter();
            listed.extend(ids.map(|m| m["id"].as_str().unwrap().to_owned()));
            pages += 1;
            match body["next"].as_str() {
                Some(next) => query = format!("limit=1000&next={next}"),
                None => break,
            }
        }

        let newest_first: Vec<String> = all.iter().rev().map(|m| m.id.to_string()).collect();
        assert_eq!(listed, newest_first);
        assert!(pages > 1, "{pages} pages");
    }

    #[tokio::test]
    async fn pages_follow_the_next_cursor_until_it_is_null() {
        let store = InMemoryStore::with(stored_messages(5));

        let first = body_json(&list("limit=2", &store).await);
        let next = first["next"].as_str().unwrap();
        let second = body_json(&list(&format!("limit=2&next={next}"), &store).await);
        let next = second["next"].as_str().unwrap();
        let third = body_json(&list(&format!("next={next}&limit=2"), &store).await);

        let ids = |page: &serde_json::Value| page["messages"].as_array().unwrap().len();
        assert_eq!((ids(&first), ids(&second), ids(&third)), (2, 2, 1));
        assert_eq!(third["messages"][0]["content"], "message 0");
        assert!(third["next"].is_null());
    }

    #[tokio::test]
    async fn bad_limits_and_cursors_are_400() {
        let store = InMemoryStore::with(stored_messages(1));
        for query in [
            "limit=0",
            "limit=1001",
            "limit=abc",
            "next=garbage",
            "next=",
        ] {
            let response = list(query, &store).await;
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
            assert!(body_json(&response)["error"].is_string());
        }
    }

    #[tokio::test]
    async fn gets_one_message_or_404() {
        let messages = stored_messages(2);
        let wanted = messages[1].clone();
        let store = InMemoryStore::with(messages);

        let found = get_message(&wanted.id.to_string(), reader(&store))
            .await
            .unwrap();
        assert_eq!(body_json(&found)["content"], "message 1");

        for missing in [JobId::new().to_string(), "nope".to_owned()] {
            let error = get_message(&missing, reader(&store)).await.unwrap_err();
            assert_eq!(error.status(), StatusCode::NOT_FOUND, "{missing}");
        }
    }

    #[tokio::test]
    async fn a_store_failure_is_503() {
        let store = InMemoryStore::failing();
        let error = list_messages(None, reader(&store)).await.unwrap_err();
        assert_eq!(error.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
