//! Commit: records every outcome of a job in one store operation each:
//! validated outputs (with their lineage, events and next jobs), a stored
//! result reused, an effect sink's receipt, a retry with backoff, or a dead
//! letter. The one module that writes a job's outcome.

use std::sync::Arc;
use std::time::Duration;

use reyna_runtime::{Failure, HttpRecord, Output};
use reyna_store::{
    BlobId, BlobMeta, Completed, Completion, Cost, Digest, EffectCall, EffectOutcome, FailOutcome,
    FailedRun, GuestLog, IdemKey, Job, JobSpec, NewOutput, SecretUse, StoreError,
};

use crate::executor::{Executed, Ran};
use crate::inner::Inner;
use crate::plugins::{Loaded, Outcome};
use crate::slots::Slot;

/// Exponential backoff with deterministic jitter (from the job id), so a
/// burst of failures does not retry in lockstep.
fn backoff(inner: &Inner, job: &Job) -> Duration {
    let base = inner.config.backoff_base.as_millis() as u64;
    let cap = inner.config.backoff_max.as_millis() as u64;
    let exp = base
        .saturating_mul(1u64 << job.attempt.saturating_sub(1).min(20))
        .min(cap);
    let seed = job.id.seed() ^ u64::from(job.attempt).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let jitter = seed % 1000; // 0..1000 per mille
    Duration::from_millis(exp / 2 + exp * jitter / 2000)
}

/// Sends `job` to the dead letters with `reason`.
pub(crate) async fn dead(
    inner: &Inner,
    job: &Job,
    reason: String,
    cost: Cost,
    log: GuestLog,
) -> Result<FailOutcome, StoreError> {
    tracing::info!(job = %job.id, plugin = %job.plugin, %reason, "dead letter");
    let run = FailedRun {
        reason,
        cost,
        retry_at: None,
        log,
    };
    inner.store.fail_job(job.id, run).await
}

/// Records what a call returned: outputs, a receipt, or a failure.
/// `secrets` are the installation secrets the run read, for lineage.
pub(crate) async fn executed(
    inner: &Inner,
    p: &Loaded,
    job: &Job,
    executed: Executed,
    key: IdemKey,
    secrets: Vec<SecretUse>,
    slot: &mut Slot,
) -> Result<Outcome, StoreError> {
    let cost = executed.cost;
    let log = GuestLog {
        lines: executed.logs,
        truncated: executed.log_truncated,
    };
    match executed.ran {
        Ran::Outputs(result) => {
            // Only a result that depends on nothing but the input may be
            // reused for another input with the same content.
            let pure = !executed.read_other_blobs && executed.effect_calls.is_empty();
            let call = Call {
                result,
                cost,
                effect_calls: executed.effect_calls,
                config_digest: key.config_digest,
                idempotency_key: pure.then_some(key),
                secrets,
                log,
            };
            outputs(inner, p, job, call, slot).await
        }
        Ran::Receipt { receipt, requests } => {
            let receipt = Receipt {
                receipt,
                requests: &requests,
                event_digest: key.input_digest,
                config_digest: key.config_digest,
                secrets,
            };
            receipt_of(inner, p, job, receipt, cost, log, slot).await
        }
    }
}

/// A processor call's result, to record.
struct Call {
    result: Result<Vec<Output>, Failure>,
    cost: Cost,
    effect_calls: Vec<EffectCall>,
    /// Digest of the installation config the run saw.
    config_digest: Digest,
    /// Set when the result may be reused for the same input content.
    idempotency_key: Option<IdemKey>,
    secrets: Vec<SecretUse>,
    log: GuestLog,
}

/// Validated outputs complete the job; a failure (or an invalid output)
/// retries or dead-letters it.
async fn outputs(
    inner: &Inner,
    p: &Loaded,
    job: &Job,
    call: Call,
    slot: &mut Slot,
) -> Result<Outcome, StoreError> {
    let Call {
        result,
        cost,
        effect_calls,
        config_digest,
        idempotency_key,
        secrets,
        log,
    } = call;
    let outputs = match result {
        Ok(outputs) => outputs,
        Err(failure) => return fail(inner, p, job, failure, cost, log).await,
    };
    let (new_outputs, next_jobs) = match check_outputs(inner, p, &job.tenant, outputs) {
        Ok(checked) => checked,
        Err(reason) => {
            return fail(inner, p, job, Failure::InvalidOutput { reason }, cost, log).await;
        }
    };
    let completion = Completion {
        outputs: new_outputs,
        next_jobs,
        component_digest: p.record.digest,
        config_digest,
        cost,
        effect_calls,
        reused_from: None,
        idempotency_key,
        log: log.clone(),
        secrets,
        ..Completion::default()
    };
    match complete(inner, job, completion, slot).await {
        Ok(outcome) => Ok(outcome),
        Err(StoreError::ParentNotFound { id, .. }) => {
            let failure = Failure::InvalidOutput {
                reason: format!("extra parent {id} does not exist in this tenant"),
            };
            fail(inner, p, job, failure, cost, log).await
        }
        Err(e) => Err(e),
    }
}

/// What an effect run as a sink returned.
struct Receipt<'a> {
    receipt: Result<Vec<u8>, Failure>,
    requests: &'a [HttpRecord],
    /// Digest of the event's blob data (the sink's request).
    event_digest: Digest,
    config_digest: Digest,
    secrets: Vec<SecretUse>,
}

/// Stores an effect sink's receipt as an `effect-receipt-v1` blob derived
/// from the event's blob, or retries or dead-letters the job.
async fn receipt_of(
    inner: &Inner,
    p: &Loaded,
    job: &Job,
    sink: Receipt<'_>,
    cost: Cost,
    log: GuestLog,
    slot: &mut Slot,
) -> Result<Outcome, StoreError> {
    let (requests, event_digest, config_digest) =
        (sink.requests, sink.event_digest, sink.config_digest);
    let receipt = match sink.receipt {
        Ok(receipt) => receipt,
        Err(failure) => return fail(inner, p, job, failure, cost, log).await,
    };
    let receipt_json = serde_json::from_slice::<serde_json::Value>(&receipt).unwrap_or_else(|_| {
        serde_json::Value::String(String::from_utf8_lossy(&receipt).into_owned())
    });
    let requests: Vec<serde_json::Value> = requests
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
        response_digest: Some(Digest::of(&receipt)),
        duration_us: cost.wall_us,
        outcome: EffectOutcome::Ok,
    };
    let completion = Completion {
        next_jobs: vec![inner.plugins.route("effect-receipt-v1", &job.tenant)],
        outputs: vec![NewOutput {
            schema: "effect-receipt-v1".to_owned(),
            data,
            extra_parents: Vec::new(),
        }],
        component_digest: p.record.digest,
        config_digest,
        cost,
        effect_calls: vec![call],
        reused_from: None,
        idempotency_key: None,
        log,
        secrets: sink.secrets,
        ..Completion::default()
    };
    complete(inner, job, completion, slot).await
}

/// Completes `job` from a stored result of the same component, config and
/// input content. Returns `None` when the stored result cannot be read.
pub(crate) async fn reuse(
    inner: &Inner,
    p: &Arc<Loaded>,
    job: &Job,
    prior: Vec<BlobMeta>,
    key: IdemKey,
    slot: &mut Slot,
) -> Result<Option<Outcome>, StoreError> {
    let mut outputs = Vec::with_capacity(prior.len());
    let mut next_jobs = Vec::with_capacity(prior.len());
    let mut reused_from = None;
    for meta in &prior {
        let Some(data) = inner.store.get_blob_data(&job.tenant, meta.id)? else {
            return Ok(None);
        };
        if let Some(producer) = &meta.producer {
            reused_from.get_or_insert(producer.job_id);
        }
        next_jobs.push(inner.plugins.route(&meta.schema, &job.tenant));
        outputs.push(NewOutput {
            schema: meta.schema.clone(),
            data,
            extra_parents: meta.parents.iter().skip(1).copied().collect(),
        });
    }
    let completion = Completion {
        outputs,
        next_jobs,
        component_digest: p.record.digest,
        config_digest: key.config_digest,
        cost: Cost::default(),
        effect_calls: Vec::new(),
        reused_from,
        idempotency_key: Some(key),
        log: GuestLog::default(),
        ..Completion::default()
    };
    Ok(Some(match complete(inner, job, completion, slot).await? {
        Outcome::Succeeded => Outcome::Reused,
        other => other,
    }))
}

/// Completes `job`, claiming in the same transaction as many of its next
/// jobs as there are free slots and handing them to the dispatcher. The
/// job's running slot is given back first: its call is over. Outputs that
/// would pass the tree budget dead-letter the job instead (not counted
/// against the plugin: the tree, not this call, is over).
async fn complete(
    inner: &Inner,
    job: &Job,
    mut completion: Completion,
    slot: &mut Slot,
) -> Result<Outcome, StoreError> {
    completion.max_tree_blobs = Some(inner.config.max_tree_blobs);
    let output_bytes = completion.outputs.iter().map(|o| o.data.len()).sum();
    let _awaiting = match inner.slots.get() {
        Some(slots) => slots.release_for_commit(slot, output_bytes).await,
        None => None,
    };
    let next = completion.next_jobs.iter().map(Vec::len).sum();
    let (permits, _) = inner.reserve_for(&job.tenant, next);
    let reserved = permits.len();
    let completed = inner
        .store
        .complete_job_and_claim(job.id, completion, reserved)
        .await
        .inspect_err(|_| inner.quotas.release(&job.tenant, reserved))?;
    match completed {
        Completed::Stored { claimed, .. } => {
            inner.hand_over(&job.tenant, claimed, permits);
            Ok(Outcome::Succeeded)
        }
        Completed::OverTreeBudget { reason, .. } => {
            inner.hand_over(&job.tenant, Vec::new(), permits);
            tracing::info!(job = %job.id, plugin = %job.plugin, %reason, "dead letter");
            Ok(Outcome::InputRejected)
        }
    }
}

fn check_outputs(
    inner: &Inner,
    p: &Loaded,
    tenant: &str,
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
        // The input is a parent too.
        let max = inner.config.max_parents;
        if output.extra_parents.len() >= max {
            return Err(format!(
                "output {i} names {} extra parents; a blob may have at most {max} parents, its input included",
                output.extra_parents.len()
            ));
        }
        let mut extra = Vec::with_capacity(output.extra_parents.len());
        for parent in &output.extra_parents {
            let id = parent.parse::<BlobId>().map_err(|_| {
                format!("output {i} names parent `{parent}`, which is not a blob id")
            })?;
            extra.push(id);
        }
        next_jobs.push(inner.plugins.route(&output.schema, tenant));
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
    log: GuestLog,
) -> Result<Outcome, StoreError> {
    let max_retries = p.plugin.limits().max_retries;
    let retries_left = job.attempt <= max_retries;
    let reason = format!("{}: {failure}", failure.kind());
    if failure.retryable() && retries_left {
        let retry_at = inner.store.now_ms() + backoff(inner, job).as_millis() as u64;
        let run = FailedRun {
            reason,
            cost,
            retry_at: Some(retry_at),
            log,
        };
        inner.store.fail_job(job.id, run).await?;
        return Ok(Outcome::Retried {
            fault: failure.is_plugin_fault(),
        });
    }
    let reason = if failure.retryable() {
        format!("{reason} (gave up after {} attempts)", job.attempt)
    } else {
        reason
    };
    dead(inner, job, reason, cost, log).await?;
    Ok(if matches!(failure, Failure::InvalidInput(_)) {
        Outcome::InputRejected
    } else {
        Outcome::DeadLettered {
            fault: failure.is_plugin_fault(),
        }
    })
}
