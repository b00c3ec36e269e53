//! `GET /v1/blobs/{id}/graph`: the lineage walk laid out for drawing, with
//! the same parameters, bounds and tenant scoping as `/lineage`.

use serde_json::{Value, json};

use crate::common::*;

/// Registers `note-v1` (any object) and returns the API.
pub async fn notes_api() -> Api {
    notes_api_with(|_| {}).await
}

/// [`notes_api`] with the engine's configuration tuned.
pub async fn notes_api_with(tune: impl FnOnce(&mut reyna_engine::EngineConfig)) -> Api {
    let api = api_with(reyna_api::ApiConfig::default(), &[], tune).await;
    api.post_json(
        "/v1/schemas",
        ADMIN,
        json!({ "id": "note-v1", "schema": { "type": "object" } }),
    )
    .await
    .ok(201);
    api
}

/// A `note-v1` blob with `data` and `parents`, made with `token`; its id.
pub async fn note(api: &Api, token: &str, data: Value, parents: &[&str]) -> String {
    api.post_json(
        "/v1/blobs",
        token,
        json!({ "schema": "note-v1", "data": data, "parents": parents }),
    )
    .await
    .ok(201)["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn boxes(graph: &Value) -> Vec<(String, [f64; 4])> {
    graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let f = |k: &str| n[k].as_f64().unwrap();
            (
                n["id"].as_str().unwrap().to_owned(),
                [f("x"), f("y"), f("width"), f("height")],
            )
        })
        .collect()
}

/// Every box inside the drawing, no two overlapping, every edge's line
/// from its parent's bottom centre to its child's top centre, parents above.
fn assert_drawable(graph: &Value) {
    let boxes = boxes(graph);
    let (width, height) = (
        graph["width"].as_f64().unwrap(),
        graph["height"].as_f64().unwrap(),
    );
    for (i, (id, [x, y, w, h])) in boxes.iter().enumerate() {
        assert!(
            *x >= 0.0 && *y >= 0.0 && x + w <= width && y + h <= height,
            "{id} is off the drawing"
        );
        for (other, [x2, y2, w2, h2]) in &boxes[i + 1..] {
            let apart = x + w <= *x2 || x2 + w2 <= *x || y + h <= *y2 || y2 + h2 <= *y;
            assert!(apart, "{id} and {other} overlap");
        }
    }
    let at = |id: &str| {
        boxes
            .iter()
            .find(|(b, _)| b == id)
            .map(|(_, r)| *r)
            .unwrap()
    };
    for edge in graph["edges"].as_array().unwrap() {
        let [px, py, pw, ph] = at(edge["from"].as_str().unwrap());
        let [cx, cy, cw, _] = at(edge["to"].as_str().unwrap());
        assert!(py + ph <= cy, "{edge}: the parent is not above its child");
        let points = edge["points"].as_array().unwrap();
        assert_eq!(points.first().unwrap(), &json!([px + pw / 2.0, py + ph]));
        assert_eq!(points.last().unwrap(), &json!([cx + cw / 2.0, cy]));
    }
}

/// The (parent, child) pairs of a `/graph` (`from`, `to`) or `/lineage`
/// (`parent`, `child`) answer, sorted.
fn pairs(answer: &Value, from: &str, to: &str) -> Vec<(String, String)> {
    let mut pairs: Vec<_> = answer["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e[from].as_str().unwrap().to_owned(),
                e[to].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    pairs.sort();
    pairs
}

/// `/graph` and `/lineage` of `id` with the same `query`; asserts they
/// hold the same blobs and edges, and that the graph is drawable.
async fn graph_like_lineage(api: &Api, id: &str, query: &str) -> Value {
    let graph = api
        .get(&format!("/v1/blobs/{id}/graph?{query}"), READER)
        .await
        .ok(200);
    let lineage = api
        .get(&format!("/v1/blobs/{id}/lineage?{query}"), READER)
        .await
        .ok(200);
    let ids = |answer: &Value| -> Vec<String> {
        answer["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        ids(&graph),
        ids(&lineage),
        "the same blobs, in the same order"
    );
    assert_eq!(
        pairs(&graph, "from", "to"),
        pairs(&lineage, "parent", "child")
    );
    assert_eq!(graph["truncated"], lineage["truncated"]);
    assert_drawable(&graph);
    graph
}

#[tokio::test]
async fn a_graph_lays_out_the_lineage_ancestors_above() {
    let api = notes_api().await;
    let root = note(&api, WRITER, json!({ "n": 0 }), &[]).await;
    let left = note(&api, WRITER, json!({ "n": 1 }), &[&root]).await;
    let right = note(&api, WRITER, json!({ "n": 2 }), &[&root]).await;
    let joined = note(&api, WRITER, json!({ "n": 3 }), &[&left, &right]).await;

    let graph = api
        .get(&format!("/v1/blobs/{left}/graph"), READER)
        .await
        .ok(200);
    assert_eq!(graph["root"], left.as_str());
    assert_eq!(graph["truncated"], false);
    assert_eq!(
        graph["nodes"][0]["id"],
        left.as_str(),
        "the blob asked about first"
    );
    let mut ids: Vec<_> = boxes(&graph).into_iter().map(|(id, _)| id).collect();
    ids.sort();
    // Ancestors of `left` (root) and its descendants (joined); `right` is
    // neither.
    let mut want = [root.clone(), left.clone(), joined.clone()];
    want.sort();
    assert_eq!(ids, want, "{graph}");
    for node in graph["nodes"].as_array().unwrap() {
        assert_eq!(node["schema"], "note-v1");
        assert_eq!(node["producer"], Value::Null, "created by a client");
        assert_eq!(node["width"], 200.0);
        assert_eq!(node["height"], 56.0);
    }
    let mut want = vec![(root.clone(), left.clone()), (left.clone(), joined.clone())];
    want.sort();
    assert_eq!(pairs(&graph, "from", "to"), want);
    assert_drawable(&graph);

    // Down from the root, every blob; the lineage's edges, each drawn.
    let graph = graph_like_lineage(&api, &root, "direction=down&depth=2").await;
    assert_eq!(graph["nodes"].as_array().unwrap().len(), 4);
    assert_eq!(graph["edges"].as_array().unwrap().len(), 4);
    let y = |id: &str| boxes(&graph).into_iter().find(|(b, _)| b == id).unwrap().1[1];
    assert!(y(&root) < y(&left) && y(&left) == y(&right) && y(&right) < y(&joined));

    // `up` from the root: itself alone.
    let graph = api
        .get(&format!("/v1/blobs/{root}/graph?direction=up"), READER)
        .await
        .ok(200);
    assert_eq!(graph["nodes"].as_array().unwrap().len(), 1);
    assert_eq!(graph["edges"], json!([]));
}

#[tokio::test]
async fn a_graph_of_three_hundred_blobs_is_readable() {
    let api = notes_api().await;
    // Ten inputs, each the root of a small tree, all joined at the end:
    // one connected graph of 300 blobs, some joins spanning many layers.
    let top = note(&api, WRITER, json!({ "n": "top" }), &[]).await;
    let mut made = 1;
    let mut leaves = Vec::new();
    for i in 0..10 {
        let input = note(&api, WRITER, json!({ "i": i }), &[&top]).await;
        let mut layer = vec![input];
        made += 1;
        while made < 30 * (i + 1) - 1 {
            let parent = layer[made % layer.len()].clone();
            let child = note(&api, WRITER, json!({ "n": made }), &[&parent]).await;
            layer.push(child);
            made += 1;
        }
        leaves.push(layer.pop().unwrap());
    }
    let refs: Vec<&str> = leaves.iter().map(String::as_str).collect();
    note(&api, WRITER, json!({ "n": "all" }), &refs).await;
    made += 1;
    assert_eq!(made, 300);

    let graph = graph_like_lineage(&api, &top, "direction=down&depth=100").await;
    assert_eq!(graph["nodes"].as_array().unwrap().len(), 300);
    assert_eq!(graph["truncated"], false);
    // One edge into each blob but the top, ten into the last.
    assert_eq!(graph["edges"].as_array().unwrap().len(), 298 + 10);
}

#[tokio::test]
async fn a_graph_is_scoped_and_checked_like_lineage() {
    let api = notes_api().await;
    let mine = note(&api, WRITER, json!({ "n": 1 }), &[]).await;
    let theirs = note(&api, STRANGER, json!({ "n": 2 }), &[]).await;

    // Another tenant's blob is not found, whoever asks.
    let p = api
        .get(&format!("/v1/blobs/{theirs}/graph"), READER)
        .await
        .problem(404);
    assert!(p["detail"].as_str().unwrap().contains(&theirs));
    api.get(&format!("/v1/blobs/{mine}/graph"), STRANGER)
        .await
        .problem(404);
    // A reader's token is enough; no token is refused.
    api.get(&format!("/v1/blobs/{mine}/graph"), READER)
        .await
        .ok(200);
    let reply = api
        .send(Call::get(&format!("/v1/blobs/{mine}/graph")))
        .await;
    assert_eq!(reply.status.as_u16(), 401);
    // The lineage's bounds and parameters.
    let p = api
        .get(&format!("/v1/blobs/{mine}/graph?depth=5000"), READER)
        .await
        .problem(400);
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("depth must be at most 1024"),
        "{p}"
    );
    api.get(
        &format!("/v1/blobs/{mine}/graph?direction=sideways"),
        READER,
    )
    .await
    .problem(400);
    api.get(&format!("/v1/blobs/{mine}/graph?colour=red"), READER)
        .await
        .problem(400);
    api.get("/v1/blobs/not-an-id/graph", READER)
        .await
        .problem(400);
}

#[tokio::test]
async fn the_graph_route_is_in_the_openapi_document() {
    let api = api().await;
    let doc = api.get("/openapi.json", READER).await.ok(200);
    let op = &doc["paths"]["/v1/blobs/{id}/graph"]["get"];
    assert!(op.is_object(), "{}", doc["paths"]);
    assert!(doc["components"]["schemas"]["Graph"].is_object());
}
