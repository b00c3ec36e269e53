//! Scale-out throughput on the same input: the embedded engine (the floor)
//! against a state node with one and with two NATS JetStream workers.
//!
//! The work is CPU-heavy for a processor: `word-count` over a 64 KiB text per
//! event (every text distinct, so no result is reused). Each sample ingests
//! `EVENTS` text-input-v1 blobs durably and waits until every derived blob is
//! committed. A real `nats-server -js` runs on a loopback port; the workers
//! run in this process (their own runtime and NATS connection each), so on
//! this 2-core machine the figure is the transport's cost per event, not
//! scaling. Run: `cargo bench -p reyna-benches --bench nats` (needs
//! `nats-server` on the PATH).

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use reyna_engine::{Engine, EngineConfig};
use reyna_nats::{StateNode, StateNodeConfig, Worker, WorkerConfig};

const EVENTS: usize = 300;
const SETTLE: Duration = Duration::from_secs(300);

/// A distinct 64 KiB text per call.
fn text_64k(n: usize) -> Vec<u8> {
    let words = "lorem ipsum dolor sit amet consectetur adipiscing elit ".repeat(1200);
    let text = format!("{n} {}", &words[..65_000]);
    serde_json::json!({ "text": text }).to_string().into_bytes()
}

async fn open(dir: &std::path::Path) -> Engine {
    let engine = Engine::open(EngineConfig::new(dir)).await.expect("engine");
    engine.register_bundled_schemas().await.expect("schemas");
    let wasm = reyna_artifacts::bytes("word-count")
        .expect("word-count component (cargo build -p reyna-artifacts)");
    engine.upload_plugin(wasm, "bench").await.expect("upload");
    engine
}

/// Ingests `EVENTS` new texts (16 writers) and waits until all are derived.
async fn run_batch(engine: &Engine, next: &AtomicUsize) -> Duration {
    let start = Instant::now();
    let mut writers = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let engine = engine.clone();
        let first = next.fetch_add(EVENTS / 16, Ordering::Relaxed);
        writers.spawn(async move {
            for n in first..first + EVENTS / 16 {
                engine
                    .create_blob("bench", "text-input-v1", text_64k(n), vec![])
                    .await
                    .expect("create");
            }
        });
    }
    while let Some(done) = writers.join_next().await {
        done.expect("writer");
    }
    if !engine.wait_idle(SETTLE).await {
        let counts = engine.store().counts().expect("counts");
        let failed = engine
            .store()
            .list_dead_letters(None, None, 1)
            .map(|page| format!("{:?}", page.items.first()))
            .unwrap_or_default();
        panic!("the batch did not settle: {counts:?}; a dead letter: {failed}");
    }
    start.elapsed()
}

/// Runs one criterion benchmark of whole batches; returns seconds per event
/// of its last sample.
fn measure(
    rt: &tokio::runtime::Runtime,
    next: &AtomicUsize,
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    engine: &Engine,
) -> f64 {
    let per_event = EVENTS / 16 * 16;
    let mut last = 0.0;
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                total += rt.block_on(run_batch(engine, next));
            }
            last = total.as_secs_f64() / iters.max(1) as f64 / per_event as f64;
            total
        })
    });
    last
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    // `Engine::start` and the NATS tasks spawn onto this runtime.
    let _enter = rt.enter();
    let dir = tempfile::tempdir().expect("tempdir");
    let next = AtomicUsize::new(0);
    let per_event = EVENTS / 16 * 16;

    let mut group = c.benchmark_group("nats");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .throughput(Throughput::Elements(per_event as u64));

    let mut figures: Vec<(&str, f64)> = Vec::new();
    let embedded = rt.block_on(open(&dir.path().join("embedded")));
    embedded.start();
    figures.push((
        "embedded",
        measure(&rt, &next, &mut group, "embedded", &embedded),
    ));
    rt.block_on(embedded.shutdown());

    std::fs::create_dir_all(dir.path().join("nats")).unwrap();
    let nats = reyna_artifacts::NatsServer::start(&dir.path().join("nats"))
        .expect("nats-server (apt-get install nats-server)");
    let state = rt.block_on(open(&dir.path().join("state")));
    let node = rt
        .block_on(StateNode::attach(&state, StateNodeConfig::new(nats.url())))
        .expect("attach");
    state.start();
    let worker = |name: &str| {
        let mut config = WorkerConfig::new(nats.url(), dir.path().join(name));
        config.name = name.to_owned();
        rt.block_on(Worker::start(config)).expect("worker")
    };
    let one = worker("w1");
    figures.push((
        "one-worker",
        measure(&rt, &next, &mut group, "one-worker", &state),
    ));
    let two = worker("w2");
    figures.push((
        "two-workers",
        measure(&rt, &next, &mut group, "two-workers", &state),
    ));
    group.finish();

    rt.block_on(async {
        one.shutdown().await;
        two.shutdown().await;
        state.shutdown().await;
        node.shutdown().await;
    });

    let floor = figures[0].1;
    println!("\nscale-out summary (word-count over 64 KiB, {per_event} events per sample):");
    for (name, secs) in &figures {
        println!(
            "  {name:<12} {:>8.0} events/s  {:>7.1} µs/event  {:>5.2}x embedded",
            1.0 / secs,
            secs * 1e6,
            secs / floor
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
