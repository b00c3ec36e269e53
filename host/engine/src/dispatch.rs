//! Dispatch: claim due jobs, run them in the sandbox, validate outputs, and
//! commit each job's outcome atomically through the store.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reyna_manifest::Kind;
use reyna_runtime::{Blob, CallContext, EffectContext, Event, Failure, Output};
use reyna_store::{
    BlobId, Completion, Cost, EffectCall, FailOutcome, IdemKey, Job, JobSpec, NewAudit, NewOutput,
    StoreError,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use crate::Inner;
use crate::host::JobHost;
use crate::plugins::{Loaded, Outcome};
use crate::remote::{self, RemoteJob};

/// A job claimed by this engine, with the worker slot it holds.
type Claimed = (Job, OwnedSemaphorePermit);

/// The dispatcher's worker slots, shared with the paths that claim jobs in
/// the transaction that creates them (ingest, completion) instead of
/// leaving them pending for a claim of their own.
pub(crate) struct Slots {
    /// One permit per job claimed by this engine and not yet running here,
    /// or sent out and not yet answered.
    permits: Arc<Semaphore>,
    /// One permit per job running here (its call, or its commit while the
    /// call's outcome is checked). A job trades its claim for one of these
    /// when it starts, so claiming the next jobs (a commit away) overlaps
    /// with running the current ones. `None` in remote mode, where a claim
    /// lasts until the result is committed.
    running: Option<Arc<Semaphore>>,
    /// Jobs claimed elsewhere, for the dispatcher to run like its own.
    handoff: mpsc::UnboundedSender<Claimed>,
    /// Finished calls whose outcome waits for the writer, in
    /// [`commit_units`]: a job gives its worker slot back when its call
    /// returns, so the next job runs during the commit, and this bounds
    /// what piles up (by count and output bytes) when the disk is slow.
    awaiting_commit: Arc<Semaphore>,
}

/// Units of [`Slots::awaiting_commit`]: room for this many small outcomes,
/// or fewer large ones (one unit per started [`COMMIT_UNIT_BYTES`]).
const COMMIT_UNITS: u32 = 4096;
/// Output bytes per unit of [`Slots::awaiting_commit`].
const COMMIT_UNIT_BYTES: usize = 64 * 1024;

/// Units an outcome with `bytes` of outputs takes while awaiting its commit.
fn commit_units(bytes: usize) -> u32 {
    u32::try_from(1 + bytes / COMMIT_UNIT_BYTES)
        .unwrap_or(COMMIT_UNITS)
        .min(COMMIT_UNITS)
}

impl Slots {
    /// `claims` jobs claimed ahead and, when jobs run here, `running` at
    /// once; and the receiving end of their handoff for [`run`].
    pub(crate) fn new(
        claims: usize,
        running: Option<usize>,
    ) -> (Self, mpsc::UnboundedReceiver<Claimed>) {
        let (handoff, rx) = mpsc::unbounded_channel();
        let slots = Self {
            permits: Arc::new(Semaphore::new(claims)),
            running: running.map(|n| Arc::new(Semaphore::new(n))),
            handoff,
            awaiting_commit: Arc::new(Semaphore::new(COMMIT_UNITS as usize)),
        };
        (slots, rx)
    }
}

/// A job's worker slot, given back once its call has returned (see
/// [`Slots::awaiting_commit`]); `None` for calls that hold no slot here
/// (results from remote workers) or once given back.
pub(crate) type Slot = Option<OwnedSemaphorePermit>;

/// Trades a finished call's worker slot for room among the outcomes awaiting
/// their commit (waiting while that is full); the returned permit is held
/// until the commit returns.
async fn release_for_commit(
    inner: &Inner,
    slot: &mut Slot,
    output_bytes: usize,
) -> Option<OwnedSemaphorePermit> {
    let slot = slot.take()?;
    let slots = inner.slots.get()?;
    let room = slots
        .awaiting_commit
        .clone()
        .acquire_many_owned(commit_units(output_bytes))
        .await
        .ok();
    drop(slot);
    room
}

/// Takes up to `n` free slots for jobs about to be claimed; none before the
/// dispatcher starts or once it is shutting down.
pub(crate) fn reserve(inner: &Inner, n: usize) -> Vec<OwnedSemaphorePermit> {
    let Some(slots) = inner.slots.get() else {
        return Vec::new();
    };
    if n == 0 || *inner.shutdown.borrow() {
        return Vec::new();
    }
    std::iter::from_fn(|| slots.permits.clone().try_acquire_owned().ok())
        .take(n)
        .collect()
}

/// Hands jobs the store claimed at creation to the dispatcher, which runs
/// them like the ones it claims; `permits` holds one slot per job (extra
/// slots are freed). If the dispatcher has stopped, a job stays running and
/// is due again at the next start ([`reyna_store::Store::recover_running`]).
pub(crate) fn hand_over(inner: &Inner, jobs: Vec<Job>, permits: Vec<OwnedSemaphorePermit>) {
    let Some(slots) = inner.slots.get() else {
        return;
    };
    for claimed in jobs.into_iter().zip(permits) {
        if slots.handoff.send(claimed).is_err() {
            tracing::debug!("dispatcher stopped; a claimed job waits for the next start");
        }
    }
}

/// Starts running a claimed job in `tasks`, counted in flight until its
/// outcome is recorded.
fn spawn_job(inner: &Arc<Inner>, tasks: &mut JoinSet<()>, (job, permit): Claimed) {
    inner
        .in_flight
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    tasks.spawn(run_job(inner.clone(), job, permit));
}

/// Runs until `shutdown` turns true, then waits for in-flight jobs to commit.
/// Runs the jobs it claims and those handed over through `handoff`, each
/// holding one of [`Inner::slots`].
pub(crate) async fn run(
    inner: Arc<Inner>,
    mut handoff: mpsc::UnboundedReceiver<Claimed>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut jobs_changed = inner.store.watch_jobs();
    let mut tasks: JoinSet<()> = JoinSet::new();
    loop {
        if *shutdown.borrow() {
            break;
        }
        while tasks.try_join_next().is_some() {}
        while let Ok(claimed) = handoff.try_recv() {
            spawn_job(&inner, &mut tasks, claimed);
        }
        // Marked seen before looking, so a job made pending after the look
        // wakes the wait below.
        jobs_changed.borrow_and_update();
        let now = reyna_store::now_ms();
        let next_due = inner.store.next_due_at();
        // Only claim when a job is due: most jobs are claimed as they are
        // created (`reserve`), and a claim costs a commit.
        let due_now = match next_due {
            Ok(Some(due)) => due <= now,
            Ok(None) => false,
            Err(_) => true,
        };
        if due_now {
            // Slots first, then as many jobs: ingest and completions take
            // free slots too, so counting them is not enough to hold them.
            let reserved = reserve(&inner, inner.config.claim_batch);
            if !reserved.is_empty() {
                match inner.store.claim_due_jobs(now, reserved.len()).await {
                    Ok(jobs) if !jobs.is_empty() => {
                        for claimed in jobs.into_iter().zip(reserved) {
                            spawn_job(&inner, &mut tasks, claimed);
                        }
                        continue;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::error!(error = %e, "cannot claim jobs; retrying shortly");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                }
            }
        }
        // Nothing to claim (or no free worker): wait for a new job, a handed
        // over or finished one, the next due time, or shutdown.
        let wait = match next_due {
            Ok(Some(due)) => Duration::from_millis(due.saturating_sub(now).max(1)),
            _ => Duration::from_secs(60),
        };
        tokio::select! {
            _ = jobs_changed.changed() => {}
            Some(claimed) = handoff.recv() => spawn_job(&inner, &mut tasks, claimed),
            _ = tasks.join_next(), if !tasks.is_empty() => {}
            _ = tokio::time::sleep(wait.min(Duration::from_secs(60))) => {}
            _ = shutdown.changed() => {}
        }
    }
    // Jobs already handed over run too; later ones wait for the next start.
    handoff.close();
    while let Some(claimed) = handoff.recv().await {
        spawn_job(&inner, &mut tasks, claimed);
    }
    while tasks.join_next().await.is_some() {}
}

pub(crate) fn store_cost(cost: &reyna_runtime::Cost) -> Cost {
    Cost {
        wall_us: cost.wall_us,
        epoch_ticks: cost.epoch_ticks,
        fuel: cost.fuel_consumed,
        peak_memory: cost.peak_memory,
        bytes_in: cost.bytes_in,
        bytes_out: cost.bytes_out,
        outputs: cost.outputs,
    }
}

/// Exponential backoff with deterministic jitter (from the job id), so a
/// burst of failures does not retry in lockstep.
fn backoff(inner: &Inner, job: &Job) -> Duration {
    let base = inner.config.backoff_base.as_millis() as u64;
    let cap = inner.config.backoff_max.as_millis() as u64;
    let exp = base
        .saturating_mul(1u64 << job.attempt.saturating_sub(1).min(20))
        .min(cap);
    let seed = (job.id.0.0 as u64) ^ u64::from(job.attempt).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let jitter = seed % 1000; // 0..1000 per mille
    Duration::from_millis(exp / 2 + exp * jitter / 2000)
}

pub(crate) struct Finished {
    pub outcome: Outcome,
    pub wall_us: u64,
}

/// Where a job stands after [`execute`].
enum Step {
    /// Its outcome is committed.
    Done(Finished),
    /// It goes to the transport; its result is committed when it comes back.
    Remote(Box<RemoteJob>),
}

/// Counts a finished call in metrics and plugin stats, pausing the plugin
/// when its recent calls mostly failed.
pub(crate) async fn record_outcome(
    inner: &Inner,
    plugin: &str,
    p: Option<&Arc<Loaded>>,
    finished: &Finished,
) {
    let outcome = finished.outcome.as_str();
    metrics::counter!("reyna_jobs_total", "plugin" => plugin.to_owned(), "outcome" => outcome)
        .increment(1);
    metrics::histogram!("reyna_job_duration_seconds", "plugin" => plugin.to_owned())
        .record(finished.wall_us as f64 / 1e6);
    if let Some(p) = p
        && let Some(reason) =
            inner
                .plugins
                .record(p, finished.outcome, finished.wall_us, inner.pause_policy())
    {
        pause(inner, p, reason).await;
    }
}

async fn run_job(inner: Arc<Inner>, job: Job, permit: OwnedSemaphorePermit) {
    let job_id = job.id;
    // Trade the claim for a running slot, freeing the claim for the next job.
    let running = inner.slots.get().and_then(|s| s.running.clone());
    let permit = match running {
        Some(running) => match running.acquire_owned().await {
            Ok(run) => run,
            Err(_) => permit,
        },
        None => permit,
    };
    let mut slot = Some(permit);
    let plugin = inner.plugins.get(&job.plugin, &job.version);
    let result = match &plugin {
        None => dead(
            &inner,
            &job,
            format!("plugin {}@{} is not registered", job.plugin, job.version),
            Cost::default(),
        )
        .await
        .map(|_| None),
        Some(p) => execute(&inner, p, &job, &mut slot).await.map(Some),
    };
    match result {
        Ok(Some(Step::Done(finished))) => {
            record_outcome(&inner, &job.plugin, plugin.as_ref(), &finished).await;
        }
        Ok(Some(Step::Remote(remote_job))) => {
            // The slot and the in-flight count stay taken until the result
            // is committed (`remote::complete`).
            if let Some(permit) = slot.take() {
                remote::submit(&inner, *remote_job, permit).await;
                return;
            }
        }
        Ok(None) => {}
        Err(e) => {
            // The store failed while recording the outcome: the job stays
            // running and is recovered (made due again) at the next start,
            // or by the retry below.
            tracing::error!(job = %job_id, error = %e, "cannot record job outcome");
        }
    }
    inner
        .in_flight
        .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    inner.job_finished.send_modify(|n| *n += 1);
}

async fn pause(inner: &Inner, p: &Loaded, reason: String) {
    tracing::warn!(plugin = %p.id(), %reason, "pausing plugin");
    if let Err(e) = inner
        .plugins
        .set_enabled(&p.record.name, &p.record.version, false, "engine")
        .await
    {
        tracing::error!(plugin = %p.id(), error = %e, "cannot pause plugin");
        return;
    }
    let _ = inner
        .store
        .append_audit(NewAudit {
            actor: "engine".into(),
            action: "plugin.pause".into(),
            target: p.id(),
            detail: reason,
        })
        .await;
}

pub(crate) async fn dead(
    inner: &Inner,
    job: &Job,
    reason: String,
    cost: Cost,
) -> Result<FailOutcome, StoreError> {
    tracing::info!(job = %job.id, plugin = %job.plugin, %reason, "dead letter");
    inner
        .store
        .fail_job(
            job.id,
            reyna_store::Failure {
                reason,
                cost,
                retry_at: None,
            },
        )
        .await
}

/// Checks a job may run and reads its input; `Ok(Err(reason))` means it must
/// go to the dead letters without running.
fn admit(
    inner: &Inner,
    p: &Loaded,
    job: &Job,
) -> Result<Result<(reyna_store::BlobMeta, Vec<u8>), String>, StoreError> {
    if !p.record.enabled {
        let why = inner
            .plugins
            .paused_reason(p)
            .map(|r| format!(" (paused: {r})"))
            .unwrap_or_default();
        return Ok(Err(format!("plugin {} is disabled{why}", p.id())));
    }
    if job.hop >= inner.config.max_hops {
        return Ok(Err(format!(
            "hop limit reached: the input is {} derivations deep and the limit is {} (a subscription cycle?)",
            job.hop, inner.config.max_hops
        )));
    }
    match inner.store.get_blob_with_data(&job.tenant, job.blob_id) {
        Ok(Some(input)) => Ok(Ok(input)),
        Ok(None) => Ok(Err(format!("input blob {} no longer exists", job.blob_id))),
        Err(StoreError::Corrupt { .. }) => Ok(Err(format!(
            "input blob {} is corrupt (digest mismatch)",
            job.blob_id
        ))),
        Err(e) => Err(e),
    }
}

async fn execute(
    inner: &Arc<Inner>,
    p: &Arc<Loaded>,
    job: &Job,
    slot: &mut Slot,
) -> Result<Step, StoreError> {
    let started = Instant::now();
    let finished = |outcome| {
        Step::Done(Finished {
            outcome,
            wall_us: started.elapsed().as_micros() as u64,
        })
    };
    let (meta, data) = match admit(inner, p, job)? {
        Ok(input) => input,
        Err(reason) => {
            dead(inner, job, reason, Cost::default()).await?;
            return Ok(finished(Outcome::InputRejected));
        }
    };

    let key = IdemKey {
        component_digest: p.record.digest.clone(),
        config_digest: p.config_digest.clone(),
        input_digest: meta.digest.clone(),
    };
    if let Some(prior) = inner.store.find_idempotent(&job.tenant, &key)?
        && reuse(inner, p, job, prior, key.clone(), slot).await?
    {
        return Ok(finished(Outcome::Reused));
    }

    let seed = job.id.0.0 as u64;
    let inline = data.len() <= inner.config.remote.inline_max;
    let event = Event {
        subject: job.subject.clone(),
        blob: Blob {
            id: meta.id.to_string(),
            tenant: meta.tenant.clone(),
            schema: meta.schema.clone(),
            data,
            parents: meta.parents.iter().map(ToString::to_string).collect(),
        },
    };
    let replay = if job.replay_effects {
        Some(Arc::new(crate::host::recorded_effects(
            &inner.store,
            &job.tenant,
            job.blob_id,
            &job.plugin,
        )?))
    } else {
        None
    };
    if remote::runs_remotely(inner, &p.manifest, replay.is_some()) {
        let mut event = event;
        if !inline {
            event.blob.data = Vec::new();
        }
        return Ok(Step::Remote(Box::new(RemoteJob {
            job_id: job.id.to_string(),
            attempt: job.attempt,
            plugin: job.plugin.clone(),
            version: job.version.clone(),
            component_digest: p.record.digest.clone(),
            config: (*p.config).clone(),
            effects: p.manifest.effects.clone(),
            seed,
            event,
            inline,
            data_size: meta.size,
            data_digest: meta.digest.clone(),
        })));
    }

    let mut job_host = JobHost::new(inner.clone(), &job.tenant, seed);
    job_host.replay = replay;
    let host = Arc::new(job_host);
    if p.manifest.kind == Kind::Effect {
        return run_sink(inner, p, job, event, host, slot)
            .await
            .map(finished);
    }
    let ctx = CallContext {
        config: p.config.clone(),
        host: host.clone(),
        allowed_effects: p.manifest.effects.clone(),
        seed,
    };
    let report = inner.runtime.call(&p.plugin, event, ctx).await;
    metrics::histogram!("reyna_instantiate_seconds")
        .record(report.cost.instantiate_us as f64 / 1e6);
    let effect_calls = host.take_effect_calls();
    // Only a result that depends on nothing but the input may be reused for
    // another input with the same content.
    let pure = !host
        .read_other_blobs
        .load(std::sync::atomic::Ordering::Relaxed)
        && effect_calls.is_empty();
    finish_call(
        inner,
        p,
        job,
        report.result,
        store_cost(&report.cost),
        effect_calls,
        pure,
        key,
        slot,
    )
    .await
    .map(finished)
}

/// Commits the result of a call, run here or by a worker: validated outputs
/// complete the job; a failure (or an invalid output) retries or dead-letters it.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn finish_call(
    inner: &Inner,
    p: &Loaded,
    job: &Job,
    result: Result<Vec<Output>, Failure>,
    cost: Cost,
    effect_calls: Vec<EffectCall>,
    pure: bool,
    key: IdemKey,
    slot: &mut Slot,
) -> Result<Outcome, StoreError> {
    let outputs = match result {
        Ok(outputs) => outputs,
        Err(failure) => return fail(inner, p, job, failure, cost).await,
    };
    let (new_outputs, next_jobs) = match check_outputs(inner, p, outputs) {
        Ok(checked) => checked,
        Err(reason) => {
            return fail(inner, p, job, Failure::InvalidOutput { reason }, cost).await;
        }
    };
    let completion = Completion {
        outputs: new_outputs,
        next_jobs,
        component_digest: p.record.digest.clone(),
        config_digest: p.config_digest.clone(),
        cost: cost.clone(),
        effect_calls,
        reused_from: None,
        idempotency_key: pure.then_some(key),
    };
    match complete(inner, job, completion, slot).await {
        Ok(()) => Ok(Outcome::Succeeded),
        Err(StoreError::ParentNotFound { id, .. }) => {
            let failure = Failure::InvalidOutput {
                reason: format!("extra parent {id} does not exist in this tenant"),
            };
            fail(inner, p, job, failure, cost).await
        }
        Err(e) => Err(e),
    }
}

/// Runs an effect as a sink for the job's event and stores its receipt as an
/// `effect-receipt-v1` blob derived from the event's blob.
async fn run_sink(
    inner: &Arc<Inner>,
    p: &Loaded,
    job: &Job,
    event: Event,
    host: Arc<JobHost>,
    slot: &mut Slot,
) -> Result<Outcome, StoreError> {
    let event_digest = format!("sha256:{}", crate::digest_hex(&event.blob.data));
    let ctx = EffectContext {
        config: p.config.clone(),
        host,
        policy: Arc::new(inner.config.effects.policy(&p.record.name)),
        seed: job.id.0.0 as u64,
    };
    let report = inner.runtime.deliver(&p.plugin, event, ctx).await;
    let cost = store_cost(&report.cost);
    let receipt = match report.result {
        Ok(receipt) => receipt,
        Err(failure) => return fail(inner, p, job, failure, cost).await,
    };
    let receipt_json = serde_json::from_slice::<serde_json::Value>(&receipt).unwrap_or_else(|_| {
        serde_json::Value::String(String::from_utf8_lossy(&receipt).into_owned())
    });
    let requests: Vec<serde_json::Value> = report
        .requests
        .iter()
        .map(|r| {
            serde_json::json!({
                "method": r.method, "scheme": r.scheme, "authority": r.authority, "path": r.path,
                "status": r.status, "outcome": r.outcome, "duration_us": r.duration_us,
                "request_bytes": r.request_bytes, "response_bytes": r.response_bytes,
            })
        })
        .collect();
    let doc = serde_json::json!({
        "effect": p.record.name, "version": p.record.version, "receipt": receipt_json, "requests": requests,
    });
    let data = serde_json::to_vec(&doc).unwrap_or_default();
    let call = EffectCall {
        effect: p.record.name.clone(),
        version: p.record.version.clone(),
        request_digest: event_digest,
        response_digest: format!("sha256:{}", crate::digest_hex(&receipt)),
        duration_us: cost.wall_us,
        outcome: "ok".to_owned(),
    };
    let completion = Completion {
        next_jobs: vec![inner.plugins.route("effect-receipt-v1")],
        outputs: vec![NewOutput {
            schema: "effect-receipt-v1".to_owned(),
            data,
            extra_parents: Vec::new(),
        }],
        component_digest: p.record.digest.clone(),
        config_digest: p.config_digest.clone(),
        cost,
        effect_calls: vec![call],
        reused_from: None,
        idempotency_key: None,
    };
    complete(inner, job, completion, slot).await?;
    Ok(Outcome::Succeeded)
}

/// Completes `job` from a stored result of the same component, config and
/// input content. Returns false when the stored result cannot be read.
async fn reuse(
    inner: &Inner,
    p: &Loaded,
    job: &Job,
    prior: Vec<reyna_store::BlobMeta>,
    key: IdemKey,
    slot: &mut Slot,
) -> Result<bool, StoreError> {
    let mut outputs = Vec::with_capacity(prior.len());
    let mut next_jobs = Vec::with_capacity(prior.len());
    let mut reused_from = None;
    for meta in &prior {
        let Some(data) = inner.store.get_blob_data(&job.tenant, meta.id)? else {
            return Ok(false);
        };
        if let Some(producer) = &meta.producer {
            reused_from.get_or_insert(producer.job_id);
        }
        next_jobs.push(inner.plugins.route(&meta.schema));
        outputs.push(NewOutput {
            schema: meta.schema.clone(),
            data,
            extra_parents: meta.parents.iter().skip(1).copied().collect(),
        });
    }
    let completion = Completion {
        outputs,
        next_jobs,
        component_digest: p.record.digest.clone(),
        config_digest: p.config_digest.clone(),
        cost: Cost::default(),
        effect_calls: Vec::new(),
        reused_from,
        idempotency_key: Some(key),
    };
    complete(inner, job, completion, slot).await?;
    Ok(true)
}

/// Completes `job`, claiming in the same transaction as many of its next
/// jobs as there are free slots and handing them to the dispatcher. The
/// job's own slot is given back first: its call is over.
async fn complete(
    inner: &Inner,
    job: &Job,
    completion: Completion,
    slot: &mut Slot,
) -> Result<(), StoreError> {
    let output_bytes = completion.outputs.iter().map(|o| o.data.len()).sum();
    let _awaiting = release_for_commit(inner, slot, output_bytes).await;
    let next = completion.next_jobs.iter().map(Vec::len).sum();
    let permits = reserve(inner, next);
    let (_, claimed) = inner
        .store
        .complete_job_and_claim(job.id, completion, permits.len())
        .await?;
    hand_over(inner, claimed, permits);
    Ok(())
}

fn check_outputs(
    inner: &Inner,
    p: &Loaded,
    outputs: Vec<Output>,
) -> Result<(Vec<NewOutput>, Vec<Vec<JobSpec>>), String> {
    let mut checked = Vec::with_capacity(outputs.len());
    let mut next_jobs = Vec::with_capacity(outputs.len());
    for (i, output) in outputs.into_iter().enumerate() {
        if !p
            .manifest
            .outputs
            .iter()
            .any(|s| s.as_str() == output.schema)
        {
            return Err(format!(
                "output {i} has schema `{}`, which is not among the plugin's declared outputs",
                output.schema
            ));
        }
        inner
            .schemas
            .validate(&output.schema, &output.data)
            .map_err(|e| format!("output {i} ({}): {e}", output.schema))?;
        let mut extra = Vec::with_capacity(output.extra_parents.len());
        for parent in &output.extra_parents {
            let id = parent.parse::<BlobId>().map_err(|_| {
                format!("output {i} names parent `{parent}`, which is not a blob id")
            })?;
            extra.push(id);
        }
        next_jobs.push(inner.plugins.route(&output.schema));
        checked.push(NewOutput {
            schema: output.schema,
            data: output.data,
            extra_parents: extra,
        });
    }
    Ok((checked, next_jobs))
}

async fn fail(
    inner: &Inner,
    p: &Loaded,
    job: &Job,
    failure: Failure,
    cost: Cost,
) -> Result<Outcome, StoreError> {
    let max_retries = p.plugin.limits().max_retries;
    let retries_left = job.attempt <= max_retries;
    let reason = format!("{}: {failure}", failure.kind());
    if failure.retryable() && retries_left {
        let retry_at = reyna_store::now_ms() + backoff(inner, job).as_millis() as u64;
        inner
            .store
            .fail_job(
                job.id,
                reyna_store::Failure {
                    reason,
                    cost,
                    retry_at: Some(retry_at),
                },
            )
            .await?;
        return Ok(Outcome::Retried);
    }
    let reason = if failure.retryable() {
        format!("{reason} (gave up after {} attempts)", job.attempt)
    } else {
        reason
    };
    dead(inner, job, reason, cost).await?;
    Ok(if matches!(failure, Failure::InvalidInput(_)) {
        Outcome::InputRejected
    } else {
        Outcome::DeadLettered
    })
}
