//! Jobs and dead letters: listing per blob and state, a dead letter after
//! exhausted retries, and its replay.

use serde_json::json;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_are_listed_per_blob_and_state() {
    let api = api_with_plugins(&["word-count"]).await;
    let id = api.put_text("one two three").await;
    api.get(&format!("/v1/blobs/{id}/derived?wait=30"), READER)
        .await
        .ok(200);
    let jobs = api
        .get(&format!("/v1/jobs?blob={id}"), READER)
        .await
        .ok(200);
    assert_eq!(jobs.as_array().unwrap().len(), 1);
    assert_eq!(jobs[0]["plugin"], "word-count");
    assert_eq!(jobs[0]["state"], "done");
    assert_eq!(
        api.get(&format!("/v1/jobs?blob={id}&state=done"), READER)
            .await
            .ok(200)
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        api.get(&format!("/v1/jobs?blob={id}&state=pending"), READER)
            .await
            .ok(200),
        json!([])
    );
    let job_id = jobs[0]["id"].as_str().unwrap();
    assert_eq!(
        api.get(&format!("/v1/jobs/{job_id}"), READER).await.ok(200)["id"],
        job_id
    );
    api.get(&format!("/v1/jobs/{job_id}"), STRANGER)
        .await
        .problem(404);
    assert_eq!(
        api.get(&format!("/v1/jobs?blob={id}"), STRANGER)
            .await
            .ok(200),
        json!([])
    );
    api.get("/v1/jobs?state=bogus", READER).await.problem(400);
    api.get(&format!("/v1/jobs?blob={id}&limit=5"), READER)
        .await
        .problem(400);
    api.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tenant_wide_listing_pages_by_state_with_a_cursor() {
    let api = api_with_plugins(&["word-count"]).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let id = api.put_text(&format!("text number {i}")).await;
        api.get(&format!("/v1/blobs/{id}/derived?wait=30"), READER)
            .await
            .ok(200);
        ids.push(id);
    }
    let first = api.get("/v1/jobs?state=done&limit=3", READER).await;
    let page = first.ok(200);
    assert_eq!(page.as_array().unwrap().len(), 3);
    let cursor = first
        .headers
        .get("x-next-cursor")
        .expect("a next page")
        .to_str()
        .unwrap()
        .to_owned();
    let second = api
        .get(
            &format!("/v1/jobs?state=done&limit=3&cursor={cursor}"),
            READER,
        )
        .await;
    assert!(
        second.headers.get("x-next-cursor").is_none(),
        "the last page"
    );
    let rest = second.ok(200);
    assert_eq!(rest.as_array().unwrap().len(), 2);
    let mut seen: Vec<String> = page
        .as_array()
        .unwrap()
        .iter()
        .chain(rest.as_array().unwrap())
        .map(|j| j["blob_id"].as_str().unwrap().to_owned())
        .collect();
    seen.sort();
    ids.sort();
    assert_eq!(seen, ids, "every job once, no gap, no repeat");
    assert_eq!(
        api.get("/v1/jobs?state=pending", READER).await.ok(200),
        json!([])
    );
    assert_eq!(
        api.get("/v1/jobs", READER)
            .await
            .ok(200)
            .as_array()
            .unwrap()
            .len(),
        5
    );
    assert_eq!(
        api.get("/v1/jobs", STRANGER).await.ok(200),
        json!([]),
        "other tenants see none"
    );
    let bad = api
        .get("/v1/jobs?cursor=nonsense", READER)
        .await
        .problem(400);
    assert!(bad["detail"].as_str().unwrap().contains("cursor"), "{bad}");
    api.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_is_listed_and_replayed_by_an_admin() {
    let api = api_with_plugins(&["book-compile"]).await;
    let chapter = |i: u64| json!({ "schema": "chapter-v1", "data": { "book_id": "b", "index": i, "title": format!("c{i}"), "text": "one two" } });
    api.post_json("/v1/blobs", WRITER, chapter(0)).await.ok(201);
    let request = api
        .post_json("/v1/blobs", WRITER, json!({ "schema": "book-compile-request-v1", "data": { "book_id": "b", "title": "T", "expected_chapters": 2 } }))
        .await
        .ok(201);
    let request_id = request["id"].as_str().unwrap();
    // Retries are fast in tests; the job gives up after its last attempt.
    let derived = api
        .get(&format!("/v1/blobs/{request_id}/derived?wait=30"), READER)
        .await
        .ok(200);
    assert_eq!(derived["settled"], true, "{derived}");
    assert_eq!(derived["jobs"][0]["state"], "dead");

    let page = api.get("/v1/dead-letters", READER).await.ok(200);
    let letters = page["items"].as_array().unwrap();
    assert_eq!(letters.len(), 1);
    assert!(
        letters[0]["reason"]
            .as_str()
            .unwrap()
            .contains("has 1 of 2 chapters"),
        "{page}"
    );
    let letter_id = letters[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        api.get("/v1/dead-letters", STRANGER).await.ok(200)["items"],
        json!([])
    );
    // Another tenant's dead letters are not found, not forbidden.
    api.get("/v1/dead-letters?tenant=acme", STRANGER)
        .await
        .problem(404);
    assert_eq!(
        api.get("/v1/dead-letters?tenant=acme", ADMIN).await.ok(200)["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    api.get("/v1/dead-letters?cursor=zz", ADMIN)
        .await
        .problem(400);

    api.post_json("/v1/blobs", WRITER, chapter(1)).await.ok(201);
    api.send(Call::post(&format!("/v1/dead-letters/{letter_id}/replay")).token(WRITER))
        .await
        .problem(403);
    // Globex's admin cannot replay (or learn of) acme's dead letter.
    let globex_admin = api
        .post_json(
            "/v1/tokens",
            ADMIN,
            json!({ "tenant": "globex", "role": "admin", "name": "globex-admin" }),
        )
        .await
        .ok(201)["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        api.get("/v1/dead-letters", &globex_admin).await.ok(200)["items"],
        json!([])
    );
    api.send(Call::post(&format!("/v1/dead-letters/{letter_id}/replay")).token(&globex_admin))
        .await
        .problem(404);
    // Acme's own admin replays it.
    let job = api
        .send(Call::post(&format!("/v1/dead-letters/{letter_id}/replay")).token(TENANT_ADMIN))
        .await
        .ok(200);
    assert_eq!(job["state"], "pending");
    assert_eq!(job["attempt"], 7);
    let p = api
        .send(Call::post(&format!("/v1/dead-letters/{letter_id}/replay")).token(ADMIN))
        .await
        .problem(409);
    assert!(
        p["detail"].as_str().unwrap().contains("already replayed"),
        "{p}"
    );
    api.send(Call::post("/v1/dead-letters/01ARZ3NDEKTSV4RRFFQ69G5FAV/replay").token(ADMIN))
        .await
        .problem(404);
    api.send(Call::post("/v1/dead-letters/nope/replay").token(ADMIN))
        .await
        .problem(400);

    let derived = api
        .get(&format!("/v1/blobs/{request_id}/derived?wait=30"), READER)
        .await
        .ok(200);
    assert_eq!(
        derived["derived"][0]["schema"], "compiled-book-v1",
        "{derived}"
    );
    assert_eq!(derived["derived"][0]["producer"]["attempt"], 7);
    // In acme's audit, which its admin reads.
    let audit = api.get("/v1/audit", TENANT_ADMIN).await.ok(200);
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "dead-letter.replay"
                && e["target"] == letter_id.as_str()
                && e["tenant"] == "acme"),
        "{audit}"
    );
    api.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_reruns_a_plugin_on_a_stored_blob_and_bad_requests_change_nothing() {
    let api = api_with_plugins(&["word-count"]).await;
    let id = api.put_text("one two three").await;
    api.get(&format!("/v1/blobs/{id}/derived?wait=30"), READER)
        .await
        .ok(200);
    let rerun = format!("/v1/blobs/{id}/rerun");
    let body = json!({ "plugin": "word-count", "version": "0.1.0", "replay_effects": true });

    // Refused before anything is enqueued.
    api.post_json(&rerun, WRITER, body.clone())
        .await
        .problem(403);
    api.post_json(
        &rerun,
        ADMIN,
        json!({ "plugin": "word-count", "version": "9.9.9" }),
    )
    .await
    .problem(404);
    api.post_json(
        &rerun,
        ADMIN,
        json!({ "plugin": "word-count", "version": "0.1.0", "extra": 1 }),
    )
    .await
    .problem(400);
    api.post_json("/v1/blobs/not-an-id/rerun", ADMIN, body.clone())
        .await
        .problem(400);
    api.post_json(
        &format!("/v1/blobs/{}/rerun", "01J0000000000000000000000Z"),
        ADMIN,
        body.clone(),
    )
    .await
    .problem(404);
    let jobs = api
        .get(&format!("/v1/jobs?blob={id}"), READER)
        .await
        .ok(200);
    assert_eq!(jobs.as_array().unwrap().len(), 1, "{jobs}");

    let job = api.post_json(&rerun, ADMIN, body).await.ok(202);
    assert_eq!(job["plugin"], "word-count");
    assert_eq!(job["replay_effects"], true);
    assert_eq!(job["attempt"], 1);
    let derived = api
        .get(
            &format!("{}?wait=30", rerun.replace("/rerun", "/derived")),
            READER,
        )
        .await
        .ok(200);
    assert_eq!(derived["settled"], true, "{derived}");
    assert_eq!(derived["jobs"].as_array().unwrap().len(), 2, "{derived}");
    assert_eq!(derived["derived"].as_array().unwrap().len(), 2, "{derived}");
    api.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jobs_guest_log_is_kept_bounded_and_readable_by_its_tenant_only() {
    let api = api_with_plugins(&["hostile-log-flood", "word-count"]).await;
    let id = api.put_text("one two three").await;
    api.get(&format!("/v1/blobs/{id}/derived?wait=30"), READER)
        .await
        .ok(200);
    let jobs = api
        .get(&format!("/v1/jobs?blob={id}"), READER)
        .await
        .ok(200);
    let job_of = |plugin: &str| {
        jobs.as_array()
            .unwrap()
            .iter()
            .find(|j| j["plugin"] == plugin)
            .unwrap_or_else(|| panic!("a {plugin} job in {jobs}"))["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    // The flood logged megabytes; what is kept is its first lines, within
    // the plugin's log limit, and says that the rest was dropped.
    let flood = job_of("hostile-log-flood");
    let logs = api
        .get(&format!("/v1/jobs/{flood}/logs"), READER)
        .await
        .ok(200);
    let attempts = logs.as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{logs}");
    assert_eq!(attempts[0]["attempt"], 1);
    assert_eq!(attempts[0]["truncated"], true);
    let lines = attempts[0]["lines"].as_array().unwrap();
    assert!(!lines.is_empty());
    assert_eq!(lines[0]["level"], "info");
    assert!(lines[0]["message"].as_str().unwrap().starts_with("yyyy"));
    let kept: usize = lines
        .iter()
        .map(|l| l["message"].as_str().unwrap().len())
        .sum();
    // The runtime's default log limit is 64 KiB (lines count their newline).
    assert!(kept <= 64 * 1024, "{kept} bytes of log kept");
    // A job that logged nothing has no entries; another tenant sees none.
    let quiet = job_of("word-count");
    assert_eq!(
        api.get(&format!("/v1/jobs/{quiet}/logs"), READER)
            .await
            .ok(200),
        json!([])
    );
    api.get(&format!("/v1/jobs/{flood}/logs"), STRANGER)
        .await
        .problem(404);
    api.get("/v1/jobs/not-a-job/logs", READER)
        .await
        .problem(400);
    api.engine.shutdown().await;
}
