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
//! [`RemoteConfig::resend_after`], inside the transport's duplicate window
//! ([`RemoteConfig::duplicate_window`]).
//!
//! Workers are not trusted. Everything a worker asks for on behalf of a job
//! is scoped by that job as this table holds it, never by what the worker
//! says: the tenant, the component, the declared effects, the config. A
//! worker first *claims* the copy of the job message it holds
//! ([`JobCopy`]); only the claimed copy may read, call effects and deliver a
//! result, so a copy published again after the duplicate window can never
//! run the job's effects or commit it a second time. (A redelivery of the
//! claimed copy, after its worker missed the ack wait, holds the claim too:
//! that is JetStream's at-least-once delivery to a presumed-dead worker.)
//! Config (secrets included) is handed over only with a claim, never in the
//! job message.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reyna_runtime::{EffectAnswer, Event, Failure, GuestError, Output};
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
    /// Shorter than [`Self::duplicate_window`] by a margin
    /// ([`RemoteConfig::check`]), so a re-send of a job still queued is
    /// dropped by the transport instead of stored as a second copy.
    pub resend_after: Duration,
    /// How long the transport drops a message published again under the
    /// same job and attempt (JetStream's duplicate window).
    pub duplicate_window: Duration,
    /// How often unpublished and overdue jobs are looked for.
    pub republish_interval: Duration,
}

impl Default for RemoteConfig {
    fn default() -> Self {
        Self {
            max_outstanding: 4096,
            inline_max: 256 * 1024,
            resend_after: Duration::from_secs(90),
            duplicate_window: Duration::from_secs(120),
            republish_interval: Duration::from_secs(1),
        }
    }
}

impl RemoteConfig {
    /// The least room `resend_after` must leave before the end of the
    /// duplicate window: a tenth of the window, and at least two republish
    /// rounds (a re-send is late by up to one round, plus the publish).
    pub fn resend_margin(&self) -> Duration {
        (self.duplicate_window / 10).max(self.republish_interval * 2)
    }

    /// Checks that re-sends happen inside the duplicate window, with
    /// [`Self::resend_margin`] to spare.
    pub fn check(&self) -> Result<(), String> {
        if self.resend_after.is_zero() || self.republish_interval.is_zero() {
            return Err("resend-after and the republish interval must be positive".into());
        }
        let latest = self.duplicate_window.saturating_sub(self.resend_margin());
        if self.resend_after > latest {
            return Err(format!(
                "resend-after ({:?}) must be at most {:?}: the duplicate window ({:?}) less a margin of {:?}",
                self.resend_after,
                latest,
                self.duplicate_window,
                self.resend_margin()
            ));
        }
        Ok(())
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

/// What a call reads with `config(key)`, handed to the worker that claims
/// the job (never in the job message): the tenant's installation config,
/// secrets opened, and which keys are secrets.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CallConfig {
    /// Plain values and secrets.
    pub config: Arc<BTreeMap<String, String>>,
    /// The keys whose values are secrets: redacted from what the runtime
    /// reports, and recorded by name when read.
    pub secret_keys: Arc<BTreeSet<String>>,
}

/// What a worker sends back for one job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoteResult {
    /// The job's id.
    pub job_id: String,
    /// The attempt that ran.
    pub attempt: u32,
    /// The copy of the job message that ran (the one the worker claimed).
    pub copy: JobCopy,
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
    /// The secret config keys the call read (names only).
    #[serde(default)]
    pub secrets_read: Vec<String>,
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
    /// The job message is larger than the transport can ever carry; the job
    /// is dead-lettered with this reason instead of published again.
    #[error(
        "the job message of {size} bytes is larger than the {limit} bytes the transport carries (NATS max_payload)"
    )]
    TooLarge {
        /// Size of the message, in bytes.
        size: usize,
        /// The most the transport carries, in bytes.
        limit: usize,
    },
}

/// One copy of a job message as the transport delivered it: a job
/// published again is another copy; the same copy delivered again (its
/// worker did not ack it in time) is a later delivery of it, and holds the
/// same claim. For JetStream, the stream sequence and the delivery count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct JobCopy {
    /// Which copy (stream sequence).
    pub sequence: u64,
    /// Which delivery of that copy (1 for the first).
    pub delivery: u64,
}

/// Why the state node refused a worker's request for a job. Workers are not
/// trusted: the job named in a request is looked up in the jobs this state
/// node sent out, and everything is scoped by that.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum RemoteRefusal {
    /// The job is not running at that attempt on this state node: it
    /// finished, or another attempt is out. The worker drops the message.
    #[error("job {job} attempt {attempt} is not running")]
    NotRunning {
        /// The job id asked about.
        job: String,
        /// The attempt asked about.
        attempt: u32,
    },
    /// The job is running but not sent out yet (the state node restarted
    /// and has not published it again): the worker tries again later.
    #[error("job {job} attempt {attempt} is not sent out yet; try again later")]
    NotYet {
        /// The job id.
        job: String,
        /// The attempt.
        attempt: u32,
    },
    /// This copy of the job message does not hold the job's claim: another
    /// copy runs it (or ran it), or this one never claimed it. The worker
    /// drops this copy without running it.
    #[error("job {job} attempt {attempt} is not claimed by this copy of its message")]
    OtherCopy {
        /// The job id.
        job: String,
        /// The attempt.
        attempt: u32,
    },
    /// The plugin of the job does not declare the effect it asked for.
    #[error("plugin {plugin} of job {job} does not declare effect `{effect}`")]
    UndeclaredEffect {
        /// The job id.
        job: String,
        /// The plugin.
        plugin: String,
        /// The effect asked for.
        effect: String,
    },
    /// The bytes asked for are neither the job's component nor a response
    /// of an effect call made for this job.
    #[error("{digest} is not the component or an effect response of job {job}")]
    NotForThisJob {
        /// The job id.
        job: String,
        /// The digest asked for.
        digest: Digest,
    },
}

/// What a claimed job may do, from the state node's own record of it.
#[derive(Debug, Clone)]
pub struct RunningJob {
    /// The job's tenant: every read and effect of the job is this tenant's.
    pub tenant: String,
    /// The plugin.
    pub plugin: String,
    /// The effects the plugin's manifest declares.
    pub effects: Vec<String>,
    /// The component.
    pub component_digest: Digest,
    /// The seed of the call.
    pub seed: u64,
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
    /// The installation's config, handed to the worker that claims the job.
    config: CallConfig,
    published_at: Option<Instant>,
    /// The task awaiting this job's result; taken by the first delivery.
    waiter: Option<oneshot::Sender<Delivery>>,
    /// The copy of the job message that runs it.
    claim: Option<JobCopy>,
    /// Responses of effect calls made for this job (their bytes are
    /// fetched by digest).
    responses: HashSet<Digest>,
}

impl Outstanding {
    /// Whether `copy` is (a delivery of) the claimed copy. Any delivery of
    /// it counts: a later one is JetStream's redelivery after the ack wait,
    /// and whichever of them answers first is committed.
    fn holds(&self, copy: JobCopy) -> bool {
        self.claim.is_some_and(|c| c.sequence == copy.sequence)
    }

    fn running(&self) -> RunningJob {
        RunningJob {
            tenant: self.job.event.blob.tenant.clone(),
            plugin: self.job.plugin.clone(),
            effects: self.job.effects.clone(),
            component_digest: self.job.component_digest,
            seed: self.job.seed,
        }
    }
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
    pub(crate) async fn send(
        &self,
        id: JobId,
        job: RemoteJob,
        config: CallConfig,
    ) -> oneshot::Receiver<Delivery> {
        let (tx, rx) = oneshot::channel();
        self.outstanding().insert(
            id,
            Outstanding {
                job: job.clone(),
                config,
                published_at: None,
                waiter: Some(tx),
                claim: None,
                responses: HashSet::new(),
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
            Err(e @ TransportError::TooLarge { .. }) => {
                // Never publishable: the job fails for good with the reason.
                metrics::counter!("reyna_remote_publish_failures_total").increment(1);
                tracing::warn!(job = %id, error = %e, "job cannot be published; dead-lettering it");
                let waiter = self
                    .outstanding()
                    .get_mut(&id)
                    .and_then(|o| o.waiter.take());
                if let Some(waiter) = waiter {
                    let (reply, _) = oneshot::channel();
                    let result = RemoteResult {
                        job_id: job.job_id.clone(),
                        attempt: job.attempt,
                        copy: JobCopy::default(),
                        result: Err(Failure::InvalidInput(e.to_string())),
                        cost: Cost::default(),
                        read_other_blobs: false,
                        effect_calls: Vec::new(),
                        worker: "state node".into(),
                        logs: Vec::new(),
                        log_truncated: false,
                        secrets_read: Vec::new(),
                    };
                    let _ = waiter.send(Delivery { result, reply });
                }
            }
            Err(e) => {
                metrics::counter!("reyna_remote_publish_failures_total").increment(1);
                tracing::warn!(job = %id, error = %e, "cannot publish job; will publish it again");
            }
        }
    }

    /// Runs `f` on the outstanding job `job_id` at `attempt`, or refuses.
    fn with_job<T>(
        &self,
        job_id: &str,
        attempt: u32,
        f: impl FnOnce(&mut Outstanding) -> Result<T, RemoteRefusal>,
    ) -> Result<T, RemoteRefusal> {
        let not_running = || RemoteRefusal::NotRunning {
            job: job_id.to_owned(),
            attempt,
        };
        let id = job_id.parse::<JobId>().map_err(|_| not_running())?;
        match self.outstanding().get_mut(&id) {
            Some(o) if o.job.attempt == attempt => f(o),
            _ => Err(not_running()),
        }
    }

    /// Gives the job to the worker holding `copy` of its message, with the
    /// plugin's config: the first copy claimed runs the job; a later
    /// delivery of that same copy may claim it again (its first worker did
    /// not ack in time and is presumed gone); any other copy is refused.
    pub(crate) fn claim(
        &self,
        job_id: &str,
        attempt: u32,
        copy: JobCopy,
    ) -> Result<(RunningJob, CallConfig), RemoteRefusal> {
        self.with_job(job_id, attempt, |o| {
            match o.claim {
                None => o.claim = Some(copy),
                Some(held) if held.sequence == copy.sequence => o.claim = Some(copy),
                Some(_) => {
                    return Err(RemoteRefusal::OtherCopy {
                        job: job_id.to_owned(),
                        attempt,
                    });
                }
            }
            Ok((o.running(), o.config.clone()))
        })
    }

    /// The job as the claimed `copy` may use it; any other copy is refused.
    pub(crate) fn claimed(
        &self,
        job_id: &str,
        attempt: u32,
        copy: JobCopy,
    ) -> Result<RunningJob, RemoteRefusal> {
        self.with_job(job_id, attempt, |o| {
            if !o.holds(copy) {
                return Err(RemoteRefusal::OtherCopy {
                    job: job_id.to_owned(),
                    attempt,
                });
            }
            Ok(o.running())
        })
    }

    /// Whether the claimed copy may fetch the bytes `digest`: the job's
    /// component or the response of an effect call made for it.
    pub(crate) fn may_fetch(
        &self,
        job_id: &str,
        attempt: u32,
        copy: JobCopy,
        digest: &Digest,
    ) -> Result<(), RemoteRefusal> {
        self.with_job(job_id, attempt, |o| {
            if !o.holds(copy) {
                return Err(RemoteRefusal::OtherCopy {
                    job: job_id.to_owned(),
                    attempt,
                });
            }
            if o.job.component_digest == *digest || o.responses.contains(digest) {
                Ok(())
            } else {
                Err(RemoteRefusal::NotForThisJob {
                    job: job_id.to_owned(),
                    digest: *digest,
                })
            }
        })
    }

    /// Notes an effect response the job may fetch.
    fn keep_response(&self, job_id: &str, attempt: u32, digest: Digest) {
        let _ = self.with_job(job_id, attempt, |o| {
            o.responses.insert(digest);
            Ok(())
        });
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
        // Only the claimed copy's result counts: a copy published again,
        // or one whose claim was taken over, is stale.
        let waiter = match self.outstanding().get_mut(&id) {
            Some(o) if o.job.attempt == result.attempt && o.holds(result.copy) => o.waiter.take(),
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

/// The transport's side of the engine: what workers may ask of a job they
/// hold, always scoped by the state node's own record of that job.
impl crate::Engine {
    /// The engine's remote settings.
    pub fn remote_config(&self) -> &RemoteConfig {
        &self.inner.config.remote
    }

    /// Claims job `job_id` at `attempt` for the worker holding `copy` of
    /// its message (see [`JobCopy`]) and hands over what the call needs
    /// that the message does not carry: the plugin's config. A worker runs
    /// a job only after this succeeds.
    pub fn claim_remote(
        &self,
        job_id: &str,
        attempt: u32,
        copy: JobCopy,
    ) -> Result<(RunningJob, CallConfig), RemoteRefusal> {
        let remote = self
            .inner
            .remote
            .get()
            .ok_or_else(|| RemoteRefusal::NotRunning {
                job: job_id.to_owned(),
                attempt,
            })?;
        remote
            .claim(job_id, attempt, copy)
            .map_err(|refusal| self.not_yet(refusal))
    }

    /// A `NotRunning` refusal for a job that the store still holds as
    /// running or pending at that attempt (this state node restarted and
    /// has not sent it out again) is `NotYet`: the message is kept.
    fn not_yet(&self, refusal: RemoteRefusal) -> RemoteRefusal {
        let RemoteRefusal::NotRunning { job, attempt } = &refusal else {
            return refusal;
        };
        let live = job.parse::<JobId>().ok().and_then(|id| {
            self.inner.store.get_job(id).ok().flatten().filter(|j| {
                j.attempt == *attempt
                    && matches!(
                        j.state,
                        reyna_store::JobState::Running | reyna_store::JobState::Pending
                    )
            })
        });
        match live {
            Some(_) => RemoteRefusal::NotYet {
                job: job.clone(),
                attempt: *attempt,
            },
            None => refusal,
        }
    }

    /// The claimed job `job_id` at `attempt`, as `copy` may use it.
    pub fn remote_job(
        &self,
        job_id: &str,
        attempt: u32,
        copy: JobCopy,
    ) -> Result<RunningJob, RemoteRefusal> {
        match self.inner.remote.get() {
            Some(remote) => remote.claimed(job_id, attempt, copy),
            None => Err(RemoteRefusal::NotRunning {
                job: job_id.to_owned(),
                attempt,
            }),
        }
    }

    /// The bytes of `digest` for the claimed job: its component, or the
    /// response of an effect call made for it (`Ok(None)`: not stored).
    pub fn remote_bytes(
        &self,
        job_id: &str,
        attempt: u32,
        copy: JobCopy,
        digest: &Digest,
    ) -> Result<Result<Option<Vec<u8>>, EngineError>, RemoteRefusal> {
        match self.inner.remote.get() {
            Some(remote) => remote.may_fetch(job_id, attempt, copy, digest)?,
            None => {
                return Err(RemoteRefusal::NotRunning {
                    job: job_id.to_owned(),
                    attempt,
                });
            }
        }
        Ok(self.inner.store.get_component(digest).map_err(Into::into))
    }

    /// Performs effect `name` for the claimed job `job_id` at `attempt`,
    /// running on a worker, as the job's tenant and under the operator's
    /// network policy, exactly as for a local job. Refused unless the job's
    /// plugin declares the effect. The response is kept by digest (the
    /// worker fetches it with [`Engine::remote_bytes`]).
    pub async fn remote_effect(
        &self,
        job_id: &str,
        attempt: u32,
        copy: JobCopy,
        name: &str,
        request: Vec<u8>,
    ) -> Result<EffectAnswer, RemoteRefusal> {
        let job = self.remote_job(job_id, attempt, copy)?;
        if !job.effects.iter().any(|e| e == name) {
            return Err(RemoteRefusal::UndeclaredEffect {
                job: job_id.to_owned(),
                plugin: job.plugin,
                effect: name.to_owned(),
            });
        }
        let answer = {
            let Ok(id) = job_id.parse::<JobId>() else {
                return Err(RemoteRefusal::NotRunning {
                    job: job_id.to_owned(),
                    attempt,
                });
            };
            crate::host::perform_effect(&self.inner, &job.tenant, id, job.seed, name, request).await
        };
        if let (Ok(response), Some(remote)) = (&answer.response, self.inner.remote.get()) {
            remote.keep_response(job_id, attempt, Digest::of(response));
        }
        Ok(answer)
    }

    /// A blob of the claimed job's tenant, as the plugin's `get-blob` sees
    /// it (another tenant's id reads as `None`).
    pub fn remote_get_blob(
        &self,
        job: &RunningJob,
        id: &str,
    ) -> Result<Option<reyna_runtime::Blob>, GuestError> {
        crate::host::read_blob(&self.inner, &job.tenant, id)
    }

    /// The claimed job's tenant's blobs of `schema` matching `filter_json`,
    /// as the plugin's `query-blobs` sees them.
    pub async fn remote_query_blobs(
        &self,
        job: &RunningJob,
        schema: &str,
        filter_json: &str,
    ) -> Result<Vec<reyna_runtime::Blob>, GuestError> {
        crate::host::query_blobs(&self.inner, &job.tenant, schema, filter_json).await
    }
}
