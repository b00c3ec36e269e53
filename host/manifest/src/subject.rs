//! Event subjects and subscription patterns.
//!
//! A subject is dot-separated tokens, `<entity>.<action>.<schema>`, such as
//! `blob.created.text-input-v1`. A pattern uses NATS wildcards: `*` matches
//! exactly one token, `>` (last token only) matches one or more remaining tokens.
//! The same subjects map one to one onto NATS as `reyna.<tenant>.<subject>`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a subject or pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubjectError {
    /// The text is empty.
    #[error("subject is empty")]
    Empty,
    /// Two dots in a row, or a leading or trailing dot.
    #[error("subject `{0}` has an empty token")]
    EmptyToken(String),
    /// A token holds a character outside `[a-z0-9_-]`.
    #[error(
        "subject `{subject}` has an invalid character {ch:?} (tokens use a-z, 0-9, `-` and `_`)"
    )]
    InvalidChar {
        /// The whole subject.
        subject: String,
        /// The offending character.
        ch: char,
    },
    /// A wildcard appears where it is not allowed.
    #[error("subject `{0}`: `*` must be a whole token and `>` only the last token")]
    MisplacedWildcard(String),
    /// A concrete subject contains a wildcard.
    #[error("subject `{0}` contains a wildcard; only patterns may")]
    WildcardInSubject(String),
}

fn check_token_chars(whole: &str, token: &str) -> Result<(), SubjectError> {
    match token
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_'))
    {
        Some(ch) => Err(SubjectError::InvalidChar {
            subject: whole.to_owned(),
            ch,
        }),
        None => Ok(()),
    }
}

/// A concrete subject such as `blob.created.text-input-v1`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subject(String);

impl Subject {
    /// Parses and checks a concrete subject (no wildcards).
    pub fn parse(text: &str) -> Result<Self, SubjectError> {
        if text.is_empty() {
            return Err(SubjectError::Empty);
        }
        for token in text.split('.') {
            if token.is_empty() {
                return Err(SubjectError::EmptyToken(text.to_owned()));
            }
            if token == "*" || token == ">" {
                return Err(SubjectError::WildcardInSubject(text.to_owned()));
            }
            check_token_chars(text, token)?;
        }
        Ok(Self(text.to_owned()))
    }

    /// The subject of the event emitted when a blob of `schema` is created.
    pub fn blob_created(schema: &str) -> Self {
        Self(format!("blob.created.{schema}"))
    }

    /// The subject text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The dot-separated tokens.
    pub fn tokens(&self) -> impl Iterator<Item = &str> {
        self.0.split('.')
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One token of a [`SubjectPattern`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PatternToken {
    /// Matches this exact token.
    Literal(String),
    /// `*`: matches any single token.
    Any,
    /// `>`: matches one or more remaining tokens.
    Rest,
}

/// A subscription pattern with NATS wildcards, such as `blob.created.*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SubjectPattern {
    text: String,
    tokens: Vec<PatternToken>,
}

impl SubjectPattern {
    /// Parses and checks a pattern.
    pub fn parse(text: &str) -> Result<Self, SubjectError> {
        if text.is_empty() {
            return Err(SubjectError::Empty);
        }
        let parts: Vec<&str> = text.split('.').collect();
        let mut tokens = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            let token = match *part {
                "" => return Err(SubjectError::EmptyToken(text.to_owned())),
                "*" => PatternToken::Any,
                ">" if i + 1 == parts.len() => PatternToken::Rest,
                ">" => return Err(SubjectError::MisplacedWildcard(text.to_owned())),
                t if t.contains('*') || t.contains('>') => {
                    return Err(SubjectError::MisplacedWildcard(text.to_owned()));
                }
                t => {
                    check_token_chars(text, t)?;
                    PatternToken::Literal(t.to_owned())
                }
            };
            tokens.push(token);
        }
        Ok(Self {
            text: text.to_owned(),
            tokens,
        })
    }

    /// The pattern text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The parsed tokens.
    pub fn tokens(&self) -> &[PatternToken] {
        &self.tokens
    }

    /// The literal token at `index`, if that position is not a wildcard.
    pub fn literal_at(&self, index: usize) -> Option<&str> {
        match self.tokens.get(index) {
            Some(PatternToken::Literal(t)) => Some(t),
            _ => None,
        }
    }

    /// Whether `subject` matches this pattern (NATS semantics).
    pub fn matches(&self, subject: &Subject) -> bool {
        let mut subject_tokens = subject.tokens();
        for token in &self.tokens {
            match token {
                PatternToken::Rest => return subject_tokens.next().is_some(),
                PatternToken::Any => {
                    if subject_tokens.next().is_none() {
                        return false;
                    }
                }
                PatternToken::Literal(lit) => match subject_tokens.next() {
                    Some(t) if t == lit => {}
                    _ => return false,
                },
            }
        }
        subject_tokens.next().is_none()
    }
}

impl fmt::Display for SubjectPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for SubjectPattern {
    type Err = SubjectError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for SubjectPattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for SubjectPattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, subject: &str) -> bool {
        SubjectPattern::parse(pattern)
            .unwrap()
            .matches(&Subject::parse(subject).unwrap())
    }

    #[test]
    fn wildcards_follow_nats_semantics() {
        assert!(m(
            "blob.created.text-input-v1",
            "blob.created.text-input-v1"
        ));
        assert!(!m("blob.created.text-input-v1", "blob.created.chapter-v1"));
        assert!(m("blob.created.*", "blob.created.chapter-v1"));
        assert!(!m("blob.created.*", "blob.created"));
        assert!(!m("blob.*", "blob.created.chapter-v1"));
        assert!(m("blob.>", "blob.created.chapter-v1"));
        assert!(m(">", "blob.created.chapter-v1"));
        assert!(!m("blob.created.>", "blob.created"));
        assert!(m("*.created.*", "blob.created.x-v1"));
        assert!(!m("blob.created.x-v1.extra", "blob.created.x-v1"));
    }

    #[test]
    fn malformed_patterns_are_refused_with_a_reason() {
        assert_eq!(SubjectPattern::parse(""), Err(SubjectError::Empty));
        assert!(matches!(
            SubjectPattern::parse("blob..x"),
            Err(SubjectError::EmptyToken(_))
        ));
        assert!(matches!(
            SubjectPattern::parse("blob.>.x"),
            Err(SubjectError::MisplacedWildcard(_))
        ));
        assert!(matches!(
            SubjectPattern::parse("blob.cre*"),
            Err(SubjectError::MisplacedWildcard(_))
        ));
        let err = SubjectPattern::parse("blob.Created").unwrap_err();
        assert_eq!(
            err.to_string(),
            "subject `blob.Created` has an invalid character 'C' (tokens use a-z, 0-9, `-` and `_`)"
        );
        assert!(matches!(
            Subject::parse("blob.created.*"),
            Err(SubjectError::WildcardInSubject(_))
        ));
    }
}
