//! Schema ids: `[a-z0-9-]+-v<N>`, such as `text-input-v1`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a schema id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid schema id `{0}`: expected lowercase `name-v<N>` such as `text-input-v1`")]
pub struct SchemaIdError(pub String);

/// A checked schema id. Ids are immutable: a new version is a new id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SchemaId(String);

impl SchemaId {
    /// Checks `text` against `[a-z0-9-]+-v<N>`.
    pub fn parse(text: &str) -> Result<Self, SchemaIdError> {
        let bad = || SchemaIdError(text.to_owned());
        let (stem, version) = text.rsplit_once("-v").ok_or_else(bad)?;
        let stem_ok = !stem.is_empty()
            && !stem.starts_with('-')
            && stem
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        let version_ok = !version.is_empty()
            && version.len() <= 9
            && version.chars().all(|c| c.is_ascii_digit())
            && !(version.len() > 1 && version.starts_with('0'));
        if stem_ok && version_ok && text.len() <= 128 {
            Ok(Self(text.to_owned()))
        } else {
            Err(bad())
        }
    }

    /// The id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SchemaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for SchemaId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SchemaId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_versioned_lowercase_ids() {
        for ok in ["text-input-v1", "a-v0", "compiled-book-v12", "x2-v3"] {
            assert!(SchemaId::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "",
            "text",
            "text-v",
            "Text-v1",
            "text.v1",
            "text-v1.2",
            "-v1",
            "a-v01",
            "a_b-v1",
            "text-vx",
        ] {
            assert!(SchemaId::parse(bad).is_err(), "{bad}");
        }
    }
}
