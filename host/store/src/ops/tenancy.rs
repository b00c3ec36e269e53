//! Tenants and their installations: records, quotas, configs, secrets,
//! the circuit breaker's pauses, and resealing under a new master key.

#[allow(clippy::wildcard_imports)]
use super::*;

/// The tenant's record, unless there is none or it was deleted.
pub(super) fn live_tenant(tx: &mut Tx<'_>, id: &str) -> OpResult<Option<TenantRecord>> {
    let record: Option<TenantRecord> = match tx.tenants()?.get(id)? {
        Some(v) => Some(decode("tenant", v.value())?),
        None => None,
    };
    Ok(record.filter(|t| t.deleted_at.is_none()))
}

pub(crate) struct PutTenant {
    pub(crate) id: String,
    pub(crate) name: String,
}

impl WriteOp for PutTenant {
    type Output = TenantRecord;

    fn apply(&self, tx: &mut Tx<'_>) -> OpResult<TenantRecord> {
        if let Some(v) = tx.tenants()?.get(self.id.as_str())? {
            let existing: TenantRecord = decode("tenant", v.value())?;
            return reject(StoreError::TenantExists {
                id: self.id.clone(),
                deleted: existing.deleted_at.is_some(),
            });
        }
        let record = TenantRecord {
            id: self.id.clone(),
            name: self.name.clone(),
            created_at: tx.now,
            deleted_at: None,
            quotas: crate::Quotas::default(),
        };
        tx.tenants()?
            .insert(self.id.as_str(), encode("tenant", &record)?.as_slice())?;
        Ok(record)
    }
}

/// Renames a live tenant and/or replaces its quota overrides.
pub(crate) struct UpdateTenant {
    pub(crate) id: String,
    pub(crate) name: Option<String>,
    pub(crate) quotas: Option<crate::Quotas>,
}

impl WriteOp for UpdateTenant {
    type Output = TenantRecord;

    fn apply(&self, tx: &mut Tx<'_>) -> OpResult<TenantRecord> {
        let Some(mut record) = live_tenant(tx, &self.id)? else {
            return reject(StoreError::TenantNotFound {
                id: self.id.clone(),
            });
        };
        if let Some(name) = &self.name {
            record.name = name.clone();
        }
        if let Some(quotas) = &self.quotas {
            record.quotas = quotas.clone();
        }
        tx.tenants()?
            .insert(self.id.as_str(), encode("tenant", &record)?.as_slice())?;
        Ok(record)
    }
}

pub(crate) struct DeleteTenant {
    pub(crate) id: String,
}

impl WriteOp for DeleteTenant {
    type Output = TenantDeleted;

    fn apply(&self, tx: &mut Tx<'_>) -> OpResult<TenantDeleted> {
        let Some(mut record) = live_tenant(tx, &self.id)? else {
            return reject(StoreError::TenantNotFound {
                id: self.id.clone(),
            });
        };
        let id = self.id.as_str();
        let mut done = TenantDeleted::default();
        let mut tokens = Vec::new();
        for entry in tx.tokens()?.iter()? {
            let (_, v) = entry.map_err(StoreError::from)?;
            let token: TokenRecord = decode("token", v.value())?;
            if token.tenant == id {
                tokens.push(token);
            }
        }
        for token in &tokens {
            tx.tokens()?.remove(token.id.key())?;
            tx.tokens_by_hash()?.remove(token.hash.as_str())?;
        }
        done.tokens = tokens.len();
        let mut installs = Vec::new();
        for entry in tx.installations()?.range((id, "")..)? {
            let (k, _) = entry.map_err(StoreError::from)?;
            let (tenant, plugin) = k.value();
            if tenant != id {
                break;
            }
            installs.push(plugin.to_owned());
        }
        for plugin in &installs {
            tx.installations()?.remove((id, plugin.as_str()))?;
        }
        done.installations = installs.len();
        let mut sealed = Vec::new();
        for entry in tx.secrets()?.range((id, "", "", 0)..)? {
            let (k, _) = entry.map_err(StoreError::from)?;
            let (tenant, plugin, name, version) = k.value();
            if tenant != id {
                break;
            }
            sealed.push((plugin.to_owned(), name.to_owned(), version));
        }
        for (plugin, name, version) in &sealed {
            tx.secrets()?
                .remove((id, plugin.as_str(), name.as_str(), *version))?;
        }
        let mut owned = Vec::new();
        for entry in tx.plugins()?.iter()? {
            let (_, v) = entry.map_err(StoreError::from)?;
            let plugin: PluginRecord = decode("plugin", v.value())?;
            if plugin.owner.as_deref() == Some(id) && plugin.enabled {
                owned.push(plugin);
            }
        }
        for plugin in &mut owned {
            plugin.enabled = false;
            tx.plugins()?.insert(
                (plugin.name.as_str(), plugin.version.as_str()),
                encode("plugin", &*plugin)?.as_slice(),
            )?;
        }
        done.plugins = owned.len();
        record.deleted_at = Some(tx.now);
        tx.tenants()?
            .insert(id, encode("tenant", &record)?.as_slice())?;
        Ok(done)
    }
}

/// A change to one tenant's installation of one plugin; see
/// [`InstallationChange`].
pub(crate) struct UpdateInstallation {
    pub(crate) tenant: String,
    pub(crate) plugin: String,
    /// Whether an installation without a record is enabled (the plugin's
    /// install policy for this tenant).
    pub(crate) default_enabled: bool,
    pub(crate) change: InstallationChange,
}

impl WriteOp for UpdateInstallation {
    type Output = Installation;

    fn weight(&self) -> usize {
        match &self.change {
            InstallationChange::SetSecret { sealed, .. } => sealed.len(),
            _ => 0,
        }
    }

    fn apply(&self, tx: &mut Tx<'_>) -> OpResult<Installation> {
        let (tenant, plugin) = (self.tenant.as_str(), self.plugin.as_str());
        if live_tenant(tx, tenant)?.is_none() {
            return reject(StoreError::TenantNotFound {
                id: self.tenant.clone(),
            });
        }
        let stored: Option<Installation> = match tx.installations()?.get((tenant, plugin))? {
            Some(v) => Some(decode("installation", v.value())?),
            None => None,
        };
        let mut install = stored.unwrap_or_else(|| Installation {
            tenant: self.tenant.clone(),
            plugin: self.plugin.clone(),
            enabled: self.default_enabled,
            created_at: tx.now,
            ..Installation::default()
        });
        install.updated_at = tx.now;
        let now = tx.now;
        match &self.change {
            InstallationChange::Enabled(enabled) => install.enabled = *enabled,
            InstallationChange::Config(config) => install.config = config.clone(),
            InstallationChange::SetSecret { name, sealed, keep } => {
                let version = install.secrets.get(name).map_or(1, |s| s.version + 1);
                tx.secrets()?
                    .insert((tenant, plugin, name.as_str(), version), sealed.as_slice())?;
                install.secrets.insert(
                    name.clone(),
                    SecretState {
                        version,
                        set: true,
                        updated_at: now,
                    },
                );
                prune_secret(tx, tenant, plugin, name, Some(version), keep)?;
            }
            InstallationChange::DeleteSecret { name, keep } => {
                let Some(state) = install.secrets.get_mut(name).filter(|s| s.set) else {
                    return reject(StoreError::SecretNotFound {
                        plugin: self.plugin.clone(),
                        name: name.clone(),
                    });
                };
                state.set = false;
                state.updated_at = now;
                prune_secret(tx, tenant, plugin, name, None, keep)?;
            }
            InstallationChange::PruneSecret { name, keep } => {
                let current = install
                    .secrets
                    .get(name)
                    .filter(|s| s.set)
                    .map(|s| s.version);
                prune_secret(tx, tenant, plugin, name, current, keep)?;
            }
            InstallationChange::Pause(pause) => {
                install.paused = Some(pause.clone());
                tx.append_event(tenant, format!("plugin.paused.{plugin}"), None, None)?;
            }
            InstallationChange::Resume => {
                if install.paused.take().is_some() {
                    tx.append_event(tenant, format!("plugin.resumed.{plugin}"), None, None)?;
                    wake_deferred(tx, tenant, plugin)?;
                }
            }
        }
        tx.installations()?.insert(
            (tenant, plugin),
            encode("installation", &install)?.as_slice(),
        )?;
        Ok(install)
    }
}

/// Makes the tenant's pending jobs of `plugin` that wait for a later time
/// (deferred while its installation was paused) due now.
fn wake_deferred(tx: &mut Tx<'_>, tenant: &str, plugin: &str) -> OpResult<()> {
    let pending = JobState::Pending.code();
    let mut ids = Vec::new();
    for entry in tx
        .jobs_by_state()?
        .range((tenant, pending, 0)..=(tenant, pending, u128::MAX))?
    {
        let (k, _) = entry.map_err(StoreError::from)?;
        ids.push(k.value().2);
    }
    let now = tx.now;
    for id in ids {
        if let Some(mut job) = tx.job(JobId::from_key(id))?
            && job.plugin == plugin
            && job.due_at > now
        {
            tx.move_job(&mut job, JobState::Pending, now)?;
        }
    }
    Ok(())
}

/// Deletes the sealed versions of one secret other than `current` and
/// those in `keep`.
fn prune_secret(
    tx: &mut Tx<'_>,
    tenant: &str,
    plugin: &str,
    name: &str,
    current: Option<u32>,
    keep: &[u32],
) -> OpResult<()> {
    let mut stale = Vec::new();
    for entry in tx
        .secrets()?
        .range((tenant, plugin, name, 0)..=(tenant, plugin, name, u32::MAX))?
    {
        let (k, _) = entry.map_err(StoreError::from)?;
        let version = k.value().3;
        if Some(version) != current && !keep.contains(&version) {
            stale.push(version);
        }
    }
    for version in stale {
        tx.secrets()?.remove((tenant, plugin, name, version))?;
    }
    Ok(())
}

/// Puts a running job back in the queue until `due_at` without counting
/// an attempt (its installation is paused; the job itself did nothing).
pub(crate) struct DeferJob {
    pub(crate) job: JobId,
    pub(crate) due_at: u64,
    pub(crate) note: String,
}

impl WriteOp for DeferJob {
    type Output = Job;

    fn apply(&self, tx: &mut Tx<'_>) -> OpResult<Job> {
        let Some(mut job) = tx.job(self.job)? else {
            return reject(StoreError::JobNotFound { id: self.job });
        };
        if job.state != JobState::Running {
            return reject(StoreError::JobState {
                id: job.id,
                state: job.state,
                action: "defer",
            });
        }
        job.last_error = Some(self.note.clone());
        tx.move_job(&mut job, JobState::Pending, self.due_at)?;
        Ok(job)
    }
}

/// A sealed secret's key: (tenant, plugin, name, version).
pub(crate) type SecretKey = (String, String, String, u32);

/// Every sealed secret re-encrypted under a new master key, in one
/// transaction: each `(key, old, new)` replaces `old` with `new`; a value
/// that is no longer `old` (or gone) refuses the whole operation.
pub(crate) struct ResealSecrets {
    pub(crate) values: Vec<(SecretKey, Vec<u8>, Vec<u8>)>,
}

impl WriteOp for ResealSecrets {
    type Output = usize;

    fn weight(&self) -> usize {
        self.values.iter().map(|(_, a, b)| a.len() + b.len()).sum()
    }

    fn apply(&self, tx: &mut Tx<'_>) -> OpResult<usize> {
        let mut total = 0;
        for entry in tx.secrets()?.iter()? {
            entry.map_err(StoreError::from)?;
            total += 1;
        }
        if total != self.values.len() {
            return reject(StoreError::Reseal {
                secret: "the set of secrets".into(),
                reason: format!(
                    "{total} are stored and {} were re-encrypted; try again",
                    self.values.len()
                ),
            });
        }
        for ((tenant, plugin, name, version), old, _) in &self.values {
            let key = (tenant.as_str(), plugin.as_str(), name.as_str(), *version);
            let same = tx
                .secrets()?
                .get(key)?
                .is_some_and(|v| v.value() == old.as_slice());
            if !same {
                return reject(StoreError::Reseal {
                    secret: format!("{tenant}/{plugin}/{name} v{version}"),
                    reason: "it changed while it was re-encrypted; try again".into(),
                });
            }
        }
        for ((tenant, plugin, name, version), _, new) in &self.values {
            tx.secrets()?.insert(
                (tenant.as_str(), plugin.as_str(), name.as_str(), *version),
                new.as_slice(),
            )?;
        }
        Ok(self.values.len())
    }
}
