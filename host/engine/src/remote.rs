//! Remote execution: the engine hands pure processor jobs to a transport
//! (NATS JetStream in `reyna-nats`) instead of running them itself, and
//! commits the results the transport brings back, each exactly once.
//!
//! Everything that decides what a job means stays here, on the state node:
//! admission (enabled, hop limit, input present), idempotent reuse, output
//! validation, retries and dead letters. A worker only runs the call. Effects
//! also stay here, where the operator's network policy is: a processor on a
//! worker asks the state node to perform an effect call
//! ([`crate::Engine::perform_effect`]) and sends the record of every call
//! back with its result. Effect plugins' own (sink) jobs and re-runs that
//! replay recorded effects run on the state node.
//!
//! A job sent out stays `running` in the store and holds one of
//! [`RemoteConfig::max_outstanding`] slots until its result is committed;
//! beyond that, due jobs wait in the store. A job whose publish failed (the
//! transport is down) is published again when it is back, and one published
//! long ago with no result is published again after
//! [`RemoteConfig::resend_after`] (the transport deduplicates by job and
//! attempt; a result for an attempt that is no longer running is dropped).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reyna_runtime::{Event, Failure, Output};
use reyna_store::{IdemKey, JobId, JobState};
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, watch};

use crate::dispatch::{self, Finished};
use crate::{EngineError, Inner};

/// A boxed future returned by [`Transport`] methods.
pub type TransportFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How the engine uses a transport.
#[derive(Debug, Clone)]
pub struct RemoteConfig {
    /// Jobs sent out and not yet answered, at most. Beyond this, due jobs
    /// wait in the store (durably), not in memory.
    pub max_outstanding: usize,
    /// Inputs up to this size travel inside the job; larger ones are fetched
    /// by the worker from the state node.
    pub inline_max: usize,
    /// A job published this long ago without a result is published again.
    pub resend_after: Duration,
    /// How often unpublished and overdue jobs are looked for.
    pub republish_interval: Duration,
}

impl Default for RemoteConfig {
    fn default() -> Self {
        Self {
            max_outstanding: 4096,
            inline_max: 256 * 1024,
            resend_after: Duration::from_secs(120),
            republish_interval: Duration::from_secs(1),
        }
    }
}

/// One job as a worker receives it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoteJob {
    /// The job's id.
    pub job_id: String,
    /// The attempt this message is for; a result names it back.
    pub attempt: u32,
    /// Plugin name.
    pub plugin: String,
    /// Plugin version.
    pub version: String,
    /// `sha256:<hex>` of the component; a worker verifies the bytes it fetches.
    pub component_digest: String,
    /// The operator's config for this plugin version.
    pub config: BTreeMap<String, String>,
    /// Effects the plugin declares (and so may call, through the state node).
    pub effects: Vec<String>,
    /// Seed of the call's `wasi:random` (the same as a local run's).
    pub seed: u64,
    /// The event. `event.blob.data` is empty when the input is not inline.
    pub event: Event,
    /// Whether `event.blob.data` holds the input.
    pub inline: bool,
    /// Size of the input, in bytes.
    pub data_size: u64,
    /// `sha256:<hex>` of the input; a worker verifies what it fetches.
    pub data_digest: String,
}

/// What a worker sends back for one job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoteResult {
    /// The job's id.
    pub job_id: String,
    /// The attempt that ran.
    pub attempt: u32,
    /// The outputs, or why there are none.
    pub result: Result<Vec<Output>, Failure>,
    /// What the call used.
    pub cost: reyna_runtime::Cost,
    /// Whether the plugin read blobs other than its input or called an
    /// effect (such a result is never reused for another input).
    pub read_other_blobs: bool,
    /// The effect calls the state node performed for this run, in order.
    pub effect_calls: Vec<reyna_store::EffectCall>,
    /// Which worker ran it, for logs.
    pub worker: String,
}

/// What [`crate::Engine::complete_remote`] did with a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteOutcome {
    /// The result was committed (outputs, a retry, or a dead letter).
    Committed,
    /// The job is not running at that attempt any more (already committed,
    /// or a newer attempt is out): nothing changed.
    Stale,
}

/// Carries jobs to workers. Implemented by `reyna-nats`.
pub trait Transport: Send + Sync + 'static {
    /// Publishes `job` durably (idempotent per job id and attempt). An error
    /// leaves the job outstanding; it is published again later.
    fn publish<'a>(&'a self, job: &'a RemoteJob) -> TransportFuture<'a, Result<(), String>>;

    /// Whether the transport is connected now (for readiness).
    fn connected(&self) -> bool;
}

struct Outstanding {
    /// Kept to publish again; its inline data is dropped once published.
    job: RemoteJob,
    published_at: Option<Instant>,
    /// The dispatcher slot this job holds until its result is committed.
    _permit: OwnedSemaphorePermit,
}

pub(crate) struct Remote {
    pub transport: Arc<dyn Transport>,
    outstanding: Mutex<HashMap<JobId, Outstanding>>,
    /// Results being committed now: a second copy of one is stale.
    finishing: Mutex<HashSet<JobId>>,
}

impl Remote {
    pub(crate) fn new(transport: Arc<dyn Transport>) -> Self {
        Self {
            transport,
            outstanding: Mutex::new(HashMap::new()),
            finishing: Mutex::new(HashSet::new()),
        }
    }

    fn outstanding(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, Outstanding>> {
        self.outstanding.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Jobs sent out and not answered yet.
    pub(crate) fn outstanding_count(&self) -> usize {
        self.outstanding().len()
    }
}

/// Whether a job of a plugin with `manifest` goes to the transport: a
/// processor's, unless it replays recorded effects.
pub(crate) fn runs_remotely(
    inner: &Inner,
    manifest: &reyna_manifest::Manifest,
    replaying: bool,
) -> bool {
    inner.remote.get().is_some() && manifest.kind == reyna_manifest::Kind::Processor && !replaying
}

/// Sends a job out; its slot and in-flight count stay taken until its result
/// is committed.
pub(crate) async fn submit(inner: &Inner, job: RemoteJob, permit: OwnedSemaphorePermit) {
    let Some(remote) = inner.remote.get() else {
        return;
    };
    let Ok(id) = job.job_id.parse::<JobId>() else {
        return;
    };
    remote.outstanding().insert(
        id,
        Outstanding {
            job: job.clone(),
            published_at: None,
            _permit: permit,
        },
    );
    publish(remote, id, &job).await;
}

async fn publish(remote: &Remote, id: JobId, job: &RemoteJob) {
    match remote.transport.publish(job).await {
        Ok(()) => {
            metrics::counter!("reyna_remote_jobs_published_total").increment(1);
            if let Some(entry) = remote.outstanding().get_mut(&id) {
                entry.published_at = Some(Instant::now());
                if entry.job.inline {
                    // Published durably: a re-send lets the worker fetch it.
                    entry.job.inline = false;
                    entry.job.event.blob.data = Vec::new();
                }
            }
        }
        Err(e) => {
            metrics::counter!("reyna_remote_publish_failures_total").increment(1);
            tracing::warn!(job = %id, error = %e, "cannot publish job; will publish it again");
        }
    }
}

/// Publishes again, while the transport is connected, every outstanding job
/// whose publish failed or that has waited longer than `resend_after`.
pub(crate) async fn republish_loop(inner: Arc<Inner>, mut shutdown: watch::Receiver<bool>) {
    let Some(remote) = inner.remote.get() else {
        return;
    };
    let config = inner.config.remote.clone();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(config.republish_interval) => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
        if !remote.transport.connected() {
            continue;
        }
        let due: Vec<(JobId, RemoteJob)> = remote
            .outstanding()
            .iter()
            .filter(|(_, o)| {
                o.published_at
                    .is_none_or(|at| at.elapsed() >= config.resend_after)
            })
            .map(|(id, o)| (*id, o.job.clone()))
            .collect();
        if !due.is_empty() {
            tracing::info!(jobs = due.len(), "publishing outstanding jobs again");
        }
        for (id, job) in due {
            if !remote.transport.connected() {
                break;
            }
            publish(remote, id, &job).await;
        }
    }
}

/// Commits a worker's result: validates its outputs and completes, retries
/// or dead-letters the job, exactly once per job and attempt.
pub(crate) async fn complete(
    inner: &Arc<Inner>,
    result: RemoteResult,
) -> Result<RemoteOutcome, EngineError> {
    let Some(remote) = inner.remote.get() else {
        return Err(EngineError::Internal(
            "no transport is configured; remote results cannot be committed".into(),
        ));
    };
    let Ok(id) = result.job_id.parse::<JobId>() else {
        tracing::warn!(job = result.job_id, "result for a malformed job id dropped");
        return Ok(RemoteOutcome::Stale);
    };
    if !remote
        .finishing
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id)
    {
        return Ok(RemoteOutcome::Stale);
    }
    let outcome = commit(inner, remote, id, result).await;
    remote
        .finishing
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&id);
    outcome
}

async fn commit(
    inner: &Arc<Inner>,
    remote: &Remote,
    id: JobId,
    result: RemoteResult,
) -> Result<RemoteOutcome, EngineError> {
    let Some(job) = inner.store.get_job(id)? else {
        return Ok(RemoteOutcome::Stale);
    };
    if job.state != JobState::Running || job.attempt != result.attempt {
        metrics::counter!("reyna_remote_results_stale_total").increment(1);
        return Ok(RemoteOutcome::Stale);
    }
    let Some(p) = inner.plugins.get(&job.plugin, &job.version) else {
        let reason = format!("plugin {}@{} is not registered", job.plugin, job.version);
        dispatch::dead(inner, &job, reason, dispatch::store_cost(&result.cost)).await?;
        release(inner, remote, id);
        return Ok(RemoteOutcome::Committed);
    };
    // The input's digest went out with the job; only a job sent before a
    // restart (no longer outstanding here) needs its blob read again.
    let sent_digest = remote
        .outstanding()
        .get(&id)
        .map(|o| o.job.data_digest.clone());
    let input_digest = match sent_digest {
        Some(digest) => digest,
        None => inner
            .store
            .get_blob(&job.tenant, job.blob_id)?
            .map(|m| m.digest)
            .unwrap_or_default(),
    };
    let key = IdemKey {
        component_digest: p.record.digest.clone(),
        config_digest: p.config_digest.clone(),
        input_digest,
    };
    let cost = dispatch::store_cost(&result.cost);
    let pure = !result.read_other_blobs && result.effect_calls.is_empty();
    let outcome = dispatch::finish_call(
        inner,
        &p,
        &job,
        result.result,
        cost,
        result.effect_calls,
        pure,
        key,
        // The outstanding entry holds this job's slot until it commits.
        &mut None,
    )
    .await?;
    dispatch::record_outcome(
        inner,
        &job.plugin,
        Some(&p),
        &Finished {
            outcome,
            wall_us: result.cost.wall_us,
        },
    )
    .await;
    release(inner, remote, id);
    Ok(RemoteOutcome::Committed)
}

/// Frees the slot and the in-flight count the job held since it was claimed.
fn release(inner: &Inner, remote: &Remote, id: JobId) {
    if remote.outstanding().remove(&id).is_some() {
        inner.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
    inner.job_finished.send_modify(|n| *n += 1);
}
