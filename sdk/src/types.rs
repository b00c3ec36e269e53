//! Plain Rust forms of the contract's types.

use serde::Serialize;

/// How a call failed; tells the host what to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The input can never be processed: dead-lettered at once, no retry.
    InvalidInput(String),
    /// A transient problem: retried with exponential backoff.
    Retryable(String),
    /// Anything else: dead-lettered.
    Fatal(String),
}

impl Error {
    /// An [`Error::InvalidInput`].
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Error::InvalidInput(message.into())
    }
    /// An [`Error::Retryable`].
    pub fn retryable(message: impl Into<String>) -> Self {
        Error::Retryable(message.into())
    }
    /// An [`Error::Fatal`].
    pub fn fatal(message: impl Into<String>) -> Self {
        Error::Fatal(message.into())
    }
    /// The message, whatever the kind.
    pub fn message(&self) -> &str {
        match self {
            Error::InvalidInput(m) | Error::Retryable(m) | Error::Fatal(m) => m,
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::InvalidInput(m) => write!(f, "invalid input: {m}"),
            Error::Retryable(m) => write!(f, "retryable: {m}"),
            Error::Fatal(m) => write!(f, "fatal: {m}"),
        }
    }
}

impl std::error::Error for Error {}

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something looks wrong.
    Warn,
    /// Something failed.
    Error,
}

/// A stored blob as a plugin sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// Time-ordered unique id.
    pub id: String,
    /// Owning tenant.
    pub tenant: String,
    /// Schema id the data validated against.
    pub schema: String,
    /// The JSON document, UTF-8.
    pub data: Vec<u8>,
    /// Ids of the blobs it was derived from.
    pub parents: Vec<String>,
}

impl Blob {
    /// Deserializes the blob's JSON into `T`; a mismatch is [`Error::InvalidInput`]
    /// naming the blob, its schema and what did not fit.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.data).map_err(|e| {
            Error::InvalidInput(format!(
                "blob {} ({}) does not have the expected shape: {e}",
                self.id, self.schema
            ))
        })
    }
}

/// An event: a blob and the subject it was routed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// E.g. `blob.created.text-input-v1`.
    pub subject: String,
    /// The blob the event is about.
    pub blob: Blob,
}

impl Event {
    /// The event as JSON: `{"subject", "blob": {"id", "tenant", "schema",
    /// "parents", "data"}}` with `data` inlined as JSON (or as a string when it
    /// is not JSON). This is what [`crate::Effect::deliver`] performs by default.
    pub fn to_json(&self) -> Result<Vec<u8>, Error> {
        #[derive(Serialize)]
        struct BlobJson<'a> {
            id: &'a str,
            tenant: &'a str,
            schema: &'a str,
            parents: &'a [String],
            data: serde_json::Value,
        }
        #[derive(Serialize)]
        struct EventJson<'a> {
            subject: &'a str,
            blob: BlobJson<'a>,
        }
        let data = serde_json::from_slice(&self.blob.data).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&self.blob.data).into_owned())
        });
        serde_json::to_vec(&EventJson {
            subject: &self.subject,
            blob: BlobJson {
                id: &self.blob.id,
                tenant: &self.blob.tenant,
                schema: &self.blob.schema,
                parents: &self.blob.parents,
                data,
            },
        })
        .map_err(|e| Error::Fatal(format!("cannot encode event: {e}")))
    }
}

/// A derived blob returned by a processor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Schema id; must be one of the manifest's `outputs`.
    pub schema: String,
    /// The JSON document, UTF-8.
    pub data: Vec<u8>,
    /// Parents besides the event's blob, e.g. chapters read for a fan-in.
    pub extra_parents: Vec<String>,
}

impl Output {
    /// Serializes `value` as the output's JSON.
    pub fn json<T: Serialize + ?Sized>(schema: &str, value: &T) -> Result<Self, Error> {
        let data = serde_json::to_vec(value)
            .map_err(|e| Error::Fatal(format!("cannot encode {schema} output: {e}")))?;
        Ok(Self {
            schema: schema.to_owned(),
            data,
            extra_parents: Vec::new(),
        })
    }

    /// Adds parents besides the event's blob.
    pub fn with_parents<I, S>(mut self, parents: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.extra_parents
            .extend(parents.into_iter().map(Into::into));
        self
    }
}

/// An outgoing HTTP request (effects only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// Absolute `http://` or `https://` URL.
    pub url: String,
    /// Header names and values.
    pub headers: Vec<(String, String)>,
    /// Request body.
    pub body: Vec<u8>,
}

impl HttpRequest {
    /// A `POST` of a JSON body with `content-type: application/json`.
    pub fn post_json(url: &str, body: Vec<u8>) -> Self {
        Self {
            method: "POST".to_owned(),
            url: url.to_owned(),
            headers: vec![("content-type".to_owned(), "application/json".to_owned())],
            body,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Splits the URL into (scheme, authority, path-with-query).
    pub fn url_parts(&self) -> Result<(&str, &str, &str), Error> {
        let (scheme, rest) = self
            .url
            .split_once("://")
            .ok_or_else(|| Error::Fatal(format!("`{}` is not an absolute URL", self.url)))?;
        if scheme != "http" && scheme != "https" {
            return Err(Error::Fatal(format!("unsupported URL scheme `{scheme}`")));
        }
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            return Err(Error::Fatal(format!("`{}` has no host", self.url)));
        }
        Ok((scheme, authority, path))
    }
}

/// An HTTP response (effects only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header names and values.
    pub headers: Vec<(String, String)>,
    /// Response body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Turns a non-2xx status into an error: 429 and 5xx are [`Error::Retryable`],
    /// other codes [`Error::Fatal`].
    pub fn error_for_status(self) -> Result<Self, Error> {
        if self.is_success() {
            return Ok(self);
        }
        let snippet: String = String::from_utf8_lossy(&self.body)
            .chars()
            .take(200)
            .collect();
        let message = format!("HTTP {}: {snippet}", self.status);
        if self.status == 429 || self.status >= 500 {
            Err(Error::Retryable(message))
        } else {
            Err(Error::Fatal(message))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_parts_split_scheme_authority_and_path() {
        let r = HttpRequest::post_json("https://api.example.com:8443/v1/chat?x=1", vec![]);
        assert_eq!(
            r.url_parts().unwrap(),
            ("https", "api.example.com:8443", "/v1/chat?x=1")
        );
        let r = HttpRequest::post_json("http://h", vec![]);
        assert_eq!(r.url_parts().unwrap(), ("http", "h", "/"));
        assert!(
            HttpRequest::post_json("ftp://h/x", vec![])
                .url_parts()
                .is_err()
        );
        assert!(HttpRequest::post_json("h/x", vec![]).url_parts().is_err());
    }

    #[test]
    fn status_errors_classify_retries() {
        let resp = |status| HttpResponse {
            status,
            headers: vec![],
            body: b"nope".to_vec(),
        };
        assert!(resp(200).error_for_status().is_ok());
        assert_eq!(
            resp(503).error_for_status().unwrap_err(),
            Error::Retryable("HTTP 503: nope".into())
        );
        assert_eq!(
            resp(429).error_for_status().unwrap_err(),
            Error::Retryable("HTTP 429: nope".into())
        );
        assert_eq!(
            resp(400).error_for_status().unwrap_err(),
            Error::Fatal("HTTP 400: nope".into())
        );
    }
}
