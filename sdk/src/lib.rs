//! The Atrium plugin SDK: bindings for the `atrium:plugin@0.1.0` worlds, the worlds
//! `atrium:plugin@0.2.0` changed ([`v0_2`]: the incremental stopper, the compute target), and
//! the glue that turns one Rust type into a plugin component.
//!
//! Implement the exported trait of your plugin's kind and call that kind's export macro (only
//! the world of the macro you call ends up in the component):
//!
//! ```text
//! use atrium_sdk::storage::exports::atrium::plugin::storage::{Guest, GuestWriter, ObjectMeta, Writer};
//! struct MyStore;
//! impl Guest for MyStore { /* ... */ }
//! atrium_sdk::export_storage!(MyStore);
//! ```
//!
//! The export macros also embed the API version (custom section `atrium:api-version`), which the
//! host checks before it loads a component.

extern crate self as atrium_sdk;

pub use wit_bindgen;

#[cfg(feature = "http")]
pub mod http;

/// The plugin API version of the worlds at the top of this crate.
pub const API_VERSION: &str = "0.1.0";

/// The plugin API version of the worlds in [`v0_2`].
pub const API_VERSION_0_2: &str = "0.2.0";

/// Embeds [`API_VERSION`] in the component; the export macros call it.
#[doc(hidden)]
#[macro_export]
macro_rules! __api_version_section {
    () => {
        #[used]
        #[unsafe(link_section = "atrium:api-version")]
        static __ATRIUM_API_VERSION: [u8; 5] = *b"0.1.0";
    };
}

/// Embeds [`API_VERSION_0_2`] in the component; the 0.2 export macros call it.
#[doc(hidden)]
#[macro_export]
macro_rules! __api_version_section_0_2 {
    () => {
        #[used]
        #[unsafe(link_section = "atrium:api-version")]
        static __ATRIUM_API_VERSION: [u8; 5] = *b"0.2.0";
    };
}

/// The worlds plugin API 0.2 changed; build a stopper or a target against these.
pub mod v0_2 {
    /// Bindings of the 0.2 `early-stop-plugin` world: an incremental early-termination policy.
    pub mod stopper {
        wit_bindgen::generate!({
            path: "../wit/atrium-plugin-0.2",
            world: "early-stop-plugin",
            pub_export_macro: true,
            export_macro_name: "__export_stopper_0_2",
            default_bindings_module: "atrium_sdk::v0_2::stopper",
            runtime_path: "atrium_sdk::wit_bindgen::rt",
        });
    }

    /// Bindings of the 0.2 `compute-target-plugin` world: a compute target around the worker.
    pub mod target {
        wit_bindgen::generate!({
            path: "../wit/atrium-plugin-0.2",
            world: "compute-target-plugin",
            pub_export_macro: true,
            export_macro_name: "__export_target_0_2",
            default_bindings_module: "atrium_sdk::v0_2::target",
            runtime_path: "atrium_sdk::wit_bindgen::rt",
        });
    }
}

/// Exports a type implementing `v0_2::stopper::exports::atrium::plugin::early_stop::Guest`
/// (whose `Policy` keeps the sweep's reports) as a 0.2 stopper.
#[macro_export]
macro_rules! export_stopper_0_2 {
    ($t:ident) => {
        $crate::__api_version_section_0_2!();
        $crate::v0_2::stopper::__export_stopper_0_2!($t);
    };
}

/// Exports a type implementing `v0_2::target::exports::atrium::plugin::compute_target::Guest`
/// as a 0.2 compute target.
#[macro_export]
macro_rules! export_target_0_2 {
    ($t:ident) => {
        $crate::__api_version_section_0_2!();
        $crate::v0_2::target::__export_target_0_2!($t);
    };
}

/// Bindings of the `storage-plugin` world: a datastore backend.
pub mod storage {
    wit_bindgen::generate!({
        path: "../wit/atrium-plugin-0.1",
        world: "storage-plugin",
        pub_export_macro: true,
        export_macro_name: "__export_storage",
        default_bindings_module: "atrium_sdk::storage",
        runtime_path: "atrium_sdk::wit_bindgen::rt",
    });
}

/// Exports a type implementing `storage::exports::atrium::plugin::storage::Guest` as the plugin.
#[macro_export]
macro_rules! export_storage {
    ($t:ident) => {
        $crate::__api_version_section!();
        $crate::storage::__export_storage!($t);
    };
}

/// Bindings of the `scorer-plugin` world: a scoring component for deployments.
pub mod scorer {
    wit_bindgen::generate!({
        path: "../wit/atrium-plugin-0.1",
        world: "scorer-plugin",
        pub_export_macro: true,
        export_macro_name: "__export_scorer",
        default_bindings_module: "atrium_sdk::scorer",
        runtime_path: "atrium_sdk::wit_bindgen::rt",
    });
}

/// Exports a type implementing `scorer::exports::atrium::plugin::scorer::Guest` as the plugin.
#[macro_export]
macro_rules! export_scorer {
    ($t:ident) => {
        $crate::__api_version_section!();
        $crate::scorer::__export_scorer!($t);
    };
}

/// Bindings of the `sampler-plugin` world: an AutoML sampler.
pub mod sampler {
    wit_bindgen::generate!({
        path: "../wit/atrium-plugin-0.1",
        world: "sampler-plugin",
        pub_export_macro: true,
        export_macro_name: "__export_sampler",
        default_bindings_module: "atrium_sdk::sampler",
        runtime_path: "atrium_sdk::wit_bindgen::rt",
    });
}

/// Exports a type implementing `sampler::exports::atrium::plugin::sampler::Guest` as the plugin.
#[macro_export]
macro_rules! export_sampler {
    ($t:ident) => {
        $crate::__api_version_section!();
        $crate::sampler::__export_sampler!($t);
    };
}

/// Bindings of the `stopper-plugin` world: an AutoML early-termination policy.
pub mod stopper {
    wit_bindgen::generate!({
        path: "../wit/atrium-plugin-0.1",
        world: "stopper-plugin",
        pub_export_macro: true,
        export_macro_name: "__export_stopper",
        default_bindings_module: "atrium_sdk::stopper",
        runtime_path: "atrium_sdk::wit_bindgen::rt",
    });
}

/// Exports a type implementing `stopper::exports::atrium::plugin::early_stop::Guest` as the plugin.
#[macro_export]
macro_rules! export_stopper {
    ($t:ident) => {
        $crate::__api_version_section!();
        $crate::stopper::__export_stopper!($t);
    };
}

/// Bindings of the `target-plugin` world: a compute target.
pub mod target {
    wit_bindgen::generate!({
        path: "../wit/atrium-plugin-0.1",
        world: "target-plugin",
        pub_export_macro: true,
        export_macro_name: "__export_target",
        default_bindings_module: "atrium_sdk::target",
        runtime_path: "atrium_sdk::wit_bindgen::rt",
    });
}

/// Exports a type implementing `target::exports::atrium::plugin::compute_target::Guest` as the plugin.
#[macro_export]
macro_rules! export_target {
    ($t:ident) => {
        $crate::__api_version_section!();
        $crate::target::__export_target!($t);
    };
}

/// Logs through the host (any kind whose world imports `log`).
#[macro_export]
macro_rules! log {
    ($bindings:path, $level:ident, $($arg:tt)*) => {{
        use $bindings as __b;
        __b::atrium::plugin::log::log(__b::atrium::plugin::log::Level::$level, &format!($($arg)*));
    }};
}
