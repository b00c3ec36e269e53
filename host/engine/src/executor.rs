//! Running a job's call: the [`Executor`] trait and its two
//! implementations, the local sandbox ([`Local`]) and the transport to
//! remote workers ([`Transported`]). An executor only runs the call and
//! reports what happened; the job's task commits it (`commit`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use reyna_manifest::Kind;
use reyna_runtime::{
    CallContext, EffectContext, EffectReport, Event, Failure, HttpRecord, LogLine, Output,
};
use reyna_store::{Cost, Digest, EffectCall, Job};
use tokio::sync::{oneshot, watch};

use crate::error::EngineError;
use crate::host::{JobHost, Recorded};
use crate::inner::Inner;
use crate::installs::Resolved;
use crate::plugins::Loaded;
use crate::remote::{CallConfig, RemoteJob, RemoteOutcome};

/// What one job's call needs: the admitted job, its plugin and its event.
pub(crate) struct Work {
    pub job: Job,
    pub plugin: Arc<Loaded>,
    /// The tenant's installation: the config the call sees.
    pub install: Arc<Resolved>,
    pub event: Event,
    /// Digest and size of the input's data.
    pub input_digest: Digest,
    pub input_size: u64,
    /// Seed of the call's `wasi:random` (from the job id: re-runs repeat it).
    pub seed: u64,
    /// Replay mode: effect calls are answered from these recorded responses.
    pub replay: Option<Arc<Recorded>>,
}

/// What the guest returned.
pub(crate) enum Ran {
    /// A processor's outputs.
    Outputs(Result<Vec<Output>, Failure>),
    /// An effect run as a sink: its receipt and every request it made.
    Receipt {
        receipt: Result<Vec<u8>, Failure>,
        requests: Vec<HttpRecord>,
    },
}

/// A finished call, for the commit.
pub(crate) struct Executed {
    pub ran: Ran,
    pub cost: Cost,
    /// Every effect call the guest made, in order.
    pub effect_calls: Vec<EffectCall>,
    /// Whether the guest read blobs other than its input or called an
    /// effect: such a result is never reused for another input.
    pub read_other_blobs: bool,
    /// The guest's log, bounded and redacted by the runtime.
    pub logs: Vec<LogLine>,
    pub log_truncated: bool,
    /// The secret config keys the plugin itself read.
    pub secrets_read: Vec<String>,
    /// A remote result's sender, told what the commit did.
    pub reply: Option<oneshot::Sender<Result<RemoteOutcome, EngineError>>>,
}

impl Executed {
    /// Fails the call with `failure`, whatever the guest returned.
    pub(crate) fn fail(&mut self, failure: Failure) {
        match &mut self.ran {
            Ran::Outputs(result) => *result = Err(failure),
            Ran::Receipt { receipt, .. } => *receipt = Err(failure),
        }
    }
}

/// A boxed executor future.
pub(crate) type ExecFuture<'a> = Pin<Box<dyn Future<Output = Option<Executed>> + Send + 'a>>;

/// Runs admitted work. `None`: the call was abandoned because the engine is
/// stopping (the job stays running in the store and is due again at the
/// next start).
pub(crate) trait Executor: Send + Sync {
    fn execute(&self, work: Work) -> ExecFuture<'_>;
}

/// The sandbox in this process.
pub(crate) struct Local {
    pub inner: Arc<Inner>,
}

impl Executor for Local {
    fn execute(&self, work: Work) -> ExecFuture<'_> {
        Box::pin(async move {
            let inner = &self.inner;
            let p = &work.plugin;
            let mut host = JobHost::new(inner.clone(), &work.job.tenant, work.job.id, work.seed);
            host.replay = work.replay;
            let host = Arc::new(host);
            let install = &work.install;
            let executed = if p.manifest.kind == Kind::Effect {
                // A sink reaches out like an effect call: the tenant's
                // budgets apply, and its usage is metered.
                let replaying = host.replay.is_some();
                let tenant = &work.job.tenant;
                let limits = if replaying {
                    Vec::new()
                } else {
                    inner.quotas.window_limits(tenant)
                };
                let report = match crate::host::budget_left(inner, tenant, &limits) {
                    Err(hit) => EffectReport::refused(Failure::BudgetExceeded(hit.message)),
                    Ok(()) => {
                        let ctx = EffectContext {
                            config: install.config.clone(),
                            secret_keys: install.secret_keys.clone(),
                            host: host.clone(),
                            policy: Arc::new(inner.config.effects.policy(&p.record.name)),
                            seed: work.seed,
                        };
                        let mut report = inner.runtime.deliver(&p.plugin, work.event, ctx).await;
                        if !replaying {
                            let units = std::mem::take(&mut report.units);
                            crate::host::meter_effect(inner, tenant, units, limits).await;
                        }
                        report
                    }
                };
                Executed {
                    ran: Ran::Receipt {
                        receipt: report.result,
                        requests: report.requests,
                    },
                    cost: report.cost,
                    // A sink's own record is its receipt (`commit`).
                    effect_calls: Vec::new(),
                    read_other_blobs: true,
                    logs: report.logs,
                    log_truncated: report.log_truncated,
                    secrets_read: report.secrets_read,
                    reply: None,
                }
            } else {
                let ctx = CallContext {
                    config: install.config.clone(),
                    secret_keys: install.secret_keys.clone(),
                    host: host.clone(),
                    allowed_effects: p.manifest.effects.clone(),
                    seed: work.seed,
                };
                let report = inner.runtime.call(&p.plugin, work.event, ctx).await;
                metrics::histogram!("reyna_instantiate_seconds")
                    .record(report.instantiate_us as f64 / 1e6);
                Executed {
                    ran: Ran::Outputs(report.result),
                    cost: report.cost,
                    effect_calls: report.effect_calls,
                    read_other_blobs: host.read_other_blobs.load(Ordering::Relaxed),
                    logs: report.logs,
                    log_truncated: report.log_truncated,
                    secrets_read: report.secrets_read,
                    reply: None,
                }
            };
            Some(executed)
        })
    }
}

/// Remote workers, through the transport: publishes the job and waits for
/// its result (or for the engine to stop).
pub(crate) struct Transported {
    pub inner: Arc<Inner>,
}

impl Transported {
    /// Whether a job of `p` goes to the transport: a processor's, when a
    /// transport is set, unless it replays recorded effects.
    pub(crate) fn takes(inner: &Inner, p: &Loaded, replaying: bool) -> bool {
        inner.remote.get().is_some() && p.manifest.kind == Kind::Processor && !replaying
    }
}

impl Executor for Transported {
    fn execute(&self, work: Work) -> ExecFuture<'_> {
        Box::pin(async move {
            let inner = &self.inner;
            let remote = inner.remote.get()?;
            let mut event = work.event;
            let inline = event.blob.data.len() <= inner.config.remote.inline_max;
            if !inline {
                event.blob.data = Vec::new();
            }
            let p = &work.plugin;
            let message = RemoteJob {
                job_id: work.job.id.to_string(),
                attempt: work.job.attempt,
                plugin: work.job.plugin.clone(),
                version: work.job.version.clone(),
                component_digest: p.record.digest,
                effects: p.manifest.effects.clone(),
                seed: work.seed,
                event,
                inline,
                data_size: work.input_size,
                data_digest: work.input_digest,
            };
            let started = Instant::now();
            // The config (secrets included) never travels in the message: a
            // worker gets it by claiming the job (`Engine::claim_remote`).
            let config = CallConfig {
                config: work.install.config.clone(),
                secret_keys: work.install.secret_keys.clone(),
            };
            let arrival = remote.send(work.job.id, message, config).await;
            let mut shutdown: watch::Receiver<bool> = inner.shutdown.subscribe();
            let delivery = tokio::select! {
                delivery = arrival => delivery.ok(),
                _ = shutdown.wait_for(|stop| *stop) => None,
            };
            let Some(delivery) = delivery else {
                // Stopping: the job stays running in the store and is due
                // again at the next start.
                remote.finish(work.job.id);
                return None;
            };
            let result = delivery.result;
            tracing::trace!(job = %work.job.id, worker = result.worker, waited_us = started.elapsed().as_micros() as u64, "result arrived");
            Some(Executed {
                ran: Ran::Outputs(result.result),
                cost: result.cost,
                effect_calls: result.effect_calls,
                read_other_blobs: result.read_other_blobs,
                logs: result.logs,
                log_truncated: result.log_truncated,
                secrets_read: result.secrets_read,
                reply: Some(delivery.reply),
            })
        })
    }
}
