//! The HTTP API's request bodies, query strings and path ids: the real axum
//! router ([`reyna_api::app`]) over a real engine in a temporary directory,
//! driven in-process with `tower::ServiceExt::oneshot`, as an admin.
//!
//! An input is `<route><query>\n<body>`: the first byte picks a route from
//! [`ROUTES`] (`a` is the first; any byte works, modulo their number; a
//! byte of `0x80` or more sends the body as `text/plain` instead of its
//! route's media type); the text up to the first newline becomes the query
//! string (or, for routes whose id is fuzzed, the id), percent-encoded
//! where a URI needs it; the rest is the body.
//!
//! Whatever the input, the router must not panic, and:
//!
//! - no answer is a 5xx: malformed input is the client's fault;
//! - every 4xx is `application/problem+json` whose `type` names a specific
//!   kebab-case kind (never the generic `bad-request` or `internal`) and
//!   whose `status` is the response's;
//! - a refused write stores nothing (the store's counts and the audit log
//!   are unchanged).
//!
//! Long-polls are bounded by a short `max_wait`, and live streams are
//! answered (headers only) and dropped, so every input takes little time.

use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use reyna_api::{ApiConfig, AppState, PROBLEM_JSON, Problem};
use reyna_engine::{Engine, EngineConfig, EngineError, Role};
use tower::ServiceExt as _;

/// Where the fuzzed text goes in a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// The query string.
    Query,
    /// The `{}` in the path (a percent-encoded path segment).
    Id,
}

/// A route the target drives: method, path (`{blob}` is a stored blob's
/// id, `{}` the fuzzed id), where the fuzzed text goes, and the body's
/// media type (`None`: no body is sent).
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// The HTTP method.
    pub method: &'static str,
    /// The path, with `{blob}` and `{}` placeholders.
    pub path: &'static str,
    /// Where the fuzzed text goes.
    pub slot: Slot,
    /// The body's media type, if the route takes a body.
    pub body: Option<&'static str>,
}

const JSON: Option<&str> = Some("application/json");

const fn route(
    method: &'static str,
    path: &'static str,
    slot: Slot,
    body: Option<&'static str>,
) -> Route {
    Route {
        method,
        path,
        slot,
        body,
    }
}

/// Every JSON body the API accepts, every listing's query, and the ids in
/// paths. Index 0 is picked by the byte `a`.
pub const ROUTES: &[Route] = &[
    route("POST", "/v1/blobs", Slot::Query, JSON),
    route("POST", "/v1/schemas", Slot::Query, JSON),
    route(
        "POST",
        "/v1/schemas/text-input-v1/validate",
        Slot::Query,
        JSON,
    ),
    route(
        "PUT",
        "/v1/tenants/default/installations/word-count/config",
        Slot::Query,
        JSON,
    ),
    route("POST", "/v1/tokens", Slot::Query, JSON),
    route("POST", "/v1/blobs/{blob}/rerun", Slot::Query, JSON),
    route("GET", "/v1/blobs", Slot::Query, None),
    route("GET", "/v1/blobs/{blob}/lineage", Slot::Query, None),
    route("GET", "/v1/blobs/{blob}/derived", Slot::Query, None),
    route("GET", "/v1/jobs", Slot::Query, None),
    route("GET", "/v1/dead-letters", Slot::Query, None),
    route("GET", "/v1/audit", Slot::Query, None),
    route("GET", "/v1/events", Slot::Query, None),
    route("GET", "/v1/schemas", Slot::Query, None),
    route("GET", "/v1/blobs/{}", Slot::Id, None),
    route("GET", "/v1/blobs/{}/data", Slot::Id, None),
    route("GET", "/v1/jobs/{}", Slot::Id, None),
    route("GET", "/v1/jobs/{}/logs", Slot::Id, None),
    route("GET", "/v1/schemas/{}", Slot::Id, None),
    route("POST", "/v1/dead-letters/{}/replay", Slot::Id, None),
    route("DELETE", "/v1/tokens/{}", Slot::Id, None),
    route("GET", "/v1/plugins/{}", Slot::Id, None),
    route("POST", "/v1/tenants", Slot::Query, JSON),
    route(
        "PUT",
        "/v1/tenants/default/installations/word-count",
        Slot::Query,
        JSON,
    ),
    route(
        "PUT",
        "/v1/tenants/default/installations/word-count/secrets/api_key",
        Slot::Query,
        JSON,
    ),
    route("GET", "/v1/tenants/{}", Slot::Id, None),
    route(
        "GET",
        "/v1/tenants/default/installations/{}",
        Slot::Id,
        None,
    ),
];

/// How one input was answered, for the smoke test's tally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The problem kind of a 4xx (the `type` URI's last segment).
    pub kind: Option<String>,
}

/// Bytes that may stand unescaped in a query string or path segment; the
/// structure characters (`&`, `=`, `%`, `+`) are kept so the fuzzer can
/// make pairs and (invalid) escapes.
fn keep(byte: u8, slot: Slot) -> bool {
    byte.is_ascii_alphanumeric()
        || b"-._~:@!$'()*,;".contains(&byte)
        || match slot {
            Slot::Query => b"&=%+/?".contains(&byte),
            Slot::Id => byte == b'%',
        }
}

fn encode(text: &[u8], slot: Slot) -> String {
    let mut out = String::with_capacity(text.len());
    for &byte in text {
        if keep(byte, slot) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The API target: a current-thread runtime, an engine with the bundled
/// schemas and one stored blob, the router, and an admin token.
#[derive(Debug)]
pub struct ApiTarget {
    app: Router,
    engine: Engine,
    admin: String,
    blob: String,
    // Last: the engine closes before its directory and runtime go.
    _dir: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
}

impl ApiTarget {
    /// Opens an engine in a new temporary directory (not started: no job
    /// runs, so each input costs only its request).
    pub fn open() -> Result<Self, crate::upload::SetupError> {
        use crate::upload::SetupError;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(SetupError::Tokio)?;
        let dir = tempfile::Builder::new()
            .prefix("reyna-fuzz-api-")
            .tempdir()
            .map_err(SetupError::TempDir)?;
        let mut config = EngineConfig::new(dir.path());
        config.runtime.max_instances = 4;
        config.workers = 1;
        let (engine, admin, blob) = rt.block_on(async {
            let engine = Engine::open(config).await?;
            engine.register_bundled_schemas().await?;
            let admin = "reyna_fuzz-admin-token-0123456789";
            let tenant = reyna_engine::TenantId::parse("default")
                .map_err(|e| EngineError::Invalid(e.to_string()))?;
            engine.create_tenant(&tenant, "default", "fuzz").await?;
            reyna_api::ensure_token(&engine, admin, "default", Role::Operator, "fuzz")
                .await
                .map_err(|e| EngineError::Conflict(e.to_string()))?;
            let blob = engine
                .create_blob(
                    "default",
                    "text-input-v1",
                    br#"{"content":"a seed text"}"#.to_vec(),
                    Vec::new(),
                )
                .await?;
            Ok::<_, EngineError>((engine, admin.to_owned(), blob.id.to_string()))
        })?;
        let api = ApiConfig {
            max_body_bytes: 64 * 1024,
            max_plugin_bytes: 64 * 1024,
            max_wait: Duration::from_millis(20),
            max_page: 50,
            ..ApiConfig::default()
        };
        let app = reyna_api::app(AppState::new(engine.clone(), api));
        Ok(Self {
            app,
            engine,
            admin,
            blob,
            _dir: dir,
            rt,
        })
    }

    /// The request `input` stands for, or `None` when its text cannot be
    /// a URI even escaped (never, in practice).
    pub fn request(&self, input: &[u8]) -> Option<Request<Body>> {
        let (&first, rest) = input.split_first()?;
        let route = ROUTES[usize::from(first.wrapping_sub(b'a') & 0x7f) % ROUTES.len()];
        let (text, body) = match rest.iter().position(|&b| b == b'\n') {
            Some(at) => (&rest[..at], &rest[at + 1..]),
            None => (rest, &[][..]),
        };
        let path = route.path.replace("{blob}", &self.blob);
        let uri = match route.slot {
            Slot::Query if text.is_empty() => path,
            Slot::Query => format!("{path}?{}", encode(text, Slot::Query)),
            Slot::Id => path.replace("{}", &encode(text, Slot::Id)),
        };
        let method = Method::from_bytes(route.method.as_bytes()).ok()?;
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.admin));
        let body = match route.body {
            Some(media) => {
                let media = if first >= 0x80 { "text/plain" } else { media };
                builder = builder.header(header::CONTENT_TYPE, media);
                Body::from(body.to_vec())
            }
            None => Body::empty(),
        };
        builder.body(body).ok()
    }

    /// Sends `input`'s request through the router and checks the answer.
    pub fn run(&mut self, input: &[u8]) -> Option<Answer> {
        let request = self.request(input)?;
        let writes = request.method() != Method::GET;
        let store = self.engine.store();
        let before = writes.then(|| {
            (
                store.counts().expect("store: counts"),
                store
                    .list_audit(0, usize::MAX, None)
                    .expect("store: audit")
                    .len(),
            )
        });
        let app = self.app.clone();
        let (status, media, body) = self.rt.block_on(async move {
            let response = app
                .oneshot(request)
                .await
                .expect("the router is infallible");
            let status = response.status();
            let media = response
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            // A live stream never ends: its headers are the answer.
            let body = if media.starts_with("text/event-stream") {
                Vec::new()
            } else {
                response
                    .into_body()
                    .collect()
                    .await
                    .expect("a response body")
                    .to_bytes()
                    .to_vec()
            };
            (status, media, body)
        });
        assert!(
            !status.is_server_error(),
            "{status} for {:?}: {}",
            String::from_utf8_lossy(input),
            String::from_utf8_lossy(&body)
        );
        if status.is_success() {
            return Some(Answer {
                status: status.as_u16(),
                kind: None,
            });
        }
        assert!(
            status.is_client_error() && status != StatusCode::NOT_MODIFIED,
            "{status} for {:?}",
            String::from_utf8_lossy(input)
        );
        assert_eq!(
            media,
            PROBLEM_JSON,
            "a {status} that is not problem+json for {:?}: {}",
            String::from_utf8_lossy(input),
            String::from_utf8_lossy(&body)
        );
        let problem: Problem = serde_json::from_slice(&body).unwrap_or_else(|e| {
            panic!(
                "a {status} whose body is not a problem ({e}): {}",
                String::from_utf8_lossy(&body)
            )
        });
        assert_eq!(problem.status, status.as_u16());
        let kind = problem
            .kind
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        assert!(
            !kind.is_empty()
                && kind
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "problem kind {kind:?} is not kebab-case"
        );
        assert!(
            kind != "bad-request" && kind != "internal",
            "a {status} with the unspecific kind `{kind}` for {:?}: {}",
            String::from_utf8_lossy(input),
            problem.detail
        );
        if let Some(before) = before {
            let after = (
                store.counts().expect("store: counts"),
                store
                    .list_audit(0, usize::MAX, None)
                    .expect("store: audit")
                    .len(),
            );
            assert_eq!(after, before, "a refused {kind} changed the store");
        }
        Some(Answer {
            status: status.as_u16(),
            kind: Some(kind),
        })
    }
}

static GLOBAL: OnceLock<Mutex<ApiTarget>> = OnceLock::new();

/// The libFuzzer entry point: one [`ApiTarget`] per process.
pub fn api(data: &[u8]) -> Option<Answer> {
    let target = GLOBAL.get_or_init(|| match ApiTarget::open() {
        Ok(target) => Mutex::new(target),
        Err(e) => panic!("api fuzz target set-up: {e}"),
    });
    target
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .run(data)
}
