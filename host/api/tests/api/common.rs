//! Shared set-up: an engine in a temp dir with the bundled schemas, tokens
//! for two tenants, and a small client over `tower::ServiceExt::oneshot`.

use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use reyna_api::{ApiConfig, AppState, ensure_token};
use reyna_engine::reyna_store::Role;
use reyna_engine::{Engine, EngineConfig};
use tower::ServiceExt;

pub const TENANT: &str = "acme";
pub const OTHER: &str = "globex";

/// The operator (its token belongs to `acme`): what `admin` meant before
/// tenant admins existed.
pub const ADMIN: &str = "reyna_test_admin";
/// `acme`'s own admin.
pub const TENANT_ADMIN: &str = "reyna_test_tenant_admin";
pub const WRITER: &str = "reyna_test_writer";
pub const READER: &str = "reyna_test_reader";
/// A writer of the other tenant.
pub const STRANGER: &str = "reyna_test_stranger";

pub struct Api {
    pub app: Router,
    pub state: AppState,
    pub engine: Engine,
    _dir: tempfile::TempDir,
}

pub fn engine_config(dir: &std::path::Path) -> EngineConfig {
    let mut config = EngineConfig::new(dir);
    config.backoff_base = Duration::from_millis(5);
    config.backoff_max = Duration::from_millis(40);
    config.workers = 8;
    // Compiled plugins are shared by every test of this binary (written atomically).
    config.runtime.cache_dir =
        Some(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("reyna-api-artifacts"));
    config
}

pub async fn api() -> Api {
    api_with(ApiConfig::default(), &[], |_| {}).await
}

pub async fn api_with_plugins(plugins: &[&str]) -> Api {
    api_with(ApiConfig::default(), plugins, |_| {}).await
}

/// An engine (started) with the bundled schemas, `plugins` uploaded,
/// tenants `acme` and `globex`, and tokens: the operator (of `acme`),
/// admin, writer and reader of `acme`, a writer of `globex`.
pub async fn api_with(
    config: ApiConfig,
    plugins: &[&str],
    tune: impl FnOnce(&mut EngineConfig),
) -> Api {
    api_with_transport(config, plugins, tune, None).await
}

/// Like [`api_with`], with `transport` set on the engine before it starts
/// (a scale-out state node).
pub async fn api_with_transport(
    config: ApiConfig,
    plugins: &[&str],
    tune: impl FnOnce(&mut EngineConfig),
    transport: Option<std::sync::Arc<dyn reyna_engine::Transport>>,
) -> Api {
    let dir = tempfile::tempdir().unwrap();
    let mut engine_config = engine_config(dir.path());
    tune(&mut engine_config);
    let engine = Engine::open(engine_config).await.unwrap();
    engine.register_bundled_schemas().await.unwrap();
    for name in plugins {
        let bytes = reyna_artifacts::bytes(name).unwrap();
        engine
            .upload_plugin(bytes, None, reyna_engine::InstallPolicy::All, "test")
            .await
            .unwrap_or_else(|e| panic!("upload {name}: {e}"));
    }
    for tenant in [TENANT, OTHER] {
        let id = reyna_engine::TenantId::parse(tenant).unwrap();
        engine.create_tenant(&id, tenant, "test").await.unwrap();
    }
    ensure_token(&engine, ADMIN, TENANT, Role::Operator, "operator")
        .await
        .unwrap();
    ensure_token(&engine, TENANT_ADMIN, TENANT, Role::Admin, "admin")
        .await
        .unwrap();
    ensure_token(&engine, WRITER, TENANT, Role::Writer, "writer")
        .await
        .unwrap();
    ensure_token(&engine, READER, TENANT, Role::Reader, "reader")
        .await
        .unwrap();
    ensure_token(&engine, STRANGER, OTHER, Role::Writer, "stranger")
        .await
        .unwrap();
    if let Some(transport) = transport {
        engine.set_transport(transport).unwrap();
    }
    engine.start();
    let state = AppState::new(engine.clone(), config);
    Api {
        app: reyna_api::app(state.clone()),
        state,
        engine,
        _dir: dir,
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts the status and a problem+json body; returns the body.
    #[track_caller]
    pub fn problem(&self, status: u16) -> serde_json::Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text());
        assert_eq!(
            self.headers[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let p = self.json();
        assert_eq!(p["status"], status);
        assert!(
            p["type"]
                .as_str()
                .unwrap()
                .starts_with("https://reyna.dev/problems/"),
            "{p}"
        );
        assert!(!p["title"].as_str().unwrap().is_empty());
        assert!(!p["detail"].as_str().unwrap().is_empty());
        p
    }

    /// Asserts the status; returns the JSON body.
    #[track_caller]
    pub fn ok(&self, status: u16) -> serde_json::Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text());
        self.json()
    }
}

pub struct Call {
    builder: axum::http::request::Builder,
    body: Body,
}

impl Call {
    pub fn new(method: Method, uri: &str) -> Self {
        Call {
            builder: Request::builder().method(method).uri(uri),
            body: Body::empty(),
        }
    }

    pub fn get(uri: &str) -> Self {
        Self::new(Method::GET, uri)
    }

    pub fn post(uri: &str) -> Self {
        Self::new(Method::POST, uri)
    }

    pub fn token(mut self, token: &str) -> Self {
        self.builder = self
            .builder
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.builder = self.builder.header(name, value);
        self
    }

    pub fn json(self, value: &serde_json::Value) -> Self {
        self.raw("application/json", value.to_string().into_bytes())
    }

    pub fn raw(mut self, content_type: &str, bytes: Vec<u8>) -> Self {
        self.builder = self.builder.header(header::CONTENT_TYPE, content_type);
        self.body = Body::from(bytes);
        self
    }

    pub fn body(mut self, bytes: Vec<u8>) -> Self {
        self.body = Body::from(bytes);
        self
    }
}

impl Api {
    /// Sends a request and reads the whole response.
    pub async fn send(&self, call: Call) -> Reply {
        let response = self
            .app
            .clone()
            .oneshot(call.builder.body(call.body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body,
        }
    }

    /// Sends a request and returns the response without reading the body.
    pub async fn open(&self, call: Call) -> axum::response::Response {
        self.app
            .clone()
            .oneshot(call.builder.body(call.body).unwrap())
            .await
            .unwrap()
    }

    pub async fn get(&self, uri: &str, token: &str) -> Reply {
        self.send(Call::get(uri).token(token)).await
    }

    pub async fn post_json(&self, uri: &str, token: &str, body: serde_json::Value) -> Reply {
        self.send(Call::post(uri).token(token).json(&body)).await
    }

    /// Creates a text-input-v1 blob as the acme writer; returns its id.
    pub async fn put_text(&self, text: &str) -> String {
        let reply = self
            .post_json(
                "/v1/blobs",
                WRITER,
                serde_json::json!({ "schema": "text-input-v1", "data": { "content": text } }),
            )
            .await;
        reply.ok(201)["id"].as_str().unwrap().to_owned()
    }
}
