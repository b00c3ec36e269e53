//! The record of one effect call, kept in the lineage of whatever the call
//! helped produce.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Digest;

/// One effect call made during a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EffectCall {
    /// Effect plugin name.
    pub effect: String,
    /// Effect plugin version (empty when no version could serve it).
    pub version: String,
    /// Digest of the request bytes (`sha256:<hex>`).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub request_digest: Digest,
    /// Digest of the response bytes, when there was one.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub response_digest: Option<Digest>,
    /// How long the call took (µs).
    pub duration_us: u64,
    /// `ok`, `replayed`, or why the call failed.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub outcome: EffectOutcome,
}

/// What came of an effect call. Text form: `ok`, `replayed`, or the reason
/// it failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EffectOutcome {
    /// The effect ran and answered.
    Ok,
    /// Answered from a response recorded by an earlier run (replay mode).
    Replayed,
    /// No response; why (e.g. `timeout: ...`, `unavailable: ...`).
    Failed(String),
}

impl EffectOutcome {
    /// Whether the call produced a response (run or replayed).
    pub fn answered(&self) -> bool {
        matches!(self, Self::Ok | Self::Replayed)
    }
}

impl fmt::Display for EffectOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ok => f.write_str("ok"),
            Self::Replayed => f.write_str("replayed"),
            Self::Failed(reason) => f.write_str(reason),
        }
    }
}

impl FromStr for EffectOutcome {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "ok" => Self::Ok,
            "replayed" => Self::Replayed,
            other => Self::Failed(other.to_owned()),
        })
    }
}

impl Serialize for EffectOutcome {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EffectOutcome {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let Ok(outcome) = text.parse();
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn outcome_text_round_trips() {
        for outcome in [
            EffectOutcome::Ok,
            EffectOutcome::Replayed,
            EffectOutcome::Failed("timeout: 2s".into()),
        ] {
            let text = outcome.to_string();
            assert_eq!(text.parse::<EffectOutcome>().unwrap(), outcome);
        }
        assert!(EffectOutcome::Replayed.answered());
        assert!(!EffectOutcome::Failed("x".into()).answered());
    }
}
