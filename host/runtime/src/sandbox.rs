//! What lives in one call's `Store`: the WASI context that grants nothing, the
//! resource limiter, the bounded and redacted log, the contract's host
//! imports, and (effects only) the `wasi:http` context behind the network
//! policy.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rand::SeedableRng as _;
use rand::rngs::StdRng;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::bindings::effect::reyna::plugin::usage;
use crate::bindings::processor::reyna::plugin::{effects, host, types};
use reyna_types::EffectCall;

use crate::config::Limits;
use crate::error::{Failure, GuestError, bound_message};
use crate::host::HostApi;
use crate::net::{NetCall, NetHooks};
use crate::secrets::Secrets;
use reyna_types::{LogLevel, LogLine};

use crate::types::Blob;

/// Elements any one table may grow to; the pool's slots hold this many.
pub(crate) const TABLE_ELEMENTS: usize = 20_000;

/// Largest single `wasi:random` request: bounds what a guest can make the host
/// allocate in one call.
const MAX_RANDOM_BYTES: u64 = 1 << 20;

/// How much of stderr is kept, whatever the log limit, to find a panic message.
const STDERR_TAIL: usize = 4096;

/// The error a guest gets (as a trap) when it grows memory past its limit.
#[derive(Debug, thiserror::Error)]
#[error("memory limit of {limit} bytes reached (asked for {desired} bytes)")]
pub(crate) struct MemoryLimitReached {
    pub limit: usize,
    pub desired: usize,
}

/// Memory and table limits of one call, and what the call used.
#[derive(Debug)]
pub(crate) struct Limiter {
    memory_limit: usize,
    memory_total: usize,
    pub peak_memory: usize,
    pub refused: bool,
}

impl Limiter {
    fn new(memory_limit: u64) -> Self {
        Limiter {
            memory_limit: usize::try_from(memory_limit).unwrap_or(usize::MAX),
            memory_total: 0,
            peak_memory: 0,
            refused: false,
        }
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // The limit covers all of the instance's memories together.
        let total = self
            .memory_total
            .saturating_sub(current)
            .saturating_add(desired);
        if total > self.memory_limit {
            self.refused = true;
            // An error (not `Ok(false)`) traps at the grow, so the failure is
            // classified precisely instead of as the guest's abort on OOM.
            return Err(wasmtime::Error::new(MemoryLimitReached {
                limit: self.memory_limit,
                desired: total,
            }));
        }
        self.memory_total = total;
        self.peak_memory = self.peak_memory.max(total);
        Ok(true)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.refused = true;
        Err(error)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > TABLE_ELEMENTS {
            self.refused = true;
            return Err(wasmtime::format_err!(
                "table limit of {TABLE_ELEMENTS} elements reached (asked for {desired})"
            ));
        }
        Ok(true)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.refused = true;
        Err(error)
    }
}

/// Which guest stream a write came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Stdout,
    Stderr,
}

/// The call's log: host `log` calls plus stdout and stderr split into lines,
/// bounded by a byte budget and a line count. Past either everything is
/// dropped silently for the guest (a closed stdout would make Rust's
/// `println!` panic) and the report says the log was truncated. Secret config values are redacted from
/// every line (the budget counts the guest's bytes, before redaction).
#[derive(Debug)]
pub(crate) struct LogBuffer {
    secrets: Arc<Secrets>,
    lines: Vec<LogLine>,
    bytes: usize,
    max_bytes: usize,
    max_lines: usize,
    truncated: bool,
    stdout_partial: Vec<u8>,
    stderr_partial: Vec<u8>,
    stderr_tail: Vec<u8>,
}

impl LogBuffer {
    #[cfg(test)]
    pub fn new(max_bytes: usize, max_lines: usize) -> Self {
        Self::with_secrets(max_bytes, max_lines, Arc::default())
    }

    pub fn with_secrets(max_bytes: usize, max_lines: usize, secrets: Arc<Secrets>) -> Self {
        LogBuffer {
            secrets,
            lines: Vec::new(),
            bytes: 0,
            max_bytes,
            max_lines,
            truncated: false,
            stdout_partial: Vec::new(),
            stderr_partial: Vec::new(),
            stderr_tail: Vec::new(),
        }
    }

    /// Takes `len` bytes from the budget, or as many as are left.
    fn take_budget(&mut self, len: usize) -> usize {
        let granted = len.min(self.max_bytes - self.bytes);
        if granted < len {
            self.truncated = true;
        }
        self.bytes += granted;
        granted
    }

    /// Whether the line cap leaves room for one more line (if not, the log
    /// is truncated).
    fn room_for_a_line(&mut self) -> bool {
        let room = self.lines.len() < self.max_lines;
        if !room {
            self.truncated = true;
        }
        room
    }

    /// Keeps a line if the line cap allows.
    fn keep(&mut self, level: LogLevel, message: String) {
        if self.room_for_a_line() {
            self.lines.push(LogLine { level, message });
        }
    }

    pub fn push(&mut self, level: LogLevel, message: &str) {
        if !self.room_for_a_line() {
            return;
        }
        // A line costs its bytes and one for its end, as a printed line
        // does: an empty line is not free, so no number of them is.
        let granted = self.take_budget(message.len() + 1);
        if granted == 0 {
            return;
        }
        let kept = granted.min(message.len());
        // Redact before cutting, so a cut never leaves part of a secret.
        let redacted = self.secrets.redact(message);
        let message = if kept < message.len() {
            truncate_str(&redacted, kept)
        } else {
            &redacted
        };
        self.lines.push(LogLine {
            level,
            message: message.to_owned(),
        });
    }

    fn write(&mut self, stream: Stream, bytes: &[u8]) {
        if stream == Stream::Stderr {
            self.stderr_tail.extend_from_slice(bytes);
            if self.stderr_tail.len() > 2 * STDERR_TAIL {
                let cut = self.stderr_tail.len() - STDERR_TAIL;
                self.stderr_tail.drain(..cut);
            }
        }
        let granted = self.take_budget(bytes.len());
        if granted == 0 {
            return;
        }
        let level = match stream {
            Stream::Stdout => LogLevel::Info,
            Stream::Stderr => LogLevel::Warn,
        };
        let mut partial = std::mem::take(match stream {
            Stream::Stdout => &mut self.stdout_partial,
            Stream::Stderr => &mut self.stderr_partial,
        });
        partial.extend_from_slice(&bytes[..granted]);
        let mut start = 0;
        while let Some(pos) = partial[start..].iter().position(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(&partial[start..start + pos]);
            let message = self.secrets.redact(&line).into_owned();
            self.keep(level, message);
            start += pos + 1;
        }
        partial.drain(..start);
        match stream {
            Stream::Stdout => self.stdout_partial = partial,
            Stream::Stderr => self.stderr_partial = partial,
        }
    }

    /// The guest's panic message, if its stderr shows one (`panicked at`).
    pub fn panic_message(&self) -> Option<String> {
        let tail = String::from_utf8_lossy(&self.stderr_tail);
        let tail = self.secrets.redact(&tail);
        let at = tail.rfind("panicked at")?;
        let rest = &tail[at..];
        let mut lines = rest.lines();
        let location = lines.next().unwrap_or_default().trim_end_matches(':');
        let message: Vec<&str> = lines.take_while(|l| !l.starts_with("note: ")).collect();
        let message = message.join("\n");
        Some(if message.is_empty() {
            location.to_owned()
        } else {
            format!("{message} ({location})")
        })
    }

    /// Flushes unterminated lines and returns the log.
    pub fn finish(&mut self) -> (Vec<LogLine>, bool) {
        for (stream, level) in [
            (Stream::Stdout, LogLevel::Info),
            (Stream::Stderr, LogLevel::Warn),
        ] {
            let partial = std::mem::take(match stream {
                Stream::Stdout => &mut self.stdout_partial,
                Stream::Stderr => &mut self.stderr_partial,
            });
            if !partial.is_empty() {
                let line = String::from_utf8_lossy(&partial);
                // Only the last line can have been cut by the budget.
                let message = if self.truncated {
                    self.secrets.redact_cut(&line)
                } else {
                    self.secrets.redact(&line).into_owned()
                };
                self.keep(level, message);
            }
        }
        (std::mem::take(&mut self.lines), self.truncated)
    }
}

fn truncate_str(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

pub(crate) type SharedLog = Arc<Mutex<LogBuffer>>;

pub(crate) fn lock_log(log: &SharedLog) -> MutexGuard<'_, LogBuffer> {
    log.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A guest's stdout or stderr, writing into the call's log.
#[derive(Debug, Clone)]
struct LogStream {
    log: SharedLog,
    stream: Stream,
}

/// Largest write a guest is offered at once.
const WRITE_PERMIT: usize = 64 * 1024;

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogStream {
    async fn ready(&mut self) {}
}

impl OutputStream for LogStream {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        lock_log(&self.log).write(self.stream, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

impl tokio::io::AsyncWrite for LogStream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        lock_log(&self.log).write(self.stream, buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// Everything one call needs, owned by its `Store`.
pub(crate) struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    http: WasiHttpCtx,
    net: NetHooks,
    pub limiter: Limiter,
    pub log: SharedLog,
    tenant: String,
    config: Arc<BTreeMap<String, String>>,
    secret_keys: Arc<std::collections::BTreeSet<String>>,
    /// The secret keys the guest read.
    pub secrets_read: std::collections::BTreeSet<String>,
    host: Arc<dyn HostApi>,
    allowed_effects: Vec<String>,
    max_effect_calls: u32,
    /// The failure the host decided for the call (an effect it may not call,
    /// one effect call too many): it stands whatever the guest did next.
    pub refusal: Option<Failure>,
    pub effect_calls: Vec<EffectCall>,
    /// What an effect reported through `usage.report`, by unit.
    pub units: BTreeMap<String, u64>,
    /// Secret config values: a usage unit may not name one.
    secrets: Arc<Secrets>,
}

/// What a [`CallState`] is built from.
pub(crate) struct CallSetup {
    pub limits: Limits,
    pub tenant: String,
    pub config: Arc<BTreeMap<String, String>>,
    pub secret_keys: Arc<std::collections::BTreeSet<String>>,
    pub host: Arc<dyn HostApi>,
    pub allowed_effects: Vec<String>,
    pub seed: u64,
    /// Secret config values, redacted from the log.
    pub secrets: Arc<Secrets>,
    /// The network policy of an effect call; `None` refuses every request.
    pub net: Option<Arc<NetCall>>,
}

impl CallState {
    pub fn new(setup: CallSetup) -> Self {
        let limits = setup.limits;
        let log: SharedLog = Arc::new(Mutex::new(LogBuffer::with_secrets(
            limits.max_log_bytes,
            limits.max_log_lines,
            setup.secrets.clone(),
        )));
        let mut wasi = WasiCtxBuilder::new();
        // Defaults already grant nothing: stdin closed, no env, no args, no
        // preopens, every socket address denied. Close the rest explicitly.
        wasi.stdout(LogStream {
            log: log.clone(),
            stream: Stream::Stdout,
        })
        .stderr(LogStream {
            log: log.clone(),
            stream: Stream::Stderr,
        })
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        // Random is seeded by the caller (from the job), so a re-run of the
        // same job sees the same bytes.
        .secure_random(StdRng::seed_from_u64(setup.seed))
        .insecure_random(StdRng::seed_from_u64(setup.seed ^ 0x9e37_79b9_7f4a_7c15))
        .insecure_random_seed(u128::from(setup.seed).rotate_left(64) | u128::from(!setup.seed))
        .max_random_size(MAX_RANDOM_BYTES);
        CallState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            net: NetHooks { call: setup.net },
            limiter: Limiter::new(limits.memory),
            log,
            tenant: setup.tenant,
            config: setup.config,
            secret_keys: setup.secret_keys,
            secrets_read: std::collections::BTreeSet::new(),
            host: setup.host,
            allowed_effects: setup.allowed_effects,
            max_effect_calls: limits.max_effect_calls,
            refusal: None,
            effect_calls: Vec::new(),
            units: BTreeMap::new(),
            secrets: setup.secrets,
        }
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for CallState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.net,
        }
    }
}

fn to_wit_blob(b: Blob) -> types::Blob {
    types::Blob {
        id: b.id,
        tenant: b.tenant,
        schema: b.schema,
        data: b.data,
        parents: b.parents,
    }
}

impl types::Host for CallState {}

impl host::Host for CallState {
    async fn log(&mut self, level: types::LogLevel, message: String) {
        let level = match level {
            types::LogLevel::Trace => LogLevel::Trace,
            types::LogLevel::Debug => LogLevel::Debug,
            types::LogLevel::Info => LogLevel::Info,
            types::LogLevel::Warn => LogLevel::Warn,
            types::LogLevel::Error => LogLevel::Error,
        };
        lock_log(&self.log).push(level, &message);
    }

    async fn config(&mut self, key: String) -> Option<String> {
        let value = self.config.get(&key).cloned();
        if value.is_some() && self.secret_keys.contains(&key) && !self.secrets_read.contains(&key) {
            self.secrets_read.insert(key);
        }
        value
    }

    async fn get_blob(&mut self, id: String) -> Result<Option<types::Blob>, types::Error> {
        match self.host.get_blob(&self.tenant, &id).await {
            // The host is asked for this tenant only; drop anything else it
            // returns rather than trust it.
            Ok(Some(b)) if b.tenant == self.tenant => Ok(Some(to_wit_blob(b))),
            Ok(_) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn query_blobs(
        &mut self,
        schema: String,
        filter: String,
    ) -> Result<Vec<types::Blob>, types::Error> {
        match self.host.query_blobs(&self.tenant, &schema, &filter).await {
            Ok(blobs) => Ok(blobs
                .into_iter()
                .filter(|b| b.tenant == self.tenant)
                .map(to_wit_blob)
                .collect()),
            Err(e) => Err(e.into()),
        }
    }
}

impl effects::Host for CallState {
    async fn call(
        &mut self,
        effect_name: String,
        request: Vec<u8>,
    ) -> wasmtime::Result<Result<Vec<u8>, types::Error>> {
        let refusal = if !self.allowed_effects.contains(&effect_name) {
            Some(Failure::EffectDenied {
                effect: effect_name.clone(),
            })
        } else if self.effect_calls.len() >= self.max_effect_calls as usize {
            // Refused before the host is asked: the list of calls kept for
            // the lineage never grows past the limit.
            Some(Failure::TooManyEffectCalls {
                limit: self.max_effect_calls,
            })
        } else {
            None
        };
        if let Some(failure) = refusal {
            self.refusal = Some(failure.clone());
            return Err(wasmtime::Error::new(failure));
        }
        let mut answer = self.host.call_effect(&effect_name, request).await;
        // What a failed effect said is kept in the lineage: bound it as a
        // failure message is bounded.
        if let reyna_types::EffectOutcome::Failed(why) = &mut answer.record.outcome {
            *why = bound_message(std::mem::take(why));
        }
        self.effect_calls.push(answer.record);
        Ok(answer.response.map_err(GuestError::into))
    }
}

impl usage::Host for CallState {
    async fn report(&mut self, unit: String, amount: u64) -> Result<(), types::Error> {
        let refused = |e: reyna_types::UnitError| types::Error::InvalidInput(e.to_string());
        reyna_types::check_unit_name(&unit).map_err(refused)?;
        // Units are kept in the tenant's usage and shown to its admins and
        // the operator: a name carrying a secret value never gets there.
        if matches!(self.secrets.redact(&unit), std::borrow::Cow::Owned(_)) {
            return Err(types::Error::InvalidInput(
                "usage unit name contains a secret config value".to_owned(),
            ));
        }
        reyna_types::add_usage(&mut self.units, &unit, amount).map_err(refused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_log_lines_count_against_the_budget() {
        let mut log = LogBuffer::new(1000, usize::MAX);
        for _ in 0..100_000 {
            log.push(LogLevel::Info, "");
        }
        let (lines, truncated) = log.finish();
        assert!(truncated);
        assert_eq!(lines.len(), 1000, "one byte of budget per empty line");
    }

    #[test]
    fn lines_past_the_line_cap_are_dropped_from_every_source() {
        let mut log = LogBuffer::new(1 << 20, 3);
        log.push(LogLevel::Info, "a");
        log.write(Stream::Stdout, b"b\n\n\n\n");
        log.push(LogLevel::Info, "dropped");
        log.write(Stream::Stderr, b"unterminated");
        let (lines, truncated) = log.finish();
        assert!(truncated);
        let messages: Vec<_> = lines.iter().map(|l| l.message.as_str()).collect();
        assert_eq!(messages, ["a", "b", ""]);
    }

    #[test]
    fn log_is_split_into_lines_and_bounded() {
        let mut log = LogBuffer::new(20, 100);
        log.write(Stream::Stdout, b"hello\nwor");
        log.write(Stream::Stdout, b"ld\n");
        // 12 bytes so far (newlines count): 8 left.
        log.push(LogLevel::Debug, "0123456789");
        log.write(Stream::Stderr, b"dropped");
        let (lines, truncated) = log.finish();
        assert!(truncated);
        let messages: Vec<_> = lines
            .iter()
            .map(|l| (l.level, l.message.as_str()))
            .collect();
        assert_eq!(
            messages,
            [
                (LogLevel::Info, "hello"),
                (LogLevel::Info, "world"),
                (LogLevel::Debug, "01234567"),
            ]
        );
    }

    #[test]
    fn truncation_keeps_utf8_whole() {
        let mut log = LogBuffer::new(3, 100);
        log.push(LogLevel::Info, "aéé");
        let (lines, truncated) = log.finish();
        assert!(truncated);
        assert_eq!(lines[0].message, "aé");
    }

    #[test]
    fn panic_message_is_found_even_past_the_budget() {
        let mut log = LogBuffer::new(4, 100);
        log.write(Stream::Stdout, b"lots of output");
        log.write(
            Stream::Stderr,
            b"\nthread '<unnamed>' panicked at src/lib.rs:3:5:\nboom\nnote: run with `RUST_BACKTRACE=1`\n",
        );
        assert_eq!(
            log.panic_message().unwrap(),
            "boom (panicked at src/lib.rs:3:5)"
        );
        assert_eq!(LogBuffer::new(10, 100).panic_message(), None);
    }

    #[test]
    fn limiter_refuses_growth_past_the_limit() {
        let mut limiter = Limiter::new(4 << 16);
        assert!(limiter.memory_growing(0, 2 << 16, None).unwrap());
        assert!(limiter.memory_growing(2 << 16, 4 << 16, None).unwrap());
        let err = limiter.memory_growing(4 << 16, 5 << 16, None).unwrap_err();
        assert!(err.downcast_ref::<MemoryLimitReached>().is_some());
        assert!(limiter.refused);
        assert_eq!(limiter.peak_memory, 4 << 16);
    }
}
