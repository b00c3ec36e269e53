//! Fairness across tenants: tenant A's latency from blob creation to its
//! derived blob, alone and while tenant B floods the engine, in one run.
//!
//! Each phase has an engine of its own, set up alike ([`setup`]): an
//! embedded store in a temp dir, the default workers, two tenants created
//! through the tenancy API, and the `word-stats` example plugin installed
//! for both (`InstallPolicy::All`). A sample: A creates a distinct 1 KiB
//! `text-input-v1` blob and waits for the `blob.created` event of its
//! `word-stats-v1` output (woken by the store's event commits, as
//! `GET /v1/blobs/{id}/derived?wait=` is); the next sample starts when the
//! previous one's output is committed. 20 unmeasured samples warm up each
//! phase.
//!
//! 1. alone: 200 samples of A, nothing else running;
//! 2. flood: B queues 50,000 jobs before dispatch starts, then its 64
//!    writers create one more blob whenever fewer than 50,000 wait (B's
//!    ingest alone cannot keep pace with its processing, so the backlog
//!    shrinks, but never drains: the bench fails if it does), while A takes
//!    200 samples exactly as alone.
//!
//! Printed: p50 and p99 of each phase, the ratios flood / alone (goal: p99
//! within 1.5x), and where A's time went: the ingest acknowledgement, the
//! plugin call (`Producer::cost.wall_us`), and the rest (waiting to be
//! claimed and for a worker slot, and the commit of the output), with how
//! many jobs completed while A's one waited. The lowest backlog B had
//! during the flood is printed too, to show the queue never drained.
//!
//! Figures go to `target/bench-results/fairness.json` for the summary.
//! Run: `cargo bench -p reyna-benches --bench fairness` (about 20 s);
//! `REYNA_BENCH_WORKERS=N` overrides the engine's concurrent jobs,
//! `REYNA_FAIRNESS_SAMPLES` and `REYNA_FAIRNESS_BACKLOG` the sizes.
//! `cargo test -p reyna-benches --bench fairness` runs a small version.
#![allow(clippy::expect_used, clippy::panic)] // bench setup and checks: failing loudly is the point

mod common;

use std::time::{Duration, Instant};

use reyna_engine::reyna_store::Quotas;
use reyna_engine::{Engine, EngineConfig, InstallPolicy, TenantId, TenantView};
use tokio::sync::watch;

#[path = "common/allocator.rs"]
mod allocator;

/// The quiet tenant, whose latency is measured.
const QUIET: &str = "quiet";
/// The noisy tenant, which floods.
const NOISY: &str = "noisy";
/// The plugin both tenants run, and the schema of its output.
const PLUGIN: &str = "word-stats";
const OUTPUT: &str = "blob.created.word-stats-v1";
const INPUT: &str = "text-input-v1";
/// Concurrent writers of B's blobs.
const FLOOD_WRITERS: u64 = 64;
/// Longest wait for one of A's derived blobs.
const SAMPLE_BOUND: Duration = Duration::from_secs(20);
/// Longest a phase samples; fewer samples are taken (and printed) past it.
const PHASE_BOUND: Duration = Duration::from_secs(90);

struct Sizes {
    samples: usize,
    warmup: usize,
    backlog: u64,
}

impl Sizes {
    fn get() -> Sizes {
        let env = |key: &str| std::env::var(key).ok().and_then(|v| v.parse().ok());
        let (samples, warmup, backlog) = if common::full_run() {
            (200, 20, 50_000)
        } else {
            (5, 2, 3_000)
        };
        Sizes {
            samples: env("REYNA_FAIRNESS_SAMPLES").map_or(samples, |v: u64| v as usize),
            warmup,
            backlog: env("REYNA_FAIRNESS_BACKLOG").unwrap_or(backlog),
        }
    }
}

/// The engine, the two tenants and their plugin, not yet dispatching. What
/// each tenant may use (a share of the workers, a running-jobs cap) is set
/// here.
async fn setup(dir: &std::path::Path) -> Engine {
    let mut config = EngineConfig::new(dir);
    if let Some(workers) = std::env::var("REYNA_BENCH_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        config.workers = workers;
    }
    let engine = common::open_engine(config).await;
    for tenant in [QUIET, NOISY] {
        let id = TenantId::parse(tenant).expect("tenant id");
        engine
            .create_tenant(&id, tenant, "bench")
            .await
            .expect("create tenant");
    }
    let wasm = reyna_artifacts::bytes(PLUGIN)
        .expect("word-stats component (cargo build -p reyna-artifacts)");
    engine
        .upload_plugin(wasm, None, InstallPolicy::All, "bench")
        .await
        .expect("upload word-stats");
    for tenant in [QUIET, NOISY] {
        let install = engine.installation(tenant, PLUGIN).expect("installation");
        assert!(install.enabled, "{PLUGIN} is installed for {tenant}");
    }
    engine
}

/// A distinct 1 KiB text, so no job is answered from the idempotency
/// record of an earlier one.
fn text() -> Vec<u8> {
    common::distinct(&common::text_input(1 << 10))
}

/// One of A's blobs, from the `create_blob` call to its derived blob.
struct Sample {
    latency: Duration,
    /// Until `create_blob` returned.
    ack: Duration,
    /// The plugin call, as the derived blob's producer records it.
    call: Duration,
    /// Jobs (of any tenant) completed meanwhile, A's own excluded.
    others_done: u64,
}

/// Creates one blob for A and waits, at most [`SAMPLE_BOUND`], for the
/// event of its derived blob. `cursor` is the last of A's events seen.
async fn sample(engine: &Engine, view: &TenantView, cursor: &mut u64, n: usize) -> Sample {
    let mut events = engine.watch_events();
    let done_before = engine.counts().expect("counts").jobs_done;
    let start = Instant::now();
    let input = engine
        .create_blob(QUIET, INPUT, text(), vec![])
        .await
        .expect("A's blob");
    let ack = start.elapsed();
    let deadline = tokio::time::Instant::now() + SAMPLE_BOUND;
    loop {
        // Seen before reading, so a commit after the read wakes the wait.
        events.borrow_and_update();
        let page = view.events_after(*cursor, 64).expect("A's events");
        for event in &page {
            *cursor = event.seq;
            assert!(
                !event.subject.starts_with("job.failed"),
                "A's job failed: {event:?}"
            );
            let Some(id) = event.blob_id.filter(|_| event.subject == OUTPUT) else {
                continue;
            };
            let derived = view.blob(id).expect("read").expect("derived blob");
            if derived.parents.contains(&input.id) {
                let latency = start.elapsed();
                let producer = derived.producer.expect("a derived blob has a producer");
                let done_after = engine.counts().expect("counts").jobs_done;
                return Sample {
                    latency,
                    ack,
                    call: Duration::from_micros(producer.cost.wall_us),
                    others_done: done_after.saturating_sub(done_before + 1),
                };
            }
        }
        if page.len() == 64 {
            continue;
        }
        tokio::select! {
            changed = events.changed() => changed.expect("the store is open"),
            _ = tokio::time::sleep_until(deadline) => {
                panic!("A's sample {n}: no derived blob within {SAMPLE_BOUND:?}")
            }
        }
    }
}

/// `samples` of A after `warmup` unmeasured ones, one at a time, for at
/// most [`PHASE_BOUND`].
async fn phase(engine: &Engine, sizes: &Sizes) -> (Vec<Sample>, Duration) {
    let view = engine.tenant(&TenantId::parse(QUIET).expect("tenant id"));
    // Events are numbered across tenants: start after the newest.
    let mut cursor = *engine.watch_events().borrow();
    for n in 0..sizes.warmup {
        sample(engine, &view, &mut cursor, n).await;
    }
    let started = Instant::now();
    let mut samples = Vec::with_capacity(sizes.samples);
    while samples.len() < sizes.samples && started.elapsed() < PHASE_BOUND {
        samples.push(sample(engine, &view, &mut cursor, samples.len()).await);
    }
    (samples, started.elapsed())
}

/// Creates `count` of B's blobs from [`FLOOD_WRITERS`] concurrent writers.
async fn flood_blobs(engine: &Engine, count: u64) {
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..FLOOD_WRITERS.min(count) {
        let engine = engine.clone();
        writers.spawn(async move {
            for _ in (w..count).step_by(FLOOD_WRITERS as usize) {
                engine
                    .create_blob(NOISY, INPUT, text(), vec![])
                    .await
                    .expect("B's blob");
            }
        });
    }
    while let Some(done) = writers.join_next().await {
        done.expect("writer");
    }
}

/// What B's flood did while A was measured.
struct Flood {
    /// Blobs created (after the up-front backlog).
    created: u64,
    /// Creations refused by B's rate quota (each waited `Retry-After`).
    refused: u64,
    /// The fewest jobs seen waiting.
    lowest: u64,
}

/// B's flood, once its backlog is queued: [`FLOOD_WRITERS`] writers each
/// create one more blob whenever fewer than `backlog` jobs wait, until
/// `stop`.
async fn flood(engine: Engine, backlog: u64, stop: watch::Receiver<bool>) -> Flood {
    let mut writers = tokio::task::JoinSet::new();
    for _ in 0..FLOOD_WRITERS {
        let (engine, mut stop) = (engine.clone(), stop.clone());
        writers.spawn(async move {
            let mut finished = engine.watch_finished();
            let mut flood = Flood {
                created: 0,
                refused: 0,
                lowest: u64::MAX,
            };
            loop {
                finished.borrow_and_update();
                if *stop.borrow() {
                    return flood;
                }
                let pending = engine.counts().expect("counts").jobs_pending;
                flood.lowest = flood.lowest.min(pending);
                if pending < backlog {
                    match engine.create_blob(NOISY, INPUT, text(), vec![]).await {
                        Ok(_) => flood.created += 1,
                        // Past B's rate: a client waits as `Retry-After` says.
                        Err(reyna_engine::EngineError::QuotaExceeded { retry_after, .. }) => {
                            flood.refused += 1;
                            tokio::select! {
                                _ = tokio::time::sleep(retry_after) => {}
                                _ = stop.changed() => {}
                            }
                        }
                        Err(e) => panic!("B's blob: {e}"),
                    }
                    continue;
                }
                // Woken as jobs complete; looks again at most once a poll.
                tokio::select! {
                    _ = finished.changed() => {}
                    _ = stop.changed() => {}
                }
            }
        });
    }
    let mut all = Flood {
        created: 0,
        refused: 0,
        lowest: u64::MAX,
    };
    while let Some(done) = writers.join_next().await {
        let one = done.expect("writer");
        all.created += one.created;
        all.refused += one.refused;
        all.lowest = all.lowest.min(one.lowest);
    }
    all
}

/// Latency percentiles of a phase, in milliseconds.
struct Summary {
    p50: f64,
    p99: f64,
    ack_p50: f64,
    call_p50: f64,
    call_p99: f64,
    rest_p50: f64,
    rest_p99: f64,
    others_p50: u64,
    others_p99: u64,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl Summary {
    fn of(samples: &[Sample]) -> Summary {
        fn sorted<T: Ord>(samples: &[Sample], f: impl Fn(&Sample) -> T) -> Vec<T> {
            let mut v: Vec<T> = samples.iter().map(f).collect();
            v.sort();
            v
        }
        let latency = sorted(samples, |s| s.latency);
        let ack = sorted(samples, |s| s.ack);
        let call = sorted(samples, |s| s.call);
        let rest = sorted(samples, |s| s.latency.saturating_sub(s.ack + s.call));
        let others = sorted(samples, |s| s.others_done);
        Summary {
            p50: ms(common::percentile(&latency, 0.50)),
            p99: ms(common::percentile(&latency, 0.99)),
            ack_p50: ms(common::percentile(&ack, 0.50)),
            call_p50: ms(common::percentile(&call, 0.50)),
            call_p99: ms(common::percentile(&call, 0.99)),
            rest_p50: ms(common::percentile(&rest, 0.50)),
            rest_p99: ms(common::percentile(&rest, 0.99)),
            others_p50: common::percentile(&others, 0.50),
            others_p99: common::percentile(&others, 0.99),
        }
    }

    fn print(&self, name: &str, samples: usize, elapsed: Duration) {
        println!(
            "fairness/{name}: {samples} samples in {:.1} s; A's latency p50 {:.2} ms, p99 {:.2} ms; \
             ack p50 {:.2} ms; plugin call p50 {:.2} ms, p99 {:.2} ms; claim, slot and commit p50 {:.2} ms, p99 {:.2} ms; \
             jobs completed while A's waited p50 {}, p99 {}",
            elapsed.as_secs_f64(),
            self.p50,
            self.p99,
            self.ack_p50,
            self.call_p50,
            self.call_p99,
            self.rest_p50,
            self.rest_p99,
            self.others_p50,
            self.others_p99,
        );
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "p50_ms": self.p50,
            "p99_ms": self.p99,
            "ack_p50_ms": self.ack_p50,
            "call_p50_ms": self.call_p50,
            "call_p99_ms": self.call_p99,
            "wait_p50_ms": self.rest_p50,
            "wait_p99_ms": self.rest_p99,
            "others_done_p50": self.others_p50,
            "others_done_p99": self.others_p99,
        })
    }
}

/// A flood phase in a fresh store: B's backlog is queued before dispatch
/// starts (then B gets `quotas`, if any), then kept from draining while A
/// takes its samples.
async fn flood_phase(
    sizes: &Sizes,
    name: &str,
    quotas: Option<Quotas>,
) -> (Vec<Sample>, Summary, Flood) {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = setup(dir.path()).await;
    let started = Instant::now();
    flood_blobs(&engine, sizes.backlog).await;
    let queued = engine.counts().expect("counts").jobs_pending;
    assert_eq!(queued, sizes.backlog, "B's backlog waits for dispatch");
    println!(
        "fairness/{name}: B's backlog of {queued} jobs queued in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if let Some(quotas) = quotas {
        engine
            .update_tenant(NOISY, None, Some(quotas), "bench")
            .await
            .expect("B's quotas");
    }
    engine.start();
    let (stop_tx, stop) = watch::channel(false);
    let noisy = tokio::spawn(flood(engine.clone(), sizes.backlog, stop));
    let (flooded, flood_time) = phase(&engine, sizes).await;
    stop_tx.send_replace(true);
    let noisy = noisy.await.expect("flood task");
    let flood_sum = Summary::of(&flooded);
    flood_sum.print(name, flooded.len(), flood_time);
    let counts = engine.counts().expect("counts");
    assert_eq!(counts.dead_letters, 0, "no job may fail in the bench");
    println!(
        "fairness/{name}: B created {} more blobs ({} refused by its rate); its backlog never fell below {} jobs; {} jobs done ({:.0}/s); {workers} workers",
        noisy.created,
        noisy.refused,
        noisy.lowest,
        counts.jobs_done,
        counts.jobs_done as f64 / flood_time.as_secs_f64(),
        workers = engine.config().workers,
    );
    assert!(
        noisy.lowest > 0,
        "B's backlog drained during the measurement"
    );
    engine.shutdown().await;
    (flooded, flood_sum, noisy)
}

fn main() {
    let sizes = Sizes::get();
    let rt = common::tokio_runtime();
    rt.block_on(async {
        // Alone: nothing but A's blobs.
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = setup(dir.path()).await;
        let workers = engine.config().workers;
        engine.start();
        let (alone, alone_time) = phase(&engine, &sizes).await;
        engine.shutdown().await;
        let alone_sum = Summary::of(&alone);
        alone_sum.print("alone", alone.len(), alone_time);

        // Flood: B floods with no quota of its own; then again with B
        // held to a share of the workers and a creation rate.
        let (flooded, flood_sum, noisy) = flood_phase(&sizes, "flood", None).await;
        let capped_quotas = Quotas {
            running_jobs: Some((workers / 4).max(1) as u32),
            blobs_per_second: Some(500),
            ..Quotas::default()
        };
        let (capped, capped_sum, capped_noisy) =
            flood_phase(&sizes, "flood-capped", Some(capped_quotas.clone())).await;

        let ratio_p50 = flood_sum.p50 / alone_sum.p50;
        let ratio_p99 = flood_sum.p99 / alone_sum.p99;
        let verdict = |r: f64| if r <= 1.5 { "met" } else { "missed" };
        println!(
            "fairness summary: A alone p50 {:.2} ms, p99 {:.2} ms; with B's flood p50 {:.2} ms, p99 {:.2} ms; \
             ratio flood/alone p50 {ratio_p50:.2}x, p99 {ratio_p99:.2}x (goal p99 <= 1.5x: {})",
            alone_sum.p50, alone_sum.p99, flood_sum.p50, flood_sum.p99, verdict(ratio_p99),
        );
        let capped_p50 = capped_sum.p50 / alone_sum.p50;
        let capped_p99 = capped_sum.p99 / alone_sum.p99;
        println!(
            "fairness summary: with B held to {:?} running jobs and {:?} blobs/s: A p50 {:.2} ms, p99 {:.2} ms; \
             ratio p50 {capped_p50:.2}x, p99 {capped_p99:.2}x (goal p99 <= 1.5x: {})",
            capped_quotas.running_jobs, capped_quotas.blobs_per_second,
            capped_sum.p50, capped_sum.p99, verdict(capped_p99),
        );

        common::write_result(
            if common::full_run() {
                "fairness"
            } else {
                "fairness-smoke"
            },
            &serde_json::json!({
                "workers": workers,
                "backlog": sizes.backlog,
                "lowest_backlog": noisy.lowest,
                "flood_blobs": noisy.created,
                "alone_samples": alone.len(),
                "flood_samples": flooded.len(),
                "alone": alone_sum.json(),
                "flood": flood_sum.json(),
                "ratio_p50": ratio_p50,
                "ratio_p99": ratio_p99,
                "capped_samples": capped.len(),
                "capped_refused": capped_noisy.refused,
                "capped": capped_sum.json(),
                "capped_ratio_p50": capped_p50,
                "capped_ratio_p99": capped_p99,
            }),
        );
    });
}
