//! The peer: Extism 1.30 as the host, running the same word-count work as
//! Reyna's `runtime` bench on the same texts (1 KiB and 64 KiB).
//!
//! - `extism/reused/*`: one plugin instance kept across calls (Extism's
//!   usual way; state leaks from one call to the next).
//! - `extism/fresh/*`: a new plugin per call from a `CompiledPlugin` (the
//!   module compiled once), like Reyna's fresh sandbox per event.
//!
//! Run by `benches/suite.sh`, which builds the plugin first and points
//! `CRITERION_HOME` at the main workspace's `target/criterion` so the summary
//! reads both sides from one place. By hand:
//! `REYNA_PEER_WASM=<peer_word_count.wasm> cargo bench --bench extism`.
#![allow(clippy::expect_used, clippy::panic)] // bench setup: failing loudly is the point

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use extism::{CompiledPlugin, Manifest, Plugin, PluginBuilder, Wasm};

/// The text-input-v1 body of about `size` bytes, built exactly as Reyna's
/// `benches/benches/runtime.rs` builds its `call/*` inputs.
fn input(size: usize) -> Vec<u8> {
    let words = "lorem ipsum dolor sit amet ".repeat(size / 27 + 1);
    let text = &words[..size.saturating_sub(12)];
    serde_json::to_vec(&serde_json::json!({ "content": text })).expect("json")
}

/// Where the suite put the plugin, unless `REYNA_PEER_WASM` says.
fn plugin_path() -> PathBuf {
    if let Some(path) = std::env::var_os("REYNA_PEER_WASM") {
        return PathBuf::from(path);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("wasm32-unknown-unknown/plugin/peer_word_count.wasm")
}

fn words(output: &[u8]) -> u64 {
    let value: serde_json::Value = serde_json::from_slice(output).expect("json output");
    value["words"].as_u64().expect("words")
}

fn benches(c: &mut Criterion) {
    let path = plugin_path();
    let wasm = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read the peer plugin {} ({e}); build it with benches/suite.sh or \
             `cargo build -p peer-word-count --target wasm32-unknown-unknown --profile plugin`",
            path.display()
        )
    });
    let builder = PluginBuilder::new(Manifest::new([Wasm::data(wasm)])).with_wasi(false);
    let compiled = CompiledPlugin::new(builder).expect("compile");
    let mut reused = Plugin::new_from_compiled(&compiled).expect("instantiate");

    let mut group = c.benchmark_group("extism");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    for (label, size) in [("1KiB", 1 << 10), ("64KiB", 64 << 10)] {
        let data = input(size);
        // The same answer as Rust's own count, so both hosts do the same work.
        let text: serde_json::Value = serde_json::from_slice(&data).expect("json");
        let expected = text["content"]
            .as_str()
            .expect("content")
            .split_whitespace()
            .count() as u64;
        let out: Vec<u8> = reused.call("word_count", data.as_slice()).expect("call");
        assert_eq!(words(&out), expected, "peer plugin counts like word-count");

        group.throughput(Throughput::Bytes(data.len() as u64));
        group.bench_function(format!("reused/{label}"), |b| {
            b.iter(|| {
                let out: &[u8] = reused.call("word_count", data.as_slice()).expect("call");
                black_box(out.len())
            })
        });
        group.bench_function(format!("fresh/{label}"), |b| {
            b.iter(|| {
                let mut plugin = Plugin::new_from_compiled(&compiled).expect("instantiate");
                let out: &[u8] = plugin.call("word_count", data.as_slice()).expect("call");
                black_box(out.len())
            })
        });
    }
    group.finish();
}

criterion_group!(peer, benches);
criterion_main!(peer);
