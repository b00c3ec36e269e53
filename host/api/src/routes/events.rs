//! `GET /v1/events`: the tenant's event log as server-sent events.
//!
//! Each client gets a task that reads the event log from its position and
//! pushes matching events into a bounded buffer. The host never waits for
//! a client: when the buffer is full the task stops, and the client gets
//! what was buffered, then a final `lagged` event naming the last sequence
//! delivered, and the stream ends; reconnecting with that sequence as
//! `Last-Event-ID` resumes without a gap.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use reyna_manifest::{Subject, SubjectPattern};
use tokio::sync::mpsc;

use crate::AppState;
use crate::auth::Reader;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::QueryParams;
use crate::wire::{Event, EventsParams, Lagged};

/// Events read from the store per round trip.
const BATCH: usize = 512;

/// Follow the caller's tenant's events live as `text/event-stream`. Each
/// event's `id` is its sequence and its `data` an [`Event`]; idle streams
/// get heartbeat comments. Resume with `Last-Event-ID` (or `after=`).
#[utoipa::path(get, path = "/v1/events", tag = "events", security(("bearer" = [])),
    params(
        EventsParams,
        ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this sequence"),
    ),
    responses(
        (status = 200, description = "Server-sent events: `data` is an Event; a final `lagged` event (data: Lagged) ends a stream that fell behind", content_type = "text/event-stream", body = Event),
        (status = 429, description = "`too-many-streams`: this token (max-streams-per-token) or the host (max-streams) has as many live streams and long-polls open as allowed; `Retry-After` says when to try again", body = Problem, content_type = "application/problem+json"),
        (status = "4XX", description = "Bad pattern or position, or refused", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn stream(
    Reader(caller): Reader,
    State(state): State<AppState>,
    headers: HeaderMap,
    QueryParams(q): QueryParams<EventsParams>,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    let pattern = match q.subject.as_deref() {
        None | Some("") => SubjectPattern::parse(">"),
        Some(text) => SubjectPattern::parse(text),
    }
    .map_err(|e| {
        ApiError::bad_request(
            "invalid-subject-pattern",
            format!("invalid subject pattern: {e}"),
        )
    })?;
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
    let engine = state.engine().clone();
    let view = engine.tenant(&caller.tenant);
    // Without a position, start at the newest event: the stream is live.
    let start = resume.unwrap_or_else(|| *engine.watch_events().borrow());

    let capacity = state.config().sse_buffer.max(1);
    let (tx, rx) = mpsc::channel::<SseEvent>(capacity);
    let last_word: Arc<Mutex<Option<SseEvent>>> = Arc::new(Mutex::new(None));
    let mut shutdown = state.shutdown_signal();
    let final_slot = Arc::clone(&last_word);
    tokio::spawn(async move {
        let mut watch = engine.watch_events();
        let mut after = start;
        loop {
            watch.borrow_and_update();
            let batch = match view.events_after(after, BATCH) {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::error!(error = %e, "reading events for a live stream");
                    return;
                }
            };
            let full = batch.len() == BATCH;
            for event in batch {
                let seq = event.seq;
                let wanted = Subject::parse(&event.subject).is_ok_and(|s| pattern.matches(&s));
                if wanted {
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
                    match tx.try_send(sse) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            let lagged = Lagged {
                                last_seq: after,
                                reason: format!(
                                    "this client fell {capacity} events behind; reconnect with Last-Event-ID: {after}"
                                ),
                            };
                            if let Ok(event) = SseEvent::default().event("lagged").json_data(lagged)
                            {
                                *final_slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(event);
                            }
                            return;
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => return,
                    }
                }
                after = seq;
            }
            if full {
                continue;
            }
            tokio::select! {
                changed = watch.changed() => if changed.is_err() { return },
                _ = tx.closed() => return,
                _ = shutdown.changed() => return,
            }
        }
    });

    // Buffered events first, then (if the producer gave up) the final word.
    let events = futures_util::stream::unfold(
        (rx, Some(last_word), slot),
        |(mut rx, last, slot)| async move {
            match rx.recv().await {
                Some(event) => Some((Ok(event), (rx, last, slot))),
                None => {
                    let last = last?;
                    let event = last.lock().unwrap_or_else(|e| e.into_inner()).take()?;
                    Some((Ok(event), (rx, None, slot)))
                }
            }
        },
    );
    Ok(Sse::new(events).keep_alive(
        KeepAlive::new()
            .interval(state.config().sse_heartbeat)
            .text("heartbeat"),
    ))
}
