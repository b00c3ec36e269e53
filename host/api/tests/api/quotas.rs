//! Quotas and usage through the router: the operator sets a tenant's
//! quotas (`PATCH /v1/tenants/{tenant}`); a blob past one is 429 with
//! `Retry-After` and a problem naming the quota, and nothing is stored; a
//! tenant admin reads its quotas, holdings and usage, never another's.

use axum::http::{Method, header};
use serde_json::json;

use crate::common::{
    ADMIN, Call, OTHER, READER, STRANGER, TENANT, TENANT_ADMIN, WRITER, api_with_plugins,
};

fn kind(p: &serde_json::Value) -> &str {
    p["type"].as_str().unwrap().rsplit('/').next().unwrap()
}

fn patch(tenant: &str, body: serde_json::Value) -> Call {
    Call::new(Method::PATCH, &format!("/v1/tenants/{tenant}")).json(&body)
}

/// A text-input-v1 blob naming `label` (content is at least 10 characters).
fn blob(label: &str) -> serde_json::Value {
    json!({ "schema": "text-input-v1", "data": { "content": format!("a sample text: {label}") } })
}

async fn blob_count(api: &crate::common::Api, token: &str) -> usize {
    api.get("/v1/blobs?limit=1000", token).await.ok(200)["items"]
        .as_array()
        .unwrap()
        .len()
}

#[tokio::test]
async fn past_a_quota_a_blob_is_429_with_retry_after_naming_the_quota_and_nothing_is_stored() {
    let api = api_with_plugins(&[]).await;
    // Only the operator sets quotas.
    let refused = api
        .send(patch(TENANT, json!({ "quotas": { "blobs_per_second": 1 } })).token(TENANT_ADMIN))
        .await;
    assert_eq!(kind(&refused.problem(403)), "forbidden");
    let set = api
        .send(
            patch(
                TENANT,
                json!({ "quotas": { "blobs_per_second": 1, "blob_burst": 2 } }),
            )
            .token(ADMIN),
        )
        .await
        .ok(200);
    assert_eq!(
        set["quotas"],
        json!({ "blobs_per_second": 1, "blob_burst": 2 })
    );

    for text in ["one", "two"] {
        api.post_json("/v1/blobs", WRITER, blob(text)).await.ok(201);
    }
    let reply = api.post_json("/v1/blobs", WRITER, blob("three")).await;
    let p = reply.problem(429);
    assert_eq!(kind(&p), "quota-exceeded");
    assert_eq!(p["quota"], "blob-rate");
    assert_eq!(reply.headers[header::RETRY_AFTER], "1");
    assert_eq!(blob_count(&api, READER).await, 2);
    // globex is not slowed.
    for text in ["a", "b", "c"] {
        api.post_json("/v1/blobs", STRANGER, blob(text))
            .await
            .ok(201);
    }

    // Stored bytes: acme holds 2 small blobs; a quota below what one more adds refuses it.
    let held = api
        .get(&format!("/v1/tenants/{TENANT}"), TENANT_ADMIN)
        .await
        .ok(200);
    let stored = held["holdings"]["stored_bytes"].as_u64().unwrap();
    assert!(stored > 0);
    api.send(patch(TENANT, json!({ "quotas": { "stored_bytes": stored + 5 } })).token(ADMIN))
        .await
        .ok(200);
    let reply = api
        .post_json("/v1/blobs", WRITER, blob("longer than five bytes"))
        .await;
    let p = reply.problem(429);
    assert_eq!(p["quota"], "stored-bytes");
    assert!(
        p["detail"].as_str().unwrap().contains("stored-bytes quota"),
        "{p}"
    );
    assert!(reply.headers.contains_key(header::RETRY_AFTER));
    assert_eq!(blob_count(&api, READER).await, 2);

    // `{}` returns acme to the operator's defaults (none here).
    let back = api
        .send(patch(TENANT, json!({ "quotas": {} })).token(ADMIN))
        .await
        .ok(200);
    assert_eq!(back["quotas"], json!({}));
    api.post_json("/v1/blobs", WRITER, blob("free again"))
        .await
        .ok(201);
}

#[tokio::test]
async fn bad_quota_values_are_refused_and_change_nothing() {
    let api = api_with_plugins(&[]).await;
    let reply = api
        .send(patch(TENANT, json!({ "quotas": { "share": 0 } })).token(ADMIN))
        .await;
    assert!(
        reply.problem(422)["detail"]
            .as_str()
            .unwrap()
            .contains("share")
    );
    let reply = api
        .send(patch(TENANT, json!({ "quotas": { "blobs_per_sec": 3 } })).token(ADMIN))
        .await;
    reply.problem(400);
    let reply = api
        .send(
            patch(
                TENANT,
                json!({ "quotas": { "budgets": { "Tokens!": { "per_day": 1 } } } }),
            )
            .token(ADMIN),
        )
        .await;
    assert!(
        reply.problem(422)["detail"]
            .as_str()
            .unwrap()
            .contains("usage unit")
    );
    let reply = api
        .send(patch("nobody", json!({ "quotas": {} })).token(ADMIN))
        .await;
    reply.problem(404);
    let tenant = api
        .get(&format!("/v1/tenants/{TENANT}"), ADMIN)
        .await
        .ok(200);
    assert_eq!(tenant["quotas"], json!({}));
}

#[tokio::test]
async fn a_tenant_admin_reads_its_own_usage_and_never_another_tenants() {
    let api = api_with_plugins(&["word-count"]).await;
    let mut bytes = 0;
    for text in ["one two", "three four five"] {
        api.post_json("/v1/blobs", WRITER, blob(text)).await.ok(201);
        bytes += blob(text)["data"].to_string().len() as u64;
    }
    api.post_json("/v1/blobs", STRANGER, blob("elsewhere"))
        .await
        .ok(201);
    assert!(
        api.engine
            .wait_idle(std::time::Duration::from_secs(30))
            .await
    );

    let usage = api
        .get("/v1/usage?granularity=day", TENANT_ADMIN)
        .await
        .ok(200);
    assert_eq!(usage["tenant"], TENANT);
    assert_eq!(usage["granularity"], "day");
    let total = &usage["total"];
    assert_eq!(total["blobs_created"], 2);
    assert_eq!(total["blobs_derived"], 2);
    assert_eq!(total["jobs_run"], 2);
    assert_eq!(total["effect_calls"], 0);
    assert!(total["bytes_stored"].as_u64().unwrap() > bytes);
    assert_eq!(usage["periods"].as_array().unwrap().len(), 1);

    // Another tenant's usage is not found for acme's admin; the operator reads it.
    let reply = api
        .get(&format!("/v1/usage?tenant={OTHER}"), TENANT_ADMIN)
        .await;
    reply.problem(404);
    let theirs = api
        .get(
            &format!("/v1/usage?tenant={OTHER}&granularity=month"),
            ADMIN,
        )
        .await
        .ok(200);
    assert_eq!(theirs["total"]["blobs_created"], 1);
    // A writer is not an admin.
    api.get("/v1/usage", WRITER).await.problem(403);
    // Bad queries.
    let p = api
        .get("/v1/usage?granularity=week", TENANT_ADMIN)
        .await
        .problem(400);
    assert_eq!(kind(&p), "invalid-usage-query");
    let p = api
        .get("/v1/usage?from=10&to=5", TENANT_ADMIN)
        .await
        .problem(400);
    assert_eq!(kind(&p), "invalid-usage-query");
    let p = api
        .get("/v1/usage?from=0&to=9000000000000", TENANT_ADMIN)
        .await
        .problem(400);
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("at most 2000 periods"),
        "{p}"
    );
    api.get("/v1/usage?bogus=1", TENANT_ADMIN)
        .await
        .problem(400);

    // Per-tenant series are the operator's; the public /metrics has none.
    let series = api.get("/metrics/tenants", ADMIN).await;
    assert_eq!(series.status, 200);
    let text = series.text();
    assert!(
        text.contains("reyna_tenant_month_blobs_created{tenant=\"acme\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("reyna_tenant_month_blobs_created{tenant=\"globex\"} 1"),
        "{text}"
    );
    api.get("/metrics/tenants", TENANT_ADMIN).await.problem(403);
    assert!(
        !api.get("/metrics", READER)
            .await
            .text()
            .contains("tenant=\"")
    );
}

#[tokio::test]
async fn tenant_series_are_bounded_the_rest_summed_as_other() {
    let config = reyna_api::ApiConfig {
        metrics_max_tenants: 1,
        ..reyna_api::ApiConfig::default()
    };
    let api = crate::common::api_with(config, &[], |_| {}).await;
    api.post_json("/v1/blobs", WRITER, blob("one"))
        .await
        .ok(201);
    api.post_json("/v1/blobs", STRANGER, blob("two"))
        .await
        .ok(201);
    let text = api.get("/metrics/tenants", ADMIN).await.text();
    let created: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("reyna_tenant_month_blobs_created{"))
        .collect();
    // acme (first by id) alone, then globex (and any other) summed.
    assert_eq!(
        created,
        [
            "reyna_tenant_month_blobs_created{tenant=\"acme\"} 1",
            "reyna_tenant_month_blobs_created{tenant=\"_other\"} 1"
        ]
    );
}
