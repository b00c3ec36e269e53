//! Opening a file: creating its tables, checking its format version, and
//! migrating an older format (each step in the transaction that raises the
//! version, or in batches that resume where they stopped).

use std::collections::BTreeMap;

use redb::{Database, ReadableTable};

use crate::error::{Result, StoreError};
use crate::model::*;
use crate::tables::{FORMAT_VERSION, META, META_FORMAT};

/// Records moved per transaction by [`migrate_idempotency`].
const MIGRATE_BATCH: usize = 50_000;

/// Format 3: moves the format 1/2 idempotency records (four strings → JSON)
/// to their hashed key and binary value, `batch` per transaction
/// ([`MIGRATE_BATCH`]) so a large table never sits in one transaction. Each
/// batch removes what it moved from the old table, so a migration cut short
/// resumes where it stopped the next time the file opens (the version is
/// raised only after).
pub(crate) fn migrate_idempotency(db: &Database, batch: usize) -> Result<()> {
    use crate::tables::{IDEMPOTENCY, IDEMPOTENCY_V2, IdemRecord, decode, encode_binary, idem_key};
    loop {
        let txn = db.begin_write()?;
        let mut moved = 0;
        {
            let mut old = txn.open_table(IDEMPOTENCY_V2)?;
            let mut new = txn.open_table(IDEMPOTENCY)?;
            while moved < batch {
                let Some((k, v)) = old.pop_first()? else {
                    break;
                };
                let (tenant, component_digest, config_digest, input_digest) = k.value();
                moved += 1;
                let parsed = (
                    Digest::parse_lenient(component_digest),
                    Digest::parse_lenient(config_digest),
                    Digest::parse_lenient(input_digest),
                );
                // A key that is not three digests could never be looked up.
                let (Ok(component_digest), Ok(config_digest), Ok(input_digest)) = parsed else {
                    continue;
                };
                let key = crate::IdemKey {
                    component_digest,
                    config_digest,
                    input_digest,
                };
                let record: IdemRecord = decode("idempotency record", v.value())?;
                new.insert(idem_key(tenant, &key), encode_binary(&record).as_slice())?;
            }
        }
        txn.commit()?;
        if moved < batch {
            return Ok(());
        }
    }
}

/// Format 4: counts each tree's derived blobs from the jobs that produced
/// them. Jobs stored before trees existed are each the root of their own
/// (their input), as they decode. Runs in the transaction that raises the
/// version; holds one count per tree in memory.
fn count_trees(txn: &redb::WriteTransaction) -> Result<()> {
    use crate::tables::{JOBS, TREES, decode_job};
    let mut sizes: BTreeMap<u128, u64> = BTreeMap::new();
    for entry in txn.open_table(JOBS)?.iter()? {
        let (_, v) = entry?;
        let job = decode_job(v.value())?;
        if job.state == JobState::Done && !job.outputs.is_empty() {
            *sizes.entry(job.tree.key()).or_default() += job.outputs.len() as u64;
        }
    }
    let mut trees = txn.open_table(TREES)?;
    for (tree, size) in sizes {
        trees.insert(tree, size)?;
    }
    Ok(())
}

/// Format 5: a tenant record for every tenant that tokens or blobs name,
/// and `admin` tokens (the operator's, before tenant admins existed)
/// become `operator` tokens. Runs in the transaction that raises the
/// version.
fn make_tenants(txn: &redb::WriteTransaction) -> Result<()> {
    use crate::tables::{BLOBS_BY_TENANT, TENANTS, TOKENS, decode, encode};
    use redb::ReadableTable;
    let mut tenants = std::collections::BTreeSet::new();
    let mut promoted = Vec::new();
    for entry in txn.open_table(TOKENS)?.iter()? {
        let (_, v) = entry?;
        let mut token: TokenRecord = decode("token", v.value())?;
        tenants.insert(token.tenant.clone());
        if token.role == Role::Admin {
            token.role = Role::Operator;
            promoted.push(token);
        }
    }
    {
        let mut table = txn.open_table(TOKENS)?;
        for token in &promoted {
            table.insert(token.id.key(), encode("token", token)?.as_slice())?;
        }
    }
    // The blob index is ordered by tenant: jump from one tenant to the next.
    {
        let by_tenant = txn.open_table(BLOBS_BY_TENANT)?;
        let mut from = String::new();
        loop {
            let next = by_tenant
                .range((from.as_str(), 0, 0)..)?
                .next()
                .transpose()?
                .map(|(k, _)| k.value().0.to_owned());
            let Some(tenant) = next else { break };
            from = format!("{tenant}\0");
            tenants.insert(tenant);
        }
    }
    let now = crate::now_ms();
    let mut table = txn.open_table(TENANTS)?;
    for id in tenants {
        if table.get(id.as_str())?.is_none() {
            let record = TenantRecord {
                id: id.clone(),
                name: id.clone(),
                created_at: now,
                deleted_at: None,
                quotas: crate::Quotas::default(),
            };
            table.insert(id.as_str(), encode("tenant", &record)?.as_slice())?;
        }
    }
    Ok(())
}

/// Format 6: indexes every pending job under its tenant too. Runs in the
/// transaction that raises the version.
fn index_due_by_tenant(txn: &redb::WriteTransaction) -> Result<()> {
    use crate::tables::{JOBS, JOBS_DUE, JOBS_DUE_BY_TENANT, decode_job};
    use redb::ReadableTable;
    let jobs = txn.open_table(JOBS)?;
    let mut index = txn.open_table(JOBS_DUE_BY_TENANT)?;
    for entry in txn.open_table(JOBS_DUE)?.iter()? {
        let (k, _) = entry?;
        let (due, id) = k.value();
        if let Some(v) = jobs.get(id)? {
            let job = decode_job(v.value())?;
            index.insert((job.tenant.as_str(), due, id), ())?;
        }
    }
    Ok(())
}

/// Format 7: counts each tenant's stored bytes and queued jobs
/// ([`TENANT_COUNTS`](crate::tables::TENANT_COUNTS)). Runs in the
/// transaction that raises the version.
fn count_tenant_holdings(txn: &redb::WriteTransaction) -> Result<()> {
    use crate::tables::{
        BLOBS, JOBS_DUE_BY_TENANT, QUEUED_JOBS, STORED_BYTES, TENANT_COUNTS, decode_binary,
    };
    use redb::ReadableTable;
    let mut counts: BTreeMap<(String, &'static str), u64> = BTreeMap::new();
    for entry in txn.open_table(BLOBS)?.iter()? {
        let (_, v) = entry?;
        let meta: BlobMeta = decode_binary("blob", v.value())?;
        *counts.entry((meta.tenant, STORED_BYTES)).or_default() += meta.size;
    }
    for entry in txn.open_table(JOBS_DUE_BY_TENANT)?.iter()? {
        let (k, _) = entry?;
        *counts
            .entry((k.value().0.to_owned(), QUEUED_JOBS))
            .or_default() += 1;
    }
    let mut table = txn.open_table(TENANT_COUNTS)?;
    for ((tenant, name), value) in counts {
        table.insert((tenant.as_str(), name), value)?;
    }
    Ok(())
}

/// Creates missing tables and checks (or writes) the format version,
/// migrating an older file first.
pub(crate) fn init(db: &Database) -> Result<()> {
    let txn = db.begin_write()?;
    let found = {
        let mut meta = txn.open_table(META)?;
        let found = meta.get(META_FORMAT)?.map(|v| v.value());
        match found {
            Some(found) if found > FORMAT_VERSION => {
                return Err(StoreError::UnsupportedFormat {
                    found,
                    supported: FORMAT_VERSION,
                });
            }
            Some(found) => found,
            None => {
                meta.insert(META_FORMAT, FORMAT_VERSION)?;
                FORMAT_VERSION
            }
        }
    };
    let migrate = found < FORMAT_VERSION;
    // Opening every table creates the missing ones, so reads never meet an
    // absent table.
    crate::tx::Tx::new(&txn, crate::now_ms()).create_all()?;
    txn.commit()?;
    if migrate {
        // Format 1 records (all JSON) still decode; format 3 re-keys the
        // idempotency records. The version is raised last, with the old
        // table gone.
        migrate_idempotency(db, MIGRATE_BATCH)?;
        let txn = db.begin_write()?;
        txn.delete_table(crate::tables::IDEMPOTENCY_V2)?;
        if found < 4 {
            count_trees(&txn)?;
        }
        if found < 5 {
            make_tenants(&txn)?;
        }
        if found < 6 {
            index_due_by_tenant(&txn)?;
        }
        if found < 7 {
            count_tenant_holdings(&txn)?;
        }
        txn.open_table(META)?.insert(META_FORMAT, FORMAT_VERSION)?;
        txn.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::tables::{IDEMPOTENCY, IDEMPOTENCY_V2, IdemRecord, decode_binary, idem_key};
    use redb::{ReadableDatabase, ReadableTableMetadata};

    #[test]
    fn the_idempotency_migration_moves_every_record_across_batches() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("m.redb")).unwrap();
        // Format 2 keyed records by the digests' text: the component's
        // `sha256:` form, the config's and the input's bare hex.
        let key = |i: usize| crate::IdemKey {
            component_digest: Digest::of(format!("c{i}").as_bytes()),
            config_digest: Digest::of(b"conf"),
            input_digest: Digest::of(format!("in{i}").as_bytes()),
        };
        let record = |i: usize| IdemRecord {
            job_id: crate::JobId::from_key(i as u128),
            outputs: vec![crate::BlobId::from_key(1000 + i as u128)],
        };
        let txn = db.begin_write().unwrap();
        {
            let mut old = txn.open_table(IDEMPOTENCY_V2).unwrap();
            for i in 0..25 {
                let k = key(i);
                let json = serde_json::to_vec(&record(i)).unwrap();
                old.insert(
                    (
                        "acme",
                        k.component_digest.to_string().as_str(),
                        k.config_digest.hex().as_str(),
                        k.input_digest.hex().as_str(),
                    ),
                    json.as_slice(),
                )
                .unwrap();
            }
        }
        txn.commit().unwrap();

        // 25 records in batches of 10: three transactions, the last short.
        migrate_idempotency(&db, 10).unwrap();

        let txn = db.begin_read().unwrap();
        assert_eq!(txn.open_table(IDEMPOTENCY_V2).unwrap().len().unwrap(), 0);
        let new = txn.open_table(IDEMPOTENCY).unwrap();
        assert_eq!(new.len().unwrap(), 25);
        for i in 0..25 {
            let v = new.get(idem_key("acme", &key(i))).unwrap().unwrap();
            let got: IdemRecord = decode_binary("idempotency record", v.value()).unwrap();
            assert_eq!(got, record(i));
        }
    }
}
