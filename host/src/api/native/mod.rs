//! The native REST API, `/api/v1`: resource-oriented, cursor-paginated.

mod access;
mod artifacts;
mod components;
mod compute;
mod datasets;
mod endpoints;
mod environments;
mod experiments;
mod jobs;
mod logged_models;
mod models;
mod pipelines;
mod runs;
mod secrets;
mod workspaces;

use std::collections::BTreeMap;

use axum::extract::DefaultBodyLimit;
use axum::http::Method as M;
use schemars::JsonSchema;
use serde::Serialize;

use super::routes::{Api, doc};
use super::wire::{WireF64, ser_f64};
use crate::auth::{Policy, Principal, Role};
use crate::workspace::{Experiment, LifecycleStage, MetricPoint, Run, RunStatus};

/// Registers the routes below `/api/v1`, each with its policy and its documentation.
pub fn routes(api: &mut Api) {
    use Policy::*;
    api.scope("/api/v1", |api| {
        api.route(
            M::GET,
            "/workspaces",
            Authenticated,
            doc("List the workspaces you can see", workspaces::list),
        )
        .route(
            M::PUT,
            "/workspaces/{ws}",
            PutWorkspace,
            doc("Create or update a workspace", workspaces::put),
        )
        .route(
            M::GET,
            "/workspaces/{ws}",
            Read,
            doc("Get a workspace", workspaces::get),
        )
        .route(
            M::DELETE,
            "/workspaces/{ws}",
            Own,
            doc(
                "Delete a workspace and everything in it",
                workspaces::delete,
            ),
        )
        .route(
            M::POST,
            "/gc",
            Admin,
            doc("Purge deleted runs and unreferenced blobs", workspaces::gc),
        )
        .route(
            M::POST,
            "/scheduler/tick",
            Admin,
            doc(
                "Run one scheduler pass as of a given time (replaying a window; tests)",
                pipelines::scheduler_tick,
            ),
        )
        .route(
            M::GET,
            "/routes",
            Admin,
            doc(
                "The route table with each route's policy",
                access::route_table,
            ),
        )
        .route(
            M::GET,
            "/whoami",
            Authenticated,
            doc("The caller, their token and roles", access::whoami),
        )
        .route(
            M::GET,
            "/users",
            Admin,
            doc("List users", access::list_users),
        )
        .route(
            M::POST,
            "/users",
            Admin,
            doc("Create a user", access::create_user),
        )
        .route(
            M::GET,
            "/users/{user}",
            Admin,
            doc("Get a user with their roles", access::get_user),
        )
        .route(
            M::DELETE,
            "/users/{user}",
            Admin,
            doc("Delete a user, their tokens and roles", access::delete_user),
        )
        .route(
            M::GET,
            "/tokens",
            Authenticated,
            doc("List your tokens (admins: anyone's)", access::list_tokens),
        )
        .route(
            M::POST,
            "/tokens",
            Authenticated,
            doc("Create a token (shown once)", access::create_token),
        )
        .route(
            M::DELETE,
            "/tokens/{id}",
            Authenticated,
            doc("Revoke a token", access::revoke_token),
        )
        .route(
            M::GET,
            "/audit",
            Admin,
            doc("The host's audit log, newest first", access::host_audit),
        );
        api.scope("/workspaces/{ws}", workspace_routes);
    });
}

/// Routes of one workspace.
fn workspace_routes(api: &mut Api) {
    use Policy::*;
    let component_limit =
        || DefaultBodyLimit::max(crate::plugins::manifest::MAX_COMPONENT_BYTES + (1 << 20));
    api.route(
        M::GET,
        "/experiments",
        Read,
        doc("Search experiments", experiments::list),
    )
    .route(
        M::POST,
        "/experiments",
        Write,
        doc("Create an experiment", experiments::create),
    )
    .route(
        M::GET,
        "/experiments/{id}",
        Read,
        doc("Get an experiment", experiments::get),
    )
    .route(
        M::PATCH,
        "/experiments/{id}",
        Write,
        doc(
            "Rename, tag or move an experiment's artifacts",
            experiments::update,
        ),
    )
    .route(
        M::DELETE,
        "/experiments/{id}",
        Write,
        doc("Delete an experiment (restorable)", experiments::delete),
    )
    .route(
        M::POST,
        "/experiments/{id}",
        Write,
        doc("Restore a deleted experiment", experiments::restore).action("restore"),
    )
    .route(M::GET, "/runs", Read, doc("Search runs", runs::list))
    .route(M::POST, "/runs", Write, doc("Create a run", runs::create))
    .route(
        M::POST,
        "/runs:search",
        Read,
        doc("Search runs (the query as a JSON body)", runs::search),
    )
    .route(
        M::POST,
        "/runs:bulk",
        Write,
        doc(
            "Import finished runs with their data in one transaction",
            runs::bulk,
        ),
    )
    .route(M::GET, "/runs/{id}", Read, doc("Get a run", runs::get))
    .route(
        M::PATCH,
        "/runs/{id}",
        Write,
        doc("Update a run's status, end time or name", runs::update),
    )
    .route(
        M::DELETE,
        "/runs/{id}",
        Write,
        doc("Delete a run (restorable)", runs::delete),
    )
    .route(
        M::POST,
        "/runs/{id}",
        Write,
        doc("Restore a deleted run", runs::restore).action("restore"),
    )
    .route(
        M::POST,
        "/runs/{id}/log",
        Log,
        doc("Log metrics, params and tags, all or nothing", runs::log),
    )
    .route(
        M::GET,
        "/runs/{id}/metrics/{*key}",
        Read,
        doc(
            "A metric's history, optionally downsampled",
            runs::metric_history,
        ),
    )
    .route(
        M::DELETE,
        "/runs/{id}/tags/{*key}",
        Write,
        doc("Delete a run tag", runs::delete_tag),
    )
    .route(
        M::GET,
        "/runs/{id}/artifacts",
        Read,
        doc("List a directory of a run's artifacts", artifacts::list),
    )
    .route(
        M::GET,
        "/runs/{id}/artifacts/{*path}",
        Read,
        doc("Download an artifact", artifacts::download),
    )
    .route(
        M::PUT,
        "/runs/{id}/artifacts/{*path}",
        Write,
        doc("Upload an artifact (streamed)", artifacts::upload)
            .body_limit(DefaultBodyLimit::disable()),
    )
    .route(
        M::DELETE,
        "/runs/{id}/artifacts/{*path}",
        Write,
        doc("Delete an artifact file or directory", artifacts::delete),
    )
    .route(
        M::GET,
        "/logged-models",
        Read,
        doc(
            "List MLflow logged models, newest first",
            logged_models::list,
        ),
    )
    .route(
        M::GET,
        "/logged-models/{id}",
        Read,
        doc("Get an MLflow logged model", logged_models::get),
    )
    .route(
        M::GET,
        "/logged-models/{id}/artifacts",
        Read,
        doc(
            "List a directory of a logged model's files",
            logged_models::list_files,
        ),
    )
    .route(
        M::GET,
        "/logged-models/{id}/artifacts/{*path}",
        Read,
        doc("Download a file of a logged model", logged_models::download),
    )
    .route(
        M::GET,
        "/components",
        Read,
        doc("List components", components::list),
    )
    .route(
        M::PUT,
        "/components/{name}/versions/{version}",
        Write,
        doc("Push a component version (multipart)", components::push).body_limit(component_limit()),
    )
    .route(
        M::GET,
        "/components/{name}/versions/{version}",
        Read,
        doc("Get a component version", components::get),
    )
    .route(
        M::DELETE,
        "/components/{name}/versions/{version}",
        Write,
        doc("Delete a component version", components::delete),
    )
    .route(
        M::GET,
        "/compute",
        Read,
        doc("List compute targets", compute::list),
    )
    .route(
        M::PUT,
        "/compute/{name}",
        Own,
        doc(
            "Create a compute target (a target plugin with one granted host and secrets)",
            compute::create,
        ),
    )
    .route(
        M::GET,
        "/compute/{name}",
        Read,
        doc(
            "Get a compute target with its engine's pools and health",
            compute::get,
        ),
    )
    .route(
        M::DELETE,
        "/compute/{name}",
        Own,
        doc("Delete a compute target no unfinished job uses", compute::delete),
    )
    .route(M::GET, "/pipelines", Read, doc("List pipelines (the latest version of each)", pipelines::list))
    .route(
        M::POST,
        "/pipelines",
        Write,
        doc(
            "Publish a pipeline version (a JSON, TOML or YAML spec; multipart with a code archive); the same content returns its version",
            pipelines::publish,
        )
        .body_limit(DefaultBodyLimit::max(pipelines::MAX_CODE_BYTES + (1 << 20))),
    )
    .route(M::GET, "/pipelines/{name}", Read, doc("List a pipeline's versions, newest first", pipelines::versions))
    .route(
        M::GET,
        "/pipelines/{name}/versions/{version}",
        Read,
        doc("Get a pipeline version (a number or latest)", pipelines::get),
    )
    .route(
        M::POST,
        "/pipelines/{name}/runs",
        Write,
        doc("Submit a run of a pipeline (name, name:version or name@latest)", pipelines::submit),
    )
    .route(
        M::POST,
        "/pipelines/{name}/plan",
        Read,
        doc("Plan a run: each step's cache key and whether it would hit; nothing runs", pipelines::plan),
    )
    .route(M::GET, "/pipeline-runs", Read, doc("List pipeline runs, newest first", pipelines::runs))
    .route(
        M::GET,
        "/pipeline-runs/{id}",
        Read,
        doc("Get a pipeline run: its steps with states, jobs, runs, outputs and cache hits", pipelines::run),
    )
    .route(
        M::POST,
        "/pipeline-runs/{id}/rerun",
        Write,
        doc("Rerun a finished pipeline run from a step, or its failed steps", pipelines::rerun),
    )
    .route(M::POST, "/pipeline-runs/{id}/cancel", Write, doc("Cancel a pipeline run", pipelines::cancel))
    .route(M::GET, "/schedules", Read, doc("List schedules", pipelines::list_schedules))
    .route(
        M::PUT,
        "/schedules/{name}",
        Write,
        doc("Create a schedule of pipeline runs (cron or recurrence)", pipelines::create_schedule),
    )
    .route(
        M::GET,
        "/schedules/{name}",
        Read,
        doc("Get a schedule with its next and latest ticks", pipelines::get_schedule),
    )
    .route(M::POST, "/schedules/{name}/enable", Write, doc("Enable a schedule", pipelines::enable))
    .route(M::POST, "/schedules/{name}/disable", Write, doc("Disable a schedule", pipelines::disable))
    .route(M::DELETE, "/schedules/{name}", Write, doc("Delete a schedule", pipelines::delete_schedule))
    .route(
        M::GET,
        "/datastores",
        Read,
        doc("List datastores", components::list_datastores),
    )
    .route(
        M::PUT,
        "/datastores/{name}",
        Write,
        doc("Create a datastore", components::create_datastore),
    )
    .route(
        M::GET,
        "/datastores/{name}",
        Read,
        doc("Get a datastore", components::get_datastore),
    )
    .route(
        M::DELETE,
        "/datastores/{name}",
        Write,
        doc("Delete a datastore", components::delete_datastore),
    )
    .route(
        M::POST,
        "/datastores/{name}/default",
        Write,
        doc(
            "Make a datastore the workspace's default (for new datasets, models and artifacts)",
            components::set_default_datastore,
        ),
    )
    .route(
        M::GET,
        "/endpoints",
        Read,
        doc("List endpoints", endpoints::list),
    )
    .route(
        M::PUT,
        "/endpoints/{name}",
        Write,
        doc(
            "Create (answers the key once) or update an endpoint",
            endpoints::put,
        ),
    )
    .route(
        M::GET,
        "/endpoints/{name}",
        Read,
        doc("Get an endpoint", endpoints::get),
    )
    .route(
        M::DELETE,
        "/endpoints/{name}",
        Write,
        doc("Delete an endpoint", endpoints::delete),
    )
    .route(
        M::POST,
        "/endpoints/{name}",
        Write,
        doc(
            "Replace the endpoint's key (answers the new key once)",
            endpoints::regenerate_key,
        )
        .action("regenerate-key"),
    )
    .route(
        M::PUT,
        "/endpoints/{name}/deployments/{deployment}",
        Write,
        doc(
            "Create or update a deployment (warm before traffic moves)",
            endpoints::put_deployment,
        ),
    )
    .route(
        M::DELETE,
        "/endpoints/{name}/deployments/{deployment}",
        Write,
        doc("Delete a deployment", endpoints::delete_deployment),
    )
    .route(
        M::PUT,
        "/endpoints/{name}/traffic",
        Write,
        doc("Set the traffic split and mirror", endpoints::traffic),
    )
    .route(
        M::GET,
        "/endpoints/{name}/metrics",
        Read,
        doc(
            "Request counters and latency by deployment",
            endpoints::metrics,
        ),
    )
    .route(
        M::GET,
        "/datasets",
        Read,
        doc("List dataset versions", datasets::list),
    )
    .route(
        M::POST,
        "/datasets/{name}/versions",
        Write,
        doc("Upload a CSV as the next version", datasets::create)
            .body_limit(DefaultBodyLimit::max(crate::service::MAX_DATASET_BYTES)),
    )
    .route(
        M::GET,
        "/datasets/{name}/versions/{version}",
        Read,
        doc(
            "Get a dataset version with its schema and a preview",
            datasets::get,
        ),
    )
    .route(
        M::DELETE,
        "/datasets/{name}/versions/{version}",
        Write,
        doc("Delete a dataset version", datasets::delete),
    )
    .route(
        M::GET,
        "/datasets/{name}/versions/{version}/data",
        Read,
        doc("Download a dataset version's CSV", datasets::download),
    )
    .route(
        M::GET,
        "/environments",
        Read,
        doc(
            "List environments (every version; the built-in first)",
            environments::list,
        ),
    )
    .route(
        M::POST,
        "/environments",
        Write,
        doc(
            "Create the next version of an environment (the latest when identical)",
            environments::create,
        ),
    )
    .route(
        M::GET,
        "/environments/{name}",
        Read,
        doc("List an environment's versions", environments::versions),
    )
    .route(
        M::GET,
        "/environments/{name}/versions/{version}",
        Read,
        doc(
            "Get an environment version (a number or latest)",
            environments::get,
        ),
    )
    .route(
        M::GET,
        "/jobs",
        Read,
        doc("List jobs, newest first", jobs::list),
    )
    .route(
        M::POST,
        "/jobs",
        Write,
        doc(
            "Submit a job (a JSON, TOML or YAML spec; multipart with a code archive)",
            jobs::submit,
        )
        .body_limit(DefaultBodyLimit::max(jobs::MAX_CODE_BYTES + (1 << 20))),
    )
    .route(
        M::GET,
        "/jobs/{id}",
        Read,
        doc("Get a job with its live progress", jobs::get),
    )
    .route(
        M::POST,
        "/jobs/{id}",
        Write,
        doc("Cancel a job", jobs::cancel).action("cancel"),
    )
    .route(
        M::GET,
        "/jobs/{id}/logs",
        Read,
        doc(
            "A job's log (its tail, or followed until it ends)",
            jobs::logs,
        ),
    )
    .route(
        M::GET,
        "/jobs/{id}/work",
        // reachable with any read role; the handler accepts only the attempt's job token
        Read,
        doc(
            "The work of a job's running attempt, for its worker (job token only)",
            jobs::work,
        ),
    )
    .route(
        M::POST,
        "/jobs/{id}/events",
        Write,
        doc(
            "A worker's heartbeat with a batch of log output and metrics (stored once per batch id)",
            jobs::events,
        ),
    )
    .route(
        M::POST,
        "/jobs/{id}/result",
        Write,
        doc("How a worker's attempt ended", jobs::result),
    )
    .route(
        M::GET,
        "/jobs/{id}/trials",
        Read,
        doc("The leaderboard of a sweep or AutoML job", jobs::trials),
    )
    .route(
        M::GET,
        "/models",
        Read,
        doc("List registered models", models::list),
    )
    .route(
        M::GET,
        "/models/{name}",
        Read,
        doc("Get a model with its versions", models::get),
    )
    .route(
        M::PATCH,
        "/models/{name}",
        Write,
        doc("Rename, describe or tag a model", models::update),
    )
    .route(
        M::DELETE,
        "/models/{name}",
        Write,
        doc("Delete a model with all its versions", models::delete),
    )
    .route(
        M::GET,
        "/models/{name}/versions",
        Read,
        doc("List a model's versions", models::list_versions),
    )
    .route(
        M::POST,
        "/models/{name}/versions",
        Write,
        doc(
            "Register the next version (from a run's artifacts, or uploaded as multipart)",
            models::register,
        )
        // uploads stream into the datastore: no size limit
        .body_limit(DefaultBodyLimit::disable()),
    )
    .route(
        M::GET,
        "/models/{name}/versions/{version}",
        Read,
        doc(
            "Get a version (a number, @alias or latest) with its files",
            models::get_version,
        ),
    )
    .route(
        M::PATCH,
        "/models/{name}/versions/{version}",
        Write,
        doc("Describe, stage or tag a version", models::update_version),
    )
    .route(
        M::DELETE,
        "/models/{name}/versions/{version}",
        Write,
        doc("Delete a version", models::delete_version),
    )
    .route(
        M::GET,
        "/models/{name}/versions/{version}/files/{*path}",
        Read,
        doc("Download a file of a version", models::download),
    )
    .route(
        M::POST,
        "/models/{name}/versions/{version}/predict",
        // scores rows with the version's model; nothing is stored
        Read,
        doc(
            "Score rows with a model version (MLflow's dataframe_split or dataframe_records)",
            models::predict,
        ),
    )
    .route(
        M::PUT,
        "/models/{name}/aliases/{alias}",
        Write,
        doc("Point an alias at a version", models::put_alias),
    )
    .route(
        M::DELETE,
        "/models/{name}/aliases/{alias}",
        Write,
        doc("Delete an alias", models::delete_alias),
    )
    .route(
        M::GET,
        "/secrets",
        Read,
        doc("List secrets (metadata only)", secrets::list),
    )
    .route(
        M::GET,
        "/secrets/{name}",
        Read,
        doc(
            "A secret's metadata and the datastores granted it",
            secrets::get,
        ),
    )
    .route(
        M::PUT,
        "/secrets/{name}",
        Write,
        doc("Set a secret (the value is never answered)", secrets::put),
    )
    .route(
        M::DELETE,
        "/secrets/{name}",
        Write,
        doc("Delete a secret", secrets::delete),
    )
    .route(
        M::GET,
        "/roles",
        Read,
        doc("The workspace's role assignments", access::list_roles),
    )
    .route(
        M::PUT,
        "/roles/{user}",
        Own,
        doc("Assign or change a user's role", access::assign_role),
    )
    .route(
        M::DELETE,
        "/roles/{user}",
        Own,
        doc("Remove a user's role", access::remove_role),
    )
    .route(
        M::GET,
        "/audit",
        Own,
        doc(
            "The workspace's audit log, newest first",
            access::workspace_audit,
        ),
    );
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
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "MetricPoint")]
pub(crate) struct PointJson {
    /// The value (NaN and infinities as strings).
    #[serde(serialize_with = "ser_f64")]
    #[schemars(with = "WireF64")]
    value: f64,
    /// Training step.
    step: i64,
    /// Milliseconds since the epoch.
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
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "Run")]
pub(crate) struct RunJson {
    /// Public id: 32 hex characters.
    id: String,
    /// The experiment's id.
    experiment_id: i64,
    /// Display name.
    name: String,
    /// State.
    status: RunStatus,
    /// Who created it.
    user_id: String,
    /// Milliseconds since the epoch.
    start_time: i64,
    /// Once ended.
    end_time: Option<i64>,
    /// Active or deleted.
    lifecycle_stage: LifecycleStage,
    /// The parent run, for nested runs.
    parent_run_id: Option<String>,
    /// Where the run's artifacts live, as an MLflow URI.
    artifact_uri: String,
    /// Parameters.
    params: BTreeMap<String, String>,
    /// The latest point of each metric.
    metrics: BTreeMap<String, PointJson>,
    /// Tags.
    tags: BTreeMap<String, String>,
}

impl From<Run> for RunJson {
    fn from(r: Run) -> Self {
        Self {
            metrics: r
                .metrics
                .iter()
                .map(|(k, p)| (k.clone(), p.into()))
                .collect(),
            id: r.id,
            experiment_id: r.experiment_id,
            name: r.name,
            status: r.status,
            user_id: r.user_id,
            start_time: r.start_time,
            end_time: r.end_time,
            lifecycle_stage: r.lifecycle_stage,
            parent_run_id: r.parent_run_id,
            artifact_uri: r.artifact_uri,
            params: r.params,
            tags: r.tags,
        }
    }
}

/// An experiment in native JSON.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "Experiment")]
pub(crate) struct ExperimentJson {
    /// A number unique in the workspace (0 is `Default`).
    id: i64,
    /// Unique name in the workspace.
    name: String,
    /// Active or deleted.
    lifecycle_stage: LifecycleStage,
    /// Where its runs keep artifacts, as an MLflow URI.
    artifact_location: String,
    /// Milliseconds since the epoch.
    creation_time: i64,
    /// Last change of name, tags or stage.
    last_update_time: i64,
    /// The datastore of its artifacts, when not the workspace's default.
    artifact_datastore: Option<String>,
    /// Tags.
    tags: BTreeMap<String, String>,
}

impl From<Experiment> for ExperimentJson {
    fn from(e: Experiment) -> Self {
        Self {
            id: e.id,
            name: e.name,
            lifecycle_stage: e.lifecycle_stage,
            artifact_location: e.artifact_location,
            creation_time: e.creation_time,
            last_update_time: e.last_update_time,
            artifact_datastore: e.artifact_datastore,
            tags: e.tags,
        }
    }
}

/// What a delete answers when it names what went.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "Deleted_{T}")]
pub(crate) struct Deleted<T> {
    /// What was deleted.
    pub deleted: T,
}
