//! Admission: whether a claimed job may run, and what it runs on. Loads the
//! job's plugin, checks it is enabled, the hop limit and the tree budget, reads the input,
//! looks for a stored result of the same component, config and input
//! content, and builds the event; or refuses with the reason that goes to
//! the dead letters. Reads only; writes nothing.

use std::sync::Arc;

use reyna_runtime::{Blob, Event};
use reyna_store::{BlobMeta, IdemKey, Job, StoreError};

use crate::executor::Work;
use crate::host::recorded_effects;
use crate::inner::Inner;
use crate::installs::{Installs, Lease};
use crate::plugins::Loaded;

/// Marks a paused installation's probe as running until dropped.
pub(crate) struct Probe {
    installs: Arc<Installs>,
    tenant: String,
    plugin: String,
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.installs.end_probe(&self.tenant, &self.plugin);
    }
}

/// How long the other jobs of a paused installation wait while its probe runs.
const PROBE_WAIT_MS: u64 = 1_000;

/// What admission decided.
pub(crate) enum Admission {
    /// The job's plugin version is not registered: dead-letter it, counted
    /// against no plugin.
    Unregistered(String),
    /// The job must not run: dead-letter it with this reason (the input's
    /// fault, not the plugin's).
    Refused(Arc<Loaded>, String),
    /// The tenant's installation is paused: put the job back until `until`
    /// (no attempt counted).
    Deferred { until: u64, note: String },
    /// Run it (see [`Admitted`]).
    Run(Box<Admitted>),
}

/// A job admitted to run, unless `prior` (an earlier result under the
/// same key) can be reused.
pub(crate) struct Admitted {
    pub work: Work,
    pub key: IdemKey,
    pub prior: Option<Vec<BlobMeta>>,
    /// Holds the installation's secret versions until the job ends.
    pub lease: Lease,
    /// Set when the job probes a paused installation.
    pub probe: Option<Probe>,
}

pub(crate) fn admit(inner: &Inner, job: &Job) -> Result<Admission, StoreError> {
    let Some(p) = inner.plugins.get(&job.plugin, &job.version) else {
        return Ok(Admission::Unregistered(format!(
            "plugin {}@{} is not registered",
            job.plugin, job.version
        )));
    };
    if !p.record.enabled {
        let reason = format!("plugin {} is disabled", p.id());
        return Ok(Admission::Refused(p, reason));
    }
    let installs = &inner.plugins.installs;
    if installs.tenant_deleted(&job.tenant) {
        let reason = format!("tenant {} was deleted", job.tenant);
        return Ok(Admission::Refused(p, reason));
    }
    let Some(default) = p.default_for(&job.tenant) else {
        let reason = format!(
            "plugin {} is not available to tenant {}",
            p.id(),
            job.tenant
        );
        return Ok(Admission::Refused(p, reason));
    };
    let install = installs.resolve(&job.tenant, &p.record.name, default);
    if !install.enabled {
        let reason = format!(
            "plugin {} is not enabled for tenant {} (its installation)",
            p.id(),
            job.tenant
        );
        return Ok(Admission::Refused(p, reason));
    }
    let mut probe = None;
    if let Some(pause) = install.paused() {
        let now = inner.store.now_ms();
        let note = format!(
            "waiting: {}'s installation of {} is paused ({})",
            job.tenant, p.record.name, pause.reason
        );
        if now < pause.probe_at {
            return Ok(Admission::Deferred {
                until: pause.probe_at,
                note,
            });
        }
        if !installs.start_probe(&job.tenant, &p.record.name) {
            return Ok(Admission::Deferred {
                until: now + PROBE_WAIT_MS,
                note,
            });
        }
        probe = Some(Probe {
            installs: installs.clone(),
            tenant: job.tenant.clone(),
            plugin: p.record.name.clone(),
        });
    }
    if job.hop >= inner.config.max_hops {
        let reason = format!(
            "hop limit reached: the input is {} derivations deep and the limit is {} (a subscription cycle?)",
            job.hop, inner.config.max_hops
        );
        return Ok(Admission::Refused(p, reason));
    }
    let tree_size = inner.store.tree_size(job.tree)?;
    if tree_size >= inner.config.max_tree_blobs {
        let reason = format!(
            "tree-budget: blob {}'s tree already holds {tree_size} derived blobs of at most {} (max-tree-blobs)",
            job.tree, inner.config.max_tree_blobs
        );
        return Ok(Admission::Refused(p, reason));
    }
    let (meta, data) = match inner.store.get_blob_with_data(&job.tenant, job.blob_id) {
        Ok(Some(input)) => input,
        Ok(None) => {
            let reason = format!("input blob {} no longer exists", job.blob_id);
            return Ok(Admission::Refused(p, reason));
        }
        Err(StoreError::Corrupt { .. }) => {
            let reason = format!("input blob {} is corrupt (digest mismatch)", job.blob_id);
            return Ok(Admission::Refused(p, reason));
        }
        Err(e) => return Err(e),
    };
    let key = IdemKey {
        component_digest: p.record.digest,
        config_digest: install.config_digest,
        input_digest: meta.digest,
    };
    let prior = inner.store.find_idempotent(&job.tenant, &key)?;
    let replay = if job.replay_effects {
        Some(Arc::new(recorded_effects(
            &inner.store,
            &job.tenant,
            job.blob_id,
            &job.plugin,
        )?))
    } else {
        None
    };
    let event = Event {
        subject: job.subject.clone(),
        blob: Blob {
            id: meta.id.to_string(),
            tenant: meta.tenant.clone(),
            schema: meta.schema.clone(),
            data,
            parents: meta.parents.iter().map(ToString::to_string).collect(),
        },
    };
    let lease = installs.lease(&job.tenant, &p.record.name, &install);
    let work = Work {
        job: job.clone(),
        install,
        plugin: p,
        event,
        input_digest: meta.digest,
        input_size: meta.size,
        seed: job.id.seed(),
        replay,
    };
    Ok(Admission::Run(Box::new(Admitted {
        work,
        key,
        prior,
        lease,
        probe,
    })))
}
