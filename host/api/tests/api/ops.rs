//! Operations: health, readiness, metrics, unknown routes, and the OpenAPI
//! document (valid, and listing every route).

use std::collections::BTreeSet;

use axum::http::{Method, header};
use serde_json::Value;

use crate::common::*;

#[tokio::test]
async fn health_readiness_and_shutdown() {
    let api = api().await;
    assert_eq!(
        api.send(Call::get("/healthz")).await.ok(200)["status"],
        "ok"
    );
    assert_eq!(api.send(Call::get("/readyz")).await.ok(200)["status"], "ok");
    api.state.begin_shutdown();
    api.send(Call::get("/readyz")).await.problem(503);
    assert_eq!(api.send(Call::get("/healthz")).await.status, 200);
}

/// A transport whose server is away: every publish fails.
struct Unreachable;

impl reyna_engine::Transport for Unreachable {
    fn publish<'a>(
        &'a self,
        _job: &'a reyna_engine::RemoteJob,
    ) -> reyna_engine::TransportFuture<'a, Result<(), reyna_engine::TransportError>> {
        Box::pin(async {
            Err(reyna_engine::TransportError::Unavailable(
                "connection refused".to_owned(),
            ))
        })
    }

    fn connected(&self) -> bool {
        false
    }
}

#[tokio::test]
async fn a_state_node_that_lost_nats_is_degraded_but_keeps_accepting_blobs() {
    let transport: std::sync::Arc<dyn reyna_engine::Transport> = std::sync::Arc::new(Unreachable);
    let api = api_with_transport(
        reyna_api::ApiConfig::default(),
        &["word-count"],
        |_| {},
        Some(transport),
    )
    .await;
    let status = api.send(Call::get("/readyz")).await.ok(200)["status"].clone();
    assert!(
        status
            .as_str()
            .unwrap()
            .starts_with("degraded: NATS is unreachable"),
        "{status}"
    );
    let id = api.put_text("kept while NATS is away").await;
    api.get(&format!("/v1/blobs/{id}"), READER).await.ok(200);
    // Its job waits for the transport (held or still pending), not run here
    // and not lost.
    let settled = api
        .engine
        .wait_idle(std::time::Duration::from_millis(200))
        .await;
    assert!(!settled, "the job must wait for the transport");
    let store = api.engine.store();
    let blob = id.parse().unwrap();
    let jobs = store.jobs_for_blob(TENANT, blob).unwrap();
    assert_eq!(jobs.len(), 1);
    assert!(matches!(
        jobs[0].state,
        reyna_engine::reyna_store::JobState::Pending | reyna_engine::reyna_store::JobState::Running
    ));
    assert!(store.children(TENANT, blob).unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_cover_jobs_http_and_the_queue() {
    let api = api_with_plugins(&["word-count"]).await;
    let id = api.put_text("count these words").await;
    api.get(&format!("/v1/blobs/{id}/derived?wait=30"), READER)
        .await
        .ok(200);
    let reply = api.send(Call::get("/metrics")).await;
    assert_eq!(reply.status, 200);
    assert!(
        reply.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = reply.text();
    for needle in [
        "reyna_queue_depth ",
        "reyna_jobs_running ",
        "reyna_dead_letters ",
        "reyna_blobs ",
        "reyna_store_commits_total ",
        "reyna_http_requests_total{",
        "route=\"/v1/blobs\"",
        "reyna_http_request_duration_seconds_bucket{",
        "reyna_jobs_total{",
        "reyna_job_duration_seconds_bucket{",
    ] {
        assert!(text.contains(needle), "no `{needle}` in:\n{text}");
    }
    api.engine.shutdown().await;
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let api = api().await;
    let p = api.get("/v1/nothing", READER).await.problem(404);
    assert!(p["detail"].as_str().unwrap().contains("/v1/nothing"), "{p}");
    let reply = api
        .send(Call::new(Method::DELETE, "/v1/blobs").token(WRITER))
        .await;
    reply.problem(405);
    assert!(reply.headers.contains_key(header::ALLOW));
}

/// Every endpoint the API promises (issues 6 and 19), as (method, OpenAPI path).
const ROUTES: &[(&str, &str)] = &[
    ("post", "/v1/schemas"),
    ("get", "/v1/schemas"),
    ("get", "/v1/schemas/{id}"),
    ("post", "/v1/schemas/{id}/validate"),
    ("post", "/v1/plugins"),
    ("get", "/v1/plugins"),
    ("get", "/v1/plugins/{name}"),
    ("get", "/v1/plugins/{name}/{version}"),
    ("post", "/v1/plugins/{name}/{version}/enable"),
    ("post", "/v1/plugins/{name}/{version}/disable"),
    ("post", "/v1/blobs"),
    ("get", "/v1/blobs"),
    ("get", "/v1/blobs/{id}"),
    ("get", "/v1/blobs/{id}/data"),
    ("get", "/v1/blobs/{id}/lineage"),
    ("get", "/v1/blobs/{id}/graph"),
    ("get", "/v1/blobs/{id}/derived"),
    ("post", "/v1/blobs/{id}/rerun"),
    ("get", "/v1/jobs"),
    ("get", "/v1/jobs/{id}"),
    ("get", "/v1/jobs/{id}/logs"),
    ("get", "/v1/dead-letters"),
    ("post", "/v1/dead-letters/{id}/replay"),
    ("post", "/v1/tokens"),
    ("get", "/v1/tokens"),
    ("delete", "/v1/tokens/{id}"),
    ("get", "/v1/audit"),
    ("get", "/v1/me"),
    ("post", "/v1/tenants"),
    ("get", "/v1/tenants"),
    ("get", "/v1/tenants/{tenant}"),
    ("patch", "/v1/tenants/{tenant}"),
    ("delete", "/v1/tenants/{tenant}"),
    ("get", "/v1/usage"),
    ("get", "/metrics/tenants"),
    ("get", "/v1/tenants/{tenant}/installations"),
    ("get", "/v1/tenants/{tenant}/installations/{plugin}"),
    ("put", "/v1/tenants/{tenant}/installations/{plugin}"),
    ("put", "/v1/tenants/{tenant}/installations/{plugin}/config"),
    (
        "put",
        "/v1/tenants/{tenant}/installations/{plugin}/secrets/{key}",
    ),
    (
        "delete",
        "/v1/tenants/{tenant}/installations/{plugin}/secrets/{key}",
    ),
    ("post", "/v1/secrets/rotate-master-key"),
    ("get", "/v1/events"),
    ("get", "/v1/ws"),
    ("get", "/metrics"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/openapi.json"),
];

fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    doc.pointer(pointer)
}

fn refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "$ref" {
                    out.push(v.as_str().unwrap().to_owned());
                } else {
                    refs(v, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_openapi_document_is_valid_and_lists_every_route() {
    let api = api().await;
    let reply = api.send(Call::get("/openapi.json")).await;
    let doc = reply.ok(200);

    // It parses back into utoipa's OpenAPI 3 model and has what 3.x requires.
    let parsed: utoipa::openapi::OpenApi = serde_json::from_slice(&reply.body).unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    assert_eq!(parsed.info.title, "Reyna");
    assert!(!parsed.info.version.is_empty());
    assert!(doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer");

    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if !["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                continue;
            }
            let responses = op["responses"]
                .as_object()
                .unwrap_or_else(|| panic!("{method} {path} has no responses"));
            assert!(!responses.is_empty(), "{method} {path} has no responses");
            assert!(
                op["operationId"].is_string(),
                "{method} {path} has no operationId"
            );
            for name in path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            {
                let declared = op["parameters"].as_array().is_some_and(|ps| {
                    ps.iter()
                        .any(|p| p["name"] == name && p["in"] == "path" && p["required"] == true)
                });
                assert!(
                    declared,
                    "{method} {path} does not declare path parameter `{name}`"
                );
            }
            documented.insert((method.clone(), path.clone()));
        }
    }
    let expected: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    let missing: Vec<_> = expected.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "routes missing from the OpenAPI document: {missing:?}"
    );
    let extra: Vec<_> = documented.difference(&expected).collect();
    assert!(
        extra.is_empty(),
        "documented routes this test does not know: {extra:?}"
    );

    // Every reference resolves.
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for reference in all {
        assert!(
            resolve(&doc, &reference).is_some(),
            "dangling $ref {reference}"
        );
    }

    // Every documented route is served (the fallback would say "no route").
    // The tenant does not exist, so no request changes a real one.
    for (method, path) in &documented {
        let uri = path
            .replace("{id}", "01ARZ3NDEKTSV4RRFFQ69G5FAV")
            .replace("{name}", "word-count")
            .replace("{version}", "0.1.0")
            .replace("{tenant}", "nobody")
            .replace("{plugin}", "word-count")
            .replace("{key}", "api_key");
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        if uri == "/v1/events" {
            // A live stream never ends; its status is enough.
            assert_eq!(
                api.open(Call::new(method, &uri).token(ADMIN))
                    .await
                    .status(),
                200
            );
            continue;
        }
        let reply = api.send(Call::new(method.clone(), &uri).token(ADMIN)).await;
        let no_route = reply.status == 404 && reply.text().contains("no route");
        assert!(
            !no_route && reply.status != 405,
            "{method} {uri} is documented but not routed: {}",
            reply.text()
        );
    }
}
