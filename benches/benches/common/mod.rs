//! What the suite's benches (`word_count`, `memory`, `coldstart`, `summary`)
//! share: the word-count input texts, where results go, many distinct
//! plugins made from one component, and a batch of events pushed through an
//! engine. Each bench uses part of it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use reyna_engine::{Engine, EngineConfig};

/// Writers that ingest concurrently in an event batch (as in `engine.rs`).
pub const WRITERS: usize = 64;

/// The text-input-v1 body of about `size` bytes, built exactly as
/// `runtime.rs` builds its `call/*` inputs and as the Extism peer does.
pub fn text_input(size: usize) -> Vec<u8> {
    let words = "lorem ipsum dolor sit amet ".repeat(size / 27 + 1);
    let text = &words[..size.saturating_sub(12)];
    serde_json::to_vec(&serde_json::json!({ "content": text })).expect("json")
}

/// `cargo bench` passes `--bench`; under `cargo test --benches` the
/// harness-less benches run a small smoke version instead.
pub fn full_run() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// The cargo target directory (`CARGO_TARGET_DIR`, else `<repo>/target`),
/// where criterion writes `criterion/` and the suite its results.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// Where a harness-less bench leaves its figures for the summary.
pub fn result_path(bench: &str) -> PathBuf {
    target_dir()
        .join("bench-results")
        .join(format!("{bench}.json"))
}

/// Writes a bench's figures for `summary` to read.
pub fn write_result(bench: &str, value: &serde_json::Value) {
    let path = result_path(bench);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("results dir");
    std::fs::write(&path, serde_json::to_vec_pretty(value).expect("json")).expect("write result");
    println!("{bench}: figures written to {}", path.display());
}

/// Peak resident set size of this process so far (`VmHWM`), in bytes.
pub fn peak_rss() -> u64 {
    proc_status_kib("VmHWM:") * 1024
}

/// Resident set size of this process now (`VmRSS`), in bytes.
pub fn rss() -> u64 {
    proc_status_kib("VmRSS:") * 1024
}

fn proc_status_kib(key: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A multi-threaded tokio runtime, as `reyna serve` runs the engine on.
pub fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// The median of some durations (sorts them).
pub fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

// --- distinct plugins from one component --------------------------------

/// The schema of variant inputs: text-input-v1's `content` without its
/// 50,000-character cap, so the memory bench can send a 50 MiB text and
/// `word_count` a 64 KiB one.
pub const VARIANT_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "properties": { "content": { "type": "string", "minLength": 1 } },
  "required": ["content"]
}"#;

/// `word-count` renamed to `name`, subscribed to and reading `schema`
/// instead of text-input-v1.
pub fn word_count_variant(word_count: &[u8], name: &str, schema: &str) -> Vec<u8> {
    let bytes = reyna_artifacts::with_manifest(word_count, |toml| {
        toml.replace("name = \"word-count\"", &format!("name = \"{name}\""))
            .replace("text-input-v1", schema)
    })
    .expect("word-count has an embedded manifest");
    let info = reyna_manifest::inspect(&bytes).expect("variant is a valid plugin");
    assert_eq!(info.manifest.name, name, "variant renamed");
    assert_eq!(info.manifest.inputs[0].as_str(), schema, "variant input");
    bytes
}

/// An engine on `config` with the bundled schemas registered (not started).
pub async fn open_engine(config: EngineConfig) -> Engine {
    let engine = Engine::open(config).await.expect("engine");
    engine.register_bundled_schemas().await.expect("schemas");
    engine
}

/// Schema id of variant `i`.
pub fn variant_schema(i: usize) -> String {
    format!("bench-text-{i:03}-v1")
}

/// Registers `n` word-count variants, each with its own input schema
/// (`bench-text-NNN-v1`), so events spread over all of them. Returns the
/// schema ids, in order.
pub async fn register_variants(engine: &Engine, n: usize) -> Vec<String> {
    let word_count = reyna_artifacts::bytes("word-count")
        .expect("word-count component (cargo build -p reyna-artifacts)");
    let mut schemas = Vec::with_capacity(n);
    for i in 0..n {
        let schema = variant_schema(i);
        engine
            .register_schema(&schema, VARIANT_SCHEMA, "bench")
            .await
            .expect("schema");
        let wasm = word_count_variant(&word_count, &format!("word-count-{i:03}"), &schema);
        let (_, created) = engine
            .upload_plugin(wasm, None, reyna_engine::InstallPolicy::All, "bench")
            .await
            .expect("upload");
        assert!(created, "variant {i} is a new plugin");
        schemas.push(schema);
    }
    schemas
}

/// `data` (a [`text_input`] document) with its content opened by words no
/// other event of this process has, so no job is answered from the
/// idempotency record of an earlier one and every event runs its plugin. A
/// byte splice, not a re-serialisation.
pub fn distinct(data: &[u8]) -> Vec<u8> {
    const HEAD: &[u8] = br#"{"content":""#;
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let rest = data.strip_prefix(HEAD).expect("a text_input document");
    let head = format!(r#"{{"content":"event {n} "#);
    let mut out = Vec::with_capacity(head.len() + rest.len());
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(rest);
    out
}

/// Ingests `count` distinct blobs ([`distinct`] copies of `data`) from
/// [`WRITERS`] concurrent writers,
/// blob `i` with schema `schemas[i % len]`, and waits until every job is
/// done. Returns the time from the first ingest to the last commit.
pub async fn push_events(
    engine: &Engine,
    schemas: &[String],
    data: &[u8],
    count: usize,
) -> Duration {
    let start = Instant::now();
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..WRITERS {
        let (engine, schemas, data) = (engine.clone(), schemas.to_vec(), data.to_vec());
        writers.spawn(async move {
            for i in (w..count).step_by(WRITERS) {
                let event = distinct(&data);
                engine
                    .create_blob("bench", &schemas[i % schemas.len()], event, vec![])
                    .await
                    .expect("ingest");
            }
        });
    }
    while let Some(done) = writers.join_next().await {
        done.expect("writer");
    }
    assert!(
        engine.wait_idle(Duration::from_secs(600)).await,
        "engine did not drain in 10 minutes"
    );
    start.elapsed()
}

/// The value at quantile `p` (0.0 to 1.0) of `sorted`, the nearest rank;
/// the default of `T` when there is none.
pub fn percentile<T: Copy + Default>(sorted: &[T], p: f64) -> T {
    let last = sorted.len().saturating_sub(1);
    let index = (last as f64 * p).round() as usize;
    sorted.get(index.min(last)).copied().unwrap_or_default()
}
