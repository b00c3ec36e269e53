//! `GET /v1/blobs?schema=S&field=<JSON pointer>&value=<text>`: the
//! tenant's blobs whose data holds a value, a scan bounded like a plugin's
//! `query-blobs`.

use serde_json::{Value, json};

use crate::common::*;
use crate::graph::{note, notes_api, notes_api_with};

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_filter_lists_the_blobs_holding_the_value() {
    let api = notes_api().await;
    let b1 = note(
        &api,
        WRITER,
        json!({ "book_id": "b1", "n": 3, "ok": true, "meta": { "a/b": "x~y" } }),
        &[],
    )
    .await;
    let _b2 = note(
        &api,
        WRITER,
        json!({ "book_id": "b2", "n": 4, "ok": false }),
        &[],
    )
    .await;
    let b1_again = note(&api, WRITER, json!({ "book_id": "b1", "n": "3" }), &[]).await;
    // Another tenant's blob holding the same value is never listed.
    let theirs = note(&api, STRANGER, json!({ "book_id": "b1" }), &[]).await;

    let page = api
        .get("/v1/blobs?schema=note-v1&field=/book_id&value=b1", READER)
        .await
        .ok(200);
    assert_eq!(
        ids(&page),
        vec![b1.clone(), b1_again.clone()],
        "oldest first"
    );
    assert_eq!(page["next_cursor"], Value::Null);
    // A number matches its JSON text, as does the string; so do booleans.
    let page = api
        .get("/v1/blobs?schema=note-v1&field=/n&value=3", READER)
        .await
        .ok(200);
    assert_eq!(ids(&page), vec![b1.clone(), b1_again.clone()]);
    let page = api
        .get("/v1/blobs?schema=note-v1&field=/ok&value=true", READER)
        .await
        .ok(200);
    assert_eq!(ids(&page), vec![b1.clone()]);
    // Pointer escapes: `~1` is `/`; a value with `~` is plain text.
    let page = api
        .get(
            "/v1/blobs?schema=note-v1&field=/meta/a~1b&value=x~y",
            READER,
        )
        .await
        .ok(200);
    assert_eq!(ids(&page), vec![b1.clone()]);
    // The other tenant sees its own blob only.
    let page = api
        .get("/v1/blobs?schema=note-v1&field=/book_id&value=b1", STRANGER)
        .await
        .ok(200);
    assert_eq!(ids(&page), vec![theirs]);
}

#[tokio::test]
async fn a_filter_matching_nothing_lists_nothing() {
    let api = notes_api().await;
    note(
        &api,
        WRITER,
        json!({ "book_id": "b1", "nested": { "k": 1 } }),
        &[],
    )
    .await;
    for query in [
        "field=/book_id&value=b9",
        "field=/missing&value=b1",
        // A number's text is not an object's.
        "field=/nested&value=1",
        "field=/book_id/deeper&value=b1",
    ] {
        let page = api
            .get(&format!("/v1/blobs?schema=note-v1&{query}"), READER)
            .await
            .ok(200);
        assert_eq!(page["items"], json!([]), "{query}");
        assert_eq!(page["next_cursor"], Value::Null, "{query}");
    }
    // Another schema of the same shape: none.
    let page = api
        .get(
            "/v1/blobs?schema=text-input-v1&field=/book_id&value=b1",
            READER,
        )
        .await
        .ok(200);
    assert_eq!(page["items"], json!([]));
}

#[tokio::test]
async fn a_bad_filter_is_refused_saying_why() {
    let api = notes_api().await;
    for (query, says) in [
        ("field=/book_id&value=b1", "`field` needs `schema`"),
        ("schema=note-v1&field=/book_id", "`field` needs `value`"),
        ("schema=note-v1&value=b1", "`value` needs `field`"),
        (
            "schema=note-v1&field=book_id&value=b1",
            "must start with `/`",
        ),
        (
            "schema=note-v1&field=/a~2b&value=b1",
            "`~` must be followed by `0` or `1`",
        ),
    ] {
        let p = api
            .get(&format!("/v1/blobs?{query}"), READER)
            .await
            .problem(400);
        assert!(
            p["type"].as_str().unwrap().ends_with("/invalid-query"),
            "{query}: {p}"
        );
        assert!(p["detail"].as_str().unwrap().contains(says), "{query}: {p}");
    }
}

#[tokio::test]
async fn a_filtered_scan_stops_at_its_bound_and_continues_from_its_cursor() {
    let api = notes_api_with(|c| c.max_query_scan = 3).await;
    let mut wanted = Vec::new();
    for i in 0..7 {
        let book = if i == 0 || i == 4 || i == 5 {
            "b1"
        } else {
            "b2"
        };
        let id = note(&api, WRITER, json!({ "book_id": book, "i": i }), &[]).await;
        if book == "b1" {
            wanted.push(id);
        }
    }
    // Three blobs looked at per request: [0 1 2] [3 4 5] [6].
    let base = "/v1/blobs?schema=note-v1&field=/book_id&value=b1";
    let first = api.get(base, READER).await.ok(200);
    assert_eq!(ids(&first), vec![wanted[0].clone()]);
    let cursor = first["next_cursor"]
        .as_str()
        .expect("the scan stopped at its bound");
    let second = api
        .get(&format!("{base}&cursor={cursor}"), READER)
        .await
        .ok(200);
    assert_eq!(ids(&second), vec![wanted[1].clone(), wanted[2].clone()]);
    let cursor = second["next_cursor"].as_str().unwrap();
    let third = api
        .get(&format!("{base}&cursor={cursor}"), READER)
        .await
        .ok(200);
    assert_eq!(ids(&third), Vec::<String>::new());
    assert_eq!(third["next_cursor"], Value::Null, "the end");

    // A page full before the bound stops after its last match; following
    // the cursors finds every match once, in order.
    let mut found = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let uri = match &cursor {
            Some(c) => format!("{base}&limit=1&cursor={c}"),
            None => format!("{base}&limit=1"),
        };
        let page = api.get(&uri, READER).await.ok(200);
        assert!(page["items"].as_array().unwrap().len() <= 1, "{page}");
        found.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(found, wanted);
}
