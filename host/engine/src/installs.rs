//! Installations: a plugin as one tenant runs it. Each (tenant, plugin
//! name) has its own enabled flag, plain config, sealed secrets and health
//! (a circuit breaker), kept in the store and cached here resolved: the
//! config a call sees, secrets opened, with its digest.
//!
//! Secrets are sealed by the [`Vault`] under the master key, bound to
//! (tenant, plugin, name) so a sealed value moved elsewhere does not open.
//! A job holds a [`Lease`] on the secret versions it runs with; rotating a
//! secret keeps an older version in the store until its last lease ends.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use reyna_store::{
    Digest, Installation, InstallationChange, NewAudit, Pause, SecretUse, Store, StoreError,
};
use reyna_vault::Vault;
use serde::Serialize;

use crate::error::EngineError;
use crate::plugins::ConfigKey;

/// An installation as calls use it.
#[derive(Debug)]
pub(crate) struct Resolved {
    /// Whether the tenant runs the plugin (its record, or the default).
    pub enabled: bool,
    /// The stored record, when the tenant has one.
    pub record: Option<Installation>,
    /// Plain values and opened secrets: what `config(key)` returns.
    pub config: Arc<BTreeMap<String, String>>,
    /// Which keys of `config` are secrets.
    pub secret_keys: Arc<BTreeSet<String>>,
    /// Each secret's version in `config`.
    pub versions: BTreeMap<String, u32>,
    /// Keyed digest of `config` (see [`ConfigKey`]).
    pub config_digest: Digest,
}

impl Resolved {
    /// The secret uses of `read` keys, for lineage.
    pub(crate) fn uses(&self, plugin: &str, read: &[String]) -> Vec<SecretUse> {
        read.iter()
            .filter_map(|name| {
                self.versions.get(name).map(|version| SecretUse {
                    plugin: plugin.to_owned(),
                    name: name.clone(),
                    version: *version,
                })
            })
            .collect()
    }

    pub(crate) fn paused(&self) -> Option<&Pause> {
        self.record.as_ref().and_then(|r| r.paused.as_ref())
    }
}

/// One secret as the API shows it: never its value.
#[derive(Debug, Clone, Serialize)]
pub struct SecretView {
    /// Its config key.
    pub name: String,
    /// Whether it has a value now.
    pub set: bool,
    /// The newest version written.
    pub version: u32,
    /// When it last changed (unix ms).
    pub updated_at: u64,
}

/// The installation of a plugin for a tenant, for the API.
#[derive(Debug, Clone, Serialize)]
pub struct InstallationView {
    /// The tenant.
    pub tenant: String,
    /// The plugin name.
    pub plugin: String,
    /// Whether the tenant runs the plugin.
    pub enabled: bool,
    /// Whether the tenant chose (a stored record) or the plugin's install
    /// policy decides.
    pub explicit: bool,
    /// Plain config values; a value under a key that looks like a secret
    /// (`api_key`, `token`, ...) is shown as `[redacted]`: keep such values
    /// as secrets.
    pub config: BTreeMap<String, String>,
    /// The secrets, never their values.
    pub secrets: Vec<SecretView>,
    /// Keyed digest of the config the plugin sees.
    pub config_digest: Digest,
    /// Set while the circuit breaker holds it paused.
    pub paused: Option<Pause>,
}

/// Secret versions a running job uses; dropping it lets a rotated-out
/// version go.
pub(crate) struct Lease {
    installs: Arc<Installs>,
    tenant: String,
    plugin: String,
    versions: Vec<(String, u32)>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.versions.is_empty() {
            return;
        }
        let stale = self
            .installs
            .release(&self.tenant, &self.plugin, &self.versions);
        if stale.is_empty() {
            return;
        }
        let installs = self.installs.clone();
        let (tenant, plugin) = (self.tenant.clone(), self.plugin.clone());
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                for name in stale {
                    if let Err(e) = installs.prune(&tenant, &plugin, &name).await {
                        tracing::warn!(%tenant, %plugin, secret = %name, error = %e, "cannot delete an old secret version");
                    }
                }
            });
        }
    }
}

type Key = (String, String);
/// (tenant, plugin, secret name).
type SecretName = (String, String, String);

pub(crate) struct Installs {
    store: Store,
    vault: RwLock<Vault>,
    config_key: ConfigKey,
    empty_digest: Digest,
    /// tenant → plugin → its installation, looked up by `&str` (no
    /// allocation on the routing and admission paths).
    cache: RwLock<HashMap<String, HashMap<String, Arc<Resolved>>>>,
    /// (tenant, plugin, secret) → version → jobs running with it.
    leases: Mutex<HashMap<SecretName, BTreeMap<u32, usize>>>,
    /// Paused installations with a probe job running.
    probes: Mutex<HashSet<Key>>,
    /// Deleted tenants: their jobs still queued are not run.
    deleted: RwLock<HashSet<String>>,
    /// Secret writes one at a time, so a version's leases are read and
    /// its successor written without another write between.
    writes: tokio::sync::Mutex<()>,
}

/// What seals a secret's value: where it belongs.
fn aad(tenant: &str, plugin: &str, name: &str) -> Vec<u8> {
    format!("reyna-secret\0{tenant}\0{plugin}\0{name}").into_bytes()
}

impl Installs {
    pub(crate) fn new(store: Store, vault: Vault, config_key: ConfigKey) -> Self {
        let empty_digest = config_key.digest(&BTreeMap::new());
        Self {
            store,
            vault: RwLock::new(vault),
            config_key,
            empty_digest,
            cache: RwLock::new(HashMap::new()),
            leases: Mutex::new(HashMap::new()),
            probes: Mutex::new(HashSet::new()),
            deleted: RwLock::new(HashSet::new()),
            writes: tokio::sync::Mutex::new(()),
        }
    }

    /// Loads every stored installation, opening its secrets.
    pub(crate) fn load_all(&self) -> Result<(), EngineError> {
        let mut cache: HashMap<String, HashMap<String, Arc<Resolved>>> = HashMap::new();
        for record in self.store.list_installations(None)? {
            let (tenant, plugin) = (record.tenant.clone(), record.plugin.clone());
            let resolved = Arc::new(self.resolve_record(record)?);
            cache.entry(tenant).or_default().insert(plugin, resolved);
        }
        *self.cache.write().unwrap_or_else(|e| e.into_inner()) = cache;
        let deleted = self
            .store
            .list_tenants()?
            .into_iter()
            .filter(|t| t.deleted_at.is_some())
            .map(|t| t.id)
            .collect();
        *self.deleted.write().unwrap_or_else(|e| e.into_inner()) = deleted;
        Ok(())
    }

    /// Whether `tenant` was deleted (its queued jobs are dead-lettered, not run).
    pub(crate) fn tenant_deleted(&self, tenant: &str) -> bool {
        self.deleted
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(tenant)
    }

    fn resolve_record(&self, record: Installation) -> Result<Resolved, EngineError> {
        let mut config = record.config.clone();
        let mut secret_keys = BTreeSet::new();
        let mut versions = BTreeMap::new();
        for (name, state) in record.secrets.iter().filter(|(_, s)| s.set) {
            let sealed = self
                .store
                .get_secret(&record.tenant, &record.plugin, name, state.version)?
                .ok_or_else(|| {
                    EngineError::Internal(format!(
                        "secret `{name}` v{} of {}'s installation of {} is missing",
                        state.version, record.tenant, record.plugin
                    ))
                })?;
            let value = self
                .vault
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .unseal(&aad(&record.tenant, &record.plugin, name), &sealed)
                .map_err(|e| {
                    EngineError::Internal(format!(
                        "cannot open secret `{name}` of {}'s installation of {}: {e}",
                        record.tenant, record.plugin
                    ))
                })?;
            let value = String::from_utf8(value).map_err(|_| {
                EngineError::Internal(format!("secret `{name}` is not UTF-8 once opened"))
            })?;
            config.insert(name.clone(), value);
            secret_keys.insert(name.clone());
            versions.insert(name.clone(), state.version);
        }
        let config_digest = self.config_key.digest(&config);
        Ok(Resolved {
            enabled: record.enabled,
            record: Some(record),
            config: Arc::new(config),
            secret_keys: Arc::new(secret_keys),
            versions,
            config_digest,
        })
    }

    /// The installation of `plugin` for `tenant`; without a record, enabled
    /// as `default_enabled` says, with no config.
    pub(crate) fn resolve(
        &self,
        tenant: &str,
        plugin: &str,
        default_enabled: bool,
    ) -> Arc<Resolved> {
        if let Some(found) = self.cached(tenant, plugin) {
            return found;
        }
        Arc::new(Resolved {
            enabled: default_enabled,
            record: None,
            config: Arc::default(),
            secret_keys: Arc::default(),
            versions: BTreeMap::new(),
            config_digest: self.empty_digest,
        })
    }

    fn cached(&self, tenant: &str, plugin: &str) -> Option<Arc<Resolved>> {
        self.cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(tenant)
            .and_then(|plugins| plugins.get(plugin))
            .cloned()
    }

    /// Whether `tenant` runs `plugin` (routing's question; no allocation).
    pub(crate) fn enabled(&self, tenant: &str, plugin: &str, default_enabled: bool) -> bool {
        self.cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(tenant)
            .and_then(|plugins| plugins.get(plugin))
            .map_or(default_enabled, |found| found.enabled)
    }

    /// The view of an installation for the API.
    pub(crate) fn view(
        &self,
        tenant: &str,
        plugin: &str,
        default_enabled: bool,
    ) -> InstallationView {
        let resolved = self.resolve(tenant, plugin, default_enabled);
        let record = resolved.record.clone();
        let config = record
            .as_ref()
            .map(|r| {
                r.config
                    .iter()
                    .map(|(k, v)| {
                        let shown = if reyna_runtime::is_secret_key(k) {
                            reyna_runtime::REDACTED.to_owned()
                        } else {
                            v.clone()
                        };
                        (k.clone(), shown)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let secrets = record
            .as_ref()
            .map(|r| {
                r.secrets
                    .iter()
                    .map(|(name, s)| SecretView {
                        name: name.clone(),
                        set: s.set,
                        version: s.version,
                        updated_at: s.updated_at,
                    })
                    .collect()
            })
            .unwrap_or_default();
        InstallationView {
            tenant: tenant.to_owned(),
            plugin: plugin.to_owned(),
            enabled: resolved.enabled,
            explicit: record.is_some(),
            config,
            secrets,
            config_digest: resolved.config_digest,
            paused: record.and_then(|r| r.paused),
        }
    }

    /// Applies a change in the store and refreshes the cache from what was
    /// stored.
    pub(crate) async fn change(
        &self,
        tenant: &str,
        plugin: &str,
        default_enabled: bool,
        change: InstallationChange,
        audit: Option<NewAudit>,
    ) -> Result<Arc<Resolved>, EngineError> {
        let record = self
            .store
            .update_installation(tenant, plugin, default_enabled, change, audit)
            .await
            .map_err(|e| match e {
                StoreError::TenantNotFound { id } => EngineError::TenantNotFound(id),
                StoreError::SecretNotFound { plugin, name } => {
                    EngineError::NotFound(format!("secret `{name}` of plugin {plugin}"))
                }
                other => other.into(),
            })?;
        let resolved = Arc::new(self.resolve_record(record)?);
        self.cache
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(tenant.to_owned())
            .or_default()
            .insert(plugin.to_owned(), resolved.clone());
        Ok(resolved)
    }

    /// Seals `value` and writes it as the secret's next version; versions
    /// still leased by running jobs are kept.
    pub(crate) async fn set_secret(
        &self,
        tenant: &str,
        plugin: &str,
        default_enabled: bool,
        name: &str,
        value: &str,
        audit: NewAudit,
    ) -> Result<Arc<Resolved>, EngineError> {
        let _one = self.writes.lock().await;
        let sealed = self
            .vault
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .seal(&aad(tenant, plugin, name), value.as_bytes())
            .map_err(|e| EngineError::Internal(format!("cannot seal the secret: {e}")))?;
        let change = |keep| InstallationChange::SetSecret {
            name: name.to_owned(),
            sealed,
            keep,
        };
        self.write_secret(tenant, plugin, default_enabled, name, change, audit)
            .await
    }

    /// Writes a change to secret `name`, keeping the versions running jobs
    /// lease, then prunes the ones whose jobs ended meanwhile (their leases
    /// saw the old version as current and left it). Holds `writes`.
    async fn write_secret(
        &self,
        tenant: &str,
        plugin: &str,
        default_enabled: bool,
        name: &str,
        change: impl FnOnce(Vec<u32>) -> InstallationChange,
        audit: NewAudit,
    ) -> Result<Arc<Resolved>, EngineError> {
        let kept = self.leased(tenant, plugin, name);
        let resolved = self
            .change(
                tenant,
                plugin,
                default_enabled,
                change(kept.clone()),
                Some(audit),
            )
            .await?;
        let leased = self.leased(tenant, plugin, name);
        if !kept.iter().all(|v| leased.contains(v)) {
            self.prune_to(tenant, plugin, name, leased).await?;
        }
        Ok(resolved)
    }

    /// Deletes the versions of secret `name` that are neither current nor
    /// in `keep`. Pruning changes no version a call sees; the cache stays.
    async fn prune_to(
        &self,
        tenant: &str,
        plugin: &str,
        name: &str,
        keep: Vec<u32>,
    ) -> Result<(), EngineError> {
        let change = InstallationChange::PruneSecret {
            name: name.to_owned(),
            keep,
        };
        self.store
            .update_installation(tenant, plugin, false, change, None)
            .await?;
        Ok(())
    }

    /// Removes a secret's value (versions still leased are kept).
    pub(crate) async fn delete_secret(
        &self,
        tenant: &str,
        plugin: &str,
        default_enabled: bool,
        name: &str,
        audit: NewAudit,
    ) -> Result<Arc<Resolved>, EngineError> {
        let _one = self.writes.lock().await;
        let change = |keep| InstallationChange::DeleteSecret {
            name: name.to_owned(),
            keep,
        };
        self.write_secret(tenant, plugin, default_enabled, name, change, audit)
            .await
    }

    fn leased(&self, tenant: &str, plugin: &str, name: &str) -> Vec<u32> {
        self.leases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(tenant.to_owned(), plugin.to_owned(), name.to_owned()))
            .map(|v| v.keys().copied().collect())
            .unwrap_or_default()
    }

    /// Deletes the versions of a secret no job uses any more.
    async fn prune(&self, tenant: &str, plugin: &str, name: &str) -> Result<(), EngineError> {
        let _one = self.writes.lock().await;
        let keep = self.leased(tenant, plugin, name);
        self.prune_to(tenant, plugin, name, keep).await
    }

    /// Leases the secret versions of `resolved` for one job.
    pub(crate) fn lease(
        self: &Arc<Self>,
        tenant: &str,
        plugin: &str,
        resolved: &Resolved,
    ) -> Lease {
        let versions: Vec<(String, u32)> = resolved
            .versions
            .iter()
            .map(|(name, v)| (name.clone(), *v))
            .collect();
        if !versions.is_empty() {
            let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
            for (name, version) in &versions {
                *leases
                    .entry((tenant.to_owned(), plugin.to_owned(), name.clone()))
                    .or_default()
                    .entry(*version)
                    .or_default() += 1;
            }
        }
        Lease {
            installs: self.clone(),
            tenant: tenant.to_owned(),
            plugin: plugin.to_owned(),
            versions,
        }
    }

    /// Ends leases; returns the secrets whose last lease on a version that
    /// is no longer current just ended.
    fn release(&self, tenant: &str, plugin: &str, versions: &[(String, u32)]) -> Vec<String> {
        // The leases end first, the current version is read after: a secret
        // write that lands between them sees these versions unleased once
        // its cache update is done (`set_secret`), so either side prunes.
        let mut ended = Vec::new();
        let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        for (name, version) in versions {
            let key = (tenant.to_owned(), plugin.to_owned(), name.clone());
            let Some(counts) = leases.get_mut(&key) else {
                continue;
            };
            if let Some(n) = counts.get_mut(version) {
                *n -= 1;
                if *n == 0 {
                    counts.remove(version);
                    ended.push((name.clone(), *version));
                }
            }
            if counts.is_empty() {
                leases.remove(&key);
            }
        }
        drop(leases);
        let current = self.resolve(tenant, plugin, false);
        ended
            .into_iter()
            .filter(|(name, version)| current.versions.get(name) != Some(version))
            .map(|(name, _)| name)
            .collect()
    }

    /// Marks a probe of a paused installation as running; false when one
    /// already is.
    pub(crate) fn start_probe(&self, tenant: &str, plugin: &str) -> bool {
        self.probes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((tenant.to_owned(), plugin.to_owned()))
    }

    pub(crate) fn end_probe(&self, tenant: &str, plugin: &str) {
        self.probes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(tenant.to_owned(), plugin.to_owned()));
    }

    /// Drops a deleted tenant's installations from the cache; its jobs
    /// still queued will not run.
    pub(crate) fn forget_tenant(&self, tenant: &str) {
        self.deleted
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tenant.to_owned());
        self.cache
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(tenant);
    }

    /// Re-encrypts every secret under a new master key, in one store
    /// transaction between writing the new key file and making it current.
    pub(crate) async fn rotate_master_key(&self, audit: NewAudit) -> Result<usize, EngineError> {
        let _one = self.writes.lock().await;
        let rotation = self
            .vault
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .begin_rotation()
            .map_err(|e| EngineError::Conflict(format!("cannot rotate the master key: {e}")))?;
        let mut values = Vec::new();
        let mut failed = None;
        for (key, sealed) in self.store.list_sealed_secrets()? {
            match rotation.reseal(&aad(&key.0, &key.1, &key.2), &sealed) {
                Ok(new) => values.push((key, sealed, new)),
                Err(e) => {
                    failed = Some(EngineError::Internal(format!(
                        "cannot re-encrypt secret {}/{}/{} v{}: {e}",
                        key.0, key.1, key.2, key.3
                    )));
                    break;
                }
            }
        }
        let resealed = match failed {
            Some(e) => Err(e),
            None => self.store.reseal_secrets(values).await.map_err(Into::into),
        };
        let count = match resealed {
            Ok(count) => count,
            Err(e) => {
                if let Err(abandon) = rotation.abandon() {
                    tracing::error!(error = %abandon, "cannot remove the unused new master key");
                }
                return Err(e);
            }
        };
        let vault = rotation.finish().map_err(|e| {
            EngineError::Internal(format!(
                "the secrets are re-encrypted but the new master key could not be made current: {e}; restart the host to finish"
            ))
        })?;
        let key_id = vault.key_id().to_string();
        *self.vault.write().unwrap_or_else(|e| e.into_inner()) = vault;
        let mut entry = audit;
        entry.detail = format!("{count} secret versions re-encrypted under key {key_id}");
        self.store.append_audit(entry).await?;
        Ok(count)
    }
}
