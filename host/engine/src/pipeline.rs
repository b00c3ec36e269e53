//! The job pipeline. The dispatcher claims due jobs (and receives those
//! claimed at ingest or completion) and gives each to one task, which owns
//! it from claim to commit: it holds the job's slot and its in-flight count
//! the whole time and carries it through three steps, each a module below
//! this one:
//!
//! 1. **admit** (`admit`): load the plugin, the input and the limits, or
//!    refuse with a reason;
//! 2. **execute** (`executor`): the local sandbox, or the transport to
//!    remote workers, whose arriving result only wakes this task;
//! 3. **commit** (`commit`): record the outcome in one store operation.
//!
//! Then the task counts the outcome in the plugin's statistics and pauses
//! the plugin when its recent calls mostly failed. Nothing calls back up.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use reyna_runtime::Failure;
use reyna_store::{Cost, GuestLog, InstallationChange, Job, NewAudit, StoreError};
use tokio::sync::{OwnedSemaphorePermit, mpsc, watch};
use tokio::task::JoinSet;

use crate::admit::{Admission, Admitted, Probe, admit};
use crate::commit;
use crate::executor::{Executor, Local, Transported};
use crate::inner::Inner;
use crate::plugins::{Loaded, Outcome, next_pause};
use crate::remote::RemoteOutcome;
use crate::slots::Claimed;

/// Counts a job in flight from claim until its task ends, whatever path it
/// takes; waiters for idleness are told when it ends.
struct InFlight(Arc<Inner>);

impl InFlight {
    fn enter(inner: &Arc<Inner>) -> Self {
        inner.in_flight.fetch_add(1, Ordering::SeqCst);
        Self(inner.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.0.job_finished.send_modify(|n| *n += 1);
    }
}

/// Starts the task that owns a claimed job.
fn spawn_job(inner: &Arc<Inner>, tasks: &mut JoinSet<()>, (job, claim): Claimed) {
    let in_flight = InFlight::enter(inner);
    tasks.spawn(run_job(inner.clone(), job, claim, in_flight));
}

/// Runs until `shutdown` turns true, then waits for the jobs in flight to
/// commit. Runs the jobs it claims and those handed over through
/// `handoff`, each holding one claim slot.
pub(crate) async fn dispatch(
    inner: Arc<Inner>,
    mut handoff: mpsc::UnboundedReceiver<Claimed>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut jobs_changed = inner.store.watch_jobs();
    let mut tasks: JoinSet<()> = JoinSet::new();
    // Claims go round-robin across tenants, each its share of jobs per
    // turn: each claim starts where the previous one stopped.
    let mut cursor: Option<reyna_store::ClaimCursor> = None;
    // Set when jobs are due but every tenant with due work is at its
    // running-jobs quota: wait for a job to finish, not for the due time.
    let mut capped = false;
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
        let now = inner.store.now_ms();
        let next_due = inner.store.next_due_at();
        // Only claim when a job is due: most jobs are claimed as they are
        // created (`Slots::reserve`), and a claim costs a commit.
        let due_now = match next_due {
            Ok(Some(due)) => due <= now,
            Ok(None) => false,
            Err(_) => true,
        };
        if due_now {
            // Slots first, then as many jobs: ingest and completions take
            // free slots too, so counting them is not enough to hold them.
            let reserved = inner.reserve(inner.config.claim_batch);
            if !reserved.is_empty() {
                let policy = inner.quotas.claim_policy(cursor.clone());
                match inner
                    .store
                    .claim_due_jobs_fairly(now, reserved.len(), policy)
                    .await
                {
                    Ok((jobs, stopped)) if !jobs.is_empty() => {
                        cursor = stopped;
                        capped = false;
                        inner
                            .quotas
                            .add_claimed(jobs.iter().map(|j| j.tenant.as_str()));
                        for claimed in jobs.into_iter().zip(reserved) {
                            spawn_job(&inner, &mut tasks, claimed);
                        }
                        continue;
                    }
                    Ok(_) => capped = true,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot claim jobs; retrying shortly");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                }
            }
        }
        // Nothing to claim (or no free slot): wait for a new job, a handed
        // over or finished one, the next due time, or shutdown.
        let wait = match next_due {
            Ok(Some(due)) if !(capped && due <= now) => {
                Duration::from_millis(due.saturating_sub(now).max(1))
            }
            _ => Duration::from_secs(60),
        };
        tokio::select! {
            _ = jobs_changed.changed() => {}
            _ = inner.claims_changed.notified() => {}
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

/// One job, from claim to commit.
async fn run_job(inner: Arc<Inner>, job: Job, claim: OwnedSemaphorePermit, _in_flight: InFlight) {
    // Counted against its tenant's running-jobs quota since its claim.
    let _running = crate::quotas::RunningJob {
        quotas: inner.quotas.clone(),
        tenant: job.tenant.clone(),
    };
    let started = Instant::now();
    match carry(&inner, &job, claim).await {
        Ok(Some(Carried {
            plugin,
            outcome,
            remote_wall_us,
            probe,
        })) => {
            // A remote call's own time; locally, the job's time here.
            let wall_us = remote_wall_us.unwrap_or_else(|| started.elapsed().as_micros() as u64);
            count(
                &inner,
                &job.tenant,
                &plugin,
                outcome,
                wall_us,
                probe.is_some(),
            )
            .await;
        }
        Ok(None) => {}
        Err(e) => {
            // The store failed while recording the outcome: the job stays
            // running and is made due again at the next start.
            tracing::error!(job = %job.id, error = %e, "cannot record job outcome");
        }
    }
}

/// What a job's statistics count.
struct Carried {
    plugin: Arc<Loaded>,
    outcome: Outcome,
    /// Wall time of a call run remotely.
    remote_wall_us: Option<u64>,
    /// Set when the job probed a paused installation (held until counted).
    probe: Option<Probe>,
}

impl Carried {
    fn local(plugin: Arc<Loaded>, outcome: Outcome, probe: Option<Probe>) -> Option<Self> {
        Some(Self {
            plugin,
            outcome,
            remote_wall_us: None,
            probe,
        })
    }
}

/// Admits, executes and commits `job`; returns what its statistics count
/// (`None`: nothing).
async fn carry(
    inner: &Arc<Inner>,
    job: &Job,
    claim: OwnedSemaphorePermit,
) -> Result<Option<Carried>, StoreError> {
    let (work, key, prior, _lease, probe) = match admit(inner, job)? {
        Admission::Unregistered(reason) => {
            commit::dead(inner, job, reason, Cost::default(), GuestLog::default()).await?;
            return Ok(None);
        }
        Admission::Refused(p, reason) => {
            commit::dead(inner, job, reason, Cost::default(), GuestLog::default()).await?;
            return Ok(Carried::local(p, Outcome::InputRejected, None));
        }
        Admission::Deferred { until, note } => {
            inner.store.defer_job(job.id, until, note).await?;
            return Ok(None);
        }
        Admission::Run(admitted) => {
            let Admitted {
                work,
                key,
                prior,
                lease,
                probe,
            } = *admitted;
            (work, key, prior, lease, probe)
        }
    };
    let install = work.install.clone();
    let p = work.plugin.clone();
    let remote = Transported::takes(inner, &p, work.replay.is_some());
    // Locally the claim is traded for a running slot, given back once the
    // call returns (`commit`); remotely the claim is held until the
    // result is committed.
    let (mut slot, _held) = match (remote, inner.slots.get()) {
        (false, Some(slots)) => (Some(slots.start_running(&job.tenant, claim).await), None),
        (false, None) => (Some(crate::slots::Held::Claim(claim)), None),
        (true, _) => (None, Some(claim)),
    };
    if let Some(prior) = prior
        && let Some(outcome) = commit::reuse(inner, &p, job, prior, key.clone(), &mut slot).await?
    {
        return Ok(Carried::local(p, outcome, probe));
    }
    let executed = if remote {
        Transported {
            inner: inner.clone(),
        }
        .execute(work)
        .await
    } else {
        Local {
            inner: inner.clone(),
        }
        .execute(work)
        .await
    };
    let Some(mut executed) = executed else {
        return Ok(None);
    };
    let reply = executed.reply.take();
    let remote_wall_us = remote.then_some(executed.cost.wall_us);
    let mut secrets = install.uses(&p.record.name, &executed.secrets_read);
    let notes = inner.take_effect_notes(job.id);
    secrets.extend(notes.secrets);
    if let Some(reason) = notes.budget {
        executed.fail(Failure::BudgetExceeded(reason));
    }
    secrets.sort();
    secrets.dedup();
    let committed = commit::executed(inner, &p, job, executed, key, secrets, &mut slot).await;
    if remote && let Some(transport) = inner.remote.get() {
        transport.finish(job.id);
    }
    if let Some(reply) = reply {
        let _ = reply.send(match &committed {
            Ok(_) => Ok(RemoteOutcome::Committed),
            Err(e) => Err(e.clone().into()),
        });
    }
    committed.map(|outcome| {
        Some(Carried {
            plugin: p,
            outcome,
            remote_wall_us,
            probe,
        })
    })
}

/// Counts a finished job in metrics and the installation's statistics,
/// and runs its circuit breaker: pauses the tenant's installation when its
/// recent calls mostly failed by the plugin's fault; after a probe, resumes
/// it (the probe succeeded) or pauses it again for longer (it failed by
/// the plugin's fault).
async fn count(
    inner: &Inner,
    tenant: &str,
    p: &Loaded,
    outcome: Outcome,
    wall_us: u64,
    probe: bool,
) {
    metrics::counter!("reyna_jobs_total", "plugin" => p.record.name.clone(), "outcome" => outcome.as_str())
        .increment(1);
    metrics::histogram!("reyna_job_duration_seconds", "plugin" => p.record.name.clone())
        .record(wall_us as f64 / 1e6);
    let pause = inner
        .plugins
        .record(tenant, p, outcome, wall_us, inner.pause_policy());
    let Some(default) = p.default_for(tenant) else {
        return;
    };
    let name = &p.record.name;
    let installs = &inner.plugins.installs;
    let current = installs.resolve(tenant, name, default);
    let change = if probe {
        match outcome {
            Outcome::Succeeded | Outcome::Reused => {
                inner.plugins.reset_window(tenant, name);
                Some((
                    InstallationChange::Resume,
                    "plugin.resume",
                    "a probe succeeded".to_owned(),
                ))
            }
            Outcome::Retried { fault: true } | Outcome::DeadLettered { fault: true } => {
                let reason = format!("a probe failed ({})", outcome.as_str());
                let pause = next_pause(
                    current.paused(),
                    reason.clone(),
                    &p.record.version,
                    inner.config.pause_probe_after,
                    inner.config.pause_probe_max,
                );
                Some((InstallationChange::Pause(pause), "plugin.pause", reason))
            }
            // Neither the plugin's success nor its fault: the next job probes.
            _ => None,
        }
    } else {
        pause.filter(|_| current.paused().is_none()).map(|reason| {
            let pause = next_pause(
                None,
                reason.clone(),
                &p.record.version,
                inner.config.pause_probe_after,
                inner.config.pause_probe_max,
            );
            (InstallationChange::Pause(pause), "plugin.pause", reason)
        })
    };
    let Some((change, action, detail)) = change else {
        return;
    };
    tracing::warn!(%tenant, plugin = %p.id(), action, %detail, "circuit breaker");
    let audit = NewAudit {
        actor: "engine".to_owned(),
        tenant: Some(tenant.to_owned()),
        action: action.to_owned(),
        target: p.id().to_string(),
        detail,
        ..NewAudit::default()
    };
    if let Err(e) = installs
        .change(tenant, name, default, change, Some(audit))
        .await
    {
        tracing::error!(%tenant, plugin = %p.id(), error = %e, "cannot record the circuit breaker's change");
    }
}
