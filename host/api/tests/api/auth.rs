//! Tokens, roles and tenancy: 401 without a valid token, 403 for the wrong
//! role, 404 for another tenant's things; token CRUD and the audit log.

use axum::http::{Method, header};
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn a_missing_or_unknown_token_is_401() {
    let api = api().await;
    let reply = api.send(Call::get("/v1/blobs")).await;
    let p = reply.problem(401);
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("Authorization: Bearer"),
        "{p}"
    );
    assert_eq!(
        reply.headers[header::WWW_AUTHENTICATE],
        "Bearer realm=\"reyna\""
    );
    api.get("/v1/blobs", "reyna_nope").await.problem(401);
    let p = api
        .send(Call::get("/v1/blobs").header("authorization", "Basic abc"))
        .await
        .problem(401);
    assert!(
        p["detail"].as_str().unwrap().contains("Bearer <token>"),
        "{p}"
    );
    // Auth comes before the body is even read.
    api.send(Call::post("/v1/blobs").raw("application/json", b"{oops".to_vec()))
        .await
        .problem(401);
}

#[tokio::test]
async fn the_wrong_role_is_403_before_the_body_is_read() {
    let api = api().await;
    let blob = json!({ "schema": "text-input-v1", "data": { "content": "hello there" } });
    let p = api.post_json("/v1/blobs", READER, blob).await.problem(403);
    assert!(p["detail"].as_str().unwrap().contains("writer role"), "{p}");
    // Malformed body, wrong role: the role answers.
    api.send(
        Call::post("/v1/schemas")
            .token(WRITER)
            .raw("application/json", b"{".to_vec()),
    )
    .await
    .problem(403);
    api.post_json(
        "/v1/tokens",
        WRITER,
        json!({ "tenant": "acme", "role": "reader" }),
    )
    .await
    .problem(403);
    api.get("/v1/tokens", WRITER).await.problem(403);
    api.get("/v1/audit", READER).await.problem(403);
    api.send(
        Call::post("/v1/plugins")
            .token(WRITER)
            .raw("application/wasm", vec![0; 8]),
    )
    .await
    .problem(403);
    api.send(Call::post("/v1/plugins/word-count/0.1.0/disable").token(READER))
        .await
        .problem(403);
    // Readers read.
    api.get("/v1/blobs", READER).await.ok(200);
    api.get("/v1/schemas", READER).await.ok(200);
}

#[tokio::test]
async fn another_tenants_blob_is_404_everywhere() {
    let api = api().await;
    let id = api.put_text("secret text").await;
    for path in ["", "/data", "/lineage", "/derived"] {
        let p = api
            .get(&format!("/v1/blobs/{id}{path}"), STRANGER)
            .await
            .problem(404);
        assert_eq!(p["type"], "https://reyna.dev/problems/not-found");
        api.get(&format!("/v1/blobs/{id}{path}"), READER)
            .await
            .ok(200);
    }
    let page = api.get("/v1/blobs", STRANGER).await.ok(200);
    assert_eq!(page["items"], json!([]));
    // Nor can it be a parent in another tenant.
    let p = api
        .post_json(
            "/v1/blobs",
            STRANGER,
            json!({ "schema": "text-input-v1", "data": { "content": "a child text" }, "parents": [id] }),
        )
        .await
        .problem(422);
    assert_eq!(p["type"], "https://reyna.dev/problems/unknown-parent");
}

#[tokio::test]
async fn admins_create_list_and_revoke_tokens_and_it_is_audited() {
    let api = api().await;
    // A token belongs to an existing tenant: the operator creates it first.
    let p = api
        .post_json(
            "/v1/tokens",
            ADMIN,
            json!({ "tenant": "initech", "role": "writer", "name": "ci" }),
        )
        .await
        .problem(404);
    assert!(p["detail"].as_str().unwrap().contains("initech"), "{p}");
    let tenant = api
        .post_json(
            "/v1/tenants",
            ADMIN,
            json!({ "id": "initech", "name": "Initech" }),
        )
        .await
        .ok(201);
    assert_eq!(tenant["id"], "initech");
    assert_eq!(tenant["name"], "Initech");
    assert_eq!(tenant["deleted_at"], serde_json::Value::Null);
    let created = api
        .post_json(
            "/v1/tokens",
            ADMIN,
            json!({ "tenant": "initech", "role": "writer", "name": "ci" }),
        )
        .await
        .ok(201);
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("reyna_") && secret.len() > 40);
    let id = created["token"]["id"].as_str().unwrap().to_owned();
    assert_eq!(created["token"]["tenant"], "initech");
    assert_eq!(created["token"]["role"], "writer");

    // The new token works, in its own tenant.
    let blob = api
        .post_json(
            "/v1/blobs",
            &secret,
            json!({ "schema": "text-input-v1", "data": { "content": "hello there" } }),
        )
        .await
        .ok(201);
    assert_eq!(blob["tenant"], "initech");
    let me = api.get("/v1/me", &secret).await.ok(200);
    assert_eq!(me["tenant"], "initech");
    assert_eq!(me["role"], "writer");
    assert_eq!(me["token_id"], id.as_str());

    // The operator lists every tenant's tokens (the five of `common` and this one).
    let list = api.get("/v1/tokens", ADMIN).await.ok(200);
    let listed = list.as_array().unwrap();
    assert_eq!(listed.len(), 6, "{list}");
    assert!(
        !list.to_string().contains(&secret),
        "secrets are never listed"
    );
    assert!(listed.iter().all(|t| t.get("hash").is_none()));

    let p = api
        .send(Call::new(Method::DELETE, &format!("/v1/tokens/{id}")).token(WRITER))
        .await
        .problem(403);
    assert_eq!(p["type"], "https://reyna.dev/problems/forbidden");
    // Acme's admin does not see initech's token: not found, not forbidden.
    api.send(Call::new(Method::DELETE, &format!("/v1/tokens/{id}")).token(TENANT_ADMIN))
        .await
        .problem(404);
    let reply = api
        .send(Call::new(Method::DELETE, &format!("/v1/tokens/{id}")).token(ADMIN))
        .await;
    assert_eq!(reply.status, 204);
    api.get("/v1/blobs", &secret).await.problem(401);
    api.send(Call::new(Method::DELETE, &format!("/v1/tokens/{id}")).token(ADMIN))
        .await
        .problem(404);

    let audit = api.get("/v1/audit", ADMIN).await.ok(200);
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"tenant.create")
            && actions.contains(&"token.create")
            && actions.contains(&"token.delete"),
        "{actions:?}"
    );
    let entry = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "token.delete")
        .unwrap();
    assert_eq!(entry["target"], id.as_str());
    assert_eq!(entry["tenant"], "initech");
    assert_eq!(entry["outcome"], "ok");
    assert!(entry["actor"].as_str().unwrap().starts_with("token:"));
    // Initech's entries are not in acme's audit.
    let acme = api.get("/v1/audit", TENANT_ADMIN).await.ok(200);
    assert!(
        acme.as_array()
            .unwrap()
            .iter()
            .all(|e| e["tenant"] == "acme"),
        "{acme}"
    );
}

#[tokio::test]
async fn token_requests_are_checked() {
    let api = api().await;
    let p = api
        .post_json(
            "/v1/tokens",
            ADMIN,
            json!({ "tenant": "Bad Tenant!", "role": "writer" }),
        )
        .await
        .problem(400);
    assert!(p["detail"].as_str().unwrap().contains("tenant"), "{p}");
    let p = api
        .post_json(
            "/v1/tokens",
            ADMIN,
            json!({ "tenant": "a", "role": "root" }),
        )
        .await
        .problem(400);
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("unknown variant `root`"),
        "{p}"
    );
    // A token cannot revoke itself (so the last admin cannot lock everyone
    // out by accident): neither the operator nor a tenant admin.
    let tokens = api.get("/v1/tokens", ADMIN).await.ok(200);
    let id_of = |name: &str| {
        tokens
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("no token named {name} in {tokens}"))["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let own = id_of("operator");
    api.send(Call::new(Method::DELETE, &format!("/v1/tokens/{own}")).token(ADMIN))
        .await
        .problem(409);
    let own = id_of("admin");
    api.send(Call::new(Method::DELETE, &format!("/v1/tokens/{own}")).token(TENANT_ADMIN))
        .await
        .problem(409);
    // A tenant admin cannot lock the operator out, even one of its tenant.
    let operator = id_of("operator");
    let p = api
        .send(Call::new(Method::DELETE, &format!("/v1/tokens/{operator}")).token(TENANT_ADMIN))
        .await
        .problem(403);
    assert!(p["detail"].as_str().unwrap().contains("operator"), "{p}");
    api.get("/v1/me", ADMIN).await.ok(200);
    api.send(Call::new(Method::DELETE, "/v1/tokens/not-an-id").token(ADMIN))
        .await
        .problem(404);
}
