//! Request extractors whose rejections are problem+json: a JSON body with
//! a size limit, a content-type check and unknown fields refused; a raw
//! `application/wasm` body; query parameters; path parameters.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::error::ApiError;

/// A JSON request body, parsed into `T` (a `deny_unknown_fields` type).
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

/// A raw `application/wasm` request body.
#[derive(Debug)]
pub struct WasmBody(pub Vec<u8>);

/// Path parameters parsed into `T`; unlike axum's own `Path`, a path that
/// cannot be decoded (invalid UTF-8 after percent-decoding) is a
/// problem+json 400 `invalid-path`, not a plain-text one.
#[derive(Debug)]
pub struct Path<T>(pub T);

/// Query parameters parsed into `T` (a `deny_unknown_fields` type).
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

fn content_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(
        value
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase(),
    )
}

/// Reads the whole body, refusing with 413 past `limit` bytes (early, when
/// `Content-Length` already says so), 408 `body-timeout` when it does not
/// arrive within `body-timeout`, and 503 `server-busy` when the memory
/// budget for request bodies has no room for it (both from
/// `limits::meter_bodies`, which wraps every body).
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let inner = e.into_inner();
        if let Some(refusal) = crate::limits::refusal_in(&*inner) {
            ApiError::from(refusal)
        } else if inner
            .downcast_ref::<http_body_util::LengthLimitError>()
            .is_some()
        {
            ApiError::PayloadTooLarge { limit }
        } else {
            ApiError::bad_request(
                "unreadable-body",
                format!("cannot read the request body: {inner}"),
            )
        }
    })
}

/// Parses JSON text into `T`, telling a syntax error from a shape error.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::bad_request(
            "invalid-body",
            format!("request body does not have the expected shape: {e}"),
        ),
        _ => ApiError::bad_request(
            "malformed-json",
            format!("request body is not valid JSON: {e}"),
        ),
    })
}

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        match content_type(&parts.headers) {
            Some(ct)
                if ct == "application/json"
                    || (ct.starts_with("application/") && ct.ends_with("+json")) => {}
            Some(ct) => {
                return Err(ApiError::bad_request(
                    "unsupported-content-type",
                    format!("expected `Content-Type: application/json`, got `{ct}`"),
                ));
            }
            None => {
                return Err(ApiError::bad_request(
                    "unsupported-content-type",
                    "missing `Content-Type: application/json` header",
                ));
            }
        }
        let bytes = read_body(&parts.headers, body, state.config().max_body_bytes).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

impl FromRequest<AppState> for WasmBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        match content_type(&parts.headers) {
            Some(ct) if ct == "application/wasm" => {}
            other => {
                return Err(ApiError::bad_request(
                    "unsupported-content-type",
                    format!(
                        "expected `Content-Type: application/wasm` (the component's bytes), got {}",
                        other.map_or_else(|| "none".to_owned(), |ct| format!("`{ct}`"))
                    ),
                ));
            }
        }
        let bytes = read_body(&parts.headers, body, state.config().max_plugin_bytes).await?;
        Ok(WasmBody(bytes.to_vec()))
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|q| QueryParams(q.0))
            .map_err(|e| {
                ApiError::bad_request(
                    "invalid-query",
                    format!("invalid query parameters: {}", e.body_text()),
                )
            })
    }
}

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|e| {
                ApiError::bad_request("invalid-path", format!("invalid path: {}", e.body_text()))
            })
    }
}
