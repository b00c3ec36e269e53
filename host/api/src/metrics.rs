//! Prometheus metrics: one process-wide recorder (the engine and the API
//! record through the `metrics` facade), rendered at `/metrics` together
//! with gauges read from the store at scrape time.

use std::fmt::Write as _;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use reyna_engine::Engine;

/// Latency buckets, in seconds: 100 µs to 60 s.
const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the Prometheus recorder as the process's `metrics` recorder,
/// once. Returns its handle, or `None` when another recorder was installed
/// first (then `/metrics` shows only the store gauges).
pub fn install_recorder() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new();
            let builder = match builder.set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS) {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics buckets refused; latencies will be summaries");
                    PrometheusBuilder::new()
                }
            };
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            match metrics::set_global_recorder(recorder) {
                Ok(()) => Some(handle),
                Err(_) => {
                    tracing::warn!("a metrics recorder was already installed; /metrics shows store gauges only");
                    None
                }
            }
        })
        .as_ref()
}

/// The `/metrics` text: everything recorded, then gauges from the store.
pub(crate) fn render(engine: &Engine) -> Result<String, crate::ApiError> {
    let mut out = install_recorder().map(|h| h.render()).unwrap_or_default();
    let counts = engine.counts()?;
    let writer = engine.writer_stats();
    let gauges: [(&str, &str, &str, u64); 10] = [
        (
            "reyna_queue_depth",
            "gauge",
            "Jobs waiting to run (including retries not yet due)",
            counts.jobs_pending,
        ),
        (
            "reyna_jobs_running",
            "gauge",
            "Jobs running now",
            counts.jobs_running,
        ),
        (
            "reyna_dead_letters",
            "gauge",
            "Dead letters stored (including replayed ones)",
            counts.dead_letters,
        ),
        (
            "reyna_jobs_dead",
            "gauge",
            "Jobs dead and not replayed",
            counts.jobs_dead,
        ),
        ("reyna_blobs", "gauge", "Blobs stored", counts.blobs),
        ("reyna_events", "gauge", "Events in the log", counts.events),
        (
            "reyna_store_commits_total",
            "counter",
            "Durable commits since start",
            writer.commits,
        ),
        (
            "reyna_store_commit_ops_total",
            "counter",
            "Operations carried by those commits (ops/commits = mean batch size)",
            writer.ops,
        ),
        (
            "reyna_store_failed_commits_total",
            "counter",
            "Commits that failed",
            writer.failed_commits,
        ),
        (
            "reyna_store_commit_seconds_total",
            "counter",
            "Time spent committing, microseconds / 1e6",
            writer.commit_us,
        ),
    ];
    for (name, kind, help, value) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        if name == "reyna_store_commit_seconds_total" {
            let _ = writeln!(out, "{name} {}", value as f64 / 1e6);
        } else {
            let _ = writeln!(out, "{name} {value}");
        }
    }
    Ok(out)
}
