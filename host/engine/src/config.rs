//! How the engine runs: sizes, limits, retry policy, the outbound policy of
//! effects and remote execution.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use reyna_runtime::RuntimeConfig;

use crate::remote::RemoteConfig;

/// How the engine runs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Where `reyna.redb` and the compiled-artifact cache live.
    pub data_dir: PathBuf,
    /// Sandbox settings; `cache_dir` defaults to `<data_dir>/artifacts`.
    pub runtime: RuntimeConfig,
    /// Jobs run at once. Up to 8 times as many are claimed ahead (held in
    /// memory, durable as running in the store), so the commit that claims
    /// the next jobs overlaps with running the current ones.
    pub workers: usize,
    /// Jobs claimed per store round trip.
    pub claim_batch: usize,
    /// Derivation depth at which a job is dead-lettered (stops cycles).
    pub max_hops: u32,
    /// Most derived blobs one ingested blob's tree of derivations may hold
    /// (bounds its breadth as `max_hops` bounds its depth). A job whose tree
    /// is full, or whose outputs would pass the budget, is dead-lettered
    /// with a `tree-budget` reason and stores nothing.
    pub max_tree_blobs: u64,
    /// Largest blob accepted, in bytes.
    pub max_blob_bytes: usize,
    /// Most parents one blob may name (a derived blob's input counts too).
    pub max_parents: usize,
    /// The store's page cache, in bytes (most of the store's memory once the
    /// database outgrows it).
    pub store_cache_bytes: usize,
    /// First retry delay; doubles per attempt, with jitter.
    pub backoff_base: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// Most blobs one `query-blobs` returns.
    pub max_query_results: usize,
    /// Most blobs one `query-blobs` scans.
    pub max_query_scan: usize,
    /// Most bytes of blob data one `query-blobs` returns; a query whose
    /// matches hold more fails with `fatal` (nothing is returned).
    pub max_query_bytes: usize,
    /// Store scans and lineage walks (API listings, `query-blobs`) running
    /// at once on the blocking pool; more wait their turn.
    pub max_blocking_reads: usize,
    /// How many recent calls the pause policy looks at.
    pub pause_window: usize,
    /// Fewest recent calls before a plugin can be paused.
    pub pause_min_calls: usize,
    /// Share of failed recent calls that pauses a plugin.
    pub pause_failure_ratio: f64,
    /// How long a paused installation waits before one job runs as a
    /// probe; doubled after each failed probe, up to `pause_probe_max`.
    pub pause_probe_after: Duration,
    /// Longest wait between probes of a paused installation.
    pub pause_probe_max: Duration,
    /// The master key that seals secrets: `None` keeps it in
    /// `<data-dir>/master.key` (made with mode 0600 on first start).
    pub master_key_file: Option<PathBuf>,
    /// Every tenant's quotas unless its record overrides them (`None`
    /// fields: no limit). See [`reyna_store::Quotas`].
    pub quotas: reyna_store::Quotas,
    /// Outbound network policy for effect plugins.
    pub effects: EffectsConfig,
    /// Remote execution (used once a transport is set).
    pub remote: RemoteConfig,
}

/// The operator's outbound policy for effect plugins.
#[derive(Debug, Clone)]
pub struct EffectsConfig {
    /// Hosts approved per effect name (`https://host`, `http://host:port`,
    /// `host:*`; an entry without a scheme allows https only);
    /// the key `*` applies to every effect. An effect reaches a host only
    /// when its manifest's `allowed-hosts` and these approvals both allow it.
    pub approved_hosts: BTreeMap<String, Vec<String>>,
    /// Allow loopback and private addresses (tests, on-premises endpoints).
    pub allow_private: bool,
    /// Deadline of one outgoing request.
    pub request_timeout: Duration,
    /// Largest response body accepted.
    pub max_response_bytes: u64,
    /// Most requests one effect call may make.
    pub max_requests_per_call: u32,
}

impl Default for EffectsConfig {
    fn default() -> Self {
        Self {
            approved_hosts: BTreeMap::new(),
            allow_private: false,
            request_timeout: Duration::from_secs(30),
            max_response_bytes: 16 * 1024 * 1024,
            max_requests_per_call: 16,
        }
    }
}

impl EffectsConfig {
    /// The policy for effect `name`; unparseable approvals are skipped with a warning.
    pub(crate) fn policy(&self, name: &str) -> reyna_runtime::NetPolicy {
        let mut approved = Vec::new();
        for entry in self
            .approved_hosts
            .get(name)
            .into_iter()
            .chain(self.approved_hosts.get("*"))
            .flatten()
        {
            match reyna_runtime::AllowedHost::parse_approval(entry) {
                Ok(h) => approved.push(h),
                Err(e) => {
                    tracing::warn!(effect = name, entry, error = %e, "ignoring invalid approved host")
                }
            }
        }
        reyna_runtime::NetPolicy {
            approved_hosts: approved,
            allow_private: self.allow_private,
            request_timeout: self.request_timeout,
            max_response_bytes: self.max_response_bytes,
            max_requests_per_call: self.max_requests_per_call,
            ..reyna_runtime::NetPolicy::default()
        }
    }
}

impl EngineConfig {
    /// Defaults sized to this machine, with data in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Self {
            data_dir: data_dir.into(),
            runtime: RuntimeConfig::default(),
            workers: (cores * 16).clamp(16, 256),
            claim_batch: 128,
            max_hops: 16,
            max_tree_blobs: 10_000,
            max_blob_bytes: 16 * 1024 * 1024,
            max_parents: 256,
            store_cache_bytes: reyna_store::DEFAULT_CACHE_BYTES,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(300),
            max_query_results: 1000,
            max_query_scan: 100_000,
            max_query_bytes: 16 * 1024 * 1024,
            max_blocking_reads: (cores * 2).clamp(2, 16),
            pause_window: 20,
            pause_min_calls: 10,
            pause_failure_ratio: 0.8,
            pause_probe_after: Duration::from_secs(30),
            pause_probe_max: Duration::from_secs(600),
            master_key_file: None,
            quotas: reyna_store::Quotas::default(),
            effects: EffectsConfig::default(),
            remote: RemoteConfig::default(),
        }
    }
}
