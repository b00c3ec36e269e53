//! WebSocket delivery: the time from a `create_blob` message on `/v1/ws` to
//! the `blob.derived` message for its derived blob, on a real axum server
//! over loopback (the server `reyna serve` runs), p50 and p99; against the
//! floor of the same blob created and its derived blob seen straight through
//! the engine (its event, no HTTP, no socket), in the same process.
//!
//! One engine with the bundled schemas and the `word-stats` example plugin
//! (one derived blob per input), durable commits. A sample: create a
//! distinct 1 KiB `text-input-v1` blob and wait for its derived blob, one at
//! a time, after 20 unmeasured ones. The seed's success metric is under
//! 100 ms for WebSocket delivery and under 500 ms to the UI.
//!
//! Run: `cargo bench -p reyna-benches --bench websocket` (a few seconds);
//! `cargo test -p reyna-benches --bench websocket` runs a small version.
#![allow(clippy::expect_used, clippy::panic)] // bench setup and checks: failing loudly is the point

mod common;

use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use reyna_api::{ApiConfig, AppState};
use reyna_engine::reyna_store::Role;
use reyna_engine::{Engine, EngineConfig, InstallPolicy, TenantId};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

#[path = "common/allocator.rs"]
mod allocator;

const TENANT: &str = "acme";
const TOKEN: &str = "reyna_bench_websocket_writer";
const OUTPUT: &str = "blob.created.word-stats-v1";
/// Longest wait for one derived blob.
const SAMPLE_BOUND: Duration = Duration::from_secs(20);

async fn engine(dir: &std::path::Path) -> Engine {
    let engine = common::open_engine(EngineConfig::new(dir)).await;
    engine
        .create_tenant(&TenantId::parse(TENANT).expect("id"), TENANT, "bench")
        .await
        .expect("tenant");
    let wasm = reyna_artifacts::bytes("word-stats").expect("word-stats component");
    engine
        .upload_plugin(wasm, None, InstallPolicy::All, "bench")
        .await
        .expect("upload word-stats");
    reyna_api::ensure_token(&engine, TOKEN, TENANT, Role::Writer, "bench")
        .await
        .expect("token");
    engine.start();
    engine
}

fn text() -> serde_json::Value {
    let bytes = common::distinct(&common::text_input(1 << 10));
    serde_json::from_slice(&bytes).expect("json")
}

/// The floor: one blob created through the engine and its derived blob's
/// event seen, as `derived?wait=` sees it.
async fn direct(engine: &Engine, cursor: &mut u64) -> Duration {
    let view = engine.tenant(&TenantId::parse(TENANT).expect("id"));
    let mut events = engine.watch_events();
    let start = Instant::now();
    let data = serde_json::to_vec(&text()).expect("json");
    let input = engine
        .create_blob(TENANT, "text-input-v1", data, vec![])
        .await
        .expect("blob");
    let deadline = tokio::time::Instant::now() + SAMPLE_BOUND;
    loop {
        events.borrow_and_update();
        for event in view.events_after(*cursor, 64).expect("events") {
            *cursor = event.seq;
            let Some(id) = event.blob_id.filter(|_| event.subject == OUTPUT) else {
                continue;
            };
            let derived = view.blob(id).expect("read").expect("derived");
            if derived.parents.contains(&input.id) {
                return start.elapsed();
            }
        }
        tokio::select! {
            changed = events.changed() => changed.expect("store open"),
            _ = tokio::time::sleep_until(deadline) => panic!("no derived blob within {SAMPLE_BOUND:?}"),
        }
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next JSON message of the socket, bounded.
async fn next(socket: &mut Socket) -> serde_json::Value {
    loop {
        let message = tokio::time::timeout(SAMPLE_BOUND, socket.next())
            .await
            .expect("a message within the bound")
            .expect("the socket is open")
            .expect("a frame");
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).expect("JSON message");
        }
    }
}

/// One sample over the socket: `create_blob`, then its `blob.derived`.
async fn over_socket(socket: &mut Socket, n: usize) -> Duration {
    let request_id = format!("r{n}");
    let message = serde_json::json!({
        "type": "create_blob",
        "request_id": request_id,
        "schema": "text-input-v1",
        "data": text(),
    });
    let start = Instant::now();
    socket
        .send(Message::Text(message.to_string().into()))
        .await
        .expect("send");
    let mut id = None;
    loop {
        let message = next(socket).await;
        match message["type"].as_str() {
            Some("created") if message["request_id"] == request_id.as_str() => {
                id = message["id"].as_str().map(str::to_owned);
            }
            Some("blob.derived")
                if id.is_some() && message["parent_id"].as_str() == id.as_deref() =>
            {
                return start.elapsed();
            }
            Some("error") => panic!("refused: {message}"),
            _ => {}
        }
    }
}

fn summary(name: &str, mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let p50 = common::percentile(&samples, 0.50).as_secs_f64() * 1e3;
    let p99 = common::percentile(&samples, 0.99).as_secs_f64() * 1e3;
    println!(
        "websocket/{name}: {} samples; p50 {p50:.2} ms, p99 {p99:.2} ms",
        samples.len()
    );
    (p50, p99)
}

fn main() {
    let (samples, warmup) = if common::full_run() {
        (200, 20)
    } else {
        (5, 2)
    };
    let rt = common::tokio_runtime();
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = engine(dir.path()).await;
        let state = AppState::new(engine.clone(), ApiConfig::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("addr");
        // The server `reyna serve` runs (TCP_NODELAY, its limits).
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(reyna_api::serve(listener, state, async move {
            let _ = stopped.await;
        }));

        // Floor and socket samples alternate, so both see the same store.
        let mut request = format!("ws://{addr}/v1/ws")
            .into_client_request()
            .expect("request");
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {TOKEN}").parse().expect("header"),
        );
        // A browser's socket does not delay small writes either.
        let (mut socket, _) = tokio_tungstenite::connect_async_with_config(request, None, true)
            .await
            .expect("connect");
        let hello = next(&mut socket).await;
        assert_eq!(hello["type"], "authenticated", "{hello}");
        let mut cursor = *engine.watch_events().borrow();
        let (mut floor, mut ws) = (Vec::new(), Vec::new());
        for n in 0..warmup + samples {
            let d = direct(&engine, &mut cursor).await;
            let w = over_socket(&mut socket, n).await;
            if n >= warmup {
                floor.push(d);
                ws.push(w);
            }
        }
        let (floor_p50, floor_p99) = summary("engine-floor", floor);
        let (ws_p50, ws_p99) = summary("socket", ws);
        let verdict = if ws_p99 < 100.0 { "met" } else { "missed" };
        println!(
            "websocket summary: create_blob to blob.derived p50 {ws_p50:.2} ms, p99 {ws_p99:.2} ms \
             ({:.2}x / {:.2}x the engine floor of {floor_p50:.2} / {floor_p99:.2} ms); goal < 100 ms: {verdict}",
            ws_p50 / floor_p50,
            ws_p99 / floor_p99,
        );
        common::write_result(
            if common::full_run() { "websocket" } else { "websocket-smoke" },
            &serde_json::json!({
                "samples": samples,
                "p50_ms": ws_p50,
                "p99_ms": ws_p99,
                "floor_p50_ms": floor_p50,
                "floor_p99_ms": floor_p99,
            }),
        );
        let _ = socket.close(None).await;
        let _ = stop.send(());
        let _ = server.await;
        engine.shutdown().await;
    });
}
