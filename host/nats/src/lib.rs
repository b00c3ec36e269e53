//! Reyna's scale-out transport on NATS JetStream.
//!
//! One process with an embedded store is Reyna's default. When one machine is
//! not enough, a **state node** (`reyna serve --nats URL`: the HTTP API and the
//! redb store) hands the jobs of pure processors to JetStream, and stateless
//! **workers** (`reyna worker --nats URL`) run them. The engine is the same in
//! both modes; this crate is only a transport ([`reyna_engine::Transport`]).
//!
//! - Jobs go to the work-queue stream [`JOBS_STREAM`] on [`JOBS_SUBJECT`],
//!   published with `Nats-Msg-Id: <job>.<attempt>` so a re-publish inside the
//!   stream's duplicate window (`[nats] duplicate-window`, 120 s by default;
//!   re-sends happen inside it) is dropped by the server. Workers share one
//!   durable pull consumer ([`JOBS_CONSUMER`]); a job they do not ack within
//!   the ack wait is delivered again, and a long call keeps its job with
//!   in-progress acks. A job message carries no config: the plugin's
//!   config, secrets included, goes only to the worker that claims the job.
//! - Before running a job, a worker claims the copy of the message it holds
//!   (stream sequence and delivery count). The state node gives each job
//!   attempt to one copy: a copy published again after the duplicate window
//!   is refused and dropped unrun, so no job runs its effects or commits
//!   twice because of a re-publish. A job message too large for the
//!   server's `max_payload` is dead-lettered with that reason.
//! - A worker publishes its result to [`RESULTS_STREAM`] (again with a
//!   message id per job and attempt; a result too large for one message goes
//!   through the object store bucket [`RESULTS_BUCKET`]) and acks the job only
//!   after JetStream has stored the result.
//! - The state node consumes results and commits each exactly once: the
//!   engine accepts a result only for the job and attempt that is running.
//! - Inputs larger than the inline limit, components (by digest, verified by
//!   the worker) and a plugin's `get-blob` / `query-blobs` travel by
//!   request/reply on [`RPC_SUBJECT`], in chunks that fit the server's
//!   `max_payload`. Every request names its job (id, attempt, copy); the
//!   state node scopes it by its own record of that running job (tenant,
//!   component, declared effects), never by the request.
//! - Live events go to `reyna.<tenant>.<subject>` (core NATS, best effort;
//!   the durable event log stays in the store).
//!
//! Every subject ends with the job's tenant, so that several state nodes,
//! each owning a set of tenants, can later share the streams and workers.
//!
//! Effects are performed by the state node, where the operator's network
//! approvals are: a processor on a worker that calls an effect asks the
//! state node on [`EFFECT_SUBJECT`], and the record of each call travels
//! back with the result into the job's lineage. Effect plugins' own (sink)
//! jobs, and re-runs that replay recorded effects, run on the state node.

#![deny(missing_docs)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use futures_util::StreamExt;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

mod rpc;
mod state;
#[cfg(test)]
mod tests;
mod worker;

pub use state::{StateNode, StateNodeConfig};
pub use worker::{Worker, WorkerConfig, WorkerStats};

/// The work-queue stream of jobs.
pub const JOBS_STREAM: &str = "REYNA_JOBS";
/// Jobs are published on `<JOBS_SUBJECT>.<tenant>`.
pub const JOBS_SUBJECT: &str = "_reyna.jobs";
/// The durable consumer every worker pulls jobs from.
pub const JOBS_CONSUMER: &str = "reyna-workers";
/// The work-queue stream of results.
pub const RESULTS_STREAM: &str = "REYNA_RESULTS";
/// Results are published on `<RESULTS_SUBJECT>.<tenant>`.
pub const RESULTS_SUBJECT: &str = "_reyna.results";
/// The durable consumer the state node pulls results from.
pub const RESULTS_CONSUMER: &str = "reyna-state";
/// Object store bucket for results larger than one message.
pub const RESULTS_BUCKET: &str = "reyna-results";
/// Requests for components, blobs and queries go to `<RPC_SUBJECT>.<tenant>`.
pub const RPC_SUBJECT: &str = "_reyna.rpc";
/// Effect calls of processors on workers go to `<EFFECT_SUBJECT>.<tenant>`.
pub const EFFECT_SUBJECT: &str = "_reyna.effect";
/// Live events: `reyna.<tenant>.<subject>`.
pub const EVENTS_PREFIX: &str = "reyna";

/// What can go wrong in the transport.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    /// Connecting to the server failed.
    #[error("cannot connect to NATS at {url}: {reason}")]
    Connect {
        /// The server URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// A JetStream stream, consumer or bucket could not be set up.
    #[error("cannot set up JetStream ({what}): {reason}")]
    Setup {
        /// Which resource.
        what: String,
        /// Why (does the server run with JetStream, `-js`?).
        reason: String,
    },
    /// The sandbox runtime could not start.
    #[error("cannot start the runtime: {0}")]
    Runtime(String),
    /// The engine refused the transport.
    #[error(transparent)]
    Engine(#[from] reyna_engine::EngineError),
    /// The engine's remote settings do not fit together.
    #[error("invalid [nats] settings: {0}")]
    Config(String),
}

/// How long messages are deduplicated by `Nats-Msg-Id` when a worker
/// creates the streams; the state node sets its own
/// ([`reyna_engine::RemoteConfig::duplicate_window`]).
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// Connects with the options every Reyna process uses: keeps retrying the
/// first connection and reconnects forever.
pub(crate) async fn connect(url: &str, name: &str) -> Result<async_nats::Client, NatsError> {
    async_nats::ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(5))
        .request_timeout(Some(Duration::from_secs(10)))
        .connect(url)
        .await
        .map_err(|e| NatsError::Connect {
            url: url.to_owned(),
            reason: e.to_string(),
        })
}

/// Creates the jobs and results streams (or finds them). With `window`
/// (the state node's), an existing stream with another duplicate window is
/// updated to it.
pub(crate) async fn ensure_streams(
    js: &jetstream::Context,
    window: Option<Duration>,
) -> Result<(jetstream::stream::Stream, jetstream::stream::Stream), NatsError> {
    let setup = |what: &str, e: &dyn std::fmt::Display| NatsError::Setup {
        what: what.to_owned(),
        reason: e.to_string(),
    };
    let ensure = |name: &'static str, subject: &'static str| async move {
        let config = jetstream::stream::Config {
            name: name.to_owned(),
            subjects: vec![format!("{subject}.>")],
            retention: jetstream::stream::RetentionPolicy::WorkQueue,
            storage: jetstream::stream::StorageType::File,
            duplicate_window: window.unwrap_or(DUPLICATE_WINDOW),
            ..Default::default()
        };
        let mut stream = js
            .get_or_create_stream(config.clone())
            .await
            .map_err(|e| setup(name, &e))?;
        if let Some(window) = window
            && stream.cached_info().config.duplicate_window != window
        {
            js.update_stream(config)
                .await
                .map_err(|e| setup(name, &e))?;
            stream = js.get_stream(name).await.map_err(|e| setup(name, &e))?;
        }
        Ok::<_, NatsError>(stream)
    };
    let jobs = ensure(JOBS_STREAM, JOBS_SUBJECT).await?;
    let results = ensure(RESULTS_STREAM, RESULTS_SUBJECT).await?;
    Ok((jobs, results))
}

/// The results bucket (created when missing).
pub(crate) async fn results_bucket(
    js: &jetstream::Context,
) -> Result<jetstream::object_store::ObjectStore, NatsError> {
    match js.get_object_store(RESULTS_BUCKET).await {
        Ok(store) => Ok(store),
        Err(_) => js
            .create_object_store(jetstream::object_store::Config {
                bucket: RESULTS_BUCKET.to_owned(),
                storage: jetstream::stream::StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(|e| NatsError::Setup {
                what: RESULTS_BUCKET.to_owned(),
                reason: e.to_string(),
            }),
    }
}

/// `prefix.tenant`: every Reyna subject carries the tenant.
pub(crate) fn subject(prefix: &str, tenant: &str) -> String {
    format!("{prefix}.{tenant}")
}

/// The message id of a job or result: one per job and attempt.
pub(crate) fn message_id(job_id: &str, attempt: u32) -> String {
    format!("{job_id}.{attempt}")
}

/// A result as published: inline, or parked in [`RESULTS_BUCKET`] under a name.
/// Generic so a worker encodes a borrowed result (`ResultEnvelope<&_>`, the
/// same bytes) without copying its outputs.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) enum ResultEnvelope<R = reyna_engine::RemoteResult> {
    Inline(R),
    Stored { object: String },
}

/// Room left in a message for headers and framing (at most a quarter of a
/// small server's `max_payload`).
pub(crate) const PAYLOAD_MARGIN: usize = 8 * 1024;

/// The most payload one message may carry on this connection: the
/// server's `max_payload` less room for headers (1 MiB, NATS's default,
/// before the server has said).
pub(crate) fn room(client: &async_nats::Client) -> usize {
    let max = match client.server_info().max_payload {
        0 => 1024 * 1024,
        max => max,
    };
    max.saturating_sub(PAYLOAD_MARGIN.min(max / 4))
}

pub(crate) fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Serializing these plain structs into a Vec cannot fail.
    postcard::to_stdvec(value).unwrap_or_default()
}

pub(crate) fn decode<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, String> {
    postcard::from_bytes(bytes).map_err(|e| format!("malformed message: {e}"))
}

/// Delay before setting up again after NATS refused or dropped something.
pub(crate) const RETRY: Duration = Duration::from_secs(1);

/// A durable pull consumer on a stream.
pub(crate) struct Pull {
    /// The consumer's durable name.
    pub name: &'static str,
    /// Redelivery after this long without an ack.
    pub ack_wait: Duration,
    /// Messages handled at once; also the pull batch.
    pub concurrency: usize,
    /// Unacked messages the server lets out to all pullers together.
    pub max_ack_pending: i64,
}

/// Pulls messages from the durable consumer `pull` on the stream `setup`
/// gives (with a context for the handler), running `handle` on at most
/// `pull.concurrency` at once. Sets everything up again after a failed setup,
/// repeated errors or a lost subscription (NATS away); on `stop`, stops
/// pulling and waits for the handlers in flight.
pub(crate) async fn consume<C, S, SF, H, HF>(
    pull: Pull,
    mut stop: watch::Receiver<bool>,
    mut setup: S,
    handle: H,
) where
    C: Clone + Send + 'static,
    S: FnMut() -> SF,
    SF: Future<Output = Result<(C, jetstream::stream::Stream), NatsError>>,
    H: Fn(C, jetstream::Message) -> HF,
    HF: Future<Output = ()> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(pull.concurrency));
    let mut running: JoinSet<()> = JoinSet::new();
    let pause = |stop: &mut watch::Receiver<bool>| {
        let mut stop = stop.clone();
        async move {
            tokio::select! {
                _ = tokio::time::sleep(RETRY) => *stop.borrow(),
                _ = stop.changed() => true,
            }
        }
    };
    'setup: loop {
        if *stop.borrow() {
            break;
        }
        let ready = async {
            let (context, stream) = setup().await?;
            let consumer = stream
                .get_or_create_consumer(
                    pull.name,
                    jetstream::consumer::pull::Config {
                        durable_name: Some(pull.name.to_owned()),
                        ack_policy: jetstream::consumer::AckPolicy::Explicit,
                        ack_wait: pull.ack_wait,
                        max_ack_pending: pull.max_ack_pending,
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| NatsError::Setup {
                    what: pull.name.to_owned(),
                    reason: e.to_string(),
                })?;
            let messages = consumer
                .stream()
                .max_messages_per_batch(pull.concurrency)
                .heartbeat(Duration::from_secs(5))
                .messages()
                .await
                .map_err(|e| NatsError::Setup {
                    what: pull.name.to_owned(),
                    reason: e.to_string(),
                })?;
            Ok::<_, NatsError>((context, messages))
        };
        let (context, mut messages) = match ready.await {
            Ok(ready) => ready,
            Err(e) => {
                tracing::warn!(consumer = pull.name, error = %e, "cannot pull yet; retrying");
                if pause(&mut stop).await {
                    break;
                }
                continue;
            }
        };
        tracing::info!(consumer = pull.name, "pulling");
        let mut errors = 0u32;
        loop {
            while running.try_join_next().is_some() {}
            let permit = tokio::select! {
                p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break 'setup },
                _ = stop.changed() => break 'setup,
            };
            let next = tokio::select! {
                m = messages.next() => m,
                _ = stop.changed() => break 'setup,
            };
            match next {
                Some(Ok(message)) => {
                    errors = 0;
                    let work = handle(context.clone(), message);
                    running.spawn(async move {
                        let _permit = permit;
                        work.await;
                    });
                }
                Some(Err(e)) => {
                    errors += 1;
                    tracing::debug!(consumer = pull.name, error = %e, "pull error");
                    if errors >= 3 {
                        if pause(&mut stop).await {
                            break 'setup;
                        }
                        continue 'setup;
                    }
                }
                None => continue 'setup,
            }
        }
    }
    while running.join_next().await.is_some() {}
}
