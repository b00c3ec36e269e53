//! Failure policy: retries with backoff, dead letters, replay, automatic
//! pause, the hop limit, and reuse of stored results.

use reyna_engine::reyna_store::JobState;
use serde_json::json;

use crate::common::*;

fn chapter(i: u64) -> serde_json::Value {
    json!({ "book_id": "b", "index": i, "title": format!("c{i}"), "text": "one two" })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retryable_failure_is_retried_until_it_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    upload(&engine, "book-compile").await;
    put(&engine, "chapter-v1", chapter(0)).await;
    let request = put(
        &engine,
        "book-compile-request-v1",
        json!({ "book_id": "b", "title": "T", "expected_chapters": 2 }),
    )
    .await;
    engine.start();
    let job_attempt = || engine.store().jobs_for_blob(TENANT, request.id).unwrap()[0].attempt;
    wait_until(&engine, "a retry", || job_attempt() >= 2).await;
    let job = &engine.store().jobs_for_blob(TENANT, request.id).unwrap()[0];
    assert!(
        job.last_error
            .as_deref()
            .unwrap()
            .contains("has 1 of 2 chapters"),
        "{job:?}"
    );
    put(&engine, "chapter-v1", chapter(1)).await;
    idle(&engine).await;
    let book = child_by_plugin(&engine, request.id, "book-compile");
    let producer = book.producer.unwrap();
    assert!(
        producer.attempt >= 2,
        "lineage records the attempt that succeeded"
    );
    assert_eq!(
        engine.store().jobs_for_blob(TENANT, request.id).unwrap()[0].state,
        JobState::Done
    );
    let stats = engine.plugin("book-compile", "1.0.0", None).unwrap().stats;
    assert!(stats.retried >= 1 && stats.succeeded == 1, "{stats:?}");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_retries_dead_letter_and_a_replay_is_a_new_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    upload(&engine, "book-compile").await; // max-retries = 5
    put(&engine, "chapter-v1", chapter(0)).await;
    let request = put(
        &engine,
        "book-compile-request-v1",
        json!({ "book_id": "b", "title": "T", "expected_chapters": 2 }),
    )
    .await;
    engine.start();
    idle(&engine).await;
    let dead = engine
        .store()
        .list_dead_letters(Some(TENANT), None, 10)
        .unwrap()
        .items;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].job.attempt, 6);
    assert_eq!(
        dead[0].reason,
        "retryable: retryable error: book `b` has 1 of 2 chapters (gave up after 6 attempts)"
    );
    assert!(children(&engine, request.id).is_empty());

    put(&engine, "chapter-v1", chapter(1)).await;
    let job = engine
        .replay_dead_letter(&dead[0].id.to_string(), None, "operator")
        .await
        .unwrap();
    assert_eq!(job.attempt, 7);
    idle(&engine).await;
    let book = child_by_plugin(&engine, request.id, "book-compile");
    assert_eq!(
        book.producer.unwrap().attempt,
        7,
        "the replay is recorded in lineage"
    );
    let err = engine
        .replay_dead_letter(&dead[0].id.to_string(), None, "operator")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already replayed"), "{err}");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_keeps_failing_is_paused_for_its_tenant_and_its_jobs_wait() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    // No probe within the test: the pause holds until resumed by hand.
    config.pause_probe_after = std::time::Duration::from_secs(3600);
    config.pause_probe_max = std::time::Duration::from_secs(3600);
    let engine = engine_with(config).await;
    let id = reyna_engine::TenantId::parse(TENANT).unwrap();
    engine.create_tenant(&id, TENANT, "test").await.unwrap();
    upload(&engine, "hostile-panic").await;
    upload(&engine, "word-count").await;
    // All jobs exist before dispatch starts, so each must end somewhere.
    let mut blobs = Vec::new();
    for i in 0..14 {
        blobs.push(
            put(
                &engine,
                "text-input-v1",
                json!({ "content": format!("blob number {i}") }),
            )
            .await,
        );
    }
    engine.start();
    wait_until(
        &engine,
        "the pause and every job settled or waiting",
        || {
            let paused = engine
                .installation(TENANT, "hostile-panic")
                .unwrap()
                .paused
                .is_some();
            let counts = engine.counts().unwrap();
            paused && counts.jobs_running == 0 && counts.jobs_done >= 14
        },
    )
    .await;
    let install = engine.installation(TENANT, "hostile-panic").unwrap();
    let pause = install.paused.expect("paused");
    assert_eq!(pause.reason, "10 of its last 10 calls failed");
    assert!(pause.probe_at > pause.since);
    // The tenant's installation is paused, not the plugin: it stays enabled.
    let view = engine.plugin("hostile-panic", "0.1.0", None).unwrap();
    assert!(view.enabled);
    let mine = engine
        .plugin("hostile-panic", "0.1.0", Some(TENANT))
        .unwrap();
    assert_eq!(
        mine.stats.paused_reason.as_deref(),
        Some("10 of its last 10 calls failed")
    );
    // Jobs that ran are dead letters; the rest wait, none lost.
    let dead = engine
        .store()
        .list_dead_letters(Some(TENANT), None, 100)
        .unwrap()
        .items;
    let waiting: Vec<_> = blobs
        .iter()
        .flat_map(|b| engine.store().jobs_for_blob(TENANT, b.id).unwrap())
        .filter(|j| j.plugin == "hostile-panic" && j.state == JobState::Pending)
        .collect();
    assert!(dead.len() >= 10, "{}", dead.len());
    assert_eq!(dead.len() + waiting.len(), 14, "every job ran or waits");
    for letter in &dead {
        assert!(
            letter.reason.starts_with("trap: ")
                && letter.reason.contains("hostile-panic was asked to panic"),
            "{}",
            letter.reason
        );
    }
    for job in &waiting {
        let note = job.last_error.as_deref().unwrap_or_default();
        assert!(
            note.contains("is paused (10 of its last 10 calls failed)"),
            "{note}"
        );
    }
    let audit = engine.audit_log(0, 100, Some(TENANT)).unwrap();
    assert!(
        audit.iter().any(|a| a.action == "plugin.pause"
            && a.target == "hostile-panic@0.1.0"
            && a.actor == "engine"),
        "{audit:?}"
    );
    let events = engine.events_after(0, 1000).unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.tenant == TENANT && e.subject == "plugin.paused.hostile-panic"),
        "the pause is an event on the tenant's stream"
    );
    // Its neighbour was unaffected.
    assert_eq!(
        engine
            .plugin("word-count", "0.1.0", None)
            .unwrap()
            .stats
            .succeeded,
        14
    );
    // Turning the installation on by hand resumes it: the waiting jobs run
    // now (and fail again, being hostile), counted as dead letters.
    engine
        .set_installation_enabled(TENANT, "hostile-panic", true, "test")
        .await
        .unwrap();
    assert!(
        engine
            .installation(TENANT, "hostile-panic")
            .unwrap()
            .paused
            .is_none()
    );
    wait_until(&engine, "the waiting jobs ran", || {
        let dead = engine
            .store()
            .list_dead_letters(Some(TENANT), None, 100)
            .unwrap()
            .items
            .len();
        dead == 14
    })
    .await;
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hop_limit_stops_a_cycle_with_a_dead_letter_that_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.max_hops = 3;
    let engine = engine_with(config).await;
    upload(&engine, "cycle").await;
    engine.start();
    let first = put(
        &engine,
        "text-input-v1",
        json!({ "content": "again and again" }),
    )
    .await;
    idle(&engine).await;
    let counts = engine.store().counts().unwrap();
    assert_eq!(counts.blobs, 4, "the input and three derived generations");
    let dead = engine
        .store()
        .list_dead_letters(Some(TENANT), None, 10)
        .unwrap()
        .items;
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0].reason,
        "hop limit reached: the input is 3 derivations deep and the limit is 3 (a subscription cycle?)"
    );
    let lineage = engine
        .store()
        .lineage(
            TENANT,
            first.id,
            reyna_engine::reyna_store::Direction::Down,
            10,
        )
        .unwrap()
        .unwrap();
    assert_eq!(lineage.nodes.len(), 4);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_input_reuses_the_stored_result_and_records_it() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    upload(&engine, "word-count").await;
    engine.start();
    let a = put(
        &engine,
        "text-input-v1",
        json!({ "content": "same words here" }),
    )
    .await;
    idle(&engine).await;
    let b = put(
        &engine,
        "text-input-v1",
        json!({ "content": "same words here" }),
    )
    .await;
    idle(&engine).await;
    let first = child_by_plugin(&engine, a.id, "word-count");
    let second = child_by_plugin(&engine, b.id, "word-count");
    assert_ne!(first.id, second.id);
    assert_eq!(json(&engine, second.id), json!({ "words": 3 }));
    let reused_from = second.producer.unwrap().reused_from;
    assert_eq!(reused_from, Some(first.producer.unwrap().job_id));
    let stats = engine.plugin("word-count", "0.1.0", None).unwrap().stats;
    assert_eq!((stats.calls, stats.reused), (1, 1));
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tree_budget_stops_a_fan_out_while_another_tenants_job_completes() {
    // `fan-out` answers every text with 16 new texts, which it receives
    // again: 16^16 blobs within the hop limit. The tree budget cuts each
    // ingested blob's tree at 100 derived blobs (word-count's included).
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.max_tree_blobs = 100;
    let engine = engine_with(config).await;
    upload(&engine, "fan-out").await;
    upload(&engine, "word-count").await;
    engine.start();
    let wide = put(
        &engine,
        "text-input-v1",
        json!({ "content": "wide and wider" }),
    )
    .await;
    let other = engine
        .create_blob(
            "other",
            "text-input-v1",
            json!({ "content": "mine alone" }).to_string().into_bytes(),
            vec![],
        )
        .await
        .unwrap();
    // The other tenant's word count completes even while its own tree and
    // acme's are at their budget.
    wait_until(&engine, "the other tenant's word count", || {
        engine
            .store()
            .children("other", other.id)
            .unwrap()
            .iter()
            .any(|c| c.schema == "word-count-v1")
    })
    .await;
    idle(&engine).await;

    for (tenant, root) in [(TENANT, wide.id), ("other", other.id)] {
        let size = engine.store().tree_size(root).unwrap();
        assert!(
            (84..=100).contains(&size),
            "{tenant}'s tree stops within one completion of the budget: {size}"
        );
        let derived = engine
            .store()
            .lineage(tenant, root, reyna_engine::reyna_store::Direction::Down, 16)
            .unwrap()
            .unwrap()
            .nodes
            .len()
            - 1;
        assert_eq!(
            derived as u64, size,
            "{tenant}: the count is what the lineage holds"
        );
    }
    let dead = engine
        .store()
        .list_dead_letters(Some(TENANT), None, 1000)
        .unwrap()
        .items;
    assert!(!dead.is_empty());
    for letter in &dead {
        assert!(
            letter.reason.starts_with("tree-budget: ") && letter.reason.contains("at most 100"),
            "{}",
            letter.reason
        );
        assert_eq!(letter.job.tree, wide.id);
        assert!(letter.job.outputs.is_empty(), "nothing of it was stored");
    }
    // Every stored blob is accounted for: two roots and two bounded trees.
    let counts = engine.store().counts().unwrap();
    assert_eq!(
        counts.blobs,
        2 + engine.store().tree_size(wide.id).unwrap()
            + engine.store().tree_size(other.id).unwrap()
    );
    assert!(engine.store().check().unwrap().problems.is_empty());
    // The budget is not the plugin's failure: it stays enabled.
    assert!(engine.plugin("fan-out", "0.1.0", None).unwrap().enabled);
    engine.shutdown().await;
}
