//! Operator settings for the sandbox ([`RuntimeConfig`]) and the limits one
//! plugin runs under ([`Limits`]): the manifest's request, capped by the
//! operator's maxima.

use std::path::PathBuf;
use std::time::Duration;

use reyna_manifest::LimitsRequest;

use reyna_types::{EffectCall, LogLine};

use crate::error::{Failure, MAX_FAILURE_MESSAGE, RuntimeError};
use crate::shape::CompileLimits;
use crate::types::Output;

const MIB: u64 = 1 << 20;

/// Operator settings of a [`Runtime`](crate::Runtime). Every maximum caps what
/// a manifest may request; every default applies when it requests nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// Largest linear memory any plugin may request (bytes). Also the size of
    /// each memory slot in the instance pool. At most 4 GiB.
    pub max_memory: u64,
    /// Memory limit of a plugin whose manifest requests none.
    pub default_memory: u64,
    /// Longest deadline any plugin may request.
    pub max_timeout: Duration,
    /// Deadline of a plugin whose manifest requests none.
    pub default_timeout: Duration,
    /// Most outputs one call may return (and the default).
    pub max_outputs: u32,
    /// Most total output bytes one call may return (and the default).
    pub max_output_bytes: u64,
    /// Most log bytes (host `log` calls plus stdout and stderr) kept per call;
    /// the rest is dropped and the report says so.
    pub max_log_bytes: usize,
    /// Most log lines kept per call, however short (an empty line costs one
    /// byte of `max_log_bytes` and one line of this); the rest is dropped and
    /// the report says so.
    pub max_log_lines: usize,
    /// Most `effects.call` calls one processor call may make (and the
    /// default). The call past it fails the whole processor call with
    /// [`Failure::TooManyEffectCalls`](crate::Failure::TooManyEffectCalls).
    pub max_effect_calls: u32,
    /// Concurrency of a plugin whose manifest requests none.
    pub default_concurrency: u32,
    /// Retries of a plugin whose manifest requests none (the engine retries;
    /// the runtime only resolves the number).
    pub default_retries: u32,
    /// Most retries any plugin may request.
    pub max_retries: u32,
    /// How often the epoch ticker advances. Deadlines are checked at this
    /// granularity, and a running guest yields to the async executor at
    /// every tick. Keep it short: a guest that has not yielded holds its
    /// executor thread, and tasks woken meanwhile on that thread (tokio's
    /// unstealable LIFO slot) wait for it. At 10 ms, a worker running 5 ms
    /// calls on 2 cores kept only ~1.2 of them busy; at 1 ms, ~1.6.
    pub epoch_tick: Duration,
    /// Fuel budget per call, for operators who want deterministic metering.
    /// `None` (the default) disables fuel, which costs 40-130% of guest speed.
    pub fuel: Option<u64>,
    /// Size of the instance pool: how many calls can run at once across all
    /// plugins.
    pub max_instances: u32,
    /// How long a call waits for a free concurrency slot before it fails with
    /// [`Failure::Busy`](crate::Failure::Busy).
    pub concurrency_wait: Duration,
    /// What compiling one upload may cost, and how many compile at once.
    pub compile: CompileLimits,
    /// Where compiled components are cached. `None` compiles every load.
    /// Must be writable only by the host: artifacts are checksummed against
    /// corruption, not signed against someone who can write there.
    pub cache_dir: Option<PathBuf>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            max_memory: 512 * MIB,
            default_memory: 64 * MIB,
            max_timeout: Duration::from_secs(60),
            default_timeout: Duration::from_secs(5),
            max_outputs: 256,
            max_output_bytes: 16 * MIB,
            max_log_bytes: 64 * 1024,
            max_log_lines: 1000,
            max_effect_calls: 64,
            default_concurrency: 16,
            default_retries: 3,
            max_retries: 10,
            epoch_tick: Duration::from_millis(1),
            fuel: None,
            max_instances: 256,
            concurrency_wait: Duration::from_secs(5),
            compile: CompileLimits::default(),
            cache_dir: None,
        }
    }
}

impl RuntimeConfig {
    /// Checks that the settings are consistent.
    pub fn validate(&self) -> Result<(), RuntimeError> {
        let fail = |m: &str| Err(RuntimeError::Config(m.to_owned()));
        if self.max_memory == 0 || self.max_memory > 4 << 30 {
            return fail("max_memory must be between 1 byte and 4 GiB");
        }
        if self.default_memory > self.max_memory {
            return fail("default_memory is larger than max_memory");
        }
        if self.default_timeout > self.max_timeout || self.default_timeout.is_zero() {
            return fail("default_timeout must be non-zero and at most max_timeout");
        }
        if self.epoch_tick.is_zero() {
            return fail("epoch_tick must be non-zero");
        }
        if self.max_instances == 0 {
            return fail("max_instances must be at least 1");
        }
        if self.default_concurrency == 0 {
            return fail("default_concurrency must be at least 1");
        }
        if self.compile.max_concurrent == 0 || self.compile.timeout.is_zero() {
            return fail("compile.max_concurrent and compile.timeout must be non-zero");
        }
        if self.fuel == Some(0) {
            return fail("fuel must be positive when set");
        }
        Ok(())
    }

    /// Resolves a manifest's limits request against these settings.
    pub fn resolve(&self, request: &LimitsRequest) -> Limits {
        Limits {
            memory: request
                .memory
                .map_or(self.default_memory, |m| m.0)
                .min(self.max_memory),
            timeout: request
                .timeout
                .map_or(self.default_timeout, |t| t.0)
                .min(self.max_timeout),
            max_concurrency: request
                .max_concurrency
                .unwrap_or(self.default_concurrency)
                .clamp(1, self.max_instances),
            max_outputs: request
                .max_outputs
                .map_or(self.max_outputs, |n| n.min(self.max_outputs)),
            max_output_bytes: request
                .max_output_bytes
                .map_or(self.max_output_bytes, |b| b.0.min(self.max_output_bytes)),
            max_retries: request
                .max_retries
                .unwrap_or(self.default_retries)
                .min(self.max_retries),
            max_log_bytes: self.max_log_bytes,
            max_log_lines: self.max_log_lines,
            max_effect_calls: request
                .max_effect_calls
                .map_or(self.max_effect_calls, |n| n.min(self.max_effect_calls)),
            fuel: self.fuel,
        }
    }
}

/// The limits one plugin runs under, resolved once when it is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Linear memory limit per instance (bytes).
    pub memory: u64,
    /// Wall-clock deadline per call.
    pub timeout: Duration,
    /// Calls of this plugin that may run at once.
    pub max_concurrency: u32,
    /// Outputs per call.
    pub max_outputs: u32,
    /// Total output bytes per call.
    pub max_output_bytes: u64,
    /// Retries of a retryable failure (applied by the engine).
    pub max_retries: u32,
    /// Log bytes kept per call.
    pub max_log_bytes: usize,
    /// Log lines kept per call.
    pub max_log_lines: usize,
    /// Effect calls one processor call may make.
    pub max_effect_calls: u32,
    /// Fuel budget per call, when fuel metering is on.
    pub fuel: Option<u64>,
}

/// Room for an effect call record besides its failure text: the effect's
/// name (64 bytes at most) and the version that served it.
const EFFECT_CALL_NAMES: usize = 256;

/// Room for the fixed words of a failure's message around its texts.
const FAILURE_WORDS: usize = 256;

impl Limits {
    /// The most a processor call under these limits can leave the host
    /// holding once it has ended ([`CallReport::retained_bytes`]), whatever
    /// the guest did: the outputs (`max_output_bytes` of data, plus their
    /// schema names and extra parents, which cross into the host under the
    /// same per-crossing bound of `max_output_bytes` + 4 MiB), the log
    /// (`max_log_bytes` of text in at most `max_log_lines` lines), the
    /// effect-call records (`max_effect_calls`, each with a failure text cut
    /// to [`MAX_FAILURE_MESSAGE`] bytes) and a failure message cut the same
    /// way. With the default limits, everything but the outputs is under
    /// 400 KiB.
    ///
    /// [`CallReport::retained_bytes`]: crate::CallReport::retained_bytes
    pub fn max_retained_bytes(&self) -> u64 {
        use std::mem::size_of;
        let outputs = self.max_output_bytes
            + crate::invoke::HOSTCALL_SLACK as u64
            + u64::from(self.max_outputs) * size_of::<Output>() as u64;
        let logs =
            self.max_log_bytes as u64 + self.max_log_lines as u64 * size_of::<LogLine>() as u64;
        let effect_calls = u64::from(self.max_effect_calls)
            * (size_of::<EffectCall>() + MAX_FAILURE_MESSAGE + 64 + EFFECT_CALL_NAMES) as u64;
        let failure = (size_of::<Failure>() + MAX_FAILURE_MESSAGE + 64 + FAILURE_WORDS) as u64;
        outputs + logs + effect_calls + failure
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reyna_manifest::{ByteSize, HumanDuration};

    #[test]
    fn defaults_are_valid() {
        RuntimeConfig::default().validate().unwrap();
    }

    #[test]
    fn empty_request_gets_defaults() {
        let config = RuntimeConfig::default();
        let limits = config.resolve(&LimitsRequest::default());
        assert_eq!(limits.memory, config.default_memory);
        assert_eq!(limits.timeout, config.default_timeout);
        assert_eq!(limits.max_concurrency, config.default_concurrency);
        assert_eq!(limits.max_outputs, config.max_outputs);
        assert_eq!(limits.max_output_bytes, config.max_output_bytes);
        assert_eq!(limits.max_retries, config.default_retries);
        assert_eq!(limits.max_log_lines, config.max_log_lines);
        assert_eq!(limits.max_effect_calls, config.max_effect_calls);
    }

    #[test]
    fn requests_are_capped_by_the_operator() {
        let config = RuntimeConfig::default();
        let request = LimitsRequest {
            memory: Some(ByteSize(8 << 30)),
            timeout: Some(HumanDuration(Duration::from_secs(3600))),
            max_concurrency: Some(100_000),
            max_outputs: Some(1_000_000),
            max_output_bytes: Some(ByteSize(1 << 40)),
            max_retries: Some(1000),
            max_effect_calls: Some(1_000_000),
        };
        let limits = config.resolve(&request);
        assert_eq!(limits.memory, config.max_memory);
        assert_eq!(limits.timeout, config.max_timeout);
        assert_eq!(limits.max_concurrency, config.max_instances);
        assert_eq!(limits.max_outputs, config.max_outputs);
        assert_eq!(limits.max_output_bytes, config.max_output_bytes);
        assert_eq!(limits.max_retries, config.max_retries);
        assert_eq!(limits.max_effect_calls, config.max_effect_calls);
    }

    #[test]
    fn smaller_requests_are_kept() {
        let config = RuntimeConfig::default();
        let request = LimitsRequest {
            memory: Some(ByteSize(2 << 20)),
            timeout: Some(HumanDuration(Duration::from_millis(250))),
            max_concurrency: Some(2),
            max_outputs: Some(1),
            max_output_bytes: Some(ByteSize(1024)),
            max_retries: Some(0),
            max_effect_calls: Some(3),
        };
        let limits = config.resolve(&request);
        assert_eq!(limits.memory, 2 << 20);
        assert_eq!(limits.timeout, Duration::from_millis(250));
        assert_eq!(limits.max_concurrency, 2);
        assert_eq!(limits.max_outputs, 1);
        assert_eq!(limits.max_output_bytes, 1024);
        assert_eq!(limits.max_retries, 0);
        assert_eq!(limits.max_effect_calls, 3);
    }

    #[test]
    fn inconsistent_settings_are_named() {
        let config = RuntimeConfig {
            default_memory: 1 << 30,
            max_memory: 1 << 20,
            ..RuntimeConfig::default()
        };
        assert_eq!(
            config.validate().unwrap_err().to_string(),
            "invalid runtime configuration: default_memory is larger than max_memory"
        );
    }
}
