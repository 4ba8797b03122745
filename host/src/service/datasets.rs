//! Datasets: validated at upload, stored in the workspace's default datastore by sha256.

use std::io::Read;

use super::Service;
use crate::datastore::{BlobMeta, DatastoreError};
use crate::store::{DatasetRow, Datastore};
use crate::workspace::dataset::{Table, infer_schema, parse_csv, parse_upload, to_csv};
use crate::workspace::{DomainError, DomainResult, Workspace};

/// Largest dataset file accepted.
pub const MAX_DATASET_BYTES: usize = 512 << 20;

fn task_err(e: tokio::task::JoinError) -> DomainError {
    DomainError::Internal(format!("dataset task failed: {e}"))
}

/// Checks a dataset name: letters, digits, '-', '_', '.', starting with a letter or digit.
pub fn check_name(name: &str) -> DomainResult<()> {
    if crate::workspace::validate::is_label(name, 128, b"-_.") {
        Ok(())
    } else {
        Err(DomainError::invalid(format!(
            "invalid dataset name '{name}': use letters, digits, '-', '_' and '.', starting with a letter or digit"
        )))
    }
}

impl Service {
    /// Atrium dataset versions whose content matches MLflow dataset inputs: MLflow digest →
    /// `name:version`, when the digest (8 to 64 hex digits) starts the version's sha256.
    pub async fn dataset_links(
        &self,
        ws: &Workspace,
        inputs: &[crate::workspace::run_io::DatasetInput],
    ) -> DomainResult<std::collections::HashMap<String, String>> {
        let wanted: Vec<String> = inputs
            .iter()
            .map(|i| i.dataset.digest.to_ascii_lowercase())
            .filter(|d| d.len() >= 8 && d.bytes().all(|b| b.is_ascii_hexdigit()))
            .collect();
        let mut out = std::collections::HashMap::new();
        if wanted.is_empty() {
            return Ok(out);
        }
        for v in self.store.list_datasets(ws.id, None).await? {
            for d in inputs.iter().map(|i| &i.dataset.digest) {
                if wanted.contains(&d.to_ascii_lowercase())
                    && v.digest.starts_with(&d.to_ascii_lowercase())
                {
                    out.insert(d.clone(), format!("{}:{}", v.name, v.version));
                }
            }
        }
        Ok(out)
    }

    /// Stores bytes in a datastore (under the GC read lock, so the blob cannot be freed before
    /// the caller references it — the caller must reference it before dropping the guard).
    pub(crate) async fn store_bytes(
        &self,
        ds: &Datastore,
        bytes: Vec<u8>,
    ) -> DomainResult<(BlobMeta, tokio::sync::RwLockReadGuard<'_, ()>)> {
        let backend = self.backend(ds).await?;
        let guard = self.gc_lock.read().await;
        let writer = tokio::task::spawn_blocking(move || {
            let mut w = backend.writer()?;
            for chunk in bytes.chunks(1 << 20) {
                w.write(chunk)?;
            }
            Ok::<_, DatastoreError>(w)
        })
        .await
        .map_err(task_err)??;
        let meta = self.finish_blob(ds.id, writer).await?;
        Ok((meta, guard))
    }

    /// Reads a whole blob.
    pub(crate) async fn read_bytes(&self, ds: &Datastore, digest: &str) -> DomainResult<Vec<u8>> {
        let backend = self.backend(ds).await?;
        let digest = digest.to_string();
        tokio::task::spawn_blocking(move || {
            let mut r = backend.open(&digest)?;
            let mut out = Vec::new();
            r.read_to_end(&mut out)
                .map_err(|e| DatastoreError::Plugin(e.to_string()))?;
            Ok::<_, DatastoreError>(out)
        })
        .await
        .map_err(task_err)?
        .map_err(DomainError::from)
    }

    /// Validates a comma-separated CSV and stores it as the next version of `name`.
    pub async fn create_dataset(
        &self,
        ws: &Workspace,
        name: &str,
        bytes: Vec<u8>,
    ) -> DomainResult<DatasetRow> {
        Ok(self.upload_dataset(ws, name, bytes, Some(b',')).await?.0)
    }

    /// Validates a CSV with the given delimiter (`None`: detected) and stores it as the next
    /// version of `name`, as comma-separated CSV; returns the version and the delimiter read.
    pub async fn upload_dataset(
        &self,
        ws: &Workspace,
        name: &str,
        bytes: Vec<u8>,
        delimiter: Option<u8>,
    ) -> DomainResult<(DatasetRow, u8)> {
        check_name(name)?;
        if bytes.len() > MAX_DATASET_BYTES {
            return Err(DomainError::invalid(format!(
                "the file is {} bytes; the limit is {MAX_DATASET_BYTES}",
                bytes.len()
            )));
        }
        let (bytes, rows, schema, delimiter) = tokio::task::spawn_blocking(move || {
            let (t, d) = parse_upload(&bytes, delimiter)?;
            let schema = serde_json::to_string(&infer_schema(&t)).expect("schema serializes");
            // every stored version is comma-separated, whatever the upload used
            let bytes = if d == b',' { bytes } else { to_csv(&t)? };
            Ok::<_, DomainError>((bytes, t.rows.len(), schema, d))
        })
        .await
        .map_err(task_err)??;
        let ds = self.store.default_datastore(ws.id).await?;
        let size = bytes.len() as i64;
        let (meta, _guard) = self.store_bytes(&ds, bytes).await?;
        let row = DatasetRow {
            name: name.to_string(),
            version: 0,
            datastore_id: ds.id,
            digest: meta.digest,
            size,
            rows: rows as i64,
            schema,
            created_at: 0,
        };
        Ok((
            self.store.add_dataset_version(ws.id, &row).await?,
            delimiter,
        ))
    }

    /// A dataset version's CSV bytes, as stored.
    pub async fn dataset_bytes(&self, d: &DatasetRow) -> DomainResult<Vec<u8>> {
        let ds = self.store.datastore(d.datastore_id).await?;
        self.read_bytes(&ds, &d.digest).await
    }

    /// A dataset version's parsed table.
    pub async fn dataset_table(&self, ws: &Workspace, d: &DatasetRow) -> DomainResult<Table> {
        let bytes = self.dataset_bytes(d).await?;
        tokio::task::spawn_blocking(move || parse_csv(&bytes))
            .await
            .map_err(task_err)?
            .map_err(|e| {
                DomainError::Internal(format!(
                    "stored dataset of workspace {} no longer parses: {e}",
                    ws.name
                ))
            })
    }
}
