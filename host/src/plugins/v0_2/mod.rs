//! Host bindings of plugin API 0.2 (`wit/atrium-plugin-0.2`, frozen): the worlds 0.2 changed,
//! the incremental early-stop policy and the compute target around the worker. The other
//! kinds' newest worlds are 0.1's (`super::v0_1`), and components built against 0.1 keep
//! loading beside these.

/// The version of the WIT package this module serves.
pub const API_VERSION: &str = "0.2.0";

/// `compute-target-plugin`, which also generates the shared interfaces (types, log, config, secrets).
pub mod target {
    wasmtime::component::bindgen!({
        path: "../wit/atrium-plugin-0.2",
        world: "compute-target-plugin",
        imports: { default: trappable },
    });
}

/// `early-stop-plugin`.
pub mod stopper {
    wasmtime::component::bindgen!({
        path: "../wit/atrium-plugin-0.2",
        world: "early-stop-plugin",
        imports: { default: trappable },
        with: {
            "atrium:plugin/types": super::target::atrium::plugin::types,
            "atrium:plugin/log": super::target::atrium::plugin::log,
        },
    });
}
