//! Reyna's sandbox: runs one plugin call on wasmtime under hard limits and
//! returns validated-shape outputs or a typed [`Failure`], with what the call
//! cost and what it logged. It knows nothing of HTTP, NATS or storage.
//!
//! One [`Runtime`] holds the shared engine (component model, pooling
//! allocator with copy-on-write memory images, epoch interruption), the
//! compiled-artifact cache and the epoch ticker. [`Runtime::load`] turns
//! component bytes into a [`Plugin`] (manifest, digest, resolved [`Limits`],
//! pre-instantiated component). [`Runtime::call`] runs a processor in a fresh
//! `Store`, so nothing leaks from one event to the next.
//!
//! Effects are the only plugins with a network: [`Runtime::perform`] and
//! [`Runtime::deliver`] run one with `wasi:http`, every request checked
//! against the operator's [`NetPolicy`] (allowed hosts, private addresses,
//! timeout, response size, request count) before anything is sent, and
//! report each request as an [`HttpRecord`], and what the guest reported
//! through `usage.report` as [`EffectReport::units`] (checked against the
//! contract's rules, see [`add_usage`]). Every call's [`Cost`] carries its
//! CPU time (`cpu_us`), read from the thread's CPU clock around every poll.
//! Secret config values (keys containing `key`, `token`, `secret`,
//! `password`, `authorization`) are redacted from logs, failures and
//! records.
//!
//! ```no_run
//! use std::sync::Arc;
//! use reyna_runtime::{AllowedHost, EffectContext, NetPolicy, Runtime, RuntimeConfig};
//!
//! # async fn example(llm_wasm: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
//! let runtime = Runtime::new(RuntimeConfig::default())?;
//! let llm = runtime.load(llm_wasm)?;
//! let ctx = EffectContext {
//!     config: Arc::new(
//!         [
//!             ("endpoint", "https://api.openai.com/v1/chat/completions"),
//!             ("api_key", "sk-..."), // a secret: never reported
//!         ]
//!         .map(|(k, v)| (k.to_owned(), v.to_owned()))
//!         .into(),
//!     ),
//!     policy: Arc::new(NetPolicy {
//!         approved_hosts: vec![AllowedHost::parse("api.openai.com:443")?],
//!         ..NetPolicy::default()
//!     }),
//!     ..EffectContext::default()
//! };
//! let report = runtime.perform(&llm, br#"{"prompt": "hi"}"#.to_vec(), ctx).await;
//! for r in &report.requests {
//!     println!("{} {}://{}{} -> {:?} ({})", r.method, r.scheme, r.authority, r.path, r.status, r.outcome);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Calls are async and need a Tokio runtime with its timer enabled
//! (`enable_time`): deadlines and the bounded waits for a concurrency slot use
//! it. A spinning guest yields to the executor at every epoch tick, so it
//! never holds an executor thread for longer than one tick.
//!
//! ```no_run
//! use reyna_runtime::{Blob, CallContext, Event, Runtime, RuntimeConfig};
//!
//! # async fn example(wasm: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
//! let runtime = Runtime::new(RuntimeConfig::default())?;
//! let plugin = runtime.load(wasm)?;
//! let event = Event {
//!     subject: "blob.created.text-input-v1".into(),
//!     blob: Blob {
//!         id: "01J0000000000000000000000".into(),
//!         tenant: "acme".into(),
//!         schema: "text-input-v1".into(),
//!         data: br#"{"content": "hello world"}"#.to_vec(),
//!         parents: vec![],
//!     },
//! };
//! let report = runtime.call(&plugin, event, CallContext::default()).await;
//! match report.result {
//!     Ok(outputs) => println!("{} outputs in {} µs", outputs.len(), report.cost.wall_us),
//!     Err(failure) if failure.retryable() => println!("retry later: {failure}"),
//!     Err(failure) => println!("dead letter: {failure}"),
//! }
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

// Bottom to top: each module imports only modules listed above it.
pub mod bindings;
mod cache;
mod call;
mod config;
mod cpu;
mod effect;
mod error;
mod host;
mod invoke;
mod net;
mod plugin;
mod runtime;
mod sandbox;
mod secrets;
mod shape;
mod types;

pub use call::{CallContext, CallReport};
pub use config::{Limits, RuntimeConfig};
pub use effect::{EffectContext, EffectReport};
pub use error::{DenyReason, Failure, GuestError, LoadError, MAX_FAILURE_MESSAGE, RuntimeError};
pub use host::{
    EffectAnswer, EffectFn, EffectFuture, HostApi, HostFuture, MemoryHost, NoHost, filter_field,
    matches_filter,
};
pub use net::{HttpRecord, MAX_RECORDED_TEXT, NetPolicy, is_private_address};
pub use plugin::Plugin;
/// What a call used, the record of an effect call and the lines of a
/// guest's log: one definition each, shared with the engine and the store.
pub use reyna_types::{Cost, EffectCall, EffectOutcome, LogLevel, LogLine};
/// The contract's rules for the usage units an effect reports.
pub use reyna_types::{MAX_UNIT_NAME, MAX_USAGE_UNITS, UnitError, add_usage, check_unit_name};
pub use runtime::{Runtime, RuntimeStats};
pub use secrets::{REDACTED, is_secret_key};
pub use shape::{CompileLimits, ShapeError};
pub use types::{Blob, Event, Output};

/// An entry of an effect's `allowed-hosts`, or of an operator's approvals
/// ([`NetPolicy::approved_hosts`]).
pub use reyna_manifest::AllowedHost;
