//! Datastores: where artifact bytes live, content-addressed by sha256.
//!
//! The host talks to a datastore only through [`BlobStore`], so that storage plugins can
//! replace the local filesystem backend without touching the tracking code.

mod local;

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub use local::LocalBlobStore;

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
}

impl From<DatastoreError> for DomainError {
    fn from(e: DatastoreError) -> Self {
        tracing::error!(error = %e, "datastore error");
        DomainError::Internal(e.to_string())
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

/// Opens datastore backends from their rows, once each.
pub struct Datastores {
    data_dir: PathBuf,
    open: Mutex<HashMap<i64, Arc<dyn BlobStore>>>,
}

impl Datastores {
    /// Backends rooted under the host's data directory.
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// The configuration of a new workspace's default datastore.
    pub fn new_default_config() -> serde_json::Value {
        serde_json::json!({ "dir": format!("datastores/{}", uuid::Uuid::new_v4().simple()) })
    }

    /// The backend of a datastore row.
    pub fn get(&self, ds: &Datastore) -> Result<Arc<dyn BlobStore>, DatastoreError> {
        let mut open = self.open.lock().expect("datastore cache lock");
        if let Some(s) = open.get(&ds.id) {
            return Ok(s.clone());
        }
        let store: Arc<dyn BlobStore> = match ds.kind.as_str() {
            "local" => Arc::new(LocalBlobStore::open(&self.local_root(ds)?)?),
            other => {
                return Err(DatastoreError::Config(format!(
                    "unknown datastore kind '{other}'"
                )));
            }
        };
        open.insert(ds.id, store.clone());
        Ok(store)
    }

    /// Removes a datastore's bytes (after its workspace was deleted).
    pub fn destroy(&self, ds: &Datastore) -> Result<(), DatastoreError> {
        self.open
            .lock()
            .expect("datastore cache lock")
            .remove(&ds.id);
        if ds.kind == "local" {
            let root = self.local_root(ds)?;
            if root.exists() {
                std::fs::remove_dir_all(root)?;
            }
        }
        Ok(())
    }

    fn local_root(&self, ds: &Datastore) -> Result<PathBuf, DatastoreError> {
        let dir = ds
            .config
            .get("dir")
            .and_then(|d| d.as_str())
            .ok_or_else(|| {
                DatastoreError::Config(format!("datastore '{}' has no 'dir'", ds.name))
            })?;
        let rel = std::path::Path::new(dir);
        if rel.is_absolute()
            || rel
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(DatastoreError::Config(format!(
                "datastore dir '{dir}' must be relative"
            )));
        }
        Ok(self.data_dir.join(rel))
    }
}
