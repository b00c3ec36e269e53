//! Effects through the engine: a processor calls the `llm` effect, which
//! reaches a local OpenAI-compatible server; the call is in the blob's
//! lineage; a host the operator did not approve is refused with nothing sent;
//! an effect subscribed to events runs as a sink and stores a receipt.

use std::collections::BTreeMap;

use reyna_engine::reyna_store::{BlobId, BlobMeta};
use serde_json::json;

use crate::common::*;

/// A loopback model server answering `answer`; its port and what it received.
async fn chat_server(answer: &'static str) -> (u16, reyna_artifacts::ChatServer) {
    let server = reyna_artifacts::ChatServer::start(answer).unwrap();
    (server.port(), server)
}

pub(crate) async fn llm_engine(
    dir: &std::path::Path,
    approve: Option<String>,
) -> reyna_engine::Engine {
    let mut config = config(dir);
    config.effects.allow_private = true; // the test server is on loopback
    if let Some(host) = approve {
        config
            .effects
            .approved_hosts
            .insert("llm".into(), vec![host]);
    }
    let engine = engine_with(config).await;
    upload(&engine, "llm").await;
    upload(&engine, "text-expand").await;
    engine
}

pub(crate) async fn configure(engine: &reyna_engine::Engine, port: u16) {
    let llm = BTreeMap::from([
        (
            "endpoint".to_owned(),
            format!("http://127.0.0.1:{port}/v1/chat/completions"),
        ),
        ("api_key".to_owned(), "sk-test-secret".to_owned()),
    ]);
    engine
        .configure_installation(TENANT, "llm", llm)
        .await
        .unwrap();
    let expand = BTreeMap::from([("use_llm".to_owned(), "true".to_owned())]);
    engine
        .configure_installation(TENANT, "text-expand", expand)
        .await
        .unwrap();
}

/// A started engine whose `text-expand` has expanded `text` once with the
/// model (one request): the engine, the input and that first output.
async fn expanded_once(
    dir: &std::path::Path,
    port: u16,
    received: &reyna_artifacts::ChatServer,
    text: &str,
) -> (reyna_engine::Engine, BlobMeta, BlobMeta) {
    let engine = llm_engine(dir, Some(format!("http://127.0.0.1:{port}"))).await;
    configure(&engine, port).await;
    engine.start();
    let input = put(&engine, "text-input-v1", json!({ "content": text })).await;
    idle(&engine).await;
    assert_eq!(received.received().len(), 1);
    let first = child_by_plugin(&engine, input.id, "text-expand");
    (engine, input, first)
}

/// Re-runs `text-expand@2.0.0` on `blob`.
async fn rerun_expand(
    engine: &reyna_engine::Engine,
    blob: BlobId,
    replay_effects: bool,
) -> Result<reyna_engine::reyna_store::Job, reyna_engine::EngineError> {
    engine
        .rerun(
            TENANT,
            &blob.to_string(),
            "text-expand",
            "2.0.0",
            replay_effects,
            "operator",
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_expand_stores_the_llm_answer_and_its_lineage_shows_the_call() {
    let (port, received) = chat_server("A longer text, written by a model.").await;
    let dir = tempfile::tempdir().unwrap();
    let engine = llm_engine(dir.path(), Some(format!("http://127.0.0.1:{port}"))).await;
    configure(&engine, port).await;
    engine.start();
    let input = put(
        &engine,
        "text-input-v1",
        json!({ "content": "A short text." }),
    )
    .await;
    idle(&engine).await;

    let expanded = child_by_plugin(&engine, input.id, "text-expand");
    let doc = json(&engine, expanded.id);
    assert_eq!(doc["method"], "llm");
    assert_eq!(doc["expanded"], "A longer text, written by a model.");
    assert_eq!(doc["model"], "local-model");
    let producer = expanded.producer.unwrap();
    assert_eq!(
        producer.effect_calls.len(),
        1,
        "{:?}",
        producer.effect_calls
    );
    let call = &producer.effect_calls[0];
    assert_eq!(
        (
            call.effect.as_str(),
            call.version.as_str(),
            call.outcome.to_string().as_str()
        ),
        ("llm", "1.0.0", "ok")
    );
    assert!(
        call.request_digest.to_string().starts_with("sha256:")
            && call
                .response_digest
                .is_some_and(|d| d.to_string().starts_with("sha256:"))
    );
    assert!(call.duration_us > 0);
    // The response is kept by its digest, so it can be inspected later.
    let kept = engine
        .store()
        .get_component(&call.response_digest.expect("a response digest"))
        .unwrap()
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&kept).unwrap()["text"],
        "A longer text, written by a model."
    );

    let got = received.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].request_line, "POST /v1/chat/completions HTTP/1.1");
    assert!(
        got[0]
            .headers
            .iter()
            .any(|h| h.eq_ignore_ascii_case("authorization: Bearer sk-test-secret"))
    );
    let body: serde_json::Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(body["messages"][1]["role"], "user");
    assert!(
        body["messages"][1]["content"]
            .as_str()
            .unwrap()
            .contains("A short text.")
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_the_operator_did_not_approve_is_refused_and_nothing_is_sent() {
    let (port, received) = chat_server("never").await;
    let dir = tempfile::tempdir().unwrap();
    let engine = llm_engine(dir.path(), None).await;
    configure(&engine, port).await;
    engine.start();
    let input = put(
        &engine,
        "text-input-v1",
        json!({ "content": "Hello there." }),
    )
    .await;
    idle(&engine).await;
    assert!(children(&engine, input.id).is_empty());
    let dead = engine
        .store()
        .list_dead_letters(Some(TENANT), None, 10)
        .unwrap()
        .items;
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0].reason.contains("effect `llm` failed")
            && dead[0]
                .reason
                .contains("not among the effect's allowed hosts approved by the operator"),
        "{}",
        dead[0].reason
    );
    assert!(
        !dead[0].reason.contains("sk-test-secret"),
        "secrets never reach dead letters"
    );
    assert!(
        received.received().is_empty(),
        "the refused server received a request"
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscribed_effect_runs_as_a_sink_and_records_a_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    upload(&engine, "word-count").await;
    upload(&engine, "echo-sink").await;
    engine.start();
    let input = put(
        &engine,
        "text-input-v1",
        json!({ "content": "one two three" }),
    )
    .await;
    idle(&engine).await;
    let count = child_by_plugin(&engine, input.id, "word-count");
    let receipt = child_by_plugin(&engine, count.id, "echo-sink");
    assert_eq!(receipt.schema, "effect-receipt-v1");
    let doc = json(&engine, receipt.id);
    assert_eq!(doc["effect"], "echo-sink");
    assert_eq!(doc["receipt"]["subject"], "blob.created.word-count-v1");
    assert_eq!(doc["receipt"]["blob"]["data"]["words"], 3);
    assert_eq!(doc["requests"], json!([]));
    let producer = receipt.producer.unwrap();
    assert_eq!(producer.effect_calls[0].effect, "echo-sink");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_in_replay_mode_makes_no_request_and_gives_the_same_output() {
    let (port, received) = chat_server("The recorded answer.").await;
    let dir = tempfile::tempdir().unwrap();
    let (engine, input, first) =
        expanded_once(dir.path(), port, &received, "Replay me, please.").await;

    let job = rerun_expand(&engine, input.id, true).await.unwrap();
    idle(&engine).await;
    assert_eq!(received.received().len(), 1, "replay mode sent a request");
    let rerun = children(&engine, input.id)
        .into_iter()
        .find(|c| c.producer.as_ref().is_some_and(|p| p.job_id == job.id))
        .expect("the re-run's output");
    assert_ne!(rerun.id, first.id, "recorded beside the first output");
    assert_eq!(json(&engine, rerun.id), json(&engine, first.id));
    let producer = rerun.producer.unwrap();
    assert_eq!(producer.effect_calls.len(), 1);
    let (before, after) = (
        &first.producer.unwrap().effect_calls[0],
        &producer.effect_calls[0],
    );
    assert_eq!(after.outcome.to_string(), "replayed");
    assert_eq!(
        (&after.request_digest, &after.response_digest),
        (&before.request_digest, &before.response_digest)
    );

    // Without replay the same re-run calls out again.
    rerun_expand(&engine, input.id, false).await.unwrap();
    idle(&engine).await;
    let dead = engine
        .store()
        .list_dead_letters(Some(TENANT), None, 10)
        .unwrap()
        .items;
    let calls: Vec<_> = children(&engine, input.id)
        .into_iter()
        .map(|c| c.producer.unwrap().effect_calls)
        .collect();
    assert_eq!(received.received().len(), 2, "{dead:?} {calls:?}");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_mode_refuses_a_call_it_has_no_recording_for() {
    let (port, received) = chat_server("unused").await;
    let dir = tempfile::tempdir().unwrap();
    let engine = llm_engine(dir.path(), Some(format!("http://127.0.0.1:{port}"))).await;
    configure(&engine, port).await;
    // Created before any plugin could run: there is nothing recorded.
    let input = put(
        &engine,
        "chapter-v1",
        json!({ "book_id": "b", "index": 0, "title": "t", "text": "x" }),
    )
    .await;
    let err = rerun_expand(&engine, input.id, true).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("does not accept `chapter-v1` blobs"),
        "{err}"
    );
    let text = engine
        .create_blob(
            "other-tenant",
            "text-input-v1",
            br#"{"content":"not yours at all"}"#.to_vec(),
            vec![],
        )
        .await
        .unwrap();
    let err = rerun_expand(&engine, text.id, true).await.unwrap_err();
    assert!(
        err.to_string().contains("not found"),
        "another tenant's blob: {err}"
    );
    // Its routed run expands without the model (no `use_llm` yet), so no
    // llm call is recorded; the re-run with the model has nothing to replay.
    engine
        .configure_installation(TENANT, "text-expand", BTreeMap::new())
        .await
        .unwrap();
    engine.start();
    let mine = put(
        &engine,
        "text-input-v1",
        json!({ "content": "never run with the model" }),
    )
    .await;
    idle(&engine).await;
    configure(&engine, port).await;
    rerun_expand(&engine, mine.id, true).await.unwrap();
    idle(&engine).await;
    let dead = engine
        .store()
        .list_dead_letters(Some(TENANT), None, 10)
        .unwrap()
        .items;
    assert!(
        dead.iter().any(|d| d
            .reason
            .contains("replay mode: no recorded response of effect `llm`")),
        "{:?}",
        dead.iter().map(|d| &d.reason).collect::<Vec<_>>()
    );
    assert!(received.received().is_empty(), "replay mode sent a request");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_pending_at_a_restart_still_replays_instead_of_calling_out() {
    let (port, received) = chat_server("The recorded answer.").await;
    let dir = tempfile::tempdir().unwrap();
    let (engine, input, first) = expanded_once(dir.path(), port, &received, "Survive me.").await;
    engine.shutdown().await;
    drop(engine);

    // Enqueued while no dispatcher runs, then the host stops: the re-run is
    // still pending when the next process starts.
    let engine = llm_engine(dir.path(), Some(format!("http://127.0.0.1:{port}"))).await;
    let job = rerun_expand(&engine, input.id, true).await.unwrap();
    assert!(job.replay_effects);
    engine.shutdown().await;
    drop(engine);

    let engine = llm_engine(dir.path(), Some(format!("http://127.0.0.1:{port}"))).await;
    engine.start();
    idle(&engine).await;
    assert_eq!(
        received.received().len(),
        1,
        "the re-run called the model after a restart"
    );
    let rerun = children(&engine, input.id)
        .into_iter()
        .find(|c| c.producer.as_ref().is_some_and(|p| p.job_id == job.id))
        .expect("the re-run's output");
    assert_eq!(json(&engine, rerun.id), json(&engine, first.id));
    assert_eq!(
        rerun.producer.unwrap().effect_calls[0].outcome.to_string(),
        "replayed"
    );
    engine.shutdown().await;
}
