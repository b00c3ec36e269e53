//! `/v1/tenants` and their installations, `/v1/me`, and the master key:
//! who the tenants are and how each runs each plugin.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::check_tenant;
use crate::AppState;
use crate::auth::{Admin, Caller, Operator};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{JsonBody, Path};
use crate::wire::{
    CreateTenant, Installation, InstallationConfig, MasterKeyRotated, Me, SetInstallation,
    SetSecret, Tenant, TenantDeleted,
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
    let record = state
        .engine()
        .tenant_record(&tenant)?
        .ok_or_else(|| ApiError::Engine(reyna_engine::EngineError::TenantNotFound(tenant)))?;
    Ok(Json(record.into()))
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
