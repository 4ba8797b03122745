//! Host bindings of plugin API 0.1 (`wit/atrium-plugin-0.1`, frozen). A future 0.2 gets its
//! own module next to this one, so components built against 0.1 keep loading.

/// The version of the WIT package this module serves.
pub const API_VERSION: &str = "0.1.0";

/// `storage-plugin`, which also generates the shared interfaces (types, log, config, secrets).
pub mod storage {
    wasmtime::component::bindgen!({
        path: "../wit/atrium-plugin-0.1",
        world: "storage-plugin",
        imports: { default: trappable },
    });
}

/// `stopper-plugin`.
pub mod stopper {
    wasmtime::component::bindgen!({
        path: "../wit/atrium-plugin-0.1",
        world: "stopper-plugin",
        imports: { default: trappable },
        with: {
            "atrium:plugin/log": super::storage::atrium::plugin::log,
        },
    });
}

/// `sampler-plugin`.
pub mod sampler {
    wasmtime::component::bindgen!({
        path: "../wit/atrium-plugin-0.1",
        world: "sampler-plugin",
        imports: { default: trappable },
        with: {
            "atrium:plugin/types": super::storage::atrium::plugin::types,
            "atrium:plugin/log": super::storage::atrium::plugin::log,
        },
    });
}

/// `target-plugin`.
pub mod target {
    wasmtime::component::bindgen!({
        path: "../wit/atrium-plugin-0.1",
        world: "target-plugin",
        imports: { default: trappable },
        with: {
            "atrium:plugin/types": super::storage::atrium::plugin::types,
            "atrium:plugin/log": super::storage::atrium::plugin::log,
            "atrium:plugin/config": super::storage::atrium::plugin::config,
            "atrium:plugin/secrets": super::storage::atrium::plugin::secrets,
        },
    });
}

/// `scorer-plugin`; `tensors` and `models` are served by `plugins::scorer`.
pub mod scorer {
    wasmtime::component::bindgen!({
        path: "../wit/atrium-plugin-0.1",
        world: "scorer-plugin",
        imports: { default: trappable },
        with: {
            "atrium:plugin/types": super::storage::atrium::plugin::types,
            "atrium:plugin/log": super::storage::atrium::plugin::log,
            "atrium:plugin/config": super::storage::atrium::plugin::config,
            "atrium:plugin/tensors.tensor": crate::plugins::scorer::TensorData,
            "atrium:plugin/models.model": crate::plugins::scorer::ModelHandle,
        },
    });
}

pub use storage::atrium::plugin::types::PluginError as GuestError;
