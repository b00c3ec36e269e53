//! `GET /v1/ws`: the tenant's live events over a WebSocket, with
//! `blob.derived` messages for watched blobs and `create_blob` requests.
//! The protocol is in `docs/WEBSOCKET.md`.
//!
//! One task per socket reads the client's messages and the event log from
//! one position (the [`EventFeed`] SSE uses) and pushes what the client
//! gets into the same bounded buffer ([`Outbox`]); a second task writes
//! the buffer to the socket. The host never waits for a client: when the
//! buffer is full the client gets what was buffered, a final `lagged`
//! message naming the last sequence handled, and a close frame.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::Response;
use futures_util::stream::SplitStream;
use futures_util::{SinkExt as _, StreamExt as _};
use reyna_engine::{BlobId, Role, TenantView};
use reyna_manifest::SubjectPattern;
use serde::de::DeserializeOwned;

use super::blob_id;
use super::events::{EventFeed, Inbox, Outbox, Push, lagged, matches, outbox, subject_pattern};
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::limits::{StreamSlot, until_revoked};
use crate::wire::{
    Blob, Event, WsAuth, WsCreateBlob, WsCreated, WsDerived, WsError, WsKind, WsMessage,
    WsSubscribe, WsWatch,
};

/// Largest client message, in bytes (or `max-body` when smaller): a bigger
/// one closes the socket with 1009. Larger blobs go through `POST /v1/blobs`.
const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// Time a socket opened without an `Authorization` header has to send its
/// `auth` message.
const AUTH_TIMEOUT: Duration = Duration::from_secs(5);
/// Time one message may take to reach the client's socket; a client that
/// stops reading is cut after it.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// The close reason when the host fails (the cause is logged, not sent).
const FAILED: &str = "the host failed; the cause is in its log";
const SHUTTING_DOWN: &str = "the host is shutting down";
const REVOKED: &str = "the token was revoked";
/// Subject patterns one socket may follow at once.
const MAX_SUBSCRIPTIONS: usize = 64;
/// Blobs one socket may watch (derived blobs of watched blobs are watched
/// too while there is room).
const MAX_WATCHED: usize = 10_000;

/// The caller, when the request has an `Authorization` header (a wrong one
/// is refused with 401 before the upgrade).
pub(crate) struct HeaderCaller(Option<Caller>);

impl FromRequestParts<AppState> for HeaderCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if !parts.headers.contains_key(header::AUTHORIZATION) {
            return Ok(Self(None));
        }
        let caller = Caller::from_request_parts(parts, state).await?;
        caller.require(Role::Reader)?;
        Ok(Self(Some(caller)))
    }
}

/// Open a WebSocket on the caller's tenant's live events (reader or above).
///
/// Authenticate with `Authorization: Bearer <token>` (a wrong one is a 401
/// before the upgrade) or, where a header cannot be set (browsers), with a
/// first message `{"type":"auth","token":"..."}` within 5 seconds (a wrong
/// one closes the socket with 1008 and the reason). The host's first
/// message is `{"type":"authenticated","tenant","role"}`.
///
/// Client messages are JSON text, tagged by `type`:
/// `subscribe {pattern, after?}` (NATS wildcards; `after` resumes after that
/// sequence) answered `subscribed`; `unsubscribe {pattern}`;
/// `watch {blob_id, after?}` / `unwatch {blob_id}`; `create_blob {request_id,
/// schema, data, parents?}` (writer) answered `created` (the blob, with the
/// request id) or `error {request_id, problem}` with the problem+json
/// `POST /v1/blobs` would give. A malformed message gets an `error` and the
/// socket stays open; one over 1 MiB closes it (1009).
///
/// Host messages: `event` (the fields of [`Event`]) for each event matching
/// a subscription, and `blob.derived {parent_id, derived_id, schema,
/// processor, version, seq}` for each derived blob of a watched blob (a
/// blob created over the socket is watched; so are derived blobs of watched
/// ones), in event order. A client that falls `sse-buffer` messages behind
/// gets `lagged {last_seq}` and a close (1013): subscribing and watching
/// again with `after: last_seq` misses nothing. A socket holds one of the
/// token's live-stream slots (429 when none is free).
#[utoipa::path(get, path = "/v1/ws", tag = "events", security(("bearer" = []), ()),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol; every message is JSON text, one of WsMessage", body = WsMessage),
        (status = 400, description = "`websocket-required`: not a WebSocket handshake", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "A wrong `Authorization` header (or none, on a request that is not a WebSocket handshake)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`too-many-streams`: this token (max-streams-per-token) or the host (max-streams) has as many live streams, WebSockets and long-polls open as allowed; `Retry-After` says when to try again", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn socket(
    HeaderCaller(caller): HeaderCaller,
    State(state): State<AppState>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let upgrade = match (upgrade, &caller) {
        (Ok(upgrade), _) => upgrade,
        (Err(_), None) => {
            return Err(ApiError::Unauthorized(
                "missing `Authorization: Bearer <token>` header".into(),
            ));
        }
        (Err(rejection), Some(_)) => {
            return Err(ApiError::bad_request(
                "websocket-required",
                format!(
                    "/v1/ws is a WebSocket: {}",
                    rejection.body_text().to_lowercase()
                ),
            ));
        }
    };
    // Taken before the upgrade, so a full host answers 429. A socket that
    // has yet to authenticate holds a slot of its own (only `max-streams`
    // bounds those) until its `auth` message names the token.
    let slot = match &caller {
        Some(caller) => state.streams().open(&caller.token_id)?,
        None => {
            static PENDING: AtomicU64 = AtomicU64::new(0);
            let n = PENDING.fetch_add(1, Ordering::Relaxed);
            state
                .streams()
                .open(&format!("unauthenticated websocket {n}"))?
        }
    };
    let limit = MAX_MESSAGE_BYTES.min(state.config().max_body_bytes);
    Ok(upgrade
        .max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| run(socket, state, caller, slot, limit)))
}

/// Why a socket ends.
enum End {
    /// The client is gone: nothing more to send.
    Gone,
    /// The buffer is full: `lagged`, then a close.
    Lagged,
    /// A close frame with this code and reason.
    Close(u16, String),
}

fn text(message: &WsMessage) -> Option<Message> {
    match serde_json::to_string(message) {
        Ok(json) => Some(Message::Text(json.into())),
        Err(e) => {
            tracing::error!(error = %e, "encoding a websocket message");
            None
        }
    }
}

/// A close frame; the reason is cut to the 123 bytes a frame can carry.
fn close(code: u16, reason: &str) -> Message {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Message::Close(Some(CloseFrame {
        code,
        reason: reason[..end].into(),
    }))
}

async fn run(
    socket: WebSocket,
    state: AppState,
    caller: Option<Caller>,
    slot: StreamSlot,
    limit: usize,
) {
    let (sink, mut incoming) = socket.split();
    let capacity = state.config().sse_buffer.max(1);
    let (outbox, inbox) = outbox::<Message>(capacity);
    let writer = tokio::spawn(write(sink, inbox));
    let (caller, _slot) = match caller {
        Some(caller) => (caller, slot),
        None => match authenticate(&state, &mut incoming).await {
            Ok(caller) => {
                // The token's own slot replaces the one held while waiting.
                drop(slot);
                match state.streams().open(&caller.token_id) {
                    Ok(slot) => (caller, slot),
                    Err(e) => {
                        // The problem in full, then the close.
                        let problem = WsMessage::Error(WsError {
                            request_id: None,
                            problem: e.problem(),
                        });
                        outbox.finish(
                            text(&problem)
                                .into_iter()
                                .chain([close(close_code::AGAIN, "too-many-streams")]),
                        );
                        let _ = writer.await;
                        return;
                    }
                }
            }
            Err(reason) => {
                outbox.finish([close(close_code::POLICY, &reason)]);
                let _ = writer.await;
                return;
            }
        },
    };
    let mut session = Session {
        view: state.engine().tenant(&caller.tenant),
        state,
        caller,
        outbox,
        subscriptions: Vec::new(),
        watched: HashMap::new(),
    };
    let words = session.serve(&mut incoming, limit).await;
    let Session { outbox, .. } = session;
    outbox.finish(words);
    let _ = writer.await;
}

/// Reads the `auth` message of a socket opened without a header: the
/// caller, or the reason the socket is closed.
async fn authenticate(
    state: &AppState,
    incoming: &mut SplitStream<WebSocket>,
) -> Result<Caller, String> {
    let first = tokio::time::timeout(AUTH_TIMEOUT, async {
        loop {
            match incoming.next().await {
                Some(Ok(Message::Text(text))) => return Some(text),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                _ => return None,
            }
        }
    })
    .await;
    let text = match first {
        Ok(Some(text)) => text,
        Ok(None) => return Err("expected an auth message".into()),
        Err(_) => {
            return Err(format!(
                "no auth message within {}s",
                AUTH_TIMEOUT.as_secs()
            ));
        }
    };
    let auth = match serde_json::from_str::<WsAuth>(&text) {
        Ok(auth) if auth.kind == "auth" => auth,
        _ => return Err(r#"the first message must be {"type":"auth","token":"..."}"#.into()),
    };
    Caller::from_secret(state, auth.token.trim()).map_err(|e| e.to_string())
}

/// Writes the buffer to the socket, then the final words; a client that
/// takes longer than [`SEND_TIMEOUT`] for one message is cut.
async fn write(
    mut sink: futures_util::stream::SplitSink<WebSocket, Message>,
    mut inbox: Inbox<Message>,
) {
    while let Some(message) = inbox.next().await {
        let closing = matches!(message, Message::Close(_));
        match tokio::time::timeout(SEND_TIMEOUT, sink.send(message)).await {
            Ok(Ok(())) if !closing => {}
            _ => return,
        }
    }
    let _ = tokio::time::timeout(SEND_TIMEOUT, sink.close()).await;
}

/// A subject pattern the client follows.
struct Subscription {
    /// As the client sent it.
    text: String,
    pattern: SubjectPattern,
    /// Matching events after this sequence are delivered.
    since: u64,
}

/// One authenticated socket.
struct Session {
    state: AppState,
    caller: Caller,
    view: TenantView,
    outbox: Outbox<Message>,
    subscriptions: Vec<Subscription>,
    /// Watched blobs: derived blobs created after the sequence are reported.
    watched: HashMap<BlobId, u64>,
}

impl Session {
    /// Serves the socket until it ends; returns the final words.
    async fn serve(&mut self, incoming: &mut SplitStream<WebSocket>, limit: usize) -> Vec<Message> {
        let mut feed: Option<EventFeed> = None;
        let mut shutdown = self.state.shutdown_signal();
        let revoked = until_revoked(self.state.clone(), self.caller.token_id.clone());
        tokio::pin!(revoked);
        let greeting = WsMessage::Authenticated {
            tenant: self.caller.tenant.to_string(),
            role: self.caller.role.into(),
        };
        let mut result = self.push(&greeting);
        while result.is_ok() {
            let next = async {
                match feed.as_mut() {
                    Some(feed) => feed.next().await,
                    None => std::future::pending().await,
                }
            };
            result = tokio::select! {
                message = incoming.next() => match message {
                    Some(Ok(Message::Text(text))) => self.handle(&text, &mut feed).await,
                    Some(Ok(Message::Binary(_))) => self.refuse(None, ApiError::bad_request(
                        "malformed-message",
                        "binary messages are not understood: send JSON text",
                    )),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => Ok(()),
                    Some(Ok(Message::Close(_))) | None => Err(End::Gone),
                    Some(Err(e)) => Err(read_error(e, limit)),
                },
                batch = next => match batch {
                    Ok(Some(batch)) => match feed.as_mut() {
                        Some(feed) => self.deliver(feed, batch),
                        None => Ok(()),
                    },
                    Ok(None) => Err(End::Close(close_code::AWAY, SHUTTING_DOWN.into())),
                    Err(e) => {
                        tracing::error!(error = %e, "reading events for a websocket");
                        Err(End::Close(close_code::ERROR, FAILED.into()))
                    }
                },
                () = self.outbox.closed() => Err(End::Gone),
                _ = shutdown.changed() => Err(End::Close(close_code::AWAY, SHUTTING_DOWN.into())),
                () = &mut revoked => Err(End::Close(close_code::POLICY, REVOKED.into())),
            };
        }
        match result {
            Ok(()) | Err(End::Gone) => Vec::new(),
            Err(End::Close(code, reason)) => vec![close(code, &reason)],
            Err(End::Lagged) => {
                let last = feed.as_ref().map_or_else(
                    || *self.state.engine().watch_events().borrow(),
                    EventFeed::position,
                );
                let capacity = self.state.config().sse_buffer.max(1);
                let resume = format!("`after: {last}` on each subscribe and watch");
                let lagged = WsMessage::Lagged(lagged(last, capacity, &resume));
                text(&lagged)
                    .into_iter()
                    .chain([close(close_code::AGAIN, "lagged")])
                    .collect()
            }
        }
    }

    /// Buffers a message for the client.
    fn push(&self, message: &WsMessage) -> Result<(), End> {
        let Some(message) = text(message) else {
            return Err(End::Close(close_code::ERROR, FAILED.into()));
        };
        match self.outbox.push(message) {
            Push::Sent => Ok(()),
            Push::Full => Err(End::Lagged),
            Push::Gone => Err(End::Gone),
        }
    }

    /// Answers a message with the problem the HTTP API would give.
    fn refuse(&self, request_id: Option<String>, error: ApiError) -> Result<(), End> {
        let problem = error.problem();
        if problem.status >= 500 {
            tracing::error!(error = %error, "websocket request failed");
        }
        self.push(&WsMessage::Error(WsError {
            request_id,
            problem,
        }))
    }

    /// Sends the client what `batch` holds for it: events matching a
    /// subscription, then `blob.derived` for derived blobs of watched blobs.
    fn deliver(
        &mut self,
        feed: &mut EventFeed,
        batch: Vec<reyna_engine::Event>,
    ) -> Result<(), End> {
        for event in batch {
            let seq = event.seq;
            let mut wanted = false;
            for sub in &mut self.subscriptions {
                // After a rewind, what a subscription already got is skipped.
                if seq > sub.since && matches(&sub.pattern, &event.subject) {
                    sub.since = seq;
                    wanted = true;
                }
            }
            let derived = self.derived(&event).map_err(|e| {
                tracing::error!(error = %e, "reading a derived blob for a websocket");
                End::Close(close_code::ERROR, FAILED.into())
            })?;
            if wanted {
                self.push(&WsMessage::Event(Event::from(event)))?;
            }
            for derived in derived {
                self.push(&WsMessage::BlobDerived(derived))?;
            }
            feed.handled(seq);
        }
        Ok(())
    }

    /// The `blob.derived` messages `event` makes: one per watched parent of
    /// the blob it created. The new blob is watched in turn.
    fn derived(&mut self, event: &reyna_engine::Event) -> Result<Vec<WsDerived>, ApiError> {
        let Some(id) = event.blob_id else {
            return Ok(Vec::new());
        };
        if self.watched.is_empty() || !event.subject.starts_with("blob.created.") {
            return Ok(Vec::new());
        }
        let Some(meta) = self.view.blob(id)? else {
            return Ok(Vec::new());
        };
        let Some(producer) = meta.producer.as_ref() else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for parent in &meta.parents {
            if let Some(since) = self.watched.get_mut(parent)
                && event.seq > *since
            {
                *since = event.seq;
                out.push(WsDerived {
                    parent_id: parent.to_string(),
                    derived_id: id.to_string(),
                    schema: meta.schema.clone(),
                    processor: producer.plugin.clone(),
                    version: producer.version.clone(),
                    seq: event.seq,
                });
            }
        }
        if !out.is_empty() && self.watched.len() < MAX_WATCHED {
            self.watched.entry(id).or_insert(event.seq);
        }
        Ok(out)
    }

    /// Handles one client message.
    async fn handle(&mut self, text: &str, feed: &mut Option<EventFeed>) -> Result<(), End> {
        let kind: WsKind = match serde_json::from_str(text) {
            Ok(kind) => kind,
            Err(e) => {
                return self.refuse(
                    None,
                    ApiError::bad_request(
                        "malformed-message",
                        format!("a message is a JSON object with a `type`: {e}"),
                    ),
                );
            }
        };
        let answer = match kind.kind.as_str() {
            "subscribe" => self.subscribe(text, feed),
            "unsubscribe" => self.unsubscribe(text),
            "watch" => self.watch(text, feed),
            "unwatch" => self.unwatch(text),
            "create_blob" => self.create_blob(text, feed).await,
            "auth" => Err(ApiError::bad_request(
                "invalid-message",
                "this socket is authenticated already",
            )),
            other => Err(ApiError::bad_request(
                "invalid-message",
                format!(
                    "unknown message type `{other}`: expected subscribe, unsubscribe, watch, unwatch or create_blob"
                ),
            )),
        };
        match answer {
            Ok(answer) => self.push(&answer),
            Err(e) => self.refuse(kind.request_id, e),
        }
    }

    /// Where a new subscription or watch starts (`after`, or the newest
    /// event), with the feed made or moved back to deliver from there.
    fn start(&self, feed: &mut Option<EventFeed>, after: Option<u64>) -> u64 {
        let since = after.unwrap_or_else(|| *self.state.engine().watch_events().borrow());
        match feed {
            Some(feed) => feed.rewind(since),
            None => {
                *feed = Some(EventFeed::new(
                    self.state.engine(),
                    &self.caller.tenant,
                    Some(since),
                ))
            }
        }
        since
    }

    fn subscribe(
        &mut self,
        text: &str,
        feed: &mut Option<EventFeed>,
    ) -> Result<WsMessage, ApiError> {
        let message: WsSubscribe = parse(text)?;
        let pattern = subject_pattern(Some(&message.pattern))?;
        let existing = self
            .subscriptions
            .iter()
            .position(|s| s.text == message.pattern);
        if existing.is_none() && self.subscriptions.len() >= MAX_SUBSCRIPTIONS {
            return Err(ApiError::bad_request(
                "too-many-subscriptions",
                format!(
                    "a socket follows at most {MAX_SUBSCRIPTIONS} patterns; unsubscribe one first"
                ),
            ));
        }
        let since = self.start(feed, message.after);
        let subscription = Subscription {
            text: message.pattern.clone(),
            pattern,
            since,
        };
        match existing {
            Some(i) => self.subscriptions[i] = subscription,
            None => self.subscriptions.push(subscription),
        }
        Ok(WsMessage::Subscribed {
            pattern: message.pattern,
            after: since,
        })
    }

    fn unsubscribe(&mut self, text: &str) -> Result<WsMessage, ApiError> {
        let message: WsSubscribe = parse(text)?;
        no_after("unsubscribe", message.after)?;
        let before = self.subscriptions.len();
        self.subscriptions.retain(|s| s.text != message.pattern);
        if self.subscriptions.len() == before {
            return Err(ApiError::NotFound(format!(
                "this socket has no subscription to `{}`",
                message.pattern
            )));
        }
        Ok(WsMessage::Unsubscribed {
            pattern: message.pattern,
        })
    }

    fn watch(&mut self, text: &str, feed: &mut Option<EventFeed>) -> Result<WsMessage, ApiError> {
        let message: WsWatch = parse(text)?;
        let id = blob_id(&message.blob_id)?;
        if self.view.blob(id)?.is_none() {
            return Err(ApiError::NotFound(format!(
                "blob {} not found",
                message.blob_id
            )));
        }
        if !self.watched.contains_key(&id) && self.watched.len() >= MAX_WATCHED {
            return Err(ApiError::bad_request(
                "too-many-watches",
                format!("a socket watches at most {MAX_WATCHED} blobs; unwatch some first"),
            ));
        }
        let since = self.start(feed, message.after);
        self.watched.insert(id, since);
        Ok(WsMessage::Watching {
            blob_id: message.blob_id,
            after: since,
        })
    }

    fn unwatch(&mut self, text: &str) -> Result<WsMessage, ApiError> {
        let message: WsWatch = parse(text)?;
        no_after("unwatch", message.after)?;
        let id = blob_id(&message.blob_id)?;
        if self.watched.remove(&id).is_none() {
            return Err(ApiError::NotFound(format!(
                "this socket does not watch blob {}",
                message.blob_id
            )));
        }
        Ok(WsMessage::Unwatched {
            blob_id: message.blob_id,
        })
    }

    async fn create_blob(
        &mut self,
        text: &str,
        feed: &mut Option<EventFeed>,
    ) -> Result<WsMessage, ApiError> {
        let message: WsCreateBlob = parse(text)?;
        self.caller.require(Role::Writer)?;
        // A socket outlives its upgrade: a token revoked since cannot write.
        if self.state.engine().token(&self.caller.token_id)?.is_none() {
            return Err(ApiError::Unauthorized(
                "this socket's token was revoked".into(),
            ));
        }
        // Its derived blobs come after the newest event.
        let since = self.start(feed, None);
        let meta = self
            .state
            .engine()
            .create_blob(
                self.caller.tenant.as_str(),
                &message.schema,
                message.data.get().as_bytes().to_vec(),
                message.parents,
            )
            .await?;
        if self.watched.len() < MAX_WATCHED {
            self.watched.insert(meta.id, since);
        }
        Ok(WsMessage::Created(Box::new(WsCreated {
            request_id: message.request_id,
            blob: Blob::from(meta),
        })))
    }
}

/// Refuses `after` on a message that stops something.
fn no_after(kind: &str, after: Option<u64>) -> Result<(), ApiError> {
    match after {
        None => Ok(()),
        Some(_) => Err(ApiError::bad_request(
            "invalid-message",
            format!("{kind} takes no `after`"),
        )),
    }
}

fn parse<T: DeserializeOwned>(text: &str) -> Result<T, ApiError> {
    serde_json::from_str(text)
        .map_err(|e| ApiError::bad_request("invalid-message", format!("invalid message: {e}")))
}

/// How a read error ends the socket: a message over the limit is closed
/// with 1009 and the limit; anything else means the client is gone.
fn read_error(error: axum::Error, limit: usize) -> End {
    use tokio_tungstenite::tungstenite::Error as WsFailure;
    let inner = error.into_inner();
    match inner.downcast_ref::<WsFailure>() {
        Some(WsFailure::Capacity(_)) => End::Close(
            close_code::SIZE,
            format!("a message may be at most {limit} bytes"),
        ),
        _ => End::Gone,
    }
}
