use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};
use serde::Serialize;
use time::format_description::well_known::Rfc3339;

use super::{json_response, ApiError, Reader};
use crate::domain::{Cursor, JobId, Message, PageLimit};
use crate::ports::MessageStore;

#[derive(Serialize)]
struct MessageView {
    id: String,
    content: String,
    timestamp: String,
}

impl From<Message> for MessageView {
    fn from(message: Message) -> Self {
        Self {
            id: message.id.to_string(),
            timestamp: message
                .id
                .accepted_at()
                .format(&Rfc3339)
                .unwrap_or_default(),
            content: message.content.into_string(),
        }
    }
}

#[derive(Serialize)]
struct PageView {
    messages: Vec<MessageView>,
    next: Option<String>,
}

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
        .map_err(ApiError::Unavailable)?;
    let view = PageView {
        next: page.next.map(|c| c.encode(reader.cursors)),
        messages: page.messages.into_iter().map(MessageView::from).collect(),
    };
    Ok(json_response(StatusCode::OK, &view))
}

/// GET /messages/{id}.
#[tracing::instrument(skip(store))]
pub async fn get_message(
    raw_id: &str,
    store: &dyn MessageStore,
) -> Result<Response<Body>, ApiError> {
    let not_found = || ApiError::MessageNotFound(raw_id.chars().take(64).collect());
    // A string that is not a job id cannot name a stored message.
    let id: JobId = raw_id.parse().map_err(|_| not_found())?;
    let message = store
        .get(id)
        .await
        .map_err(ApiError::Unavailable)?
        .ok_or_else(not_found)?;
    Ok(json_response(StatusCode::OK, &MessageView::from(message)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CursorKey;
    use crate::testing::{body_json, stored_messages, InMemoryStore};

    static KEY: std::sync::LazyLock<CursorKey> = std::sync::LazyLock::new(CursorKey::random);

    fn reader(store: &InMemoryStore) -> Reader<'_> {
        Reader {
            store,
            cursors: &KEY,
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
            time::OffsetDateTime::parse(timestamp, &Rfc3339).is_ok(),
            "{timestamp}"
        );
        assert!(body["next"].is_null());
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

        let found = get_message(&wanted.id.to_string(), &store).await.unwrap();
        assert_eq!(body_json(&found)["content"], "message 1");

        for missing in [JobId::new().to_string(), "nope".to_owned()] {
            let error = get_message(&missing, &store).await.unwrap_err();
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
