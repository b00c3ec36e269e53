//! Registry refusals: each is a distinct error with a message a person can
//! act on, and stores nothing.

use reyna_engine::{Digest, Engine, EngineError};

use crate::common::*;

fn patched(name: &str, from: &str, to: &str) -> Vec<u8> {
    assert_eq!(from.len(), to.len(), "patches keep the section length");
    let mut bytes = reyna_artifacts::bytes(name).unwrap();
    // Patch the manifest section itself (its text may also sit in a data segment).
    let section = bytes
        .windows(14)
        .position(|w| w == b"reyna-manifest")
        .unwrap_or(0);
    let at = section
        + bytes[section..]
            .windows(from.len())
            .position(|w| w == from.as_bytes())
            .unwrap_or_else(|| panic!("`{from}` not found in {name}"));
    bytes[at..at + from.len()].copy_from_slice(to.as_bytes());
    bytes
}

/// Uploads `bytes`, expects a refusal, and checks nothing was stored.
async fn refused(engine: &Engine, bytes: Vec<u8>) -> EngineError {
    let plugins_before = engine.store().list_plugins().unwrap().len();
    let digest = Digest::of(&bytes);
    let err = engine
        .upload_plugin(bytes, None, reyna_engine::InstallPolicy::All, "test")
        .await
        .expect_err("upload must be refused");
    assert_eq!(
        engine.store().list_plugins().unwrap().len(),
        plugins_before,
        "a plugin record was stored"
    );
    assert!(
        engine.store().get_component(&digest).unwrap().is_none(),
        "component bytes were stored"
    );
    assert!(err.is_client_error());
    err
}

#[tokio::test]
async fn random_bytes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    let err = refused(&engine, b"GIF89a definitely not wasm".to_vec()).await;
    assert!(
        matches!(
            err,
            EngineError::NotAPlugin(reyna_manifest::InspectError::NotWasm)
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "not a valid Reyna plugin: not a WebAssembly file (missing the `\\0asm` header)"
    );
}

#[tokio::test]
async fn a_core_module_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    let module = b"\0asm\x01\0\0\0\x01\x04\x01\x60\0\0\x03\x02\x01\0\x07\x05\x01\x01f\0\0\x0a\x04\x01\x02\0\x0b".to_vec();
    let err = refused(&engine, module).await;
    assert!(
        err.to_string()
            .contains("core WebAssembly module, not a component"),
        "{err}"
    );
}

#[tokio::test]
async fn a_component_of_the_wrong_world_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    // A processor whose manifest claims to be an effect.
    let err = refused(
        &engine,
        patched("word-count", "kind = \"processor\"", "kind = \"effect\"   "),
    )
    .await;
    assert_eq!(
        err.to_string(),
        "not a valid Reyna plugin: component does not target the effect world (reyna:plugin/effect@0.1.0): it does not export `perform`"
    );
}

#[tokio::test]
async fn a_component_without_a_manifest_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    let err = refused(
        &engine,
        patched("word-count", "reyna-manifest", "other-manifest"),
    )
    .await;
    assert!(
        err.to_string().contains("has no `reyna-manifest` section"),
        "{err}"
    );
}

#[tokio::test]
async fn a_plugin_naming_an_unknown_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path())).await.unwrap();
    let text_input = reyna_engine::BUNDLED_SCHEMAS
        .iter()
        .find(|(id, _)| *id == "text-input-v1")
        .unwrap()
        .1;
    engine
        .register_schema("text-input-v1", text_input, "test")
        .await
        .unwrap();
    let err = refused(&engine, reyna_artifacts::bytes("word-count").unwrap()).await;
    assert_eq!(
        err.to_string(),
        "plugin word-count@0.1.0 names schema `word-count-v1` in `outputs`, which is not registered; register the schema first"
    );
}

#[tokio::test]
async fn a_bad_subject_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    let err = refused(
        &engine,
        patched(
            "word-count",
            "\"blob.created.text-input-v1\"",
            "\"blob..reated.text-input-v1\"",
        ),
    )
    .await;
    assert!(
        err.to_string()
            .contains("subject `blob..reated.text-input-v1` has an empty token"),
        "{err}"
    );
}

#[tokio::test]
async fn a_processor_calling_an_unregistered_effect_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    let err = refused(&engine, reyna_artifacts::bytes("text-expand").unwrap()).await;
    assert_eq!(
        err.to_string(),
        "plugin text-expand@2.0.0 calls effect `llm`, which is not registered; upload the effect plugin first"
    );
}

#[tokio::test]
async fn same_version_with_different_bytes_is_refused_and_same_bytes_is_a_no_op() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    let original = reyna_artifacts::bytes("word-count").unwrap();
    let (view, created) = engine
        .upload_plugin(
            original.clone(),
            None,
            reyna_engine::InstallPolicy::All,
            "test",
        )
        .await
        .unwrap();
    assert!(created && view.enabled);
    let (_, created) = engine
        .upload_plugin(original, None, reyna_engine::InstallPolicy::All, "test")
        .await
        .unwrap();
    assert!(!created, "uploading identical bytes again changes nothing");
    let err = refused(
        &engine,
        patched("word-count", "Counts words", "Counts Words"),
    )
    .await;
    assert!(
        err.to_string().starts_with(
            "plugin word-count@0.1.0 already exists with different bytes (digest sha256:"
        ),
        "{err}"
    );
    assert_eq!(engine.list_plugins(None).len(), 1);
}

#[tokio::test]
async fn schema_refusals_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    let err = engine
        .register_schema("Bad_Id", "{}", "t")
        .await
        .unwrap_err();
    assert!(
        err.to_string().starts_with("invalid schema id `Bad_Id`"),
        "{err}"
    );
    let err = engine
        .register_schema("thing-v1", "{not json", "t")
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("schema `thing-v1` is not a valid JSON Schema: not JSON"),
        "{err}"
    );
    let err = engine
        .register_schema("thing-v1", r#"{"type": "banana"}"#, "t")
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::InvalidSchema { .. }), "{err}");
    assert!(
        engine
            .register_schema("thing-v1", r#"{"type": "object"}"#, "t")
            .await
            .unwrap()
    );
    assert!(
        !engine
            .register_schema("thing-v1", r#"{ "type" : "object" }"#, "t")
            .await
            .unwrap(),
        "same content, other formatting"
    );
    let err = engine
        .register_schema("thing-v1", r#"{"type": "array"}"#, "t")
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::SchemaConflict { .. }), "{err}");
    assert!(
        engine
            .store()
            .get_schema("thing-v1")
            .unwrap()
            .unwrap()
            .json
            .contains("object")
    );
}

#[tokio::test]
async fn invalid_blobs_are_refused_with_pointer_and_rule_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    let bad = serde_json::json!({ "content": "short", "metadata": { "style": "loud" } })
        .to_string()
        .into_bytes();
    let err = engine
        .create_blob(TENANT, "text-input-v1", bad, vec![])
        .await
        .unwrap_err();
    let EngineError::SchemaViolation {
        violations, total, ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(*total, 2);
    let mut found: Vec<(&str, &str)> = violations
        .iter()
        .map(|v| (v.pointer.as_str(), v.rule.as_str()))
        .collect();
    found.sort();
    assert_eq!(
        found,
        [("/content", "minLength"), ("/metadata/style", "enum")]
    );
    let err = engine
        .create_blob(TENANT, "text-input-v1", b"{oops".to_vec(), vec![])
        .await
        .unwrap_err();
    assert!(
        err.to_string().starts_with("data is not valid JSON"),
        "{err}"
    );
    let err = engine
        .create_blob(TENANT, "nope-v1", b"{}".to_vec(), vec![])
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "unknown schema `nope-v1`");
    let err = engine
        .create_blob(
            TENANT,
            "text-input-v1",
            br#"{"content":"a child text"}"#.to_vec(),
            vec!["01ARZ3NDEKTSV4RRFFQ69G5FAV".into()],
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "parent blob `01ARZ3NDEKTSV4RRFFQ69G5FAV` does not exist"
    );
    assert_eq!(engine.store().counts().unwrap().blobs, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_too_expensive_to_compile_is_refused_naming_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    // 400 KB that nest 200,000 blocks deep: cheap to send, and without the
    // check wasmtime would compile it (the module sits in a valid component
    // with a valid manifest).
    let word_count = reyna_artifacts::bytes("word-count").unwrap();
    let deep = reyna_artifacts::with_extra_module(
        &word_count,
        &reyna_artifacts::nested_module(1, 200_000),
    );
    let err = refused(&engine, deep).await;
    let EngineError::PluginTooExpensive { reason, .. } = &err else {
        panic!("wrong refusal: {err}");
    };
    assert!(
        reason.contains("nests blocks more than 1024 deep (compile.max-nesting)"),
        "{reason}"
    );
    // The host goes on: the plain component uploads at once.
    upload(&engine, "word-count").await;
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compile_past_its_timeout_is_refused_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    // No real component compiles in a millisecond.
    config.runtime.compile.timeout = std::time::Duration::from_millis(1);
    let engine = engine_with(config).await;
    let err = refused(&engine, reyna_artifacts::bytes("word-count").unwrap()).await;
    let EngineError::PluginTooExpensive { reason, .. } = &err else {
        panic!("wrong refusal: {err}");
    };
    assert!(reason.contains("(compile.timeout)"), "{reason}");
    // Nor is its artifact cached for a later upload to pick up.
    let runtime_dir = dir.path().join("artifacts");
    let cached = std::fs::read_dir(&runtime_dir).map_or(0, |d| d.count());
    assert_eq!(cached, 0, "a timed-out compile leaves no artifact");
    engine.shutdown().await;
}

/// A data directory made by an older binary holds an older version of a
/// bundled schema: the next start keeps it (a registered schema never
/// changes; its blobs were validated against it) and says so, instead of
/// refusing to start.
#[tokio::test]
async fn an_older_bundled_schema_in_the_store_is_kept_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path())).await.unwrap();
    let older =
        r#"{"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}"#;
    assert!(
        engine
            .register_schema("text-input-v1", older, "test")
            .await
            .unwrap()
    );
    let report = engine.register_bundled_schemas().await.unwrap();
    assert_eq!(report.kept, ["text-input-v1"]);
    assert!(report.schemas.contains(&"expanded-text-v1".to_owned()));
    assert!(!report.schemas.contains(&"text-input-v1".to_owned()));
    // The stored version is the one that validates.
    engine
        .validate("text-input-v1", br#"{"text": "old shape"}"#)
        .unwrap();
    let again = engine.register_bundled_schemas().await.unwrap();
    assert!(again.schemas.is_empty(), "{:?}", again.schemas);
    assert_eq!(again.kept, ["text-input-v1"]);
    engine.shutdown().await;
}
