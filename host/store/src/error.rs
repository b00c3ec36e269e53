use std::sync::Arc;

use crate::model::{BlobId, DeadLetterId, Digest, JobId, JobState};

/// Everything that can go wrong in the store.
///
/// Errors that describe the caller's request (a missing parent, a conflicting
/// schema, a bad cursor) mean nothing was stored. `Clone` because one failed
/// group commit answers every caller in the batch with the same error.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// redb failed (I/O, a full disk, a damaged file).
    #[error("storage error: {0}")]
    Storage(#[source] Arc<redb::Error>),
    /// A stored record could not be decoded.
    #[error("cannot decode stored {what}: {source}")]
    Codec {
        /// Which kind of record.
        what: &'static str,
        /// The decoder's error.
        #[source]
        source: Arc<serde_json::Error>,
    },
    /// The file was written by a newer Reyna.
    #[error(
        "database format {found} is newer than this build understands (up to {supported}); run a newer reyna"
    )]
    UnsupportedFormat {
        /// Format version found in the file.
        found: u64,
        /// Newest format version this build reads.
        supported: u64,
    },
    /// The writer thread is gone (the store is shutting down or it crashed).
    #[error("store is closed")]
    Closed,
    /// A blob's bytes no longer match its digest.
    #[error("blob {id} is corrupt: its bytes do not match the stored sha256")]
    Corrupt {
        /// The damaged blob.
        id: BlobId,
    },
    /// Stored component bytes no longer match their digest.
    #[error("component {digest} is corrupt: its bytes do not match their digest")]
    CorruptComponent {
        /// The digest the bytes are stored under.
        digest: Digest,
    },
    /// A parent named by a new blob does not exist in its tenant.
    #[error("parent blob {id} does not exist in this tenant")]
    ParentNotFound {
        /// The missing parent.
        id: BlobId,
    },
    /// No such blob in this tenant.
    #[error("blob {id} not found")]
    BlobNotFound {
        /// The blob asked for.
        id: BlobId,
    },
    /// No such job.
    #[error("job {id} not found")]
    JobNotFound {
        /// The job asked for.
        id: JobId,
    },
    /// The job's state does not allow the operation.
    #[error("job {id} is {state}; cannot {action} it")]
    JobState {
        /// The job.
        id: JobId,
        /// Its state.
        state: JobState,
        /// What was attempted.
        action: &'static str,
    },
    /// `Completion::next_jobs` must be empty or have one entry per output.
    #[error(
        "completion has {outputs} outputs but {next_jobs} next-job lists; give none or one per output"
    )]
    NextJobsMisaligned {
        /// Number of outputs.
        outputs: usize,
        /// Number of next-job lists.
        next_jobs: usize,
    },
    /// No such dead letter.
    #[error("dead letter {id} not found")]
    DeadLetterNotFound {
        /// The dead letter asked for.
        id: DeadLetterId,
    },
    /// The dead letter was replayed already.
    #[error("dead letter {id} was already replayed")]
    AlreadyReplayed {
        /// The dead letter.
        id: DeadLetterId,
    },
    /// A new blob would take its tenant past a quota on what it holds.
    #[error(
        "quota {quota} exceeded: the tenant holds {used} and this adds {adding}, past its limit of {limit}"
    )]
    QuotaExceeded {
        /// `stored-bytes` or `queued-jobs`.
        quota: &'static str,
        /// What the tenant holds now.
        used: u64,
        /// What the refused write would add.
        adding: u64,
        /// The quota.
        limit: u64,
    },
    /// A pagination cursor that this store did not hand out.
    #[error("invalid cursor")]
    BadCursor,
    /// A schema id is taken by a different document.
    #[error(
        "schema {id} already exists with different content; schemas are immutable, register a new version"
    )]
    SchemaConflict {
        /// The schema id.
        id: String,
    },
    /// `name@version` is taken by different bytes.
    #[error(
        "plugin {name}@{version} already exists with different bytes; versions are immutable, upload a new version"
    )]
    PluginConflict {
        /// Plugin name.
        name: String,
        /// Plugin version.
        version: String,
    },
    /// No such plugin version.
    #[error("plugin {name}@{version} not found")]
    PluginNotFound {
        /// Plugin name.
        name: String,
        /// Plugin version.
        version: String,
    },
    /// A component's bytes do not hash to the digest its record names.
    #[error("plugin {plugin} names digest {named}, but its bytes hash to {actual}")]
    ComponentDigestMismatch {
        /// `name@version`.
        plugin: String,
        /// The digest the record names.
        named: Digest,
        /// The bytes' digest.
        actual: Digest,
    },
    /// A token with the same hash exists.
    #[error("a token with this hash already exists")]
    TokenConflict,
    /// No such tenant, or it was deleted.
    #[error("tenant `{id}` not found")]
    TenantNotFound {
        /// The tenant id.
        id: String,
    },
    /// A tenant with this id exists (or existed: ids are never reused).
    #[error("tenant `{id}` already exists{}", if *.deleted { " (it was deleted; tenant ids are never reused)" } else { "" })]
    TenantExists {
        /// The tenant id.
        id: String,
        /// Whether the existing tenant was deleted.
        deleted: bool,
    },
    /// The plugin name belongs to another owner (the platform or a tenant).
    #[error("the plugin name `{name}` is taken by another owner")]
    PluginNameTaken {
        /// The plugin name.
        name: String,
    },
    /// A sealed secret could not be re-encrypted; nothing was changed.
    #[error("cannot re-encrypt secret {secret}: {reason}")]
    Reseal {
        /// tenant/plugin/name and version.
        secret: String,
        /// Why.
        reason: String,
    },
    /// The installation has no such secret.
    #[error("secret `{name}` of plugin {plugin} is not set")]
    SecretNotFound {
        /// The plugin name.
        plugin: String,
        /// The secret's config key.
        name: String,
    },
}

/// Shorthand for results of store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

macro_rules! from_redb {
    ($($ty:ty),*) => {$(
        impl From<$ty> for StoreError {
            fn from(e: $ty) -> Self {
                Self::Storage(Arc::new(redb::Error::from(e)))
            }
        }
    )*};
}

from_redb!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);
