//! Secrets in a plugin's config (API keys, tokens, passwords): which config
//! keys hold one, and redacting their values from what the runtime reports
//! (logs captured from the guest, failure messages, HTTP records).

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::error::Failure;

/// Shortest part of a URL-valued secret redacted on its own: shorter
/// parts (`/`, `/v1`) would redact what is not secret.
const MIN_URL_PART: usize = 8;

/// The parts of a URL-valued secret that carry its secret on their own:
/// its user info, its path (with the query) and its query.
fn url_parts(value: &str) -> Vec<String> {
    let Some((_, rest)) = value.split_once("://") else {
        return Vec::new();
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let mut parts = Vec::new();
    if let Some((userinfo, _)) = authority.rsplit_once('@') {
        parts.push(userinfo.to_owned());
    }
    let path = path.split('#').next().unwrap_or_default();
    let (bare, query) = path.split_once('?').unwrap_or((path, ""));
    parts.extend([path, bare, query].map(str::to_owned));
    parts.retain(|p| p.len() >= MIN_URL_PART);
    parts
}

/// What a secret value is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Parts of a config key that mark its value as a secret.
const SECRET_KEY_PARTS: [&str; 5] = ["key", "token", "secret", "password", "authorization"];

/// Whether the value of config key `key` is a secret: the key contains `key`,
/// `token`, `secret`, `password` or `authorization`, in any case (`api_key`,
/// `API_TOKEN`, `webhook-secret`, `authorization`). Such values are redacted
/// from everything the runtime reports; embedders should treat them the same
/// way (never store them in lineage, never print them).
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_KEY_PARTS.iter().any(|part| key.contains(part))
}

/// The secret values of one call's config.
#[derive(Debug, Default)]
pub(crate) struct Secrets {
    /// Longest first, so a secret that contains another is replaced whole.
    values: Vec<String>,
    /// The base64 forms of the values, longest first.
    base64: Vec<String>,
}

impl Secrets {
    /// The values of `config` under `secret_keys` and under keys that look
    /// like secrets. A secret that is a URL (a webhook's, say) also has its
    /// credentials, path and query redacted on their own: a request record
    /// keeps a path, never the whole URL.
    pub fn from_config(
        config: &BTreeMap<String, String>,
        secret_keys: &std::collections::BTreeSet<String>,
    ) -> Self {
        let mut values: Vec<String> = config
            .iter()
            .filter(|(k, v)| !v.is_empty() && (secret_keys.contains(*k) || is_secret_key(k)))
            .map(|(_, v)| v.clone())
            .collect();
        let parts: Vec<String> = values.iter().flat_map(|v| url_parts(v)).collect();
        values.extend(parts);
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        let mut base64: Vec<String> = values
            .iter()
            .flat_map(|v| base64_forms(v.as_bytes()))
            .collect();
        base64.sort_by_key(|v| std::cmp::Reverse(v.len()));
        base64.dedup();
        Secrets { values, base64 }
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `text` with every secret value replaced by [`REDACTED`], however it
    /// is written: raw, percent-encoded in part or whole (either hex case,
    /// `+` for a space), or base64 (standard or URL-safe alphabet, with or
    /// without padding).
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for secret in &self.values {
            if let Some(replaced) = replace_encoded(&out, secret.as_bytes()) {
                out = Cow::Owned(replaced);
            }
        }
        for encoded in &self.base64 {
            if out.contains(encoded.as_str()) {
                out = Cow::Owned(out.replace(encoded.as_str(), REDACTED));
            }
        }
        out
    }

    /// Like [`Secrets::redact`], for a line that was cut off by the log
    /// budget: a cut may have left only the start of a secret at its end, which
    /// the whole-value match would miss.
    pub fn redact_cut(&self, text: &str) -> String {
        let mut out = self.redact(text).into_owned();
        for secret in &self.values {
            let cut = (1..secret.len())
                .rev()
                .filter(|&n| secret.is_char_boundary(n))
                .find(|&n| out.ends_with(&secret[..n]));
            if let Some(n) = cut {
                out.truncate(out.len() - n);
                out.push_str(REDACTED);
            }
        }
        out
    }

    /// `failure` with secrets redacted from the messages it carries (a guest
    /// may echo its API key into an error).
    pub fn redact_failure(&self, failure: Failure) -> Failure {
        if self.is_empty() {
            return failure;
        }
        failure.map_messages(|m| self.redact(&m).into_owned())
    }
}

/// `text` with every occurrence of `secret` replaced by [`REDACTED`], each
/// byte of it matching itself, its `%XX` form (either hex case), or `+` for
/// a space; `None` when there is none.
fn replace_encoded(text: &str, secret: &[u8]) -> Option<String> {
    if secret.is_empty() {
        return None;
    }
    let bytes = text.as_bytes();
    let mut out = String::new();
    let (mut copied, mut at) = (0, 0);
    while at < bytes.len() {
        match match_encoded(bytes, at, secret) {
            Some(end) if text.is_char_boundary(at) && text.is_char_boundary(end) => {
                out.push_str(&text[copied..at]);
                out.push_str(REDACTED);
                (copied, at) = (end, end);
            }
            _ => at += 1,
        }
    }
    if copied == 0 {
        return None;
    }
    out.push_str(&text[copied..]);
    Some(out)
}

/// Where a match of `secret` that starts at `at` ends, if there is one.
fn match_encoded(text: &[u8], mut at: usize, secret: &[u8]) -> Option<usize> {
    for &want in secret {
        let here = *text.get(at)?;
        if here == want || (want == b' ' && here == b'+') {
            at += 1;
        } else if here == b'%' && percent_decoded(text.get(at + 1..at + 3)?) == Some(want) {
            at += 3;
        } else {
            return None;
        }
    }
    Some(at)
}

fn percent_decoded(hex: &[u8]) -> Option<u8> {
    let digit = |b: u8| char::from(b).to_digit(16);
    let (high, low) = (digit(hex[0])?, digit(hex[1])?);
    u8::try_from(high * 16 + low).ok()
}

/// `secret` in base64: standard and URL-safe alphabets, each with and
/// without padding (only the forms that differ). Short secrets have none:
/// their encodings are too short to replace without eating other text.
fn base64_forms(secret: &[u8]) -> Vec<String> {
    const MIN_SECRET: usize = 6;
    const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if secret.len() < MIN_SECRET {
        return Vec::new();
    }
    let mut padded = String::new();
    for chunk in secret.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                let index = (n >> (18 - 6 * i)) & 63;
                padded.push(char::from(STANDARD[index as usize]));
            } else {
                padded.push('=');
            }
        }
    }
    let unpadded = padded.trim_end_matches('=').to_owned();
    let url_safe = |s: &str| s.replace('+', "-").replace('/', "_");
    let mut forms = vec![url_safe(&padded), url_safe(&unpadded), padded, unpadded];
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    forms.dedup();
    forms
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(pairs: &[(&str, &str)]) -> Secrets {
        let config = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Secrets::from_config(&config, &Default::default())
    }

    #[test]
    fn a_url_valued_secret_has_its_credentials_path_and_query_redacted_on_their_own() {
        let config = BTreeMap::from([(
            "url".to_owned(),
            "https://bot:pa55word@hooks.example.com/services/T0/B1/XyZsecret?sig=abcdef123"
                .to_owned(),
        )]);
        let keys = std::collections::BTreeSet::from(["url".to_owned()]);
        let s = Secrets::from_config(&config, &keys);
        for record in [
            "POST /services/T0/B1/XyZsecret",
            "query sig=abcdef123",
            "user bot:pa55word",
        ] {
            let redacted = s.redact(record);
            assert!(redacted.contains(REDACTED), "{record} -> {redacted}");
            for part in ["XyZsecret", "abcdef123", "pa55word"] {
                assert!(!redacted.contains(part), "{record} -> {redacted}");
            }
        }
        // Short parts are not secrets on their own: `/v1` stays readable.
        let short = BTreeMap::from([("url".to_owned(), "https://api.example.com/v1".to_owned())]);
        let s = Secrets::from_config(&short, &keys);
        assert_eq!(s.redact("GET /v1/models"), "GET /v1/models");
    }

    #[test]
    fn secret_keys_are_recognised_in_any_case() {
        for key in [
            "api_key",
            "API_KEY",
            "token",
            "github-token",
            "client_secret",
            "password",
            "Authorization",
        ] {
            assert!(is_secret_key(key), "{key}");
        }
        for key in ["url", "endpoint", "model", "temperature"] {
            assert!(!is_secret_key(key), "{key}");
        }
    }

    #[test]
    fn values_of_secret_keys_are_redacted() {
        let s = secrets(&[
            ("api_key", "sk-12345"),
            ("url", "https://x"),
            ("empty_token", ""),
        ]);
        assert_eq!(
            s.redact("calling https://x with sk-12345, again sk-12345"),
            "calling https://x with [redacted], again [redacted]"
        );
        assert!(matches!(s.redact("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn percent_encoded_secrets_are_redacted_in_any_hex_case() {
        let s = secrets(&[("api_key", "s3cr/t +é")]);
        for written in [
            "s3cr/t +é",
            "s3cr%2Ft%20%2B%C3%A9",
            "s3cr%2ft%20%2b%c3%a9",
            "%73%33%63%72%2F%74%20%2B%C3%A9",
            "s3cr/t+%2Bé",
        ] {
            let text = format!("/hook/{written}?sig={written}&x=1");
            assert_eq!(
                s.redact(&text),
                "/hook/[redacted]?sig=[redacted]&x=1",
                "{written}"
            );
        }
        // Not the secret: left alone.
        assert_eq!(s.redact("s3cr%2Fx"), "s3cr%2Fx");
        assert_eq!(s.redact("100% s3cr%"), "100% s3cr%");
    }

    #[test]
    fn base64_encoded_secrets_are_redacted() {
        let s = secrets(&[("token", "tok-abc?>~123")]);
        // "tok-abc?>~123" in base64: standard `dG9rLWFiYz8+fjEyMw==`, URL-safe `dG9rLWFiYz8-fjEyMw`.
        for text in [
            "Basic dG9rLWFiYz8+fjEyMw==",
            "Basic dG9rLWFiYz8+fjEyMw",
            "Basic dG9rLWFiYz8-fjEyMw",
            "Basic dG9rLWFiYz8-fjEyMw==",
        ] {
            assert_eq!(s.redact(text), "Basic [redacted]", "{text}");
        }
    }

    #[test]
    fn a_secret_cut_at_the_end_of_a_line_is_redacted() {
        let s = secrets(&[("api_key", "sk-12345")]);
        assert_eq!(s.redact_cut("key is sk-12"), "key is [redacted]");
        assert_eq!(s.redact_cut("key is sk-12345"), "key is [redacted]");
        assert_eq!(s.redact_cut("nothing"), "nothing");
    }

    #[test]
    fn failure_messages_are_redacted() {
        let s = secrets(&[("password", "hunter2")]);
        assert_eq!(
            s.redact_failure(Failure::Fatal("bad password hunter2".into())),
            Failure::Fatal("bad password [redacted]".into())
        );
    }
}
