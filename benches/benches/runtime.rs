//! The sandbox runtime against its floor, in the same run.
//!
//! - `call/*`: one event through `Runtime::call` (fresh store, limits, epoch
//!   deadline, log capture, output checks) vs raw wasmtime (the floor: the
//!   same pre-instantiated component, a fresh store, one call, nothing else),
//!   for the trivial `word-count` processor with 1 KiB, 64 KiB and 1 MiB
//!   inputs (is the time linear in the size?).
//! - `instantiate/*`: a fresh store plus instantiation of a pooled instance
//!   with WASI p2 linked, without and with dropping the store.
//! - `throughput/*`: fresh-instance calls per second on 1 and 2 threads, for
//!   the runtime and for raw wasmtime with the pooling allocator's defaults
//!   and with the runtime's keep-resident / batched-decommit settings.
//!
//! Run: `cargo bench -p reyna-benches --bench runtime`.
#![allow(clippy::expect_used)] // bench setup: failing loudly is the point

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use reyna_runtime::bindings::processor::reyna::plugin::{effects, host, types};
use reyna_runtime::bindings::{Event as WitEvent, ProcessorPre};
use reyna_runtime::{Blob, CallContext, Event, Plugin, Runtime, RuntimeConfig};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

#[path = "common/allocator.rs"]
mod allocator;

/// Store data of the floor: WASI with nothing granted, host imports that do
/// nothing.
struct RawState {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl RawState {
    fn new() -> Self {
        RawState {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
        }
    }
}

impl WasiView for RawState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for RawState {}

impl host::Host for RawState {
    async fn log(&mut self, _level: types::LogLevel, _message: String) {}
    async fn config(&mut self, _key: String) -> Option<String> {
        None
    }
    async fn get_blob(&mut self, _id: String) -> Result<Option<types::Blob>, types::Error> {
        Ok(None)
    }
    async fn query_blobs(
        &mut self,
        _schema: String,
        _filter: String,
    ) -> Result<Vec<types::Blob>, types::Error> {
        Ok(Vec::new())
    }
}

impl effects::Host for RawState {
    async fn call(
        &mut self,
        _name: String,
        _request: Vec<u8>,
    ) -> wasmtime::Result<Result<Vec<u8>, types::Error>> {
        Ok(Err(types::Error::Fatal("no effects".into())))
    }
}

/// How the floor's pooling allocator is set up.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pool {
    /// wasmtime's defaults: every freed slot is `madvise`d.
    Defaults,
    /// Keep 8 MiB of memory / 1 MiB of tables resident (`memset` instead of
    /// `madvise`), batch decommits by 64.
    Resident,
    /// `Resident`, plus `PAGEMAP_SCAN` so only the pages a call touched are
    /// reset (Linux 6.7+): the runtime's setting.
    ResidentPagemap,
}

/// The floor's engine: pooling allocator, no epoch, no fuel.
fn raw_engine(knobs: Pool) -> Engine {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_memories(2000)
        .total_tables(4000)
        .total_core_instances(8000);
    if knobs != Pool::Defaults {
        pool.linear_memory_keep_resident(8 << 20)
            .table_keep_resident(1 << 20)
            .decommit_batch_size(64);
    }
    if knobs == Pool::ResidentPagemap {
        pool.pagemap_scan(wasmtime::Enabled::Auto);
    }
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .concurrency_support(false)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config).expect("engine")
}

fn raw_pre(engine: &Engine, wasm: &[u8]) -> ProcessorPre<RawState> {
    let mut linker = Linker::<RawState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).expect("wasi");
    reyna_runtime::bindings::Processor::add_to_linker::<RawState, HasSelf<RawState>>(
        &mut linker,
        |s| s,
    )
    .expect("reyna imports");
    let component = Component::new(engine, wasm).expect("compile");
    ProcessorPre::new(linker.instantiate_pre(&component).expect("link")).expect("processor")
}

async fn raw_call(engine: &Engine, pre: &ProcessorPre<RawState>, event: &WitEvent) -> usize {
    let mut store = Store::new(engine, RawState::new());
    let processor = pre
        .instantiate_async(&mut store)
        .await
        .expect("instantiate");
    let outputs = processor
        .call_process(&mut store, event)
        .await
        .expect("no trap")
        .expect("no guest error");
    outputs.len()
}

async fn runtime_call(runtime: &Runtime, plugin: &Plugin, event: Event) -> usize {
    let report = runtime.call(plugin, event, CallContext::default()).await;
    report.result.expect("call succeeds").len()
}

/// A text-input-v1 event of about `size` bytes.
fn event(size: usize) -> Event {
    let words = "lorem ipsum dolor sit amet ".repeat(size / 27 + 1);
    let text = &words[..size.saturating_sub(12)];
    Event {
        subject: "blob.created.text-input-v1".into(),
        blob: Blob {
            id: "01J9ZZZZZZZZZZZZZZZZZZZZZZ".into(),
            tenant: "bench".into(),
            schema: "text-input-v1".into(),
            data: serde_json::to_vec(&serde_json::json!({ "content": text })).expect("json"),
            parents: vec![],
        },
    }
}

fn wit_event(e: &Event) -> WitEvent {
    WitEvent {
        subject: e.subject.clone(),
        blob: types::Blob {
            id: e.blob.id.clone(),
            tenant: e.blob.tenant.clone(),
            schema: e.blob.schema.clone(),
            data: e.blob.data.clone(),
            parents: e.blob.parents.clone(),
        },
    }
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio")
}

/// Runs `iters` calls split over `threads` threads, each with its own
/// executor, and returns the elapsed time of the whole batch.
fn spread<F>(iters: u64, threads: u64, call: F) -> Duration
where
    F: Fn(&tokio::runtime::Runtime) + Send + Sync + 'static,
{
    let call = Arc::new(call);
    let barrier = Arc::new(std::sync::Barrier::new(threads as usize + 1));
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let (call, barrier) = (call.clone(), barrier.clone());
            let n = iters / threads + u64::from(i < iters % threads);
            std::thread::spawn(move || {
                let rt = current_thread();
                barrier.wait();
                for _ in 0..n {
                    call(&rt);
                }
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for h in handles {
        h.join().expect("bench thread");
    }
    start.elapsed()
}

fn benches(c: &mut Criterion) {
    let wasm = reyna_artifacts::bytes("word-count").expect("word-count is built");
    let runtime = Runtime::new(RuntimeConfig::default()).expect("runtime");
    let plugin = runtime.load(&wasm).expect("load");
    let tuned = raw_engine(Pool::ResidentPagemap);
    let tuned_pre = raw_pre(&tuned, &wasm);
    let rt = current_thread();

    let mut group = c.benchmark_group("call");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    for (label, size) in [("1KiB", 1 << 10), ("64KiB", 64 << 10), ("1MiB", 1 << 20)] {
        let e = event(size);
        let we = wit_event(&e);
        group.throughput(Throughput::Bytes(e.blob.data.len() as u64));
        group.bench_function(format!("raw/{label}"), |b| {
            b.iter(|| black_box(rt.block_on(raw_call(&tuned, &tuned_pre, &we))))
        });
        group.bench_function(format!("runtime/{label}"), |b| {
            b.iter_batched(
                || e.clone(),
                |e| black_box(rt.block_on(runtime_call(&runtime, &plugin, e))),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();

    let mut group = c.benchmark_group("instantiate");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    group.bench_function("raw", |b| {
        // The store is dropped outside the timed section.
        b.iter_batched(
            || (),
            |()| {
                let mut store = Store::new(&tuned, RawState::new());
                rt.block_on(tuned_pre.instantiate_async(&mut store))
                    .expect("instantiate");
                store
            },
            // At most this many live stores per batch: below the pool size.
            BatchSize::NumIterations(500),
        )
    });
    group.bench_function("raw+drop", |b| {
        b.iter(|| {
            let mut store = Store::new(&tuned, RawState::new());
            rt.block_on(tuned_pre.instantiate_async(&mut store))
                .expect("instantiate");
            drop(black_box(store));
        })
    });
    group.finish();

    // What the runtime itself measured for instantiation, over many calls.
    let e = event(1 << 10);
    let n = 2000;
    let total: u64 = (0..n)
        .map(|_| {
            rt.block_on(runtime.call(&plugin, e.clone(), CallContext::default()))
                .instantiate_us
        })
        .sum();
    println!(
        "runtime report.instantiate_us mean over {n} calls: {:.1} µs",
        total as f64 / n as f64
    );

    let mut group = c.benchmark_group("throughput");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements(1));
    let default_engine = raw_engine(Pool::Defaults);
    let default_pre = raw_pre(&default_engine, &wasm);
    let resident_engine = raw_engine(Pool::Resident);
    let resident_pre = raw_pre(&resident_engine, &wasm);
    for threads in [1u64, 2] {
        for (label, engine, pre) in [
            ("raw-pool-defaults", &default_engine, &default_pre),
            ("raw-keep-resident", &resident_engine, &resident_pre),
            ("raw-keep-resident+pagemap", &tuned, &tuned_pre),
        ] {
            let we = wit_event(&e);
            let (engine, pre) = (engine.clone(), pre.clone());
            let we = Arc::new(we);
            group.bench_function(format!("{label}/{threads}t"), |b| {
                b.iter_custom(|iters| {
                    let (engine, pre, we) = (engine.clone(), pre.clone(), we.clone());
                    spread(iters, threads, move |rt| {
                        black_box(rt.block_on(raw_call(&engine, &pre, &we)));
                    })
                })
            });
        }
        let (rt2, p2, e2) = (runtime.clone(), plugin.clone(), e.clone());
        group.bench_function(format!("runtime/{threads}t"), |b| {
            b.iter_custom(|iters| {
                let (runtime, plugin, e) = (rt2.clone(), p2.clone(), e2.clone());
                spread(iters, threads, move |rt| {
                    black_box(rt.block_on(runtime_call(&runtime, &plugin, e.clone())));
                })
            })
        });
    }
    group.finish();
}

criterion_group!(runtime, benches);
criterion_main!(runtime);
