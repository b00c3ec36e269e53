//! Reyna's durable state, in one redb file: blobs and their bytes, lineage
//! (edges both ways, producer, cost, effect calls), jobs with a due-time
//! queue, dead letters, an event log with a sequence, idempotency records,
//! and the registries (schemas, plugins, components, API
//! tokens, audit log). Nothing the host relies on lives only in memory.
//!
//! Every write goes to one writer thread that **group-commits**: it applies
//! everything queued in one transaction, commits once with
//! `Durability::Immediate`, then answers each caller. A write's future
//! resolves only when its data is on disk. The operations the engine builds
//! on are each atomic: [`Store::create_blob`] (blob + event + jobs),
//! [`Store::complete_job`] (outputs + lineage + events + next jobs + done),
//! [`Store::fail_job`] (retry or dead letter). Derived blob ids come from
//! (job id, output index), so a completion replayed after a crash changes
//! nothing.
//!
//! This crate knows nothing of wasm, HTTP or NATS.
//!
//! ```
//! use reyna_store::{Completion, Direction, JobSpec, NewBlob, NewOutput, Store};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path().join("reyna.redb"))?;
//! let rt = tokio::runtime::Runtime::new()?;
//! rt.block_on(async {
//!     // Ingest a blob and enqueue one job for it, atomically.
//!     let input = store
//!         .create_blob(
//!             NewBlob {
//!                 tenant: "acme".into(),
//!                 schema: "text-input-v1".into(),
//!                 data: br#"{"content":"hello world"}"#.to_vec(),
//!                 parents: vec![],
//!                 hop: 0,
//!             },
//!             vec![JobSpec {
//!                 plugin: "word-stats".into(),
//!                 version: "0.1.0".into(),
//!                 subject: "blob.created.text-input-v1".into(),
//!             }],
//!         )
//!         .await?;
//!
//!     // A worker claims it and commits its output with lineage.
//!     let now = input.created_at;
//!     let job = store.claim_due_jobs(now, 16, None).await?.remove(0);
//!     let outputs = store
//!         .complete_job(
//!             job.id,
//!             Completion {
//!                 outputs: vec![NewOutput {
//!                     schema: "word-stats-v1".into(),
//!                     data: br#"{"words":1}"#.to_vec(),
//!                     extra_parents: vec![],
//!                 }],
//!                 ..Completion::default()
//!             },
//!         )
//!         .await?;
//!
//!     let lineage = store.lineage("acme", outputs[0].id, Direction::Up, 8)?.expect("stored");
//!     assert_eq!(lineage.nodes.len(), 2);
//!     assert_eq!(lineage.edges[0].parent, input.id);
//!     Ok::<_, reyna_store::StoreError>(())
//! })?;
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod codec;
mod error;
mod migrate;
mod model;
mod ops;
mod read;
mod store;
mod tables;
mod tx;
mod usage;
mod writer;

pub use error::{Result, StoreError};
pub use model::*;
pub use store::{DEFAULT_CACHE_BYTES, Store};
pub use usage::*;

/// The store's clock: the system time plus an offset that only moves
/// forward. Every write's time (blob and job times, usage periods, budget
/// windows) comes from it; a test advances it to cross a day or a month
/// without waiting.
#[derive(Clone, Debug, Default)]
pub struct Clock(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl Clock {
    /// Milliseconds since the unix epoch, with the offset.
    pub fn now_ms(&self) -> u64 {
        now_ms().saturating_add(self.0.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: std::time::Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.0.fetch_add(ms, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Milliseconds since the unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
