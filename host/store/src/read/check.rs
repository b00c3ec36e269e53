//! `Store::check`: every table cross-checked against the others.

#[allow(clippy::wildcard_imports)]
use super::*;

/// Collects problems, keeping the report readable when everything is wrong.
struct Problems(Vec<String>);

impl Problems {
    fn push(&mut self, p: String) {
        if self.0.len() < 200 {
            self.0.push(p);
        }
    }
}

/// Scans everything and cross-checks every table against the others.
pub(crate) fn check(txn: &ReadTransaction) -> Result<CheckReport> {
    let counts = counts(txn)?;
    let mut problems = Problems(Vec::new());

    let blobs = txn.open_table(BLOBS)?;
    let data = txn.open_table(BLOB_DATA)?;
    let by_schema = txn.open_table(BLOBS_BY_SCHEMA)?;
    let by_tenant = txn.open_table(BLOBS_BY_TENANT)?;
    let edges_down = txn.open_table(EDGES_DOWN)?;
    let edges_up = txn.open_table(EDGES_UP)?;
    let jobs = txn.open_table(JOBS)?;
    let due = txn.open_table(JOBS_DUE)?;
    let due_by_tenant = txn.open_table(JOBS_DUE_BY_TENANT)?;
    let running = txn.open_table(JOBS_RUNNING)?;
    let by_blob = txn.open_multimap_table(JOBS_BY_BLOB)?;
    let events = txn.open_table(EVENTS)?;

    // Blobs: bytes, digest, indexes, parents and edges.
    let mut edge_total = 0u64;
    let mut chunk_total = 0u64;
    let mut outputs_by_job: HashMap<JobId, Vec<BlobId>> = HashMap::new();
    // What each tenant holds, counted here, against TENANT_COUNTS.
    let mut held: HashMap<(String, &'static str), u64> = HashMap::new();
    for entry in blobs.iter()? {
        let (k, v) = entry?;
        let meta: BlobMeta = decode_binary("blob", v.value())?;
        let id = k.value();
        if meta.id.key() != id {
            problems.push(format!(
                "blob stored under {} claims id {}",
                BlobId::from_key(id),
                meta.id
            ));
        }
        chunk_total += chunk_count(meta.size);
        if payload(&data, &meta)?.is_none() {
            problems.push(format!(
                "blob {} bytes are missing or do not match its digest",
                meta.id
            ));
        }
        if by_schema
            .get((
                meta.tenant.as_str(),
                meta.schema.as_str(),
                meta.created_at,
                id,
            ))?
            .is_none()
        {
            problems.push(format!("blob {} missing from the schema index", meta.id));
        }
        if by_tenant
            .get((meta.tenant.as_str(), meta.created_at, id))?
            .is_none()
        {
            problems.push(format!("blob {} missing from the tenant index", meta.id));
        }
        for parent in &meta.parents {
            edge_total += 1;
            match blob_in(&blobs, *parent)? {
                None => problems.push(format!("blob {} has missing parent {parent}", meta.id)),
                Some(p) if p.tenant != meta.tenant => problems.push(format!(
                    "blob {} has parent {parent} in another tenant",
                    meta.id
                )),
                Some(_) => {}
            }
            if edges_down.get((parent.key(), id))?.is_none()
                || edges_up.get((id, parent.key()))?.is_none()
            {
                problems.push(format!("edge {parent} -> {} missing", meta.id));
            }
        }
        if let Some(p) = &meta.producer {
            outputs_by_job.entry(p.job_id).or_default().push(meta.id);
        }
        *held.entry((meta.tenant.clone(), STORED_BYTES)).or_default() += meta.size;
    }
    let n_blobs = blobs.len()?;
    let indexes = [
        ("schema index", by_schema.len()?),
        ("tenant index", by_tenant.len()?),
    ];
    for (what, n) in indexes {
        if n != n_blobs {
            problems.push(format!("{what} has {n} entries for {n_blobs} blobs"));
        }
    }
    let n_chunks = data.len()?;
    if n_chunks != chunk_total {
        problems.push(format!(
            "{n_chunks} payload chunks where the blobs need {chunk_total}"
        ));
    }
    for (what, n) in [("down", edges_down.len()?), ("up", edges_up.len()?)] {
        if n != edge_total {
            problems.push(format!("{n} {what} edges for {edge_total} parent links"));
        }
    }

    // Events: exactly one blob.created per blob.
    let mut created: HashSet<BlobId> = HashSet::new();
    for entry in events.iter()? {
        let (k, v) = entry?;
        let event: Event = decode_binary("event", v.value())?;
        if event.seq != k.value() {
            problems.push(format!(
                "event stored at {} claims seq {}",
                k.value(),
                event.seq
            ));
        }
        if event.subject.starts_with("blob.created.") {
            match event.blob_id {
                Some(id) if !created.insert(id) => {
                    problems.push(format!("blob {id} has two created events"))
                }
                Some(id) if blobs.get(id.key())?.is_none() => {
                    problems.push(format!("event {} names missing blob {id}", event.seq))
                }
                Some(_) => {}
                None => problems.push(format!("event {} has no blob", event.seq)),
            }
        }
    }
    if created.len() as u64 != n_blobs {
        problems.push(format!(
            "{} blob.created events for {n_blobs} blobs",
            created.len()
        ));
    }

    // Jobs: state agrees with the queue, the running set and the counters;
    // outputs exist and nothing else claims to come from the job.
    let mut by_state: HashMap<JobState, u64> = HashMap::new();
    let mut tree_sizes: HashMap<BlobId, u64> = HashMap::new();
    for entry in jobs.iter()? {
        let (_, v) = entry?;
        let job: Job = decode_job(v.value())?;
        let id = job.id.key();
        *by_state.entry(job.state).or_default() += 1;
        let in_due = due.get((job.due_at, id))?.is_some();
        let in_tenant_queue = due_by_tenant
            .get((job.tenant.as_str(), job.due_at, id))?
            .is_some();
        if in_tenant_queue != in_due {
            problems.push(format!(
                "job {} is queued={in_due} but in its tenant's queue={in_tenant_queue}",
                job.id
            ));
        }
        let in_running = running.get(id)?.is_some();
        if in_due != (job.state == JobState::Pending)
            || in_running != (job.state == JobState::Running)
        {
            problems.push(format!(
                "job {} is {} but queued={in_due} running={in_running}",
                job.id, job.state
            ));
        }
        if blobs.get(job.blob_id.key())?.is_none() {
            problems.push(format!("job {} input blob {} missing", job.id, job.blob_id));
        }
        let mut indexed = false;
        for j in by_blob.get(job.blob_id.key())? {
            indexed |= j?.value() == id;
        }
        if !indexed {
            problems.push(format!("job {} missing from its blob's job index", job.id));
        }
        let mut produced = outputs_by_job.remove(&job.id).unwrap_or_default();
        if !produced.is_empty() {
            *tree_sizes.entry(job.tree).or_default() += produced.len() as u64;
        }
        produced.sort();
        let mut expected = if job.state == JobState::Done {
            job.outputs.clone()
        } else {
            Vec::new()
        };
        expected.sort();
        if produced != expected {
            problems.push(format!(
                "job {} ({}) lists {} outputs but {} blobs name it as producer",
                job.id,
                job.state,
                expected.len(),
                produced.len()
            ));
        }
    }
    for (job, blobs) in outputs_by_job {
        if let Some(reused) = blobs.first() {
            problems.push(format!("blob {reused} names missing job {job} as producer"));
        }
    }
    // Trees: each count is what its jobs produced.
    for entry in txn.open_table(TREES)?.iter()? {
        let (k, v) = entry?;
        let tree = BlobId::from_key(k.value());
        let produced = tree_sizes.remove(&tree).unwrap_or(0);
        if produced != v.value() {
            problems.push(format!(
                "tree {tree} counts {} derived blobs but its jobs produced {produced}",
                v.value()
            ));
        }
    }
    for (tree, produced) in tree_sizes {
        problems.push(format!(
            "tree {tree} is not counted but its jobs produced {produced} blobs"
        ));
    }
    let state_counts = [
        (JobState::Pending, counts.jobs_pending),
        (JobState::Running, counts.jobs_running),
        (JobState::Done, counts.jobs_done),
        (JobState::Dead, counts.jobs_dead),
    ];
    for (state, counted) in state_counts {
        let found = by_state.get(&state).copied().unwrap_or(0);
        if found != counted {
            problems.push(format!(
                "{found} {state} jobs but the store counts {counted}"
            ));
        }
    }
    if due_by_tenant.len()? != due.len()? {
        problems.push("the tenants' queues do not hold exactly the queued jobs".to_owned());
    }
    for entry in due_by_tenant.iter()? {
        let (k, _) = entry?;
        *held
            .entry((k.value().0.to_owned(), QUEUED_JOBS))
            .or_default() += 1;
    }
    let mut counted: HashMap<(String, &'static str), u64> = HashMap::new();
    for entry in txn.open_table(TENANT_COUNTS)?.iter()? {
        let (k, v) = entry?;
        let (tenant, name) = k.value();
        let name = match name {
            STORED_BYTES => STORED_BYTES,
            QUEUED_JOBS => QUEUED_JOBS,
            other => {
                problems.push(format!("unknown tenant counter {other} of {tenant}"));
                continue;
            }
        };
        if v.value() != 0 {
            counted.insert((tenant.to_owned(), name), v.value());
        }
    }
    held.retain(|_, v| *v != 0);
    if held != counted {
        let mut keys: BTreeSet<&(String, &str)> = held.keys().collect();
        keys.extend(counted.keys());
        for key in keys {
            let (found, stored) = (held.get(key), counted.get(key));
            if found != stored {
                problems.push(format!(
                    "tenant {} holds {} {} but its counter says {}",
                    key.0,
                    found.copied().unwrap_or(0),
                    key.1,
                    stored.copied().unwrap_or(0)
                ));
            }
        }
    }
    if due.len()? + running.len()? + counts.jobs_done + counts.jobs_dead != jobs.len()? {
        problems.push("job queues and counters do not add up to the number of jobs".to_owned());
    }

    Ok(CheckReport {
        counts,
        problems: problems.0,
    })
}
