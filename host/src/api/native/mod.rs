//! The native REST API, `/api/v1`: resource-oriented, cursor-paginated.

mod artifacts;
mod components;
mod datasets;
mod endpoints;
mod experiments;
mod jobs;
mod models;
mod runs;
mod secrets;
mod workspaces;

use std::collections::BTreeMap;

use axum::Router;
use axum::routing::{delete, get, post, put};
use serde::Serialize;

use super::AppState;
use super::wire::ser_f64;
use crate::workspace::{Experiment, MetricPoint, Run};

/// Routes below `/api/v1`.
pub fn routes() -> Router<AppState> {
    let ws = Router::new()
        .route(
            "/experiments",
            get(experiments::list).post(experiments::create),
        )
        .route(
            "/experiments/{id}",
            get(experiments::get)
                .patch(experiments::update)
                .delete(experiments::delete)
                .post(experiments::action),
        )
        .route("/runs", get(runs::list).post(runs::create))
        .route("/runs:search", post(runs::search))
        .route("/runs:bulk", post(runs::bulk))
        .route(
            "/runs/{id}",
            get(runs::get)
                .patch(runs::update)
                .delete(runs::delete)
                .post(runs::action),
        )
        .route("/runs/{id}/log", post(runs::log))
        .route("/runs/{id}/metrics/{*key}", get(runs::metric_history))
        .route("/runs/{id}/tags/{*key}", delete(runs::delete_tag))
        .route("/components", get(components::list))
        .route(
            "/components/{name}/versions/{version}",
            put(components::push)
                .get(components::get)
                .delete(components::delete)
                .layer(axum::extract::DefaultBodyLimit::max(
                    crate::plugins::manifest::MAX_COMPONENT_BYTES + (1 << 20),
                )),
        )
        .route("/datastores", get(components::list_datastores))
        .route(
            "/datastores/{name}",
            put(components::create_datastore)
                .get(components::get_datastore)
                .delete(components::delete_datastore),
        )
        .route("/endpoints", get(endpoints::list))
        .route(
            "/endpoints/{name}",
            put(endpoints::put)
                .get(endpoints::get)
                .delete(endpoints::delete)
                .post(endpoints::action),
        )
        .route(
            "/endpoints/{name}/deployments/{deployment}",
            put(endpoints::put_deployment).delete(endpoints::delete_deployment),
        )
        .route("/endpoints/{name}/traffic", put(endpoints::traffic))
        .route("/endpoints/{name}/metrics", get(endpoints::metrics))
        .route("/datasets", get(datasets::list))
        .route(
            "/datasets/{name}/versions",
            post(datasets::create).layer(axum::extract::DefaultBodyLimit::max(
                crate::tracking::MAX_DATASET_BYTES,
            )),
        )
        .route(
            "/datasets/{name}/versions/{version}",
            get(datasets::get).delete(datasets::delete),
        )
        .route(
            "/datasets/{name}/versions/{version}/data",
            get(datasets::download),
        )
        .route(
            "/jobs",
            get(jobs::list)
                .post(jobs::submit)
                .layer(axum::extract::DefaultBodyLimit::max(
                    jobs::MAX_CODE_BYTES + (1 << 20),
                )),
        )
        .route("/jobs/{id}", get(jobs::get).post(jobs::action))
        .route("/jobs/{id}/logs", get(jobs::logs))
        .route("/jobs/{id}/trials", get(jobs::trials))
        .route("/models", get(models::list))
        .route(
            "/models/{name}",
            get(models::get)
                .patch(models::update)
                .delete(models::delete),
        )
        .route(
            "/models/{name}/versions",
            get(models::list_versions).post(models::register).layer(
                axum::extract::DefaultBodyLimit::max(
                    crate::tracking::MAX_MODEL_UPLOAD_BYTES + (1 << 20),
                ),
            ),
        )
        .route(
            "/models/{name}/versions/{version}",
            get(models::get_version)
                .patch(models::update_version)
                .delete(models::delete_version),
        )
        .route(
            "/models/{name}/versions/{version}/files/{*path}",
            get(models::download),
        )
        .route(
            "/models/{name}/aliases/{alias}",
            put(models::put_alias).delete(models::delete_alias),
        )
        // --- secrets (key vault): values go in, only metadata comes out ---
        .route("/secrets", get(secrets::list))
        .route(
            "/secrets/{name}",
            put(secrets::put).get(secrets::get).delete(secrets::delete),
        )
        // --- end secrets ---
        .route("/runs/{id}/artifacts", get(artifacts::list))
        .route(
            "/runs/{id}/artifacts/{*path}",
            get(artifacts::download)
                .put(artifacts::upload)
                .delete(artifacts::delete)
                .layer(axum::extract::DefaultBodyLimit::disable()),
        );
    Router::new()
        .route("/workspaces", get(workspaces::list))
        .route(
            "/workspaces/{ws}",
            put(workspaces::put)
                .get(workspaces::get)
                .delete(workspaces::delete),
        )
        .route("/gc", post(workspaces::gc))
        .nest("/workspaces/{ws}", ws)
}

/// A metric point in native JSON.
#[derive(Serialize)]
pub(crate) struct PointJson {
    #[serde(serialize_with = "ser_f64")]
    value: f64,
    step: i64,
    timestamp: i64,
}

impl From<&MetricPoint> for PointJson {
    fn from(p: &MetricPoint) -> Self {
        Self {
            value: p.value,
            step: p.step,
            timestamp: p.timestamp,
        }
    }
}

/// A run in native JSON.
#[derive(Serialize)]
pub(crate) struct RunJson<'a> {
    id: &'a str,
    experiment_id: i64,
    name: &'a str,
    status: &'static str,
    user_id: &'a str,
    start_time: i64,
    end_time: Option<i64>,
    lifecycle_stage: &'static str,
    parent_run_id: Option<&'a str>,
    artifact_uri: &'a str,
    params: &'a BTreeMap<String, String>,
    metrics: BTreeMap<&'a str, PointJson>,
    tags: &'a BTreeMap<String, String>,
}

impl<'a> From<&'a Run> for RunJson<'a> {
    fn from(r: &'a Run) -> Self {
        Self {
            id: &r.id,
            experiment_id: r.experiment_id,
            name: &r.name,
            status: r.status.as_str(),
            user_id: &r.user_id,
            start_time: r.start_time,
            end_time: r.end_time,
            lifecycle_stage: r.lifecycle_stage.as_str(),
            parent_run_id: r.parent_run_id.as_deref(),
            artifact_uri: &r.artifact_uri,
            params: &r.params,
            metrics: r
                .metrics
                .iter()
                .map(|(k, p)| (k.as_str(), p.into()))
                .collect(),
            tags: &r.tags,
        }
    }
}

/// An experiment in native JSON.
#[derive(Serialize)]
pub(crate) struct ExperimentJson<'a> {
    id: i64,
    name: &'a str,
    lifecycle_stage: &'static str,
    artifact_location: &'a str,
    creation_time: i64,
    last_update_time: i64,
    artifact_datastore: Option<&'a str>,
    tags: &'a BTreeMap<String, String>,
}

impl<'a> From<&'a Experiment> for ExperimentJson<'a> {
    fn from(e: &'a Experiment) -> Self {
        Self {
            id: e.id,
            name: &e.name,
            lifecycle_stage: e.lifecycle_stage.as_str(),
            artifact_location: &e.artifact_location,
            creation_time: e.creation_time,
            last_update_time: e.last_update_time,
            artifact_datastore: e.artifact_datastore.as_deref(),
            tags: &e.tags,
        }
    }
}

/// Splits `"{id}:{action}"` from a POST on an item route.
pub(crate) fn split_action(target: &str) -> Result<(&str, &str), crate::workspace::DomainError> {
    target.split_once(':').ok_or_else(|| {
        crate::workspace::DomainError::NotFound(format!(
            "POST /{target} is not an action; use POST {{id}}:<action>"
        ))
    })
}
