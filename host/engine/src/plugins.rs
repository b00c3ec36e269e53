//! The plugin registry and the routing index.
//!
//! Plugins are loaded (compiled or read from the artifact cache) once and kept
//! with their resolved config. Routing is indexed by input schema: for each
//! enabled plugin and each of its input schemas that one of its subscriptions
//! matches, the plugin is listed under that schema, so routing a blob is one
//! map lookup however many plugins are registered.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};

use reyna_manifest::{Kind, Manifest, Subject};
use reyna_runtime::{LoadError, Plugin, Runtime};
use reyna_store::{
    Digest, InstallPolicy, JobSpec, NewAudit, Pause, PluginChange, PluginRecord, Store, StoreError,
};
use reyna_types::PluginRef;
use serde::Serialize;

use crate::error::EngineError;
use crate::installs::Installs;
use crate::schemas::SchemaRegistry;

/// A plugin version as the engine holds it.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub record: PluginRecord,
    pub manifest: Manifest,
    pub plugin: Plugin,
}

impl Loaded {
    pub(crate) fn id(&self) -> PluginRef {
        PluginRef::new(&self.record.name, &self.record.version)
    }

    /// Whether `tenant` runs this plugin when its installation has no
    /// record; `None` when the tenant may not see it at all (another
    /// tenant's own plugin).
    pub(crate) fn default_for(&self, tenant: &str) -> Option<bool> {
        match &self.record.owner {
            Some(owner) => (owner == tenant).then_some(true),
            None => Some(self.record.install == InstallPolicy::All),
        }
    }
}

/// Counters of one plugin version since the host started.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PluginStats {
    /// Calls run (reuses of a stored result are not calls).
    pub calls: u64,
    /// Calls that produced outputs.
    pub succeeded: u64,
    /// Calls that failed, whatever happened next.
    pub failed: u64,
    /// Failures scheduled for another attempt.
    pub retried: u64,
    /// Jobs sent to the dead letters.
    pub dead_lettered: u64,
    /// Jobs completed from a stored result without running.
    pub reused: u64,
    /// Sum of call wall times, microseconds.
    pub total_wall_us: u64,
    /// Why the circuit breaker paused the tenant's installation, while it is paused.
    pub paused_reason: Option<String>,
}

impl PluginStats {
    fn add(&mut self, other: &PluginStats) {
        self.calls += other.calls;
        self.succeeded += other.succeeded;
        self.failed += other.failed;
        self.retried += other.retried;
        self.dead_lettered += other.dead_lettered;
        self.reused += other.reused;
        self.total_wall_us += other.total_wall_us;
    }
}

/// A plugin version with its state and counters, for listings.
#[derive(Debug, Clone, Serialize)]
pub struct PluginView {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Processor or effect.
    pub kind: Kind,
    /// Whether it receives events.
    pub enabled: bool,
    /// Digest of the component.
    pub digest: Digest,
    /// The manifest.
    pub manifest: Manifest,
    /// The tenant whose own plugin it is; `None` for a global plugin.
    pub owner: Option<String>,
    /// Which tenants a global plugin is installed for by default.
    pub install: InstallPolicy,
    /// For a tenant's view: whether the tenant runs it (its installation).
    pub installed: Option<bool>,
    /// Upload time, unix ms.
    pub created_at: u64,
    /// Counters since start: the tenant's own, or every tenant's for the operator.
    pub stats: PluginStats,
}

#[derive(Default)]
struct State {
    versions: HashMap<(String, String), Arc<Loaded>>,
    routes: HashMap<String, Vec<Arc<Loaded>>>,
}

/// Calls counted per (tenant, plugin name, version).
type StatsKey = (String, String, String);

pub(crate) struct PluginRegistry {
    store: Store,
    runtime: Runtime,
    /// Each tenant's installations.
    pub(crate) installs: Arc<Installs>,
    state: RwLock<State>,
    stats: Mutex<HashMap<StatsKey, PluginStats>>,
    /// The breaker's window per (tenant, plugin name): recent calls, true
    /// for a success; only the plugin's faults count as failures.
    recent: Mutex<HashMap<(String, String), VecDeque<bool>>>,
}

/// The key of [`ConfigKey::digest`]: 32 random bytes made once per
/// installation and kept in the data directory, readable by the host only.
pub(crate) struct ConfigKey([u8; 32]);

/// File name of the [`ConfigKey`] in the data directory.
pub(crate) const CONFIG_KEY_FILE: &str = "config-digest.key";

impl ConfigKey {
    /// Reads the key in `data_dir`, or makes it (mode 0600) when there is
    /// none. A key file that is not 64 hex digits is an error, never
    /// silently replaced: every recorded `config_digest` depends on it.
    pub(crate) fn load_or_create(data_dir: &std::path::Path) -> Result<Self, EngineError> {
        let path = data_dir.join(CONFIG_KEY_FILE);
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            EngineError::Internal(format!("{what} {}: {e}", path.display()))
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let mut key = [0u8; 32];
                hex::decode_to_slice(text.trim(), &mut key)
                    .map_err(|e| fail("malformed config-digest key in", &e))?;
                return Ok(Self(key));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(fail("cannot read", &e)),
        }
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| fail("no randomness for", &e))?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let written = options.open(&path).and_then(|mut file| {
            use std::io::Write;
            file.write_all(hex::encode(key).as_bytes())?;
            file.sync_all()
        });
        match written {
            Ok(()) => Ok(Self(key)),
            // Another host process on the same directory made it first.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Self::load_or_create(data_dir)
            }
            Err(e) => Err(fail("cannot write", &e)),
        }
    }

    /// HMAC-SHA256 of the config under this key: the same config always
    /// gives the same digest on this installation (lineage and stored
    /// results can tell configs apart), but a reader who sees the digest
    /// cannot confirm a guessed secret without the key.
    pub(crate) fn digest(&self, config: &BTreeMap<String, String>) -> Digest {
        use hmac::Mac;
        let text = serde_json::to_string(config).unwrap_or_default();
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(text.as_bytes());
        Digest::from_bytes(mac.finalize().into_bytes().into())
    }
}

/// The audit entry of an action on a plugin version (about `tenant`, or
/// the platform).
fn audit_of(
    actor: &str,
    action: &str,
    name: &str,
    version: &str,
    tenant: Option<&str>,
) -> NewAudit {
    NewAudit {
        actor: actor.to_owned(),
        tenant: tenant.map(str::to_owned),
        action: action.to_owned(),
        target: PluginRef::new(name, version).to_string(),
        ..NewAudit::default()
    }
}

/// What the pause policy looks at.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PausePolicy {
    pub window: usize,
    pub min_calls: usize,
    pub failure_ratio: f64,
}

impl PluginRegistry {
    pub(crate) fn new(store: Store, runtime: Runtime, installs: Arc<Installs>) -> Self {
        Self {
            store,
            runtime,
            installs,
            state: RwLock::new(State::default()),
            stats: Mutex::new(HashMap::new()),
            recent: Mutex::new(HashMap::new()),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn load_record(&self, record: PluginRecord, bytes: &[u8]) -> Result<Loaded, EngineError> {
        let plugin = self
            .runtime
            .load(bytes)
            .map_err(|e| EngineError::PluginLoad {
                plugin: format!("{}@{}", record.name, record.version),
                reason: e.to_string(),
            })?;
        let manifest = plugin.manifest().clone();
        Ok(Loaded {
            record,
            manifest,
            plugin,
        })
    }

    /// Loads every stored plugin (from the artifact cache when possible).
    pub(crate) fn load_all(&self) -> Result<Vec<String>, EngineError> {
        let mut state = State::default();
        let mut problems = Vec::new();
        for record in self.store.list_plugins()? {
            let id = format!("{}@{}", record.name, record.version);
            let Some(bytes) = self.store.get_component(&record.digest)? else {
                problems.push(format!("{id}: component {} is missing", record.digest));
                continue;
            };
            match self.load_record(record, &bytes) {
                Ok(loaded) => {
                    let key = (loaded.record.name.clone(), loaded.record.version.clone());
                    state.versions.insert(key, Arc::new(loaded));
                }
                Err(e) => problems.push(e.to_string()),
            }
        }
        state.routes = build_routes(&state.versions);
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = state;
        Ok(problems)
    }

    /// Registers a plugin from its component bytes; see [`crate::Engine::upload_plugin`].
    pub(crate) async fn upload(
        &self,
        schemas: &SchemaRegistry,
        bytes: Vec<u8>,
        owner: Option<&str>,
        install: InstallPolicy,
        actor: &str,
    ) -> Result<(PluginView, bool), EngineError> {
        let info = reyna_manifest::inspect(&bytes)?;
        let manifest = info.manifest;
        let id = manifest.id();
        // Effects reach the network: only the operator installs them.
        if owner.is_some() && manifest.kind == Kind::Effect {
            return Err(EngineError::Forbidden(format!(
                "plugin {id} is an effect; only the operator uploads effects (they reach the network)"
            )));
        }
        let digest = Digest::of(&bytes);
        let version = manifest.version.to_string();
        let scope = owner;
        if let Some(existing) = self.store.get_plugin(&manifest.name, &version)? {
            if existing.owner.as_deref() != owner {
                return Err(EngineError::PluginNameTaken(manifest.name.clone()));
            }
            if existing.digest == digest {
                let view = self
                    .view(&manifest.name, &version, scope)
                    .ok_or_else(|| EngineError::PluginNotFound(id.clone()))?;
                return Ok((view, false));
            }
            return Err(EngineError::PluginConflict {
                plugin: id,
                existing: existing.digest,
            });
        }
        for (field, list) in [("inputs", &manifest.inputs), ("outputs", &manifest.outputs)] {
            for schema in list.iter() {
                if !schemas.exists(schema.as_str()) {
                    return Err(EngineError::PluginUnknownSchema {
                        plugin: id,
                        field,
                        schema: schema.to_string(),
                    });
                }
            }
        }
        for effect in &manifest.effects {
            let known = self
                .read()
                .versions
                .values()
                .any(|p| &p.record.name == effect && p.manifest.kind == Kind::Effect);
            if !known {
                return Err(EngineError::PluginUnknownEffect {
                    plugin: id,
                    effect: effect.clone(),
                });
            }
        }
        let record = PluginRecord {
            name: manifest.name.clone(),
            version: version.clone(),
            manifest_toml: manifest.to_toml(),
            digest,
            enabled: true,
            config: BTreeMap::new(),
            created_at: reyna_store::now_ms(),
            owner: owner.map(str::to_owned),
            install,
        };
        // Compile (or read the cached artifact) before storing anything, so a
        // component that does not load leaves no trace.
        let runtime = self.runtime.clone();
        let compile_bytes = bytes.clone();
        let plugin = tokio::task::spawn_blocking(move || runtime.load(&compile_bytes))
            .await
            .map_err(|e| EngineError::Internal(format!("compile task failed: {e}")))?
            .map_err(|e| {
                let (plugin, reason) = (id.clone(), e.to_string());
                match e {
                    LoadError::TooExpensive(_) | LoadError::CompileTimeout { .. } => {
                        EngineError::PluginTooExpensive { plugin, reason }
                    }
                    LoadError::CompileBusy { .. } => EngineError::CompileBusy { plugin, reason },
                    _ => EngineError::PluginLoad { plugin, reason },
                }
            })?;
        // One transaction: the component, the record, the name's other
        // versions disabled (one live version per name) and the audit entry.
        let change = self
            .store
            .install_plugin(record, bytes, {
                let mut entry = audit_of(actor, "plugin.upload", &manifest.name, &version, owner);
                entry.detail = match owner {
                    Some(owner) => format!("{owner}'s own plugin"),
                    None => format!("global, installed for {} tenants", install.as_str()),
                };
                entry
            })
            .await
            .map_err(|e| match e {
                StoreError::PluginNameTaken { name } => EngineError::PluginNameTaken(name),
                StoreError::TenantNotFound { id } => EngineError::TenantNotFound(id),
                // Another upload of this name@version won the race.
                StoreError::PluginConflict { .. } => EngineError::PluginConflict {
                    plugin: id.clone(),
                    existing: self
                        .store
                        .get_plugin(&manifest.name, &version)
                        .ok()
                        .flatten()
                        .map(|r| r.digest)
                        .unwrap_or_default(),
                },
                other => other.into(),
            })?;
        if change.changed {
            let loaded = Loaded {
                manifest: plugin.manifest().clone(),
                record: change.record.clone(),
                plugin,
            };
            self.apply(Some(loaded), &change);
        }
        let view = self
            .view(&manifest.name, &version, scope)
            .ok_or_else(|| EngineError::PluginNotFound(id))?;
        Ok((view, change.changed))
    }

    /// Brings the in-memory registry in line with a committed change: a
    /// newly loaded version, or the changed record, and the versions it
    /// disabled; routes are rebuilt once.
    fn apply(&self, loaded: Option<Loaded>, change: &PluginChange) {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        if let Some(loaded) = loaded {
            let key = (loaded.record.name.clone(), loaded.record.version.clone());
            state.versions.insert(key, Arc::new(loaded));
        }
        for record in std::iter::once(&change.record).chain(&change.disabled) {
            let key = (record.name.clone(), record.version.clone());
            if let Some(old) = state.versions.get(&key) {
                let loaded = Loaded {
                    manifest: old.manifest.clone(),
                    plugin: old.plugin.clone(),
                    record: record.clone(),
                };
                state.versions.insert(key, Arc::new(loaded));
            }
        }
        state.routes = build_routes(&state.versions);
    }

    /// Enables or disables a version; enabling one disables the other versions
    /// of the same name, so one version per name is live.
    pub(crate) async fn set_enabled(
        &self,
        name: &str,
        version: &str,
        enabled: bool,
        actor: &str,
    ) -> Result<(), EngineError> {
        let action = if enabled {
            "plugin.enable"
        } else {
            "plugin.disable"
        };
        let id = format!("{name}@{version}");
        let Some(p) = self.get(name, version) else {
            return Err(EngineError::PluginNotFound(id));
        };
        let entry = audit_of(actor, action, name, version, p.record.owner.as_deref());
        let change = self
            .store
            .set_plugin_enabled(name, version, enabled, entry)
            .await?;
        self.apply(None, &change);
        Ok(())
    }

    /// Clears a version's pre-installation config once it has moved into
    /// the tenants' installations.
    pub(crate) async fn clear_legacy_config(
        &self,
        name: &str,
        version: &str,
        detail: String,
    ) -> Result<(), EngineError> {
        let mut entry = audit_of("system", "plugin.config.migrate", name, version, None);
        entry.detail = detail;
        let record = self
            .store
            .set_plugin_config(name, version, BTreeMap::new(), entry)
            .await?;
        self.apply(
            None,
            &PluginChange {
                record,
                disabled: Vec::new(),
                changed: true,
            },
        );
        Ok(())
    }

    pub(crate) fn get(&self, name: &str, version: &str) -> Option<Arc<Loaded>> {
        self.read()
            .versions
            .get(&(name.to_owned(), version.to_owned()))
            .cloned()
    }

    /// The plugin version `name@version` as `scope` sees it: `None` for the
    /// operator (everything), or a tenant (global plugins and its own).
    pub(crate) fn get_visible(
        &self,
        name: &str,
        version: &str,
        scope: Option<&str>,
    ) -> Option<Arc<Loaded>> {
        self.get(name, version)
            .filter(|p| scope.is_none_or(|t| p.default_for(t).is_some()))
    }

    /// The enabled version of effect `name`.
    pub(crate) fn enabled_effect(&self, name: &str) -> Option<Arc<Loaded>> {
        self.read()
            .versions
            .values()
            .find(|p| p.record.name == name && p.record.enabled && p.manifest.kind == Kind::Effect)
            .cloned()
    }

    /// Jobs for a new blob of `schema` of `tenant`: one per enabled plugin
    /// routed to it that the tenant runs (its installation).
    pub(crate) fn route(&self, schema: &str, tenant: &str) -> Vec<JobSpec> {
        let subject = format!("blob.created.{schema}");
        self.read()
            .routes
            .get(schema)
            .map(|plugins| {
                plugins
                    .iter()
                    .filter(|p| {
                        p.default_for(tenant).is_some_and(|default| {
                            self.installs.enabled(tenant, &p.record.name, default)
                        })
                    })
                    .map(|p| JobSpec {
                        plugin: p.record.name.clone(),
                        version: p.record.version.clone(),
                        subject: subject.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A version as `scope` sees it (`None`: the operator).
    pub(crate) fn view(
        &self,
        name: &str,
        version: &str,
        scope: Option<&str>,
    ) -> Option<PluginView> {
        let loaded = self.get_visible(name, version, scope)?;
        Some(self.view_of(&loaded, scope))
    }

    fn view_of(&self, p: &Loaded, scope: Option<&str>) -> PluginView {
        let (name, version) = (&p.record.name, &p.record.version);
        let mut stats = PluginStats::default();
        for ((tenant, n, v), s) in self.stats.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            if n == name && v == version && scope.is_none_or(|t| t == tenant) {
                stats.add(s);
            }
        }
        let installed = scope.and_then(|tenant| {
            let default = p.default_for(tenant)?;
            let install = self.installs.resolve(tenant, name, default);
            stats.paused_reason = install.paused().map(|pause| pause.reason.clone());
            Some(install.enabled)
        });
        PluginView {
            name: name.clone(),
            version: version.clone(),
            kind: p.manifest.kind,
            enabled: p.record.enabled,
            digest: p.record.digest,
            manifest: p.manifest.clone(),
            owner: p.record.owner.clone(),
            install: p.record.install,
            installed,
            created_at: p.record.created_at,
            stats,
        }
    }

    /// Every version `scope` sees, sorted by name then upload time.
    pub(crate) fn list(&self, scope: Option<&str>) -> Vec<PluginView> {
        let mut all: Vec<Arc<Loaded>> = self
            .read()
            .versions
            .values()
            .filter(|p| scope.is_none_or(|t| p.default_for(t).is_some()))
            .cloned()
            .collect();
        all.sort_by(|a, b| {
            (&a.record.name, a.record.created_at).cmp(&(&b.record.name, b.record.created_at))
        });
        all.iter().map(|p| self.view_of(p, scope)).collect()
    }

    /// Every live plugin name (any version), with its owner and install
    /// default for `tenant`, or `None` when the tenant may not see it.
    pub(crate) fn default_for_name(&self, name: &str, tenant: &str) -> Option<Option<bool>> {
        let state = self.read();
        let mut found = None;
        for p in state.versions.values().filter(|p| p.record.name == name) {
            found = Some(p.default_for(tenant));
            if p.record.enabled {
                break;
            }
        }
        found
    }

    /// Records a call's outcome for `tenant`'s installation; returns a
    /// pause reason when its recent calls mostly failed by the plugin's
    /// fault (a `retryable` the plugin returned, or the input's fault,
    /// never counts).
    pub(crate) fn record(
        &self,
        tenant: &str,
        p: &Loaded,
        outcome: Outcome,
        wall_us: u64,
        policy: PausePolicy,
    ) -> Option<String> {
        let key = (
            tenant.to_owned(),
            p.record.name.clone(),
            p.record.version.clone(),
        );
        let counts_for_pause = {
            let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
            let s = stats.entry(key).or_default();
            let counts = match outcome {
                Outcome::Reused => {
                    s.reused += 1;
                    return None;
                }
                Outcome::Succeeded => {
                    s.calls += 1;
                    s.succeeded += 1;
                    Some(true)
                }
                // The input's fault, not the plugin's.
                Outcome::InputRejected => {
                    s.calls += 1;
                    s.failed += 1;
                    s.dead_lettered += 1;
                    None
                }
                Outcome::Retried { fault } => {
                    s.calls += 1;
                    s.failed += 1;
                    s.retried += 1;
                    fault.then_some(false)
                }
                Outcome::DeadLettered { fault } => {
                    s.calls += 1;
                    s.failed += 1;
                    s.dead_lettered += 1;
                    fault.then_some(false)
                }
            };
            s.total_wall_us += wall_us;
            counts
        };
        let ok = counts_for_pause?;
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let window = recent
            .entry((tenant.to_owned(), p.record.name.clone()))
            .or_default();
        window.push_back(ok);
        while window.len() > policy.window {
            window.pop_front();
        }
        let failures = window.iter().filter(|ok| !**ok).count();
        if window.len() >= policy.min_calls
            && failures as f64 >= policy.failure_ratio * window.len() as f64
        {
            let reason = format!("{failures} of its last {} calls failed", window.len());
            window.clear();
            return Some(reason);
        }
        None
    }

    /// Forgets the breaker's window of an installation (it resumed).
    pub(crate) fn reset_window(&self, tenant: &str, name: &str) {
        self.recent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(tenant.to_owned(), name.to_owned()));
    }
}

/// The pause of an installation whose probe failed, or whose calls
/// failed: the wait before the next probe doubles each time, up to `max`.
pub(crate) fn next_pause(
    previous: Option<&Pause>,
    reason: String,
    version: &str,
    first: std::time::Duration,
    max: std::time::Duration,
) -> Pause {
    let now = reyna_store::now_ms();
    let backoff_ms = match previous {
        Some(p) => p.backoff_ms.saturating_mul(2),
        None => first.as_millis() as u64,
    }
    .min(max.as_millis() as u64)
    .max(1);
    Pause {
        reason,
        version: version.to_owned(),
        since: previous.map_or(now, |p| p.since),
        probe_at: now + backoff_ms,
        backoff_ms,
    }
}

/// What became of one job, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Succeeded,
    Reused,
    /// `fault`: the plugin's fault (a trap, a timeout, a fatal error...),
    /// not a `retryable` it returned or the host's.
    Retried {
        fault: bool,
    },
    DeadLettered {
        fault: bool,
    },
    InputRejected,
}

impl Outcome {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Reused => "reused",
            Outcome::Retried { .. } => "retried",
            Outcome::DeadLettered { .. } => "dead_lettered",
            Outcome::InputRejected => "input_rejected",
        }
    }
}

fn build_routes(
    versions: &HashMap<(String, String), Arc<Loaded>>,
) -> HashMap<String, Vec<Arc<Loaded>>> {
    let mut routes: HashMap<String, Vec<Arc<Loaded>>> = HashMap::new();
    let mut enabled: Vec<&Arc<Loaded>> = versions.values().filter(|p| p.record.enabled).collect();
    enabled.sort_by(|a, b| a.record.name.cmp(&b.record.name));
    for p in enabled {
        for schema in &p.manifest.inputs {
            let subject = Subject::blob_created(schema.as_str());
            if p.manifest
                .subscribes
                .iter()
                .any(|pattern| pattern.matches(&subject))
            {
                routes
                    .entry(schema.to_string())
                    .or_default()
                    .push(Arc::clone(p));
            }
        }
    }
    routes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(secret: &str) -> BTreeMap<String, String> {
        BTreeMap::from([("api_key".to_owned(), secret.to_owned())])
    }

    #[test]
    fn the_config_digest_is_keyed_per_installation_and_stable_within_one() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let key_a = ConfigKey::load_or_create(a.path()).unwrap();
        let key_b = ConfigKey::load_or_create(b.path()).unwrap();
        let guess = config("sk-guess");
        // Identifies a config on this installation...
        assert_eq!(key_a.digest(&guess), key_a.digest(&config("sk-guess")));
        assert_ne!(key_a.digest(&guess), key_a.digest(&config("sk-other")));
        // ...but a guess hashed without the key confirms nothing.
        let unkeyed = Digest::of(serde_json::to_string(&guess).unwrap().as_bytes());
        assert_ne!(key_a.digest(&guess), unkeyed);
        assert_ne!(key_a.digest(&guess), key_b.digest(&guess));
        // The key is kept: reopening gives the same digests.
        let again = ConfigKey::load_or_create(a.path()).unwrap();
        assert_eq!(again.digest(&guess), key_a.digest(&guess));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(a.path().join(CONFIG_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "only the host reads the key");
        }
    }

    #[test]
    fn a_damaged_key_file_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG_KEY_FILE), "not hex").unwrap();
        let Err(e) = ConfigKey::load_or_create(dir.path()) else {
            panic!("a damaged key must not be replaced");
        };
        assert!(e.to_string().contains("malformed config-digest key"), "{e}");
    }
}
