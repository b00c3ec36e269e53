//! Request/reply between workers and the state node: the claim of a job
//! (which hands over the plugin's config), component and effect-response
//! bytes by digest, a blob by id, a plugin's query and its effect calls.
//!
//! Every request names the job it is for (id, attempt and the copy of the
//! message the worker holds) and nothing else about scope: the state node
//! looks the job up among those it sent out and takes the tenant, the
//! component, the declared effects and the config from its own record of
//! it ([`reyna_engine::RunningJob`]), refusing a job that is not running, a
//! stale attempt or another copy ([`RemoteRefusal`]).
//!
//! Replies are sliced into chunks that fit the server's `max_payload`; every
//! chunk carries the digest of the whole reply, so a reply that changed
//! between chunks is noticed and fetched again.

use std::sync::Arc;

use async_nats::Client;
use futures_util::StreamExt;
use reyna_engine::{Engine, JobCopy, RemoteRefusal};
use reyna_runtime::{EffectAnswer, GuestError};
use reyna_types::{Digest, EffectCall};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::{EFFECT_SUBJECT, RPC_SUBJECT, decode, encode, room, subject};

/// The job a request is for, as the worker holds it. The state node derives
/// everything else from its own record of this job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct JobRef {
    pub job_id: String,
    pub attempt: u32,
    pub copy: JobCopy,
}

/// What a worker asks the state node for, for a job it holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Request {
    /// Claims the job for this copy of its message; the reply is the
    /// config of the tenant's installation (a `CallConfig`, encoded).
    Claim,
    /// The job's component, or the response of one of its effect calls,
    /// by digest.
    Bytes { digest: Digest },
    /// One blob of the job's tenant (`Option<Blob>`, encoded).
    GetBlob { id: String },
    /// The plugin's `query-blobs` over the job's tenant (`Vec<Blob>`, encoded).
    Query { schema: String, filter: String },
}

/// An effect call a processor on a worker makes; the state node performs it
/// for the job's tenant, if the job's plugin declares the effect.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct EffectRequest {
    pub job: JobRef,
    pub name: String,
    #[serde(with = "serde_bytes")]
    pub request: Vec<u8>,
}

/// The state node's answer to an [`EffectRequest`].
#[derive(Debug, Serialize, Deserialize)]
enum EffectOutcome {
    Performed(EffectReply),
    Refused(RemoteRefusal),
    Failed(GuestError),
}

/// Why a request got no answer.
#[derive(Debug)]
pub(crate) enum CallError {
    /// The state node refused it for this job.
    Refused(RemoteRefusal),
    /// It failed (unreachable state node, bad reply, or the guest's error).
    Failed(GuestError),
}

impl From<GuestError> for CallError {
    fn from(e: GuestError) -> Self {
        CallError::Failed(e)
    }
}

impl From<CallError> for GuestError {
    fn from(e: CallError) -> Self {
        match e {
            // The job's result will not be accepted either: fail the call.
            CallError::Refused(refusal) => {
                GuestError::Fatal(format!("the state node refused: {refusal}"))
            }
            CallError::Failed(e) => e,
        }
    }
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
    job: JobRef,
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
    Refused(RemoteRefusal),
}

/// Most requests the state node answers at once.
const CONCURRENT_ANSWERS: usize = 64;

fn chunk_size(client: &Client) -> u64 {
    room(client) as u64
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
        Ok(request) => answer(engine, request, chunk_size(client)).await,
        Err(e) => RpcReply::Failed(GuestError::Fatal(e)),
    }
}

async fn perform(engine: &Engine, payload: &[u8]) -> EffectOutcome {
    let call = match decode::<EffectRequest>(payload) {
        Ok(call) => call,
        Err(e) => return EffectOutcome::Failed(GuestError::Fatal(e)),
    };
    let job = &call.job;
    match engine
        .remote_effect(&job.job_id, job.attempt, job.copy, &call.name, call.request)
        .await
    {
        Ok(answer) => EffectOutcome::Performed(EffectReply {
            response: answer.response.map(|bytes| Digest::of(&bytes)),
            call: answer.record,
        }),
        Err(refusal) => {
            tracing::warn!(job = job.job_id, effect = call.name, %refusal, "effect request refused");
            EffectOutcome::Refused(refusal)
        }
    }
}

/// Asks the state node to perform an effect call for the job; returns the
/// response (fetched by digest and verified) or the guest's error, with the
/// record.
pub(crate) async fn effect(
    client: &Client,
    tenant: &str,
    call: EffectRequest,
) -> Result<EffectAnswer, CallError> {
    let payload = encode(&call);
    if payload.len() > chunk_size(client) as usize {
        return Err(CallError::Failed(GuestError::Fatal(format!(
            "effect request of {} bytes is larger than this NATS server's max_payload allows",
            payload.len()
        ))));
    }
    let request = async_nats::Request::new()
        .payload(payload.into())
        .timeout(Some(EFFECT_TIMEOUT));
    let reply = client
        .send_request(subject(EFFECT_SUBJECT, tenant), request)
        .await
        .map_err(|e| GuestError::Retryable(format!("the state node did not answer: {e}")))?;
    let reply = match decode::<EffectOutcome>(&reply.payload).map_err(GuestError::Retryable)? {
        EffectOutcome::Performed(reply) => reply,
        EffectOutcome::Refused(refusal) => return Err(CallError::Refused(refusal)),
        EffectOutcome::Failed(e) => return Err(CallError::Failed(e)),
    };
    let response = match reply.response {
        Ok(digest) => match fetch_bytes(client, tenant, &call.job, &digest).await {
            Ok(bytes) => Ok(bytes),
            // The effect ran: its record stays, the guest sees the error.
            Err(e) => Err(GuestError::from(e)),
        },
        Err(e) => Err(e),
    };
    Ok(EffectAnswer {
        response,
        record: reply.call,
    })
}

/// The job's component (or one of its kept effect responses) by digest,
/// verified.
pub(crate) async fn fetch_bytes(
    client: &Client,
    tenant: &str,
    job: &JobRef,
    digest: &Digest,
) -> Result<Vec<u8>, CallError> {
    let bytes = call(client, tenant, job, Request::Bytes { digest: *digest })
        .await?
        .ok_or_else(|| GuestError::Retryable(format!("the state node has no {digest}")))?;
    let actual = Digest::of(&bytes);
    if actual != *digest {
        return Err(CallError::Failed(GuestError::Retryable(format!(
            "{digest} arrived with digest {actual}; refusing it"
        ))));
    }
    Ok(bytes)
}

/// The whole reply to `request`, scoped by the state node's record of the
/// job it names.
async fn whole(
    engine: &Engine,
    job: &JobRef,
    request: &Request,
) -> Result<Option<Vec<u8>>, RpcReply> {
    let refused = |refusal: RemoteRefusal| {
        tracing::warn!(job = job.job_id, attempt = job.attempt, %refusal, "worker request refused");
        RpcReply::Refused(refusal)
    };
    let (id, attempt, copy) = (job.job_id.as_str(), job.attempt, job.copy);
    match request {
        Request::Claim => match engine.claim_remote(id, attempt, copy) {
            Ok((_, config)) => Ok(Some(encode(&config))),
            Err(refusal) => Err(refused(refusal)),
        },
        Request::Bytes { digest } => match engine.remote_bytes(id, attempt, copy, digest) {
            Ok(Ok(bytes)) => Ok(bytes),
            Ok(Err(e)) => Err(RpcReply::Failed(GuestError::Retryable(format!(
                "cannot read {digest}: {e}"
            )))),
            Err(refusal) => Err(refused(refusal)),
        },
        Request::GetBlob { id: blob } => {
            let running = engine.remote_job(id, attempt, copy).map_err(refused)?;
            match engine.remote_get_blob(&running, blob) {
                Ok(found) => Ok(Some(encode(&found))),
                Err(e) => Err(RpcReply::Failed(e)),
            }
        }
        Request::Query { schema, filter } => {
            let running = engine.remote_job(id, attempt, copy).map_err(refused)?;
            // The scan runs on the engine's blocking pool.
            match engine.remote_query_blobs(&running, schema, filter).await {
                Ok(blobs) => Ok(Some(encode(&blobs))),
                Err(e) => Err(RpcReply::Failed(e)),
            }
        }
    }
}

async fn answer(engine: &Engine, request: RpcRequest, limit: u64) -> RpcReply {
    let whole = match whole(engine, &request.job, &request.request).await {
        Ok(whole) => whole,
        Err(reply) => return reply,
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

/// Asks the state node for `job`; `Ok(None)` when what was asked for does
/// not exist. Asked on the subject of `tenant`, the job's (the state node
/// takes the tenant from its record of the job, not from the subject).
pub(crate) async fn call(
    client: &Client,
    tenant: &str,
    job: &JobRef,
    request: Request,
) -> Result<Option<Vec<u8>>, CallError> {
    let to = subject(RPC_SUBJECT, tenant);
    const ATTEMPTS: usize = 3;
    let chunk = chunk_size(client);
    'attempt: for _ in 0..ATTEMPTS {
        let mut out: Vec<u8> = Vec::new();
        let mut first: Option<(u64, Option<Digest>)> = None;
        loop {
            let payload = encode(&RpcRequest {
                job: job.clone(),
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
                RpcReply::Failed(e) => return Err(CallError::Failed(e)),
                RpcReply::Refused(refusal) => return Err(CallError::Refused(refusal)),
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
                        return Err(CallError::Failed(GuestError::Retryable(
                            "the state node sent an empty chunk".into(),
                        )));
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
    Err(CallError::Failed(GuestError::Retryable(
        "the reply kept changing while it was fetched".into(),
    )))
}
