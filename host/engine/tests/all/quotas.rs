//! Quotas, budgets and metering through the engine: a tenant past its
//! creation rate or holdings is refused and nothing is stored; an `llm`
//! budget warns at 80%, fails the job past 100% with `budget-exceeded`, and
//! the job runs again once the window resets (a test clock, no sleep); the
//! usage of a run equals what the test did.

use std::collections::BTreeMap;
use std::time::Duration;

use reyna_engine::reyna_store::{Budget, Granularity, JobState, Quotas, Usage};
use reyna_engine::{EngineError, TenantId};
use serde_json::json;

use crate::common::*;
use crate::effects::{configure, llm_engine};

async fn with_quotas(engine: &reyna_engine::Engine, tenant: &str, quotas: Quotas) {
    let id = TenantId::parse(tenant).unwrap();
    if engine.live_tenant(tenant).unwrap().is_none() {
        engine.create_tenant(&id, tenant, "test").await.unwrap();
    }
    engine
        .update_tenant(tenant, None, Some(quotas), "test")
        .await
        .unwrap();
}

fn text(i: usize) -> Vec<u8> {
    json!({ "content": format!("words number {i}") })
        .to_string()
        .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_past_its_rate_or_holdings_is_refused_with_the_quota_named_and_nothing_stored() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    upload(&engine, "word-count").await;
    let quotas = Quotas {
        blobs_per_second: Some(1),
        blob_burst: Some(3),
        ..Quotas::default()
    };
    with_quotas(&engine, TENANT, quotas).await;
    for i in 0..3 {
        engine
            .create_blob(TENANT, "text-input-v1", text(i), vec![])
            .await
            .unwrap();
    }
    let refused = engine
        .create_blob(TENANT, "text-input-v1", text(3), vec![])
        .await
        .unwrap_err();
    let EngineError::QuotaExceeded {
        quota, retry_after, ..
    } = &refused
    else {
        panic!("{refused:?}");
    };
    assert_eq!(quota, "blob-rate");
    assert!(*retry_after > Duration::ZERO && *retry_after <= Duration::from_secs(1));
    // Another tenant has its own bucket.
    engine
        .create_blob("other", "text-input-v1", text(0), vec![])
        .await
        .unwrap();
    assert_eq!(engine.counts().unwrap().blobs, 4);

    // Holdings: at most 2 jobs waiting (dispatch has not started).
    let quotas = Quotas {
        queued_jobs: Some(4),
        stored_bytes: Some(10_000),
        ..Quotas::default()
    };
    with_quotas(&engine, TENANT, quotas).await;
    engine
        .create_blob(TENANT, "text-input-v1", text(4), vec![])
        .await
        .unwrap();
    let refused = engine
        .create_blob(TENANT, "text-input-v1", text(5), vec![])
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, EngineError::QuotaExceeded { quota, .. } if quota == "queued-jobs"),
        "{refused:?}"
    );
    let big = json!({ "content": "x".repeat(20_000) })
        .to_string()
        .into_bytes();
    with_quotas(
        &engine,
        TENANT,
        Quotas {
            stored_bytes: Some(10_000),
            ..Quotas::default()
        },
    )
    .await;
    let refused = engine
        .create_blob(TENANT, "text-input-v1", big, vec![])
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, EngineError::QuotaExceeded { quota, .. } if quota == "stored-bytes"),
        "{refused:?}"
    );
    assert_eq!(engine.counts().unwrap().blobs, 5);
    let (held, _) = engine.holdings(TENANT).unwrap();
    assert_eq!(held.queued_jobs, 4);
    assert!(engine.store().check().unwrap().problems.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_running_jobs_never_pass_its_quota_while_others_use_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.workers = 4;
    let engine = engine_with(config).await;
    upload(&engine, "word-count").await;
    with_quotas(
        &engine,
        TENANT,
        Quotas {
            running_jobs: Some(1),
            ..Quotas::default()
        },
    )
    .await;
    for i in 0..100 {
        engine
            .create_blob(TENANT, "text-input-v1", text(i), vec![])
            .await
            .unwrap();
        engine
            .create_blob("other", "text-input-v1", text(i), vec![])
            .await
            .unwrap();
    }
    engine.start();
    let mut most = 0;
    wait_until(&engine, "every job is done", || {
        most = most.max(engine.holdings(TENANT).unwrap().1);
        engine.counts().unwrap().jobs_done == 200
    })
    .await;
    assert_eq!(most, 1, "acme ran {most} jobs at once, past its quota of 1");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_llm_budget_warns_at_80_percent_then_fails_jobs_until_its_window_resets() {
    let server = reyna_artifacts::ChatServer::start("a longer text").unwrap();
    let per_call = reyna_artifacts::PROMPT_TOKENS + reyna_artifacts::COMPLETION_TOKENS;
    let dir = tempfile::tempdir().unwrap();
    let port = server.port();
    let engine = llm_engine(dir.path(), Some(format!("http://127.0.0.1:{port}"))).await;
    configure(&engine, port).await;
    // Two calls pass 80%; the third passes 100%; the fourth finds it used up.
    let budget = per_call * 2 + 2;
    let budgets = BTreeMap::from([(
        "tokens".to_owned(),
        Budget {
            per_day: Some(budget),
            per_month: None,
        },
    )]);
    with_quotas(
        &engine,
        TENANT,
        Quotas {
            budgets,
            ..Quotas::default()
        },
    )
    .await;
    engine.start();
    let subjects = |engine: &reyna_engine::Engine| -> Vec<String> {
        engine
            .store()
            .events_after(Some(TENANT), 0, 1000)
            .unwrap()
            .into_iter()
            .filter(|e| e.subject.starts_with("tenant."))
            .map(|e| e.subject)
            .collect()
    };
    let mut inputs = Vec::new();
    for (i, expected) in [
        &[][..],
        &["tenant.budget.warning"],
        &["tenant.budget.warning", "tenant.budget.exhausted"],
    ]
    .into_iter()
    .enumerate()
    {
        inputs.push(
            put(
                &engine,
                "text-input-v1",
                json!({ "content": format!("chapter number {i}") }),
            )
            .await,
        );
        idle(&engine).await;
        assert_eq!(subjects(&engine), expected, "after call {}", i + 1);
    }
    assert_eq!(server.received().len(), 3);
    let day = Granularity::Day;
    let used = engine
        .usage(TENANT, day, engine.now_ms(), u64::MAX)
        .unwrap();
    assert_eq!(used[0].usage.units["tokens"], per_call * 3);
    assert_eq!(
        used[0].usage.units["prompt-tokens"],
        reyna_artifacts::PROMPT_TOKENS * 3
    );
    assert_eq!(used[0].usage.effect_calls, 3);

    // The fourth job fails with budget-exceeded, without calling the model.
    let fourth = put(
        &engine,
        "text-input-v1",
        json!({ "content": "chapter number 4" }),
    )
    .await;
    idle(&engine).await;
    assert_eq!(server.received().len(), 3, "no request past the budget");
    let job = &engine.store().jobs_for_blob(TENANT, fourth.id).unwrap()[0];
    assert_eq!(job.state, JobState::Dead);
    assert_eq!(job.attempt, 1, "not retried");
    let letters = engine
        .store()
        .list_dead_letters(Some(TENANT), None, 10)
        .unwrap();
    let letter = &letters.items[0];
    let expected = format!(
        "budget-exceeded: tenant acme has used {} of its {budget} `tokens` this day (budget:tokens:day)",
        per_call * 3
    );
    assert!(letter.reason.starts_with(&expected), "{}", letter.reason);
    // Replaying it before the window resets is refused, and changes nothing.
    let refused = engine
        .replay_dead_letter(&letter.id.to_string(), None, "test")
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, EngineError::QuotaExceeded { quota, retry_after, .. }
            if quota == "budget:tokens:day" && *retry_after <= Duration::from_secs(86_400)),
        "{refused:?}"
    );
    // The next day it runs, and the model is called again.
    engine.store().clock().advance(Duration::from_secs(86_400));
    engine
        .replay_dead_letter(&letter.id.to_string(), None, "test")
        .await
        .unwrap();
    idle(&engine).await;
    assert_eq!(server.received().len(), 4);
    let expanded = child_by_plugin(&engine, fourth.id, "text-expand");
    assert_eq!(json(&engine, expanded.id)["method"], "llm");
    let today = engine
        .usage(TENANT, day, engine.now_ms(), u64::MAX)
        .unwrap();
    assert_eq!(today[0].usage.units["tokens"], per_call);
    let audit: Vec<String> = engine
        .audit_log(0, 100, Some(TENANT))
        .unwrap()
        .into_iter()
        .filter(|a| a.action.starts_with("budget."))
        .map(|a| format!("{} {}", a.action, a.target))
        .collect();
    assert_eq!(
        audit,
        [
            "budget.warning budget:tokens:day",
            "budget.exhausted budget:tokens:day"
        ]
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_equals_exactly_what_the_tenant_created_and_ran() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    upload(&engine, "word-count").await;
    engine.start();
    let mut inputs = Vec::new();
    for i in 0..5 {
        inputs.push(
            put(
                &engine,
                "text-input-v1",
                json!({ "content": format!("one two three {i}") }),
            )
            .await,
        );
    }
    idle(&engine).await;
    engine
        .create_blob("other", "text-input-v1", text(9), vec![])
        .await
        .unwrap();
    idle(&engine).await;
    let mut expected = Usage::default();
    for input in &inputs {
        expected.blobs_created += 1;
        expected.bytes_stored += input.size;
        for child in children(&engine, input.id) {
            let cost = child.producer.unwrap().cost;
            expected.blobs_derived += 1;
            expected.bytes_stored += child.size;
            expected.add(&Usage::of_run(&cost, false));
        }
    }
    assert_eq!(expected.blobs_derived, 5);
    assert!(expected.wall_us > 0 && expected.cpu_us > 0);
    let total = |g: Granularity| {
        let mut sum = Usage::default();
        for period in engine.usage(TENANT, g, 0, u64::MAX).unwrap() {
            sum.add(&period.usage);
        }
        sum
    };
    for g in Granularity::ALL {
        assert_eq!(total(g), expected, "{g:?}");
    }
    engine.shutdown().await;
}
