//! Reads, each on one read transaction (a consistent snapshot).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ops::Bound;

use redb::{ReadTransaction, ReadableTable, ReadableTableMetadata};

use crate::error::{Result, StoreError};
use crate::model::*;
use crate::tables::*;
use crate::usage::*;

mod check;
pub(crate) use check::check;

/// Largest page any listing returns.
pub(crate) const MAX_PAGE: usize = 1000;
/// Most nodes one lineage answer holds.
pub(crate) const MAX_LINEAGE_NODES: usize = 10_000;
/// Deepest lineage walk.
pub(crate) const MAX_LINEAGE_DEPTH: u32 = 1024;

fn clamp_limit(limit: usize) -> usize {
    limit.min(MAX_PAGE)
}

fn blob_in(t: &impl ReadableTable<u128, &'static [u8]>, id: BlobId) -> Result<Option<BlobMeta>> {
    match t.get(id.key())? {
        Some(v) => Ok(Some(decode_binary("blob", v.value())?)),
        None => Ok(None),
    }
}

fn tenant_blob(
    t: &impl ReadableTable<u128, &'static [u8]>,
    tenant: &str,
    id: BlobId,
) -> Result<Option<BlobMeta>> {
    Ok(blob_in(t, id)?.filter(|m| m.tenant == tenant))
}

pub(crate) fn get_blob(
    txn: &ReadTransaction,
    tenant: &str,
    id: BlobId,
) -> Result<Option<BlobMeta>> {
    let t = txn.open_table(BLOBS)?;
    tenant_blob(&t, tenant, id)
}

pub(crate) fn get_blob_with_data(
    txn: &ReadTransaction,
    tenant: &str,
    id: BlobId,
) -> Result<Option<(BlobMeta, Vec<u8>)>> {
    let Some(meta) = get_blob(txn, tenant, id)? else {
        return Ok(None);
    };
    let data = txn.open_table(BLOB_DATA)?;
    match payload(&data, &meta)? {
        Some(bytes) => Ok(Some((meta, bytes))),
        None => Err(StoreError::Corrupt { id }),
    }
}

/// A blob's bytes reassembled from their chunks; `None` unless they match
/// the recorded size and digest.
fn payload(
    data: &impl ReadableTable<(u128, u32), &'static [u8]>,
    meta: &BlobMeta,
) -> Result<Option<Vec<u8>>> {
    let id = meta.id.key();
    let mut bytes = Vec::with_capacity(usize::try_from(meta.size).unwrap_or(0));
    let mut chunks = 0u64;
    for entry in data.range((id, 0)..=(id, u32::MAX))? {
        let (k, v) = entry?;
        if u64::from(k.value().1) != chunks {
            return Ok(None);
        }
        bytes.extend_from_slice(v.value());
        chunks += 1;
    }
    let intact = bytes.len() as u64 == meta.size
        && chunks == chunk_count(meta.size)
        && Digest::of(&bytes) == meta.digest;
    Ok(intact.then_some(bytes))
}

/// Cursor for blob listings: the (created_at, id) of the last item, as hex.
fn blob_cursor(created_at: u64, id: u128) -> String {
    format!("{created_at:016x}{id:032x}")
}

fn parse_blob_cursor(cursor: &str) -> Result<(u64, u128)> {
    if cursor.len() != 48 || !cursor.is_ascii() {
        return Err(StoreError::BadCursor);
    }
    let (t, id) = cursor.split_at(16);
    let t = u64::from_str_radix(t, 16).map_err(|_| StoreError::BadCursor)?;
    let id = u128::from_str_radix(id, 16).map_err(|_| StoreError::BadCursor)?;
    Ok((t, id))
}

fn parse_id_cursor(cursor: &str) -> Result<u128> {
    if cursor.len() != 32 || !cursor.is_ascii() {
        return Err(StoreError::BadCursor);
    }
    u128::from_str_radix(cursor, 16).map_err(|_| StoreError::BadCursor)
}

pub(crate) fn list_blobs(
    txn: &ReadTransaction,
    tenant: &str,
    schema: Option<&str>,
    cursor: Option<&str>,
    limit: usize,
) -> Result<Page<BlobMeta>> {
    let limit = clamp_limit(limit);
    let after = cursor.map(parse_blob_cursor).transpose()?;
    let blobs = txn.open_table(BLOBS)?;
    // Collect limit + 1 keys to learn whether another page exists.
    let mut keys: Vec<(u64, u128)> = Vec::with_capacity(limit + 1);
    match schema {
        Some(schema) => {
            let index = txn.open_table(BLOBS_BY_SCHEMA)?;
            let start = match after {
                Some((t, id)) => Bound::Excluded((tenant, schema, t, id)),
                None => Bound::Included((tenant, schema, 0, 0)),
            };
            let end = Bound::Included((tenant, schema, u64::MAX, u128::MAX));
            for entry in index
                .range::<(&str, &str, u64, u128)>((start, end))?
                .take(limit + 1)
            {
                let (k, _) = entry?;
                let (_, _, t, id) = k.value();
                keys.push((t, id));
            }
        }
        None => {
            let index = txn.open_table(BLOBS_BY_TENANT)?;
            let start = match after {
                Some((t, id)) => Bound::Excluded((tenant, t, id)),
                None => Bound::Included((tenant, 0, 0)),
            };
            let end = Bound::Included((tenant, u64::MAX, u128::MAX));
            for entry in index
                .range::<(&str, u64, u128)>((start, end))?
                .take(limit + 1)
            {
                let (k, _) = entry?;
                let (_, t, id) = k.value();
                keys.push((t, id));
            }
        }
    }
    let more = keys.len() > limit;
    keys.truncate(limit);
    let next_cursor = if more {
        keys.last().map(|&(t, id)| blob_cursor(t, id))
    } else {
        None
    };
    let mut items = Vec::with_capacity(keys.len());
    for (_, id) in keys {
        if let Some(meta) = blob_in(&blobs, BlobId::from_key(id))? {
            items.push(meta);
        }
    }
    Ok(Page { items, next_cursor })
}

pub(crate) fn children(txn: &ReadTransaction, tenant: &str, id: BlobId) -> Result<Vec<BlobMeta>> {
    let blobs = txn.open_table(BLOBS)?;
    if tenant_blob(&blobs, tenant, id)?.is_none() {
        return Ok(Vec::new());
    }
    let down = txn.open_table(EDGES_DOWN)?;
    let mut out = Vec::new();
    for entry in down.range((id.key(), 0)..=(id.key(), u128::MAX))? {
        let (k, _) = entry?;
        if let Some(meta) = tenant_blob(&blobs, tenant, BlobId::from_key(k.value().1))? {
            out.push(meta);
        }
    }
    Ok(out)
}

pub(crate) fn lineage(
    txn: &ReadTransaction,
    tenant: &str,
    id: BlobId,
    direction: Direction,
    depth: u32,
) -> Result<Option<Lineage>> {
    let blobs = txn.open_table(BLOBS)?;
    let Some(root) = tenant_blob(&blobs, tenant, id)? else {
        return Ok(None);
    };
    let depth = depth.min(MAX_LINEAGE_DEPTH);
    let mut walk = Walk {
        tenant,
        blobs: &blobs,
        seen: HashSet::from([id.key()]),
        nodes: vec![root],
        edges: BTreeSet::new(),
        truncated: false,
    };
    if matches!(direction, Direction::Up | Direction::Both) {
        walk.walk(&txn.open_table(EDGES_UP)?, id, depth, true)?;
    }
    if matches!(direction, Direction::Down | Direction::Both) {
        walk.walk(&txn.open_table(EDGES_DOWN)?, id, depth, false)?;
    }
    Ok(Some(Lineage {
        root: id,
        nodes: walk.nodes,
        edges: walk.edges.into_iter().collect(),
        truncated: walk.truncated,
    }))
}

struct Walk<'a, T> {
    tenant: &'a str,
    blobs: &'a T,
    seen: HashSet<u128>,
    nodes: Vec<BlobMeta>,
    edges: BTreeSet<Edge>,
    truncated: bool,
}

impl<T: ReadableTable<u128, &'static [u8]>> Walk<'_, T> {
    /// Breadth-first over `table`, whose keys are (from, to) pairs.
    fn walk(
        &mut self,
        table: &impl ReadableTable<(u128, u128), ()>,
        root: BlobId,
        depth: u32,
        up: bool,
    ) -> Result<()> {
        let mut frontier = vec![root.key()];
        for _ in 0..depth {
            let mut next = Vec::new();
            for &from in &frontier {
                for entry in table.range((from, 0)..=(from, u128::MAX))? {
                    let (k, _) = entry?;
                    let to = k.value().1;
                    let edge = if up {
                        Edge {
                            parent: BlobId::from_key(to),
                            child: BlobId::from_key(from),
                        }
                    } else {
                        Edge {
                            parent: BlobId::from_key(from),
                            child: BlobId::from_key(to),
                        }
                    };
                    if !self.seen.contains(&to) {
                        if self.nodes.len() >= MAX_LINEAGE_NODES {
                            self.truncated = true;
                            continue;
                        }
                        let Some(meta) =
                            tenant_blob(self.blobs, self.tenant, BlobId::from_key(to))?
                        else {
                            continue;
                        };
                        self.seen.insert(to);
                        self.nodes.push(meta);
                        next.push(to);
                    }
                    self.edges.insert(edge);
                }
            }
            if next.is_empty() {
                break;
            }
            frontier = next;
        }
        Ok(())
    }
}

pub(crate) fn job(txn: &ReadTransaction, id: JobId) -> Result<Option<Job>> {
    let t = txn.open_table(JOBS)?;
    match t.get(id.key())? {
        Some(v) => Ok(Some(decode_job(v.value())?)),
        None => Ok(None),
    }
}

pub(crate) fn jobs_for_blob(
    txn: &ReadTransaction,
    tenant: &str,
    blob_id: BlobId,
) -> Result<Vec<Job>> {
    let by_blob = txn.open_multimap_table(JOBS_BY_BLOB)?;
    let jobs = txn.open_table(JOBS)?;
    let mut out = Vec::new();
    for id in by_blob.get(blob_id.key())? {
        let id = id?.value();
        if let Some(v) = jobs.get(id)? {
            let job: Job = decode_job(v.value())?;
            if job.tenant == tenant {
                out.push(job);
            }
        }
    }
    Ok(out)
}

/// A page of a tenant's jobs, of one state or all (ordered by state, then
/// creation). The cursor is the state code and the last job id.
pub(crate) fn list_jobs(
    txn: &ReadTransaction,
    tenant: &str,
    state: Option<JobState>,
    cursor: Option<&str>,
    limit: usize,
) -> Result<Page<Job>> {
    let limit = clamp_limit(limit);
    let (low, high) = match state {
        Some(s) => (s.code(), s.code()),
        None => (JobState::Pending.code(), JobState::Dead.code()),
    };
    let start = match cursor {
        Some(c) => {
            let (code, id) = c.split_at_checked(1).ok_or(StoreError::BadCursor)?;
            let code: u8 = code.parse().map_err(|_| StoreError::BadCursor)?;
            if code < low || code > high {
                return Err(StoreError::BadCursor);
            }
            Bound::Excluded((tenant, code, parse_id_cursor(id)?))
        }
        None => Bound::Included((tenant, low, 0)),
    };
    let end = Bound::Included((tenant, high, u128::MAX));
    let index = txn.open_table(JOBS_BY_STATE)?;
    let mut keys = Vec::with_capacity(limit + 1);
    for entry in index
        .range::<(&str, u8, u128)>((start, end))?
        .take(limit + 1)
    {
        let (key, _) = entry?;
        let (_, code, id) = key.value();
        keys.push((code, id));
    }
    let more = keys.len() > limit;
    keys.truncate(limit);
    let next_cursor = if more {
        keys.last().map(|(code, id)| format!("{code}{id:032x}"))
    } else {
        None
    };
    let jobs = txn.open_table(JOBS)?;
    let mut items = Vec::with_capacity(keys.len());
    for (_, id) in keys {
        if let Some(v) = jobs.get(id)? {
            items.push(decode_job(v.value())?);
        }
    }
    Ok(Page { items, next_cursor })
}

pub(crate) fn next_due_at(txn: &ReadTransaction) -> Result<Option<u64>> {
    let due = txn.open_table(JOBS_DUE)?;
    Ok(due.first()?.map(|(k, _)| k.value().0))
}

pub(crate) fn list_dead_letters(
    txn: &ReadTransaction,
    tenant: Option<&str>,
    cursor: Option<&str>,
    limit: usize,
) -> Result<Page<DeadLetter>> {
    let limit = clamp_limit(limit);
    let after = cursor.map(parse_id_cursor).transpose()?;
    let letters = txn.open_table(DEAD_LETTERS)?;
    let mut ids = Vec::with_capacity(limit + 1);
    match tenant {
        Some(tenant) => {
            let index = txn.open_table(DEAD_LETTERS_BY_TENANT)?;
            let start = match after {
                Some(id) => Bound::Excluded((tenant, id)),
                None => Bound::Included((tenant, 0)),
            };
            let end = Bound::Included((tenant, u128::MAX));
            for entry in index.range::<(&str, u128)>((start, end))?.take(limit + 1) {
                ids.push(entry?.0.value().1);
            }
        }
        None => {
            let start = after.map_or(Bound::Unbounded, Bound::Excluded);
            for entry in letters
                .range::<u128>((start, Bound::Unbounded))?
                .take(limit + 1)
            {
                ids.push(entry?.0.value());
            }
        }
    }
    let more = ids.len() > limit;
    ids.truncate(limit);
    let next_cursor = if more {
        ids.last().map(|id| format!("{id:032x}"))
    } else {
        None
    };
    let mut items = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(v) = letters.get(id)? {
            items.push(decode("dead letter", v.value())?);
        }
    }
    Ok(Page { items, next_cursor })
}

pub(crate) fn dead_letter(txn: &ReadTransaction, id: DeadLetterId) -> Result<Option<DeadLetter>> {
    let t = txn.open_table(DEAD_LETTERS)?;
    match t.get(id.key())? {
        Some(v) => Ok(Some(decode("dead letter", v.value())?)),
        None => Ok(None),
    }
}

pub(crate) fn find_idempotent(
    txn: &ReadTransaction,
    tenant: &str,
    key: &IdemKey,
) -> Result<Option<Vec<BlobMeta>>> {
    let t = txn.open_table(IDEMPOTENCY)?;
    let record: IdemRecord = match t.get(idem_key(tenant, key))? {
        Some(v) => decode_binary("idempotency record", v.value())?,
        None => return Ok(None),
    };
    let blobs = txn.open_table(BLOBS)?;
    let mut out = Vec::with_capacity(record.outputs.len());
    for id in record.outputs {
        if let Some(meta) = tenant_blob(&blobs, tenant, id)? {
            out.push(meta);
        }
    }
    Ok(Some(out))
}

pub(crate) fn events_after(
    txn: &ReadTransaction,
    tenant: Option<&str>,
    after: u64,
    limit: usize,
) -> Result<Vec<Event>> {
    let limit = clamp_limit(limit);
    let events = txn.open_table(EVENTS)?;
    let mut out = Vec::new();
    match tenant {
        Some(tenant) => {
            let index = txn.open_table(EVENTS_BY_TENANT)?;
            let start = Bound::Excluded((tenant, after));
            let end = Bound::Included((tenant, u64::MAX));
            for entry in index.range::<(&str, u64)>((start, end))?.take(limit) {
                let seq = entry?.0.value().1;
                if let Some(v) = events.get(seq)? {
                    out.push(decode_binary("event", v.value())?);
                }
            }
        }
        None => {
            for entry in events
                .range::<u64>((Bound::Excluded(after), Bound::Unbounded))?
                .take(limit)
            {
                let (_, v) = entry?;
                out.push(decode_binary("event", v.value())?);
            }
        }
    }
    Ok(out)
}

pub(crate) fn last_event_seq(txn: &ReadTransaction) -> Result<u64> {
    let events = txn.open_table(EVENTS)?;
    Ok(events.last()?.map_or(0, |(k, _)| k.value()))
}

pub(crate) fn get_schema(txn: &ReadTransaction, id: &str) -> Result<Option<SchemaRecord>> {
    let t = txn.open_table(SCHEMAS)?;
    match t.get(id)? {
        Some(v) => Ok(Some(decode("schema", v.value())?)),
        None => Ok(None),
    }
}

pub(crate) fn list_schemas(txn: &ReadTransaction) -> Result<Vec<SchemaRecord>> {
    let t = txn.open_table(SCHEMAS)?;
    t.iter()?.map(|e| decode("schema", e?.1.value())).collect()
}

pub(crate) fn get_plugin(
    txn: &ReadTransaction,
    name: &str,
    version: &str,
) -> Result<Option<PluginRecord>> {
    let t = txn.open_table(PLUGINS)?;
    match t.get((name, version))? {
        Some(v) => Ok(Some(decode("plugin", v.value())?)),
        None => Ok(None),
    }
}

pub(crate) fn list_plugins(txn: &ReadTransaction) -> Result<Vec<PluginRecord>> {
    let t = txn.open_table(PLUGINS)?;
    t.iter()?.map(|e| decode("plugin", e?.1.value())).collect()
}

pub(crate) fn get_component(txn: &ReadTransaction, digest: &Digest) -> Result<Option<Vec<u8>>> {
    let t = txn.open_table(COMPONENTS)?;
    let Some(v) = t.get(digest.hex().as_str())? else {
        return Ok(None);
    };
    let bytes = v.value();
    if Digest::of(bytes) != *digest {
        return Err(StoreError::CorruptComponent { digest: *digest });
    }
    Ok(Some(bytes.to_vec()))
}

pub(crate) fn job_logs(txn: &ReadTransaction, job: JobId) -> Result<Vec<JobLog>> {
    let t = match txn.open_table(JOB_LOGS) {
        Ok(t) => t,
        // A file written before logs were kept has no such table yet.
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for entry in t.range((job.key(), 0)..=(job.key(), u32::MAX))? {
        let (key, value) = entry?;
        out.push(JobLog {
            attempt: key.value().1,
            log: decode_binary("job log", value.value())?,
        });
    }
    Ok(out)
}

pub(crate) fn get_token(txn: &ReadTransaction, id: TokenId) -> Result<Option<TokenRecord>> {
    let tokens = txn.open_table(TOKENS)?;
    tokens
        .get(id.key())?
        .map(|v| decode("token", v.value()))
        .transpose()
}

pub(crate) fn find_token_by_hash(txn: &ReadTransaction, hash: &str) -> Result<Option<TokenRecord>> {
    let by_hash = txn.open_table(TOKENS_BY_HASH)?;
    let Some(id) = by_hash.get(hash)?.map(|v| v.value()) else {
        return Ok(None);
    };
    let tokens = txn.open_table(TOKENS)?;
    match tokens.get(id)? {
        Some(v) => Ok(Some(decode("token", v.value())?)),
        None => Ok(None),
    }
}

pub(crate) fn list_tokens(txn: &ReadTransaction, tenant: Option<&str>) -> Result<Vec<TokenRecord>> {
    let t = txn.open_table(TOKENS)?;
    let mut out = Vec::new();
    for entry in t.iter()? {
        let record: TokenRecord = decode("token", entry?.1.value())?;
        if tenant.is_none_or(|t| t == record.tenant) {
            out.push(record);
        }
    }
    Ok(out)
}

pub(crate) fn list_audit(
    txn: &ReadTransaction,
    after: u64,
    limit: usize,
    tenant: Option<&str>,
) -> Result<Vec<AuditEntry>> {
    let limit = clamp_limit(limit);
    let t = txn.open_table(AUDIT)?;
    let Some(tenant) = tenant else {
        return t
            .range::<u64>((Bound::Excluded(after), Bound::Unbounded))?
            .take(limit)
            .map(|e| decode("audit entry", e?.1.value()))
            .collect();
    };
    let index = txn.open_table(AUDIT_BY_TENANT)?;
    let mut out = Vec::new();
    let start = (tenant, after.saturating_add(1));
    for entry in index.range(start..=(tenant, u64::MAX))?.take(limit) {
        let (k, _) = entry?;
        if let Some(v) = t.get(k.value().1)? {
            out.push(decode("audit entry", v.value())?);
        }
    }
    Ok(out)
}

pub(crate) fn get_tenant(txn: &ReadTransaction, id: &str) -> Result<Option<TenantRecord>> {
    let t = txn.open_table(TENANTS)?;
    t.get(id)?.map(|v| decode("tenant", v.value())).transpose()
}

pub(crate) fn list_tenants(txn: &ReadTransaction) -> Result<Vec<TenantRecord>> {
    let t = txn.open_table(TENANTS)?;
    t.iter()?.map(|e| decode("tenant", e?.1.value())).collect()
}

pub(crate) fn get_installation(
    txn: &ReadTransaction,
    tenant: &str,
    plugin: &str,
) -> Result<Option<Installation>> {
    let t = txn.open_table(INSTALLATIONS)?;
    t.get((tenant, plugin))?
        .map(|v| decode("installation", v.value()))
        .transpose()
}

pub(crate) fn list_installations(
    txn: &ReadTransaction,
    tenant: Option<&str>,
) -> Result<Vec<Installation>> {
    let t = txn.open_table(INSTALLATIONS)?;
    let mut out = Vec::new();
    let range = match tenant {
        Some(tenant) => t.range((tenant, "")..)?,
        None => t.range::<(&str, &str)>(..)?,
    };
    for entry in range {
        let (k, v) = entry?;
        if tenant.is_some_and(|tenant| k.value().0 != tenant) {
            break;
        }
        out.push(decode("installation", v.value())?);
    }
    Ok(out)
}

pub(crate) fn get_secret(
    txn: &ReadTransaction,
    tenant: &str,
    plugin: &str,
    name: &str,
    version: u32,
) -> Result<Option<Vec<u8>>> {
    let t = txn.open_table(SECRETS)?;
    Ok(t.get((tenant, plugin, name, version))?
        .map(|v| v.value().to_vec()))
}

#[allow(clippy::type_complexity)]
pub(crate) fn list_sealed_secrets(
    txn: &ReadTransaction,
) -> Result<Vec<((String, String, String, u32), Vec<u8>)>> {
    let t = txn.open_table(SECRETS)?;
    let mut out = Vec::new();
    for entry in t.iter()? {
        let (k, v) = entry?;
        let (tenant, plugin, name, version) = k.value();
        out.push((
            (
                tenant.to_owned(),
                plugin.to_owned(),
                name.to_owned(),
                version,
            ),
            v.value().to_vec(),
        ));
    }
    Ok(out)
}

pub(crate) fn usage(
    txn: &ReadTransaction,
    tenant: &str,
    granularity: Granularity,
    from: u64,
    to: u64,
) -> Result<Vec<UsagePeriod>> {
    let code = granularity.code();
    let t = txn.open_table(USAGE)?;
    let from = granularity.start(from);
    let mut out = Vec::new();
    for entry in t.range((tenant, code, from)..(tenant, code, to.max(from)))? {
        let (k, v) = entry?;
        let start = k.value().2;
        out.push(UsagePeriod {
            start,
            end: granularity.next(start),
            usage: decode("usage", v.value())?,
        });
    }
    Ok(out)
}

pub(crate) fn holdings(txn: &ReadTransaction, tenant: &str) -> Result<Holdings> {
    let t = txn.open_table(TENANT_COUNTS)?;
    let get = |name| -> Result<u64> { Ok(t.get((tenant, name))?.map_or(0, |v| v.value())) };
    Ok(Holdings {
        stored_bytes: get(STORED_BYTES)?,
        queued_jobs: get(QUEUED_JOBS)?,
    })
}

fn counter(txn: &ReadTransaction, name: &str) -> Result<u64> {
    let t = txn.open_table(COUNTERS)?;
    Ok(t.get(name)?.map_or(0, |v| v.value()))
}

pub(crate) fn tree_size(txn: &ReadTransaction, tree: BlobId) -> Result<u64> {
    Ok(txn
        .open_table(TREES)?
        .get(tree.key())?
        .map_or(0, |v| v.value()))
}

pub(crate) fn counts(txn: &ReadTransaction) -> Result<Counts> {
    Ok(Counts {
        blobs: txn.open_table(BLOBS)?.len()?,
        edges: txn.open_table(EDGES_DOWN)?.len()?,
        jobs_pending: txn.open_table(JOBS_DUE)?.len()?,
        jobs_running: txn.open_table(JOBS_RUNNING)?.len()?,
        jobs_done: counter(txn, JOBS_DONE)?,
        jobs_dead: counter(txn, JOBS_DEAD)?,
        dead_letters: txn.open_table(DEAD_LETTERS)?.len()?,
        events: txn.open_table(EVENTS)?.len()?,
    })
}
