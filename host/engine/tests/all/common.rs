//! Shared set-up: an engine in a temp dir with fast retries, plugin uploads
//! from the built artifacts, and bounded waits.

use std::time::Duration;

use reyna_engine::reyna_store::{BlobId, BlobMeta};
use reyna_engine::{Engine, EngineConfig};

pub const TENANT: &str = "acme";

pub fn config(dir: &std::path::Path) -> EngineConfig {
    let mut config = EngineConfig::new(dir);
    config.backoff_base = Duration::from_millis(5);
    config.backoff_max = Duration::from_millis(40);
    config.workers = 8;
    config
}

/// An engine with the bundled schemas, not yet dispatching.
pub async fn engine_with(config: EngineConfig) -> Engine {
    let engine = Engine::open(config).await.unwrap();
    engine.register_bundled_schemas().await.unwrap();
    engine
}

pub async fn engine(dir: &std::path::Path) -> Engine {
    engine_with(config(dir)).await
}

pub async fn upload(engine: &Engine, name: &str) {
    let bytes = reyna_artifacts::bytes(name).unwrap();
    engine
        .upload_plugin(bytes, None, reyna_engine::InstallPolicy::All, "test")
        .await
        .unwrap_or_else(|e| panic!("upload {name}: {e}"));
}

pub async fn idle(engine: &Engine) {
    assert!(
        engine.wait_idle(Duration::from_secs(30)).await,
        "engine did not become idle within 30 s"
    );
}

pub async fn put(engine: &Engine, schema: &str, json: serde_json::Value) -> BlobMeta {
    engine
        .create_blob(TENANT, schema, json.to_string().into_bytes(), vec![])
        .await
        .unwrap()
}

pub fn children(engine: &Engine, id: BlobId) -> Vec<BlobMeta> {
    engine.store().children(TENANT, id).unwrap()
}

pub fn json(engine: &Engine, id: BlobId) -> serde_json::Value {
    let data = engine.store().get_blob_data(TENANT, id).unwrap().unwrap();
    serde_json::from_slice(&data).unwrap()
}

pub fn child_by_plugin(engine: &Engine, id: BlobId, plugin: &str) -> BlobMeta {
    children(engine, id)
        .into_iter()
        .find(|c| c.producer.as_ref().is_some_and(|p| p.plugin == plugin))
        .unwrap_or_else(|| panic!("no child of {id} from {plugin}"))
}

/// Waits (bounded) until `cond` holds, re-checking whenever a job finishes
/// or every 10 ms; never a blind sleep.
pub async fn wait_until(engine: &Engine, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        let _ = engine.wait_idle(Duration::from_millis(10)).await;
    }
}
