//! Loading components: validation of uploads, the precompiled cache, and the per-(digest, kind)
//! cache of pre-instantiated components, so that the request path only instantiates.
//!
//! Precompiled forms live in the data directory's `plugins/cache/`, and the built-ins' also in
//! a per-user cache shared by every data directory (see [`SharedCache`]), so that a fresh data
//! directory does not compile them again. Both are keyed by the component's sha256 and the
//! engine's compatibility hash, and hold only files this host code compiled and wrote atomically.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};

use super::engine::PluginEngine;
use super::manifest::MAX_COMPONENT_BYTES;
use super::state::PluginState;
use super::v0_1::{self, sampler, scorer, stopper, storage, target};
use super::v0_2;
use super::{Kind, RuntimeError};

/// Longest a compilation may take.
pub const COMPILE_TIMEOUT: Duration = Duration::from_secs(60);

/// A component pre-instantiated for the world of its kind.
pub enum KindPre {
    /// `storage-plugin`.
    Storage(storage::StoragePluginPre<PluginState>),
    /// `scorer-plugin`.
    Scorer(scorer::ScorerPluginPre<PluginState>),
    /// `sampler-plugin`.
    Sampler(sampler::SamplerPluginPre<PluginState>),
    /// `stopper-plugin` of 0.1 (the whole history in every call).
    Stopper(stopper::StopperPluginPre<PluginState>),
    /// `early-stop-plugin` of 0.2 (an incremental policy instance).
    Stopper2(v0_2::stopper::EarlyStopPluginPre<PluginState>),
    /// `target-plugin` of 0.1.
    Target(target::TargetPluginPre<PluginState>),
    /// `compute-target-plugin` of 0.2 (around the worker).
    Target2(v0_2::target::ComputeTargetPluginPre<PluginState>),
}

/// What validation learned about an upload.
pub struct Validated {
    /// sha256 of the bytes.
    pub digest: String,
    /// The API version the component embeds, if it was built with the SDK.
    pub api_version: Option<String>,
    /// The compiled component.
    pub component: Component,
}

/// Loads, validates and caches components.
pub struct Loader {
    engine: Arc<PluginEngine>,
    dir: PathBuf,
    shared: Option<SharedCache>,
    linkers: HashMap<Kind, Linker<PluginState>>,
    pres: Mutex<HashMap<(String, Kind), Arc<KindPre>>>,
}

/// A per-user directory of precompiled built-in components, shared by data directories
/// (`$ATRIUM_CACHE_DIR`, default `$XDG_CACHE_HOME/atrium` or `~/.cache/atrium`).
#[derive(Debug, Clone)]
pub struct SharedCache {
    dir: PathBuf,
}

impl SharedCache {
    /// Opens (creating with mode 0700) `root/plugins`; refuses a directory another user owns
    /// or others may write to, since its files are loaded as machine code.
    pub fn open(root: &Path) -> Result<Self, RuntimeError> {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt};
        let dir = root.join("plugins");
        let io = |e: std::io::Error| RuntimeError::Internal(format!("{}: {e}", dir.display()));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io)?;
        for d in [root, dir.as_path()] {
            let m = std::fs::metadata(d).map_err(io)?;
            // SAFETY: geteuid has no preconditions.
            let me = unsafe { libc::geteuid() };
            if m.uid() != me || m.mode() & 0o022 != 0 {
                return Err(RuntimeError::Internal(format!(
                    "{} is not a private directory of this user (owner uid {}, mode {:o}): not using it",
                    d.display(),
                    m.uid(),
                    m.mode() & 0o777
                )));
            }
        }
        Ok(Self { dir })
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// sha256 hex of bytes.
pub fn digest_of(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn linker(engine: &wasmtime::Engine, kind: Kind) -> Result<Linker<PluginState>, wasmtime::Error> {
    let mut l = Linker::<PluginState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut l)?;
    if kind.may_use_http() {
        wasmtime_wasi_http::p2::add_only_http_to_linker_sync(&mut l)?;
    }
    let types = storage::atrium::plugin::types::add_to_linker::<_, HasSelf<PluginState>>;
    let log = storage::atrium::plugin::log::add_to_linker::<_, HasSelf<PluginState>>;
    let config = storage::atrium::plugin::config::add_to_linker::<_, HasSelf<PluginState>>;
    let secrets = storage::atrium::plugin::secrets::add_to_linker::<_, HasSelf<PluginState>>;
    types(&mut l, |s| s)?;
    log(&mut l, |s| s)?;
    match kind {
        Kind::Storage | Kind::Target => {
            config(&mut l, |s| s)?;
            secrets(&mut l, |s| s)?;
        }
        Kind::Scorer => {
            config(&mut l, |s| s)?;
            scorer::atrium::plugin::tensors::add_to_linker::<_, HasSelf<PluginState>>(
                &mut l,
                |s| s,
            )?;
            scorer::atrium::plugin::models::add_to_linker::<_, HasSelf<PluginState>>(
                &mut l,
                |s| s,
            )?;
        }
        Kind::Sampler | Kind::Stopper => {}
    }
    // the 0.2 package's interfaces, for the kinds whose world 0.2 changed
    if matches!(kind, Kind::Stopper | Kind::Target) {
        use v0_2::target::atrium::plugin as p2;
        p2::types::add_to_linker::<_, HasSelf<PluginState>>(&mut l, |s| s)?;
        p2::log::add_to_linker::<_, HasSelf<PluginState>>(&mut l, |s| s)?;
        if kind == Kind::Target {
            p2::config::add_to_linker::<_, HasSelf<PluginState>>(&mut l, |s| s)?;
            p2::secrets::add_to_linker::<_, HasSelf<PluginState>>(&mut l, |s| s)?;
        }
    }
    Ok(l)
}

/// The API version a component embeds (custom section `atrium:api-version`, found in any nested
/// core module), if any.
pub fn api_version(bytes: &[u8]) -> Option<String> {
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        if let Ok(wasmparser::Payload::CustomSection(c)) = payload
            && c.name() == "atrium:api-version"
        {
            return Some(
                String::from_utf8_lossy(c.data())
                    .trim_end_matches('\0')
                    .to_string(),
            );
        }
    }
    None
}

/// The plugin API versions this host serves, oldest first.
pub const SERVED_API_VERSIONS: [&str; 2] = [v0_1::API_VERSION, v0_2::API_VERSION];

/// Refuses API versions this host cannot serve (it serves 0.1.x and 0.2.x).
pub fn check_api_version(found: &str) -> Result<(), RuntimeError> {
    let major_minor = |v: &str| v.split('.').take(2).collect::<Vec<_>>().join(".");
    if SERVED_API_VERSIONS
        .iter()
        .any(|v| major_minor(found) == major_minor(v))
    {
        Ok(())
    } else {
        Err(RuntimeError::ApiVersion {
            found: found.to_string(),
            served: SERVED_API_VERSIONS.join(" and "),
        })
    }
}

impl Loader {
    /// A loader keeping components and the compiled cache under `dir`.
    pub fn new(engine: Arc<PluginEngine>, dir: &Path) -> Result<Self, RuntimeError> {
        for sub in ["components", "cache"] {
            std::fs::create_dir_all(dir.join(sub))
                .map_err(|e| RuntimeError::Internal(format!("{}: {e}", dir.display())))?;
        }
        let mut linkers = HashMap::new();
        for kind in super::kind::ALL_KINDS {
            linkers.insert(
                kind,
                linker(engine.engine(), kind)
                    .map_err(|e| RuntimeError::Internal(format!("linker: {e}")))?,
            );
        }
        Ok(Self {
            engine,
            dir: dir.to_path_buf(),
            shared: None,
            linkers,
            pres: Mutex::new(HashMap::new()),
        })
    }

    /// Also keeps the built-ins' precompiled forms in (and loads them from) a shared cache.
    pub fn with_shared_cache(mut self, cache: Option<SharedCache>) -> Self {
        self.shared = cache;
        self
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<PluginEngine> {
        &self.engine
    }

    /// Validates an upload for `kind`: a component (not a core module, not garbage), within the
    /// size limit, of an API version this host serves, importing only what the kind may import,
    /// exporting the kind's world. Compiles it (with a time cap).
    pub fn validate(&self, bytes: &[u8], kind: Kind) -> Result<Validated, RuntimeError> {
        self.validate_with(bytes, kind, false)
    }

    /// [`Self::validate`] for a built-in component: its compiled form comes from the shared
    /// cache when there (and goes there when compiled).
    pub fn validate_builtin(&self, bytes: &[u8], kind: Kind) -> Result<Validated, RuntimeError> {
        self.validate_with(bytes, kind, true)
    }

    /// Whether preparing a built-in compiles nothing: the data directory keeps it (with its
    /// compiled form), or the shared cache has its compiled form.
    pub fn builtin_is_compiled(&self, digest: &str) -> bool {
        self.has(digest) || self.shared_path(digest).is_some_and(|p| p.exists())
    }

    fn validate_with(
        &self,
        bytes: &[u8],
        kind: Kind,
        builtin: bool,
    ) -> Result<Validated, RuntimeError> {
        if bytes.len() > MAX_COMPONENT_BYTES {
            return Err(RuntimeError::TooLarge {
                size: bytes.len(),
                limit: MAX_COMPONENT_BYTES,
            });
        }
        if !wasmparser::Parser::is_component(bytes) {
            return Err(if wasmparser::Parser::is_core_wasm(bytes) {
                RuntimeError::NotAComponent(
                    "this is a core WebAssembly module, not a component: build the plugin for wasm32-wasip2 \
                     (cargo build --release --target wasm32-wasip2)"
                        .into(),
                )
            } else {
                RuntimeError::NotAComponent("this is not WebAssembly (no component header)".into())
            });
        }
        let api_version = api_version(bytes);
        if let Some(v) = &api_version {
            check_api_version(v)?;
        }
        let component = if builtin {
            self.compile_shared(bytes)?
        } else {
            self.compile(bytes)?
        };
        let engine = self.engine.engine();
        let ty = component.component_type();
        let mut forbidden: Vec<String> = ty
            .imports(engine)
            .map(|(n, _)| n.to_string())
            .filter(|n| !kind.allows_import(n))
            .collect();
        if !forbidden.is_empty() {
            forbidden.sort();
            return Err(RuntimeError::ForbiddenImport {
                kind,
                imports: forbidden,
            });
        }
        let exports: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_string()).collect();
        if !exports.iter().any(|e| kind.exports().contains(&e.as_str())) {
            return Err(RuntimeError::WrongWorld {
                kind,
                detail: format!(
                    "it does not export {} (it exports: {})",
                    kind.exports().join(" or "),
                    exports.join(", ")
                ),
            });
        }
        self.instantiate_pre(&component, kind)?;
        Ok(Validated {
            digest: digest_of(bytes),
            api_version,
            component,
        })
    }

    fn compile(&self, bytes: &[u8]) -> Result<Component, RuntimeError> {
        let engine = self.engine.engine().clone();
        let bytes = bytes.to_vec();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("wasm-compile".into())
            .spawn(move || {
                let _ = tx.send(Component::from_binary(&engine, &bytes));
            })
            .map_err(|e| {
                RuntimeError::Internal(format!("cannot start the compiler thread: {e}"))
            })?;
        match rx.recv_timeout(COMPILE_TIMEOUT) {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(RuntimeError::Invalid(format!(
                "the component does not compile: {e:#}"
            ))),
            Err(_) => Err(RuntimeError::Invalid(format!(
                "compiling the component took longer than {} s",
                COMPILE_TIMEOUT.as_secs()
            ))),
        }
    }

    /// Compiles a built-in, or loads what an earlier compile left in the shared cache.
    fn compile_shared(&self, bytes: &[u8]) -> Result<Component, RuntimeError> {
        let Some(path) = self.shared_path(&digest_of(bytes)) else {
            return self.compile(bytes);
        };
        if path.exists() {
            // SAFETY: the shared cache is a private directory of this user (checked when
            // opened) that only `compile_shared` writes, atomically, with what this engine
            // configuration compiled; the name carries the source's sha256 and the engine's
            // compatibility hash, and wasmtime checks the engine settings again on load.
            match unsafe { Component::deserialize_file(self.engine.engine(), &path) } {
                Ok(c) => return Ok(c),
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "unusable precompiled component in the shared cache; compiling again");
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let c = self.compile(bytes)?;
        match c.serialize() {
            Ok(compiled) => {
                if let Err(e) = write_atomic(&path, &compiled) {
                    tracing::warn!(error = %e, "cannot write to the shared plugin cache");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot serialize a compiled component"),
        }
        Ok(c)
    }

    fn shared_path(&self, digest: &str) -> Option<PathBuf> {
        self.shared.as_ref().map(|s| {
            s.dir.join(format!(
                "{digest}-{}.cwasm",
                self.engine.compatibility_key()
            ))
        })
    }

    fn instantiate_pre(&self, component: &Component, kind: Kind) -> Result<KindPre, RuntimeError> {
        let wrong = |e: wasmtime::Error| RuntimeError::WrongWorld {
            kind,
            detail: format!("{e:#}"),
        };
        let base = &self.linkers[&kind];
        let engine = self.engine.engine();
        Ok(match kind {
            Kind::Storage => KindPre::Storage(
                storage::StoragePluginPre::new(base.instantiate_pre(component).map_err(wrong)?)
                    .map_err(wrong)?,
            ),
            Kind::Sampler => KindPre::Sampler(
                sampler::SamplerPluginPre::new(base.instantiate_pre(component).map_err(wrong)?)
                    .map_err(wrong)?,
            ),
            Kind::Stopper if exports_version(component, engine, kind, "0.2.0") => {
                KindPre::Stopper2(
                    v0_2::stopper::EarlyStopPluginPre::new(
                        base.instantiate_pre(component).map_err(wrong)?,
                    )
                    .map_err(wrong)?,
                )
            }
            Kind::Stopper => KindPre::Stopper(
                stopper::StopperPluginPre::new(base.instantiate_pre(component).map_err(wrong)?)
                    .map_err(wrong)?,
            ),
            Kind::Target if exports_version(component, engine, kind, "0.2.0") => KindPre::Target2(
                v0_2::target::ComputeTargetPluginPre::new(
                    base.instantiate_pre(component).map_err(wrong)?,
                )
                .map_err(wrong)?,
            ),
            Kind::Target => KindPre::Target(
                target::TargetPluginPre::new(base.instantiate_pre(component).map_err(wrong)?)
                    .map_err(wrong)?,
            ),
            Kind::Scorer => KindPre::Scorer(
                scorer::ScorerPluginPre::new(base.instantiate_pre(component).map_err(wrong)?)
                    .map_err(wrong)?,
            ),
        })
    }

    fn wasm_path(&self, digest: &str) -> PathBuf {
        self.dir.join("components").join(format!("{digest}.wasm"))
    }

    fn cache_path(&self, digest: &str) -> PathBuf {
        self.dir.join("cache").join(format!(
            "{digest}-{}.cwasm",
            self.engine.compatibility_key()
        ))
    }

    /// Keeps a validated component's bytes and its precompiled form (by digest).
    pub fn keep(&self, bytes: &[u8], v: &Validated) -> Result<(), RuntimeError> {
        write_atomic(&self.wasm_path(&v.digest), bytes)?;
        let compiled = v
            .component
            .serialize()
            .map_err(|e| RuntimeError::Internal(format!("serialize: {e}")))?;
        write_atomic(&self.cache_path(&v.digest), &compiled)
    }

    /// Keeps a component's bytes fetched from elsewhere (another replica uploaded it), checked
    /// against their digest; it is compiled on first use.
    pub fn keep_bytes(&self, digest: &str, bytes: &[u8]) -> Result<(), RuntimeError> {
        if digest_of(bytes) != digest {
            return Err(RuntimeError::Internal(format!(
                "the stored bytes of component {digest} do not match its digest"
            )));
        }
        write_atomic(&self.wasm_path(digest), bytes)
    }

    /// Whether the bytes of a digest are kept.
    pub fn has(&self, digest: &str) -> bool {
        self.wasm_path(digest).exists()
    }

    /// The pre-instantiated component for (digest, kind): from memory, else from the host's own
    /// precompiled cache, else compiled from the kept bytes.
    pub fn pre(&self, digest: &str, kind: Kind) -> Result<Arc<KindPre>, RuntimeError> {
        let key = (digest.to_string(), kind);
        if let Some(p) = self.pres.lock().expect("pre cache").get(&key) {
            return Ok(p.clone());
        }
        let cache = self.cache_path(digest);
        let component = if cache.exists() {
            // SAFETY: only files this host wrote (`keep`), keyed by its engine's compatibility
            // hash, live in the cache directory.
            unsafe { Component::deserialize_file(self.engine.engine(), &cache) }
                .map_err(|e| RuntimeError::Internal(format!("precompiled {digest}: {e}")))?
        } else {
            let bytes = std::fs::read(self.wasm_path(digest)).map_err(|e| {
                RuntimeError::Internal(format!("component {digest} is missing: {e}"))
            })?;
            let c = self.compile(&bytes)?;
            let compiled = c
                .serialize()
                .map_err(|e| RuntimeError::Internal(format!("serialize: {e}")))?;
            write_atomic(&cache, &compiled)?;
            c
        };
        let pre = Arc::new(self.instantiate_pre(&component, kind)?);
        self.pres
            .lock()
            .expect("pre cache")
            .insert(key, pre.clone());
        Ok(pre)
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RuntimeError> {
    use std::io::Write;
    let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
    let io = |e: std::io::Error| RuntimeError::Internal(format!("{}: {e}", path.display()));
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Whether `component` exports its kind's interface of plugin API `version`.
fn exports_version(
    component: &Component,
    engine: &wasmtime::Engine,
    kind: Kind,
    version: &str,
) -> bool {
    let (iface, _) = kind.exports()[0].split_once('@').expect("versioned");
    let wanted = format!("{iface}@{version}");
    component
        .component_type()
        .exports(engine)
        .any(|(n, _)| n == wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions() {
        assert!(check_api_version("0.1.0").is_ok());
        assert!(check_api_version("0.1.7").is_ok());
        assert!(check_api_version("0.2.0").is_ok());
        let e = check_api_version("0.9.0").unwrap_err().to_string();
        assert!(e.contains("0.9.0") && e.contains("0.1.0 and 0.2.0"), "{e}");
    }
}
