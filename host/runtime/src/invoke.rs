//! The sandbox driver shared by processor calls (`call`) and effect calls
//! (`effect`): waits for a slot, builds a fresh `Store` under the plugin's
//! limits, instantiates, runs one export, and classifies where it stopped.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use reyna_types::{Cost, LogLine};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::{Store, Trap, UpdateDeadline};

use crate::bindings::{self, Effect, Processor};
use crate::config::Limits;
use crate::error::Failure;
use crate::plugin::{Plugin, Pre};
use crate::runtime::Runtime;
use crate::sandbox::{CallState, MemoryLimitReached, lock_log};
use crate::types::Event;

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
        let mut cpu_ns = 0;
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
            // Every poll of the call, instantiation included, is metered on
            // the thread that runs it.
            let run = std::pin::pin!(run);
            let run = crate::cpu::metered(run, &mut cpu_ns);
            // Host futures (effects, blob reads, HTTP) are not interrupted by
            // epochs: this bounds the call as a whole, one tick after the
            // deadline.
            let bound = limits.timeout + inner.config.epoch_tick;
            match tokio::time::timeout(bound, run).await {
                Ok(r) => r,
                Err(_) => Err(Phase::Deadline),
            }
        };
        cost.cpu_us = cpu_ns / 1_000;
        cost.epoch_ticks = inner
            .ticks
            .load(Ordering::Relaxed)
            .saturating_sub(ticks_before);
        if let Some(fuel) = limits.fuel {
            cost.fuel = Some(fuel.saturating_sub(store.get_fuel().unwrap_or(0)));
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
                state.refusal.clone(),
                state.limiter.refused,
                panic_message,
                hostcall_bytes,
            )
        });
        Ok(Ran {
            result,
            state,
            instantiate_us,
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
    /// Time to instantiate (µs).
    pub instantiate_us: u64,
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
pub(crate) const HOSTCALL_SLACK: usize = 4 << 20;

/// Most bytes the guest may hand the host in one crossing.
fn hostcall_bytes(limits: &Limits) -> usize {
    usize::try_from(limits.max_output_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(HOSTCALL_SLACK)
}

/// How wasmtime words running out of hostcall fuel (its error type is private).
const HOSTCALL_FUEL_EXHAUSTED: &str = "fuel allocated for hostcalls has been exhausted";

fn classify(
    phase: Phase,
    refusal: Option<Failure>,
    memory_refused: bool,
    panic: Option<String>,
    hostcall_bytes: usize,
) -> Failure {
    if let Some(failure) = refusal {
        return failure;
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
    if let Some(failure) = err.downcast_ref::<Failure>() {
        return failure.clone();
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
