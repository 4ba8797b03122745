//! The workspace service layer: operations that span the metadata store and the datastores
//! (workspaces, artifacts, garbage collection). Both API flavours call into it.

mod artifacts;
mod components;
mod datasets;
mod environments;
mod registry;

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use serde::Serialize;

pub use artifacts::{ArtifactScope, ArtifactUpload, ByteRange};
pub use components::{
    ComponentUpload, DatastoreRequest, builtins_to_compile, plugin_store_spec, prepare_builtins,
};
pub use datasets::{MAX_DATASET_BYTES, check_name as check_dataset_name};
pub use environments::{
    EnvironmentVersion, check_environment_name, inline_definition, parse_environment_ref,
};
pub use registry::{
    MAX_PREDICT_ROWS, ModelUpload, RegisterRequest, VersionPredictions, check_predict_rows,
};

use crate::datastore::{Datastores, PluginDatastore};
use crate::plugins::Grants;
use crate::store::{ComponentRow, Store};
use crate::workspace::{
    DEFAULT_WORKSPACE, DomainError, DomainResult, Millis, Workspace, now_millis, validate,
};

/// What a garbage collection freed.
#[derive(Debug, Default, Clone, Serialize, schemars::JsonSchema)]
pub struct GcReport {
    /// Deleted runs removed for good.
    pub runs_purged: u64,
    /// Blobs no artifact referenced any more.
    pub blobs_deleted: u64,
    /// Bytes those blobs held.
    pub bytes_freed: u64,
}

/// How long a blob another replica marked pending is spared by garbage collection (its upload
/// references it long before; a mark this old is of an upload that was lost).
const PENDING_BLOB_GRACE_MS: i64 = 3_600_000;

/// How long a logged batch's mark (its `Idempotency-Key` or content) is kept.
const BATCH_KEY_TTL_MS: i64 = 86_400_000;

/// How long a workspace lookup is reused.
const WORKSPACE_CACHE_TTL: Duration = Duration::from_secs(5);

/// The workspace service shared by all request handlers.
pub struct Service {
    /// Metadata.
    pub store: Store,
    /// Artifact bytes.
    pub datastores: Datastores,
    /// Workspace name → (workspace, when read), to skip a lookup per request. Entries expire
    /// after [`WORKSPACE_CACHE_TTL`] so that replicas sharing PostgreSQL see deletions soon.
    workspaces: RwLock<HashMap<String, (Workspace, Instant)>>,
    /// Uploads commit under the read side; garbage collection takes the write side so it never
    /// frees a blob that an upload is about to reference.
    pub(crate) gc_lock: tokio::sync::RwLock<()>,
    /// Built-in components, registered in every new workspace.
    builtins: Vec<ComponentRow>,
    /// The secret store's key (see [`crate::secrets`]).
    pub(crate) vault: crate::secrets::Vault,
}

impl Service {
    /// Wraps a store and datastores; `builtins` come from [`prepare_builtins`], `vault` from
    /// [`crate::secrets::Vault::open`] on the same store.
    pub fn new(
        store: Store,
        datastores: Datastores,
        builtins: Vec<ComponentRow>,
        vault: crate::secrets::Vault,
    ) -> Self {
        Self {
            store,
            datastores,
            workspaces: RwLock::new(HashMap::new()),
            gc_lock: tokio::sync::RwLock::new(()),
            builtins,
            vault,
        }
    }

    /// Finishes a blob written to datastore `ds_id`, first marking it pending on PostgreSQL
    /// (replicas share the datastore: their garbage collection must spare it until the
    /// caller references it). Called under the GC read lock.
    pub(crate) async fn finish_blob(
        &self,
        ds_id: i64,
        writer: Box<dyn crate::datastore::BlobWriter>,
    ) -> DomainResult<crate::datastore::BlobMeta> {
        if self.store.dialect() == crate::store::Dialect::Postgres {
            let digest = writer.digest();
            self.store.mark_pending_blob(ds_id, &digest).await?;
        }
        Ok(tokio::task::spawn_blocking(move || writer.finish())
            .await
            .map_err(|e| DomainError::Internal(format!("upload task: {e}")))??)
    }

    /// Follows the changes replicas announce: a secret set or deleted through any replica
    /// reopens the datastores that read it (within moments, not [`SECRET_REFRESH`]); a
    /// component uploaded through another replica is fetched.
    ///
    /// [`SECRET_REFRESH`]: crate::datastore
    pub fn follow_changes(self: &std::sync::Arc<Self>) {
        use tokio::sync::broadcast::error::RecvError;
        let mut rx = self.store.changes();
        let me = std::sync::Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let change = rx.recv().await;
                let Some(svc) = me.upgrade() else { return };
                match change {
                    Ok(crate::store::Change::Secret { name, .. }) => {
                        svc.datastores.forget_secret_anywhere(Some(&name))
                    }
                    Ok(crate::store::Change::Component { digest }) => {
                        if let Err(e) = svc.sync_components(Some(&digest)).await {
                            tracing::warn!(error = %e, "cannot fetch a component another replica took");
                        }
                    }
                    Ok(crate::store::Change::All) | Err(RecvError::Lagged(_)) => {
                        svc.datastores.forget_secret_anywhere(None);
                        svc.workspaces.write().expect("workspace cache").clear();
                        if let Err(e) = svc.sync_components(None).await {
                            tracing::warn!(error = %e, "cannot fetch components other replicas took");
                        }
                    }
                    Ok(_) => {}
                    Err(RecvError::Closed) => return,
                }
            }
        });
    }

    /// The backend of a datastore, opened (with the secrets its component reads, resolved)
    /// on first use.
    pub async fn backend(
        &self,
        ds: &crate::store::Datastore,
    ) -> DomainResult<std::sync::Arc<dyn crate::datastore::BlobStore>> {
        if let Some(b) = self.datastores.cached(ds) {
            return Ok(b);
        }
        let epoch = self.datastores.secrets_epoch();
        let names = self.datastores.secret_names(ds)?;
        let secrets = if names.is_empty() {
            Default::default()
        } else {
            let ws = self.workspace(&ds.workspace).await?;
            self.resolve_secrets(&ws, &names, &format!("datastore:{}", ds.name))
                .await
                .map_err(|e| match e {
                    DomainError::NotFound(m) => DomainError::InvalidState(format!(
                        "datastore '{}' cannot open: {m}",
                        ds.name
                    )),
                    other => other,
                })?
        };
        Ok(self.datastores.open(ds, secrets, epoch)?)
    }

    /// The configuration of a new workspace's default datastore: the built-in `storage-fs` on
    /// a fresh directory under the data directory, mounted at `/data`.
    fn default_datastore_config(&self) -> DomainResult<serde_json::Value> {
        let fs = self
            .builtins
            .iter()
            .find(|c| c.name == "storage-fs")
            .ok_or_else(|| {
                DomainError::Internal("the built-in storage-fs component is missing".into())
            })?;
        let manifest = serde_json::from_str(&fs.manifest)
            .map_err(|e| DomainError::Internal(format!("storage-fs manifest: {e}")))?;
        let grants = Grants {
            dirs: [("/data".to_string(), Datastores::new_dir_name())].into(),
            config: [("root".to_string(), "/data".to_string())].into(),
            ..Grants::default()
        };
        let cfg = PluginDatastore {
            component: fs.name.clone(),
            version: fs.version.clone(),
            digest: fs.digest.clone(),
            manifest,
            grants,
        };
        serde_json::to_value(cfg).map_err(|e| DomainError::Internal(e.to_string()))
    }

    /// Creates the `default` workspace unless it exists.
    pub async fn ensure_default_workspace(&self) -> DomainResult<Workspace> {
        match self.store.workspace(DEFAULT_WORKSPACE).await {
            Ok(ws) => Ok(ws),
            Err(DomainError::NotFound(_)) => match self
                .create_workspace(DEFAULT_WORKSPACE, "")
                .await
            {
                Err(DomainError::AlreadyExists(_)) => self.store.workspace(DEFAULT_WORKSPACE).await,
                other => other,
            },
            Err(e) => Err(e),
        }
    }

    /// A workspace by name.
    pub async fn workspace(&self, name: &str) -> DomainResult<Workspace> {
        if let Some((ws, at)) = self.workspaces.read().expect("workspace cache").get(name)
            && at.elapsed() < WORKSPACE_CACHE_TTL
        {
            return Ok(ws.clone());
        }
        let ws = self.store.workspace(name).await?;
        self.workspaces
            .write()
            .expect("workspace cache")
            .insert(name.to_string(), (ws.clone(), Instant::now()));
        Ok(ws)
    }

    /// Creates a workspace with its default datastore and Default experiment.
    pub async fn create_workspace(&self, name: &str, description: &str) -> DomainResult<Workspace> {
        validate::workspace_name(name)?;
        self.store
            .create_workspace(
                name,
                description,
                self.default_datastore_config()?,
                &self.builtins,
            )
            .await
    }

    /// Creates a workspace or updates its description; returns it and whether it was created.
    pub async fn put_workspace(
        &self,
        name: &str,
        description: Option<&str>,
    ) -> DomainResult<(Workspace, bool)> {
        validate::workspace_name(name)?;
        match self.create_workspace(name, description.unwrap_or("")).await {
            Ok(ws) => Ok((ws, true)),
            Err(DomainError::AlreadyExists(_)) => {
                let ws = match description {
                    Some(d) => self.store.update_workspace(name, d).await?,
                    None => self.store.workspace(name).await?,
                };
                self.workspaces
                    .write()
                    .expect("workspace cache")
                    .remove(name);
                Ok((ws, false))
            }
            Err(e) => Err(e),
        }
    }

    /// Allows or stops anonymous read-only access to a workspace.
    pub async fn set_anonymous_read(&self, name: &str, on: bool) -> DomainResult<()> {
        self.store.set_anonymous_read(name, on).await?;
        self.workspaces
            .write()
            .expect("workspace cache")
            .remove(name);
        Ok(())
    }

    /// Deletes a workspace with all its runs and artifact bytes.
    pub async fn delete_workspace(&self, name: &str) -> DomainResult<()> {
        if name == DEFAULT_WORKSPACE {
            return Err(DomainError::invalid(
                "the default workspace cannot be deleted",
            ));
        }
        let _guard = self.gc_lock.write().await;
        self.workspaces
            .write()
            .expect("workspace cache")
            .remove(name);
        let stores = self.store.delete_workspace(name).await?;
        for ds in stores {
            self.datastores.destroy(&ds)?;
        }
        Ok(())
    }

    /// Removes leftovers of uploads interrupted by a crash; run before serving.
    pub async fn clean_interrupted_uploads(&self) -> DomainResult<usize> {
        let mut n = 0;
        for ds in self.store.all_datastores().await? {
            let backend = self.backend(&ds).await?;
            n += tokio::task::spawn_blocking(move || backend.clean_temporary())
                .await
                .map_err(|e| DomainError::Internal(format!("cleanup task: {e}")))??;
        }
        Ok(n)
    }

    /// Purges deleted runs (deleted before `older_than`, or all) and frees unreferenced blobs.
    pub async fn gc(
        &self,
        workspace: Option<&str>,
        deleted_before: Option<Millis>,
    ) -> DomainResult<GcReport> {
        let ws = match workspace {
            Some(name) => Some(self.workspace(name).await?),
            None => None,
        };
        let _guard = self.gc_lock.write().await;
        let mut report = GcReport {
            runs_purged: self
                .store
                .purge_deleted_runs(
                    ws.as_ref().map(|w| w.id),
                    deleted_before.unwrap_or_else(now_millis),
                )
                .await?,
            ..GcReport::default()
        };
        let stores = match &ws {
            Some(w) => self.store.list_datastores(w.id).await?,
            None => self.store.all_datastores().await?,
        };
        for ds in stores {
            let mut referenced = self.store.referenced_digests(ds.id).await?;
            referenced.extend(self.store.dataset_digests(ds.id).await?);
            referenced.extend(self.store.model_file_digests(ds.id).await?);
            referenced.extend(self.store.pipeline_digests().await?);
            let backend = self.backend(&ds).await?;
            let lister = backend.clone();
            let listed = tokio::task::spawn_blocking(move || lister.digests())
                .await
                .map_err(|e| DomainError::Internal(format!("gc task: {e}")))??;
            // read after the listing: a blob another replica made visible before it was listed
            // was marked pending before that (uploads on this host are held off by the lock)
            let pending = self
                .store
                .pending_blobs_of_others(ds.id, now_millis() - PENDING_BLOB_GRACE_MS)
                .await?;
            let (blobs, bytes) = tokio::task::spawn_blocking(move || {
                let mut blobs = 0;
                let mut bytes = 0;
                for d in listed {
                    if !referenced.contains(&d) && !pending.contains(&d) {
                        bytes += backend.delete(&d)?;
                        blobs += 1;
                    }
                }
                Ok::<_, crate::datastore::DatastoreError>((blobs, bytes))
            })
            .await
            .map_err(|e| DomainError::Internal(format!("gc task: {e}")))??;
            report.blobs_deleted += blobs;
            report.bytes_freed += bytes;
        }
        // batch marks only guard against retries, which come within seconds
        self.store
            .expire_batch_keys(now_millis() - BATCH_KEY_TTL_MS)
            .await?;
        tracing::info!(?report, "garbage collection done");
        Ok(report)
    }
}
