//! Pages of messages and the page-size limit a client asks for.

use super::{Cursor, Message};

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
}
