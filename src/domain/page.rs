use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use super::{JobId, Message};

/// How many messages one page holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimit(usize);

impl PageLimit {
    pub const DEFAULT: Self = Self(50);
    pub const MAX: usize = 1000;

    pub fn parse(raw: &str) -> Result<Self, PageLimitError> {
        let n: usize = raw.trim().parse().map_err(|_| PageLimitError)?;
        if (1..=Self::MAX).contains(&n) {
            Ok(Self(n))
        } else {
            Err(PageLimitError)
        }
    }

    pub fn get(self) -> usize {
        self.0
    }
}

impl Default for PageLimit {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("limit must be a whole number from 1 to {}", PageLimit::MAX)]
pub struct PageLimitError;

/// Where the next page starts: strictly older than the last message of the previous page.
///
/// Opaque to clients (base64url); what it encodes is the job id of that last message, which
/// is enough because ids are unique and totally ordered by time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub before: JobId,
}

impl Cursor {
    const PREFIX: &'static str = "v1:";

    pub fn after(message: &Message) -> Self {
        Self { before: message.id }
    }

    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}{}", Self::PREFIX, self.before))
    }

    pub fn decode(raw: &str) -> Result<Self, CursorError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(raw.trim())
            .map_err(|_| CursorError)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| CursorError)?;
        let id = text.strip_prefix(Self::PREFIX).ok_or(CursorError)?;
        let before = id.parse().map_err(|_| CursorError)?;
        Ok(Self { before })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("next must be the `next` value of a previous page, unchanged")]
pub struct CursorError;

/// Messages newest first, and where the following page starts if there is one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Page {
    pub messages: Vec<Message>,
    pub next: Option<Cursor>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_accepts_one_to_a_thousand() {
        assert_eq!(PageLimit::parse("1").unwrap().get(), 1);
        assert_eq!(PageLimit::parse("1000").unwrap().get(), 1000);
        for bad in [
            "0",
            "1001",
            "-1",
            "ten",
            "",
            "1.5",
            "99999999999999999999999",
        ] {
            assert_eq!(PageLimit::parse(bad), Err(PageLimitError), "{bad}");
        }
    }

    #[test]
    fn a_cursor_round_trips_and_is_opaque() {
        let cursor = Cursor {
            before: JobId::new(),
        };
        let encoded = cursor.encode();
        assert!(!encoded.contains(&cursor.before.to_string()));
        assert_eq!(Cursor::decode(&encoded), Ok(cursor));
    }

    #[test]
    fn garbage_cursors_are_refused() {
        let no_prefix = URL_SAFE_NO_PAD.encode(JobId::new().to_string());
        for bad in ["", "%%%", "djE6", "djE6bm90LWFuLWlk", no_prefix.as_str()] {
            assert_eq!(Cursor::decode(bad), Err(CursorError), "{bad}");
        }
    }
}
