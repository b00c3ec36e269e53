//! Each tenant's quotas as the engine applies them: the operator's defaults
//! with the tenant's overrides, a token bucket for its blob creation rate,
//! how many of its jobs are claimed or running (against its running-jobs
//! quota and its share of the claims), and the windowed limits (effect
//! calls per day, budgets) its effect calls are checked against.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use reyna_store::{ClaimCursor, ClaimPolicy, IngestLimits, Quotas, Store, WindowLimit};

use crate::error::EngineError;

/// Every tenant's quotas and the state that enforces them.
pub(crate) struct TenantQuotas {
    defaults: Quotas,
    /// Tenants whose record overrides a default: their effective quotas.
    overridden: RwLock<HashMap<String, Arc<Quotas>>>,
    /// The defaults, effective for every other tenant.
    default_effective: Arc<Quotas>,
    buckets: Mutex<HashMap<String, Bucket>>,
    /// Jobs of each tenant claimed by this engine and not yet finished.
    running: Mutex<HashMap<String, usize>>,
}

/// A token bucket: `tokens` refill at `rate` per second up to `burst`.
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl TenantQuotas {
    /// The operator's `defaults`, and the overrides on every tenant record.
    pub(crate) fn load(defaults: Quotas, store: &Store) -> Result<Self, EngineError> {
        let quotas = Self {
            default_effective: Arc::new(defaults.clone()),
            defaults,
            overridden: RwLock::default(),
            buckets: Mutex::default(),
            running: Mutex::default(),
        };
        for tenant in store.list_tenants()? {
            if tenant.deleted_at.is_none() {
                quotas.set_overrides(&tenant.id, &tenant.quotas);
            }
        }
        Ok(quotas)
    }

    /// Takes `tenant`'s overrides (from its record) into account.
    pub(crate) fn set_overrides(&self, tenant: &str, overrides: &Quotas) {
        let mut map = self
            .overridden
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if *overrides == Quotas::default() {
            map.remove(tenant);
        } else {
            map.insert(tenant.to_owned(), Arc::new(overrides.over(&self.defaults)));
        }
        drop(map);
        // A new rate or burst starts with a full bucket.
        self.buckets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(tenant);
    }

    /// `tenant`'s effective quotas.
    pub(crate) fn of(&self, tenant: &str) -> Arc<Quotas> {
        self.overridden
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(tenant)
            .cloned()
            .unwrap_or_else(|| self.default_effective.clone())
    }

    /// Takes one blob creation from `tenant`'s bucket, or says how long
    /// until one is there.
    pub(crate) fn take_blob(&self, tenant: &str) -> Result<(), EngineError> {
        let quotas = self.of(tenant);
        let Some(rate) = quotas.blobs_per_second else {
            return Ok(());
        };
        let rate = f64::from(rate);
        let burst = f64::from(
            quotas
                .blob_burst
                .unwrap_or(quotas.blobs_per_second.unwrap_or(1))
                .max(1),
        );
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let bucket = buckets.entry(tenant.to_owned()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let refill = now.duration_since(bucket.at).as_secs_f64() * rate;
        bucket.tokens = (bucket.tokens + refill).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait = if rate > 0.0 {
            Duration::from_secs_f64((1.0 - bucket.tokens) / rate)
        } else {
            Duration::from_secs(3600)
        };
        Err(EngineError::QuotaExceeded {
            quota: "blob-rate".to_owned(),
            message: format!(
                "tenant {tenant} may create {} blobs per second (bursts of {burst}); slow down",
                rate
            ),
            retry_after: wait,
        })
    }

    /// What a new blob of `tenant` is checked against in its commit.
    pub(crate) fn ingest_limits(&self, tenant: &str) -> IngestLimits {
        let quotas = self.of(tenant);
        IngestLimits {
            stored_bytes: quotas.stored_bytes,
            queued_jobs: quotas.queued_jobs,
        }
    }

    /// `tenant`'s windowed limits (effect calls per day, budgets).
    pub(crate) fn window_limits(&self, tenant: &str) -> Vec<WindowLimit> {
        self.of(tenant).window_limits()
    }

    /// Counts up to `n` more claimed jobs of `tenant`, as many as its
    /// running-jobs quota allows; returns how many, and whether the tenant
    /// had none claimed before (it was idle). Give back the ones not
    /// claimed with [`Self::release`].
    pub(crate) fn reserve(&self, tenant: &str, n: usize) -> (usize, bool) {
        let cap = self.of(tenant).running_jobs.map(|c| c as usize);
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        let count = running.entry(tenant.to_owned()).or_default();
        let idle = *count == 0;
        let granted = cap.map_or(n, |cap| n.min(cap.saturating_sub(*count)));
        *count += granted;
        if *count == 0 {
            running.remove(tenant);
        }
        (granted, idle)
    }

    /// Counts jobs claimed without [`Self::reserve`] (a claim round already
    /// capped them), one per tenant named.
    pub(crate) fn add_claimed<'a>(&self, tenants: impl IntoIterator<Item = &'a str>) {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        for tenant in tenants {
            match running.get_mut(tenant) {
                Some(count) => *count += 1,
                None => {
                    running.insert(tenant.to_owned(), 1);
                }
            }
        }
    }

    /// `n` jobs of `tenant` finished (or were not claimed after all).
    pub(crate) fn release(&self, tenant: &str, n: usize) {
        if n == 0 {
            return;
        }
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = running.get_mut(tenant) {
            *count = count.saturating_sub(n);
            if *count == 0 {
                running.remove(tenant);
            }
        }
    }

    /// Jobs of `tenant` claimed and not finished here.
    pub(crate) fn running(&self, tenant: &str) -> usize {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(tenant)
            .copied()
            .unwrap_or(0)
    }

    /// How the next claim shares the workers: each overridden tenant's
    /// weight, and every cap (what each capped tenant may still claim).
    pub(crate) fn claim_policy(&self, after: Option<ClaimCursor>) -> ClaimPolicy {
        let overridden = self
            .overridden
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        let mut policy = ClaimPolicy {
            after,
            weights: HashMap::new(),
            caps: HashMap::new(),
            default_cap: self.defaults.running_jobs.map(|c| c as usize),
        };
        if let Some(cap) = self.defaults.running_jobs {
            for (tenant, n) in running.iter() {
                policy
                    .caps
                    .insert(tenant.clone(), (cap as usize).saturating_sub(*n));
            }
        }
        for (tenant, quotas) in overridden.iter() {
            if quotas.weight() != 1 {
                policy.weights.insert(tenant.clone(), quotas.weight());
            }
            let n = running.get(tenant).copied().unwrap_or(0);
            match quotas.running_jobs {
                Some(cap) => {
                    policy
                        .caps
                        .insert(tenant.clone(), (cap as usize).saturating_sub(n));
                }
                None => {
                    policy.caps.remove(tenant);
                }
            }
        }
        policy
    }
}

/// Counts one claimed job of a tenant until dropped (when its task ends,
/// however it ends).
pub(crate) struct RunningJob {
    pub(crate) quotas: Arc<TenantQuotas>,
    pub(crate) tenant: String,
}

impl Drop for RunningJob {
    fn drop(&mut self) {
        self.quotas.release(&self.tenant, 1);
    }
}
