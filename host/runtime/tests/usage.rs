//! Usage: what an effect reports through `usage.report` under the contract's
//! rules (unit names, 16 units a call, saturating sums; what was reported
//! before a failure stands), and the CPU time every call's cost carries.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::{load, runtime, text_event, wasm};
use reyna_runtime::{CallContext, EffectContext, EffectReport, Failure, Runtime};
use serde_json::{Value, json};

/// Runs `usage-reporter` with `reports`, ending with `then`.
async fn run_reporter(
    runtime: &Runtime,
    reports: Value,
    then: &str,
    ctx: EffectContext,
) -> EffectReport {
    let plugin = load(runtime, "usage-reporter");
    let request = json!({ "reports": reports, "then": then });
    runtime
        .perform(&plugin, request.to_string().into_bytes(), ctx)
        .await
}

/// What the host said to each report, as the program answered it.
fn said(report: &EffectReport) -> Vec<String> {
    let bytes = report
        .result
        .as_ref()
        .unwrap_or_else(|f| panic!("effect failed: {f}"));
    serde_json::from_slice(bytes).unwrap()
}

fn units(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amounts_of_a_unit_add_up_with_saturation() {
    let runtime = runtime();
    let reports = json!([
        ["tokens", 5],
        ["prompt-tokens", 3],
        ["tokens", 7],
        ["api.requests_v2", 1],
        ["big", u64::MAX - 1],
        ["big", 10],
        ["zero", 0]
    ]);
    let report = run_reporter(&runtime, reports, "answer", EffectContext::default()).await;
    assert_eq!(said(&report), ["ok"; 7]);
    assert_eq!(
        report.units,
        units(&[
            ("api.requests_v2", 1),
            ("big", u64::MAX),
            ("prompt-tokens", 3),
            ("tokens", 12),
            ("zero", 0)
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_name_or_a_17th_unit_is_invalid_input_and_counts_nothing() {
    let runtime = runtime();
    let mut reports = vec![
        json!(["", 1]),
        json!(["Tokens", 1]),
        json!(["9lives", 1]),
        json!(["-tokens", 1]),
        json!(["prompt tokens", 1]),
        json!(["tökens", 1]),
        json!(["x".repeat(65), 1]),
        json!(["y".repeat(1 << 20), 1]),
    ];
    reports.extend((0..16).map(|i| json!([format!("unit-{i:02}"), i])));
    reports.push(json!(["unit-16", 1]));
    // A unit already reported still adds up once 16 are in.
    reports.push(json!(["unit-00", 100]));
    let report = run_reporter(
        &runtime,
        Value::Array(reports),
        "answer",
        EffectContext::default(),
    )
    .await;
    let said = said(&report);
    let rule = "(1 to 64 bytes of a-z, 0-9, `-`, `_` and `.`, starting with a letter)";
    let expected_bad = [
        format!("invalid input: usage unit name \"\" is invalid: it is empty {rule}"),
        format!(
            "invalid input: usage unit name \"Tokens\" is invalid: it does not start with a letter a-z {rule}"
        ),
        format!(
            "invalid input: usage unit name \"9lives\" is invalid: it does not start with a letter a-z {rule}"
        ),
        format!(
            "invalid input: usage unit name \"-tokens\" is invalid: it does not start with a letter a-z {rule}"
        ),
        format!(
            "invalid input: usage unit name \"prompt tokens\" is invalid: it holds a character other than a-z, 0-9, `-`, `_` and `.` {rule}"
        ),
        format!(
            "invalid input: usage unit name \"tökens\" is invalid: it holds a character other than a-z, 0-9, `-`, `_` and `.` {rule}"
        ),
        format!(
            "invalid input: usage unit name \"{}\"... is invalid: it is longer than 64 bytes {rule}",
            "x".repeat(64)
        ),
        format!(
            "invalid input: usage unit name \"{}\"... is invalid: it is longer than 64 bytes {rule}",
            "y".repeat(64)
        ),
    ];
    assert_eq!(said[..8], expected_bad);
    assert_eq!(said[8..24], ["ok"; 16]);
    assert_eq!(
        said[24],
        "invalid input: usage unit `unit-16` would be the 17th distinct unit of this call; \
         a call reports at most 16"
    );
    assert_eq!(said[25], "ok");
    let mut expected: BTreeMap<String, u64> =
        (0..16).map(|i| (format!("unit-{i:02}"), i)).collect();
    expected.insert("unit-00".to_owned(), 100);
    assert_eq!(report.units, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_named_after_a_secret_is_refused() {
    let runtime = runtime();
    let ctx = EffectContext {
        config: Arc::new(
            [("api_key".to_owned(), "skliveabcdef123".to_owned())]
                .into_iter()
                .collect(),
        ),
        ..EffectContext::default()
    };
    let reports = json!([["skliveabcdef123", 1], ["tokens", 2]]);
    let report = run_reporter(&runtime, reports, "answer", ctx).await;
    assert_eq!(
        said(&report),
        [
            "invalid input: usage unit name contains a secret config value",
            "ok"
        ]
    );
    assert_eq!(report.units, units(&[("tokens", 2)]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn units_reported_before_a_failure_still_count() {
    let runtime = runtime();
    let spent = json!([["tokens", 40], ["prompt-tokens", 30]]);
    let expected = units(&[("prompt-tokens", 30), ("tokens", 40)]);

    let failed = run_reporter(&runtime, spent.clone(), "fail", EffectContext::default()).await;
    assert_eq!(
        failed.result.unwrap_err(),
        Failure::Fatal("failed after reporting".to_owned())
    );
    assert_eq!(failed.units, expected);

    let trapped = run_reporter(&runtime, spent.clone(), "panic", EffectContext::default()).await;
    assert!(
        matches!(trapped.result, Err(Failure::Trap { ref code, .. }) if code == "panic"),
        "{:?}",
        trapped.result
    );
    assert_eq!(trapped.units, expected);

    // Stopped by the host at its 2 s deadline, long after it reported.
    let timed_out = run_reporter(&runtime, spent, "spin", EffectContext::default()).await;
    assert_eq!(timed_out.result.unwrap_err(), Failure::Timeout);
    assert_eq!(timed_out.units, expected);
    // The spin burnt CPU for its whole deadline: its cost says so, never
    // more than the wall time the call took.
    let cost = timed_out.cost;
    assert!(cost.cpu_us >= 100_000, "{cost:?}");
    assert!(cost.cpu_us <= cost.wall_us, "{cost:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_built_without_the_usage_import_still_loads_and_runs() {
    // `echo-sink` never reports usage, so its component does not import
    // `reyna:plugin/usage`, as every effect built before it existed.
    let bytes = wasm("echo-sink");
    let info = reyna_manifest::inspect(&bytes).unwrap();
    assert!(
        !info
            .imports
            .iter()
            .any(|i| i.starts_with("reyna:plugin/usage")),
        "{:?}",
        info.imports
    );
    let runtime = runtime();
    let plugin = runtime.load(&bytes).unwrap();
    let report = runtime
        .perform(&plugin, b"{\"hi\":1}".to_vec(), EffectContext::default())
        .await;
    assert_eq!(report.result.unwrap(), b"{\"hi\":1}");
    assert!(report.units.is_empty());
    // The one that reports does import it.
    let info = reyna_manifest::inspect(&wasm("usage-reporter")).unwrap();
    assert!(
        info.imports.iter().any(|i| i == "reyna:plugin/usage@0.1.0"),
        "{:?}",
        info.imports
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processor_call_reports_its_cpu_time() {
    let runtime = runtime();
    let plugin = load(&runtime, "word-count");
    let report = runtime
        .call(&plugin, text_event("one two three"), CallContext::default())
        .await;
    assert!(report.result.is_ok(), "{:?}", report.result);
    let cost = report.cost;
    // Instantiating and running a component takes some CPU, and a call
    // polled on one thread at a time never takes more than its wall time.
    assert!(cost.cpu_us > 0, "{cost:?}");
    assert!(cost.cpu_us <= cost.wall_us, "{cost:?}");
}
