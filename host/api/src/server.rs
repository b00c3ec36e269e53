//! The server loop: accepts connections up to `max-connections` and serves
//! each with hyper's HTTP/1 connection under a timer, so a client that
//! sends its headers slowly (or holds an idle keep-alive connection) is
//! cut after `header-timeout`. One connection more than the limit is
//! accepted, answered 503 `too-many-connections` if its socket takes the
//! bytes at once, and closed: the accept loop never waits for a client, so
//! slow clients cannot delay the others beyond holding their own slots
//! until the header timeout ends them.

use std::future::Future;
use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::AppState;
use crate::error::ApiError;

/// Serves the API on `listener` until `shutdown` completes, then stops
/// accepting, ends live streams and long-polls ([`AppState::begin_shutdown`]),
/// lets requests in flight finish and returns when every connection is
/// closed. Limits come from the state's [`crate::ApiConfig`].
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let config = state.config().clone();
    let service = TowerToHyperService::new(crate::app(state.clone()));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout)
        .keep_alive(true);
    // Every open connection holds one; all of them back means all closed.
    let capacity = config
        .max_connections
        .min(Semaphore::MAX_PERMITS)
        .min(u32::MAX as usize);
    let slots = Arc::new(Semaphore::new(capacity));
    let refusal = refusal_bytes(config.max_connections);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    if !is_connection_error(&e) {
                        // Out of file descriptors and the like: give
                        // connections in flight a moment to end.
                        tracing::error!(error = %e, "accepting a connection");
                        tokio::select! {
                            () = tokio::time::sleep(Duration::from_secs(1)) => {}
                            () = &mut shutdown => break,
                        }
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            refuse(stream, &refusal);
            continue;
        };
        ::metrics::gauge!("reyna_http_connections")
            .set((capacity - slots.available_permits()) as f64);
        let _ = stream.set_nodelay(true);
        // With upgrades: `/v1/ws` takes the connection over as a WebSocket
        // (then counted in the live-stream slots, and ended by the shutdown
        // signal itself).
        let connection = http
            .serve_connection(TokioIo::new(stream), service.clone())
            .with_upgrades();
        let slots = Arc::clone(&slots);
        let mut stop = state.shutdown_signal();
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                _ = stop.changed() => {
                    // Finish the request in flight, then close.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(error = %e, "connection ended");
            }
            drop(slot);
            ::metrics::gauge!("reyna_http_connections")
                .set((capacity - slots.available_permits()) as f64);
        });
    }
    drop(listener);
    state.begin_shutdown();
    // Each connection gives its slot back when it has closed.
    let _ = slots.acquire_many(capacity as u32).await;
    Ok(())
}

/// The 503 sent to a connection over the limit, ready to write.
fn refusal_bytes(max_connections: usize) -> Vec<u8> {
    let error = ApiError::TooManyConnections(max_connections);
    let body = serde_json::to_vec(&error.problem()).unwrap_or_default();
    let mut bytes = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: {}\r\nretry-after: {}\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
        crate::PROBLEM_JSON,
        error.retry_after().unwrap_or(1),
        body.len()
    )
    .into_bytes();
    bytes.extend_from_slice(&body);
    bytes
}

/// Writes the refusal if the socket takes it without waiting, then closes.
fn refuse(stream: TcpStream, refusal: &[u8]) {
    ::metrics::counter!("reyna_http_connections_refused_total").increment(1);
    if let Ok(stream) = stream.into_std() {
        // Non-blocking: a fresh socket's send buffer takes a few hundred
        // bytes; if it does not, the client just sees the close.
        let _ = (&stream).write(refusal);
        let _ = stream.shutdown(std::net::Shutdown::Write);
    }
}

/// Errors of one connection that do not concern the listener.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::ConnectionRefused | K::ConnectionAborted | K::ConnectionReset
    )
}
