//! What goes over the wire: request and response bodies, query parameters.
//! These are the API's own types (so the OpenAPI document is generated from
//! them); store and engine records convert into them.

use std::collections::BTreeMap;

use reyna_engine as store;
use reyna_engine::PluginView;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::{IntoParams, ToSchema};

mod graph;
mod tenancy;
mod ws;
pub use graph::*;
pub use tenancy::*;
pub use ws::*;

// ---- blobs -----------------------------------------------------------------

/// `POST /v1/blobs`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBlob {
    /// Schema id the data must match, e.g. `text-input-v1`.
    pub schema: String,
    /// The blob itself: any JSON document, stored byte for byte as sent.
    #[schema(value_type = Object)]
    pub data: Box<RawValue>,
    /// Ids of existing blobs of the same tenant it derives from.
    #[serde(default)]
    pub parents: Vec<String>,
}

/// A blob without its bytes.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Blob {
    /// Blob id (a ULID).
    pub id: String,
    /// Owning tenant.
    pub tenant: String,
    /// Schema id.
    pub schema: String,
    /// Digest of the bytes (`sha256:<hex>`).
    pub digest: String,
    /// Size of the bytes.
    pub size: u64,
    /// When it was stored, unix ms.
    pub created_at: u64,
    /// The blobs it derives from.
    pub parents: Vec<String>,
    /// Plugin runs between it and an ingested blob.
    pub hop: u32,
    /// Which code made it, for derived blobs.
    pub producer: Option<Producer>,
}

/// Which plugin made a derived blob, from what, at what cost.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Producer {
    /// Plugin name.
    pub plugin: String,
    /// Plugin version.
    pub version: String,
    /// sha256 of the component that ran.
    pub component_digest: String,
    /// HMAC-SHA256 of the config the run saw, keyed per installation
    /// (`<data-dir>/config-digest.key`): tells configs apart, confirms no
    /// guessed secret.
    pub config_digest: String,
    /// The job whose run made it.
    pub job_id: String,
    /// Which attempt succeeded.
    pub attempt: u32,
    /// What the run cost.
    pub cost: Cost,
    /// Every effect call the run made, in order.
    pub effect_calls: Vec<EffectCall>,
    /// Set when the outputs were copied from an identical earlier run.
    pub reused_from: Option<String>,
    /// The installation secrets the run read: names and versions, never values.
    pub secrets: Vec<SecretUse>,
}

/// One secret a run read.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SecretUse {
    /// The plugin whose installation holds it (the processor, or an effect it called).
    pub plugin: String,
    /// The secret's config key.
    pub name: String,
    /// The version read.
    pub version: u32,
}

/// What one plugin run cost, and the record of one effect call: the
/// domain types themselves (`reyna-types`), serialized as they are.
pub use reyna_types::{Cost, EffectCall};

/// A page of blobs.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BlobPage {
    /// The blobs, oldest first.
    pub items: Vec<Blob>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// `GET /v1/blobs`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListBlobs {
    /// Only blobs of this schema.
    pub schema: Option<String>,
    /// Only blobs whose data holds `value` at this JSON pointer, e.g.
    /// `/metadata/book_id` (needs `schema` and `value`). A scan, bounded
    /// like a plugin's `query-blobs`: past the bound the page holds what was
    /// found so far, with a `next_cursor` to continue.
    pub field: Option<String>,
    /// With `field`: the text to find there, matching a JSON string equal
    /// to it, or a number or boolean written so (`3`, `true`).
    pub value: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size (1 to the host's maximum, default 100).
    pub limit: Option<usize>,
}

/// Which way to walk lineage.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Ancestors.
    Up,
    /// Descendants.
    Down,
    /// Both.
    Both,
}

/// `GET /v1/blobs/{id}/lineage`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LineageParams {
    /// `up` (ancestors), `down` (descendants) or `both` (default).
    #[param(inline)]
    pub direction: Option<Direction>,
    /// Hops to walk (default 8, at most 1024).
    pub depth: Option<u32>,
}

/// A parent → child link.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Edge {
    /// The input.
    pub parent: String,
    /// The blob derived from it.
    pub child: String,
}

/// The lineage graph around a blob.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Lineage {
    /// The blob the walk started from.
    pub root: String,
    /// Every blob reached, the root first.
    pub nodes: Vec<Blob>,
    /// Every edge between reached blobs.
    pub edges: Vec<Edge>,
    /// True when the walk stopped at the node cap.
    pub truncated: bool,
}

/// `GET /v1/blobs/{id}/derived`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DerivedParams {
    /// How long to wait for the blob's jobs to settle: seconds (`10`) or a
    /// duration (`500ms`); default 0 (answer at once); capped by the host.
    pub wait: Option<String>,
}

/// The blobs derived directly from a blob, and the jobs that made them.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Derived {
    /// The blob asked about.
    pub blob: String,
    /// The blobs derived from it so far.
    pub derived: Vec<Blob>,
    /// The jobs routed for it.
    pub jobs: Vec<Job>,
    /// True when none of those jobs is pending or running.
    pub settled: bool,
}

// ---- jobs and dead letters ---------------------------------------------------

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting to run (or for a retry).
    Pending,
    /// Running.
    Running,
    /// Completed.
    Done,
    /// Failed for good; see the dead letters.
    Dead,
}

/// What a job's plugin logged in one attempt.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobLog {
    /// The attempt (1 for the first run).
    pub attempt: u32,
    /// Whether lines were dropped for exceeding the plugin's log limit.
    pub truncated: bool,
    /// The lines, in order.
    pub lines: Vec<LogLine>,
}

/// A line of a guest's log: the domain type, serialized as it is.
pub use reyna_types::LogLine;

/// One run of one plugin version over one blob.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Job {
    /// Job id.
    pub id: String,
    /// Tenant of the input blob.
    pub tenant: String,
    /// Plugin name.
    pub plugin: String,
    /// Plugin version.
    pub version: String,
    /// The input blob.
    pub blob_id: String,
    /// The subject that routed the blob here.
    pub subject: String,
    /// The input's hop count.
    pub hop: u32,
    /// The ingested blob whose tree of derivations the job belongs to; the
    /// tree's derived blobs count against one budget (`max-tree-blobs`).
    pub tree: String,
    /// 1 for the first run.
    pub attempt: u32,
    /// Current state.
    pub state: JobState,
    /// When it may run (while pending), unix ms.
    pub due_at: u64,
    /// When it was enqueued.
    pub created_at: u64,
    /// When its state last changed.
    pub updated_at: u64,
    /// The last failure's reason.
    pub last_error: Option<String>,
    /// The blobs it produced, once done.
    pub outputs: Vec<String>,
    /// A re-run answering every effect call from the responses recorded in
    /// earlier runs' lineage instead of calling out.
    pub replay_effects: bool,
}

/// `POST /v1/blobs/{id}/rerun`: run a plugin version again on a stored blob.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RerunBlob {
    /// Plugin name.
    pub plugin: String,
    /// Plugin version (e.g. the one just uploaded); it must accept the
    /// blob's schema.
    pub version: String,
    /// Answer every effect call from the responses recorded in the lineage
    /// of earlier runs of this plugin on the blob, and fail a call that has
    /// none, instead of calling out: a re-run repeats no paid or
    /// side-effecting call. Kept with the job across retries and restarts.
    #[serde(default)]
    pub replay_effects: bool,
}

/// `GET /v1/jobs`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListJobs {
    /// The input blob whose jobs to list (all of them, oldest first). Without
    /// it, a page of the tenant's jobs, ordered by state then creation, with
    /// the next page's cursor in the `x-next-cursor` response header.
    pub blob: Option<String>,
    /// Only jobs in this state.
    #[param(inline)]
    pub state: Option<JobState>,
    /// `x-next-cursor` of the previous page (tenant-wide listing only).
    pub cursor: Option<String>,
    /// Page size (tenant-wide listing only).
    pub limit: Option<usize>,
}

/// A job that failed for good.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeadLetter {
    /// Dead letter id.
    pub id: String,
    /// The job as it was when it died.
    pub job: Job,
    /// Why it failed.
    pub reason: String,
    /// What the last run cost.
    pub cost: Cost,
    /// When it died.
    pub created_at: u64,
    /// When it was replayed, if it was.
    pub replayed_at: Option<u64>,
}

/// A page of dead letters.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeadLetterPage {
    /// The dead letters, oldest first.
    pub items: Vec<DeadLetter>,
    /// Pass as `cursor` for the next page.
    pub next_cursor: Option<String>,
}

/// `GET /v1/dead-letters`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListDeadLetters {
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size.
    pub limit: Option<usize>,
    /// Admins only: one tenant's dead letters (default: every tenant's).
    pub tenant: Option<String>,
}

// ---- schemas ---------------------------------------------------------------

/// `POST /v1/schemas`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSchema {
    /// Schema id, `[a-z0-9-]+-v<N>`; immutable once registered.
    pub id: String,
    /// The JSON Schema document.
    #[schema(value_type = Object)]
    pub schema: serde_json::Value,
}

/// A registered schema.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Schema {
    /// Schema id.
    pub id: String,
    /// sha256 of the stored document.
    pub digest: String,
    /// When it was registered.
    pub created_at: u64,
    /// The document (only when one schema is asked for).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub schema: Option<serde_json::Value>,
}

/// What registering a schema did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SchemaCreated {
    /// The schema.
    pub schema: Schema,
    /// False when the identical document was registered already.
    pub created: bool,
}

/// The result of `POST /v1/schemas/{id}/validate`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Validation {
    /// Whether the document matches.
    pub valid: bool,
    /// Each violation (the first ones).
    pub errors: Vec<crate::error::ProblemViolation>,
    /// How many violations in all.
    pub total: usize,
}

// ---- plugins ---------------------------------------------------------------

/// Counters of a plugin version since the host started.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PluginStats {
    /// Calls run.
    pub calls: u64,
    /// Calls that produced outputs.
    pub succeeded: u64,
    /// Calls that failed.
    pub failed: u64,
    /// Failures scheduled for another attempt.
    pub retried: u64,
    /// Jobs sent to the dead letters.
    pub dead_lettered: u64,
    /// Jobs completed from a stored result.
    pub reused: u64,
    /// Sum of call wall times, microseconds.
    pub total_wall_us: u64,
    /// Why the engine paused it, when it did.
    pub paused_reason: Option<String>,
}

/// A plugin version.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Plugin {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// `processor` or `effect`.
    pub kind: String,
    /// Whether it receives events.
    pub enabled: bool,
    /// `sha256:` digest of the component.
    pub digest: String,
    /// The embedded manifest.
    #[schema(value_type = Object)]
    pub manifest: serde_json::Value,
    /// The tenant whose own plugin it is; absent for a global plugin.
    pub owner: Option<String>,
    /// Which tenants a global plugin is installed for by default: `all`
    /// (unless a tenant opts out) or `opt-in`.
    pub install: String,
    /// In a tenant's view: whether the tenant runs it (its installation).
    pub installed: Option<bool>,
    /// Upload time, unix ms.
    pub created_at: u64,
    /// Counters since the host started: the caller's tenant's, or every
    /// tenant's for the operator.
    pub stats: PluginStats,
}

/// What an upload did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PluginUploaded {
    /// The plugin version.
    pub plugin: Plugin,
    /// False when the same bytes were uploaded before.
    pub created: bool,
}

/// Every version of one plugin.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PluginVersions {
    /// Name.
    pub name: String,
    /// Its versions, oldest upload first.
    pub versions: Vec<Plugin>,
}

/// `PUT /v1/tenants/{tenant}/installations/{plugin}/config`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstallationConfig {
    /// The plain values the plugin reads with `config(key)`; replaces the
    /// old ones. Secrets are set one by one (`.../secrets/{key}`).
    pub config: BTreeMap<String, String>,
}

/// `PUT /v1/tenants/{tenant}/installations/{plugin}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetInstallation {
    /// Whether the tenant runs the plugin (enabling a paused installation resumes it).
    pub enabled: bool,
}

/// `PUT /v1/tenants/{tenant}/installations/{plugin}/secrets/{key}`.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetSecret {
    /// The value; sealed before it is stored, never returned.
    pub value: String,
}

impl std::fmt::Debug for SetSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SetSecret { value: [redacted] }")
    }
}

/// One secret of an installation (never its value).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Secret {
    /// Its config key.
    pub name: String,
    /// Whether it has a value now.
    pub set: bool,
    /// The newest version written.
    pub version: u32,
    /// When it last changed, unix ms.
    pub updated_at: u64,
}

/// Why and until when the circuit breaker holds an installation paused.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Pause {
    /// What the breaker saw.
    pub reason: String,
    /// The plugin version that failed.
    pub version: String,
    /// When it paused, unix ms.
    pub since: u64,
    /// When one job runs again as a probe, unix ms.
    pub probe_at: u64,
    /// The wait before that probe, ms (doubles after each failed probe).
    pub backoff_ms: u64,
}

/// A plugin as one tenant runs it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Installation {
    /// The tenant.
    pub tenant: String,
    /// The plugin name.
    pub plugin: String,
    /// Whether the tenant runs it.
    pub enabled: bool,
    /// Whether the tenant chose (true) or the plugin's install policy decides.
    pub explicit: bool,
    /// Plain config values (a value under a key that looks like a secret shows `[redacted]`).
    pub config: BTreeMap<String, String>,
    /// Its secrets, never their values.
    pub secrets: Vec<Secret>,
    /// HMAC-SHA256 of the whole config the plugin sees, keyed per host.
    pub config_digest: String,
    /// Set while the circuit breaker holds it paused.
    pub paused: Option<Pause>,
}

impl From<reyna_engine::InstallationView> for Installation {
    fn from(v: reyna_engine::InstallationView) -> Self {
        Installation {
            tenant: v.tenant,
            plugin: v.plugin,
            enabled: v.enabled,
            explicit: v.explicit,
            config: v.config,
            secrets: v
                .secrets
                .into_iter()
                .map(|s| Secret {
                    name: s.name,
                    set: s.set,
                    version: s.version,
                    updated_at: s.updated_at,
                })
                .collect(),
            config_digest: v.config_digest.to_string(),
            paused: v.paused.map(|p| Pause {
                reason: p.reason,
                version: p.version,
                since: p.since,
                probe_at: p.probe_at,
                backoff_ms: p.backoff_ms,
            }),
        }
    }
}

// ---- events ----------------------------------------------------------------

/// One event, as the `data` of a server-sent event.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Event {
    /// Position in the event log (also the SSE `id`).
    pub seq: u64,
    /// Tenant.
    pub tenant: String,
    /// Subject, e.g. `blob.created.word-stats-v1`.
    pub subject: String,
    /// The blob concerned.
    pub blob_id: Option<String>,
    /// The job concerned.
    pub job_id: Option<String>,
    /// When, unix ms.
    pub at: u64,
}

/// `GET /v1/events`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsParams {
    /// Subject pattern with NATS wildcards (`*` one token, `>` the rest);
    /// default `>` (everything).
    pub subject: Option<String>,
    /// Start after this sequence (like `Last-Event-ID`; the header wins).
    /// Without either, the stream starts with the next event.
    pub after: Option<u64>,
}

/// The final event sent to a client that fell too far behind.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Lagged {
    /// The last sequence delivered; reconnect with it as `Last-Event-ID`.
    pub last_seq: u64,
    /// Why the stream ended.
    pub reason: String,
}

// ---- health ----------------------------------------------------------------

/// `GET /healthz` and `GET /readyz`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok`, or why not.
    pub status: String,
}

// ---- conversions -----------------------------------------------------------

impl From<store::BlobMeta> for Blob {
    fn from(b: store::BlobMeta) -> Self {
        Blob {
            id: b.id.to_string(),
            tenant: b.tenant,
            schema: b.schema,
            digest: b.digest.to_string(),
            size: b.size,
            created_at: b.created_at,
            parents: b.parents.iter().map(ToString::to_string).collect(),
            hop: b.hop,
            producer: b.producer.map(Into::into),
        }
    }
}

impl From<store::Producer> for Producer {
    fn from(p: store::Producer) -> Self {
        Producer {
            plugin: p.plugin,
            version: p.version,
            component_digest: p.component_digest.to_string(),
            config_digest: p.config_digest.to_string(),
            job_id: p.job_id.to_string(),
            attempt: p.attempt,
            cost: p.cost,
            effect_calls: p.effect_calls,
            reused_from: p.reused_from.map(|j| j.to_string()),
            secrets: p
                .secrets
                .into_iter()
                .map(|s| SecretUse {
                    plugin: s.plugin,
                    name: s.name,
                    version: s.version,
                })
                .collect(),
        }
    }
}

impl From<store::JobLog> for JobLog {
    fn from(l: store::JobLog) -> Self {
        JobLog {
            attempt: l.attempt,
            truncated: l.log.truncated,
            lines: l.log.lines,
        }
    }
}

impl From<store::Lineage> for Lineage {
    fn from(l: store::Lineage) -> Self {
        Lineage {
            root: l.root.to_string(),
            nodes: l.nodes.into_iter().map(Into::into).collect(),
            edges: l
                .edges
                .into_iter()
                .map(|e| Edge {
                    parent: e.parent.to_string(),
                    child: e.child.to_string(),
                })
                .collect(),
            truncated: l.truncated,
        }
    }
}

impl From<Direction> for store::Direction {
    fn from(d: Direction) -> Self {
        match d {
            Direction::Up => store::Direction::Up,
            Direction::Down => store::Direction::Down,
            Direction::Both => store::Direction::Both,
        }
    }
}

impl From<store::JobState> for JobState {
    fn from(s: store::JobState) -> Self {
        match s {
            store::JobState::Pending => JobState::Pending,
            store::JobState::Running => JobState::Running,
            store::JobState::Done => JobState::Done,
            store::JobState::Dead => JobState::Dead,
        }
    }
}

impl From<store::Job> for Job {
    fn from(j: store::Job) -> Self {
        Job {
            id: j.id.to_string(),
            tenant: j.tenant,
            plugin: j.plugin,
            version: j.version,
            blob_id: j.blob_id.to_string(),
            subject: j.subject,
            hop: j.hop,
            attempt: j.attempt,
            state: j.state.into(),
            due_at: j.due_at,
            created_at: j.created_at,
            updated_at: j.updated_at,
            last_error: j.last_error,
            outputs: j.outputs.iter().map(ToString::to_string).collect(),
            replay_effects: j.replay_effects,
            tree: j.tree.to_string(),
        }
    }
}

impl From<store::DeadLetter> for DeadLetter {
    fn from(d: store::DeadLetter) -> Self {
        DeadLetter {
            id: d.id.to_string(),
            job: d.job.into(),
            reason: d.reason,
            cost: d.cost,
            created_at: d.created_at,
            replayed_at: d.replayed_at,
        }
    }
}

impl From<store::Event> for Event {
    fn from(e: store::Event) -> Self {
        Event {
            seq: e.seq,
            tenant: e.tenant,
            subject: e.subject,
            blob_id: e.blob_id.map(|b| b.to_string()),
            job_id: e.job_id.map(|j| j.to_string()),
            at: e.at,
        }
    }
}

impl Schema {
    /// From a stored record, with or without its document.
    pub fn from_record(r: store::SchemaRecord, with_document: bool) -> Self {
        let schema = if with_document {
            serde_json::from_str(&r.json).ok()
        } else {
            None
        };
        Schema {
            id: r.id,
            digest: r.digest.to_string(),
            created_at: r.created_at,
            schema,
        }
    }
}

impl From<PluginView> for Plugin {
    fn from(p: PluginView) -> Self {
        let kind = serde_json::to_value(p.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        Plugin {
            name: p.name,
            version: p.version,
            kind,
            enabled: p.enabled,
            digest: p.digest.to_string(),
            manifest: serde_json::to_value(&p.manifest).unwrap_or_default(),
            owner: p.owner,
            install: p.install.as_str().to_owned(),
            installed: p.installed,
            created_at: p.created_at,
            stats: PluginStats {
                calls: p.stats.calls,
                succeeded: p.stats.succeeded,
                failed: p.stats.failed,
                retried: p.stats.retried,
                dead_lettered: p.stats.dead_lettered,
                reused: p.stats.reused,
                total_wall_us: p.stats.total_wall_us,
                paused_reason: p.stats.paused_reason,
            },
        }
    }
}

impl From<Role> for store::Role {
    fn from(r: Role) -> Self {
        match r {
            Role::Operator => store::Role::Operator,
            Role::Admin => store::Role::Admin,
            Role::Writer => store::Role::Writer,
            Role::Reader => store::Role::Reader,
        }
    }
}

impl From<store::Role> for Role {
    fn from(r: store::Role) -> Self {
        match r {
            store::Role::Operator => Role::Operator,
            store::Role::Admin => Role::Admin,
            store::Role::Writer => Role::Writer,
            store::Role::Reader => Role::Reader,
        }
    }
}

impl From<store::TokenRecord> for Token {
    fn from(t: store::TokenRecord) -> Self {
        Token {
            id: t.id.to_string(),
            tenant: t.tenant,
            role: t.role.into(),
            name: t.name,
            created_at: t.created_at,
        }
    }
}

impl From<store::AuditEntry> for AuditEntry {
    fn from(a: store::AuditEntry) -> Self {
        AuditEntry {
            seq: a.seq,
            at: a.at,
            actor: a.actor,
            tenant: a.tenant,
            action: a.action,
            target: a.target,
            detail: a.detail,
            outcome: a.outcome,
        }
    }
}
