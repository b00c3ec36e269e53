//! Hostile processors through the whole engine: what they can make the host
//! read, keep and store stays within the documented bounds, and the job ends
//! as a dead letter that says why.

use serde_json::json;

use crate::common::*;

/// Runs `plugin` on one text blob and returns its job's dead-letter reason
/// and the job's recorded error.
async fn dead_letter_of(engine: &reyna_engine::Engine, plugin: &str) -> (String, String) {
    let input = put(engine, "text-input-v1", json!({ "content": "go, go, go" })).await;
    engine.start();
    idle(engine).await;
    let dead = engine
        .store()
        .list_dead_letters(Some(TENANT), None, 10)
        .unwrap()
        .items;
    assert_eq!(dead.len(), 1, "one dead letter, none lost: {dead:?}");
    let jobs = engine.store().jobs_for_blob(TENANT, input.id).unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].plugin, plugin);
    let last_error = jobs[0].last_error.clone().unwrap_or_default();
    (dead[0].reason.clone(), last_error)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_over_many_large_blobs_is_refused_at_its_byte_bound() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let max_query_bytes = config.max_query_bytes;
    assert_eq!(max_query_bytes, 16 << 20, "the documented default");
    let engine = engine_with(config).await;
    upload(&engine, "hostile-query").await;
    // 20 chapters of 1 MiB: 20 MiB, under the count bound (1,000), over the
    // byte bound.
    let text = "x".repeat(1 << 20);
    for index in 0..20 {
        put(
            &engine,
            "chapter-v1",
            json!({ "book_id": "big", "index": index, "title": "t", "text": text }),
        )
        .await;
    }
    let (reason, last_error) = dead_letter_of(&engine, "hostile-query").await;
    let expected = format!(
        "fatal: fatal error: query matched more than {max_query_bytes} bytes of `chapter-v1` \
         blobs; narrow the filter"
    );
    assert_eq!(reason, expected);
    assert!(last_error.starts_with(&expected), "{last_error}");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_within_its_bounds_answers() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    upload(&engine, "hostile-query").await;
    for index in 0..3 {
        put(
            &engine,
            "chapter-v1",
            json!({ "book_id": "small", "index": index, "title": "t", "text": "y" }),
        )
        .await;
    }
    let input = put(&engine, "text-input-v1", json!({ "content": "go, go, go" })).await;
    engine.start();
    idle(&engine).await;
    let counted = child_by_plugin(&engine, input.id, "hostile-query");
    assert_eq!(json(&engine, counted.id)["words"], 3);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_15_mib_error_message_is_stored_cut_to_4_kib() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    upload(&engine, "hostile-long-error").await;
    let (reason, last_error) = dead_letter_of(&engine, "hostile-long-error").await;
    // `reyna_runtime::MAX_FAILURE_MESSAGE` (4 KiB) plus the kind and the cut note.
    let bound = 4096 + 100;
    for stored in [&reason, &last_error] {
        assert!(stored.len() <= bound, "{} bytes stored", stored.len());
        assert!(
            stored.starts_with("fatal: fatal error: eeee"),
            "{}",
            &stored[..40]
        );
        assert!(
            stored.contains(&format!("... ({} bytes in all)", 15 << 20)),
            "{}",
            &stored[stored.len() - 60..]
        );
    }
    engine.shutdown().await;
}

/// `echo-sink` renamed `echo`: the effect `hostile-effect-loop` calls.
async fn upload_echo(engine: &reyna_engine::Engine) {
    let bytes =
        reyna_artifacts::with_manifest(&reyna_artifacts::bytes("echo-sink").unwrap(), |toml| {
            toml.replace("name = \"echo-sink\"", "name = \"echo\"")
        })
        .unwrap();
    engine
        .upload_plugin(bytes, None, reyna_engine::InstallPolicy::All, "test")
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn effect_calls_are_capped_and_so_is_the_lineage_that_lists_them() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    upload_echo(&engine).await;
    upload(&engine, "hostile-effect-loop").await;
    // Within the cap (64 by default): the output's lineage lists each call.
    let few = put(
        &engine,
        "text-input-v1",
        json!({ "content": "5 effect calls" }),
    )
    .await;
    // Past it: the call fails with its own kind and stores nothing.
    let many = put(
        &engine,
        "text-input-v1",
        json!({ "content": "12000 effect calls" }),
    )
    .await;
    engine.start();
    idle(&engine).await;
    let counted = child_by_plugin(&engine, few.id, "hostile-effect-loop");
    assert_eq!(json(&engine, counted.id)["words"], 5);
    let producer = counted.producer.unwrap();
    assert_eq!(producer.effect_calls.len(), 5);
    assert!(producer.effect_calls.iter().all(|c| c.effect == "echo"));
    assert!(
        children(&engine, many.id).is_empty(),
        "nothing is stored for the failed call"
    );
    let dead = engine
        .store()
        .list_dead_letters(Some(TENANT), None, 10)
        .unwrap()
        .items;
    let reasons: Vec<&str> = dead.iter().map(|d| d.reason.as_str()).collect();
    assert_eq!(
        reasons,
        ["too-many-effect-calls: the plugin made more than the 64 effect calls allowed per call"]
    );
    assert_eq!(dead[0].job.blob_id, many.id);
    engine.shutdown().await;
}
