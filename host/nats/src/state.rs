//! The state node's side: publishes jobs, commits results, answers workers'
//! requests and publishes live events.

use std::sync::Arc;
use std::time::Duration;

use async_nats::Client;
use async_nats::jetstream::{self, AckKind, message::PublishMessage};
use reyna_engine::{Engine, RemoteJob, Transport, TransportError, TransportFuture};
use tokio::io::AsyncReadExt;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::{
    EVENTS_PREFIX, JOBS_SUBJECT, NatsError, Pull, RESULTS_CONSUMER, RETRY, ResultEnvelope, consume,
    decode, encode, ensure_streams, message_id, results_bucket, room, rpc, subject,
};

/// How the state node uses NATS.
#[derive(Debug, Clone)]
pub struct StateNodeConfig {
    /// Server URL, e.g. `nats://127.0.0.1:4222`.
    pub url: String,
    /// Results committed at once (their store writes share group commits).
    pub results_concurrency: usize,
    /// How long a result may stay unacknowledged before JetStream delivers it again.
    pub results_ack_wait: Duration,
}

impl StateNodeConfig {
    /// Defaults for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            results_concurrency: 256,
            results_ack_wait: Duration::from_secs(60),
        }
    }
}

struct NatsTransport {
    client: Client,
    js: jetstream::Context,
}

impl Transport for NatsTransport {
    fn publish<'a>(
        &'a self,
        job: &'a RemoteJob,
    ) -> TransportFuture<'a, Result<(), TransportError>> {
        Box::pin(async move {
            let mut payload = encode(job);
            let max = room(&self.client);
            if job.inline && payload.len() > max {
                // Too large for one message: the worker fetches the input.
                let mut lean = job.clone();
                lean.inline = false;
                lean.event.blob.data = Vec::new();
                payload = encode(&lean);
            }
            let too_large = |size: usize| TransportError::TooLarge {
                size,
                limit: self.client.server_info().max_payload,
            };
            if payload.len() > max {
                // Still too large (its metadata): it never will fit.
                return Err(too_large(payload.len()));
            }
            let size = payload.len();
            let publish = PublishMessage::build()
                .message_id(message_id(&job.job_id, job.attempt))
                .payload(payload.into());
            let ack = self
                .js
                .send_publish(subject(JOBS_SUBJECT, &job.event.blob.tenant), publish)
                .await
                .map_err(|e| match e.kind() {
                    jetstream::context::PublishErrorKind::MaxPayloadExceeded => too_large(size),
                    _ => TransportError::Unavailable(e.to_string()),
                })?;
            ack.await
                .map_err(|e| TransportError::Unavailable(e.to_string()))?;
            Ok(())
        })
    }

    fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }
}

/// A state node's connection to NATS. Dropping it does not stop its tasks;
/// call [`StateNode::shutdown`].
#[derive(Debug)]
pub struct StateNode {
    client: Client,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl StateNode {
    /// Connects (retrying in the background while the server is away),
    /// makes `engine` send pure processor jobs to JetStream, and starts
    /// committing results, answering workers and publishing live events.
    /// Call before [`Engine::start`]. While NATS is unreachable the engine
    /// keeps accepting blobs; jobs wait and are published after reconnecting.
    pub async fn attach(engine: &Engine, config: StateNodeConfig) -> Result<StateNode, NatsError> {
        engine.remote_config().check().map_err(NatsError::Config)?;
        let client = crate::connect(&config.url, "reyna-state").await?;
        let js = jetstream::new(client.clone());
        engine.set_transport(Arc::new(NatsTransport {
            client: client.clone(),
            js: js.clone(),
        }))?;
        let (shutdown, _) = watch::channel(false);
        let mut tasks = JoinSet::new();
        tasks.spawn(consume_results(
            engine.clone(),
            js,
            config,
            shutdown.subscribe(),
        ));
        let (c, e) = (client.clone(), engine.clone());
        let mut stop = shutdown.subscribe();
        tasks.spawn(async move {
            tokio::select! {
                _ = rpc::serve(c, e) => {}
                _ = stop.changed() => {}
            }
        });
        tasks.spawn(publish_events(
            engine.clone(),
            client.clone(),
            shutdown.subscribe(),
        ));
        Ok(StateNode {
            client,
            shutdown,
            tasks,
        })
    }

    /// Whether the connection to NATS is up.
    pub fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Stops consuming results and answering workers. Results not yet
    /// committed stay in the stream for the next start.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
        let _ = self.client.flush().await;
    }
}

async fn consume_results(
    engine: Engine,
    js: jetstream::Context,
    config: StateNodeConfig,
    stop: watch::Receiver<bool>,
) {
    let pull = Pull {
        name: RESULTS_CONSUMER,
        ack_wait: config.results_ack_wait,
        concurrency: config.results_concurrency,
        max_ack_pending: (config.results_concurrency * 4) as i64,
    };
    let window = engine.remote_config().duplicate_window;
    let setup = || {
        let js = js.clone();
        async move {
            let (_, results) = ensure_streams(&js, Some(window)).await?;
            Ok((results_bucket(&js).await?, results))
        }
    };
    let handle = |bucket: jetstream::object_store::ObjectStore, message| {
        let engine = engine.clone();
        async move { commit_result(&engine, &bucket, message).await }
    };
    consume(pull, stop, setup, handle).await;
}

async fn commit_result(
    engine: &Engine,
    bucket: &jetstream::object_store::ObjectStore,
    message: jetstream::Message,
) {
    let envelope = match decode::<ResultEnvelope>(&message.payload) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(error = %e, "dropping a malformed result");
            let _ = message.ack_with(AckKind::Term).await;
            return;
        }
    };
    let (result, object) = match envelope {
        ResultEnvelope::Inline(result) => (result, None),
        ResultEnvelope::Stored { object } => match read_object(bucket, &object).await {
            Ok(Some(result)) => (result, Some(object)),
            Ok(None) => {
                // Already committed and removed (a late duplicate).
                let _ = message.ack().await;
                return;
            }
            Err(e) => {
                tracing::warn!(object, error = %e, "cannot read a stored result; will retry");
                let _ = message.ack_with(AckKind::Nak(Some(RETRY))).await;
                return;
            }
        },
    };
    let job = result.job_id.clone();
    match engine.complete_remote(result).await {
        Ok(outcome) => {
            tracing::debug!(job, ?outcome, "result");
            if let Err(e) = message.double_ack().await {
                tracing::debug!(job, error = %e, "result ack not confirmed; a redelivery is stale");
            }
            if let Some(object) = object
                && let Err(e) = bucket.delete(&object).await
            {
                tracing::warn!(object, error = %e, "cannot delete a committed result object");
            }
        }
        Err(e) => {
            tracing::warn!(job, error = %e, "cannot commit a result; will retry");
            let _ = message.ack_with(AckKind::Nak(Some(RETRY))).await;
        }
    }
}

async fn read_object(
    bucket: &jetstream::object_store::ObjectStore,
    name: &str,
) -> Result<Option<reyna_engine::RemoteResult>, String> {
    let mut object = match bucket.get(name).await {
        Ok(o) => o,
        Err(e) if e.kind() == jetstream::object_store::GetErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let mut bytes = Vec::new();
    object
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| e.to_string())?;
    match decode::<ResultEnvelope>(&bytes)? {
        ResultEnvelope::Inline(result) => Ok(Some(result)),
        ResultEnvelope::Stored { .. } => Err("a stored result points to another object".into()),
    }
}

/// Publishes every new event of the store's log to `reyna.<tenant>.<subject>`
/// while connected (live events are best effort; the log is durable).
async fn publish_events(engine: Engine, client: Client, mut stop: watch::Receiver<bool>) {
    let mut changed = engine.watch_events();
    let mut seq = engine.counts().map(|c| c.events).unwrap_or(0);
    loop {
        tokio::select! {
            r = changed.changed() => if r.is_err() { return },
            _ = stop.changed() => return,
        }
        loop {
            let events = match engine.events_after(seq, 1000) {
                Ok(events) => events,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read events");
                    break;
                }
            };
            let Some(last) = events.last() else {
                break;
            };
            seq = last.seq;
            if client.connection_state() != async_nats::connection::State::Connected {
                continue;
            }
            for event in events {
                let subject = format!("{EVENTS_PREFIX}.{}.{}", event.tenant, event.subject);
                let body = serde_json::json!({
                    "seq": event.seq,
                    "tenant": event.tenant,
                    "subject": event.subject,
                    "blob": event.blob_id.map(|b| b.to_string()),
                    "job": event.job_id.map(|j| j.to_string()),
                    "at": event.at,
                });
                if let Err(e) = client.publish(subject, body.to_string().into()).await {
                    tracing::debug!(error = %e, "cannot publish a live event");
                }
            }
        }
    }
}
