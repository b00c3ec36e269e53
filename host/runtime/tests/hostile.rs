//! Containment: every hostile test program fails with its exact failure
//! variant, while a well-behaved plugin keeps completing calls next to it and
//! the host stays up; what the host keeps of each call stays within the
//! plugin's limits (`CallReport::retained_bytes`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::{alongside, load, runtime, text_event, words};
use reyna_runtime::{
    Blob, CallContext, EffectFuture, Failure, GuestError, HostApi, HostFuture, MemoryHost, Runtime,
    RuntimeConfig,
};

/// Loads `name` and runs it once with `ctx` next to the neighbour.
async fn hostile(name: &str, ctx: CallContext) -> (reyna_runtime::CallReport, common::Neighbour) {
    hostile_in(&runtime(), name, ctx).await
}

/// [`hostile`] on `runtime`. Whatever the program did, the host holds no
/// more for the call than its limits allow.
async fn hostile_in(
    runtime: &Runtime,
    name: &str,
    ctx: CallContext,
) -> (reyna_runtime::CallReport, common::Neighbour) {
    let plugin = load(runtime, name);
    let bound = plugin.limits().max_retained_bytes();
    let rt = runtime.clone();
    let (report, neighbour) = alongside(runtime, async move {
        rt.call(&plugin, text_event("a sample text"), ctx).await
    })
    .await;
    assert!(
        report.retained_bytes <= bound,
        "{name}: {} bytes retained, more than the {bound} its limits allow",
        report.retained_bytes
    );
    // The host is still fine afterwards: a fresh call of the neighbour works.
    let word_count = load(runtime, "word-count");
    let after = runtime
        .call(
            &word_count,
            text_event("still standing"),
            CallContext::default(),
        )
        .await;
    assert_eq!(words(&after), 2);
    (report, neighbour)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_infinite_loop_times_out_while_others_run() {
    let (report, neighbour) = hostile("hostile-loop", CallContext::default()).await;
    assert_eq!(report.result.unwrap_err(), Failure::Timeout);
    // The manifest asks for 1s; the call ends at the first tick past it.
    assert!(report.cost.wall_us >= 1_000_000, "{:?}", report.cost);
    assert!(report.cost.epoch_ticks >= 1);
    assert!(
        neighbour.completed_during >= 1,
        "the neighbour ran while the loop spun: {neighbour:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_infinite_loop_cannot_starve_a_single_thread() {
    // One executor thread: the spinning guest yields at every epoch tick, so
    // the neighbour still runs during it.
    let runtime = runtime();
    let plugin = load(&runtime, "hostile-loop");
    let rt = runtime.clone();
    let handle = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (report, neighbour) = std::thread::spawn(move || {
        handle.block_on(async {
            let rt2 = rt.clone();
            common::alongside(&rt, async move {
                rt2.call(&plugin, text_event("a sample text"), CallContext::default())
                    .await
            })
            .await
        })
    })
    .join()
    .unwrap();
    assert_eq!(report.result.unwrap_err(), Failure::Timeout);
    assert!(neighbour.completed_during >= 1, "{neighbour:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbounded_allocation_hits_the_memory_limit() {
    let (report, neighbour) = hostile("hostile-memory", CallContext::default()).await;
    assert_eq!(report.result.unwrap_err(), Failure::MemoryLimit);
    // The manifest asks for 16 MiB: the peak stays within it.
    assert!(report.cost.peak_memory <= 16 << 20, "{:?}", report.cost);
    assert!(report.cost.peak_memory > 8 << 20, "{:?}", report.cost);
    assert!(neighbour.completed >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_recursion_traps() {
    let (report, neighbour) = hostile("hostile-recursion", CallContext::default()).await;
    match report.result.unwrap_err() {
        Failure::Trap { code, .. } => assert!(
            code == "stack_overflow" || code == "memory_out_of_bounds",
            "unexpected trap code {code}"
        ),
        other => panic!("expected a trap, got {other:?}"),
    }
    assert!(neighbour.completed >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_is_a_trap_with_its_message() {
    let (report, neighbour) = hostile("hostile-panic", CallContext::default()).await;
    match report.result.unwrap_err() {
        Failure::Trap { code, message } => {
            assert_eq!(code, "panic");
            assert!(
                message.contains("hostile-panic was asked to panic"),
                "{message}"
            );
        }
        other => panic!("expected a panic trap, got {other:?}"),
    }
    // The panic message is also in the call's log (from stderr).
    assert!(
        report
            .logs
            .iter()
            .any(|l| l.message.contains("hostile-panic was asked to panic")),
        "{:?}",
        report.logs
    );
    assert!(neighbour.completed >= 1);
}

/// The big-output program needs about 640 MiB to build its outputs: under the
/// default 64 MiB limit the memory limit stops it first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_output_is_stopped_by_the_memory_limit_first() {
    let (report, neighbour) = hostile("hostile-big-output", CallContext::default()).await;
    assert_eq!(report.result.unwrap_err(), Failure::MemoryLimit);
    assert!(neighbour.completed >= 1);
}

/// With the memory to build them, its 640 MiB of outputs hit the output
/// limit, and the host stops copying at the limit instead of after 640 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_output_hits_the_output_limit() {
    let runtime = Runtime::new(RuntimeConfig {
        default_memory: 1 << 30,
        ..common::config()
    })
    .unwrap();
    let plugin = load(&runtime, "hostile-big-output");
    let rt = runtime.clone();
    let (report, neighbour) = alongside(&runtime, async move {
        rt.call(&plugin, text_event("a sample text"), CallContext::default())
            .await
    })
    .await;
    match report.result.unwrap_err() {
        Failure::OutputLimit { reason } => {
            assert!(reason.contains("bytes to the host at once"), "{reason}")
        }
        other => panic!("expected an output limit, got {other:?}"),
    }
    assert!(neighbour.completed >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undeclared_effect_is_denied_even_if_the_guest_swallows_it() {
    let host = MemoryHost::new();
    host.effect("not-declared", |_| Ok(b"{}".to_vec()));
    let ctx = CallContext {
        host: Arc::new(host.clone()),
        // Even the caller allowing it does not help: the manifest does not
        // declare it.
        allowed_effects: vec!["not-declared".into()],
        ..CallContext::default()
    };
    let (report, neighbour) = hostile("hostile-undeclared-effect", ctx).await;
    assert_eq!(
        report.result.unwrap_err(),
        Failure::EffectDenied {
            effect: "not-declared".into()
        }
    );
    assert!(host.effect_calls().is_empty(), "the host was never asked");
    assert!(neighbour.completed >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_outputs_are_refused() {
    let runtime = runtime();
    let plugin = load(&runtime, "hostile-invalid-output");
    let with_mode = |mode: &str| CallContext {
        config: Arc::new(BTreeMap::from([("mode".to_owned(), mode.to_owned())])),
        ..CallContext::default()
    };
    let report = runtime
        .call(&plugin, text_event("a sample text"), CallContext::default())
        .await;
    match report.result.unwrap_err() {
        Failure::InvalidOutput { reason } => assert!(reason.contains("not JSON"), "{reason}"),
        other => panic!("expected invalid output, got {other:?}"),
    }
    let report = runtime
        .call(
            &plugin,
            text_event("a sample text"),
            with_mode("undeclared-schema"),
        )
        .await;
    match report.result.unwrap_err() {
        Failure::InvalidOutput { reason } => {
            assert!(reason.contains("`expanded-text-v1`"), "{reason}")
        }
        other => panic!("expected invalid output, got {other:?}"),
    }
    // Well-formed JSON that violates its schema passes the runtime: schema
    // validation is the engine's job.
    let report = runtime
        .call(
            &plugin,
            text_event("a sample text"),
            with_mode("schema-violation"),
        )
        .await;
    assert_eq!(report.result.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_flood_is_bounded() {
    let (report, neighbour) = hostile("hostile-log-flood", CallContext::default()).await;
    assert!(report.result.is_ok(), "{:?}", report.result);
    assert!(report.log_truncated);
    let kept: usize = report.logs.iter().map(|l| l.message.len()).sum();
    assert!(kept <= common::config().max_log_bytes, "{kept} bytes kept");
    assert!(kept > 0);
    assert!(neighbour.completed >= 1);
}

/// What the host keeps of a call besides its outputs' bytes, for the
/// default limits: log lines, effect-call records, a failure message and
/// their fixed sizes. A small constant next to the declared limits.
const RETAINED_BESIDES_OUTPUTS: u64 = 400 << 10;

fn retained_at_most(retained: u64, bound: u64) {
    assert!(
        retained <= bound,
        "{retained} bytes retained, more than {bound}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_log_lines_until_the_deadline_are_bounded_in_count_and_bytes() {
    let (report, neighbour) = hostile("hostile-empty-log", CallContext::default()).await;
    assert_eq!(report.result.unwrap_err(), Failure::Timeout);
    let config = common::config();
    assert!(report.log_truncated);
    // Each empty line costs one byte of the 64 KiB budget: the line cap
    // (1,000) is what stops them.
    assert_eq!(report.logs.len(), config.max_log_lines);
    assert!(report.logs.iter().all(|l| l.message.is_empty()));
    assert!(report.retained_bytes <= (config.max_log_lines * 64) as u64 + 4096);
    assert!(neighbour.completed >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_line_cap_is_the_operators() {
    let runtime = Runtime::new(RuntimeConfig {
        max_log_lines: 10,
        ..common::config()
    })
    .unwrap();
    let (report, _) = hostile_in(&runtime, "hostile-log-flood", CallContext::default()).await;
    assert!(report.result.is_ok(), "{:?}", report.result);
    assert!(report.log_truncated);
    assert_eq!(report.logs.len(), 10);
}

fn echo_host() -> (MemoryHost, CallContext) {
    let host = MemoryHost::new();
    host.effect("echo", |r| Ok(r.to_vec()));
    let ctx = CallContext {
        host: Arc::new(host.clone()),
        allowed_effects: vec!["echo".into()],
        ..CallContext::default()
    };
    (host, ctx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn effect_calls_past_the_cap_fail_the_call_with_their_own_kind() {
    let (host, ctx) = echo_host();
    let (report, neighbour) = hostile("hostile-effect-loop", ctx).await;
    // The manifest asks for 100,000; the operator's maximum (64) wins.
    let limit = common::config().max_effect_calls;
    assert_eq!(limit, 64);
    let failure = report.result.unwrap_err();
    assert_eq!(failure, Failure::TooManyEffectCalls { limit });
    assert_eq!(failure.kind(), "too-many-effect-calls");
    assert!(!failure.retryable());
    // The call past the cap never reached the host, and the records kept
    // for the lineage stop at the cap.
    assert_eq!(host.effect_calls().len(), limit as usize);
    assert_eq!(report.effect_calls.len(), limit as usize);
    retained_at_most(report.retained_bytes, RETAINED_BESIDES_OUTPUTS);
    assert!(neighbour.completed >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_smaller_effect_call_request_in_the_manifest_is_kept() {
    let runtime = runtime();
    let bytes = reyna_artifacts::with_manifest(&common::wasm("hostile-effect-loop"), |toml| {
        toml.replace("max-effect-calls = 100000", "max-effect-calls = 5")
    })
    .unwrap();
    let plugin = runtime.load(&bytes).unwrap();
    assert_eq!(plugin.limits().max_effect_calls, 5);
    let (host, ctx) = echo_host();
    let report = runtime
        .call(&plugin, text_event("a sample text"), ctx)
        .await;
    assert_eq!(
        report.result.unwrap_err(),
        Failure::TooManyEffectCalls { limit: 5 }
    );
    assert_eq!(host.effect_calls().len(), 5);
    assert_eq!(report.effect_calls.len(), 5);
}

/// A host whose `query-blobs` never answers (a store read stuck behind a
/// lock, a slow disk).
struct StuckHost;

impl HostApi for StuckHost {
    fn get_blob<'a>(&'a self, _: &'a str, _: &'a str) -> HostFuture<'a, Option<Blob>> {
        Box::pin(std::future::pending())
    }

    fn query_blobs<'a>(&'a self, _: &'a str, _: &'a str, _: &'a str) -> HostFuture<'a, Vec<Blob>> {
        Box::pin(std::future::pending())
    }

    fn call_effect<'a>(&'a self, _: &'a str, _: Vec<u8>) -> EffectFuture<'a> {
        Box::pin(std::future::pending())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_call_that_never_answers_ends_at_the_deadline() {
    let ctx = CallContext {
        host: Arc::new(StuckHost),
        ..CallContext::default()
    };
    let (report, neighbour) = hostile("hostile-query", ctx).await;
    assert_eq!(report.result.unwrap_err(), Failure::Timeout);
    // The manifest asks for 2 s: the time waiting on the host counts.
    assert!(report.cost.wall_us >= 2_000_000, "{:?}", report.cost);
    assert!(
        report.cost.wall_us < 2_000_000 + 5_000_000,
        "{:?}",
        report.cost
    );
    assert!(neighbour.completed >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hosts_query_refusal_is_the_guests_to_report() {
    // The engine's byte bound answers `fatal` with its reason; the guest
    // that passes it on fails with it.
    struct Refusing;
    impl HostApi for Refusing {
        fn get_blob<'a>(&'a self, _: &'a str, _: &'a str) -> HostFuture<'a, Option<Blob>> {
            Box::pin(async { Ok(None) })
        }
        fn query_blobs<'a>(
            &'a self,
            _: &'a str,
            schema: &'a str,
            _: &'a str,
        ) -> HostFuture<'a, Vec<Blob>> {
            Box::pin(async move {
                Err(GuestError::Fatal(format!(
                    "query matched more than 16 bytes of `{schema}` blobs; narrow the filter"
                )))
            })
        }
        fn call_effect<'a>(&'a self, _: &'a str, _: Vec<u8>) -> EffectFuture<'a> {
            Box::pin(std::future::pending())
        }
    }
    let ctx = CallContext {
        host: Arc::new(Refusing),
        ..CallContext::default()
    };
    let (report, _) = hostile("hostile-query", ctx).await;
    assert_eq!(
        report.result.unwrap_err(),
        Failure::Fatal(
            "query matched more than 16 bytes of `chapter-v1` blobs; narrow the filter".into()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_15_mib_error_message_is_cut_to_4_kib() {
    let (report, neighbour) = hostile("hostile-long-error", CallContext::default()).await;
    let message = match report.result.unwrap_err() {
        Failure::Fatal(m) => m,
        other => panic!("expected a fatal error, got {other:?}"),
    };
    assert!(
        message.len() <= reyna_runtime::MAX_FAILURE_MESSAGE + 40,
        "{}",
        message.len()
    );
    assert!(message.starts_with("eeee"), "{}", &message[..16]);
    assert!(
        message.ends_with(&format!("... ({} bytes in all)", 15 << 20)),
        "{}",
        &message[message.len() - 40..]
    );
    retained_at_most(
        report.retained_bytes,
        reyna_runtime::MAX_FAILURE_MESSAGE as u64 + 512,
    );
    assert!(neighbour.completed >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hostile_program_at_once() {
    // All of them together, with the neighbour: each still gets its variant.
    let runtime = runtime();
    let names = [
        "hostile-loop",
        "hostile-memory",
        "hostile-recursion",
        "hostile-panic",
        "hostile-undeclared-effect",
        "hostile-invalid-output",
    ];
    let plugins: Vec<_> = names.iter().map(|n| load(&runtime, n)).collect();
    let rt = runtime.clone();
    let (_, neighbour) = alongside(&runtime, async move {
        let calls = plugins
            .iter()
            .map(|p| rt.call(p, text_event("a sample text"), CallContext::default()));
        let reports = futures_join_all(calls).await;
        let kinds: Vec<&str> = reports
            .iter()
            .map(|r| r.result.as_ref().map_or_else(|f| f.kind(), |_| "ok"))
            .collect();
        assert_eq!(
            kinds,
            [
                "timeout",
                "memory-limit",
                "trap",
                "trap",
                "effect-denied",
                "invalid-output"
            ]
        );
        reports.into_iter().next().expect("one report")
    })
    .await;
    assert!(neighbour.completed_during >= 1, "{neighbour:?}");
}

/// Runs futures concurrently on this task and returns their outputs in order.
async fn futures_join_all<F: std::future::Future>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futures {
        set.push(Box::pin(f));
    }
    let mut outputs: Vec<Option<F::Output>> = set.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if outputs[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => outputs[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs
        .into_iter()
        .map(|o| o.expect("every future completed"))
        .collect()
}
