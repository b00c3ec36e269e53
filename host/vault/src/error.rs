//! The vault's error enum: one type for every operation, so callers match on
//! what went wrong. No variant carries key bytes or plaintext.

use std::io;
use std::path::PathBuf;

use crate::key::KeyId;

/// Why a vault operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VaultError {
    /// A file operation on a key file (or its directory) failed.
    #[error("could not {action} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. `read key file`.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A key file given by path does not exist (such a file is never created).
    #[error("key file {} does not exist", path.display())]
    KeyFileMissing {
        /// The path that was given.
        path: PathBuf,
    },
    /// A key file exists but does not hold a master key; it is left as it is.
    #[error("key file {} is not a master key ({reason}); it was left as it is", path.display())]
    MalformedKeyFile {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A key file may be read or written by group or others.
    #[error(
        "key file {} is accessible by group or others (mode {mode:03o}); run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    KeyFilePermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A pending rotation file exists but the key file it would replace does not.
    #[error(
        "{} exists but the key file {} does not; restore the key file (or rename {} to it if the rotation had finished)",
        next.display(),
        path.display(),
        next.display()
    )]
    OrphanedRotation {
        /// The missing key file.
        path: PathBuf,
        /// The pending rotation file.
        next: PathBuf,
    },
    /// A rotation was begun while another one is pending.
    #[error(
        "a master key rotation is pending ({} exists); finish or abandon it before beginning another",
        next.display()
    )]
    RotationPending {
        /// The pending rotation file.
        next: PathBuf,
    },
    /// The operating system's random source failed.
    #[error("could not get random bytes from the operating system: {0}")]
    Random(#[source] getrandom::Error),
    /// The bytes are not a sealed value (wrong prefix, or too short).
    #[error("not a sealed value: {0}")]
    NotSealed(&'static str),
    /// The value was sealed under a key this vault does not hold.
    #[error(
        "sealed under master key {key_id}, which this vault does not hold (it holds {})",
        list(known)
    )]
    UnknownKey {
        /// The key id in the sealed value.
        key_id: KeyId,
        /// The key ids this vault holds.
        known: Vec<KeyId>,
    },
    /// The value did not authenticate: tampered with, or sealed for another place (AAD).
    #[error(
        "sealed value failed authentication under master key {key_id}: it was altered or belongs elsewhere"
    )]
    AuthenticationFailed {
        /// The key id in the sealed value.
        key_id: KeyId,
    },
    /// The cipher refused to seal (never expected: ring refuses only oversized input).
    #[error("could not seal the value under master key {key_id}")]
    SealFailed {
        /// The key that was used.
        key_id: KeyId,
    },
}

impl VaultError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| VaultError::Io {
            action,
            path,
            source,
        }
    }
}

fn list(ids: &[KeyId]) -> String {
    ids.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
