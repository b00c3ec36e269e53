//! The console: the static web UI at `/` (its `index.html`) and
//! `/console/<path>` (ES modules, CSS), served from `host/api/console/`.
//!
//! The files are built into the binary by `rust-embed` in release builds;
//! debug builds read the folder from disk, so editing a page needs no
//! rebuild. Either way only the folder's own files can be named: a path
//! with an empty, `.` or `..` segment or a backslash is refused before the
//! lookup, and the lookup itself only knows the folder's names.
//!
//! The console holds no data and needs no token to load; every page calls
//! the API with the token the user signs in with. Its responses carry a
//! strict Content-Security-Policy (scripts, styles and connections to this
//! origin only, no inline code, no framing) and are revalidated on each
//! load (`Cache-Control: no-cache` with an `ETag` of the file's sha256).

use axum::Router;
use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rust_embed::RustEmbed;

use crate::error::ApiError;

/// The console's files (`host/api/console/`).
#[derive(RustEmbed)]
#[folder = "console/"]
struct Assets;

/// The page the console starts from.
const INDEX: &str = "index.html";

/// The policy every console response carries: this origin's scripts,
/// styles and API only, images also from `data:`/`blob:` URLs (downloads
/// and inline SVG), nothing inline, no plugins, no framing.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; connect-src 'self'; \
    img-src 'self' data: blob:; style-src 'self'; script-src 'self'; object-src 'none'; \
    base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// The console's routes: `GET /` and `GET /console/{*path}` (HEAD too).
pub(crate) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/console/{*path}", get(asset))
        .layer(axum::middleware::map_response(secure))
}

async fn index(headers: HeaderMap) -> Response {
    serve(INDEX, &headers)
}

/// A path that does not decode (not UTF-8) names no file either.
async fn asset(path: Result<Path<String>, PathRejection>, headers: HeaderMap) -> Response {
    match path {
        Ok(Path(path)) => serve(&path, &headers),
        Err(_) => ApiError::NotFound("no such console file".to_owned()).into_response(),
    }
}

/// Whether `path` names a file inside the folder: relative, no empty, `.`
/// or `..` segment, no backslash or NUL (the path arrives percent-decoded,
/// so `%2e%2e` and `%2f` are caught here too).
fn is_contained(path: &str) -> bool {
    !path.is_empty()
        && !path.contains(['\\', '\0'])
        && path
            .split('/')
            .all(|segment| !matches!(segment, "" | "." | ".."))
}

fn serve(path: &str, headers: &HeaderMap) -> Response {
    let file = if is_contained(path) {
        Assets::get(path)
    } else {
        None
    };
    let Some(file) = file else {
        return ApiError::NotFound(format!("no console file `{path}`")).into_response();
    };
    let etag = format!("\"{}\"", hex::encode(file.metadata.sha256_hash()));
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| matches_etag(v, &etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = file.data.into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(content_type(path)),
        );
        response
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `If-None-Match`: `*`, or a list of (possibly weak) entity tags.
fn matches_etag(if_none_match: &str, etag: &str) -> bool {
    if_none_match.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
    })
}

/// The media type of a console file, by its extension.
fn content_type(path: &str) -> &'static str {
    let extension = path.rsplit_once('.').map_or("", |(_, ext)| ext);
    match extension {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" | "md" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Adds the security headers to every console response, 404s included.
async fn secure(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_inside_the_folder_are_looked_up() {
        for good in ["app.js", "pages/blobs.js", "style.css"] {
            assert!(is_contained(good), "{good}");
        }
        for bad in [
            "",
            "..",
            "../Cargo.toml",
            "pages/../../src/lib.rs",
            "./app.js",
            "/etc/passwd",
            "pages//blobs.js",
            "..\\Cargo.toml",
            "app.js\0",
        ] {
            assert!(!is_contained(bad), "{bad:?}");
        }
    }

    #[test]
    fn if_none_match_accepts_lists_weak_tags_and_star() {
        let tag = "\"abc\"";
        assert!(matches_etag("\"abc\"", tag));
        assert!(matches_etag("\"x\", W/\"abc\"", tag));
        assert!(matches_etag("*", tag));
        assert!(!matches_etag("\"abd\"", tag));
        assert!(!matches_etag("abc", tag));
    }
}
