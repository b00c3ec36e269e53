//! The shared engine: wasmtime configuration, the instance pool, the epoch
//! ticker, the artifact cache and loading components into [`Plugin`]s.

use std::hash::Hash as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use reyna_manifest::Kind;
use reyna_types::Digest;
use tokio::sync::Semaphore;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig,
};

use crate::bindings::processor::reyna::plugin::{host, types};
use crate::bindings::{EffectPre, Processor, ProcessorPre};
use crate::cache::{ArtifactCache, Lookup, StableHasher};
use crate::config::RuntimeConfig;
use crate::error::{LoadError, RuntimeError};
use crate::plugin::Plugin;
use crate::plugin::{PluginInner, Pre};
use crate::sandbox::{CallState, TABLE_ELEMENTS};
use crate::shape;

/// Memory a freed pool slot keeps resident (reset with `memset` instead of
/// `madvise`): a small plugin's next instance in that slot takes no page
/// faults, and slots are recycled without a syscall. With wasmtime's defaults
/// (`madvise` every slot), fresh-instance throughput fell from 1 to 2 threads
/// (35k/s to 18k/s, the `madvise`s contend); keeping memory resident makes it
/// scale, and `PAGEMAP_SCAN` (below) makes the reset cheap. See `PERF.md`.
const MEMORY_KEEP_RESIDENT: usize = 8 << 20;
/// Same for tables.
const TABLE_KEEP_RESIDENT: usize = 1 << 20;
/// Decommits batched per flush (per shard), amortising the `madvise` and the
/// lock around it.
const DECOMMIT_BATCH: usize = 64;

/// How many compiles run now ([`crate::CompileLimits::max_concurrent`]).
#[derive(Debug, Default)]
struct CompileSlots {
    running: Mutex<usize>,
    freed: Condvar,
}

/// A compile slot, freed when dropped.
struct CompileSlot(Arc<CompileSlots>);

impl CompileSlots {
    /// Takes a slot, waiting until `deadline` at most.
    fn acquire(slots: &Arc<Self>, max: usize, deadline: Instant) -> Option<CompileSlot> {
        let mut running = slots.running.lock().unwrap_or_else(PoisonError::into_inner);
        while *running >= max.max(1) {
            let left = deadline.checked_duration_since(Instant::now())?;
            running = slots
                .freed
                .wait_timeout(running, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        *running += 1;
        Some(CompileSlot(Arc::clone(slots)))
    }
}

impl Drop for CompileSlot {
    fn drop(&mut self) {
        let mut running = self
            .0
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *running -= 1;
        self.0.freed.notify_one();
    }
}

/// Counters of the artifact cache, for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuntimeStats {
    /// Components compiled with Cranelift.
    pub compiles: u64,
    /// Components loaded from a cached artifact.
    pub cache_hits: u64,
    /// Cached artifacts found corrupt or incompatible, deleted and rebuilt.
    pub cache_rejected: u64,
}

#[derive(Debug, Default)]
struct Counters {
    compiles: AtomicU64,
    cache_hits: AtomicU64,
    cache_rejected: AtomicU64,
}

/// Advances the engine's epoch every tick, on its own thread, until dropped.
#[derive(Debug)]
struct Ticker {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    fn start(
        engine: Engine,
        tick: Duration,
        ticks: Arc<AtomicU64>,
    ) -> Result<Ticker, RuntimeError> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("reyna-epoch".to_owned())
            .spawn(move || {
                // `recv_timeout` is the sleep: a dropped sender wakes it at once.
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(tick) {
                    ticks.fetch_add(1, Ordering::Relaxed);
                    engine.increment_epoch();
                }
            })
            .map_err(RuntimeError::Ticker)?;
        Ok(Ticker {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The sandbox: one wasmtime engine with its instance pool, epoch ticker and
/// artifact cache. Cheap to clone; the ticker stops when the last clone drops.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub engine: Engine,
    pub config: RuntimeConfig,
    /// The processor world: WASI p2 (granting nothing), `host`, `effects`.
    /// No `wasi:http`: a processor that imports it does not link.
    linker: Linker<CallState>,
    /// The effect world: WASI p2, `host`, and `wasi:http` behind the
    /// network policy.
    effect_linker: Linker<CallState>,
    cache: Option<ArtifactCache>,
    counters: Counters,
    /// Compiles running now, at most `config.compile.max_concurrent`.
    compiles: Arc<CompileSlots>,
    /// One permit per pool slot: a call waits here (bounded) instead of
    /// failing on an exhausted pool.
    pub instances: Arc<Semaphore>,
    pub ticks: Arc<AtomicU64>,
    _ticker: Ticker,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("config", &self.inner.config)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

fn engine_config(config: &RuntimeConfig) -> Config {
    let n = config.max_instances;
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(n)
        // A std Rust component holds a few core instances (the program plus
        // wasm-component-ld's shims), each with at most one memory and table.
        .total_core_instances(n.saturating_mul(8))
        .total_memories(n.saturating_mul(2))
        .total_tables(n.saturating_mul(4))
        .total_stacks(n)
        .total_gc_heaps(n)
        .max_memory_size(usize::try_from(config.max_memory).unwrap_or(usize::MAX))
        .table_elements(TABLE_ELEMENTS)
        .linear_memory_keep_resident(MEMORY_KEEP_RESIDENT)
        .table_keep_resident(TABLE_KEEP_RESIDENT)
        .decommit_batch_size(DECOMMIT_BATCH)
        // Reset only the pages a call dirtied (found with the PAGEMAP_SCAN
        // ioctl, Linux 6.7+; `Auto` falls back to resetting the whole
        // resident prefix elsewhere): 5x faster fresh instances than a full
        // `memset` of the resident prefix.
        .pagemap_scan(Enabled::Auto);

    let mut c = Config::new();
    c.wasm_component_model(true)
        // Processors use no component-model async; skipping its per-store
        // state makes every instantiation cheaper.
        .concurrency_support(false)
        .epoch_interruption(true)
        .consume_fuel(config.fuel.is_some())
        .parallel_compilation(true)
        .cranelift_opt_level(OptLevel::Speed)
        .memory_init_cow(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    c
}

impl Runtime {
    /// Creates the engine and its pool and starts the epoch ticker.
    pub fn new(config: RuntimeConfig) -> Result<Runtime, RuntimeError> {
        config.validate()?;
        let engine = Engine::new(&engine_config(&config))
            .map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;

        let linker =
            processor_linker(&engine).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        let effect_linker =
            effect_linker(&engine).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;

        let cache = match &config.cache_dir {
            Some(dir) => {
                let mut h = StableHasher::default();
                engine.precompile_compatibility_hash().hash(&mut h);
                let cache =
                    ArtifactCache::new(dir, h.key()).map_err(|source| RuntimeError::CacheDir {
                        path: dir.clone(),
                        source,
                    })?;
                Some(cache)
            }
            None => None,
        };

        let ticks = Arc::new(AtomicU64::new(0));
        let ticker = Ticker::start(engine.clone(), config.epoch_tick, ticks.clone())?;
        let instances = Arc::new(Semaphore::new(config.max_instances as usize));
        Ok(Runtime {
            inner: Arc::new(Inner {
                engine,
                config,
                linker,
                effect_linker,
                cache,
                counters: Counters::default(),
                compiles: Arc::default(),
                instances,
                ticks,
                _ticker: ticker,
            }),
        })
    }

    /// The settings this runtime was created with.
    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    /// The wasmtime engine (for embedders that need it, such as benches).
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Artifact cache counters since this runtime started.
    pub fn stats(&self) -> RuntimeStats {
        let c = &self.inner.counters;
        RuntimeStats {
            compiles: c.compiles.load(Ordering::Relaxed),
            cache_hits: c.cache_hits.load(Ordering::Relaxed),
            cache_rejected: c.cache_rejected.load(Ordering::Relaxed),
        }
    }

    /// Loads a component: reads its manifest, checks that it targets the
    /// world its `kind` names, compiles it (or loads the cached artifact),
    /// links it against that world and resolves its limits. A processor is
    /// linked without `wasi:http`, so one that imports it is refused.
    /// CPU-heavy on a cache miss (tens of milliseconds): call it from a
    /// blocking context in async code.
    pub fn load(&self, bytes: &[u8]) -> Result<Plugin, LoadError> {
        let info = reyna_manifest::inspect(bytes)?;
        let manifest = info.manifest;
        let digest = Digest::of(bytes);
        let component = self.component(&digest.hex(), bytes)?;
        let link = |e: wasmtime::Error| LoadError::Link(format!("{e:#}"));
        let pre = match manifest.kind {
            Kind::Processor => Pre::Processor(
                ProcessorPre::new(
                    self.inner
                        .linker
                        .instantiate_pre(&component)
                        .map_err(link)?,
                )
                .map_err(link)?,
            ),
            Kind::Effect => Pre::Effect(
                EffectPre::new(
                    self.inner
                        .effect_linker
                        .instantiate_pre(&component)
                        .map_err(link)?,
                )
                .map_err(link)?,
            ),
        };
        let limits = self.inner.config.resolve(&manifest.limits);
        Ok(Plugin {
            inner: Arc::new(PluginInner {
                manifest,
                digest,
                limits,
                pre,
                permits: Arc::new(Semaphore::new(limits.max_concurrency as usize)),
            }),
        })
    }

    fn component(&self, digest: &str, bytes: &[u8]) -> Result<Component, LoadError> {
        let inner = &self.inner;
        if let Some(cache) = &inner.cache {
            match cache.read(digest) {
                Lookup::Found(payload) => match deserialize(&inner.engine, &payload) {
                    Ok(c) => {
                        inner.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
                        return Ok(c);
                    }
                    Err(e) => {
                        inner
                            .counters
                            .cache_rejected
                            .fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(digest, error = %format!("{e:#}"), "cached artifact rejected by wasmtime; recompiling");
                        cache.remove(digest);
                    }
                },
                Lookup::Corrupt(reason) => {
                    inner
                        .counters
                        .cache_rejected
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(digest, reason, "cached artifact is corrupt; recompiling");
                    cache.remove(digest);
                }
                Lookup::Missing => {}
            }
        }
        let component = self.compile(bytes)?;
        if let Some(cache) = &inner.cache {
            // A cache that cannot be written costs a compile next start, not
            // this load.
            match component.serialize() {
                Ok(payload) => {
                    if let Err(e) = cache.write(digest, &payload) {
                        tracing::warn!(digest, error = %e, "cannot write compiled artifact");
                    }
                }
                Err(e) => {
                    tracing::warn!(digest, error = %format!("{e:#}"), "cannot serialize compiled component")
                }
            }
        }
        Ok(component)
    }

    /// Compiles `bytes` under [`crate::CompileLimits`]: its shape checked first,
    /// then compiled on a thread of its own once a compile slot is free,
    /// waited for at most the compile timeout in all.
    fn compile(&self, bytes: &[u8]) -> Result<Component, LoadError> {
        let limits = &self.inner.config.compile;
        shape::check(bytes, limits).map_err(LoadError::TooExpensive)?;
        let deadline = Instant::now() + limits.timeout;
        let slot = CompileSlots::acquire(&self.inner.compiles, limits.max_concurrent, deadline)
            .ok_or(LoadError::CompileBusy {
                timeout: limits.timeout,
                max_concurrent: limits.max_concurrent,
            })?;
        self.inner.counters.compiles.fetch_add(1, Ordering::Relaxed);
        let (done, result) = mpsc::sync_channel(1);
        let engine = self.inner.engine.clone();
        let bytes = bytes.to_vec();
        std::thread::Builder::new()
            .name("reyna-compile".into())
            .spawn(move || {
                let compiled = Component::new(&engine, &bytes);
                // The slot is held until the compile really ends, even one
                // whose caller stopped waiting.
                drop(slot);
                let _ = done.send(compiled);
            })
            .map_err(|e| LoadError::Compile(format!("cannot start a compile thread: {e}")))?;
        match result.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(compiled) => compiled.map_err(|e| LoadError::Compile(format!("{e:#}"))),
            Err(_) => Err(LoadError::CompileTimeout {
                timeout: limits.timeout,
            }),
        }
    }

    /// Where the compiled artifact of a component with `digest` is cached, if
    /// a cache directory is configured.
    pub fn artifact_path(&self, digest: Digest) -> Option<std::path::PathBuf> {
        self.inner.cache.as_ref().map(|c| c.path(&digest.hex()))
    }
}

/// The processor world's linker: WASI p2 and the contract's `host` and
/// `effects`. Deliberately without `wasi:http`.
fn processor_linker(engine: &Engine) -> wasmtime::Result<Linker<CallState>> {
    let mut linker = Linker::<CallState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    Processor::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |s| s)?;
    Ok(linker)
}

/// The effect world's linker: WASI p2, the contract's `host` and `usage`,
/// and `wasi:http` whose every request goes through the call's network
/// policy (`net.rs`).
fn effect_linker(engine: &Engine) -> wasmtime::Result<Linker<CallState>> {
    let mut linker = Linker::<CallState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    types::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |s| s)?;
    host::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |s| s)?;
    // Components built before `usage` existed do not import it, and load
    // all the same: a linker may define more than a component imports.
    crate::bindings::effect::reyna::plugin::usage::add_to_linker::<CallState, HasSelf<CallState>>(
        &mut linker,
        |s| s,
    )?;
    Ok(linker)
}

#[allow(unsafe_code)]
fn deserialize(engine: &Engine, payload: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: `Component::deserialize` trusts its input to be wasmtime's own
    // output. The payload comes from our cache directory, under a key that
    // includes this engine's compatibility hash, and its SHA-256 (over the
    // component digest, engine key and payload) was verified just before:
    // it is exactly what `Component::serialize` wrote for this component and
    // engine configuration. The cache directory must be writable only by the
    // host (documented on `RuntimeConfig::cache_dir`).
    unsafe { Component::deserialize(engine, payload) }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn compiles_past_the_limit_wait_for_a_slot_within_their_deadline() {
        let slots = Arc::new(CompileSlots::default());
        let soon = || Instant::now() + Duration::from_millis(20);
        let first = CompileSlots::acquire(&slots, 1, soon()).expect("a free slot");
        // The one slot is taken until the compile holding it really ends.
        assert!(CompileSlots::acquire(&slots, 1, soon()).is_none());
        let waiter = std::thread::spawn({
            let slots = Arc::clone(&slots);
            move || {
                CompileSlots::acquire(&slots, 1, Instant::now() + Duration::from_secs(30)).is_some()
            }
        });
        drop(first);
        assert!(waiter.join().unwrap(), "a freed slot goes to the waiter");
        assert_eq!(*slots.running.lock().unwrap(), 0);
    }

    /// Below the manifest check: even a component that got past it could
    /// not link `wasi:http` as a processor.
    #[test]
    fn the_processor_world_does_not_link_wasi_http() {
        let runtime = Runtime::new(RuntimeConfig {
            max_instances: 2,
            ..RuntimeConfig::default()
        })
        .unwrap();
        let bytes = reyna_artifacts::bytes("hostile-processor-http").unwrap();
        let component = Component::new(runtime.engine(), &bytes).unwrap();
        let err = runtime
            .inner
            .linker
            .instantiate_pre(&component)
            .map(|_| ())
            .unwrap_err();
        assert!(format!("{err:#}").contains("wasi:http/"), "{err:#}");
        // The effect world links it (it provides more than the component uses).
        let webhook = reyna_artifacts::bytes("webhook").unwrap();
        let webhook = Component::new(runtime.engine(), &webhook).unwrap();
        assert!(
            runtime
                .inner
                .effect_linker
                .instantiate_pre(&webhook)
                .is_ok()
        );
        assert!(runtime.inner.linker.instantiate_pre(&webhook).is_err());
    }
}
