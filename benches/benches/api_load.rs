//! Load test of the HTTP API: 64 concurrent clients post a fixed count of
//! 1 KiB `text-input-v1` blobs over loopback to a real axum server (the
//! router `reyna serve` runs), against the floor of the same writes made
//! straight into the engine by 64 tasks in the same process.
//!
//! Checks, not timings, decide success: zero 5xx (and zero other errors),
//! and every acknowledged blob is stored afterwards (read back by id and
//! counted). Two runs: ingest only (no plugins), then with `word-stats`
//! subscribed, where each post also enqueues a job, and the time until
//! every derived blob is committed is reported too.
//!
//! Run: `cargo bench -p reyna-benches --bench api_load`
//! (`REYNA_LOAD_BLOBS=N` changes the count, default 6400).
#![allow(clippy::expect_used, clippy::panic)] // bench setup and checks: failing loudly is the point

use std::time::{Duration, Instant};

use reyna_api::{ApiConfig, AppState};
use reyna_engine::reyna_store::{BlobId, Role};
use reyna_engine::{Engine, EngineConfig};

#[path = "common/allocator.rs"]
mod allocator;

const CLIENTS: usize = 64;
const TENANT: &str = "bench";
const TOKEN: &str = "reyna_bench_writer_token_0123456789";

fn text_1k(i: usize) -> serde_json::Value {
    let words = "lorem ipsum dolor sit amet consectetur adipiscing elit ".repeat(20);
    serde_json::json!({ "content": format!("{i} {}", &words[..990]) })
}

async fn engine(dir: &std::path::Path, plugins: &[&str]) -> Engine {
    let engine = Engine::open(EngineConfig::new(dir)).await.expect("engine");
    engine.register_bundled_schemas().await.expect("schemas");
    for name in plugins {
        let wasm =
            reyna_artifacts::bytes(name).expect("built plugin (cargo build -p reyna-artifacts)");
        engine
            .upload_plugin(wasm, None, reyna_engine::InstallPolicy::All, "bench")
            .await
            .expect("upload");
    }
    reyna_api::ensure_token(&engine, TOKEN, TENANT, Role::Writer, "bench")
        .await
        .expect("token");
    engine.start();
    engine
}

struct Outcome {
    acked: Vec<String>,
    server_errors: usize,
    other_errors: Vec<String>,
    latencies: Vec<Duration>,
    elapsed: Duration,
}

/// 64 clients, each with its own connection pool, post `total` blobs.
async fn post_all(url: &str, total: usize) -> Outcome {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client_no in 0..CLIENTS {
        let url = url.to_owned();
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("client");
            let mut acked = Vec::new();
            let mut server_errors = 0;
            let mut other_errors = Vec::new();
            let mut latencies = Vec::new();
            for i in (client_no..total).step_by(CLIENTS) {
                let body = serde_json::json!({ "schema": "text-input-v1", "data": text_1k(i) });
                let t = Instant::now();
                let reply = http
                    .post(format!("{url}/v1/blobs"))
                    .bearer_auth(TOKEN)
                    .json(&body)
                    .send()
                    .await;
                match reply {
                    Ok(r) if r.status() == 201 => {
                        let blob: serde_json::Value = r.json().await.expect("json");
                        latencies.push(t.elapsed());
                        acked.push(blob["id"].as_str().expect("id").to_owned());
                    }
                    Ok(r) if r.status().is_server_error() => server_errors += 1,
                    Ok(r) => other_errors.push(format!(
                        "{}: {}",
                        r.status(),
                        r.text().await.unwrap_or_default()
                    )),
                    Err(e) => other_errors.push(e.to_string()),
                }
            }
            (acked, server_errors, other_errors, latencies)
        }));
    }
    let mut outcome = Outcome {
        acked: Vec::new(),
        server_errors: 0,
        other_errors: Vec::new(),
        latencies: Vec::new(),
        elapsed: Duration::ZERO,
    };
    for task in tasks {
        let (acked, server_errors, other_errors, latencies) = task.await.expect("client task");
        outcome.acked.extend(acked);
        outcome.server_errors += server_errors;
        outcome.other_errors.extend(other_errors);
        outcome.latencies.extend(latencies);
    }
    outcome.elapsed = started.elapsed();
    outcome
}

/// The floor: the same creates straight into the engine, 64 at a time.
async fn direct_all(engine: &Engine, total: usize) -> Duration {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client_no in 0..CLIENTS {
        let engine = engine.clone();
        tasks.push(tokio::spawn(async move {
            for i in (client_no..total).step_by(CLIENTS) {
                let data = text_1k(i).to_string().into_bytes();
                engine
                    .create_blob(TENANT, "text-input-v1", data, vec![])
                    .await
                    .expect("create");
            }
        }));
    }
    for task in tasks {
        task.await.expect("writer task");
    }
    started.elapsed()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Asserts the checks and prints the figures of one run; returns blobs/s.
fn report(name: &str, engine: &Engine, total: usize, mut outcome: Outcome) -> f64 {
    assert_eq!(outcome.server_errors, 0, "{name}: 5xx answers");
    assert!(
        outcome.other_errors.is_empty(),
        "{name}: failed requests: {:?}",
        &outcome.other_errors[..outcome.other_errors.len().min(5)]
    );
    assert_eq!(
        outcome.acked.len(),
        total,
        "{name}: every post acknowledged"
    );
    for id in &outcome.acked {
        let parsed: BlobId = id.parse().expect("blob id");
        assert!(
            engine
                .store()
                .get_blob(TENANT, parsed)
                .expect("read")
                .is_some(),
            "{name}: acknowledged blob {id} is missing"
        );
    }
    let mut listed = 0;
    let mut cursor: Option<String> = None;
    loop {
        let page = engine
            .store()
            .list_blobs(TENANT, Some("text-input-v1"), cursor.as_deref(), 1000)
            .expect("list");
        listed += page.items.len();
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert!(
        listed >= total,
        "{name}: {listed} blobs listed, {total} acknowledged"
    );
    outcome.latencies.sort();
    let rate = total as f64 / outcome.elapsed.as_secs_f64();
    println!(
        "api_load/{name}: {total} blobs from {CLIENTS} clients in {:.2} s = {rate:.0} blobs/s; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; 0 errors; all {total} present",
        outcome.elapsed.as_secs_f64(),
        percentile(&outcome.latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&outcome.latencies, 0.99).as_secs_f64() * 1e3,
        percentile(&outcome.latencies, 1.0).as_secs_f64() * 1e3,
    );
    rate
}

async fn serve(engine: Engine) -> (String, tokio::task::JoinHandle<()>, AppState) {
    let state = AppState::new(engine, ApiConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let app = reyna_api::app(state.clone());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, server, state)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs a smoke test.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let total: usize = std::env::var("REYNA_LOAD_BLOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if smoke { CLIENTS * 2 } else { CLIENTS * 100 });
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    rt.block_on(async {
        // Floor: direct engine writes.
        let dir = tempfile::tempdir().expect("tempdir");
        let floor_engine = engine(dir.path(), &[]).await;
        let floor = direct_all(&floor_engine, total).await;
        let floor_rate = total as f64 / floor.as_secs_f64();
        println!("api_load/floor (engine.create_blob, {CLIENTS} tasks): {total} blobs in {:.2} s = {floor_rate:.0} blobs/s", floor.as_secs_f64());
        floor_engine.shutdown().await;

        // Ingest only, over HTTP.
        let dir = tempfile::tempdir().expect("tempdir");
        let engine_a = engine(dir.path(), &[]).await;
        let (url, server, _state) = serve(engine_a.clone()).await;
        let outcome = post_all(&url, total).await;
        let rate = report("ingest", &engine_a, total, outcome);
        println!("api_load/ingest: HTTP / floor = {:.2}", rate / floor_rate);
        server.abort();
        engine_a.shutdown().await;

        // With word-stats subscribed: each post also enqueues a job.
        let dir = tempfile::tempdir().expect("tempdir");
        let engine_b = engine(dir.path(), &["word-stats"]).await;
        let (url, server, _state) = serve(engine_b.clone()).await;
        let started = Instant::now();
        let outcome = post_all(&url, total).await;
        report("ingest+word-stats", &engine_b, total, outcome);
        assert!(engine_b.wait_idle(Duration::from_secs(600)).await, "jobs did not finish in 10 minutes");
        let all_done = started.elapsed();
        let derived = engine_b.store().list_blobs(TENANT, Some("word-stats-v1"), None, 1).expect("list");
        let counts = engine_b.store().counts().expect("counts");
        assert_eq!(counts.jobs_done as usize, total, "every job done");
        assert!(!derived.items.is_empty());
        println!(
            "api_load/ingest+word-stats: every derived blob committed after {:.2} s = {:.0} pipelines/s",
            all_done.as_secs_f64(),
            total as f64 / all_done.as_secs_f64()
        );
        server.abort();
        engine_b.shutdown().await;
    });
}
