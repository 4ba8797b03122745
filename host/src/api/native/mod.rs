//! The native REST API, `/api/v1`: resource-oriented, cursor-paginated.

mod access;
mod artifacts;
mod components;
mod datasets;
mod endpoints;
mod experiments;
mod jobs;
mod logged_models;
mod models;
mod runs;
mod secrets;
mod workspaces;

use std::collections::BTreeMap;

use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::routing::{post, put};
use serde::Serialize;

use super::routes::Api;
use super::wire::ser_f64;
use crate::auth::{Policy, Principal, Role};
use crate::workspace::{Experiment, MetricPoint, Run};

/// Registers the routes below `/api/v1`.
pub fn routes(api: &mut Api) {
    use Policy::*;
    api.scope("/api/v1", |api| {
        api.get("/workspaces", Authenticated, workspaces::list)
            .put("/workspaces/{ws}", PutWorkspace, workspaces::put)
            .get("/workspaces/{ws}", Read, workspaces::get)
            .delete("/workspaces/{ws}", Own, workspaces::delete)
            .post("/gc", Admin, workspaces::gc)
            .get("/routes", Admin, access::route_table)
            .get("/whoami", Authenticated, access::whoami)
            .get("/users", Admin, access::list_users)
            .post("/users", Admin, access::create_user)
            .get("/users/{user}", Admin, access::get_user)
            .delete("/users/{user}", Admin, access::delete_user)
            .get("/tokens", Authenticated, access::list_tokens)
            .post("/tokens", Authenticated, access::create_token)
            .delete("/tokens/{id}", Authenticated, access::revoke_token)
            .get("/audit", Admin, access::host_audit);
        api.scope("/workspaces/{ws}", workspace_routes);
    });
}

/// Routes of one workspace.
fn workspace_routes(api: &mut Api) {
    use Policy::*;
    let component_limit =
        || DefaultBodyLimit::max(crate::plugins::manifest::MAX_COMPONENT_BYTES + (1 << 20));
    api.get("/experiments", Read, experiments::list)
        .post("/experiments", Write, experiments::create)
        .get("/experiments/{id}", Read, experiments::get)
        .patch("/experiments/{id}", Write, experiments::update)
        .delete("/experiments/{id}", Write, experiments::delete)
        .post("/experiments/{id}", Write, experiments::action)
        .get("/runs", Read, runs::list)
        .post("/runs", Write, runs::create)
        .post("/runs:search", Read, runs::search)
        .post("/runs:bulk", Write, runs::bulk)
        .get("/runs/{id}", Read, runs::get)
        .patch("/runs/{id}", Write, runs::update)
        .delete("/runs/{id}", Write, runs::delete)
        .post("/runs/{id}", Write, runs::action)
        .post("/runs/{id}/log", Log, runs::log)
        .get("/runs/{id}/metrics/{*key}", Read, runs::metric_history)
        .delete("/runs/{id}/tags/{*key}", Write, runs::delete_tag)
        .get("/runs/{id}/artifacts", Read, artifacts::list)
        .get("/runs/{id}/artifacts/{*path}", Read, artifacts::download)
        .add(
            Method::PUT,
            "/runs/{id}/artifacts/{*path}",
            Write,
            put(artifacts::upload).layer(DefaultBodyLimit::disable()),
        )
        .delete("/runs/{id}/artifacts/{*path}", Write, artifacts::delete)
        .get("/logged-models", Read, logged_models::list)
        .get("/logged-models/{id}", Read, logged_models::get)
        .get(
            "/logged-models/{id}/artifacts",
            Read,
            logged_models::list_files,
        )
        .get(
            "/logged-models/{id}/artifacts/{*path}",
            Read,
            logged_models::download,
        )
        .get("/components", Read, components::list)
        .add(
            Method::PUT,
            "/components/{name}/versions/{version}",
            Write,
            put(components::push).layer(component_limit()),
        )
        .get(
            "/components/{name}/versions/{version}",
            Read,
            components::get,
        )
        .delete(
            "/components/{name}/versions/{version}",
            Write,
            components::delete,
        )
        .get("/datastores", Read, components::list_datastores)
        .put("/datastores/{name}", Write, components::create_datastore)
        .get("/datastores/{name}", Read, components::get_datastore)
        .delete("/datastores/{name}", Write, components::delete_datastore)
        .get("/endpoints", Read, endpoints::list)
        .put("/endpoints/{name}", Write, endpoints::put)
        .get("/endpoints/{name}", Read, endpoints::get)
        .delete("/endpoints/{name}", Write, endpoints::delete)
        .post("/endpoints/{name}", Write, endpoints::action)
        .put(
            "/endpoints/{name}/deployments/{deployment}",
            Write,
            endpoints::put_deployment,
        )
        .delete(
            "/endpoints/{name}/deployments/{deployment}",
            Write,
            endpoints::delete_deployment,
        )
        .put("/endpoints/{name}/traffic", Write, endpoints::traffic)
        .get("/endpoints/{name}/metrics", Read, endpoints::metrics)
        .get("/datasets", Read, datasets::list)
        .add(
            Method::POST,
            "/datasets/{name}/versions",
            Write,
            post(datasets::create).layer(DefaultBodyLimit::max(crate::tracking::MAX_DATASET_BYTES)),
        )
        .get("/datasets/{name}/versions/{version}", Read, datasets::get)
        .delete(
            "/datasets/{name}/versions/{version}",
            Write,
            datasets::delete,
        )
        .get(
            "/datasets/{name}/versions/{version}/data",
            Read,
            datasets::download,
        )
        .get("/jobs", Read, jobs::list)
        .add(
            Method::POST,
            "/jobs",
            Write,
            post(jobs::submit).layer(DefaultBodyLimit::max(jobs::MAX_CODE_BYTES + (1 << 20))),
        )
        .get("/jobs/{id}", Read, jobs::get)
        .post("/jobs/{id}", Write, jobs::action)
        .get("/jobs/{id}/logs", Read, jobs::logs)
        .get("/jobs/{id}/trials", Read, jobs::trials)
        .get("/models", Read, models::list)
        .get("/models/{name}", Read, models::get)
        .patch("/models/{name}", Write, models::update)
        .delete("/models/{name}", Write, models::delete)
        .get("/models/{name}/versions", Read, models::list_versions)
        .add(
            Method::POST,
            "/models/{name}/versions",
            Write,
            post(models::register).layer(DefaultBodyLimit::max(
                crate::tracking::MAX_MODEL_UPLOAD_BYTES + (1 << 20),
            )),
        )
        .get(
            "/models/{name}/versions/{version}",
            Read,
            models::get_version,
        )
        .patch(
            "/models/{name}/versions/{version}",
            Write,
            models::update_version,
        )
        .delete(
            "/models/{name}/versions/{version}",
            Write,
            models::delete_version,
        )
        .get(
            "/models/{name}/versions/{version}/files/{*path}",
            Read,
            models::download,
        )
        .put("/models/{name}/aliases/{alias}", Write, models::put_alias)
        .delete(
            "/models/{name}/aliases/{alias}",
            Write,
            models::delete_alias,
        )
        .get("/secrets", Read, secrets::list)
        .get("/secrets/{name}", Read, secrets::get)
        .put("/secrets/{name}", Write, secrets::put)
        .delete("/secrets/{name}", Write, secrets::delete)
        .get("/roles", Read, access::list_roles)
        .put("/roles/{user}", Own, access::assign_role)
        .delete("/roles/{user}", Own, access::remove_role)
        .get("/audit", Own, access::workspace_audit);
}

/// Checks the caller holds at least `need` on a workspace, for rules finer than a route's
/// policy (e.g. granting secrets needs Owner where the route needs Contributor).
pub(crate) async fn require_role(
    st: &crate::api::AppState,
    p: &Principal,
    ws: &str,
    need: Role,
    what: &str,
) -> Result<(), crate::api::error::ApiError> {
    let has = match p.identity() {
        Some(id) => st.access.role(id, ws).await?,
        None => None,
    };
    if has.is_some_and(|r| r >= need) {
        Ok(())
    } else {
        Err(crate::workspace::DomainError::PermissionDenied(format!(
            "{what} needs the {} role on workspace '{ws}'",
            need.as_str()
        ))
        .into())
    }
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
