//! Reyna's domain types, one definition each, used by every host crate:
//! ids ([`BlobId`], [`JobId`], [`DeadLetterId`], [`TokenId`]), the
//! [`Digest`] of content, the [`TenantId`], the [`PluginRef`]
//! (`name@version`), the [`Cost`] of a call and the rules of the usage
//! units an effect reports ([`add_usage`]), the [`EffectCall`] record and
//! the [`LogLine`]s of a guest's log.
//! No I/O. Each type has one text form, used on the wire and in storage.
//!
//! ```
//! use reyna_types::{Digest, JobId, BlobId, TenantId, PluginRef};
//!
//! let digest = Digest::of(b"hello");
//! assert_eq!(digest.to_string().parse::<Digest>().unwrap(), digest);
//! assert!(digest.to_string().starts_with("sha256:"));
//!
//! let job = JobId::generate();
//! assert_eq!(BlobId::derived(job, 0), BlobId::derived(job, 0));
//!
//! let tenant = TenantId::parse("acme").unwrap();
//! assert!(TenantId::parse("Not A Tenant").is_err());
//! assert_eq!(tenant.as_str(), "acme");
//!
//! let plugin: PluginRef = "text-expand@1.2.0".parse().unwrap();
//! assert_eq!(plugin.name(), "text-expand");
//! ```
#![deny(missing_docs)]

mod cost;
mod digest;
mod effect;
mod id;
mod log;
mod plugin;
mod tenant;

pub use cost::{Cost, MAX_UNIT_NAME, MAX_USAGE_UNITS, UnitError, add_usage, check_unit_name};
pub use digest::{Digest, DigestError};
pub use effect::{EffectCall, EffectOutcome};
pub use id::{BlobId, DeadLetterId, IdError, JobId, TokenId};
pub use log::{LogLevel, LogLine};
pub use plugin::{PluginRef, PluginRefError};
pub use tenant::{TenantError, TenantId};
