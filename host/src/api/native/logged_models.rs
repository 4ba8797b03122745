//! MLflow 3 logged models in the native API: list an experiment's, get one, list and download
//! their files (what `atrium model register --logged-model` and `model predict` read).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::api::error::ApiError;
use crate::api::extract::{Params, Ws};
use crate::api::reply::FileBytes;
use crate::api::wire::experiment_id;
use crate::api::{AppState, artifact_response};
use crate::service::ArtifactScope;
use crate::workspace::logged_model::{LoggedModel, check_model_id};
use crate::workspace::{ArtifactFile, DomainError};

/// A metric logged with a logged model's id.
#[derive(Serialize, JsonSchema)]
pub struct ModelMetricJson {
    /// Metric name.
    key: String,
    /// The value (`"NaN"`, `"Infinity"`, `"-Infinity"` for non-finite ones).
    #[serde(serialize_with = "crate::api::wire::ser_f64")]
    #[schemars(with = "crate::api::wire::WireF64")]
    value: f64,
    /// Milliseconds since the epoch.
    timestamp: i64,
    /// Training step.
    step: i64,
    /// The run that logged it.
    run_id: Option<String>,
    /// The dataset it was measured on.
    dataset_name: Option<String>,
    /// That dataset's digest.
    dataset_digest: Option<String>,
}

/// An MLflow logged model.
#[derive(Serialize, JsonSchema)]
pub struct LoggedModelJson {
    /// `m-` and 32 hex digits.
    id: String,
    /// The experiment's id.
    experiment_id: String,
    /// Display name.
    name: String,
    /// Free-form type.
    model_type: Option<String>,
    /// The run that produced it.
    source_run_id: Option<String>,
    /// `LOGGED_MODEL_PENDING`, `LOGGED_MODEL_READY` or `LOGGED_MODEL_UPLOAD_FAILED`.
    status: String,
    /// Why it failed, if it did.
    status_message: Option<String>,
    /// Where its files live, as an MLflow URI.
    artifact_uri: String,
    /// Creation time (ms).
    created_at: i64,
    /// Last change (ms).
    updated_at: i64,
    /// Parameters.
    params: BTreeMap<String, String>,
    /// Tags.
    tags: BTreeMap<String, String>,
    /// Metrics logged with this model's id.
    metrics: Vec<ModelMetricJson>,
}

impl From<LoggedModel> for LoggedModelJson {
    fn from(m: LoggedModel) -> Self {
        Self {
            experiment_id: m.experiment_id.to_string(),
            status: m.status.as_str().to_string(),
            metrics: m
                .metrics
                .into_iter()
                .map(|x| ModelMetricJson {
                    key: x.key,
                    value: x.value,
                    timestamp: x.timestamp,
                    step: x.step,
                    run_id: x.run_id,
                    dataset_name: x.dataset_name,
                    dataset_digest: x.dataset_digest,
                })
                .collect(),
            id: m.id,
            name: m.name,
            model_type: m.model_type,
            source_run_id: m.source_run_id,
            status_message: m.status_message,
            artifact_uri: m.artifact_uri,
            created_at: m.created_at,
            updated_at: m.updated_at,
            params: m.params,
            tags: m.tags,
        }
    }
}

/// Logged models, newest first.
#[derive(Serialize, JsonSchema)]
pub struct LoggedModelList {
    /// The models.
    logged_models: Vec<LoggedModelJson>,
}

/// The query of `GET .../logged-models`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only this experiment's models.
    experiment_id: Option<String>,
}

/// The query of `GET .../logged-models/{id}/artifacts`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilesQuery {
    /// The directory to list (default: the root).
    path: Option<String>,
}

/// A directory's immediate children.
#[derive(Serialize, JsonSchema)]
pub struct FileList {
    /// Files and directories, by path.
    files: Vec<ArtifactFile>,
}

fn id_of(p: &BTreeMap<String, String>) -> Result<&str, DomainError> {
    let id = p.get("id").map(String::as_str).unwrap_or("");
    check_model_id(id)?;
    Ok(id)
}

/// `GET .../logged-models?experiment_id=N`: the active logged models (of one experiment, or
/// all), newest first.
pub async fn list(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Params(q): Params<ListQuery>,
) -> Result<Json<LoggedModelList>, ApiError> {
    let ids = match q.experiment_id.as_deref().filter(|s| !s.is_empty()) {
        Some(e) => vec![experiment_id(e)?],
        None => Vec::new(),
    };
    let mut models = st.svc.store.logged_models(ws.id, &ids).await?;
    models.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
    Ok(Json(LoggedModelList {
        logged_models: models.into_iter().map(Into::into).collect(),
    }))
}

/// `GET .../logged-models/{id}`.
pub async fn get(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path(p): Path<BTreeMap<String, String>>,
) -> Result<Json<LoggedModelJson>, ApiError> {
    let m = st.svc.store.logged_model(ws.id, id_of(&p)?, false).await?;
    Ok(Json(m.into()))
}

/// `GET .../logged-models/{id}/artifacts?path=dir`: the directory's immediate children.
pub async fn list_files(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path(p): Path<BTreeMap<String, String>>,
    Params(q): Params<FilesQuery>,
) -> Result<Json<FileList>, ApiError> {
    let files = st
        .svc
        .list_artifacts(
            &ws,
            ArtifactScope::Model(id_of(&p)?),
            q.path.as_deref().unwrap_or(""),
        )
        .await?;
    Ok(Json(FileList { files }))
}

/// `GET .../logged-models/{id}/artifacts/{path}`: the bytes of one file.
pub async fn download(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path(p): Path<BTreeMap<String, String>>,
) -> Result<FileBytes, ApiError> {
    let id = id_of(&p)?;
    let path = p.get("path").map(String::as_str).unwrap_or("");
    let (file, reader) = st
        .svc
        .open_artifact(&ws, ArtifactScope::Model(id), path)
        .await?;
    Ok(FileBytes(artifact_response(&file, reader)))
}
