//! A loaded plugin: its manifest, digest, resolved limits, pre-instantiated
//! component and concurrency slots.

use std::sync::Arc;

use reyna_manifest::Manifest;
use reyna_types::Digest;
use tokio::sync::Semaphore;

use crate::bindings::{EffectPre, ProcessorPre};
use crate::config::Limits;
use crate::sandbox::CallState;

/// A compiled, linked plugin, ready to be called many times. Cheap to clone.
#[derive(Clone)]
pub struct Plugin {
    pub(crate) inner: Arc<PluginInner>,
}

pub(crate) struct PluginInner {
    pub manifest: Manifest,
    pub digest: Digest,
    pub limits: Limits,
    pub pre: Pre,
    pub permits: Arc<Semaphore>,
}

/// The pre-instantiated component, linked against its kind's world.
pub(crate) enum Pre {
    Processor(ProcessorPre<CallState>),
    Effect(EffectPre<CallState>),
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("id", &self.inner.manifest.id())
            .field("digest", &self.inner.digest)
            .field("limits", &self.inner.limits)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    /// The manifest embedded in the component.
    pub fn manifest(&self) -> &Manifest {
        &self.inner.manifest
    }

    /// Digest of the component bytes.
    pub fn digest(&self) -> Digest {
        self.inner.digest
    }

    /// The limits every call of this plugin runs under.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// Calls of this plugin running right now.
    pub fn in_flight(&self) -> usize {
        let max = usize::try_from(self.inner.limits.max_concurrency).unwrap_or(usize::MAX);
        max.saturating_sub(self.inner.permits.available_permits())
    }
}
