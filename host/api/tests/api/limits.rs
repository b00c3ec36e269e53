//! What one client may hold, through the router: live streams and
//! long-polls per token and in total (429 `too-many-streams`, the slot
//! freed when the stream is dropped), and the memory budget shared by
//! request bodies (503 `server-busy`, plugin uploads included, nothing
//! stored). The socket-level limits (connections, header and body timeouts)
//! are tested against a real `reyna serve` in `host/cli/tests/client_limits.rs`.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{Request, header};
use reyna_api::ApiConfig;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};
use tower::ServiceExt;

use crate::common::{ADMIN, Call, READER, STRANGER, WRITER, api_with};

fn kind(p: &serde_json::Value) -> &str {
    p["type"].as_str().unwrap().rsplit('/').next().unwrap()
}

#[tokio::test]
async fn live_streams_and_long_polls_are_capped_per_token_and_in_total() {
    let config = ApiConfig {
        max_streams_per_token: 2,
        max_streams: 3,
        ..ApiConfig::default()
    };
    let api = api_with(config, &[], |_| {}).await;
    let blob = api.put_text("alpha beta").await;
    let first = api.open(Call::get("/v1/events").token(READER)).await;
    assert_eq!(first.status(), 200);
    let second = api.open(Call::get("/v1/events").token(READER)).await;
    assert_eq!(second.status(), 200);

    let reply = api.get("/v1/events", READER).await;
    let p = reply.problem(429);
    assert_eq!(kind(&p), "too-many-streams");
    assert_eq!(reply.headers[header::RETRY_AFTER], "5");
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("max-streams-per-token"),
        "{p}"
    );
    // A long-poll counts; the same request without `wait` does not.
    let waited = format!("/v1/blobs/{blob}/derived?wait=10");
    let p = api.get(&waited, READER).await.problem(429);
    assert_eq!(kind(&p), "too-many-streams");
    api.get(&format!("/v1/blobs/{blob}/derived"), READER)
        .await
        .ok(200);

    // Another token has its own cap, within the host's total of 3.
    let theirs = api.open(Call::get("/v1/events").token(WRITER)).await;
    assert_eq!(theirs.status(), 200);
    let p = api.get("/v1/events", STRANGER).await.problem(429);
    assert!(
        p["detail"].as_str().unwrap().contains("max-streams ="),
        "{p}"
    );

    // Dropping a stream (the client going away) frees its slot.
    drop(first);
    let again = api.open(Call::get("/v1/events").token(READER)).await;
    assert_eq!(again.status(), 200);
    drop((second, theirs, again));
    // A long-poll's slot is freed when it answers.
    for _ in 0..3 {
        api.get(&format!("/v1/blobs/{blob}/derived?wait=10ms"), READER)
            .await
            .ok(200);
    }
}

#[tokio::test]
async fn request_bodies_share_a_memory_budget_and_plugin_uploads_count() {
    let config = ApiConfig {
        max_body_memory: 8 * 1024,
        ..ApiConfig::default()
    };
    let api = api_with(config, &[], |_| {}).await;
    let blobs_before = api.get("/v1/blobs", READER).await.ok(200)["items"]
        .as_array()
        .unwrap()
        .len();

    // A 6,000-byte blob body whose bytes have not arrived yet: its declared
    // length is held from the handler's first read.
    let held = json!({ "schema": "text-input-v1", "data": { "content": "h".repeat(5937) } })
        .to_string()
        .into_bytes();
    let (reading, read_started) = oneshot::channel::<()>();
    let (chunks, rx) = mpsc::channel::<Bytes>(1);
    let stream = futures_util::stream::unfold((rx, Some(reading)), |(mut rx, signal)| async {
        if let Some(signal) = signal {
            let _ = signal.send(());
        }
        let chunk = rx.recv().await?;
        Some((Ok::<_, std::io::Error>(chunk), (rx, None)))
    });
    let request = Request::post("/v1/blobs")
        .header(header::AUTHORIZATION, format!("Bearer {WRITER}"))
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, held.len())
        .body(Body::from_stream(stream))
        .unwrap();
    let holder = tokio::spawn(api.app.clone().oneshot(request));
    tokio::time::timeout(Duration::from_secs(10), read_started)
        .await
        .expect("the handler reads the body")
        .unwrap();

    // A 4 KiB plugin upload does not fit what is left: 503, nothing stored.
    let upload = || {
        Call::post("/v1/plugins")
            .token(ADMIN)
            .header("content-length", "4096")
            .raw("application/wasm", vec![0x42; 4096])
    };
    let reply = api.send(upload()).await;
    let p = reply.problem(503);
    assert_eq!(kind(&p), "server-busy");
    assert_eq!(reply.headers[header::RETRY_AFTER], "1");
    assert!(
        p["detail"].as_str().unwrap().contains("max-body-memory"),
        "{p}"
    );
    assert!(api.engine.list_plugins(None).is_empty());
    // Nor does a body without a declared length, counted as it arrives.
    let chunked = json!({ "schema": "text-input-v1", "data": { "content": "c".repeat(4000) } });
    let p = api
        .send(Call::post("/v1/blobs").token(WRITER).json(&chunked))
        .await
        .problem(503);
    assert_eq!(kind(&p), "server-busy");
    // A small body fits beside the held one.
    api.put_text("small text").await;

    chunks.send(Bytes::from(held)).await.unwrap();
    drop(chunks);
    let response = tokio::time::timeout(Duration::from_secs(10), holder)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 201);
    // Given back: the same requests are now judged on their content.
    let p = api.send(upload()).await.problem(422);
    assert_eq!(kind(&p), "not-a-plugin");
    api.send(Call::post("/v1/blobs").token(WRITER).json(&chunked))
        .await
        .ok(201);
    let blobs_after = api.get("/v1/blobs", READER).await.ok(200)["items"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(
        blobs_after,
        blobs_before + 3,
        "the held, small and chunked blobs"
    );
}
