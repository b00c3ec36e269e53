//! `reyna serve`: the engine behind the HTTP API, in one process.
//!
//! Settings come from flags, then `REYNA_*` environment variables (clap
//! reads both), then the `--config` TOML file, then defaults. On first start
//! (no database in the data directory yet) the example plugins embedded in
//! this binary are registered; every start registers bundled schemas that
//! are missing. SIGINT or SIGTERM stops accepting requests, ends live
//! streams, and waits for in-flight jobs to commit.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use reyna_api::{ApiConfig, AppState};
use reyna_engine::Role;
use reyna_engine::{Engine, EngineConfig};
use serde::Deserialize;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/examples.rs"));
}

/// Where the operator token made on first start is kept, inside the data
/// directory (the name is from before operators and tenant admins were
/// told apart; it holds the operator's token).
pub const ADMIN_TOKEN_FILE: &str = "admin-token";
/// The tenant of the operator token created on first start, created with it.
pub const ADMIN_TENANT: &str = "default";

const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
const DEFAULT_DATA_DIR: &str = "./reyna-data";

/// Flags of `reyna serve`; each also reads its `REYNA_*` variable.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the address is printed).
    #[arg(long, env = "REYNA_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory of the database and compiled plugins [default: ./reyna-data].
    #[arg(long, env = "REYNA_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// TOML file with any of: listen, data-dir, log, workers, max-body,
    /// max-plugin, max-blob, max-page, max-wait, sse-buffer, sse-heartbeat,
    /// store-cache, max-parents, max-hops, max-tree-blobs, max-log-lines,
    /// max-effect-calls, max-query-bytes, max-connections, header-timeout,
    /// body-timeout, max-streams-per-token, max-streams, max-body-memory, and
    /// the tables [compile], [effects] and [nats].
    #[arg(long, env = "REYNA_CONFIG")]
    pub config: Option<PathBuf>,
    /// Admin token to accept (instead of the one created in <data-dir>/admin-token).
    #[arg(long, env = "REYNA_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Log filter, e.g. `info` or `reyna_engine=debug` [default: info].
    #[arg(long, env = "REYNA_LOG")]
    pub log: Option<String>,
    /// Scale out: send pure processor jobs to NATS JetStream at this URL
    /// (e.g. `nats://127.0.0.1:4222`) for `reyna worker` processes to run.
    #[arg(long, env = "REYNA_NATS")]
    pub nats: Option<String>,
}

/// The `--config` file. Unknown keys are errors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    log: Option<String>,
    /// Jobs run at once.
    workers: Option<usize>,
    /// Largest JSON request body, e.g. "16MiB".
    max_body: Option<String>,
    /// Largest plugin upload, e.g. "64MiB".
    max_plugin: Option<String>,
    /// Largest blob, e.g. "16MiB".
    max_blob: Option<String>,
    /// Largest page a listing may ask for.
    max_page: Option<usize>,
    /// Tenants with their own series at /metrics (default 100); the rest
    /// are summed under tenant="_other".
    metrics_max_tenants: Option<usize>,
    /// Longest `derived?wait=`, e.g. "60s".
    max_wait: Option<String>,
    /// Events buffered per live-stream client.
    sse_buffer: Option<usize>,
    /// Heartbeat interval of idle live streams, e.g. "15s".
    sse_heartbeat: Option<String>,
    /// The store's page cache, e.g. "256MiB" (default 1GiB).
    store_cache: Option<String>,
    /// Most parents one blob may name (default 256).
    max_parents: Option<usize>,
    /// Derivation depth at which a job is dead-lettered (default 16).
    max_hops: Option<u32>,
    /// Most derived blobs one ingested blob's tree may hold (default 10000).
    max_tree_blobs: Option<u64>,
    /// What compiling one upload may cost.
    #[serde(default)]
    compile: CompileFile,
    /// Log lines kept per plugin call (default 1000).
    max_log_lines: Option<usize>,
    /// Most effect calls per processor call; caps the manifests' requests
    /// (default 64).
    max_effect_calls: Option<u32>,
    /// Most blob data one `query-blobs` returns, e.g. "16MiB" (the default).
    max_query_bytes: Option<String>,
    /// Wait before a paused installation's first probe, e.g. "30s" (the
    /// default); doubled after each failed probe.
    pause_probe_after: Option<String>,
    /// Longest wait between probes of a paused installation, e.g. "10m"
    /// (the default).
    pause_probe_max: Option<String>,
    /// The master key that seals tenants' secrets (default
    /// `<data-dir>/master.key`, made with mode 0600 on first start).
    master_key_file: Option<PathBuf>,
    /// Connections open at once (default 1024); one more is answered 503
    /// `too-many-connections` and closed.
    max_connections: Option<usize>,
    /// Time to send a request's headers, and longest idle keep-alive,
    /// e.g. "10s" (the default).
    header_timeout: Option<String>,
    /// Time to send a request's whole body after its headers, e.g. "60s"
    /// (the default); a slower body is answered 408 `body-timeout`.
    body_timeout: Option<String>,
    /// Live streams and long-polls one token may hold (default 16).
    max_streams_per_token: Option<usize>,
    /// Live streams and long-polls on the host in all (default 1024).
    max_streams: Option<usize>,
    /// Request bodies being received and handled at once, in bytes, e.g.
    /// "256MiB" (the default, raised to max-body and max-plugin if larger).
    max_body_memory: Option<String>,
    /// Outbound policy for effect plugins.
    #[serde(default)]
    effects: EffectsFile,
    /// Scale-out on NATS JetStream.
    #[serde(default)]
    nats: NatsFile,
    /// Every tenant's quotas unless the operator overrides them for one
    /// (`PATCH /v1/tenants/{tenant}`).
    #[serde(default)]
    quotas: QuotasFile,
}

/// `[quotas]`: the default quotas of every tenant (none by default).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct QuotasFile {
    /// Blobs created per second (a token bucket).
    blobs_per_second: Option<u32>,
    /// Blobs created at once before the rate applies (default: the rate).
    blob_burst: Option<u32>,
    /// Blob data kept, e.g. "10GiB".
    stored_bytes: Option<String>,
    /// Jobs waiting.
    queued_jobs: Option<u64>,
    /// Jobs running at once (a tenant's share of the workers).
    running_jobs: Option<u32>,
    /// Effect calls per day (UTC).
    effect_calls_per_day: Option<u64>,
    /// Budgets in effect-reported units: `[quotas.budgets.tokens]`.
    #[serde(default)]
    budgets: std::collections::BTreeMap<String, BudgetFile>,
}

/// `[quotas.budgets.<unit>]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct BudgetFile {
    per_day: Option<u64>,
    per_month: Option<u64>,
}

impl QuotasFile {
    fn resolve(&self) -> anyhow::Result<reyna_engine::reyna_store::Quotas> {
        let quotas = reyna_engine::reyna_store::Quotas {
            blobs_per_second: self.blobs_per_second,
            blob_burst: self.blob_burst,
            stored_bytes: match &self.stored_bytes {
                Some(text) => Some(bytes("quotas.stored-bytes", text)? as u64),
                None => None,
            },
            queued_jobs: self.queued_jobs,
            running_jobs: self.running_jobs,
            // Weights are per tenant: every tenant's default share is 1.
            share: None,
            effect_calls_per_day: self.effect_calls_per_day,
            budgets: self
                .budgets
                .iter()
                .map(|(unit, b)| {
                    let budget = reyna_engine::reyna_store::Budget {
                        per_day: b.per_day,
                        per_month: b.per_month,
                    };
                    (unit.clone(), budget)
                })
                .collect(),
        };
        quotas
            .validate()
            .map_err(|e| anyhow::anyhow!("`quotas`: {e}"))?;
        Ok(quotas)
    }
}

/// `[compile]`: what compiling one plugin upload may cost (checked before
/// and while wasmtime compiles it).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct CompileFile {
    /// Largest function body, e.g. "4MiB".
    max_function_size: Option<String>,
    /// Deepest nesting of blocks in one function.
    max_nesting: Option<usize>,
    /// Most functions in one component.
    max_functions: Option<usize>,
    /// Most locals in one function.
    max_locals: Option<u64>,
    /// Longest one compile may take, e.g. "60s".
    timeout: Option<String>,
    /// Compiles running at once.
    max_compiles: Option<usize>,
}

/// `[nats]`: scale-out on NATS JetStream (`--nats` overrides `url`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct NatsFile {
    /// Server URL; scale-out is on when set.
    url: Option<String>,
    /// Inputs up to this size travel inside the job message, e.g. "256KiB".
    inline_max: Option<String>,
    /// Jobs sent to workers and not yet answered, at most.
    max_outstanding: Option<usize>,
    /// Publish a job again when no result came for this long, e.g. "90s";
    /// must fall inside `duplicate-window` with a margin.
    resend_after: Option<String>,
    /// JetStream drops a job published again within this long of the
    /// first copy, e.g. "120s".
    duplicate_window: Option<String>,
}

/// `[effects]`: which hosts each effect plugin may reach. An effect reaches a
/// host only when its manifest's `allowed-hosts` and these approvals agree.
/// An approval names its scheme: `host[:port]` alone allows https only
/// (`host:80` without a scheme is refused as ambiguous), plain http is
/// `http://host:port`; without a port only the scheme's default port is
/// allowed, and any port only when written `host:*`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct EffectsFile {
    /// Approved hosts per effect name (`*` for every effect), e.g.
    /// `approved-hosts = { llm = ["https://api.openai.com"] }`.
    #[serde(default)]
    approved_hosts: std::collections::BTreeMap<String, Vec<String>>,
    /// Allow loopback and private addresses (local model servers).
    allow_private: Option<bool>,
    /// Deadline of one outgoing request, e.g. "30s".
    request_timeout: Option<String>,
    /// Largest response body, e.g. "16MiB".
    max_response: Option<String>,
    /// Most requests one effect call may make, refused ones included.
    max_requests: Option<u32>,
}

/// Everything `serve` needs, resolved.
#[derive(Debug)]
struct Settings {
    listen: SocketAddr,
    data_dir: PathBuf,
    log: String,
    engine: EngineConfig,
    api: ApiConfig,
    nats: Option<String>,
}

fn bytes(key: &str, text: &str) -> anyhow::Result<usize> {
    let size: bytesize::ByteSize = text
        .parse()
        .map_err(|e| anyhow::anyhow!("`{key}` must be a size like \"16MiB\", got {text:?}: {e}"))?;
    usize::try_from(size.as_u64()).with_context(|| format!("`{key}` is too large"))
}

fn duration(key: &str, text: &str) -> anyhow::Result<Duration> {
    humantime::parse_duration(text)
        .with_context(|| format!("`{key}` must be a duration like \"15s\", got {text:?}"))
}

fn resolve(args: &ServeArgs) -> anyhow::Result<Settings> {
    let file = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config file {}", path.display()))?;
            toml::from_str::<FileConfig>(&text)
                .with_context(|| format!("invalid config file {}", path.display()))?
        }
        None => FileConfig::default(),
    };
    let listen = match args.listen.or(file.listen) {
        Some(listen) => listen,
        None => DEFAULT_LISTEN.parse().context("default listen address")?,
    };
    let data_dir = args
        .data_dir
        .clone()
        .or(file.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    let log = args
        .log
        .clone()
        .or(file.log.clone())
        .unwrap_or_else(|| "info".to_owned());

    let mut engine = EngineConfig::new(&data_dir);
    if let Some(workers) = file.workers {
        if workers == 0 {
            bail!("`workers` must be at least 1");
        }
        engine.workers = workers;
    }
    if let Some(text) = &file.max_blob {
        engine.max_blob_bytes = bytes("max-blob", text)?;
    }
    if let Some(text) = &file.store_cache {
        engine.store_cache_bytes = bytes("store-cache", text)?;
    }
    if let Some(n) = file.max_parents {
        if n == 0 {
            bail!("`max-parents` must be at least 1");
        }
        engine.max_parents = n;
    }
    if let Some(n) = file.max_hops {
        if n == 0 {
            bail!("`max-hops` must be at least 1");
        }
        engine.max_hops = n;
    }
    if let Some(n) = file.max_tree_blobs {
        if n == 0 {
            bail!("`max-tree-blobs` must be at least 1");
        }
        engine.max_tree_blobs = n;
    }
    let compile = &mut engine.runtime.compile;
    if let Some(text) = &file.compile.max_function_size {
        compile.max_function_bytes = bytes("compile.max-function-size", text)?;
    }
    if let Some(n) = file.compile.max_nesting {
        compile.max_nesting = n;
    }
    if let Some(n) = file.compile.max_functions {
        compile.max_functions = n;
    }
    if let Some(n) = file.compile.max_locals {
        compile.max_locals = n;
    }
    if let Some(text) = &file.compile.timeout {
        compile.timeout = duration("compile.timeout", text)?;
    }
    if let Some(n) = file.compile.max_compiles {
        if n == 0 {
            bail!("`compile.max-compiles` must be at least 1");
        }
        compile.max_concurrent = n;
    }
    if let Some(n) = file.max_log_lines {
        engine.runtime.max_log_lines = n;
    }
    if let Some(n) = file.max_effect_calls {
        if n == 0 {
            bail!("`max-effect-calls` must be at least 1");
        }
        engine.runtime.max_effect_calls = n;
    }
    if let Some(text) = &file.max_query_bytes {
        engine.max_query_bytes = bytes("max-query-bytes", text)?;
    }
    if let Some(text) = &file.pause_probe_after {
        engine.pause_probe_after = duration("pause-probe-after", text)?;
    }
    if let Some(text) = &file.pause_probe_max {
        engine.pause_probe_max = duration("pause-probe-max", text)?;
    }
    if engine.pause_probe_after.is_zero() || engine.pause_probe_max < engine.pause_probe_after {
        bail!("`pause-probe-after` must be positive and at most `pause-probe-max`");
    }
    if let Some(path) = &file.master_key_file {
        engine.master_key_file = Some(path.clone());
    }
    for (effect, hosts) in &file.effects.approved_hosts {
        for host in hosts {
            reyna_manifest::AllowedHost::parse_approval(host)
                .map_err(|e| anyhow::anyhow!("`effects.approved-hosts.{effect}`: {e}"))?;
        }
    }
    engine.effects.approved_hosts = file.effects.approved_hosts.clone();
    if let Some(allow) = file.effects.allow_private {
        engine.effects.allow_private = allow;
    }
    if let Some(text) = &file.effects.request_timeout {
        engine.effects.request_timeout = duration("effects.request-timeout", text)?;
    }
    if let Some(text) = &file.effects.max_response {
        engine.effects.max_response_bytes = bytes("effects.max-response", text)? as u64;
    }
    if let Some(n) = file.effects.max_requests {
        engine.effects.max_requests_per_call = n;
    }
    engine.quotas = file.quotas.resolve()?;
    let nats = args.nats.clone().or(file.nats.url.clone());
    if let Some(text) = &file.nats.inline_max {
        engine.remote.inline_max = bytes("nats.inline-max", text)?;
    }
    if let Some(n) = file.nats.max_outstanding {
        if n == 0 {
            bail!("`nats.max-outstanding` must be at least 1");
        }
        engine.remote.max_outstanding = n;
    }
    if let Some(text) = &file.nats.resend_after {
        engine.remote.resend_after = duration("nats.resend-after", text)?;
    }
    if let Some(text) = &file.nats.duplicate_window {
        engine.remote.duplicate_window = duration("nats.duplicate-window", text)?;
    }
    if let Err(e) = engine.remote.check() {
        bail!("`[nats]`: {e}");
    }
    let mut api = ApiConfig::default();
    // The body must fit the largest blob plus its JSON envelope.
    api.max_body_bytes = api.max_body_bytes.max(engine.max_blob_bytes + 64 * 1024);
    if let Some(text) = &file.max_body {
        api.max_body_bytes = bytes("max-body", text)?;
    }
    if let Some(text) = &file.max_plugin {
        api.max_plugin_bytes = bytes("max-plugin", text)?;
    }
    if let Some(n) = file.max_page {
        if n == 0 {
            bail!("`max-page` must be at least 1");
        }
        api.max_page = n;
    }
    if let Some(text) = &file.max_wait {
        api.max_wait = duration("max-wait", text)?;
    }
    if let Some(n) = file.metrics_max_tenants {
        api.metrics_max_tenants = n;
    }
    if let Some(n) = file.sse_buffer {
        if n == 0 {
            bail!("`sse-buffer` must be at least 1");
        }
        api.sse_buffer = n;
    }
    if let Some(text) = &file.sse_heartbeat {
        api.sse_heartbeat = duration("sse-heartbeat", text)?;
    }
    client_limits(&file, &mut api)?;
    Ok(Settings {
        listen,
        data_dir,
        log,
        engine,
        api,
        nats,
    })
}

/// What one client may hold: connections, header and body time, live
/// streams, body memory. A zero is refused: it would refuse everything.
fn client_limits(file: &FileConfig, api: &mut ApiConfig) -> anyhow::Result<()> {
    let at_least_one = |key: &str, value: Option<usize>, field: &mut usize| {
        if let Some(n) = value {
            if n == 0 {
                bail!("`{key}` must be at least 1");
            }
            *field = n;
        }
        Ok(())
    };
    at_least_one(
        "max-connections",
        file.max_connections,
        &mut api.max_connections,
    )?;
    at_least_one(
        "max-streams-per-token",
        file.max_streams_per_token,
        &mut api.max_streams_per_token,
    )?;
    at_least_one("max-streams", file.max_streams, &mut api.max_streams)?;
    let positive = |key: &str, text: &Option<String>, field: &mut Duration| {
        if let Some(text) = text {
            let value = duration(key, text)?;
            if value.is_zero() {
                bail!("`{key}` must be longer than zero");
            }
            *field = value;
        }
        Ok(())
    };
    positive(
        "header-timeout",
        &file.header_timeout,
        &mut api.header_timeout,
    )?;
    positive("body-timeout", &file.body_timeout, &mut api.body_timeout)?;
    // Every body the limits allow must fit the budget on its own.
    let largest = api.max_body_bytes.max(api.max_plugin_bytes);
    match &file.max_body_memory {
        Some(text) => {
            api.max_body_memory = bytes("max-body-memory", text)?;
            if api.max_body_memory < largest {
                bail!(
                    "`max-body-memory` ({}) must be at least the largest body allowed, max-body or max-plugin ({largest} bytes)",
                    api.max_body_memory
                );
            }
        }
        None => api.max_body_memory = api.max_body_memory.max(largest),
    }
    Ok(())
}

/// Runs the host until SIGINT or SIGTERM.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let settings = resolve(&args)?;
    let runtime = start_process(&settings.log)?;
    runtime.block_on(serve(settings, args.admin_token))
}

/// Logging to stderr with `log` as the filter, and the tokio runtime.
pub(crate) fn start_process(log: &str) -> anyhow::Result<tokio::runtime::Runtime> {
    let filter = tracing_subscriber::EnvFilter::try_new(log)
        .with_context(|| format!("invalid log filter {log:?}"))?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start tokio")
}

async fn serve(settings: Settings, admin_token: Option<String>) -> anyhow::Result<()> {
    let data_dir = &settings.data_dir;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
    let first_start = !data_dir.join("reyna.redb").exists();
    let engine = Engine::open(settings.engine)
        .await
        .context("cannot open the engine")?;

    let report = engine
        .register_bundled_schemas()
        .await
        .context("cannot register the bundled schemas")?;
    if !report.schemas.is_empty() {
        tracing::info!(schemas = ?report.schemas, "registered bundled schemas");
    }
    if !report.kept.is_empty() {
        tracing::warn!(
            schemas = ?report.kept,
            "this data directory holds older versions of these bundled schemas; they are kept \
             (a registered schema never changes), so the example plugins of this binary may not \
             read their blobs: start from a new data directory to use the bundled ones"
        );
    }
    if first_start {
        register_examples(&engine).await;
    }
    ensure_default_tenant(&engine).await?;
    let token_note = admin_token_setup(&engine, data_dir, admin_token).await?;

    let state_node = match &settings.nats {
        Some(url) => {
            let node =
                reyna_nats::StateNode::attach(&engine, reyna_nats::StateNodeConfig::new(url))
                    .await
                    .context("cannot attach to NATS")?;
            tracing::info!(
                url,
                "scale-out: pure processor jobs go to NATS JetStream workers"
            );
            Some(node)
        }
        None => None,
    };
    engine.start();
    let state = AppState::new(engine.clone(), settings.api);
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let addr = listener.local_addr().context("no local address")?;
    let stop = stop_signal();
    // Scripts and tests read this line to learn the address.
    println!(
        "reyna {} listening on http://{addr}",
        env!("CARGO_PKG_VERSION")
    );
    println!("data directory: {}", data_dir.display());
    println!("{token_note}");
    println!("console: http://{addr}/ (sign in with a token)");

    reyna_api::serve(listener, state, async {
        stop.await;
        tracing::info!("stopping: no new requests; live streams end; in-flight jobs commit");
    })
    .await
    .context("the HTTP server failed")?;
    engine.shutdown().await;
    if let Some(node) = state_node {
        node.shutdown().await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Registers the embedded example plugins: effects first (processors may
/// call them), then processors. A failure is logged and skipped.
async fn register_examples(engine: &Engine) {
    let mut ordered: Vec<(&str, &[u8], bool)> = embedded::EXAMPLES
        .iter()
        .map(|(name, bytes)| {
            let effect = reyna_manifest::inspect(bytes)
                .map(|info| info.manifest.kind == reyna_manifest::Kind::Effect)
                .unwrap_or(false);
            (*name, *bytes, effect)
        })
        .collect();
    ordered.sort_by_key(|(_, _, effect)| !*effect);
    for (name, bytes, _) in ordered {
        match engine
            .upload_plugin(
                bytes.to_vec(),
                None,
                reyna_engine::InstallPolicy::All,
                "system",
            )
            .await
        {
            Ok((view, _)) => {
                tracing::info!(plugin = %format!("{}@{}", view.name, view.version), "registered example plugin")
            }
            Err(e) => tracing::warn!(plugin = name, error = %e, "example plugin not registered"),
        }
    }
}

/// Creates the tenant of the first operator token, unless it exists or
/// existed (a deleted tenant's id is never reused).
async fn ensure_default_tenant(engine: &Engine) -> anyhow::Result<()> {
    let known = engine
        .tenant_record(ADMIN_TENANT)
        .map_err(|e| anyhow::anyhow!("cannot read the tenants: {e}"))?
        .is_some();
    if !known {
        let id = reyna_engine::TenantId::parse(ADMIN_TENANT).map_err(|e| anyhow::anyhow!("{e}"))?;
        engine
            .create_tenant(&id, "Default", "system")
            .await
            .map_err(|e| anyhow::anyhow!("cannot create the default tenant: {e}"))?;
    }
    Ok(())
}

/// Makes sure an operator token exists and says where it is. The token file
/// and `--admin-token` only bootstrap an empty token table: once tokens
/// exist they add nothing, so a revoked token stays revoked across restarts.
async fn admin_token_setup(
    engine: &Engine,
    data_dir: &Path,
    given: Option<String>,
) -> anyhow::Result<String> {
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    let stored = engine
        .list_tokens(None)
        .map_err(|e| anyhow::anyhow!("cannot read the tokens: {e}"))?;
    if !stored.is_empty() {
        let (secret, source) = match &given {
            Some(secret) => (
                Some(secret.trim().to_owned()),
                "--admin-token / REYNA_ADMIN_TOKEN".to_owned(),
            ),
            None => (
                std::fs::read_to_string(&path)
                    .ok()
                    .map(|s| s.trim().to_owned()),
                path.display().to_string(),
            ),
        };
        let Some(secret) = secret else {
            return Ok(format!(
                "operator token: none created ({} tokens exist; {} is missing and only bootstraps an empty token table)",
                stored.len(),
                path.display()
            ));
        };
        let known = engine
            .find_token(&reyna_api::hash_token(&secret))
            .map_err(|e| anyhow::anyhow!("cannot read the tokens: {e}"))?
            .is_some();
        return Ok(if known {
            format!("operator token: {source}")
        } else {
            format!(
                "operator token: {source} is revoked or unknown and is not stored again (it only bootstraps an empty token table)"
            )
        });
    }
    if let Some(secret) = given {
        if secret.trim().len() < 16 {
            bail!("--admin-token / REYNA_ADMIN_TOKEN must be at least 16 characters");
        }
        reyna_api::ensure_token(
            engine,
            secret.trim(),
            ADMIN_TENANT,
            Role::Operator,
            "operator (--admin-token)",
        )
        .await
        .map_err(|e| anyhow::anyhow!("cannot store the admin token: {e}"))?;
        return Ok("operator token: the one given by --admin-token / REYNA_ADMIN_TOKEN".to_owned());
    }
    if path.exists() {
        let secret = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        reyna_api::ensure_token(
            engine,
            secret.trim(),
            ADMIN_TENANT,
            Role::Operator,
            "operator",
        )
        .await
        .map_err(|e| anyhow::anyhow!("cannot store the admin token: {e}"))?;
        return Ok(format!("operator token: {}", path.display()));
    }
    let secret = reyna_api::generate_token().map_err(|e| anyhow::anyhow!("{e}"))?;
    write_secret(&path, &secret)?;
    reyna_api::ensure_token(engine, &secret, ADMIN_TENANT, Role::Operator, "operator")
        .await
        .map_err(|e| anyhow::anyhow!("cannot store the admin token: {e}"))?;
    Ok(format!(
        "operator token: {} (created now, readable only by you)",
        path.display()
    ))
}

/// Writes a secret to a new file only its owner can read.
fn write_secret(path: &Path, secret: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(format!("{secret}\n").as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

pub(crate) fn stop_signal() -> impl Future<Output = ()> + Send + 'static {
    // Registered now, before the caller says it is ready: a SIGTERM that
    // arrives right after the ready line must stop the process gracefully,
    // not kill it with the default action because nothing listened yet.
    #[cfg(unix)]
    let (mut interrupt, mut terminate) = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::interrupt()).ok(),
            signal(SignalKind::terminate()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let interrupt = async {
                match interrupt.as_mut() {
                    Some(signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let terminate = async {
                match terminate.as_mut() {
                    Some(signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = interrupt => {}
                () = terminate => {}
            }
        }
        #[cfg(not(unix))]
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn resolve_text(text: &str) -> anyhow::Result<Settings> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("reyna.toml");
        std::fs::write(&path, text)?;
        resolve(&ServeArgs {
            listen: None,
            data_dir: None,
            config: Some(path),
            admin_token: None,
            log: None,
            nats: None,
        })
    }

    #[test]
    fn guest_limits_come_from_the_config_file() {
        let s =
            resolve_text("max-log-lines = 10\nmax-effect-calls = 3\nmax-query-bytes = \"1MiB\"\n")
                .unwrap();
        assert_eq!(s.engine.runtime.max_log_lines, 10);
        assert_eq!(s.engine.runtime.max_effect_calls, 3);
        assert_eq!(s.engine.max_query_bytes, 1 << 20);
        let defaults = resolve_text("").unwrap();
        assert_eq!(defaults.engine.runtime.max_log_lines, 1000);
        assert_eq!(defaults.engine.runtime.max_effect_calls, 64);
        assert_eq!(defaults.engine.max_query_bytes, 16 << 20);
        let e = resolve_text("max-effect-calls = 0\n").unwrap_err();
        assert_eq!(e.to_string(), "`max-effect-calls` must be at least 1");
    }

    #[test]
    fn engine_limits_come_from_the_config_file() {
        let s = resolve_text(
            "max-parents = 8\nmax-hops = 4\nmax-tree-blobs = 50\n[compile]\nmax-nesting = 64\ntimeout = \"5s\"\nmax-compiles = 1\nmax-function-size = \"1MiB\"\n",
        )
        .unwrap();
        assert_eq!((s.engine.max_parents, s.engine.max_hops), (8, 4));
        assert_eq!(s.engine.max_tree_blobs, 50);
        let compile = &s.engine.runtime.compile;
        assert_eq!((compile.max_nesting, compile.max_concurrent), (64, 1));
        assert_eq!(compile.timeout, Duration::from_secs(5));
        assert_eq!(compile.max_function_bytes, 1 << 20);
        let e = resolve_text("max-tree-blobs = 0\n").unwrap_err();
        assert_eq!(e.to_string(), "`max-tree-blobs` must be at least 1");
    }

    #[test]
    fn default_quotas_come_from_the_config_file() {
        let s = resolve_text(
            "[quotas]\nblobs-per-second = 50\nstored-bytes = \"1GiB\"\nrunning-jobs = 2\n[quotas.budgets.tokens]\nper-day = 100000\nper-month = 2000000\n",
        )
        .unwrap();
        let q = &s.engine.quotas;
        assert_eq!(q.blobs_per_second, Some(50));
        assert_eq!(q.stored_bytes, Some(1 << 30));
        assert_eq!(q.running_jobs, Some(2));
        assert_eq!(q.budgets["tokens"].per_month, Some(2_000_000));
        assert_eq!(resolve_text("").unwrap().engine.quotas, Default::default());
        let e = resolve_text("[quotas]\nrunning-jobs = 0\n").unwrap_err();
        assert!(
            e.to_string().contains("running_jobs must be at least 1"),
            "{e}"
        );
        let e = resolve_text("[quotas.budgets.Tokens]\nper-day = 1\n").unwrap_err();
        assert!(e.to_string().contains("usage unit name"), "{e}");
        assert!(resolve_text("[quotas]\nshare = 2\n").is_err());
    }

    #[test]
    fn the_readme_config_example_sets_the_client_limits_to_their_defaults() {
        let readme = include_str!("../../../README.md");
        let block = readme
            .split("## Configuration")
            .nth(1)
            .and_then(|s| s.split("```toml\n").nth(1))
            .and_then(|s| s.split("```").next())
            .expect("a toml block under ## Configuration");
        let settings = resolve_text(block).unwrap();
        let engine = EngineConfig::new("x");
        assert_eq!(settings.engine.pause_probe_after, engine.pause_probe_after);
        assert_eq!(settings.engine.pause_probe_max, engine.pause_probe_max);
        let (api, defaults) = (settings.api, ApiConfig::default());
        assert_eq!(api.max_connections, defaults.max_connections);
        assert_eq!(api.header_timeout, defaults.header_timeout);
        assert_eq!(api.body_timeout, defaults.body_timeout);
        assert_eq!(api.max_streams_per_token, defaults.max_streams_per_token);
        assert_eq!(api.max_streams, defaults.max_streams);
        assert_eq!(api.max_body_memory, defaults.max_body_memory);
        assert_eq!(api.max_body_bytes, defaults.max_body_bytes);
        assert_eq!(api.max_plugin_bytes, defaults.max_plugin_bytes);
        assert_eq!(api.max_page, defaults.max_page);
        assert_eq!(api.max_wait, defaults.max_wait);
        assert_eq!(api.sse_buffer, defaults.sse_buffer);
    }

    #[test]
    fn client_limits_that_would_refuse_everything_are_config_errors() {
        for (text, key) in [
            ("max-connections = 0", "max-connections"),
            ("max-streams = 0", "max-streams"),
            ("max-streams-per-token = 0", "max-streams-per-token"),
            ("header-timeout = \"0s\"", "header-timeout"),
            ("body-timeout = \"0s\"", "body-timeout"),
            ("max-body-memory = \"1MiB\"", "max-body-memory"),
        ] {
            let error = format!("{:#}", resolve_text(text).unwrap_err());
            assert!(error.contains(key), "{text}: {error}");
        }
        // The budget follows larger bodies when it is not set.
        let settings = resolve_text("max-plugin = \"512MiB\"").unwrap();
        assert_eq!(settings.api.max_body_memory, 512 * 1024 * 1024);
    }
}
