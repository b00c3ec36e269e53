//! Durable blob inserts per second: one commit per insert (the fsync floor)
//! vs group commit with 64 concurrent writers, in the same run, at 1 KiB and
//! 64 KiB. Both go through the same `Store::create_blob` path; the only
//! difference is whether writers queue up behind one commit.
//!
//! `cargo bench -p reyna-benches --bench store`
// Bench code is test code: a failed insert should stop the run loudly.
#![allow(clippy::expect_used)]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use reyna_store::{NewBlob, Store, WriterStats};

#[path = "common/allocator.rs"]
mod allocator;

const WRITERS: u64 = 64;

fn new_blob(data: &[u8]) -> NewBlob {
    NewBlob {
        tenant: "bench".to_owned(),
        schema: "bench-v1".to_owned(),
        data: data.to_vec(),
        parents: Vec::new(),
        hop: 0,
    }
}

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path().join("bench.redb")).expect("open store");
    (dir, store)
}

/// Bytes this process has caused to be written to storage (Linux
/// `/proc/self/io`), to compare what each mode writes per insert.
fn disk_bytes_written() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Total inserts and time per benchmark, to print the ratio at the end.
type Tally = RefCell<BTreeMap<String, (u64, Duration)>>;

fn record(tally: &Tally, name: &str, iters: u64, took: Duration) {
    let mut t = tally.borrow_mut();
    let entry = t.entry(name.to_owned()).or_default();
    entry.0 += iters;
    entry.1 += took;
}

fn durable_inserts(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let tally = Tally::default();
    let mut writer: Vec<(String, WriterStats, Option<u64>)> = Vec::new();
    let mut group = c.benchmark_group("durable_insert");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(1));

    for (label, size) in [("1KiB", 1024usize), ("64KiB", 64 * 1024)] {
        let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();

        let (_dir, store) = open();
        let name = format!("commit_per_insert/{label}");
        let written = disk_bytes_written();
        group.bench_function(BenchmarkId::new("commit_per_insert", label), |b| {
            b.iter_custom(|iters| {
                let took = rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        store
                            .create_blob(new_blob(&data), Vec::new())
                            .await
                            .expect("insert");
                    }
                    start.elapsed()
                });
                record(&tally, &name, iters, took);
                took
            });
        });
        let written = disk_bytes_written().zip(written).map(|(b, a)| b - a);
        writer.push((name, store.writer_stats(), written));
        drop(store);

        let (_dir, store) = open();
        let name = format!("group_commit_{WRITERS}_writers/{label}");
        let written = disk_bytes_written();
        group.bench_function(
            BenchmarkId::new(format!("group_commit_{WRITERS}_writers"), label),
            |b| {
                b.iter_custom(|iters| {
                    let took = rt.block_on(async {
                        let start = Instant::now();
                        let mut tasks = Vec::with_capacity(WRITERS as usize);
                        for w in 0..WRITERS {
                            // Spread `iters` inserts over the writers.
                            let n = iters / WRITERS + u64::from(w < iters % WRITERS);
                            let store = store.clone();
                            let data = data.clone();
                            tasks.push(tokio::spawn(async move {
                                for _ in 0..n {
                                    store
                                        .create_blob(new_blob(&data), Vec::new())
                                        .await
                                        .expect("insert");
                                }
                            }));
                        }
                        for task in tasks {
                            task.await.expect("writer task");
                        }
                        start.elapsed()
                    });
                    record(&tally, &name, iters, took);
                    took
                });
            },
        );
        let written = disk_bytes_written().zip(written).map(|(b, a)| b - a);
        writer.push((name, store.writer_stats(), written));
    }
    group.finish();

    for (name, w, written) in &writer {
        let commits = w.commits.max(1);
        let per_insert = written
            .map(|b| format!("{:.1} KB", b as f64 / w.ops.max(1) as f64 / 1e3))
            .unwrap_or_else(|| "?".to_owned());
        println!(
            "{name}: {} inserts in {} commits ({:.1} per commit); per commit {} us applying, {} us committing; {per_insert} written to disk per insert",
            w.ops,
            w.commits,
            w.ops as f64 / commits as f64,
            w.apply_us / commits,
            w.commit_us / commits,
        );
    }

    let rates: BTreeMap<String, f64> = tally
        .borrow()
        .iter()
        .map(|(name, (n, took))| (name.clone(), *n as f64 / took.as_secs_f64()))
        .collect();
    for label in ["1KiB", "64KiB"] {
        let single = rates.get(&format!("commit_per_insert/{label}"));
        let group = rates.get(&format!("group_commit_{WRITERS}_writers/{label}"));
        if let (Some(single), Some(group)) = (single, group) {
            println!(
                "{label}: commit per insert {single:.0}/s, group commit ({WRITERS} writers) {group:.0}/s, ratio {:.1}x",
                group / single
            );
        }
    }
}

criterion_group!(benches, durable_inserts);
criterion_main!(benches);
