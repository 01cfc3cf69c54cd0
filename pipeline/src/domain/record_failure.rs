//! Why the consumer did not store a record, and so whether a retry can help: the one place
//! that decides, for every reason a record can fail, its [`FailureClass`].

use super::{EnvelopeError, FailureClass};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordFailure {
    /// The record has no body.
    NoBody,
    /// The body failed to decode as an envelope of ours, or its job id, content or
    /// attributes fail the domain's checks.
    BadEnvelope(String),
    /// An envelope of a version this consumer does not know: a rollout in which enqueue
    /// updated first. The consumer that knows it will store it.
    UnknownVersion(String),
    /// Decoding panicked: the same body panics again.
    DecodePanicked(String),
    /// The store did not write it, and said how (its adapter classified the error).
    Refused { class: FailureClass, cause: String },
    /// The store panicked while writing it.
    StorePanicked(String),
    /// FIFO: an earlier record of its group failed, and a group is stored in order.
    NotAttempted,
}

impl RecordFailure {
    pub fn of_envelope(error: &EnvelopeError) -> Self {
        match error {
            EnvelopeError::UnknownVersion(_) => Self::UnknownVersion(error.to_string()),
            EnvelopeError::NotAnEnvelope(_)
            | EnvelopeError::BadJobId(_)
            | EnvelopeError::BadContent(_)
            | EnvelopeError::BadAttributes(_) => Self::BadEnvelope(error.to_string()),
        }
    }

    pub fn class(&self) -> FailureClass {
        match self {
            Self::NoBody | Self::BadEnvelope(_) | Self::DecodePanicked(_) => {
                FailureClass::Permanent
            }
            Self::UnknownVersion(_) => FailureClass::Deployment,
            Self::Refused { class, .. } => *class,
            Self::StorePanicked(_) | Self::NotAttempted => FailureClass::Transient,
        }
    }

    /// What went wrong, without the class.
    pub fn reason(&self) -> String {
        match self {
            Self::NoBody => "the record has no body".into(),
            Self::BadEnvelope(why) | Self::UnknownVersion(why) => why.clone(),
            Self::DecodePanicked(panic) => format!("panicked while decoding: {panic}"),
            Self::Refused { cause, .. } => cause.clone(),
            Self::StorePanicked(panic) => format!("the store panicked: {panic}"),
            Self::NotAttempted => "not attempted: an earlier message of its FIFO group failed \
                                   in this batch, and a group is stored in order"
                .into(),
        }
    }

    /// The failure note's `last_error`: the class, what it means, and the reason.
    pub fn note(&self) -> String {
        let class = self.class();
        let meaning = match class {
            FailureClass::Transient => "retried with backoff",
            FailureClass::Deployment => {
                "the backend refused the call itself; retried with backoff until the deployment is fixed"
            }
            FailureClass::Permanent => "no retry can help; dead-lettered at once",
        };
        format!("{class} ({meaning}): {}", self.reason())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ContentError, ContentLimit, QueuedMessage};

    fn decoded(body: &str) -> RecordFailure {
        RecordFailure::of_envelope(
            &QueuedMessage::decode(body, ContentLimit::ceiling()).unwrap_err(),
        )
    }

    #[test]
    fn what_no_retry_can_change_is_permanent() {
        let job = crate::domain::JobId::new();
        for failure in [
            RecordFailure::NoBody,
            decoded("hello raw"),
            decoded(r#"{"v":1,"job_id":"nope","content":"x"}"#),
            decoded(&format!(r#"{{"v":1,"job_id":"{job}","content":"  "}}"#)),
            RecordFailure::of_envelope(&EnvelopeError::BadContent(ContentError::Blank)),
            RecordFailure::DecodePanicked("boom".into()),
            RecordFailure::Refused {
                class: FailureClass::Permanent,
                cause: "job is stored with other content".into(),
            },
        ] {
            assert_eq!(failure.class(), FailureClass::Permanent, "{failure:?}");
            assert!(
                failure.note().starts_with("permanent (no retry can help"),
                "{}",
                failure.note()
            );
        }
    }

    #[test]
    fn what_may_pass_later_is_retried() {
        assert_eq!(
            RecordFailure::StorePanicked("x".into()).class(),
            FailureClass::Transient
        );
        assert_eq!(RecordFailure::NotAttempted.class(), FailureClass::Transient);
        let throttled = RecordFailure::Refused {
            class: FailureClass::Transient,
            cause: "ThrottlingException".into(),
        };
        assert_eq!(throttled.class(), FailureClass::Transient);
        assert!(throttled
            .note()
            .starts_with("transient (retried with backoff): Throttling"));
        let newer = decoded(r#"{"v":9,"job_id":"x","content":"x"}"#);
        assert_eq!(newer.class(), FailureClass::Deployment, "{newer:?}");
        let denied = RecordFailure::Refused {
            class: FailureClass::Deployment,
            cause: "AccessDeniedException".into(),
        };
        assert!(denied.class().is_retried());
    }
}
