//! A guest's log, as kept with its job: one [`LogLine`] per line it
//! logged or printed, bounded and with secrets redacted by the runtime.

use serde::{Deserialize, Serialize};

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Trace.
    Trace,
    /// Debug.
    Debug,
    /// Info; also every line the guest printed to stdout.
    Info,
    /// Warning; also every line the guest printed to stderr.
    Warn,
    /// Error.
    Error,
}

impl LogLevel {
    /// The level's code in storage.
    pub fn code(self) -> u8 {
        match self {
            Self::Trace => 0,
            Self::Debug => 1,
            Self::Info => 2,
            Self::Warn => 3,
            Self::Error => 4,
        }
    }

    /// The level with this [`Self::code`].
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => Self::Trace,
            1 => Self::Debug,
            2 => Self::Info,
            3 => Self::Warn,
            4 => Self::Error,
            _ => return None,
        })
    }
}

/// One line of a call's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogLine {
    /// Severity.
    pub level: LogLevel,
    /// The text (a stdout/stderr line without its newline).
    pub message: String,
}
