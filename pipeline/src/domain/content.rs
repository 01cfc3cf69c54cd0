//! Message content: what a message may hold, and the configurable limit on its length.

use std::fmt;

/// How long a message's content may be, in characters (Unicode scalar values, not bytes).
///
/// The ceiling keeps the largest possible envelope (every character JSON-escaped to six
/// bytes) inside SQS's 256 KiB body and DynamoDB's 400 KB item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentLimit(usize);

impl ContentLimit {
    pub const DEFAULT: Self = Self(4096);
    pub const CEILING: usize = 32 * 1024;

    pub fn new(max_chars: usize) -> Result<Self, String> {
        if (1..=Self::CEILING).contains(&max_chars) {
            Ok(Self(max_chars))
        } else {
            Err(format!(
                "must be between 1 and {} characters, got {max_chars}",
                Self::CEILING
            ))
        }
    }

    pub fn max_chars(self) -> usize {
        self.0
    }

    /// The largest limit any deployment may configure: what reading a message that was once
    /// accepted must allow, whatever the limit is now.
    pub const fn ceiling() -> Self {
        Self(Self::CEILING)
    }
}

impl Default for ContentLimit {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Why a content string was refused; each message says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContentError {
    #[error("content must not be empty or only whitespace")]
    Blank,
    #[error("content is {chars} characters long; the limit is {limit}")]
    TooLong { chars: usize, limit: usize },
    #[error("content contains U+{0:04X}, a noncharacter that SQS cannot carry; remove it")]
    Uncarriable(u32),
}

/// Message content that passed validation: non-blank, within the limit, and carriable by SQS.
#[derive(Clone, PartialEq, Eq)]
pub struct MessageContent(String);

impl MessageContent {
    pub fn parse(raw: String, limit: ContentLimit) -> Result<Self, ContentError> {
        if raw.trim().is_empty() {
            return Err(ContentError::Blank);
        }
        let chars = raw.chars().count();
        if chars > limit.max_chars() {
            return Err(ContentError::TooLong {
                chars,
                limit: limit.max_chars(),
            });
        }
        // SQS bodies accept XML characters only. Control characters are safe because the
        // envelope is JSON and serde_json escapes them; U+FFFE and U+FFFF are not escaped.
        if let Some(c) = raw.chars().find(|c| matches!(c, '\u{FFFE}' | '\u{FFFF}')) {
            return Err(ContentError::Uncarriable(u32::from(c)));
        }
        Ok(Self(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

// Content can be personal data: debug output shows its size, never its text.
impl fmt::Debug for MessageContent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageContent({} bytes)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<MessageContent, ContentError> {
        MessageContent::parse(raw.to_owned(), ContentLimit::DEFAULT)
    }

    #[test]
    fn accepts_ordinary_text_unchanged() {
        let content = parse("Hello from Flask Queue!").unwrap();
        assert_eq!(content.as_str(), "Hello from Flask Queue!");
    }

    #[test]
    fn rejects_empty_and_whitespace_only_content() {
        assert_eq!(parse(""), Err(ContentError::Blank));
        assert_eq!(parse(" \n\t"), Err(ContentError::Blank));
    }

    #[test]
    fn counts_the_limit_in_characters_not_bytes() {
        let four_thousand_ninety_six_emoji = "🦀".repeat(4096);
        assert!(parse(&four_thousand_ninety_six_emoji).is_ok());
        assert_eq!(
            parse(&"🦀".repeat(4097)),
            Err(ContentError::TooLong {
                chars: 4097,
                limit: 4096
            })
        );
    }

    #[test]
    fn honours_a_configured_limit() {
        let limit = ContentLimit::new(5).unwrap();
        assert!(MessageContent::parse("12345".into(), limit).is_ok());
        assert!(MessageContent::parse("123456".into(), limit).is_err());
    }

    #[test]
    fn refuses_limits_outside_what_sqs_and_dynamodb_can_hold() {
        assert!(ContentLimit::new(0).is_err());
        assert!(ContentLimit::new(ContentLimit::CEILING + 1).is_err());
        assert!(ContentLimit::new(ContentLimit::CEILING).is_ok());
    }

    #[test]
    fn rejects_noncharacters_that_sqs_refuses_but_keeps_control_characters() {
        assert_eq!(parse("a\u{FFFF}"), Err(ContentError::Uncarriable(0xFFFF)));
        assert!(parse("tab\tnul\0bell\u{7}").is_ok());
    }

    #[test]
    fn debug_output_hides_the_text() {
        let content = parse("secret").unwrap();
        assert_eq!(format!("{content:?}"), "MessageContent(6 bytes)");
    }
}
