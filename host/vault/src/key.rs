//! A master key, its id, and the sealed-value format.
//!
//! Sealed value: `b"rv1" | key id (8) | nonce (12) | ciphertext | tag (16)`.
//! The AEAD's associated data is the 11-byte header (`rv1` and the key id)
//! followed by the caller's AAD, so neither the header nor the place a value
//! belongs to can be changed without the value failing to open.

use std::fmt;

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use sha2::{Digest, Sha256};

use crate::error::VaultError;

/// The prefix of every sealed value; the `1` is the format version.
const MAGIC: &[u8; 3] = b"rv1";
/// `MAGIC` and the key id.
const HEADER_LEN: usize = MAGIC.len() + KeyId::LEN;
/// AES-GCM's tag length.
const TAG_LEN: usize = 16;
/// The shortest sealed value: header, nonce and the tag of an empty plaintext.
const MIN_SEALED_LEN: usize = HEADER_LEN + NONCE_LEN + TAG_LEN;

/// The length of a master key in bytes (AES-256).
pub(crate) const KEY_LEN: usize = 32;

/// Names a master key without revealing it: the first 8 bytes of the key's
/// SHA-256, shown as 16 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; KeyId::LEN]);

impl KeyId {
    const LEN: usize = 8;

    /// The id's 8 bytes, as stored in a sealed value.
    pub fn as_bytes(&self) -> &[u8; 8] {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// Raw key bytes, overwritten when dropped (best effort: copies made by the
/// cipher or the allocator are out of reach).
pub(crate) struct KeyBytes(pub(crate) [u8; KEY_LEN]);

impl KeyBytes {
    /// 32 bytes from the operating system's random source.
    pub(crate) fn generate() -> Result<Self, VaultError> {
        let mut bytes = KeyBytes([0; KEY_LEN]);
        getrandom::fill(&mut bytes.0).map_err(VaultError::Random)?;
        Ok(bytes)
    }
}

impl Drop for KeyBytes {
    fn drop(&mut self) {
        self.0.fill(0);
        std::hint::black_box(&mut self.0);
    }
}

/// A master key ready to seal and open. Holds the cipher key, never the raw
/// bytes.
pub(crate) struct Key {
    id: KeyId,
    aead: LessSafeKey,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({})", self.id)
    }
}

impl Key {
    pub(crate) fn new(bytes: &KeyBytes) -> Result<Self, VaultError> {
        let digest = Sha256::digest(bytes.0);
        let mut id = [0; KeyId::LEN];
        id.copy_from_slice(&digest[..KeyId::LEN]);
        let id = KeyId(id);
        // Fails only for a key of the wrong length, which the type rules out.
        let unbound = UnboundKey::new(&AES_256_GCM, &bytes.0)
            .map_err(|_| VaultError::SealFailed { key_id: id })?;
        Ok(Key {
            id,
            aead: LessSafeKey::new(unbound),
        })
    }

    pub(crate) fn id(&self) -> KeyId {
        self.id
    }

    /// Seals `plaintext` under a fresh random nonce.
    pub(crate) fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, VaultError> {
        let mut nonce = [0; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(VaultError::Random)?;
        let mut out = Vec::with_capacity(MIN_SEALED_LEN + plaintext.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.id.0);
        let full_aad = associated_data(&out, aad);
        out.extend_from_slice(&nonce);
        let body = out.len();
        out.extend_from_slice(plaintext);
        let tag = self
            .aead
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(full_aad),
                &mut out[body..],
            )
            .map_err(|_| VaultError::SealFailed { key_id: self.id })?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Opens a value sealed under this key; the caller has checked the key id.
    pub(crate) fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, VaultError> {
        let key_id = sealed_key_id(sealed)?;
        let failed = VaultError::AuthenticationFailed { key_id };
        if key_id != self.id {
            return Err(failed);
        }
        let (header, rest) = sealed.split_at(HEADER_LEN);
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| VaultError::NotSealed("too short"))?;
        let mut buf = body.to_vec();
        let len = self
            .aead
            .open_in_place(nonce, Aad::from(associated_data(header, aad)), &mut buf)
            .map_err(|_| failed)?
            .len();
        buf.truncate(len);
        Ok(buf)
    }
}

/// The key id a sealed value names, after checking its shape.
pub(crate) fn sealed_key_id(sealed: &[u8]) -> Result<KeyId, VaultError> {
    if !sealed.starts_with(MAGIC) {
        return Err(VaultError::NotSealed("it does not start with `rv1`"));
    }
    if sealed.len() < MIN_SEALED_LEN {
        return Err(VaultError::NotSealed("too short"));
    }
    let mut id = [0; KeyId::LEN];
    id.copy_from_slice(&sealed[MAGIC.len()..HEADER_LEN]);
    Ok(KeyId(id))
}

fn associated_data(header: &[u8], aad: &[u8]) -> Vec<u8> {
    let mut full = Vec::with_capacity(header.len() + aad.len());
    full.extend_from_slice(header);
    full.extend_from_slice(aad);
    full
}
