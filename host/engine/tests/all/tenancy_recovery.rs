//! Tenancy of host reads, and recovery of jobs that were running at a crash.

use serde_json::json;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_blob_never_crosses_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    upload(&engine, "blob-reader").await;
    let secret = engine
        .create_blob(
            "other",
            "chapter-v1",
            json!({ "book_id": "s", "index": 0, "title": "secret", "text": "x" })
                .to_string()
                .into_bytes(),
            vec![],
        )
        .await
        .unwrap();
    let mine = put(
        &engine,
        "chapter-v1",
        json!({ "book_id": "m", "index": 0, "title": "mine", "text": "y" }),
    )
    .await;
    engine.start();
    let probe_other = put(
        &engine,
        "text-input-v1",
        json!({ "content": secret.id.to_string() }),
    )
    .await;
    let probe_mine = put(
        &engine,
        "text-input-v1",
        json!({ "content": mine.id.to_string() }),
    )
    .await;
    idle(&engine).await;
    assert_eq!(
        json(
            &engine,
            child_by_plugin(&engine, probe_other.id, "blob-reader").id
        )["words"],
        0
    );
    assert_eq!(
        json(
            &engine,
            child_by_plugin(&engine, probe_mine.id, "blob-reader").id
        )["words"],
        1
    );
    // And the other tenant's reads of this tenant's blob see nothing either.
    assert!(engine.store().get_blob("other", mine.id).unwrap().is_none());
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_running_when_the_process_died_run_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let input = {
        let engine = engine(dir.path()).await;
        upload(&engine, "word-count").await;
        let input = put(
            &engine,
            "text-input-v1",
            json!({ "content": "survives a crash" }),
        )
        .await;
        // Claim the job as a worker would, then "crash" before it completes.
        let claimed = engine
            .store()
            .claim_due_jobs(reyna_engine::reyna_store::now_ms(), 10, None)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(engine.store().counts().unwrap().jobs_running, 1);
        input
    };
    let engine = engine(dir.path()).await;
    assert_eq!(
        engine.store().counts().unwrap().jobs_running,
        0,
        "recovered at open"
    );
    let stats = engine.runtime().stats();
    assert_eq!(
        stats.compiles, 0,
        "the plugin was loaded from the artifact cache"
    );
    engine.start();
    idle(&engine).await;
    let dead = engine
        .store()
        .list_dead_letters(None, None, 10)
        .unwrap()
        .items;
    assert!(dead.is_empty(), "{dead:?}");
    assert_eq!(
        json(&engine, child_by_plugin(&engine, input.id, "word-count").id),
        json!({ "words": 3 })
    );
    engine.shutdown().await;
}
