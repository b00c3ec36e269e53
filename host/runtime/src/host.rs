//! What the runtime asks of its embedder during a call: blob reads for the
//! contract's `get-blob` / `query-blobs` and the effect calls behind
//! `effects.call`. The engine implements [`HostApi`] over the store; tests use
//! [`NoHost`] or [`MemoryHost`].

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use reyna_types::{Digest, EffectCall, EffectOutcome};

use crate::error::GuestError;
use crate::types::Blob;

/// A boxed future returned by [`HostApi`] methods.
pub type HostFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, GuestError>> + Send + 'a>>;

/// What the host answers to one effect call: the response (or the error
/// the guest gets) and the record of the call, kept in the lineage of what
/// the call helps produce. The runtime keeps the records in
/// [`CallReport::effect_calls`](crate::CallReport::effect_calls).
#[derive(Debug, Clone)]
pub struct EffectAnswer {
    /// The response, or the error the guest gets.
    pub response: Result<Vec<u8>, GuestError>,
    /// The record of the call.
    pub record: EffectCall,
}

impl EffectAnswer {
    /// The answer of a host that served the call itself: the record is made
    /// from the request and the response (`version` names what served it).
    pub fn served(
        name: &str,
        version: &str,
        request: &[u8],
        response: Result<Vec<u8>, GuestError>,
        duration_us: u64,
    ) -> Self {
        let record = EffectCall {
            effect: name.to_owned(),
            version: version.to_owned(),
            request_digest: Digest::of(request),
            response_digest: response.as_ref().ok().map(|r| Digest::of(r)),
            duration_us,
            outcome: match &response {
                Ok(_) => EffectOutcome::Ok,
                Err(e) => EffectOutcome::Failed(e.to_string()),
            },
        };
        Self { response, record }
    }
}

impl EffectAnswer {
    /// The answer to a call no effect served (no version ran, no response):
    /// the guest gets `error`; the record says `why`.
    pub fn unserved(name: &str, request_digest: Digest, why: &str, error: GuestError) -> Self {
        Self {
            response: Err(error),
            record: EffectCall {
                effect: name.to_owned(),
                version: String::new(),
                request_digest,
                response_digest: None,
                duration_us: 0,
                outcome: EffectOutcome::Failed(why.to_owned()),
            },
        }
    }
}

/// A boxed future of an [`EffectAnswer`].
pub type EffectFuture<'a> = Pin<Box<dyn Future<Output = EffectAnswer> + Send + 'a>>;

/// Host services a guest reaches through its imports. Every method is scoped
/// by the runtime before it is called: reads to the event's tenant, effects to
/// the names the caller allowed (a denied effect never reaches the host).
pub trait HostApi: Send + Sync {
    /// Reads one blob of `tenant`; another tenant's id reads as `None`.
    fn get_blob<'a>(&'a self, tenant: &'a str, id: &'a str) -> HostFuture<'a, Option<Blob>>;

    /// Lists `tenant`'s blobs of `schema` whose data matches `filter_json`
    /// (a JSON object of top-level fields that must be equal), oldest first.
    fn query_blobs<'a>(
        &'a self,
        tenant: &'a str,
        schema: &'a str,
        filter_json: &'a str,
    ) -> HostFuture<'a, Vec<Blob>>;

    /// Runs the effect `name` with `request` and returns its response with
    /// the record of the call.
    fn call_effect<'a>(&'a self, name: &'a str, request: Vec<u8>) -> EffectFuture<'a>;
}

/// A host with no blobs and no effects.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHost;

impl HostApi for NoHost {
    fn get_blob<'a>(&'a self, _tenant: &'a str, _id: &'a str) -> HostFuture<'a, Option<Blob>> {
        Box::pin(async { Ok(None) })
    }

    fn query_blobs<'a>(
        &'a self,
        _tenant: &'a str,
        _schema: &'a str,
        _filter: &'a str,
    ) -> HostFuture<'a, Vec<Blob>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn call_effect<'a>(&'a self, name: &'a str, request: Vec<u8>) -> EffectFuture<'a> {
        Box::pin(async move {
            let error = GuestError::Fatal(format!("effect `{name}` is not available"));
            EffectAnswer::served(name, "", &request, Err(error), 0)
        })
    }
}

/// The function behind one effect of a [`MemoryHost`].
pub type EffectFn = Arc<dyn Fn(&[u8]) -> Result<Vec<u8>, GuestError> + Send + Sync>;

/// Effect calls a [`MemoryHost`] served: (name, request).
type EffectLog = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// An in-memory host for tests and examples: a list of blobs, effects as
/// plain functions, and a record of every effect call it served.
#[derive(Default, Clone)]
pub struct MemoryHost {
    blobs: Arc<Mutex<Vec<Blob>>>,
    effects: Arc<Mutex<BTreeMap<String, EffectFn>>>,
    effect_calls: EffectLog,
    max_query_results: usize,
}

impl std::fmt::Debug for MemoryHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryHost").finish_non_exhaustive()
    }
}

impl MemoryHost {
    /// An empty host; queries are capped at 1000 results.
    pub fn new() -> Self {
        MemoryHost {
            max_query_results: 1000,
            ..MemoryHost::default()
        }
    }

    /// Adds a blob.
    pub fn insert(&self, blob: Blob) {
        lock(&self.blobs).push(blob);
    }

    /// Registers an effect.
    pub fn effect(
        &self,
        name: &str,
        f: impl Fn(&[u8]) -> Result<Vec<u8>, GuestError> + Send + Sync + 'static,
    ) {
        lock(&self.effects).insert(name.to_owned(), Arc::new(f));
    }

    /// The effect calls served so far: (name, request).
    pub fn effect_calls(&self) -> Vec<(String, Vec<u8>)> {
        lock(&self.effect_calls).clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The contract's `query-blobs` filter rule: a blob matches when each key of
/// `filter` equals the same field of its JSON data ([`filter_field`]); `{}`
/// matches every blob.
pub fn matches_filter(data: &[u8], filter: &serde_json::Map<String, serde_json::Value>) -> bool {
    if filter.is_empty() {
        return true;
    }
    let Ok(doc @ serde_json::Value::Object(_)) = serde_json::from_slice::<serde_json::Value>(data)
    else {
        return false;
    };
    filter.iter().all(|(k, v)| filter_field(&doc, k) == Some(v))
}

/// What a `query-blobs` filter key names in a blob's JSON data: the value at
/// that JSON pointer when the key starts with `/` (`/metadata/book_id`),
/// else the top-level field of that name.
pub fn filter_field<'a>(doc: &'a serde_json::Value, key: &str) -> Option<&'a serde_json::Value> {
    if key.starts_with('/') {
        doc.pointer(key)
    } else {
        doc.get(key)
    }
}

impl HostApi for MemoryHost {
    fn get_blob<'a>(&'a self, tenant: &'a str, id: &'a str) -> HostFuture<'a, Option<Blob>> {
        let found = lock(&self.blobs)
            .iter()
            .find(|b| b.tenant == tenant && b.id == id)
            .cloned();
        Box::pin(async move { Ok(found) })
    }

    fn query_blobs<'a>(
        &'a self,
        tenant: &'a str,
        schema: &'a str,
        filter_json: &'a str,
    ) -> HostFuture<'a, Vec<Blob>> {
        let result = match serde_json::from_str::<serde_json::Value>(filter_json) {
            Ok(serde_json::Value::Object(filter)) => {
                let found: Vec<Blob> = lock(&self.blobs)
                    .iter()
                    .filter(|b| {
                        b.tenant == tenant && b.schema == schema && matches_filter(&b.data, &filter)
                    })
                    .cloned()
                    .collect();
                if found.len() > self.max_query_results {
                    Err(GuestError::Fatal(format!(
                        "query matches {} blobs, more than the {} allowed",
                        found.len(),
                        self.max_query_results
                    )))
                } else {
                    Ok(found)
                }
            }
            _ => Err(GuestError::InvalidInput(
                "filter must be a JSON object".to_owned(),
            )),
        };
        Box::pin(async move { result })
    }

    fn call_effect<'a>(&'a self, name: &'a str, request: Vec<u8>) -> EffectFuture<'a> {
        let f = lock(&self.effects).get(name).cloned();
        lock(&self.effect_calls).push((name.to_owned(), request.clone()));
        Box::pin(async move {
            let response = match f {
                Some(f) => f(&request),
                None => Err(GuestError::Fatal(format!(
                    "effect `{name}` is not available"
                ))),
            };
            EffectAnswer::served(name, "", &request, response, 0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(id: &str, tenant: &str, schema: &str, data: &str) -> Blob {
        Blob {
            id: id.into(),
            tenant: tenant.into(),
            schema: schema.into(),
            data: data.as_bytes().to_vec(),
            parents: vec![],
        }
    }

    #[tokio::test]
    async fn memory_host_scopes_reads_to_the_tenant() {
        let host = MemoryHost::new();
        host.insert(blob("a", "t1", "chapter-v1", r#"{"book":"x","n":1}"#));
        host.insert(blob("b", "t2", "chapter-v1", r#"{"book":"x","n":2}"#));
        host.insert(blob("c", "t1", "chapter-v1", r#"{"book":"y","n":3}"#));
        assert!(host.get_blob("t1", "a").await.unwrap().is_some());
        assert!(host.get_blob("t1", "b").await.unwrap().is_none());
        let found = host
            .query_blobs("t1", "chapter-v1", r#"{"book":"x"}"#)
            .await
            .unwrap();
        assert_eq!(
            found.iter().map(|b| b.id.as_str()).collect::<Vec<_>>(),
            ["a"]
        );
        assert_eq!(
            host.query_blobs("t1", "chapter-v1", "{}")
                .await
                .unwrap()
                .len(),
            2
        );
        assert!(matches!(
            host.query_blobs("t1", "chapter-v1", "[]").await,
            Err(GuestError::InvalidInput(_))
        ));
    }

    #[tokio::test]
    async fn memory_host_effects_are_functions() {
        let host = MemoryHost::new();
        host.effect("echo", |r| Ok(r.to_vec()));
        let echoed = host.call_effect("echo", b"hi".to_vec()).await;
        assert_eq!(echoed.response.unwrap(), b"hi");
        assert_eq!(echoed.record.outcome, EffectOutcome::Ok);
        assert_eq!(echoed.record.response_digest, Some(Digest::of(b"hi")));
        let missing = host.call_effect("nope", vec![]).await;
        assert!(missing.response.is_err());
        assert!(matches!(missing.record.outcome, EffectOutcome::Failed(_)));
        assert_eq!(host.effect_calls().len(), 2);
        assert!(NoHost.call_effect("echo", vec![]).await.response.is_err());
    }
}
