//! Schemas, plugins, components, tokens and the audit log; every operator
//! write commits together with its audit entry.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test code: a failure stops the test"
)]

mod common;

use std::collections::BTreeMap;

use common::*;
use reyna_store::{Digest, NewAudit, NewToken, PluginRecord, Role, Store, StoreError};

fn audit(action: &str, target: &str) -> NewAudit {
    NewAudit {
        actor: "admin".to_owned(),
        action: action.to_owned(),
        target: target.to_owned(),
        ..NewAudit::default()
    }
}

fn actions(store: &Store) -> Vec<(String, String)> {
    store
        .list_audit(0, 1000, None)
        .unwrap()
        .into_iter()
        .map(|e| (e.action, e.target))
        .collect()
}

#[tokio::test]
async fn schemas_are_immutable() {
    let (_dir, store) = open();
    let doc = r#"{"type":"object"}"#;
    let first = store
        .put_schema(
            "text-input-v1",
            doc,
            audit("schema.register", "text-input-v1"),
        )
        .await
        .unwrap();
    assert_eq!(first.digest, Digest::of(doc.as_bytes()));
    assert_eq!(
        store
            .put_schema(
                "text-input-v1",
                doc,
                audit("schema.register", "text-input-v1")
            )
            .await
            .unwrap(),
        first,
        "same content is fine"
    );
    let err = store
        .put_schema(
            "text-input-v1",
            r#"{"type":"string"}"#,
            audit("schema.register", "text-input-v1"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::SchemaConflict { .. }), "{err}");
    assert_eq!(store.get_schema("text-input-v1").unwrap(), Some(first));
    store
        .put_schema("a-v1", "{}", audit("schema.register", "a-v1"))
        .await
        .unwrap();
    let ids: Vec<String> = store
        .list_schemas()
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(ids, ["a-v1", "text-input-v1"]);
    assert_eq!(store.get_schema("missing-v1").unwrap(), None);
    // Registering the same document again and a refused conflict leave no entry.
    assert_eq!(
        actions(&store),
        [
            ("schema.register".to_owned(), "text-input-v1".to_owned()),
            ("schema.register".to_owned(), "a-v1".to_owned()),
        ]
    );
}

fn plugin(version: &str, digest: Digest) -> PluginRecord {
    PluginRecord {
        name: "text-expand".to_owned(),
        version: version.to_owned(),
        manifest_toml: "name = \"text-expand\"".to_owned(),
        digest,
        enabled: false,
        config: BTreeMap::new(),
        created_at: 1,
        owner: None,
        install: reyna_store::InstallPolicy::All,
    }
}

#[tokio::test]
async fn components_are_kept_once_per_digest() {
    let (_dir, store) = open();
    let bytes = b"\0asm component".to_vec();
    let digest = store.put_component(bytes.clone()).await.unwrap();
    assert_eq!(digest, Digest::of(&bytes));
    assert_eq!(store.put_component(bytes.clone()).await.unwrap(), digest);
    assert_eq!(store.get_component(&digest).unwrap(), Some(bytes));
    assert_eq!(store.get_component(&Digest::of(b"00")).unwrap(), None);
}

#[tokio::test]
async fn plugin_versions_are_immutable_but_can_be_enabled_and_configured() {
    let (_dir, store) = open();
    let bytes = b"\0asm component".to_vec();
    let digest = Digest::of(&bytes);
    let upload = || audit("plugin.upload", "text-expand@1.2.0");

    let stored = store
        .install_plugin(plugin("1.2.0", digest), bytes.clone(), upload())
        .await
        .unwrap();
    assert!(stored.changed);
    assert_eq!(
        store.get_component(&Digest::of(&bytes)).unwrap(),
        Some(bytes.clone())
    );
    let again = store
        .install_plugin(plugin("1.2.0", digest), bytes.clone(), upload())
        .await
        .unwrap();
    assert!(!again.changed, "the same bytes again change nothing");
    assert_eq!(again.record, stored.record);
    let other = b"\0asm other".to_vec();
    let other_digest = Digest::of(&other);
    let err = store
        .install_plugin(plugin("1.2.0", other_digest), other.clone(), upload())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::PluginConflict { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "plugin text-expand@1.2.0 already exists with different bytes; versions are immutable, upload a new version"
    );
    assert_eq!(
        store.get_component(&Digest::of(&other)).unwrap(),
        None,
        "a refused upload stores no bytes"
    );
    let err = store
        .install_plugin(plugin("1.3.0", digest), other, upload())
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::ComponentDigestMismatch { .. }),
        "{err}"
    );

    let enabled = store
        .set_plugin_enabled(
            "text-expand",
            "1.2.0",
            true,
            audit("plugin.enable", "text-expand@1.2.0"),
        )
        .await
        .unwrap();
    assert!(enabled.record.enabled);
    let config = BTreeMap::from([("style".to_owned(), "terse".to_owned())]);
    store
        .set_plugin_config(
            "text-expand",
            "1.2.0",
            config.clone(),
            audit("plugin.config", "text-expand@1.2.0"),
        )
        .await
        .unwrap();
    let got = store.get_plugin("text-expand", "1.2.0").unwrap().unwrap();
    assert!(got.enabled);
    assert_eq!(got.config, config);
    assert_eq!(store.list_plugins().unwrap(), vec![got]);
    let err = store
        .set_plugin_enabled("nope", "1.0.0", true, audit("plugin.enable", "nope@1.0.0"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::PluginNotFound { .. }), "{err}");
    assert_eq!(
        actions(&store),
        [
            ("plugin.upload".to_owned(), "text-expand@1.2.0".to_owned()),
            ("plugin.enable".to_owned(), "text-expand@1.2.0".to_owned()),
            ("plugin.config".to_owned(), "text-expand@1.2.0".to_owned()),
        ],
        "one entry per change; refusals and no-ops leave none"
    );
}

#[tokio::test]
async fn one_version_per_name_is_enabled() {
    let (_dir, store) = open();
    let enabled_versions = |store: &Store| -> Vec<String> {
        store
            .list_plugins()
            .unwrap()
            .into_iter()
            .filter(|p| p.enabled)
            .map(|p| p.version)
            .collect()
    };
    for (i, version) in ["1.0.0", "1.1.0", "2.0.0"].into_iter().enumerate() {
        let bytes = format!("\0asm component {i}").into_bytes();
        let mut record = plugin(version, Digest::of(&bytes));
        record.enabled = true;
        let change = store
            .install_plugin(record, bytes, audit("plugin.upload", version))
            .await
            .unwrap();
        assert_eq!(
            change.disabled.len(),
            usize::from(i > 0),
            "the previous version is disabled"
        );
        assert_eq!(enabled_versions(&store), [version]);
    }
    let change = store
        .set_plugin_enabled(
            "text-expand",
            "1.0.0",
            true,
            audit("plugin.enable", "1.0.0"),
        )
        .await
        .unwrap();
    assert_eq!(
        change
            .disabled
            .iter()
            .map(|r| r.version.as_str())
            .collect::<Vec<_>>(),
        ["2.0.0"]
    );
    assert_eq!(enabled_versions(&store), ["1.0.0"]);
    store
        .set_plugin_enabled(
            "text-expand",
            "1.0.0",
            false,
            audit("plugin.disable", "1.0.0"),
        )
        .await
        .unwrap();
    assert!(enabled_versions(&store).is_empty());
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
    let create = || audit("token.create", "");
    // A token belongs to a tenant that exists.
    let err = store
        .put_token(token(TENANT, "h1"), create())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::TenantNotFound { .. }), "{err}");
    for tenant in [TENANT, "globex"] {
        store
            .put_tenant(tenant, tenant, audit("tenant.create", tenant))
            .await
            .unwrap();
    }
    let a = store
        .put_token(token(TENANT, "h1"), create())
        .await
        .unwrap();
    let b = store
        .put_token(token("globex", "h2"), create())
        .await
        .unwrap();
    let err = store
        .put_token(token(TENANT, "h1"), create())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::TokenConflict), "{err}");

    assert_eq!(store.find_token_by_hash("h1").unwrap(), Some(a.clone()));
    assert_eq!(store.list_tokens(Some("globex")).unwrap(), vec![b.clone()]);
    assert_eq!(store.list_tokens(None).unwrap().len(), 2);
    let delete = || audit("token.delete", &a.id.to_string());
    assert!(store.delete_token(a.id, delete()).await.unwrap());
    assert!(!store.delete_token(a.id, delete()).await.unwrap());
    assert_eq!(store.find_token_by_hash("h1").unwrap(), None);
    assert_eq!(store.list_tokens(None).unwrap(), vec![b.clone()]);
    assert_eq!(
        actions(&store),
        [
            ("tenant.create".to_owned(), TENANT.to_owned()),
            ("tenant.create".to_owned(), "globex".to_owned()),
            ("token.create".to_owned(), a.id.to_string()),
            ("token.create".to_owned(), b.id.to_string()),
            ("token.delete".to_owned(), a.id.to_string()),
        ],
        "the store names each new token in its entry; a refused or empty write leaves none"
    );
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
                ..NewAudit::default()
            })
            .await
            .unwrap();
    }
    let all = store.list_audit(0, 10, None).unwrap();
    assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(all[1].action, "plugin.enable");
    assert_eq!(store.list_audit(2, 10, None).unwrap().len(), 1);
}
