//! Compiled components on disk, keyed by (component digest, engine
//! compatibility hash), so a restart never recompiles.
//!
//! A file is `MAGIC`, then a SHA-256 over (component digest, engine key,
//! payload), then the payload `Component::serialize` produced. The checksum is
//! verified before wasmtime ever sees the payload; a file that fails it is
//! deleted and rebuilt, never trusted.

use std::hash::Hasher;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest as _, Sha256};

const MAGIC: &[u8; 8] = b"REYNAC01";
const HEADER: usize = MAGIC.len() + 32;

/// What a cache lookup found.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// No artifact for this key.
    Missing,
    /// An artifact whose checksum matches: the payload.
    Found(Vec<u8>),
    /// An artifact that cannot be trusted, and why.
    Corrupt(String),
}

/// The artifact directory of one engine configuration.
#[derive(Debug, Clone)]
pub(crate) struct ArtifactCache {
    dir: PathBuf,
    engine_key: String,
}

impl ArtifactCache {
    pub fn new(dir: &Path, engine_key: String) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(ArtifactCache {
            dir: dir.to_owned(),
            engine_key,
        })
    }

    /// Where the artifact of `digest` lives.
    pub fn path(&self, digest: &str) -> PathBuf {
        self.dir.join(format!("{digest}-{}.cwasm", self.engine_key))
    }

    fn checksum(&self, digest: &str, payload: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(digest.as_bytes());
        h.update([0]);
        h.update(self.engine_key.as_bytes());
        h.update([0]);
        h.update(payload);
        h.finalize().into()
    }

    pub fn read(&self, digest: &str) -> Lookup {
        let bytes = match std::fs::read(self.path(digest)) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Lookup::Missing,
            Err(e) => return Lookup::Corrupt(format!("cannot read: {e}")),
        };
        if bytes.len() < HEADER || &bytes[..MAGIC.len()] != MAGIC {
            return Lookup::Corrupt("not a reyna artifact (bad header)".to_owned());
        }
        let (header, payload) = bytes.split_at(HEADER);
        if header[MAGIC.len()..] != self.checksum(digest, payload) {
            return Lookup::Corrupt("checksum mismatch".to_owned());
        }
        let mut bytes = bytes;
        bytes.drain(..HEADER);
        Lookup::Found(bytes)
    }

    /// Writes the artifact atomically: a temporary file renamed into place,
    /// so a crash never leaves a half-written artifact under the real name.
    pub fn write(&self, digest: &str, payload: &[u8]) -> std::io::Result<()> {
        let path = self.path(digest);
        // Unique per process and per write: two loads of the same component
        // at once must not interleave their bytes in one temporary file.
        static WRITES: AtomicU64 = AtomicU64::new(0);
        let n = WRITES.fetch_add(1, Ordering::Relaxed);
        let tmp = self.dir.join(format!(
            ".{digest}-{}.{}-{n}.tmp",
            self.engine_key,
            std::process::id()
        ));
        let result = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(MAGIC)?;
            f.write_all(&self.checksum(digest, payload))?;
            f.write_all(payload)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    pub fn remove(&self, digest: &str) {
        if let Err(e) = std::fs::remove_file(self.path(digest))
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(digest, error = %e, "cannot delete rejected artifact");
        }
    }
}

/// A `Hasher` over SHA-256, to turn wasmtime's `precompile_compatibility_hash`
/// into a key that is stable across processes (std's hashers make no such
/// promise).
#[derive(Default)]
pub(crate) struct StableHasher(Sha256);

impl StableHasher {
    pub fn key(self) -> String {
        // 16 bytes are plenty to tell engine configurations apart.
        hex::encode(&self.0.finalize()[..16])
    }
}

impl Hasher for StableHasher {
    fn finish(&self) -> u64 {
        let d = self.0.clone().finalize();
        u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper_detection() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ArtifactCache::new(dir.path(), "engine".into()).unwrap();
        assert!(matches!(cache.read("abc"), Lookup::Missing));
        cache.write("abc", b"payload").unwrap();
        match cache.read("abc") {
            Lookup::Found(p) => assert_eq!(p, b"payload"),
            other => panic!("{other:?}"),
        }
        // Flip one payload byte.
        let path = cache.path("abc");
        let mut bytes = std::fs::read(&path).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(cache.read("abc"), Lookup::Corrupt(r) if r == "checksum mismatch"));
        // A file copied under another digest's name does not verify either.
        cache.write("abc", b"payload").unwrap();
        std::fs::copy(cache.path("abc"), cache.path("def")).unwrap();
        assert!(matches!(cache.read("def"), Lookup::Corrupt(_)));
        std::fs::write(cache.path("def"), b"short").unwrap();
        assert!(matches!(cache.read("def"), Lookup::Corrupt(r) if r.contains("bad header")));
        cache.remove("def");
        assert!(matches!(cache.read("def"), Lookup::Missing));
    }

    #[test]
    fn stable_hasher_is_deterministic() {
        use std::hash::Hash;
        let key = |v: &str| {
            let mut h = StableHasher::default();
            v.hash(&mut h);
            h.key()
        };
        assert_eq!(key("a"), key("a"));
        assert_ne!(key("a"), key("b"));
        assert_eq!(key("a").len(), 32);
    }
}
