//! Isolation and limits: a fresh instance per call, per-plugin concurrency
//! with a bounded wait, input checks, cost reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::time::Duration;

use common::{BOUND, load, runtime, text_event, words};
use reyna_runtime::{CallContext, Failure, Runtime, RuntimeConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_share_no_state() {
    let runtime = runtime();
    let counter = load(&runtime, "counter");
    for _ in 0..20 {
        let report = runtime
            .call(
                &counter,
                text_event("a sample text"),
                CallContext::default(),
            )
            .await;
        assert_eq!(words(&report), 1, "a static starts at zero in every call");
    }
    // Concurrent calls too.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (rt, counter) = (runtime.clone(), counter.clone());
        tasks.push(tokio::spawn(async move {
            rt.call(
                &counter,
                text_event("a sample text"),
                CallContext::default(),
            )
            .await
        }));
    }
    for t in tasks {
        let report = tokio::time::timeout(BOUND, t).await.unwrap().unwrap();
        assert_eq!(words(&report), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_reports_what_it_cost() {
    let runtime = runtime();
    let plugin = load(&runtime, "word-count");
    let event = text_event("one two three");
    let bytes_in = event.blob.data.len() as u64;
    let report = runtime.call(&plugin, event, CallContext::default()).await;
    assert_eq!(words(&report), 3);
    let cost = report.cost;
    assert_eq!(cost.bytes_in, bytes_in);
    assert_eq!(cost.outputs, 1);
    assert_eq!(cost.bytes_out, br#"{"words":3}"#.len() as u64);
    assert!(cost.peak_memory >= 64 * 1024, "{cost:?}");
    assert!(cost.wall_us >= report.instantiate_us);
    assert_eq!(cost.fuel, None);
    assert!(!report.log_truncated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuel_metering_is_reported_and_bounds_a_loop() {
    let runtime = Runtime::new(RuntimeConfig {
        fuel: Some(50_000_000),
        ..common::config()
    })
    .unwrap();
    let plugin = load(&runtime, "word-count");
    let report = runtime
        .call(&plugin, text_event("alpha beta"), CallContext::default())
        .await;
    assert_eq!(words(&report), 2);
    let fuel = report.cost.fuel.expect("fuel is on");
    assert!(fuel > 0 && fuel < 50_000_000, "{fuel}");
    // The same input costs the same fuel: deterministic metering.
    let again = runtime
        .call(&plugin, text_event("alpha beta"), CallContext::default())
        .await;
    assert_eq!(again.cost.fuel, Some(fuel));
    // A loop runs out of fuel: a timeout, whatever the wall clock says.
    let spin = load(&runtime, "hostile-loop");
    let report = runtime
        .call(&spin, text_event("a sample text"), CallContext::default())
        .await;
    assert_eq!(report.result.unwrap_err(), Failure::Timeout);
    assert_eq!(report.cost.fuel, Some(50_000_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_at_its_concurrency_limit_is_busy_after_a_bounded_wait() {
    let runtime = Runtime::new(RuntimeConfig {
        default_concurrency: 1,
        concurrency_wait: Duration::from_millis(20),
        ..common::config()
    })
    .unwrap();
    let spin = load(&runtime, "hostile-loop");
    let first = {
        let (rt, spin) = (runtime.clone(), spin.clone());
        tokio::spawn(async move {
            rt.call(&spin, text_event("a sample text"), CallContext::default())
                .await
        })
    };
    // Wait (bounded) until the first call holds the plugin's only slot.
    tokio::time::timeout(BOUND, async {
        while spin.in_flight() == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the first call starts");
    let second = runtime
        .call(&spin, text_event("a sample text"), CallContext::default())
        .await;
    assert_eq!(second.result.unwrap_err(), Failure::Busy);
    assert!(Failure::Busy.retryable());
    // The wait was bounded by concurrency_wait, not by the first call.
    assert!(second.cost.wall_us < 190_000, "{:?}", second.cost);
    // Other plugins are not affected by this plugin's limit.
    let word_count = load(&runtime, "word-count");
    let report = runtime
        .call(
            &word_count,
            text_event("singleword"),
            CallContext::default(),
        )
        .await;
    assert_eq!(words(&report), 1);
    let first = tokio::time::timeout(BOUND, first).await.unwrap().unwrap();
    assert_eq!(first.result.unwrap_err(), Failure::Timeout);
    assert_eq!(spin.in_flight(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_is_a_bounded_wait_too() {
    let runtime = Runtime::new(RuntimeConfig {
        max_instances: 1,
        concurrency_wait: Duration::from_millis(20),
        ..common::config()
    })
    .unwrap();
    let spin = load(&runtime, "hostile-loop");
    let word_count = load(&runtime, "word-count");
    let first = {
        let (rt, spin) = (runtime.clone(), spin.clone());
        tokio::spawn(async move {
            rt.call(&spin, text_event("a sample text"), CallContext::default())
                .await
        })
    };
    tokio::time::timeout(BOUND, async {
        while spin.in_flight() == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the first call starts");
    let second = runtime
        .call(
            &word_count,
            text_event("singleword"),
            CallContext::default(),
        )
        .await;
    assert_eq!(second.result.unwrap_err(), Failure::Busy);
    let first = tokio::time::timeout(BOUND, first).await.unwrap().unwrap();
    assert_eq!(first.result.unwrap_err(), Failure::Timeout);
    let third = runtime
        .call(
            &word_count,
            text_event("singleword"),
            CallContext::default(),
        )
        .await;
    assert_eq!(words(&third), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_of_a_schema_the_plugin_does_not_consume_is_invalid_input() {
    let runtime = runtime();
    let plugin = load(&runtime, "word-count");
    let mut event = text_event("a sample text");
    event.blob.schema = "chapter-v1".into();
    let report = runtime.call(&plugin, event, CallContext::default()).await;
    assert_eq!(
        report.result.unwrap_err(),
        Failure::InvalidInput("plugin `word-count` does not consume schema `chapter-v1`".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_the_guest_cannot_parse_is_its_invalid_input() {
    let runtime = runtime();
    let plugin = load(&runtime, "word-count");
    let mut event = text_event("a sample text");
    event.blob.data = br#"{"not-text": 1}"#.to_vec();
    let report = runtime.call(&plugin, event, CallContext::default()).await;
    assert!(
        matches!(report.result, Err(Failure::InvalidInput(_))),
        "{:?}",
        report.result
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_are_the_manifest_request_capped_by_the_operator() {
    let runtime = Runtime::new(RuntimeConfig {
        max_timeout: Duration::from_millis(100),
        default_timeout: Duration::from_millis(100),
        max_memory: 8 << 20,
        default_memory: 8 << 20,
        ..common::config()
    })
    .unwrap();
    // hostile-loop asks for 1s, hostile-memory for 16 MiB: both capped.
    let spin = load(&runtime, "hostile-loop");
    assert_eq!(spin.limits().timeout, Duration::from_millis(100));
    let hog = load(&runtime, "hostile-memory");
    assert_eq!(hog.limits().memory, 8 << 20);
    let report = runtime
        .call(&hog, text_event("a sample text"), CallContext::default())
        .await;
    assert_eq!(report.result.unwrap_err(), Failure::MemoryLimit);
    assert!(report.cost.peak_memory <= 8 << 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn effects_and_processors_only_run_as_their_kind() {
    let runtime = runtime();
    let webhook = load(&runtime, "webhook");
    assert_eq!(webhook.manifest().kind, reyna_manifest::Kind::Effect);
    let report = runtime
        .call(
            &webhook,
            text_event("a sample text"),
            CallContext::default(),
        )
        .await;
    match report.result.unwrap_err() {
        Failure::Fatal(m) => assert!(m.contains("is an effect"), "{m}"),
        other => panic!("expected fatal, got {other:?}"),
    }
    let word_count = load(&runtime, "word-count");
    let report = runtime
        .perform(&word_count, b"{}".to_vec(), Default::default())
        .await;
    match report.result.unwrap_err() {
        Failure::Fatal(m) => assert!(m.contains("is a processor"), "{m}"),
        other => panic!("expected fatal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_that_are_not_a_plugin_are_refused() {
    let runtime = runtime();
    let err = runtime.load(b"definitely not wasm").unwrap_err();
    assert!(
        matches!(err, reyna_runtime::LoadError::Inspect(_)),
        "{err:?}"
    );
}
