//! `/v1/schemas`: register, list, read, validate against.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use reyna_engine::EngineError;

use crate::AppState;
use crate::auth::{Operator, Reader};
use crate::error::{ApiError, ApiResult, Problem, ProblemViolation};
use crate::extract::{JsonBody, Path, read_body};
use crate::wire::{CreateSchema, Schema, SchemaCreated, Validation};

/// Register a JSON Schema (operator: schemas are global). Ids are immutable: the same document
/// again is accepted (200), a different one under a taken id is 409.
#[utoipa::path(post, path = "/v1/schemas", tag = "schemas", security(("bearer" = [])),
    request_body = CreateSchema,
    responses(
        (status = 201, description = "Registered", body = SchemaCreated),
        (status = 200, description = "The identical document was registered already", body = SchemaCreated),
        (status = "4XX", description = "Refused; nothing stored", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn create(
    Operator(caller): Operator,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<CreateSchema>,
) -> ApiResult<(StatusCode, Json<SchemaCreated>)> {
    let text = body.schema.to_string();
    let created = state
        .engine()
        .register_schema(&body.id, &text, &caller.actor())
        .await?;
    let record = state.engine().schema(&body.id)?.ok_or_else(|| {
        ApiError::Internal(format!("schema {} missing after registration", body.id))
    })?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(SchemaCreated {
            schema: Schema::from_record(record, true),
            created,
        }),
    ))
}

/// Every registered schema (without documents).
#[utoipa::path(get, path = "/v1/schemas", tag = "schemas", security(("bearer" = [])),
    responses(
        (status = 200, description = "Schemas by id", body = Vec<Schema>),
        (status = "4XX", description = "Refused", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list(_: Reader, State(state): State<AppState>) -> ApiResult<Json<Vec<Schema>>> {
    let records = state.engine().schemas()?;
    Ok(Json(
        records
            .into_iter()
            .map(|r| Schema::from_record(r, false))
            .collect(),
    ))
}

/// One schema with its document.
#[utoipa::path(get, path = "/v1/schemas/{id}", tag = "schemas", security(("bearer" = [])),
    params(("id" = String, Path, description = "Schema id, e.g. `text-input-v1`")),
    responses(
        (status = 200, description = "The schema", body = Schema),
        (status = "4XX", description = "Refused or not found", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get(
    _: Reader,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Schema>> {
    let record = state
        .engine()
        .schema(&id)?
        .ok_or_else(|| ApiError::NotFound(format!("schema `{id}` not found")))?;
    Ok(Json(Schema::from_record(record, true)))
}

/// Validate a JSON document (the request body) against a schema without
/// storing anything. A document that breaks the schema is a 200 with
/// `valid: false` and each violation's JSON pointer and rule.
#[utoipa::path(post, path = "/v1/schemas/{id}/validate", tag = "schemas", security(("bearer" = [])),
    params(("id" = String, Path, description = "Schema id")),
    request_body(content = Object, description = "Any JSON document", content_type = "application/json"),
    responses(
        (status = 200, description = "Whether it matches", body = Validation),
        (status = "4XX", description = "Not JSON, unknown schema, or refused", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn validate(
    _: Reader,
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Validation>> {
    let bytes = read_body(&headers, body, state.config().max_body_bytes).await?;
    match state.engine().validate(&id, &bytes) {
        Ok(()) => Ok(Json(Validation {
            valid: true,
            errors: Vec::new(),
            total: 0,
        })),
        Err(EngineError::SchemaViolation {
            violations, total, ..
        }) => Ok(Json(Validation {
            valid: false,
            errors: violations
                .into_iter()
                .map(|v| ProblemViolation {
                    pointer: v.pointer,
                    rule: v.rule,
                    message: v.message,
                })
                .collect(),
            total,
        })),
        Err(EngineError::UnknownSchema { id }) => {
            Err(ApiError::NotFound(format!("schema `{id}` not found")))
        }
        Err(e) => Err(e.into()),
    }
}
