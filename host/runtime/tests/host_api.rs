//! The contract's host imports through a real host: config, blob queries
//! scoped to the tenant, effects allowed per call, guest errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::{load, runtime, text_event};
use reyna_runtime::{
    Blob, CallContext, EffectOutcome, Event, Failure, GuestError, LogLevel, MemoryHost,
};

fn config(pairs: &[(&str, &str)]) -> Arc<BTreeMap<String, String>> {
    Arc::new(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

fn json(report: &reyna_runtime::CallReport) -> serde_json::Value {
    let outputs = report
        .result
        .as_ref()
        .unwrap_or_else(|f| panic!("call failed: {f}"));
    serde_json::from_slice(&outputs[0].data).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_effect_is_served_and_recorded() {
    let runtime = runtime();
    let plugin = load(&runtime, "text-expand");
    let host = MemoryHost::new();
    host.effect("llm", |_| {
        Ok(br#"{"text": "A much longer text, with detail.", "model": "test"}"#.to_vec())
    });
    let ctx = CallContext {
        config: config(&[("use_llm", "true")]),
        host: Arc::new(host.clone()),
        allowed_effects: vec!["llm".into()],
        seed: 7,
        ..CallContext::default()
    };
    let report = runtime.call(&plugin, text_event("Short text."), ctx).await;
    assert_eq!(
        json(&report)["expanded"],
        "A much longer text, with detail."
    );
    assert_eq!(host.effect_calls().len(), 1);
    assert_eq!(report.effect_calls.len(), 1);
    let call = &report.effect_calls[0];
    assert_eq!(call.effect, "llm");
    assert!(call.request_digest.to_string().starts_with("sha256:"));
    assert!(call.response_digest.is_some() && call.outcome == EffectOutcome::Ok);
    // The guest's `ctx.info` reached the call's log.
    assert!(
        report
            .logs
            .iter()
            .any(|l| l.level == LogLevel::Info && l.message.starts_with("expanded"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_effect_the_caller_did_not_allow_is_denied() {
    let runtime = runtime();
    let plugin = load(&runtime, "text-expand");
    let host = MemoryHost::new();
    host.effect("llm", |_| Ok(b"{}".to_vec()));
    let ctx = CallContext {
        config: config(&[("use_llm", "true")]),
        host: Arc::new(host.clone()),
        allowed_effects: vec![],
        seed: 0,
        ..CallContext::default()
    };
    let report = runtime.call(&plugin, text_event("Short text."), ctx).await;
    assert_eq!(
        report.result.unwrap_err(),
        Failure::EffectDenied {
            effect: "llm".into()
        }
    );
    assert!(host.effect_calls().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_errors_keep_their_kind() {
    let runtime = runtime();
    let plugin = load(&runtime, "text-expand");
    // An effect's retryable error, returned by the guest.
    let host = MemoryHost::new();
    host.effect("llm", |_| Err(GuestError::Retryable("rate limited".into())));
    let ctx = CallContext {
        config: config(&[("use_llm", "true")]),
        host: Arc::new(host),
        allowed_effects: vec!["llm".into()],
        seed: 0,
        ..CallContext::default()
    };
    let report = runtime.call(&plugin, text_event("Short text."), ctx).await;
    let failure = report.result.unwrap_err();
    assert!(
        matches!(&failure, Failure::Retryable(m) if m.contains("rate limited")),
        "{failure:?}"
    );
    assert!(failure.retryable());
    assert_eq!(
        report.effect_calls[0].outcome,
        EffectOutcome::Failed(GuestError::Retryable("rate limited".into()).to_string())
    );
    // Content with no words: invalid input.
    let report = runtime
        .call(&plugin, text_event("  ...  !!  "), CallContext::default())
        .await;
    assert!(
        matches!(report.result, Err(Failure::InvalidInput(_))),
        "{:?}",
        report.result
    );
    // A bad config value: fatal.
    let ctx = CallContext {
        config: config(&[("expansion_ratio", "50")]),
        ..CallContext::default()
    };
    let report = runtime
        .call(&plugin, text_event("Some text here."), ctx)
        .await;
    assert!(
        matches!(report.result, Err(Failure::Fatal(_))),
        "{:?}",
        report.result
    );
}

fn chapter(tenant: &str, id: &str, book: &str, index: u64) -> Blob {
    Blob {
        id: id.into(),
        tenant: tenant.into(),
        schema: "chapter-v1".into(),
        data: serde_json::to_vec(&serde_json::json!({
            "book_id": book, "index": index, "title": format!("Chapter {index}"), "text": format!("Text of {id}.")
        }))
        .unwrap(),
        parents: vec![],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_queries_see_only_the_event_tenant() {
    let runtime = runtime();
    let plugin = load(&runtime, "book-compile");
    let host = MemoryHost::new();
    host.insert(chapter("acme", "c1", "b1", 1));
    host.insert(chapter("acme", "c0", "b1", 0));
    host.insert(chapter("acme", "x0", "other", 0));
    host.insert(chapter("globex", "g2", "b1", 2));
    let request = |tenant: &str| Event {
        subject: "blob.created.book-compile-request-v1".into(),
        blob: Blob {
            id: "req".into(),
            tenant: tenant.into(),
            schema: "book-compile-request-v1".into(),
            data: br#"{"book_id": "b1", "title": "The Book"}"#.to_vec(),
            parents: vec![],
        },
    };
    let ctx = CallContext {
        host: Arc::new(host.clone()),
        ..CallContext::default()
    };
    let report = runtime.call(&plugin, request("acme"), ctx.clone()).await;
    let outputs = report.result.as_ref().unwrap();
    assert_eq!(outputs[0].extra_parents, ["c0", "c1"]);
    let book = json(&report);
    assert_eq!(book["chapters"].as_array().unwrap().len(), 2);
    // Another tenant with no chapters of its own: nothing visible, retry later.
    let report = runtime.call(&plugin, request("initech"), ctx).await;
    assert!(
        matches!(report.result, Err(Failure::Retryable(_))),
        "{:?}",
        report.result
    );
}
