//! The body a queued message carries (version, job id, content), and its decoding, which
//! checks everything again: anyone who can send to the queue can put any body there.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{
    AttributeError, Attributes, ContentError, ContentLimit, JobId, Message, MessageContent,
};

/// The body of an SQS message: what the enqueue function sends and the consumer decodes.
///
/// Versioned so that a consumer can refuse a shape it does not know instead of guessing:
/// version 2 adds `attributes`, and a message without attributes is still sent as version 1,
/// so that a consumer deployed before attributes existed keeps storing such messages (and
/// refuses, hence retries, the others until it is updated, instead of dropping attributes).
#[derive(Debug, Serialize, Deserialize)]
pub struct QueuedMessage {
    pub v: u8,
    pub job_id: String,
    pub content: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<BTreeMap<String, String>>,
}

impl QueuedMessage {
    const VERSION: u8 = 1;
    const WITH_ATTRIBUTES: u8 = 2;

    pub fn body_of(message: &Message) -> String {
        let attributes =
            (!message.attributes.is_empty()).then(|| message.attributes.as_map().clone());
        let envelope = Self {
            v: if attributes.is_some() {
                Self::WITH_ATTRIBUTES
            } else {
                Self::VERSION
            },
            job_id: message.id.to_string(),
            content: message.content.as_str().to_owned(),
            attributes,
        };
        // Serialising a struct of strings into a String cannot fail.
        serde_json::to_string(&envelope).unwrap_or_default()
    }

    /// The job a body names, if it is an envelope with a valid job id (its content is not
    /// checked): how a dead letter is matched to its job.
    pub fn job_id_of(body: &str) -> Option<JobId> {
        #[derive(Deserialize)]
        struct Named {
            job_id: String,
        }
        serde_json::from_str::<Named>(body)
            .ok()?
            .job_id
            .parse()
            .ok()
    }

    /// Decodes and re-validates a body. The queue is a trust boundary too: anything with
    /// permission to send can put a body there that never went through the API.
    pub fn decode(body: &str, limit: ContentLimit) -> Result<Message, EnvelopeError> {
        let envelope: Self = serde_json::from_str(body).map_err(EnvelopeError::NotAnEnvelope)?;
        if envelope.v != Self::VERSION && envelope.v != Self::WITH_ATTRIBUTES {
            return Err(EnvelopeError::UnknownVersion(envelope.v));
        }
        let id = envelope
            .job_id
            .parse::<JobId>()
            .map_err(|e| EnvelopeError::BadJobId(e.to_string()))?;
        let content = MessageContent::parse(envelope.content, limit)?;
        let attributes = Attributes::parse(envelope.attributes.unwrap_or_default())?;
        Ok(Message::new(id, content, attributes))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("body is not a message envelope: {0}")]
    NotAnEnvelope(#[source] serde_json::Error),
    #[error("envelope version {0} is not known to this consumer")]
    UnknownVersion(u8),
    #[error("{0}")]
    BadJobId(String),
    #[error(transparent)]
    BadContent(#[from] ContentError),
    #[error(transparent)]
    BadAttributes(#[from] AttributeError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(text: &str) -> Message {
        Message::accept(MessageContent::parse(text.into(), ContentLimit::DEFAULT).unwrap())
    }

    #[test]
    fn a_body_decodes_to_the_message_it_was_made_from() {
        let original = message("line one\nline \"two\"\u{0}");
        let decoded =
            QueuedMessage::decode(&QueuedMessage::body_of(&original), ContentLimit::DEFAULT);
        assert_eq!(decoded.unwrap(), original);
    }

    #[test]
    fn attributes_travel_in_version_2_and_plain_messages_stay_version_1() {
        let plain = QueuedMessage::body_of(&message("hi"));
        assert!(
            plain.starts_with(r#"{"v":1,"#) && !plain.contains("attributes"),
            "{plain}"
        );
        let mut tagged = message("hi");
        tagged.attributes =
            Attributes::parse([("tenant".to_owned(), "acme".to_owned())].into()).unwrap();
        let body = QueuedMessage::body_of(&tagged);
        assert!(body.starts_with(r#"{"v":2,"#), "{body}");
        assert_eq!(
            QueuedMessage::decode(&body, ContentLimit::DEFAULT).unwrap(),
            tagged
        );
        let forged = body.replace("tenant", "AWS.tenant");
        assert!(matches!(
            QueuedMessage::decode(&forged, ContentLimit::DEFAULT),
            Err(EnvelopeError::BadAttributes(_))
        ));
    }

    #[test]
    fn control_characters_travel_escaped() {
        let body = QueuedMessage::body_of(&message("bell\u{7}"));
        assert!(body.contains("\\u0007"), "{body}");
        assert!(!body.chars().any(|c| c.is_control()));
    }

    #[test]
    fn refuses_bodies_that_are_not_envelopes() {
        for body in ["", "hello", "{}", r#"{"v":1,"job_id":"x","content":"hi"}"#] {
            assert!(
                QueuedMessage::decode(body, ContentLimit::DEFAULT).is_err(),
                "{body}"
            );
        }
    }

    #[test]
    fn refuses_an_unknown_version() {
        let body = QueuedMessage::body_of(&message("hi")).replace("\"v\":1", "\"v\":9");
        assert!(matches!(
            QueuedMessage::decode(&body, ContentLimit::DEFAULT),
            Err(EnvelopeError::UnknownVersion(9))
        ));
    }

    #[test]
    fn revalidates_content_that_bypassed_the_api() {
        let body = format!(r#"{{"v":1,"job_id":"{}","content":"  "}}"#, JobId::new());
        assert!(matches!(
            QueuedMessage::decode(&body, ContentLimit::DEFAULT),
            Err(EnvelopeError::BadContent(ContentError::Blank))
        ));
    }
}
