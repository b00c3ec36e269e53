//! Reyna's secrets at rest: the master key file, sealing values with
//! AES-256-GCM, and crash-safe rotation of the master key.
//!
//! This crate owns the cryptography and the key files only; where sealed
//! values are stored (redb) and which secrets exist is the engine's business.
//! Every function here does blocking file I/O or CPU work: call it at startup
//! or on a blocking pool, never on the async executor.
//!
//! # Master key file
//!
//! A master key is 32 random bytes, stored as 64 hex digits (surrounding
//! whitespace ignored) in a file of mode 0600. Its [`KeyId`] is the first 8
//! bytes of its SHA-256, shown as 16 hex digits. Without a configured path the
//! key lives in `<data dir>/master.key` and is created on first start; a
//! configured path must exist and is never created. A file that is not a key,
//! or (on unix) that group or others may read or write, is refused and left as
//! it is.
//!
//! # Sealed values
//!
//! `b"rv1" | key id (8 bytes) | nonce (12) | ciphertext | tag (16)`, with a
//! fresh random nonce per seal. The caller's AAD says where the value belongs
//! (tenant, plugin, name, version): a sealed value copied anywhere else fails
//! to open. The AAD is not stored; the header is authenticated with it.
//!
//! # Rotation file protocol
//!
//! 1. [`Vault::begin_rotation`] writes a new key to `<key file>.next` (0600,
//!    fsynced; refused if that file exists).
//! 2. The caller reseals every value with [`Rotation::reseal`] and commits them
//!    all in one transaction.
//! 3. [`Rotation::finish`] renames `.next` over the key file (and fsyncs the
//!    directory); [`Rotation::abandon`] removes `.next` instead.
//!
//! If the process dies between steps 1 and 3, [`Vault::open`] finds `.next`,
//! holds both keys (values under either open; new values are sealed under the
//! key in the key file) and reports it in [`Vault::pending_rotation`]. The
//! caller then knows whether its transaction committed and calls
//! [`Vault::complete_pending`] (it did) or [`Vault::abandon_pending`] (it did
//! not).
//!
//! # Example
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! use reyna_vault::Vault;
//!
//! let vault = Vault::open(dir.path(), None)?;
//! let aad = b"tenant=acme plugin=mailer name=smtp-password version=1";
//! let sealed = vault.seal(aad, b"hunter2")?;
//! assert_eq!(vault.unseal(aad, &sealed)?, b"hunter2");
//! assert!(vault.unseal(b"tenant=other", &sealed).is_err());
//!
//! let rotation = vault.begin_rotation()?;
//! let resealed = rotation.reseal(aad, &sealed)?;
//! let vault = rotation.finish()?;
//! assert!(vault.is_current(&resealed));
//! assert_eq!(vault.unseal(aad, &resealed)?, b"hunter2");
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

mod error;
mod file;
mod key;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use error::VaultError;
pub use key::KeyId;

use key::Key;

/// The master key file's name in the data directory when no path is given.
pub const DEFAULT_KEY_FILE: &str = "master.key";

/// The master key (and, while a rotation is pending, the next one), ready to
/// seal and unseal values.
pub struct Vault {
    path: PathBuf,
    current: Arc<Key>,
    pending: Option<Arc<Key>>,
}

// By hand: key ids only, never key material.
impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field("key_file", &self.path)
            .field("key_id", &self.current.id())
            .field("pending", &self.pending.as_ref().map(|k| k.id()))
            .finish()
    }
}

impl Vault {
    /// Opens the master key: `key_file` if given (it must exist), else
    /// `<data_dir>/master.key`, created on first start. A pending rotation
    /// file next to it is loaded too (see [`Vault::pending_rotation`]).
    pub fn open(data_dir: &Path, key_file: Option<&Path>) -> Result<Vault, VaultError> {
        let path = match key_file {
            Some(path) => path.to_owned(),
            None => data_dir.join(DEFAULT_KEY_FILE),
        };
        let next = file::next_path(&path);
        let pending = file::read(&next)?;
        let current = match file::read(&path)? {
            Some(key) => key,
            None if pending.is_some() => {
                return Err(VaultError::OrphanedRotation { path, next });
            }
            None if key_file.is_some() => return Err(VaultError::KeyFileMissing { path }),
            None => match file::create(&path)? {
                Some(key) => key,
                // Another process created it first: use theirs.
                None => file::read(&path)?
                    .ok_or_else(|| VaultError::KeyFileMissing { path: path.clone() })?,
            },
        };
        Ok(Vault {
            path,
            current: Arc::new(current),
            pending: pending.map(Arc::new),
        })
    }

    /// The id of the key new values are sealed under.
    pub fn key_id(&self) -> KeyId {
        self.current.id()
    }

    /// The key file this vault was opened from.
    pub fn key_file(&self) -> &Path {
        &self.path
    }

    /// The key of a rotation that was begun and neither finished nor abandoned
    /// (found as `<key file>.next` at open).
    pub fn pending_rotation(&self) -> Option<KeyId> {
        self.pending.as_ref().map(|k| k.id())
    }

    /// Seals `plaintext` under the current key, bound to `aad`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, VaultError> {
        self.current.seal(aad, plaintext)
    }

    /// Opens a value sealed under the current or pending key with the same `aad`.
    pub fn unseal(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, VaultError> {
        unseal_with(self.keys(), aad, sealed)
    }

    /// Whether `sealed` names the current key (its shape is checked, its
    /// authenticity is not).
    pub fn is_current(&self, sealed: &[u8]) -> bool {
        key::sealed_key_id(sealed).is_ok_and(|id| id == self.current.id())
    }

    /// Step 1 of a rotation: writes a new key to `<key file>.next`. Refused
    /// while that file exists. Until [`Rotation::finish`] or
    /// [`Rotation::abandon`], this vault keeps sealing under the old key.
    pub fn begin_rotation(&self) -> Result<Rotation, VaultError> {
        let next_path = file::next_path(&self.path);
        let next = match file::create(&next_path)? {
            Some(key) => key,
            None => return Err(VaultError::RotationPending { next: next_path }),
        };
        Ok(Rotation {
            path: self.path.clone(),
            next_path,
            old: Arc::clone(&self.current),
            new: Arc::new(next),
        })
    }

    /// Finishes the pending rotation: the values are already sealed under the
    /// pending key, so it becomes the key file. Without a pending rotation the
    /// vault is returned unchanged.
    pub fn complete_pending(self) -> Result<Vault, VaultError> {
        let Some(pending) = self.pending else {
            return Ok(self);
        };
        file::replace(&file::next_path(&self.path), &self.path)?;
        Ok(Vault {
            path: self.path,
            current: pending,
            pending: None,
        })
    }

    /// Abandons the pending rotation: no value is sealed under the pending key,
    /// so its file is removed. Without a pending rotation the vault is
    /// returned unchanged.
    pub fn abandon_pending(self) -> Result<Vault, VaultError> {
        if self.pending.is_none() {
            return Ok(self);
        }
        file::remove(&file::next_path(&self.path))?;
        Ok(Vault {
            pending: None,
            ..self
        })
    }

    fn keys(&self) -> Vec<&Key> {
        let mut keys = vec![&*self.current];
        keys.extend(self.pending.as_deref());
        keys
    }
}

/// A master key rotation in progress: the new key is in `<key file>.next`.
/// Dropping it without [`finish`](Rotation::finish) or
/// [`abandon`](Rotation::abandon) leaves the rotation pending, as a crash would.
#[must_use = "a rotation left alone stays pending: finish or abandon it"]
pub struct Rotation {
    path: PathBuf,
    next_path: PathBuf,
    old: Arc<Key>,
    new: Arc<Key>,
}

impl fmt::Debug for Rotation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rotation")
            .field("key_file", &self.path)
            .field("old", &self.old.id())
            .field("new", &self.new.id())
            .finish()
    }
}

impl Rotation {
    /// The new key's id.
    pub fn key_id(&self) -> KeyId {
        self.new.id()
    }

    /// The old key's id.
    pub fn previous_key_id(&self) -> KeyId {
        self.old.id()
    }

    /// Step 2: opens `sealed` (under the old key, or already under the new one
    /// if a step is repeated) and seals it again under the new key.
    pub fn reseal(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, VaultError> {
        let mut plaintext = unseal_with(vec![&*self.old, &*self.new], aad, sealed)?;
        let resealed = self.new.seal(aad, &plaintext);
        // Best effort: the plaintext does not outlive this call in our memory.
        plaintext.fill(0);
        resealed
    }

    /// Step 3: the new key replaces the key file; returns the vault sealing
    /// under it. Call only once the resealed values are committed.
    pub fn finish(self) -> Result<Vault, VaultError> {
        file::replace(&self.next_path, &self.path)?;
        Ok(Vault {
            path: self.path,
            current: self.new,
            pending: None,
        })
    }

    /// Gives the rotation up: removes `<key file>.next`. Call only if no
    /// resealed value was committed.
    pub fn abandon(self) -> Result<(), VaultError> {
        file::remove(&self.next_path)
    }
}

fn unseal_with(keys: Vec<&Key>, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, VaultError> {
    let key_id = key::sealed_key_id(sealed)?;
    match keys.iter().find(|k| k.id() == key_id) {
        Some(key) => key.open(aad, sealed),
        None => Err(VaultError::UnknownKey {
            key_id,
            known: keys.iter().map(|k| k.id()).collect(),
        }),
    }
}
