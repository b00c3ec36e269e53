//! Effects: outbound HTTP through `wasi:http` against a local server, under
//! the operator's network policy. Every refusal has its own reason, and the
//! refused target never sees a connection.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use common::{load, runtime};
use http_body::{Body, Frame};
use http_body_util::BodyExt as _;
use http_body_util::combinators::BoxBody;
use reyna_manifest::{AllowedHost, InspectError, Kind};
use reyna_runtime::{
    Blob, DenyReason, EffectContext, EffectReport, Event, Failure, LoadError, NetPolicy,
};
use serde_json::{Value, json};
use wasmtime_wasi_http::io::TokioIo;

/// A request the test server received.
#[derive(Debug, Clone)]
struct Received {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the test server answers.
#[derive(Debug, Clone)]
enum Reply {
    /// A response with a `content-length`.
    Full {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
    },
    /// A 200 whose body is sent in chunks, with no length announced.
    Chunked(Vec<Vec<u8>>),
    /// No response at all.
    Never,
}

fn no_content() -> Reply {
    Reply::Full {
        status: 204,
        headers: vec![],
        body: vec![],
    }
}

fn ok_json(value: &Value) -> Reply {
    Reply::Full {
        status: 200,
        headers: vec![("content-type", "application/json".to_owned())],
        body: value.to_string().into_bytes(),
    }
}

/// A body of chunks with no size hint, so hyper sends it chunked.
struct Chunks(Vec<Bytes>);

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.0.is_empty() {
            Poll::Ready(None)
        } else {
            Poll::Ready(Some(Ok(Frame::data(self.0.remove(0)))))
        }
    }
}

type Responder = Arc<dyn Fn(&Received) -> Reply + Send + Sync>;

/// An HTTP/1.1 server on a loopback port that records what reaches it.
struct Server {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    async fn start(respond: impl Fn(&Received) -> Reply + Send + Sync + 'static) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(Mutex::new(Vec::new()));
        let respond: Responder = Arc::new(respond);
        let (c, r) = (connections.clone(), received.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::SeqCst);
                let (r, respond) = (r.clone(), respond.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let (r, respond) = (r.clone(), respond.clone());
                        async move { Ok::<_, Infallible>(handle(req, &r, &respond).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Server {
            addr,
            connections,
            received,
            task,
        }
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port())
    }

    fn approval(&self) -> AllowedHost {
        AllowedHost::parse(&format!("http://127.0.0.1:{}", self.port())).unwrap()
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

async fn handle(
    req: hyper::Request<hyper::body::Incoming>,
    received: &Mutex<Vec<Received>>,
    respond: &Responder,
) -> hyper::Response<BoxBody<Bytes, Infallible>> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes().to_vec());
    let got = Received {
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
            .collect(),
        body: body.unwrap_or_default(),
    };
    received.lock().unwrap().push(got.clone());
    match respond(&got) {
        Reply::Full {
            status,
            headers,
            body,
        } => {
            let mut response = hyper::Response::builder().status(status);
            for (k, v) in headers {
                response = response.header(k, v);
            }
            response
                .body(http_body_util::Full::new(Bytes::from(body)).boxed())
                .unwrap()
        }
        Reply::Chunked(chunks) => {
            hyper::Response::new(Chunks(chunks.into_iter().map(Bytes::from).collect()).boxed())
        }
        Reply::Never => std::future::pending().await,
    }
}

/// A test runtime and test program `name` loaded in it.
fn loaded(name: &str) -> (reyna_runtime::Runtime, reyna_runtime::Plugin) {
    let runtime = runtime();
    let plugin = load(&runtime, name);
    (runtime, plugin)
}

/// A policy approving exactly `servers`, private addresses allowed (they
/// are all on loopback).
fn policy_for(servers: &[&Server]) -> NetPolicy {
    NetPolicy {
        approved_hosts: servers.iter().map(|s| s.approval()).collect(),
        allow_private: true,
        request_timeout: Duration::from_secs(10),
        ..NetPolicy::default()
    }
}

fn context(config: &[(&str, &str)], policy: NetPolicy) -> EffectContext {
    EffectContext {
        config: Arc::new(
            config
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
        ),
        policy: Arc::new(policy),
        ..EffectContext::default()
    }
}

/// A flood that tries `count` times whatever happens to each request.
fn relentless_flood(url: &str, count: u32) -> Vec<u8> {
    json!({ "url": url, "count": count, "keep_going": true })
        .to_string()
        .into_bytes()
}

fn flood_request(url: &str, count: u32, follow: bool) -> Vec<u8> {
    json!({ "url": url, "count": count, "follow": follow })
        .to_string()
        .into_bytes()
}

fn response_json(report: &EffectReport) -> Value {
    let bytes = report
        .result
        .as_ref()
        .unwrap_or_else(|f| panic!("effect failed: {f}; requests {:?}", report.requests));
    serde_json::from_slice(bytes).expect("response is json")
}

fn outcomes(report: &EffectReport) -> Vec<&str> {
    report.requests.iter().map(|r| r.outcome.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llm_sends_an_openai_chat_completions_request_and_returns_the_text() {
    let completion = json!({
        "id": "chatcmpl-1", "object": "chat.completion", "model": "local-model",
        "choices": [{ "index": 0, "finish_reason": "stop",
                      "message": { "role": "assistant", "content": "A longer text." } }],
        "usage": { "prompt_tokens": 19, "completion_tokens": 4, "total_tokens": 23 }
    });
    let reply = ok_json(&completion);
    let server = Server::start(move |_| reply.clone()).await;
    let (runtime, llm) = loaded("llm");
    assert_eq!(llm.manifest().kind, Kind::Effect);
    let endpoint = server.url("/v1/chat/completions");
    let ctx = context(
        &[
            ("endpoint", endpoint.as_str()),
            ("api_key", "sk-test-secret-1234"),
            ("model", "m1"),
        ],
        policy_for(&[&server]),
    );
    let request = json!({ "prompt": "Expand: hi", "system": "Be brief.", "max_tokens": 64 });
    let report = runtime
        .perform(&llm, request.to_string().into_bytes(), ctx)
        .await;

    assert_eq!(
        response_json(&report),
        json!({ "text": "A longer text.", "model": "local-model" })
    );
    let received = server.received();
    assert_eq!(received.len(), 1);
    let sent = &received[0];
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str()),
        ("POST", "/v1/chat/completions")
    );
    assert_eq!(sent.header("content-type"), Some("application/json"));
    assert_eq!(
        sent.header("authorization"),
        Some("Bearer sk-test-secret-1234")
    );
    let body: Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(body["model"], "m1");
    assert_eq!(body["max_tokens"], 64);
    assert_eq!(
        body["messages"],
        json!([
            { "role": "system", "content": "Be brief." },
            { "role": "user", "content": "Expand: hi" }
        ])
    );

    assert_eq!(report.requests.len(), 1);
    let record = &report.requests[0];
    assert_eq!(record.method, "POST");
    assert_eq!(record.scheme, "http");
    assert_eq!(record.authority, format!("127.0.0.1:{}", server.port()));
    assert_eq!(record.path, "/v1/chat/completions");
    assert_eq!(record.status, Some(200));
    assert_eq!(record.outcome, "ok");
    assert_eq!(record.request_bytes, sent.body.len() as u64);
    assert_eq!(record.response_bytes, completion.to_string().len() as u64);
    assert!(record.duration_us > 0);
    assert!(report.cost.bytes_out > 0 && report.cost.bytes_in > 0);
    // The tokens the provider charged, as usage units.
    assert_eq!(
        report.units,
        [
            ("completion-tokens", 4),
            ("prompt-tokens", 19),
            ("tokens", 23)
        ]
        .map(|(unit, n)| (unit.to_owned(), n))
        .into()
    );
    // The API key reached the endpoint, and nowhere else.
    assert!(!format!("{report:?}").contains("sk-test-secret-1234"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_delivers_the_event_as_a_json_post() {
    let server = Server::start(|_| no_content()).await;
    let (runtime, webhook) = loaded("webhook");
    let url = server.url("/hooks/in");
    let ctx = context(
        &[
            ("url", url.as_str()),
            ("authorization", "Bearer hook-secret"),
        ],
        policy_for(&[&server]),
    );
    let event = Event {
        subject: "blob.created.text-input-v1".into(),
        blob: Blob {
            id: "01J9ZZZZZZZZZZZZZZZZZZZZZZ".into(),
            tenant: "acme".into(),
            schema: "text-input-v1".into(),
            data: br#"{"content":"hello there"}"#.to_vec(),
            parents: vec![],
        },
    };
    let report = runtime.deliver(&webhook, event, ctx).await;

    let received = server.received();
    assert_eq!(received.len(), 1);
    let sent = &received[0];
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str()),
        ("POST", "/hooks/in")
    );
    assert_eq!(sent.header("content-type"), Some("application/json"));
    assert_eq!(sent.header("authorization"), Some("Bearer hook-secret"));
    let body: Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(body["subject"], "blob.created.text-input-v1");
    assert_eq!(body["blob"]["id"], "01J9ZZZZZZZZZZZZZZZZZZZZZZ");
    assert_eq!(body["blob"]["data"]["content"], "hello there");
    assert_eq!(
        response_json(&report),
        json!({ "status": 204, "bytes": sent.body.len() })
    );
    assert_eq!(outcomes(&report), ["ok"]);
    assert_eq!(report.requests[0].status, Some(204));
    assert!(!format!("{report:?}").contains("hook-secret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_the_operator_did_not_approve_is_refused_before_anything_is_sent() {
    let approved = Server::start(|_| ok_json(&json!({}))).await;
    let target = Server::start(|_| ok_json(&json!({}))).await;
    let (runtime, webhook) = loaded("webhook");
    let url = target.url("/in");
    // Approves another port of the same address only.
    let ctx = context(&[("url", url.as_str())], policy_for(&[&approved]));
    let report = runtime.perform(&webhook, b"{}".to_vec(), ctx).await;
    assert_eq!(
        report.result.clone().unwrap_err(),
        Failure::HostDenied {
            host: format!("127.0.0.1:{}", target.port()),
            reason: DenyReason::NotAllowed,
        }
    );
    assert_eq!(outcomes(&report), ["not-allowed"]);
    assert_eq!(report.requests[0].status, None);
    assert_eq!(report.requests[0].request_bytes, 0);
    assert_eq!(target.connections(), 0, "nothing reached the refused host");
    assert_eq!(approved.connections(), 0);

    // An approval that names no scheme allows https only, not plain http.
    let bare = NetPolicy {
        approved_hosts: vec![AllowedHost::parse(&format!("127.0.0.1:{}", target.port())).unwrap()],
        ..policy_for(&[])
    };
    let report = runtime
        .perform(
            &webhook,
            b"{}".to_vec(),
            context(&[("url", url.as_str())], bare),
        )
        .await;
    assert_eq!(
        report.result.clone().unwrap_err(),
        Failure::HostDenied {
            host: format!("127.0.0.1:{}", target.port()),
            reason: DenyReason::NotAllowed,
        }
    );
    assert_eq!(target.connections(), 0);

    // No approval at all (the default policy) refuses everything too.
    let ctx = context(&[("url", url.as_str())], NetPolicy::default());
    let report = runtime.perform(&webhook, b"{}".to_vec(), ctx).await;
    assert_eq!(report.result.clone().unwrap_err().kind(), "host-denied");
    assert_eq!(target.connections(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_address_is_refused_without_the_operator_flag() {
    let server = Server::start(|_| ok_json(&json!({}))).await;
    let (runtime, webhook) = loaded("webhook");
    let private = |s: &Server| NetPolicy {
        allow_private: false,
        ..policy_for(&[s])
    };

    let url = server.url("/in");
    let report = runtime
        .perform(
            &webhook,
            b"{}".to_vec(),
            context(&[("url", url.as_str())], private(&server)),
        )
        .await;
    assert_eq!(
        report.result.clone().unwrap_err(),
        Failure::HostDenied {
            host: format!("127.0.0.1:{}", server.port()),
            reason: DenyReason::PrivateAddress {
                address: [127, 0, 0, 1].into()
            },
        }
    );
    assert_eq!(outcomes(&report), ["private-address"]);

    // A name that resolves to loopback is checked after resolving.
    let url = format!("http://localhost:{}/in", server.port());
    let policy = NetPolicy {
        approved_hosts: vec![
            AllowedHost::parse(&format!("http://localhost:{}", server.port())).unwrap(),
        ],
        ..private(&server)
    };
    let report = runtime
        .perform(
            &webhook,
            b"{}".to_vec(),
            context(&[("url", url.as_str())], policy),
        )
        .await;
    match report.result.clone().unwrap_err() {
        Failure::HostDenied {
            host,
            reason: DenyReason::PrivateAddress { address },
        } => {
            assert_eq!(host, format!("localhost:{}", server.port()));
            assert!(address.is_loopback(), "{address}");
        }
        other => panic!("expected a private-address refusal, got {other:?}"),
    }
    assert_eq!(
        server.connections(),
        0,
        "nothing reached the private address"
    );

    // With the flag, the same request goes through.
    let url = server.url("/in");
    let report = runtime
        .perform(
            &webhook,
            b"{}".to_vec(),
            context(&[("url", url.as_str())], policy_for(&[&server])),
        )
        .await;
    assert_eq!(response_json(&report)["status"], 200);
    assert_eq!(server.received().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_over_the_size_limit_fails_the_call() {
    let server = Server::start(|req| {
        let body = vec![b'x'; 4096];
        if req.path == "/chunked" {
            Reply::Chunked(body.chunks(512).map(<[u8]>::to_vec).collect())
        } else {
            Reply::Full {
                status: 200,
                headers: vec![],
                body,
            }
        }
    })
    .await;
    let (runtime, flood) = loaded("hostile-http-flood");
    let policy = NetPolicy {
        max_response_bytes: 1000,
        ..policy_for(&[&server])
    };
    for path in ["/sized", "/chunked"] {
        let url = server.url(path);
        let report = runtime
            .perform(
                &flood,
                flood_request(&url, 1, false),
                context(&[], policy.clone()),
            )
            .await;
        assert_eq!(
            report.result.clone().unwrap_err(),
            Failure::ResponseTooLarge { limit: 1000 },
            "{path}"
        );
        assert_eq!(outcomes(&report), ["response-too-large"], "{path}");
        // The guest was told the body was too large.
        assert!(
            report.logs.iter().any(|l| l.message.contains("1000")),
            "{path}: {:?}",
            report.logs
        );
        assert!(report.requests[0].response_bytes <= 1000, "{path}");
    }
    // The size is only known once the server answers: each was asked once.
    assert_eq!(server.received().len(), 2);

    // Within the limit, the same responses are fine.
    let policy = NetPolicy {
        max_response_bytes: 4096,
        ..policy_for(&[&server])
    };
    let url = server.url("/chunked");
    let report = runtime
        .perform(&flood, flood_request(&url, 1, false), context(&[], policy))
        .await;
    assert_eq!(
        response_json(&report),
        json!({ "statuses": [200], "failed": 0 })
    );
    assert_eq!(report.requests[0].response_bytes, 4096);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_the_per_call_limit_are_refused() {
    let server = Server::start(|_| ok_json(&json!({}))).await;
    let (runtime, flood) = loaded("hostile-http-flood");
    let policy = NetPolicy {
        max_requests_per_call: 3,
        ..policy_for(&[&server])
    };
    let url = server.url("/again");
    let report = runtime
        .perform(
            &flood,
            flood_request(&url, 10, false),
            context(&[], policy.clone()),
        )
        .await;
    assert_eq!(
        report.result.clone().unwrap_err(),
        Failure::HostDenied {
            host: format!("127.0.0.1:{}", server.port()),
            reason: DenyReason::TooManyRequests { limit: 3 },
        }
    );
    assert_eq!(outcomes(&report), ["ok", "ok", "ok", "too-many-requests"]);
    assert_eq!(server.received().len(), 3, "the fourth was never sent");
    // The guest itself was told `HTTP-request-denied`.
    assert!(
        report
            .logs
            .iter()
            .any(|l| l.message.contains("failed") && l.message.contains("HttpRequestDenied")),
        "{:?}",
        report.logs
    );

    // The limit is per call: the next call starts again.
    let report = runtime
        .perform(&flood, flood_request(&url, 3, false), context(&[], policy))
        .await;
    assert_eq!(
        response_json(&report),
        json!({ "statuses": [200, 200, 200], "failed": 0 })
    );
    assert_eq!(server.received().len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_goes_back_to_the_guest_and_is_never_followed_by_the_host() {
    let elsewhere = Server::start(|_| ok_json(&json!({}))).await;
    let location = elsewhere.url("/stolen");
    let redirecting = Server::start(move |_| Reply::Full {
        status: 302,
        headers: vec![("location", location.clone())],
        body: vec![],
    })
    .await;
    let runtime = runtime();

    // The webhook sees the 302 itself (and treats it as a failure).
    let webhook = load(&runtime, "webhook");
    let url = redirecting.url("/in");
    let report = runtime
        .perform(
            &webhook,
            b"{}".to_vec(),
            context(&[("url", url.as_str())], policy_for(&[&redirecting])),
        )
        .await;
    match report.result.clone().unwrap_err() {
        Failure::Fatal(m) => assert!(m.starts_with("HTTP 302"), "{m}"),
        other => panic!("expected the guest's own 302 failure, got {other:?}"),
    }
    assert_eq!(report.requests.len(), 1);
    assert_eq!(report.requests[0].status, Some(302));
    assert_eq!(redirecting.received().len(), 1);
    assert_eq!(elsewhere.connections(), 0, "the host never followed");

    // A guest that follows the redirect itself makes a new request, which
    // is checked like any other: the other host is not approved.
    let flood = load(&runtime, "hostile-http-flood");
    let report = runtime
        .perform(
            &flood,
            flood_request(&url, 1, true),
            context(&[], policy_for(&[&redirecting])),
        )
        .await;
    assert_eq!(
        report.result.clone().unwrap_err(),
        Failure::HostDenied {
            host: format!("127.0.0.1:{}", elsewhere.port()),
            reason: DenyReason::NotAllowed,
        }
    );
    assert_eq!(outcomes(&report), ["ok", "not-allowed"]);
    assert_eq!(elsewhere.connections(), 0);

    // Approved, the guest's own follow-up goes through.
    let report = runtime
        .perform(
            &flood,
            flood_request(&url, 1, true),
            context(&[], policy_for(&[&redirecting, &elsewhere])),
        )
        .await;
    assert_eq!(
        response_json(&report),
        json!({ "statuses": [302, 200], "failed": 0 })
    );
    assert_eq!(elsewhere.received()[0].path, "/stolen");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_from_config_are_redacted_from_logs_and_records() {
    let server = Server::start(|_| ok_json(&json!({}))).await;
    let (runtime, flood) = loaded("hostile-http-flood");
    let secret = "tok-0123456789abcdef";
    let url = server.url(&format!("/hook?token={secret}"));
    let report = runtime
        .perform(
            &flood,
            flood_request(&url, 1, false),
            context(
                &[("token", secret), ("url", "not-secret")],
                policy_for(&[&server]),
            ),
        )
        .await;
    assert_eq!(
        response_json(&report),
        json!({ "statuses": [200], "failed": 0 })
    );
    // The server got the token: it is the guest's to send.
    assert_eq!(server.received()[0].path, format!("/hook?token={secret}"));
    let messages: Vec<&str> = report.logs.iter().map(|l| l.message.as_str()).collect();
    let expected = format!("http://127.0.0.1:{}/hook?token=[redacted]", server.port());
    assert!(
        messages.contains(&format!("GET {expected}").as_str()),
        "host log: {messages:?}"
    );
    assert!(
        messages.contains(&format!("requesting {expected}").as_str()),
        "stdout: {messages:?}"
    );
    assert_eq!(report.requests[0].path, "/hook?token=");
    assert!(!format!("{report:?}").contains(secret));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_hits_the_request_timeout() {
    let server = Server::start(|_| Reply::Never).await;
    let (runtime, flood) = loaded("hostile-http-flood");
    let policy = NetPolicy {
        request_timeout: Duration::from_millis(300),
        ..policy_for(&[&server])
    };
    let url = server.url("/slow");
    let report = runtime
        .perform(&flood, flood_request(&url, 1, false), context(&[], policy))
        .await;
    // The guest sees a timeout error, which it reports as retryable.
    match report.result.clone().unwrap_err() {
        Failure::Retryable(m) => assert!(m.contains("Timeout"), "{m}"),
        other => panic!("expected retryable, got {other:?}"),
    }
    assert_eq!(outcomes(&report), ["timeout"]);
    assert!(report.requests[0].duration_us >= 300_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processor_importing_wasi_http_does_not_load() {
    let runtime = runtime();
    let err = runtime
        .load(&common::wasm("hostile-processor-http"))
        .unwrap_err();
    match &err {
        LoadError::Inspect(InspectError::WorldMismatch { kind, reason, .. }) => {
            assert_eq!(*kind, Kind::Processor);
            assert!(reason.contains("wasi:http/"), "{reason}");
        }
        other => panic!("expected a world mismatch, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "component does not target the processor world (reyna:plugin/processor@0.1.0): \
         it imports `wasi:http/types@0.2.12`, which this world does not provide"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_looping_on_refused_requests_holds_no_more_than_the_cap() {
    let approved = Server::start(|_| ok_json(&json!({}))).await;
    let target = Server::start(|_| ok_json(&json!({}))).await;
    let policy = NetPolicy {
        max_requests_per_call: 4,
        ..policy_for(&[&approved])
    };
    let url = target.url("/not-approved");
    let refused = Failure::HostDenied {
        host: format!("127.0.0.1:{}", target.port()),
        reason: DenyReason::NotAllowed,
    };
    let expected_outcomes = [
        "not-allowed",
        "not-allowed",
        "not-allowed",
        "not-allowed",
        "too-many-requests",
    ];

    // 1,000 refusals in a row: every one counts toward the cap of 4; the
    // cap's worth and the first one refused for the count are recorded, the
    // rest only counted.
    let (runtime, flood) = loaded("hostile-http-flood");
    let report = runtime
        .perform(
            &flood,
            relentless_flood(&url, 1000),
            context(&[], policy.clone()),
        )
        .await;
    assert_eq!(report.result.clone().unwrap_err(), refused);
    assert_eq!(outcomes(&report), expected_outcomes);
    assert_eq!(report.unrecorded_requests, 995);

    // Looping until the call's deadline: the same bound, however many
    // attempts fit in it.
    let short = reyna_runtime::Runtime::new(reyna_runtime::RuntimeConfig {
        max_timeout: Duration::from_secs(1),
        default_timeout: Duration::from_secs(1),
        ..common::config()
    })
    .unwrap();
    let flood = load(&short, "hostile-http-flood");
    let report = tokio::time::timeout(
        common::BOUND,
        short.perform(
            &flood,
            relentless_flood(&url, u32::MAX),
            context(&[], policy),
        ),
    )
    .await
    .unwrap();
    // The first refusal is what fails the call, though the guest ran on
    // until its deadline.
    assert_eq!(report.result.clone().unwrap_err(), refused);
    assert!(report.cost.wall_us >= 1_000_000, "{}", report.cost.wall_us);
    assert_eq!(outcomes(&report), expected_outcomes);
    assert!(
        report.unrecorded_requests > 1000,
        "the guest kept trying: {}",
        report.unrecorded_requests
    );
    assert!(
        report
            .requests
            .iter()
            .all(|r| r.path.len() + r.authority.len() <= 2 * reyna_runtime::MAX_RECORDED_TEXT)
    );
    assert_eq!(target.connections(), 0, "nothing reached the refused host");
    assert_eq!(approved.connections(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn special_purpose_addresses_are_refused_in_every_form() {
    let server = Server::start(|_| ok_json(&json!({}))).await;
    let (runtime, flood) = loaded("hostile-http-flood");
    let port = server.port();
    for (host, address) in [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("[::ffff:127.0.0.1]", "::ffff:127.0.0.1"),
        ("[::ffff:7f00:1]", "::ffff:127.0.0.1"),
        ("[64:ff9b::7f00:1]", "64:ff9b::7f00:1"),
        ("[64:ff9b:1::7f00:1]", "64:ff9b:1::7f00:1"),
        ("[2002:7f00:1::]", "2002:7f00:1::"),
        ("[::1]", "::1"),
        ("[fe80::1]", "fe80::1"),
        ("169.254.169.254", "169.254.169.254"),
        ("198.18.0.1", "198.18.0.1"),
    ] {
        // The operator approved the address (which any spelling of it
        // matches): only the address check stands in the way.
        let approved = if address.contains(':') {
            format!("http://[{address}]:{port}")
        } else {
            format!("http://{address}:{port}")
        };
        let policy = NetPolicy {
            approved_hosts: vec![AllowedHost::parse(&approved).unwrap()],
            allow_private: false,
            ..NetPolicy::default()
        };
        let url = format!("http://{host}:{port}/in");
        let report = runtime
            .perform(&flood, flood_request(&url, 1, false), context(&[], policy))
            .await;
        match report.result.clone().unwrap_err() {
            Failure::HostDenied {
                reason: DenyReason::PrivateAddress { address: got },
                ..
            } => assert_eq!(got, address.parse::<std::net::IpAddr>().unwrap(), "{host}"),
            other => panic!("{host}: expected a private-address refusal, got {other:?}"),
        }
        assert_eq!(outcomes(&report), ["private-address"], "{host}");
    }
    assert_eq!(server.connections(), 0, "nothing reached a private address");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_in_a_url_never_reach_a_record_or_a_receipt_in_any_encoding() {
    let server = Server::start(|_| no_content()).await;
    let (runtime, webhook) = loaded("webhook");
    let secret = "hook/s3cret+Key";
    // In the path percent-encoded in capitals, in the query in lower case.
    let url = server.url("/in/hook%2Fs3cret%2BKey/x?sig=hook%2fs3cret%2bKey&page=2");
    let ctx = context(
        &[("url", url.as_str()), ("webhook_secret", secret)],
        policy_for(&[&server]),
    );
    let event = common::text_event("hello there");
    let report = runtime.deliver(&webhook, event, ctx).await;
    assert_eq!(response_json(&report)["status"], 204);
    // The endpoint got the URL as written: it is the guest's to send.
    assert_eq!(
        server.received()[0].path,
        "/in/hook%2Fs3cret%2BKey/x?sig=hook%2fs3cret%2bKey&page=2"
    );
    let record = &report.requests[0];
    assert_eq!(record.path, "/in/[redacted]/x?sig=&page=");
    assert_eq!(
        record.authority,
        format!("127.0.0.1:{port}", port = server.port())
    );
    let everything = format!("{report:?}").to_ascii_lowercase();
    for form in ["hook/s3cret+key", "hook%2fs3cret%2bkey", "s3cret", "page=2"] {
        assert!(!everything.contains(form), "{form} in {everything}");
    }
}
