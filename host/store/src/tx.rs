//! A write transaction and the helpers that keep the tables consistent with
//! each other (blob + indexes + edges + event; a job's state + the queue it
//! sits in + the counters). Every write goes through here, so the invariants
//! [`crate::Store::check`] verifies live in one place.

use std::collections::HashMap;

use redb::{MultimapTable, ReadableTable, Table, WriteTransaction};

use crate::error::Result;
use crate::model::{BlobId, BlobMeta, Event, GuestLog, Job, JobId, JobSpec, JobState};
use crate::tables::*;
use crate::usage::{Granularity, Usage};

/// What a committed batch changed that waiters care about.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Signals {
    /// The newest event sequence written, if any.
    pub(crate) last_event: Option<u64>,
    /// Whether any job became pending.
    pub(crate) jobs_enqueued: bool,
}

macro_rules! lazy_tables {
    ($($field:ident: $ty:ty = $open:ident($def:expr);)*) => {
        /// An open write transaction. Tables open on first use: a batch
        /// touches a handful of them, and opening one costs a lookup.
        pub(crate) struct Tx<'t> {
            pub(crate) now: u64,
            txn: &'t WriteTransaction,
            $($field: Option<$ty>,)*
            next_event: Option<u64>,
            /// Counter changes, written once by [`Tx::finish`].
            counter_deltas: Vec<(&'static str, i64)>,
            /// Per-tenant counter changes ([`TENANT_COUNTS`]), written once
            /// by [`Tx::finish`].
            tenant_deltas: HashMap<(String, &'static str), i64>,
            /// Usage per tenant, added to its hour, day and month by
            /// [`Tx::finish`].
            usage: HashMap<String, Usage>,
            signals: Signals,
        }

        impl<'t> Tx<'t> {
            pub(crate) fn new(txn: &'t WriteTransaction, now: u64) -> Self {
                Self {
                    now,
                    txn,
                    $($field: None,)*
                    next_event: None,
                    counter_deltas: Vec::new(),
                    tenant_deltas: HashMap::new(),
                    usage: HashMap::new(),
                    signals: Signals::default(),
                }
            }

            /// Opens every table, creating the missing ones.
            pub(crate) fn create_all(&mut self) -> Result<()> {
                $(self.$field()?;)*
                Ok(())
            }

            $(
                pub(crate) fn $field(&mut self) -> Result<&mut $ty> {
                    Ok(match self.$field {
                        Some(ref mut table) => table,
                        None => self.$field.insert(self.txn.$open($def)?),
                    })
                }
            )*
        }
    };
}

lazy_tables! {
    blobs: Table<'t, u128, &'static [u8]> = open_table(BLOBS);
    blob_data: Table<'t, (u128, u32), &'static [u8]> = open_table(BLOB_DATA);
    edges_down: Table<'t, (u128, u128), ()> = open_table(EDGES_DOWN);
    edges_up: Table<'t, (u128, u128), ()> = open_table(EDGES_UP);
    by_schema: Table<'t, (&'static str, &'static str, u64, u128), ()> = open_table(BLOBS_BY_SCHEMA);
    by_tenant: Table<'t, (&'static str, u64, u128), ()> = open_table(BLOBS_BY_TENANT);
    events: Table<'t, u64, &'static [u8]> = open_table(EVENTS);
    events_by_tenant: Table<'t, (&'static str, u64), ()> = open_table(EVENTS_BY_TENANT);
    jobs: Table<'t, u128, &'static [u8]> = open_table(JOBS);
    jobs_due: Table<'t, (u64, u128), ()> = open_table(JOBS_DUE);
    jobs_running: Table<'t, u128, ()> = open_table(JOBS_RUNNING);
    jobs_due_by_tenant: Table<'t, (&'static str, u64, u128), ()> = open_table(JOBS_DUE_BY_TENANT);
    jobs_by_blob: MultimapTable<'t, u128, u128> = open_multimap_table(JOBS_BY_BLOB);
    jobs_by_state: Table<'t, (&'static str, u8, u128), ()> = open_table(JOBS_BY_STATE);
    counters: Table<'t, &'static str, u64> = open_table(COUNTERS);
    dead_letters: Table<'t, u128, &'static [u8]> = open_table(DEAD_LETTERS);
    dead_letters_by_tenant: Table<'t, (&'static str, u128), ()> = open_table(DEAD_LETTERS_BY_TENANT);
    idempotency: Table<'t, (u128, u128), &'static [u8]> = open_table(IDEMPOTENCY);
    schemas: Table<'t, &'static str, &'static [u8]> = open_table(SCHEMAS);
    plugins: Table<'t, (&'static str, &'static str), &'static [u8]> = open_table(PLUGINS);
    components: Table<'t, &'static str, &'static [u8]> = open_table(COMPONENTS);
    tokens: Table<'t, u128, &'static [u8]> = open_table(TOKENS);
    tokens_by_hash: Table<'t, &'static str, u128> = open_table(TOKENS_BY_HASH);
    audit: Table<'t, u64, &'static [u8]> = open_table(AUDIT);
    job_logs: Table<'t, (u128, u32), &'static [u8]> = open_table(JOB_LOGS);
    trees: Table<'t, u128, u64> = open_table(TREES);
    audit_by_tenant: Table<'t, (&'static str, u64), ()> = open_table(AUDIT_BY_TENANT);
    tenants: Table<'t, &'static str, &'static [u8]> = open_table(TENANTS);
    installations: Table<'t, (&'static str, &'static str), &'static [u8]> = open_table(INSTALLATIONS);
    secrets: Table<'t, (&'static str, &'static str, &'static str, u32), &'static [u8]> = open_table(SECRETS);
    tenant_counts: Table<'t, (&'static str, &'static str), u64> = open_table(TENANT_COUNTS);
    usage_table: Table<'t, (&'static str, u8, u64), &'static [u8]> = open_table(USAGE);
}

impl Tx<'_> {
    pub(crate) fn signals(&self) -> Signals {
        self.signals
    }

    /// Writes what the batch's operations left pending; call once, after
    /// the last operation and before committing.
    pub(crate) fn finish(&mut self) -> Result<()> {
        for (name, delta) in std::mem::take(&mut self.counter_deltas) {
            if delta == 0 {
                continue;
            }
            let counters = self.counters()?;
            let current = counters.get(name)?.map_or(0, |v| v.value());
            counters.insert(name, current.saturating_add_signed(delta))?;
        }
        for ((tenant, name), delta) in std::mem::take(&mut self.tenant_deltas) {
            if delta == 0 {
                continue;
            }
            let key = (tenant.as_str(), name);
            let table = self.tenant_counts()?;
            let current = table.get(key)?.map_or(0, |v| v.value());
            table.insert(key, current.saturating_add_signed(delta))?;
        }
        let now = self.now;
        for (tenant, delta) in std::mem::take(&mut self.usage) {
            for granularity in Granularity::ALL {
                let key = (tenant.as_str(), granularity.code(), granularity.start(now));
                let mut usage = self.stored_usage(key)?;
                usage.add(&delta);
                let bytes = encode("usage", &usage)?;
                self.usage_table()?.insert(key, bytes.as_slice())?;
            }
        }
        Ok(())
    }

    fn stored_usage(&mut self, key: (&str, u8, u64)) -> Result<Usage> {
        match self.usage_table()?.get(key)? {
            Some(v) => decode("usage", v.value()),
            None => Ok(Usage::default()),
        }
    }

    /// `tenant`'s usage in the `granularity` period holding now, with what
    /// this transaction has metered so far.
    pub(crate) fn usage_now(&mut self, tenant: &str, granularity: Granularity) -> Result<Usage> {
        let key = (tenant, granularity.code(), granularity.start(self.now));
        let mut usage = self.stored_usage(key)?;
        if let Some(pending) = self.usage.get(tenant) {
            usage.add(pending);
        }
        Ok(usage)
    }

    /// Meters `delta` for `tenant` in the current hour, day and month.
    pub(crate) fn meter(&mut self, tenant: &str, delta: impl FnOnce(&mut Usage)) {
        match self.usage.get_mut(tenant) {
            Some(usage) => delta(usage),
            None => {
                let mut usage = Usage::default();
                delta(&mut usage);
                self.usage.insert(tenant.to_owned(), usage);
            }
        }
    }

    /// What `tenant` holds of counter `name` now, with this transaction's
    /// changes.
    pub(crate) fn tenant_count(&mut self, tenant: &str, name: &'static str) -> Result<u64> {
        let stored = self
            .tenant_counts()?
            .get((tenant, name))?
            .map_or(0, |v| v.value());
        let delta = self
            .tenant_deltas
            .get(&(tenant.to_owned(), name))
            .copied()
            .unwrap_or(0);
        Ok(stored.saturating_add_signed(delta))
    }

    fn add_tenant_count(&mut self, tenant: &str, name: &'static str, delta: i64) {
        let entry = self
            .tenant_deltas
            .entry((tenant.to_owned(), name))
            .or_default();
        *entry = entry.saturating_add(delta);
    }

    pub(crate) fn blob(&mut self, id: BlobId) -> Result<Option<BlobMeta>> {
        match self.blobs()?.get(id.key())? {
            Some(v) => Ok(Some(decode_binary("blob", v.value())?)),
            None => Ok(None),
        }
    }

    pub(crate) fn job(&mut self, id: JobId) -> Result<Option<Job>> {
        match self.jobs()?.get(id.key())? {
            Some(v) => Ok(Some(decode_job(v.value())?)),
            None => Ok(None),
        }
    }

    /// How many derived blobs the tree rooted at `tree` holds.
    pub(crate) fn tree_size(&mut self, tree: BlobId) -> Result<u64> {
        Ok(self.trees()?.get(tree.key())?.map_or(0, |v| v.value()))
    }

    /// Sets how many derived blobs the tree rooted at `tree` holds.
    pub(crate) fn set_tree_size(&mut self, tree: BlobId, size: u64) -> Result<()> {
        self.trees()?.insert(tree.key(), size)?;
        Ok(())
    }

    /// The tree `blob` belongs to: that of the job that produced it, or its
    /// own for an ingested blob.
    pub(crate) fn tree_of(&mut self, blob: &BlobMeta) -> Result<BlobId> {
        Ok(match &blob.producer {
            Some(p) => self.job(p.job_id)?.map_or(blob.id, |job| job.tree),
            None => blob.id,
        })
    }

    /// Keeps what the guest logged in `attempt` of `job` (nothing when it
    /// logged nothing).
    pub(crate) fn put_job_log(&mut self, job: JobId, attempt: u32, log: &GuestLog) -> Result<()> {
        if log.is_empty() {
            return Ok(());
        }
        self.job_logs()?
            .insert((job.key(), attempt), encode_binary(log).as_slice())?;
        Ok(())
    }

    pub(crate) fn put_job(&mut self, job: &Job) -> Result<()> {
        let bytes = encode_binary(job);
        self.jobs()?.insert(job.id.key(), bytes.as_slice())?;
        Ok(())
    }

    /// Stores a blob with its bytes, edges, indexes and `blob.created` event.
    ///
    /// A derived id may already be stored (its job was completed before):
    /// then this writes nothing and returns false. Fresh ids skip that probe.
    pub(crate) fn insert_blob(
        &mut self,
        meta: &BlobMeta,
        data: &[u8],
        fresh: bool,
    ) -> Result<bool> {
        let id = meta.id.key();
        if !fresh && self.blobs()?.get(id)?.is_some() {
            return Ok(false);
        }
        let bytes = encode_binary(meta);
        self.blobs()?.insert(id, bytes.as_slice())?;
        let chunks = self.blob_data()?;
        if data.is_empty() {
            chunks.insert((id, 0), data)?;
        }
        for (index, chunk) in (0u32..).zip(data.chunks(DATA_CHUNK)) {
            chunks.insert((id, index), chunk)?;
        }
        for parent in &meta.parents {
            self.edges_down()?.insert((parent.key(), id), ())?;
            self.edges_up()?.insert((id, parent.key()), ())?;
        }
        self.by_schema()?.insert(
            (
                meta.tenant.as_str(),
                meta.schema.as_str(),
                meta.created_at,
                id,
            ),
            (),
        )?;
        self.by_tenant()?
            .insert((meta.tenant.as_str(), meta.created_at, id), ())?;
        let subject = format!("blob.created.{}", meta.schema);
        self.append_event(&meta.tenant, subject, Some(meta.id), None)?;
        let size = meta.size;
        let derived = meta.producer.is_some();
        self.meter(&meta.tenant, |u| {
            if derived {
                u.blobs_derived += 1;
            } else {
                u.blobs_created += 1;
            }
            u.bytes_stored = u.bytes_stored.saturating_add(size);
        });
        self.add_tenant_count(
            &meta.tenant,
            STORED_BYTES,
            i64::try_from(size).unwrap_or(i64::MAX),
        );
        Ok(true)
    }

    /// Appends to the event log with the next sequence number.
    pub(crate) fn append_event(
        &mut self,
        tenant: &str,
        subject: String,
        blob_id: Option<BlobId>,
        job_id: Option<JobId>,
    ) -> Result<u64> {
        let seq = match self.next_event {
            Some(seq) => seq,
            None => self.events()?.last()?.map_or(1, |(k, _)| k.value() + 1),
        };
        let event = Event {
            seq,
            tenant: tenant.to_owned(),
            subject,
            blob_id,
            job_id,
            at: self.now,
        };
        let bytes = encode_binary(&event);
        self.events()?.insert(seq, bytes.as_slice())?;
        self.events_by_tenant()?.insert((tenant, seq), ())?;
        self.next_event = Some(seq + 1);
        self.signals.last_event = Some(seq);
        Ok(seq)
    }

    /// Enqueues a new job for `input`: pending and due now, or, when
    /// `claimed`, already running (handed to a worker with this commit;
    /// [`crate::Store::recover_running`] makes it due again after a crash).
    pub(crate) fn insert_job(
        &mut self,
        input: &BlobMeta,
        tree: BlobId,
        spec: &JobSpec,
        claimed: bool,
    ) -> Result<Job> {
        let job = Job {
            id: JobId::generate(),
            tenant: input.tenant.clone(),
            plugin: spec.plugin.clone(),
            version: spec.version.clone(),
            blob_id: input.id,
            subject: spec.subject.clone(),
            hop: input.hop,
            attempt: 1,
            state: if claimed {
                JobState::Running
            } else {
                JobState::Pending
            },
            due_at: self.now,
            created_at: self.now,
            updated_at: self.now,
            last_error: None,
            outputs: Vec::new(),
            replay_effects: false,
            tree,
        };
        self.put_job(&job)?;
        if claimed {
            self.jobs_running()?.insert(job.id.key(), ())?;
        } else {
            self.jobs_due()?.insert((job.due_at, job.id.key()), ())?;
            self.jobs_due_by_tenant()?
                .insert((job.tenant.as_str(), job.due_at, job.id.key()), ())?;
            self.add_tenant_count(&job.tenant, QUEUED_JOBS, 1);
            self.signals.jobs_enqueued = true;
        }
        self.jobs_by_blob()?.insert(input.id.key(), job.id.key())?;
        self.jobs_by_state()?
            .insert((job.tenant.as_str(), job.state.code(), job.id.key()), ())?;
        Ok(job)
    }

    /// Moves a job to `to`, keeping the due queue, the running set and the
    /// counters in step with its state, and stores it. `due_at` only matters
    /// for `Pending`.
    pub(crate) fn move_job(&mut self, job: &mut Job, to: JobState, due_at: u64) -> Result<()> {
        let id = job.id.key();
        match job.state {
            JobState::Pending => {
                self.jobs_due()?.remove((job.due_at, id))?;
                self.jobs_due_by_tenant()?
                    .remove((job.tenant.as_str(), job.due_at, id))?;
                self.add_tenant_count(&job.tenant, QUEUED_JOBS, -1);
            }
            JobState::Running => {
                self.jobs_running()?.remove(id)?;
            }
            JobState::Done => self.add_counter(JOBS_DONE, -1)?,
            JobState::Dead => self.add_counter(JOBS_DEAD, -1)?,
        }
        match to {
            JobState::Pending => {
                job.due_at = due_at;
                self.jobs_due()?.insert((due_at, id), ())?;
                self.jobs_due_by_tenant()?
                    .insert((job.tenant.as_str(), due_at, id), ())?;
                self.add_tenant_count(&job.tenant, QUEUED_JOBS, 1);
                self.signals.jobs_enqueued = true;
            }
            JobState::Running => {
                self.jobs_running()?.insert(id, ())?;
            }
            JobState::Done => self.add_counter(JOBS_DONE, 1)?,
            JobState::Dead => self.add_counter(JOBS_DEAD, 1)?,
        }
        let tenant = job.tenant.clone();
        self.jobs_by_state()?
            .remove((tenant.as_str(), job.state.code(), id))?;
        self.jobs_by_state()?
            .insert((tenant.as_str(), to.code(), id), ())?;
        job.state = to;
        job.updated_at = self.now;
        self.put_job(job)
    }

    /// Whether a job is due now and waiting for a worker. New jobs then wait
    /// their turn in the queue (claimed fairly across tenants) instead of
    /// taking a free worker first.
    pub(crate) fn backlog(&mut self) -> Result<bool> {
        let now = self.now;
        Ok(self
            .jobs_due()?
            .first()?
            .is_some_and(|(k, _)| k.value().0 <= now))
    }

    /// Whether `tenant` has a job due now.
    pub(crate) fn has_due(&mut self, tenant: &str) -> Result<bool> {
        let now = self.now;
        Ok(self
            .jobs_due_by_tenant()?
            .range((tenant, 0, 0)..=(tenant, now, u128::MAX))?
            .next()
            .is_some())
    }

    /// Adds to a counter when the batch finishes: every completion moves
    /// one, and one read-modify-write per batch is enough.
    fn add_counter(&mut self, name: &'static str, delta: i64) -> Result<()> {
        match self.counter_deltas.iter_mut().find(|(n, _)| *n == name) {
            Some((_, d)) => *d = d.saturating_add(delta),
            None => self.counter_deltas.push((name, delta)),
        }
        Ok(())
    }
}
