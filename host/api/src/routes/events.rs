//! `GET /v1/events`: the tenant's event log as server-sent events, and what
//! every live stream shares (the WebSocket of `ws.rs` too): the event feed,
//! the bounded per-client buffer with its final word, and subject patterns.
//!
//! Each client gets a task that reads the event log from its position and
//! pushes matching events into a bounded buffer. The host never waits for
//! a client: when the buffer is full the task stops, and the client gets
//! what was buffered, then a final `lagged` event naming the last sequence
//! delivered, and the stream ends; reconnecting with that sequence as
//! `Last-Event-ID` resumes without a gap.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use reyna_engine::{Engine, EngineError, TenantId, TenantView};
use reyna_manifest::{Subject, SubjectPattern};
use tokio::sync::{mpsc, watch};

use crate::AppState;
use crate::auth::Reader;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::QueryParams;
use crate::limits::until_revoked;
use crate::wire::{Event, EventsParams, Lagged};

/// Events read from the store per round trip.
const BATCH: usize = 512;

/// A subject pattern from a client (`None` or empty: everything).
pub(crate) fn subject_pattern(text: Option<&str>) -> Result<SubjectPattern, ApiError> {
    match text {
        None | Some("") => SubjectPattern::parse(">"),
        Some(text) => SubjectPattern::parse(text),
    }
    .map_err(|e| {
        ApiError::bad_request(
            "invalid-subject-pattern",
            format!("invalid subject pattern: {e}"),
        )
    })
}

/// Whether an event's subject matches `pattern`.
pub(crate) fn matches(pattern: &SubjectPattern, subject: &str) -> bool {
    Subject::parse(subject).is_ok_and(|s| pattern.matches(&s))
}

/// The final message to a client `capacity` events behind, whose last
/// delivered event is `last_seq`; `resume` says how to reconnect.
pub(crate) fn lagged(last_seq: u64, capacity: usize, resume: &str) -> Lagged {
    Lagged {
        last_seq,
        reason: format!("this client fell {capacity} events behind; reconnect with {resume}"),
    }
}

/// One tenant's event log read from a position, waiting for new events.
pub(crate) struct EventFeed {
    view: TenantView,
    watch: watch::Receiver<u64>,
    after: u64,
}

impl EventFeed {
    /// A feed of `tenant`'s events after `after` (`None`: after the newest
    /// event, so the feed is live).
    pub(crate) fn new(engine: &Engine, tenant: &TenantId, after: Option<u64>) -> Self {
        let watch = engine.watch_events();
        let after = after.unwrap_or_else(|| *watch.borrow());
        Self {
            view: engine.tenant(tenant),
            watch,
            after,
        }
    }

    /// The sequence of the last event handled.
    pub(crate) fn position(&self) -> u64 {
        self.after
    }

    /// Moves the position back to `after` (no-op when already there or
    /// before): the events after it are read again.
    pub(crate) fn rewind(&mut self, after: u64) {
        self.after = self.after.min(after);
    }

    /// Marks the events up to `seq` handled.
    pub(crate) fn handled(&mut self, seq: u64) {
        self.after = self.after.max(seq);
    }

    /// The next events after the position (which does not move: call
    /// [`EventFeed::handled`]), waiting until there are some; `None` when
    /// the engine stops. Cancel-safe.
    pub(crate) async fn next(&mut self) -> Result<Option<Vec<reyna_engine::Event>>, EngineError> {
        loop {
            self.watch.borrow_and_update();
            let batch = self.view.events_after(self.after, BATCH)?;
            if !batch.is_empty() {
                return Ok(Some(batch));
            }
            if self.watch.changed().await.is_err() {
                return Ok(None);
            }
        }
    }
}

/// What became of a message pushed into an [`Outbox`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Push {
    /// Buffered.
    Sent,
    /// The buffer is full: the client is too slow.
    Full,
    /// The client is gone.
    Gone,
}

/// The producing side of a client's bounded buffer.
pub(crate) struct Outbox<T> {
    tx: mpsc::Sender<T>,
    last: Arc<Mutex<VecDeque<T>>>,
}

/// The sending side: buffered messages first, then the final words.
pub(crate) struct Inbox<T> {
    rx: mpsc::Receiver<T>,
    last: Arc<Mutex<VecDeque<T>>>,
}

/// A buffer of `capacity` messages (at least one) for one live client.
pub(crate) fn outbox<T>(capacity: usize) -> (Outbox<T>, Inbox<T>) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let last = Arc::new(Mutex::new(VecDeque::new()));
    (
        Outbox {
            tx,
            last: Arc::clone(&last),
        },
        Inbox { rx, last },
    )
}

impl<T> Outbox<T> {
    /// Buffers `message` without waiting.
    pub(crate) fn push(&self, message: T) -> Push {
        match self.tx.try_send(message) {
            Ok(()) => Push::Sent,
            Err(mpsc::error::TrySendError::Full(_)) => Push::Full,
            Err(mpsc::error::TrySendError::Closed(_)) => Push::Gone,
        }
    }

    /// Ends the stream: the client gets what is buffered, then `words`.
    pub(crate) fn finish(self, words: impl IntoIterator<Item = T>) {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(words);
    }

    /// Completes when the client is gone.
    pub(crate) async fn closed(&self) {
        self.tx.closed().await;
    }
}

impl<T> Inbox<T> {
    /// The next message to send; `None` once the producer is done and
    /// everything, final words included, was taken.
    pub(crate) async fn next(&mut self) -> Option<T> {
        match self.rx.recv().await {
            Some(message) => Some(message),
            None => self
                .last
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop_front(),
        }
    }
}

/// Follow the caller's tenant's events live as `text/event-stream`. Each
/// event's `id` is its sequence and its `data` an [`Event`]; idle streams
/// get heartbeat comments. Resume with `Last-Event-ID` (or `after=`).
#[utoipa::path(get, path = "/v1/events", tag = "events", security(("bearer" = [])),
    params(
        EventsParams,
        ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this sequence"),
    ),
    responses(
        (status = 200, description = "Server-sent events: `data` is an Event; a final `lagged` event (data: Lagged) ends a stream that fell behind; a final `revoked` event ends the stream of a token revoked meanwhile", content_type = "text/event-stream", body = Event),
        (status = 429, description = "`too-many-streams`: this token (max-streams-per-token) or the host (max-streams) has as many live streams, WebSockets and long-polls open as allowed; `Retry-After` says when to try again", body = Problem, content_type = "application/problem+json"),
        (status = "4XX", description = "Bad pattern or position, or refused", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn stream(
    Reader(caller): Reader,
    State(state): State<AppState>,
    headers: HeaderMap,
    QueryParams(q): QueryParams<EventsParams>,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    let pattern = subject_pattern(q.subject.as_deref())?;
    let resume = match headers.get("last-event-id") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid-last-event-id",
                        "Last-Event-ID must be an event sequence number",
                    )
                })?,
        ),
        None => q.after,
    };
    // Held by the response stream: freed when it ends or the client leaves.
    let slot = state.streams().open(&caller.token_id)?;
    // Without a position, start at the newest event: the stream is live.
    let mut feed = EventFeed::new(state.engine(), &caller.tenant, resume);
    let capacity = state.config().sse_buffer.max(1);
    let (outbox, inbox) = outbox::<SseEvent>(capacity);
    let mut shutdown = state.shutdown_signal();
    let revoked = until_revoked(state.clone(), caller.token_id.clone());
    tokio::spawn(async move {
        tokio::pin!(revoked);
        loop {
            let batch = tokio::select! {
                batch = feed.next() => batch,
                () = outbox.closed() => return,
                _ = shutdown.changed() => return,
                () = &mut revoked => {
                    // The last word, then the end: a revoked token follows nothing.
                    outbox.finish([SseEvent::default()
                        .event("revoked")
                        .data("the token was revoked")]);
                    return;
                }
            };
            let batch = match batch {
                Ok(Some(batch)) => batch,
                Ok(None) => return,
                Err(e) => {
                    tracing::error!(error = %e, "reading events for a live stream");
                    return;
                }
            };
            for event in batch {
                let seq = event.seq;
                if matches(&pattern, &event.subject) {
                    let sse = SseEvent::default()
                        .id(seq.to_string())
                        .json_data(Event::from(event));
                    let sse = match sse {
                        Ok(sse) => sse,
                        Err(e) => {
                            tracing::error!(error = %e, "encoding an event");
                            return;
                        }
                    };
                    match outbox.push(sse) {
                        Push::Sent => {}
                        Push::Full => {
                            let last = feed.position();
                            let word = SseEvent::default().event("lagged").json_data(lagged(
                                last,
                                capacity,
                                &format!("Last-Event-ID: {last}"),
                            ));
                            outbox.finish(word.ok());
                            return;
                        }
                        Push::Gone => return,
                    }
                }
                feed.handled(seq);
            }
        }
    });

    // Buffered events first, then (if the producer gave up) the final word.
    let events = futures_util::stream::unfold((inbox, slot), |(mut inbox, slot)| async move {
        let event = inbox.next().await?;
        Some((Ok(event), (inbox, slot)))
    });
    Ok(Sse::new(events).keep_alive(
        KeepAlive::new()
            .interval(state.config().sse_heartbeat)
            .text("heartbeat"),
    ))
}
