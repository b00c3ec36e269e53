//! The suite's summary: reads what the other benches measured in this run
//! (criterion's `target/criterion/**/new/estimates.json` for `runtime`,
//! `engine`, `word_count` and the Extism peer; `target/bench-results/*.json`
//! for `memory`, `coldstart`, `fairness` and `websocket`) and writes a markdown table of
//! medians, ratios against the floors and the goals to
//! `target/bench-summary.md` and stdout.
//!
//! `benches/suite.sh` runs it last and sets `REYNA_SUITE_SINCE` (unix
//! seconds) to when the suite started: a figure written before that is not
//! from this run and is shown as missing, never mixed in.
#![allow(clippy::expect_used)] // writing the summary: failing loudly is the point

mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Medians (ns) by criterion id, e.g. `call/raw/1KiB`, and the ids found
/// only from an earlier run.
struct Figures {
    median_ns: BTreeMap<String, f64>,
    stale: Vec<String>,
    since: Option<SystemTime>,
}

impl Figures {
    fn read(criterion: &Path, since: Option<SystemTime>) -> Figures {
        let mut figures = Figures {
            median_ns: BTreeMap::new(),
            stale: Vec::new(),
            since,
        };
        figures.walk(criterion);
        figures
    }

    fn fresh(&self, path: &Path) -> bool {
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        match (self.since, modified) {
            (Some(since), Some(modified)) => modified >= since,
            (Some(_), None) => false,
            (None, _) => true,
        }
    }

    fn walk(&mut self, dir: &Path) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            let (bench, estimates) = (path.join("benchmark.json"), path.join("estimates.json"));
            if path.ends_with("new") && bench.is_file() && estimates.is_file() {
                let id = read_json(&bench).and_then(|b| b["full_id"].as_str().map(str::to_owned));
                let median =
                    read_json(&estimates).and_then(|e| e["median"]["point_estimate"].as_f64());
                if let (Some(id), Some(median)) = (id, median) {
                    if self.fresh(&estimates) {
                        self.median_ns.insert(id, median);
                    } else {
                        self.stale.push(id);
                    }
                }
            } else {
                self.walk(&path);
            }
        }
    }

    fn get(&self, id: &str) -> Option<f64> {
        self.median_ns.get(id).copied()
    }

    /// A harness-less bench's results, if written in this run.
    fn result(&self, bench: &str) -> Option<serde_json::Value> {
        let path = common::result_path(bench);
        if self.fresh(&path) {
            read_json(&path)
        } else {
            None
        }
    }
}

fn read_json(path: &Path) -> Option<serde_json::Value> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

fn time(ns: Option<f64>) -> String {
    match ns {
        None => "not measured".to_owned(),
        Some(ns) if ns < 1e3 => format!("{ns:.0} ns"),
        Some(ns) if ns < 1e6 => format!("{:.1} µs", ns / 1e3),
        Some(ns) if ns < 1e9 => format!("{:.2} ms", ns / 1e6),
        Some(ns) => format!("{:.2} s", ns / 1e9),
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(a? / b?)
}

fn x(r: Option<f64>) -> String {
    r.map_or_else(|| "—".to_owned(), |r| format!("{r:.2}x"))
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "**met**",
        Some(false) => "**missed**",
        None => "not measured",
    }
}

/// The version of `package` in a Cargo.lock.
fn locked_version(lock: &Path, package: &str) -> String {
    let text = std::fs::read_to_string(lock).unwrap_or_default();
    let needle = format!("name = \"{package}\"\nversion = \"");
    text.split_once(&needle)
        .and_then(|(_, rest)| rest.split_once('"'))
        .map_or_else(|| "?".to_owned(), |(v, _)| v.to_owned())
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map_or("unknown CPU", |m| m.trim_start_matches([' ', '\t', ':']));
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / (1 << 20) as f64);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let rustc = std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    format!(
        "{cores} vCPU ({model}), {mem_gib:.0} GiB, Linux {}, {rustc}, wasmtime {}, extism {} (on wasmtime {})",
        kernel.trim(),
        locked_version(&repo.join("Cargo.lock"), "wasmtime"),
        locked_version(&repo.join("benches/peer/Cargo.lock"), "extism"),
        locked_version(&repo.join("benches/peer/Cargo.lock"), "wasmtime"),
    )
}

/// The table's rows: what runs, and its criterion ids at 1 KiB and 64 KiB.
const ROWS: &[(&str, [&str; 2])] = &[
    (
        "native Rust function (floor)",
        ["word-count/native/1KiB", "word-count/native/64KiB"],
    ),
    (
        "raw wasmtime: pre-instantiated component, fresh store, one call (wasm floor)",
        ["call/raw/1KiB", "call/raw/64KiB"],
    ),
    (
        "Reyna runtime call (`Runtime::call`, fresh sandbox)",
        ["call/runtime/1KiB", "call/runtime/64KiB"],
    ),
    (
        "Reyna engine per event (ingest, route, run, validate, durable commit; 64 writers)",
        ["engine/per-event", "word-count/engine/64KiB"],
    ),
    (
        "Extism, reused plugin",
        ["extism/reused/1KiB", "extism/reused/64KiB"],
    ),
    (
        "Extism, fresh plugin per call (from a `CompiledPlugin`)",
        ["extism/fresh/1KiB", "extism/fresh/64KiB"],
    ),
];

const SIZES: [&str; 2] = ["1 KiB", "64 KiB"];

fn main() {
    let since = std::env::var("REYNA_SUITE_SINCE")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map(|s| UNIX_EPOCH + Duration::from_secs(s));
    let target = common::target_dir();
    let f = Figures::read(&target.join("criterion"), since);
    let mut md = String::new();
    let w = &mut md;

    writeln!(w, "## Reyna benchmark summary\n").ok();
    writeln!(w, "Machine: {}.", machine()).ok();
    writeln!(
        w,
        "Medians of criterion's estimate; ratios are against the floors measured in the same run.\n"
    )
    .ok();
    writeln!(
        w,
        "### Word count (same texts: {{\"content\": ...}} of 1 KiB and 64 KiB)\n"
    )
    .ok();
    writeln!(
        w,
        "| work | 1 KiB | / native | / wasm floor | 64 KiB | / native | / wasm floor |"
    )
    .ok();
    writeln!(w, "|---|---|---|---|---|---|---|").ok();
    let native = ROWS[0].1.map(|id| f.get(id));
    let floor = ROWS[1].1.map(|id| f.get(id));
    for (what, ids) in ROWS {
        write!(w, "| {what} |").ok();
        for (i, id) in ids.iter().enumerate() {
            let t = f.get(id);
            write!(
                w,
                " {} | {} | {} |",
                time(t),
                x(ratio(t, native[i])),
                x(ratio(t, floor[i]))
            )
            .ok();
        }
        writeln!(w).ok();
    }
    writeln!(
        w,
        "\nThe engine's 1 KiB figure is `engine/per-event` from `engine.rs` (a 1,000-character text of the same kind); the 64 KiB one is `word-count/engine/64KiB`.\n"
    )
    .ok();

    // Goals.
    writeln!(w, "### Goals\n").ok();
    writeln!(w, "| goal | figure | |").ok();
    writeln!(w, "|---|---|---|").ok();
    let runtime = ROWS[2].1.map(|id| f.get(id));
    let engine = ROWS[3].1.map(|id| f.get(id));
    let reused = ROWS[4].1.map(|id| f.get(id));
    for i in 0..2 {
        let r = ratio(runtime[i], floor[i]);
        writeln!(
            w,
            "| runtime call / raw wasmtime <= 1.5, {} | {} | {} |",
            SIZES[i],
            x(r),
            verdict(r.map(|r| r <= 1.5))
        )
        .ok();
    }
    for i in 0..2 {
        let r = ratio(runtime[i], reused[i]);
        writeln!(
            w,
            "| Reyna with a fresh sandbox per call at least as fast as Extism reused, {} | {} vs {} ({}) | {} |",
            SIZES[i],
            time(runtime[i]),
            time(reused[i]),
            x(r),
            verdict(r.map(|r| r <= 1.0))
        )
        .ok();
    }
    let r = ratio(engine[0], runtime[0]);
    writeln!(
        w,
        "| engine per event <= 3x runtime call, 1 KiB | {} | {} |",
        x(r),
        verdict(r.map(|r| r <= 3.0))
    )
    .ok();
    let rate = engine[0].map(|ns| 1e9 / ns);
    writeln!(
        w,
        "| >= 20,000 durable derived blobs/s, 1 KiB | {} | {} |",
        rate.map_or_else(|| "—".to_owned(), |r| format!("{r:.0}/s")),
        verdict(rate.map(|r| r >= 20_000.0))
    )
    .ok();

    let memory = f.result("memory");
    let num = |v: &Option<serde_json::Value>, key: &str| v.as_ref().and_then(|v| v[key].as_f64());
    let call_r = ratio(
        num(&memory, "call_after_ns"),
        num(&memory, "call_before_ns"),
    );
    let engine_r = ratio(
        num(&memory, "engine_after_ns"),
        num(&memory, "engine_before_ns"),
    );
    writeln!(
        w,
        "| after a 50 MiB blob, calls within 10% of before | runtime call {} ({} → {}), engine per event {} ({} → {}) | {} |",
        x(call_r),
        time(num(&memory, "call_before_ns")),
        time(num(&memory, "call_after_ns")),
        x(engine_r),
        time(num(&memory, "engine_before_ns")),
        time(num(&memory, "engine_after_ns")),
        verdict(call_r.zip(engine_r).map(|(a, b)| a <= 1.1 && b <= 1.1))
    )
    .ok();
    let cold = f.result("coldstart");
    let derived = num(&cold, "first_derived_median_ms");
    writeln!(
        w,
        "| first derived blob within 100 ms of the upload's acknowledgement | median {} (max {}) | {} |",
        derived.map_or_else(|| "—".to_owned(), |d| format!("{d:.1} ms")),
        num(&cold, "first_derived_max_ms").map_or_else(|| "—".to_owned(), |d| format!("{d:.1} ms")),
        verdict(derived.map(|d| d <= 100.0))
    )
    .ok();
    let ready = num(&cold, "ready_median_ms");
    writeln!(
        w,
        "| ready within 1 s with {} cached plugins | median {} | {} |",
        num(&cold, "plugins").unwrap_or(100.0),
        ready.map_or_else(|| "—".to_owned(), |d| format!("{d:.0} ms")),
        verdict(ready.map(|d| d <= 1000.0))
    )
    .ok();

    let fair = f.result("fairness");
    let phase = |name: &str, key: &str| fair.as_ref().and_then(|v| v[name][key].as_f64());
    let fair_r = num(&fair, "ratio_p99");
    writeln!(
        w,
        "| with tenant B's backlog queued, tenant A's p99 (blob to derived blob) within 1.5x of alone | alone p50 {} / p99 {}, flood p50 {} / p99 {} (p99 {}, p50 {}) | {} |",
        time(phase("alone", "p50_ms").map(|m| m * 1e6)),
        time(phase("alone", "p99_ms").map(|m| m * 1e6)),
        time(phase("flood", "p50_ms").map(|m| m * 1e6)),
        time(phase("flood", "p99_ms").map(|m| m * 1e6)),
        x(fair_r),
        x(num(&fair, "ratio_p50")),
        verdict(fair_r.map(|r| r <= 1.5))
    )
    .ok();

    let socket = f.result("websocket");
    let socket_p99 = num(&socket, "p99_ms");
    writeln!(
        w,
        "| WebSocket delivery: blob created to its `blob.derived` message under 100 ms | p50 {} / p99 {} (engine floor p50 {} / p99 {}) | {} |",
        time(num(&socket, "p50_ms").map(|m| m * 1e6)),
        time(socket_p99.map(|m| m * 1e6)),
        time(num(&socket, "floor_p50_ms").map(|m| m * 1e6)),
        time(num(&socket, "floor_p99_ms").map(|m| m * 1e6)),
        verdict(socket_p99.map(|m| m < 100.0))
    )
    .ok();

    writeln!(w, "\n### Memory (the engine in one process)\n").ok();
    writeln!(w, "| what | size |").ok();
    writeln!(w, "|---|---|").ok();
    let mib = |key: &str| {
        num(&memory, key).map_or_else(
            || "not measured".to_owned(),
            |b| format!("{:.0} MiB", b / (1 << 20) as f64),
        )
    };
    let plugins = num(&memory, "plugins").unwrap_or(100.0);
    let events = num(&memory, "events").unwrap_or(100_000.0);
    for (what, key) in [
        ("RSS at process start".to_owned(), "rss_start_bytes"),
        (
            format!("RSS, {plugins} plugins registered (compiled)"),
            "rss_registered_bytes",
        ),
        (
            format!("peak RSS, {plugins} plugins and {events} events processed"),
            "peak_rss_after_events_bytes",
        ),
        (
            format!(
                "peak RSS, after a {:.0} MiB blob was processed",
                num(&memory, "big_blob_bytes").unwrap_or(0.0) / (1 << 20) as f64
            ),
            "peak_rss_after_big_blob_bytes",
        ),
        (
            "RSS at the end (calls measured again)".to_owned(),
            "rss_end_bytes",
        ),
        (
            "database file at the end, for comparison".to_owned(),
            "database_bytes",
        ),
    ] {
        writeln!(w, "| {what} | {} |", mib(key)).ok();
    }
    let stale: Vec<&str> = ROWS
        .iter()
        .flat_map(|(_, ids)| *ids)
        .filter(|id| f.stale.iter().any(|s| s == id))
        .collect();
    if !stale.is_empty() {
        writeln!(w, "\nLeft out, not from this run: {}.", stale.join(", ")).ok();
    }

    print!("{md}");
    if common::full_run() {
        let out = target.join("bench-summary.md");
        std::fs::write(&out, &md).expect("write summary");
        println!("\nsummary written to {}", out.display());
    }
}
