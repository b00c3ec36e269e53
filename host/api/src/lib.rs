//! Reyna's HTTP API: an axum router over the [`Engine`].
//!
//! It owns the wire format (JSON bodies, `application/problem+json` errors
//! with JSON pointers for schema violations), bearer-token auth (a token is a
//! tenant and a role), live events as server-sent events and over a
//! WebSocket (`/v1/ws`, which also creates blobs and follows their derived
//! blobs), Prometheus
//! metrics and the OpenAPI document, which is generated from the handlers'
//! types. It holds no state of its own beyond configuration: everything
//! lives in the engine's store. [`serve`] runs it on a listener with the
//! client limits of [`ApiConfig`]: open connections, header and body read
//! timeouts, live streams per token and in total, and a memory budget for
//! request bodies. It also serves the console, the web UI in
//! `host/api/console/` (`/` and `/console/...`; see `docs/CONSOLE.md`).
//!
//! ```no_run
//! use reyna_api::{ApiConfig, AppState};
//! use reyna_engine::{Engine, EngineConfig};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = Engine::open(EngineConfig::new("./reyna-data")).await?;
//! engine.start();
//! let state = AppState::new(engine, ApiConfig::default());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! // Connection limit, header and body timeouts; stops on Ctrl-C.
//! reyna_api::serve(listener, state, async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await?;
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use reyna_engine::Engine;
use tokio::sync::watch;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub mod auth;
mod console;
pub mod error;
mod extract;
mod limits;
mod metrics;
mod routes;
mod server;
pub mod wire;

pub use auth::{Caller, ensure_token, generate_token, hash_token};
pub use error::{ApiError, PROBLEM_JSON, Problem, ProblemViolation};
pub use metrics::install_recorder;
pub use server::serve;

/// Limits and timings of the API.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Largest JSON request body, in bytes (a blob travels inside one).
    pub max_body_bytes: usize,
    /// Largest `application/wasm` plugin upload, in bytes.
    pub max_plugin_bytes: usize,
    /// Page size when a listing does not say.
    pub default_page: usize,
    /// Largest page a listing may ask for.
    pub max_page: usize,
    /// Longest `GET /v1/blobs/{id}/derived?wait=` long-poll.
    pub max_wait: Duration,
    /// Events buffered per live-stream client; a client that falls this far
    /// behind is sent a final `lagged` event and dropped.
    pub sse_buffer: usize,
    /// How often an idle live stream gets a heartbeat comment.
    pub sse_heartbeat: Duration,
    /// Connections open at once; [`serve`] answers one more with 503
    /// `too-many-connections` and closes it.
    pub max_connections: usize,
    /// Time a connection has to send a request's headers, counted from
    /// when the host starts waiting for them: it also bounds how long an
    /// idle keep-alive connection stays open.
    pub header_timeout: Duration,
    /// Time a request has to send its whole body, from its headers.
    pub body_timeout: Duration,
    /// Live streams (SSE and WebSockets) and long-polls one token may have open.
    pub max_streams_per_token: usize,
    /// Live streams (SSE and WebSockets) and long-polls open on the host in all.
    pub max_streams: usize,
    /// Bytes of request bodies being received and handled at once, across
    /// all requests (plugin uploads included).
    pub max_body_memory: usize,
    /// Tenants with their own series at `/metrics` (by id order); the rest
    /// are summed under `tenant="_other"`, so the series stay bounded.
    pub metrics_max_tenants: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            // The engine's default blob limit (16 MiB) plus room for the envelope.
            max_body_bytes: 16 * 1024 * 1024 + 64 * 1024,
            max_plugin_bytes: 64 * 1024 * 1024,
            default_page: 100,
            max_page: 1000,
            max_wait: Duration::from_secs(60),
            sse_buffer: 1024,
            sse_heartbeat: Duration::from_secs(15),
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(60),
            max_streams_per_token: 16,
            max_streams: 1024,
            max_body_memory: 256 * 1024 * 1024,
            metrics_max_tenants: 100,
        }
    }
}

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

struct Shared {
    engine: Engine,
    config: ApiConfig,
    shutdown: watch::Sender<bool>,
    ready: AtomicBool,
    streams: Arc<limits::StreamSlots>,
    body_budget: limits::BodyBudget,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// State over a started (or to-be-started) engine. Installs the
    /// Prometheus recorder if no recorder is installed yet.
    pub fn new(engine: Engine, config: ApiConfig) -> Self {
        metrics::install_recorder();
        let (shutdown, _) = watch::channel(false);
        let streams = Arc::new(limits::StreamSlots::new(
            config.max_streams_per_token,
            config.max_streams,
        ));
        let body_budget = limits::BodyBudget::new(config.max_body_memory, config.body_timeout);
        Self {
            inner: Arc::new(Shared {
                engine,
                config,
                shutdown,
                ready: AtomicBool::new(true),
                streams,
                body_budget,
            }),
        }
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The limits in use.
    pub fn config(&self) -> &ApiConfig {
        &self.inner.config
    }

    /// Marks the host as shutting down: `/readyz` answers 503, live event
    /// streams and long-polls end, so a graceful HTTP shutdown can finish.
    pub fn begin_shutdown(&self) {
        self.inner.ready.store(false, Ordering::SeqCst);
        let _ = self.inner.shutdown.send(true);
    }

    pub(crate) fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::SeqCst)
    }

    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }

    pub(crate) fn streams(&self) -> &Arc<limits::StreamSlots> {
        &self.inner.streams
    }

    pub(crate) fn body_budget(&self) -> &limits::BodyBudget {
        &self.inner.body_budget
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Reyna",
        description = "Host for WebAssembly processor plugins: blobs, schemas, plugins, lineage, live events.",
        license(name = "Apache-2.0")
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "blobs", description = "Create and read blobs, their derived blobs and lineage"),
        (name = "schemas", description = "JSON Schemas blobs are validated against"),
        (name = "plugins", description = "Processor and effect components"),
        (name = "jobs", description = "Plugin runs and dead letters"),
        (name = "tokens", description = "API tokens and the audit log"),
        (name = "tenants", description = "Tenants, their plugin installations and secrets"),
        (name = "events", description = "Live events"),
        (name = "operations", description = "Health, readiness, metrics, this document"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

fn router() -> OpenApiRouter<AppState> {
    use routes::*;
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(schemas::create, schemas::list))
        .routes(routes!(schemas::get))
        .routes(routes!(schemas::validate))
        .routes(routes!(plugins::upload, plugins::list))
        .routes(routes!(plugins::versions))
        .routes(routes!(plugins::get_version))
        .routes(routes!(plugins::enable))
        .routes(routes!(plugins::disable))
        .routes(routes!(blobs::create, blobs::list))
        .routes(routes!(blobs::get))
        .routes(routes!(blobs::data))
        .routes(routes!(blobs::lineage))
        .routes(routes!(graph::graph))
        .routes(routes!(blobs::derived))
        .routes(routes!(blobs::rerun))
        .routes(routes!(jobs::list))
        .routes(routes!(jobs::get))
        .routes(routes!(jobs::logs))
        .routes(routes!(jobs::dead_letters))
        .routes(routes!(jobs::replay))
        .routes(routes!(tokens::create, tokens::list))
        .routes(routes!(tokens::delete))
        .routes(routes!(tokens::audit))
        .routes(routes!(tenants::me))
        .routes(routes!(tenants::create, tenants::list))
        .routes(routes!(tenants::get, tenants::update, tenants::delete))
        .routes(routes!(tenants::usage))
        .routes(routes!(tenants::installations))
        .routes(routes!(tenants::installation, tenants::set_installation))
        .routes(routes!(tenants::set_config))
        .routes(routes!(tenants::set_secret, tenants::delete_secret))
        .routes(routes!(tenants::rotate_master_key))
        .routes(routes!(events::stream))
        .routes(routes!(ws::socket))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
        .routes(routes!(ops::tenant_metrics))
        .routes(routes!(ops::openapi_json))
}

/// The OpenAPI 3 document of every route, generated from the handlers.
pub fn openapi() -> &'static utoipa::openapi::OpenApi {
    static DOC: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOC.get_or_init(|| router().split_for_parts().1)
}

/// The API router.
pub fn app(state: AppState) -> Router {
    let (router, _) = router().split_for_parts();
    router
        .merge(console::routes())
        .fallback(no_route)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::meter_bodies,
        ))
        .layer(axum::middleware::from_fn(observe))
        .with_state(state)
}

async fn no_route(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!(
        "no route for {method} {}; see /openapi.json",
        uri.path()
    ))
}

/// Records request metrics and turns axum's bare 405 into problem+json.
async fn observe(req: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let path = req.uri().path().to_owned();
    let response = next.run(req).await;
    let response = if response.status() == StatusCode::METHOD_NOT_ALLOWED
        && !response.headers().contains_key(header::CONTENT_TYPE)
    {
        let allow = response.headers().get(header::ALLOW).cloned();
        let mut problem = ApiError::MethodNotAllowed(format!("{method} is not allowed on {path}"))
            .into_response();
        if let Some(allow) = allow {
            problem.headers_mut().insert(header::ALLOW, allow);
        }
        problem
    } else {
        response
    };
    let labels = [
        ("method", method.to_string()),
        ("route", route),
        ("status", response.status().as_u16().to_string()),
    ];
    ::metrics::counter!("reyna_http_requests_total", &labels).increment(1);
    ::metrics::histogram!("reyna_http_request_duration_seconds", &labels[..2])
        .record(started.elapsed().as_secs_f64());
    response
}
