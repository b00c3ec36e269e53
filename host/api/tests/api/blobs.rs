//! Blobs: create, read, raw bytes, listing with cursors, derived blobs with
//! a long-poll, lineage; every bad input answered with a precise problem.

use axum::http::header;
use reyna_api::ApiConfig;
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn a_blob_is_created_read_and_its_bytes_are_kept_exactly() {
    let api = api().await;
    let sent =
        br#"{"schema": "text-input-v1", "data": {"content":  "hello   world", "metadata": {"style": "casual"}}}"#;
    let reply = api
        .send(
            Call::post("/v1/blobs")
                .token(WRITER)
                .raw("application/json", sent.to_vec()),
        )
        .await;
    let blob = reply.ok(201);
    let id = blob["id"].as_str().unwrap();
    assert_eq!(reply.headers[header::LOCATION], format!("/v1/blobs/{id}"));
    assert_eq!(blob["schema"], "text-input-v1");
    assert_eq!(blob["tenant"], TENANT);
    assert_eq!(blob["parents"], json!([]));
    assert_eq!(blob["producer"], json!(null));

    let got = api.get(&format!("/v1/blobs/{id}"), READER).await.ok(200);
    assert_eq!(got, blob);
    let data = api.get(&format!("/v1/blobs/{id}/data"), READER).await;
    assert_eq!(data.status, 200);
    assert_eq!(data.headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(data.headers["x-reyna-schema"], "text-input-v1");
    assert_eq!(
        &data.body[..],
        br#"{"content":  "hello   world", "metadata": {"style": "casual"}}"#
    );
    assert_eq!(
        data.headers[header::ETAG],
        format!("\"{}\"", blob["digest"].as_str().unwrap())
    );

    // A child of it, by the same writer.
    let child = api
        .post_json(
            "/v1/blobs",
            WRITER,
            json!({ "schema": "text-input-v1", "data": { "content": "more text here" }, "parents": [id] }),
        )
        .await
        .ok(201);
    assert_eq!(child["parents"], json!([id]));
}

#[tokio::test]
async fn parents_are_bounded_and_deduplicated() {
    let api = api().await;
    let id = api.put_text("the one parent").await;
    // Many copies of one parent are one parent.
    let child = api
        .post_json(
            "/v1/blobs",
            WRITER,
            json!({ "schema": "text-input-v1", "data": { "content": "a child text" }, "parents": vec![&id; 200] }),
        )
        .await
        .ok(201);
    assert_eq!(child["parents"], json!([id]));
    // Past the limit (256) is refused before anything is looked up or stored.
    let before = api.engine.counts().unwrap().blobs;
    let problem = api
        .post_json(
            "/v1/blobs",
            WRITER,
            json!({ "schema": "text-input-v1", "data": { "content": "a child text" }, "parents": vec![&id; 257] }),
        )
        .await
        .problem(400);
    assert_eq!(
        problem["type"],
        "https://reyna.dev/problems/too-many-parents"
    );
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("at most 256 parents"),
        "{problem}"
    );
    assert_eq!(api.engine.counts().unwrap().blobs, before, "nothing stored");
}

#[tokio::test]
async fn listing_pages_with_cursors_and_filters_by_schema() {
    let api = api().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(api.put_text(&format!("text number {i}")).await);
    }
    api.post_json(
        "/v1/blobs",
        WRITER,
        json!({ "schema": "word-count-v1", "data": { "words": 3 } }),
    )
    .await
    .ok(201);

    let mut seen = Vec::new();
    let mut uri = "/v1/blobs?schema=text-input-v1&limit=2".to_owned();
    loop {
        let page = api.get(&uri, READER).await.ok(200);
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|b| b["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(cursor) => uri = format!("/v1/blobs?schema=text-input-v1&limit=2&cursor={cursor}"),
            None => break,
        }
    }
    // Oldest first by creation time; blobs of the same millisecond in id order.
    assert_eq!(seen.len(), ids.len(), "no blob twice: {seen:?}");
    let (mut seen_sorted, mut ids_sorted) = (seen.clone(), ids.clone());
    seen_sorted.sort();
    ids_sorted.sort();
    assert_eq!(seen_sorted, ids_sorted, "every text blob once");
    let all = api.get("/v1/blobs", READER).await.ok(200);
    assert_eq!(all["items"].as_array().unwrap().len(), 6);
    assert_eq!(all["next_cursor"], json!(null));
}

#[tokio::test]
async fn bad_listing_parameters_are_400() {
    let api = api().await;
    let p = api
        .get("/v1/blobs?cursor=nonsense", READER)
        .await
        .problem(400);
    assert_eq!(p["type"], "https://reyna.dev/problems/bad-cursor");
    assert!(p["detail"].as_str().unwrap().contains("next_cursor"), "{p}");
    let p = api.get("/v1/blobs?limit=0", READER).await.problem(400);
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("limit must be between 1 and 1000"),
        "{p}"
    );
    api.get("/v1/blobs?limit=5000", READER).await.problem(400);
    let p = api.get("/v1/blobs?limit=ten", READER).await.problem(400);
    assert_eq!(p["type"], "https://reyna.dev/problems/invalid-query");
    let p = api.get("/v1/blobs?colour=blue", READER).await.problem(400);
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("unknown field `colour`"),
        "{p}"
    );
}

#[tokio::test]
async fn malformed_bodies_are_400_naming_the_problem() {
    let api = api().await;
    let send = |ct: Option<&str>, body: &[u8]| {
        let mut call = Call::post("/v1/blobs").token(WRITER).body(body.to_vec());
        if let Some(ct) = ct {
            call = call.header("content-type", ct);
        }
        api.send(call)
    };
    let p = send(Some("application/json"), b"{\"schema\": ")
        .await
        .problem(400);
    assert_eq!(p["type"], "https://reyna.dev/problems/malformed-json");
    assert!(
        p["detail"].as_str().unwrap().contains("not valid JSON"),
        "{p}"
    );

    let p = send(Some("text/plain"), b"{}").await.problem(400);
    assert_eq!(
        p["type"],
        "https://reyna.dev/problems/unsupported-content-type"
    );
    assert!(p["detail"].as_str().unwrap().contains("text/plain"), "{p}");
    let p = send(None, b"{}").await.problem(400);
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("missing `Content-Type: application/json`"),
        "{p}"
    );

    let p = send(
        Some("application/json"),
        br#"{"schema":"text-input-v1","data":{"content":"a b c d e f"},"tenant":"evil"}"#,
    )
    .await
    .problem(400);
    assert_eq!(p["type"], "https://reyna.dev/problems/invalid-body");
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("unknown field `tenant`"),
        "{p}"
    );
    let p = send(
        Some("application/json"),
        br#"{"data":{"content":"a b c d e f"}}"#,
    )
    .await
    .problem(400);
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("missing field `schema`"),
        "{p}"
    );
    let p = send(
        Some("application/json; charset=utf-8"),
        br#"{"schema":"text-input-v1","data":{"content":"a b c d e f"},"parents":["x"]}"#,
    )
    .await
    .problem(400);
    assert_eq!(p["type"], "https://reyna.dev/problems/invalid-blob-id");
    assert_eq!(
        api.get("/v1/blobs", READER).await.json()["items"],
        json!([]),
        "nothing was stored"
    );
}

#[tokio::test]
async fn a_schema_violation_lists_each_pointer_and_rule() {
    let api = api().await;
    let reply = api
        .post_json(
            "/v1/blobs",
            WRITER,
            json!({ "schema": "text-input-v1", "data": { "content": 5, "metadata": { "style": "loud" } } }),
        )
        .await;
    let p = reply.problem(422);
    assert_eq!(p["type"], "https://reyna.dev/problems/schema-violation");
    assert!(
        p["detail"].as_str().unwrap().contains("text-input-v1"),
        "{p}"
    );
    let errors = p["errors"].as_array().unwrap();
    let at = |pointer: &str| {
        errors
            .iter()
            .find(|e| e["pointer"] == pointer)
            .unwrap_or_else(|| panic!("no {pointer}: {p}"))
    };
    assert_eq!(at("/content")["rule"], "type");
    assert_eq!(at("/metadata/style")["rule"], "enum");
    assert!(!at("/content")["message"].as_str().unwrap().is_empty());
    assert_eq!(p["total"], 2);

    // Content is 10 to 50,000 characters; a short one names its pointer.
    let p = api
        .post_json(
            "/v1/blobs",
            WRITER,
            json!({ "schema": "text-input-v1", "data": { "content": "short" } }),
        )
        .await
        .problem(422);
    assert_eq!(p["type"], "https://reyna.dev/problems/schema-violation");
    assert_eq!(p["total"], 1);
    assert_eq!(p["errors"][0]["pointer"], "/content");
    assert_eq!(p["errors"][0]["rule"], "minLength");
    // The old shape is refused: `text` is not a field of text-input-v1.
    let p = api
        .post_json(
            "/v1/blobs",
            WRITER,
            json!({ "schema": "text-input-v1", "data": { "text": "the old shape of a text" } }),
        )
        .await
        .problem(422);
    let rules: Vec<&str> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["rule"].as_str().unwrap())
        .collect();
    assert!(
        rules.contains(&"required") && rules.contains(&"additionalProperties"),
        "{p}"
    );

    let p = api
        .post_json(
            "/v1/blobs",
            WRITER,
            json!({ "schema": "text-input-v1", "data": {} }),
        )
        .await
        .problem(422);
    assert_eq!(p["errors"][0]["pointer"], "");
    assert_eq!(p["errors"][0]["rule"], "required");

    let p = api
        .post_json(
            "/v1/blobs",
            WRITER,
            json!({ "schema": "no-such-v1", "data": {} }),
        )
        .await
        .problem(422);
    assert_eq!(p["type"], "https://reyna.dev/problems/unknown-schema");
    assert!(p["detail"].as_str().unwrap().contains("no-such-v1"), "{p}");
    assert_eq!(
        api.get("/v1/blobs", READER).await.json()["items"],
        json!([]),
        "nothing was stored"
    );
}

#[tokio::test]
async fn an_oversized_body_is_413_with_the_limit() {
    let config = ApiConfig {
        max_body_bytes: 1024,
        ..ApiConfig::default()
    };
    let api = api_with(config, &[], |e| e.max_blob_bytes = 512).await;
    let big = json!({ "schema": "text-input-v1", "data": { "content": "x".repeat(2000) } })
        .to_string()
        .into_bytes();
    // Announced by Content-Length, refused before reading.
    let reply = api
        .send(
            Call::post("/v1/blobs")
                .token(WRITER)
                .header("content-length", &big.len().to_string())
                .raw("application/json", big.clone()),
        )
        .await;
    let p = reply.problem(413);
    assert!(p["detail"].as_str().unwrap().contains("1024 bytes"), "{p}");
    // Streamed without a length: refused at the limit.
    let p = api
        .send(
            Call::post("/v1/blobs")
                .token(WRITER)
                .raw("application/json", big),
        )
        .await
        .problem(413);
    assert_eq!(p["type"], "https://reyna.dev/problems/payload-too-large");
    // Within the body limit, over the blob limit.
    let p = api
        .post_json(
            "/v1/blobs",
            WRITER,
            json!({ "schema": "text-input-v1", "data": { "content": "y".repeat(600) } }),
        )
        .await
        .problem(413);
    assert_eq!(p["type"], "https://reyna.dev/problems/blob-too-large");
    assert!(p["detail"].as_str().unwrap().contains("512 bytes"), "{p}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_ends_when_a_job_completes_with_no_outputs() {
    // `quiet` succeeds without deriving anything: no `blob.created` event
    // marks its completion, and the long-poll must not wait to its deadline.
    let api = api_with_plugins(&["quiet"]).await;
    let id = api.put_text("nothing comes of this").await;
    let started = std::time::Instant::now();
    let derived = api
        .get(&format!("/v1/blobs/{id}/derived?wait=60"), READER)
        .await
        .ok(200);
    assert_eq!(derived["settled"], true, "{derived}");
    assert_eq!(derived["derived"], json!([]));
    assert_eq!(derived["jobs"][0]["state"], "done");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(50),
        "answered at the deadline, not when the job completed"
    );
}

#[tokio::test]
async fn derived_blobs_long_poll_and_lineage_both_ways() {
    let api = api_with_plugins(&["word-stats"]).await;
    let id = api.put_text("the quick brown fox").await;
    let derived = api
        .get(&format!("/v1/blobs/{id}/derived?wait=30"), READER)
        .await
        .ok(200);
    assert_eq!(derived["settled"], true, "{derived}");
    assert_eq!(derived["blob"], id.as_str());
    let children = derived["derived"].as_array().unwrap();
    assert_eq!(children.len(), 1);
    let child = &children[0];
    assert_eq!(child["schema"], "word-stats-v1");
    assert_eq!(child["parents"], json!([id]));
    assert_eq!(child["producer"]["plugin"], "word-stats");
    assert_eq!(derived["jobs"][0]["state"], "done");
    let child_id = child["id"].as_str().unwrap();
    let stats = api
        .get(&format!("/v1/blobs/{child_id}/data"), READER)
        .await
        .json();
    assert_eq!(stats["words"], 4);

    let up = api
        .get(
            &format!("/v1/blobs/{child_id}/lineage?direction=up"),
            READER,
        )
        .await
        .ok(200);
    assert_eq!(up["root"], child_id);
    assert_eq!(up["nodes"].as_array().unwrap().len(), 2);
    assert_eq!(up["edges"], json!([{ "parent": id, "child": child_id }]));
    let down = api
        .get(
            &format!("/v1/blobs/{id}/lineage?direction=down&depth=1"),
            READER,
        )
        .await
        .ok(200);
    assert_eq!(down["nodes"][1]["id"], child_id);
    assert_eq!(down["nodes"][1]["producer"]["version"], "1.1.0");
    let both = api
        .get(&format!("/v1/blobs/{id}/lineage"), READER)
        .await
        .ok(200);
    assert_eq!(both["nodes"].as_array().unwrap().len(), 2);
    let only = api
        .get(&format!("/v1/blobs/{id}/lineage?depth=0"), READER)
        .await
        .ok(200);
    assert_eq!(only["nodes"].as_array().unwrap().len(), 1);

    api.get(
        &format!("/v1/blobs/{id}/lineage?direction=sideways"),
        READER,
    )
    .await
    .problem(400);
    let p = api
        .get(&format!("/v1/blobs/{id}/lineage?depth=5000"), READER)
        .await
        .problem(400);
    assert!(p["detail"].as_str().unwrap().contains("1024"), "{p}");
    api.get(&format!("/v1/blobs/{id}/derived?wait=soon"), READER)
        .await
        .problem(400);
    api.get("/v1/blobs/01ARZ3NDEKTSV4RRFFQ69G5FAV/derived", READER)
        .await
        .problem(404);
    api.get("/v1/blobs/not-a-ulid", READER).await.problem(400);
    api.engine.shutdown().await;
}

#[tokio::test]
async fn derived_without_wait_answers_at_once() {
    let api = api().await;
    let id = api.put_text("no plugins here").await;
    let derived = api
        .get(&format!("/v1/blobs/{id}/derived"), READER)
        .await
        .ok(200);
    assert_eq!(derived["settled"], true);
    assert_eq!(derived["derived"], json!([]));
    assert_eq!(derived["jobs"], json!([]));
}
