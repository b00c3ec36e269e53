//! A native test harness: unit-test a plugin with `cargo test`, no wasm build.
//!
//! The harness reads the plugin's `reyna.toml` (so an invalid manifest fails
//! the first test), fakes the host in memory (config, blobs for `get-blob` and
//! `query-blobs`, effects, HTTP, usage reports), and applies the same rules
//! as the host: the input schema must be one of the manifest's inputs, every
//! output schema one of its outputs, every effect called one it declares,
//! every usage unit reported well named and at most 16 per call (see
//! [`Harness::usage`]).
//!
//! ```no_run
//! # use reyna_sdk::{Context, Error, Output, Processor};
//! # struct WordCount;
//! # impl Processor for WordCount {
//! #     type Input = serde_json::Value;
//! #     fn process(_: serde_json::Value, _: &mut Context<'_>) -> Result<Vec<Output>, Error> { Ok(vec![]) }
//! # }
//! use reyna_sdk::testing::Harness;
//!
//! let mut harness = Harness::new();
//! let outputs = harness
//!     .process::<WordCount>("text-input-v1", serde_json::json!({"content": "one two three"}))
//!     .unwrap();
//! assert_eq!(outputs[0].json["words"], 3);
//! ```
#![allow(clippy::panic, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;

use reyna_manifest::Manifest;

use crate::context::HostCalls;
use crate::{Blob, Effect, Error, Event, HttpRequest, HttpResponse, LogLevel, Processor};

type EffectFn = Box<dyn FnMut(&[u8]) -> Result<Vec<u8>, Error>>;
type HttpFn = Box<dyn FnMut(&HttpRequest) -> Result<HttpResponse, Error>>;

/// An output as the harness returns it: the JSON already parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct TestOutput {
    /// Output schema id.
    pub schema: String,
    /// The output's JSON.
    pub json: serde_json::Value,
    /// Parents besides the event's blob.
    pub extra_parents: Vec<String>,
}

/// In-memory host for native plugin tests.
pub struct Harness {
    manifest: Manifest,
    tenant: String,
    config: BTreeMap<String, String>,
    blobs: Vec<Blob>,
    effects: BTreeMap<String, EffectFn>,
    http: Option<HttpFn>,
    next_id: u64,
    /// Every log line written by the plugin, in order.
    pub logs: Vec<(LogLevel, String)>,
    /// Every effect call made: (effect name, request bytes).
    pub effect_calls: Vec<(String, Vec<u8>)>,
    /// Every HTTP request sent.
    pub http_requests: Vec<HttpRequest>,
    /// The usage reported with [`Context::report_usage`](crate::Context::report_usage),
    /// by unit, summed over every call the harness ran, under the host's
    /// rules (at most 16 distinct units per call).
    pub usage: BTreeMap<String, u64>,
    /// The units of the call running now, which the 16-unit rule counts.
    call_units: BTreeMap<String, u64>,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("plugin", &self.manifest.id())
            .finish_non_exhaustive()
    }
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    /// Loads `reyna.toml` from the crate under test (`CARGO_MANIFEST_DIR`) and
    /// panics with the manifest error if it is invalid.
    pub fn new() -> Self {
        let dir =
            std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR is set by cargo test");
        Self::from_manifest_file(&Path::new(&dir).join("reyna.toml"))
    }

    /// Loads a manifest from a file.
    pub fn from_manifest_file(path: &Path) -> Self {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let manifest = Manifest::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Self::with_manifest(manifest)
    }

    /// Uses an already parsed manifest.
    pub fn with_manifest(manifest: Manifest) -> Self {
        Self {
            manifest,
            tenant: "test".to_owned(),
            config: BTreeMap::new(),
            blobs: Vec::new(),
            effects: BTreeMap::new(),
            http: None,
            next_id: 0,
            logs: Vec::new(),
            effect_calls: Vec::new(),
            http_requests: Vec::new(),
            usage: BTreeMap::new(),
            call_units: BTreeMap::new(),
        }
    }

    /// The plugin's manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Sets a config value of the installation the plugin runs under.
    pub fn config(&mut self, key: &str, value: &str) -> &mut Self {
        self.config.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Stores a blob visible to `get-blob` and `query-blobs`; returns its id.
    pub fn add_blob(&mut self, schema: &str, json: serde_json::Value) -> String {
        self.add_blob_for_tenant(&self.tenant.clone(), schema, json)
    }

    /// Stores a blob of another tenant (invisible to the plugin); returns its id.
    pub fn add_blob_for_tenant(
        &mut self,
        tenant: &str,
        schema: &str,
        json: serde_json::Value,
    ) -> String {
        let id = self.fresh_id();
        self.blobs.push(Blob {
            id: id.clone(),
            tenant: tenant.to_owned(),
            schema: schema.to_owned(),
            data: json.to_string().into_bytes(),
            parents: Vec::new(),
        });
        id
    }

    /// Answers `effects.call(name, ..)` with `f`.
    pub fn effect(
        &mut self,
        name: &str,
        f: impl FnMut(&[u8]) -> Result<Vec<u8>, Error> + 'static,
    ) -> &mut Self {
        self.effects.insert(name.to_owned(), Box::new(f));
        self
    }

    /// Answers HTTP requests with `f`.
    pub fn http(
        &mut self,
        f: impl FnMut(&HttpRequest) -> Result<HttpResponse, Error> + 'static,
    ) -> &mut Self {
        self.http = Some(Box::new(f));
        self
    }

    fn fresh_id(&mut self) -> String {
        self.next_id += 1;
        format!("blob-{:04}", self.next_id)
    }

    fn event(&mut self, schema: &str, data: Vec<u8>) -> Event {
        assert!(
            self.manifest.inputs.iter().any(|i| i.as_str() == schema),
            "`{schema}` is not one of {}'s inputs {:?}; the host would never route it here",
            self.manifest.name,
            self.manifest
                .inputs
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
        );
        let id = self.fresh_id();
        let blob = Blob {
            id,
            tenant: self.tenant.clone(),
            schema: schema.to_owned(),
            data,
            parents: Vec::new(),
        };
        self.blobs.push(blob.clone());
        Event {
            subject: format!("blob.created.{schema}"),
            blob,
        }
    }

    /// Runs processor `P` on a blob of `schema` holding `json`.
    pub fn process<P: Processor>(
        &mut self,
        schema: &str,
        json: serde_json::Value,
    ) -> Result<Vec<TestOutput>, Error> {
        self.process_bytes::<P>(schema, json.to_string().into_bytes())
    }

    /// Runs processor `P` on a blob holding raw bytes (for malformed-input tests).
    pub fn process_bytes<P: Processor>(
        &mut self,
        schema: &str,
        data: Vec<u8>,
    ) -> Result<Vec<TestOutput>, Error> {
        let event = self.event(schema, data);
        self.call_units.clear();
        let outputs = crate::__private::run_processor::<P>(&event, self)?;
        Ok(outputs
            .into_iter()
            .map(|o| {
                assert!(
                    self.manifest.outputs.iter().any(|s| s.as_str() == o.schema),
                    "output schema `{}` is not in the manifest's outputs; the host would fail the call with InvalidOutput",
                    o.schema
                );
                let json = serde_json::from_slice(&o.data).unwrap_or_else(|e| {
                    panic!("output `{}` is not JSON ({e}); the host would fail the call with InvalidOutput", o.schema)
                });
                TestOutput { schema: o.schema, json, extra_parents: o.extra_parents }
            })
            .collect())
    }

    /// Runs effect `E`'s `perform` with `request`.
    pub fn perform<E: Effect>(&mut self, request: &[u8]) -> Result<Vec<u8>, Error> {
        self.call_units.clear();
        crate::__private::run_perform::<E>(request.to_vec(), self)
    }

    /// Runs effect `E`'s `deliver` for a blob of `schema` holding `json`.
    pub fn deliver<E: Effect>(
        &mut self,
        schema: &str,
        json: serde_json::Value,
    ) -> Result<Vec<u8>, Error> {
        let event = self.event(schema, json.to_string().into_bytes());
        self.call_units.clear();
        crate::__private::run_deliver::<E>(event, self)
    }
}

impl HostCalls for Harness {
    fn log(&mut self, level: LogLevel, message: &str) {
        self.logs.push((level, message.to_owned()));
    }

    fn config(&mut self, key: &str) -> Option<String> {
        self.config.get(key).cloned()
    }

    fn get_blob(&mut self, id: &str) -> Result<Option<Blob>, Error> {
        Ok(self
            .blobs
            .iter()
            .find(|b| b.id == id && b.tenant == self.tenant)
            .cloned())
    }

    fn query_blobs(&mut self, schema: &str, filter: &str) -> Result<Vec<Blob>, Error> {
        let filter: serde_json::Map<String, serde_json::Value> = serde_json::from_str(filter)
            .map_err(|e| Error::Fatal(format!("query filter is not a JSON object: {e}")))?;
        Ok(self
            .blobs
            .iter()
            .filter(|b| b.tenant == self.tenant && b.schema == schema)
            .filter(|b| {
                let Ok(serde_json::Value::Object(data)) =
                    serde_json::from_slice::<serde_json::Value>(&b.data)
                else {
                    return false;
                };
                // As the host: a key starting with `/` is a JSON pointer.
                filter.iter().all(|(k, v)| {
                    let found = if k.starts_with('/') {
                        serde_json::Value::Object(data.clone()).pointer(k).cloned()
                    } else {
                        data.get(k).cloned()
                    };
                    found.as_ref() == Some(v)
                })
            })
            .cloned()
            .collect())
    }

    fn call_effect(&mut self, name: &str, request: &[u8]) -> Result<Vec<u8>, Error> {
        assert!(
            self.manifest.effects.iter().any(|e| e == name),
            "effect `{name}` is not declared in the manifest's `effects`; the host would fail the call with EffectDenied"
        );
        self.effect_calls.push((name.to_owned(), request.to_vec()));
        match self.effects.get_mut(name) {
            Some(f) => f(request),
            None => Err(Error::Fatal(format!("effect `{name}` is not available"))),
        }
    }

    fn report_usage(&mut self, unit: &str, amount: u64) -> Result<(), Error> {
        if self.manifest.kind != reyna_manifest::Kind::Effect {
            return Err(crate::__private::processor_usage(unit));
        }
        reyna_types::add_usage(&mut self.call_units, unit, amount)
            .map_err(|e| Error::InvalidInput(e.to_string()))?;
        let total = self.usage.entry(unit.to_owned()).or_default();
        *total = total.saturating_add(amount);
        Ok(())
    }

    fn http(&mut self, request: &HttpRequest) -> Result<HttpResponse, Error> {
        assert!(
            self.manifest.kind == reyna_manifest::Kind::Effect,
            "only effect plugins may make HTTP requests"
        );
        self.http_requests.push(request.clone());
        match self.http.as_mut() {
            Some(f) => f(request),
            None => Err(Error::Retryable(
                "no HTTP responder configured in the harness".to_owned(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Context, Output};

    /// Reports `n` distinct units, then `tokens` once more.
    struct Reporter;

    impl Effect for Reporter {
        fn perform(request: Vec<u8>, ctx: &mut Context<'_>) -> Result<Vec<u8>, Error> {
            let n: u64 = serde_json::from_slice(&request)
                .map_err(|e| Error::invalid_input(e.to_string()))?;
            for i in 0..n {
                ctx.report_usage(&format!("unit-{i}"), i)?;
            }
            ctx.report_usage("tokens", 5)?;
            Ok(Vec::new())
        }
    }

    struct Counting;

    impl Processor for Counting {
        type Input = serde_json::Value;
        fn process(_: serde_json::Value, ctx: &mut Context<'_>) -> Result<Vec<Output>, Error> {
            ctx.report_usage("tokens", 1)?;
            Ok(Vec::new())
        }
    }

    fn harness(kind: &str) -> Harness {
        let manifest = format!(
            "name = \"t\"\nversion = \"0.1.0\"\nkind = \"{kind}\"\ninputs = [\"text-input-v1\"]\n\
             subscribes = [\"blob.created.text-input-v1\"]\n"
        );
        Harness::with_manifest(Manifest::parse(&manifest).unwrap())
    }

    #[test]
    fn usage_follows_the_hosts_rules_per_call_and_adds_up_across_calls() {
        let mut h = harness("effect");
        h.perform::<Reporter>(b"15").unwrap();
        assert_eq!(h.usage.len(), 16);
        // Each call has its own 16 units; the harness keeps the sums.
        h.perform::<Reporter>(b"0").unwrap();
        assert_eq!(h.usage["tokens"], 10);
        let err = h.perform::<Reporter>(b"16").unwrap_err();
        assert_eq!(
            err,
            Error::InvalidInput(
                "usage unit `tokens` would be the 17th distinct unit of this call; a call \
                 reports at most 16"
                    .to_owned()
            )
        );
        assert_eq!(h.usage["tokens"], 10, "the refused report counts nothing");
        assert_eq!(h.usage["unit-15"], 15);
    }

    #[test]
    fn a_processor_has_no_usage_to_report() {
        let mut h = harness("processor");
        let err = h
            .process::<Counting>("text-input-v1", serde_json::json!({}))
            .unwrap_err();
        assert!(
            matches!(err, Error::Fatal(ref m) if m.contains("processors cannot report usage")),
            "{err}"
        );
        assert!(h.usage.is_empty());
    }
}
