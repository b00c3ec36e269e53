//! Operations: liveness, readiness, Prometheus metrics, the OpenAPI document.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, ApiResult, Problem};
use crate::wire::Health;
use crate::{AppState, metrics};

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = Health)))]
pub(crate) async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// Readiness: the store answers and the host is not shutting down. A
/// scale-out state node that lost NATS answers 200 with a `degraded` status.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "Not ready", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn readyz(State(state): State<AppState>) -> ApiResult<Json<Health>> {
    if !state.is_ready() {
        return Err(ApiError::Unavailable("the host is shutting down".into()));
    }
    state
        .engine()
        .counts()
        .map_err(|e| ApiError::Unavailable(format!("the store does not answer: {e}")))?;
    // Scale-out: without NATS the host still accepts blobs (they are
    // durable here) and publishes their jobs after reconnecting, so it stays
    // ready but says it is degraded.
    if state.engine().transport_connected() == Some(false) {
        return Ok(Json(Health {
            status: "degraded: NATS is unreachable; blobs are accepted and their jobs wait".into(),
        }));
    }
    Ok(Json(Health {
        status: "ok".into(),
    }))
}

/// Prometheus metrics: jobs by plugin and outcome, job and HTTP latency
/// histograms, instantiation time, queue depth, running jobs, dead letters,
/// blobs, store commits and their batch sizes.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format", content_type = "text/plain; version=0.0.4", body = String)))]
pub(crate) async fn metrics(State(state): State<AppState>) -> ApiResult<Response> {
    let text = metrics::render(state.engine())?;
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}

/// Per-tenant series (operator): what each tenant holds now and what it
/// used this month, by `tenant` label (at most `metrics-max-tenants`
/// tenants, the rest summed as `tenant="_other"`). Apart from the public
/// `/metrics` because tenant ids and usage are the operator's to see.
#[utoipa::path(get, path = "/metrics/tenants", tag = "operations", security(("bearer" = [])),
    responses(
        (status = 200, description = "Prometheus text exposition format", content_type = "text/plain; version=0.0.4", body = String),
        (status = "4XX", description = "Refused", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn tenant_metrics(
    _: crate::auth::Operator,
    State(state): State<AppState>,
) -> ApiResult<Response> {
    let text = metrics::render_tenants(state.engine(), state.config().metrics_max_tenants)?;
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}

/// This API's OpenAPI 3 document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object)))]
pub(crate) async fn openapi_json() -> Response {
    match serde_json::to_vec(crate::openapi()) {
        Ok(body) => {
            let mut response = body.into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(e) => {
            ApiError::Internal(format!("cannot encode the OpenAPI document: {e}")).into_response()
        }
    }
}
