//! One plugin call: what goes in ([`Event`], [`CallContext`]), what comes out
//! ([`CallReport`]), and how a failure is classified.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::{Store, Trap, UpdateDeadline};

use crate::bindings::{self, Effect, Processor};
use crate::plugin::Pre;
use crate::sandbox::{CallSetup, CallState, EffectDenied, MemoryLimitReached, lock_log};
use crate::secrets::Secrets;
use crate::{Failure, GuestError, HostApi, NoHost, Plugin, Runtime};

/// A stored, schema-validated piece of JSON data.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Blob {
    /// Time-ordered unique id (ULID text).
    pub id: String,
    /// The tenant that owns the blob.
    pub tenant: String,
    /// Schema id, e.g. `text-input-v1`.
    pub schema: String,
    /// The JSON document, UTF-8.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
    /// Ids of the blobs this one was derived from.
    pub parents: Vec<String>,
}

/// What a plugin is called with: a blob and the subject it was routed on.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Event {
    /// `<entity>.<action>.<schema>`, e.g. `blob.created.text-input-v1`.
    pub subject: String,
    /// The blob the event is about.
    pub blob: Blob,
}

/// A derived blob returned by a processor, checked for shape: its schema is
/// one the manifest declares and its data is UTF-8 JSON. (Validating the data
/// against the schema is the engine's job.)
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Output {
    /// Schema id of the output.
    pub schema: String,
    /// The JSON document, UTF-8.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
    /// Parents besides the event's blob.
    pub extra_parents: Vec<String>,
}

/// What the caller provides besides the event.
#[derive(Clone)]
pub struct CallContext {
    /// The plugin's operator-set configuration, read by the guest's `config`.
    pub config: Arc<BTreeMap<String, String>>,
    /// Blob reads and effect calls.
    pub host: Arc<dyn HostApi>,
    /// Effects this call may use. An effect must also be declared in the
    /// manifest; any other name fails the call with
    /// [`Failure::EffectDenied`] before the host is asked.
    pub allowed_effects: Vec<String>,
    /// Seed of the guest's `wasi:random`: the same seed (say, from the job
    /// id) gives a re-run the same random bytes.
    pub seed: u64,
}

impl Default for CallContext {
    fn default() -> Self {
        CallContext {
            config: Arc::default(),
            host: Arc::new(NoHost),
            allowed_effects: Vec::new(),
            seed: 0,
        }
    }
}

impl std::fmt::Debug for CallContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallContext")
            .field("config_keys", &self.config.keys().collect::<Vec<_>>())
            .field("allowed_effects", &self.allowed_effects)
            .field("seed", &self.seed)
            .finish_non_exhaustive()
    }
}

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// Trace.
    Trace,
    /// Debug.
    Debug,
    /// Info; also every line the guest printed to stdout.
    Info,
    /// Warning; also every line the guest printed to stderr.
    Warn,
    /// Error.
    Error,
}

/// One line of a call's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Severity.
    pub level: LogLevel,
    /// The text (a stdout/stderr line without its newline).
    pub message: String,
}

/// One `effects.call` the guest made and the host served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectCall {
    /// The effect name.
    pub effect: String,
    /// SHA-256 of the request bytes, hex.
    pub request_digest: String,
    /// SHA-256 of the response bytes, hex, when the effect succeeded.
    pub response_digest: Option<String>,
    /// The error returned to the guest, when the effect failed.
    pub error: Option<GuestError>,
}

/// What one call used. Recorded in lineage by the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Cost {
    /// Wall time of the whole call, waiting for a slot included (µs).
    pub wall_us: u64,
    /// Time to instantiate the plugin in a fresh store (µs).
    pub instantiate_us: u64,
    /// Epoch ticks that passed while the guest ran.
    pub epoch_ticks: u64,
    /// Fuel consumed, when fuel metering is on.
    pub fuel_consumed: Option<u64>,
    /// Largest total linear memory the instance had (bytes).
    pub peak_memory: u64,
    /// Bytes of the input blob's data.
    pub bytes_in: u64,
    /// Bytes of the outputs' data.
    pub bytes_out: u64,
    /// Number of outputs.
    pub outputs: u32,
}

/// The result of a call and what it cost.
#[derive(Debug, Clone)]
pub struct CallReport {
    /// The checked outputs, or why there are none.
    pub result: Result<Vec<Output>, Failure>,
    /// What the call used.
    pub cost: Cost,
    /// The call's log: host `log` calls, stdout and stderr.
    pub logs: Vec<LogLine>,
    /// Whether log lines were dropped for exceeding `max_log_bytes`.
    pub log_truncated: bool,
    /// Effect calls served, in order.
    pub effect_calls: Vec<EffectCall>,
}

pub(crate) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Waits at most `wait` for a permit; never queues unboundedly in time.
async fn acquire(semaphore: &Arc<Semaphore>, wait: Duration) -> Option<OwnedSemaphorePermit> {
    if let Ok(p) = semaphore.clone().try_acquire_owned() {
        return Some(p);
    }
    tokio::time::timeout(wait, semaphore.clone().acquire_owned())
        .await
        .ok()
        .and_then(Result::ok)
}

impl Runtime {
    /// Runs `plugin` on `event` in a fresh sandbox, under the plugin's limits,
    /// and reports outputs or a typed failure, its cost and its log. Never
    /// panics and never harms other calls, whatever the guest does.
    pub async fn call(&self, plugin: &Plugin, event: Event, ctx: CallContext) -> CallReport {
        let started = Instant::now();
        let mut report = CallReport {
            result: Ok(Vec::new()),
            cost: Cost {
                bytes_in: event.blob.data.len() as u64,
                ..Cost::default()
            },
            logs: Vec::new(),
            log_truncated: false,
            effect_calls: Vec::new(),
        };
        report.result = self.run(plugin, event, ctx, started, &mut report).await;
        if let Ok(outputs) = &report.result {
            report.cost.outputs = u32::try_from(outputs.len()).unwrap_or(u32::MAX);
            report.cost.bytes_out = outputs.iter().map(|o| o.data.len() as u64).sum();
        }
        report.cost.wall_us = micros(started.elapsed());
        report
    }

    async fn run(
        &self,
        plugin: &Plugin,
        event: Event,
        ctx: CallContext,
        started: Instant,
        report: &mut CallReport,
    ) -> Result<Vec<Output>, Failure> {
        let p = &plugin.inner;
        let manifest = &p.manifest;
        if !matches!(p.pre, Pre::Processor(_)) {
            return Err(Failure::Fatal(format!(
                "plugin `{}` is an effect: run it with `perform` or `deliver`",
                manifest.id()
            )));
        }
        check_input_schema(plugin, &event.blob.schema)?;
        let allowed_effects = ctx
            .allowed_effects
            .into_iter()
            .filter(|e| manifest.effects.contains(e))
            .collect();
        let secrets = Arc::new(Secrets::from_config(&ctx.config));
        let state = CallState::new(CallSetup {
            memory_limit: p.limits.memory,
            max_log_bytes: p.limits.max_log_bytes,
            tenant: event.blob.tenant.clone(),
            config: ctx.config,
            host: ctx.host,
            allowed_effects,
            seed: ctx.seed,
            secrets: secrets.clone(),
            net: None,
        });
        let ran = self
            .sandbox(
                plugin,
                state,
                Invocation::Process(to_wit_event(event)),
                started,
                &mut report.cost,
            )
            .await?;
        (report.logs, report.log_truncated) = (ran.logs, ran.log_truncated);
        let mut state = ran.state;
        report.effect_calls = std::mem::take(&mut state.effect_calls);
        // Even a guest that swallowed the refusal fails the call.
        if let Some(effect) = state.denied_effect.take() {
            return Err(Failure::EffectDenied { effect });
        }
        let result = match ran.result.map_err(|f| secrets.redact_failure(f))? {
            Returned::Outputs(r) => r,
            Returned::Bytes(_) => return Err(Failure::Host("unexpected return type".to_owned())),
        };
        let outputs = result.map_err(|e| secrets.redact_failure(guest_failure(e)))?;
        check_outputs(plugin, outputs)
    }

    /// Runs one export of `plugin` in a fresh store built on `state`, under
    /// the plugin's limits: waits (bounded) for a concurrency slot, sets
    /// memory, fuel, hostcall and deadline limits, instantiates, calls, and
    /// classifies where it stopped. Fails early only when no slot came.
    pub(crate) async fn sandbox(
        &self,
        plugin: &Plugin,
        state: CallState,
        invocation: Invocation,
        started: Instant,
        cost: &mut Cost,
    ) -> Result<Ran, Failure> {
        let inner = &self.inner;
        let p = &plugin.inner;
        let limits = p.limits;

        let wait = inner.config.concurrency_wait;
        let _plugin_permit = acquire(&p.permits, wait).await.ok_or(Failure::Busy)?;
        let _instance_permit = acquire(&inner.instances, wait.saturating_sub(started.elapsed()))
            .await
            .ok_or(Failure::Busy)?;

        let log = state.log.clone();
        let mut store = Store::new(&inner.engine, state);
        store.limiter(|s| &mut s.limiter);
        if let Some(fuel) = limits.fuel {
            store
                .set_fuel(fuel)
                .map_err(|e| Failure::Host(format!("{e:#}")))?;
        }
        // Bounds what the host copies out of the guest in one crossing (the
        // returned outputs, a log line, an effect request) before any of it
        // is allocated: a guest returning 640 MiB is refused at the first
        // bytes past the limit, not after the host copied them all.
        let hostcall_bytes = hostcall_bytes(&limits);
        store.set_hostcall_fuel(hostcall_bytes);
        // A new store starts at deadline 0: set it before anything runs. The
        // guest yields to the executor at every tick and is interrupted at the
        // first tick past its deadline.
        let deadline = Instant::now() + limits.timeout;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        let ticks_before = inner.ticks.load(Ordering::Relaxed);

        let mut instantiate_us = 0;
        let outcome = {
            let run = async {
                let t = Instant::now();
                match (&p.pre, invocation) {
                    (Pre::Processor(pre), Invocation::Process(event)) => {
                        let instance: Processor = pre
                            .instantiate_async(&mut store)
                            .await
                            .map_err(Phase::Instantiate)?;
                        instantiate_us = micros(t.elapsed());
                        instance
                            .call_process(&mut store, &event)
                            .await
                            .map(Returned::Outputs)
                            .map_err(Phase::Call)
                    }
                    (
                        Pre::Effect(pre),
                        invocation @ (Invocation::Perform(_) | Invocation::Deliver(_)),
                    ) => {
                        let instance: Effect = pre
                            .instantiate_async(&mut store)
                            .await
                            .map_err(Phase::Instantiate)?;
                        instantiate_us = micros(t.elapsed());
                        let returned = match invocation {
                            Invocation::Perform(request) => {
                                instance.call_perform(&mut store, &request).await
                            }
                            Invocation::Deliver(event) => {
                                instance.call_deliver(&mut store, &event).await
                            }
                            Invocation::Process(_) => return Err(Phase::Mismatch),
                        };
                        returned.map(Returned::Bytes).map_err(Phase::Call)
                    }
                    _ => Err(Phase::Mismatch),
                }
            };
            // Host futures (effects, blob reads, HTTP) are not interrupted by
            // epochs: this bounds the call as a whole, one tick after the
            // deadline.
            let bound = limits.timeout + inner.config.epoch_tick;
            match tokio::time::timeout(bound, run).await {
                Ok(r) => r,
                Err(_) => Err(Phase::Deadline),
            }
        };
        cost.instantiate_us = instantiate_us;
        cost.epoch_ticks = inner
            .ticks
            .load(Ordering::Relaxed)
            .saturating_sub(ticks_before);
        if let Some(fuel) = limits.fuel {
            cost.fuel_consumed = Some(fuel.saturating_sub(store.get_fuel().unwrap_or(0)));
        }
        // Dropping the store's instance also drops what the guest left in
        // flight (an HTTP request's task is aborted with it).
        let state = store.into_data();
        cost.peak_memory = state.limiter.peak_memory as u64;

        let mut log = lock_log(&log);
        let panic_message = log.panic_message();
        let (logs, log_truncated) = log.finish();
        drop(log);

        let result = outcome.map_err(|phase| {
            classify(
                phase,
                state.denied_effect.clone(),
                state.limiter.refused,
                panic_message,
                hostcall_bytes,
            )
        });
        Ok(Ran {
            result,
            state,
            logs,
            log_truncated,
        })
    }
}

/// Which export to call, with its argument.
pub(crate) enum Invocation {
    Process(bindings::Event),
    Perform(Vec<u8>),
    Deliver(bindings::Event),
}

/// What the export returned.
pub(crate) enum Returned {
    Outputs(Result<Vec<bindings::Output>, bindings::Error>),
    Bytes(Result<Vec<u8>, bindings::Error>),
}

/// How a sandboxed call went.
pub(crate) struct Ran {
    /// What the guest returned, or where it stopped, classified.
    pub result: Result<Returned, Failure>,
    /// The store's state after the call (its instance is gone).
    pub state: CallState,
    /// The call's log.
    pub logs: Vec<LogLine>,
    /// Whether log lines were dropped.
    pub log_truncated: bool,
}

pub(crate) fn to_wit_event(event: Event) -> bindings::Event {
    bindings::Event {
        subject: event.subject,
        blob: bindings::Blob {
            id: event.blob.id,
            tenant: event.blob.tenant,
            schema: event.blob.schema,
            data: event.blob.data,
            parents: event.blob.parents,
        },
    }
}

/// Refuses an event whose blob schema the plugin does not consume.
pub(crate) fn check_input_schema(plugin: &Plugin, schema: &str) -> Result<(), Failure> {
    let manifest = &plugin.inner.manifest;
    if !manifest.inputs.is_empty() && !manifest.inputs.iter().any(|s| s.as_str() == schema) {
        return Err(Failure::InvalidInput(format!(
            "plugin `{}` does not consume schema `{schema}`",
            manifest.name
        )));
    }
    Ok(())
}

/// The failure a guest's own `error` maps to.
pub(crate) fn guest_failure(e: bindings::Error) -> Failure {
    match e {
        bindings::Error::InvalidInput(m) => Failure::InvalidInput(m),
        bindings::Error::Retryable(m) => Failure::Retryable(m),
        bindings::Error::Fatal(m) => Failure::Fatal(m),
    }
}

/// Where a call stopped.
enum Phase {
    Instantiate(wasmtime::Error),
    Call(wasmtime::Error),
    Deadline,
    /// The export asked for is not the plugin's kind (checked before, so
    /// never expected).
    Mismatch,
}

/// Longest trap message kept (wasm backtraces can be long).
const MAX_TRAP_MESSAGE: usize = 2048;

/// Room, besides the output bytes themselves, for what else crosses with
/// them: schema names, extra-parent ids, list headers.
const HOSTCALL_SLACK: usize = 4 << 20;

/// Most bytes the guest may hand the host in one crossing.
fn hostcall_bytes(limits: &crate::Limits) -> usize {
    usize::try_from(limits.max_output_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(HOSTCALL_SLACK)
}

/// How wasmtime words running out of hostcall fuel (its error type is private).
const HOSTCALL_FUEL_EXHAUSTED: &str = "fuel allocated for hostcalls has been exhausted";

fn classify(
    phase: Phase,
    denied_effect: Option<String>,
    memory_refused: bool,
    panic: Option<String>,
    hostcall_bytes: usize,
) -> Failure {
    if let Some(effect) = denied_effect {
        return Failure::EffectDenied { effect };
    }
    let (err, instantiating) = match phase {
        Phase::Deadline => return Failure::Timeout,
        Phase::Mismatch => {
            return Failure::Host("the plugin's kind has no such export".to_owned());
        }
        Phase::Instantiate(e) => (e, true),
        Phase::Call(e) => (e, false),
    };
    if memory_refused || err.downcast_ref::<MemoryLimitReached>().is_some() {
        return Failure::MemoryLimit;
    }
    if let Some(EffectDenied(effect)) = err.downcast_ref::<EffectDenied>() {
        return Failure::EffectDenied {
            effect: effect.clone(),
        };
    }
    let mut message = format!("{err:#}");
    if message.contains(HOSTCALL_FUEL_EXHAUSTED) {
        return Failure::OutputLimit {
            reason: format!(
                "the plugin passed more than {hostcall_bytes} bytes to the host at once \
                 (its outputs, a log line or an effect request)"
            ),
        };
    }
    if message.len() > MAX_TRAP_MESSAGE {
        let mut end = MAX_TRAP_MESSAGE;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push_str("...");
    }
    let Some(trap) = err.downcast_ref::<Trap>() else {
        if instantiating {
            return Failure::Host(format!("cannot instantiate: {message}"));
        }
        return Failure::Trap {
            code: "host_trap".to_owned(),
            message,
        };
    };
    let code = match trap {
        Trap::Interrupt | Trap::OutOfFuel => return Failure::Timeout,
        Trap::UnreachableCodeReached => match panic {
            Some(p) => {
                return Failure::Trap {
                    code: "panic".to_owned(),
                    message: p,
                };
            }
            None => "unreachable",
        },
        Trap::StackOverflow => "stack_overflow",
        Trap::MemoryOutOfBounds => "memory_out_of_bounds",
        Trap::HeapMisaligned => "heap_misaligned",
        Trap::TableOutOfBounds => "table_out_of_bounds",
        Trap::IndirectCallToNull => "indirect_call_to_null",
        Trap::BadSignature => "bad_signature",
        Trap::IntegerOverflow => "integer_overflow",
        Trap::IntegerDivisionByZero => "integer_division_by_zero",
        Trap::BadConversionToInteger => "bad_conversion_to_integer",
        _ => "trap",
    };
    Failure::Trap {
        code: code.to_owned(),
        message,
    }
}

fn check_outputs(plugin: &Plugin, outputs: Vec<bindings::Output>) -> Result<Vec<Output>, Failure> {
    let limits = &plugin.inner.limits;
    let manifest = &plugin.inner.manifest;
    if outputs.len() > limits.max_outputs as usize {
        return Err(Failure::OutputLimit {
            reason: format!(
                "{} outputs, more than the {} allowed",
                outputs.len(),
                limits.max_outputs
            ),
        });
    }
    let total: u64 = outputs.iter().map(|o| o.data.len() as u64).sum();
    if total > limits.max_output_bytes {
        return Err(Failure::OutputLimit {
            reason: format!(
                "{total} output bytes, more than the {} allowed",
                limits.max_output_bytes
            ),
        });
    }
    let mut checked = Vec::with_capacity(outputs.len());
    for (i, o) in outputs.into_iter().enumerate() {
        if !manifest.outputs.iter().any(|s| s.as_str() == o.schema) {
            return Err(Failure::InvalidOutput {
                reason: format!(
                    "output {i} has schema `{}`, which the manifest does not list in `outputs`",
                    o.schema
                ),
            });
        }
        let text = std::str::from_utf8(&o.data).map_err(|e| Failure::InvalidOutput {
            reason: format!("output {i} ({}) is not UTF-8: {e}", o.schema),
        })?;
        if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
            return Err(Failure::InvalidOutput {
                reason: format!("output {i} ({}) is not JSON: {e}", o.schema),
            });
        }
        checked.push(Output {
            schema: o.schema,
            data: o.data,
            extra_parents: o.extra_parents,
        });
    }
    Ok(checked)
}
