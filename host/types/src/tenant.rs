//! Tenants: the unit of isolation. Every blob, job, event and token belongs
//! to one.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

/// Longest tenant id.
pub const MAX_LEN: usize = 64;

/// A tenant id: 1 to 64 characters of `a-z`, `0-9`, `-` and `_`. Checked
/// once, when it is made; every holder can rely on it.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct TenantId(String);

/// Text that is not a tenant id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tenant `{0}` must be 1 to 64 characters of a-z, 0-9, `-` and `_`")]
pub struct TenantError(String);

impl TenantId {
    /// Checks `text` and makes it a tenant id.
    pub fn parse(text: &str) -> Result<Self, TenantError> {
        let ok = !text.is_empty()
            && text.len() <= MAX_LEN
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(TenantError(text.chars().take(80).collect()))
        }
    }

    /// The id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantId({})", self.0)
    }
}

impl FromStr for TenantId {
    type Err = TenantError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl AsRef<str> for TenantId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for TenantId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn only_valid_ids_are_made() {
        for good in ["acme", "a", "team-1_x", &"a".repeat(64)] {
            assert_eq!(TenantId::parse(good).unwrap().as_str(), good);
        }
        for bad in ["", "Acme", "a b", "a/b", "a.b", &"a".repeat(65), "é"] {
            assert!(TenantId::parse(bad).is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<TenantId>("\"Nope\"").is_err());
    }
}
