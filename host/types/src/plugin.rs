//! A plugin version, `name@version`: the identity of uploaded code.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A plugin version: its name and version. Text form `name@version`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PluginRef {
    name: String,
    version: String,
}

/// Text that is not `name@version`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a plugin reference (expected name@version)")]
pub struct PluginRefError(String);

impl PluginRef {
    /// The version `version` of plugin `name`.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
        }
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The version.
    pub fn version(&self) -> &str {
        &self.version
    }
}

impl fmt::Display for PluginRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.version)
    }
}

impl fmt::Debug for PluginRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PluginRef({self})")
    }
}

impl FromStr for PluginRef {
    type Err = PluginRefError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('@') {
            Some((name, version))
                if !name.is_empty() && !version.is_empty() && !version.contains('@') =>
            {
                Ok(Self::new(name, version))
            }
            _ => Err(PluginRefError(s.chars().take(80).collect())),
        }
    }
}

impl Serialize for PluginRef {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PluginRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn text_form_round_trips() {
        let p: PluginRef = "text-expand@1.2.0".parse().unwrap();
        assert_eq!((p.name(), p.version()), ("text-expand", "1.2.0"));
        assert_eq!(p.to_string(), "text-expand@1.2.0");
        for bad in ["", "x", "@1", "x@", "a@b@c"] {
            assert!(bad.parse::<PluginRef>().is_err(), "{bad}");
        }
    }
}
