//! One processor call: what the caller provides besides the [`Event`]
//! ([`CallContext`]) and what comes out ([`CallReport`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use reyna_types::{Cost, EffectCall, EffectOutcome, LogLine};

use crate::bindings;
use crate::error::Failure;
use crate::host::{HostApi, NoHost};
use crate::invoke::{
    Invocation, Returned, check_input_schema, guest_failure, micros, to_wit_event,
};
use crate::plugin::{Plugin, Pre};
use crate::runtime::Runtime;
use crate::sandbox::{CallSetup, CallState};
use crate::secrets::Secrets;
use crate::types::{Event, Output};

/// What the caller provides besides the event.
#[derive(Clone)]
pub struct CallContext {
    /// The configuration of the tenant's installation of the plugin (plain
    /// values and opened secrets), read by the guest's `config`.
    pub config: Arc<BTreeMap<String, String>>,
    /// The config keys whose values are secrets (besides those that look
    /// like one, see [`is_secret_key`](crate::is_secret_key)): redacted
    /// from the report, and each one the guest reads is listed in
    /// [`CallReport::secrets_read`].
    pub secret_keys: Arc<BTreeSet<String>>,
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
            secret_keys: Arc::default(),
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

/// The result of a call and what it cost.
#[derive(Debug, Clone)]
pub struct CallReport {
    /// The checked outputs, or why there are none.
    pub result: Result<Vec<Output>, Failure>,
    /// What the call used.
    pub cost: Cost,
    /// Time to instantiate the plugin in a fresh store (µs), part of
    /// `cost.wall_us`.
    pub instantiate_us: u64,
    /// The call's log: host `log` calls, stdout and stderr.
    pub logs: Vec<LogLine>,
    /// Whether log lines were dropped for exceeding `max_log_bytes` or
    /// `max_log_lines`.
    pub log_truncated: bool,
    /// Every effect call the guest made, in order, as the host recorded it
    /// (at most [`Limits::max_effect_calls`](crate::Limits::max_effect_calls)).
    pub effect_calls: Vec<EffectCall>,
    /// Bytes this report holds for the call now that it has ended: its
    /// outputs, log lines, effect-call records and failure message, each
    /// with its fixed size and what it holds on the heap. At most
    /// [`Limits::max_retained_bytes`](crate::Limits::max_retained_bytes),
    /// whatever the guest did.
    pub retained_bytes: u64,
    /// The secret config keys ([`CallContext::secret_keys`]) the guest
    /// read, sorted. Never their values.
    pub secrets_read: Vec<String>,
}

impl CallReport {
    /// What [`CallReport::retained_bytes`] says, counted from the report.
    fn count_retained(&self) -> u64 {
        use std::mem::size_of;
        let outputs = match &self.result {
            Ok(outputs) => outputs
                .iter()
                .map(|o| {
                    size_of::<Output>()
                        + o.schema.capacity()
                        + o.data.capacity()
                        + o.extra_parents.capacity() * size_of::<String>()
                        + o.extra_parents.iter().map(String::capacity).sum::<usize>()
                })
                .sum(),
            // Every text a failure holds appears in its message.
            Err(failure) => size_of::<Failure>() + failure.to_string().len(),
        };
        let logs: usize = self.logs.capacity() * size_of::<LogLine>()
            + self
                .logs
                .iter()
                .map(|l| l.message.capacity())
                .sum::<usize>();
        let effect_calls: usize = self.effect_calls.capacity() * size_of::<EffectCall>()
            + self
                .effect_calls
                .iter()
                .map(|c| {
                    c.effect.capacity()
                        + c.version.capacity()
                        + match &c.outcome {
                            EffectOutcome::Failed(why) => why.capacity(),
                            _ => 0,
                        }
                })
                .sum::<usize>();
        (outputs + logs + effect_calls) as u64
    }
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
            instantiate_us: 0,
            logs: Vec::new(),
            log_truncated: false,
            effect_calls: Vec::new(),
            retained_bytes: 0,
            secrets_read: Vec::new(),
        };
        report.result = self
            .run(plugin, event, ctx, started, &mut report)
            .await
            .map_err(Failure::bounded);
        if let Ok(outputs) = &report.result {
            report.cost.outputs = u32::try_from(outputs.len()).unwrap_or(u32::MAX);
            report.cost.bytes_out = outputs.iter().map(|o| o.data.len() as u64).sum();
        }
        report.cost.wall_us = micros(started.elapsed());
        // The lists grew by doubling: keep only what they hold.
        report.logs.shrink_to_fit();
        report.effect_calls.shrink_to_fit();
        report.retained_bytes = report.count_retained();
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
        let secrets = Arc::new(Secrets::from_config(&ctx.config, &ctx.secret_keys));
        let state = CallState::new(CallSetup {
            limits: p.limits,
            tenant: event.blob.tenant.clone(),
            config: ctx.config,
            secret_keys: ctx.secret_keys,
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
        report.instantiate_us = ran.instantiate_us;
        let mut state = ran.state;
        report.effect_calls = std::mem::take(&mut state.effect_calls);
        report.secrets_read = std::mem::take(&mut state.secrets_read)
            .into_iter()
            .collect();
        // Even a guest that swallowed the refusal fails the call.
        if let Some(failure) = state.refusal.take() {
            return Err(failure);
        }
        let result = match ran.result.map_err(|f| secrets.redact_failure(f))? {
            Returned::Outputs(r) => r,
            Returned::Bytes(_) => return Err(Failure::Host("unexpected return type".to_owned())),
        };
        let outputs = result.map_err(|e| secrets.redact_failure(guest_failure(e)))?;
        check_outputs(plugin, outputs)
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
