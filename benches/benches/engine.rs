//! Sustained events per second through the whole engine, against the
//! runtime-only floor measured in the same run.
//!
//! - `engine/runtime-floor`: one `Runtime::call` of the trivial `word-count`
//!   processor on a 1 KiB text (fresh sandbox, no storage).
//! - `engine/per-event`: the whole path for one event: validate and ingest a
//!   1 KiB text-input-v1 blob (durable), route it, run `word-count`, validate
//!   its output, and commit the derived blob with its lineage (durable).
//!   64 writers ingest concurrently (`REYNA_BENCH_WRITERS=N` overrides);
//!   time is measured until every derived
//!   blob is committed, divided by the number of events. Every input is
//!   distinct (its title), so every job runs the plugin: none is answered
//!   from the idempotency record of an earlier identical input.
//!
//! The summary line prints derived blobs per second and the ratio
//! engine / floor. Run: `cargo bench -p reyna-benches --bench engine`
//! (`REYNA_BENCH_WORKERS=N` overrides the engine's concurrent jobs).

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use reyna_engine::{Engine, EngineConfig};
use reyna_runtime::{Blob, CallContext, Event, Runtime, RuntimeConfig};

#[path = "common/allocator.rs"]
mod allocator;

/// Concurrent ingest writers (`REYNA_BENCH_WRITERS` overrides).
fn writers() -> usize {
    std::env::var("REYNA_BENCH_WRITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

/// A 1 KiB text; the event's number makes every input distinct, so no job is
/// answered from the idempotency record of an earlier one.
fn text_1k(event: u64) -> Vec<u8> {
    let words = "lorem ipsum dolor sit amet consectetur adipiscing elit ".repeat(20);
    serde_json::json!({ "content": format!("event {event}: {}", &words[..990]) })
        .to_string()
        .into_bytes()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let wasm = reyna_artifacts::bytes("word-count")
        .expect("word-count component (cargo build -p reyna-artifacts)");
    let data = text_1k(0);

    let mut group = c.benchmark_group("engine");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Elements(1));

    let runtime = Runtime::new(RuntimeConfig::default()).expect("runtime");
    let plugin = runtime.load(&wasm).expect("load word-count");
    let event = Event {
        subject: "blob.created.text-input-v1".into(),
        blob: Blob {
            id: "01J0000000000000000000000".into(),
            tenant: "bench".into(),
            schema: "text-input-v1".into(),
            data: data.clone(),
            parents: vec![],
        },
    };
    let mut floor_ns = 0.0;
    group.bench_function("runtime-floor", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            rt.block_on(async {
                for _ in 0..iters {
                    let report = runtime
                        .call(&plugin, event.clone(), CallContext::default())
                        .await;
                    assert!(report.result.is_ok());
                }
            });
            let elapsed = start.elapsed();
            floor_ns = elapsed.as_nanos() as f64 / iters.max(1) as f64;
            elapsed
        })
    });

    let dir = tempfile::tempdir().expect("tempdir");
    let engine = rt.block_on(async {
        let mut config = EngineConfig::new(dir.path());
        if let Some(workers) = std::env::var("REYNA_BENCH_WORKERS")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            config.workers = workers;
        }
        let engine = Engine::open(config).await.expect("engine");
        engine.register_bundled_schemas().await.expect("schemas");
        engine
            .upload_plugin(
                wasm.clone(),
                None,
                reyna_engine::InstallPolicy::All,
                "bench",
            )
            .await
            .expect("upload");
        engine.start();
        Arc::new(engine)
    });
    let mut per_event_ns = 0.0;
    let mut events = 0u64;
    let next = Arc::new(AtomicU64::new(1));
    let before = engine.store().writer_stats();
    group.bench_function("per-event", |b| {
        b.iter_custom(|iters| {
            events += iters;
            let start = Instant::now();
            rt.block_on(async {
                let count = writers();
                let mut writers = Vec::with_capacity(count);
                for w in 0..count as u64 {
                    let engine = engine.clone();
                    let next = next.clone();
                    writers.push(tokio::spawn(async move {
                        let mut i = w;
                        while i < iters {
                            let data = text_1k(next.fetch_add(1, Ordering::Relaxed));
                            engine
                                .create_blob("bench", "text-input-v1", data, vec![])
                                .await
                                .expect("ingest");
                            i += count as u64;
                        }
                    }));
                }
                for w in writers {
                    w.await.expect("writer");
                }
                assert!(
                    engine.wait_idle(Duration::from_secs(600)).await,
                    "engine did not drain"
                );
            });
            let elapsed = start.elapsed();
            per_event_ns = elapsed.as_nanos() as f64 / iters.max(1) as f64;
            elapsed
        })
    });
    group.finish();
    let counts = engine.store().counts().expect("counts");
    let after = engine.store().writer_stats();
    let (ops, commits) = (
        after.ops - before.ops,
        (after.commits - before.commits).max(1),
    );
    if events > 0 {
        println!(
            "engine writer: {ops} ops in {commits} commits for {events} events ({:.2} ops and {:.3} commits per event, {:.1} ops per commit); per commit {} us applying, {} us committing",
            ops as f64 / events.max(1) as f64,
            commits as f64 / events.max(1) as f64,
            ops as f64 / commits as f64,
            (after.apply_us - before.apply_us) / commits,
            (after.commit_us - before.commit_us) / commits,
        );
    }
    assert_eq!(counts.dead_letters, 0, "no event may fail in the bench");
    // A filtered run (`--bench per-event`) measures one side only; print
    // what it measured, never a ratio against a floor that was not run.
    let floor = (floor_ns > 0.0).then(|| format!("floor {:.1} µs/call", floor_ns / 1e3));
    let engine_rate = (per_event_ns > 0.0).then(|| {
        format!(
            "engine {:.1} µs/event = {:.0} derived blobs/s",
            per_event_ns / 1e3,
            1e9 / per_event_ns
        )
    });
    let ratio = (floor_ns > 0.0 && per_event_ns > 0.0)
        .then(|| format!("ratio engine/floor {:.2}", per_event_ns / floor_ns));
    let parts: Vec<String> = [floor, engine_rate, ratio].into_iter().flatten().collect();
    println!("engine summary: {}", parts.join(", "));
    rt.block_on(engine.shutdown());
}

criterion_group!(benches, bench);
criterion_main!(benches);
