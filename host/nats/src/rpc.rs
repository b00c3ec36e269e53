//! Request/reply between workers and the state node: component bytes by
//! digest, a blob by id and a plugin's query, always scoped to a tenant.
//! Replies are sliced into chunks that fit the server's `max_payload`; every
//! chunk carries the digest of the whole reply, so a reply that changed
//! between chunks is noticed and fetched again.

use std::sync::Arc;

use async_nats::Client;
use futures_util::StreamExt;
use reyna_engine::Engine;
use reyna_runtime::{EffectAnswer, GuestError};
use reyna_types::{Digest, EffectCall};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::{EFFECT_SUBJECT, PAYLOAD_MARGIN, RPC_SUBJECT, decode, encode, subject};

/// What a worker asks the state node for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Request {
    /// Component bytes by digest.
    Component { digest: Digest },
    /// One blob of a tenant (`Option<Blob>`, encoded).
    GetBlob { tenant: String, id: String },
    /// A plugin's `query-blobs` (`Vec<Blob>`, encoded).
    Query {
        tenant: String,
        schema: String,
        filter: String,
    },
}

/// An effect call a processor on a worker makes; the state node performs it.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct EffectRequest {
    pub tenant: String,
    pub seed: u64,
    pub name: String,
    #[serde(with = "serde_bytes")]
    pub request: Vec<u8>,
}

/// The state node's answer: the response's digest (its bytes are fetched as
/// a [`Request::Component`], being kept by digest) or the guest's error, and
/// the record of the call.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct EffectReply {
    pub response: Result<Digest, GuestError>,
    pub call: EffectCall,
}

/// Longest an effect call may take through the state node.
const EFFECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

#[derive(Debug, Serialize, Deserialize)]
struct RpcRequest {
    request: Request,
    offset: u64,
    chunk: u64,
}

#[derive(Debug, Serialize, Deserialize)]
enum RpcReply {
    Chunk {
        total: u64,
        /// Of the whole reply; `None` when it fits in one chunk.
        digest: Option<Digest>,
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    NotFound,
    Failed(GuestError),
}

/// Most requests the state node answers at once.
const CONCURRENT_ANSWERS: usize = 64;

fn chunk_size(client: &Client) -> u64 {
    (client
        .server_info()
        .max_payload
        .saturating_sub(PAYLOAD_MARGIN))
    .max(4096) as u64
}

/// Answers workers' requests until the subscriptions end.
pub(crate) async fn serve(client: Client, engine: Engine) {
    let subscribe = |prefix: &'static str| {
        let client = client.clone();
        let subject = format!("{prefix}.*");
        async move {
            client
                .queue_subscribe(subject.clone(), "reyna-state".to_owned())
                .await
                .map_err(|e| tracing::error!(%subject, error = %e, "cannot subscribe to worker requests"))
                .ok()
        }
    };
    let (Some(reads), Some(effects)) = (
        subscribe(RPC_SUBJECT).await,
        subscribe(EFFECT_SUBJECT).await,
    ) else {
        return;
    };
    let mut requests = futures_util::stream::select(reads, effects);
    let permits = Arc::new(Semaphore::new(CONCURRENT_ANSWERS));
    while let Some(message) = requests.next().await {
        let Some(reply) = message.reply.clone() else {
            continue;
        };
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let (client, engine) = (client.clone(), engine.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let answer = if message.subject.starts_with(EFFECT_SUBJECT) {
                encode(&perform(&engine, &message.payload).await)
            } else {
                encode(&read(&engine, &client, &message.payload).await)
            };
            if let Err(e) = client.publish(reply, answer.into()).await {
                tracing::warn!(error = %e, "cannot answer a worker request");
            }
        });
    }
}

async fn read(engine: &Engine, client: &Client, payload: &[u8]) -> RpcReply {
    match decode::<RpcRequest>(payload) {
        Ok(request) => {
            // Point reads inline; a query scans on the engine's blocking pool.
            answer(engine, request, chunk_size(client)).await
        }
        Err(e) => RpcReply::Failed(GuestError::Fatal(e)),
    }
}

async fn perform(engine: &Engine, payload: &[u8]) -> Result<EffectReply, GuestError> {
    let call = decode::<EffectRequest>(payload).map_err(GuestError::Fatal)?;
    let answer = engine
        .perform_effect(&call.tenant, call.seed, &call.name, call.request)
        .await;
    let record = answer.record;
    Ok(EffectReply {
        response: answer.response.map(|bytes| Digest::of(&bytes)),
        call: record,
    })
}

/// Asks the state node to perform an effect call; returns the response
/// (fetched by digest and verified) or the guest's error, with the record.
pub(crate) async fn effect(
    client: &Client,
    call: EffectRequest,
) -> Result<EffectAnswer, GuestError> {
    let payload = encode(&call);
    let tenant = call.tenant.clone();
    if payload.len() > chunk_size(client) as usize {
        return Err(GuestError::Fatal(format!(
            "effect request of {} bytes is larger than this NATS server's max_payload allows",
            payload.len()
        )));
    }
    let request = async_nats::Request::new()
        .payload(payload.into())
        .timeout(Some(EFFECT_TIMEOUT));
    let reply = client
        .send_request(subject(EFFECT_SUBJECT, &tenant), request)
        .await
        .map_err(|e| GuestError::Retryable(format!("the state node did not answer: {e}")))?;
    let reply = decode::<Result<EffectReply, GuestError>>(&reply.payload)
        .map_err(GuestError::Retryable)??;
    let response = match reply.response {
        Ok(digest) => {
            let bytes = call_component(client, &tenant, &digest).await?;
            Ok(bytes)
        }
        Err(e) => Err(e),
    };
    Ok(EffectAnswer {
        response,
        record: reply.call,
    })
}

/// Component (or kept effect response) bytes by digest, verified.
pub(crate) async fn call_component(
    client: &Client,
    tenant: &str,
    digest: &Digest,
) -> Result<Vec<u8>, GuestError> {
    let bytes = call(client, tenant, Request::Component { digest: *digest })
        .await?
        .ok_or_else(|| GuestError::Retryable(format!("the state node has no {digest}")))?;
    let actual = Digest::of(&bytes);
    if actual != *digest {
        return Err(GuestError::Retryable(format!(
            "{digest} arrived with digest {actual}; refusing it"
        )));
    }
    Ok(bytes)
}

async fn answer(engine: &Engine, request: RpcRequest, limit: u64) -> RpcReply {
    let whole = match &request.request {
        Request::Component { digest } => match engine.component_bytes(digest) {
            Ok(bytes) => bytes,
            Err(e) => {
                return RpcReply::Failed(GuestError::Retryable(format!(
                    "cannot read component {digest}: {e}"
                )));
            }
        },
        Request::GetBlob { tenant, id } => match engine.plugin_get_blob(tenant, id) {
            Ok(blob) => Some(encode(&blob)),
            Err(e) => return RpcReply::Failed(e),
        },
        Request::Query {
            tenant,
            schema,
            filter,
        } => match engine.plugin_query_blobs(tenant, schema, filter).await {
            Ok(blobs) => Some(encode(&blobs)),
            Err(e) => return RpcReply::Failed(e),
        },
    };
    let Some(whole) = whole else {
        return RpcReply::NotFound;
    };
    let total = whole.len() as u64;
    let start = request.offset.min(total) as usize;
    let end = (request.offset.saturating_add(request.chunk.min(limit))).min(total) as usize;
    // A reply in one chunk cannot change between chunks: no digest needed.
    let digest = if start == 0 && end == whole.len() {
        None
    } else {
        Some(Digest::of(&whole))
    };
    RpcReply::Chunk {
        total,
        digest,
        bytes: whole[start..end].to_vec(),
    }
}

/// Asks the state node; `Ok(None)` when what was asked for does not exist.
/// Everything is asked on the subject of `tenant`, the job's.
pub(crate) async fn call(
    client: &Client,
    tenant: &str,
    request: Request,
) -> Result<Option<Vec<u8>>, GuestError> {
    let to = subject(RPC_SUBJECT, tenant);
    const ATTEMPTS: usize = 3;
    let chunk = chunk_size(client);
    'attempt: for _ in 0..ATTEMPTS {
        let mut out: Vec<u8> = Vec::new();
        let mut first: Option<(u64, Option<Digest>)> = None;
        loop {
            let payload = encode(&RpcRequest {
                request: request.clone(),
                offset: out.len() as u64,
                chunk,
            });
            let reply = client
                .request(to.clone(), payload.into())
                .await
                .map_err(|e| {
                    GuestError::Retryable(format!("the state node did not answer: {e}"))
                })?;
            match decode::<RpcReply>(&reply.payload).map_err(GuestError::Retryable)? {
                RpcReply::NotFound => return Ok(None),
                RpcReply::Failed(e) => return Err(e),
                RpcReply::Chunk {
                    total,
                    digest,
                    bytes,
                } => {
                    match &first {
                        Some((t, d)) if *t != total || *d != digest => continue 'attempt,
                        Some(_) => {}
                        None => first = Some((total, digest)),
                    }
                    if bytes.is_empty() && (out.len() as u64) < total {
                        return Err(GuestError::Retryable(
                            "the state node sent an empty chunk".into(),
                        ));
                    }
                    out.extend_from_slice(&bytes);
                    if out.len() as u64 >= total {
                        if digest.is_some_and(|d| Digest::of(&out) != d) {
                            continue 'attempt;
                        }
                        return Ok(Some(out));
                    }
                }
            }
        }
    }
    Err(GuestError::Retryable(
        "the reply kept changing while it was fetched".into(),
    ))
}
