//! The host functions a running plugin reaches (`get-blob`, `query-blobs`,
//! `effects.call`), implemented over the store and scoped to the job's tenant.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use reyna_runtime::{
    Blob, EffectAnswer, EffectContext, EffectFuture, GuestError, HostApi, HostFuture,
};
use reyna_store::{BlobId, BlobMeta, Digest, EffectCall, EffectOutcome, JobId, Page, Store};

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

/// What a blob's data must hold to match: for each key, a top-level field
/// of the data or, for a key starting with `/`, the value at that JSON
/// pointer. One matcher for the guests' `query-blobs` and the API's
/// filtered blob list.
#[derive(Debug, Clone)]
pub struct BlobFilter {
    fields: Vec<(String, Wanted)>,
}

#[derive(Debug, Clone)]
enum Wanted {
    /// The same JSON value.
    Json(serde_json::Value),
    /// A JSON string equal to the text, or a number or boolean written so.
    Text(String),
}

impl Wanted {
    fn matches(&self, found: &serde_json::Value) -> bool {
        match (self, found) {
            (Wanted::Json(want), found) => want == found,
            (Wanted::Text(text), serde_json::Value::String(s)) => s == text,
            (Wanted::Text(text), serde_json::Value::Number(n)) => {
                text.parse::<serde_json::Number>().is_ok_and(|t| t == *n)
            }
            (Wanted::Text(text), serde_json::Value::Bool(b)) => {
                text == if *b { "true" } else { "false" }
            }
            (Wanted::Text(_), _) => false,
        }
    }
}

impl BlobFilter {
    /// `query-blobs`' filter: a JSON object of keys and the values they must hold.
    pub(crate) fn from_json(filter_json: &str) -> Result<Self, String> {
        let filter: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(filter_json).map_err(|e| e.to_string())?;
        Ok(Self {
            fields: filter
                .into_iter()
                .map(|(k, v)| (k, Wanted::Json(v)))
                .collect(),
        })
    }

    /// The data at JSON `pointer` (e.g. `/metadata/book_id`) must be the
    /// string `text`, or a number or boolean whose JSON text it is.
    /// `Err` says what is wrong with the pointer.
    pub fn text_at(pointer: &str, text: &str) -> Result<Self, String> {
        if !pointer.starts_with('/') {
            return Err(format!(
                "`{pointer}` is not a JSON pointer: it must start with `/`, e.g. `/metadata/book_id`"
            ));
        }
        let mut chars = pointer.chars();
        while let Some(c) = chars.next() {
            if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
                return Err(format!(
                    "`{pointer}` is not a JSON pointer: `~` must be followed by `0` or `1`"
                ));
            }
        }
        Ok(Self {
            fields: vec![(pointer.to_owned(), Wanted::Text(text.to_owned()))],
        })
    }

    /// Whether blob data `data` matches (an empty filter matches anything).
    pub fn matches(&self, data: &[u8]) -> bool {
        if self.fields.is_empty() {
            return true;
        }
        let Ok(doc) = serde_json::from_slice::<serde_json::Value>(data) else {
            return false;
        };
        if !doc.is_object() {
            return false;
        }
        self.fields.iter().all(|(key, wanted)| {
            reyna_runtime::filter_field(&doc, key).is_some_and(|v| wanted.matches(v))
        })
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
    let filter = BlobFilter::from_json(filter_json).map_err(|e| {
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
        .blocking(move |store| Ok(query(store, &tenant, &schema, &filter, limits, &stopped)))
        .await
        .map_err(|e| GuestError::Retryable(format!("query failed: {e}")))?;
    drop(stop);
    found
}

/// A page of `tenant`'s blobs of `schema` matching `filter`, oldest first,
/// from `cursor`: at most `limit` of them, found among at most the
/// engine's `max_query_scan` blobs. Past either bound the page carries a
/// `next_cursor` that continues the scan after the last blob looked at.
pub(crate) async fn find_blobs(
    inner: &Inner,
    tenant: &str,
    schema: &str,
    filter: BlobFilter,
    cursor: Option<String>,
    limit: usize,
) -> Result<Page<BlobMeta>, crate::EngineError> {
    let budget = inner.config.max_query_scan;
    let (tenant, schema) = (tenant.to_owned(), schema.to_owned());
    inner
        .blocking(move |store| {
            let mut items = Vec::new();
            let end = scan(
                store,
                &tenant,
                &schema,
                cursor,
                budget,
                &AtomicBool::new(false),
                |meta, data| {
                    if filter.matches(data) {
                        items.push(meta.clone());
                    }
                    if items.len() >= limit {
                        ControlFlow::Break(Ok::<(), std::convert::Infallible>(()))
                    } else {
                        ControlFlow::Continue(())
                    }
                },
            )?;
            let next_cursor = match end {
                ScanEnd::Done | ScanEnd::Abandoned => None,
                ScanEnd::Stopped(next) => next,
                ScanEnd::OverBudget(next) => Some(next),
                ScanEnd::Failed(never) => match never {},
            };
            Ok(Page { items, next_cursor })
        })
        .await
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

/// `query-blobs` over [`scan`]: every match, or a refusal when the query
/// would scan or return more than its limits (count or bytes), before the
/// blob past the limit is kept.
fn query(
    store: &Store,
    tenant: &str,
    schema: &str,
    filter: &BlobFilter,
    limits: QueryLimits,
    stopped: &AtomicBool,
) -> Result<Vec<Blob>, GuestError> {
    let mut out = Vec::new();
    let mut bytes = 0usize;
    let end = scan(
        store,
        tenant,
        schema,
        None,
        limits.scan,
        stopped,
        |meta, data| {
            if !filter.matches(data) {
                return ControlFlow::Continue(());
            }
            if out.len() == limits.results {
                return ControlFlow::Break(Err(GuestError::Fatal(format!(
                    "query matched more than {} `{schema}` blobs; narrow the filter",
                    limits.results
                ))));
            }
            bytes = bytes.saturating_add(data.len());
            if bytes > limits.bytes {
                return ControlFlow::Break(Err(GuestError::Fatal(format!(
                    "query matched more than {} bytes of `{schema}` blobs; narrow the filter",
                    limits.bytes
                ))));
            }
            out.push(runtime_blob(meta, data.to_vec()));
            ControlFlow::Continue(())
        },
    )
    .map_err(|e| GuestError::Retryable(format!("query failed: {e}")))?;
    match end {
        ScanEnd::Done | ScanEnd::Stopped(_) => Ok(out),
        ScanEnd::OverBudget(_) => Err(GuestError::Fatal(format!(
            "query would scan more than {} `{schema}` blobs",
            limits.scan
        ))),
        ScanEnd::Failed(e) => Err(e),
        ScanEnd::Abandoned => Err(GuestError::Retryable("query abandoned".to_owned())),
    }
}

/// How a [`scan`] ended.
enum ScanEnd<E> {
    /// Every blob was looked at.
    Done,
    /// The visitor stopped after a blob; the cursor after it (`None` when
    /// it was the last).
    Stopped(Option<String>),
    /// The budget of blobs was looked at and more remain: the cursor after
    /// the last one looked at.
    OverBudget(String),
    /// The visitor refused.
    Failed(E),
    /// The caller is gone (`stopped`).
    Abandoned,
}

/// Store page size of a scan.
const SCAN_PAGE: usize = 500;

/// Hands the tenant's blobs of `schema` after `cursor` to `visit`, oldest
/// first, with their data: page by page (metadata), one payload at a time,
/// at most `budget` blobs; a scan whose caller is gone (`stopped`) ends at
/// the next blob.
fn scan<E>(
    store: &Store,
    tenant: &str,
    schema: &str,
    mut cursor: Option<String>,
    budget: usize,
    stopped: &AtomicBool,
    mut visit: impl FnMut(&BlobMeta, &[u8]) -> ControlFlow<Result<(), E>>,
) -> Result<ScanEnd<E>, reyna_store::StoreError> {
    // At least one blob: a bound of 0 would stop before any progress.
    let mut left = budget.max(1);
    loop {
        let page =
            store.list_blobs(tenant, Some(schema), cursor.as_deref(), SCAN_PAGE.min(left))?;
        left -= page.items.len().min(left);
        for (i, meta) in page.items.iter().enumerate() {
            if stopped.load(Ordering::Relaxed) {
                return Ok(ScanEnd::Abandoned);
            }
            let Some(data) = store.get_blob_data(&meta.tenant, meta.id)? else {
                continue;
            };
            match visit(meta, &data) {
                ControlFlow::Continue(()) => {}
                ControlFlow::Break(Err(e)) => return Ok(ScanEnd::Failed(e)),
                ControlFlow::Break(Ok(())) => {
                    // The cursor after this blob: the page's own when it is
                    // the last of the page, else that of a page ending here.
                    let next = if i + 1 == page.items.len() {
                        page.next_cursor
                    } else {
                        store
                            .list_blobs(tenant, Some(schema), cursor.as_deref(), i + 1)?
                            .next_cursor
                    };
                    return Ok(ScanEnd::Stopped(next));
                }
            }
        }
        match page.next_cursor {
            Some(next) if left == 0 => return Ok(ScanEnd::OverBudget(next)),
            Some(next) => cursor = Some(next),
            None => return Ok(ScanEnd::Done),
        }
    }
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use reyna_runtime::GuestError;
    use reyna_store::{NewBlob, Store};

    use super::{BlobFilter, QueryLimits, query, scan};

    /// A store holding `books` as `note-v1` blobs of tenant `acme` (in order)
    /// and one blob of tenant `other`.
    async fn store_of(books: &[&str]) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("reyna.redb")).unwrap();
        let new = |tenant: &str, book: &str| NewBlob {
            tenant: tenant.to_owned(),
            schema: "note-v1".to_owned(),
            data: format!(r#"{{"book_id":"{book}"}}"#).into_bytes(),
            parents: Vec::new(),
            hop: 0,
        };
        store
            .create_blob(new("other", "b1"), Vec::new())
            .await
            .unwrap();
        for book in books {
            store
                .create_blob(new("acme", book), Vec::new())
                .await
                .unwrap();
        }
        (dir, store)
    }

    fn books(store: &Store, found: &[reyna_store::BlobMeta]) -> Vec<String> {
        found
            .iter()
            .map(|m| {
                let data = store.get_blob_data(&m.tenant, m.id).unwrap().unwrap();
                assert_eq!(m.tenant, "acme", "only the tenant's own blobs");
                serde_json::from_slice::<serde_json::Value>(&data).unwrap()["book_id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    }

    #[tokio::test]
    async fn a_query_is_refused_past_its_scan_and_result_bounds_and_answers_within() {
        let (_dir, store) = store_of(&["b1", "b2", "b1", "b2"]).await;
        let stopped = AtomicBool::new(false);
        let filter = BlobFilter::from_json(r#"{"/book_id":"b1"}"#).unwrap();
        let limits = |scan, results| QueryLimits {
            results,
            scan,
            bytes: 1 << 20,
        };
        let found = query(&store, "acme", "note-v1", &filter, limits(4, 2), &stopped).unwrap();
        assert_eq!(found.len(), 2);
        assert!(found.iter().all(|b| b.tenant == "acme"));
        let refused = query(&store, "acme", "note-v1", &filter, limits(3, 2), &stopped);
        assert!(
            matches!(&refused, Err(GuestError::Fatal(m)) if m.contains("would scan more than 3")),
            "{refused:?}"
        );
        let refused = query(&store, "acme", "note-v1", &filter, limits(4, 1), &stopped);
        assert!(
            matches!(&refused, Err(GuestError::Fatal(m)) if m.contains("matched more than 1")),
            "{refused:?}"
        );
        stopped.store(true, std::sync::atomic::Ordering::Relaxed);
        let abandoned = query(&store, "acme", "note-v1", &filter, limits(4, 2), &stopped);
        assert!(
            matches!(abandoned, Err(GuestError::Retryable(_))),
            "{abandoned:?}"
        );
    }

    #[tokio::test]
    async fn a_scan_continues_from_where_it_stopped() {
        let (_dir, store) = store_of(&["b1", "b2", "b2", "b1", "b1"]).await;
        let filter = BlobFilter::text_at("/book_id", "b1").unwrap();
        let stopped = AtomicBool::new(false);
        // Two blobs looked at per call, stopping after each match: every
        // match found once, in order, by following the cursors.
        let mut cursor = None;
        let mut found = Vec::new();
        for _ in 0..10 {
            let mut page = Vec::new();
            let end = scan(
                &store,
                "acme",
                "note-v1",
                cursor.take(),
                2,
                &stopped,
                |meta, data| {
                    if filter.matches(data) {
                        page.push(meta.clone());
                        return std::ops::ControlFlow::Break(Ok::<(), ()>(()));
                    }
                    std::ops::ControlFlow::Continue(())
                },
            )
            .unwrap();
            found.extend(page);
            cursor = match end {
                super::ScanEnd::Stopped(next) => next,
                super::ScanEnd::OverBudget(next) => Some(next),
                super::ScanEnd::Done => None,
                super::ScanEnd::Failed(()) | super::ScanEnd::Abandoned => unreachable!(),
            };
            if cursor.is_none() {
                break;
            }
        }
        assert_eq!(books(&store, &found), ["b1", "b1", "b1"]);
    }

    const BOOK: &[u8] =
        br#"{"book_id":"b1","index":3,"done":true,"metadata":{"style":"formal","a/b":"x"}}"#;

    #[test]
    fn a_query_filter_matches_top_level_fields_and_json_pointers() {
        let matches = |filter: &str| BlobFilter::from_json(filter).unwrap().matches(BOOK);
        assert!(matches("{}"));
        assert!(matches(r#"{"book_id":"b1","index":3}"#));
        assert!(matches(r#"{"/metadata/style":"formal"}"#));
        assert!(matches(r#"{"/metadata/a~1b":"x","done":true}"#));
        assert!(!matches(r#"{"index":"3"}"#), "a query compares JSON values");
        assert!(
            !matches(r#"{"metadata/style":"formal"}"#),
            "no `/`: a field name"
        );
        assert!(!matches(r#"{"/metadata/tone":"formal"}"#));
        assert!(BlobFilter::from_json("[1]").is_err());
        assert!(!BlobFilter::from_json(r#"{"a":1}"#).unwrap().matches(b"[1]"));
        assert!(
            !BlobFilter::from_json(r#"{"a":1}"#)
                .unwrap()
                .matches(b"not json")
        );
    }

    #[test]
    fn a_text_filter_matches_strings_and_the_json_text_of_numbers_and_booleans() {
        let matches =
            |pointer: &str, text: &str| BlobFilter::text_at(pointer, text).unwrap().matches(BOOK);
        assert!(matches("/book_id", "b1"));
        assert!(matches("/index", "3"));
        assert!(matches("/done", "true"));
        assert!(matches("/metadata/style", "formal"));
        assert!(!matches("/index", "3.0"));
        assert!(!matches("/done", "1"));
        assert!(!matches("/metadata", "formal"), "an object is no text");
        assert!(!matches("/book_id", "B1"));
    }

    #[test]
    fn a_text_filter_needs_a_json_pointer() {
        for bad in ["book_id", "", "/a~2", "/a~"] {
            assert!(BlobFilter::text_at(bad, "x").is_err(), "{bad:?}");
        }
        assert!(BlobFilter::text_at("/a~0b/~1", "x").is_ok());
    }
}
