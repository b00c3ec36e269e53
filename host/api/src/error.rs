//! The one error type every handler returns, rendered as RFC 9457
//! `application/problem+json`. Client errors say exactly what was wrong;
//! server errors are logged with their cause and answered with a generic
//! detail, so nothing internal leaks.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use reyna_engine::EngineError;
use reyna_engine::StoreError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Base of the `type` URIs; each problem kind is a fragment below it.
const TYPE_BASE: &str = "https://reyna.dev/problems/";

/// An error response body (RFC 9457 problem details).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem, e.g. `https://reyna.dev/problems/schema-violation`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this request, in words.
    pub detail: String,
    /// For schema violations: each violation with its JSON pointer and rule.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ProblemViolation>,
    /// For schema violations: how many violations there were in all
    /// (`errors` lists the first ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<usize>,
    /// For `quota-exceeded`: which quota (`blob-rate`, `stored-bytes`,
    /// `queued-jobs`, `effect-calls:day`, `budget:<unit>:<day|month>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<String>,
}

/// One way a document breaks its schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProblemViolation {
    /// JSON pointer to the offending value (`""` is the whole document).
    pub pointer: String,
    /// The JSON Schema keyword that failed, e.g. `required`, `type`, `maxLength`.
    pub rule: String,
    /// What is wrong, in words.
    pub message: String,
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The engine refused or failed the request.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// No token, or a token that is not known.
    #[error("{0}")]
    Unauthorized(String),
    /// The token's role may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// Nothing here (or not in the caller's tenant).
    #[error("{0}")]
    NotFound(String),
    /// The request itself is wrong: malformed JSON, wrong content type,
    /// unknown fields, a bad query parameter. `kind` names the problem type.
    #[error("{detail}")]
    BadRequest {
        /// Problem type slug, e.g. `malformed-json`.
        kind: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// The body is larger than the limit.
    #[error("request body is larger than the {limit} bytes allowed on this endpoint")]
    PayloadTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The route exists but not with this method.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The request conflicts with current state.
    #[error("{0}")]
    Conflict(String),
    /// The host is not ready to serve this.
    #[error("{0}")]
    Unavailable(String),
    /// The request body did not arrive in time (`body-timeout`).
    #[error("the request body did not arrive within {} (the host's body timeout)", humantime::format_duration(*.limit))]
    BodyTimeout {
        /// The time allowed for the whole body.
        limit: std::time::Duration,
    },
    /// The memory budget for request bodies is in use by other requests
    /// (`max-body-memory`); nothing was done, retry later.
    #[error("{0}")]
    ServerBusy(String),
    /// The caller's token, or the host, has as many live streams and
    /// long-polls open as allowed (`max-streams-per-token`, `max-streams`).
    #[error("{0}")]
    TooManyStreams(String),
    /// The host has as many connections open as allowed (`max-connections`).
    #[error("the host has {0} connections open, as many as it allows; retry later")]
    TooManyConnections(usize),
    /// The host's fault; the message is logged, never sent.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// A 400 with problem type `kind`.
    pub fn bad_request(kind: &'static str, detail: impl Into<String>) -> Self {
        Self::BadRequest {
            kind,
            detail: detail.into(),
        }
    }

    /// The status, problem type slug and title of this error.
    fn classify(&self) -> (StatusCode, &'static str, &'static str) {
        use StatusCode as S;
        match self {
            Self::Unauthorized(_) => (S::UNAUTHORIZED, "unauthorized", "Missing or invalid token"),
            Self::Forbidden(_) => (
                S::FORBIDDEN,
                "forbidden",
                "Not allowed for this token's role",
            ),
            Self::NotFound(_) => (S::NOT_FOUND, "not-found", "Not found"),
            Self::BadRequest { kind, .. } => (S::BAD_REQUEST, kind, "Bad request"),
            Self::PayloadTooLarge { .. } => (
                S::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Request body too large",
            ),
            Self::MethodNotAllowed(_) => (
                S::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
            Self::Conflict(_) => (S::CONFLICT, "conflict", "Conflict"),
            Self::Unavailable(_) => (S::SERVICE_UNAVAILABLE, "unavailable", "Service unavailable"),
            Self::BodyTimeout { .. } => {
                (S::REQUEST_TIMEOUT, "body-timeout", "Request body too slow")
            }
            Self::ServerBusy(_) => (
                S::SERVICE_UNAVAILABLE,
                "server-busy",
                "Too many request bodies in progress",
            ),
            Self::TooManyStreams(_) => (
                S::TOO_MANY_REQUESTS,
                "too-many-streams",
                "Too many live streams",
            ),
            Self::TooManyConnections(_) => (
                S::SERVICE_UNAVAILABLE,
                "too-many-connections",
                "Too many connections",
            ),
            Self::Internal(_) => (
                S::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal server error",
            ),
            Self::Engine(e) => classify_engine(e),
        }
    }
}

fn classify_engine(e: &EngineError) -> (StatusCode, &'static str, &'static str) {
    use StatusCode as S;
    match e {
        EngineError::InvalidSchemaId(_) => {
            (S::BAD_REQUEST, "invalid-schema-id", "Invalid schema id")
        }
        EngineError::InvalidSchema { .. } => (
            S::UNPROCESSABLE_ENTITY,
            "invalid-schema",
            "Not a valid JSON Schema",
        ),
        EngineError::SchemaConflict { .. } => {
            (S::CONFLICT, "schema-conflict", "Schema id already taken")
        }
        EngineError::UnknownSchema { .. } => {
            (S::UNPROCESSABLE_ENTITY, "unknown-schema", "Unknown schema")
        }
        EngineError::NotJson { .. } => (S::BAD_REQUEST, "malformed-json", "Data is not JSON"),
        EngineError::SchemaViolation { .. } => (
            S::UNPROCESSABLE_ENTITY,
            "schema-violation",
            "Data does not match its schema",
        ),
        EngineError::BlobTooLarge { .. } => {
            (S::PAYLOAD_TOO_LARGE, "blob-too-large", "Blob too large")
        }
        EngineError::UnknownParent { .. } => (
            S::UNPROCESSABLE_ENTITY,
            "unknown-parent",
            "Unknown parent blob",
        ),
        EngineError::InvalidBlobId { .. } => (S::BAD_REQUEST, "invalid-blob-id", "Invalid blob id"),
        EngineError::TooManyParents { .. } => {
            (S::BAD_REQUEST, "too-many-parents", "Too many parents")
        }
        EngineError::NotAPlugin(_) => (
            S::UNPROCESSABLE_ENTITY,
            "not-a-plugin",
            "Not a valid Reyna plugin",
        ),
        EngineError::PluginUnknownSchema { .. } => (
            S::UNPROCESSABLE_ENTITY,
            "plugin-unknown-schema",
            "Plugin names an unknown schema",
        ),
        EngineError::PluginUnknownEffect { .. } => (
            S::UNPROCESSABLE_ENTITY,
            "plugin-unknown-effect",
            "Plugin calls an unknown effect",
        ),
        EngineError::PluginConflict { .. } => (
            S::CONFLICT,
            "plugin-conflict",
            "Plugin version already taken",
        ),
        EngineError::PluginLoad { .. } => (
            S::UNPROCESSABLE_ENTITY,
            "plugin-load",
            "Plugin cannot be loaded",
        ),
        EngineError::PluginTooExpensive { .. } => (
            S::UNPROCESSABLE_ENTITY,
            "plugin-too-expensive",
            "Plugin is too expensive to compile",
        ),
        EngineError::CompileBusy { .. } => (
            S::SERVICE_UNAVAILABLE,
            "compile-busy",
            "Every compile slot is taken",
        ),
        EngineError::PluginNotFound(_) | EngineError::NotFound(_) => {
            (S::NOT_FOUND, "not-found", "Not found")
        }
        EngineError::Conflict(_) => (S::CONFLICT, "conflict", "Conflict"),
        EngineError::Invalid(_) => (S::UNPROCESSABLE_ENTITY, "invalid", "Invalid value"),
        EngineError::Forbidden(_) => (S::FORBIDDEN, "forbidden", "Forbidden"),
        EngineError::PluginNameTaken(_) => (S::CONFLICT, "plugin-name-taken", "Plugin name taken"),
        EngineError::TenantNotFound(_) => (S::NOT_FOUND, "not-found", "Not found"),
        EngineError::TenantExists(_) => (S::CONFLICT, "tenant-exists", "Tenant exists"),
        EngineError::QuotaExceeded { .. } => {
            (S::TOO_MANY_REQUESTS, "quota-exceeded", "Quota exceeded")
        }
        EngineError::Store(StoreError::BadCursor) => {
            (S::BAD_REQUEST, "bad-cursor", "Invalid cursor")
        }
        other if other.is_client_error() => (S::BAD_REQUEST, "bad-request", "Bad request"),
        _ => (
            S::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal server error",
        ),
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self::Engine(EngineError::Store(e))
    }
}

impl ApiError {
    /// Seconds a client should wait before trying again, for refusals that
    /// are about load rather than the request (sent as `Retry-After`).
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::ServerBusy(_) | Self::TooManyConnections(_) => Some(1),
            Self::TooManyStreams(_) => Some(5),
            // Whole seconds, rounded up: retrying at the stated second works.
            Self::Engine(EngineError::QuotaExceeded { retry_after, .. }) => {
                Some(retry_after.as_millis().div_ceil(1000).max(1) as u64)
            }
            _ => None,
        }
    }

    /// The problem document for this error (server details replaced).
    pub fn problem(&self) -> Problem {
        let (status, slug, title) = self.classify();
        let detail = if status.is_server_error() {
            match self {
                Self::Unavailable(reason) | Self::ServerBusy(reason) => reason.clone(),
                Self::TooManyConnections(_) => self.to_string(),
                _ => "the host failed to handle this request; the cause is in its log".to_owned(),
            }
        } else if let Self::Engine(EngineError::Store(StoreError::BadCursor)) = self {
            "invalid cursor: pass the `next_cursor` of the previous page unchanged".to_owned()
        } else {
            self.to_string()
        };
        let (errors, total) = match self {
            Self::Engine(EngineError::SchemaViolation {
                violations, total, ..
            }) => (
                violations
                    .iter()
                    .map(|v| ProblemViolation {
                        pointer: v.pointer.clone(),
                        rule: v.rule.clone(),
                        message: v.message.clone(),
                    })
                    .collect(),
                Some(*total),
            ),
            _ => (Vec::new(), None),
        };
        Problem {
            kind: format!("{TYPE_BASE}{slug}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail,
            errors,
            total,
            quota: match self {
                Self::Engine(EngineError::QuotaExceeded { quota, .. }) => Some(quota.clone()),
                _ => None,
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = self.problem();
        if problem.status >= 500 && self.retry_after().is_none() {
            tracing::error!(error = %self, "request failed");
        }
        let status =
            StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(seconds) = self.retry_after() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        // A refusal that left the request body unread ends the connection:
        // a client must not send its next request where the rest of this
        // body would be read as one.
        if matches!(self, Self::ServerBusy(_))
            || status == StatusCode::PAYLOAD_TOO_LARGE
            || status == StatusCode::REQUEST_TIMEOUT
        {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"reyna\""),
            );
        }
        response
    }
}

/// Shorthand for handler results.
pub type ApiResult<T> = Result<T, ApiError>;
