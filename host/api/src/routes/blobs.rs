//! `/v1/blobs`: create, list, read (metadata and bytes), derived blobs
//! (with a bounded long-poll), lineage and re-runs.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use reyna_engine::{BlobFilter, BlobMeta, JobState, TenantId};

use super::{blob_id, page_size};
use crate::AppState;
use crate::auth::{Admin, Reader, Writer};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{JsonBody, Path, QueryParams};
use crate::wire::{
    Blob, BlobPage, CreateBlob, Derived, DerivedParams, Direction, Job, Lineage, LineageParams,
    ListBlobs, RerunBlob,
};

/// Lineage depth when the request does not say.
const DEFAULT_DEPTH: u32 = 8;
/// Deepest lineage walk (the store's own cap).
const MAX_DEPTH: u32 = 1024;

/// Create a blob (writer): validated against its schema, stored with its
/// `blob.created` event and one job per subscribed plugin, atomically.
#[utoipa::path(post, path = "/v1/blobs", tag = "blobs", security(("bearer" = [])),
    request_body = CreateBlob,
    responses(
        (status = 201, description = "Stored; `Location` names it", body = Blob),
        (status = 422, description = "Schema violation (each with its JSON pointer and rule), unknown schema or parent", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body or blob over the limit", body = Problem, content_type = "application/problem+json"),
        (status = 408, description = "`body-timeout`: the body did not arrive within the host's body timeout; nothing stored", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`server-busy`: the host's memory budget for request bodies is in use; nothing stored, retry after `Retry-After` seconds", body = Problem, content_type = "application/problem+json"),
        (status = "4XX", description = "Refused; nothing stored", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn create(
    Writer(caller): Writer,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<CreateBlob>,
) -> ApiResult<Response> {
    let data = body.data.get().as_bytes().to_vec();
    let meta = state
        .engine()
        .create_blob(caller.tenant.as_str(), &body.schema, data, body.parents)
        .await?;
    let location = format!("/v1/blobs/{}", meta.id);
    let mut response = (StatusCode::CREATED, Json(Blob::from(meta))).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

/// A page of the tenant's blobs, oldest first; with `schema`, `field` and
/// `value`, only those whose data holds `value` at the JSON pointer `field`.
#[utoipa::path(get, path = "/v1/blobs", tag = "blobs", security(("bearer" = [])),
    params(ListBlobs),
    responses(
        (status = 200, description = "A page (a filtered one may be short, even empty, with a `next_cursor`: the scan stopped at its bound)", body = BlobPage),
        (status = "4XX", description = "Bad cursor, limit or filter, or refused", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list(
    Reader(caller): Reader,
    State(state): State<AppState>,
    QueryParams(q): QueryParams<ListBlobs>,
) -> ApiResult<Json<BlobPage>> {
    let limit = page_size(&state, q.limit)?;
    let view = state.engine().tenant(&caller.tenant);
    let page = match (q.schema, q.field, q.value) {
        (schema, None, None) => view.blobs(schema, q.cursor, limit).await?,
        (Some(schema), Some(field), Some(value)) => {
            let filter = BlobFilter::text_at(&field, &value)
                .map_err(|e| ApiError::bad_request("invalid-query", e))?;
            view.find_blobs(&schema, filter, q.cursor, limit).await?
        }
        (None, Some(_), _) => return Err(invalid_filter("`field` needs `schema`")),
        (_, Some(_), None) => return Err(invalid_filter("`field` needs `value`")),
        (_, None, Some(_)) => return Err(invalid_filter("`value` needs `field`")),
    };
    Ok(Json(BlobPage {
        items: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

fn invalid_filter(what: &str) -> ApiError {
    ApiError::bad_request(
        "invalid-query",
        format!(
            "{what}: filter with `schema=<id>&field=<JSON pointer>&value=<text>`, e.g. `schema=chapter-v1&field=/book_id&value=b1`"
        ),
    )
}

fn find(state: &AppState, tenant: &TenantId, id: &str) -> ApiResult<BlobMeta> {
    let parsed = blob_id(id)?;
    state
        .engine()
        .tenant(tenant)
        .blob(parsed)?
        .ok_or_else(|| ApiError::NotFound(format!("blob {id} not found")))
}

/// A blob's metadata (another tenant's blob is a 404).
#[utoipa::path(get, path = "/v1/blobs/{id}", tag = "blobs", security(("bearer" = [])),
    params(("id" = String, Path, description = "Blob id")),
    responses(
        (status = 200, description = "The blob", body = Blob),
        (status = "4XX", description = "Not found or refused", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get(
    Reader(caller): Reader,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Blob>> {
    Ok(Json(find(&state, &caller.tenant, &id)?.into()))
}

/// A blob's bytes, exactly as stored.
#[utoipa::path(get, path = "/v1/blobs/{id}/data", tag = "blobs", security(("bearer" = [])),
    params(("id" = String, Path, description = "Blob id")),
    responses(
        (status = 200, description = "The bytes (a JSON document); `ETag` is their sha256", content_type = "application/json", body = Object),
        (status = "4XX", description = "Not found or refused", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn data(
    Reader(caller): Reader,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let (meta, bytes) = state
        .engine()
        .tenant(&caller.tenant)
        .blob_with_data(blob_id(&id)?)?
        .ok_or_else(|| ApiError::NotFound(format!("blob {id} not found")))?;
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", meta.digest)) {
        headers.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&meta.schema) {
        headers.insert("x-reyna-schema", v);
    }
    Ok(response)
}

/// The lineage graph around a blob: ancestors (`up`), descendants
/// (`down`) or both, to `depth` hops, with each node's producer.
#[utoipa::path(get, path = "/v1/blobs/{id}/lineage", tag = "blobs", security(("bearer" = [])),
    params(("id" = String, Path, description = "Blob id"), LineageParams),
    responses(
        (status = 200, description = "Nodes and edges", body = Lineage),
        (status = "4XX", description = "Not found, bad parameter, or refused", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn lineage(
    Reader(caller): Reader,
    State(state): State<AppState>,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<LineageParams>,
) -> ApiResult<Json<Lineage>> {
    let graph = walk_lineage(&state, &caller.tenant, &id, q).await?;
    Ok(Json(graph.into()))
}

/// The lineage walk behind `/lineage` and `/graph`: the parameters checked,
/// the tenant's blob `id` found (another tenant's is a 404), the store's
/// bounded walk.
pub(crate) async fn walk_lineage(
    state: &AppState,
    tenant: &TenantId,
    id: &str,
    q: LineageParams,
) -> ApiResult<reyna_engine::Lineage> {
    let parsed = blob_id(id)?;
    let depth = q.depth.unwrap_or(DEFAULT_DEPTH);
    if depth > MAX_DEPTH {
        return Err(ApiError::bad_request(
            "invalid-query",
            format!("depth must be at most {MAX_DEPTH}, got {depth}"),
        ));
    }
    let direction = q.direction.unwrap_or(Direction::Both);
    state
        .engine()
        .tenant(tenant)
        .lineage(parsed, direction.into(), depth)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("blob {id} not found")))
}

fn parse_wait(text: &str) -> Result<Duration, ApiError> {
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(text).map_err(|_| {
        ApiError::bad_request(
            "invalid-query",
            format!("wait must be seconds (`10`) or a duration (`500ms`), got `{text}`"),
        )
    })
}

/// Run a plugin version again on a stored blob (admin), as a new job whose
/// output is recorded beside earlier ones, e.g. after an upgrade. With
/// `replay_effects`, its effect calls are answered from earlier runs'
/// recorded responses and nothing calls out.
#[utoipa::path(post, path = "/v1/blobs/{id}/rerun", tag = "blobs", security(("bearer" = [])),
    params(("id" = String, Path, description = "Blob id")),
    request_body = RerunBlob,
    responses(
        (status = 202, description = "The new job, pending", body = Job),
        (status = 409, description = "The plugin version does not accept the blob's schema", body = Problem, content_type = "application/problem+json"),
        (status = "4XX", description = "Blob or plugin version not found, bad body, or refused", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn rerun(
    Admin(caller): Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<RerunBlob>,
) -> ApiResult<(StatusCode, Json<Job>)> {
    blob_id(&id)?;
    let job = state
        .engine()
        .rerun(
            caller.tenant.as_str(),
            &id,
            &body.plugin,
            &body.version,
            body.replay_effects,
            &caller.actor(),
        )
        .await?;
    Ok((StatusCode::ACCEPTED, Json(job.into())))
}

/// The blobs derived directly from a blob and the jobs routed for it. With
/// `wait`, answers as soon as every job has settled (done or dead), or when
/// the wait (capped by the host) is over, whichever is first.
#[utoipa::path(get, path = "/v1/blobs/{id}/derived", tag = "blobs", security(("bearer" = [])),
    params(("id" = String, Path, description = "Blob id"), DerivedParams),
    responses(
        (status = 200, description = "Derived blobs so far; `settled` says whether more may come", body = Derived),
        (status = 429, description = "`too-many-streams`: with `wait`, this token or the host has as many live streams and long-polls open as allowed; `Retry-After` says when to try again", body = Problem, content_type = "application/problem+json"),
        (status = "4XX", description = "Not found, bad parameter, or refused", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn derived(
    Reader(caller): Reader,
    State(state): State<AppState>,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<DerivedParams>,
) -> ApiResult<Json<Derived>> {
    let meta = find(&state, &caller.tenant, &id)?;
    let wait = q
        .wait
        .as_deref()
        .map(parse_wait)
        .transpose()?
        .unwrap_or_default()
        .min(state.config().max_wait);
    // A long-poll holds a stream slot while it waits (freed on return, or
    // when the client goes away and the request is dropped).
    let _slot = if wait.is_zero() {
        None
    } else {
        Some(state.streams().open(&caller.token_id)?)
    };
    let deadline = tokio::time::Instant::now() + wait;
    let view = state.engine().tenant(&caller.tenant);
    let mut events = state.engine().watch_events();
    let mut finished = state.engine().watch_finished();
    let mut shutdown = state.shutdown_signal();
    loop {
        // Mark the current commit as seen before reading, so a commit that
        // lands after the read wakes the wait below.
        events.borrow_and_update();
        finished.borrow_and_update();
        let jobs = view.jobs_for_blob(meta.id).await?;
        let settled = jobs
            .iter()
            .all(|j| matches!(j.state, JobState::Done | JobState::Dead));
        if settled || tokio::time::Instant::now() >= deadline || *shutdown.borrow() {
            let children = view.children(meta.id).await?;
            return Ok(Json(Derived {
                blob: meta.id.to_string(),
                derived: children.into_iter().map(Into::into).collect(),
                jobs: jobs.into_iter().map(Into::into).collect(),
                settled,
            }));
        }
        // A job outcome commits an event (outputs' `blob.created`, or
        // `job.failed`), except a completion with no outputs: the engine's
        // job-finished signal wakes the wait for that one.
        tokio::select! {
            changed = events.changed() => if changed.is_err() { return Err(ApiError::Unavailable("the store is closing".into())) },
            _ = finished.changed() => {}
            _ = tokio::time::sleep_until(deadline) => {}
            _ = shutdown.changed() => {}
        }
    }
}
