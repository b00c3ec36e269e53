//! Schemas, plugins, components, artifacts, tokens and the audit log.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test code: a failure stops the test"
)]

mod common;

use std::collections::BTreeMap;

use common::*;
use reyna_store::{NewAudit, NewToken, PluginRecord, Role, StoreError, sha256_hex};

#[tokio::test]
async fn schemas_are_immutable() {
    let (_dir, store) = open();
    let doc = r#"{"type":"object"}"#;
    let first = store.put_schema("text-input-v1", doc).await.unwrap();
    assert_eq!(first.digest, sha256_hex(doc.as_bytes()));
    assert_eq!(
        store.put_schema("text-input-v1", doc).await.unwrap(),
        first,
        "same content is fine"
    );
    let err = store
        .put_schema("text-input-v1", r#"{"type":"string"}"#)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::SchemaConflict { .. }), "{err}");
    assert_eq!(store.get_schema("text-input-v1").unwrap(), Some(first));
    store.put_schema("a-v1", "{}").await.unwrap();
    let ids: Vec<String> = store
        .list_schemas()
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(ids, ["a-v1", "text-input-v1"]);
    assert_eq!(store.get_schema("missing-v1").unwrap(), None);
}

fn plugin(digest: &str) -> PluginRecord {
    PluginRecord {
        name: "text-expand".to_owned(),
        version: "1.2.0".to_owned(),
        tenant: None,
        manifest_toml: "name = \"text-expand\"".to_owned(),
        digest: digest.to_owned(),
        enabled: false,
        config: BTreeMap::new(),
        created_at: 1,
    }
}

#[tokio::test]
async fn plugin_versions_are_immutable_but_can_be_enabled_and_configured() {
    let (_dir, store) = open();
    let bytes = b"\0asm component".to_vec();
    let digest = store.put_component(bytes.clone()).await.unwrap();
    assert_eq!(digest, sha256_hex(&bytes));
    assert_eq!(store.put_component(bytes.clone()).await.unwrap(), digest);
    assert_eq!(store.get_component(&digest).unwrap(), Some(bytes));
    assert_eq!(store.get_component("00").unwrap(), None);

    let stored = store.put_plugin(plugin(&digest)).await.unwrap();
    assert_eq!(store.put_plugin(plugin(&digest)).await.unwrap(), stored);
    let err = store.put_plugin(plugin("other")).await.unwrap_err();
    assert!(matches!(err, StoreError::PluginConflict { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "plugin text-expand@1.2.0 already exists with different bytes; versions are immutable, upload a new version"
    );

    let enabled = store
        .set_plugin_enabled("text-expand", "1.2.0", true)
        .await
        .unwrap();
    assert!(enabled.enabled);
    let config = BTreeMap::from([("style".to_owned(), "terse".to_owned())]);
    store
        .set_plugin_config("text-expand", "1.2.0", config.clone())
        .await
        .unwrap();
    let got = store.get_plugin("text-expand", "1.2.0").unwrap().unwrap();
    assert!(got.enabled);
    assert_eq!(got.config, config);
    assert_eq!(store.list_plugins().unwrap(), vec![got]);
    let err = store
        .set_plugin_enabled("nope", "1.0.0", true)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::PluginNotFound { .. }), "{err}");

    store
        .put_artifact(&digest, "wasmtime-48.0.8-x86_64", vec![1, 2, 3])
        .await
        .unwrap();
    assert_eq!(
        store
            .get_artifact(&digest, "wasmtime-48.0.8-x86_64")
            .unwrap(),
        Some(vec![1, 2, 3])
    );
    assert_eq!(store.get_artifact(&digest, "other-engine").unwrap(), None);
}

#[tokio::test]
async fn tokens_are_found_by_hash_and_can_be_deleted() {
    let (_dir, store) = open();
    let token = |tenant: &str, hash: &str| NewToken {
        tenant: tenant.to_owned(),
        role: Role::Writer,
        name: "ci".to_owned(),
        hash: hash.to_owned(),
    };
    let a = store.put_token(token(TENANT, "h1")).await.unwrap();
    let b = store.put_token(token("globex", "h2")).await.unwrap();
    let err = store.put_token(token(TENANT, "h1")).await.unwrap_err();
    assert!(matches!(err, StoreError::TokenConflict), "{err}");

    assert_eq!(store.find_token_by_hash("h1").unwrap(), Some(a.clone()));
    assert_eq!(store.list_tokens(Some("globex")).unwrap(), vec![b.clone()]);
    assert_eq!(store.list_tokens(None).unwrap().len(), 2);
    assert!(store.delete_token(a.id).await.unwrap());
    assert!(!store.delete_token(a.id).await.unwrap());
    assert_eq!(store.find_token_by_hash("h1").unwrap(), None);
    assert_eq!(store.list_tokens(None).unwrap(), vec![b]);
}

#[tokio::test]
async fn audit_log_appends_in_order() {
    let (_dir, store) = open();
    for action in ["plugin.upload", "plugin.enable", "token.create"] {
        store
            .append_audit(NewAudit {
                actor: "admin".to_owned(),
                action: action.to_owned(),
                target: "text-expand@1.2.0".to_owned(),
                detail: String::new(),
            })
            .await
            .unwrap();
    }
    let all = store.list_audit(0, 10).unwrap();
    assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(all[1].action, "plugin.enable");
    assert_eq!(store.list_audit(2, 10).unwrap().len(), 1);
}
