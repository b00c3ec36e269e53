//! Reyna's engine: where a blob becomes a pipeline.
//!
//! The engine validates what comes in and what comes out against registered
//! JSON Schemas, decides which plugins run for each new blob (routing by
//! subscription), runs them in the sandbox ([`reyna_runtime`]) under their
//! limits, and records every outcome atomically in the store
//! ([`reyna_store`]): derived blobs with their lineage and next jobs, retries
//! with backoff, dead letters. Each tenant runs a plugin through its
//! installation (its own enabled flag, config, sealed secrets and circuit
//! breaker). Transports (HTTP, NATS, the CLI) call into it.
//!
//! ```no_run
//! use reyna_engine::{Engine, EngineConfig, InstallPolicy, TenantId};
//!
//! # async fn example(wasm: Vec<u8>) -> Result<(), reyna_engine::EngineError> {
//! let engine = Engine::open(EngineConfig::new("./reyna-data")).await?;
//! engine.register_bundled_schemas().await?;
//! let acme = TenantId::parse("acme").expect("a valid tenant id");
//! engine.create_tenant(&acme, "Acme", "operator").await?;
//! // A global plugin, installed for every tenant that does not opt out.
//! let (plugin, _) = engine
//!     .upload_plugin(wasm, None, InstallPolicy::All, "operator")
//!     .await?;
//! // acme's own secret for it: sealed, never shown, versioned.
//! engine
//!     .set_secret("acme", &plugin.name, "api_key", "sk-...", "operator")
//!     .await?;
//! engine.start();
//! let blob = engine
//!     .create_blob("acme", "text-input-v1", br#"{"content": "Hello, world."}"#.to_vec(), vec![])
//!     .await?;
//! engine.wait_idle(std::time::Duration::from_secs(10)).await;
//! let derived = engine.store().children("acme", blob.id)?;
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reyna_runtime::Runtime;
use reyna_store::{NewBlob, Store};
use tokio::sync::watch;

// Bottom to top: each module imports only modules listed above it.
mod admit;
mod commit;
mod config;
mod error;
mod executor;
mod host;
mod inner;
mod installs;
mod pipeline;
mod plugins;
mod quotas;
mod remote;
mod schemas;
mod slots;
mod tenancy;
mod view;

pub use config::{EffectsConfig, EngineConfig};
pub use error::{EngineError, Violation};
pub use host::BlobFilter;
pub use installs::{InstallationView, SecretView};
pub use plugins::{PluginStats, PluginView};
pub use remote::{
    CallConfig, JobCopy, RemoteConfig, RemoteJob, RemoteOutcome, RemoteRefusal, RemoteResult,
    RunningJob, Transport, TransportError, TransportFuture,
};
/// The store itself, for tests and benches that check what it holds.
#[cfg(feature = "testing")]
pub use reyna_store;
/// The records the engine returns. They are kept by the store and defined
/// there; transports read them only through the engine.
pub use reyna_store::{
    AuditEntry, BlobMeta, Counts, DeadLetter, Direction, Edge, Event, GuestLog, InstallPolicy, Job,
    JobLog, JobState, Lineage, NewToken, Page, Pause, Producer, Role, SchemaRecord, SecretUse,
    StoreError, TenantDeleted, TenantRecord, TokenRecord, WriterStats,
};
pub use reyna_types::{
    BlobId, Cost, DeadLetterId, Digest, EffectCall, EffectOutcome, JobId, LogLevel, LogLine,
    TenantId, TokenId,
};
pub use schemas::BUNDLED as BUNDLED_SCHEMAS;
pub use view::TenantView;

use inner::Inner;
use plugins::PluginRegistry;
use schemas::SchemaRegistry;

/// The engine. Cheap to clone; all clones share one store, runtime and dispatcher.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("data_dir", &self.inner.config.data_dir)
            .finish_non_exhaustive()
    }
}

/// The refusal of a blob that would take `tenant` past a quota on what it
/// holds.
fn quota_refusal(tenant: &str, quota: &str, used: u64, adding: u64, limit: u64) -> EngineError {
    let (message, retry_after) = match quota {
        "stored-bytes" => (
            format!(
                "tenant {tenant} stores {used} bytes of blobs and this blob adds {adding}, past its stored-bytes quota of {limit}"
            ),
            // Stored bytes only fall when an operator raises the quota.
            Duration::from_secs(3600),
        ),
        _ => (
            format!(
                "tenant {tenant} has {used} jobs waiting and this blob would queue {adding} more, past its queued-jobs quota of {limit}; retry once its jobs have run"
            ),
            Duration::from_secs(1),
        ),
    };
    EngineError::QuotaExceeded {
        quota: quota.to_owned(),
        message,
        retry_after,
    }
}

/// What registering the bundled schemas did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BundledReport {
    /// Schemas newly registered.
    pub schemas: Vec<String>,
    /// Bundled schemas the store already holds in another version (a data
    /// directory made by an older binary): the stored version is kept.
    pub kept: Vec<String>,
    /// Plugins newly registered, as `name@version`.
    pub plugins: Vec<String>,
}

impl Engine {
    /// Opens the store and runtime, loads registered schemas and plugins, and
    /// makes jobs that were running when the last process died due again.
    /// Dispatch starts with [`Engine::start`].
    pub async fn open(mut config: EngineConfig) -> Result<Engine, EngineError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            EngineError::Internal(format!("cannot create {}: {e}", config.data_dir.display()))
        })?;
        if config.runtime.cache_dir.is_none() {
            config.runtime.cache_dir = Some(config.data_dir.join("artifacts"));
        }
        let store =
            Store::open_with_cache(config.data_dir.join("reyna.redb"), config.store_cache_bytes)?;
        let runtime = Runtime::new(config.runtime.clone())
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        let schemas = SchemaRegistry::new(store.clone());
        schemas.load_all()?;
        let config_key = plugins::ConfigKey::load_or_create(&config.data_dir)?;
        let vault = tenancy::open_vault(&store, &config)?;
        let installs = Arc::new(installs::Installs::new(store.clone(), vault, config_key));
        installs.load_all()?;
        let plugins = PluginRegistry::new(store.clone(), runtime.clone(), installs);
        // Startup work: loads from the artifact cache, compiles only what is missing.
        for problem in plugins.load_all()? {
            tracing::error!(%problem, "plugin not loaded");
        }
        tenancy::migrate_legacy_config(&store, &plugins).await?;
        let recovered = store.recover_running().await?;
        if recovered > 0 {
            tracing::info!(
                recovered,
                "jobs that were running at the last stop are due again"
            );
        }
        let (shutdown, _) = watch::channel(false);
        let (job_finished, _) = watch::channel(0);
        let config_blocking = config.max_blocking_reads.max(1);
        let quotas = Arc::new(quotas::TenantQuotas::load(config.quotas.clone(), &store)?);
        Ok(Engine {
            inner: Arc::new(Inner {
                config,
                store,
                runtime,
                schemas,
                plugins,
                job_finished,
                in_flight: std::sync::atomic::AtomicUsize::new(0),
                remote: std::sync::OnceLock::new(),
                slots: std::sync::OnceLock::new(),
                shutdown,
                dispatcher: Mutex::new(None),
                blocking_reads: tokio::sync::Semaphore::new(config_blocking),
                effect_notes: Mutex::new(std::collections::HashMap::new()),
                quotas,
                claims_changed: tokio::sync::Notify::new(),
            }),
        })
    }

    /// Starts dispatching jobs (idempotent).
    pub fn start(&self) {
        let mut slot = self
            .inner
            .dispatcher
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            let rx = self.inner.shutdown.subscribe();
            // Remote mode: a slot is a job sent out and not yet answered.
            let (claims, running) = if self.inner.remote.get().is_some() {
                let inner = self.inner.clone();
                let stop = self.inner.shutdown.subscribe();
                tokio::spawn(async move {
                    if let Some(remote) = inner.remote.get() {
                        remote
                            .republish_loop(inner.config.remote.clone(), stop)
                            .await;
                    }
                });
                (self.inner.config.remote.max_outstanding, None)
            } else {
                let workers = self.inner.config.workers;
                (workers.saturating_mul(8), Some(workers))
            };
            let (slots, handoff) =
                slots::Slots::new(claims, running, self.inner.shutdown.subscribe());
            // Set once: a dispatcher started again after `shutdown` stops at once.
            let _ = self.inner.slots.set(slots);
            *slot = Some(tokio::spawn(pipeline::dispatch(
                self.inner.clone(),
                handoff,
                rx,
            )));
        }
    }

    /// Sends the jobs of pure processors (no effects) to `transport` instead
    /// of running them here; [`Engine::complete_remote`] commits their
    /// results. Effect plugins and processors that declare effects still run
    /// here. Call before [`Engine::start`]; a second transport is refused.
    pub fn set_transport(&self, transport: Arc<dyn Transport>) -> Result<(), EngineError> {
        let started = self
            .inner
            .dispatcher
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some();
        if started {
            return Err(EngineError::Conflict(
                "the transport must be set before the engine starts".into(),
            ));
        }
        self.inner
            .remote
            .set(remote::Remote::new(transport))
            .map_err(|_| EngineError::Conflict("a transport is already set".into()))
    }

    /// Whether the transport is connected; `None` without a transport.
    pub fn transport_connected(&self) -> Option<bool> {
        self.inner.remote.get().map(remote::Remote::connected)
    }

    /// Jobs sent to the transport and not answered yet.
    pub fn remote_outstanding(&self) -> usize {
        self.inner
            .remote
            .get()
            .map_or(0, remote::Remote::outstanding_count)
    }

    /// Commits a worker's result for a job this engine sent out: outputs are
    /// validated and the job completed, or it is retried or dead-lettered,
    /// exactly once per job and attempt. A result for an attempt that is not
    /// running (a duplicate, a late copy) is [`RemoteOutcome::Stale`] and
    /// changes nothing.
    pub async fn complete_remote(
        &self,
        result: RemoteResult,
    ) -> Result<RemoteOutcome, EngineError> {
        match self.inner.remote.get() {
            Some(remote) => remote.deliver(result).await,
            None => Err(EngineError::Internal(
                "no transport is configured; remote results cannot be committed".into(),
            )),
        }
    }

    /// Stops claiming jobs and waits until every job in flight has committed
    /// its outcome.
    pub async fn shutdown(&self) {
        let _ = self.inner.shutdown.send(true);
        let handle = self
            .inner
            .dispatcher
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(handle) = handle {
            let _ = handle.await;
        }
    }

    /// The store, for tests and benches that check what it holds.
    /// Transports read through the engine's own API instead.
    #[cfg(feature = "testing")]
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// One tenant's data: blobs, lineage, jobs and events, every read
    /// scoped to `tenant`.
    pub fn tenant(&self, tenant: &TenantId) -> TenantView {
        TenantView::new(self.inner.clone(), tenant.clone())
    }

    /// A page of dead letters (replayed ones included), oldest first, of
    /// one tenant or of all.
    pub async fn dead_letters(
        &self,
        tenant: Option<TenantId>,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<Page<DeadLetter>, EngineError> {
        self.inner
            .blocking(move |store| {
                store.list_dead_letters(
                    tenant.as_ref().map(TenantId::as_str),
                    cursor.as_deref(),
                    limit,
                )
            })
            .await
    }

    /// A registered schema.
    pub fn schema(&self, id: &str) -> Result<Option<SchemaRecord>, EngineError> {
        Ok(self.inner.store.get_schema(id)?)
    }

    /// Every registered schema, by id.
    pub fn schemas(&self) -> Result<Vec<SchemaRecord>, EngineError> {
        Ok(self.inner.store.list_schemas()?)
    }

    /// What the store holds, counted (blobs, jobs by state, events, ...);
    /// also a check that the store answers.
    pub fn counts(&self) -> Result<Counts, EngineError> {
        Ok(self.inner.store.counts()?)
    }

    /// How the store's writer has been batching since start.
    pub fn writer_stats(&self) -> WriterStats {
        self.inner.store.writer_stats()
    }

    /// Changes to the newest event sequence whenever events are committed.
    pub fn watch_events(&self) -> watch::Receiver<u64> {
        self.inner.store.watch_events()
    }

    /// Up to `limit` events of every tenant after sequence `after` (the
    /// outbox a transport publishes live events from).
    pub fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Event>, EngineError> {
        Ok(self.inner.store.events_after(None, after, limit)?)
    }

    /// The sandbox runtime.
    pub fn runtime(&self) -> &Runtime {
        &self.inner.runtime
    }

    /// The configuration in use.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// Registers every bundled schema that is not registered yet.
    pub async fn register_bundled_schemas(&self) -> Result<BundledReport, EngineError> {
        let mut report = BundledReport::default();
        for (id, text) in schemas::BUNDLED {
            match self.inner.schemas.register(id, text, "system").await {
                Ok(true) => report.schemas.push((*id).to_owned()),
                Ok(false) => {}
                // A data directory older than this binary's schema: a
                // registered schema never changes (its blobs were validated
                // against it), so the stored one stays, with the plugins
                // registered beside it.
                Err(EngineError::SchemaConflict { id }) => report.kept.push(id),
                Err(e) => return Err(e),
            }
        }
        Ok(report)
    }

    /// Registers a JSON Schema under `id`. Returns false when the identical
    /// schema was already registered.
    pub async fn register_schema(
        &self,
        id: &str,
        json: &str,
        actor: &str,
    ) -> Result<bool, EngineError> {
        self.inner.schemas.register(id, json, actor).await
    }

    /// Validates `data` against schema `id` without storing anything.
    pub fn validate(&self, schema: &str, data: &[u8]) -> Result<(), EngineError> {
        self.inner.schemas.validate(schema, data)
    }

    /// Registers a plugin from its component bytes: reads the embedded
    /// manifest without running it, checks the component targets its kind's
    /// world, that its schemas and effects exist and that `name@version` is
    /// new (uploading the same bytes again is a no-op), compiles it, stores
    /// it and enables it (disabling older versions of the same name).
    /// `owner`: `None` uploads a global plugin (the operator's), installed
    /// for tenants as `install` says; a tenant uploads a processor only it
    /// sees and runs. A name belongs to one owner. Every refusal stores
    /// nothing. Returns the plugin (as `owner` sees it) and whether it was new.
    pub async fn upload_plugin(
        &self,
        bytes: Vec<u8>,
        owner: Option<&str>,
        install: reyna_store::InstallPolicy,
        actor: &str,
    ) -> Result<(PluginView, bool), EngineError> {
        self.inner
            .plugins
            .upload(&self.inner.schemas, bytes, owner, install, actor)
            .await
    }

    /// Every plugin version `scope` sees, with its state and counters:
    /// `None` for the operator (all, counters of every tenant), or a
    /// tenant (global plugins and its own, with its installation's state
    /// and counters).
    pub fn list_plugins(&self, scope: Option<&str>) -> Vec<PluginView> {
        self.inner.plugins.list(scope)
    }

    /// One plugin version, as `scope` sees it.
    pub fn plugin(&self, name: &str, version: &str, scope: Option<&str>) -> Option<PluginView> {
        self.inner.plugins.view(name, version, scope)
    }

    /// Enables (disabling the name's other versions) or disables a version:
    /// the operator's switch for a global plugin, the owner's for a
    /// tenant's own. `scope` is who asks (`None`: the operator); a version
    /// it cannot see is not found, and a tenant may switch only its own.
    pub async fn set_plugin_enabled(
        &self,
        name: &str,
        version: &str,
        enabled: bool,
        scope: Option<&str>,
        actor: &str,
    ) -> Result<PluginView, EngineError> {
        let id = format!("{name}@{version}");
        let p = self
            .inner
            .plugins
            .get_visible(name, version, scope)
            .ok_or_else(|| EngineError::PluginNotFound(id.clone()))?;
        if let Some(tenant) = scope
            && p.record.owner.as_deref() != Some(tenant)
        {
            return Err(EngineError::Forbidden(format!(
                "plugin {id} is global: only the operator enables or disables its versions; a tenant turns it on or off through its installation"
            )));
        }
        self.inner
            .plugins
            .set_enabled(name, version, enabled, actor)
            .await?;
        self.plugin(name, version, scope)
            .ok_or(EngineError::PluginNotFound(id))
    }

    /// Validates and stores a blob, its `blob.created` event and one job per
    /// enabled plugin routed to its schema, in one transaction. Once the
    /// engine has started, jobs with a free worker are stored claimed in
    /// that transaction and start at once; the others wait in the store.
    pub async fn create_blob(
        &self,
        tenant: &str,
        schema: &str,
        data: Vec<u8>,
        parents: Vec<String>,
    ) -> Result<BlobMeta, EngineError> {
        let limit = self.inner.config.max_blob_bytes;
        if data.len() > limit {
            return Err(EngineError::BlobTooLarge {
                size: data.len(),
                limit,
            });
        }
        let max_parents = self.inner.config.max_parents;
        if parents.len() > max_parents {
            return Err(EngineError::TooManyParents {
                count: parents.len(),
                limit: max_parents,
            });
        }
        self.inner.schemas.validate(schema, &data)?;
        let mut parent_ids = Vec::with_capacity(parents.len());
        for p in &parents {
            parent_ids.push(
                p.parse::<BlobId>()
                    .map_err(|_| EngineError::InvalidBlobId { id: p.clone() })?,
            );
        }
        let jobs = self.inner.plugins.route(schema, tenant);
        self.inner.quotas.take_blob(tenant)?;
        let blob = NewBlob {
            tenant: tenant.to_owned(),
            schema: schema.to_owned(),
            data,
            parents: parent_ids,
            hop: 0,
        };
        // Jobs with a free worker are claimed in the same commit and run at
        // once; the rest wait in the store for the dispatcher.
        // An idle tenant's jobs do not wait behind other tenants' backlogs.
        let (permits, idle) = self.inner.reserve_for(tenant, jobs.len());
        let reserved = permits.len();
        let limits = self.inner.quotas.ingest_limits(tenant);
        let (meta, claimed) = self
            .inner
            .store
            .create_blob_and_claim(blob, jobs, reserved, limits, idle)
            .await
            .map_err(|e| {
                self.inner.quotas.release(tenant, reserved);
                match e {
                    StoreError::ParentNotFound { id, .. } => {
                        EngineError::UnknownParent { id: id.to_string() }
                    }
                    StoreError::QuotaExceeded {
                        quota,
                        used,
                        adding,
                        limit,
                    } => quota_refusal(tenant, quota, used, adding, limit),
                    other => other.into(),
                }
            })?;
        self.inner.hand_over(tenant, claimed, permits);
        Ok(meta)
    }

    /// Replays a dead letter as a new attempt of its job. `scope` is who
    /// asks (`None`: the operator); another tenant's dead letter is not found.
    pub async fn replay_dead_letter(
        &self,
        id: &str,
        scope: Option<&str>,
        actor: &str,
    ) -> Result<Job, EngineError> {
        let not_found = || EngineError::NotFound(format!("dead letter {id}"));
        let parsed = id.parse().map_err(|_| not_found())?;
        let letter = self
            .inner
            .store
            .get_dead_letter(parsed)?
            .filter(|l| scope.is_none_or(|t| t == l.job.tenant))
            .ok_or_else(not_found)?;
        // A job that found a budget used up runs again once it has reset.
        if letter.reason.starts_with("budget-exceeded") {
            let limits = self.inner.quotas.window_limits(&letter.job.tenant);
            host::budget_left(&self.inner, &letter.job.tenant, &limits)?;
        }
        let mut entry = audit(actor, "dead-letter.replay", id, "");
        entry.tenant = Some(letter.job.tenant.clone());
        let job = self
            .inner
            .store
            .replay_dead_letter(parsed, entry)
            .await
            .map_err(|e| match e {
                StoreError::DeadLetterNotFound { .. } => {
                    EngineError::NotFound(format!("dead letter {id}"))
                }
                StoreError::AlreadyReplayed { .. } => {
                    EngineError::Conflict(format!("dead letter {id} was already replayed"))
                }
                other => other.into(),
            })?;
        Ok(job)
    }

    /// Runs `plugin@version` again on an existing blob as a new job, e.g.
    /// after an upgrade (backfill). With `replay_effects`, every effect call
    /// the new run makes is answered from the responses recorded in the
    /// lineage of earlier runs of the same plugin name on this blob, and a
    /// call with no recorded response fails instead of calling out: a re-run
    /// repeats no paid or side-effecting call. The new output is recorded
    /// beside the old one, with the new version in its lineage. The mode is
    /// stored with the job, so it holds across retries and restarts.
    pub async fn rerun(
        &self,
        tenant: &str,
        blob: &str,
        plugin: &str,
        version: &str,
        replay_effects: bool,
        actor: &str,
    ) -> Result<Job, EngineError> {
        let blob_id: BlobId = blob.parse().map_err(|_| EngineError::InvalidBlobId {
            id: blob.to_owned(),
        })?;
        let view = self
            .plugin(plugin, version, Some(tenant))
            .ok_or_else(|| EngineError::PluginNotFound(format!("{plugin}@{version}")))?;
        let meta = self
            .inner
            .store
            .get_blob(tenant, blob_id)?
            .ok_or_else(|| EngineError::NotFound(format!("blob {blob}")))?;
        if !view
            .manifest
            .inputs
            .iter()
            .any(|s| s.as_str() == meta.schema)
        {
            return Err(EngineError::Conflict(format!(
                "plugin {plugin}@{version} does not accept `{}` blobs",
                meta.schema
            )));
        }
        let spec = reyna_store::JobSpec {
            plugin: plugin.to_owned(),
            version: version.to_owned(),
            subject: format!("blob.created.{}", meta.schema),
        };
        let mode = if replay_effects {
            "replaying recorded effects"
        } else {
            "calling effects"
        };
        // The job carries the mode: it survives a restart, and the recorded
        // responses are read from lineage when it runs.
        let mut entry = audit(
            actor,
            "blob.rerun",
            blob,
            &format!("{plugin}@{version}, {mode}"),
        );
        entry.tenant = Some(tenant.to_owned());
        Ok(self
            .inner
            .store
            .enqueue_job(tenant, blob_id, spec, replay_effects, entry)
            .await?)
    }

    /// Stores an API token (its hash only) and its `token.create` audit
    /// entry in one transaction.
    pub async fn create_token(
        &self,
        token: reyna_store::NewToken,
        actor: &str,
    ) -> Result<reyna_store::TokenRecord, EngineError> {
        let detail = format!(
            "tenant {} role {:?} name {:?}",
            token.tenant, token.role, token.name
        )
        .to_lowercase();
        // The target (the new token's id) is filled in by the store.
        let mut entry = audit(actor, "token.create", "", &detail);
        entry.tenant = Some(token.tenant.clone());
        self.inner
            .store
            .put_token(token, entry)
            .await
            .map_err(|e| match e {
                StoreError::TenantNotFound { id } => EngineError::TenantNotFound(id),
                other => other.into(),
            })
    }

    /// Revokes a token with its `token.delete` audit entry, in one
    /// transaction; false when there is no such token.
    pub async fn delete_token(&self, id: &str, actor: &str) -> Result<bool, EngineError> {
        let Ok(parsed) = id.parse::<reyna_store::TokenId>() else {
            return Ok(false);
        };
        let mut entry = audit(actor, "token.delete", id, "");
        entry.tenant = self.inner.store.get_token(parsed)?.map(|t| t.tenant);
        Ok(self.inner.store.delete_token(parsed, entry).await?)
    }

    /// A token by its record id (never its secret: only the hash is stored).
    pub fn token(&self, id: &str) -> Result<Option<reyna_store::TokenRecord>, EngineError> {
        let Ok(parsed) = id.parse::<reyna_store::TokenId>() else {
            return Ok(None);
        };
        Ok(self.inner.store.get_token(parsed)?)
    }

    /// The token whose secret hashes to `hash`.
    pub fn find_token(&self, hash: &str) -> Result<Option<reyna_store::TokenRecord>, EngineError> {
        Ok(self.inner.store.find_token_by_hash(hash)?)
    }

    /// Tokens of one tenant, or all.
    pub fn list_tokens(
        &self,
        tenant: Option<&str>,
    ) -> Result<Vec<reyna_store::TokenRecord>, EngineError> {
        Ok(self.inner.store.list_tokens(tenant)?)
    }

    /// Up to `limit` audit entries after sequence `after`, oldest first:
    /// all (`tenant` `None`, the operator's view) or those about one tenant.
    pub fn audit_log(
        &self,
        after: u64,
        limit: usize,
        tenant: Option<&str>,
    ) -> Result<Vec<reyna_store::AuditEntry>, EngineError> {
        Ok(self.inner.store.list_audit(after, limit, tenant)?)
    }

    /// Changes each time the outcome of a job is recorded (completed, with or
    /// without outputs; retried; dead-lettered), so a waiter can look again.
    pub fn watch_finished(&self) -> watch::Receiver<u64> {
        self.inner.job_finished.subscribe()
    }

    /// Waits until no job is pending or running, at most `timeout`. Returns
    /// whether the engine became idle. Jobs waiting for a retry count as pending.
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        let mut finished = self.inner.job_finished.subscribe();
        let mut jobs = self.inner.store.watch_jobs();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            finished.borrow_and_update();
            jobs.borrow_and_update();
            let in_flight = self
                .inner
                .in_flight
                .load(std::sync::atomic::Ordering::SeqCst);
            if let Ok(c) = self.inner.store.counts()
                && c.jobs_pending == 0
                && c.jobs_running == 0
                && in_flight == 0
            {
                return true;
            }
            tokio::select! {
                _ = finished.changed() => {}
                _ = jobs.changed() => {}
                // Retries wake nobody when they come due; look again now and then.
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = tokio::time::sleep_until(deadline) => return false,
            }
        }
    }
}

/// The audit entry of an operator action, recorded with the action itself.
fn audit(actor: &str, action: &str, target: &str, detail: &str) -> reyna_store::NewAudit {
    reyna_store::NewAudit {
        actor: actor.to_owned(),
        action: action.to_owned(),
        target: target.to_owned(),
        detail: detail.to_owned(),
        ..reyna_store::NewAudit::default()
    }
}
