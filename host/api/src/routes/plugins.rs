//! `/v1/plugins`: upload components, list them, enable, disable, configure.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use reyna_engine::{EngineError, InstallPolicy};

use crate::AppState;
use crate::auth::{Admin, Reader};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Path, QueryParams, WasmBody};
use crate::wire::{Plugin, PluginUploaded, PluginVersions, UploadPlugin};

/// Upload a plugin component. The body is the `.wasm` file; its embedded
/// manifest says what it is. The operator uploads global plugins, installed
/// for every tenant (`install=all`, tenants may opt out) or for those that
/// opt in (`install=opt-in`); a tenant's admin uploads processors that only
/// its tenant sees and runs. A name belongs to one owner. The new version
/// is enabled and older versions of the same name are disabled. Uploading
/// the same bytes again is a no-op (200); every refusal stores nothing.
#[utoipa::path(post, path = "/v1/plugins", tag = "plugins", security(("bearer" = [])),
    params(UploadPlugin),
    request_body(content = Vec<u8>, description = "The component bytes", content_type = "application/wasm"),
    responses(
        (status = 201, description = "Uploaded and enabled", body = PluginUploaded),
        (status = 200, description = "The same bytes were uploaded before", body = PluginUploaded),
        (status = "4XX", description = "Refused; nothing stored", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn upload(
    Admin(caller): Admin,
    State(state): State<AppState>,
    QueryParams(q): QueryParams<UploadPlugin>,
    WasmBody(bytes): WasmBody,
) -> ApiResult<(StatusCode, Json<PluginUploaded>)> {
    let install = match q.install.as_deref() {
        None | Some("all") => InstallPolicy::All,
        Some("opt-in") => InstallPolicy::OptIn,
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid-query",
                format!("install must be `all` or `opt-in`, got `{other}`"),
            ));
        }
    };
    if !caller.is_operator() && q.install.is_some() {
        return Err(ApiError::bad_request(
            "invalid-query",
            "`install` is the operator's choice for global plugins; a tenant's own plugin is installed for its tenant only",
        ));
    }
    let (view, created) = state
        .engine()
        .upload_plugin(bytes, caller.scope(), install, &caller.actor())
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(PluginUploaded {
            plugin: view.into(),
            created,
        }),
    ))
}

/// Every plugin version the caller sees (the operator: all; a tenant:
/// global plugins and its own), with its state and counters.
#[utoipa::path(get, path = "/v1/plugins", tag = "plugins", security(("bearer" = [])),
    responses(
        (status = 200, description = "Plugin versions", body = Vec<Plugin>),
        (status = "4XX", description = "Refused", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list(
    Reader(caller): Reader,
    State(state): State<AppState>,
) -> ApiResult<Json<Vec<Plugin>>> {
    Ok(Json(
        state
            .engine()
            .list_plugins(caller.scope())
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

/// Every version of one plugin, with state and counters.
#[utoipa::path(get, path = "/v1/plugins/{name}", tag = "plugins", security(("bearer" = [])),
    params(("name" = String, Path, description = "Plugin name")),
    responses(
        (status = 200, description = "Its versions", body = PluginVersions),
        (status = "4XX", description = "Refused or not found", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn versions(
    Reader(caller): Reader,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<PluginVersions>> {
    let mut versions: Vec<Plugin> = state
        .engine()
        .list_plugins(caller.scope())
        .into_iter()
        .filter(|p| p.name == name)
        .map(Into::into)
        .collect();
    if versions.is_empty() {
        return Err(EngineError::PluginNotFound(name).into());
    }
    versions.sort_by_key(|p| p.created_at);
    Ok(Json(PluginVersions { name, versions }))
}

/// One plugin version.
#[utoipa::path(get, path = "/v1/plugins/{name}/{version}", tag = "plugins", security(("bearer" = [])),
    params(("name" = String, Path, description = "Plugin name"), ("version" = String, Path, description = "Version")),
    responses(
        (status = 200, description = "The version", body = Plugin),
        (status = "4XX", description = "Refused or not found", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get_version(
    Reader(caller): Reader,
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<Json<Plugin>> {
    let view = state
        .engine()
        .plugin(&name, &version, caller.scope())
        .ok_or_else(|| {
            ApiError::Engine(EngineError::PluginNotFound(format!("{name}@{version}")))
        })?;
    Ok(Json(view.into()))
}

/// Enable a version; the name's other versions are disabled. The
/// operator's switch for global plugins; a tenant admin's for its own.
#[utoipa::path(post, path = "/v1/plugins/{name}/{version}/enable", tag = "plugins", security(("bearer" = [])),
    params(("name" = String, Path, description = "Plugin name"), ("version" = String, Path, description = "Version")),
    responses(
        (status = 200, description = "Enabled", body = Plugin),
        (status = "4XX", description = "Refused or not found", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn enable(
    Admin(caller): Admin,
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<Json<Plugin>> {
    Ok(Json(
        state
            .engine()
            .set_plugin_enabled(&name, &version, true, caller.scope(), &caller.actor())
            .await?
            .into(),
    ))
}

/// Disable a version: it receives no new events. The operator's switch
/// for global plugins; a tenant admin's for its own (a tenant turns a
/// global plugin off through its installation).
#[utoipa::path(post, path = "/v1/plugins/{name}/{version}/disable", tag = "plugins", security(("bearer" = [])),
    params(("name" = String, Path, description = "Plugin name"), ("version" = String, Path, description = "Version")),
    responses(
        (status = 200, description = "Disabled", body = Plugin),
        (status = "4XX", description = "Refused or not found", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn disable(
    Admin(caller): Admin,
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<Json<Plugin>> {
    Ok(Json(
        state
            .engine()
            .set_plugin_enabled(&name, &version, false, caller.scope(), &caller.actor())
            .await?
            .into(),
    ))
}
