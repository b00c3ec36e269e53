//! The runtime's error types: what a call can end in ([`Failure`]), what
//! loading a component can end in ([`LoadError`]), what starting the runtime
//! can end in ([`RuntimeError`]), and the errors a host function hands back to
//! the guest ([`GuestError`]).

use std::net::IpAddr;
use std::path::PathBuf;

use reyna_manifest::InspectError;

/// Why a plugin call produced no outputs. The engine decides what to do from
/// the variant alone: [`Failure::retryable`] says whether a retry can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum Failure {
    /// The call ran past its deadline (wall clock, or its fuel budget when
    /// fuel metering is on).
    #[error("the call ran past its deadline")]
    Timeout,
    /// The guest tried to grow its memory (or a table) past its limit, or its
    /// initial memory is larger than the limit.
    #[error("the plugin tried to use more memory than its limit")]
    MemoryLimit,
    /// The guest trapped: a panic, `unreachable`, a stack overflow, an
    /// out-of-bounds access. `code` is a short stable name (`panic`,
    /// `unreachable`, `stack_overflow`, `memory_out_of_bounds`, ...).
    #[error("the plugin trapped ({code}): {message}")]
    Trap {
        /// Short stable name of the trap.
        code: String,
        /// What happened, with the guest's panic message when it printed one.
        message: String,
    },
    /// The guest returned more outputs, or more output bytes, than allowed.
    #[error("output limit exceeded: {reason}")]
    OutputLimit {
        /// Which limit and by how much.
        reason: String,
    },
    /// The guest called an effect that it may not call in this call.
    #[error("the plugin called effect `{effect}`, which it is not allowed to call")]
    EffectDenied {
        /// The effect name the guest asked for.
        effect: String,
    },
    /// The guest made more `effects.call` calls than its limit
    /// ([`Limits::max_effect_calls`](crate::Limits::max_effect_calls)). The
    /// call past the limit is not made; the whole call fails.
    #[error("the plugin made more than the {limit} effect calls allowed per call")]
    TooManyEffectCalls {
        /// The limit.
        limit: u32,
    },
    /// An output is malformed: not UTF-8 JSON, or a schema the manifest does
    /// not declare.
    #[error("invalid output: {reason}")]
    InvalidOutput {
        /// What is wrong with which output.
        reason: String,
    },
    /// The input can never be processed: the guest said so, or the event's
    /// schema is not one the plugin consumes.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The guest reported a transient problem.
    #[error("retryable error: {0}")]
    Retryable(String),
    /// The guest reported an error it cannot recover from.
    #[error("fatal error: {0}")]
    Fatal(String),
    /// The plugin (or the whole runtime) was at its concurrency limit for
    /// longer than the configured wait.
    #[error("the plugin is at its concurrency limit; try again later")]
    Busy,
    /// An effect's outbound HTTP request was refused by the operator's
    /// [`NetPolicy`](crate::NetPolicy) before anything was sent. The guest got
    /// `HTTP-request-denied`; the call fails even if the guest carried on.
    #[error("the request to `{host}` was refused: {reason}")]
    HostDenied {
        /// The refused target, `host:port`.
        host: String,
        /// Why it was refused.
        reason: DenyReason,
    },
    /// An HTTP response an effect received was larger than the policy's
    /// `max_response_bytes`. The guest got `HTTP-response-body-size`; the call
    /// fails even if the guest carried on.
    #[error("an HTTP response was larger than the {limit} bytes allowed")]
    ResponseTooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// The host failed in a way that is not the guest's fault.
    #[error("host error: {0}")]
    Host(String),
    /// An effect call found one of the tenant's budgets (or its effect-call
    /// quota) used up for its window: the call was not made, and the job
    /// fails even if the guest carried on. Not retried (the window has to
    /// reset first); a dead letter can be replayed once it has.
    #[error("{0}")]
    BudgetExceeded(String),
}

/// Why an effect's outbound request was refused ([`Failure::HostDenied`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum DenyReason {
    /// The target (scheme, host, port) is not in the effect's effective
    /// allowlist: its manifest's `allowed-hosts` and the operator's approvals.
    #[error("it is not among the effect's allowed hosts approved by the operator")]
    NotAllowed,
    /// The host is, or resolves to, a private, loopback, link-local or
    /// unspecified address, and the operator did not allow private addresses.
    #[error("it resolves to the private address {address}, and private addresses are not allowed")]
    PrivateAddress {
        /// The first private address found.
        address: IpAddr,
    },
    /// The call already made as many requests as the policy allows.
    #[error("the call made more than the {limit} requests allowed")]
    TooManyRequests {
        /// The policy's `max_requests_per_call`.
        limit: u32,
    },
}

impl DenyReason {
    /// A short stable name of the reason, for metrics and lineage.
    pub fn kind(&self) -> &'static str {
        match self {
            DenyReason::NotAllowed => "not-allowed",
            DenyReason::PrivateAddress { .. } => "private-address",
            DenyReason::TooManyRequests { .. } => "too-many-requests",
        }
    }
}

impl Failure {
    /// Whether running the same call again can succeed.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            Failure::Timeout | Failure::Retryable(_) | Failure::Busy | Failure::Host(_)
        )
    }

    /// Whether the failure is the plugin's own doing (a trap, a timeout,
    /// memory, a fatal error, an invalid output...): what a circuit breaker
    /// counts. A `retryable` the plugin returned (it is waiting for
    /// something), an input it rejected, a busy or failing host are not.
    pub fn is_plugin_fault(&self) -> bool {
        !matches!(
            self,
            Failure::InvalidInput(_)
                | Failure::Retryable(_)
                | Failure::Busy
                | Failure::Host(_)
                | Failure::BudgetExceeded(_)
        )
    }

    /// A short stable name of the variant, for metrics and lineage.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::Timeout => "timeout",
            Failure::MemoryLimit => "memory-limit",
            Failure::Trap { .. } => "trap",
            Failure::OutputLimit { .. } => "output-limit",
            Failure::EffectDenied { .. } => "effect-denied",
            Failure::TooManyEffectCalls { .. } => "too-many-effect-calls",
            Failure::InvalidOutput { .. } => "invalid-output",
            Failure::InvalidInput(_) => "invalid-input",
            Failure::Retryable(_) => "retryable",
            Failure::Fatal(_) => "fatal",
            Failure::Busy => "busy",
            Failure::HostDenied { .. } => "host-denied",
            Failure::ResponseTooLarge { .. } => "response-too-large",
            Failure::Host(_) => "host",
            Failure::BudgetExceeded(_) => "budget-exceeded",
        }
    }

    /// The failure with every message cut to [`MAX_FAILURE_MESSAGE`] bytes
    /// (on a character boundary, saying how long it was): a guest's error
    /// text is stored with its job and dead letter and shown in listings,
    /// so it must not be able to make them megabytes long.
    pub fn bounded(self) -> Failure {
        self.map_messages(bound_message)
    }

    /// The failure with `f` applied to every text it carries (messages,
    /// reasons, names a guest chose); its kind is kept.
    pub(crate) fn map_messages(self, f: impl Fn(String) -> String) -> Failure {
        match self {
            Failure::Trap { code, message } => Failure::Trap {
                code,
                message: f(message),
            },
            Failure::InvalidInput(m) => Failure::InvalidInput(f(m)),
            Failure::Retryable(m) => Failure::Retryable(f(m)),
            Failure::Fatal(m) => Failure::Fatal(f(m)),
            Failure::Host(m) => Failure::Host(f(m)),
            Failure::BudgetExceeded(m) => Failure::BudgetExceeded(f(m)),
            Failure::OutputLimit { reason } => Failure::OutputLimit { reason: f(reason) },
            Failure::InvalidOutput { reason } => Failure::InvalidOutput { reason: f(reason) },
            Failure::EffectDenied { effect } => Failure::EffectDenied { effect: f(effect) },
            Failure::HostDenied { host, reason } => Failure::HostDenied {
                host: f(host),
                reason,
            },
            other => other,
        }
    }
}

/// Longest message a [`Failure`] carries out of the runtime, in bytes.
pub const MAX_FAILURE_MESSAGE: usize = 4096;

/// `m` cut to [`MAX_FAILURE_MESSAGE`] bytes on a character boundary, saying
/// how long it was (at most 40 bytes more).
pub(crate) fn bound_message(m: String) -> String {
    if m.len() <= MAX_FAILURE_MESSAGE {
        return m;
    }
    let mut end = MAX_FAILURE_MESSAGE;
    while !m.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes in all)", &m[..end], m.len())
}

/// Why a component could not be loaded. Nothing is kept when loading fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The bytes are not a Reyna plugin (no component, no or a bad manifest,
    /// wrong world).
    #[error(transparent)]
    Inspect(#[from] InspectError),
    /// wasmtime could not compile the component.
    #[error("cannot compile the component: {0}")]
    Compile(String),
    /// The component passes a compile limit ([`CompileLimits`](crate::CompileLimits)),
    /// checked before compiling.
    #[error("{0}")]
    TooExpensive(#[from] crate::shape::ShapeError),
    /// Compiling took longer than the compile timeout.
    #[error("compiling the component took longer than {timeout:?} (compile.timeout)")]
    CompileTimeout {
        /// The limit.
        timeout: std::time::Duration,
    },
    /// No compile slot came free within the compile timeout.
    #[error(
        "{max_concurrent} other components were compiling for longer than {timeout:?} (compile.max-compiles, compile.timeout); try again later"
    )]
    CompileBusy {
        /// The timeout.
        timeout: std::time::Duration,
        /// The limit on compiles at once.
        max_concurrent: usize,
    },
    /// The component's imports cannot be satisfied by the host.
    #[error("cannot link the component: {0}")]
    Link(String),
    /// The plugin's kind is not runnable by this runtime.
    #[error("{0}")]
    Unsupported(String),
}

/// Why the runtime could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The configuration is inconsistent.
    #[error("invalid runtime configuration: {0}")]
    Config(String),
    /// wasmtime refused the engine configuration.
    #[error("cannot create the wasmtime engine: {0}")]
    Engine(String),
    /// The artifact cache directory cannot be created.
    #[error("cannot use cache directory {path}: {source}")]
    CacheDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The epoch ticker thread could not be started.
    #[error("cannot start the epoch ticker: {0}")]
    Ticker(std::io::Error),
}

/// An error a host function returns to the guest, mirroring the contract's
/// `error` variant: the guest sees it as a value and decides what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum GuestError {
    /// The request can never succeed (bad id, bad filter).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A transient problem; the guest may return it as `retryable`.
    #[error("retryable error: {0}")]
    Retryable(String),
    /// Anything else.
    #[error("fatal error: {0}")]
    Fatal(String),
}

impl From<GuestError> for crate::bindings::Error {
    fn from(e: GuestError) -> Self {
        match e {
            GuestError::InvalidInput(m) => crate::bindings::Error::InvalidInput(m),
            GuestError::Retryable(m) => crate::bindings::Error::Retryable(m),
            GuestError::Fatal(m) => crate::bindings::Error::Fatal(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transient_failures_are_retryable() {
        assert!(Failure::Timeout.retryable());
        assert!(Failure::Busy.retryable());
        assert!(Failure::Retryable("x".into()).retryable());
        assert!(Failure::Host("x".into()).retryable());
        assert!(!Failure::MemoryLimit.retryable());
        assert!(!Failure::Fatal("x".into()).retryable());
        assert!(!Failure::InvalidInput("x".into()).retryable());
        assert!(!Failure::EffectDenied { effect: "x".into() }.retryable());
        assert!(
            !Failure::HostDenied {
                host: "x:443".into(),
                reason: DenyReason::NotAllowed
            }
            .retryable()
        );
        assert!(!Failure::ResponseTooLarge { limit: 1 }.retryable());
        assert!(!Failure::TooManyEffectCalls { limit: 1 }.retryable());
        assert!(
            !Failure::Trap {
                code: "panic".into(),
                message: "x".into()
            }
            .retryable()
        );
    }

    #[test]
    fn a_guests_long_message_is_cut_and_says_how_long_it_was() {
        let long = "é".repeat(3 * MAX_FAILURE_MESSAGE);
        let bounded = Failure::Fatal(long.clone()).bounded();
        assert_eq!(bounded.kind(), "fatal", "the variant is kept");
        let cut = match bounded {
            Failure::Fatal(m) => m,
            other => other.to_string(),
        };
        assert!(cut.len() <= MAX_FAILURE_MESSAGE + 40, "{}", cut.len());
        assert!(cut.ends_with(&format!("... ({} bytes in all)", long.len())));
        assert_eq!(
            Failure::Retryable("short".into()).bounded(),
            Failure::Retryable("short".into())
        );
        assert_eq!(Failure::Timeout.bounded(), Failure::Timeout);
    }

    #[test]
    fn messages_are_lowercase_and_name_the_problem() {
        let e = Failure::EffectDenied {
            effect: "not-declared".into(),
        };
        assert_eq!(
            e.to_string(),
            "the plugin called effect `not-declared`, which it is not allowed to call"
        );
        assert_eq!(e.kind(), "effect-denied");
        let e = Failure::HostDenied {
            host: "127.0.0.1:8080".into(),
            reason: DenyReason::PrivateAddress {
                address: IpAddr::from([127, 0, 0, 1]),
            },
        };
        assert_eq!(
            e.to_string(),
            "the request to `127.0.0.1:8080` was refused: it resolves to the private address \
             127.0.0.1, and private addresses are not allowed"
        );
        assert_eq!(e.kind(), "host-denied");
        assert_eq!(
            Failure::ResponseTooLarge { limit: 10 }.kind(),
            "response-too-large"
        );
        let e = Failure::TooManyEffectCalls { limit: 64 };
        assert_eq!(e.kind(), "too-many-effect-calls");
        assert_eq!(
            e.to_string(),
            "the plugin made more than the 64 effect calls allowed per call"
        );
    }
}
