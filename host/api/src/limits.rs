//! What one client may hold at once: live streams and long-polls (per token
//! and in total), and the memory of request bodies being received and
//! handled (a budget in bytes shared by every request, and a deadline for
//! each body to arrive). A refusal here happens before the handler does
//! anything, so it changes nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use futures_util::StreamExt as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;

use crate::AppState;
use crate::error::ApiError;

/// The body budget counts in KiB: a permit is a KiB (so one acquisition,
/// at most `u32::MAX` permits, covers any body).
const UNIT: u64 = 1024;

/// Open live streams (`GET /v1/events`) and long-polls (`derived?wait=`),
/// per token and in total.
#[derive(Debug)]
pub(crate) struct StreamSlots {
    per_token: usize,
    total: usize,
    open: Mutex<OpenStreams>,
    /// Bumped whenever a token is revoked (or a tenant, with its tokens, is
    /// deleted): every open stream then checks that its token still exists.
    revocations: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct OpenStreams {
    total: usize,
    by_token: HashMap<String, usize>,
}

impl StreamSlots {
    pub(crate) fn new(per_token: usize, total: usize) -> Self {
        Self {
            per_token,
            total,
            open: Mutex::new(OpenStreams::default()),
            revocations: watch::channel(0).0,
        }
    }

    /// Says that a token was revoked (or a tenant deleted): every open stream
    /// and socket re-reads its token, and the revoked ones end.
    pub(crate) fn revoked(&self) {
        self.revocations.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Takes a slot for `token` (a token record id), or refuses with 429
    /// `too-many-streams` when the token or the host is at its cap. The
    /// slot is given back when the returned guard is dropped: when the
    /// stream ends, the long-poll answers, or the client goes away.
    pub(crate) fn open(self: &Arc<Self>, token: &str) -> Result<StreamSlot, ApiError> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let mine = open.by_token.get(token).copied().unwrap_or(0);
        if mine >= self.per_token {
            return Err(ApiError::TooManyStreams(format!(
                "this token has {mine} live streams and long-polls open, as many as a token may (max-streams-per-token = {}); close one or retry later",
                self.per_token
            )));
        }
        if open.total >= self.total {
            return Err(ApiError::TooManyStreams(format!(
                "the host has {} live streams and long-polls open, as many as it allows (max-streams = {}); retry later",
                open.total, self.total
            )));
        }
        open.total += 1;
        *open.by_token.entry(token.to_owned()).or_insert(0) += 1;
        ::metrics::gauge!("reyna_http_live_streams").set(open.total as f64);
        Ok(StreamSlot {
            slots: Arc::clone(self),
            token: token.to_owned(),
        })
    }
}

/// Resolves once `token` (a token record id) no longer exists: woken by
/// each revocation on this host ([`StreamSlots::revoked`]), it re-reads the
/// token. A live stream or socket selects on it and ends, so a revoked
/// token stops receiving its tenant's events at once.
pub(crate) async fn until_revoked(state: AppState, token: String) {
    let mut revocations = state.streams().revocations.subscribe();
    // Checked once after subscribing too: a revocation between the
    // request's authentication and here is not missed.
    loop {
        match state.engine().token(&token) {
            Ok(Some(_)) => {}
            Ok(None) => return,
            // Unknown is not revoked: the next revocation checks again.
            Err(e) => tracing::error!(error = %e, "re-reading a live stream's token"),
        }
        if revocations.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// One open stream or long-poll; dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct StreamSlot {
    slots: Arc<StreamSlots>,
    token: String,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self
            .slots
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_token.get_mut(&self.token) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.by_token.remove(&self.token);
            }
        }
        ::metrics::gauge!("reyna_http_live_streams").set(open.total as f64);
    }
}

/// The bytes of request bodies being received and handled at once.
#[derive(Debug)]
pub(crate) struct BodyBudget {
    permits: Arc<Semaphore>,
    bytes: usize,
    timeout: Duration,
}

impl BodyBudget {
    pub(crate) fn new(bytes: usize, timeout: Duration) -> Self {
        let units = (bytes as u64).div_ceil(UNIT);
        let units = usize::try_from(units)
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS);
        Self {
            permits: Arc::new(Semaphore::new(units)),
            bytes,
            timeout,
        }
    }
}

/// Why a request body stopped being read (found again by `read_body` in
/// the body's error chain, and turned into its [`ApiError`]).
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyRefusal {
    /// The budget has no room for this body now.
    #[error(
        "the host's memory for request bodies ({budget} bytes, max-body-memory) is in use by other requests; nothing was done, retry later"
    )]
    Busy {
        /// `max-body-memory`, in bytes.
        budget: usize,
    },
    /// The whole body did not arrive within `body-timeout`.
    #[error("the request body did not arrive in time")]
    Timeout(Duration),
}

impl From<&BodyRefusal> for ApiError {
    fn from(refusal: &BodyRefusal) -> Self {
        match refusal {
            BodyRefusal::Busy { .. } => ApiError::ServerBusy(refusal.to_string()),
            BodyRefusal::Timeout(limit) => ApiError::BodyTimeout { limit: *limit },
        }
    }
}

/// The [`BodyRefusal`] somewhere in an error's source chain, if any.
pub(crate) fn refusal_in<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a BodyRefusal> {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(refusal) = error.downcast_ref::<BodyRefusal>() {
            return Some(refusal);
        }
        next = error.source();
    }
    None
}

/// What one request's body holds of the budget; emptied when the request
/// has been handled.
type Held = Arc<Mutex<Option<OwnedSemaphorePermit>>>;

/// A request body read under the budget and the deadline.
struct Metered {
    inner: axum::body::BodyDataStream,
    budget: Arc<Semaphore>,
    budget_bytes: usize,
    held: Held,
    held_units: u64,
    received: u64,
    declared: Option<u64>,
    deadline: Instant,
    timeout: Duration,
}

impl Metered {
    /// Makes sure the request holds budget for `bytes` in all, without
    /// waiting: another request's body is never waited for.
    fn cover(&mut self, bytes: u64) -> Result<(), BodyRefusal> {
        let units = bytes.div_ceil(UNIT);
        if units <= self.held_units {
            return Ok(());
        }
        let busy = BodyRefusal::Busy {
            budget: self.budget_bytes,
        };
        let Ok(more) = u32::try_from(units - self.held_units) else {
            return Err(busy);
        };
        let permit = Arc::clone(&self.budget)
            .try_acquire_many_owned(more)
            .map_err(|_| busy)?;
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        match held.as_mut() {
            Some(existing) => existing.merge(permit),
            None => *held = Some(permit),
        }
        self.held_units = units;
        Ok(())
    }

    /// The next chunk: the declared length is covered before the first
    /// byte is read, a body without one as its bytes arrive.
    async fn next(&mut self) -> Option<Result<Bytes, BoxError>> {
        if let Some(declared) = self.declared.take()
            && let Err(refusal) = self.cover(declared)
        {
            return Some(Err(refusal.into()));
        }
        let chunk = match tokio::time::timeout_at(self.deadline, self.inner.next()).await {
            Err(_) => return Some(Err(BodyRefusal::Timeout(self.timeout).into())),
            Ok(None) => return None,
            Ok(Some(Err(e))) => return Some(Err(e.into())),
            Ok(Some(Ok(chunk))) => chunk,
        };
        self.received += chunk.len() as u64;
        if let Err(refusal) = self.cover(self.received) {
            return Some(Err(refusal.into()));
        }
        Some(Ok(chunk))
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Middleware: every request body is read under the body budget and the
/// body deadline; what a request held of the budget is given back once it
/// has been handled (its body read, validated, stored or refused).
pub(crate) async fn meter_bodies(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let (parts, body) = req.into_parts();
    if axum::body::HttpBody::size_hint(&body).exact() == Some(0) {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let budget = state.body_budget();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let held: Held = Arc::new(Mutex::new(None));
    let metered = Metered {
        inner: body.into_data_stream(),
        budget: Arc::clone(&budget.permits),
        budget_bytes: budget.bytes,
        held: Arc::clone(&held),
        held_units: 0,
        received: 0,
        declared,
        deadline: Instant::now() + budget.timeout,
        timeout: budget.timeout,
    };
    let stream = futures_util::stream::unfold(Some(metered), |state| async move {
        let mut metered = state?;
        match metered.next().await {
            None => None,
            // An error ends the body: nothing after it is read.
            Some(Err(e)) => Some((Err(e), None)),
            Some(Ok(chunk)) => Some((Ok(chunk), Some(metered))),
        }
    });
    let response = next
        .run(Request::from_parts(parts, Body::from_stream(stream)))
        .await;
    held.lock().unwrap_or_else(PoisonError::into_inner).take();
    response
}
