//! The console's files: `/` and `/console/<path>`, their types, security
//! headers and caching, and that no path reaches outside the folder.

use std::collections::BTreeSet;

use axum::http::{Method, header};

use crate::common::{Call, READER, api};

const CSP: &str = "default-src 'self'; connect-src 'self'; img-src 'self' data: blob:; \
    style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; \
    frame-ancestors 'none'; form-action 'self'";

/// The page modules the router loads by name (`./pages/<name>.js`).
const PAGES: [&str; 9] = [
    "overview",
    "blobs",
    "blob",
    "plugins",
    "dead-letters",
    "jobs",
    "schemas",
    "audit",
    "studio",
];

#[track_caller]
fn assert_secured(reply: &crate::common::Reply) {
    let h = &reply.headers;
    assert_eq!(h[header::CONTENT_SECURITY_POLICY], CSP);
    assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(h[header::REFERRER_POLICY], "no-referrer");
    assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
}

#[tokio::test]
async fn root_is_the_console_page_with_its_security_headers() {
    let api = api().await;
    // No token needed: the page holds no data.
    let reply = api.send(Call::get("/")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.headers[header::CONTENT_TYPE],
        "text/html; charset=utf-8"
    );
    assert_secured(&reply);
    assert_eq!(reply.headers[header::CACHE_CONTROL], "no-cache");
    assert!(reply.headers.contains_key(header::ETAG));
    let html = reply.text();
    assert!(
        html.contains(r#"<script type="module" src="/console/app.js"></script>"#),
        "{html}"
    );
    assert!(html.contains(r#"<main id="page""#), "{html}");
    // CSP forbids inline code: the page has none.
    assert!(!html.contains("<style"), "{html}");
    assert!(!html.contains("style="), "{html}");
    assert!(!html.contains("<script>"), "{html}");
    let handler = html.match_indices(" on").any(|(i, _)| {
        let rest = &html[i + 3..];
        let name = rest.len()
            - rest
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .len();
        name > 0 && rest[name..].starts_with('=')
    });
    assert!(!handler, "an inline event handler: {html}");

    let head = api.send(Call::new(Method::HEAD, "/")).await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_secured(&head);
}

/// The `/console/...` paths a file refers to: `src`/`href` attributes in
/// HTML, static and literal dynamic imports in JavaScript (relative ones
/// resolved against the file's own path).
fn references(path: &str, text: &str) -> Vec<String> {
    let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
    let mut found = Vec::new();
    for quote in ['"', '\''] {
        for piece in text.split(quote).skip(1).step_by(2) {
            let target = if piece.starts_with("/console/") {
                piece.to_owned()
            } else if (piece.starts_with("./") || piece.starts_with("../"))
                && (piece.ends_with(".js") || piece.ends_with(".css"))
            {
                resolve(dir, piece)
            } else {
                continue;
            };
            found.push(target);
        }
    }
    found
}

fn resolve(dir: &str, relative: &str) -> String {
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for segment in relative.split('/') {
        match segment {
            "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}

#[tokio::test]
async fn every_file_the_console_refers_to_is_served_with_its_type() {
    let api = api().await;
    let mut queue: Vec<String> = vec!["/".to_owned()];
    queue.extend(PAGES.iter().map(|p| format!("/console/pages/{p}.js")));
    let mut seen = BTreeSet::new();
    while let Some(path) = queue.pop() {
        if !seen.insert(path.clone()) {
            continue;
        }
        let reply = api.send(Call::get(&path)).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
        assert_secured(&reply);
        let wanted = if path == "/" {
            "text/html; charset=utf-8"
        } else if path.ends_with(".js") {
            "text/javascript; charset=utf-8"
        } else if path.ends_with(".css") {
            "text/css; charset=utf-8"
        } else {
            panic!("unexpected reference {path}")
        };
        assert_eq!(reply.headers[header::CONTENT_TYPE], wanted, "{path}");
        let text = reply.text();
        if path.ends_with(".js") {
            // No HTML built from strings: text goes in as text nodes.
            assert!(!text.contains("innerHTML"), "{path} uses innerHTML");
            assert!(!text.contains("eval("), "{path} uses eval");
        }
        let base = if path == "/" { "/index.html" } else { &path };
        queue.extend(references(base, &text));
    }
    for must in [
        "/console/app.js",
        "/console/style.css",
        "/console/lineage.js",
    ] {
        assert!(seen.contains(must), "{must} not reached: {seen:?}");
    }
}

#[tokio::test]
async fn an_unchanged_file_is_not_sent_again() {
    let api = api().await;
    let first = api.send(Call::get("/console/app.js")).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.headers[header::CACHE_CONTROL], "no-cache");
    let etag = first.headers[header::ETAG].to_str().unwrap().to_owned();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() == 66,
        "{etag}"
    );

    let again = api
        .send(Call::get("/console/app.js").header("if-none-match", &etag))
        .await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert_eq!(again.headers[header::ETAG], etag.as_str());
    assert_secured(&again);

    let listed = api
        .send(Call::get("/console/app.js").header("if-none-match", &format!("\"x\", W/{etag}")))
        .await;
    assert_eq!(listed.status, 304);

    let stale = api
        .send(Call::get("/console/app.js").header("if-none-match", "\"0000\""))
        .await;
    assert_eq!(stale.status, 200);
    assert_eq!(stale.body, first.body);

    // Another file has another tag.
    let css = api.send(Call::get("/console/style.css")).await;
    assert_ne!(css.headers[header::ETAG], etag.as_str());
}

#[tokio::test]
async fn unknown_files_and_paths_out_of_the_folder_are_not_found() {
    let api = api().await;
    let before = api.send(Call::get("/console/app.js")).await;
    for path in [
        "/console/nope.js",
        "/console/pages/nope.js",
        "/console/../Cargo.toml",
        "/console/../src/lib.rs",
        "/console/pages/../../src/console.rs",
        "/console/%2e%2e/Cargo.toml",
        "/console/..%2fCargo.toml",
        "/console/..%2FCargo.toml",
        "/console/pages%2f..%2f..%2fsrc%2flib.rs",
        "/console/..%5cCargo.toml",
        "/console/%2e%2e%5c%2e%2e%5cCargo.toml",
        "/console//etc/passwd",
        "/console/%2fetc%2fpasswd",
        "/console/./app.js",
        "/console/app.js%00",
        "/console/%ff%fe.js",
        "/console/app.js/",
    ] {
        let reply = api.send(Call::get(path)).await;
        let problem = reply.problem(404);
        assert_eq!(
            problem["type"], "https://reyna.dev/problems/not-found",
            "{path}"
        );
        let body = reply.text();
        assert!(!body.contains("[package]"), "{path} leaked a file: {body}");
        assert!(!body.contains("root:"), "{path} leaked a file: {body}");
    }
    // Writing is not a thing the console's paths do.
    let put = api
        .send(
            Call::new(Method::PUT, "/console/app.js")
                .token(READER)
                .body(b"x".to_vec()),
        )
        .await;
    put.problem(405);
    let post = api.send(Call::post("/").body(b"x".to_vec())).await;
    post.problem(405);
    let after = api.send(Call::get("/console/app.js")).await;
    assert_eq!(after.status, 200);
    assert_eq!(after.body, before.body);
    assert_eq!(after.headers[header::ETAG], before.headers[header::ETAG]);
}

#[tokio::test]
async fn api_routes_and_their_not_found_answers_are_unchanged() {
    let api = api().await;
    for path in [
        "/v1/nope",
        "/nope",
        "/console",
        "/index.html",
        "/v1/blobs/x/y/z",
    ] {
        let reply = api.send(Call::get(path).token(READER)).await;
        let problem = reply.problem(404);
        assert!(
            problem["detail"].as_str().unwrap().contains("no route"),
            "{path}: {problem}"
        );
        // The console's headers are the console's own.
        assert!(
            !reply.headers.contains_key(header::CONTENT_SECURITY_POLICY),
            "{path}"
        );
    }
    let me = api.get("/v1/me", READER).await.ok(200);
    assert_eq!(me["role"], "reader");
    // Without a token the API still refuses, though the console loads.
    api.send(Call::get("/v1/blobs")).await.problem(401);
    // The console is not part of the API's document.
    let doc = api.send(Call::get("/openapi.json")).await.ok(200);
    let paths = doc["paths"].as_object().unwrap();
    assert!(
        !paths.keys().any(|p| p.starts_with("/console")),
        "{paths:?}"
    );
    assert!(!paths.contains_key("/"));
}
