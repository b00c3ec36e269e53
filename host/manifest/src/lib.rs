//! The Reyna plugin manifest: types, validation, subject patterns, and reading
//! a component's embedded declaration. No I/O: the SDK's test harness, the
//! runtime, the engine and the CLI all share these rules.
//!
//! ```
//! use reyna_manifest::{Manifest, Subject};
//!
//! let manifest = Manifest::parse(r#"
//!     name = "word-stats"
//!     version = "0.1.0"
//!     kind = "processor"
//!     subscribes = ["blob.created.text-input-v1"]
//!     inputs = ["text-input-v1"]
//!     outputs = ["word-stats-v1"]
//! "#)?;
//! assert!(manifest.subscribes[0].matches(&Subject::blob_created("text-input-v1")));
//! # Ok::<(), reyna_manifest::ManifestError>(())
//! ```
#![deny(missing_docs)]

pub mod component;
mod manifest;
mod schema_id;
mod subject;

pub use component::{ComponentInfo, InspectError, MANIFEST_SECTION, inspect};
pub use manifest::{
    AllowedHost, AllowedHostError, AllowedPort, ByteSize, HumanDuration, Kind, LimitsRequest,
    Manifest, ManifestError, is_valid_name,
};
pub use schema_id::{SchemaId, SchemaIdError};
pub use subject::{PatternToken, Subject, SubjectError, SubjectPattern};
