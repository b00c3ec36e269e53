//! The state every part of the engine shares: the store, the sandbox, the
//! registries, the dispatcher's slots and the transport. Below every module
//! that runs jobs; imports none of them.

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use reyna_runtime::Runtime;
use reyna_store::{Job, JobId, SecretUse, Store, StoreError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use crate::config::EngineConfig;
use crate::error::EngineError;
use crate::plugins::{PausePolicy, PluginRegistry};
use crate::quotas::TenantQuotas;
use crate::remote::Remote;
use crate::schemas::SchemaRegistry;
use crate::slots::Slots;

pub(crate) struct Inner {
    pub config: EngineConfig,
    pub store: Store,
    pub runtime: Runtime,
    pub schemas: SchemaRegistry,
    pub plugins: PluginRegistry,
    /// Changes each time a job's outcome is recorded.
    pub job_finished: watch::Sender<u64>,
    /// Jobs claimed and not yet fully recorded (store outcome and counters).
    pub in_flight: AtomicUsize,
    /// The transport pure processor jobs go to, when one is set.
    pub remote: OnceLock<Remote>,
    /// The dispatcher's worker slots, once it has started.
    pub slots: OnceLock<Slots>,
    /// Turns true when the engine stops dispatching.
    pub shutdown: watch::Sender<bool>,
    pub dispatcher: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Store scans and walks running at once on the blocking pool.
    pub blocking_reads: Semaphore,
    /// What effect calls noted for running jobs (the secrets they read, a
    /// budget they found used up), taken when the job's outcome is committed.
    pub effect_notes: Mutex<HashMap<JobId, EffectNotes>>,
    /// Each tenant's quotas, and the state enforcing them.
    pub quotas: Arc<TenantQuotas>,
    /// Wakes the dispatcher when what it may claim changed without a job
    /// changing (a tenant's quotas).
    pub claims_changed: tokio::sync::Notify,
}

/// What a job's effect calls noted for its outcome.
#[derive(Default)]
pub(crate) struct EffectNotes {
    /// The secrets they read, recorded in the job's lineage.
    pub secrets: Vec<SecretUse>,
    /// Why the job must fail with `budget-exceeded`, whatever its guest did
    /// next: a call found a budget used up.
    pub budget: Option<String>,
}

/// Longest a scan or walk on the blocking pool may take before its caller
/// gets an error (the scan itself is bounded by its caps and ends on its own).
const BLOCKING_DEADLINE: Duration = Duration::from_secs(30);

impl Inner {
    /// Runs a store scan or walk on the blocking pool, at most
    /// [`EngineConfig::max_blocking_reads`] at once, so it never holds an
    /// async executor thread; waits for it at most 30 s.
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, EngineError> {
        let _slot = self
            .blocking_reads
            .acquire()
            .await
            .map_err(|_| EngineError::Internal("the engine is stopping".into()))?;
        let store = self.store.clone();
        let task = tokio::task::spawn_blocking(move || read(&store));
        match tokio::time::timeout(BLOCKING_DEADLINE, task).await {
            Ok(Ok(result)) => Ok(result?),
            Ok(Err(e)) => Err(EngineError::Internal(format!("a store read failed: {e}"))),
            Err(_) => Err(EngineError::Internal(format!(
                "a store read took longer than {} s",
                BLOCKING_DEADLINE.as_secs()
            ))),
        }
    }

    /// Takes up to `n` free claim slots (none before the dispatcher starts
    /// or once it stops).
    pub(crate) fn reserve(&self, n: usize) -> Vec<OwnedSemaphorePermit> {
        self.slots.get().map(|s| s.reserve(n)).unwrap_or_default()
    }

    /// Claim slots for up to `n` new jobs of `tenant` claimed in the
    /// commit that stores them: as many as are free and its running-jobs
    /// quota allows (counted against it until [`Self::hand_over`]); and
    /// whether the tenant had no job claimed before these.
    pub(crate) fn reserve_for(&self, tenant: &str, n: usize) -> (Vec<OwnedSemaphorePermit>, bool) {
        let (granted, idle) = self.quotas.reserve(tenant, n);
        let permits = self.reserve(granted);
        self.quotas.release(tenant, granted - permits.len());
        (permits, idle)
    }

    /// Hands jobs of `tenant` claimed in another commit to the dispatcher;
    /// the slots [`Self::reserve_for`] took and the commit did not use are
    /// given back.
    pub(crate) fn hand_over(
        &self,
        tenant: &str,
        jobs: Vec<Job>,
        permits: Vec<OwnedSemaphorePermit>,
    ) {
        self.quotas
            .release(tenant, permits.len().saturating_sub(jobs.len()));
        if let Some(slots) = self.slots.get() {
            slots.hand_over(jobs, permits);
        }
    }

    /// Notes what an effect call of `job` did that its outcome must carry.
    fn note(&self, job: JobId, note: impl FnOnce(&mut EffectNotes)) {
        note(
            self.effect_notes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(job)
                .or_default(),
        );
    }

    /// Notes that an effect call of `job` found a budget used up (the first
    /// reason is kept).
    pub(crate) fn record_budget_hit(&self, job: JobId, reason: String) {
        self.note(job, |n| {
            n.budget.get_or_insert(reason);
        });
    }

    /// Notes secrets an effect call read for `job`.
    pub(crate) fn record_secret_uses(&self, job: JobId, uses: Vec<SecretUse>) {
        self.note(job, |n| n.secrets.extend(uses));
    }

    /// What effect calls noted for `job`, forgotten here.
    pub(crate) fn take_effect_notes(&self, job: JobId) -> EffectNotes {
        self.effect_notes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&job)
            .unwrap_or_default()
    }

    pub(crate) fn pause_policy(&self) -> PausePolicy {
        PausePolicy {
            window: self.config.pause_window,
            min_calls: self.config.pause_min_calls,
            failure_ratio: self.config.pause_failure_ratio,
        }
    }
}
