//! Datastores: where artifact bytes live, content-addressed by sha256.
//!
//! The host talks to a datastore only through [`BlobStore`]. Every datastore is an instance of
//! a storage plugin (a sandboxed component) with operator grants: the workspace's default one
//! is the built-in `storage-fs` on a directory under the data directory.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::plugins::engine::MAX_MEMORY;
use crate::plugins::storage::PluginBlobStore;
use crate::plugins::{Effective, Grants, Kind, Loader, LogTags, Manifest, SecretValues, StoreSpec};
use crate::store::Datastore;
use crate::workspace::DomainError;

/// Errors of a datastore backend.
#[derive(Debug, thiserror::Error)]
pub enum DatastoreError {
    /// The blob is not in the store.
    #[error("blob {0} is missing from the datastore")]
    Missing(String),
    /// The datastore's configuration is unusable.
    #[error("datastore configuration: {0}")]
    Config(String),
    /// The backend failed.
    #[error("datastore i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The storage plugin failed (deadline, memory cap, crash, or its own error).
    #[error("{0}")]
    Plugin(String),
}

impl From<DatastoreError> for DomainError {
    fn from(e: DatastoreError) -> Self {
        tracing::error!(error = %e, "datastore error");
        match e {
            DatastoreError::Plugin(m) => DomainError::Plugin(m),
            other => DomainError::Internal(other.to_string()),
        }
    }
}

/// Size and content hash of a stored blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMeta {
    /// sha256, lower-case hex.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
}

/// A blob being written: bytes go to a temporary object that becomes visible under its
/// digest only when [`BlobWriter::finish`] succeeds. Dropping the writer discards it.
pub trait BlobWriter: Send {
    /// Appends bytes.
    fn write(&mut self, chunk: &[u8]) -> Result<(), DatastoreError>;
    /// The sha256 (lower-case hex) of the bytes written so far: the blob's digest once
    /// finished.
    fn digest(&self) -> String;
    /// Hashes, makes the blob durable and visible; identical content is stored once.
    fn finish(self: Box<Self>) -> Result<BlobMeta, DatastoreError>;
}

/// A content-addressed blob store.
pub trait BlobStore: Send + Sync {
    /// Starts writing a new blob.
    fn writer(&self) -> Result<Box<dyn BlobWriter>, DatastoreError>;
    /// Opens a blob for reading.
    fn open(&self, digest: &str) -> Result<Box<dyn Read + Send>, DatastoreError>;
    /// Opens a blob for reading from byte `offset` (a ranged read; by default the bytes before
    /// it are read and dropped).
    fn open_at(&self, digest: &str, offset: u64) -> Result<Box<dyn Read + Send>, DatastoreError> {
        let mut r = self.open(digest)?;
        std::io::copy(&mut (&mut r).take(offset), &mut std::io::sink())?;
        Ok(r)
    }
    /// Size of a blob, if present.
    fn stat(&self, digest: &str) -> Result<Option<u64>, DatastoreError>;
    /// Removes a blob; returns the bytes freed (0 when absent).
    fn delete(&self, digest: &str) -> Result<u64, DatastoreError>;
    /// Every blob digest in the store.
    fn digests(&self) -> Result<Vec<String>, DatastoreError>;
    /// Removes leftovers of interrupted writes; returns how many.
    fn clean_temporary(&self) -> Result<usize, DatastoreError>;
}

/// The stored configuration of a plugin datastore.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PluginDatastore {
    /// Registry name of the storage component.
    pub component: String,
    /// Its version.
    pub version: String,
    /// Its sha256 (what actually runs).
    pub digest: String,
    /// Its manifest (what it asked for).
    pub manifest: Manifest,
    /// What the operator granted this datastore. Relative directories are under the data
    /// directory's `datastores/`.
    pub grants: Grants,
}

/// How long an open datastore that reads secrets keeps the values it was opened with before it
/// is reopened (replicas sharing PostgreSQL see a replaced secret within this time; on this
/// host a replacement reopens it at once).
const SECRET_REFRESH: Duration = Duration::from_secs(60);

/// An open backend with what it was opened with.
struct OpenStore {
    store: Arc<dyn BlobStore>,
    workspace: String,
    secrets: Vec<String>,
    at: Instant,
}

/// Opens datastore backends from their rows, once each.
pub struct Datastores {
    data_dir: PathBuf,
    loader: Arc<Loader>,
    open: Mutex<HashMap<i64, OpenStore>>,
    /// Bumped whenever a secret changes, so a backend opened with values resolved before the
    /// change is not cached.
    secrets_epoch: AtomicU64,
}

impl Datastores {
    /// Backends rooted under the host's data directory, served by plugins from `loader`.
    pub fn new(data_dir: PathBuf, loader: Arc<Loader>) -> Self {
        Self {
            data_dir,
            loader,
            open: Mutex::new(HashMap::new()),
            secrets_epoch: AtomicU64::new(0),
        }
    }

    /// The plugin loader.
    pub fn loader(&self) -> &Arc<Loader> {
        &self.loader
    }

    /// A new directory name for a datastore's files (under `datastores/`).
    pub fn new_dir_name() -> String {
        format!("datastores/{}", uuid::Uuid::new_v4().simple())
    }

    fn resolve_dir(&self, dir: &str) -> Result<PathBuf, DatastoreError> {
        let rel = Path::new(dir);
        if rel.is_absolute() {
            return Err(DatastoreError::Config(format!(
                "datastore directory '{dir}' must be relative to the data directory"
            )));
        }
        if rel
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
            || !dir.starts_with("datastores/")
        {
            return Err(DatastoreError::Config(format!(
                "datastore directory '{dir}' must be below datastores/"
            )));
        }
        Ok(self.data_dir.join(rel))
    }

    /// The open backend of a datastore row, unless it must be (re)opened.
    pub fn cached(&self, ds: &Datastore) -> Option<Arc<dyn BlobStore>> {
        let open = self.open.lock().expect("datastore cache lock");
        let o = open.get(&ds.id)?;
        (o.secrets.is_empty() || o.at.elapsed() < SECRET_REFRESH).then(|| o.store.clone())
    }

    fn config_of(ds: &Datastore) -> Result<PluginDatastore, DatastoreError> {
        if ds.kind != "plugin" {
            return Err(DatastoreError::Config(format!(
                "unknown datastore kind '{}'",
                ds.kind
            )));
        }
        serde_json::from_value(ds.config.clone())
            .map_err(|e| DatastoreError::Config(format!("datastore '{}': {e}", ds.name)))
    }

    /// The secret names a datastore's component reads: requested by its manifest and granted.
    pub fn secret_names(&self, ds: &Datastore) -> Result<Vec<String>, DatastoreError> {
        let cfg = Self::config_of(ds)?;
        Ok(Effective::of(&cfg.manifest, &cfg.grants).secrets)
    }

    /// The current secrets epoch: read it before resolving the values passed to [`Self::open`].
    pub fn secrets_epoch(&self) -> u64 {
        self.secrets_epoch.load(Ordering::SeqCst)
    }

    /// Forgets open backends of `workspace` that read secret `name` (after it changed).
    pub fn forget_secret_users(&self, workspace: &str, name: &str) {
        self.secrets_epoch.fetch_add(1, Ordering::SeqCst);
        self.open
            .lock()
            .expect("datastore cache lock")
            .retain(|_, o| !(o.workspace == workspace && o.secrets.iter().any(|s| s == name)));
    }

    /// Forgets open backends of any workspace that read secret `name` (every backend that reads
    /// a secret with `None`): after a change another replica announced.
    pub fn forget_secret_anywhere(&self, name: Option<&str>) {
        self.secrets_epoch.fetch_add(1, Ordering::SeqCst);
        self.open
            .lock()
            .expect("datastore cache lock")
            .retain(|_, o| match name {
                Some(n) => !o.secrets.iter().any(|s| s == n),
                None => o.secrets.is_empty(),
            });
    }

    /// Opens the backend of a datastore row with its resolved secrets (the values of
    /// [`Self::secret_names`]); `epoch` is [`Self::secrets_epoch`] from before they were
    /// resolved. The backend is cached unless a secret changed since.
    pub fn open(
        &self,
        ds: &Datastore,
        secrets: SecretValues,
        epoch: u64,
    ) -> Result<Arc<dyn BlobStore>, DatastoreError> {
        let cfg = Self::config_of(ds)?;
        let mut grants = cfg.grants.clone();
        for host in grants.dirs.values_mut() {
            let abs = self.resolve_dir(host)?;
            std::fs::create_dir_all(&abs)?;
            *host = abs.display().to_string();
        }
        let kind = cfg.manifest.kind;
        if kind != Kind::Storage {
            return Err(DatastoreError::Config(format!(
                "{}@{} is a {kind} plugin",
                cfg.component, cfg.version
            )));
        }
        let memory = cfg
            .manifest
            .limits
            .memory_mb
            .map(|m| m << 20)
            .unwrap_or(kind.default_memory())
            .min(MAX_MEMORY);
        let deadline = cfg
            .manifest
            .limits
            .timeout_ms
            .map(Duration::from_millis)
            .unwrap_or(kind.default_deadline())
            .min(Duration::from_secs(120));
        let effective = Effective::of(&cfg.manifest, &grants);
        // only names the manifest requests and the operator granted ever reach the plugin
        let mut secrets = secrets;
        secrets.retain(|name, _| effective.secrets.contains(name));
        let spec = StoreSpec {
            kind,
            effective: Arc::new(effective),
            secrets: Arc::new(secrets),
            memory,
            tags: Arc::new(LogTags {
                workspace: ds.workspace.clone(),
                component: cfg.component.clone(),
                version: cfg.version.clone(),
            }),
        };
        let names: Vec<String> = spec.secrets.keys().cloned().collect();
        let store: Arc<dyn BlobStore> = Arc::new(PluginBlobStore::new(
            self.loader.clone(),
            cfg.digest,
            spec,
            deadline,
        ));
        let mut open = self.open.lock().expect("datastore cache lock");
        if self.secrets_epoch() == epoch {
            open.insert(
                ds.id,
                OpenStore {
                    store: store.clone(),
                    workspace: ds.workspace.clone(),
                    secrets: names,
                    at: Instant::now(),
                },
            );
        }
        Ok(store)
    }

    /// Removes a datastore's own files (after its workspace or the datastore was deleted).
    pub fn destroy(&self, ds: &Datastore) -> Result<(), DatastoreError> {
        self.open
            .lock()
            .expect("datastore cache lock")
            .remove(&ds.id);
        if let Ok(cfg) = serde_json::from_value::<PluginDatastore>(ds.config.clone()) {
            for dir in cfg.grants.dirs.values() {
                let path = self.resolve_dir(dir)?;
                if path.exists() {
                    std::fs::remove_dir_all(path)?;
                }
            }
        }
        Ok(())
    }
}
