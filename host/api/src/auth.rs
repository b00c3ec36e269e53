//! Bearer tokens: how a request becomes a (tenant, role) caller.
//!
//! Tokens are random secrets shown once at creation; the store keeps only
//! their sha256. A handler takes a [`Caller`] argument (before any body
//! extractor, so an unauthenticated request never has its body read) and
//! asks it for the role it needs.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use reyna_engine::{Digest, NewToken, Role, TenantId, TokenRecord};

use crate::AppState;
use crate::error::ApiError;

/// Prefix of every token secret, so a leaked one is easy to recognise.
pub const TOKEN_PREFIX: &str = "reyna_";

/// Who is calling: the token's record.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token record id (used as the audit actor).
    pub token_id: String,
    /// The tenant the token acts for.
    pub tenant: TenantId,
    /// What it may do.
    pub role: Role,
}

fn rank(role: Role) -> u8 {
    match role {
        Role::Reader => 1,
        Role::Writer => 2,
        Role::Admin => 3,
        Role::Operator => 4,
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Reader => "reader",
        Role::Writer => "writer",
        Role::Admin => "admin",
        Role::Operator => "operator",
    }
}

impl Caller {
    /// Refuses with 403 unless the token has `role` or a stronger one
    /// (operator > admin > writer > reader).
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if rank(self.role) >= rank(role) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "this needs a token with the {} role; this token has the {} role",
                role_name(role),
                role_name(self.role)
            )))
        }
    }

    /// The name recorded in the audit log for this caller's actions.
    pub fn actor(&self) -> String {
        format!("token:{}", self.token_id)
    }

    /// Whether the caller is the operator.
    pub fn is_operator(&self) -> bool {
        self.role == Role::Operator
    }

    /// Which tenant's things the caller sees: `None` for the operator
    /// (every tenant's), its own tenant otherwise.
    pub fn scope(&self) -> Option<&str> {
        (!self.is_operator()).then_some(self.tenant.as_str())
    }

    /// Refuses unless the caller may administer `tenant`: the operator
    /// (any tenant) or an admin of `tenant`. Another tenant is 404, as if
    /// it did not exist; a weaker role is 403.
    pub fn require_admin_of(&self, tenant: &str) -> Result<(), ApiError> {
        self.require(Role::Admin)?;
        if self.is_operator() || self.tenant.as_str() == tenant {
            Ok(())
        } else {
            Err(ApiError::Engine(reyna_engine::EngineError::TenantNotFound(
                tenant.to_owned(),
            )))
        }
    }

    /// The tenant a listing is about: an admin's own (asking for another is
    /// 404), or for the operator the one asked for (`None`: all).
    pub fn tenant_filter(&self, asked: Option<String>) -> Result<Option<String>, ApiError> {
        match (self.is_operator(), asked) {
            (true, asked) => Ok(asked),
            (false, Some(asked)) if asked != self.tenant.as_str() => Err(ApiError::Engine(
                reyna_engine::EngineError::TenantNotFound(asked),
            )),
            (false, _) => Ok(Some(self.tenant.to_string())),
        }
    }
}

/// The stored hash of a token secret (lowercase hex sha256).
pub fn hash_token(secret: &str) -> String {
    Digest::of(secret.as_bytes()).hex()
}

/// A fresh token secret: the prefix and 32 random bytes in hex.
pub fn generate_token() -> Result<String, ApiError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| ApiError::Internal(format!("no randomness for a token: {e}")))?;
    Ok(format!("{TOKEN_PREFIX}{}", hex::encode(bytes)))
}

/// Stores a token for `secret` unless one with that secret exists already;
/// returns its record. Used by `reyna serve` for the admin token.
pub async fn ensure_token(
    engine: &reyna_engine::Engine,
    secret: &str,
    tenant: &str,
    role: Role,
    name: &str,
) -> Result<TokenRecord, ApiError> {
    let hash = hash_token(secret);
    if let Some(existing) = engine.find_token(&hash)? {
        return Ok(existing);
    }
    Ok(engine
        .create_token(
            NewToken {
                tenant: tenant.to_owned(),
                role,
                name: name.to_owned(),
                hash,
            },
            "system",
        )
        .await?)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::Unauthorized(
                "missing `Authorization: Bearer <token>` header".into(),
            ));
        };
        let value = value.to_str().map_err(|_| {
            ApiError::Unauthorized("the Authorization header is not valid text".into())
        })?;
        let secret = match value.split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
            _ => {
                return Err(ApiError::Unauthorized(
                    "the Authorization header must be `Bearer <token>`".into(),
                ));
            }
        };
        Caller::from_secret(state, secret)
    }
}

impl Caller {
    /// The caller a token secret stands for (401 when it is empty, unknown
    /// or revoked). Also used by `/v1/ws`, where a browser sends the token
    /// in its first message instead of a header.
    pub(crate) fn from_secret(state: &AppState, secret: &str) -> Result<Self, ApiError> {
        if secret.is_empty() {
            return Err(ApiError::Unauthorized("the bearer token is empty".into()));
        }
        let record = state
            .engine()
            .find_token(&hash_token(secret))?
            .ok_or_else(|| ApiError::Unauthorized("unknown or revoked token".into()))?;
        let tenant = TenantId::parse(&record.tenant).map_err(|e| {
            ApiError::Internal(format!("token {} names an invalid tenant: {e}", record.id))
        })?;
        Ok(Caller {
            token_id: record.id.to_string(),
            tenant,
            role: record.role,
        })
    }
}

macro_rules! role_extractor {
    ($(#[$doc:meta])* $name:ident, $role:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name(pub Caller);

        impl FromRequestParts<AppState> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
                let caller = Caller::from_request_parts(parts, state).await?;
                caller.require($role)?;
                Ok($name(caller))
            }
        }
    };
}

role_extractor!(
    /// The operator (401/403 otherwise, before the body is read).
    Operator,
    Role::Operator
);
role_extractor!(
    /// A caller with the admin role or stronger (401/403 otherwise, before
    /// the body is read). The handler still checks the tenant it acts on.
    Admin,
    Role::Admin
);
role_extractor!(
    /// A caller with the writer role or stronger.
    Writer,
    Role::Writer
);
role_extractor!(
    /// Any authenticated caller.
    Reader,
    Role::Reader
);
