//! Tenants as records, each tenant's installations of plugins (enabled
//! flag, config, secrets) and the master key that seals the secrets.

use std::collections::BTreeMap;

use reyna_store::{InstallationChange, NewAudit, Store, StoreError, TenantDeleted, TenantRecord};
use reyna_types::TenantId;
use reyna_vault::Vault;

use crate::config::EngineConfig;
use crate::error::EngineError;
use crate::installs::InstallationView;
use crate::plugins::PluginRegistry;
use crate::{Engine, audit};

/// Longest secret value, in bytes.
pub const MAX_SECRET_BYTES: usize = 64 * 1024;
/// Most config entries (plain and secret) one installation may hold.
pub const MAX_CONFIG_ENTRIES: usize = 256;
/// Longest plain config value, in bytes.
pub const MAX_CONFIG_VALUE_BYTES: usize = 64 * 1024;

/// Opens the master key (creating it on first start) and finishes a
/// master-key rotation a crash interrupted: when the store holds values
/// sealed under the new key, the new key is made current; otherwise the
/// unused new key is removed.
pub(crate) fn open_vault(store: &Store, config: &EngineConfig) -> Result<Vault, EngineError> {
    let vault = Vault::open(&config.data_dir, config.master_key_file.as_deref())
        .map_err(|e| EngineError::Internal(format!("cannot open the master key: {e}")))?;
    if vault.pending_rotation().is_none() {
        return Ok(vault);
    }
    let sealed = store.list_sealed_secrets()?;
    let moved = !sealed.is_empty() && sealed.iter().all(|(_, v)| !vault.is_current(v));
    let finished = if moved {
        tracing::warn!("finishing a master-key rotation that was interrupted");
        vault.complete_pending()
    } else {
        tracing::warn!("removing the new master key of a rotation that did not happen");
        vault.abandon_pending()
    };
    finished
        .map_err(|e| EngineError::Internal(format!("cannot finish the master-key rotation: {e}")))
}

/// Moves the config of plugin versions stored before installations (one
/// config per version, for every tenant) into every tenant's installation
/// of the plugin: keys that look like secrets become sealed secrets, the
/// rest plain config. Runs at every open; does nothing once moved.
pub(crate) async fn migrate_legacy_config(
    store: &Store,
    plugins: &PluginRegistry,
) -> Result<(), EngineError> {
    let mut records: Vec<_> = store
        .list_plugins()?
        .into_iter()
        .filter(|r| !r.config.is_empty())
        .collect();
    if records.is_empty() {
        return Ok(());
    }
    // The newest version's config wins for the name.
    records.sort_by_key(|r| r.created_at);
    let tenants: Vec<String> = store
        .list_tenants()?
        .into_iter()
        .filter(|t| t.deleted_at.is_none())
        .map(|t| t.id)
        .collect();
    let installs = &plugins.installs;
    for record in &records {
        for tenant in &tenants {
            let default = match &record.owner {
                Some(owner) if owner != tenant => continue,
                Some(_) => true,
                None => record.install == reyna_store::InstallPolicy::All,
            };
            let existing = store.get_installation(tenant, &record.name)?;
            let mut plain = existing
                .as_ref()
                .map(|i| i.config.clone())
                .unwrap_or_default();
            for (key, value) in &record.config {
                if reyna_runtime::is_secret_key(key) {
                    let target = format!("{}/{key}", record.name);
                    let entry = audit_for(
                        "system",
                        tenant,
                        "installation.secret.set",
                        &target,
                        moved(),
                    );
                    installs
                        .set_secret(tenant, &record.name, default, key, value, entry)
                        .await?;
                } else {
                    plain.insert(key.clone(), value.clone());
                }
            }
            let entry = audit_for(
                "system",
                tenant,
                "installation.config",
                &record.name,
                moved(),
            );
            installs
                .change(
                    tenant,
                    &record.name,
                    default,
                    InstallationChange::Config(plain),
                    Some(entry),
                )
                .await?;
        }
        plugins
            .clear_legacy_config(
                &record.name,
                &record.version,
                format!("config moved into {} tenants' installations", tenants.len()),
            )
            .await?;
    }
    Ok(())
}

/// The detail of the audit entries of the format 4 config move.
fn moved() -> String {
    "moved from the plugin's config (format 4)".to_owned()
}

fn audit_for(actor: &str, tenant: &str, action: &str, target: &str, detail: String) -> NewAudit {
    let mut entry = audit(actor, action, target, &detail);
    entry.tenant = Some(tenant.to_owned());
    entry
}

fn tenant_error(e: StoreError) -> EngineError {
    match e {
        StoreError::TenantNotFound { id } => EngineError::TenantNotFound(id),
        StoreError::TenantExists { .. } => EngineError::TenantExists(e.to_string()),
        other => other.into(),
    }
}

impl Engine {
    /// Creates a tenant (ids are never reused, even after deletion).
    pub async fn create_tenant(
        &self,
        id: &TenantId,
        name: &str,
        actor: &str,
    ) -> Result<TenantRecord, EngineError> {
        let entry = audit_for(
            actor,
            id.as_str(),
            "tenant.create",
            id.as_str(),
            String::new(),
        );
        self.inner
            .store
            .put_tenant(id.as_str(), name, entry)
            .await
            .map_err(tenant_error)
    }

    /// Renames a tenant and/or replaces its quota overrides (the whole set:
    /// a field left out follows the operator's default again).
    pub async fn update_tenant(
        &self,
        id: &str,
        name: Option<String>,
        quotas: Option<reyna_store::Quotas>,
        actor: &str,
    ) -> Result<TenantRecord, EngineError> {
        if let Some(quotas) = &quotas {
            quotas.validate().map_err(EngineError::Invalid)?;
        }
        let detail = match &quotas {
            Some(q) => format!("quotas {}", serde_json::to_string(q).unwrap_or_default()),
            None => String::new(),
        };
        let entry = audit_for(actor, id, "tenant.update", id, detail);
        let record = self
            .inner
            .store
            .update_tenant(id, name, quotas, entry)
            .await
            .map_err(tenant_error)?;
        self.inner.quotas.set_overrides(id, &record.quotas);
        // A raised running-jobs quota or share may free claims now.
        self.inner.claims_changed.notify_one();
        Ok(record)
    }

    /// `tenant`'s quotas in force: its overrides over the operator's defaults.
    pub fn effective_quotas(&self, tenant: &str) -> reyna_store::Quotas {
        (*self.inner.quotas.of(tenant)).clone()
    }

    /// The operator's default quotas.
    pub fn default_quotas(&self) -> &reyna_store::Quotas {
        &self.inner.config.quotas
    }

    /// What `tenant` holds now (stored bytes, jobs waiting) and how many of
    /// its jobs run here.
    pub fn holdings(&self, tenant: &str) -> Result<(reyna_store::Holdings, usize), EngineError> {
        Ok((
            self.inner.store.holdings(tenant)?,
            self.inner.quotas.running(tenant),
        ))
    }

    /// `tenant`'s metered usage, one record per `granularity` period from
    /// the one holding `from` up to `to` (ms, exclusive); empty periods are
    /// left out.
    pub fn usage(
        &self,
        tenant: &str,
        granularity: reyna_store::Granularity,
        from: u64,
        to: u64,
    ) -> Result<Vec<reyna_store::UsagePeriod>, EngineError> {
        Ok(self.inner.store.usage(tenant, granularity, from, to)?)
    }

    /// Now, by the store's clock (ms since the epoch).
    pub fn now_ms(&self) -> u64 {
        self.inner.store.now_ms()
    }

    /// Every tenant, deleted ones included (they keep their id).
    pub fn tenants(&self) -> Result<Vec<TenantRecord>, EngineError> {
        Ok(self.inner.store.list_tenants()?)
    }

    /// A tenant's record, deleted or not.
    pub fn tenant_record(&self, id: &str) -> Result<Option<TenantRecord>, EngineError> {
        Ok(self.inner.store.get_tenant(id)?)
    }

    /// A tenant that exists and is not deleted.
    pub fn live_tenant(&self, id: &str) -> Result<Option<TenantRecord>, EngineError> {
        Ok(self.tenant_record(id)?.filter(|t| t.deleted_at.is_none()))
    }

    /// Deletes a tenant: revokes its tokens, removes its installations and
    /// secrets, disables its own plugins, in one transaction with the
    /// audit entry. Its blobs stay, unreachable.
    pub async fn delete_tenant(&self, id: &str, actor: &str) -> Result<TenantDeleted, EngineError> {
        let entry = audit_for(actor, id, "tenant.delete", id, String::new());
        let done = self
            .inner
            .store
            .delete_tenant(id, entry)
            .await
            .map_err(tenant_error)?;
        self.inner.plugins.installs.forget_tenant(id);
        self.inner
            .quotas
            .set_overrides(id, &reyna_store::Quotas::default());
        // Its own plugins were disabled in the store: reload the registry.
        for problem in self.inner.plugins.load_all()? {
            tracing::error!(%problem, "plugin not loaded");
        }
        Ok(done)
    }

    /// The install default of plugin `name` for `tenant`, or not found when
    /// the tenant cannot see it.
    fn install_default(&self, tenant: &str, name: &str) -> Result<bool, EngineError> {
        if self.live_tenant(tenant)?.is_none() {
            return Err(EngineError::TenantNotFound(tenant.to_owned()));
        }
        self.inner
            .plugins
            .default_for_name(name, tenant)
            .flatten()
            .ok_or_else(|| EngineError::PluginNotFound(name.to_owned()))
    }

    /// `tenant`'s installation of plugin `name`.
    pub fn installation(&self, tenant: &str, name: &str) -> Result<InstallationView, EngineError> {
        let default = self.install_default(tenant, name)?;
        Ok(self.inner.plugins.installs.view(tenant, name, default))
    }

    /// `tenant`'s installations of every plugin name it can see.
    pub fn installations(&self, tenant: &str) -> Result<Vec<InstallationView>, EngineError> {
        if self.live_tenant(tenant)?.is_none() {
            return Err(EngineError::TenantNotFound(tenant.to_owned()));
        }
        let mut names: Vec<String> = self
            .inner
            .plugins
            .list(Some(tenant))
            .into_iter()
            .map(|p| p.name)
            .collect();
        names.dedup();
        names
            .iter()
            .map(|name| self.installation(tenant, name))
            .collect()
    }

    /// Turns `tenant`'s installation of `name` on or off. Turning a paused
    /// installation on resumes it at once.
    pub async fn set_installation_enabled(
        &self,
        tenant: &str,
        name: &str,
        enabled: bool,
        actor: &str,
    ) -> Result<InstallationView, EngineError> {
        let default = self.install_default(tenant, name)?;
        let installs = &self.inner.plugins.installs;
        let action = if enabled {
            "installation.enable"
        } else {
            "installation.disable"
        };
        let entry = audit_for(actor, tenant, action, name, String::new());
        let changed = installs
            .change(
                tenant,
                name,
                default,
                InstallationChange::Enabled(enabled),
                Some(entry),
            )
            .await?;
        if enabled && changed.paused().is_some() {
            let entry = audit_for(
                actor,
                tenant,
                "plugin.resume",
                name,
                "enabled by hand".into(),
            );
            installs
                .change(
                    tenant,
                    name,
                    default,
                    InstallationChange::Resume,
                    Some(entry),
                )
                .await?;
            self.inner.plugins.reset_window(tenant, name);
        }
        Ok(installs.view(tenant, name, default))
    }

    /// Replaces the plain config of `tenant`'s installation of `name`.
    /// A key that is a secret of the installation is refused (delete the
    /// secret first).
    pub async fn set_installation_config(
        &self,
        tenant: &str,
        name: &str,
        config: BTreeMap<String, String>,
        actor: &str,
    ) -> Result<InstallationView, EngineError> {
        let default = self.install_default(tenant, name)?;
        let installs = &self.inner.plugins.installs;
        let current = installs.resolve(tenant, name, default);
        if config.len() > MAX_CONFIG_ENTRIES {
            return Err(EngineError::Invalid(format!(
                "a config holds at most {MAX_CONFIG_ENTRIES} entries; this one has {}",
                config.len()
            )));
        }
        for (key, value) in &config {
            check_key(key)?;
            if current.secret_keys.contains(key) {
                return Err(EngineError::Conflict(format!(
                    "`{key}` is a secret of this installation; delete the secret before setting it as plain config"
                )));
            }
            if value.len() > MAX_CONFIG_VALUE_BYTES {
                return Err(EngineError::Invalid(format!(
                    "the value of `{key}` is {} bytes, more than the {MAX_CONFIG_VALUE_BYTES} allowed",
                    value.len()
                )));
            }
        }
        let keys: Vec<&str> = config.keys().map(String::as_str).collect();
        let entry = audit_for(
            actor,
            tenant,
            "installation.config",
            name,
            format!("keys: {}", keys.join(", ")),
        );
        installs
            .change(
                tenant,
                name,
                default,
                InstallationChange::Config(config),
                Some(entry),
            )
            .await?;
        Ok(installs.view(tenant, name, default))
    }

    /// Sets (or rotates: a new version) secret `key` of `tenant`'s
    /// installation of `name`. The value is sealed before it reaches the
    /// store and is never returned; jobs running with the previous version
    /// keep it until they finish.
    pub async fn set_secret(
        &self,
        tenant: &str,
        name: &str,
        key: &str,
        value: &str,
        actor: &str,
    ) -> Result<InstallationView, EngineError> {
        let default = self.install_default(tenant, name)?;
        check_key(key)?;
        if value.is_empty() {
            return Err(EngineError::Invalid(
                "a secret's value may not be empty; delete the secret instead".into(),
            ));
        }
        if value.len() > MAX_SECRET_BYTES {
            return Err(EngineError::Invalid(format!(
                "a secret holds at most {MAX_SECRET_BYTES} bytes; this one is {}",
                value.len()
            )));
        }
        let installs = &self.inner.plugins.installs;
        let current = installs.resolve(tenant, name, default);
        if current
            .record
            .as_ref()
            .is_some_and(|r| r.config.contains_key(key))
        {
            return Err(EngineError::Conflict(format!(
                "`{key}` is a plain config value of this installation; remove it from the config before setting it as a secret"
            )));
        }
        let secrets = current.record.as_ref().map_or(0, |r| r.secrets.len());
        if !current.secret_keys.contains(key) && secrets >= MAX_CONFIG_ENTRIES {
            return Err(EngineError::Invalid(format!(
                "an installation holds at most {MAX_CONFIG_ENTRIES} secrets"
            )));
        }
        let target = format!("{name}/{key}");
        let entry = audit_for(
            actor,
            tenant,
            "installation.secret.set",
            &target,
            String::new(),
        );
        installs
            .set_secret(tenant, name, default, key, value, entry)
            .await?;
        Ok(installs.view(tenant, name, default))
    }

    /// Removes secret `key` of `tenant`'s installation of `name`.
    pub async fn delete_secret(
        &self,
        tenant: &str,
        name: &str,
        key: &str,
        actor: &str,
    ) -> Result<InstallationView, EngineError> {
        let default = self.install_default(tenant, name)?;
        let installs = &self.inner.plugins.installs;
        let target = format!("{name}/{key}");
        let entry = audit_for(
            actor,
            tenant,
            "installation.secret.delete",
            &target,
            String::new(),
        );
        installs
            .delete_secret(tenant, name, default, key, entry)
            .await?;
        Ok(installs.view(tenant, name, default))
    }

    /// Re-encrypts every secret under a new master key (one transaction),
    /// then makes the new key current. Returns how many secret versions
    /// were re-encrypted.
    pub async fn rotate_master_key(&self, actor: &str) -> Result<usize, EngineError> {
        let entry = audit(actor, "secrets.rotate-master-key", "master key", "");
        self.inner.plugins.installs.rotate_master_key(entry).await
    }
}

#[cfg(feature = "testing")]
impl Engine {
    /// For tests: gives `tenant` (created when missing) an installation of
    /// `plugin` with `config`: keys that look like secrets become secrets,
    /// the rest plain config.
    pub async fn configure_installation(
        &self,
        tenant: &str,
        plugin: &str,
        config: BTreeMap<String, String>,
    ) -> Result<InstallationView, EngineError> {
        if self.live_tenant(tenant)?.is_none() {
            let id = TenantId::parse(tenant).map_err(|e| EngineError::Invalid(e.to_string()))?;
            self.create_tenant(&id, tenant, "test").await?;
        }
        let (secrets, plain): (BTreeMap<_, _>, BTreeMap<_, _>) = config
            .into_iter()
            .partition(|(k, _)| reyna_runtime::is_secret_key(k));
        self.set_installation_config(tenant, plugin, plain, "test")
            .await?;
        for (key, value) in &secrets {
            self.set_secret(tenant, plugin, key, value, "test").await?;
        }
        self.installation(tenant, plugin)
    }
}

/// A config key: what a plugin passes to `config(key)`.
fn check_key(key: &str) -> Result<(), EngineError> {
    let ok = !key.is_empty()
        && key.len() <= 128
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(EngineError::Invalid(format!(
            "`{key}` is not a valid config key: use 1 to 128 letters, digits, `_`, `-` or `.`"
        )))
    }
}
