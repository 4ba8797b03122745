//! MLflow 3 logged models in the native API: list an experiment's, get one, list and download
//! their files (what `atrium model register --logged-model` and `model predict` read).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::{Value, json};

use crate::api::error::ApiError;
use crate::api::extract::{QueryMap, Ws};
use crate::api::wire::experiment_id;
use crate::api::{AppState, artifact_response};
use crate::tracking::ArtifactScope;
use crate::workspace::DomainError;
use crate::workspace::logged_model::{LoggedModel, check_model_id};

/// A logged model in the native API's shape.
fn model_json(m: &LoggedModel) -> Value {
    json!({
        "id": m.id,
        "experiment_id": m.experiment_id.to_string(),
        "name": m.name,
        "model_type": m.model_type,
        "source_run_id": m.source_run_id,
        "status": m.status.as_str(),
        "status_message": m.status_message,
        "artifact_uri": m.artifact_uri,
        "created_at": m.created_at,
        "updated_at": m.updated_at,
        "params": m.params,
        "tags": m.tags,
        "metrics": m.metrics.iter().map(|x| json!({
            "key": x.key, "value": x.value, "timestamp": x.timestamp, "step": x.step,
            "run_id": x.run_id, "dataset_name": x.dataset_name, "dataset_digest": x.dataset_digest,
        })).collect::<Vec<_>>(),
    })
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
    q: QueryMap,
) -> Result<Json<Value>, ApiError> {
    let ids = match q.get("experiment_id").filter(|s| !s.is_empty()) {
        Some(e) => vec![experiment_id(e)?],
        None => Vec::new(),
    };
    let mut models = st.tracking.store.logged_models(ws.id, &ids).await?;
    models.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
    Ok(Json(
        json!({ "logged_models": models.iter().map(model_json).collect::<Vec<_>>() }),
    ))
}

/// `GET .../logged-models/{id}`.
pub async fn get(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path(p): Path<BTreeMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let m = st
        .tracking
        .store
        .logged_model(ws.id, id_of(&p)?, false)
        .await?;
    Ok(Json(model_json(&m)))
}

/// `GET .../logged-models/{id}/artifacts?path=dir`: the directory's immediate children.
pub async fn list_files(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path(p): Path<BTreeMap<String, String>>,
    q: QueryMap,
) -> Result<Json<Value>, ApiError> {
    let files = st
        .tracking
        .list_artifacts(
            &ws,
            ArtifactScope::Model(id_of(&p)?),
            q.get("path").unwrap_or(""),
        )
        .await?;
    Ok(Json(json!({ "files": files })))
}

/// `GET .../logged-models/{id}/artifacts/{path}`: the bytes of one file.
pub async fn download(
    State(st): State<AppState>,
    Ws(ws): Ws,
    Path(p): Path<BTreeMap<String, String>>,
) -> Result<Response, ApiError> {
    let id = id_of(&p)?;
    let path = p.get("path").map(String::as_str).unwrap_or("");
    let (file, reader) = st
        .tracking
        .open_artifact(&ws, ArtifactScope::Model(id), path)
        .await?;
    Ok(artifact_response(&file, reader))
}
