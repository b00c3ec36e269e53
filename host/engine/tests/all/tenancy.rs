//! Tenancy: each tenant's installation of a plugin (its config, secrets and
//! health), install policies, tenants' own plugins, sealed secrets and
//! their rotation, and opening a data directory of the previous format.

use std::collections::BTreeMap;
use std::time::Duration;

use reyna_engine::reyna_store::{BlobMeta, SecretUse};
use reyna_engine::{Engine, EngineError, InstallPolicy, TenantId};
use serde_json::json;

use crate::common::*;

const OTHER: &str = "globex";

async fn tenant(engine: &Engine, id: &str) {
    let id = TenantId::parse(id).unwrap();
    engine
        .create_tenant(&id, id.as_str(), "test")
        .await
        .unwrap();
}

async fn put_for(engine: &Engine, tenant: &str, text: &str) -> BlobMeta {
    let data = json!({ "content": text }).to_string().into_bytes();
    engine
        .create_blob(tenant, "text-input-v1", data, vec![])
        .await
        .unwrap()
}

fn derived(engine: &Engine, tenant: &str, blob: &BlobMeta) -> Vec<BlobMeta> {
    engine.store().children(tenant, blob.id).unwrap()
}

fn has_event(engine: &Engine, tenant: &str, subject: &str) -> bool {
    engine
        .events_after(0, 100_000)
        .unwrap()
        .iter()
        .any(|e| e.tenant == tenant && e.subject == subject)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_installation_config_reaches_its_tenants_jobs_only() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    tenant(&engine, TENANT).await;
    tenant(&engine, OTHER).await;
    upload(&engine, "llm").await;
    upload(&engine, "text-expand").await;
    let config = BTreeMap::from([("expansion_ratio".to_owned(), "8".to_owned())]);
    engine
        .set_installation_config(TENANT, "text-expand", config, "test")
        .await
        .unwrap();
    engine.start();
    let text = "One short sentence here.";
    let mine = put_for(&engine, TENANT, text).await;
    let theirs = put_for(&engine, OTHER, text).await;
    idle(&engine).await;
    let ratio = |tenant: &str, blob: &BlobMeta| {
        let child = &derived(&engine, tenant, blob)[0];
        let data = engine
            .store()
            .get_blob_data(tenant, child.id)
            .unwrap()
            .unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&data).unwrap();
        (
            doc["expansion_ratio"].as_f64().unwrap(),
            child.producer.clone().unwrap().config_digest,
        )
    };
    let (mine_ratio, mine_digest) = ratio(TENANT, &mine);
    let (their_ratio, their_digest) = ratio(OTHER, &theirs);
    assert!(mine_ratio >= 8.0, "acme's config: {mine_ratio}");
    assert!(
        (4.0..5.0).contains(&their_ratio),
        "globex runs the default (4): {their_ratio}"
    );
    assert_ne!(mine_digest, their_digest, "lineage tells the configs apart");
    // The config is acme's: globex's installation shows none.
    let view = engine.installation(OTHER, "text-expand").unwrap();
    assert!(view.config.is_empty() && !view.explicit);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tenants_failures_pause_only_its_installation_and_a_probe_resumes_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.pause_window = 4;
    config.pause_min_calls = 4;
    config.pause_probe_after = Duration::from_millis(300);
    let engine = engine_with(config).await;
    tenant(&engine, TENANT).await;
    tenant(&engine, OTHER).await;
    upload(&engine, "moody").await;
    engine.start();
    // globex drives the shared plugin into its faults: traps, timeouts,
    // fatal errors (moody retries nothing).
    for text in ["trap please", "loop please", "fatal please", "trap again"] {
        put_for(&engine, OTHER, text).await;
    }
    wait_until(&engine, "globex's installation pauses", || {
        has_event(&engine, OTHER, "plugin.paused.moody")
    })
    .await;
    let pause = engine.installation(OTHER, "moody").unwrap().paused.unwrap();
    assert_eq!(pause.reason, "4 of its last 4 calls failed");
    // acme's jobs for the same plugin keep completing meanwhile.
    let mut mine = Vec::new();
    for i in 0..5 {
        mine.push(put_for(&engine, TENANT, &format!("acme text number {i}")).await);
    }
    wait_until(&engine, "acme's jobs complete", || {
        mine.iter().all(|b| derived(&engine, TENANT, b).len() == 1)
    })
    .await;
    assert!(
        engine
            .installation(TENANT, "moody")
            .unwrap()
            .paused
            .is_none()
    );
    assert!(!has_event(&engine, TENANT, "plugin.paused.moody"));
    // A good input of globex waits for the probe, runs as it, and the
    // installation resumes by itself.
    let good = put_for(&engine, OTHER, "all is well now").await;
    wait_until(&engine, "the probe resumes globex's installation", || {
        has_event(&engine, OTHER, "plugin.resumed.moody")
            && derived(&engine, OTHER, &good).len() == 1
    })
    .await;
    assert!(
        engine
            .installation(OTHER, "moody")
            .unwrap()
            .paused
            .is_none()
    );
    let audit = engine.audit_log(0, 100, Some(OTHER)).unwrap();
    let actions: Vec<&str> = audit.iter().map(|a| a.action.as_str()).collect();
    assert!(
        actions.contains(&"plugin.pause") && actions.contains(&"plugin.resume"),
        "{actions:?}"
    );
    assert!(audit.iter().all(|a| a.tenant.as_deref() == Some(OTHER)));
    // acme's audit knows nothing of it.
    let theirs_in_mine = engine.audit_log(0, 100, Some(TENANT)).unwrap();
    assert!(
        !theirs_in_mine
            .iter()
            .any(|a| a.action.starts_with("plugin."))
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retryable_result_waiting_for_data_pauses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.pause_window = 4;
    config.pause_min_calls = 4;
    let engine = engine_with(config).await;
    tenant(&engine, TENANT).await;
    upload(&engine, "moody").await;
    upload(&engine, "book-compile").await;
    engine.start();
    // moody retries nothing: each `retry` is dead-lettered at once, and
    // book-compile asks for a retry while chapters are missing.
    for i in 0..8 {
        put_for(&engine, TENANT, &format!("retry number {i}")).await;
    }
    for i in 0..6 {
        let request =
            json!({ "book_id": format!("missing-{i}"), "title": "T", "expected_chapters": 3 });
        engine
            .create_blob(
                TENANT,
                "book-compile-request-v1",
                request.to_string().into_bytes(),
                vec![],
            )
            .await
            .unwrap();
    }
    wait_until(&engine, "the retryable jobs settle", || {
        let letters = engine
            .store()
            .list_dead_letters(Some(TENANT), None, 100)
            .unwrap()
            .items;
        letters.iter().filter(|l| l.job.plugin == "moody").count() == 8
    })
    .await;
    for plugin in ["moody", "book-compile"] {
        assert!(
            engine
                .installation(TENANT, plugin)
                .unwrap()
                .paused
                .is_none(),
            "{plugin} must not pause"
        );
    }
    assert!(!has_event(&engine, TENANT, "plugin.paused.moody"));
    assert!(!has_event(&engine, TENANT, "plugin.paused.book-compile"));
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_policies_and_a_tenants_own_plugins_route_per_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    tenant(&engine, TENANT).await;
    tenant(&engine, OTHER).await;
    let bytes = |name: &str| reyna_artifacts::bytes(name).unwrap();
    engine
        .upload_plugin(bytes("word-count"), None, InstallPolicy::OptIn, "test")
        .await
        .unwrap();
    // globex's own processor: globex alone sees and runs it.
    let (own, _) = engine
        .upload_plugin(bytes("counter"), Some(OTHER), InstallPolicy::All, "test")
        .await
        .unwrap();
    assert_eq!(own.owner.as_deref(), Some(OTHER));
    let plugins = |scope| -> Vec<String> {
        engine
            .list_plugins(scope)
            .into_iter()
            .map(|p| p.name)
            .collect()
    };
    assert_eq!(plugins(Some(TENANT)), ["word-count"]);
    assert_eq!(plugins(Some(OTHER)), ["counter", "word-count"]);
    assert!(engine.plugin("counter", "0.1.0", Some(TENANT)).is_none());
    assert!(matches!(
        engine.installation(TENANT, "counter"),
        Err(EngineError::PluginNotFound(_))
    ));
    // A name belongs to one owner; a tenant uploads no effects.
    let err = engine
        .upload_plugin(
            bytes("word-count"),
            Some(TENANT),
            InstallPolicy::All,
            "test",
        )
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::PluginNameTaken(_)), "{err}");
    let err = engine
        .upload_plugin(bytes("echo-sink"), Some(TENANT), InstallPolicy::All, "test")
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::Forbidden(_)), "{err}");
    let jobs = |tenant: &str, blob: &BlobMeta| -> Vec<String> {
        let mut plugins: Vec<String> = engine
            .store()
            .jobs_for_blob(tenant, blob.id)
            .unwrap()
            .into_iter()
            .map(|j| j.plugin)
            .collect();
        plugins.sort();
        plugins
    };
    // Opt-in: nobody runs word-count until a tenant opts in.
    let before = put_for(&engine, TENANT, "one and two").await;
    assert!(jobs(TENANT, &before).is_empty());
    engine
        .set_installation_enabled(TENANT, "word-count", true, "test")
        .await
        .unwrap();
    let after = put_for(&engine, TENANT, "one and two").await;
    assert_eq!(jobs(TENANT, &after), ["word-count"]);
    let theirs = put_for(&engine, OTHER, "one and two").await;
    assert_eq!(jobs(OTHER, &theirs), ["counter"]);
    // globex opts out of its own plugin.
    engine
        .set_installation_enabled(OTHER, "counter", false, "test")
        .await
        .unwrap();
    let later = put_for(&engine, OTHER, "one and two").await;
    assert!(jobs(OTHER, &later).is_empty());
    engine.start();
    idle(&engine).await;
    assert_eq!(derived(&engine, TENANT, &after).len(), 1);
    engine.shutdown().await;
}

const SECRET: &str = "s3cr3t-credential-7f1d9a";

/// Whether `needle` occurs in any file under `dir`.
fn found_in_files(dir: &std::path::Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
        } else if let Ok(bytes) = std::fs::read(&path)
            && bytes.windows(needle.len()).any(|w| w == needle)
        {
            hits.push(path.display().to_string());
        }
    }
    hits
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_is_sealed_never_shown_and_its_version_is_in_the_lineage() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    tenant(&engine, TENANT).await;
    upload(&engine, "moody").await;
    // `credential` does not look like a secret: only its marking redacts it.
    let view = engine
        .set_secret(TENANT, "moody", "credential", SECRET, "test")
        .await
        .unwrap();
    let shown = serde_json::to_string(&view).unwrap();
    assert!(!shown.contains(SECRET), "{shown}");
    assert_eq!(view.secrets[0].name, "credential");
    assert!(view.secrets[0].set && view.secrets[0].version == 1);
    engine.start();
    let blob = put_for(&engine, TENANT, "log-secret please").await;
    idle(&engine).await;
    let child = &derived(&engine, TENANT, &blob)[0];
    let producer = child.producer.clone().unwrap();
    assert_eq!(
        producer.secrets,
        [SecretUse {
            plugin: "moody".into(),
            name: "credential".into(),
            version: 1
        }]
    );
    let job = engine.store().get_job(producer.job_id).unwrap().unwrap();
    let logs = engine.store().job_logs(job.id).unwrap();
    let text = format!("{logs:?}");
    assert!(text.contains("the credential is [redacted]"), "{text}");
    assert!(!text.contains(SECRET));
    let lineage = format!(
        "{:?}",
        engine
            .store()
            .lineage(TENANT, blob.id, reyna_engine::Direction::Both, 5)
            .unwrap()
    );
    assert!(!lineage.contains(SECRET));
    let events = format!("{:?}", engine.events_after(0, 1000).unwrap());
    let audit = format!("{:?}", engine.audit_log(0, 1000, None).unwrap());
    assert!(!events.contains(SECRET) && !audit.contains(SECRET));
    engine.shutdown().await;
    drop(engine);
    // Nowhere in the data directory: the store holds it sealed.
    assert_eq!(
        found_in_files(dir.path(), SECRET.as_bytes()),
        Vec::<String>::new()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("master.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_a_secret_with_jobs_in_flight_loses_no_job_and_keeps_old_versions_only_while_used()
{
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    tenant(&engine, TENANT).await;
    upload(&engine, "moody").await;
    engine
        .set_secret(TENANT, "moody", "credential", "version-1", "test")
        .await
        .unwrap();
    engine.start();
    let mut blobs = Vec::new();
    for round in 2..=6 {
        for i in 0..8 {
            blobs.push(put_for(&engine, TENANT, &format!("round {round} text {i}")).await);
        }
        engine
            .set_secret(
                TENANT,
                "moody",
                "credential",
                &format!("version-{round}"),
                "test",
            )
            .await
            .unwrap();
    }
    idle(&engine).await;
    let mut versions = std::collections::BTreeSet::new();
    for blob in &blobs {
        let children = derived(&engine, TENANT, blob);
        assert_eq!(children.len(), 1, "every job completed");
        let secrets = children[0].producer.clone().unwrap().secrets;
        assert_eq!(secrets.len(), 1);
        versions.insert(secrets[0].version);
    }
    assert!(versions.iter().all(|v| (1..=6).contains(v)), "{versions:?}");
    // Once no job runs, only the current version is kept (old ones go when
    // their last job ends).
    wait_until(&engine, "old versions pruned", || {
        let kept: Vec<u32> = engine
            .store()
            .list_sealed_secrets()
            .unwrap()
            .into_iter()
            .map(|((_, _, _, v), _)| v)
            .collect();
        kept == [6]
    })
    .await;
    // The master key is rotated: every sealed value re-encrypted, and a
    // restart still opens it.
    let before = engine.store().list_sealed_secrets().unwrap();
    assert_eq!(engine.rotate_master_key("test").await.unwrap(), 1);
    let after = engine.store().list_sealed_secrets().unwrap();
    assert_ne!(before[0].1, after[0].1, "sealed again under the new key");
    engine.shutdown().await;
    drop(engine);
    let engine = engine_with(config(dir.path())).await;
    engine.start();
    let blob = put_for(&engine, TENANT, "after the restart").await;
    idle(&engine).await;
    let child = &derived(&engine, TENANT, &blob)[0];
    assert_eq!(child.producer.clone().unwrap().secrets[0].version, 6);
    assert!(!dir.path().join("master.key.next").exists());
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_of_format_4_opens_migrates_and_keeps_working() {
    use reyna_engine::reyna_store::{NewAudit, NewToken, Role};
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = engine(dir.path()).await;
        tenant(&engine, TENANT).await;
        upload(&engine, "moody").await;
        let token = NewToken {
            tenant: TENANT.into(),
            role: Role::Admin,
            name: "ops".into(),
            hash: "hash-ops".into(),
        };
        engine.create_token(token, "test").await.unwrap();
        // Format 4 kept one config per plugin version, for every tenant.
        let legacy = BTreeMap::from([
            (
                "credential_token".to_owned(),
                "legacy-value-9c2e".to_owned(),
            ),
            ("greeting".to_owned(), "hello".to_owned()),
        ]);
        engine
            .store()
            .set_plugin_config("moody", "0.1.0", legacy, NewAudit::default())
            .await
            .unwrap();
        engine.shutdown().await;
    }
    // As format 4 left it: no tenant records, the version 4.
    {
        let db = redb::Database::open(dir.path().join("reyna.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(redb::TableDefinition::<&str, u64>::new("meta"))
            .unwrap()
            .insert("format", 4)
            .unwrap();
        let tenants: redb::TableDefinition<'static, &str, &[u8]> =
            redb::TableDefinition::new("tenants");
        txn.delete_table(tenants).unwrap();
        txn.commit().unwrap();
    }
    let engine = engine(dir.path()).await;
    assert!(engine.live_tenant(TENANT).unwrap().is_some());
    let ops = engine.list_tokens(None).unwrap();
    assert_eq!(
        ops[0].role,
        Role::Operator,
        "format 4's admin was the operator"
    );
    let install = engine.installation(TENANT, "moody").unwrap();
    assert_eq!(
        install.config.get("greeting").map(String::as_str),
        Some("hello")
    );
    assert!(
        install
            .secrets
            .iter()
            .any(|s| s.name == "credential_token" && s.set),
        "a secret-looking key became a sealed secret: {install:?}"
    );
    assert!(
        engine
            .store()
            .get_plugin("moody", "0.1.0")
            .unwrap()
            .unwrap()
            .config
            .is_empty()
    );
    engine.start();
    let blob = put_for(&engine, TENANT, "still working").await;
    idle(&engine).await;
    assert_eq!(derived(&engine, TENANT, &blob).len(), 1);
    assert!(engine.store().check().unwrap().problems.is_empty());
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_tenant_loses_its_tokens_and_installations_and_its_id_is_never_reused() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    tenant(&engine, OTHER).await;
    upload(&engine, "moody").await;
    engine
        .set_secret(OTHER, "moody", "credential", SECRET, "test")
        .await
        .unwrap();
    let token = reyna_engine::NewToken {
        tenant: OTHER.into(),
        role: reyna_engine::Role::Writer,
        name: "app".into(),
        hash: "hash-app".into(),
    };
    engine.create_token(token, "test").await.unwrap();
    // A job of the tenant still queued when it is deleted is not run.
    let queued = put_for(&engine, OTHER, "queued before the deletion").await;
    let done = engine.delete_tenant(OTHER, "test").await.unwrap();
    assert_eq!((done.tokens, done.installations), (1, 1));
    assert!(engine.list_tokens(Some(OTHER)).unwrap().is_empty());
    assert!(engine.store().list_sealed_secrets().unwrap().is_empty());
    assert!(matches!(
        engine.installation(OTHER, "moody"),
        Err(EngineError::TenantNotFound(_))
    ));
    let id = TenantId::parse(OTHER).unwrap();
    let err = engine
        .create_tenant(&id, "again", "test")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("never reused"), "{err}");
    engine.start();
    idle(&engine).await;
    assert!(derived(&engine, OTHER, &queued).is_empty());
    let letters = engine
        .store()
        .list_dead_letters(Some(OTHER), None, 10)
        .unwrap()
        .items;
    assert_eq!(letters.len(), 1);
    assert!(
        letters[0].reason.contains("was deleted"),
        "{}",
        letters[0].reason
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_under_a_plain_looking_key_never_reaches_a_sinks_receipt() {
    let server = reyna_artifacts::ChatServer::start("{}").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.effects.allow_private = true; // the test server is on loopback
    let approved = format!("http://127.0.0.1:{}", server.port());
    config
        .effects
        .approved_hosts
        .insert("webhook".into(), vec![approved.clone()]);
    let engine = engine_with(config).await;
    tenant(&engine, TENANT).await;
    upload(&engine, "word-count").await;
    // webhook as a sink of word counts.
    let sink = reyna_artifacts::with_manifest(&reyna_artifacts::bytes("webhook").unwrap(), |toml| {
        toml.replace(
            "[limits]",
            "subscribes = [\"blob.created.word-count-v1\"]\ninputs = [\"word-count-v1\"]\n\n[limits]",
        )
    })
    .unwrap();
    engine
        .upload_plugin(sink, None, InstallPolicy::All, "test")
        .await
        .unwrap();
    // The hook's path is the secret, under the plain-looking key `url`.
    let path_secret = "hook-7d3f9b2e5a1c";
    let url = format!("{approved}/in/{path_secret}");
    engine
        .set_secret(TENANT, "webhook", "url", &url, "test")
        .await
        .unwrap();
    engine.start();
    let blob = put_for(&engine, TENANT, "one two three").await;
    idle(&engine).await;
    let count = &derived(&engine, TENANT, &blob)[0];
    let receipt = derived(&engine, TENANT, count)
        .into_iter()
        .find(|b| b.schema == "effect-receipt-v1")
        .expect("the sink's receipt");
    let data = engine
        .store()
        .get_blob_data(TENANT, receipt.id)
        .unwrap()
        .unwrap();
    let text = String::from_utf8(data).unwrap();
    assert!(text.contains("[redacted]"), "{text}");
    assert!(!text.contains(path_secret), "{text}");
    assert_eq!(server.received().len(), 1, "the hook was called");
    let secrets = receipt.producer.unwrap().secrets;
    assert!(
        secrets
            .iter()
            .any(|s| s.plugin == "webhook" && s.name == "url"),
        "{secrets:?}"
    );
    engine.shutdown().await;
}
