//! The MLflow-compatible REST API (`/api/2.0/mlflow`, `/api/2.0/mlflow-artifacts`), so that the
//! real `mlflow` client works unchanged. Mounted at the root for the `default` workspace and
//! under `/ws/{ws}` for any other.

mod artifacts;
mod experiments;
mod inputs;
mod logged_models;
mod registry;
mod runs;

use axum::Json;
use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::routing::{delete, get, put};
use serde::Serialize;
use serde_json::{Value, json};

use super::routes::Api;
use super::wire::MetricOut;
use crate::auth::Policy;
use crate::workspace::{Experiment, Run};

/// Registers the MLflow routes at the root (`default` workspace) and under `/ws/{ws}`.
pub fn routes(api: &mut Api) {
    for scope in ["", "/ws/{ws}"] {
        api.scope(scope, |api| {
            api.scope("/api/2.0/mlflow", tracking_routes);
            api.scope("/ajax-api/2.0/mlflow", |api| {
                tracking_routes(api);
                api.post(
                    "/upload-artifact",
                    Policy::Write,
                    artifacts::upload_artifact,
                );
            });
            api.get("/get-artifact", Policy::Read, artifacts::get_artifact);
            api.get(
                "/model-versions/get-artifact",
                Policy::Read,
                artifacts::get_model_version_artifact,
            );
            api.scope("/api/2.0/mlflow-artifacts", artifact_routes);
            api.get("/api/3.0/mlflow/server-info", Policy::Public, server_info);
            api.get("/version", Policy::Public, version);
        });
    }
}

/// Tracking and registry routes below `/api/2.0/mlflow`.
fn tracking_routes(api: &mut Api) {
    use Policy::*;
    api.post("/experiments/create", Write, experiments::create)
        .get("/experiments/get", Read, experiments::get)
        .get("/experiments/get-by-name", Read, experiments::get_by_name)
        .post("/experiments/search", Read, experiments::search)
        .get("/experiments/search", Read, experiments::search_get)
        .post("/experiments/update", Write, experiments::update)
        .post("/experiments/delete", Write, experiments::delete)
        .post("/experiments/restore", Write, experiments::restore)
        .post(
            "/experiments/set-experiment-tag",
            Write,
            experiments::set_tag,
        )
        .post(
            "/experiments/delete-experiment-tag",
            Write,
            experiments::delete_tag,
        )
        .post("/runs/create", Write, runs::create)
        .get("/runs/get", Read, runs::get)
        .post("/runs/update", Write, runs::update)
        .post("/runs/delete", Write, runs::delete)
        .post("/runs/restore", Write, runs::restore)
        .post("/runs/search", Read, runs::search)
        .post("/runs/log-metric", Log, runs::log_metric)
        .post("/runs/log-parameter", Log, runs::log_param)
        .post("/runs/set-tag", Log, runs::set_tag)
        .post("/runs/delete-tag", Write, runs::delete_tag)
        .post("/runs/log-batch", Log, runs::log_batch)
        .get("/metrics/get-history", Read, runs::metric_history)
        .get(
            "/metrics/get-history-bulk-interval",
            Read,
            runs::metric_history_bulk_interval,
        )
        .get("/artifacts/list", Read, artifacts::list_for_run)
        .post("/registered-models/create", Write, registry::create_model)
        .get("/registered-models/get", Read, registry::get_model)
        .post("/registered-models/rename", Write, registry::rename_model)
        .patch("/registered-models/update", Write, registry::update_model)
        .delete("/registered-models/delete", Write, registry::delete_model)
        .get("/registered-models/search", Read, registry::search_models)
        .post(
            "/registered-models/get-latest-versions",
            Read,
            registry::latest_versions,
        )
        .get(
            "/registered-models/get-latest-versions",
            Read,
            registry::latest_versions,
        )
        .post("/registered-models/set-tag", Write, registry::set_model_tag)
        .delete(
            "/registered-models/delete-tag",
            Write,
            registry::delete_model_tag,
        )
        .post("/registered-models/alias", Write, registry::set_alias)
        .delete("/registered-models/alias", Write, registry::delete_alias)
        .get("/registered-models/alias", Read, registry::get_by_alias)
        .post("/model-versions/create", Write, registry::create_version)
        .get("/model-versions/get", Read, registry::get_version)
        .patch("/model-versions/update", Write, registry::update_version)
        .delete("/model-versions/delete", Write, registry::delete_version)
        .get("/model-versions/search", Read, registry::search_versions)
        .post("/model-versions/set-tag", Write, registry::set_version_tag)
        .delete(
            "/model-versions/delete-tag",
            Write,
            registry::delete_version_tag,
        )
        .get(
            "/model-versions/get-download-uri",
            Read,
            registry::download_uri,
        )
        .post(
            "/model-versions/transition-stage",
            Write,
            registry::transition_stage,
        )
        .post("/runs/log-inputs", Write, inputs::log_inputs)
        .post("/runs/outputs", Write, inputs::log_outputs)
        .post("/runs/log-model", Write, runs::log_model)
        .post(
            "/experiments/search-datasets",
            Read,
            inputs::search_datasets,
        )
        .post("/logged-models", Write, logged_models::create)
        .post("/logged-models/search", Read, logged_models::search)
        .get("/logged-models/{model_id}", Read, logged_models::get)
        .patch("/logged-models/{model_id}", Write, logged_models::finalize)
        .delete("/logged-models/{model_id}", Write, logged_models::delete)
        .patch(
            "/logged-models/{model_id}/tags",
            Write,
            logged_models::set_tags,
        )
        .delete(
            "/logged-models/{model_id}/tags/{tag_key}",
            Write,
            logged_models::delete_tag,
        )
        .post(
            "/logged-models/{model_id}/params",
            Write,
            logged_models::log_params,
        )
        .get(
            "/logged-models/{model_id}/artifacts/directories",
            Read,
            logged_models::list_artifacts,
        )
        .get(
            "/logged-models/{model_id}/artifacts/files",
            Read,
            logged_models::download_artifact,
        );
}

/// Artifact routes below `/api/2.0/mlflow-artifacts` (no body limit: uploads stream).
fn artifact_routes(api: &mut Api) {
    use Policy::*;
    let unlimited = DefaultBodyLimit::disable;
    api.add(
        Method::GET,
        "/artifacts",
        Read,
        get(artifacts::list).layer(unlimited()),
    )
    .add(
        Method::GET,
        "/artifacts/{*path}",
        Read,
        get(artifacts::download).layer(unlimited()),
    )
    .add(
        Method::PUT,
        "/artifacts/{*path}",
        Write,
        put(artifacts::upload).layer(unlimited()),
    )
    .add(
        Method::DELETE,
        "/artifacts/{*path}",
        Write,
        delete(artifacts::delete).layer(unlimited()),
    );
}

/// The MLflow client version this server's MLflow API is tested against (`mlflow==3.17.2`).
pub const MLFLOW_API_VERSION: &str = "3.17.2";

/// `GET /version`: the MLflow version whose REST API this server speaks, as `mlflow server`
/// answers it (plain text); the client reads it to decide which APIs the server has.
async fn version() -> &'static str {
    MLFLOW_API_VERSION
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

/// A run with data, inputs and outputs in MLflow's JSON shape.
pub(crate) fn run_json(r: &Run, io: Option<&crate::workspace::run_io::RunIo>) -> Value {
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
    let (inputs, outputs) = inputs::io_json(io);
    json!({
        "info": run_info_json(r),
        "data": { "metrics": metrics, "params": key_values(&r.params), "tags": key_values(&r.tags) },
        "inputs": inputs,
        "outputs": outputs,
    })
}
