//! Cold start of a real `reyna serve` process (the `reyna` binary, bench
//! profile), on loopback:
//!
//! - ready: from spawning the process to the first `200` from `/readyz`,
//!   with 100 plugins registered and their compiled artifacts cached. The
//!   data directory is prepared in this run (the engine in this process
//!   uploads 100 renamed `word-count` variants, which compiles and caches
//!   them, then closes); the process is started three times on it.
//! - first derived blob: from the `201` of `POST /v1/plugins` (a new
//!   variant with its own input schema, compiled during the upload) to the
//!   answer of `GET /v1/blobs/{id}/derived?wait=10s` holding its output, for
//!   a 1 KiB blob posted right after the upload; five different plugins.
//!
//! Goals: ready within 1 s, first derived blob within 100 ms. Figures go to
//! `target/bench-results/coldstart.json` for the summary.
//! Run: `cargo build --profile bench -p reyna && cargo bench -p reyna-benches
//! --bench coldstart` (`REYNA_BIN` names another binary); `cargo test -p
//! reyna-benches --bench coldstart` runs a small version if the binary exists.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // bench setup: failing loudly is the point

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reyna_engine::EngineConfig;

const TOKEN: &str = "reyna_bench_admin_token_0123456789";

fn reyna_bin() -> PathBuf {
    std::env::var_os("REYNA_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| common::target_dir().join("release/reyna"))
}

fn cold_schema(k: usize) -> String {
    format!("bench-cold-{k}-v1")
}

/// A data directory with `plugins` variants registered and compiled, and
/// the input schemas of `cold` more that the bench uploads later.
async fn prepare(dir: &Path, plugins: usize, cold: usize) {
    let engine = common::open_engine(EngineConfig::new(dir)).await;
    common::register_variants(&engine, plugins).await;
    for k in 0..cold {
        engine
            .register_schema(&cold_schema(k), common::VARIANT_SCHEMA, "bench")
            .await
            .expect("schema");
    }
    engine.shutdown().await;
    let artifacts = std::fs::read_dir(dir.join("artifacts"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert!(
        artifacts >= plugins,
        "{artifacts} compiled artifacts cached for {plugins} plugins"
    );
}

/// A running `reyna serve` and its address.
struct Host {
    child: Child,
    url: String,
}

impl Host {
    /// Starts `reyna serve` on `dir` and returns once `/readyz` answers 200,
    /// with the time that took from spawning the process.
    async fn start(bin: &Path, dir: &Path, http: &reqwest::Client) -> (Host, Duration) {
        let started = Instant::now();
        let mut child = Command::new(bin)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--log",
                "warn",
                "--data-dir",
            ])
            .arg(dir)
            .env("REYNA_ADMIN_TOKEN", TOKEN)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let url = loop {
            let line = lines
                .next()
                .expect("reyna serve exited before listening")
                .expect("stdout");
            if let Some((_, url)) = line.split_once("listening on ") {
                break url.trim().to_owned();
            }
        };
        // Keep reading, so the host never writes to a closed pipe.
        std::thread::spawn(move || lines.for_each(drop));
        let mut answered = None;
        for _ in 0..10_000 {
            let reply = http.get(format!("{url}/readyz")).send().await;
            if reply.is_ok_and(|r| r.status() == 200) {
                answered = Some(started.elapsed());
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "not ready in 60 s"
            );
        }
        let ready = answered.expect("/readyz never answered 200");
        (Host { child, url }, ready)
    }

    /// SIGTERM (a clean stop, so the next start opens a clean database),
    /// then SIGKILL if it has not exited within 30 s.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(self.child.wait().map(|s| s.success()));
            self.child
        });
        if rx.recv_timeout(Duration::from_secs(30)).is_err() {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
        }
    }
}

/// Uploads a new plugin, posts a blob to its schema, and returns the time
/// from the upload's `201` to the answer holding the derived blob.
async fn first_derived(http: &reqwest::Client, url: &str, word_count: &[u8], k: usize) -> Duration {
    let schema = cold_schema(k);
    let wasm = common::word_count_variant(word_count, &format!("word-count-cold-{k}"), &schema);
    let reply = http
        .post(format!("{url}/v1/plugins"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/wasm")
        .body(wasm)
        .send()
        .await
        .expect("upload");
    assert_eq!(
        reply.status(),
        201,
        "upload: {}",
        reply.text().await.unwrap_or_default()
    );
    let acknowledged = Instant::now();
    let text: serde_json::Value =
        serde_json::from_slice(&common::text_input(1 << 10)).expect("json");
    let reply = http
        .post(format!("{url}/v1/blobs"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({ "schema": schema, "data": text }))
        .send()
        .await
        .expect("post blob");
    assert_eq!(
        reply.status(),
        201,
        "blob: {}",
        reply.text().await.unwrap_or_default()
    );
    let blob: serde_json::Value = reply.json().await.expect("blob json");
    let id = blob["id"].as_str().expect("blob id");
    let reply = http
        .get(format!("{url}/v1/blobs/{id}/derived?wait=10s"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("derived");
    assert_eq!(reply.status(), 200);
    let derived: serde_json::Value = reply.json().await.expect("derived json");
    let took = acknowledged.elapsed();
    let outputs = derived["derived"].as_array().map_or(0, Vec::len);
    assert_eq!(outputs, 1, "the new plugin's output: {derived}");
    took
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let full = common::full_run();
    let (plugins, starts, cold) = if full { (100, 3, 5) } else { (3, 1, 1) };
    let bin = reyna_bin();
    if !bin.is_file() {
        assert!(
            !full,
            "no reyna binary at {} (cargo build --profile bench -p reyna, or set REYNA_BIN)",
            bin.display()
        );
        println!("coldstart: skipped, no reyna binary at {}", bin.display());
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = common::tokio_runtime();
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let started = Instant::now();
        prepare(dir.path(), plugins, cold).await;
        println!(
            "coldstart: data directory with {plugins} compiled plugins prepared in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client");

        let mut ready = Vec::with_capacity(starts);
        for i in 0..starts {
            let (host, took) = Host::start(&bin, dir.path(), &http).await;
            if i == 0 {
                let listed: Vec<serde_json::Value> = http
                    .get(format!("{}/v1/plugins", host.url))
                    .bearer_auth(TOKEN)
                    .send()
                    .await
                    .expect("list plugins")
                    .json()
                    .await
                    .expect("plugins json");
                assert_eq!(listed.len(), plugins, "every plugin loaded");
            }
            println!("coldstart: start {} ready after {:.1} ms", i + 1, ms(took));
            ready.push(took);
            host.stop();
        }

        let word_count = reyna_artifacts::bytes("word-count").expect("word-count");
        let (host, _) = Host::start(&bin, dir.path(), &http).await;
        let mut derived = Vec::with_capacity(cold);
        for k in 0..cold {
            let took = first_derived(&http, &host.url, &word_count, k).await;
            println!("coldstart: plugin {k}: first derived blob {:.1} ms after the upload's 201", ms(took));
            derived.push(took);
        }
        host.stop();

        let all = |v: &[Duration]| v.iter().map(|d| ms(*d)).collect::<Vec<_>>();
        let (ready_all, derived_all) = (all(&ready), all(&derived));
        let ready_median = common::median(&mut ready);
        let derived_median = common::median(&mut derived);
        println!(
            "coldstart: ready with {plugins} cached plugins {:.1} ms (median of {starts}); first derived blob {:.1} ms (median of {cold})",
            ms(ready_median),
            ms(derived_median)
        );
        common::write_result(
            if full { "coldstart" } else { "coldstart-smoke" },
            &serde_json::json!({
                "plugins": plugins,
                "ready_ms": ready_all,
                "ready_median_ms": ms(ready_median),
                "first_derived_ms": derived_all,
                "first_derived_median_ms": ms(derived_median),
                "first_derived_max_ms": derived_all.iter().copied().fold(0.0, f64::max),
            }),
        );
    });
}
