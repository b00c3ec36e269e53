//! `/v1/tokens` and `/v1/audit`: who may call the API, and what operators did.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use reyna_engine::{NewToken, TokenId};

use super::{check_tenant, page_size};
use crate::AppState;
use crate::auth::{Admin, generate_token, hash_token};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{JsonBody, Path, QueryParams};
use crate::wire::{AuditEntry, CreateToken, ListAudit, Token, TokenCreated};

/// Create a token (admin). The secret is in this response only.
#[utoipa::path(post, path = "/v1/tokens", tag = "tokens", security(("bearer" = [])),
    request_body = CreateToken,
    responses(
        (status = 201, description = "Created; keep the secret", body = TokenCreated),
        (status = "4XX", description = "Refused", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn create(
    Admin(caller): Admin,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<CreateToken>,
) -> ApiResult<(StatusCode, Json<TokenCreated>)> {
    let tenant = check_tenant(&body.tenant)?;
    let secret = generate_token()?;
    let record = state
        .engine()
        .create_token(
            NewToken {
                tenant: tenant.to_string(),
                role: body.role.into(),
                name: body.name,
                hash: hash_token(&secret),
            },
            &caller.actor(),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenCreated {
            token: record.into(),
            secret,
        }),
    ))
}

/// Every token (never secrets).
#[utoipa::path(get, path = "/v1/tokens", tag = "tokens", security(("bearer" = [])),
    responses(
        (status = 200, description = "Tokens", body = Vec<Token>),
        (status = "4XX", description = "Refused", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list(_: Admin, State(state): State<AppState>) -> ApiResult<Json<Vec<Token>>> {
    let mut tokens = state.engine().list_tokens(None)?;
    tokens.sort_by_key(|t| t.created_at);
    Ok(Json(tokens.into_iter().map(Into::into).collect()))
}

/// Revoke a token (admin). A token cannot revoke itself.
#[utoipa::path(delete, path = "/v1/tokens/{id}", tag = "tokens", security(("bearer" = [])),
    params(("id" = String, Path, description = "Token record id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = "4XX", description = "Not found or refused", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn delete(
    Admin(caller): Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let parsed: TokenId = id
        .parse()
        .map_err(|_| ApiError::NotFound(format!("token {id} not found")))?;
    if caller.token_id == parsed.to_string() {
        return Err(ApiError::Conflict(
            "a token cannot revoke itself; use another admin token".into(),
        ));
    }
    if !state.engine().delete_token(&id, &caller.actor()).await? {
        return Err(ApiError::NotFound(format!("token {id} not found")));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The audit log of operator actions (admin), oldest first.
#[utoipa::path(get, path = "/v1/audit", tag = "tokens", security(("bearer" = [])),
    params(ListAudit),
    responses(
        (status = 200, description = "Entries after `after`", body = Vec<AuditEntry>),
        (status = "4XX", description = "Refused", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn audit(
    _: Admin,
    State(state): State<AppState>,
    QueryParams(q): QueryParams<ListAudit>,
) -> ApiResult<Json<Vec<AuditEntry>>> {
    let limit = page_size(&state, q.limit)?;
    let entries = state.engine().audit_log(q.after.unwrap_or(0), limit)?;
    Ok(Json(entries.into_iter().map(Into::into).collect()))
}
