//! The schema registry: JSON Schemas by immutable id, compiled validators
//! cached in memory, backed by the store.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::error::{EngineError, Violation};
use reyna_manifest::SchemaId;
use reyna_store::Store;

/// The schemas bundled with Reyna (`schemas/`), registered on first start.
pub const BUNDLED: &[(&str, &str)] = &[
    (
        "text-input-v1",
        include_str!("../../../schemas/text-input-v1.json"),
    ),
    (
        "expanded-text-v1",
        include_str!("../../../schemas/expanded-text-v1.json"),
    ),
    (
        "word-stats-v1",
        include_str!("../../../schemas/word-stats-v1.json"),
    ),
    (
        "chapter-v1",
        include_str!("../../../schemas/chapter-v1.json"),
    ),
    (
        "book-compile-request-v1",
        include_str!("../../../schemas/book-compile-request-v1.json"),
    ),
    (
        "compiled-book-v1",
        include_str!("../../../schemas/compiled-book-v1.json"),
    ),
    (
        "word-count-v1",
        include_str!("../../../schemas/word-count-v1.json"),
    ),
];

/// Most violations reported for one document; the rest are counted, not listed.
const MAX_VIOLATIONS: usize = 20;

pub(crate) struct SchemaRegistry {
    store: Store,
    compiled: RwLock<HashMap<String, Arc<jsonschema::Validator>>>,
}

impl SchemaRegistry {
    pub(crate) fn new(store: Store) -> Self {
        Self {
            store,
            compiled: RwLock::new(HashMap::new()),
        }
    }

    fn compile(
        id: &str,
        text: &str,
    ) -> Result<(serde_json::Value, jsonschema::Validator), EngineError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| EngineError::InvalidSchema {
                id: id.to_owned(),
                reason: format!("not JSON: {e}"),
            })?;
        if !value.is_object() {
            return Err(EngineError::InvalidSchema {
                id: id.to_owned(),
                reason: "a schema must be a JSON object".into(),
            });
        }
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(&value)
            .map_err(|e| EngineError::InvalidSchema {
                id: id.to_owned(),
                reason: e.to_string(),
            })?;
        Ok((value, validator))
    }

    /// Loads every stored schema into the cache.
    pub(crate) fn load_all(&self) -> Result<(), EngineError> {
        let mut compiled = HashMap::new();
        for record in self.store.list_schemas()? {
            let (_, validator) = Self::compile(&record.id, &record.json)?;
            compiled.insert(record.id.clone(), Arc::new(validator));
        }
        *self.compiled.write().unwrap_or_else(|e| e.into_inner()) = compiled;
        Ok(())
    }

    /// Registers a schema. The same id with the same content is accepted again;
    /// with different content it is refused (ids are immutable).
    /// `actor` is recorded in the audit log, in the same transaction.
    pub(crate) async fn register(
        &self,
        id: &str,
        text: &str,
        actor: &str,
    ) -> Result<bool, EngineError> {
        SchemaId::parse(id).map_err(|e| EngineError::InvalidSchemaId(e.to_string()))?;
        let (value, validator) = Self::compile(id, text)?;
        // Stored canonically, so formatting differences are not "different content".
        let canonical =
            serde_json::to_string(&value).map_err(|e| EngineError::Internal(e.to_string()))?;
        if let Some(existing) = self.store.get_schema(id)? {
            let same =
                serde_json::from_str::<serde_json::Value>(&existing.json).ok() == Some(value);
            return if same {
                Ok(false)
            } else {
                Err(EngineError::SchemaConflict { id: id.to_owned() })
            };
        }
        self.store
            .put_schema(
                id,
                canonical,
                reyna_store::NewAudit {
                    actor: actor.to_owned(),
                    action: "schema.register".into(),
                    target: id.to_owned(),
                    ..reyna_store::NewAudit::default()
                },
            )
            .await
            .map_err(|e| match e {
                reyna_store::StoreError::SchemaConflict { .. } => {
                    EngineError::SchemaConflict { id: id.to_owned() }
                }
                other => other.into(),
            })?;
        self.compiled
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_owned(), Arc::new(validator));
        Ok(true)
    }

    pub(crate) fn exists(&self, id: &str) -> bool {
        self.compiled
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(id)
    }

    fn validator(&self, id: &str) -> Option<Arc<jsonschema::Validator>> {
        self.compiled
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// Parses `data` as JSON and validates it against schema `id`.
    pub(crate) fn validate(&self, id: &str, data: &[u8]) -> Result<(), EngineError> {
        let validator = self
            .validator(id)
            .ok_or_else(|| EngineError::UnknownSchema { id: id.to_owned() })?;
        let value: serde_json::Value =
            serde_json::from_slice(data).map_err(|e| EngineError::NotJson {
                reason: e.to_string(),
            })?;
        let mut violations = Vec::new();
        let mut total = 0usize;
        for error in validator.iter_errors(&value) {
            total += 1;
            if violations.len() < MAX_VIOLATIONS {
                violations.push(Violation {
                    pointer: error.instance_path().to_string(),
                    rule: error.kind().keyword().to_owned(),
                    message: error.to_string(),
                });
            }
        }
        if total == 0 {
            Ok(())
        } else {
            Err(EngineError::SchemaViolation {
                schema: id.to_owned(),
                violations,
                total,
            })
        }
    }
}
