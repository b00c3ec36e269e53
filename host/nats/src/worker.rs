//! A stateless worker: pulls jobs, runs them in the sandbox under the
//! plugin's limits, publishes each result and only then acks the job.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_nats::Client;
use async_nats::jetstream::{self, AckKind, message::PublishMessage};
use reyna_engine::{CallConfig, JobCopy, RemoteJob, RemoteRefusal, RemoteResult};
use reyna_runtime::{
    Blob, CallContext, EffectAnswer, EffectFuture, Failure, GuestError, HostApi, HostFuture,
    Plugin, Runtime, RuntimeConfig,
};
use reyna_types::{Cost, Digest};
use tokio::sync::{Mutex, watch};

use crate::rpc::{self, CallError, JobRef, Request};
use crate::{
    JOBS_CONSUMER, NatsError, Pull, RESULTS_SUBJECT, RETRY, ResultEnvelope, consume, decode,
    encode, ensure_streams, message_id, results_bucket, room, subject,
};

/// How long a job the state node has not sent out yet (it restarted) waits
/// before it is delivered again.
const NOT_YET: Duration = Duration::from_secs(5);

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Server URL, e.g. `nats://127.0.0.1:4222`.
    pub url: String,
    /// Name in logs and in the results it publishes.
    pub name: String,
    /// Where compiled components are cached (`<data_dir>/artifacts`).
    pub data_dir: PathBuf,
    /// Jobs run at once by this worker (each plugin is also held to its own
    /// concurrency limit).
    pub concurrency: usize,
    /// A job not acked this long after delivery goes to another worker. The
    /// shared consumer takes the value of the first worker that creates it.
    pub ack_wait: Duration,
    /// Sandbox settings.
    pub runtime: RuntimeConfig,
}

impl WorkerConfig {
    /// Defaults sized to this machine.
    pub fn new(url: impl Into<String>, data_dir: impl Into<PathBuf>) -> Self {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Self {
            url: url.into(),
            name: format!("worker-{}", std::process::id()),
            data_dir: data_dir.into(),
            concurrency: (cores * 16).clamp(16, 256),
            ack_wait: Duration::from_secs(30),
            runtime: RuntimeConfig::default(),
        }
    }
}

/// Counters of one worker since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Jobs whose result was published and acked.
    pub completed: u64,
    /// Jobs handed back (negative ack) to be tried again.
    pub handed_back: u64,
    /// Job messages dropped unrun because the state node refused their
    /// claim: the job finished, another attempt is out, or another copy of
    /// the message runs it.
    pub refused: u64,
}

struct Shared {
    client: Client,
    js: jetstream::Context,
    runtime: Runtime,
    name: String,
    ack_wait: Duration,
    /// Loaded components by digest; loading is serialised (it is rare).
    plugins: Mutex<HashMap<Digest, Plugin>>,
    bucket: tokio::sync::OnceCell<jetstream::object_store::ObjectStore>,
    completed: AtomicU64,
    handed_back: AtomicU64,
    refused: AtomicU64,
}

/// A running worker.
#[derive(Debug)]
pub struct Worker {
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    shared: Arc<Shared>,
}

impl Shared {
    fn stats(&self) -> WorkerStats {
        WorkerStats {
            completed: self.completed.load(Ordering::Relaxed),
            handed_back: self.handed_back.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
        }
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// Connects (retrying in the background while the server is away) and
    /// starts pulling jobs.
    pub async fn start(config: WorkerConfig) -> Result<Worker, NatsError> {
        if config.concurrency == 0 {
            return Err(NatsError::Runtime("concurrency must be at least 1".into()));
        }
        let mut runtime_config = config.runtime.clone();
        if runtime_config.cache_dir.is_none() {
            runtime_config.cache_dir = Some(config.data_dir.join("artifacts"));
        }
        let runtime =
            Runtime::new(runtime_config).map_err(|e| NatsError::Runtime(e.to_string()))?;
        let client = crate::connect(&config.url, &config.name).await?;
        let js = jetstream::new(client.clone());
        let shared = Arc::new(Shared {
            client,
            js,
            runtime,
            name: config.name.clone(),
            ack_wait: config.ack_wait,
            plugins: Mutex::new(HashMap::new()),
            bucket: tokio::sync::OnceCell::new(),
            completed: AtomicU64::new(0),
            handed_back: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        });
        let (shutdown, stop) = watch::channel(false);
        let task = tokio::spawn(pull(shared.clone(), config, stop));
        Ok(Worker {
            shutdown,
            task,
            shared,
        })
    }

    /// Counters since start.
    pub fn stats(&self) -> WorkerStats {
        self.shared.stats()
    }

    /// Stops pulling and waits for the jobs in hand to publish their results.
    /// Jobs fetched but not started go to another worker after the ack wait.
    /// Returns the final counters, once every job in hand has been acked.
    pub async fn shutdown(self) -> WorkerStats {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
        let _ = self.shared.client.flush().await;
        self.shared.stats()
    }
}

async fn pull(shared: Arc<Shared>, config: WorkerConfig, stop: watch::Receiver<bool>) {
    let pull = Pull {
        name: JOBS_CONSUMER,
        ack_wait: config.ack_wait,
        concurrency: config.concurrency,
        max_ack_pending: 100_000,
    };
    let setup = || {
        let js = shared.js.clone();
        async move {
            let (jobs, _) = ensure_streams(&js, None).await?;
            Ok(((), jobs))
        }
    };
    let work = |(), message| {
        let shared = shared.clone();
        async move { handle(&shared, message).await }
    };
    consume(pull, stop, setup, work).await;
}

/// Why a job was not run here.
enum NotRun {
    /// A problem of this worker or the network: hand the job back.
    HandBack(String),
    /// The state node refused the claim.
    Refused(RemoteRefusal),
}

/// Runs one job, keeping it with in-progress acks while the call runs;
/// publishes the result, then acks. Anything transient hands the job back;
/// a job the state node refuses to give this copy of the message is
/// dropped unrun.
async fn handle(shared: &Shared, message: jetstream::Message) {
    let job = match decode::<RemoteJob>(&message.payload) {
        Ok(job) => job,
        Err(e) => {
            tracing::error!(error = %e, "dropping a malformed job message");
            let _ = message.ack_with(AckKind::Term).await;
            return;
        }
    };
    let copy = match message.info() {
        Ok(info) => JobCopy {
            sequence: info.stream_sequence,
            delivery: u64::try_from(info.delivered).unwrap_or(0),
        },
        Err(e) => {
            tracing::error!(error = %e, "dropping a job message without JetStream metadata");
            let _ = message.ack_with(AckKind::Term).await;
            return;
        }
    };
    let tenant = job.event.blob.tenant.clone();
    let work = run(shared, job, copy);
    tokio::pin!(work);
    let mut keepalive =
        tokio::time::interval((shared.ack_wait / 3).max(Duration::from_millis(100)));
    keepalive.tick().await;
    let outcome = loop {
        tokio::select! {
            outcome = &mut work => break outcome,
            _ = keepalive.tick() => {
                let _ = message.ack_with(AckKind::Progress).await;
            }
        }
    };
    let handed_back = match outcome {
        Ok(result) => match publish_result(shared, &tenant, &result).await {
            Ok(()) => {
                // Acked only now that JetStream holds the result.
                if let Err(e) = message.double_ack().await {
                    tracing::debug!(job = result.job_id, error = %e, "job ack not confirmed; a redelivery is stale");
                }
                shared.completed.fetch_add(1, Ordering::Relaxed);
                false
            }
            Err(e) => {
                tracing::warn!(job = result.job_id, error = %e, "cannot publish a result; handing the job back");
                true
            }
        },
        Err(NotRun::HandBack(e)) => {
            tracing::warn!(error = %e, "cannot run a job now; handing it back");
            true
        }
        Err(NotRun::Refused(refusal @ RemoteRefusal::NotYet { .. })) => {
            tracing::debug!(%refusal, "job not sent out yet; handing it back");
            shared.handed_back.fetch_add(1, Ordering::Relaxed);
            let _ = message.ack_with(AckKind::Nak(Some(NOT_YET))).await;
            false
        }
        Err(NotRun::Refused(refusal)) => {
            tracing::info!(%refusal, "dropping a job message the state node refused");
            shared.refused.fetch_add(1, Ordering::Relaxed);
            let _ = message.ack_with(AckKind::Term).await;
            false
        }
    };
    if handed_back {
        shared.handed_back.fetch_add(1, Ordering::Relaxed);
        let _ = message.ack_with(AckKind::Nak(Some(RETRY))).await;
    }
}

/// Claims the job for this copy of its message; returns the config of the
/// tenant's installation of the plugin.
async fn claim(shared: &Shared, tenant: &str, job: &JobRef) -> Result<CallConfig, NotRun> {
    match rpc::call(&shared.client, tenant, job, Request::Claim).await {
        Ok(Some(bytes)) => decode::<CallConfig>(&bytes)
            .map_err(|e| NotRun::HandBack(format!("cannot read the job's config: {e}"))),
        Ok(None) => Err(NotRun::HandBack("the state node sent no claim".into())),
        Err(CallError::Refused(refusal)) => Err(NotRun::Refused(refusal)),
        Err(CallError::Failed(e)) => Err(NotRun::HandBack(format!("cannot claim the job: {e}"))),
    }
}

/// Claims the job, then runs the call. `Err` is a problem of this worker
/// or of the network (the job is handed back) or a refused claim (the job is
/// not run); everything about the plugin is in the result.
async fn run(shared: &Shared, mut job: RemoteJob, copy: JobCopy) -> Result<RemoteResult, NotRun> {
    let job_ref = JobRef {
        job_id: job.job_id.clone(),
        attempt: job.attempt,
        copy,
    };
    let tenant = job.event.blob.tenant.clone();
    let config = claim(shared, &tenant, &job_ref).await?;
    let report = |result: Result<Vec<reyna_runtime::Output>, Failure>| RemoteResult {
        job_id: job.job_id.clone(),
        attempt: job.attempt,
        copy,
        result,
        cost: Cost::default(),
        read_other_blobs: false,
        effect_calls: Vec::new(),
        worker: shared.name.clone(),
        logs: Vec::new(),
        log_truncated: false,
        secrets_read: Vec::new(),
    };
    let plugin = match load(shared, &tenant, &job_ref, &job.component_digest).await {
        Ok(plugin) => plugin,
        Err(Unloadable::HandBack(reason)) => return Err(NotRun::HandBack(reason)),
        Err(Unloadable::Dropped(refusal)) => return Err(NotRun::Refused(refusal)),
        Err(Unloadable::Refused(reason)) => return Ok(report(Err(Failure::Host(reason)))),
    };
    let mut event = std::mem::take(&mut job.event);
    if !job.inline {
        let id = event.blob.id.clone();
        let fetched =
            match rpc::call(&shared.client, &tenant, &job_ref, Request::GetBlob { id }).await {
                Ok(fetched) => fetched,
                Err(CallError::Refused(refusal)) => return Err(NotRun::Refused(refusal)),
                Err(CallError::Failed(e)) => {
                    return Err(NotRun::HandBack(format!("cannot fetch the input: {e}")));
                }
            };
        let blob = match fetched.map(|bytes| decode::<Option<Blob>>(&bytes)) {
            Some(Ok(Some(blob))) => blob,
            Some(Err(e)) => return Err(NotRun::HandBack(format!("cannot fetch the input: {e}"))),
            // Gone since the job was published: the state node decides.
            Some(Ok(None)) | None => {
                return Ok(report(Err(Failure::Host(format!(
                    "input blob {} is not on the state node",
                    event.blob.id
                )))));
            }
        };
        if Digest::of(&blob.data) != job.data_digest {
            return Err(NotRun::HandBack(format!(
                "input blob {} does not match its digest; not running it",
                event.blob.id
            )));
        }
        event.blob.data = blob.data;
    }
    let host = Arc::new(WorkerHost {
        client: shared.client.clone(),
        tenant: event.blob.tenant.clone(),
        job: job_ref,
        read_other_blobs: AtomicBool::new(false),
    });
    let ctx = CallContext {
        config: config.config,
        secret_keys: config.secret_keys,
        host: host.clone(),
        allowed_effects: job.effects.clone(),
        seed: job.seed,
    };
    let call = shared.runtime.call(&plugin, event, ctx).await;
    let mut result = report(call.result);
    result.cost = call.cost;
    result.read_other_blobs = host.read_other_blobs.load(Ordering::Relaxed);
    result.effect_calls = call.effect_calls;
    result.secrets_read = call.secrets_read;
    (result.logs, result.log_truncated) = (call.logs, call.log_truncated);
    Ok(result)
}

/// Why a worker has no plugin for a job.
enum Unloadable {
    /// A problem of this worker or the network: hand the job back.
    HandBack(String),
    /// The component cannot run here: the job's result says so.
    Refused(String),
    /// The state node refused the job meanwhile: drop it.
    Dropped(RemoteRefusal),
}

/// The plugin with `digest`, fetched from the state node for `job` and
/// verified on first use.
async fn load(
    shared: &Shared,
    tenant: &str,
    job: &JobRef,
    digest: &Digest,
) -> Result<Plugin, Unloadable> {
    let mut plugins = shared.plugins.lock().await;
    if let Some(plugin) = plugins.get(digest) {
        return Ok(plugin.clone());
    }
    let bytes = match rpc::fetch_bytes(&shared.client, tenant, job, digest).await {
        Ok(bytes) => bytes,
        Err(CallError::Refused(refusal)) => return Err(Unloadable::Dropped(refusal)),
        Err(CallError::Failed(e)) => {
            return Err(Unloadable::HandBack(format!(
                "cannot fetch component {digest}: {e}"
            )));
        }
    };
    let runtime = shared.runtime.clone();
    let loaded = tokio::task::spawn_blocking(move || runtime.load(&bytes))
        .await
        .map_err(|e| Unloadable::HandBack(format!("loading component {digest} failed: {e}")))?;
    match loaded {
        Ok(plugin) => {
            plugins.insert(*digest, plugin.clone());
            Ok(plugin)
        }
        Err(e) => Err(Unloadable::Refused(format!(
            "worker cannot load component {digest}: {e}"
        ))),
    }
}

async fn publish_result(
    shared: &Shared,
    tenant: &str,
    result: &RemoteResult,
) -> Result<(), String> {
    let id = message_id(&result.job_id, result.attempt);
    let mut payload = encode(&ResultEnvelope::Inline(result));
    if payload.len() > room(&shared.client) {
        let bucket = shared
            .bucket
            .get_or_try_init(|| results_bucket(&shared.js))
            .await
            .map_err(|e| e.to_string())?;
        bucket
            .put(id.as_str(), &mut payload.as_slice())
            .await
            .map_err(|e| format!("cannot store a large result: {e}"))?;
        payload = encode(&ResultEnvelope::<&RemoteResult>::Stored { object: id.clone() });
    }
    let publish = PublishMessage::build()
        .message_id(&id)
        .payload(payload.into());
    let ack = shared
        .js
        .send_publish(subject(RESULTS_SUBJECT, tenant), publish)
        .await
        .map_err(|e| e.to_string())?;
    ack.await.map_err(|e| e.to_string())?;
    Ok(())
}

/// A plugin's host functions on a worker: blob reads and effect calls go to
/// the state node for the job, which scopes them to the job's tenant.
struct WorkerHost {
    client: Client,
    tenant: String,
    job: JobRef,
    read_other_blobs: AtomicBool,
}

impl HostApi for WorkerHost {
    fn get_blob<'a>(&'a self, tenant: &'a str, id: &'a str) -> HostFuture<'a, Option<Blob>> {
        Box::pin(async move {
            self.read_other_blobs.store(true, Ordering::Relaxed);
            if tenant != self.tenant {
                return Ok(None);
            }
            let request = Request::GetBlob { id: id.to_owned() };
            match rpc::call(&self.client, tenant, &self.job, request).await? {
                Some(bytes) => decode::<Option<Blob>>(&bytes).map_err(GuestError::Retryable),
                None => Ok(None),
            }
        })
    }

    fn query_blobs<'a>(
        &'a self,
        tenant: &'a str,
        schema: &'a str,
        filter_json: &'a str,
    ) -> HostFuture<'a, Vec<Blob>> {
        Box::pin(async move {
            self.read_other_blobs.store(true, Ordering::Relaxed);
            if tenant != self.tenant {
                return Ok(Vec::new());
            }
            let request = Request::Query {
                schema: schema.to_owned(),
                filter: filter_json.to_owned(),
            };
            match rpc::call(&self.client, tenant, &self.job, request).await? {
                Some(bytes) => decode::<Vec<Blob>>(&bytes).map_err(GuestError::Retryable),
                None => Ok(Vec::new()),
            }
        })
    }

    fn call_effect<'a>(&'a self, name: &'a str, request: Vec<u8>) -> EffectFuture<'a> {
        Box::pin(async move {
            self.read_other_blobs.store(true, Ordering::Relaxed);
            let request_digest = Digest::of(&request);
            let call = rpc::EffectRequest {
                job: self.job.clone(),
                name: name.to_owned(),
                request,
            };
            match rpc::effect(&self.client, &self.tenant, call).await {
                Ok(answer) => answer,
                // Refused, or the state node was not reached: no effect ran.
                Err(CallError::Refused(refusal)) => {
                    let why = format!("refused: {refusal}");
                    let e = GuestError::Fatal(format!("the state node refused: {refusal}"));
                    EffectAnswer::unserved(name, request_digest, &why, e)
                }
                Err(CallError::Failed(e)) => {
                    let why = format!("unavailable: {e}");
                    EffectAnswer::unserved(name, request_digest, &why, e)
                }
            }
        })
    }
}
