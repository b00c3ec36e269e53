//! Subject matching, checked against a reference written for obviousness,
//! not speed: the NATS rules read straight off the token lists.

use reyna_manifest::{SchemaId, Subject, SubjectPattern};

/// Splits `data` into a pattern and a subject at the first newline (no
/// newline: the same text is both), parses them, and checks:
///
/// - [`SubjectPattern::parse`] and [`Subject::parse`] accept exactly the
///   texts the grammar allows (non-empty `.`-separated tokens of
///   `[a-z0-9_-]`; a pattern token may also be `*`, or `>` as the last token);
/// - whatever they accept parses again from `as_str()` (and `Display`) to an
///   equal value;
/// - [`SubjectPattern::matches`] agrees with [`reference_matches`];
/// - a subject, read as a pattern, matches itself;
/// - [`Subject::blob_created`] of a valid schema id is a valid subject.
pub fn subject(data: &[u8]) {
    check(data, SubjectPattern::matches);
}

/// The checks of [`subject`], with the matcher under test passed in (tests
/// pass a broken one to see the check fire).
fn check(data: &[u8], matches: fn(&SubjectPattern, &Subject) -> bool) {
    let (pattern_bytes, subject_bytes) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, data),
    };
    // Invalid UTF-8 becomes U+FFFD, which the parsers must refuse like any
    // other character outside the token alphabet.
    let pattern_text = String::from_utf8_lossy(pattern_bytes);
    let subject_text = String::from_utf8_lossy(subject_bytes);

    let pattern = check_pattern(&pattern_text);
    let subject = check_subject(&subject_text);

    if let (Some(pattern), Some(subject)) = (&pattern, &subject) {
        let tokens: Vec<&str> = pattern_text.split('.').collect();
        let subject_tokens: Vec<&str> = subject_text.split('.').collect();
        assert_eq!(
            matches(pattern, subject),
            reference_matches(&tokens, &subject_tokens),
            "`{pattern_text}` vs `{subject_text}`: matches disagrees with the reference"
        );
    }
    if let Some(subject) = &subject {
        let literal = SubjectPattern::parse(subject.as_str())
            .unwrap_or_else(|e| panic!("subject `{subject_text}` is not a valid pattern: {e}"));
        assert!(
            literal.matches(subject),
            "`{subject_text}` as a pattern does not match itself"
        );
    }
    if let Ok(schema) = SchemaId::parse(&subject_text) {
        let created = Subject::blob_created(schema.as_str());
        assert_eq!(
            Subject::parse(created.as_str()).as_ref(),
            Ok(&created),
            "blob_created(`{schema}`) is not a valid subject"
        );
    }
}

fn check_pattern(text: &str) -> Option<SubjectPattern> {
    let parsed = SubjectPattern::parse(text);
    assert_eq!(
        parsed.is_ok(),
        reference_pattern_ok(text),
        "SubjectPattern::parse(`{text}`) = {parsed:?}, the grammar says otherwise"
    );
    let pattern = parsed.ok()?;
    assert_eq!(pattern.as_str(), text, "as_str is not the parsed text");
    assert_eq!(pattern.to_string(), text, "Display is not the parsed text");
    assert_eq!(
        pattern.tokens().len(),
        text.split('.').count(),
        "`{text}`: one parsed token per `.`-separated part"
    );
    assert_eq!(
        SubjectPattern::parse(pattern.as_str()).as_ref(),
        Ok(&pattern),
        "pattern `{text}` does not re-parse from as_str to the same value"
    );
    assert_eq!(
        text.parse::<SubjectPattern>().as_ref(),
        Ok(&pattern),
        "FromStr and parse disagree on `{text}`"
    );
    Some(pattern)
}

fn check_subject(text: &str) -> Option<Subject> {
    let parsed = Subject::parse(text);
    assert_eq!(
        parsed.is_ok(),
        reference_subject_ok(text),
        "Subject::parse(`{text}`) = {parsed:?}, the grammar says otherwise"
    );
    let subject = parsed.ok()?;
    assert_eq!(subject.as_str(), text, "as_str is not the parsed text");
    assert_eq!(subject.to_string(), text, "Display is not the parsed text");
    assert!(
        subject.tokens().eq(text.split('.')),
        "`{text}`: tokens are not the `.`-separated parts"
    );
    assert_eq!(
        Subject::parse(subject.as_str()).as_ref(),
        Ok(&subject),
        "subject `{text}` does not re-parse from as_str to the same value"
    );
    Some(subject)
}

fn literal_token_ok(token: &str) -> bool {
    !token.is_empty()
        && token
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_'))
}

/// The grammar of a pattern, as the subject module's docs state it.
fn reference_pattern_ok(text: &str) -> bool {
    let tokens: Vec<&str> = text.split('.').collect();
    let last = tokens.len() - 1;
    tokens
        .iter()
        .enumerate()
        .all(|(i, t)| *t == "*" || (*t == ">" && i == last) || literal_token_ok(t))
}

/// The grammar of a concrete subject: literal tokens only.
fn reference_subject_ok(text: &str) -> bool {
    text.split('.').all(literal_token_ok)
}

/// NATS matching over token lists: a literal matches itself, `*` any one
/// token, `>` (last) one or more remaining tokens. `pattern` must be valid.
pub fn reference_matches(pattern: &[&str], subject: &[&str]) -> bool {
    match (pattern, subject) {
        ([], []) => true,
        ([">"], [_, ..]) => true,
        (["*", rest @ ..], [_, subject_rest @ ..]) => reference_matches(rest, subject_rest),
        ([literal, rest @ ..], [token, subject_rest @ ..]) => {
            literal == token && reference_matches(rest, subject_rest)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (pattern, subject, matches) in NATS semantics.
    const CASES: &[(&str, &str, bool)] = &[
        ("blob.created.*", "blob.created.text-v1", true),
        ("blob.created.*", "blob.created", false),
        ("blob.created.*", "blob.created.text-v1.extra", false),
        ("blob.created.text-v1", "blob.created.text-v1", true),
        ("blob.created.text-v1", "blob.created.chapter-v1", false),
        ("blob.*", "blob.created.text-v1", false),
        ("*.created.*", "blob.created.x-v1", true),
        ("*", "blob", true),
        ("*", "blob.created", false),
        (">", "blob", true),
        (">", "blob.created.text-v1", true),
        ("blob.>", "blob.created", true),
        ("blob.>", "blob.created.text-v1", true),
        ("blob.>", "blob", false),
        ("blob.created.>", "blob.created", false),
        ("*.>", "blob", false),
        ("*.>", "blob.created", true),
        ("blob.created.text-v1.extra", "blob.created.text-v1", false),
        ("blob", "blobs", false),
        ("blob_1.a-b", "blob_1.a-b", true),
    ];

    #[test]
    fn reference_and_matches_agree_on_known_cases() {
        for &(pattern, subject, expected) in CASES {
            let tokens: Vec<&str> = pattern.split('.').collect();
            let subject_tokens: Vec<&str> = subject.split('.').collect();
            assert_eq!(
                reference_matches(&tokens, &subject_tokens),
                expected,
                "reference: `{pattern}` vs `{subject}`"
            );
            let parsed = SubjectPattern::parse(pattern).unwrap();
            assert_eq!(
                parsed.matches(&Subject::parse(subject).unwrap()),
                expected,
                "matches: `{pattern}` vs `{subject}`"
            );
            // The target itself checks the same pair without complaint.
            super::subject(format!("{pattern}\n{subject}").as_bytes());
        }
    }

    #[test]
    fn the_grammar_references_agree_on_known_texts() {
        for ok in ["a", "blob.created.*", ">", "*.>", "a_b-c.0"] {
            assert!(reference_pattern_ok(ok), "{ok}");
            subject(ok.as_bytes());
        }
        for bad in [
            "", ".", "a..b", "a.", ".a", ">.a", "a*", "a>", "A", "a b", "é",
        ] {
            assert!(!reference_pattern_ok(bad), "{bad}");
            subject(bad.as_bytes());
        }
        assert!(!reference_subject_ok("blob.*"));
        assert!(!reference_subject_ok("blob.>"));
        assert!(reference_subject_ok("blob.created.x-v1"));
    }

    /// A plausible bug: `>` matching zero or more tokens instead of one or more.
    fn zero_or_more(pattern: &SubjectPattern, subject: &Subject) -> bool {
        match pattern.as_str().strip_suffix(">") {
            Some(prefix) => {
                let prefix = prefix.trim_end_matches('.');
                prefix.is_empty()
                    || subject.as_str() == prefix
                    || subject.as_str().starts_with(&format!("{prefix}."))
            }
            None => pattern.matches(subject),
        }
    }

    #[test]
    fn the_broken_matcher_agrees_where_it_should() {
        check(b"blob.>\nblob.created", zero_or_more);
        check(b"blob.created.*\nblob.created.x-v1", zero_or_more);
    }

    #[test]
    #[should_panic(expected = "matches disagrees with the reference")]
    fn a_wrong_match_is_caught() {
        check(b"blob.created.>\nblob.created", zero_or_more);
    }
}
