//! Datastores served by storage plugins: a [`BlobStore`] whose every operation is a call into
//! a sandboxed `storage-plugin` component.
//!
//! Each operation (or each upload/download, which spans many calls) gets its own store and
//! instance, so a crash or a runaway call never touches other requests. Bulk bytes move in
//! chunks of at most 1 MiB, and every call re-arms the epoch deadline.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::Store;
use wasmtime::component::ResourceAny;

use super::engine::PluginEngine;
use super::loader::{KindPre, Loader};
use super::state::{PluginState, StoreSpec};
use super::v0_1::storage::StoragePlugin;
use super::v0_1::storage::exports::atrium::plugin::storage::ObjectMeta;
use super::{Kind, RuntimeError, call_error, guest_error};
use crate::datastore::{BlobMeta, BlobStore, BlobWriter, DatastoreError};

/// Largest chunk moved per call (the WIT contract's bound).
pub const CHUNK: usize = 1 << 20;

/// Where blobs live inside a datastore: content-addressed names.
pub fn blob_name(digest: &str) -> Result<String, DatastoreError> {
    if digest.len() != 64
        || !digest
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(DatastoreError::Missing(digest.to_string()));
    }
    Ok(format!("sha256/{}/{}", &digest[..2], digest))
}

impl From<RuntimeError> for DatastoreError {
    fn from(e: RuntimeError) -> Self {
        DatastoreError::Plugin(e.to_string())
    }
}

/// A datastore backed by one storage plugin instance configuration.
pub struct PluginBlobStore {
    inner: Arc<Inner>,
}

struct Inner {
    loader: Arc<Loader>,
    digest: String,
    spec: StoreSpec,
    deadline: Duration,
    label: String,
}

/// One live instance with its store.
struct Live {
    store: Store<PluginState>,
    bindings: StoragePlugin,
    deadline: Duration,
    memory: u64,
}

impl Live {
    /// Runs one call under a fresh deadline, explaining traps.
    fn call<R>(
        &mut self,
        f: impl FnOnce(&mut Store<PluginState>, &StoragePlugin) -> wasmtime::Result<R>,
    ) -> Result<R, RuntimeError> {
        self.store
            .set_epoch_deadline(PluginEngine::ticks(self.deadline));
        f(&mut self.store, &self.bindings)
            .map_err(|e| call_error(self.store.data(), e, self.deadline, self.memory))
    }
}

impl PluginBlobStore {
    /// A datastore served by component `digest` with the given store spec.
    pub fn new(loader: Arc<Loader>, digest: String, spec: StoreSpec, deadline: Duration) -> Self {
        let label = format!("{}@{}", spec.tags.component, spec.tags.version);
        Self {
            inner: Arc::new(Inner {
                loader,
                digest,
                spec,
                deadline,
                label,
            }),
        }
    }

    fn err(&self, e: RuntimeError) -> DatastoreError {
        self.inner.err(e)
    }

    fn live(&self) -> Result<Live, RuntimeError> {
        self.inner.live()
    }

    fn stat_name(&self, name: &str) -> Result<Option<ObjectMeta>, DatastoreError> {
        self.inner.stat_name(name)
    }
}

impl Inner {
    fn live(&self) -> Result<Live, RuntimeError> {
        let pre = self.loader.pre(&self.digest, Kind::Storage)?;
        let KindPre::Storage(pre) = pre.as_ref() else {
            return Err(RuntimeError::Internal(format!(
                "{} is not a storage component",
                self.digest
            )));
        };
        let mut store = PluginState::new(&self.spec)?.into_store(self.loader.engine().engine());
        store.set_epoch_deadline(PluginEngine::ticks(self.deadline));
        let bindings = pre
            .instantiate(&mut store)
            .map_err(|e| call_error(store.data(), e, self.deadline, self.spec.memory))?;
        Ok(Live {
            store,
            bindings,
            deadline: self.deadline,
            memory: self.spec.memory,
        })
    }

    fn err(&self, e: RuntimeError) -> DatastoreError {
        DatastoreError::Plugin(format!("storage plugin {}: {e}", self.label))
    }

    fn stat_name(&self, name: &str) -> Result<Option<ObjectMeta>, DatastoreError> {
        let mut live = self.live().map_err(|e| self.err(e))?;
        live.call(|s, b| b.atrium_plugin_storage().call_stat(s, name))
            .map_err(|e| self.err(e))?
            .map_err(|e| self.err(guest_error(e)))
    }
}

/// An upload in progress: the plugin's writer plus the host's hash.
struct PluginWriter {
    owner: Arc<Inner>,
    live: Option<Live>,
    handle: Option<ResourceAny>,
    upload_id: String,
    hasher: Sha256,
    size: u64,
    finished: bool,
}

impl BlobWriter for PluginWriter {
    fn digest(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
    }

    fn write(&mut self, chunk: &[u8]) -> Result<(), DatastoreError> {
        let (Some(live), Some(handle)) = (self.live.as_mut(), self.handle) else {
            return Err(DatastoreError::Plugin("the upload already failed".into()));
        };
        for piece in chunk.chunks(CHUNK) {
            let r = live.call(|s, b| {
                b.atrium_plugin_storage()
                    .writer()
                    .call_write(s, handle, piece)
            });
            match r {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(self.owner.err(guest_error(e))),
                Err(e) => {
                    // the instance is poisoned: forget it (its writer cannot be dropped)
                    self.live = None;
                    self.handle = None;
                    return Err(self.owner.err(e));
                }
            }
        }
        self.hasher.update(chunk);
        self.size += chunk.len() as u64;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<BlobMeta, DatastoreError> {
        let digest = hex::encode(std::mem::take(&mut self.hasher).finalize());
        let name = blob_name(&digest)?;
        let (Some(mut live), Some(handle)) = (self.live.take(), self.handle.take()) else {
            return Err(DatastoreError::Plugin("the upload already failed".into()));
        };
        let meta = live
            .call(|s, b| {
                b.atrium_plugin_storage()
                    .writer()
                    .call_finish(s, handle, &name)
            })
            .map_err(|e| self.owner.err(e))?
            .map_err(|e| self.owner.err(guest_error(e)))?;
        self.finished = true;
        if meta.size != self.size {
            return Err(self.owner.err(RuntimeError::Contract(format!(
                "stored {} bytes of a {}-byte upload",
                meta.size, self.size
            ))));
        }
        Ok(BlobMeta {
            digest,
            size: self.size,
        })
    }
}

impl Drop for PluginWriter {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // Discarding calls into the guest, which must not happen on an async worker thread
        // (WASI blocks on its own runtime): do it on a short-lived thread of its own.
        let (live, handle, owner, id) = (
            self.live.take(),
            self.handle.take(),
            self.owner.clone(),
            self.upload_id.clone(),
        );
        let _ = std::thread::Builder::new()
            .name("discard-upload".into())
            .spawn(move || match (live, handle) {
                // abandoned: dropping the writer discards its temporary object
                (Some(mut live), Some(handle)) => {
                    if let Err(e) = live.call(|s, _| handle.resource_drop(s)) {
                        tracing::warn!(error = %e, "discarding an unfinished upload failed");
                    }
                }
                // the instance crashed mid-upload: a fresh one removes what this upload left
                _ => {
                    if let Ok(mut fresh) = owner.live() {
                        let _ = fresh.call(|s, b| {
                            b.atrium_plugin_storage()
                                .call_clean_incomplete(s, Some(&id))
                        });
                    }
                }
            });
    }
}

/// A download: sequential reads through one instance.
struct PluginReader {
    owner_label: String,
    live: Live,
    name: String,
    offset: u64,
}

impl Read for PluginReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = buf.len().min(CHUNK) as u32;
        if want == 0 {
            return Ok(0);
        }
        let name = &self.name;
        let offset = self.offset;
        let fail = |m: String| std::io::Error::other(m);
        let label = &self.owner_label;
        let bytes = self
            .live
            .call(|s, b| b.atrium_plugin_storage().call_read(s, name, offset, want))
            .map_err(|e| fail(format!("storage plugin {label}: {e}")))?
            .map_err(|e| fail(format!("storage plugin {label}: {}", guest_error(e))))?;
        if bytes.len() > want as usize {
            return Err(fail(format!(
                "storage plugin {label}: {}",
                RuntimeError::Contract(format!(
                    "returned {} bytes for a read of {want}",
                    bytes.len()
                ))
            )));
        }
        buf[..bytes.len()].copy_from_slice(&bytes);
        self.offset += bytes.len() as u64;
        Ok(bytes.len())
    }
}

impl BlobStore for PluginBlobStore {
    fn writer(&self) -> Result<Box<dyn BlobWriter>, DatastoreError> {
        let mut live = self.live().map_err(|e| self.err(e))?;
        let upload_id = uuid::Uuid::new_v4().simple().to_string();
        let handle = live
            .call(|s, b| b.atrium_plugin_storage().call_put_writer(s, &upload_id))
            .map_err(|e| self.err(e))?
            .map_err(|e| self.err(guest_error(e)))?;
        Ok(Box::new(PluginWriter {
            owner: self.inner.clone(),
            live: Some(live),
            handle: Some(handle),
            upload_id,
            hasher: Sha256::new(),
            size: 0,
            finished: false,
        }))
    }

    fn open(&self, digest: &str) -> Result<Box<dyn Read + Send>, DatastoreError> {
        self.open_at(digest, 0)
    }

    fn open_at(&self, digest: &str, offset: u64) -> Result<Box<dyn Read + Send>, DatastoreError> {
        let name = blob_name(digest)?;
        if self.stat_name(&name)?.is_none() {
            return Err(DatastoreError::Missing(digest.to_string()));
        }
        let live = self.live().map_err(|e| self.err(e))?;
        // the plugin reads from `offset` on (a ranged read of its backend)
        Ok(Box::new(PluginReader {
            owner_label: self.inner.label.clone(),
            live,
            name,
            offset,
        }))
    }

    fn stat(&self, digest: &str) -> Result<Option<u64>, DatastoreError> {
        Ok(self.stat_name(&blob_name(digest)?)?.map(|m| m.size))
    }

    fn delete(&self, digest: &str) -> Result<u64, DatastoreError> {
        let name = blob_name(digest)?;
        let size = self.stat_name(&name)?.map(|m| m.size).unwrap_or(0);
        let mut live = self.live().map_err(|e| self.err(e))?;
        live.call(|s, b| b.atrium_plugin_storage().call_delete(s, &name))
            .map_err(|e| self.err(e))?
            .map_err(|e| self.err(guest_error(e)))?;
        Ok(size)
    }

    fn digests(&self) -> Result<Vec<String>, DatastoreError> {
        let mut live = self.live().map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let c = cursor.clone();
            let (page, next) = live
                .call(|s, b| {
                    b.atrium_plugin_storage()
                        .call_list_objects(s, "sha256/", c.as_deref(), 1000)
                })
                .map_err(|e| self.err(e))?
                .map_err(|e| self.err(guest_error(e)))?;
            out.extend(
                page.into_iter()
                    .filter_map(|o| o.name.rsplit('/').next().map(str::to_string)),
            );
            match next {
                Some(n) if Some(&n) != cursor.as_ref() => cursor = Some(n),
                _ => break,
            }
        }
        Ok(out)
    }

    fn clean_temporary(&self) -> Result<usize, DatastoreError> {
        let mut live = self.live().map_err(|e| self.err(e))?;
        let n = live
            .call(|s, b| b.atrium_plugin_storage().call_clean_incomplete(s, None))
            .map_err(|e| self.err(e))?
            .map_err(|e| self.err(guest_error(e)))?;
        Ok(n as usize)
    }
}
