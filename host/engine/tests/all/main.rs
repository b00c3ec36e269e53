//! Engine tests, one binary by concern (as wasmtime's `tests/all`): the
//! pipeline end to end on the example plugins, registry refusals, failure
//! policy, tenancy and recovery.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod effects;
mod failures;
mod fairness;
mod hostile;
mod pipeline;
mod quotas;
mod registry;
mod tenancy;
mod tenancy_recovery;
