//! The compiled-artifact cache: a restart loads without compiling; a corrupt
//! or tampered artifact is rejected, rebuilt and rewritten, never trusted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use common::{text_event, wasm, words};
use reyna_runtime::{CallContext, Runtime, RuntimeConfig, RuntimeStats};

fn runtime_in(dir: &std::path::Path) -> Runtime {
    Runtime::new(RuntimeConfig {
        cache_dir: Some(dir.to_owned()),
        ..common::config()
    })
    .unwrap()
}

async fn works(runtime: &Runtime, bytes: &[u8]) {
    let plugin = runtime.load(bytes).unwrap();
    let report = runtime
        .call(&plugin, text_event("one two three"), CallContext::default())
        .await;
    assert_eq!(words(&report), 3);
}

fn stats(compiles: u64, cache_hits: u64, cache_rejected: u64) -> RuntimeStats {
    RuntimeStats {
        compiles,
        cache_hits,
        cache_rejected,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_loads_from_the_cache_without_compiling() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = wasm("word-count");
    let first = runtime_in(dir.path());
    works(&first, &bytes).await;
    assert_eq!(first.stats(), stats(1, 0, 0));
    drop(first);

    let restarted = runtime_in(dir.path());
    works(&restarted, &bytes).await;
    works(&restarted, &bytes).await;
    assert_eq!(restarted.stats(), stats(0, 2, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_artifact_is_rejected_and_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = wasm("word-count");
    let first = runtime_in(dir.path());
    let plugin = first.load(&bytes).unwrap();
    let path = first.artifact_path(plugin.digest()).unwrap();
    drop((plugin, first));

    // Flip one byte in the middle of the compiled code.
    let mut artifact = std::fs::read(&path).unwrap();
    let middle = artifact.len() / 2;
    artifact[middle] ^= 0x5a;
    std::fs::write(&path, &artifact).unwrap();

    let second = runtime_in(dir.path());
    works(&second, &bytes).await;
    assert_eq!(second.stats(), stats(1, 0, 1));
    drop(second);

    // The rebuilt artifact was written back and is trusted again.
    let third = runtime_in(dir.path());
    works(&third, &bytes).await;
    assert_eq!(third.stats(), stats(0, 1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_or_foreign_artifact_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = wasm("word-count");
    let first = runtime_in(dir.path());
    let plugin = first.load(&bytes).unwrap();
    let path = first.artifact_path(plugin.digest()).unwrap();
    drop((plugin, first));

    let artifact = std::fs::read(&path).unwrap();
    std::fs::write(&path, &artifact[..artifact.len() / 3]).unwrap();
    let second = runtime_in(dir.path());
    works(&second, &bytes).await;
    assert_eq!(second.stats(), stats(1, 0, 1));

    // Another component's artifact under this component's name.
    let counter = second.load(&wasm("counter")).unwrap();
    let counter_artifact = std::fs::read(second.artifact_path(counter.digest()).unwrap()).unwrap();
    std::fs::write(&path, counter_artifact).unwrap();
    let third = runtime_in(dir.path());
    works(&third, &bytes).await;
    assert_eq!(third.stats(), stats(1, 0, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_with_other_settings_does_not_use_the_artifact() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = wasm("word-count");
    let plain = runtime_in(dir.path());
    works(&plain, &bytes).await;
    drop(plain);
    // Fuel changes the compiled code: a different engine key, so a compile
    // (not a rejection), and both artifacts live side by side.
    let metered = Runtime::new(RuntimeConfig {
        cache_dir: Some(dir.path().to_owned()),
        fuel: Some(1_000_000_000),
        ..common::config()
    })
    .unwrap();
    works(&metered, &bytes).await;
    assert_eq!(metered.stats(), stats(1, 0, 0));
    let files = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(files, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_cache_dir_every_load_compiles() {
    let runtime = common::runtime();
    let bytes = wasm("word-count");
    works(&runtime, &bytes).await;
    works(&runtime, &bytes).await;
    assert_eq!(runtime.stats(), stats(2, 0, 0));
}
