//! Secrets in a plugin's config (API keys, tokens, passwords): which config
//! keys hold one, and redacting their values from what the runtime reports
//! (logs captured from the guest, failure messages, HTTP records).

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::error::Failure;

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
}

impl Secrets {
    pub fn from_config(config: &BTreeMap<String, String>) -> Self {
        let mut values: Vec<String> = config
            .iter()
            .filter(|(k, v)| !v.is_empty() && is_secret_key(k))
            .map(|(_, v)| v.clone())
            .collect();
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        Secrets { values }
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `text` with every secret value replaced by [`REDACTED`].
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for secret in &self.values {
            if out.contains(secret.as_str()) {
                out = Cow::Owned(out.replace(secret.as_str(), REDACTED));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(pairs: &[(&str, &str)]) -> Secrets {
        let config = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Secrets::from_config(&config)
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
