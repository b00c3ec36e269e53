//! The sha256 digest of some content: blobs, components, configs, effect
//! requests and responses.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Sha256;

const PREFIX: &str = "sha256:";

/// A sha256 digest. Its text form is `sha256:<64 lowercase hex digits>`,
/// on the wire and in storage; [`Digest::hex`] is the bare hex, for keys.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest([u8; 32]);

/// Text that is not a digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a digest (expected sha256: and 64 lowercase hex digits)")]
pub struct DigestError(String);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        use sha2::Digest as _;
        Self(Sha256::digest(bytes).into())
    }

    /// A digest from its 32 raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64 lowercase hex digits, without the `sha256:` prefix.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Reads the text form, or the bare 64 hex digits that records written
    /// by earlier versions hold.
    pub fn parse_lenient(text: &str) -> Result<Self, DigestError> {
        let hex_part = text.strip_prefix(PREFIX).unwrap_or(text);
        let mut raw = [0u8; 32];
        let lowercase = hex_part
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if hex_part.len() == 64 && lowercase && hex::decode_to_slice(hex_part, &mut raw).is_ok() {
            Ok(Self(raw))
        } else {
            Err(DigestError(text.chars().take(80).collect()))
        }
    }
}

impl Default for Digest {
    /// The digest of no bytes.
    fn default() -> Self {
        Self::of(b"")
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}", self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    /// The text form only (`sha256:` and 64 lowercase hex digits).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if !s.starts_with(PREFIX) {
            return Err(DigestError(s.chars().take(80).collect()));
        }
        Self::parse_lenient(s)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    /// The text form, or bare hex as stored by earlier versions.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse_lenient(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn one_text_form_round_trips() {
        let d = Digest::of(b"abc");
        let text = d.to_string();
        assert_eq!(
            text,
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(text.parse::<Digest>().unwrap(), d);
        assert_eq!(serde_json::to_string(&d).unwrap(), format!("\"{text}\""));
        assert_eq!(
            serde_json::from_str::<Digest>(&format!("\"{text}\"")).unwrap(),
            d
        );
    }

    #[test]
    fn legacy_bare_hex_is_read_but_not_parsed_as_text() {
        let d = Digest::of(b"abc");
        assert!(d.hex().parse::<Digest>().is_err());
        assert_eq!(Digest::parse_lenient(&d.hex()).unwrap(), d);
        assert_eq!(
            serde_json::from_str::<Digest>(&format!("\"{}\"", d.hex())).unwrap(),
            d
        );
    }

    #[test]
    fn malformed_text_is_refused() {
        for bad in [
            "",
            "sha256:",
            "sha256:XYZ",
            "md5:00",
            &format!("sha256:{}", "A".repeat(64)),
        ] {
            assert!(Digest::parse_lenient(bad).is_err(), "{bad}");
        }
    }
}
