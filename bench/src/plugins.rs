//! Plugin runtime benchmark, in one process:
//! - instantiation from a cached pre and the cost of a tiny host→guest call, through Atrium's
//!   runtime (pooling allocator, limits, epoch deadline per call) next to bare wasmtime
//!   (default config, plain WASI context) on the same component;
//! - artifact upload/download throughput through the `storage-fs` plugin next to the plain
//!   filesystem doing the same work natively (temp file, fsync, rename; sha256 on both sides).

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use atrium::datastore::BlobStore;
use atrium::plugins::storage::PluginBlobStore;
use atrium::plugins::v0_1::stopper::StopperPlugin;
use atrium::plugins::{
    Effective, Grants, Kind, KindPre, Loader, LogTags, Manifest, PluginEngine, PluginState,
    StoreSpec,
};
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn percentiles(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (v[v.len() / 2], v[(v.len() as f64 * 0.99) as usize])
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

struct Bare {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl atrium::plugins::v0_1::storage::atrium::plugin::log::Host for Bare {
    fn log(
        &mut self,
        _level: atrium::plugins::v0_1::storage::atrium::plugin::log::Level,
        _msg: String,
    ) -> wasmtime::Result<()> {
        Ok(())
    }
}

impl WasiView for Bare {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

fn spec(kind: Kind, effective: Effective) -> StoreSpec {
    StoreSpec {
        kind,
        effective: Arc::new(effective),
        secrets: Arc::new(Default::default()),
        memory: kind.default_memory(),
        tags: Arc::new(LogTags {
            workspace: "bench".into(),
            component: "bench".into(),
            version: "0".into(),
        }),
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let wasm_dir = root.join("plugins/target/wasm32-wasip2/release");
    let stopper_wasm = std::fs::read(wasm_dir.join("example_stopper.wasm"))
        .expect("build the plugins first (cargo build -p atrium)");
    let fs_wasm = std::fs::read(wasm_dir.join("storage_fs.wasm")).unwrap();
    let iters = 20_000;
    let tmp = tempfile::tempdir().unwrap();

    // ---- Atrium runtime
    let engine = Arc::new(PluginEngine::new().unwrap());
    let loader = Arc::new(Loader::new(engine.clone(), &tmp.path().join("plugins")).unwrap());
    let v = loader.validate(&stopper_wasm, Kind::Stopper).unwrap();
    loader.keep(&stopper_wasm, &v).unwrap();
    let pre = loader.pre(&v.digest, Kind::Stopper).unwrap();
    let KindPre::Stopper(pre) = pre.as_ref() else {
        unreachable!()
    };
    let stopper_spec = spec(Kind::Stopper, Effective::default());
    let mut inst = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        let mut store = PluginState::new(&stopper_spec)
            .unwrap()
            .into_store(engine.engine());
        store.set_epoch_deadline(PluginEngine::ticks(Duration::from_secs(5)));
        let b = pre.instantiate(&mut store).unwrap();
        inst.push(micros(t.elapsed()));
        std::hint::black_box(b);
    }
    let (a_inst50, a_inst99) = percentiles(inst);
    let mut store = PluginState::new(&stopper_spec)
        .unwrap()
        .into_store(engine.engine());
    store.set_epoch_deadline(PluginEngine::ticks(Duration::from_secs(5)));
    let b: StopperPlugin = pre.instantiate(&mut store).unwrap();
    let mut calls = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        store.set_epoch_deadline(PluginEngine::ticks(Duration::from_secs(5)));
        let r = b
            .atrium_plugin_early_stop()
            .call_decide(&mut store, true, "", &[], &[])
            .unwrap();
        calls.push(micros(t.elapsed()));
        std::hint::black_box(r);
    }
    let (a_call50, a_call99) = percentiles(calls);

    // ---- bare wasmtime, same component
    let bare_engine = wasmtime::Engine::default();
    let component = Component::from_binary(&bare_engine, &stopper_wasm).unwrap();
    let mut linker = Linker::<Bare>::new(&bare_engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).unwrap();
    atrium::plugins::v0_1::storage::atrium::plugin::log::add_to_linker::<
        _,
        wasmtime::component::HasSelf<Bare>,
    >(&mut linker, |s| s)
    .unwrap();
    let bare_pre = atrium::plugins::v0_1::stopper::StopperPluginPre::new(
        linker.instantiate_pre(&component).unwrap(),
    )
    .unwrap();
    let mut inst = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        let mut store = wasmtime::Store::new(
            &bare_engine,
            Bare {
                wasi: WasiCtx::builder().build(),
                table: ResourceTable::new(),
            },
        );
        let b = bare_pre.instantiate(&mut store).unwrap();
        inst.push(micros(t.elapsed()));
        std::hint::black_box(b);
    }
    let (b_inst50, b_inst99) = percentiles(inst);
    let mut store = wasmtime::Store::new(
        &bare_engine,
        Bare {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
        },
    );
    let b = bare_pre.instantiate(&mut store).unwrap();
    let mut calls = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        let r = b
            .atrium_plugin_early_stop()
            .call_decide(&mut store, true, "", &[], &[])
            .unwrap();
        calls.push(micros(t.elapsed()));
        std::hint::black_box(r);
    }
    let (b_call50, b_call99) = percentiles(calls);

    // ---- storage throughput, 64 MiB
    let size = 64 << 20;
    let data: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
    let chunk = 1 << 20;
    let rounds = 5;
    let v = loader.validate(&fs_wasm, Kind::Storage).unwrap();
    loader.keep(&fs_wasm, &v).unwrap();
    let manifest = Manifest::parse(include_str!("../../plugins/storage-fs/plugin.toml")).unwrap();
    let dir = tmp.path().join("datastore");
    std::fs::create_dir_all(&dir).unwrap();
    let grants = Grants {
        dirs: [("/data".to_string(), dir.display().to_string())].into(),
        config: [("root".to_string(), "/data".to_string())].into(),
        ..Default::default()
    };
    let store = PluginBlobStore::new(
        loader.clone(),
        v.digest.clone(),
        spec(Kind::Storage, Effective::of(&manifest, &grants)),
        Duration::from_secs(30),
    );
    let plain_dir = tmp.path().join("plain");
    std::fs::create_dir_all(&plain_dir).unwrap();
    let (mut up, mut down, mut pup, mut pdown) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let hash_all = |reader: &mut dyn Read| {
        let mut buf = vec![0u8; chunk];
        let mut h = Sha256::new();
        loop {
            let n = reader.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        std::hint::black_box(h.finalize());
    };
    // rounds alternate between the plugin and the plain filesystem, so that disk write-back of
    // one does not land on the other alone
    for r in 0..rounds {
        let mut payload = data.clone();
        payload[0] = r as u8; // distinct content each round: no dedup shortcut
        let t = Instant::now();
        let mut w = store.writer().unwrap();
        for c in payload.chunks(chunk) {
            w.write(c).unwrap();
        }
        let meta = w.finish().unwrap();
        up.push(size as f64 / t.elapsed().as_secs_f64());

        payload[0] = 100 + r as u8;
        let t = Instant::now();
        let tmp_path = plain_dir.join(format!("tmp-{r}"));
        let mut f = std::fs::File::create(&tmp_path).unwrap();
        let mut h = Sha256::new();
        for c in payload.chunks(chunk) {
            h.update(c);
            f.write_all(c).unwrap();
        }
        f.sync_all().unwrap();
        let final_path = plain_dir.join(hex::encode(h.finalize()));
        std::fs::rename(&tmp_path, &final_path).unwrap();
        pup.push(size as f64 / t.elapsed().as_secs_f64());

        let t = Instant::now();
        hash_all(&mut *store.open(&meta.digest).unwrap());
        down.push(size as f64 / t.elapsed().as_secs_f64());

        let t = Instant::now();
        hash_all(&mut std::fs::File::open(&final_path).unwrap());
        pdown.push(size as f64 / t.elapsed().as_secs_f64());
    }
    let med = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2] / (1 << 20) as f64
    };
    let (up, down, pup, pdown) = (med(up), med(down), med(pup), med(pdown));

    println!(
        "# plugin runtime benchmark (pooling allocator: {})",
        engine.pooled()
    );
    println!(
        "\n| measure | atrium runtime | bare wasmtime / plain fs | ratio |\n|---|---|---|---|"
    );
    println!(
        "| instantiate from a cached pre, p50 | {a_inst50:.1} µs | {b_inst50:.1} µs | {:.2}× |",
        a_inst50 / b_inst50
    );
    println!(
        "| instantiate from a cached pre, p99 | {a_inst99:.1} µs | {b_inst99:.1} µs | {:.2}× |",
        a_inst99 / b_inst99
    );
    println!(
        "| tiny call (stopper.decide, empty), p50 | {a_call50:.2} µs | {b_call50:.2} µs | {:.2}× |",
        a_call50 / b_call50
    );
    println!(
        "| tiny call, p99 | {a_call99:.2} µs | {b_call99:.2} µs | {:.2}× |",
        a_call99 / b_call99
    );
    println!(
        "| upload 64 MiB (storage-fs vs plain fs) | {up:.0} MiB/s | {pup:.0} MiB/s | {:.2}× |",
        up / pup
    );
    println!(
        "| download 64 MiB (storage-fs vs plain fs) | {down:.0} MiB/s | {pdown:.0} MiB/s | {:.2}× |",
        down / pdown
    );
}
