//! `/v1/plugins`: upload components, list them, enable, disable, configure.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use reyna_engine::EngineError;

use crate::AppState;
use crate::auth::{Admin, Reader};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{JsonBody, Path, WasmBody};
use crate::wire::{Plugin, PluginConfig, PluginUploaded, PluginVersions};

/// Upload a plugin component (admin). The body is the `.wasm` file; its
/// embedded manifest says what it is. The new version is enabled and older
/// versions of the same name are disabled. Uploading the same bytes again
/// is a no-op (200); every refusal stores nothing.
#[utoipa::path(post, path = "/v1/plugins", tag = "plugins", security(("bearer" = [])),
    request_body(content = Vec<u8>, description = "The component bytes", content_type = "application/wasm"),
    responses(
        (status = 201, description = "Uploaded and enabled", body = PluginUploaded),
        (status = 200, description = "The same bytes were uploaded before", body = PluginUploaded),
        (status = "4XX", description = "Refused; nothing stored", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn upload(
    Admin(caller): Admin,
    State(state): State<AppState>,
    WasmBody(bytes): WasmBody,
) -> ApiResult<(StatusCode, Json<PluginUploaded>)> {
    let (view, created) = state.engine().upload_plugin(bytes, &caller.actor()).await?;
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

/// Every plugin version with its state and counters.
#[utoipa::path(get, path = "/v1/plugins", tag = "plugins", security(("bearer" = [])),
    responses(
        (status = 200, description = "Plugin versions", body = Vec<Plugin>),
        (status = "4XX", description = "Refused", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list(_: Reader, State(state): State<AppState>) -> ApiResult<Json<Vec<Plugin>>> {
    Ok(Json(
        state
            .engine()
            .list_plugins()
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
    _: Reader,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<PluginVersions>> {
    let mut versions: Vec<Plugin> = state
        .engine()
        .list_plugins()
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
    _: Reader,
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<Json<Plugin>> {
    let view = state.engine().plugin(&name, &version).ok_or_else(|| {
        ApiError::Engine(EngineError::PluginNotFound(format!("{name}@{version}")))
    })?;
    Ok(Json(view.into()))
}

/// Enable a version (admin); the name's other versions are disabled.
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
            .set_plugin_enabled(&name, &version, true, &caller.actor())
            .await?
            .into(),
    ))
}

/// Disable a version (admin): it receives no new events.
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
            .set_plugin_enabled(&name, &version, false, &caller.actor())
            .await?
            .into(),
    ))
}

/// Replace a version's operator config (admin): what the plugin reads with
/// `config(key)`. Values are never shown back, only their digest.
#[utoipa::path(put, path = "/v1/plugins/{name}/{version}/config", tag = "plugins", security(("bearer" = [])),
    params(("name" = String, Path, description = "Plugin name"), ("version" = String, Path, description = "Version")),
    request_body = PluginConfig,
    responses(
        (status = 200, description = "Config replaced", body = Plugin),
        (status = "4XX", description = "Refused or not found", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn set_config(
    Admin(caller): Admin,
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
    JsonBody(body): JsonBody<PluginConfig>,
) -> ApiResult<Json<Plugin>> {
    Ok(Json(
        state
            .engine()
            .set_plugin_config(&name, &version, body.config, &caller.actor())
            .await?
            .into(),
    ))
}
