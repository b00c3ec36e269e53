//! Shared helpers of the runtime's integration tests: a runtime sized for
//! tests, the built test programs, events, and running a hostile call while a
//! well-behaved plugin keeps working next to it.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use reyna_runtime::{Blob, CallContext, CallReport, Event, Plugin, Runtime, RuntimeConfig};

/// Upper bound on any single wait in a test; reaching it is a failure, not a
/// timing assumption.
pub const BOUND: Duration = Duration::from_secs(60);

/// Settings for tests: a small pool, short deadlines, room for the big-output
/// program's 640 MiB.
pub fn config() -> RuntimeConfig {
    RuntimeConfig {
        max_instances: 16,
        max_memory: 1 << 30,
        max_timeout: Duration::from_secs(10),
        default_timeout: Duration::from_secs(10),
        ..RuntimeConfig::default()
    }
}

pub fn runtime() -> Runtime {
    Runtime::new(config()).expect("runtime starts")
}

pub fn wasm(name: &str) -> Vec<u8> {
    reyna_artifacts::bytes(name).unwrap_or_else(|e| panic!("test program {name} not built: {e}"))
}

pub fn load(runtime: &Runtime, name: &str) -> Plugin {
    runtime
        .load(&wasm(name))
        .unwrap_or_else(|e| panic!("cannot load {name}: {e}"))
}

pub fn text_event(text: &str) -> Event {
    Event {
        subject: "blob.created.text-input-v1".into(),
        blob: Blob {
            id: "01J9ZZZZZZZZZZZZZZZZZZZZZZ".into(),
            tenant: "acme".into(),
            schema: "text-input-v1".into(),
            data: serde_json::to_vec(&serde_json::json!({ "content": text })).expect("json"),
            parents: vec![],
        },
    }
}

/// The `words` field of a single word-count-v1 output.
pub fn words(report: &CallReport) -> u64 {
    let outputs = report
        .result
        .as_ref()
        .unwrap_or_else(|f| panic!("call failed: {f}"));
    assert_eq!(outputs.len(), 1, "one output");
    assert_eq!(outputs[0].schema, "word-count-v1");
    let doc: serde_json::Value = serde_json::from_slice(&outputs[0].data).expect("output is json");
    doc["words"].as_u64().expect("words is a number")
}

/// What a well-behaved neighbour did while a hostile call ran.
#[derive(Debug)]
pub struct Neighbour {
    /// Calls completed (all succeeded) in total.
    pub completed: usize,
    /// Calls that completed before the hostile call had finished.
    pub completed_during: usize,
}

/// Runs `hostile` on its own task while `word-count` is called over and over
/// on this one; returns the hostile report and what the neighbour did. The
/// neighbour makes at least one call and stops once the hostile call is done.
pub async fn alongside<F>(runtime: &Runtime, hostile: F) -> (CallReport, Neighbour)
where
    F: Future<Output = CallReport> + Send + 'static,
{
    let word_count = load(runtime, "word-count");
    let hostile = tokio::spawn(hostile);
    let mut neighbour = Neighbour {
        completed: 0,
        completed_during: 0,
    };
    let started = std::time::Instant::now();
    loop {
        let running = !hostile.is_finished();
        let report = runtime
            .call(
                &word_count,
                text_event("the quick brown fox"),
                CallContext::default(),
            )
            .await;
        assert_eq!(
            words(&report),
            4,
            "the neighbour keeps getting right answers"
        );
        neighbour.completed += 1;
        if running && !hostile.is_finished() {
            neighbour.completed_during += 1;
        }
        if hostile.is_finished() {
            break;
        }
        assert!(
            started.elapsed() < BOUND,
            "hostile call did not finish within {BOUND:?}"
        );
    }
    let report = tokio::time::timeout(BOUND, hostile)
        .await
        .expect("hostile call finishes")
        .expect("hostile task does not panic");
    (report, neighbour)
}
