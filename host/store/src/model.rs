//! The records the store keeps, as callers see them. All are serde types so
//! the API can return them as JSON unchanged; times are unix milliseconds.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use ulid::Ulid;

macro_rules! ulid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Ulid);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn generate() -> Self {
                Self(Ulid::new())
            }

            /// The milliseconds timestamp encoded in the id.
            pub fn timestamp_ms(&self) -> u64 {
                self.0.timestamp_ms()
            }

            pub(crate) fn key(self) -> u128 {
                self.0.0
            }

            #[allow(dead_code, reason = "not every id is read back from an index")]
            pub(crate) fn from_key(key: u128) -> Self {
                Self(Ulid(key))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = ulid::DecodeError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Ulid::from_string(s).map(Self)
            }
        }
    };
}

ulid_id!(
    /// Identifies a blob. Ingested blobs get a fresh time-ordered id; derived
    /// blobs get one computed from (job id, output index).
    BlobId
);
ulid_id!(
    /// Identifies a job: one run of one plugin version over one input blob.
    /// Retries and replays keep the id and raise the attempt.
    JobId
);
ulid_id!(
    /// Identifies a dead letter.
    DeadLetterId
);
ulid_id!(
    /// Identifies an API token record (not the secret).
    TokenId
);

impl BlobId {
    /// The id of output `index` of job `job`: the same job always names its
    /// outputs the same way, so a completion replayed after a crash or a
    /// redelivery overwrites nothing and duplicates nothing. The timestamp is
    /// the job's, so derived ids still sort roughly by time.
    pub fn derived(job: JobId, index: u32) -> Self {
        let mut hash = Sha256::new();
        hash.update(b"reyna/output/v1");
        hash.update(job.0.0.to_be_bytes());
        hash.update(index.to_be_bytes());
        let digest = hash.finalize();
        let mut random = [0u8; 16];
        random[6..].copy_from_slice(&digest[..10]);
        Self(Ulid::from_parts(
            job.timestamp_ms(),
            u128::from_be_bytes(random),
        ))
    }
}

/// Lowercase hex sha256 of `data`, the digest format used everywhere.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// What a blob is, without its bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobMeta {
    /// The blob's id.
    pub id: BlobId,
    /// The tenant that owns it; nothing crosses tenants.
    pub tenant: String,
    /// Its schema id, e.g. `text-input-v1`.
    pub schema: String,
    /// Lowercase hex sha256 of the bytes, checked on every read.
    pub digest: String,
    /// Size of the bytes.
    pub size: u64,
    /// When it was stored.
    pub created_at: u64,
    /// The blobs it was derived from (empty for ingested blobs).
    pub parents: Vec<BlobId>,
    /// How many plugin runs separate it from an ingested blob.
    pub hop: u32,
    /// Who made it, for derived blobs.
    pub producer: Option<Producer>,
}

/// Which code made a derived blob, from what, and at what cost.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Producer {
    /// Plugin name.
    pub plugin: String,
    /// Plugin version.
    pub version: String,
    /// sha256 of the component bytes that ran.
    pub component_digest: String,
    /// sha256 of the plugin config the run saw.
    pub config_digest: String,
    /// The job whose run produced the blob.
    pub job_id: JobId,
    /// Which attempt of that job succeeded.
    pub attempt: u32,
    /// What the run cost.
    pub cost: Cost,
    /// Every effect call the run made, in order.
    pub effect_calls: Vec<EffectCall>,
    /// Set when the outputs were copied from an earlier identical run
    /// instead of running again.
    pub reused_from: Option<JobId>,
}

/// What one plugin run cost.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cost {
    /// Wall time in microseconds.
    pub wall_us: u64,
    /// Epoch ticks consumed.
    pub epoch_ticks: u64,
    /// Fuel consumed, when fuel metering was on.
    pub fuel: Option<u64>,
    /// Peak linear memory in bytes.
    pub peak_memory: u64,
    /// Bytes handed to the plugin.
    pub bytes_in: u64,
    /// Bytes the plugin returned.
    pub bytes_out: u64,
    /// Number of outputs returned.
    pub outputs: u32,
}

/// One call a processor made to an effect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EffectCall {
    /// Effect plugin name.
    pub effect: String,
    /// Effect plugin version.
    pub version: String,
    /// sha256 of the request bytes.
    pub request_digest: String,
    /// sha256 of the response bytes (empty when the call failed).
    pub response_digest: String,
    /// How long the call took.
    pub duration_us: u64,
    /// `ok`, or the failure kind.
    pub outcome: String,
}

/// A blob to ingest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewBlob {
    /// Owning tenant.
    pub tenant: String,
    /// Schema id (already validated by the caller).
    pub schema: String,
    /// The bytes.
    pub data: Vec<u8>,
    /// Existing blobs of the same tenant it derives from.
    pub parents: Vec<BlobId>,
    /// Hop count (0 for blobs from outside).
    pub hop: u32,
}

/// A job that routing decided to enqueue for a blob.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    /// Plugin name.
    pub plugin: String,
    /// Plugin version.
    pub version: String,
    /// The event subject that matched, e.g. `blob.created.text-input-v1`.
    pub subject: String,
}

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting in the due-time queue.
    Pending,
    /// Claimed by a worker.
    Running,
    /// Completed; its outputs are stored.
    Done,
    /// Failed for good; a dead letter holds the reason.
    Dead,
}

impl JobState {
    /// The state's code in the jobs-by-state index (its order in listings).
    pub(crate) fn code(self) -> u8 {
        match self {
            Self::Pending => 0,
            Self::Running => 1,
            Self::Done => 2,
            Self::Dead => 3,
        }
    }

    /// The state with this [`Self::code`].
    pub(crate) fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => Self::Pending,
            1 => Self::Running,
            2 => Self::Done,
            3 => Self::Dead,
            _ => return None,
        })
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Done => "done",
            Self::Dead => "dead",
        })
    }
}

/// One run of one plugin version over one blob.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// The job's id.
    pub id: JobId,
    /// Tenant of the input blob.
    pub tenant: String,
    /// Plugin name.
    pub plugin: String,
    /// Plugin version.
    pub version: String,
    /// The input blob.
    pub blob_id: BlobId,
    /// The subject that routed the blob here.
    pub subject: String,
    /// The input blob's hop count.
    pub hop: u32,
    /// 1 for the first run; raised by every retry and replay.
    pub attempt: u32,
    /// Current state.
    pub state: JobState,
    /// When it may run (meaningful while pending).
    pub due_at: u64,
    /// When it was enqueued.
    pub created_at: u64,
    /// When its state last changed.
    pub updated_at: u64,
    /// The reason of the last failure.
    pub last_error: Option<String>,
    /// The blobs its completion produced, once done.
    pub outputs: Vec<BlobId>,
    /// A re-run that answers every effect call from the responses recorded
    /// in the lineage of earlier runs of the same plugin on this blob,
    /// instead of calling out. Stored, so a restart keeps it.
    #[serde(default)]
    pub replay_effects: bool,
}

/// One output of a plugin run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewOutput {
    /// Schema id (already validated by the caller).
    pub schema: String,
    /// The bytes.
    pub data: Vec<u8>,
    /// Parents besides the job's input blob (fan-in), same tenant.
    pub extra_parents: Vec<BlobId>,
}

/// The result of a successful run, committed by [`Store::complete_job`](crate::Store::complete_job).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Completion {
    /// The outputs, in the plugin's order (the order fixes their ids).
    pub outputs: Vec<NewOutput>,
    /// The jobs to enqueue for each output: empty, or one entry per output.
    pub next_jobs: Vec<Vec<JobSpec>>,
    /// sha256 of the component that ran.
    pub component_digest: String,
    /// sha256 of the config the run saw.
    pub config_digest: String,
    /// What the run cost.
    pub cost: Cost,
    /// The effect calls the run made.
    pub effect_calls: Vec<EffectCall>,
    /// Set when the outputs are copies of an earlier identical run.
    pub reused_from: Option<JobId>,
    /// When set, the outputs are recorded under this key for
    /// [`Store::find_idempotent`](crate::Store::find_idempotent).
    pub idempotency_key: Option<IdemKey>,
}

/// A failed run, committed by [`Store::fail_job`](crate::Store::fail_job).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Failure {
    /// Why it failed (kept on the job and on the dead letter).
    pub reason: String,
    /// What the failed run cost.
    pub cost: Cost,
    /// Retry at this time; `None` dead-letters the job.
    pub retry_at: Option<u64>,
}

/// What [`Store::fail_job`](crate::Store::fail_job) did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum FailOutcome {
    /// The job is pending again.
    Retrying {
        /// The attempt that will run next.
        attempt: u32,
        /// When it will run.
        due_at: u64,
    },
    /// The job is dead; this dead letter records why.
    DeadLettered {
        /// The dead letter.
        id: DeadLetterId,
    },
}

/// A job that failed for good, with why and what it cost.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The dead letter's id.
    pub id: DeadLetterId,
    /// The job as it was when it died.
    pub job: Job,
    /// Why it failed.
    pub reason: String,
    /// What the last run cost.
    pub cost: Cost,
    /// When it died.
    pub created_at: u64,
    /// When an operator replayed it, if they did.
    pub replayed_at: Option<u64>,
}

/// Run identity for idempotency: the same component and config over the same
/// input produce the same outputs.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IdemKey {
    /// sha256 of the component.
    pub component_digest: String,
    /// sha256 of the config.
    pub config_digest: String,
    /// sha256 of the input bytes.
    pub input_digest: String,
}

/// Which way to walk lineage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Ancestors.
    Up,
    /// Descendants.
    Down,
    /// Both ancestors and descendants.
    Both,
}

/// A parent → child link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Edge {
    /// The input.
    pub parent: BlobId,
    /// The blob derived from it.
    pub child: BlobId,
}

/// The lineage graph around a blob; no payloads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lineage {
    /// The blob the walk started from.
    pub root: BlobId,
    /// Every blob reached, the root first.
    pub nodes: Vec<BlobMeta>,
    /// Every edge between reached blobs, sorted.
    pub edges: Vec<Edge>,
    /// True when the walk stopped at the node cap before reaching the depth.
    pub truncated: bool,
}

/// One page of a listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The items, oldest first.
    pub items: Vec<T>,
    /// Pass this back to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// One entry of the event log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the log: strictly increasing, never reused.
    pub seq: u64,
    /// Tenant the event belongs to.
    pub tenant: String,
    /// Subject, e.g. `blob.created.text-input-v1` or `job.failed.text-expand`.
    pub subject: String,
    /// The blob concerned, if any.
    pub blob_id: Option<BlobId>,
    /// The job concerned, if any.
    pub job_id: Option<JobId>,
    /// When it happened.
    pub at: u64,
}

/// A registered JSON Schema; immutable once stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaRecord {
    /// Schema id, e.g. `text-input-v1`.
    pub id: String,
    /// The schema document.
    pub json: String,
    /// sha256 of `json`.
    pub digest: String,
    /// When it was registered.
    pub created_at: u64,
}

/// An uploaded plugin version. `name@version` never changes bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginRecord {
    /// Plugin name.
    pub name: String,
    /// Plugin version.
    pub version: String,
    /// `None` for a global plugin, else the tenant it is scoped to.
    #[serde(default)]
    pub tenant: Option<String>,
    /// The manifest text embedded in the component.
    pub manifest_toml: String,
    /// sha256 of the component bytes (see [`Store::put_component`](crate::Store::put_component)).
    pub digest: String,
    /// Whether routing sends it events.
    pub enabled: bool,
    /// Operator-set config, read by the plugin through `config(key)`.
    pub config: BTreeMap<String, String>,
    /// When it was uploaded.
    pub created_at: u64,
}

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Operator: plugins, schemas, tokens.
    Admin,
    /// Create and read blobs.
    Writer,
    /// Read only.
    Reader,
}

/// A token to store; the secret itself is never stored, only its hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewToken {
    /// Tenant the token acts for.
    pub tenant: String,
    /// What it may do.
    pub role: Role,
    /// A label for operators.
    pub name: String,
    /// Hash of the secret (computed by the caller).
    pub hash: String,
}

/// A stored API token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Record id.
    pub id: TokenId,
    /// Tenant the token acts for.
    pub tenant: String,
    /// What it may do.
    pub role: Role,
    /// A label for operators.
    pub name: String,
    /// Hash of the secret.
    pub hash: String,
    /// When it was created.
    pub created_at: u64,
}

/// An operator action to record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewAudit {
    /// Who acted (token id or `system`).
    pub actor: String,
    /// What they did, e.g. `plugin.upload`.
    pub action: String,
    /// What they did it to, e.g. `text-expand@1.2.0`.
    pub target: String,
    /// Free-form detail.
    pub detail: String,
}

/// A recorded operator action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the audit log, strictly increasing.
    pub seq: u64,
    /// When it happened.
    pub at: u64,
    /// Who acted.
    pub actor: String,
    /// What they did.
    pub action: String,
    /// What they did it to.
    pub target: String,
    /// Free-form detail.
    pub detail: String,
}

/// How many of each thing the store holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Blobs.
    pub blobs: u64,
    /// Parent → child edges.
    pub edges: u64,
    /// Jobs waiting to run.
    pub jobs_pending: u64,
    /// Jobs claimed by a worker.
    pub jobs_running: u64,
    /// Jobs completed.
    pub jobs_done: u64,
    /// Jobs dead-lettered (and not replayed).
    pub jobs_dead: u64,
    /// Dead letters, including replayed ones.
    pub dead_letters: u64,
    /// Events in the log.
    pub events: u64,
}

/// The result of [`Store::check`](crate::Store::check): counts, and every
/// inconsistency found (none on a healthy store).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckReport {
    /// What the store holds.
    pub counts: Counts,
    /// Each inconsistency, described.
    pub problems: Vec<String>,
}

/// Totals of the writer thread since the store was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriterStats {
    /// Durable commits made.
    pub commits: u64,
    /// Operations those commits carried (ops / commits = mean batch size).
    pub ops: u64,
    /// Commits that failed (their callers got the error).
    pub failed_commits: u64,
    /// Time spent applying operations inside transactions, in microseconds.
    pub apply_us: u64,
    /// Time spent committing (writing pages and fsync), in microseconds.
    pub commit_us: u64,
}
