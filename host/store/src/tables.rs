//! The on-disk layout: every table, its key and value types, and the record
//! codec. Ids are stored as their `u128` (ULID order = time order). The
//! records written on every event (blob metadata, events, jobs) are compact
//! binary ([`crate::codec`]); the rest are JSON so a later format can add
//! fields with serde defaults.
//!
//! Changing a key or value type here is a format change: bump
//! [`FORMAT_VERSION`] and add a migration in `migrate.rs` (`Store::open` runs it).

use std::sync::Arc;

use redb::{MultimapTableDefinition, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::codec::{self, Binary};
use crate::error::{Result, StoreError};

/// Format version written to and checked in [`META`].
///
/// - 1: every record JSON.
/// - 2: blob metadata, events and jobs binary ([`crate::codec`]); JSON ones
///   left by format 1 still decode, so opening a format 1 file only raises
///   its version (and a format 1 build then refuses it instead of failing on
///   a binary record).
/// - 3: idempotency records keyed by one 32-byte hash of (tenant, component
///   digest, config digest, input digest) with a binary value, in
///   [`IDEMPOTENCY`]; opening a format 1 or 2 file moves its
///   [`IDEMPOTENCY_V2`] records there in batches, then drops the old table
///   and raises the version (`Store::open`).
/// - 4: jobs end with their tree ([`crate::Job::tree`], read as the job's
///   input when absent) and [`TREES`] counts each tree's derived blobs.
///   Nothing is rewritten; the version is raised so a format 3 build, which
///   would reject the longer job records, refuses the file instead.
/// - 5: tenants are records ([`TENANTS`]); a plugin runs for a tenant
///   through its [`INSTALLATIONS`] record, with sealed [`SECRETS`];
///   producers end with the secrets the run read; audit entries name their
///   tenant ([`AUDIT_BY_TENANT`]). Opening a format 4 file makes a tenant
///   record for every tenant its tokens and blobs name and turns its
///   `admin` tokens into `operator` tokens (admin now means a tenant's
///   administrator).
/// - 6: pending jobs are also indexed by tenant ([`JOBS_DUE_BY_TENANT`]),
///   so claims go round-robin across the tenants with due work; opening a
///   format 5 file indexes its pending jobs.
/// - 7: each tenant's stored bytes and queued jobs are counted
///   ([`TENANT_COUNTS`], for its quotas) and its usage is metered per
///   hour, day and month ([`USAGE`]); opening a format 6 file counts what
///   its tenants hold (usage starts at the upgrade).
pub(crate) const FORMAT_VERSION: u64 = 7;
/// Key of the format version in [`META`].
pub(crate) const META_FORMAT: &str = "format";

/// `"format"` → version.
pub(crate) const META: TableDefinition<'static, &str, u64> = TableDefinition::new("meta");

/// (tenant, counter name) → value: what a tenant holds now, checked
/// against its quotas ([`STORED_BYTES`], [`QUEUED_JOBS`]).
pub(crate) const TENANT_COUNTS: TableDefinition<'static, (&str, &str), u64> =
    TableDefinition::new("tenant_counts");
/// Bytes of blob data a tenant stores.
pub(crate) const STORED_BYTES: &str = "stored_bytes";
/// Jobs of a tenant that are pending (due, retrying or deferred).
pub(crate) const QUEUED_JOBS: &str = "queued_jobs";
/// (tenant, granularity code, period start ms) → JSON [`Usage`](crate::Usage).
pub(crate) const USAGE: TableDefinition<'static, (&str, u8, u64), &[u8]> =
    TableDefinition::new("usage");

/// Blob id → JSON [`BlobMeta`](crate::BlobMeta).
pub(crate) const BLOBS: TableDefinition<'static, u128, &[u8]> = TableDefinition::new("blobs");
/// (blob id, chunk index) → up to [`DATA_CHUNK`] bytes. Apart from [`BLOBS`]
/// so listing and lineage never touch payloads.
pub(crate) const BLOB_DATA: TableDefinition<'static, (u128, u32), &[u8]> =
    TableDefinition::new("blob_data");
/// Payload chunk size. redb gives a value too big to share a leaf a page of
/// its own, rounded up to a power of two: a 64 KiB value stored whole takes a
/// 128 KiB page. Chunks that leave room for the leaf header fill a 16 KiB
/// page exactly, so a payload costs at most one partly-filled page extra.
pub(crate) const DATA_CHUNK: usize = 16 * 1024 - 64;

/// Number of chunks a payload of `size` bytes is stored in (an empty payload
/// still has one, empty, chunk).
pub(crate) fn chunk_count(size: u64) -> u64 {
    size.div_ceil(DATA_CHUNK as u64).max(1)
}
/// (parent, child) → ().
pub(crate) const EDGES_DOWN: TableDefinition<'static, (u128, u128), ()> =
    TableDefinition::new("edges_down");
/// (child, parent) → ().
pub(crate) const EDGES_UP: TableDefinition<'static, (u128, u128), ()> =
    TableDefinition::new("edges_up");
/// (tenant, schema, created_at, id) → ().
pub(crate) const BLOBS_BY_SCHEMA: TableDefinition<'static, (&str, &str, u64, u128), ()> =
    TableDefinition::new("blobs_by_schema");
/// (tenant, created_at, id) → ().
pub(crate) const BLOBS_BY_TENANT: TableDefinition<'static, (&str, u64, u128), ()> =
    TableDefinition::new("blobs_by_tenant");

/// seq → JSON [`Event`](crate::Event).
pub(crate) const EVENTS: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("events");
/// (tenant, seq) → ().
pub(crate) const EVENTS_BY_TENANT: TableDefinition<'static, (&str, u64), ()> =
    TableDefinition::new("events_by_tenant");

/// Job id → JSON [`Job`](crate::Job).
pub(crate) const JOBS: TableDefinition<'static, u128, &[u8]> = TableDefinition::new("jobs");
/// (due_at, job id) → (): exactly the pending jobs.
pub(crate) const JOBS_DUE: TableDefinition<'static, (u64, u128), ()> =
    TableDefinition::new("jobs_due");
/// Job id → (): exactly the running jobs.
/// (tenant, due, job) → (): the due queue of each tenant, for fair claims.
pub(crate) const JOBS_DUE_BY_TENANT: TableDefinition<'static, (&str, u64, u128), ()> =
    TableDefinition::new("jobs_due_by_tenant");
pub(crate) const JOBS_RUNNING: TableDefinition<'static, u128, ()> =
    TableDefinition::new("jobs_running");
/// Input blob id → job ids enqueued for it.
pub(crate) const JOBS_BY_BLOB: MultimapTableDefinition<'static, u128, u128> =
    MultimapTableDefinition::new("jobs_by_blob");
/// (tenant, state code, job id) → (): jobs by tenant and state, for listings.
pub(crate) const JOBS_BY_STATE: TableDefinition<'static, (&str, u8, u128), ()> =
    TableDefinition::new("jobs_by_state");
/// Named counters ([`JOBS_DONE`], [`JOBS_DEAD`]).
pub(crate) const COUNTERS: TableDefinition<'static, &str, u64> = TableDefinition::new("counters");
pub(crate) const JOBS_DONE: &str = "jobs.done";
pub(crate) const JOBS_DEAD: &str = "jobs.dead";

/// Tree (the ingested blob at its root) → how many derived blobs descend
/// from it, checked against the tree budget by every completion.
pub(crate) const TREES: TableDefinition<'static, u128, u64> = TableDefinition::new("trees");

/// Dead letter id → JSON [`DeadLetter`](crate::DeadLetter).
pub(crate) const DEAD_LETTERS: TableDefinition<'static, u128, &[u8]> =
    TableDefinition::new("dead_letters");
/// (tenant, dead letter id) → ().
pub(crate) const DEAD_LETTERS_BY_TENANT: TableDefinition<'static, (&str, u128), ()> =
    TableDefinition::new("dead_letters_by_tenant");

/// [`idem_key`] of (tenant, component digest, config digest, input digest)
/// → binary [`IdemRecord`].
///
/// The key is a hash, so every completion inserts at a random place in this
/// table and dirties a leaf (and its branches) of its own at the next
/// commit. A 32-byte key and a ~35-byte value fit ~60 records to a leaf and
/// ~120 keys to a branch, where the four hex strings of format 2 fit ~12
/// and ~18: fewer, shallower pages written per commit (see
/// `host/store/PERF.md`, "Fifth pass").
pub(crate) const IDEMPOTENCY: TableDefinition<'static, (u128, u128), &[u8]> =
    TableDefinition::new("idempotency_v3");
/// Format 1 and 2: (tenant, component digest, config digest, input digest)
/// → JSON [`IdemRecord`]. Only read to migrate.
pub(crate) const IDEMPOTENCY_V2: TableDefinition<'static, (&str, &str, &str, &str), &[u8]> =
    TableDefinition::new("idempotency");

/// The [`IDEMPOTENCY`] key of `key` within `tenant`.
pub(crate) fn idem_key(tenant: &str, key: &crate::IdemKey) -> (u128, u128) {
    idem_key_in(tenant, &idem_digest(key))
}

/// sha256 over a domain tag and the three digests of `key`, each
/// length-prefixed so no two different triples hash the same bytes. Computed
/// on the caller's thread; the writer, which knows the job's tenant, only
/// adds it with [`idem_key_in`].
pub(crate) fn idem_digest(key: &crate::IdemKey) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(b"reyna/idempotency/v3");
    // The text each digest had when format 3 was written (the component's
    // `sha256:` form, the config's and the input's bare hex), so records
    // stored before digests had a type still match.
    let fields = [
        key.component_digest.to_string(),
        key.config_digest.hex(),
        key.input_digest.hex(),
    ];
    for field in &fields {
        hash.update((field.len() as u64).to_be_bytes());
        hash.update(field.as_bytes());
    }
    hash.finalize().into()
}

/// sha256 of the tenant and an [`idem_digest`]: one short block.
pub(crate) fn idem_key_in(tenant: &str, digest: &[u8; 32]) -> (u128, u128) {
    let mut hash = Sha256::new();
    hash.update((tenant.len() as u64).to_be_bytes());
    hash.update(tenant.as_bytes());
    hash.update(digest);
    let digest = hash.finalize();
    let (mut high, mut low) = ([0u8; 16], [0u8; 16]);
    high.copy_from_slice(&digest[..16]);
    low.copy_from_slice(&digest[16..]);
    (u128::from_be_bytes(high), u128::from_be_bytes(low))
}

/// Schema id → JSON [`SchemaRecord`](crate::SchemaRecord).
pub(crate) const SCHEMAS: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("schemas");
/// (name, version) → JSON [`PluginRecord`](crate::PluginRecord).
pub(crate) const PLUGINS: TableDefinition<'static, (&str, &str), &[u8]> =
    TableDefinition::new("plugins");
/// sha256 hex → component bytes.
pub(crate) const COMPONENTS: TableDefinition<'static, &str, &[u8]> =
    TableDefinition::new("components");
/// Token id → JSON [`TokenRecord`](crate::TokenRecord).
pub(crate) const TOKENS: TableDefinition<'static, u128, &[u8]> = TableDefinition::new("tokens");
/// Token hash → token id.
pub(crate) const TOKENS_BY_HASH: TableDefinition<'static, &str, u128> =
    TableDefinition::new("tokens_by_hash");
/// seq → JSON [`AuditEntry`](crate::AuditEntry).
pub(crate) const AUDIT: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("audit");
/// (tenant, seq) → (): the audit entries about one tenant.
pub(crate) const AUDIT_BY_TENANT: TableDefinition<'static, (&str, u64), ()> =
    TableDefinition::new("audit_by_tenant");
/// Tenant id → JSON [`TenantRecord`](crate::TenantRecord).
pub(crate) const TENANTS: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("tenants");
/// (tenant, plugin name) → JSON [`Installation`](crate::Installation).
pub(crate) const INSTALLATIONS: TableDefinition<'static, (&str, &str), &[u8]> =
    TableDefinition::new("installations");
/// (tenant, plugin name, secret name, version) → the sealed value (the
/// engine's vault encrypts it; the store never sees it in the clear).
pub(crate) const SECRETS: TableDefinition<'static, (&str, &str, &str, u32), &[u8]> =
    TableDefinition::new("secrets");
/// (job id, attempt) → binary [`JobLog`](crate::JobLog): what the guest
/// logged in that attempt (only attempts that logged something).
pub(crate) const JOB_LOGS: TableDefinition<'static, (u128, u32), &[u8]> =
    TableDefinition::new("job_logs");

/// What an idempotency key maps to (binary since format 3, JSON before).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct IdemRecord {
    pub(crate) job_id: crate::JobId,
    pub(crate) outputs: Vec<crate::BlobId>,
}

/// Encodes a record. Our records are plain data, so this cannot fail in
/// practice; the error is still reported rather than unwrapped.
pub(crate) fn encode<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| StoreError::Codec {
        what,
        source: Arc::new(e),
    })
}

/// Decodes a record.
pub(crate) fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Codec {
        what,
        source: Arc::new(e),
    })
}

/// Encodes a record that has a binary form.
pub(crate) fn encode_binary<T: Binary>(value: &T) -> Vec<u8> {
    codec::to_vec(value)
}

/// Decodes a job record (binary, or format 1's JSON, which has no tree: the
/// job is then the root of a tree of its own, as in the binary form).
pub(crate) fn decode_job(bytes: &[u8]) -> Result<crate::Job> {
    let mut job: crate::Job = decode_binary("job", bytes)?;
    if job.tree.key() == 0 {
        job.tree = job.blob_id;
    }
    Ok(job)
}

/// Decodes a record that has a binary form, or the JSON that format 1 wrote.
pub(crate) fn decode_binary<T: Binary + DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T> {
    if bytes.first() != Some(&codec::BINARY_TAG) {
        return decode(what, bytes);
    }
    codec::from_slice(bytes).ok_or_else(|| StoreError::Codec {
        what,
        source: Arc::new(<serde_json::Error as serde::de::Error>::custom(
            "malformed binary record",
        )),
    })
}
