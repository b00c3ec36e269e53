//! `/v1/jobs` and `/v1/dead-letters`: plugin runs, failures, replays.

use axum::Json;
use axum::extract::{Path, State};

use super::{blob_id, dead_letter_id, job_id, page_size};
use crate::AppState;
use crate::auth::{Admin, Reader};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::QueryParams;
use crate::wire::{self, DeadLetterPage, Job, ListDeadLetters, ListJobs};

/// The jobs routed for a blob of the caller's tenant, optionally in one state.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", security(("bearer" = [])),
    params(ListJobs),
    responses(
        (status = 200, description = "Jobs, oldest first", body = Vec<Job>),
        (status = "4XX", description = "Bad parameter or refused", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list(
    Reader(caller): Reader,
    State(state): State<AppState>,
    QueryParams(q): QueryParams<ListJobs>,
) -> ApiResult<Json<Vec<Job>>> {
    // The store indexes jobs by input blob only; a tenant-wide listing by
    // state needs a (tenant, state) index in the store first.
    let Some(blob) = q.blob else {
        return Err(ApiError::bad_request(
            "invalid-query",
            "pass `blob=<id>`: jobs are listed per input blob (a tenant-wide listing by state is not available yet)",
        ));
    };
    let blob = blob_id(&blob)?;
    let mut jobs = state.engine().store().jobs_for_blob(&caller.tenant, blob)?;
    if let Some(wanted) = q.state {
        jobs.retain(|j| wire::JobState::from(j.state) == wanted);
    }
    jobs.sort_by_key(|j| j.created_at);
    Ok(Json(jobs.into_iter().map(Into::into).collect()))
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
    match state.engine().store().get_job(parsed)? {
        Some(job) if job.tenant == caller.tenant => Ok(Json(job.into())),
        _ => Err(ApiError::NotFound(format!("job {id} not found"))),
    }
}

/// A page of dead letters, oldest first: the caller's tenant's, or for an
/// admin every tenant's (or `tenant=`'s).
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
    let tenant = if caller.is_admin() {
        q.tenant
    } else {
        if q.tenant.as_ref().is_some_and(|t| *t != caller.tenant) {
            return Err(ApiError::Forbidden(
                "only admins may list another tenant's dead letters".into(),
            ));
        }
        Some(caller.tenant.clone())
    };
    let page =
        state
            .engine()
            .store()
            .list_dead_letters(tenant.as_deref(), q.cursor.as_deref(), limit)?;
    Ok(Json(DeadLetterPage {
        items: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Replay a dead letter (admin): its job runs again as the next attempt.
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
        .replay_dead_letter(&id, &caller.actor())
        .await?;
    Ok(Json(job.into()))
}
