//! The transport side of remote execution: what a worker receives and sends
//! back, the [`Transport`] that carries jobs (NATS JetStream in
//! `reyna-nats`), and the jobs sent out and awaiting their result.
//!
//! Only the call runs remotely. Everything that decides what a job means
//! stays on the state node, in the job's own task (`pipeline`): admission,
//! idempotent reuse, output validation, retries and dead letters. A result
//! that comes back ([`Remote::deliver`]) only wakes the task waiting for it;
//! that task commits it and answers with what it did. Effects also stay on
//! the state node, where the operator's network policy is: a processor on a
//! worker asks the state node to perform an effect call
//! ([`crate::Engine::perform_effect`]) and sends the record of every call
//! back with its result.
//!
//! A job sent out stays `running` in the store and holds one of
//! [`RemoteConfig::max_outstanding`] slots until its result is committed;
//! beyond that, due jobs wait in the store. A job whose publish failed (the
//! transport is down) is published again when it is back, and one published
//! long ago with no result is published again after
//! [`RemoteConfig::resend_after`] (the transport deduplicates by job and
//! attempt; a result for an attempt that is not awaited is stale).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reyna_runtime::{Event, Failure, Output};
use reyna_store::{Cost, Digest, EffectCall, JobId, LogLine};
use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, watch};

use crate::error::EngineError;

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
    /// Digest of the component; a worker verifies the bytes it fetches.
    pub component_digest: Digest,
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
    /// Digest of the input; a worker verifies what it fetches.
    pub data_digest: Digest,
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
    pub cost: Cost,
    /// Whether the plugin read blobs other than its input or called an
    /// effect (such a result is never reused for another input).
    pub read_other_blobs: bool,
    /// The effect calls the state node performed for this run, in order.
    pub effect_calls: Vec<EffectCall>,
    /// Which worker ran it, for logs.
    pub worker: String,
    /// What the guest logged (bounded and redacted by the worker's runtime).
    #[serde(default)]
    pub logs: Vec<LogLine>,
    /// Whether log lines were dropped for exceeding the plugin's log limit.
    #[serde(default)]
    pub log_truncated: bool,
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

/// Why a job could not be published.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The transport did not take the job now (disconnected, no
    /// acknowledgement); it is published again later.
    #[error("transport unavailable: {0}")]
    Unavailable(String),
}

/// Carries jobs to workers. Implemented by `reyna-nats`.
pub trait Transport: Send + Sync + 'static {
    /// Publishes `job` durably (idempotent per job id and attempt). An error
    /// leaves the job outstanding; it is published again later.
    fn publish<'a>(&'a self, job: &'a RemoteJob)
    -> TransportFuture<'a, Result<(), TransportError>>;

    /// Whether the transport is connected now (for readiness).
    fn connected(&self) -> bool;
}

/// A result handed to the task awaiting it, and where that task answers
/// with what it did (committed, or why it could not).
pub(crate) struct Delivery {
    pub result: RemoteResult,
    pub reply: oneshot::Sender<Result<RemoteOutcome, EngineError>>,
}

struct Outstanding {
    /// Kept to publish again; its inline data is dropped once published.
    job: RemoteJob,
    published_at: Option<Instant>,
    /// The task awaiting this job's result; taken by the first delivery.
    waiter: Option<oneshot::Sender<Delivery>>,
}

pub(crate) struct Remote {
    transport: Arc<dyn Transport>,
    outstanding: Mutex<HashMap<JobId, Outstanding>>,
}

impl Remote {
    pub(crate) fn new(transport: Arc<dyn Transport>) -> Self {
        Self {
            transport,
            outstanding: Mutex::new(HashMap::new()),
        }
    }

    fn outstanding(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, Outstanding>> {
        self.outstanding.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Jobs sent out and not answered yet.
    pub(crate) fn outstanding_count(&self) -> usize {
        self.outstanding().len()
    }

    /// Whether the transport is connected now.
    pub(crate) fn connected(&self) -> bool {
        self.transport.connected()
    }

    /// Sends `job` out and returns where its result will arrive. The job is
    /// outstanding until [`Remote::finish`]; a failed publish is retried by
    /// [`Remote::republish_loop`].
    pub(crate) async fn send(&self, id: JobId, job: RemoteJob) -> oneshot::Receiver<Delivery> {
        let (tx, rx) = oneshot::channel();
        self.outstanding().insert(
            id,
            Outstanding {
                job: job.clone(),
                published_at: None,
                waiter: Some(tx),
            },
        );
        self.publish(id, &job).await;
        rx
    }

    /// The job's result was committed (or it is abandoned): it is no longer
    /// outstanding.
    pub(crate) fn finish(&self, id: JobId) {
        self.outstanding().remove(&id);
    }

    async fn publish(&self, id: JobId, job: &RemoteJob) {
        match self.transport.publish(job).await {
            Ok(()) => {
                metrics::counter!("reyna_remote_jobs_published_total").increment(1);
                if let Some(entry) = self.outstanding().get_mut(&id) {
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

    /// Hands a worker's result to the task awaiting that job and attempt,
    /// and returns what the task did with it. A result nobody awaits (a
    /// duplicate, a late copy, an attempt that is no longer running) is
    /// [`RemoteOutcome::Stale`] and changes nothing.
    pub(crate) async fn deliver(&self, result: RemoteResult) -> Result<RemoteOutcome, EngineError> {
        let Ok(id) = result.job_id.parse::<JobId>() else {
            tracing::warn!(job = result.job_id, "result for a malformed job id dropped");
            return Ok(RemoteOutcome::Stale);
        };
        let waiter = match self.outstanding().get_mut(&id) {
            Some(o) if o.job.attempt == result.attempt => o.waiter.take(),
            _ => None,
        };
        let Some(waiter) = waiter else {
            metrics::counter!("reyna_remote_results_stale_total").increment(1);
            return Ok(RemoteOutcome::Stale);
        };
        let (reply, answer) = oneshot::channel();
        if waiter.send(Delivery { result, reply }).is_err() {
            return Ok(RemoteOutcome::Stale);
        }
        answer.await.unwrap_or(Ok(RemoteOutcome::Stale))
    }

    /// Publishes again, while the transport is connected, every outstanding
    /// job whose publish failed or that has waited longer than
    /// `resend_after`.
    pub(crate) async fn republish_loop(
        &self,
        config: RemoteConfig,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(config.republish_interval) => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
            if !self.transport.connected() {
                continue;
            }
            let due: Vec<(JobId, RemoteJob)> = self
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
                if !self.transport.connected() {
                    break;
                }
                self.publish(id, &job).await;
            }
        }
    }
}
