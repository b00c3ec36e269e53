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

/// Per-tenant series, read at scrape time: what each tenant holds now and
/// what it used this calendar month (UTC). At most `max_tenants` tenants
/// (live ones, by id) get their own series; the rest are summed under
/// `tenant="_other"`, so the series stay bounded however many tenants
/// there are. Units are those effects reported (bounded per record).
pub(crate) fn render_tenants(
    engine: &Engine,
    max_tenants: usize,
) -> Result<String, crate::ApiError> {
    let mut out = String::new();
    use reyna_engine::reyna_store::{Granularity, Usage};
    let now = engine.now_ms();
    let mut tenants: Vec<String> = engine
        .tenants()?
        .into_iter()
        .filter(|t| t.deleted_at.is_none())
        .map(|t| t.id)
        .collect();
    tenants.sort();
    // (label, usage this month, stored bytes, queued jobs, running jobs)
    let mut rows: Vec<(String, Usage, u64, u64, u64)> = Vec::new();
    for (i, tenant) in tenants.iter().enumerate() {
        let month = engine
            .usage(tenant, Granularity::Month, now, now + 1)?
            .pop()
            .map(|p| p.usage)
            .unwrap_or_default();
        let (held, running) = engine.holdings(tenant)?;
        let row = (month, held.stored_bytes, held.queued_jobs, running as u64);
        if i < max_tenants {
            rows.push((tenant.clone(), row.0, row.1, row.2, row.3));
        } else {
            if rows.len() == max_tenants {
                rows.push(("_other".to_owned(), Usage::default(), 0, 0, 0));
            }
            if let Some(other) = rows.last_mut() {
                other.1.add(&row.0);
                other.2 += row.1;
                other.3 += row.2;
                other.4 += row.3;
            }
        }
    }
    type Field = fn(&(String, Usage, u64, u64, u64)) -> u64;
    let series: [(&str, &str, Field); 12] = [
        (
            "reyna_tenant_stored_bytes",
            "Bytes of blob data the tenant stores",
            |r| r.2,
        ),
        (
            "reyna_tenant_queued_jobs",
            "The tenant's jobs waiting",
            |r| r.3,
        ),
        (
            "reyna_tenant_running_jobs",
            "The tenant's jobs claimed or running here",
            |r| r.4,
        ),
        (
            "reyna_tenant_month_blobs_created",
            "Blobs the tenant created this month (UTC)",
            |r| r.1.blobs_created,
        ),
        (
            "reyna_tenant_month_blobs_derived",
            "Blobs its jobs derived this month",
            |r| r.1.blobs_derived,
        ),
        (
            "reyna_tenant_month_bytes_stored",
            "Bytes stored this month",
            |r| r.1.bytes_stored,
        ),
        ("reyna_tenant_month_jobs_run", "Job runs this month", |r| {
            r.1.jobs_run
        }),
        (
            "reyna_tenant_month_jobs_failed",
            "Failed job runs this month",
            |r| r.1.jobs_failed,
        ),
        (
            "reyna_tenant_month_wall_microseconds",
            "Sandbox wall time this month",
            |r| r.1.wall_us,
        ),
        (
            "reyna_tenant_month_cpu_microseconds",
            "Sandbox CPU time this month",
            |r| r.1.cpu_us,
        ),
        (
            "reyna_tenant_month_bytes_out",
            "Bytes the runs returned this month",
            |r| r.1.bytes_out,
        ),
        (
            "reyna_tenant_month_effect_calls",
            "Effect calls this month",
            |r| r.1.effect_calls,
        ),
    ];
    for (name, help, field) in series {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        for row in &rows {
            let _ = writeln!(out, "{name}{{tenant=\"{}\"}} {}", row.0, field(row));
        }
    }
    let name = "reyna_tenant_month_units";
    let _ = writeln!(
        out,
        "# HELP {name} Units effects reported this month, by unit (e.g. tokens)"
    );
    let _ = writeln!(out, "# TYPE {name} gauge");
    for row in &rows {
        for (unit, amount) in &row.1.units {
            let _ = writeln!(
                out,
                "{name}{{tenant=\"{}\",unit=\"{unit}\"}} {amount}",
                row.0
            );
        }
    }
    Ok(out)
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
