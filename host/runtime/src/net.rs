//! Outbound HTTP for effects: the operator's [`NetPolicy`], the `wasi:http`
//! hook that enforces it on every request before anything is sent, the client
//! that sends what passes (to an address that was checked, never to a name
//! resolved again), and the [`HttpRecord`] of every request.
//!
//! The client never follows redirects: a 3xx goes back to the guest as it
//! came, and a request the guest makes to the `location` is checked like any
//! other.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt as _;
use reyna_manifest::AllowedHost;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::error::{DenyReason, Failure};
use crate::secrets::Secrets;

/// The operator's network policy for one effect plugin.
///
/// # Which requests are allowed
///
/// A request to `scheme://host:port` is allowed when an entry of the
/// effect's manifest `allowed-hosts` allows it **and** an entry of
/// [`approved_hosts`](NetPolicy::approved_hosts) allows it:
///
/// - a manifest that lists concrete hosts gets the intersection of its list
///   and the operator's approvals: the operator can narrow what a plugin
///   asked for, never widen it;
/// - a manifest entry `*` means "whatever host the operator approves" (for
///   effects whose target is operator config, such as `webhook` and `llm`),
///   so the approvals alone decide;
/// - an approval `*` approves every host the manifest lists (the operator
///   trusts the plugin's own list). `*` in both lists allows any host.
///
/// An entry matches on host (case-insensitive, exact: no subdomain
/// wildcards), on its scheme when it names one, and on its port (a concrete
/// host without a port means the scheme's default port; `*` without a port
/// means any port). An empty approval list refuses everything.
///
/// After the allowlist, the host name is resolved and **every** address it
/// resolves to is checked: if any is private (loopback, RFC 1918, link-local,
/// unique-local, unspecified, CGNAT, multicast, reserved, or an IPv6 address
/// embedding one of those) the request is refused unless
/// [`allow_private`](NetPolicy::allow_private) is set. The connection goes
/// to one of the checked addresses, never to a name resolved again, so a DNS
/// answer that changes between check and connect cannot get around it.
///
/// A refused request is never sent: the guest gets `HTTP-request-denied` and
/// the call fails with [`Failure::HostDenied`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetPolicy {
    /// Hosts the operator approved for this effect.
    pub approved_hosts: Vec<AllowedHost>,
    /// Whether private, loopback and link-local addresses may be reached
    /// (for an endpoint on the operator's own network, or tests).
    pub allow_private: bool,
    /// Longest one request may take, from connecting to the last byte of the
    /// response. The guest's own `request-options` timeouts apply when shorter.
    pub request_timeout: Duration,
    /// Largest response body one request may receive (bytes). A larger one
    /// fails the call with [`Failure::ResponseTooLarge`].
    pub max_response_bytes: u64,
    /// Most requests one call may make; the next one is refused with
    /// [`DenyReason::TooManyRequests`].
    pub max_requests_per_call: u32,
}

impl Default for NetPolicy {
    /// Refuses everything (no approvals), with 30 s per request, 16 MiB per
    /// response and 16 requests per call once hosts are approved.
    fn default() -> Self {
        NetPolicy {
            approved_hosts: Vec::new(),
            allow_private: false,
            request_timeout: Duration::from_secs(30),
            max_response_bytes: 16 << 20,
            max_requests_per_call: 16,
        }
    }
}

impl NetPolicy {
    /// Whether a request to `scheme://host:port` passes the allowlist of an
    /// effect whose manifest lists `manifest_hosts` (see the type's docs).
    /// Addresses are checked separately, after resolving.
    pub fn allows(
        &self,
        manifest_hosts: &[AllowedHost],
        scheme: &str,
        host: &str,
        port: u16,
    ) -> bool {
        let matches = |e: &AllowedHost| entry_allows(e, scheme, host, port);
        manifest_hosts.iter().any(matches) && self.approved_hosts.iter().any(matches)
    }
}

fn entry_allows(entry: &AllowedHost, scheme: &str, host: &str, port: u16) -> bool {
    if entry.host == "*" {
        entry.scheme.as_deref().is_none_or(|s| s == scheme) && entry.port.is_none_or(|p| p == port)
    } else {
        entry.allows(scheme, host, port)
    }
}

/// Whether `ip` is an address an effect may not reach unless the operator
/// allows private addresses: loopback, private (RFC 1918), link-local,
/// unique-local, unspecified, shared (CGNAT), multicast, broadcast, reserved,
/// and IPv6 addresses that embed such an IPv4 address.
pub fn is_private_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_private_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private_v4(v4);
            }
            let s = v6.segments();
            let embedded_v4 = || Ipv4Addr::from((u32::from(s[6]) << 16) | u32::from(s[7]));
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local, fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link-local, fe80::/10
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated), fec0::/10
                // IPv4-compatible (deprecated), ::a.b.c.d
                || (s[..6] == [0; 6] && is_private_v4(embedded_v4()))
                // NAT64, 64:ff9b::/96
                || (s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] && is_private_v4(embedded_v4()))
        }
    }
}

fn is_private_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || o[0] == 0 // "this network", 0.0.0.0/8
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // shared address space, 100.64.0.0/10
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking, 198.18.0.0/15
        || o[0] >= 240 // reserved
}

/// One outbound request an effect made, for lineage. Holds no headers and no
/// bodies; secret config values are redacted from the authority and path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRecord {
    /// `GET`, `POST`, ...
    pub method: String,
    /// `http` or `https`.
    pub scheme: String,
    /// `host[:port]` as the guest wrote it (without any `user:password@`).
    pub authority: String,
    /// Path and query.
    pub path: String,
    /// The response status, when a response came.
    pub status: Option<u16>,
    /// How the request ended: `ok` (a response came; see `status`),
    /// `not-allowed`, `private-address`, `too-many-requests` (refused, nothing
    /// sent), `response-too-large`, `timeout`, `dns-error`, `connect-error`,
    /// `tls-error`, `protocol-error`, `error`, or `incomplete` (the call ended
    /// first).
    pub outcome: String,
    /// From the guest's `handle` to the end of the response body, or to the
    /// failure (µs).
    pub duration_us: u64,
    /// Request body bytes sent.
    pub request_bytes: u64,
    /// Response body bytes received and handed to the guest.
    pub response_bytes: u64,
}

/// What one call's requests did.
#[derive(Debug, Default)]
struct NetLog {
    records: Vec<HttpRecord>,
    /// The first policy violation; it fails the call.
    failure: Option<Failure>,
}

/// The network state of one effect call, shared by its `wasi:http` hook and
/// the request tasks it starts.
#[derive(Debug)]
pub(crate) struct NetCall {
    policy: Arc<NetPolicy>,
    manifest_hosts: Vec<AllowedHost>,
    secrets: Arc<Secrets>,
    log: Mutex<NetLog>,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl NetCall {
    pub fn new(
        policy: Arc<NetPolicy>,
        manifest_hosts: Vec<AllowedHost>,
        secrets: Arc<Secrets>,
    ) -> Self {
        NetCall {
            policy,
            manifest_hosts,
            secrets,
            log: Mutex::new(NetLog::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, NetLog> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The records of the call's requests and the policy violation that
    /// fails it, if any. Call after the store is dropped.
    pub fn finish(&self) -> (Vec<HttpRecord>, Option<Failure>) {
        let mut log = self.lock();
        (std::mem::take(&mut log.records), log.failure.take())
    }

    fn update(&self, index: usize, f: impl FnOnce(&mut HttpRecord)) {
        if let Some(r) = self.lock().records.get_mut(index) {
            f(r);
        }
    }

    fn end(&self, index: usize, outcome: &str, started: Instant) {
        self.update(index, |r| {
            r.outcome = outcome.to_owned();
            r.duration_us = micros(started.elapsed());
        });
    }

    fn deny(&self, index: usize, target: &str, reason: DenyReason, started: Instant) {
        tracing::debug!(target, %reason, "effect request refused");
        let mut log = self.lock();
        if let Some(r) = log.records.get_mut(index) {
            r.outcome = reason.kind().to_owned();
            r.duration_us = micros(started.elapsed());
        }
        log.failure.get_or_insert(Failure::HostDenied {
            host: target.to_owned(),
            reason,
        });
    }

    fn too_large(&self, index: usize, started: Instant) {
        let limit = self.policy.max_response_bytes;
        let mut log = self.lock();
        if let Some(r) = log.records.get_mut(index) {
            r.outcome = "response-too-large".to_owned();
            r.duration_us = micros(started.elapsed());
        }
        log.failure
            .get_or_insert(Failure::ResponseTooLarge { limit });
    }

    /// The hook's synchronous part: record the request, refuse it if the
    /// allowlist or the request budget says so, else start sending it.
    fn start(
        self: &Arc<Self>,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> SendFuture {
        let started = Instant::now();
        let uri = request.uri();
        let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
        let host = uri
            .host()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let https = scheme == "https";
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let target = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let record = HttpRecord {
            method: request.method().as_str().to_owned(),
            scheme: scheme.clone(),
            authority: self
                .secrets
                .redact(&authority_without_userinfo(uri))
                .into_owned(),
            path: self
                .secrets
                .redact(uri.path_and_query().map_or("/", |p| p.as_str()))
                .into_owned(),
            status: None,
            outcome: "incomplete".to_owned(),
            duration_us: 0,
            request_bytes: 0,
            response_bytes: 0,
        };
        let (index, count) = {
            let mut log = self.lock();
            log.records.push(record);
            (log.records.len() - 1, log.records.len())
        };
        let limit = self.policy.max_requests_per_call;
        let denial = if u32::try_from(count).unwrap_or(u32::MAX) > limit {
            Some(DenyReason::TooManyRequests { limit })
        } else if !(scheme == "http" || https)
            || host.is_empty()
            || !self
                .policy
                .allows(&self.manifest_hosts, &scheme, &host, port)
        {
            Some(DenyReason::NotAllowed)
        } else {
            None
        };
        if let Some(reason) = denial {
            self.deny(index, &target, reason, started);
            discard(request.into_body());
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        let call = self.clone();
        let target = Target {
            https,
            host,
            port,
            display: target,
        };
        Box::new(async move {
            let result = call
                .clone()
                .send(index, request, target, options, started)
                .await;
            if let Err(e) = &result {
                // A refusal recorded its own outcome.
                if !matches!(e, Error::HttpRequestDenied | Error::HttpResponseBodySize(_)) {
                    call.end(index, outcome_of(e), started);
                }
            }
            result
        })
    }

    async fn send(
        self: Arc<Self>,
        index: usize,
        mut request: http::Request<WasiBody>,
        target: Target,
        options: Option<RequestOptions>,
        started: Instant,
    ) -> Result<(http::Response<WasiBody>, IoFuture), Error> {
        let now = tokio::time::Instant::now();
        let deadline = now + self.policy.request_timeout;
        let within = |guest: Option<Duration>| guest.map_or(deadline, |d| deadline.min(now + d));
        let connect_deadline = within(options.and_then(|o| o.connect_timeout));
        let first_byte_deadline = within(options.and_then(|o| o.first_byte_timeout));

        // Resolve, then check every address before connecting to any.
        let addresses: Vec<SocketAddr> = match target.host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, target.port)],
            Err(_) => {
                let lookup = tokio::net::lookup_host((target.host.as_str(), target.port));
                match tokio::time::timeout_at(connect_deadline, lookup).await {
                    Ok(Ok(found)) => found.collect(),
                    Ok(Err(e)) => {
                        return Err(Error::DnsError {
                            rcode: Some(e.to_string()),
                            info_code: None,
                        });
                    }
                    Err(_) => return Err(Error::DnsTimeout),
                }
            }
        };
        if addresses.is_empty() {
            return Err(Error::DnsError {
                rcode: Some("no addresses".to_owned()),
                info_code: None,
            });
        }
        if !self.policy.allow_private
            && let Some(private) = addresses.iter().find(|a| is_private_address(a.ip()))
        {
            let reason = DenyReason::PrivateAddress {
                address: private.ip(),
            };
            self.deny(index, &target.display, reason, started);
            discard(request.into_body());
            return Err(Error::HttpRequestDenied);
        }

        let stream = connect(&addresses, connect_deadline).await?;
        let stream: Box<dyn Stream> = if target.https {
            let connector = tls_connector()?;
            let name =
                rustls::pki_types::ServerName::try_from(target.host.clone()).map_err(|_| {
                    Error::DnsError {
                        rcode: Some("invalid dns name".to_owned()),
                        info_code: None,
                    }
                })?;
            let tls = tokio::time::timeout_at(connect_deadline, connector.connect(name, stream))
                .await
                .map_err(|_| Error::ConnectionTimeout)?
                .map_err(Error::Tls)?;
            Box::new(tls)
        } else {
            Box::new(stream)
        };
        let (mut sender, conn) = tokio::time::timeout_at(
            connect_deadline,
            hyper::client::conn::http1::handshake(TokioIo::new(stream)),
        )
        .await
        .map_err(|_| Error::ConnectionTimeout)??;

        // On the wire the request line carries the path only (origin form).
        let path = request
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        *request.uri_mut() = http::Uri::builder()
            .path_and_query(path)
            .build()
            .map_err(|_| Error::HttpRequestUriInvalid)?;
        let request = request.map(|body| CountingBody {
            inner: body,
            call: self.clone(),
            index,
        });

        // Wait for the response head while driving the connection.
        let mut send = std::pin::pin!(sender.send_request(request));
        let mut conn = Some(conn);
        let head = std::future::poll_fn(|cx| {
            if let Poll::Ready(r) = send.as_mut().poll(cx) {
                return Poll::Ready(r.map_err(Error::from));
            }
            if let Some(c) = conn.as_mut()
                && let Poll::Ready(r) = Pin::new(c).poll(cx)
            {
                conn = None;
                return match r {
                    Ok(()) => send.as_mut().poll(cx).map(|r| r.map_err(Error::from)),
                    Err(e) => Poll::Ready(Err(Error::from(e))),
                };
            }
            Poll::Pending
        });
        let response = tokio::time::timeout_at(first_byte_deadline, head)
            .await
            .map_err(|_| Error::ConnectionReadTimeout)??;
        drop(sender);

        let status = response.status().as_u16();
        self.update(index, |r| {
            r.status = Some(status);
            r.outcome = "ok".to_owned();
            r.duration_us = micros(started.elapsed());
        });
        let limit = self.policy.max_response_bytes;
        let declared = response
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit) {
            self.too_large(index, started);
            return Err(Error::HttpResponseBodySize(Some(limit)));
        }

        let response = response.map(|incoming| {
            ResponseBody {
                inner: incoming,
                call: self.clone(),
                index,
                limit,
                received: 0,
                deadline: Box::pin(tokio::time::sleep_until(deadline)),
                started,
                done: false,
            }
            .boxed_unsync()
        });
        let io: IoFuture = Box::new(async move {
            let Some(conn) = conn else { return Ok(()) };
            match tokio::time::timeout_at(deadline, conn).await {
                Ok(r) => r.map_err(Error::from),
                Err(_) => Err(Error::HttpResponseTimeout),
            }
        });
        Ok((response, io))
    }
}

/// `host[:port]` of `uri`, without any `user:password@`.
fn authority_without_userinfo(uri: &http::Uri) -> String {
    let authority = uri.authority().map_or("", |a| a.as_str());
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host)
        .to_owned()
}

/// Where a request goes, once it passed the allowlist.
struct Target {
    https: bool,
    host: String,
    port: u16,
    /// `host:port`, for refusals.
    display: String,
}

type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;
type SendFuture =
    Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), Error>> + Send>;

trait Stream: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static> Stream for T {}

/// Connects to the first of the checked `addresses` that answers.
async fn connect(
    addresses: &[SocketAddr],
    deadline: tokio::time::Instant,
) -> Result<TcpStream, Error> {
    let mut last = Error::ConnectionRefused;
    for address in addresses {
        match tokio::time::timeout_at(deadline, TcpStream::connect(address)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => last = Error::Connect(e),
            Err(_) => return Err(Error::ConnectionTimeout),
        }
    }
    Err(last)
}

fn tls_connector() -> Result<tokio_rustls::TlsConnector, Error> {
    static CONFIG: OnceLock<Option<Arc<rustls::ClientConfig>>> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map(|b| Arc::new(b.with_root_certificates(roots).with_no_client_auth()))
            .inspect_err(|e| tracing::error!(error = %e, "cannot configure TLS"))
            .ok()
    });
    config
        .clone()
        .map(tokio_rustls::TlsConnector::from)
        .ok_or(Error::ConfigurationError)
}

/// Reads a refused request's body to its end and drops it, on its own task:
/// the guest's writes then succeed and it sees the refusal on the response
/// future, as with any failed request. Nothing goes anywhere.
fn discard(body: WasiBody) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            let mut body = body;
            while let Some(Ok(_)) = body.frame().await {}
        });
    }
}

fn outcome_of(e: &Error) -> &'static str {
    match e {
        Error::DnsError { .. } | Error::DnsTimeout => "dns-error",
        Error::Connect(_) | Error::ConnectionRefused => "connect-error",
        Error::ConnectionTimeout | Error::ConnectionReadTimeout | Error::HttpResponseTimeout => {
            "timeout"
        }
        Error::Tls(_) | Error::TlsProtocolError | Error::TlsCertificateError => "tls-error",
        Error::Hyper(_) | Error::HttpProtocolError => "protocol-error",
        _ => "error",
    }
}

/// The request body on its way out, counting the bytes sent.
struct CountingBody {
    inner: WasiBody,
    call: Arc<NetCall>,
    index: usize,
}

impl Body for CountingBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            let n = data.len() as u64;
            self.call.update(self.index, |r| {
                r.request_bytes = r.request_bytes.saturating_add(n)
            });
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The response body on its way to the guest: bounded in size and time,
/// counting the bytes received.
struct ResponseBody {
    inner: hyper::body::Incoming,
    call: Arc<NetCall>,
    index: usize,
    limit: u64,
    received: u64,
    deadline: Pin<Box<tokio::time::Sleep>>,
    started: Instant,
    done: bool,
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    this.received = this.received.saturating_add(n);
                    if this.received > this.limit {
                        this.done = true;
                        this.call.too_large(this.index, this.started);
                        return Poll::Ready(Some(Err(Error::HttpResponseBodySize(Some(
                            this.limit,
                        )))));
                    }
                    this.call.update(this.index, |r| {
                        r.response_bytes = r.response_bytes.saturating_add(n);
                    });
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.done = true;
                let e = if e.is_timeout() {
                    Error::HttpResponseTimeout
                } else {
                    Error::from(e)
                };
                this.call.end(this.index, outcome_of(&e), this.started);
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.done = true;
                let micros = micros(this.started.elapsed());
                this.call.update(this.index, |r| r.duration_us = micros);
                Poll::Ready(None)
            }
            Poll::Pending => {
                if this.deadline.as_mut().poll(cx).is_ready() {
                    this.done = true;
                    this.call.end(this.index, "timeout", this.started);
                    return Poll::Ready(Some(Err(Error::HttpResponseTimeout)));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The `wasi:http` hooks of one call: every outgoing request passes through
/// [`WasiHttpHooks::send_request`] here. Without a [`NetCall`] (processors,
/// which never link `wasi:http` anyway) everything is refused.
#[derive(Debug, Default)]
pub(crate) struct NetHooks {
    pub call: Option<Arc<NetCall>>,
}

impl WasiHttpHooks for NetHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        drop(fut);
        match &self.call {
            Some(call) => call.start(request, options),
            None => {
                discard(request.into_body());
                Box::new(async { Err(Error::HttpRequestDenied) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(list: &[&str]) -> Vec<AllowedHost> {
        list.iter()
            .map(|h| AllowedHost::parse(h).unwrap())
            .collect()
    }

    fn policy(approved: &[&str]) -> NetPolicy {
        NetPolicy {
            approved_hosts: hosts(approved),
            ..NetPolicy::default()
        }
    }

    #[test]
    fn a_wildcard_manifest_defers_to_the_operator() {
        let manifest = hosts(&["*"]);
        let p = policy(&["api.example.com:443", "127.0.0.1:8080"]);
        assert!(p.allows(&manifest, "https", "api.example.com", 443));
        assert!(p.allows(&manifest, "http", "127.0.0.1", 8080));
        assert!(!p.allows(&manifest, "https", "api.example.com", 8443));
        assert!(!p.allows(&manifest, "https", "evil.example.com", 443));
        assert!(!policy(&[]).allows(&manifest, "https", "api.example.com", 443));
    }

    #[test]
    fn concrete_manifest_hosts_are_intersected_with_approvals() {
        let manifest = hosts(&["api.example.com:443", "other.example.com"]);
        let p = policy(&["api.example.com:443", "evil.example.com:443"]);
        assert!(p.allows(&manifest, "https", "api.example.com", 443));
        // Approved by the operator, not asked for by the plugin.
        assert!(!p.allows(&manifest, "https", "evil.example.com", 443));
        // Asked for by the plugin, not approved.
        assert!(!p.allows(&manifest, "https", "other.example.com", 443));
        // An operator `*` approves the plugin's own list, nothing more.
        let trusting = policy(&["*"]);
        assert!(trusting.allows(&manifest, "https", "other.example.com", 443));
        assert!(!trusting.allows(&manifest, "https", "evil.example.com", 443));
        // A scheme-restricted wildcard.
        let https_only = policy(&["https://*"]);
        assert!(https_only.allows(&hosts(&["*"]), "https", "x.example.com", 8443));
        assert!(!https_only.allows(&hosts(&["*"]), "http", "x.example.com", 80));
        // No manifest hosts: nothing, whatever the operator approves.
        assert!(!trusting.allows(&[], "https", "api.example.com", 443));
    }

    #[test]
    fn records_never_keep_userinfo() {
        let uri: http::Uri = "https://user:pass@api.example.com:8443/x".parse().unwrap();
        assert_eq!(authority_without_userinfo(&uri), "api.example.com:8443");
        let uri: http::Uri = "http://[::1]:80/".parse().unwrap();
        assert_eq!(authority_without_userinfo(&uri), "[::1]:80");
    }

    #[test]
    fn private_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::7f00:1",
            "::127.0.0.1",
        ] {
            assert!(is_private_address(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
        ] {
            assert!(!is_private_address(ip.parse().unwrap()), "{ip}");
        }
    }
}
