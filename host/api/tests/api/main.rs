//! API tests through the router (no socket), one binary by concern: auth
//! and tenancy, blobs, schemas and plugins, jobs and dead letters, live
//! events, operations and the OpenAPI document.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod auth;
mod blobs;
mod common;
mod console;
mod events;
mod filter;
mod graph;
mod jobs;
mod limits;
mod ops;
mod quotas;
mod registry;
mod roles;
