//! The engine's error type: one variant per way a request can be refused,
//! each with a message a person can act on.

use reyna_manifest::InspectError;

use serde::Serialize;

/// One way a document breaks its schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// JSON pointer to the offending value (`""` is the whole document).
    pub pointer: String,
    /// The schema keyword that failed, e.g. `required`, `type`, `maxLength`.
    pub rule: String,
    /// What is wrong, in words.
    pub message: String,
}

/// Why the engine refused or failed a request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// A schema id does not match `[a-z0-9-]+-v<N>`.
    #[error("{0}")]
    InvalidSchemaId(String),
    /// A schema document is not a usable JSON Schema.
    #[error("schema `{id}` is not a valid JSON Schema: {reason}")]
    InvalidSchema {
        /// The id it was registered under.
        id: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The id exists with different content.
    #[error(
        "schema `{id}` already exists with different content; schema ids are immutable, register a new version (e.g. `-v2`)"
    )]
    SchemaConflict {
        /// The id.
        id: String,
    },
    /// No schema has this id.
    #[error("unknown schema `{id}`")]
    UnknownSchema {
        /// The id.
        id: String,
    },
    /// A blob's data is not JSON.
    #[error("data is not valid JSON: {reason}")]
    NotJson {
        /// The parser's message.
        reason: String,
    },
    /// A blob's data breaks its schema.
    #[error("data does not match schema `{schema}`: {}", summary(violations, *total))]
    SchemaViolation {
        /// The schema id.
        schema: String,
        /// The first violations, each with its JSON pointer and rule.
        violations: Vec<Violation>,
        /// How many violations there were in all.
        total: usize,
    },
    /// A blob is larger than the configured limit.
    #[error("blob is {size} bytes, more than the {limit} bytes allowed")]
    BlobTooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A parent id does not name a blob of this tenant.
    #[error("parent blob `{id}` does not exist")]
    UnknownParent {
        /// The id given.
        id: String,
    },
    /// A blob names more parents than allowed.
    #[error("a blob may name at most {limit} parents; this one names {count}")]
    TooManyParents {
        /// Parents named.
        count: usize,
        /// The limit ([`EngineConfig::max_parents`](crate::EngineConfig::max_parents)).
        limit: usize,
    },
    /// An id is not a valid blob id.
    #[error("`{id}` is not a valid blob id")]
    InvalidBlobId {
        /// The id given.
        id: String,
    },
    /// Uploaded bytes are not a usable plugin.
    #[error("not a valid Reyna plugin: {0}")]
    NotAPlugin(#[from] InspectError),
    /// A plugin names a schema that is not registered.
    #[error(
        "plugin {plugin} names schema `{schema}` in `{field}`, which is not registered; register the schema first"
    )]
    PluginUnknownSchema {
        /// `name@version`.
        plugin: String,
        /// The manifest field.
        field: &'static str,
        /// The schema id.
        schema: String,
    },
    /// A processor names an effect that is not registered.
    #[error(
        "plugin {plugin} calls effect `{effect}`, which is not registered; upload the effect plugin first"
    )]
    PluginUnknownEffect {
        /// `name@version`.
        plugin: String,
        /// The effect name.
        effect: String,
    },
    /// `name@version` exists with different bytes.
    #[error(
        "plugin {plugin} already exists with different bytes (digest {existing}); versions are immutable, bump the version"
    )]
    PluginConflict {
        /// `name@version`.
        plugin: String,
        /// The stored component's digest.
        existing: reyna_store::Digest,
    },
    /// The component does not compile or link.
    #[error("plugin {plugin} cannot be loaded: {reason}")]
    PluginLoad {
        /// `name@version`.
        plugin: String,
        /// The runtime's message.
        reason: String,
    },
    /// The component passes a compile limit (shape or compile time); the
    /// reason names the limit and its config key.
    #[error("plugin {plugin} is too expensive to compile: {reason}")]
    PluginTooExpensive {
        /// `name@version`.
        plugin: String,
        /// Which limit, with its config key.
        reason: String,
    },
    /// Every compile slot stayed taken for the whole compile timeout.
    #[error("plugin {plugin} was not compiled: {reason}")]
    CompileBusy {
        /// `name@version`.
        plugin: String,
        /// The runtime's message.
        reason: String,
    },
    /// No such plugin (version).
    #[error("plugin {0} not found")]
    PluginNotFound(String),
    /// No such blob, dead letter or job.
    #[error("{0} not found")]
    NotFound(String),
    /// The request conflicts with the current state (e.g. a dead letter already replayed).
    #[error("{0}")]
    Conflict(String),

    /// A request value is not acceptable (a config key, a secret's size...).
    #[error("{0}")]
    Invalid(String),

    /// The caller may not do this (e.g. a tenant uploading an effect).
    #[error("{0}")]
    Forbidden(String),

    /// The plugin name belongs to another owner.
    #[error("the plugin name `{0}` is taken by another owner; choose another name")]
    PluginNameTaken(String),

    /// No such tenant, or it was deleted.
    #[error("tenant `{0}` not found")]
    TenantNotFound(String),

    /// The tenant id is in use, or was used by a deleted tenant.
    #[error("{0}")]
    TenantExists(String),

    /// The tenant is at one of its quotas (a rate, what it holds, a
    /// budget): nothing was done; try again after `retry_after`.
    #[error("{message}")]
    QuotaExceeded {
        /// Which quota: `blob-rate`, `stored-bytes`, `queued-jobs`,
        /// `effect-calls:day` or `budget:<unit>:<day|month>`.
        quota: String,
        /// What the tenant is at, in words.
        message: String,
        /// When trying again can succeed.
        retry_after: std::time::Duration,
    },
    /// A storage failure.
    #[error("storage error: {0}")]
    Store(#[from] reyna_store::StoreError),
    /// Anything else that is the host's fault.
    #[error("internal error: {0}")]
    Internal(String),
}

fn summary(violations: &[Violation], total: usize) -> String {
    let mut parts: Vec<String> = violations
        .iter()
        .take(3)
        .map(|v| {
            format!(
                "at `{}` ({}): {}",
                if v.pointer.is_empty() {
                    "/"
                } else {
                    &v.pointer
                },
                v.rule,
                v.message
            )
        })
        .collect();
    if total > parts.len() {
        parts.push(format!("and {} more", total - parts.len()));
    }
    parts.join("; ")
}

impl EngineError {
    /// Whether the request was at fault (a 4xx), as opposed to the host.
    pub fn is_client_error(&self) -> bool {
        !matches!(
            self,
            EngineError::Store(_) | EngineError::Internal(_) | EngineError::CompileBusy { .. }
        )
    }
}
