//! The messages of the WebSocket API (`/v1/ws`).

#[allow(clippy::wildcard_imports)]
use super::*;

// ---- WebSocket (`/v1/ws`) ---------------------------------------------------

/// Any client message: only its `type` is read first, then the message is
/// read again as the type it names (so `create_blob`'s `data` stays byte
/// for byte as sent).
#[derive(Debug, Deserialize)]
pub struct WsKind {
    /// `auth`, `subscribe`, `unsubscribe`, `watch`, `unwatch` or `create_blob`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Echoed in an `error` about this message, when it has one.
    #[serde(default)]
    pub request_id: Option<String>,
}

/// `{"type":"auth","token":"..."}`: the first message of a socket opened
/// without an `Authorization` header.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WsAuth {
    /// `auth`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The bearer token.
    pub token: String,
}

/// `subscribe` (follow the events whose subject matches `pattern`) and
/// `unsubscribe` (stop; `after` is not allowed).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WsSubscribe {
    /// `subscribe` or `unsubscribe`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Subject pattern with NATS wildcards (`*` one token, `>` the rest).
    pub pattern: String,
    /// Deliver the matching events after this sequence (resume); without
    /// it, the events from now on.
    #[serde(default)]
    pub after: Option<u64>,
}

/// `watch` (send `blob.derived` for the blob's derived blobs) and `unwatch`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WsWatch {
    /// `watch` or `unwatch`.
    #[serde(rename = "type")]
    pub kind: String,
    /// One of the tenant's blobs.
    pub blob_id: String,
    /// Derived blobs created after this sequence (resume); without it,
    /// the ones created from now on.
    #[serde(default)]
    pub after: Option<u64>,
}

/// `create_blob`: what `POST /v1/blobs` takes, with a client request id.
/// (The fields of [`CreateBlob`] are repeated, not flattened: serde cannot
/// flatten a `RawValue`, and `data` must stay byte for byte as sent.)
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WsCreateBlob {
    /// `create_blob`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The client's id for this request, echoed in the answer.
    pub request_id: String,
    /// Schema id the data must match.
    pub schema: String,
    /// The blob: any JSON document, stored byte for byte as sent.
    #[schema(value_type = Object)]
    pub data: Box<RawValue>,
    /// Ids of existing blobs of the same tenant it derives from.
    #[serde(default)]
    pub parents: Vec<String>,
}

/// A derived blob of a watched blob.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WsDerived {
    /// The watched blob.
    pub parent_id: String,
    /// The new derived blob.
    pub derived_id: String,
    /// Its schema.
    pub schema: String,
    /// The plugin that made it.
    pub processor: String,
    /// That plugin's version.
    pub version: String,
    /// The sequence of its `blob.created` event.
    pub seq: u64,
}

/// A blob created over the socket.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WsCreated {
    /// The `request_id` of the `create_blob` message.
    pub request_id: String,
    /// The blob, as `POST /v1/blobs` answers it (`id` is its id).
    #[serde(flatten)]
    pub blob: Blob,
}

/// A refusal of one client message; the socket stays open.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WsError {
    /// The `request_id` of the message refused, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The same problem document the HTTP API gives for this refusal.
    pub problem: crate::error::Problem,
}

/// Every message the host sends on `/v1/ws`, tagged by `type`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type")]
pub enum WsMessage {
    /// The socket is authenticated: the token's tenant and role.
    #[serde(rename = "authenticated")]
    Authenticated {
        /// The tenant every message is about.
        tenant: String,
        /// The token's role.
        role: Role,
    },
    /// A subscription is open.
    #[serde(rename = "subscribed")]
    Subscribed {
        /// The pattern, as sent.
        pattern: String,
        /// Matching events after this sequence are delivered.
        after: u64,
    },
    /// A subscription is closed.
    #[serde(rename = "unsubscribed")]
    Unsubscribed {
        /// The pattern, as sent.
        pattern: String,
    },
    /// A blob is watched.
    #[serde(rename = "watching")]
    Watching {
        /// The blob.
        blob_id: String,
        /// Its derived blobs created after this sequence are reported.
        after: u64,
    },
    /// A blob is no longer watched.
    #[serde(rename = "unwatched")]
    Unwatched {
        /// The blob.
        blob_id: String,
    },
    /// An event matching a subscription (the fields of [`Event`]).
    #[serde(rename = "event")]
    Event(Event),
    /// A derived blob of a watched blob.
    #[serde(rename = "blob.derived")]
    BlobDerived(WsDerived),
    /// The answer to `create_blob`.
    #[serde(rename = "created")]
    Created(Box<WsCreated>),
    /// A refused message.
    #[serde(rename = "error")]
    Error(WsError),
    /// The last message to a client that fell behind; the socket closes.
    #[serde(rename = "lagged")]
    Lagged(Lagged),
}
