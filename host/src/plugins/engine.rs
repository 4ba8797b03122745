//! The process's one wasmtime engine: pooling allocation (falling back to on-demand when
//! address space is short), copy-on-write memory images, and epoch interruption driven by a
//! ticker thread.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances: the granularity of call deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Largest linear memory any plugin instance may have (the per-store cap is usually lower).
pub const MAX_MEMORY: u64 = 512 << 20;

/// Component instances the pool keeps slots for.
const POOL_COMPONENTS: u32 = 2048;

/// The shared engine and its ticker.
pub struct PluginEngine {
    engine: Engine,
    pooled: bool,
    stop: Arc<AtomicBool>,
}

impl PluginEngine {
    /// Builds the engine; tries the pooling allocator first.
    pub fn new() -> Result<Self, wasmtime::Error> {
        let (engine, pooled) = match Engine::new(&config(true)) {
            Ok(e) => (e, true),
            Err(e) => {
                tracing::warn!(error = %e, "pooling allocator unavailable (address space?); using on-demand allocation");
                (Engine::new(&config(false))?, false)
            }
        };
        let stop = Arc::new(AtomicBool::new(false));
        let (ticker_engine, ticker_stop) = (engine.clone(), stop.clone());
        std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                while !ticker_stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    ticker_engine.increment_epoch();
                }
            })
            .map_err(|e| wasmtime::Error::msg(format!("cannot start the epoch ticker: {e}")))?;
        Ok(Self {
            engine,
            pooled,
            stop,
        })
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Whether instances come from the pooling allocator.
    pub fn pooled(&self) -> bool {
        self.pooled
    }

    /// A key for precompiled artifacts: only this engine configuration may load them.
    pub fn compatibility_key(&self) -> String {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        self.pooled.hash(&mut h);
        format!("{:016x}", h.finish())
    }

    /// Epoch ticks for a deadline (at least one).
    pub fn ticks(deadline: Duration) -> u64 {
        (deadline.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64
    }
}

impl Drop for PluginEngine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn config(pooling: bool) -> Config {
    let mut c = Config::new();
    c.wasm_component_model(true);
    c.epoch_interruption(true);
    c.memory_init_cow(true);
    c.cranelift_opt_level(wasmtime::OptLevel::Speed);
    if pooling {
        let mut p = PoolingAllocationConfig::default();
        p.total_component_instances(POOL_COMPONENTS);
        // a Rust wasip2 component holds several core instances (the program plus adapters)
        p.total_core_instances(POOL_COMPONENTS * 4);
        p.total_memories(POOL_COMPONENTS * 2);
        p.total_tables(POOL_COMPONENTS * 4);
        p.max_memory_size(MAX_MEMORY as usize);
        p.max_memories_per_module(1);
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(p));
    }
    c
}
