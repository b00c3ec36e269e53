//! The word-count measurements the suite's summary needs that `runtime.rs`
//! and `engine.rs` do not make, on the same texts as `runtime.rs`:
//!
//! - `word-count/native/*`: the work as a plain Rust function (the absolute
//!   floor): parse the text-input-v1 JSON, `split_whitespace().count()`,
//!   serialise `{"words": n}`, as `tests/programs/word-count` does.
//! - `word-count/engine/64KiB`: the whole engine per event at 64 KiB
//!   (`engine/per-event` in `engine.rs` is the 1 KiB figure): durable ingest,
//!   route, fresh sandbox, output validation, durable commit; 64 writers,
//!   time until every derived blob is committed, divided by the events.
//!
//! Run: `cargo bench -p reyna-benches --bench word_count`, or the whole suite
//! with `benches/suite.sh`.
#![allow(clippy::expect_used, clippy::unwrap_used)] // bench setup: failing loudly is the point

mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use reyna_engine::EngineConfig;

#[path = "common/allocator.rs"]
mod allocator;

/// The fields word-count reads, as in its `Input`.
#[derive(serde::Deserialize)]
struct Input {
    content: String,
}

/// word-count as a native function: the same parse, count and output.
fn word_count(data: &[u8]) -> Vec<u8> {
    let input: Input = serde_json::from_slice(data).expect("text-input-v1");
    let words = input.content.split_whitespace().count();
    serde_json::to_vec(&serde_json::json!({ "words": words })).expect("json")
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("word-count");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    for (label, size) in [("1KiB", 1 << 10), ("64KiB", 64 << 10)] {
        let data = common::text_input(size);
        group.throughput(Throughput::Bytes(data.len() as u64));
        group.bench_function(format!("native/{label}"), |b| {
            b.iter(|| black_box(word_count(black_box(&data))))
        });
    }

    let rt = common::tokio_runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    // 64 KiB is past text-input-v1's 50,000 characters: one word-count
    // variant reads the same documents under a schema without that cap.
    let (engine, schemas) = rt.block_on(async {
        let engine = common::open_engine(EngineConfig::new(dir.path())).await;
        let schemas = common::register_variants(&engine, 1).await;
        engine.start();
        (engine, schemas)
    });
    let data = common::text_input(64 << 10);
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Elements(1));
    group.bench_function("engine/64KiB", |b| {
        b.iter_custom(|iters| {
            let count = usize::try_from(iters).expect("iterations");
            rt.block_on(common::push_events(&engine, &schemas, &data, count))
        })
    });
    group.finish();
    let counts = engine.store().counts().expect("counts");
    assert_eq!(counts.dead_letters, 0, "no event may fail in the bench");
    rt.block_on(engine.shutdown());
}

criterion_group!(benches, bench);
criterion_main!(benches);
