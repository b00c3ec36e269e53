//! The records the store keeps, as callers see them. All are serde types so
//! the API can return them as JSON unchanged; times are unix milliseconds.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Ids, digests, cost and effect-call records are defined once, in
/// `reyna-types`, and used here as they are.
pub use reyna_types::{
    BlobId, Cost, DeadLetterId, Digest, EffectCall, EffectOutcome, JobId, LogLevel, LogLine,
    TokenId,
};

/// What a blob is, without its bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobMeta {
    /// The blob's id.
    pub id: BlobId,
    /// The tenant that owns it; nothing crosses tenants.
    pub tenant: String,
    /// Its schema id, e.g. `text-input-v1`.
    pub schema: String,
    /// Digest of the bytes, checked on every read.
    pub digest: Digest,
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
    /// Digest of the component bytes that ran.
    pub component_digest: Digest,
    /// Digest of the plugin config the run saw.
    pub config_digest: Digest,
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
    /// The installation secrets the run read (names and versions, never
    /// values), its own and those of the effects it called.
    #[serde(default)]
    pub secrets: Vec<SecretUse>,
}

/// One secret a run read: which plugin's installation, which name, which
/// version. Never the value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SecretUse {
    /// The plugin whose installation holds the secret (the processor, or an
    /// effect it called).
    pub plugin: String,
    /// The secret's config key.
    pub name: String,
    /// The version read.
    pub version: u32,
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
    /// The ingested blob whose tree of derivations this job belongs to: the
    /// input itself for a job on an ingested blob, else the tree of the job
    /// that produced the input. Every derived blob of a tree counts against
    /// one budget (`EngineConfig::max_tree_blobs`). Jobs stored before the
    /// field existed read as the root of a tree of their own.
    #[serde(default = "unset_tree")]
    pub tree: BlobId,
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

/// The tree of a job decoded from a record older than the field; the
/// store's decoder replaces it with the job's input.
fn unset_tree() -> BlobId {
    BlobId::from_key(0)
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
    /// Digest of the component that ran.
    pub component_digest: Digest,
    /// Digest of the config the run saw.
    pub config_digest: Digest,
    /// What the run cost.
    pub cost: Cost,
    /// The effect calls the run made.
    pub effect_calls: Vec<EffectCall>,
    /// Set when the outputs are copies of an earlier identical run.
    pub reused_from: Option<JobId>,
    /// When set, the outputs are recorded under this key for
    /// [`Store::find_idempotent`](crate::Store::find_idempotent).
    pub idempotency_key: Option<IdemKey>,
    /// What the guest logged in this attempt, kept with the job.
    pub log: GuestLog,
    /// The most derived blobs the job's tree may hold; a completion that
    /// would pass it dead-letters the job instead, storing nothing of it.
    /// `None`: no budget.
    pub max_tree_blobs: Option<u64>,
    /// The secrets the run read, recorded in each output's producer.
    pub secrets: Vec<SecretUse>,
}

/// What [`Store::complete_job_and_claim`](crate::Store::complete_job_and_claim) did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Completed {
    /// The outputs are stored (or were, by an earlier completion of the same
    /// job) and the job is done.
    Stored {
        /// The outputs' metadata.
        outputs: Vec<BlobMeta>,
        /// The next jobs stored already claimed (running).
        claimed: Vec<Job>,
    },
    /// The outputs would have passed the tree's budget: nothing of them is
    /// stored and the job is dead, with this dead letter.
    OverTreeBudget {
        /// The dead letter.
        dead_letter: DeadLetterId,
        /// Its reason.
        reason: String,
    },
}

/// A failed run, committed by [`Store::fail_job`](crate::Store::fail_job).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FailedRun {
    /// Why it failed (kept on the job and on the dead letter).
    pub reason: String,
    /// What the failed run cost.
    pub cost: Cost,
    /// Retry at this time; `None` dead-letters the job.
    pub retry_at: Option<u64>,
    /// What the guest logged in this attempt, kept with the job.
    pub log: GuestLog,
}

/// What a guest logged in one attempt of a job, as the runtime bounded and
/// redacted it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestLog {
    /// The lines, in order.
    pub lines: Vec<LogLine>,
    /// Whether lines were dropped for exceeding the plugin's log limit.
    pub truncated: bool,
}

impl GuestLog {
    /// Whether there is nothing to keep.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty() && !self.truncated
    }
}

/// The log of one attempt of a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobLog {
    /// The attempt that logged it.
    pub attempt: u32,
    /// What it logged.
    pub log: GuestLog,
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
    /// Digest of the component.
    pub component_digest: Digest,
    /// Digest of the config.
    pub config_digest: Digest,
    /// Digest of the input bytes.
    pub input_digest: Digest,
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
    /// Digest of `json`.
    pub digest: Digest,
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
    /// The manifest text embedded in the component.
    pub manifest_toml: String,
    /// Digest of the component bytes (see [`Store::install_plugin`](crate::Store::install_plugin)).
    pub digest: Digest,
    /// Whether routing sends it events.
    pub enabled: bool,
    /// Config of stores before installations (format 4 and earlier). The
    /// engine moves it into each tenant's installation when it opens the
    /// store and leaves this empty; nothing reads it otherwise.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// When it was uploaded.
    pub created_at: u64,
    /// The tenant that uploaded it and alone sees and runs it; `None` for
    /// a global plugin (the operator's).
    #[serde(default)]
    pub owner: Option<String>,
    /// Which tenants a global plugin is installed for by default.
    #[serde(default)]
    pub install: InstallPolicy,
}

/// Which tenants a global plugin version runs for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstallPolicy {
    /// Installed for every tenant unless the tenant opts out.
    #[default]
    All,
    /// Installed only for the tenants that opt in.
    OptIn,
}

impl InstallPolicy {
    /// The policy's name on the wire (`all`, `opt-in`).
    pub fn as_str(self) -> &'static str {
        match self {
            InstallPolicy::All => "all",
            InstallPolicy::OptIn => "opt-in",
        }
    }
}

/// A tenant: the unit of isolation. Every blob, job, token, installation
/// and audit entry belongs to one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantRecord {
    /// Its id (one NATS subject token).
    pub id: String,
    /// A label for people.
    pub name: String,
    /// When it was created.
    pub created_at: u64,
    /// When it was deleted. A deleted tenant keeps its record so its id is
    /// never given to someone else (who would inherit its blobs).
    #[serde(default)]
    pub deleted_at: Option<u64>,
    /// Its quotas over the operator's defaults (a field not set here is
    /// the default).
    #[serde(default)]
    pub quotas: crate::Quotas,
}

/// What deleting a tenant removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TenantDeleted {
    /// Its tokens, revoked.
    pub tokens: usize,
    /// Its installations, with their configs and secrets.
    pub installations: usize,
    /// Its own plugin versions, disabled.
    pub plugins: usize,
}

/// A plugin as one tenant runs it: the tenant's enabled flag, config,
/// secrets and health. Keyed by (tenant, plugin name), so it carries over
/// to the plugin's next version.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installation {
    /// The tenant.
    pub tenant: String,
    /// The plugin name.
    pub plugin: String,
    /// Whether the tenant runs it.
    pub enabled: bool,
    /// Plain config values, read by the plugin through `config(key)`.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// The secrets: each name's current version (the values are sealed
    /// in their own table).
    #[serde(default)]
    pub secrets: BTreeMap<String, SecretState>,
    /// Set while the circuit breaker holds it paused.
    #[serde(default)]
    pub paused: Option<Pause>,
    /// When it was first written.
    pub created_at: u64,
    /// When it last changed.
    pub updated_at: u64,
}

/// A secret's state in an installation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretState {
    /// The newest version written (kept after deletion, so a version
    /// number never names two values).
    pub version: u32,
    /// Whether it currently has a value.
    pub set: bool,
    /// When it last changed.
    pub updated_at: u64,
}

/// Why and until when an installation is paused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    /// What the breaker saw.
    pub reason: String,
    /// The plugin version that failed.
    pub version: String,
    /// When it paused.
    pub since: u64,
    /// When one job may run again as a probe.
    pub probe_at: u64,
    /// The wait before this probe; doubled (up to a cap) each time a probe fails.
    pub backoff_ms: u64,
}

/// A change to one installation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InstallationChange {
    /// Sets the tenant's enabled flag.
    Enabled(bool),
    /// Replaces the plain config.
    Config(BTreeMap<String, String>),
    /// Writes a secret's next version, keeping the older versions in
    /// `keep` (jobs still use them) and deleting the rest.
    SetSecret {
        /// The config key.
        name: String,
        /// The sealed value (the store never sees it in the clear).
        sealed: Vec<u8>,
        /// Older versions still in use.
        keep: Vec<u32>,
    },
    /// Removes a secret's value (all versions not in `keep`).
    DeleteSecret {
        /// The config key.
        name: String,
        /// Older versions still in use.
        keep: Vec<u32>,
    },
    /// Deletes a secret's versions that are neither current nor in `keep`.
    PruneSecret {
        /// The config key.
        name: String,
        /// Versions still in use.
        keep: Vec<u32>,
    },
    /// Pauses it (a `plugin.paused.<name>` event on the tenant's stream).
    Pause(Pause),
    /// Resumes it (a `plugin.resumed.<name>` event).
    Resume,
}

/// What a plugin write did: the version's record as stored, and the other
/// versions of the name it disabled (enabling one disables the rest).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginChange {
    /// The version written (or found, when `changed` is false).
    pub record: PluginRecord,
    /// Other versions of the same name, now disabled.
    pub disabled: Vec<PluginRecord>,
    /// False when an upload found the same `name@version` and bytes stored.
    pub changed: bool,
}

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The platform: global plugins and schemas, tenants, every token, the
    /// whole audit log.
    Operator,
    /// A tenant's administrator: its tokens, installations, configs,
    /// secrets, dead letters and audit.
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

fn ok() -> String {
    "ok".to_owned()
}

/// An operator or tenant-admin action to record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewAudit {
    /// Who acted (token id, `engine` or `system`).
    pub actor: String,
    /// The tenant acted on; `None` for the platform (global plugins and
    /// schemas), which only the operator reads.
    pub tenant: Option<String>,
    /// How it ended; empty is recorded as `ok`.
    pub outcome: String,
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
    /// The tenant acted on; `None` for the platform.
    #[serde(default)]
    pub tenant: Option<String>,
    /// How it ended (`ok`, or what went wrong).
    #[serde(default = "ok")]
    pub outcome: String,
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
