//! Outbound HTTP for effects: the operator's [`NetPolicy`], the `wasi:http`
//! hook that enforces it on every request before anything is sent, the client
//! that sends what passes (to an address that was checked, never to a name
//! resolved again), and the [`HttpRecord`] of every request.
//!
//! The client never follows redirects: a 3xx goes back to the guest as it
//! came, and a request the guest makes to the `location` is checked like any
//! other.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt as _;
use reyna_manifest::AllowedHost;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

mod address;

use address::canonical_host;
pub use address::is_private_address;

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
/// wildcards; an IP address in any spelling of it), on its scheme (an entry
/// that names none allows **https only**: plain http must be written out,
/// `http://host:port`), and on its port (without a port, the scheme's
/// default; any port only when the entry says `:*`). When both lists have
/// the bare `*`, nobody named a scheme or a port: any host over https on
/// port 443. An empty approval list refuses everything.
///
/// After the allowlist, the host name is resolved (with a deadline that
/// drops the lookup: no resolver thread outlives it) and **every** address
/// it resolves to is checked: if any is special-purpose (every range of
/// IANA's IPv4 and IPv6 special-purpose registries, multicast, and IPv6
/// addresses that embed such an IPv4 address: see [`is_private_address`])
/// the request is refused unless [`allow_private`](NetPolicy::allow_private)
/// is set. A host written as a number (`2130706433`, `0x7f.1`, `0177.0.0.1`)
/// is the IPv4 address it spells and is checked as one. The connection
/// goes to one of the checked addresses, never to a name resolved again, so
/// a DNS answer that changes between check and connect cannot get around it.
///
/// A refused request is never sent: the guest gets `HTTP-request-denied` and
/// the call fails with [`Failure::HostDenied`]. Every attempt, refused or
/// not, counts toward [`max_requests_per_call`](NetPolicy::max_requests_per_call);
/// past it nothing more is recorded, so a guest looping on refusals cannot
/// grow the host.
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
    /// Most requests one call may make, refused ones included; the next one
    /// is refused with [`DenyReason::TooManyRequests`]. A call records at
    /// most this many requests plus the first one refused for the count;
    /// later attempts are only counted
    /// ([`EffectReport::unrecorded_requests`](crate::EffectReport::unrecorded_requests)).
    pub max_requests_per_call: u32,
    /// DNS servers to ask (UDP); empty means the system's configuration
    /// (`/etc/resolv.conf` and `/etc/hosts`, read once).
    pub nameservers: Vec<SocketAddr>,
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
            nameservers: Vec::new(),
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
        manifest_hosts.iter().any(|m| {
            self.approved_hosts
                .iter()
                .any(|a| pair_allows(m, a, scheme, host, port))
        })
    }
}

/// Whether manifest entry `m` and approval `a` together allow the request:
/// a bare `*` on one side defers to the other side's entry alone; otherwise
/// both must allow it. Two bare `*`s are the deferral's own meaning (any
/// host, https, port 443).
fn pair_allows(m: &AllowedHost, a: &AllowedHost, scheme: &str, host: &str, port: u16) -> bool {
    if m.is_deferral() {
        a.allows(scheme, host, port)
    } else if a.is_deferral() {
        m.allows(scheme, host, port)
    } else {
        m.allows(scheme, host, port) && a.allows(scheme, host, port)
    }
}

/// One outbound request an effect made, for lineage (it may end up in a
/// blob any reader of the tenant can read, such as a sink's receipt). Holds
/// no headers, no bodies and no query values; secret config values are
/// redacted from the authority and path, raw or percent-encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRecord {
    /// `GET`, `POST`, ...
    pub method: String,
    /// `http` or `https`.
    pub scheme: String,
    /// `host[:port]` as the guest wrote it (without any `user:password@`),
    /// at most [`MAX_RECORDED_TEXT`] bytes.
    pub authority: String,
    /// The path, and the names of the query's parameters without their
    /// values (`/hook?token=&page=`), at most [`MAX_RECORDED_TEXT`] bytes.
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

/// Longest authority or path an [`HttpRecord`] keeps (bytes); a longer one
/// is cut, and ends with `...`.
pub const MAX_RECORDED_TEXT: usize = 1024;

/// What one call's requests did.
#[derive(Debug, Default)]
struct NetLog {
    /// At most the request cap plus one: the first attempt over the cap.
    records: Vec<HttpRecord>,
    /// Attempts so far, refused ones included.
    attempts: u64,
    /// Attempts refused for the count and not recorded.
    unrecorded: u64,
    /// The first policy violation; it fails the call.
    failure: Option<Failure>,
}

/// What the requests of one call did, once it is over.
#[derive(Debug, Default)]
pub(crate) struct NetOutcome {
    /// Every recorded request, in order.
    pub records: Vec<HttpRecord>,
    /// Attempts past the first one refused for the count: refused, counted,
    /// not recorded.
    pub unrecorded: u64,
    /// The policy violation that fails the call, if any.
    pub failure: Option<Failure>,
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
    pub fn finish(&self) -> NetOutcome {
        let mut log = self.lock();
        NetOutcome {
            records: std::mem::take(&mut log.records),
            unrecorded: log.unrecorded,
            failure: log.failure.take(),
        }
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

    /// The hook's synchronous part: count and record the request, refuse it
    /// if the request budget or the allowlist says so, else start sending it.
    fn start(
        self: &Arc<Self>,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> SendFuture {
        let started = Instant::now();
        let limit = self.policy.max_requests_per_call;
        let (index, over_limit) = {
            let mut log = self.lock();
            log.attempts = log.attempts.saturating_add(1);
            if log.attempts > u64::from(limit) + 1 {
                // Refused for the count once already (that one is recorded
                // and fails the call): only counted, so a guest looping on
                // refusals holds nothing more.
                log.unrecorded = log.unrecorded.saturating_add(1);
                drop(log);
                drop(request);
                return Box::new(async { Err(Error::HttpRequestDenied) });
            }
            log.records.push(self.record_of(&request));
            (log.records.len() - 1, log.attempts > u64::from(limit))
        };
        let uri = request.uri();
        let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
        let written = uri
            .host()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let https = scheme == "https";
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let target = if written.contains(':') {
            format!("[{written}]:{port}")
        } else {
            format!("{written}:{port}")
        };
        let target = self.secrets.redact(&target).into_owned();
        let host = canonical_host(written).unwrap_or_default();
        let denial = if over_limit {
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

    /// The record of `request` before it ran: no userinfo, no query values,
    /// no secrets in any encoding, bounded in size.
    fn record_of(&self, request: &http::Request<WasiBody>) -> HttpRecord {
        let uri = request.uri();
        let authority = authority_without_userinfo(uri);
        let authority = self.secrets.redact(&authority);
        let path = path_without_query_values(uri.path_and_query());
        let path = self.secrets.redact(&path);
        HttpRecord {
            method: bounded(request.method().as_str()),
            scheme: uri.scheme_str().unwrap_or("https").to_ascii_lowercase(),
            authority: bounded(&authority),
            path: bounded(&path),
            status: None,
            outcome: "incomplete".to_owned(),
            duration_us: 0,
            request_bytes: 0,
            response_bytes: 0,
        }
    }

    /// Resolves `host` and returns its addresses, or a DNS error by
    /// `deadline`. The resolver lives for this lookup only: at the deadline
    /// the lookup future and the resolver are dropped, which ends every
    /// task and socket it had (no thread is ever blocked on it).
    async fn resolve(
        &self,
        host: &str,
        port: u16,
        deadline: tokio::time::Instant,
    ) -> Result<Vec<SocketAddr>, Error> {
        let resolver = resolver(&self.policy).map_err(|e| Error::DnsError {
            rcode: Some(e),
            info_code: None,
        })?;
        match tokio::time::timeout_at(deadline, resolver.lookup_ip(host)).await {
            Ok(Ok(found)) => Ok(found.iter().map(|ip| SocketAddr::new(ip, port)).collect()),
            Ok(Err(NetError::Timeout)) | Err(_) => Err(Error::DnsTimeout),
            Ok(Err(e)) => Err(Error::DnsError {
                rcode: Some(e.to_string()),
                info_code: None,
            }),
        }
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
                self.resolve(&target.host, target.port, connect_deadline)
                    .await?
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

/// The path of `path_and_query`, and its query's parameter names without
/// their values: `/a?x=1&y` becomes `/a?x=&y`.
fn path_without_query_values(path_and_query: Option<&http::uri::PathAndQuery>) -> String {
    let Some(pq) = path_and_query else {
        return "/".to_owned();
    };
    let mut out = pq.path().to_owned();
    if let Some(query) = pq.query() {
        out.push('?');
        for (i, pair) in query.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            match pair.split_once('=') {
                Some((name, _)) => {
                    out.push_str(name);
                    out.push('=');
                }
                None => out.push_str(pair),
            }
        }
    }
    out
}

/// `text` cut to at most [`MAX_RECORDED_TEXT`] bytes (on a character
/// boundary, ending with `...` when cut).
fn bounded(text: &str) -> String {
    if text.len() <= MAX_RECORDED_TEXT {
        return text.to_owned();
    }
    let mut end = MAX_RECORDED_TEXT - 3;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// The system's DNS configuration, read once (a file read: not on every
/// lookup, on the async executor).
fn system_dns() -> Result<(ResolverConfig, ResolverOpts), String> {
    static SYSTEM: OnceLock<Result<(ResolverConfig, ResolverOpts), String>> = OnceLock::new();
    SYSTEM
        .get_or_init(|| {
            hickory_resolver::system_conf::read_system_conf()
                .map_err(|e| format!("cannot read the system's DNS configuration: {e}"))
        })
        .clone()
}

/// A resolver for one lookup: the policy's nameservers, or the system's.
fn resolver(policy: &NetPolicy) -> Result<TokioResolver, String> {
    let (config, mut options) = if policy.nameservers.is_empty() {
        system_dns()?
    } else {
        let servers = policy
            .nameservers
            .iter()
            .map(|server| {
                let mut udp = ConnectionConfig::udp();
                udp.port = server.port();
                NameServerConfig::new(server.ip(), true, vec![udp])
            })
            .collect();
        (
            ResolverConfig::from_name_servers(servers),
            ResolverOpts::default(),
        )
    };
    // The caller's deadline ends the lookup; this only stops a resolver
    // from waiting longer on one server than the whole request may take.
    options.timeout = options.timeout.min(policy.request_timeout);
    TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
        .with_options(options)
        .build()
        .map_err(|e| format!("cannot start the DNS resolver: {e}"))
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
        let p = policy(&["api.example.com:443", "http://127.0.0.1:8080"]);
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
        assert!(https_only.allows(&hosts(&["*"]), "https", "x.example.com", 443));
        assert!(!https_only.allows(&hosts(&["*"]), "http", "x.example.com", 80));
        // No manifest hosts: nothing, whatever the operator approves.
        assert!(!trusting.allows(&[], "https", "api.example.com", 443));
    }

    #[test]
    fn plain_http_and_other_ports_are_only_what_someone_wrote() {
        let any = hosts(&["*"]);
        // Nobody named a scheme or a port: https on 443 only.
        let trusting = policy(&["*"]);
        assert!(trusting.allows(&any, "https", "x.example.com", 443));
        assert!(!trusting.allows(&any, "http", "x.example.com", 80));
        assert!(!trusting.allows(&any, "https", "x.example.com", 8443));
        // A bare approval is https only, even on a port plain http uses.
        let bare = policy(&["api.example.com:8080", "hooks.example.com"]);
        assert!(bare.allows(&any, "https", "api.example.com", 8080));
        assert!(!bare.allows(&any, "http", "api.example.com", 8080));
        assert!(!bare.allows(&any, "http", "hooks.example.com", 80));
        assert!(!bare.allows(&any, "https", "hooks.example.com", 8443));
        // Written out, plain http and any port are allowed.
        let written = policy(&["http://api.example.com:8080", "https://hooks.example.com:*"]);
        assert!(written.allows(&any, "http", "api.example.com", 8080));
        assert!(written.allows(&any, "https", "hooks.example.com", 8443));
        assert!(!written.allows(&any, "http", "hooks.example.com", 8443));
        // A plugin listing `http://` gets it only if the operator also wrote it.
        let manifest = hosts(&["http://api.example.com:8080"]);
        assert!(!bare.allows(&manifest, "http", "api.example.com", 8080));
        assert!(written.allows(&manifest, "http", "api.example.com", 8080));
        assert!(policy(&["*"]).allows(&manifest, "http", "api.example.com", 8080));
        // A plugin `*:*` gets no more ports than the operator wrote.
        assert!(!bare.allows(&hosts(&["*:*"]), "https", "hooks.example.com", 8443));
    }

    #[test]
    fn records_never_keep_userinfo() {
        let uri: http::Uri = "https://user:pass@api.example.com:8443/x".parse().unwrap();
        assert_eq!(authority_without_userinfo(&uri), "api.example.com:8443");
        let uri: http::Uri = "http://[::1]:80/".parse().unwrap();
        assert_eq!(authority_without_userinfo(&uri), "[::1]:80");
    }

    #[test]
    fn records_keep_query_names_not_values() {
        let path = |u: &str| {
            let uri: http::Uri = u.parse().unwrap();
            path_without_query_values(uri.path_and_query())
        };
        assert_eq!(
            path("https://x/a/b?token=s3cr3t&page=2&flag"),
            "/a/b?token=&page=&flag"
        );
        assert_eq!(path("https://x/a?"), "/a?");
        assert_eq!(path("https://x"), "/");
        assert_eq!(path("https://x/p%2Fq?k=%73"), "/p%2Fq?k=");
        let long = "é".repeat(MAX_RECORDED_TEXT);
        let cut = bounded(&long);
        assert!(
            cut.len() <= MAX_RECORDED_TEXT && cut.ends_with("..."),
            "{}",
            cut.len()
        );
        assert_eq!(bounded("/short"), "/short");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dns_server_that_never_answers_ends_the_lookup_at_its_deadline() {
        // A "DNS server" that reads queries and never answers.
        let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let policy = NetPolicy {
            nameservers: vec![silent.local_addr().unwrap()],
            ..NetPolicy::default()
        };
        let call = NetCall::new(Arc::new(policy), Vec::new(), Arc::default());
        let metrics = tokio::runtime::Handle::current().metrics();
        let tasks_before = metrics.num_alive_tasks();
        let started = tokio::time::Instant::now();
        let deadline = started + Duration::from_millis(300);
        let result = tokio::time::timeout(
            Duration::from_secs(10),
            call.resolve("never-answered.example.com.", 443, deadline),
        )
        .await
        .expect("the lookup ends by itself");
        let took = started.elapsed();
        assert!(matches!(result, Err(Error::DnsTimeout)), "{result:?}");
        assert!(took >= Duration::from_millis(300), "{took:?}");
        assert!(
            took < Duration::from_secs(3),
            "ended well after its deadline: {took:?}"
        );
        assert_eq!(outcome_of(&Error::DnsTimeout), "dns-error");
        // The lookup did ask the server, so the deadline is what ended it.
        let mut query = [0u8; 512];
        let (n, _) = tokio::time::timeout(Duration::from_secs(5), silent.recv_from(&mut query))
            .await
            .expect("the resolver sent a query")
            .unwrap();
        assert!(n > 12, "a DNS query has a 12-byte header and a question");
        // Nothing of the lookup is left running: its tasks end with it.
        let gone = async {
            while metrics.num_alive_tasks() > tasks_before {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), gone)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{} tasks left behind by the lookup",
                    metrics.num_alive_tasks() - tasks_before
                )
            });
    }
}
