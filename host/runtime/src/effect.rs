//! One effect call: `perform` (serving a processor's `effects.call`) or
//! `deliver` (an effect run as a sink for an event), with its network policy
//! ([`EffectContext`]) and what it did ([`EffectReport`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use reyna_types::{Cost, LogLine};

use crate::error::Failure;
use crate::host::{HostApi, NoHost};
use crate::invoke::{
    Invocation, Returned, check_input_schema, guest_failure, micros, to_wit_event,
};
use crate::net::{HttpRecord, NetCall, NetPolicy};
use crate::plugin::{Plugin, Pre};
use crate::runtime::Runtime;
use crate::sandbox::{CallSetup, CallState};
use crate::secrets::Secrets;
use crate::types::Event;

/// What the caller provides to an effect call besides its input.
#[derive(Clone)]
pub struct EffectContext {
    /// The configuration of the tenant's installation of the effect
    /// (endpoint, API key, ...),
    /// read by the guest's `config`. Values of keys that look like secrets
    /// (see [`is_secret_key`](crate::is_secret_key)) are redacted from the
    /// report.
    pub config: Arc<BTreeMap<String, String>>,
    /// Config keys whose values are secrets whatever their name: redacted
    /// like the others, and listed in [`EffectReport::secrets_read`] when
    /// read.
    pub secret_keys: Arc<BTreeSet<String>>,
    /// Blob reads (`get-blob`, `query-blobs`). `perform` has no event, so no
    /// tenant: its reads see nothing. `deliver` reads the event's tenant.
    pub host: Arc<dyn HostApi>,
    /// Where the effect may connect, and how much it may do.
    pub policy: Arc<NetPolicy>,
    /// Seed of the guest's `wasi:random`.
    pub seed: u64,
}

impl Default for EffectContext {
    /// No config, no blobs, a policy that refuses every request.
    fn default() -> Self {
        EffectContext {
            config: Arc::default(),
            secret_keys: Arc::default(),
            host: Arc::new(NoHost),
            policy: Arc::default(),
            seed: 0,
        }
    }
}

impl std::fmt::Debug for EffectContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EffectContext")
            .field("config_keys", &self.config.keys().collect::<Vec<_>>())
            .field("policy", &self.policy)
            .field("seed", &self.seed)
            .finish_non_exhaustive()
    }
}

/// The result of an effect call, what it cost and every request it made.
#[derive(Debug, Clone)]
pub struct EffectReport {
    /// The response (`perform`) or receipt (`deliver`) bytes, or why there
    /// are none. A request the policy refused, or a response over its size
    /// limit, fails the call ([`Failure::HostDenied`],
    /// [`Failure::ResponseTooLarge`]) whatever the guest did next.
    pub result: Result<Vec<u8>, Failure>,
    /// What the call used (`bytes_in`: the request or the event's blob data;
    /// `bytes_out`: the response; `outputs` stays 0).
    pub cost: Cost,
    /// Time to instantiate the plugin in a fresh store (µs).
    pub instantiate_us: u64,
    /// The call's log, secrets redacted.
    pub logs: Vec<LogLine>,
    /// Whether log lines were dropped for exceeding `max_log_bytes` or
    /// `max_log_lines`.
    pub log_truncated: bool,
    /// Every outbound request, in the order the guest made them, refused ones
    /// included, up to the policy's `max_requests_per_call` plus the first
    /// one refused for the count.
    pub requests: Vec<HttpRecord>,
    /// Attempts made after that one: refused, counted, not recorded, so a
    /// guest looping on refusals holds no more than the cap.
    pub unrecorded_requests: u64,
    /// The secret config keys ([`EffectContext::secret_keys`]) the guest
    /// read, sorted. Never their values.
    pub secrets_read: Vec<String>,
    /// The usage the guest reported through `usage.report`, by unit (at
    /// most [`MAX_USAGE_UNITS`](reyna_types::MAX_USAGE_UNITS) units, each
    /// summed with saturation): what the outside world charged for the
    /// call. Kept when the call failed too, since it was spent. A replayed
    /// call runs no effect and reports none.
    pub units: BTreeMap<String, u64>,
}

impl EffectReport {
    /// An empty report of a call that used `bytes_in` and has not run yet.
    fn new(bytes_in: u64) -> Self {
        EffectReport {
            result: Ok(Vec::new()),
            cost: Cost {
                bytes_in,
                ..Cost::default()
            },
            instantiate_us: 0,
            logs: Vec::new(),
            log_truncated: false,
            requests: Vec::new(),
            unrecorded_requests: 0,
            secrets_read: Vec::new(),
            units: BTreeMap::new(),
        }
    }

    /// The report of a call the host refused before running it (say, a
    /// budget used up): `failure`, and nothing used.
    pub fn refused(failure: Failure) -> Self {
        EffectReport {
            result: Err(failure),
            ..Self::new(0)
        }
    }
}

impl Runtime {
    /// Runs effect `plugin`'s `perform` with `request` (serving a processor's
    /// `effects.call`) in a fresh sandbox, under the plugin's limits and
    /// `ctx.policy`. Never panics, whatever the guest or the network does.
    pub async fn perform(
        &self,
        plugin: &Plugin,
        request: Vec<u8>,
        ctx: EffectContext,
    ) -> EffectReport {
        let bytes_in = request.len() as u64;
        self.run_effect(
            plugin,
            Invocation::Perform(request),
            String::new(),
            bytes_in,
            ctx,
        )
        .await
    }

    /// Runs effect `plugin`'s `deliver` with `event` (the effect as a sink for
    /// a subscription) in a fresh sandbox, under the plugin's limits and
    /// `ctx.policy`. The result is the guest's receipt.
    pub async fn deliver(&self, plugin: &Plugin, event: Event, ctx: EffectContext) -> EffectReport {
        let bytes_in = event.blob.data.len() as u64;
        if let Err(failure) = check_input_schema(plugin, &event.blob.schema) {
            return EffectReport {
                result: Err(failure),
                ..EffectReport::new(bytes_in)
            };
        }
        let tenant = event.blob.tenant.clone();
        self.run_effect(
            plugin,
            Invocation::Deliver(to_wit_event(event)),
            tenant,
            bytes_in,
            ctx,
        )
        .await
    }

    async fn run_effect(
        &self,
        plugin: &Plugin,
        invocation: Invocation,
        tenant: String,
        bytes_in: u64,
        ctx: EffectContext,
    ) -> EffectReport {
        let started = Instant::now();
        let mut report = EffectReport::new(bytes_in);
        report.result = self
            .effect_result(plugin, invocation, tenant, ctx, started, &mut report)
            .await
            .map_err(Failure::bounded);
        if let Ok(bytes) = &report.result {
            report.cost.bytes_out = bytes.len() as u64;
        }
        report.cost.wall_us = micros(started.elapsed());
        report
    }

    async fn effect_result(
        &self,
        plugin: &Plugin,
        invocation: Invocation,
        tenant: String,
        ctx: EffectContext,
        started: Instant,
        report: &mut EffectReport,
    ) -> Result<Vec<u8>, Failure> {
        let p = &plugin.inner;
        if !matches!(p.pre, Pre::Effect(_)) {
            return Err(Failure::Fatal(format!(
                "plugin `{}` is a processor: run it with `call`",
                p.manifest.id()
            )));
        }
        let secrets = Arc::new(Secrets::from_config(&ctx.config, &ctx.secret_keys));
        let net = Arc::new(NetCall::new(
            ctx.policy,
            p.manifest.allowed_hosts(),
            secrets.clone(),
        ));
        let state = CallState::new(CallSetup {
            limits: p.limits,
            tenant,
            config: ctx.config,
            secret_keys: ctx.secret_keys,
            host: ctx.host,
            allowed_effects: Vec::new(),
            seed: ctx.seed,
            secrets: secrets.clone(),
            net: Some(net.clone()),
        });
        let ran = self
            .sandbox(plugin, state, invocation, started, &mut report.cost)
            .await;
        let ran = match ran {
            Ok(ran) => ran,
            Err(failure) => {
                // The requests made before the call failed (a timeout, say)
                // are reported all the same.
                let net = net.finish();
                (report.requests, report.unrecorded_requests) = (net.records, net.unrecorded);
                return Err(failure);
            }
        };
        (report.logs, report.log_truncated) = (ran.logs, ran.log_truncated);
        report.instantiate_us = ran.instantiate_us;
        let mut state = ran.state;
        report.secrets_read = std::mem::take(&mut state.secrets_read)
            .into_iter()
            .collect();
        // Reported units stand whatever happens next: they were spent.
        report.units = std::mem::take(&mut state.units);
        // The store is gone, so no request task can still be writing.
        drop(state);
        let net = net.finish();
        (report.requests, report.unrecorded_requests) = (net.records, net.unrecorded);
        // A refused request or an oversized response fails the call, even if
        // the guest swallowed the error (or trapped on it).
        if let Some(failure) = net.failure {
            return Err(failure);
        }
        let bytes = match ran.result.map_err(|f| secrets.redact_failure(f))? {
            Returned::Bytes(r) => r.map_err(|e| secrets.redact_failure(guest_failure(e)))?,
            Returned::Outputs(_) => {
                return Err(Failure::Host("unexpected return type".to_owned()));
            }
        };
        let limit = p.limits.max_output_bytes;
        if bytes.len() as u64 > limit {
            return Err(Failure::OutputLimit {
                reason: format!(
                    "{} response bytes, more than the {limit} allowed",
                    bytes.len()
                ),
            });
        }
        Ok(bytes)
    }
}
