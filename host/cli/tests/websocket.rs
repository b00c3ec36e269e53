//! The WebSocket API (`/v1/ws`) against a real `reyna serve` on loopback:
//! a client subscribes, creates a blob over the socket and receives its
//! `blob.created` event and then `blob.derived` for each derived blob, in
//! order; reconnecting after a sequence misses nothing; a wrong token is
//! refused (401 before the upgrade, a close with the reason after an `auth`
//! message); another tenant's events never arrive; refusals carry the HTTP
//! API's problem (a schema violation with its JSON pointer); an oversized
//! message closes the socket; a client that falls behind a tiny buffer is
//! dropped with `lagged` while the host keeps answering others; a socket
//! takes one of the token's live-stream slots, and one that never
//! authenticates is closed. Every wait is bounded.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::{Error as WsFailure, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

mod common;

use common::{Host, WAIT, client, get_json, post_text};

/// One client socket.
struct Ws {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Every JSON message received, in order.
    log: Vec<Value>,
}

fn ws_url(host: &Host) -> String {
    format!("{}/v1/ws", host.url.replacen("http://", "ws://", 1))
}

impl Ws {
    /// Opens a socket with `Authorization: Bearer <token>`; the result of
    /// the handshake.
    async fn try_open(host: &Host, token: &str) -> Result<Ws, WsFailure> {
        let mut request = ws_url(host).into_client_request().unwrap();
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let (socket, _) = timeout(WAIT, tokio_tungstenite::connect_async(request))
            .await
            .expect("handshake in time")?;
        Ok(Ws {
            socket,
            log: Vec::new(),
        })
    }

    /// Opens an authenticated socket (header) and reads its greeting.
    async fn open(host: &Host, token: &str) -> (Ws, Value) {
        let mut ws = Ws::try_open(host, token).await.unwrap();
        let hello = ws.recv().await;
        assert_eq!(hello["type"], "authenticated", "{hello}");
        (ws, hello)
    }

    /// Opens a socket with no header, as a browser does.
    async fn open_bare(host: &Host) -> Ws {
        let (socket, _) = timeout(WAIT, tokio_tungstenite::connect_async(ws_url(host)))
            .await
            .expect("handshake in time")
            .unwrap();
        Ws {
            socket,
            log: Vec::new(),
        }
    }

    async fn send(&mut self, message: Value) {
        self.send_text(message.to_string()).await;
    }

    async fn send_text(&mut self, text: String) {
        timeout(WAIT, self.socket.send(Message::text(text)))
            .await
            .expect("sent in time")
            .unwrap();
    }

    /// The next JSON message (the test fails on a close or after `WAIT`).
    async fn recv(&mut self) -> Value {
        loop {
            let message = timeout(WAIT, self.socket.next())
                .await
                .expect("a message in time")
                .expect("the socket is open")
                .unwrap();
            match message {
                Message::Text(text) => {
                    let message: Value = serde_json::from_str(text.as_str()).unwrap();
                    self.log.push(message.clone());
                    return message;
                }
                Message::Ping(_) | Message::Pong(_) => {}
                other => panic!("expected a JSON message, got {other:?}"),
            }
        }
    }

    /// Reads up to the close frame (within `WAIT`): the messages before it,
    /// and its code and reason.
    async fn until_closed(&mut self) -> (Vec<Value>, u16, String) {
        let mut before = Vec::new();
        loop {
            let message = timeout(WAIT, self.socket.next())
                .await
                .expect("a close in time")
                .expect("a close frame before the end")
                .unwrap();
            match message {
                Message::Text(text) => before.push(serde_json::from_str(text.as_str()).unwrap()),
                Message::Close(Some(frame)) => {
                    return (before, u16::from(frame.code), frame.reason.to_string());
                }
                Message::Ping(_) | Message::Pong(_) => {}
                other => panic!("expected a close, got {other:?}"),
            }
        }
    }

    /// The answer of `type` (`subscribed`, `error`, ...) to the last
    /// request, past events still arriving; fails on any other message.
    async fn expect(&mut self, kind: &str) -> Value {
        loop {
            let message = self.recv().await;
            if message["type"] == "event" || message["type"] == "blob.derived" {
                continue;
            }
            assert_eq!(message["type"], kind, "{message}");
            return message;
        }
    }
}

async fn create_tenant_token(
    http: &reqwest::Client,
    host: &Host,
    admin: &str,
    tenant: Option<&str>,
    role: &str,
) -> String {
    if let Some(tenant) = tenant {
        let created = http
            .post(format!("{}/v1/tenants", host.url))
            .bearer_auth(admin)
            .json(&json!({ "id": tenant }))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
    }
    let created = http
        .post(format!("{}/v1/tokens", host.url))
        .bearer_auth(admin)
        .json(&json!({ "tenant": tenant, "role": role, "name": format!("ws-{role}") }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    created.json::<Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Creates a `text-input-v1` blob; its id.
async fn post(http: &reqwest::Client, host: &Host, token: &str, text: &str) -> String {
    post_text(http, host, token, text).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The ids of every blob derived directly from `id`, once all its jobs ran.
async fn settled_children(
    http: &reqwest::Client,
    host: &Host,
    token: &str,
    id: &str,
) -> BTreeSet<String> {
    let derived = get_json(
        http,
        format!("{}/v1/blobs/{id}/derived?wait=60", host.url),
        token,
    )
    .await;
    assert_eq!(derived["settled"], true, "{derived}");
    let children: BTreeSet<String> = derived["derived"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        !children.is_empty(),
        "serve's plugins derive from text-input-v1: {derived}"
    );
    children
}

/// Reads until every blob of `children` was reported `blob.derived` from
/// `parent`; every message read, in order.
async fn read_until_derived(ws: &mut Ws, parent: &str, children: &BTreeSet<String>) -> Vec<Value> {
    let mut got = Vec::new();
    let mut reported = BTreeSet::new();
    while !children.is_subset(&reported) {
        let message = ws.recv().await;
        if message["type"] == "blob.derived" && message["parent_id"] == parent {
            reported.insert(message["derived_id"].as_str().unwrap().to_owned());
        }
        got.push(message);
    }
    got
}

fn events(messages: &[Value]) -> Vec<(u64, String)> {
    messages
        .iter()
        .filter(|m| m["type"] == "event")
        .map(|m| {
            (
                m["seq"].as_u64().unwrap(),
                m["blob_id"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_creates_a_blob_over_the_socket_follows_its_derived_blobs_and_resumes_without_gaps()
 {
    let dir = tempfile::tempdir().unwrap();
    let mut host = Host::start(dir.path(), &[]);
    let admin = host.token();
    let http = client();
    let globex = create_tenant_token(&http, &host, &admin, Some("globex"), "writer").await;
    let reader = create_tenant_token(&http, &host, &admin, None, "reader").await;

    // A wrong token in the header is a 401 before the upgrade.
    match Ws::try_open(&host, "reyna_not_a_token").await {
        Err(WsFailure::Http(response)) => assert_eq!(response.status(), 401),
        Err(other) => panic!("expected a 401, got {other}"),
        Ok(_) => panic!("a wrong token was accepted"),
    }
    // A wrong token in the first message closes the socket with the reason.
    let mut bare = Ws::open_bare(&host).await;
    bare.send(json!({ "type": "auth", "token": "reyna_not_a_token" }))
        .await;
    let (before, code, reason) = bare.until_closed().await;
    assert!(before.is_empty(), "{before:?}");
    assert_eq!(code, 1008);
    assert!(reason.contains("unknown or revoked token"), "{reason}");

    // The browser's way: the token as the first message.
    let mut other = Ws::open_bare(&host).await;
    other.send(json!({ "type": "auth", "token": globex })).await;
    let hello = other.expect("authenticated").await;
    assert_eq!(hello["tenant"], "globex");
    other
        .send(json!({ "type": "subscribe", "pattern": ">" }))
        .await;
    other.expect("subscribed").await;

    let (mut ws, hello) = Ws::open(&host, &admin).await;
    let tenant = hello["tenant"].as_str().unwrap().to_owned();
    ws.send(json!({ "type": "subscribe", "pattern": "blob.created.>" }))
        .await;
    let subscribed = ws.expect("subscribed").await;
    assert_eq!(subscribed["pattern"], "blob.created.>");

    // Another tenant's blob, with its derived blobs, while acme listens.
    let foreign = post(&http, &host, &globex, "globex only").await;
    let foreign_children = settled_children(&http, &host, &globex, &foreign).await;
    let mut seen_by_globex = BTreeSet::new();
    while !foreign_children.is_subset(&seen_by_globex) {
        let message = other.recv().await;
        if message["type"] == "event" {
            assert_eq!(message["tenant"], "globex", "{message}");
            seen_by_globex.insert(message["blob_id"].as_str().unwrap_or("").to_owned());
        }
    }
    assert!(seen_by_globex.contains(&foreign));

    // Malformed messages are answered and leave the socket open.
    ws.send_text("not json".into()).await;
    let error = ws.expect("error").await;
    assert_eq!(
        error["problem"]["type"],
        "https://reyna.dev/problems/malformed-message"
    );
    assert_eq!(error["problem"]["status"], 400);
    ws.send(json!({ "type": "subscribe", "pattern": "blob..created" }))
        .await;
    let error = ws.expect("error").await;
    assert_eq!(
        error["problem"]["type"],
        "https://reyna.dev/problems/invalid-subject-pattern"
    );
    // Another tenant's blob cannot be watched: it does not exist here.
    ws.send(json!({ "type": "watch", "blob_id": foreign }))
        .await;
    let error = ws.expect("error").await;
    assert_eq!(error["problem"]["status"], 404, "{error}");

    // Create over the socket: `created` with the request id, then the
    // blob's `blob.created` event, then each derived blob's event followed
    // by its `blob.derived`.
    ws.send(json!({
        "type": "create_blob",
        "request_id": "r1",
        "schema": "text-input-v1",
        "data": { "content": "alpha beta gamma" },
    }))
    .await;
    let created = ws.expect("created").await;
    assert_eq!(created["request_id"], "r1");
    assert_eq!(created["schema"], "text-input-v1");
    assert_eq!(created["tenant"], tenant.as_str());
    let id = created["id"].as_str().unwrap().to_owned();
    let children = settled_children(&http, &host, &admin, &id).await;
    let messages = read_until_derived(&mut ws, &id, &children).await;
    assert_eq!(messages[0]["type"], "event", "{messages:?}");
    assert_eq!(messages[0]["blob_id"], id.as_str());
    assert_eq!(messages[0]["subject"], "blob.created.text-input-v1");
    for (i, message) in messages.iter().enumerate() {
        if message["type"] != "blob.derived" {
            continue;
        }
        let derived = message["derived_id"].as_str().unwrap();
        let announced = messages[..i]
            .iter()
            .rposition(|m| m["type"] == "event" && m["blob_id"] == derived)
            .unwrap_or_else(|| panic!("blob.derived {derived} before its event: {messages:?}"));
        let event = &messages[announced];
        assert_eq!(message["seq"], event["seq"]);
        assert_eq!(
            event["subject"],
            format!("blob.created.{}", message["schema"].as_str().unwrap())
        );
        assert!(
            message["processor"].as_str().is_some_and(|p| !p.is_empty()),
            "{message}"
        );
        assert!(
            message["version"].as_str().is_some_and(|v| !v.is_empty()),
            "{message}"
        );
    }
    let sequences: Vec<u64> = events(&messages).iter().map(|e| e.0).collect();
    assert!(
        sequences.windows(2).all(|w| w[0] < w[1]),
        "in order: {sequences:?}"
    );

    // A schema violation gets the problem `POST /v1/blobs` gives, with its
    // JSON pointer; the socket stays open.
    ws.send(json!({
        "type": "create_blob",
        "request_id": "r2",
        "schema": "text-input-v1",
        "data": { "content": "short" },
    }))
    .await;
    let error = ws.expect("error").await;
    assert_eq!(error["request_id"], "r2");
    let problem = &error["problem"];
    assert_eq!(
        problem["type"],
        "https://reyna.dev/problems/schema-violation"
    );
    assert_eq!(problem["status"], 422);
    assert_eq!(problem["errors"][0]["pointer"], "/content", "{problem}");
    assert_eq!(problem["errors"][0]["rule"], "minLength", "{problem}");

    // A reader may follow but not create.
    let (mut read_only, _) = Ws::open(&host, &reader).await;
    read_only
        .send(json!({
            "type": "create_blob",
            "request_id": "r3",
            "schema": "text-input-v1",
            "data": { "content": "not allowed" },
        }))
        .await;
    let error = read_only.expect("error").await;
    assert_eq!(error["request_id"], "r3");
    assert_eq!(error["problem"]["status"], 403, "{error}");
    // A message over the limit closes the socket with the limit.
    read_only.send_text("x".repeat(1024 * 1024 + 1)).await;
    let (_, code, reason) = read_only.until_closed().await;
    assert_eq!(code, 1009);
    assert!(reason.contains("1048576"), "{reason}");

    // Acme's socket never got anything of globex (but the refusal of the
    // watch above, which names the blob it was asked about).
    let deliveries = ws
        .log
        .iter()
        .filter(|m| m["type"] == "event" || m["type"] == "blob.derived");
    let mut delivered = 0;
    for message in deliveries {
        delivered += 1;
        let text = message.to_string();
        assert!(
            !text.contains(&foreign) && !text.contains("globex"),
            "{text}"
        );
        if message["type"] == "event" {
            assert_eq!(message["tenant"], tenant.as_str());
        }
    }
    assert!(delivered > children.len(), "{:?}", ws.log);

    // Disconnect; while away, another blob is created and processed.
    drop(ws);
    let away = post(&http, &host, &admin, "created while away").await;
    let away_children = settled_children(&http, &host, &admin, &away).await;
    let seen = events(&messages);
    let resume = seen[1].0;
    let (mut ws, _) = Ws::open(&host, &admin).await;
    ws.send(json!({ "type": "subscribe", "pattern": "blob.created.>", "after": resume }))
        .await;
    let subscribed = ws.expect("subscribed").await;
    assert_eq!(subscribed["after"], resume);
    ws.send(json!({ "type": "watch", "blob_id": away, "after": resume }))
        .await;
    let mut after = read_until_derived(&mut ws, &away, &away_children).await;
    // ...and until the away blob's derived blobs were announced too.
    let announced = |messages: &[Value]| {
        away_children.iter().all(|c| {
            messages
                .iter()
                .any(|m| m["type"] == "event" && m["blob_id"] == c.as_str())
        })
    };
    while !announced(&after) {
        after.push(ws.recv().await);
    }
    let watching: Vec<&Value> = after.iter().filter(|m| m["type"] == "watching").collect();
    assert_eq!(watching.len(), 1, "{after:?}");
    let resumed = events(&after);
    // Exactly what followed `resume` before, then the blob created while away.
    assert_eq!(
        resumed[..seen.len() - 2],
        seen[2..],
        "{resumed:?} vs {seen:?}"
    );
    let rest: Vec<&String> = resumed[seen.len() - 2..].iter().map(|e| &e.1).collect();
    let at = |id: &String| rest.iter().position(|r| *r == id);
    let away_at = at(&away).unwrap_or_else(|| panic!("{away} missing after the resume: {rest:?}"));
    for child in &away_children {
        let child_at =
            at(child).unwrap_or_else(|| panic!("{child} missing after the resume: {rest:?}"));
        assert!(away_at < child_at, "{rest:?}");
    }
    let sequences: Vec<u64> = resumed.iter().map(|e| e.0).collect();
    assert!(
        sequences.windows(2).all(|w| w[0] < w[1]),
        "in order: {sequences:?}"
    );
    host.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_is_dropped_with_lagged_and_resumes_from_it_without_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let mut host = Host::with_config(dir.path(), "sse-buffer = 4\n");
    let admin = host.token();
    let http = client();
    let mut created = Vec::new();
    for i in 0..60 {
        created.push(post(&http, &host, &admin, &format!("blob number {i}")).await);
    }

    // Each session reads what its buffer held until it fell behind, then
    // resumes after the `lagged` sequence; together they miss nothing.
    let pattern = "blob.created.text-input-v1";
    let mut received: Vec<String> = Vec::new();
    let mut after = 0u64;
    let mut lags = 0;
    for _ in 0..created.len() + 1 {
        if received.len() == created.len() {
            break;
        }
        let (mut ws, _) = Ws::open(&host, &admin).await;
        ws.send(json!({ "type": "subscribe", "pattern": pattern, "after": after }))
            .await;
        ws.expect("subscribed").await;
        let mut last = after;
        loop {
            if received.len() == created.len() {
                break;
            }
            let message = ws.recv().await;
            match message["type"].as_str().unwrap() {
                "event" => {
                    last = message["seq"].as_u64().unwrap();
                    received.push(message["blob_id"].as_str().unwrap().to_owned());
                }
                "lagged" => {
                    lags += 1;
                    // Events the pattern skipped count as handled too.
                    let last_seq = message["last_seq"].as_u64().unwrap();
                    assert!(last_seq >= last, "{message} after event {last}");
                    last = last_seq;
                    assert!(
                        message["reason"].as_str().unwrap().contains("after"),
                        "{message}"
                    );
                    let (rest, code, reason) = ws.until_closed().await;
                    assert!(rest.is_empty(), "{rest:?}");
                    assert_eq!((code, reason.as_str()), (1013, "lagged"));
                    // The host keeps answering others meanwhile.
                    let health = http
                        .get(format!("{}/healthz", host.url))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(health.status(), 200);
                    after = last;
                    break;
                }
                other => panic!("unexpected {other}: {message}"),
            }
        }
    }
    assert!(lags > 0, "60 events through a buffer of 4 never lagged");
    assert_eq!(received, created, "every blob once, in order");
    host.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_holds_one_of_the_tokens_live_stream_slots() {
    let dir = tempfile::tempdir().unwrap();
    let mut host = Host::with_config(dir.path(), "max-streams-per-token = 1\n");
    let admin = host.token();
    let http = client();
    let (mut ws, _) = Ws::open(&host, &admin).await;

    // The token's one slot is taken: a second socket is a 429 before the
    // upgrade, or a close (1013) after an `auth` message; an SSE stream too.
    match Ws::try_open(&host, &admin).await {
        Err(WsFailure::Http(response)) => assert_eq!(response.status(), 429),
        Err(other) => panic!("expected a 429, got {other}"),
        Ok(_) => panic!("a second socket got the token's only slot"),
    }
    let mut bare = Ws::open_bare(&host).await;
    bare.send(json!({ "type": "auth", "token": admin })).await;
    let (before, code, reason) = bare.until_closed().await;
    assert_eq!((code, reason.as_str()), (1013, "too-many-streams"));
    assert_eq!(before.len(), 1, "{before:?}");
    let problem = &before[0]["problem"];
    assert_eq!(
        problem["type"],
        "https://reyna.dev/problems/too-many-streams"
    );
    assert_eq!(problem["status"], 429);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("max-streams-per-token"),
        "{problem}"
    );
    let sse = http
        .get(format!("{}/v1/events", host.url))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 429);

    // A socket that never authenticates is closed after its 5 seconds.
    let mut silent = Ws::open_bare(&host).await;
    let (before, code, reason) = silent.until_closed().await;
    assert!(before.is_empty(), "{before:?}");
    assert_eq!((code, reason.as_str()), (1008, "no auth message within 5s"));

    // The socket that holds the slot still works.
    ws.send(json!({ "type": "subscribe", "pattern": ">" }))
        .await;
    ws.expect("subscribed").await;
    host.stop();
}

/// Revoking a token ends what it holds open at once: its socket is closed
/// with 1008 and the reason, its SSE stream gets a final `revoked` event
/// and ends; the tenant's other token keeps its socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_tokens_socket_and_event_stream_end_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut host = Host::start(dir.path(), &[]);
    let admin = host.token();
    let http = client();
    let mut made = Vec::new();
    for name in ["doomed", "kept"] {
        let created = http
            .post(format!("{}/v1/tokens", host.url))
            .bearer_auth(&admin)
            .json(&json!({ "role": "reader", "name": name }))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
        let created: Value = created.json().await.unwrap();
        made.push((
            created["token"]["id"].as_str().unwrap().to_owned(),
            created["secret"].as_str().unwrap().to_owned(),
        ));
    }
    let (doomed_id, doomed) = &made[0];
    let (_, kept) = &made[1];
    let (mut ws, _) = Ws::open(&host, doomed).await;
    let (mut other, _) = Ws::open(&host, kept).await;
    let sse = http
        .get(format!("{}/v1/events", host.url))
        .bearer_auth(doomed)
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 200);
    let mut sse = sse.bytes_stream();

    let revoked = http
        .delete(format!("{}/v1/tokens/{doomed_id}", host.url))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);

    let (_, code, reason) = ws.until_closed().await;
    assert_eq!((code, reason.as_str()), (1008, "the token was revoked"));
    let mut text = String::new();
    timeout(WAIT, async {
        while let Some(chunk) = sse.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        }
    })
    .await
    .expect("the revoked token's event stream ends");
    assert!(text.contains("event: revoked"), "{text}");

    // The other token's socket is untouched.
    other
        .send(json!({ "type": "subscribe", "pattern": ">" }))
        .await;
    other.expect("subscribed").await;
    host.stop();
}
