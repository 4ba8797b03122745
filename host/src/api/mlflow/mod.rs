//! The MLflow-compatible REST API (`/api/2.0/mlflow`, `/api/2.0/mlflow-artifacts`), so that the
//! real `mlflow` client works unchanged. Mounted at the root for the `default` workspace and
//! under `/ws/{ws}` for any other.

mod artifacts;
mod experiments;
mod registry;
mod runs;

use axum::Json;
use axum::Router;
use axum::routing::{delete, get, patch, post};
use serde::Serialize;
use serde_json::{Value, json};

use super::AppState;
use super::wire::MetricOut;
use crate::workspace::{Experiment, Run};

/// Routes under one workspace scope.
pub fn routes() -> Router<AppState> {
    let mlflow = Router::new()
        .route("/experiments/create", post(experiments::create))
        .route("/experiments/get", get(experiments::get))
        .route("/experiments/get-by-name", get(experiments::get_by_name))
        .route(
            "/experiments/search",
            post(experiments::search).get(experiments::search_get),
        )
        .route("/experiments/update", post(experiments::update))
        .route("/experiments/delete", post(experiments::delete))
        .route("/experiments/restore", post(experiments::restore))
        .route(
            "/experiments/set-experiment-tag",
            post(experiments::set_tag),
        )
        .route(
            "/experiments/delete-experiment-tag",
            post(experiments::delete_tag),
        )
        .route("/runs/create", post(runs::create))
        .route("/runs/get", get(runs::get))
        .route("/runs/update", post(runs::update))
        .route("/runs/delete", post(runs::delete))
        .route("/runs/restore", post(runs::restore))
        .route("/runs/search", post(runs::search))
        .route("/runs/log-metric", post(runs::log_metric))
        .route("/runs/log-parameter", post(runs::log_param))
        .route("/runs/set-tag", post(runs::set_tag))
        .route("/runs/delete-tag", post(runs::delete_tag))
        .route("/runs/log-batch", post(runs::log_batch))
        .route("/metrics/get-history", get(runs::metric_history))
        .route("/artifacts/list", get(artifacts::list_for_run))
        .route("/registered-models/create", post(registry::create_model))
        .route("/registered-models/get", get(registry::get_model))
        .route("/registered-models/rename", post(registry::rename_model))
        .route("/registered-models/update", patch(registry::update_model))
        .route("/registered-models/delete", delete(registry::delete_model))
        .route("/registered-models/search", get(registry::search_models))
        .route(
            "/registered-models/get-latest-versions",
            post(registry::latest_versions).get(registry::latest_versions),
        )
        .route("/registered-models/set-tag", post(registry::set_model_tag))
        .route(
            "/registered-models/delete-tag",
            delete(registry::delete_model_tag),
        )
        .route(
            "/registered-models/alias",
            post(registry::set_alias)
                .delete(registry::delete_alias)
                .get(registry::get_by_alias),
        )
        .route("/model-versions/create", post(registry::create_version))
        .route("/model-versions/get", get(registry::get_version))
        .route("/model-versions/update", patch(registry::update_version))
        .route("/model-versions/delete", delete(registry::delete_version))
        .route("/model-versions/search", get(registry::search_versions))
        .route("/model-versions/set-tag", post(registry::set_version_tag))
        .route(
            "/model-versions/delete-tag",
            delete(registry::delete_version_tag),
        )
        .route(
            "/model-versions/get-download-uri",
            get(registry::download_uri),
        )
        .route(
            "/model-versions/transition-stage",
            post(registry::transition_stage),
        )
        .route(
            "/logged-models/search",
            post(artifacts::search_logged_models),
        );
    let artifacts = Router::new()
        .route("/artifacts", get(artifacts::list))
        .route(
            "/artifacts/{*path}",
            get(artifacts::download)
                .put(artifacts::upload)
                .delete(artifacts::delete),
        )
        .layer(axum::extract::DefaultBodyLimit::disable());
    Router::new()
        .nest("/api/2.0/mlflow", mlflow.clone())
        .nest("/ajax-api/2.0/mlflow", mlflow)
        .nest("/api/2.0/mlflow-artifacts", artifacts)
        .route("/api/3.0/mlflow/server-info", get(server_info))
}

/// What the MLflow client probes before artifact transfers: no multipart, no proxy tricks.
async fn server_info() -> Json<Value> {
    Json(json!({
        "store_type": "SqlStore",
        "workspaces_enabled": false,
        "multipart_uploads_enabled": false,
        "multipart_downloads_enabled": false
    }))
}

/// Validates MLflow's `[{key, value}]` tags into a map (a repeated key: the last one wins).
pub(crate) fn tag_map(
    tags: Vec<experiments::Tag>,
) -> Result<std::collections::BTreeMap<String, String>, crate::workspace::DomainError> {
    let map: std::collections::BTreeMap<String, String> =
        tags.into_iter().map(|t| (t.key, t.value)).collect();
    crate::workspace::validate::tags(&map)?;
    Ok(map)
}

#[derive(Serialize)]
struct KeyValue<'a> {
    key: &'a str,
    value: &'a str,
}

fn key_values(m: &std::collections::BTreeMap<String, String>) -> Vec<KeyValue<'_>> {
    m.iter()
        .map(|(k, v)| KeyValue { key: k, value: v })
        .collect()
}

/// An experiment in MLflow's JSON shape.
pub(crate) fn experiment_json(e: &Experiment) -> Value {
    json!({
        "experiment_id": e.id.to_string(),
        "name": e.name,
        "artifact_location": e.artifact_location,
        "lifecycle_stage": e.lifecycle_stage.as_str(),
        "creation_time": e.creation_time,
        "last_update_time": e.last_update_time,
        "tags": key_values(&e.tags),
    })
}

/// A run's info in MLflow's JSON shape.
pub(crate) fn run_info_json(r: &Run) -> Value {
    let mut info = json!({
        "run_id": r.id,
        "run_uuid": r.id,
        "run_name": r.name,
        "experiment_id": r.experiment_id.to_string(),
        "user_id": r.user_id,
        "status": r.status.as_str(),
        "start_time": r.start_time,
        "artifact_uri": r.artifact_uri,
        "lifecycle_stage": r.lifecycle_stage.as_str(),
    });
    if let Some(end) = r.end_time {
        info["end_time"] = json!(end);
    }
    info
}

/// A run with data in MLflow's JSON shape.
pub(crate) fn run_json(r: &Run) -> Value {
    let metrics: Vec<MetricOut> = r
        .metrics
        .iter()
        .map(|(k, p)| MetricOut {
            key: k.clone(),
            value: p.value,
            timestamp: p.timestamp,
            step: p.step,
        })
        .collect();
    json!({
        "info": run_info_json(r),
        "data": { "metrics": metrics, "params": key_values(&r.params), "tags": key_values(&r.tags) },
        "inputs": {},
    })
}
