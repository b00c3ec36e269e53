//! Tenants, their installations and secrets, usage, tokens and the audit log.

#[allow(clippy::wildcard_imports)]
use super::*;

// ---- tenants ---------------------------------------------------------------

/// `POST /v1/tenants`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// Its id: lowercase letters, digits and `-` (one NATS subject token).
    pub id: String,
    /// A label for people (the id when absent).
    #[serde(default)]
    pub name: Option<String>,
}

/// A tenant.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Tenant {
    /// Its id.
    pub id: String,
    /// Its label.
    pub name: String,
    /// When it was created, unix ms.
    pub created_at: u64,
    /// When it was deleted, unix ms (its id is never given out again).
    pub deleted_at: Option<u64>,
    /// Its quota overrides (a field left out follows the operator's
    /// default): `blobs_per_second`, `blob_burst`, `stored_bytes`,
    /// `queued_jobs`, `running_jobs`, `share`, `effect_calls_per_day`,
    /// `budgets` (`{"tokens": {"per_day": N, "per_month": N}}`).
    #[schema(value_type = Object)]
    pub quotas: store::reyna_store::Quotas,
    /// The quotas in force (overrides over the operator's defaults); in
    /// `GET /v1/tenants/{tenant}` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub effective_quotas: Option<store::reyna_store::Quotas>,
    /// What it holds now against its quotas; in `GET /v1/tenants/{tenant}` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holdings: Option<TenantHoldings>,
}

/// What a tenant holds now, against its quotas.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TenantHoldings {
    /// Bytes of blob data it stores.
    pub stored_bytes: u64,
    /// Its jobs waiting (pending, retrying or deferred).
    pub queued_jobs: u64,
    /// Its jobs claimed or running on this host.
    pub running_jobs: usize,
}

impl From<store::TenantRecord> for Tenant {
    fn from(t: store::TenantRecord) -> Self {
        Tenant {
            id: t.id,
            name: t.name,
            created_at: t.created_at,
            deleted_at: t.deleted_at,
            quotas: t.quotas,
            effective_quotas: None,
            holdings: None,
        }
    }
}

/// `PATCH /v1/tenants/{tenant}` (operator): a new name and/or the whole
/// set of quota overrides.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTenant {
    /// A new label (at most 200 bytes).
    pub name: Option<String>,
    /// The tenant's quota overrides, replacing the previous ones (`{}`
    /// returns it to the operator's defaults).
    #[schema(value_type = Option<Object>)]
    pub quotas: Option<store::reyna_store::Quotas>,
}

/// `GET /v1/usage` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageParams {
    /// The tenant (the operator may name any; an admin only its own, the default).
    pub tenant: Option<String>,
    /// Start, unix ms (rounded down to its period); default: 24 periods before `to`.
    pub from: Option<u64>,
    /// End, unix ms, exclusive; default: now.
    pub to: Option<u64>,
    /// `hour` (default), `day` or `month`.
    pub granularity: Option<String>,
}

/// `GET /v1/usage`: a tenant's metered usage per period.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UsageReport {
    /// The tenant.
    pub tenant: String,
    /// `hour`, `day` or `month`.
    pub granularity: String,
    /// The start of the first period asked for, unix ms.
    pub from: u64,
    /// The end asked for, unix ms (exclusive).
    pub to: u64,
    /// Each period with usage, oldest first: `start`, `end` and the figures
    /// (`blobs_created`, `blobs_derived`, `bytes_stored`, `jobs_run`,
    /// `jobs_failed`, `wall_us`, `cpu_us`, `epoch_ticks`, `fuel`,
    /// `peak_memory`, `bytes_in`, `bytes_out`, `effect_calls`, `units`).
    #[schema(value_type = Vec<Object>)]
    pub periods: Vec<store::reyna_store::UsagePeriod>,
    /// The periods added up (`peak_memory`: the largest).
    #[schema(value_type = Object)]
    pub total: store::reyna_store::Usage,
}

/// What deleting a tenant removed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TenantDeleted {
    /// Its tokens, revoked.
    pub tokens: usize,
    /// Its installations (configs and secrets).
    pub installations: usize,
    /// Its own plugin versions, disabled.
    pub plugins: usize,
}

/// `GET /v1/me`: who the token is.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Me {
    /// The token's record id.
    pub token_id: String,
    /// Its tenant.
    pub tenant: String,
    /// Its role.
    pub role: Role,
}

/// `POST /v1/secrets/rotate-master-key`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MasterKeyRotated {
    /// Secret versions re-encrypted under the new key.
    pub resealed: usize,
}

/// `POST /v1/plugins` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UploadPlugin {
    /// Which tenants a global plugin is installed for: `all` (default;
    /// tenants may opt out) or `opt-in`. Operator uploads only.
    pub install: Option<String>,
}

// ---- tokens and audit ------------------------------------------------------

/// What a token may do.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The platform: tenants, global plugins and schemas, every token, the
    /// whole audit log, and everything an admin does for any tenant.
    Operator,
    /// A tenant's administrator: its tokens, installations, configs,
    /// secrets, own plugins, dead letters and audit.
    Admin,
    /// Create and read blobs.
    Writer,
    /// Read only.
    Reader,
}

/// `POST /v1/tokens`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// Tenant the token acts for (the caller's own when absent).
    #[serde(default)]
    pub tenant: Option<String>,
    /// What it may do.
    pub role: Role,
    /// A label for operators.
    #[serde(default)]
    pub name: String,
}

/// A token (never its secret).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Token {
    /// Token record id.
    pub id: String,
    /// Tenant.
    pub tenant: String,
    /// Role.
    pub role: Role,
    /// Label.
    pub name: String,
    /// When it was created.
    pub created_at: u64,
}

/// A new token with its secret, shown this once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenCreated {
    /// The record.
    pub token: Token,
    /// The secret to send as `Authorization: Bearer <secret>`.
    pub secret: String,
}

/// A recorded operator action.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    /// Position in the log.
    pub seq: u64,
    /// When, unix ms.
    pub at: u64,
    /// Who (`token:<id>`, `engine`, `system`).
    pub actor: String,
    /// The tenant acted on; absent for the platform.
    pub tenant: Option<String>,
    /// What, e.g. `plugin.upload`.
    pub action: String,
    /// To what.
    pub target: String,
    /// Detail.
    pub detail: String,
    /// How it ended: `ok`, or what went wrong.
    pub outcome: String,
}

/// `GET /v1/tokens`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListTokens {
    /// Only this tenant's tokens (the operator's filter; an admin always
    /// sees its own tenant's).
    pub tenant: Option<String>,
}

/// `GET /v1/audit`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListAudit {
    /// Entries after this sequence (default 0: from the start).
    pub after: Option<u64>,
    /// Page size.
    pub limit: Option<usize>,
    /// Only entries about this tenant (the operator's filter; an admin
    /// always sees its own tenant's).
    pub tenant: Option<String>,
}
