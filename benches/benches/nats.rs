//! Scale-out throughput on the same input: the embedded engine (the floor)
//! against a state node with one and with two NATS JetStream workers, for
//! three workloads that differ in work per byte:
//!
//! - `fingerprint-64KiB`: the issue's CPU-heavy processor. `text-fingerprint`
//!   (a MinHash over 3-word shingles, 256 hash functions) on a distinct
//!   64 KiB text per event, a few milliseconds of compute per event.
//! - `fingerprint-16KiB`: the same processor on 16 KiB, about a millisecond
//!   of compute per event: the transport's fixed cost per event shows more.
//! - `word-count-64KiB`: `word-count` over 64 KiB, little work per byte, so
//!   moving the payload (into redb, through JetStream, back) dominates. This
//!   is the transport's worst case.
//!
//! Each sample ingests `EVENTS` text blobs durably and waits until
//! every derived blob is committed (every text distinct, so no result is
//! reused). The texts are of [`BENCH_TEXT`], text-input-v1's shape without
//! its 50,000-character cap, which 64 KiB would pass. A real `nats-server -js` runs on a loopback port; the workers
//! run in this process (each with its own tokio runtime and NATS
//! connection, like a `reyna worker` process), so on
//! this 2-core machine the figure is the transport's cost per event, not
//! scaling. Run: `cargo bench -p reyna-benches --bench nats` (needs
//! `nats-server` on the PATH).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use reyna_engine::{Engine, EngineConfig};
use reyna_nats::{StateNode, StateNodeConfig, Worker, WorkerConfig};

#[path = "common/allocator.rs"]
mod allocator;

const EVENTS: usize = 960;
const SETTLE: Duration = Duration::from_secs(300);
/// The next text's number: every event of the run gets a distinct input,
/// also across modes that share an engine.
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// What a scale-out run measures: a processor and the input it gets.
struct Workload {
    name: &'static str,
    /// The test program that processes each text.
    plugin: &'static str,
    /// Its output schema, when it is not bundled.
    schema: Option<(&'static str, &'static str)>,
    /// Bytes of text per event.
    text_bytes: usize,
}

/// The input schema: text-input-v1's `content` without its cap; each
/// plugin is subscribed to it instead of text-input-v1.
const BENCH_TEXT: (&str, &str) = (
    "bench-text-v1",
    r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "properties": { "content": { "type": "string", "minLength": 1 } },
  "required": ["content"]
}"#,
);

const FINGERPRINT_SCHEMA: (&str, &str) = (
    "text-fingerprint-v1",
    include_str!("../../tests/programs/text-fingerprint/text-fingerprint-v1.json"),
);

const WORKLOADS: [Workload; 3] = [
    Workload {
        name: "fingerprint-64KiB",
        plugin: "text-fingerprint",
        schema: Some(FINGERPRINT_SCHEMA),
        text_bytes: 64 * 1024,
    },
    Workload {
        name: "fingerprint-16KiB",
        plugin: "text-fingerprint",
        schema: Some(FINGERPRINT_SCHEMA),
        text_bytes: 16 * 1024,
    },
    Workload {
        name: "word-count-64KiB",
        plugin: "word-count",
        schema: None,
        text_bytes: 64 * 1024,
    },
];

impl Workload {
    /// A distinct text document of about `text_bytes`.
    fn input(&self, n: usize) -> Vec<u8> {
        let words = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor ";
        let words = words.repeat(self.text_bytes / words.len() + 1);
        let text = format!("{n} {}", &words[..self.text_bytes - 24]);
        serde_json::json!({ "content": text })
            .to_string()
            .into_bytes()
    }

    async fn open(&self, dir: &std::path::Path) -> Engine {
        let engine = Engine::open(EngineConfig::new(dir)).await.expect("engine");
        engine.register_bundled_schemas().await.expect("schemas");
        for (id, json) in self.schema.into_iter().chain([BENCH_TEXT]) {
            engine
                .register_schema(id, json, "bench")
                .await
                .expect("schema");
        }
        let wasm = reyna_artifacts::bytes(self.plugin)
            .expect("test program component (cargo build -p reyna-artifacts)");
        let wasm = reyna_artifacts::with_manifest(&wasm, |toml| {
            toml.replace("text-input-v1", BENCH_TEXT.0)
        })
        .expect("an embedded manifest");
        engine
            .upload_plugin(wasm, None, reyna_engine::InstallPolicy::All, "bench")
            .await
            .expect("upload");
        engine
    }
}

/// Ingests `EVENTS` new texts (16 writers) and waits until all are derived.
async fn run_batch(engine: &Engine, workload: &'static Workload, next: &AtomicUsize) -> Duration {
    let start = Instant::now();
    let mut writers = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let engine = engine.clone();
        let first = next.fetch_add(EVENTS / 16, Ordering::Relaxed);
        writers.spawn(async move {
            for n in first..first + EVENTS / 16 {
                engine
                    .create_blob("bench", BENCH_TEXT.0, workload.input(n), vec![])
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

/// Runs one criterion benchmark of whole batches; returns the median wall
/// seconds per event over its samples and CPU seconds per event over all of
/// them (warm-up included).
fn measure(
    rt: &tokio::runtime::Runtime,
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    (workload, mode): (&'static Workload, &str),
    engine: &Engine,
    nats_pid: Option<u32>,
) -> Figures {
    let per_event = EVENTS / 16 * 16;
    let cpu = || cpu_seconds("self") + nats_pid.map_or(0.0, |pid| cpu_seconds(&pid.to_string()));
    let mut samples = Vec::new();
    let mut events = 0usize;
    let started = cpu();
    group.bench_function(format!("{}/{mode}", workload.name), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                total += rt.block_on(run_batch(engine, workload, &NEXT));
            }
            events += iters as usize * per_event;
            samples.push(total.as_secs_f64() / iters.max(1) as f64 / per_event as f64);
            total
        })
    });
    samples.sort_by(f64::total_cmp);
    Figures {
        wall: samples.get(samples.len() / 2).copied().unwrap_or(0.0),
        cpu: (cpu() - started) / events.max(1) as f64,
    }
}

/// Embedded, then a state node with one and with two workers, for one
/// workload; prints its summary.
fn run_workload(
    rt: &tokio::runtime::Runtime,
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    workload: &'static Workload,
    dir: &std::path::Path,
) {
    let mut figures: Vec<(&str, Figures)> = Vec::new();
    let embedded = rt.block_on(workload.open(&dir.join("embedded")));
    embedded.start();
    figures.push((
        "embedded",
        measure(rt, group, (workload, "embedded"), &embedded, None),
    ));
    rt.block_on(embedded.shutdown());

    std::fs::create_dir_all(dir.join("nats")).unwrap();
    let nats = reyna_artifacts::NatsServer::start(&dir.join("nats"))
        .expect("nats-server (apt-get install nats-server)");
    let state = rt.block_on(workload.open(&dir.join("state")));
    let node = rt
        .block_on(StateNode::attach(&state, StateNodeConfig::new(nats.url())))
        .expect("attach");
    state.start();
    // Each worker on its own runtime (threads sized to the machine), as a
    // `reyna worker` process would be: its calls do not hold the state
    // node's threads, and the OS schedules both.
    let worker = |name: &str| {
        let mut config = WorkerConfig::new(nats.url(), dir.join(name));
        config.name = name.to_owned();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name(format!("{name}-rt"))
            .build()
            .expect("worker runtime");
        let worker = runtime.block_on(Worker::start(config)).expect("worker");
        (runtime, worker)
    };
    let one = worker("w1");
    figures.push((
        "one-worker",
        measure(rt, group, (workload, "one-worker"), &state, nats.pid()),
    ));
    let two = worker("w2");
    figures.push((
        "two-workers",
        measure(rt, group, (workload, "two-workers"), &state, nats.pid()),
    ));
    for (runtime, worker) in [one, two] {
        runtime.block_on(worker.shutdown());
    }
    rt.block_on(async {
        state.shutdown().await;
        node.shutdown().await;
    });

    drop(nats);
    // Gigabytes of 64 KiB blobs per workload: free the disk for the next.
    let _ = std::fs::remove_dir_all(dir);

    // A filtered run (`--bench nats/<workload>/<mode>`) measures only some
    // modes: print those, with ratios only when embedded was measured too.
    if figures.iter().all(|(_, f)| f.wall <= 0.0) {
        return;
    }
    let floor = figures[0].1;
    let ratio = |x: f64, floor: f64| {
        if floor > 0.0 {
            format!("{:.2}x embedded", x / floor)
        } else {
            "embedded not run".to_owned()
        }
    };
    println!(
        "\nscale-out summary, {} ({} over {} KiB texts, {} events per sample):",
        workload.name,
        workload.plugin,
        workload.text_bytes / 1024,
        EVENTS / 16 * 16
    );
    for (name, f) in figures.iter().filter(|(_, f)| f.wall > 0.0) {
        println!(
            "  {name:<12} {:>6.0} events/s {:>7.1} µs/event ({})  CPU {:>7.1} µs/event ({})",
            1.0 / f.wall,
            f.wall * 1e6,
            ratio(f.wall, floor.wall),
            f.cpu * 1e6,
            ratio(f.cpu, floor.cpu),
        );
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

    let mut group = c.benchmark_group("nats");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(15))
        .throughput(Throughput::Elements((EVENTS / 16 * 16) as u64));
    for workload in &WORKLOADS {
        run_workload(&rt, &mut group, workload, &dir.path().join(workload.name));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
