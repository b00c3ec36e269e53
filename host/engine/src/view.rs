//! What transports read through the engine: one tenant's blobs, lineage,
//! jobs and events ([`TenantView`], every read scoped to the tenant), and
//! the platform-wide reads an operator or the NATS outbox needs. Scans and
//! walks run on the blocking pool (`Inner::blocking`), never on the async
//! executor.

use std::sync::Arc;

use reyna_store::{BlobMeta, Direction, Event, Job, JobLog, JobState, Lineage, Page};
use reyna_types::{BlobId, JobId, TenantId};

use crate::error::EngineError;
use crate::inner::Inner;

/// One tenant's data, as the engine serves it. Made by
/// [`Engine::tenant`](crate::Engine::tenant); cheap to clone.
#[derive(Clone)]
pub struct TenantView {
    inner: Arc<Inner>,
    tenant: TenantId,
}

impl std::fmt::Debug for TenantView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantView")
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

impl TenantView {
    pub(crate) fn new(inner: Arc<Inner>, tenant: TenantId) -> Self {
        Self { inner, tenant }
    }

    /// The tenant.
    pub fn id(&self) -> &TenantId {
        &self.tenant
    }

    /// A blob's metadata; `None` when it is not this tenant's.
    pub fn blob(&self, id: BlobId) -> Result<Option<BlobMeta>, EngineError> {
        Ok(self.inner.store.get_blob(self.tenant.as_str(), id)?)
    }

    /// A blob's metadata and its checked bytes, from one snapshot.
    pub fn blob_with_data(&self, id: BlobId) -> Result<Option<(BlobMeta, Vec<u8>)>, EngineError> {
        Ok(self
            .inner
            .store
            .get_blob_with_data(self.tenant.as_str(), id)?)
    }

    /// A page of the tenant's blobs (of one schema, or all), oldest first.
    pub async fn blobs(
        &self,
        schema: Option<String>,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<Page<BlobMeta>, EngineError> {
        let tenant = self.tenant.clone();
        self.inner
            .blocking(move |store| {
                store.list_blobs(tenant.as_str(), schema.as_deref(), cursor.as_deref(), limit)
            })
            .await
    }

    /// A page of the tenant's blobs of `schema` whose data matches
    /// `filter`, oldest first: at most `limit`, found among at most the
    /// engine's `max_query_scan` blobs; past either bound `next_cursor`
    /// continues the scan.
    pub async fn find_blobs(
        &self,
        schema: &str,
        filter: crate::BlobFilter,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<Page<BlobMeta>, EngineError> {
        crate::host::find_blobs(
            &self.inner,
            self.tenant.as_str(),
            schema,
            filter,
            cursor,
            limit,
        )
        .await
    }

    /// The blobs derived directly from `id`.
    pub async fn children(&self, id: BlobId) -> Result<Vec<BlobMeta>, EngineError> {
        let tenant = self.tenant.clone();
        self.inner
            .blocking(move |store| store.children(tenant.as_str(), id))
            .await
    }

    /// The lineage graph around `id` to `depth` hops; `None` when the blob
    /// is not this tenant's.
    pub async fn lineage(
        &self,
        id: BlobId,
        direction: Direction,
        depth: u32,
    ) -> Result<Option<Lineage>, EngineError> {
        let tenant = self.tenant.clone();
        self.inner
            .blocking(move |store| store.lineage(tenant.as_str(), id, direction, depth))
            .await
    }

    /// A page of the tenant's jobs, of one state or all.
    pub async fn jobs(
        &self,
        state: Option<JobState>,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<Page<Job>, EngineError> {
        let tenant = self.tenant.clone();
        self.inner
            .blocking(move |store| {
                store.list_jobs(tenant.as_str(), state, cursor.as_deref(), limit)
            })
            .await
    }

    /// Every job of one of the tenant's blobs.
    pub async fn jobs_for_blob(&self, blob: BlobId) -> Result<Vec<Job>, EngineError> {
        let tenant = self.tenant.clone();
        self.inner
            .blocking(move |store| store.jobs_for_blob(tenant.as_str(), blob))
            .await
    }

    /// A job; `None` when it is not this tenant's.
    pub fn job(&self, id: JobId) -> Result<Option<Job>, EngineError> {
        Ok(self
            .inner
            .store
            .get_job(id)?
            .filter(|job| job.tenant == self.tenant.as_str()))
    }

    /// What the guest logged in each attempt of a job of this tenant (the
    /// attempts that logged something, oldest first); `None` when the job
    /// is not this tenant's.
    pub async fn job_logs(&self, id: JobId) -> Result<Option<Vec<JobLog>>, EngineError> {
        if self.job(id)?.is_none() {
            return Ok(None);
        }
        self.inner
            .blocking(move |store| store.job_logs(id))
            .await
            .map(Some)
    }

    /// Up to `limit` of the tenant's events after sequence `after`.
    pub fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Event>, EngineError> {
        Ok(self
            .inner
            .store
            .events_after(Some(self.tenant.as_str()), after, limit)?)
    }
}
