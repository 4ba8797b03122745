//! Datastores: where artifact bytes live, content-addressed by sha256.
//!
//! The host talks to a datastore only through [`BlobStore`]. Every datastore is an instance of
//! a storage plugin (a sandboxed component) with operator grants: the workspace's default one
//! is the built-in `storage-fs` on a directory under the data directory.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::plugins::engine::MAX_MEMORY;
use crate::plugins::storage::PluginBlobStore;
use crate::plugins::{Effective, Grants, Kind, Loader, LogTags, Manifest, StoreSpec};
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
    /// Hashes, makes the blob durable and visible; identical content is stored once.
    fn finish(self: Box<Self>) -> Result<BlobMeta, DatastoreError>;
}

/// A content-addressed blob store.
pub trait BlobStore: Send + Sync {
    /// Starts writing a new blob.
    fn writer(&self) -> Result<Box<dyn BlobWriter>, DatastoreError>;
    /// Opens a blob for reading.
    fn open(&self, digest: &str) -> Result<Box<dyn Read + Send>, DatastoreError>;
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

/// Opens datastore backends from their rows, once each.
pub struct Datastores {
    data_dir: PathBuf,
    loader: Arc<Loader>,
    open: Mutex<HashMap<i64, Arc<dyn BlobStore>>>,
}

impl Datastores {
    /// Backends rooted under the host's data directory, served by plugins from `loader`.
    pub fn new(data_dir: PathBuf, loader: Arc<Loader>) -> Self {
        Self {
            data_dir,
            loader,
            open: Mutex::new(HashMap::new()),
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

    /// The backend of a datastore row.
    pub fn get(&self, ds: &Datastore) -> Result<Arc<dyn BlobStore>, DatastoreError> {
        if let Some(s) = self.open.lock().expect("datastore cache lock").get(&ds.id) {
            return Ok(s.clone());
        }
        if ds.kind != "plugin" {
            return Err(DatastoreError::Config(format!(
                "unknown datastore kind '{}'",
                ds.kind
            )));
        }
        let cfg: PluginDatastore = serde_json::from_value(ds.config.clone())
            .map_err(|e| DatastoreError::Config(format!("datastore '{}': {e}", ds.name)))?;
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
        let spec = StoreSpec {
            kind,
            effective: Arc::new(Effective::of(&cfg.manifest, &grants)),
            // the secret store arrives with access control; until then no secret resolves
            secrets: Arc::new(Default::default()),
            memory,
            tags: Arc::new(LogTags {
                workspace: ds.workspace.clone(),
                component: cfg.component.clone(),
                version: cfg.version.clone(),
            }),
        };
        let store: Arc<dyn BlobStore> = Arc::new(PluginBlobStore::new(
            self.loader.clone(),
            cfg.digest,
            spec,
            deadline,
        ));
        self.open
            .lock()
            .expect("datastore cache lock")
            .insert(ds.id, store.clone());
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
