//! Every write, as an operation the writer thread applies inside a shared
//! transaction. Each operation first checks everything it can reject (and
//! rejects with [`OpError::Rejected`] before writing anything), then writes;
//! an error while writing is [`OpError::Fatal`] and aborts the whole batch.

use std::collections::BTreeMap;

use redb::ReadableTable;

use crate::error::StoreError;
use crate::model::*;
use crate::tables::{
    IdemRecord, QUEUED_JOBS, STORED_BYTES, decode, encode, encode_binary, idem_key_in,
};
use crate::tx::Tx;

mod tenancy;
use crate::usage::{
    ClaimCursor, ClaimPolicy, IngestLimits, LimitCrossing, Usage, WindowLimit, rfc3339,
};
pub(crate) use tenancy::*;

/// Why an operation did not produce its output.
#[derive(Debug)]
pub(crate) enum OpError {
    /// The request was refused before anything was written; the rest of the
    /// batch carries on.
    Rejected(StoreError),
    /// Something failed after writes may have begun; the batch is aborted.
    Fatal(StoreError),
}

macro_rules! fatal_from {
    ($($ty:ty),*) => {$(
        impl From<$ty> for OpError {
            fn from(e: $ty) -> Self {
                Self::Fatal(StoreError::from(e))
            }
        }
    )*};
}

fatal_from!(StoreError, redb::StorageError, redb::TableError);

pub(crate) type OpResult<T> = Result<T, OpError>;

fn reject<T>(e: StoreError) -> OpResult<T> {
    Err(OpError::Rejected(e))
}

/// One write the writer thread can apply.
pub(crate) trait WriteOp: Send + 'static {
    /// What the caller gets back once the batch is durable.
    type Output: Send + 'static;

    /// Payload bytes, to bound how much one batch holds in memory.
    fn weight(&self) -> usize {
        0
    }

    /// Applies the operation. Must be repeatable: a batch that aborts is
    /// re-run one operation at a time.
    fn apply(&self, tx: &mut Tx<'_>) -> OpResult<Self::Output>;
}

/// Parents deduplicated in order, each checked to exist in `tenant`.
fn checked_parents(tx: &mut Tx<'_>, tenant: &str, parents: &[BlobId]) -> OpResult<Vec<BlobId>> {
    let mut out: Vec<BlobId> = Vec::with_capacity(parents.len());
    let mut seen = std::collections::HashSet::with_capacity(parents.len());
    for &p in parents {
        if !seen.insert(p) {
            continue;
        }
        match tx.blob(p)? {
            Some(meta) if meta.tenant == tenant => out.push(p),
            _ => return reject(StoreError::ParentNotFound { id: p }),
        }
    }
    Ok(out)
}

pub(crate) struct CreateBlob {
    pub(crate) blob: NewBlob,
    /// Digest of the data, computed on the caller's thread.
    pub(crate) digest: Digest,
    pub(crate) jobs: Vec<JobSpec>,
    /// How many of `jobs` (the first ones) to store already claimed.
    pub(crate) claim: usize,
    /// The tenant's quotas on what it holds, checked in this transaction.
    pub(crate) limits: IngestLimits,
    /// Whether the tenant has no job claimed (the caller knows): with no
    /// job of its own due either, its jobs are claimed even while other
    /// tenants' jobs wait.
    pub(crate) idle_tenant: bool,
}

impl WriteOp for CreateBlob {
    /// The blob, and the jobs stored claimed (running).
    type Output = (BlobMeta, Vec<Job>);

    fn weight(&self) -> usize {
        self.blob.data.len()
    }

    fn apply(&self, tx: &mut Tx<'_>) -> OpResult<Self::Output> {
        let parents = checked_parents(tx, &self.blob.tenant, &self.blob.parents)?;
        let id = BlobId::generate();
        let meta = BlobMeta {
            id,
            tenant: self.blob.tenant.clone(),
            schema: self.blob.schema.clone(),
            digest: self.digest,
            size: self.blob.data.len() as u64,
            created_at: tx.now,
            parents,
            hop: self.blob.hop,
            producer: None,
        };
        // Behind waiting jobs a new one waits its turn, unless its tenant
        // is idle (nothing of its own claimed or due): then this is its
        // turn, as the next round would give it.
        let waits = tx.backlog()? && (!self.idle_tenant || tx.has_due(&meta.tenant)?);
        let free = if waits { 0 } else { self.claim };
        check_holdings(
            tx,
            &meta,
            self.jobs.len().saturating_sub(free),
            &self.limits,
        )?;
        tx.insert_blob(&meta, &self.blob.data, true)?;
        let mut claimed = Vec::with_capacity(free.min(self.jobs.len()));
        for (i, spec) in self.jobs.iter().enumerate() {
            let claim = i < free;
            let job = tx.insert_job(&meta, meta.id, spec, claim)?;
            if claim {
                claimed.push(job);
            }
        }
        Ok((meta, claimed))
    }
}

/// Refuses a new blob that would take its tenant past its stored-bytes or
/// queued-jobs quota (`queued`: how many of its jobs would wait).
fn check_holdings(
    tx: &mut Tx<'_>,
    meta: &BlobMeta,
    queued: usize,
    limits: &IngestLimits,
) -> OpResult<()> {
    let tenant = meta.tenant.as_str();
    if let Some(limit) = limits.stored_bytes {
        let used = tx.tenant_count(tenant, STORED_BYTES)?;
        if used.saturating_add(meta.size) > limit {
            return reject(StoreError::QuotaExceeded {
                quota: "stored-bytes",
                used,
                adding: meta.size,
                limit,
            });
        }
    }
    if let Some(limit) = limits.queued_jobs.filter(|_| queued > 0) {
        let used = tx.tenant_count(tenant, QUEUED_JOBS)?;
        if used.saturating_add(queued as u64) > limit {
            return reject(StoreError::QuotaExceeded {
                quota: "queued-jobs",
                used,
                adding: queued as u64,
                limit,
            });
        }
    }
    Ok(())
}

pub(crate) struct CompleteJob {
    pub(crate) job: JobId,
    pub(crate) completion: Completion,
    /// sha256 of each output, computed on the caller's thread.
    pub(crate) digests: Vec<Digest>,
    /// How many of the next jobs (the first ones) to store already claimed.
    pub(crate) claim: usize,
    /// [`crate::tables::idem_digest`] of the completion's idempotency key,
    /// hashed on the caller's thread.
    pub(crate) idempotency: Option<[u8; 32]>,
}

impl WriteOp for CompleteJob {
    type Output = Completed;

    fn weight(&self) -> usize {
        self.completion.outputs.iter().map(|o| o.data.len()).sum()
    }

    fn apply(&self, tx: &mut Tx<'_>) -> OpResult<Self::Output> {
        let c = &self.completion;
        let Some(mut job) = tx.job(self.job)? else {
            return reject(StoreError::JobNotFound { id: self.job });
        };
        match job.state {
            // Replayed completion: answer with what the first one stored.
            JobState::Done => {
                let mut metas = Vec::with_capacity(job.outputs.len());
                for &id in &job.outputs {
                    if let Some(meta) = tx.blob(id)? {
                        metas.push(meta);
                    }
                }
                return Ok(Completed::Stored {
                    outputs: metas,
                    claimed: Vec::new(),
                });
            }
            JobState::Dead => {
                return reject(StoreError::JobState {
                    id: job.id,
                    state: job.state,
                    action: "complete",
                });
            }
            JobState::Pending | JobState::Running => {}
        }
        if !c.next_jobs.is_empty() && c.next_jobs.len() != c.outputs.len() {
            return reject(StoreError::NextJobsMisaligned {
                outputs: c.outputs.len(),
                next_jobs: c.next_jobs.len(),
            });
        }
        let Some(input) = tx.blob(job.blob_id)? else {
            return reject(StoreError::BlobNotFound { id: job.blob_id });
        };
        let tree_size = tx.tree_size(job.tree)?;
        let grown = tree_size.saturating_add(c.outputs.len() as u64);
        if let Some(limit) = c.max_tree_blobs.filter(|&limit| grown > limit) {
            let reason = format!(
                "tree-budget: the {} outputs would pass the budget of blob {}'s tree, which holds \
                 {tree_size} derived blobs of at most {limit} (max-tree-blobs)",
                c.outputs.len(),
                job.tree,
            );
            let dead_letter = dead_letter(tx, &mut job, &reason, c.cost)?;
            tx.put_job_log(job.id, job.attempt, &c.log)?;
            let run = Usage::of_run(&c.cost, true);
            tx.meter(&job.tenant, |u| u.add(&run));
            return Ok(Completed::OverTreeBudget {
                dead_letter,
                reason,
            });
        }
        let mut metas = Vec::with_capacity(c.outputs.len());
        for (index, (output, digest)) in c.outputs.iter().zip(&self.digests).enumerate() {
            // The input was read above; only extra parents need a lookup.
            let extra: Vec<BlobId> = output
                .extra_parents
                .iter()
                .copied()
                .filter(|&p| p != input.id)
                .collect();
            let mut parents = Vec::with_capacity(1 + extra.len());
            parents.push(input.id);
            parents.extend(checked_parents(tx, &job.tenant, &extra)?);
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            metas.push(BlobMeta {
                id: BlobId::derived(job.id, index),
                tenant: job.tenant.clone(),
                schema: output.schema.clone(),
                digest: *digest,
                size: output.data.len() as u64,
                created_at: tx.now,
                parents,
                hop: input.hop.saturating_add(1),
                producer: Some(Producer {
                    plugin: job.plugin.clone(),
                    version: job.version.clone(),
                    component_digest: c.component_digest,
                    config_digest: c.config_digest,
                    job_id: job.id,
                    attempt: job.attempt,
                    cost: c.cost,
                    effect_calls: c.effect_calls.clone(),
                    reused_from: c.reused_from,
                    secrets: c.secrets.clone(),
                }),
            });
        }

        // Everything checked; from here on only writes. The outputs are new:
        // only completing a job stores blobs with its derived ids, and a
        // done job returned above.
        let mut claimed = Vec::new();
        let mut enqueued = 0;
        let free = if tx.backlog()? { 0 } else { self.claim };
        for (i, (meta, output)) in metas.iter().zip(&c.outputs).enumerate() {
            tx.insert_blob(meta, &output.data, true)?;
            for spec in c.next_jobs.get(i).map(Vec::as_slice).unwrap_or_default() {
                let claim = enqueued < free;
                let job = tx.insert_job(meta, job.tree, spec, claim)?;
                enqueued += 1;
                if claim {
                    claimed.push(job);
                }
            }
        }
        if !metas.is_empty() {
            tx.set_tree_size(job.tree, grown)?;
        }
        tx.put_job_log(job.id, job.attempt, &c.log)?;
        let run = Usage::of_run(&c.cost, false);
        tx.meter(&job.tenant, |u| u.add(&run));
        job.outputs = metas.iter().map(|m| m.id).collect();
        job.last_error = None;
        let due = job.due_at;
        tx.move_job(&mut job, JobState::Done, due)?;
        if let Some(digest) = &self.idempotency {
            let key = idem_key_in(&job.tenant, digest);
            // The first run under a key stays the reference result.
            if tx.idempotency()?.get(key)?.is_none() {
                let record = IdemRecord {
                    job_id: job.id,
                    outputs: job.outputs.clone(),
                };
                tx.idempotency()?
                    .insert(key, encode_binary(&record).as_slice())?;
            }
        }
        Ok(Completed::Stored {
            outputs: metas,
            claimed,
        })
    }
}

pub(crate) struct FailJob {
    pub(crate) job: JobId,
    pub(crate) failure: FailedRun,
}

impl WriteOp for FailJob {
    type Output = FailOutcome;

    fn apply(&self, tx: &mut Tx<'_>) -> OpResult<FailOutcome> {
        let Some(mut job) = tx.job(self.job)? else {
            return reject(StoreError::JobNotFound { id: self.job });
        };
        if matches!(job.state, JobState::Done | JobState::Dead) {
            return reject(StoreError::JobState {
                id: job.id,
                state: job.state,
                action: "fail",
            });
        }
        job.last_error = Some(self.failure.reason.clone());
        tx.put_job_log(job.id, job.attempt, &self.failure.log)?;
        let run = Usage::of_run(&self.failure.cost, true);
        tx.meter(&job.tenant, |u| u.add(&run));
        match self.failure.retry_at {
            Some(due_at) => {
                job.attempt = job.attempt.saturating_add(1);
                tx.move_job(&mut job, JobState::Pending, due_at)?;
                Ok(FailOutcome::Retrying {
                    attempt: job.attempt,
                    due_at,
                })
            }
            None => {
                let id = dead_letter(tx, &mut job, &self.failure.reason, self.failure.cost)?;
                Ok(FailOutcome::DeadLettered { id })
            }
        }
    }
}

/// Moves `job` to the dead letters with `reason` and announces it with a
/// `job.failed.<plugin>` event.
fn dead_letter(
    tx: &mut Tx<'_>,
    job: &mut Job,
    reason: &str,
    cost: Cost,
) -> crate::error::Result<DeadLetterId> {
    job.last_error = Some(reason.to_owned());
    let due = job.due_at;
    tx.move_job(job, JobState::Dead, due)?;
    let letter = DeadLetter {
        id: DeadLetterId::generate(),
        job: job.clone(),
        reason: reason.to_owned(),
        cost,
        created_at: tx.now,
        replayed_at: None,
    };
    tx.dead_letters()?
        .insert(letter.id.key(), encode("dead letter", &letter)?.as_slice())?;
    tx.dead_letters_by_tenant()?
        .insert((job.tenant.as_str(), letter.id.key()), ())?;
    let subject = format!("job.failed.{}", job.plugin);
    tx.append_event(&job.tenant, subject, Some(job.blob_id), Some(job.id))?;
    Ok(letter.id)
}

pub(crate) struct ClaimDue {
    pub(crate) now: u64,
    pub(crate) limit: usize,
    pub(crate) policy: ClaimPolicy,
}

impl WriteOp for ClaimDue {
    type Output = (Vec<Job>, Option<ClaimCursor>);

    /// Deficit round-robin across the tenants with due work: each tenant in
    /// turn claims up to its weight in jobs (oldest due first), starting
    /// where the previous claim stopped, and none past its running cap, so
    /// one tenant's backlog delays another's job by at most one round.
    fn apply(&self, tx: &mut Tx<'_>) -> OpResult<Self::Output> {
        let now = self.now;
        let policy = &self.policy;
        // The tenants with a job due now, in id order: one lookup each,
        // skipping from one tenant's entries to the next tenant's.
        let mut tenants: Vec<String> = Vec::new();
        let mut from = String::new();
        loop {
            let next = tx
                .jobs_due_by_tenant()?
                .range((from.as_str(), 0, 0)..)?
                .next()
                .transpose()
                .map_err(StoreError::from)?
                .map(|(k, _)| {
                    let (tenant, due, _) = k.value();
                    (tenant.to_owned(), due)
                });
            let Some((tenant, due)) = next else { break };
            from = format!("{tenant}\0");
            if due <= now && policy.cap(&tenant).is_none_or(|cap| cap > 0) {
                tenants.push(tenant);
            }
        }
        // Resume: the tenant the last claim stopped in keeps what it had
        // left of its turn; else start after it.
        let mut resumed: Option<u32> = None;
        if let Some(cursor) = &policy.after {
            let split = tenants.partition_point(|t| *t < cursor.tenant);
            let keeps_turn =
                cursor.left > 0 && tenants.get(split).is_some_and(|t| *t == cursor.tenant);
            if keeps_turn {
                resumed = Some(cursor.left);
                tenants.rotate_left(split);
            } else {
                let split = tenants.partition_point(|t| *t <= cursor.tenant);
                tenants.rotate_left(split);
            }
        }
        let mut caps: std::collections::HashMap<String, usize> = tenants
            .iter()
            .filter_map(|t| Some((t.clone(), policy.cap(t)?)))
            .collect();
        let mut claimed = Vec::new();
        let mut cursor = None;
        while claimed.len() < self.limit && !tenants.is_empty() {
            let mut done = Vec::new();
            for (i, tenant) in tenants.iter().enumerate() {
                if claimed.len() == self.limit {
                    break;
                }
                let quantum = resumed.take().unwrap_or_else(|| policy.weight(tenant));
                let mut taken = 0;
                while taken < quantum && claimed.len() < self.limit {
                    if caps.get(tenant.as_str()).is_some_and(|&cap| cap == 0) {
                        done.push(i);
                        break;
                    }
                    let next = tx
                        .jobs_due_by_tenant()?
                        .range((tenant.as_str(), 0, 0)..=(tenant.as_str(), now, u128::MAX))?
                        .next()
                        .transpose()
                        .map_err(StoreError::from)?
                        .map(|(k, _)| (k.value().1, k.value().2));
                    let Some((due, id)) = next else {
                        done.push(i);
                        break;
                    };
                    match tx.job(JobId::from_key(id))? {
                        Some(mut job) => {
                            let due = job.due_at;
                            tx.move_job(&mut job, JobState::Running, due)?;
                            claimed.push(job);
                            taken += 1;
                            if let Some(cap) = caps.get_mut(tenant.as_str()) {
                                *cap -= 1;
                            }
                        }
                        // An index entry without its job would be a bug; drop
                        // it rather than wedge the dispatcher.
                        None => {
                            tx.jobs_due_by_tenant()?
                                .remove((tenant.as_str(), due, id))?;
                        }
                    }
                }
                cursor = Some(ClaimCursor {
                    tenant: tenant.clone(),
                    left: quantum - taken,
                });
            }
            done.dedup();
            for i in done.into_iter().rev() {
                tenants.remove(i);
            }
        }
        Ok((claimed, cursor))
    }
}

/// Meters an effect call's usage for a tenant and reports the windowed
/// limits it took to 80% or to 100%, each announced once: a
/// `tenant.budget.warning` or `tenant.budget.exhausted` event on the
/// tenant's stream and an audit entry with the figures.
pub(crate) struct RecordUsage {
    pub(crate) tenant: String,
    pub(crate) usage: Usage,
    pub(crate) limits: Vec<WindowLimit>,
}

impl WriteOp for RecordUsage {
    type Output = Vec<LimitCrossing>;

    fn apply(&self, tx: &mut Tx<'_>) -> OpResult<Vec<LimitCrossing>> {
        let mut crossings = Vec::new();
        for limit in &self.limits {
            let granularity = limit.window.granularity();
            let before = limit.used(&tx.usage_now(&self.tenant, granularity)?);
            let after = before.saturating_add(limit.used(&self.usage));
            let resets_at = granularity.next(granularity.start(tx.now));
            let warn = |used: u64| u128::from(used) * 5 >= u128::from(limit.limit) * 4;
            if limit.limit > 0 && !warn(before) && warn(after) {
                crossings.push(LimitCrossing {
                    limit: limit.clone(),
                    used: after,
                    exhausted: false,
                    resets_at,
                });
            }
            if before < limit.limit && after >= limit.limit {
                crossings.push(LimitCrossing {
                    limit: limit.clone(),
                    used: after,
                    exhausted: true,
                    resets_at,
                });
            }
        }
        for crossing in &crossings {
            let (subject, action) = if crossing.exhausted {
                ("tenant.budget.exhausted", "budget.exhausted")
            } else {
                ("tenant.budget.warning", "budget.warning")
            };
            tx.append_event(&self.tenant, subject.to_owned(), None, None)?;
            let limit = &crossing.limit;
            write_audit(
                tx,
                &NewAudit {
                    actor: "engine".to_owned(),
                    tenant: Some(self.tenant.clone()),
                    outcome: String::new(),
                    action: action.to_owned(),
                    target: limit.name(),
                    detail: format!(
                        "{} of {} {} this {}; resets at {}",
                        crossing.used,
                        limit.limit,
                        limit.metric,
                        limit.window.as_str(),
                        rfc3339(crossing.resets_at)
                    ),
                },
            )?;
        }
        tx.meter(&self.tenant, |u| u.add(&self.usage));
        Ok(crossings)
    }
}

pub(crate) struct RecoverRunning;

impl WriteOp for RecoverRunning {
    type Output = usize;

    fn apply(&self, tx: &mut Tx<'_>) -> OpResult<usize> {
        let mut ids = Vec::new();
        for entry in tx.jobs_running()?.iter()? {
            let (key, _) = entry.map_err(StoreError::from)?;
            ids.push(key.value());
        }
        let mut recovered = 0;
        for id in ids {
            if let Some(mut job) = tx.job(JobId::from_key(id))? {
                let now = tx.now;
                tx.move_job(&mut job, JobState::Pending, now)?;
                recovered += 1;
            }
        }
        Ok(recovered)
    }
}

pub(crate) struct ReplayDeadLetter {
    pub(crate) id: DeadLetterId,
}

impl WriteOp for ReplayDeadLetter {
    type Output = Job;

    fn apply(&self, tx: &mut Tx<'_>) -> OpResult<Job> {
        let mut letter: DeadLetter = match tx.dead_letters()?.get(self.id.key())? {
            Some(v) => decode("dead letter", v.value())?,
            None => return reject(StoreError::DeadLetterNotFound { id: self.id }),
        };
        if letter.replayed_at.is_some() {
            return reject(StoreError::AlreadyReplayed { id: self.id });
        }
        let Some(mut job) = tx.job(letter.job.id)? else {
            return reject(StoreError::JobNotFound { id: letter.job.id });
        };
        if job.state != JobState::Dead {
            return reject(StoreError::JobState {
                id: job.id,
                state: job.state,
                action: "replay",
            });
        }
        job.attempt = job.attempt.saturating_add(1);
        let now = tx.now;
        tx.move_job(&mut job, JobState::Pending, now)?;
        letter.replayed_at = Some(now);
        tx.dead_letters()?
            .insert(letter.id.key(), encode("dead letter", &letter)?.as_slice())?;
        Ok(job)
    }
}

pub(crate) struct EnqueueJob {
    pub(crate) tenant: String,
    pub(crate) blob: BlobId,
    pub(crate) spec: JobSpec,
    pub(crate) replay_effects: bool,
}

impl WriteOp for EnqueueJob {
    type Output = Job;

    fn apply(&self, tx: &mut Tx<'_>) -> OpResult<Job> {
        let meta = match tx.blob(self.blob)? {
            Some(meta) if meta.tenant == self.tenant => meta,
            _ => return reject(StoreError::BlobNotFound { id: self.blob }),
        };
        let tree = tx.tree_of(&meta)?;
        let mut job = tx.insert_job(&meta, tree, &self.spec, false)?;
        if self.replay_effects {
            job.replay_effects = true;
            tx.put_job(&job)?;
        }
        Ok(job)
    }
}

pub(crate) struct PutSchema {
    pub(crate) id: String,
    pub(crate) json: String,
}

impl WriteOp for PutSchema {
    /// The record, and whether this operation stored it (false: the same
    /// document was already registered).
    type Output = (SchemaRecord, bool);

    fn weight(&self) -> usize {
        self.json.len()
    }

    fn apply(&self, tx: &mut Tx<'_>) -> OpResult<(SchemaRecord, bool)> {
        let digest = Digest::of(self.json.as_bytes());
        if let Some(v) = tx.schemas()?.get(self.id.as_str())? {
            let existing: SchemaRecord = decode("schema", v.value())?;
            if existing.digest == digest {
                return Ok((existing, false));
            }
            return reject(StoreError::SchemaConflict {
                id: self.id.clone(),
            });
        }
        let record = SchemaRecord {
            id: self.id.clone(),
            json: self.json.clone(),
            digest,
            created_at: tx.now,
        };
        tx.schemas()?
            .insert(self.id.as_str(), encode("schema", &record)?.as_slice())?;
        Ok((record, true))
    }
}

/// Every other enabled version of `name` is disabled, so one version per
/// name is live; returns the records it changed.
fn disable_other_versions(tx: &mut Tx<'_>, name: &str, keep: &str) -> OpResult<Vec<PluginRecord>> {
    let mut others = Vec::new();
    for entry in tx.plugins()?.range((name, "")..)? {
        let (key, value) = entry.map_err(StoreError::from)?;
        let (n, v) = key.value();
        if n != name {
            break;
        }
        if v != keep {
            let record: PluginRecord = decode("plugin", value.value())?;
            if record.enabled {
                others.push(record);
            }
        }
    }
    for record in &mut others {
        record.enabled = false;
        tx.plugins()?.insert(
            (record.name.as_str(), record.version.as_str()),
            encode("plugin", &*record)?.as_slice(),
        )?;
    }
    Ok(others)
}

/// A plugin upload: the component bytes (kept once per digest), the
/// version's record, and, when the record is enabled, every other version
/// of the name disabled, all in one transaction.
pub(crate) struct InstallPlugin {
    pub(crate) record: PluginRecord,
    pub(crate) bytes: Vec<u8>,
    /// Digest of `bytes`, computed on the caller's thread.
    pub(crate) digest: Digest,
}

impl WriteOp for InstallPlugin {
    type Output = PluginChange;

    fn weight(&self) -> usize {
        self.bytes.len() + self.record.manifest_toml.len()
    }

    fn apply(&self, tx: &mut Tx<'_>) -> OpResult<PluginChange> {
        let r = &self.record;
        let key = (r.name.as_str(), r.version.as_str());
        if let Some(v) = tx.plugins()?.get(key)? {
            let existing: PluginRecord = decode("plugin", v.value())?;
            if existing.digest == r.digest {
                return Ok(PluginChange {
                    record: existing,
                    disabled: Vec::new(),
                    changed: false,
                });
            }
            return reject(StoreError::PluginConflict {
                name: r.name.clone(),
                version: r.version.clone(),
            });
        }
        if let Some(owner) = &r.owner
            && live_tenant(tx, owner)?.is_none()
        {
            return reject(StoreError::TenantNotFound { id: owner.clone() });
        }
        // A name has one owner: the platform or one tenant.
        for entry in tx.plugins()?.range((r.name.as_str(), "")..)? {
            let (key, value) = entry.map_err(StoreError::from)?;
            if key.value().0 != r.name {
                break;
            }
            let other: PluginRecord = decode("plugin", value.value())?;
            if other.owner != r.owner {
                return reject(StoreError::PluginNameTaken {
                    name: r.name.clone(),
                });
            }
        }
        let component_key = self.digest.hex();
        if tx.components()?.get(component_key.as_str())?.is_none() {
            tx.components()?
                .insert(component_key.as_str(), self.bytes.as_slice())?;
        }
        let disabled = if r.enabled {
            disable_other_versions(tx, &r.name, &r.version)?
        } else {
            Vec::new()
        };
        tx.plugins()?.insert(key, encode("plugin", r)?.as_slice())?;
        Ok(PluginChange {
            record: r.clone(),
            disabled,
            changed: true,
        })
    }
}

pub(crate) struct UpdatePlugin {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) enabled: Option<bool>,
    pub(crate) config: Option<BTreeMap<String, String>>,
}

impl WriteOp for UpdatePlugin {
    type Output = PluginChange;

    fn apply(&self, tx: &mut Tx<'_>) -> OpResult<PluginChange> {
        let key = (self.name.as_str(), self.version.as_str());
        let mut record: PluginRecord = match tx.plugins()?.get(key)? {
            Some(v) => decode("plugin", v.value())?,
            None => {
                return reject(StoreError::PluginNotFound {
                    name: self.name.clone(),
                    version: self.version.clone(),
                });
            }
        };
        let mut disabled = Vec::new();
        if let Some(enabled) = self.enabled {
            record.enabled = enabled;
            if enabled {
                disabled = disable_other_versions(tx, &self.name, &self.version)?;
            }
        }
        if let Some(config) = &self.config {
            record.config = config.clone();
        }
        tx.plugins()?
            .insert(key, encode("plugin", &record)?.as_slice())?;
        Ok(PluginChange {
            record,
            disabled,
            changed: true,
        })
    }
}

pub(crate) struct PutComponent {
    pub(crate) bytes: Vec<u8>,
}

impl WriteOp for PutComponent {
    type Output = Digest;

    fn weight(&self) -> usize {
        self.bytes.len()
    }

    fn apply(&self, tx: &mut Tx<'_>) -> OpResult<Digest> {
        let digest = Digest::of(&self.bytes);
        let key = digest.hex();
        if tx.components()?.get(key.as_str())?.is_none() {
            tx.components()?
                .insert(key.as_str(), self.bytes.as_slice())?;
        }
        Ok(digest)
    }
}

pub(crate) struct PutToken {
    pub(crate) token: NewToken,
}

impl WriteOp for PutToken {
    type Output = TokenRecord;

    fn apply(&self, tx: &mut Tx<'_>) -> OpResult<TokenRecord> {
        if live_tenant(tx, &self.token.tenant)?.is_none() {
            return reject(StoreError::TenantNotFound {
                id: self.token.tenant.clone(),
            });
        }
        if tx
            .tokens_by_hash()?
            .get(self.token.hash.as_str())?
            .is_some()
        {
            return reject(StoreError::TokenConflict);
        }
        let record = TokenRecord {
            id: TokenId::generate(),
            tenant: self.token.tenant.clone(),
            role: self.token.role,
            name: self.token.name.clone(),
            hash: self.token.hash.clone(),
            created_at: tx.now,
        };
        tx.tokens()?
            .insert(record.id.key(), encode("token", &record)?.as_slice())?;
        tx.tokens_by_hash()?
            .insert(record.hash.as_str(), record.id.key())?;
        Ok(record)
    }
}

pub(crate) struct DeleteToken {
    pub(crate) id: TokenId,
}

impl WriteOp for DeleteToken {
    type Output = bool;

    fn apply(&self, tx: &mut Tx<'_>) -> OpResult<bool> {
        let record: TokenRecord = match tx.tokens()?.get(self.id.key())? {
            Some(v) => decode("token", v.value())?,
            None => return Ok(false),
        };
        tx.tokens()?.remove(self.id.key())?;
        tx.tokens_by_hash()?.remove(record.hash.as_str())?;
        Ok(true)
    }
}

/// Appends `entry` to the audit log, at the next sequence, indexed under
/// its tenant when it has one.
fn write_audit(tx: &mut Tx<'_>, entry: &NewAudit) -> OpResult<AuditEntry> {
    let seq = tx.audit()?.last()?.map_or(1, |(k, _)| k.value() + 1);
    let outcome = if entry.outcome.is_empty() {
        "ok".to_owned()
    } else {
        entry.outcome.clone()
    };
    let entry = AuditEntry {
        seq,
        at: tx.now,
        actor: entry.actor.clone(),
        tenant: entry.tenant.clone(),
        outcome,
        action: entry.action.clone(),
        target: entry.target.clone(),
        detail: entry.detail.clone(),
    };
    tx.audit()?
        .insert(seq, encode("audit entry", &entry)?.as_slice())?;
    if let Some(tenant) = &entry.tenant {
        tx.audit_by_tenant()?.insert((tenant.as_str(), seq), ())?;
    }
    Ok(entry)
}

pub(crate) struct AppendAudit {
    pub(crate) entry: NewAudit,
}

impl WriteOp for AppendAudit {
    type Output = AuditEntry;

    fn apply(&self, tx: &mut Tx<'_>) -> OpResult<AuditEntry> {
        write_audit(tx, &self.entry)
    }
}

/// An operator action: `op` and its audit entry commit together or not at
/// all. A rejected `op` writes no entry; `describe` completes the entry from
/// what `op` did (e.g. the id it created) and returns false when `op`
/// changed nothing (registering the same thing again), which is not audited.
pub(crate) struct Audited<O: WriteOp> {
    pub(crate) op: O,
    pub(crate) audit: NewAudit,
    pub(crate) describe: fn(&O::Output, &mut NewAudit) -> bool,
}

impl<O: WriteOp> WriteOp for Audited<O> {
    type Output = O::Output;

    fn weight(&self) -> usize {
        self.op.weight()
    }

    fn apply(&self, tx: &mut Tx<'_>) -> OpResult<O::Output> {
        let output = self.op.apply(tx)?;
        let mut entry = self.audit.clone();
        if (self.describe)(&output, &mut entry) {
            write_audit(tx, &entry)?;
        }
        Ok(output)
    }
}
