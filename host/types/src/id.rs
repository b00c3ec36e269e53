//! Time-ordered ids (ULIDs) of blobs, jobs, dead letters and tokens. The text
//! form is the 26-character ULID; the inner value is reached only through
//! [`BlobId::key`] and friends (the store's table keys).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use ulid::Ulid;

/// Text that is not an id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an id (expected a 26-character ULID)")]
pub struct IdError(String);

macro_rules! ulid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Ulid);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn generate() -> Self {
                Self(Ulid::new())
            }

            /// The milliseconds timestamp encoded in the id.
            pub fn timestamp_ms(&self) -> u64 {
                self.0.timestamp_ms()
            }

            /// The id as a 128-bit key (its sort order is the id's).
            pub fn key(self) -> u128 {
                self.0.0
            }

            /// The id of a 128-bit key.
            pub fn from_key(key: u128) -> Self {
                Self(Ulid(key))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Ulid::from_string(s)
                    .map(Self)
                    .map_err(|_| IdError(s.chars().take(40).collect()))
            }
        }
    };
}

ulid_id!(
    /// Identifies a blob. Ingested blobs get a fresh time-ordered id; derived
    /// blobs get one computed from (job id, output index).
    BlobId
);
ulid_id!(
    /// Identifies a job: one run of one plugin version over one input blob.
    /// Retries and replays keep the id and raise the attempt.
    JobId
);
ulid_id!(
    /// Identifies a dead letter.
    DeadLetterId
);
ulid_id!(
    /// Identifies an API token record (not the secret).
    TokenId
);

impl BlobId {
    /// The id of output `index` of job `job`: the same job always names its
    /// outputs the same way, so a completion replayed after a crash or a
    /// redelivery overwrites nothing and duplicates nothing. The timestamp is
    /// the job's, so derived ids still sort roughly by time.
    pub fn derived(job: JobId, index: u32) -> Self {
        let mut hash = Sha256::new();
        hash.update(b"reyna/output/v1");
        hash.update(job.key().to_be_bytes());
        hash.update(index.to_be_bytes());
        let digest = hash.finalize();
        let mut random = [0u8; 16];
        random[6..].copy_from_slice(&digest[..10]);
        Self(Ulid::from_parts(
            job.timestamp_ms(),
            u128::from_be_bytes(random),
        ))
    }
}

impl JobId {
    /// A 64-bit seed derived from the id (its low bits), the same for every
    /// attempt: the seed of a run's `wasi:random` and of its retry jitter,
    /// so a re-run repeats it.
    pub fn seed(self) -> u64 {
        self.key() as u64
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn text_form_round_trips_and_rejects_garbage() {
        let id = JobId::generate();
        assert_eq!(id.to_string().parse::<JobId>().unwrap(), id);
        assert_eq!(JobId::from_key(id.key()), id);
        assert!("not-an-id".parse::<JobId>().is_err());
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{id}\""));
    }

    #[test]
    fn derived_ids_are_stable_and_distinct() {
        let job = JobId::generate();
        assert_eq!(BlobId::derived(job, 3), BlobId::derived(job, 3));
        assert_ne!(BlobId::derived(job, 3), BlobId::derived(job, 4));
        assert_eq!(BlobId::derived(job, 0).timestamp_ms(), job.timestamp_ms());
    }
}
