//! The plugin runtime: one wasmtime engine, validated and precompiled components, sandboxed
//! stores with memory caps, epoch deadlines, hostcall budgets and capabilities that are denied
//! unless requested by the manifest *and* granted by the operator.
//!
//! `v0_1` and `v0_2` hold the host bindings of plugin API 0.1 and 0.2 (`wit/atrium-plugin-*`;
//! 0.2 holds only the worlds it changed: stopper and target); one module per kind-specific use
//! (`storage` for datastores, `strategy` for sweep samplers and stoppers, `target` for compute
//! targets).

pub mod builtin;
pub mod engine;
pub mod http;
pub mod kind;
pub mod loader;
pub mod manifest;
pub mod scorer;
pub mod state;
pub mod storage;
pub mod strategy;
pub mod target;
pub mod v0_1;
pub mod v0_2;

use std::time::Duration;

pub use engine::PluginEngine;
pub use kind::Kind;
pub use loader::{KindPre, Loader, SharedCache, Validated};
pub use manifest::{Effective, Grants, Manifest};
pub use state::{LogTags, PluginState, SecretValues, StoreSpec};

use crate::workspace::DomainError;

/// Why loading or calling a plugin failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The upload is not a component.
    #[error("not a WebAssembly component: {0}")]
    NotAComponent(String),
    /// The upload exceeds the size limit.
    #[error("the component is {size} bytes; the limit is {limit} bytes")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Built for a plugin API this host does not serve.
    #[error("the component was built for plugin API {found}; this host serves plugin API {served}")]
    ApiVersion {
        /// The component's version.
        found: String,
        /// The host's.
        served: String,
    },
    /// It imports something its kind may not use.
    #[error("a {kind} plugin may not import {}", imports.join(", "))]
    ForbiddenImport {
        /// The declared kind.
        kind: Kind,
        /// The offending imports.
        imports: Vec<String>,
    },
    /// It does not implement its kind's world.
    #[error("the component is not a {kind} plugin (world {}): {detail}", kind.world())]
    WrongWorld {
        /// The declared kind.
        kind: Kind,
        /// What does not match.
        detail: String,
    },
    /// Other validation failures (does not compile, compiles too slowly).
    #[error("invalid component: {0}")]
    Invalid(String),
    /// A capability could not be set up.
    #[error("cannot grant a capability: {0}")]
    Grant(String),
    /// A call ran past its epoch deadline.
    #[error("the plugin exceeded its deadline of {} ms and was stopped", .0.as_millis())]
    Deadline(Duration),
    /// The guest tried to grow memory past its cap.
    #[error("the plugin exceeded its memory limit of {} MiB and was stopped", .0 >> 20)]
    MemoryLimit(u64),
    /// The guest made too many host calls.
    #[error("the plugin exhausted its budget of host calls and was stopped")]
    HostcallBudget,
    /// The guest trapped (a panic, an invalid operation).
    #[error("the plugin crashed: {0}")]
    Trap(String),
    /// The guest returned an error.
    #[error("{0}")]
    Guest(String),
    /// The guest broke the contract (e.g. returned more than asked for).
    #[error("the plugin broke the API contract: {0}")]
    Contract(String),
    /// A host-side failure.
    #[error("plugin host: {0}")]
    Internal(String),
}

impl RuntimeError {
    /// Whether the error is about an upload (the caller's input) rather than a running plugin.
    pub fn is_upload_error(&self) -> bool {
        matches!(
            self,
            Self::NotAComponent(_)
                | Self::TooLarge { .. }
                | Self::ApiVersion { .. }
                | Self::ForbiddenImport { .. }
                | Self::WrongWorld { .. }
                | Self::Invalid(_)
        )
    }
}

impl From<RuntimeError> for DomainError {
    fn from(e: RuntimeError) -> Self {
        match e {
            RuntimeError::Internal(m) => DomainError::Internal(m),
            e if e.is_upload_error() => DomainError::InvalidArgument(e.to_string()),
            RuntimeError::Grant(m) => {
                DomainError::InvalidArgument(format!("cannot grant a capability: {m}"))
            }
            other => DomainError::Plugin(other.to_string()),
        }
    }
}

/// Explains a failed call: deadline, memory cap, hostcall budget, or another trap.
pub fn call_error(
    state: &PluginState,
    e: wasmtime::Error,
    deadline: Duration,
    memory: u64,
) -> RuntimeError {
    if state.memory_exceeded() {
        return RuntimeError::MemoryLimit(memory);
    }
    if state.hostcalls_exhausted() {
        return RuntimeError::HostcallBudget;
    }
    match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => RuntimeError::Deadline(deadline),
        Some(trap) => RuntimeError::Trap(trap.to_string()),
        None => RuntimeError::Trap(format!("{e:#}")),
    }
}

/// The text of a guest's `plugin-error`.
pub fn guest_error(e: v0_1::GuestError) -> RuntimeError {
    use v0_1::GuestError as G;
    RuntimeError::Guest(match e {
        G::InvalidArgument(m) => format!("invalid argument: {m}"),
        G::NotFound(m) => format!("not found: {m}"),
        G::AccessDenied(m) => format!("access denied: {m}"),
        G::ResourceExhausted(m) => format!("resource exhausted: {m}"),
        G::Unsupported(m) => format!("unsupported: {m}"),
        G::Internal(m) => format!("internal: {m}"),
    })
}

/// The text of a 0.2 guest's `plugin-error`.
pub fn guest_error_0_2(e: v0_2::target::atrium::plugin::types::PluginError) -> RuntimeError {
    use v0_1::GuestError as G;
    use v0_2::target::atrium::plugin::types::PluginError as E;
    guest_error(match e {
        E::InvalidArgument(m) => G::InvalidArgument(m),
        E::NotFound(m) => G::NotFound(m),
        E::AccessDenied(m) => G::AccessDenied(m),
        E::ResourceExhausted(m) => G::ResourceExhausted(m),
        E::Unsupported(m) => G::Unsupported(m),
        E::Internal(m) => G::Internal(m),
    })
}
