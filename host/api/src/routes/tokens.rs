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
use crate::wire::{AuditEntry, CreateToken, ListAudit, ListTokens, Token, TokenCreated};

/// Create a token. The secret is in this response only. A tenant's admin
/// creates tokens of its own tenant (admin, writer, reader); the operator
/// of any tenant, any role.
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
    let tenant = match body.tenant {
        Some(t) => check_tenant(&t)?,
        None => caller.tenant.clone(),
    };
    if !caller.is_operator() {
        if tenant != caller.tenant {
            return Err(ApiError::Forbidden(format!(
                "a tenant admin creates tokens for its own tenant ({}) only",
                caller.tenant
            )));
        }
        if body.role == crate::wire::Role::Operator {
            return Err(ApiError::Forbidden(
                "only the operator creates operator tokens".into(),
            ));
        }
    }
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

/// Tokens, never their secrets: a tenant admin's own tenant's; the
/// operator's every tenant's (or `tenant=`'s).
#[utoipa::path(get, path = "/v1/tokens", tag = "tokens", security(("bearer" = [])),
    params(ListTokens),
    responses(
        (status = 200, description = "Tokens", body = Vec<Token>),
        (status = "4XX", description = "Refused", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list(
    Admin(caller): Admin,
    State(state): State<AppState>,
    QueryParams(q): QueryParams<ListTokens>,
) -> ApiResult<Json<Vec<Token>>> {
    let tenant = caller.tenant_filter(q.tenant)?;
    let mut tokens = state.engine().list_tokens(tenant.as_deref())?;
    tokens.sort_by_key(|t| t.created_at);
    Ok(Json(tokens.into_iter().map(Into::into).collect()))
}

/// Revoke a token: a tenant admin its own tenant's, the operator any. A
/// token cannot revoke itself.
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
    let target = state
        .engine()
        .token(&id)?
        .filter(|t| caller.scope().is_none_or(|tenant| t.tenant == tenant))
        .ok_or_else(|| ApiError::NotFound(format!("token {id} not found")))?;
    if target.role == reyna_engine::Role::Operator && !caller.is_operator() {
        return Err(ApiError::Forbidden(
            "only the operator revokes an operator token".into(),
        ));
    }
    if !state.engine().delete_token(&id, &caller.actor()).await? {
        return Err(ApiError::NotFound(format!("token {id} not found")));
    }
    // Its live streams and sockets end now, not when they next reconnect.
    state.streams().revoked();
    Ok(StatusCode::NO_CONTENT)
}

/// The audit log, oldest first: a tenant admin reads its own tenant's
/// entries; the operator every entry (or `tenant=`'s).
#[utoipa::path(get, path = "/v1/audit", tag = "tokens", security(("bearer" = [])),
    params(ListAudit),
    responses(
        (status = 200, description = "Entries after `after`", body = Vec<AuditEntry>),
        (status = "4XX", description = "Refused", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn audit(
    Admin(caller): Admin,
    State(state): State<AppState>,
    QueryParams(q): QueryParams<ListAudit>,
) -> ApiResult<Json<Vec<AuditEntry>>> {
    let limit = page_size(&state, q.limit)?;
    let tenant = caller.tenant_filter(q.tenant)?;
    let entries = state
        .engine()
        .audit_log(q.after.unwrap_or(0), limit, tenant.as_deref())?;
    Ok(Json(entries.into_iter().map(Into::into).collect()))
}
