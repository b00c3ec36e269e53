//! The host functions a running plugin reaches (`get-blob`, `query-blobs`,
//! `effects.call`), implemented over the store and scoped to the job's tenant.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use reyna_runtime::{
    Blob, EffectAnswer, EffectContext, EffectFuture, GuestError, HostApi, HostFuture,
};
use reyna_store::{BlobId, BlobMeta, Digest, EffectCall, EffectOutcome, JobId, Store};

use crate::inner::Inner;

/// Recorded effect responses for a replay: (effect, request digest) ->
/// (response digest, effect version).
pub(crate) type Recorded = std::collections::HashMap<(String, Digest), (Digest, String)>;

/// The effect responses recorded in the lineage of earlier runs of `plugin`
/// (any version) on `blob`: what a re-run in replay mode answers from. A
/// replayed response counts too, so a replay of a replay still has it.
pub(crate) fn recorded_effects(
    store: &reyna_store::Store,
    tenant: &str,
    blob: reyna_store::BlobId,
    plugin: &str,
) -> Result<Recorded, reyna_store::StoreError> {
    let mut recorded = Recorded::new();
    for child in store.children(tenant, blob)? {
        let Some(producer) = child.producer else {
            continue;
        };
        if producer.plugin != plugin {
            continue;
        }
        for call in producer
            .effect_calls
            .iter()
            .filter(|c| c.outcome.answered())
        {
            if let Some(response) = call.response_digest {
                recorded.insert(
                    (call.effect.clone(), call.request_digest),
                    (response, call.version.clone()),
                );
            }
        }
    }
    Ok(recorded)
}

/// Host services for one job. Records whether the plugin read other blobs,
/// because a result that depends on more than the input must not be reused
/// for another input with the same content. The runtime keeps the job's
/// effect calls, from the records this host answers with.
pub(crate) struct JobHost {
    pub inner: Arc<Inner>,
    pub tenant: String,
    /// The job the calls are for (effect calls record the secrets they read under it).
    pub job: JobId,
    pub read_other_blobs: AtomicBool,
    pub seed: u64,
    /// Replay mode: answer effect calls from these recorded responses only.
    pub replay: Option<Arc<Recorded>>,
}

impl JobHost {
    pub(crate) fn new(inner: Arc<Inner>, tenant: &str, job: JobId, seed: u64) -> Self {
        Self {
            inner,
            tenant: tenant.to_owned(),
            job,
            read_other_blobs: AtomicBool::new(false),
            seed,
            replay: None,
        }
    }

    /// Answers an effect call from a recorded response, or refuses it.
    fn replayed(&self, recorded: &Recorded, name: &str, request_digest: Digest) -> EffectAnswer {
        let found = recorded.get(&(name.to_owned(), request_digest));
        let response =
            found.and_then(|(digest, _)| self.inner.store.get_component(digest).ok().flatten());
        match (found, response) {
            (Some((response_digest, version)), Some(bytes)) => EffectAnswer {
                response: Ok(bytes),
                record: EffectCall {
                    effect: name.to_owned(),
                    version: version.clone(),
                    request_digest,
                    response_digest: Some(*response_digest),
                    duration_us: 0,
                    outcome: EffectOutcome::Replayed,
                },
            },
            _ => EffectAnswer::unserved(
                name,
                request_digest,
                "replay: no recorded response",
                GuestError::Fatal(format!(
                    "replay mode: no recorded response of effect `{name}` for request {request_digest}"
                )),
            ),
        }
    }
}

fn to_runtime_blob(store: &Store, meta: &BlobMeta) -> Result<Option<Blob>, GuestError> {
    let data = store
        .get_blob_data(&meta.tenant, meta.id)
        .map_err(|e| GuestError::Retryable(format!("cannot read blob {}: {e}", meta.id)))?;
    Ok(data.map(|data| runtime_blob(meta, data)))
}

fn runtime_blob(meta: &BlobMeta, data: Vec<u8>) -> Blob {
    Blob {
        id: meta.id.to_string(),
        tenant: meta.tenant.clone(),
        schema: meta.schema.clone(),
        data,
        parents: meta.parents.iter().map(ToString::to_string).collect(),
    }
}

/// Reads blob `id` of `tenant` (`None` when it does not exist in that tenant).
pub(crate) fn read_blob(inner: &Inner, tenant: &str, id: &str) -> Result<Option<Blob>, GuestError> {
    let Ok(id) = id.parse::<BlobId>() else {
        return Err(GuestError::InvalidInput(format!("`{id}` is not a blob id")));
    };
    match inner.store.get_blob_with_data(tenant, id) {
        Ok(found) => Ok(found.map(|(meta, data)| runtime_blob(&meta, data))),
        Err(e) => Err(GuestError::Retryable(format!("cannot read blob {id}: {e}"))),
    }
}

/// Set when the guest's host call is dropped (its deadline passed): the scan
/// it started on the blocking pool stops at the next blob instead of running
/// on for nobody.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// `tenant`'s blobs of `schema` whose data matches `filter_json`, oldest
/// first. A scan: it runs on the blocking pool, and the wait for it counts
/// against the calling guest's deadline (the runtime drops the host call at
/// the deadline, and the scan stops then).
pub(crate) async fn query_blobs(
    inner: &Inner,
    tenant: &str,
    schema: &str,
    filter_json: &str,
) -> Result<Vec<Blob>, GuestError> {
    let filter: serde_json::Map<String, serde_json::Value> = serde_json::from_str(filter_json)
        .map_err(|e| {
            GuestError::InvalidInput(format!("query filter must be a JSON object: {e}"))
        })?;
    let limits = QueryLimits {
        results: inner.config.max_query_results,
        scan: inner.config.max_query_scan,
        bytes: inner.config.max_query_bytes,
    };
    let (tenant, schema) = (tenant.to_owned(), schema.to_owned());
    let stop = StopOnDrop(Arc::new(AtomicBool::new(false)));
    let stopped = stop.0.clone();
    let found = inner
        .blocking(move |store| Ok(scan(store, &tenant, &schema, &filter, limits, &stopped)))
        .await
        .map_err(|e| GuestError::Retryable(format!("query failed: {e}")))?;
    drop(stop);
    found
}

#[derive(Clone, Copy)]
struct QueryLimits {
    /// Most blobs returned.
    results: usize,
    /// Most blobs scanned.
    scan: usize,
    /// Most bytes of blob data returned.
    bytes: usize,
}

/// Scans the tenant's blobs of this schema page by page (metadata only),
/// reading payloads one at a time to apply the filter. Bounded: a query that
/// would scan or return more than its limits (count or bytes) is refused
/// before the blob past the limit is kept; a scan whose caller is gone
/// (`stopped`) ends at the next blob.
fn scan(
    store: &Store,
    tenant: &str,
    schema: &str,
    filter: &serde_json::Map<String, serde_json::Value>,
    limits: QueryLimits,
    stopped: &AtomicBool,
) -> Result<Vec<Blob>, GuestError> {
    let mut out = Vec::new();
    let mut scanned = 0usize;
    let mut bytes = 0usize;
    let mut cursor: Option<String> = None;
    loop {
        if stopped.load(Ordering::Relaxed) {
            return Err(GuestError::Retryable("query abandoned".to_owned()));
        }
        let page = store
            .list_blobs(tenant, Some(schema), cursor.as_deref(), 500)
            .map_err(|e| GuestError::Retryable(format!("query failed: {e}")))?;
        for meta in &page.items {
            if stopped.load(Ordering::Relaxed) {
                return Err(GuestError::Retryable("query abandoned".to_owned()));
            }
            scanned += 1;
            if scanned > limits.scan {
                return Err(GuestError::Fatal(format!(
                    "query would scan more than {} `{schema}` blobs",
                    limits.scan
                )));
            }
            let Some(blob) = to_runtime_blob(store, meta)? else {
                continue;
            };
            if reyna_runtime::matches_filter(&blob.data, filter) {
                if out.len() == limits.results {
                    return Err(GuestError::Fatal(format!(
                        "query matched more than {} `{schema}` blobs; narrow the filter",
                        limits.results
                    )));
                }
                bytes = bytes.saturating_add(blob.data.len());
                if bytes > limits.bytes {
                    return Err(GuestError::Fatal(format!(
                        "query matched more than {} bytes of `{schema}` blobs; narrow the filter",
                        limits.bytes
                    )));
                }
                out.push(blob);
            }
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    Ok(out)
}

impl HostApi for JobHost {
    fn get_blob<'a>(&'a self, tenant: &'a str, id: &'a str) -> HostFuture<'a, Option<Blob>> {
        Box::pin(async move {
            self.read_other_blobs.store(true, Ordering::Relaxed);
            // The runtime passes the event's tenant; check it anyway, a job
            // must never see another tenant's data.
            if tenant != self.tenant {
                return Ok(None);
            }
            read_blob(&self.inner, tenant, id)
        })
    }

    fn query_blobs<'a>(
        &'a self,
        tenant: &'a str,
        schema: &'a str,
        filter_json: &'a str,
    ) -> HostFuture<'a, Vec<Blob>> {
        Box::pin(async move {
            self.read_other_blobs.store(true, Ordering::Relaxed);
            if tenant != self.tenant {
                return Ok(Vec::new());
            }
            query_blobs(&self.inner, tenant, schema, filter_json).await
        })
    }

    fn call_effect<'a>(&'a self, name: &'a str, request: Vec<u8>) -> EffectFuture<'a> {
        Box::pin(async move {
            self.read_other_blobs.store(true, Ordering::Relaxed);
            if let Some(recorded) = &self.replay {
                return self.replayed(recorded, name, Digest::of(&request));
            }
            perform_effect(
                &self.inner,
                &self.tenant,
                self.job,
                self.seed,
                name,
                request,
            )
            .await
        })
    }
}

/// A windowed limit found used up.
pub(crate) struct BudgetHit {
    /// Its name, e.g. `budget:tokens:day`.
    pub quota: String,
    /// What is used up and when it resets, in words.
    pub message: String,
    /// How long until it resets.
    pub resets_in: std::time::Duration,
}

impl From<BudgetHit> for crate::EngineError {
    fn from(hit: BudgetHit) -> Self {
        crate::EngineError::QuotaExceeded {
            quota: hit.quota,
            message: hit.message,
            retry_after: hit.resets_in,
        }
    }
}

/// Whether `tenant` may make an effect call now: `Err` says which of its
/// windowed limits (effect calls per day, a budget) is used up, and when
/// it resets. A usage that cannot be read lets the call through (and is
/// logged): metering must not stop the host.
pub(crate) fn budget_left(
    inner: &Inner,
    tenant: &str,
    limits: &[reyna_store::WindowLimit],
) -> Result<(), BudgetHit> {
    if limits.is_empty() {
        return Ok(());
    }
    let now = inner.store.now_ms();
    let (mut day, mut month) = (None, None);
    for limit in limits {
        let granularity = limit.window.granularity();
        let slot = match limit.window {
            reyna_store::Window::Day => &mut day,
            reyna_store::Window::Month => &mut month,
        };
        let usage = match slot {
            Some(usage) => usage,
            None => match inner.store.usage_at(tenant, granularity, now) {
                Ok(usage) => slot.insert(usage),
                Err(e) => {
                    tracing::error!(%tenant, error = %e, "cannot read usage; budget not checked");
                    return Ok(());
                }
            },
        };
        let used = limit.used(usage);
        if used >= limit.limit {
            let resets = granularity.next(granularity.start(now));
            return Err(BudgetHit {
                quota: limit.name(),
                message: format!(
                    "tenant {tenant} has used {used} of its {} {} this {} ({}); it resets at {}",
                    limit.limit,
                    limit.metric,
                    limit.window.as_str(),
                    limit.name(),
                    reyna_store::rfc3339(resets)
                ),
                resets_in: std::time::Duration::from_millis(resets.saturating_sub(now)),
            });
        }
    }
    Ok(())
}

/// Meters one effect call of `tenant` with the units it reported, and
/// announces which of its `limits` the call takes to 80% or 100%.
pub(crate) async fn meter_effect(
    inner: &Inner,
    tenant: &str,
    units: std::collections::BTreeMap<String, u64>,
    limits: Vec<reyna_store::WindowLimit>,
) {
    let usage = reyna_store::Usage {
        effect_calls: 1,
        units,
        ..reyna_store::Usage::default()
    };
    match inner.store.record_usage(tenant, usage, limits).await {
        Ok(crossings) => {
            for c in crossings {
                tracing::warn!(
                    %tenant,
                    limit = %c.limit.name(),
                    used = c.used,
                    of = c.limit.limit,
                    exhausted = c.exhausted,
                    "budget"
                );
            }
        }
        Err(e) => tracing::error!(%tenant, error = %e, "cannot record effect usage"),
    }
}

/// Runs effect `name` with `request` for a job of `tenant` under the
/// operator's network policy, and returns its response with the record of
/// the call for the job's lineage. A response is kept by digest (in the
/// component table), so it can be inspected and replayed.
pub(crate) async fn perform_effect(
    inner: &Arc<Inner>,
    tenant: &str,
    job: JobId,
    seed: u64,
    name: &str,
    request: Vec<u8>,
) -> EffectAnswer {
    let request_digest = Digest::of(&request);
    let Some(effect) = inner.plugins.enabled_effect(name) else {
        return EffectAnswer::unserved(
            name,
            request_digest,
            "unavailable: not registered or disabled",
            GuestError::Fatal(format!("effect `{name}` is not registered or is disabled")),
        );
    };
    // The effect runs as the tenant's installation of it: its config and secrets.
    let install = effect
        .default_for(tenant)
        .map(|default| inner.plugins.installs.resolve(tenant, name, default))
        .filter(|install| install.enabled);
    let Some(install) = install else {
        return EffectAnswer::unserved(
            name,
            request_digest,
            "unavailable: not installed for this tenant",
            GuestError::Fatal(format!(
                "effect `{name}` is not enabled for tenant {tenant} (its installation)"
            )),
        );
    };
    let limits = inner.quotas.window_limits(tenant);
    if let Err(hit) = budget_left(inner, tenant, &limits) {
        inner.record_budget_hit(job, hit.message.clone());
        return EffectAnswer::unserved(
            name,
            request_digest,
            "budget-exceeded",
            GuestError::Fatal(format!("budget-exceeded: {}", hit.message)),
        );
    }
    let started = Instant::now();
    let ctx = EffectContext {
        config: install.config.clone(),
        secret_keys: install.secret_keys.clone(),
        // An effect reads blobs as the job's tenant, nothing wider.
        host: Arc::new(JobHost::new(inner.clone(), tenant, job, seed)),
        policy: Arc::new(inner.config.effects.policy(name)),
        seed,
    };
    let mut report = inner.runtime.perform(&effect.plugin, request, ctx).await;
    meter_effect(inner, tenant, std::mem::take(&mut report.units), limits).await;
    let uses = install.uses(name, &report.secrets_read);
    if !uses.is_empty() {
        inner.record_secret_uses(job, uses);
    }
    let mut record = EffectCall {
        effect: name.to_owned(),
        version: effect.record.version.clone(),
        request_digest,
        response_digest: None,
        duration_us: started.elapsed().as_micros() as u64,
        outcome: EffectOutcome::Ok,
    };
    let response = match report.result {
        Ok(response) => {
            record.response_digest = Some(Digest::of(&response));
            if let Err(e) = inner.store.put_component(response.clone()).await {
                tracing::warn!(effect = name, error = %e, "cannot keep effect response");
            }
            Ok(response)
        }
        Err(failure) => {
            record.outcome = EffectOutcome::Failed(format!("{}: {failure}", failure.kind()));
            let message = format!("effect `{name}` failed: {failure}");
            Err(if failure.retryable() {
                GuestError::Retryable(message)
            } else {
                GuestError::Fatal(message)
            })
        }
    };
    EffectAnswer { response, record }
}
