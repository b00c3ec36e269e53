use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;

use redb::{Database, ReadTransaction, ReadableDatabase};
use tokio::sync::{Semaphore, watch};

use crate::error::{Result, StoreError};
use crate::model::*;
use crate::ops::{self, WriteOp};
use crate::read;
use crate::usage::*;
use crate::writer::{self, Announce, Queued, Request};

/// Handle to the store. Cheap to clone; all clones share one database and
/// one writer thread, which stops (after finishing its current batch) when
/// the last clone is dropped.
///
/// Writes are `async`: they queue an operation for the writer thread and
/// resolve once the commit that contains it is durable. Dropping the future
/// after the operation was queued does not cancel it. Reads are plain
/// functions on a fresh read transaction (a consistent snapshot).
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: Arc<Database>,
    path: PathBuf,
    queue: Option<std::sync::mpsc::Sender<Box<dyn Queued>>>,
    slots: Arc<Semaphore>,
    /// [`writer::QUEUE_BYTES`], one permit a byte.
    queued_bytes: Arc<Semaphore>,
    writer: Option<JoinHandle<()>>,
    events: watch::Receiver<u64>,
    jobs: watch::Receiver<u64>,
    stats: Arc<writer::Stats>,
    clock: crate::Clock,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the queue ends the writer loop; joining it releases the
        // database file so it can be reopened at once.
        self.queue.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// The page cache [`Store::open`] uses: redb's own default.
pub const DEFAULT_CACHE_BYTES: usize = 1024 * 1024 * 1024;

impl Store {
    /// Opens (or creates) the database at `path` with a page cache of
    /// [`DEFAULT_CACHE_BYTES`] and starts the writer.
    ///
    /// Refuses a file written in a newer format with
    /// [`StoreError::UnsupportedFormat`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// [`Store::open`] with a page cache of at most `cache_bytes`. The cache
    /// keeps the pages redb reads and writes, and is most of the store's
    /// memory once the file outgrows it; pages that miss it are read again
    /// through the operating system's file cache.
    pub fn open_with_cache(path: impl AsRef<Path>, cache_bytes: usize) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let db = Arc::new(
            redb::Builder::new()
                .set_cache_size(cache_bytes)
                .create(&path)?,
        );
        crate::migrate::init(&db)?;
        let last_event = read::last_event_seq(&db.begin_read()?)?;
        let (events_tx, events) = watch::channel(last_event);
        let (jobs_tx, jobs) = watch::channel(0);
        let (queue, rx) = std::sync::mpsc::channel();
        let writer_db = Arc::clone(&db);
        let stats = Arc::new(writer::Stats::default());
        let clock = crate::Clock::default();
        let announce = Announce {
            events: events_tx,
            jobs: jobs_tx,
            stats: Arc::clone(&stats),
            clock: clock.clone(),
        };
        let writer = std::thread::Builder::new()
            .name("reyna-store-writer".to_owned())
            .spawn(move || writer::run(writer_db, rx, announce))
            .map_err(|e| StoreError::from(redb::Error::from(e)))?;
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                path,
                queue: Some(queue),
                slots: Arc::new(Semaphore::new(writer::QUEUE_DEPTH)),
                queued_bytes: Arc::new(Semaphore::new(writer::QUEUE_BYTES)),
                writer: Some(writer),
                events,
                jobs,
                stats,
                clock,
            }),
        })
    }

    /// The clock every write's time comes from.
    pub fn clock(&self) -> &crate::Clock {
        &self.inner.clock
    }

    /// Now, by [`Self::clock`] (ms since the epoch).
    pub fn now_ms(&self) -> u64 {
        self.inner.clock.now_ms()
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    async fn submit<O: WriteOp>(&self, op: O) -> Result<O::Output> {
        let queue = self.inner.queue.as_ref().ok_or(StoreError::Closed)?;
        let slot = Arc::clone(&self.inner.slots)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)?;
        // Bounded by count and by bytes; the semaphores are fair, so a large
        // write waits its turn without being overtaken forever.
        let weight = op.weight().clamp(1, writer::QUEUE_BYTES) as u32;
        let bytes = Arc::clone(&self.inner.queued_bytes)
            .acquire_many_owned(weight)
            .await
            .map_err(|_| StoreError::Closed)?;
        let (request, reply) = Request::queue(op, (slot, bytes));
        queue.send(request).map_err(|_| StoreError::Closed)?;
        reply.await.map_err(|_| StoreError::Closed)?
    }

    fn read(&self) -> Result<ReadTransaction> {
        Ok(self.inner.db.begin_read()?)
    }

    /// Follows commits that appended events: the value is the newest event
    /// sequence, so a live stream can wake and call [`Self::events_after`].
    pub fn watch_events(&self) -> watch::Receiver<u64> {
        self.inner.events.clone()
    }

    /// Changes whenever a commit made a job pending, so a dispatcher sleeping
    /// until [`Self::next_due_at`] can wake early.
    pub fn watch_jobs(&self) -> watch::Receiver<u64> {
        self.inner.jobs.clone()
    }

    // ---- blobs -------------------------------------------------------------

    /// Stores a blob, its `blob.created.<schema>` event and one pending job
    /// per spec (due now), in one transaction.
    ///
    /// Every parent must exist in the same tenant, else
    /// [`StoreError::ParentNotFound`] and nothing is stored.
    pub async fn create_blob(&self, blob: NewBlob, jobs: Vec<JobSpec>) -> Result<BlobMeta> {
        Ok(self
            .create_blob_and_claim(blob, jobs, 0, IngestLimits::default(), false)
            .await?
            .0)
    }

    /// [`Self::create_blob`], with the first `claim` jobs stored already
    /// claimed (running, as [`Self::claim_due_jobs`] leaves them) and
    /// returned, in the same transaction: a dispatcher with `claim` free
    /// workers runs them at once, without a claim of its own. The other jobs
    /// are pending; all are, while any job is due and waiting (they take
    /// their turn in [`Self::claim_due_jobs`]). A crash before they finish
    /// leaves them running, and [`Self::recover_running`] makes them due again.
    ///
    /// A blob that would take its tenant past `limits` (stored bytes, or
    /// jobs waiting, counting the jobs that would not be claimed) is refused
    /// with [`StoreError::QuotaExceeded`] and nothing is stored.
    ///
    /// `idle_tenant`: the caller knows the tenant has no job claimed; if it
    /// has none due either, its jobs are claimed even while other tenants'
    /// jobs wait (an idle tenant's turn comes next in any case).
    pub async fn create_blob_and_claim(
        &self,
        blob: NewBlob,
        jobs: Vec<JobSpec>,
        claim: usize,
        limits: IngestLimits,
        idle_tenant: bool,
    ) -> Result<(BlobMeta, Vec<Job>)> {
        // Hash here, on the caller's thread, so the single writer only writes.
        let digest = Digest::of(&blob.data);
        self.submit(ops::CreateBlob {
            blob,
            digest,
            jobs,
            claim,
            limits,
            idle_tenant,
        })
        .await
    }

    /// The blob's metadata, if it exists in `tenant` (another tenant's blob
    /// reads as `None`).
    pub fn get_blob(&self, tenant: &str, id: BlobId) -> Result<Option<BlobMeta>> {
        read::get_blob(&self.read()?, tenant, id)
    }

    /// The blob's bytes, checked against its digest
    /// ([`StoreError::Corrupt`] if they no longer match).
    pub fn get_blob_data(&self, tenant: &str, id: BlobId) -> Result<Option<Vec<u8>>> {
        Ok(self.get_blob_with_data(tenant, id)?.map(|(_, data)| data))
    }

    /// The blob's metadata and bytes, from one snapshot, the bytes checked
    /// against the digest as in [`Self::get_blob_data`]: one read
    /// transaction and one metadata lookup where the two calls take two.
    pub fn get_blob_with_data(
        &self,
        tenant: &str,
        id: BlobId,
    ) -> Result<Option<(BlobMeta, Vec<u8>)>> {
        read::get_blob_with_data(&self.read()?, tenant, id)
    }

    /// A page of a tenant's blobs, oldest first, optionally of one schema.
    /// `cursor` is a `next_cursor` from the previous page
    /// ([`StoreError::BadCursor`] otherwise); `limit` is capped at 1000.
    pub fn list_blobs(
        &self,
        tenant: &str,
        schema: Option<&str>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<BlobMeta>> {
        read::list_blobs(&self.read()?, tenant, schema, cursor, limit)
    }

    /// The blobs derived directly from `id`.
    pub fn children(&self, tenant: &str, id: BlobId) -> Result<Vec<BlobMeta>> {
        read::children(&self.read()?, tenant, id)
    }

    /// The lineage graph around `id` to `depth` hops, without payloads; `None`
    /// if the blob is not in `tenant`. Depth is capped at 1024 and the graph
    /// at 10 000 nodes (then `truncated` is set).
    pub fn lineage(
        &self,
        tenant: &str,
        id: BlobId,
        direction: Direction,
        depth: u32,
    ) -> Result<Option<Lineage>> {
        read::lineage(&self.read()?, tenant, id, direction, depth)
    }

    // ---- jobs --------------------------------------------------------------

    /// Commits a successful run in one transaction: the outputs (parents =
    /// the input blob + `extra_parents`, hop = input hop + 1, producer from
    /// the job and `completion`), their edges and events, the next jobs, the
    /// idempotency record, and the job marked done.
    ///
    /// Output ids are [`BlobId::derived`] from (job, index). Completing a job
    /// that is already done changes nothing and returns the stored outputs.
    /// A pending job may be completed too (a worker that finished after a
    /// restart made its job pending again); a dead one cannot
    /// ([`StoreError::JobState`]).
    /// With [`Completion::max_tree_blobs`] set, outputs that would pass the
    /// tree's budget are not stored and the job is dead instead
    /// ([`Completed::OverTreeBudget`]; this method then returns no outputs).
    pub async fn complete_job(&self, job: JobId, completion: Completion) -> Result<Vec<BlobMeta>> {
        Ok(
            match self.complete_job_and_claim(job, completion, 0).await? {
                Completed::Stored { outputs, .. } => outputs,
                Completed::OverTreeBudget { .. } => Vec::new(),
            },
        )
    }

    /// [`Self::complete_job`], with the first `claim` next jobs (in output
    /// order) stored already claimed (running) and returned, in the same
    /// transaction, so a chain's next step runs without a claim of its own;
    /// none while any job is due and waiting. Completing a job that is
    /// already done claims nothing.
    pub async fn complete_job_and_claim(
        &self,
        job: JobId,
        completion: Completion,
        claim: usize,
    ) -> Result<Completed> {
        let digests = completion
            .outputs
            .iter()
            .map(|o| Digest::of(&o.data))
            .collect();
        let idempotency = completion
            .idempotency_key
            .as_ref()
            .map(crate::tables::idem_digest);
        self.submit(ops::CompleteJob {
            job,
            completion,
            digests,
            claim,
            idempotency,
        })
        .await
    }

    /// Records a failed run: with `retry_at`, the next attempt is pending
    /// then; without, the job is dead and a dead letter (job, reason, cost,
    /// time) plus a `job.failed.<plugin>` event are stored.
    pub async fn fail_job(&self, job: JobId, failure: FailedRun) -> Result<FailOutcome> {
        self.submit(ops::FailJob { job, failure }).await
    }

    /// Marks up to `limit` pending jobs due at or before `now` as running and
    /// returns them: round-robin across the tenants with due jobs (one of
    /// each in turn, earliest due first within a tenant), starting after
    /// tenant `after` (pass the last tenant the previous claim returned).
    pub async fn claim_due_jobs(
        &self,
        now: u64,
        limit: usize,
        after: Option<String>,
    ) -> Result<Vec<Job>> {
        let policy = ClaimPolicy {
            after: after.map(|tenant| ClaimCursor { tenant, left: 0 }),
            ..ClaimPolicy::default()
        };
        Ok(self.claim_due_jobs_fairly(now, limit, policy).await?.0)
    }

    /// [`Self::claim_due_jobs`] weighted and capped per tenant: deficit
    /// round-robin, each tenant claiming up to its weight per turn and none
    /// past its cap, resuming at `policy.after`. Returns the jobs and where
    /// this claim stopped (pass it as the next claim's `after`).
    pub async fn claim_due_jobs_fairly(
        &self,
        now: u64,
        limit: usize,
        policy: ClaimPolicy,
    ) -> Result<(Vec<Job>, Option<ClaimCursor>)> {
        self.submit(ops::ClaimDue { now, limit, policy }).await
    }

    /// Meters effect usage (calls, reported units) for `tenant` now, and
    /// announces each of `limits` it takes to 80% or 100% of its window
    /// (`tenant.budget.warning` / `tenant.budget.exhausted` events and audit
    /// entries). Returns those crossings.
    pub async fn record_usage(
        &self,
        tenant: &str,
        usage: Usage,
        limits: Vec<WindowLimit>,
    ) -> Result<Vec<LimitCrossing>> {
        self.submit(ops::RecordUsage {
            tenant: tenant.to_owned(),
            usage,
            limits,
        })
        .await
    }

    /// `tenant`'s usage, one record per `granularity` period from the one
    /// holding `from` up to (not including) `to`; periods with no usage are
    /// left out.
    pub fn usage(
        &self,
        tenant: &str,
        granularity: Granularity,
        from: u64,
        to: u64,
    ) -> Result<Vec<UsagePeriod>> {
        read::usage(&self.read()?, tenant, granularity, from, to)
    }

    /// `tenant`'s usage in the `granularity` period that holds `at`.
    pub fn usage_at(&self, tenant: &str, granularity: Granularity, at: u64) -> Result<Usage> {
        let start = granularity.start(at);
        Ok(
            read::usage(&self.read()?, tenant, granularity, start, start + 1)?
                .pop()
                .map(|p| p.usage)
                .unwrap_or_default(),
        )
    }

    /// What `tenant` holds now: bytes stored and jobs waiting.
    pub fn holdings(&self, tenant: &str) -> Result<Holdings> {
        read::holdings(&self.read()?, tenant)
    }

    /// Makes every running job pending and due now; call once at startup,
    /// before any worker runs. Returns how many were recovered.
    pub async fn recover_running(&self) -> Result<usize> {
        self.submit(ops::RecoverRunning).await
    }

    /// How many derived blobs descend from the ingested blob `tree` (the
    /// count its budget is checked against; see [`Job::tree`]).
    pub fn tree_size(&self, tree: BlobId) -> Result<u64> {
        read::tree_size(&self.read()?, tree)
    }

    /// When the earliest pending job is due.
    pub fn next_due_at(&self) -> Result<Option<u64>> {
        read::next_due_at(&self.read()?)
    }

    /// A job by id.
    pub fn get_job(&self, id: JobId) -> Result<Option<Job>> {
        read::job(&self.read()?, id)
    }

    /// The jobs enqueued for a blob of `tenant`.
    pub fn jobs_for_blob(&self, tenant: &str, blob: BlobId) -> Result<Vec<Job>> {
        read::jobs_for_blob(&self.read()?, tenant, blob)
    }

    // ---- dead letters ------------------------------------------------------

    /// A page of dead letters (replayed ones included), oldest first, of one
    /// tenant or all.
    pub fn list_dead_letters(
        &self,
        tenant: Option<&str>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<DeadLetter>> {
        read::list_dead_letters(&self.read()?, tenant, cursor, limit)
    }

    /// What the guest logged in each attempt of `job` that logged
    /// something, oldest attempt first.
    pub fn job_logs(&self, job: JobId) -> Result<Vec<JobLog>> {
        read::job_logs(&self.read()?, job)
    }

    /// A dead letter by id.
    pub fn get_dead_letter(&self, id: DeadLetterId) -> Result<Option<DeadLetter>> {
        read::dead_letter(&self.read()?, id)
    }

    /// A page of a tenant's jobs, of one state or of all (ordered by state,
    /// then creation). A cursor not from a previous page is
    /// [`StoreError::BadCursor`]; `limit` is capped at 1000.
    pub fn list_jobs(
        &self,
        tenant: &str,
        state: Option<JobState>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Job>> {
        read::list_jobs(&self.read()?, tenant, state, cursor, limit)
    }

    /// Enqueues a new job (new id, attempt 1, pending now) running `spec` on
    /// an existing blob of `tenant`: a re-run, e.g. after a plugin upgrade,
    /// with [`Job::replay_effects`] as given. Another tenant's blob is
    /// [`StoreError::BlobNotFound`].
    ///
    /// `audit` is recorded in the same transaction, its detail followed by
    /// the new job's id.
    pub async fn enqueue_job(
        &self,
        tenant: &str,
        blob: BlobId,
        spec: JobSpec,
        replay_effects: bool,
        audit: NewAudit,
    ) -> Result<Job> {
        self.submit(ops::Audited {
            op: ops::EnqueueJob {
                tenant: tenant.to_owned(),
                blob,
                spec,
                replay_effects,
            },
            audit,
            describe: |job: &Job, entry| {
                append_detail(entry, &format!("job {}", job.id));
                true
            },
        })
        .await
    }

    /// Runs a dead-lettered job again: same job id, next attempt, pending
    /// now; the dead letter is marked replayed (a second replay is refused).
    /// `audit` is recorded in the same transaction, its detail followed by
    /// the job's id.
    pub async fn replay_dead_letter(&self, id: DeadLetterId, audit: NewAudit) -> Result<Job> {
        self.submit(ops::Audited {
            op: ops::ReplayDeadLetter { id },
            audit,
            describe: |job: &Job, entry| {
                append_detail(entry, &format!("job {}", job.id));
                true
            },
        })
        .await
    }

    // ---- idempotency -------------------------------------------------------

    /// The outputs an earlier completion of `tenant` recorded under `key`.
    /// Scoped to the tenant so a lookup can never reveal another tenant's
    /// data.
    pub fn find_idempotent(&self, tenant: &str, key: &IdemKey) -> Result<Option<Vec<BlobMeta>>> {
        read::find_idempotent(&self.read()?, tenant, key)
    }

    // ---- events ------------------------------------------------------------

    /// Up to `limit` events with a sequence above `after`, of one tenant (a
    /// live stream) or of all (an outbox).
    pub fn events_after(
        &self,
        tenant: Option<&str>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Event>> {
        read::events_after(&self.read()?, tenant, after, limit)
    }

    // ---- registries --------------------------------------------------------

    /// Registers a schema. Registering the same document again returns the
    /// existing record; a different document under a taken id is
    /// [`StoreError::SchemaConflict`]. `audit` is recorded in the same
    /// transaction when the schema is new.
    pub async fn put_schema(
        &self,
        id: impl Into<String>,
        json: impl Into<String>,
        audit: NewAudit,
    ) -> Result<SchemaRecord> {
        let (record, _) = self
            .submit(ops::Audited {
                op: ops::PutSchema {
                    id: id.into(),
                    json: json.into(),
                },
                audit,
                describe: |(_, created), _| *created,
            })
            .await?;
        Ok(record)
    }

    /// A schema by id.
    pub fn get_schema(&self, id: &str) -> Result<Option<SchemaRecord>> {
        read::get_schema(&self.read()?, id)
    }

    /// Every schema, by id.
    pub fn list_schemas(&self) -> Result<Vec<SchemaRecord>> {
        read::list_schemas(&self.read()?)
    }

    /// Uploads a plugin version in one transaction: the component `bytes`
    /// (kept once per digest; `record.digest` must be theirs), the record,
    /// and, when the record is enabled, every other version of the name
    /// disabled; `audit` is recorded with them. The same `name@version` with
    /// the same digest changes nothing (`changed` false, no audit entry);
    /// with another digest it is [`StoreError::PluginConflict`].
    pub async fn install_plugin(
        &self,
        record: PluginRecord,
        bytes: Vec<u8>,
        audit: NewAudit,
    ) -> Result<PluginChange> {
        let digest = Digest::of(&bytes);
        if record.digest != digest {
            return Err(StoreError::ComponentDigestMismatch {
                plugin: format!("{}@{}", record.name, record.version),
                named: record.digest,
                actual: digest,
            });
        }
        self.submit(ops::Audited {
            op: ops::InstallPlugin {
                record,
                bytes,
                digest,
            },
            audit,
            describe: |change: &PluginChange, _| change.changed,
        })
        .await
    }

    /// A plugin version.
    pub fn get_plugin(&self, name: &str, version: &str) -> Result<Option<PluginRecord>> {
        read::get_plugin(&self.read()?, name, version)
    }

    /// Every plugin version, by name then version text.
    pub fn list_plugins(&self) -> Result<Vec<PluginRecord>> {
        read::list_plugins(&self.read()?)
    }

    /// Enables or disables a plugin version; enabling one disables the
    /// name's other versions, so one version per name is live. `audit` is
    /// recorded in the same transaction.
    pub async fn set_plugin_enabled(
        &self,
        name: &str,
        version: &str,
        enabled: bool,
        audit: NewAudit,
    ) -> Result<PluginChange> {
        self.submit(ops::Audited {
            op: ops::UpdatePlugin {
                name: name.to_owned(),
                version: version.to_owned(),
                enabled: Some(enabled),
                config: None,
            },
            audit,
            describe: |_, _| true,
        })
        .await
    }

    /// Replaces a plugin version's operator config; `audit` is recorded in
    /// the same transaction.
    pub async fn set_plugin_config(
        &self,
        name: &str,
        version: &str,
        config: BTreeMap<String, String>,
        audit: NewAudit,
    ) -> Result<PluginRecord> {
        let change = self
            .submit(ops::Audited {
                op: ops::UpdatePlugin {
                    name: name.to_owned(),
                    version: version.to_owned(),
                    enabled: None,
                    config: Some(config),
                },
                audit,
                describe: |_, _| true,
            })
            .await?;
        Ok(change.record)
    }

    /// Stores component bytes under their sha256 (idempotent) and returns it.
    pub async fn put_component(&self, bytes: Vec<u8>) -> Result<Digest> {
        self.submit(ops::PutComponent { bytes }).await
    }

    /// Component bytes by digest, checked against it
    /// ([`StoreError::CorruptComponent`] if they no longer match).
    pub fn get_component(&self, digest: &Digest) -> Result<Option<Vec<u8>>> {
        read::get_component(&self.read()?, digest)
    }

    /// Stores an API token (its hash only); a hash already stored is
    /// [`StoreError::TokenConflict`]. `audit` is recorded in the same
    /// transaction, with the new token's id as its target.
    pub async fn put_token(&self, token: NewToken, audit: NewAudit) -> Result<TokenRecord> {
        self.submit(ops::Audited {
            op: ops::PutToken { token },
            audit,
            describe: |record: &TokenRecord, entry| {
                entry.target = record.id.to_string();
                true
            },
        })
        .await
    }

    /// A token by its record id.
    pub fn get_token(&self, id: TokenId) -> Result<Option<TokenRecord>> {
        read::get_token(&self.read()?, id)
    }

    /// The token whose secret hashes to `hash`.
    pub fn find_token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>> {
        read::find_token_by_hash(&self.read()?, hash)
    }

    /// Tokens of one tenant or all.
    pub fn list_tokens(&self, tenant: Option<&str>) -> Result<Vec<TokenRecord>> {
        read::list_tokens(&self.read()?, tenant)
    }

    /// Deletes a token; false if there was none. `audit` is recorded in the
    /// same transaction when a token was deleted.
    pub async fn delete_token(&self, id: TokenId, audit: NewAudit) -> Result<bool> {
        self.submit(ops::Audited {
            op: ops::DeleteToken { id },
            audit,
            describe: |deleted, _| *deleted,
        })
        .await
    }

    /// Records an operator action.
    pub async fn append_audit(&self, entry: NewAudit) -> Result<AuditEntry> {
        self.submit(ops::AppendAudit { entry }).await
    }

    /// Up to `limit` audit entries after sequence `after`, oldest first:
    /// every entry, or only those about `tenant`.
    pub fn list_audit(
        &self,
        after: u64,
        limit: usize,
        tenant: Option<&str>,
    ) -> Result<Vec<AuditEntry>> {
        read::list_audit(&self.read()?, after, limit, tenant)
    }

    // ---- tenants and installations -----------------------------------------

    /// Creates a tenant; an id in use (or used before: a deleted tenant's
    /// id is never reused) is [`StoreError::TenantExists`].
    pub async fn put_tenant(&self, id: &str, name: &str, audit: NewAudit) -> Result<TenantRecord> {
        self.submit(ops::Audited {
            op: ops::PutTenant {
                id: id.to_owned(),
                name: name.to_owned(),
            },
            audit,
            describe: |_, _| true,
        })
        .await
    }

    /// Renames a live tenant and/or replaces its quota overrides (`None`
    /// leaves that part as it is), with its audit entry, in one transaction.
    pub async fn update_tenant(
        &self,
        id: &str,
        name: Option<String>,
        quotas: Option<crate::Quotas>,
        audit: NewAudit,
    ) -> Result<TenantRecord> {
        self.submit(ops::Audited {
            op: ops::UpdateTenant {
                id: id.to_owned(),
                name,
                quotas,
            },
            audit,
            describe: |_, _| true,
        })
        .await
    }

    /// Deletes a tenant in one transaction: its tokens are revoked, its
    /// installations and secrets removed, its own plugins disabled, and its
    /// record kept as a tombstone. Its blobs stay (unreachable by any
    /// token: no tenant can take its id again).
    pub async fn delete_tenant(&self, id: &str, audit: NewAudit) -> Result<TenantDeleted> {
        self.submit(ops::Audited {
            op: ops::DeleteTenant { id: id.to_owned() },
            audit,
            describe: |done: &TenantDeleted, entry| {
                append_detail(
                    entry,
                    &format!(
                        "{} tokens revoked, {} installations removed, {} plugin versions disabled",
                        done.tokens, done.installations, done.plugins
                    ),
                );
                true
            },
        })
        .await
    }

    /// A tenant's record, deleted or not.
    pub fn get_tenant(&self, id: &str) -> Result<Option<TenantRecord>> {
        read::get_tenant(&self.read()?, id)
    }

    /// Every tenant record (deleted ones included), by id.
    pub fn list_tenants(&self) -> Result<Vec<TenantRecord>> {
        read::list_tenants(&self.read()?)
    }

    /// Changes one tenant's installation of plugin `plugin` (creating its
    /// record, enabled as `default_enabled` says, when it has none), with
    /// `audit` in the same transaction when given.
    pub async fn update_installation(
        &self,
        tenant: &str,
        plugin: &str,
        default_enabled: bool,
        change: InstallationChange,
        audit: Option<NewAudit>,
    ) -> Result<Installation> {
        let op = ops::UpdateInstallation {
            tenant: tenant.to_owned(),
            plugin: plugin.to_owned(),
            default_enabled,
            change,
        };
        match audit {
            Some(audit) => {
                self.submit(ops::Audited {
                    op,
                    audit,
                    describe: |_, _| true,
                })
                .await
            }
            None => self.submit(op).await,
        }
    }

    /// One tenant's installation record of a plugin, if it has one.
    pub fn get_installation(&self, tenant: &str, plugin: &str) -> Result<Option<Installation>> {
        read::get_installation(&self.read()?, tenant, plugin)
    }

    /// Every installation record (of one tenant, or all).
    pub fn list_installations(&self, tenant: Option<&str>) -> Result<Vec<Installation>> {
        read::list_installations(&self.read()?, tenant)
    }

    /// A secret's sealed value at `version`, if kept.
    pub fn get_secret(
        &self,
        tenant: &str,
        plugin: &str,
        name: &str,
        version: u32,
    ) -> Result<Option<Vec<u8>>> {
        read::get_secret(&self.read()?, tenant, plugin, name, version)
    }

    /// Every sealed secret value, with its key (for checks and tests).
    #[allow(clippy::type_complexity)]
    pub fn list_sealed_secrets(&self) -> Result<Vec<((String, String, String, u32), Vec<u8>)>> {
        read::list_sealed_secrets(&self.read()?)
    }

    /// Replaces every sealed secret with its re-encryption under a new
    /// master key, in one transaction: `values` holds each secret's key,
    /// the sealed bytes it was read with and the new ones. A secret added,
    /// removed or changed since it was read refuses the whole operation
    /// ([`StoreError::Reseal`]); nothing is changed then. Returns how many
    /// it replaced.
    #[allow(clippy::type_complexity)]
    pub async fn reseal_secrets(
        &self,
        values: Vec<((String, String, String, u32), Vec<u8>, Vec<u8>)>,
    ) -> Result<usize> {
        self.submit(ops::ResealSecrets { values }).await
    }

    /// Puts a running job back in the queue until `due_at` without
    /// counting an attempt; `note` becomes its last error.
    pub async fn defer_job(&self, job: JobId, due_at: u64, note: String) -> Result<Job> {
        self.submit(ops::DeferJob { job, due_at, note }).await
    }

    // ---- health ------------------------------------------------------------

    /// Totals of the writer since open: how well group commit is batching
    /// and where its time goes (for metrics and benches).
    pub fn writer_stats(&self) -> WriterStats {
        let s = &self.inner.stats;
        WriterStats {
            commits: s.commits.load(Ordering::Relaxed),
            ops: s.ops.load(Ordering::Relaxed),
            failed_commits: s.failed_commits.load(Ordering::Relaxed),
            apply_us: s.apply_us.load(Ordering::Relaxed),
            commit_us: s.commit_us.load(Ordering::Relaxed),
        }
    }

    /// How many of each thing the store holds (constant time).
    pub fn counts(&self) -> Result<Counts> {
        read::counts(&self.read()?)
    }

    /// Scans every table and cross-checks them: each blob's bytes match its
    /// digest and it is indexed, has its edges and exactly one created event;
    /// each job's state agrees with the queues and counters; each done job's
    /// outputs exist and no other blob names it as producer. Reads
    /// everything, so it is for tests and `reyna` maintenance commands.
    pub fn check(&self) -> Result<CheckReport> {
        read::check(&self.read()?)
    }
}

/// Adds `more` to an audit entry's detail, after what the caller wrote.
fn append_detail(entry: &mut NewAudit, more: &str) {
    if entry.detail.is_empty() {
        entry.detail = more.to_owned();
    } else {
        entry.detail = format!("{}, {more}", entry.detail);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn queued_writes_are_bounded_by_bytes_as_well_as_count() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("q.redb")).unwrap();
        // Writes already queued hold all but 1 KiB of the byte budget.
        let queued = Arc::clone(&store.inner.queued_bytes)
            .acquire_many_owned((writer::QUEUE_BYTES - 1024) as u32)
            .await
            .unwrap();
        let blob = |size: usize| NewBlob {
            tenant: "t".into(),
            schema: "s".into(),
            data: vec![b'x'; size],
            parents: vec![],
            hop: 0,
        };
        // A small write still fits...
        store.create_blob(blob(512), vec![]).await.unwrap();
        // ...a 2 KiB one waits for room, holding no queue slot's bytes.
        let waiting = tokio::spawn({
            let store = store.clone();
            async move { store.create_blob(blob(2048), vec![]).await }
        });
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        assert!(
            !waiting.is_finished(),
            "the write must wait for queue bytes"
        );
        assert_eq!(store.counts().unwrap().blobs, 1);
        drop(queued);
        let stored = tokio::time::timeout(std::time::Duration::from_secs(10), waiting)
            .await
            .expect("the write proceeds once bytes are free")
            .unwrap()
            .unwrap();
        assert_eq!(stored.size, 2048);
        assert_eq!(store.counts().unwrap().blobs, 2);
    }
}
