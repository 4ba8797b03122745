//! The model registry service: register versions from a run's artifacts or from uploaded
//! files, resolve `models:/` references, read a version's files, delete.
//!
//! A version owns references to the content-addressed blobs of its files (`model_files`);
//! garbage collection keeps every blob a version references, so a version keeps serving its
//! files after its source run is deleted and purged.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;

use super::Service;
use crate::datastore::BlobMeta;
use crate::store::{ArtifactRow, NewModelVersion};
use crate::train::spec::Task;
use crate::train::{Prediction, TrainedModel};
use crate::workspace::registry::{
    ModelRef, ModelVersion, Selector, check_alias, check_description, check_model_name,
};
use crate::workspace::{
    ArtifactFile, DomainError, DomainResult, LifecycleStage, Workspace, validate,
};

/// Run tag naming the training dataset version (set by train jobs).
const DATASET_TAG: &str = "atrium.dataset";
/// Logged model tag listing the registry versions made from it (MLflow's).
const MODEL_VERSIONS_TAG: &str = "mlflow.modelVersions";
/// Run tag naming the job that produced the run.
const JOB_TAG: &str = "atrium.job.id";

/// What to register, whatever the files' origin.
#[derive(Debug, Clone, Default)]
pub struct RegisterRequest {
    /// Registered model name.
    pub name: String,
    /// Create the registered model when absent (the native API does; MLflow's
    /// `model-versions/create` does not).
    pub create_model: bool,
    /// Description of the version.
    pub description: String,
    /// Tags of the version.
    pub tags: BTreeMap<String, String>,
    /// Aliases to point at the new version.
    pub aliases: Vec<String>,
}

/// A model version being uploaded: each file streams into the workspace's default datastore
/// as it arrives, under the GC read lock until the version references the blobs.
pub struct ModelUpload<'a> {
    ds: crate::store::Datastore,
    backend: std::sync::Arc<dyn crate::datastore::BlobStore>,
    rows: Vec<ArtifactRow>,
    card: Option<Vec<u8>>,
    _guard: tokio::sync::RwLockReadGuard<'a, ()>,
}

/// The largest `model.json` of an upload (it is read to find the model's dataset).
const MAX_CARD_BYTES: usize = 16 << 20;

/// The most rows one request may score with a model version.
pub const MAX_PREDICT_ROWS: usize = 100_000;

/// What scoring rows with a model version gives.
#[derive(Debug, Clone)]
pub struct VersionPredictions {
    /// Whether the model classifies (its predictions carry class probabilities).
    pub classification: bool,
    /// One per row, in the rows' order.
    pub predictions: Vec<Prediction>,
}

/// Refuses more rows than one request may score.
pub fn check_predict_rows(rows: usize) -> DomainResult<()> {
    if rows > MAX_PREDICT_ROWS {
        return Err(DomainError::invalid(format!(
            "{rows} rows are more than the {MAX_PREDICT_ROWS} one request may score; send them in parts"
        )));
    }
    Ok(())
}

fn task_err(e: tokio::task::JoinError) -> DomainError {
    DomainError::Internal(format!("registry task failed: {e}"))
}

impl RegisterRequest {
    /// The version to add: this request's model, description, tags and aliases, from `source`
    /// (callers fill in the lineage and files).
    fn into_version(self, source: String) -> NewModelVersion {
        NewModelVersion {
            name: self.name,
            create_model: self.create_model,
            description: self.description,
            tags: self.tags,
            aliases: self.aliases,
            source,
            ..NewModelVersion::default()
        }
    }

    fn check(&self) -> DomainResult<()> {
        check_model_name(&self.name)?;
        check_description(&self.description)?;
        validate::tags(&self.tags)?;
        for a in &self.aliases {
            check_alias(a)?;
        }
        Ok(())
    }
}

/// The `dataset` field of a train job's `model.json`, if it has one.
fn dataset_of_card(bytes: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    v.get("dataset")?.as_str().map(String::from)
}

impl Service {
    /// Registers the files under a run's artifact directory `path` as the next version of
    /// `req.name`. Lineage comes from the run: its dataset tag (or the model card's `dataset`)
    /// and the job that produced it. `source` defaults to `runs:/<run>/<path>`.
    pub async fn register_model_from_run(
        &self,
        ws: &Workspace,
        req: RegisterRequest,
        run_id: &str,
        path: &str,
        source: Option<String>,
    ) -> DomainResult<ModelVersion> {
        req.check()?;
        validate::run_id(run_id)?;
        let path = path.trim_matches('/');
        if path.is_empty() {
            return Err(DomainError::invalid(
                "name the run's artifact directory that holds the model (e.g. 'model')",
            ));
        }
        validate::artifact_path(path)?;
        let run = self.store.run(ws.id, run_id).await?;
        if run.lifecycle_stage != LifecycleStage::Active {
            return Err(DomainError::InvalidState(format!(
                "run '{run_id}' is deleted; restore it to register its model"
            )));
        }
        let job_key = match run.tags.get(JOB_TAG) {
            Some(job) => match self.store.job(ws.id, job).await {
                Ok(j) => Some(j.key),
                Err(DomainError::NotFound(_)) => None,
                Err(e) => return Err(e),
            },
            None => None,
        };
        // hold the GC read lock from reading the run's artifact rows until the version
        // references the same blobs, so no collection runs in between
        let _guard = self.gc_lock.read().await;
        let owner = crate::store::ArtifactOwner::Run(run.key);
        let rows = self.store.artifacts_under(owner, path).await?;
        if rows.is_empty() {
            if self.store.artifact(owner, path).await?.is_some() {
                return Err(DomainError::invalid(format!(
                    "'{path}' is a file of run '{run_id}'; register the directory that holds the model"
                )));
            }
            return Err(DomainError::NotFound(format!(
                "run '{run_id}' has no artifacts under '{path}'"
            )));
        }
        let prefix = format!("{path}/");
        let files: Vec<ArtifactRow> = rows
            .into_iter()
            .map(|r| ArtifactRow {
                path: r.path[prefix.len()..].to_string(),
                ..r
            })
            .collect();
        let dataset = match run.tags.get(DATASET_TAG) {
            Some(d) => Some(d.clone()),
            None => self.card_dataset(&files).await?,
        };
        let new = NewModelVersion {
            run_id: Some(run.id.clone()),
            dataset,
            job_key,
            files,
            ..req.into_version(source.unwrap_or_else(|| format!("runs:/{}/{path}", run.id)))
        };
        let v = self.store.add_model_version(ws.id, &new).await?;
        tracing::info!(workspace = %ws.name, model = %v.name, version = v.version, run = %run_id, "model version registered");
        Ok(v)
    }

    /// Registers the files of an MLflow logged model (under `path`, empty: all of them) as the
    /// next version of `req.name`; the version keeps the model's id and source run, and the
    /// logged model's `mlflow.modelVersions` tag lists the new version (as MLflow does). A logged
    /// model without files registers as a version without files.
    pub async fn register_model_from_logged_model(
        &self,
        ws: &Workspace,
        req: RegisterRequest,
        model_id: &str,
        path: &str,
        source: String,
    ) -> DomainResult<ModelVersion> {
        req.check()?;
        crate::workspace::logged_model::check_model_id(model_id)?;
        let path = path.trim_matches('/');
        if !path.is_empty() {
            validate::artifact_path(path)?;
        }
        let model = self.store.logged_model(ws.id, model_id, false).await?;
        let _guard = self.gc_lock.read().await;
        let rows = self
            .store
            .artifacts_under(crate::store::ArtifactOwner::Model(model.key), path)
            .await?;
        let strip = if path.is_empty() { 0 } else { path.len() + 1 };
        let files: Vec<ArtifactRow> = rows
            .into_iter()
            .map(|r| ArtifactRow {
                path: r.path[strip..].to_string(),
                ..r
            })
            .collect();
        let dataset = self.card_dataset(&files).await?;
        let new = NewModelVersion {
            run_id: model.source_run_id.clone(),
            model_id: Some(model.id.clone()),
            dataset,
            files,
            ..req.into_version(source)
        };
        let v = self.store.add_model_version(ws.id, &new).await?;
        drop(_guard);
        // MLflow lists a logged model's registrations in a JSON tag, as Python's json.dumps
        // writes it: `[{"name": "m", "version": 1}, ...]`
        let mut entries: Vec<(String, i64)> = model
            .tags
            .get(MODEL_VERSIONS_TAG)
            .and_then(|t| serde_json::from_str::<Vec<serde_json::Value>>(t).ok())
            .unwrap_or_default()
            .iter()
            .filter_map(|e| {
                Some((
                    e.get("name")?.as_str()?.to_string(),
                    e.get("version")?.as_i64()?,
                ))
            })
            .collect();
        entries.push((v.name.clone(), v.version));
        let value = format!(
            "[{}]",
            entries
                .iter()
                .map(|(n, ver)| format!(
                    "{{\"name\": {}, \"version\": {ver}}}",
                    serde_json::Value::String(n.clone())
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
        self.store
            .set_logged_model_pairs(
                ws.id,
                model_id,
                &[(MODEL_VERSIONS_TAG.to_string(), value)].into(),
                false,
            )
            .await?;
        tracing::info!(workspace = %ws.name, model = %v.name, version = v.version, logged_model = %model_id, "model version registered");
        Ok(v)
    }

    /// Registers a copy of another version (`models:/NAME/VERSION`): the same files (no bytes
    /// are copied), run, logged model and lineage.
    pub async fn register_model_copy(
        &self,
        ws: &Workspace,
        req: RegisterRequest,
        from: &ModelRef,
        source: String,
    ) -> DomainResult<ModelVersion> {
        req.check()?;
        let src = self.resolve_in(ws, &from.name, &from.selector).await?;
        let _guard = self.gc_lock.read().await;
        let files = self
            .store
            .model_files(ws.id, &src.name, src.version)
            .await?;
        let new = NewModelVersion {
            run_id: src.run_id.clone(),
            model_id: src.model_id.clone(),
            dataset: src.dataset.clone(),
            job_key: src.job_id,
            files,
            ..req.into_version(source)
        };
        let v = self.store.add_model_version(ws.id, &new).await?;
        tracing::info!(workspace = %ws.name, model = %v.name, version = v.version, from = %src.uri(), "model version copied");
        Ok(v)
    }

    /// Registers a version whose files live elsewhere (an external URI the client fetches
    /// itself, as MLflow accepts it): Atrium records the source and holds no files.
    pub async fn register_model_external(
        &self,
        ws: &Workspace,
        req: RegisterRequest,
        source: String,
        run_id: Option<String>,
    ) -> DomainResult<ModelVersion> {
        req.check()?;
        let new = NewModelVersion {
            run_id,
            ..req.into_version(source)
        };
        self.store.add_model_version(ws.id, &new).await
    }

    /// Starts a model version upload into the workspace's default datastore. Until the
    /// version is registered, garbage collection waits (the blobs are not referenced yet).
    pub async fn begin_model_upload(&self, ws: &Workspace) -> DomainResult<ModelUpload<'_>> {
        let ds = self.store.default_datastore(ws.id).await?;
        let backend = self.backend(&ds).await?;
        let guard = self.gc_lock.read().await;
        Ok(ModelUpload {
            ds,
            backend,
            rows: Vec::new(),
            card: None,
            _guard: guard,
        })
    }

    /// Streams one file of an upload into the datastore (never whole in memory; `model.json`,
    /// small, is also kept to read its dataset).
    pub async fn add_model_file<S, E>(
        &self,
        up: &mut ModelUpload<'_>,
        path: String,
        body: S,
    ) -> DomainResult<()>
    where
        S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Send + Unpin,
        E: std::fmt::Display,
    {
        validate::artifact_path(&path)?;
        if up.rows.iter().any(|r| r.path == path) {
            return Err(DomainError::invalid(format!(
                "the upload holds '{path}' twice"
            )));
        }
        if let Some(r) = up.rows.iter().find(|r| {
            r.path.starts_with(&format!("{path}/")) || path.starts_with(&format!("{}/", r.path))
        }) {
            let file = if r.path.len() < path.len() {
                &r.path
            } else {
                &path
            };
            return Err(DomainError::invalid(format!(
                "'{file}' is both a file and a directory in the upload"
            )));
        }
        let writer = if path == "model.json" {
            use futures_util::StreamExt;
            let mut body = body;
            let mut card = Vec::new();
            while let Some(c) = body.next().await {
                let c = c.map_err(|e| {
                    DomainError::invalid(format!("upload of '{path}' was interrupted: {e}"))
                })?;
                card.extend_from_slice(&c);
                if card.len() > MAX_CARD_BYTES {
                    return Err(DomainError::invalid(format!(
                        "model.json is larger than {} MiB",
                        MAX_CARD_BYTES >> 20
                    )));
                }
            }
            let stream = futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(
                card.clone(),
            ))]);
            up.card = Some(card);
            self.stream_blob(up.backend.clone(), stream, &path).await?
        } else {
            self.stream_blob(up.backend.clone(), body, &path).await?
        };
        let BlobMeta { digest, size } = self.finish_blob(up.ds.id, writer).await?;
        up.rows.push(ArtifactRow {
            path,
            datastore_id: up.ds.id,
            digest,
            size: size as i64,
        });
        Ok(())
    }

    /// Registers the files of an upload as the next version of `req.name`.
    pub async fn register_model_upload(
        &self,
        ws: &Workspace,
        req: RegisterRequest,
        up: ModelUpload<'_>,
    ) -> DomainResult<ModelVersion> {
        req.check()?;
        if up.rows.is_empty() {
            return Err(DomainError::invalid(
                "an upload needs at least one file part",
            ));
        }
        let dataset = up.card.as_deref().and_then(dataset_of_card);
        let new = NewModelVersion {
            dataset,
            files: up.rows,
            ..req.into_version("upload".into())
        };
        // referenced while the GC read lock is still held (`up` owns it until here)
        let v = self.store.add_model_version(ws.id, &new).await?;
        drop(up._guard);
        tracing::info!(workspace = %ws.name, model = %v.name, version = v.version, "model version uploaded");
        Ok(v)
    }

    /// The `dataset` of a `model.json` among the files, if any.
    async fn card_dataset(&self, files: &[ArtifactRow]) -> DomainResult<Option<String>> {
        let Some(card) = files.iter().find(|f| f.path == "model.json") else {
            return Ok(None);
        };
        let ds = self.store.datastore(card.datastore_id).await?;
        Ok(dataset_of_card(&self.read_bytes(&ds, &card.digest).await?))
    }

    /// The version a reference selects, in the workspace named `ws`.
    pub async fn resolve_model_version(
        &self,
        ws: &str,
        r: &ModelRef,
    ) -> DomainResult<ModelVersion> {
        let ws = self.workspace(ws).await?;
        self.resolve_in(&ws, &r.name, &r.selector).await
    }

    /// The version a selector picks among a model's versions.
    pub async fn resolve_in(
        &self,
        ws: &Workspace,
        name: &str,
        selector: &Selector,
    ) -> DomainResult<ModelVersion> {
        match selector {
            Selector::Version(v) => self.store.model_version(ws.id, name, *v).await,
            Selector::Alias(a) => {
                let v = self.store.model_alias(ws.id, name, a).await?;
                self.store.model_version(ws.id, name, v).await
            }
            Selector::Latest => {
                let m = self.store.registered_model(ws.id, name).await?;
                let v = m.latest_version.ok_or_else(|| {
                    DomainError::NotFound(format!("registered model '{name}' has no versions"))
                })?;
                self.store.model_version(ws.id, name, v).await
            }
        }
    }

    /// Scores `rows` (column → value as text, like CSV cells; an absent column is a missing
    /// value) with the Atrium model (`model.json` + `model.safetensors`) a version holds, on
    /// the CPU, with the model's own preprocessing. Nothing is stored.
    pub async fn predict_model_version(
        &self,
        ws: &Workspace,
        name: &str,
        selector: &Selector,
        rows: Vec<HashMap<String, String>>,
    ) -> DomainResult<VersionPredictions> {
        check_predict_rows(rows.len())?;
        let v = self.resolve_in(ws, name, selector).await?;
        let uri = v.uri();
        let (json, weights) = {
            // the blobs stay while they are read, should the version be deleted meanwhile
            let _guard = self.gc_lock.read().await;
            let files = self.store.model_files(ws.id, &v.name, v.version).await?;
            let file = |path: &str| files.iter().find(|f| f.path == path);
            let (Some(card), Some(weights)) = (file("model.json"), file("model.safetensors"))
            else {
                return Err(DomainError::invalid(format!(
                    "{uri} holds no Atrium model (model.json and model.safetensors), so the server cannot score it; load it with its own framework"
                )));
            };
            (self.read_row(card).await?, self.read_row(weights).await?)
        };
        let n = rows.len();
        let started = std::time::Instant::now();
        let out = tokio::task::spawn_blocking(move || {
            let model = TrainedModel::from_files(&json, &weights, &candle_core::Device::Cpu)
                .map_err(|e| match e {
                    DomainError::InvalidArgument(m) => DomainError::invalid(format!(
                        "{uri} holds no Atrium model the server can load: {m}"
                    )),
                    other => other,
                })?;
            let classification = model.card.task == Task::Classification;
            let predictions = if rows.is_empty() {
                Vec::new()
            } else {
                model.predict(&rows)?
            };
            Ok::<_, DomainError>(VersionPredictions {
                classification,
                predictions,
            })
        })
        .await
        .map_err(task_err)??;
        tracing::debug!(workspace = %ws.name, model = %v.name, version = v.version, rows = n, ms = started.elapsed().as_millis() as u64, "model version scored rows");
        Ok(out)
    }

    /// The stored row of one file of a version; errors name what is missing.
    async fn model_file_row(
        &self,
        ws: &Workspace,
        name: &str,
        version: i64,
        path: &str,
    ) -> DomainResult<ArtifactRow> {
        validate::artifact_path(path)?;
        let files = self.store.model_files(ws.id, name, version).await?;
        if files.is_empty() {
            // a missing model or version gets its own message
            self.store.model_version(ws.id, name, version).await?;
        }
        if let Some(f) = files.iter().find(|f| f.path == path) {
            return Ok(f.clone());
        }
        if files
            .iter()
            .any(|f| f.path.starts_with(&format!("{path}/")))
        {
            return Err(DomainError::invalid(format!(
                "'{path}' is a directory of model version {name}/{version}; name a file"
            )));
        }
        Err(DomainError::NotFound(format!(
            "model version {name}/{version} has no file '{path}'"
        )))
    }

    /// The bytes of a stored file row (from its datastore).
    async fn read_row(&self, row: &ArtifactRow) -> DomainResult<Vec<u8>> {
        let ds = self.store.datastore(row.datastore_id).await?;
        self.read_bytes(&ds, &row.digest).await
    }

    /// A whole file of a version (path relative to the version's root, e.g. `model.json`).
    pub async fn read_model_version_file(
        &self,
        ws: &str,
        name: &str,
        version: i64,
        path: &str,
    ) -> DomainResult<Vec<u8>> {
        let ws = self.workspace(ws).await?;
        let row = self.model_file_row(&ws, name, version, path).await?;
        self.read_row(&row).await
    }

    /// Opens a file of a version for streaming.
    pub async fn open_model_version_file(
        &self,
        ws: &Workspace,
        name: &str,
        version: i64,
        path: &str,
    ) -> DomainResult<(ArtifactFile, Box<dyn Read + Send>)> {
        let row = self.model_file_row(ws, name, version, path).await?;
        let ds = self.store.datastore(row.datastore_id).await?;
        let backend = self.backend(&ds).await?;
        let digest = row.digest.clone();
        let reader = tokio::task::spawn_blocking(move || backend.open(&digest))
            .await
            .map_err(task_err)??;
        Ok((
            ArtifactFile {
                path: row.path,
                is_dir: false,
                size: Some(row.size as u64),
                digest: Some(row.digest),
            },
            reader,
        ))
    }

    /// Refuses to delete a model (one version, or any) that a deployment serves, naming it.
    async fn refuse_if_deployed(
        &self,
        ws: &Workspace,
        name: &str,
        version: Option<i64>,
    ) -> DomainResult<()> {
        let used = self
            .store
            .deployments_using_model(ws.id, name, version)
            .await?;
        if let Some(u) = used.first() {
            let what = match version {
                Some(v) => format!("version {v} of model '{name}'"),
                None => format!("model '{name}'"),
            };
            return Err(DomainError::InvalidState(format!(
                "{what} is served by deployment '{}' of endpoint '{}'; update or delete that deployment first",
                u.deployment, u.endpoint
            )));
        }
        Ok(())
    }

    /// Deletes one model version (its blobs are freed by the next GC unless still referenced).
    /// Every deletion of a version goes through here.
    pub async fn delete_model_version(
        &self,
        ws: &Workspace,
        name: &str,
        version: i64,
    ) -> DomainResult<()> {
        self.refuse_if_deployed(ws, name, Some(version)).await?;
        self.store
            .delete_model_version(ws.id, name, version)
            .await?;
        tracing::info!(workspace = %ws.name, model = %name, version, "model version deleted");
        Ok(())
    }

    /// Deletes a registered model with all its versions. Every deletion of a model goes
    /// through here.
    pub async fn delete_registered_model(&self, ws: &Workspace, name: &str) -> DomainResult<()> {
        self.refuse_if_deployed(ws, name, None).await?;
        self.store.delete_registered_model(ws.id, name).await?;
        tracing::info!(workspace = %ws.name, model = %name, "registered model deleted");
        Ok(())
    }

    /// Points an alias at a version, after checking the alias name.
    pub async fn set_model_alias(
        &self,
        ws: &Workspace,
        name: &str,
        alias: &str,
        version: i64,
    ) -> DomainResult<ModelVersion> {
        check_alias(alias)?;
        self.store
            .set_model_alias(ws.id, name, alias, version)
            .await?;
        self.store.model_version(ws.id, name, version).await
    }
}
