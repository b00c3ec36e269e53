//! Schemas and plugins: registration, listing, validation, upload refusals,
//! enable/disable, and each tenant's installation config and secrets.

use axum::http::Method;
use reyna_api::ApiConfig;
use serde_json::json;

use crate::common::*;

fn wasm(name: &str) -> Vec<u8> {
    reyna_artifacts::bytes(name).unwrap()
}

#[tokio::test]
async fn schemas_register_once_list_read_and_validate() {
    let api = api().await;
    let doc = json!({ "type": "object", "properties": { "n": { "type": "integer" } }, "required": ["n"] });
    let created = api
        .post_json(
            "/v1/schemas",
            ADMIN,
            json!({ "id": "number-v1", "schema": doc }),
        )
        .await
        .ok(201);
    assert_eq!(created["created"], true);
    assert_eq!(created["schema"]["id"], "number-v1");
    let again = api
        .post_json(
            "/v1/schemas",
            ADMIN,
            json!({ "id": "number-v1", "schema": doc }),
        )
        .await
        .ok(200);
    assert_eq!(again["created"], false);
    let p = api
        .post_json(
            "/v1/schemas",
            ADMIN,
            json!({ "id": "number-v1", "schema": { "type": "string" } }),
        )
        .await
        .problem(409);
    assert_eq!(p["type"], "https://reyna.dev/problems/schema-conflict");
    let p = api
        .post_json(
            "/v1/schemas",
            ADMIN,
            json!({ "id": "Number.v1", "schema": doc }),
        )
        .await
        .problem(400);
    assert_eq!(p["type"], "https://reyna.dev/problems/invalid-schema-id");
    let p = api
        .post_json(
            "/v1/schemas",
            ADMIN,
            json!({ "id": "broken-v1", "schema": { "type": 5 } }),
        )
        .await
        .problem(422);
    assert_eq!(p["type"], "https://reyna.dev/problems/invalid-schema");
    api.post_json("/v1/schemas", ADMIN, json!({ "id": "x-v1" }))
        .await
        .problem(400);

    let list = api.get("/v1/schemas", READER).await.ok(200);
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"number-v1") && ids.contains(&"text-input-v1"),
        "{ids:?}"
    );
    let one = api.get("/v1/schemas/number-v1", READER).await.ok(200);
    assert_eq!(one["schema"], doc);
    api.get("/v1/schemas/nothing-v1", READER).await.problem(404);

    let call = |body: &str| {
        Call::post("/v1/schemas/number-v1/validate")
            .token(READER)
            .raw("application/json", body.as_bytes().to_vec())
    };
    let ok = api.send(call(r#"{"n": 3}"#)).await.ok(200);
    assert_eq!(ok, json!({ "valid": true, "errors": [], "total": 0 }));
    let bad = api.send(call(r#"{"n": "three"}"#)).await.ok(200);
    assert_eq!(bad["valid"], false);
    assert_eq!(bad["errors"][0]["pointer"], "/n");
    assert_eq!(bad["errors"][0]["rule"], "type");
    api.send(call("{nope")).await.problem(400);
    api.send(
        Call::post("/v1/schemas/nothing-v1/validate")
            .token(READER)
            .raw("application/json", b"{}".to_vec()),
    )
    .await
    .problem(404);

    let audit = api.get("/v1/audit", ADMIN).await.ok(200);
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "schema.register" && e["target"] == "number-v1")
    );
}

#[tokio::test]
async fn plugins_upload_list_disable_enable_and_configure() {
    let api = api().await;
    let upload = |bytes: Vec<u8>| {
        api.send(
            Call::post("/v1/plugins")
                .token(ADMIN)
                .raw("application/wasm", bytes),
        )
    };
    let created = upload(wasm("word-count")).await.ok(201);
    assert_eq!(created["created"], true);
    assert_eq!(created["plugin"]["name"], "word-count");
    assert_eq!(created["plugin"]["kind"], "processor");
    assert_eq!(created["plugin"]["enabled"], true);
    assert!(
        created["plugin"]["digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    // The operator's upload is a global plugin, installed for every tenant.
    assert_eq!(created["plugin"]["owner"], serde_json::Value::Null);
    assert_eq!(created["plugin"]["install"], "all");
    assert_eq!(upload(wasm("word-count")).await.ok(200)["created"], false);

    let p = upload(b"\0asm not really".to_vec()).await.problem(422);
    assert_eq!(p["type"], "https://reyna.dev/problems/not-a-plugin");
    let p = api
        .send(
            Call::post("/v1/plugins")
                .token(ADMIN)
                .raw("application/octet-stream", wasm("word-count")),
        )
        .await
        .problem(400);
    assert!(
        p["detail"].as_str().unwrap().contains("application/wasm"),
        "{p}"
    );

    let list = api.get("/v1/plugins", READER).await.ok(200);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["installed"], true, "acme runs it: {list}");
    assert_eq!(list[0]["owner"], serde_json::Value::Null);
    let versions = api.get("/v1/plugins/word-count", READER).await.ok(200);
    assert_eq!(versions["versions"][0]["version"], "0.1.0");
    assert!(versions["versions"][0]["stats"]["calls"].is_u64());
    api.get("/v1/plugins/nothing", READER).await.problem(404);
    api.get("/v1/plugins/word-count/9.9.9", READER)
        .await
        .problem(404);

    let disabled = api
        .send(Call::post("/v1/plugins/word-count/0.1.0/disable").token(ADMIN))
        .await
        .ok(200);
    assert_eq!(disabled["enabled"], false);
    let id = api.put_text("not routed").await;
    let derived = api
        .get(&format!("/v1/blobs/{id}/derived"), READER)
        .await
        .ok(200);
    assert_eq!(derived["jobs"], json!([]), "a disabled plugin gets no jobs");
    let enabled = api
        .send(Call::post("/v1/plugins/word-count/0.1.0/enable").token(ADMIN))
        .await
        .ok(200);
    assert_eq!(enabled["enabled"], true);
    api.send(Call::post("/v1/plugins/word-count/9.9.9/enable").token(ADMIN))
        .await
        .problem(404);

    // Config is per installation: acme's admin configures acme's.
    let installation = "/v1/tenants/acme/installations/word-count";
    let before = api.get(installation, TENANT_ADMIN).await.ok(200);
    assert_eq!(before["enabled"], true, "{before}");
    assert_eq!(before["explicit"], false, "{before}");
    let configured = api
        .send(
            Call::new(Method::PUT, &format!("{installation}/config"))
                .token(TENANT_ADMIN)
                .json(&json!({ "config": { "mode": "fast" } })),
        )
        .await
        .ok(200);
    assert_ne!(configured["config_digest"], before["config_digest"]);
    assert_eq!(configured["config"], json!({ "mode": "fast" }));
    // A secret is shown as set, never its value.
    let secret = api
        .send(
            Call::new(Method::PUT, &format!("{installation}/secrets/api_key"))
                .token(TENANT_ADMIN)
                .json(&json!({ "value": "sk-do-not-show" })),
        )
        .await;
    assert!(
        !secret.text().contains("sk-do-not-show"),
        "{}",
        secret.text()
    );
    let secret = secret.ok(200);
    assert_eq!(secret["secrets"][0]["name"], "api_key");
    assert_eq!(secret["secrets"][0]["set"], true);
    assert_ne!(secret["config_digest"], configured["config_digest"]);
    api.send(
        Call::new(Method::PUT, &format!("{installation}/config"))
            .token(TENANT_ADMIN)
            .json(&json!({ "mode": "fast" })),
    )
    .await
    .problem(400);
    api.send(
        Call::new(Method::PUT, &format!("{installation}/config"))
            .token(WRITER)
            .json(&json!({ "config": {} })),
    )
    .await
    .problem(403);
    // Globex's installation keeps its own (empty) config.
    let globex = api
        .get("/v1/tenants/globex/installations/word-count", ADMIN)
        .await
        .ok(200);
    assert_eq!(globex["config"], json!({}), "{globex}");
    assert_eq!(globex["secrets"], json!([]), "{globex}");
    // The per-version config of every tenant is gone.
    api.send(
        Call::new(Method::PUT, "/v1/plugins/word-count/0.1.0/config")
            .token(ADMIN)
            .json(&json!({ "config": { "mode": "fast" } })),
    )
    .await
    .problem(404);

    let audit = api.get("/v1/audit", ADMIN).await.ok(200);
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in [
        "plugin.upload",
        "installation.config",
        "installation.secret.set",
    ] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
    api.engine.shutdown().await;
}

#[tokio::test]
async fn an_oversized_upload_is_413() {
    let api = api_with(
        ApiConfig {
            max_plugin_bytes: 1000,
            ..ApiConfig::default()
        },
        &[],
        |_| {},
    )
    .await;
    let p = api
        .send(
            Call::post("/v1/plugins")
                .token(ADMIN)
                .raw("application/wasm", wasm("word-count")),
        )
        .await
        .problem(413);
    assert!(p["detail"].as_str().unwrap().contains("1000 bytes"), "{p}");
    assert_eq!(api.get("/v1/plugins", READER).await.ok(200), json!([]));
}
