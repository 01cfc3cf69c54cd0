//! Message attributes: a small string map a client attaches to a message, carried as SQS
//! message attributes, stored with the message and returned by the read routes.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// At most this many attributes (SQS's limit on message attributes).
pub const MAX_ATTRIBUTES: usize = 10;
/// SQS's limit on an attribute name.
pub const MAX_NAME_CHARS: usize = 256;
/// Our limit on a value. SQS bounds a value only by the message size; 1,024 characters keeps
/// ten of them, escaped in the envelope and again as SQS attributes, far inside SQS's 1 MiB
/// message and DynamoDB's 400 KB item next to the longest content.
pub const MAX_VALUE_CHARS: usize = 1024;

/// Validated attributes: names as SQS accepts them, non-empty values of XML characters.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    try_from = "BTreeMap<String, String>",
    into = "BTreeMap<String, String>"
)]
pub struct Attributes(BTreeMap<String, String>);

/// Why attributes were refused; each message says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttributeError {
    #[error("attributes has {0} entries; at most {MAX_ATTRIBUTES} are allowed")]
    TooMany(usize),
    #[error("attribute name `{0}` is invalid: {1}")]
    BadName(String, &'static str),
    #[error("attribute `{0}` is invalid: {1}")]
    BadValue(String, String),
}

impl Attributes {
    pub fn parse(raw: BTreeMap<String, String>) -> Result<Self, AttributeError> {
        if raw.len() > MAX_ATTRIBUTES {
            return Err(AttributeError::TooMany(raw.len()));
        }
        for (name, value) in &raw {
            check_name(name)?;
            check_value(name, value)?;
        }
        Ok(Self(raw))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter()
    }

    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }
}

impl TryFrom<BTreeMap<String, String>> for Attributes {
    type Error = AttributeError;

    fn try_from(raw: BTreeMap<String, String>) -> Result<Self, Self::Error> {
        Self::parse(raw)
    }
}

impl From<Attributes> for BTreeMap<String, String> {
    fn from(attributes: Attributes) -> Self {
        attributes.0
    }
}

// Values can be personal data: debug output names the attributes, never their values.
impl fmt::Debug for Attributes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// SQS's rules for a message attribute name.
fn check_name(name: &str) -> Result<(), AttributeError> {
    let bad = |why| Err(AttributeError::BadName(shown(name), why));
    let chars = name.chars().count();
    if chars == 0 {
        return bad("it is empty");
    }
    if chars > MAX_NAME_CHARS {
        return bad("it is longer than 256 characters");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return bad("use only letters, digits, `_`, `-` and `.`");
    }
    if name.starts_with('.') || name.ends_with('.') || name.contains("..") {
        return bad("it may not start or end with `.` or hold `..`");
    }
    let lower = name.to_ascii_lowercase();
    if lower.starts_with("aws.") || lower.starts_with("amazon.") {
        return bad("names starting with `AWS.` or `Amazon.` are reserved");
    }
    Ok(())
}

/// A value SQS carries: not empty, within [`MAX_VALUE_CHARS`], XML characters only (an
/// attribute travels unescaped, unlike the JSON envelope's content).
fn check_value(name: &str, value: &str) -> Result<(), AttributeError> {
    let bad = |why: String| Err(AttributeError::BadValue(shown(name), why));
    if value.is_empty() {
        return bad("the value is empty; leave the attribute out instead".into());
    }
    let chars = value.chars().count();
    if chars > MAX_VALUE_CHARS {
        return bad(format!(
            "the value is {chars} characters long; the limit is {MAX_VALUE_CHARS}"
        ));
    }
    if let Some(c) = value.chars().find(|&c| !is_xml_char(c)) {
        return bad(format!(
            "the value contains U+{:04X}, which SQS cannot carry in an attribute",
            u32::from(c)
        ));
    }
    Ok(())
}

fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// A name as an error quotes it: bounded, so a huge name does not make a huge answer.
fn shown(name: &str) -> String {
    super::truncate_chars(name, 64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<Attributes, AttributeError> {
        Attributes::parse(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn accepts_what_sqs_accepts() {
        let name = "a".repeat(256);
        let value = "é".repeat(1024);
        assert!(parse(&[
            ("tenant", "acme"),
            ("trace.id-1_x", "t\tab"),
            (&name, &value)
        ])
        .is_ok());
        assert!(parse(&[]).unwrap().is_empty());
    }

    #[test]
    fn refuses_more_than_ten() {
        let names: Vec<String> = (0..11).map(|i| format!("a{i}")).collect();
        let pairs: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
        assert_eq!(parse(&pairs), Err(AttributeError::TooMany(11)));
    }

    #[test]
    fn refuses_names_sqs_refuses() {
        let long = "a".repeat(257);
        for name in [
            "",
            "has space",
            ".lead",
            "trail.",
            "a..b",
            "AWS.x",
            "amazon.y",
            "ü",
            &long,
        ] {
            let error = parse(&[(name, "v")]).unwrap_err();
            assert!(
                matches!(error, AttributeError::BadName(..)),
                "{name}: {error}"
            );
        }
    }

    #[test]
    fn refuses_values_sqs_cannot_carry() {
        let long = "x".repeat(1025);
        for value in ["", "bell\u{7}", "nul\0", "\u{FFFE}", &long] {
            let error = parse(&[("k", value)]).unwrap_err();
            assert!(
                matches!(error, AttributeError::BadValue(..)),
                "{value:?}: {error}"
            );
        }
    }

    #[test]
    fn debug_output_hides_the_values() {
        let attributes = parse(&[("tenant", "secret")]).unwrap();
        assert_eq!(format!("{attributes:?}"), r#"{"tenant"}"#);
    }
}
