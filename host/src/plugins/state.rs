//! The data of one plugin store: WASI context limited to the effective capabilities, resource
//! table, memory limiter, hostcall budget, and the host side of the atrium imports.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Store};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::http::HttpGrant;
use super::manifest::Effective;
use super::v0_1::storage::atrium::plugin::{config, log, secrets, types};
use super::{Kind, RuntimeError};

/// Host calls a store may make before it is cut off (guards against a guest spinning on cheap
/// host calls, which epoch deadlines alone would let it do for the whole deadline).
pub const HOSTCALL_BUDGET: u64 = 1_000_000;

/// Most entries (open files, streams, resources) a guest may hold at once.
pub const MAX_TABLE_ENTRIES: usize = 10_000;

/// Where a plugin instance's log lines are attributed.
#[derive(Debug, Clone, Default)]
pub struct LogTags {
    /// Workspace name.
    pub workspace: String,
    /// Component name.
    pub component: String,
    /// Component version.
    pub version: String,
}

/// Secrets resolved for a store: only names both requested and granted are present.
pub type SecretValues = BTreeMap<String, crate::secrets::SecretString>;

/// The `T` of every plugin `Store<T>`.
pub struct PluginState {
    wasi: WasiCtx,
    table: ResourceTable,
    http_ctx: WasiHttpCtx,
    http: HttpGrant,
    limiter: MemoryLimiter,
    hostcalls: u64,
    config: Arc<BTreeMap<String, String>>,
    secrets: Arc<SecretValues>,
    tags: Arc<LogTags>,
    scoring: Option<super::scorer::ScoringCtx>,
}

/// Caps linear memory and remembers whether the cap was hit (to explain the trap).
pub struct MemoryLimiter {
    cap: usize,
    /// Set when a growth beyond the cap was refused.
    pub exceeded: bool,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.cap {
            self.exceeded = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// Everything a store is built from.
#[derive(Clone)]
pub struct StoreSpec {
    /// The plugin kind.
    pub kind: Kind,
    /// Effective capabilities.
    pub effective: Arc<Effective>,
    /// Resolved secrets (granted and requested only).
    pub secrets: Arc<SecretValues>,
    /// Memory cap in bytes.
    pub memory: u64,
    /// Log attribution.
    pub tags: Arc<LogTags>,
}

impl PluginState {
    /// A fresh state: no environment, no sockets, no ambient filesystem; only the effective
    /// preopens; stdout/stderr discarded (plugins log through `log`).
    pub fn new(spec: &StoreSpec) -> Result<Self, RuntimeError> {
        Self::build(spec, None)
    }

    /// A fresh state whose stdout and stderr go to `output` (scorers keep the tail to explain
    /// a crash).
    pub fn new_with_output(
        spec: &StoreSpec,
        output: super::scorer::TailPipe,
    ) -> Result<Self, RuntimeError> {
        Self::build(spec, Some(output))
    }

    fn build(
        spec: &StoreSpec,
        output: Option<super::scorer::TailPipe>,
    ) -> Result<Self, RuntimeError> {
        let mut b = WasiCtxBuilder::new();
        if let Some(out) = output {
            b.stdout(out.clone()).stderr(out);
        }
        b.allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        // plugin calls run on blocking threads: do file I/O in place, not via spawn_blocking
        b.allow_blocking_current_thread(true);
        for (host, guest, write) in &spec.effective.dirs {
            let perms = if *write {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            b.preopened_dir(host, guest, perms)
                .map_err(|e| RuntimeError::Grant(format!("cannot mount {host} at {guest}: {e}")))?;
        }
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_TABLE_ENTRIES);
        Ok(Self {
            wasi: b.build(),
            table,
            http_ctx: WasiHttpCtx::new(),
            http: HttpGrant::new(
                if spec.kind.may_use_http() {
                    spec.effective.http.clone()
                } else {
                    Vec::new()
                },
                spec.effective.http_private,
            ),
            limiter: MemoryLimiter {
                cap: spec.memory as usize,
                exceeded: false,
            },
            hostcalls: HOSTCALL_BUDGET,
            config: Arc::new(spec.effective.config.clone()),
            secrets: spec.secrets.clone(),
            tags: spec.tags.clone(),
            scoring: None,
        })
    }

    /// A store around this state with its limiter installed.
    pub fn into_store(self, engine: &wasmtime::Engine) -> Store<PluginState> {
        let mut store = Store::new(engine, self);
        store.limiter(|s| &mut s.limiter);
        store
    }

    /// Whether the memory cap was hit.
    pub fn memory_exceeded(&self) -> bool {
        self.limiter.exceeded
    }

    /// Whether the hostcall budget ran out.
    pub fn hostcalls_exhausted(&self) -> bool {
        self.hostcalls == 0
    }

    /// Serves a deployment's model to this store and adds the deployment's config keys.
    pub fn set_scoring(
        &mut self,
        ctx: super::scorer::ScoringCtx,
        extra: Arc<BTreeMap<String, String>>,
    ) {
        if !extra.is_empty() {
            let mut merged = (*self.config).clone();
            merged.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
            self.config = Arc::new(merged);
        }
        self.scoring = Some(ctx);
    }

    pub(crate) fn scoring_mut(&mut self) -> Option<&mut super::scorer::ScoringCtx> {
        self.scoring.as_mut()
    }

    pub(crate) fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }

    /// Gives a long-lived store a fresh hostcall budget (scorers: once per request).
    pub fn refill_hostcalls(&mut self) {
        self.hostcalls = HOSTCALL_BUDGET;
    }

    pub(crate) fn charge(&mut self) -> wasmtime::Result<()> {
        if self.hostcalls == 0 {
            return Err(wasmtime::Error::msg("hostcall budget exhausted"));
        }
        self.hostcalls -= 1;
        Ok(())
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for PluginState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http_ctx,
            table: &mut self.table,
            hooks: &mut self.http,
        }
    }
}

impl types::Host for PluginState {}

impl log::Host for PluginState {
    fn log(&mut self, level: log::Level, msg: String) -> wasmtime::Result<()> {
        self.charge()?;
        let msg: String = msg.chars().take(4096).collect();
        let t = &self.tags;
        let (ws, comp, ver) = (
            t.workspace.as_str(),
            t.component.as_str(),
            t.version.as_str(),
        );
        match level {
            log::Level::Trace => {
                tracing::trace!(target: "plugin", workspace = ws, component = comp, version = ver, "{msg}")
            }
            log::Level::Debug => {
                tracing::debug!(target: "plugin", workspace = ws, component = comp, version = ver, "{msg}")
            }
            log::Level::Info => {
                tracing::info!(target: "plugin", workspace = ws, component = comp, version = ver, "{msg}")
            }
            log::Level::Warn => {
                tracing::warn!(target: "plugin", workspace = ws, component = comp, version = ver, "{msg}")
            }
            log::Level::Error => {
                tracing::error!(target: "plugin", workspace = ws, component = comp, version = ver, "{msg}")
            }
        }
        Ok(())
    }
}

impl config::Host for PluginState {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        self.charge()?;
        Ok(self.config.get(&key).cloned())
    }
}

impl secrets::Host for PluginState {
    fn get(&mut self, name: String) -> wasmtime::Result<Result<String, types::PluginError>> {
        self.charge()?;
        Ok(match self.secrets.get(&name) {
            Some(v) => Ok(v.expose().to_owned()),
            None => {
                tracing::warn!(
                    target: "plugin",
                    workspace = self.tags.workspace.as_str(),
                    component = self.tags.component.as_str(),
                    secret = name.as_str(),
                    "secret denied: not requested by the manifest or not granted"
                );
                Err(types::PluginError::AccessDenied(format!(
                    "secret '{name}' is not granted to this component"
                )))
            }
        })
    }
}

/// The 0.2 imports: the same services under the 0.2 package's names.
mod v0_2_imports {
    use super::PluginState;
    use crate::plugins::v0_2::target::atrium::plugin::{config, log, secrets, types};

    fn level(l: log::Level) -> super::log::Level {
        match l {
            log::Level::Trace => super::log::Level::Trace,
            log::Level::Debug => super::log::Level::Debug,
            log::Level::Info => super::log::Level::Info,
            log::Level::Warn => super::log::Level::Warn,
            log::Level::Error => super::log::Level::Error,
        }
    }

    fn plugin_error(e: super::types::PluginError) -> types::PluginError {
        use super::types::PluginError as E;
        match e {
            E::InvalidArgument(m) => types::PluginError::InvalidArgument(m),
            E::NotFound(m) => types::PluginError::NotFound(m),
            E::AccessDenied(m) => types::PluginError::AccessDenied(m),
            E::ResourceExhausted(m) => types::PluginError::ResourceExhausted(m),
            E::Unsupported(m) => types::PluginError::Unsupported(m),
            E::Internal(m) => types::PluginError::Internal(m),
        }
    }

    impl types::Host for PluginState {}

    impl log::Host for PluginState {
        fn log(&mut self, l: log::Level, msg: String) -> wasmtime::Result<()> {
            super::log::Host::log(self, level(l), msg)
        }
    }

    impl config::Host for PluginState {
        fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
            super::config::Host::get(self, key)
        }
    }

    impl secrets::Host for PluginState {
        fn get(&mut self, name: String) -> wasmtime::Result<Result<String, types::PluginError>> {
            super::secrets::Host::get(self, name).map(|r| r.map_err(plugin_error))
        }
    }
}
