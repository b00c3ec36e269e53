//! Live events: tenant-scoped, filtered by subject pattern, in order,
//! resumable with Last-Event-ID; heartbeats; a slow client is dropped with
//! a final event instead of slowing the host.

use std::time::Duration;

use axum::body::Body;
use axum::http::header;
use http_body_util::BodyExt;
use reyna_api::ApiConfig;
use serde_json::json;

use crate::common::*;

#[derive(Debug, Default)]
pub struct Message {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
    pub comment: Option<String>,
}

/// Reads server-sent events from a response body, each wait bounded.
pub struct Sse {
    body: Body,
    buf: String,
}

impl Sse {
    pub fn new(response: axum::response::Response) -> Self {
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/event-stream"
        );
        Sse {
            body: response.into_body(),
            buf: String::new(),
        }
    }

    /// The next message, or `None` when the stream ended.
    pub async fn next(&mut self) -> Option<Message> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut msg = Message::default();
                for line in block.lines() {
                    if let Some(c) = line.strip_prefix(':') {
                        msg.comment = Some(c.trim().to_owned());
                    } else if let Some((k, v)) = line.split_once(':') {
                        let v = v.strip_prefix(' ').unwrap_or(v);
                        match k {
                            "id" => msg.id = Some(v.to_owned()),
                            "event" => msg.event = Some(v.to_owned()),
                            "data" => msg.data.push_str(v),
                            _ => {}
                        }
                    }
                }
                return Some(msg);
            }
            let frame = tokio::time::timeout(Duration::from_secs(30), self.body.frame())
                .await
                .expect("no server-sent event within 30 s")?
                .unwrap();
            if let Ok(data) = frame.into_data() {
                self.buf.push_str(std::str::from_utf8(&data).unwrap());
            }
        }
    }

    /// The next event that is not a heartbeat.
    pub async fn event(&mut self) -> Option<Message> {
        loop {
            let msg = self.next().await?;
            if msg.comment.is_none() {
                return Some(msg);
            }
        }
    }
}

fn subject(msg: &Message) -> String {
    let v: serde_json::Value = serde_json::from_str(&msg.data).unwrap();
    v["subject"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_sees_its_tenants_events_in_order_and_resumes_without_gaps() {
    let api = api_with_plugins(&["word-stats"]).await;
    let mut all = Sse::new(
        api.open(Call::get("/v1/events?after=0").token(READER))
            .await,
    );
    let mut derived_only = Sse::new(
        api.open(Call::get("/v1/events?after=0&subject=blob.created.word-stats-v1").token(READER))
            .await,
    );
    let mut stranger = Sse::new(
        api.open(Call::get("/v1/events?after=0").token(STRANGER))
            .await,
    );

    let a = api.put_text("first text").await;
    let b = api.put_text("second text").await;
    api.post_json(
        "/v1/blobs",
        STRANGER,
        json!({ "schema": "text-input-v1", "data": { "content": "their text" } }),
    )
    .await
    .ok(201);

    // Four events for acme: two inputs, two derived; seqs strictly increasing.
    let mut seen = Vec::new();
    let mut last = 0u64;
    while seen.len() < 4 {
        let msg = all.event().await.unwrap();
        let seq: u64 = msg.id.clone().unwrap().parse().unwrap();
        assert!(seq > last, "in order");
        last = seq;
        let v: serde_json::Value = serde_json::from_str(&msg.data).unwrap();
        assert_eq!(v["tenant"], TENANT);
        assert_eq!(v["seq"], seq);
        seen.push((
            seq,
            subject(&msg),
            v["blob_id"].as_str().unwrap().to_owned(),
        ));
    }
    let inputs: Vec<&str> = seen
        .iter()
        .filter(|s| s.1 == "blob.created.text-input-v1")
        .map(|s| s.2.as_str())
        .collect();
    assert_eq!(inputs, [a.as_str(), b.as_str()]);
    let derived: Vec<&(u64, String, String)> = seen
        .iter()
        .filter(|s| s.1 == "blob.created.word-stats-v1")
        .collect();
    assert_eq!(derived.len(), 2);

    // The filtered stream sees only the derived blobs, same ids.
    for expected in &derived {
        let msg = derived_only.event().await.unwrap();
        assert_eq!(msg.id.as_deref(), Some(expected.0.to_string().as_str()));
        assert_eq!(subject(&msg), "blob.created.word-stats-v1");
    }

    // The other tenant sees its own blob only.
    let msg = stranger.event().await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&msg.data).unwrap();
    assert_eq!(v["tenant"], OTHER);

    // Reconnect after the first event: the rest, with no gap and no repeat.
    let first = seen[0].0;
    let mut resumed = Sse::new(
        api.open(
            Call::get("/v1/events")
                .token(READER)
                .header("last-event-id", &first.to_string()),
        )
        .await,
    );
    for expected in &seen[1..] {
        let msg = resumed.event().await.unwrap();
        assert_eq!(msg.id.as_deref(), Some(expected.0.to_string().as_str()));
    }
    api.engine.shutdown().await;
}

#[tokio::test]
async fn bad_patterns_and_positions_are_400() {
    let api = api().await;
    let p = api
        .get("/v1/events?subject=blob..created", READER)
        .await
        .problem(400);
    assert_eq!(
        p["type"],
        "https://reyna.dev/problems/invalid-subject-pattern"
    );
    api.get("/v1/events?subject=%3E.blob", READER)
        .await
        .problem(400);
    let p = api
        .send(
            Call::get("/v1/events")
                .token(READER)
                .header("last-event-id", "abc"),
        )
        .await
        .problem(400);
    assert_eq!(
        p["type"],
        "https://reyna.dev/problems/invalid-last-event-id"
    );
    api.get("/v1/events?after=-1", READER).await.problem(400);
    api.send(Call::get("/v1/events")).await.problem(401);
}

// Single-threaded on purpose: the producer fills the buffer in one go
// before the test reads, so "too slow" is deterministic.
#[tokio::test]
async fn a_slow_client_gets_what_fits_then_a_final_lagged_event() {
    let api = api_with(
        ApiConfig {
            sse_buffer: 2,
            ..ApiConfig::default()
        },
        &[],
        |_| {},
    )
    .await;
    for i in 0..5 {
        api.put_text(&format!("text number {i}")).await;
    }
    let mut sse = Sse::new(
        api.open(Call::get("/v1/events?after=0").token(READER))
            .await,
    );
    let one = sse.event().await.unwrap();
    let two = sse.event().await.unwrap();
    assert!(one.event.is_none() && two.event.is_none());
    let last = sse.event().await.unwrap();
    assert_eq!(last.event.as_deref(), Some("lagged"), "{last:?}");
    let lagged: serde_json::Value = serde_json::from_str(&last.data).unwrap();
    assert_eq!(lagged["last_seq"].to_string(), two.id.clone().unwrap());
    assert!(lagged["reason"].as_str().unwrap().contains("Last-Event-ID"));
    assert!(
        sse.next().await.is_none(),
        "the stream ends after the final event"
    );

    // Resuming from there gets the rest.
    let mut again = Sse::new(
        api.open(
            Call::get("/v1/events")
                .token(READER)
                .header("last-event-id", two.id.as_deref().unwrap()),
        )
        .await,
    );
    let three = again.event().await.unwrap();
    assert!(three.id.unwrap().parse::<u64>().unwrap() > two.id.unwrap().parse::<u64>().unwrap());
}

#[tokio::test]
async fn idle_streams_get_heartbeats_and_end_at_shutdown() {
    let api = api_with(
        ApiConfig {
            sse_heartbeat: Duration::from_millis(20),
            ..ApiConfig::default()
        },
        &[],
        |_| {},
    )
    .await;
    let mut sse = Sse::new(api.open(Call::get("/v1/events").token(READER)).await);
    let beat = sse.next().await.unwrap();
    assert_eq!(beat.comment.as_deref(), Some("heartbeat"));
    api.state.begin_shutdown();
    while let Some(msg) = sse.next().await {
        assert!(
            msg.comment.is_some(),
            "only heartbeats until the end: {msg:?}"
        );
    }
}
