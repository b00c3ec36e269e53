//! Helpers shared by the store's tests.
#![allow(dead_code)]

use reyna_store::{BlobMeta, Completion, Digest, JobSpec, NewBlob, NewOutput, Store};

pub const TENANT: &str = "acme";

pub fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("reyna.redb")).unwrap();
    (dir, store)
}

pub fn new_blob(schema: &str, data: &[u8]) -> NewBlob {
    NewBlob {
        tenant: TENANT.to_owned(),
        schema: schema.to_owned(),
        data: data.to_vec(),
        parents: Vec::new(),
        hop: 0,
    }
}

pub fn spec(plugin: &str, schema: &str) -> JobSpec {
    JobSpec {
        plugin: plugin.to_owned(),
        version: "1.0.0".to_owned(),
        subject: format!("blob.created.{schema}"),
    }
}

pub fn output(schema: &str, data: &[u8]) -> NewOutput {
    NewOutput {
        schema: schema.to_owned(),
        data: data.to_vec(),
        extra_parents: Vec::new(),
    }
}

pub fn completion(outputs: Vec<NewOutput>) -> Completion {
    Completion {
        outputs,
        component_digest: Digest::of(b"component"),
        config_digest: Digest::of(b"config"),
        ..Completion::default()
    }
}

/// Far enough in the future that every job is due.
pub const LATER: u64 = u64::MAX / 2;

/// Asserts the store is internally consistent.
pub fn assert_consistent(store: &Store) {
    let report = store.check().unwrap();
    assert!(
        report.problems.is_empty(),
        "store problems: {:#?}",
        report.problems
    );
}

pub fn ids(metas: &[BlobMeta]) -> Vec<reyna_store::BlobId> {
    metas.iter().map(|m| m.id).collect()
}
