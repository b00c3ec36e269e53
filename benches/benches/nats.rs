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

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

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

/// CPU seconds (user + system) a process has used, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    (ticks(11) + ticks(12)) / 100.0
}

/// One mode's figures: wall time and CPU time (this process and the NATS
/// server together) per event.
#[derive(Clone, Copy, Default)]
struct Figures {
    wall: f64,
    cpu: f64,
}

/// Runs one criterion benchmark of whole batches; returns wall seconds per
/// event of its last sample and CPU seconds per event over all samples.
fn measure(
    rt: &tokio::runtime::Runtime,
    next: &AtomicUsize,
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    engine: &Engine,
    nats_pid: Option<u32>,
) -> Figures {
    let per_event = EVENTS / 16 * 16;
    let cpu = || cpu_seconds("self") + nats_pid.map_or(0.0, |pid| cpu_seconds(&pid.to_string()));
    let mut last = 0.0;
    let mut events = 0usize;
    let started = cpu();
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                total += rt.block_on(run_batch(engine, next));
            }
            events += iters as usize * per_event;
            last = total.as_secs_f64() / iters.max(1) as f64 / per_event as f64;
            total
        })
    });
    Figures {
        wall: last,
        cpu: (cpu() - started) / events.max(1) as f64,
    }
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

    let mut figures: Vec<(&str, Figures)> = Vec::new();
    let embedded = rt.block_on(open(&dir.path().join("embedded")));
    embedded.start();
    figures.push((
        "embedded",
        measure(&rt, &next, &mut group, "embedded", &embedded, None),
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
        measure(&rt, &next, &mut group, "one-worker", &state, nats.pid()),
    ));
    let two = worker("w2");
    figures.push((
        "two-workers",
        measure(&rt, &next, &mut group, "two-workers", &state, nats.pid()),
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
    for (name, f) in &figures {
        println!(
            "  {name:<12} {:>6.0} events/s {:>7.1} µs/event ({:.2}x embedded)  CPU {:>7.1} µs/event ({:.2}x embedded)",
            1.0 / f.wall,
            f.wall * 1e6,
            f.wall / floor.wall,
            f.cpu * 1e6,
            f.cpu / floor.cpu,
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
