//! The handlers, one module per resource.

use reyna_engine::EngineError;
use reyna_engine::{BlobId, DeadLetterId, JobId, TenantId};

use crate::AppState;
use crate::error::ApiError;

pub(crate) mod blobs;
pub(crate) mod events;
pub(crate) mod graph;
pub(crate) mod jobs;
pub(crate) mod ops;
pub(crate) mod plugins;
pub(crate) mod schemas;
pub(crate) mod tenants;
pub(crate) mod tokens;
pub(crate) mod ws;

/// The page size asked for, or the default; refuses 0 and sizes over the maximum.
pub(crate) fn page_size(state: &AppState, limit: Option<usize>) -> Result<usize, ApiError> {
    let max = state.config().max_page;
    match limit {
        None => Ok(state.config().default_page.min(max)),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::bad_request(
            "invalid-query",
            format!("limit must be between 1 and {max}, got {n}"),
        )),
    }
}

pub(crate) fn blob_id(id: &str) -> Result<BlobId, ApiError> {
    id.parse()
        .map_err(|_| ApiError::Engine(EngineError::InvalidBlobId { id: id.to_owned() }))
}

pub(crate) fn job_id(id: &str) -> Result<JobId, ApiError> {
    id.parse()
        .map_err(|_| ApiError::bad_request("invalid-id", format!("`{id}` is not a valid job id")))
}

pub(crate) fn dead_letter_id(id: &str) -> Result<DeadLetterId, ApiError> {
    id.parse().map_err(|_| {
        ApiError::bad_request(
            "invalid-id",
            format!("`{id}` is not a valid dead letter id"),
        )
    })
}

/// Tenants are one NATS subject token and a directory-safe name.
pub(crate) fn check_tenant(tenant: &str) -> Result<TenantId, ApiError> {
    TenantId::parse(tenant).map_err(|e| ApiError::bad_request("invalid-tenant", e.to_string()))
}
