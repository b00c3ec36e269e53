//! `/v1/tenants` and their installations, `/v1/me`, and the master key:
//! who the tenants are and how each runs each plugin.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::check_tenant;
use crate::AppState;
use crate::auth::{Admin, Caller, Operator};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{JsonBody, Path, QueryParams};
use crate::wire::{
    CreateTenant, Installation, InstallationConfig, MasterKeyRotated, Me, SetInstallation,
    SetSecret, Tenant, TenantDeleted, TenantHoldings, UpdateTenant, UsageParams, UsageReport,
};

/// Who the token is: its id, tenant and role.
#[utoipa::path(get, path = "/v1/me", tag = "tenants", security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = Me),
        (status = "4XX", description = "Refused", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn me(caller: Caller) -> Json<Me> {
    Json(Me {
        token_id: caller.token_id.clone(),
        tenant: caller.tenant.to_string(),
        role: caller.role.into(),
    })
}

/// Create a tenant (operator). Ids are never reused, even after deletion.
#[utoipa::path(post, path = "/v1/tenants", tag = "tenants", security(("bearer" = [])),
    request_body = CreateTenant,
    responses(
        (status = 201, description = "Created", body = Tenant),
        (status = 409, description = "The id is or was in use", body = Problem, content_type = "application/problem+json"),
        (status = "4XX", description = "Refused", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn create(
    Operator(caller): Operator,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<CreateTenant>,
) -> ApiResult<(StatusCode, Json<Tenant>)> {
    let id = check_tenant(&body.id)?;
    let name = body.name.unwrap_or_else(|| id.to_string());
    if name.len() > 200 {
        return Err(ApiError::bad_request(
            "invalid-tenant",
            "a tenant's name is at most 200 bytes",
        ));
    }
    let record = state
        .engine()
        .create_tenant(&id, &name, &caller.actor())
        .await?;
    Ok((StatusCode::CREATED, Json(record.into())))
}

/// Every tenant, deleted ones included (operator).
#[utoipa::path(get, path = "/v1/tenants", tag = "tenants", security(("bearer" = [])),
    responses(
        (status = 200, description = "Tenants", body = Vec<Tenant>),
        (status = "4XX", description = "Refused", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list(
    _: Operator,
    State(state): State<AppState>,
) -> ApiResult<Json<Vec<Tenant>>> {
    let tenants = state.engine().tenants()?;
    Ok(Json(tenants.into_iter().map(Into::into).collect()))
}

/// One tenant (the operator, or the tenant's admin).
#[utoipa::path(get, path = "/v1/tenants/{tenant}", tag = "tenants", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "Tenant id")),
    responses(
        (status = 200, description = "The tenant", body = Tenant),
        (status = "4XX", description = "Not found or refused", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get(
    Admin(caller): Admin,
    State(state): State<AppState>,
    Path(tenant): Path<String>,
) -> ApiResult<Json<Tenant>> {
    caller.require_admin_of(&tenant)?;
    let engine = state.engine();
    let record = engine
        .tenant_record(&tenant)?
        .ok_or_else(|| ApiError::Engine(reyna_engine::EngineError::TenantNotFound(tenant)))?;
    let (held, running) = engine.holdings(&record.id)?;
    let mut body = Tenant::from(record);
    body.effective_quotas = Some(engine.effective_quotas(&body.id));
    body.holdings = Some(TenantHoldings {
        stored_bytes: held.stored_bytes,
        queued_jobs: held.queued_jobs,
        running_jobs: running,
    });
    Ok(Json(body))
}

/// Rename a tenant and/or set its quota overrides (operator). `quotas`
/// replaces the whole set: a field left out follows the operator's default.
#[utoipa::path(patch, path = "/v1/tenants/{tenant}", tag = "tenants", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "Tenant id")),
    request_body = UpdateTenant,
    responses(
        (status = 200, description = "The tenant", body = Tenant),
        (status = 422, description = "`invalid`: a quota value is not acceptable (a zero share, a bad unit name)", body = Problem, content_type = "application/problem+json"),
        (status = "4XX", description = "Not found or refused", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn update(
    Operator(caller): Operator,
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    JsonBody(body): JsonBody<UpdateTenant>,
) -> ApiResult<Json<Tenant>> {
    if body.name.as_ref().is_some_and(|n| n.len() > 200) {
        return Err(ApiError::bad_request(
            "invalid-tenant",
            "a tenant's name is at most 200 bytes",
        ));
    }
    let record = state
        .engine()
        .update_tenant(&tenant, body.name, body.quotas, &caller.actor())
        .await?;
    Ok(Json(record.into()))
}

/// Most periods one usage answer holds.
const MAX_USAGE_PERIODS: u64 = 2000;

/// A tenant's metered usage per hour, day or month (its admin, or the
/// operator for any tenant).
#[utoipa::path(get, path = "/v1/usage", tag = "tenants", security(("bearer" = [])),
    params(UsageParams),
    responses(
        (status = 200, description = "Usage per period", body = UsageReport),
        (status = 400, description = "`invalid-usage-query`: an unknown granularity, `from` after `to`, or more than 2,000 periods", body = Problem, content_type = "application/problem+json"),
        (status = "4XX", description = "Refused", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn usage(
    Admin(caller): Admin,
    State(state): State<AppState>,
    QueryParams(q): QueryParams<UsageParams>,
) -> ApiResult<Json<UsageReport>> {
    let tenant = caller
        .tenant_filter(q.tenant)?
        .unwrap_or_else(|| caller.tenant.to_string());
    let granularity: reyna_engine::reyna_store::Granularity = q
        .granularity
        .as_deref()
        .unwrap_or("hour")
        .parse()
        .map_err(|e: String| ApiError::bad_request("invalid-usage-query", e))?;
    let engine = state.engine();
    let to = q.to.unwrap_or_else(|| engine.now_ms() + 1);
    let from = match q.from {
        Some(from) => granularity.start(from),
        None => {
            let mut start = granularity.start(to.saturating_sub(1));
            for _ in 1..24 {
                start = granularity.start(start.saturating_sub(1));
            }
            start
        }
    };
    if q.from.unwrap_or(from) > to {
        return Err(ApiError::bad_request(
            "invalid-usage-query",
            "`from` is after `to`",
        ));
    }
    let longest = match granularity {
        reyna_engine::reyna_store::Granularity::Hour => 3_600_000,
        reyna_engine::reyna_store::Granularity::Day => 86_400_000,
        reyna_engine::reyna_store::Granularity::Month => 28 * 86_400_000,
    };
    if (to - from) / longest > MAX_USAGE_PERIODS {
        return Err(ApiError::bad_request(
            "invalid-usage-query",
            format!(
                "at most {MAX_USAGE_PERIODS} periods per answer; narrow `from`..`to` or use a coarser granularity"
            ),
        ));
    }
    let periods = engine.usage(&tenant, granularity, from, to)?;
    let mut total = reyna_engine::reyna_store::Usage::default();
    for period in &periods {
        total.add(&period.usage);
    }
    Ok(Json(UsageReport {
        tenant,
        granularity: granularity.as_str().to_owned(),
        from,
        to,
        periods,
        total,
    }))
}

/// Delete a tenant (operator): its tokens are revoked, its installations
/// and secrets removed and its own plugins disabled, in one transaction.
/// Its blobs stay, reachable by no token; its id is never reused.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}", tag = "tenants", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "Tenant id")),
    responses(
        (status = 200, description = "Deleted", body = TenantDeleted),
        (status = "4XX", description = "Not found or refused", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn delete(
    Operator(caller): Operator,
    State(state): State<AppState>,
    Path(tenant): Path<String>,
) -> ApiResult<Json<TenantDeleted>> {
    if caller.tenant.as_str() == tenant {
        return Err(ApiError::Conflict(
            "a token cannot delete its own tenant (it would revoke itself); use an operator token of another tenant".into(),
        ));
    }
    let done = state
        .engine()
        .delete_tenant(&tenant, &caller.actor())
        .await?;
    // Its tokens are gone: their live streams and sockets end now.
    state.streams().revoked();
    Ok(Json(TenantDeleted {
        tokens: done.tokens,
        installations: done.installations,
        plugins: done.plugins,
    }))
}

/// The tenant's installation of every plugin it can see.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/installations", tag = "tenants", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "Tenant id")),
    responses(
        (status = 200, description = "Installations", body = Vec<Installation>),
        (status = "4XX", description = "Not found or refused", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn installations(
    Admin(caller): Admin,
    State(state): State<AppState>,
    Path(tenant): Path<String>,
) -> ApiResult<Json<Vec<Installation>>> {
    caller.require_admin_of(&tenant)?;
    let all = state.engine().installations(&tenant)?;
    Ok(Json(all.into_iter().map(Into::into).collect()))
}

/// The tenant's installation of one plugin.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/installations/{plugin}", tag = "tenants", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "Tenant id"), ("plugin" = String, Path, description = "Plugin name")),
    responses(
        (status = 200, description = "The installation", body = Installation),
        (status = "4XX", description = "Not found or refused", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn installation(
    Admin(caller): Admin,
    State(state): State<AppState>,
    Path((tenant, plugin)): Path<(String, String)>,
) -> ApiResult<Json<Installation>> {
    caller.require_admin_of(&tenant)?;
    Ok(Json(state.engine().installation(&tenant, &plugin)?.into()))
}

/// Turn the tenant's installation of a plugin on or off. Turning a paused
/// installation on resumes it at once.
#[utoipa::path(put, path = "/v1/tenants/{tenant}/installations/{plugin}", tag = "tenants", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "Tenant id"), ("plugin" = String, Path, description = "Plugin name")),
    request_body = SetInstallation,
    responses(
        (status = 200, description = "The installation", body = Installation),
        (status = "4XX", description = "Not found or refused", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn set_installation(
    Admin(caller): Admin,
    State(state): State<AppState>,
    Path((tenant, plugin)): Path<(String, String)>,
    JsonBody(body): JsonBody<SetInstallation>,
) -> ApiResult<Json<Installation>> {
    caller.require_admin_of(&tenant)?;
    let view = state
        .engine()
        .set_installation_enabled(&tenant, &plugin, body.enabled, &caller.actor())
        .await?;
    Ok(Json(view.into()))
}

/// Replace the plain config of the tenant's installation of a plugin.
#[utoipa::path(put, path = "/v1/tenants/{tenant}/installations/{plugin}/config", tag = "tenants", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "Tenant id"), ("plugin" = String, Path, description = "Plugin name")),
    request_body = InstallationConfig,
    responses(
        (status = 200, description = "The installation", body = Installation),
        (status = "4XX", description = "Not found, invalid or refused", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn set_config(
    Admin(caller): Admin,
    State(state): State<AppState>,
    Path((tenant, plugin)): Path<(String, String)>,
    JsonBody(body): JsonBody<InstallationConfig>,
) -> ApiResult<Json<Installation>> {
    caller.require_admin_of(&tenant)?;
    let view = state
        .engine()
        .set_installation_config(&tenant, &plugin, body.config, &caller.actor())
        .await?;
    Ok(Json(view.into()))
}

/// Set a secret of the tenant's installation of a plugin (a new version
/// each time). The value is sealed before it is stored and never returned.
#[utoipa::path(put, path = "/v1/tenants/{tenant}/installations/{plugin}/secrets/{key}", tag = "tenants", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "Tenant id"), ("plugin" = String, Path, description = "Plugin name"), ("key" = String, Path, description = "Config key")),
    request_body = SetSecret,
    responses(
        (status = 200, description = "The installation (the secret shown as set, with its version)", body = Installation),
        (status = "4XX", description = "Not found, invalid or refused", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn set_secret(
    Admin(caller): Admin,
    State(state): State<AppState>,
    Path((tenant, plugin, key)): Path<(String, String, String)>,
    JsonBody(body): JsonBody<SetSecret>,
) -> ApiResult<Json<Installation>> {
    caller.require_admin_of(&tenant)?;
    let view = state
        .engine()
        .set_secret(&tenant, &plugin, &key, &body.value, &caller.actor())
        .await?;
    Ok(Json(view.into()))
}

/// Remove a secret of the tenant's installation of a plugin.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/installations/{plugin}/secrets/{key}", tag = "tenants", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "Tenant id"), ("plugin" = String, Path, description = "Plugin name"), ("key" = String, Path, description = "Config key")),
    responses(
        (status = 200, description = "The installation", body = Installation),
        (status = "4XX", description = "Not found or refused", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn delete_secret(
    Admin(caller): Admin,
    State(state): State<AppState>,
    Path((tenant, plugin, key)): Path<(String, String, String)>,
) -> ApiResult<Json<Installation>> {
    caller.require_admin_of(&tenant)?;
    let view = state
        .engine()
        .delete_secret(&tenant, &plugin, &key, &caller.actor())
        .await?;
    Ok(Json(view.into()))
}

/// Re-encrypt every secret under a new master key (operator), in one
/// transaction, then make the new key current.
#[utoipa::path(post, path = "/v1/secrets/rotate-master-key", tag = "tenants", security(("bearer" = [])),
    responses(
        (status = 200, description = "Rotated", body = MasterKeyRotated),
        (status = "4XX", description = "Refused (or a rotation is pending)", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn rotate_master_key(
    Operator(caller): Operator,
    State(state): State<AppState>,
) -> ApiResult<Json<MasterKeyRotated>> {
    let resealed = state.engine().rotate_master_key(&caller.actor()).await?;
    Ok(Json(MasterKeyRotated { resealed }))
}
