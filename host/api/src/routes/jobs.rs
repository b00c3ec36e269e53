//! `/v1/jobs` and `/v1/dead-letters`: plugin runs, failures, replays.

use axum::Json;
use axum::extract::State;
use reyna_engine::{EngineError, StoreError, TenantId};

use super::{blob_id, dead_letter_id, job_id, page_size};
use crate::AppState;
use crate::auth::{Admin, Reader};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Path, QueryParams};
use crate::wire::{self, DeadLetterPage, Job, JobLog, ListDeadLetters, ListJobs};

/// The caller's tenant's jobs, optionally of one input blob and one state.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", security(("bearer" = [])),
    params(ListJobs),
    responses(
        (status = 200, description = "Jobs: all of one blob's, oldest first, or a page of the tenant's (next page: `x-next-cursor` header)", body = Vec<Job>),
        (status = "4XX", description = "Bad parameter or refused", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list(
    Reader(caller): Reader,
    State(state): State<AppState>,
    QueryParams(q): QueryParams<ListJobs>,
) -> ApiResult<(axum::http::HeaderMap, Json<Vec<Job>>)> {
    let mut headers = axum::http::HeaderMap::new();
    let Some(blob) = q.blob else {
        let limit = page_size(&state, q.limit)?;
        let wanted = q.state.map(store_state);
        let page = state
            .engine()
            .tenant(&caller.tenant)
            .jobs(wanted, q.cursor, limit)
            .await
            .map_err(|e| match e {
                EngineError::Store(StoreError::BadCursor) => ApiError::bad_request(
                    "invalid-cursor",
                    "cursor is not from a previous page of this listing",
                ),
                other => other.into(),
            })?;
        if let Some(next) = page.next_cursor
            && let Ok(value) = axum::http::HeaderValue::from_str(&next)
        {
            headers.insert("x-next-cursor", value);
        }
        return Ok((
            headers,
            Json(page.items.into_iter().map(Into::into).collect()),
        ));
    };
    if q.cursor.is_some() || q.limit.is_some() {
        return Err(ApiError::bad_request(
            "invalid-query",
            "`cursor` and `limit` apply to the tenant-wide listing, not to `blob=`",
        ));
    }
    let blob = blob_id(&blob)?;
    let mut jobs = state
        .engine()
        .tenant(&caller.tenant)
        .jobs_for_blob(blob)
        .await?;
    if let Some(wanted) = q.state {
        jobs.retain(|j| wire::JobState::from(j.state) == wanted);
    }
    jobs.sort_by_key(|j| j.created_at);
    Ok((headers, Json(jobs.into_iter().map(Into::into).collect())))
}

fn store_state(s: wire::JobState) -> reyna_engine::JobState {
    use reyna_engine::JobState as S;
    match s {
        wire::JobState::Pending => S::Pending,
        wire::JobState::Running => S::Running,
        wire::JobState::Done => S::Done,
        wire::JobState::Dead => S::Dead,
    }
}

/// What a job's plugin logged, per attempt (only attempts that logged
/// something), oldest first: its `log` calls and its stdout and stderr,
/// bounded by the plugin's log limit and with secret config values
/// redacted. Another tenant's job is a 404.
#[utoipa::path(get, path = "/v1/jobs/{id}/logs", tag = "jobs", security(("bearer" = [])),
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "The job's logs, one entry per attempt that logged", body = Vec<JobLog>),
        (status = "4XX", description = "Not found or refused", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn logs(
    Reader(caller): Reader,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<JobLog>>> {
    let parsed = job_id(&id)?;
    match state
        .engine()
        .tenant(&caller.tenant)
        .job_logs(parsed)
        .await?
    {
        Some(logs) => Ok(Json(logs.into_iter().map(Into::into).collect())),
        None => Err(ApiError::NotFound(format!("job {id} not found"))),
    }
}

/// One job of the caller's tenant.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs", security(("bearer" = [])),
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "The job", body = Job),
        (status = "4XX", description = "Not found or refused", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get(
    Reader(caller): Reader,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Job>> {
    let parsed = job_id(&id)?;
    match state.engine().tenant(&caller.tenant).job(parsed)? {
        Some(job) => Ok(Json(job.into())),
        None => Err(ApiError::NotFound(format!("job {id} not found"))),
    }
}

/// A page of dead letters, oldest first: the caller's tenant's, or for the
/// operator every tenant's (or `tenant=`'s).
#[utoipa::path(get, path = "/v1/dead-letters", tag = "jobs", security(("bearer" = [])),
    params(ListDeadLetters),
    responses(
        (status = 200, description = "A page", body = DeadLetterPage),
        (status = "4XX", description = "Bad cursor or limit, or refused", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn dead_letters(
    Reader(caller): Reader,
    State(state): State<AppState>,
    QueryParams(q): QueryParams<ListDeadLetters>,
) -> ApiResult<Json<DeadLetterPage>> {
    let limit = page_size(&state, q.limit)?;
    let tenant = caller.tenant_filter(q.tenant)?;
    let tenant = tenant
        .map(|t| TenantId::parse(&t))
        .transpose()
        .map_err(|e| ApiError::bad_request("invalid-tenant", e.to_string()))?;
    let page = state.engine().dead_letters(tenant, q.cursor, limit).await?;
    Ok(Json(DeadLetterPage {
        items: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Replay a dead letter (its tenant's admin, or the operator): its job
/// runs again as the next attempt.
#[utoipa::path(post, path = "/v1/dead-letters/{id}/replay", tag = "jobs", security(("bearer" = [])),
    params(("id" = String, Path, description = "Dead letter id")),
    responses(
        (status = 200, description = "The job, pending again", body = Job),
        (status = 409, description = "Already replayed", body = Problem, content_type = "application/problem+json"),
        (status = "4XX", description = "Not found or refused", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn replay(
    Admin(caller): Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Job>> {
    dead_letter_id(&id)?;
    let job = state
        .engine()
        .replay_dead_letter(&id, caller.scope(), &caller.actor())
        .await?;
    Ok(Json(job.into()))
}
