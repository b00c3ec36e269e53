//! Memory of a host: peak RSS with 100 plugins registered after 100,000
//! events, and whether a 50 MiB blob leaves later calls slower.
//!
//! The host is the engine in this process, which is what `reyna serve` runs
//! under its HTTP router; nothing else of note lives in the process. Steps:
//!
//! 1. 100 distinct plugins: `word-count` with its embedded manifest renamed
//!    (`word-count-000` ... `word-count-099`), each subscribed to its own
//!    input schema, so the 100,000 events (1 KiB texts, 64 writers) spread
//!    1,000 to a plugin. Peak RSS (`VmHWM`) is read after they are all done.
//! 2. Before: the median of 2,000 `Runtime::call`s of one variant on a
//!    1 KiB text, and the per-event time of five 2,000-event engine batches.
//! 3. One 50 MiB text blob through the same variant (the engine's blob cap
//!    raised to 64 MiB and the plugins' default memory to 256 MiB for it).
//! 4. After: step 2 again. Goal: after / before within 1.10.
//!
//! Figures go to `target/bench-results/memory.json` for the summary.
//! Run: `cargo bench -p reyna-benches --bench memory` (about a minute and a
//! half); `cargo test -p reyna-benches --bench memory` runs a small version.
#![allow(clippy::expect_used, clippy::unwrap_used)] // bench setup: failing loudly is the point

mod common;

use std::time::{Duration, Instant};

use reyna_engine::{Engine, EngineConfig};
use reyna_runtime::{Blob, CallContext, Event, Plugin, Runtime};

#[path = "common/allocator.rs"]
mod allocator;

const MIB: u64 = 1 << 20;

struct Sizes {
    plugins: usize,
    events: usize,
    big_blob: usize,
    calls: usize,
    batch: usize,
    rounds: usize,
}

/// Median time of one `Runtime::call` on `data`, over `calls` calls.
async fn call_median(
    runtime: &Runtime,
    plugin: &Plugin,
    schema: &str,
    data: &[u8],
    calls: usize,
) -> Duration {
    let event = Event {
        subject: format!("blob.created.{schema}"),
        blob: Blob {
            id: "01J0000000000000000000000".into(),
            tenant: "bench".into(),
            schema: schema.to_owned(),
            data: data.to_vec(),
            parents: vec![],
        },
    };
    let mut times = Vec::with_capacity(calls);
    for _ in 0..calls {
        let event = event.clone();
        let start = Instant::now();
        let report = runtime.call(plugin, event, CallContext::default()).await;
        times.push(start.elapsed());
        assert!(
            report.result.is_ok(),
            "call failed: {:?}",
            report.result.err()
        );
    }
    common::median(&mut times)
}

/// Median per-event time of `rounds` engine batches of `batch` events.
async fn engine_median(engine: &Engine, schema: &str, data: &[u8], sizes: &Sizes) -> Duration {
    let schemas = [schema.to_owned()];
    let mut times = Vec::with_capacity(sizes.rounds);
    for _ in 0..sizes.rounds {
        let elapsed = common::push_events(engine, &schemas, data, sizes.batch).await;
        times.push(elapsed / u32::try_from(sizes.batch).expect("batch"));
    }
    common::median(&mut times)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB as f64
}

fn main() {
    let sizes = if common::full_run() {
        Sizes {
            plugins: 100,
            events: 100_000,
            big_blob: 50 << 20,
            calls: 2000,
            batch: 2000,
            rounds: 5,
        }
    } else {
        Sizes {
            plugins: 3,
            events: 300,
            big_blob: 1 << 20,
            calls: 50,
            batch: 64,
            rounds: 1,
        }
    };
    let rt = common::tokio_runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = EngineConfig::new(dir.path());
    config.max_blob_bytes = 64 << 20;
    config.runtime.default_memory = 256 * MIB;
    // `REYNA_BENCH_STORE_CACHE=<MiB>`: the store's page cache (default 1 GiB).
    if let Some(mib) = std::env::var("REYNA_BENCH_STORE_CACHE")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        config.store_cache_bytes = mib << 20;
    }
    let rss_start = common::rss();

    rt.block_on(async {
        let engine = common::open_engine(config).await;
        let started = Instant::now();
        let schemas = common::register_variants(&engine, sizes.plugins).await;
        let register_s = started.elapsed().as_secs_f64();
        engine.start();
        let rss_registered = common::rss();
        println!(
            "memory: {} plugins registered in {register_s:.1} s; RSS {:.0} MiB (process start {:.0} MiB)",
            sizes.plugins,
            mib(rss_registered),
            mib(rss_start)
        );

        let small = common::text_input(1 << 10);
        let elapsed = common::push_events(&engine, &schemas, &small, sizes.events).await;
        let counts = engine.store().counts().expect("counts");
        assert_eq!(counts.dead_letters, 0, "no event may fail");
        assert_eq!(counts.jobs_done as usize, sizes.events, "one job per event");
        let peak_events = common::peak_rss();
        let rss_events = common::rss();
        println!(
            "memory: {} events in {:.1} s ({:.0} derived blobs/s); peak RSS {:.0} MiB, RSS now {:.0} MiB",
            sizes.events,
            elapsed.as_secs_f64(),
            sizes.events as f64 / elapsed.as_secs_f64(),
            mib(peak_events),
            mib(rss_events)
        );

        // One variant, called directly and through the engine, before and
        // after the big blob; the runtime's pool is the engine's.
        let word_count = reyna_artifacts::bytes("word-count").expect("word-count");
        let variant = common::word_count_variant(&word_count, "word-count-000", &schemas[0]);
        let runtime = engine.runtime().clone();
        let plugin = runtime.load(&variant).expect("load variant");
        let call_before = call_median(&runtime, &plugin, &schemas[0], &small, sizes.calls).await;
        let engine_before = engine_median(&engine, &schemas[0], &small, &sizes).await;

        let big = common::text_input(sizes.big_blob);
        let started = Instant::now();
        let blob = engine
            .create_blob("bench", &schemas[0], big.clone(), vec![])
            .await
            .expect("big blob accepted");
        assert!(engine.wait_idle(Duration::from_secs(600)).await, "big blob not processed");
        let big_s = started.elapsed().as_secs_f64();
        let children = engine.store().children("bench", blob.id).expect("children");
        assert_eq!(children.len(), 1, "the big blob has its word count");
        let peak_big = common::peak_rss();
        println!(
            "memory: {:.0} MiB blob ingested and counted in {big_s:.2} s; peak RSS {:.0} MiB",
            mib(big.len() as u64),
            mib(peak_big)
        );
        let big_bytes = big.len();
        drop(big);

        let call_after = call_median(&runtime, &plugin, &schemas[0], &small, sizes.calls).await;
        let engine_after = engine_median(&engine, &schemas[0], &small, &sizes).await;
        let call_ratio = call_after.as_secs_f64() / call_before.as_secs_f64();
        let engine_ratio = engine_after.as_secs_f64() / engine_before.as_secs_f64();
        println!(
            "memory: runtime call {:.1} µs before, {:.1} µs after (x{call_ratio:.2}); engine per event {:.1} µs before, {:.1} µs after (x{engine_ratio:.2})",
            call_before.as_secs_f64() * 1e6,
            call_after.as_secs_f64() * 1e6,
            engine_before.as_secs_f64() * 1e6,
            engine_after.as_secs_f64() * 1e6,
        );
        let rss_end = common::rss();
        let database = std::fs::metadata(dir.path().join("reyna.redb")).map_or(0, |m| m.len());
        println!(
            "memory: RSS at the end {:.0} MiB; database file {:.0} MiB",
            mib(rss_end),
            mib(database)
        );
        engine.shutdown().await;

        common::write_result(
            if common::full_run() { "memory" } else { "memory-smoke" },
            &serde_json::json!({
                "plugins": sizes.plugins,
                "events": sizes.events,
                "events_seconds": elapsed.as_secs_f64(),
                "register_seconds": register_s,
                "rss_start_bytes": rss_start,
                "rss_registered_bytes": rss_registered,
                "peak_rss_after_events_bytes": peak_events,
                "rss_after_events_bytes": rss_events,
                "big_blob_bytes": big_bytes,
                "big_blob_seconds": big_s,
                "peak_rss_after_big_blob_bytes": peak_big,
                "rss_end_bytes": rss_end,
                "database_bytes": database,
                "call_before_ns": call_before.as_nanos() as u64,
                "call_after_ns": call_after.as_nanos() as u64,
                "engine_before_ns": engine_before.as_nanos() as u64,
                "engine_after_ns": engine_after.as_nanos() as u64,
            }),
        );
    });
}
